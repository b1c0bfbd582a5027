"""The fast power-flow path: the ext_grid island(s) on one lightsim2grid model, each island fed by a
grid-forming unit on a model of its own.

An island model is built on first use from ``select_subnet`` of the island with an ext_grid at the unit's
bus (the unit out of service) and kept by what it models (its unit, buses, line and trafo states), so the
same island in another switch state elsewhere reuses it.
Open-ended lines inside a grid-forming island are dropped there (their charging current is ignored).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import pandapower as pp

from sims.grid.lsmodel import TRAFO_MODELS, FastModel, compare_with_runpp, fast_path_blocker
from sims.grid.netindex import NetIndex
from sims.grid.pf_result import BranchFlows, BranchLoading, Injections, PfPath, PowerFlowResult, bus_balance
from sims.grid.topology import Topology, Unit, supplied_part

logger = logging.getLogger(__package__)  # one logger for the grid simulator: "sims.grid"

ISLAND_MODELS_KEPT = 64
"""Island models kept (each a lightsim2grid model of its island); more start afresh."""
_RESULT_COLUMNS = ((0, 0), (0, 1), (0, 3), (1, 0), (1, 1), (1, 3))
"""(side, column) of lightsim2grid's ``get_*_res1/2`` for each array of :class:`BranchFlows`."""


@dataclass
class IslandModel:
    """Fast model of one island fed by a grid-forming unit (that unit is the island's slack).

    ``*_pos`` map the sub-net's rows to the positions of the same rows in the full net.
    """

    model: FastModel
    bus_pos: np.ndarray
    line_pos: np.ndarray
    trafo_pos: np.ndarray
    load_pos: np.ndarray
    sgen_pos: np.ndarray
    st_pos: np.ndarray


@dataclass
class _SwitchStateModels:
    """What the fast path keeps per switch state: the ext_grid part and the models of its islands."""

    main: Topology
    islands: dict[int, IslandModel | None]
    """Island label -> its model, None where lightsim2grid cannot reproduce runpp."""


def apply_topology(index: NetIndex, fast: FastModel, topo: Topology) -> None:
    """Switch the model's buses, branch ends and units to what ``topo`` energises (nothing to do when
    ``topo`` is the one it was last switched to)."""
    if fast.applied is topo:
        return
    fast.apply_topology(topo.line_state, topo.trafo_state, topo.energised, topo.load_on, topo.sgen_on, topo.st_on)
    fast.applied = topo


def _validate(
    net: pp.pandapowerNet, index: NetIndex, topo: Topology, fast: FastModel, initial: Injections
) -> str | None:
    """Compare the fast path with a fresh runpp on the initial state (None if they agree)."""
    probe = copy.deepcopy(net)
    try:
        pp.runpp(probe, numba=False)
    except Exception as exc:  # noqa: BLE001
        return f"initial runpp failed ({exc}); fast path not validated"
    # pandapower leaves islands without ext_grid unsolved: compare on the supplied part only
    apply_topology(index, fast, supplied_part(index, topo))
    fast.set_injections(initial)
    return compare_with_runpp(probe, fast, ran=True)


class FastPath:
    """lightsim2grid power flows of one net (see the module docstring)."""

    def __init__(self, net: pp.pandapowerNet, index: NetIndex, model: FastModel, trafo_model: str) -> None:
        self.net = net
        self.index = index
        self.model = model
        self.trafo_model = trafo_model
        self._generation = 0
        self._by_state: dict[bytes, _SwitchStateModels] = {}
        self._island_models: dict[tuple[Unit, bytes, bytes, bytes], IslandModel | None] = {}
        """Island models by what they model (:meth:`_island_key`), whatever the switches elsewhere: a plan
        that islands the same MG in many switch states builds its model once."""

    @classmethod
    def build(
        cls, net: pp.pandapowerNet, index: NetIndex, topo: Topology, initial: Injections
    ) -> tuple[FastPath | None, str | None]:
        """The fast path of ``net`` in the switch state ``topo``, or None and why it cannot be used.

        lightsim2grid's trafo conversions are tried in turn; the one that reproduces runpp is kept.
        """
        reason = fast_path_blocker(net)
        if reason is not None:
            return None, reason
        for trafo_model in TRAFO_MODELS:
            try:
                model = FastModel(net, index.bus_pos, trafo_model)
                reason = _validate(net, index, topo, model, initial)
            except Exception as exc:  # noqa: BLE001 - conversion failures only disable the fast path
                reason = f"lightsim2grid conversion failed: {exc}"
            if reason is None:
                return cls(net, index, model, trafo_model), None
            if not len(net.trafo):
                break
        return None, reason

    def run(self, topo: Topology, inj: Injections) -> PowerFlowResult | None:
        """The power flow of ``topo`` with ``inj``, or None if a model did not converge."""
        index = self.index
        fast = self.model
        main = self._models_of(topo).main if topo.gf_islands else topo
        apply_topology(index, fast, main)
        fast.set_injections(inj)
        V = fast.solve()
        if V is None:
            return None
        vm = np.where(main.energised, np.abs(V), np.nan)
        va = np.where(main.energised, np.degrees(np.angle(V)) + fast.ext_va_deg, np.nan)
        line, trafo = fast.branch_results(trafo=len(index.trafo_hv) > 0)
        gen_p, gen_q, _ = fast.model.get_gen_res()
        eg_p = np.zeros(len(index.eg_bus))
        eg_q = np.zeros(len(index.eg_bus))
        eg_on = np.flatnonzero(index.eg_in_service)
        eg_p[eg_on] = gen_p[fast.n_gen : fast.n_gen + len(eg_on)]
        eg_q[eg_on] = gen_q[fast.n_gen : fast.n_gen + len(eg_on)]
        shunt = (np.zeros(0), np.zeros(0))
        if len(index.shunt_bus):
            shunt_p, shunt_q, _ = (np.asarray(x) for x in fast.model.get_shunts_res())
            shunt = (shunt_p, shunt_q)
        slack: dict[Unit, float] = {}
        if topo.gf_islands and not self._solve_islands(topo, inj, vm, va, line, trafo, slack):
            return None
        line_flows = BranchFlows(*line)
        trafo_flows = None if trafo is None else BranchFlows(*trafo)
        return PowerFlowResult(
            path=PfPath.FAST,
            vm_pu=vm,
            va_degree=va,
            bus_pq=lambda: bus_balance(index, topo, inj, (eg_p, eg_q), slack, shunt),
            line=line_flows,
            trafo=trafo_flows,
            loading=BranchLoading.of(index, line_flows, trafo_flows),
            ext_grid_p_mw=eg_p,
            ext_grid_q_mvar=eg_q,
            slack_p_mw=slack,
        )

    def _models_of(self, topo: Topology) -> _SwitchStateModels:
        if topo.generation != self._generation:
            self._by_state.clear()
            self._generation = topo.generation
        models = self._by_state.get(topo.key)
        if models is None:
            models = _SwitchStateModels(main=supplied_part(self.index, topo), islands={})
            self._by_state[topo.key] = models
        return models

    def _solve_islands(
        self,
        topo: Topology,
        inj: Injections,
        vm: np.ndarray,
        va: np.ndarray,
        line: list[np.ndarray],
        trafo: list[np.ndarray] | None,
        slack: dict[Unit, float],
    ) -> bool:
        """Solve each grid-forming island on its own model; write into the arrays. False if any fails."""
        cache = self._models_of(topo).islands
        for label, unit in topo.gf_islands.items():
            if label not in cache:
                cache[label] = self._island_model(topo, label, unit)
            island = cache[label]
            if island is None:
                return False
            fast = island.model
            m = fast.model
            fast.set_injections(inj.subset(island.load_pos, island.sgen_pos, island.st_pos))
            V = fast.solve()
            if V is None:
                return False
            vm[island.bus_pos] = np.abs(V)
            va[island.bus_pos] = np.degrees(np.angle(V)) + fast.ext_va_deg
            line_res = (m.get_line_res1(), m.get_line_res2())
            for k, (side, col) in enumerate(_RESULT_COLUMNS):
                line[k][island.line_pos] = np.asarray(line_res[side][col])
            if len(island.trafo_pos) and trafo is not None:
                trafo_res = (m.get_trafo_res1(), m.get_trafo_res2())
                for k, (side, col) in enumerate(_RESULT_COLUMNS):
                    trafo[k][island.trafo_pos] = np.asarray(trafo_res[side][col])
            p_slack = float(m.get_gen_res()[0][fast.n_gen])
            slack[unit] = p_slack if unit.kind == "sgen" else -p_slack
        return True

    def _island_key(self, topo: Topology, label: int, unit: Unit) -> tuple[Unit, bytes, bytes, bytes]:
        """What an island model depends on: its slack unit, its buses and the states of its lines and trafos."""
        index = self.index
        mask = topo.label == label
        lines = mask[index.line_from] & mask[index.line_to]
        trafos = mask[index.trafo_hv] & mask[index.trafo_lv]
        return unit, mask.tobytes(), topo.line_state[lines].tobytes(), topo.trafo_state[trafos].tobytes()

    def _island_model(self, topo: Topology, label: int, unit: Unit) -> IslandModel | None:
        key = self._island_key(topo, label, unit)
        if key not in self._island_models:
            if len(self._island_models) >= ISLAND_MODELS_KEPT:
                self._island_models.clear()
            self._island_models[key] = self._build_island_model(topo, label, unit)
        return self._island_models[key]

    def _build_island_model(self, topo: Topology, label: int, unit: Unit) -> IslandModel | None:
        net = self.net
        kind, pos = unit
        sub, line_state, trafo_state = _island_subnet(net, topo, label, unit)
        unit_idx = net[kind].index[pos]
        reason = fast_path_blocker(sub)
        island = None
        if reason is None:
            try:
                fast = FastModel(sub, {int(b): i for i, b in enumerate(sub.bus.index)}, self.trafo_model)
                island = IslandModel(
                    model=fast,
                    bus_pos=net.bus.index.get_indexer(sub.bus.index),
                    line_pos=net.line.index.get_indexer(sub.line.index),
                    trafo_pos=net.trafo.index.get_indexer(sub.trafo.index),
                    load_pos=net.load.index.get_indexer(sub.load.index),
                    sgen_pos=net.sgen.index.get_indexer(sub.sgen.index),
                    st_pos=net.storage.index.get_indexer(sub.storage.index),
                )
                fast.apply_topology(
                    line_state,
                    trafo_state,
                    np.ones(len(sub.bus), dtype=bool),
                    sub.load["in_service"].to_numpy(dtype=bool),
                    sub.sgen["in_service"].to_numpy(dtype=bool),
                    sub.storage["in_service"].to_numpy(dtype=bool),
                )
                reason = compare_with_runpp(sub, fast)
            except Exception as exc:  # noqa: BLE001 - conversion failures only disable the fast path
                reason = f"lightsim2grid conversion failed: {exc}"
        if reason is not None:
            logger.info("island of %s %s runs on pandapower.runpp: %s", kind, unit_idx, reason)
            return None
        return island


def _island_subnet(
    net: pp.pandapowerNet, topo: Topology, label: int, unit: Unit
) -> tuple[pp.pandapowerNet, np.ndarray, np.ndarray]:
    """The island ``label`` as a net of its own with an ext_grid at ``unit``; its line and trafo states."""
    kind, pos = unit
    buses = net.bus.index[topo.label == label]
    sub = pp.toolbox.select_subnet(net, buses, include_results=False, keep_everything_else=False)
    sub.bus.sort_index(inplace=True)
    sub.switch = sub.switch.iloc[0:0]
    sub.ext_grid = sub.ext_grid.iloc[0:0]
    unit_idx = net[kind].index[pos]
    sub[kind].at[unit_idx, "in_service"] = False
    sub[kind].at[unit_idx, "p_mw"] = 0.0
    pp.create_ext_grid(sub, int(net[kind].at[unit_idx, "bus"]), vm_pu=1.0, va_degree=0.0)
    line_pos = net.line.index.get_indexer(sub.line.index)
    # lines with an open end inside the island are dropped (only their charging current differs)
    line_state = np.where(topo.line_state[line_pos] == 3, 3, 0)
    sub.line["in_service"] = line_state == 3
    trafo_pos = net.trafo.index.get_indexer(sub.trafo.index)
    trafo_state = np.where(topo.trafo_state[trafo_pos] == 3, 3, 0)
    sub.trafo["in_service"] = trafo_state == 3
    return sub, line_state, trafo_state
