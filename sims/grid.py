"""pandapower grid as a mosaik simulator (``sims.grid:GridSim``), contract in docs/interfaces.md.

One ``Grid`` entity per simulator; its children are the rows of the net (``Bus-3``, ``Line-7``,
``Switch-0``, ``Load-2``, ``StaticGen-4``, ``Storage-1``, ``ExtGrid-0``). META and the mapping from
mosaik attributes to result arrays come from one table, :data:`MODEL_SPECS`.

Each step
    1. inputs are stored (they hold until a new value arrives; several sources of one attribute are
       summed, a switch is closed only if every source says so); unit powers are computed: loads
       less what is shed from them (``shed_mw`` input clipped to ``[0, p_mw]``, q scaled with p; loads
       of one ``shed_group`` column value in ``net.load`` share the shed asked of any of them in
       proportion to their demand), static
       generators ``min(setpoint, availability)``, storages clipped to their power and energy limits
       over the step (``clipped_mw`` = setpoint - applied, logged warning naming the unit),
       ``dt_h = step_size * time_resolution / 3600``;
    2. the topology of the current switch state is analysed (scipy connected components on the bus
       graph, cached per switch state): islands with an ext_grid are supplied; an island without one
       but with an in-service ``grid_forming`` unit (first such sgen, else first such storage) gets
       that unit as slack (setpoint ignored, it reports the power that balanced the island; a
       storage integrates it, and what its SoC or power limit cannot cover is reported as
       ``clipped_mw`` with a warning); all other islands are unsupplied (buses NaN, their load summed
       in ``unsupplied_mw``, their units and loads output 0 MW, a storage there reports its setpoint
       as clipped);
    3. the AC power flow runs on one of two paths:

       * **fast path**: lightsim2grid ``LSGrid`` models built once and updated in place
         (``change_p_load/q_load/p_sgen/p_storage`` only for values that changed; a line or trafo
         switch opens that end with ``deactivate_powerline_side1/2`` / ``deactivate_trafo_side1/2``;
         unsupplied islands are deactivated buses
         and elements; Newton-Raphson (KLU, tol 1e-10) warm-started from the last voltages, retried from
         a DC start). The ext_grid island(s) run on the main model; every grid-forming island runs on
         its own model, built on first use from ``select_subnet`` with an ext_grid at the unit's bus
         and cached per switch state. Used when the net has exactly one ext_grid, no gen, only line
         and trafo switches, constant-power loads, no element lightsim2grid cannot convert, and the model
         reproduced a fresh ``pandapower.runpp`` within 1e-6 pu at create time (each island model is
         checked the same way when built). lightsim2grid's trafo conversions ``pandapower_v2`` and
         ``pandapower_v3`` are tried in turn; with pandapower 3.5 only v2 matches (v3 is off by 2.5e-5
         pu on simple_mv_open_ring_net). Open-ended lines inside a grid-forming island are dropped there
         (their charging current is ignored).
       * **slow path**: ``pandapower.runpp`` (numba off) on a working copy of the net, with a temporary
         ext_grid at each island's grid-forming unit. Used for nets the fast path cannot express
         (bus-bus switches, gens, several ext_grids, voltage-dependent loads, failed
         validation) and as a retry whenever the fast path does not converge.

       ``GridSim.last_path`` says which path ran ("fast", "runpp", "diverged").
    4. a power flow that diverges on both paths gives NaN electrical outputs (buses, lines, ext_grid,
       grid aggregates except ``unsupplied_mw``), ``pf_converged`` 0 and a logged warning with the time;
       the run continues. Unit setpoints that were applied stay applied: loads, sgens and storages
       report them and the SoC integrates them (a grid-forming storage's balancing power is unknown:
       NaN, SoC unchanged).

Measured with ``python tests/bench/bench_grid.py`` on the ieee33-style net (36 buses, 40 lines,
8 switches; 2-core VM shared with other jobs, numba not installed), median of step + get_data of every
attribute of every entity: fast path 0.56 ms (8760 steps), fast path with MG1 islanded on its storage
0.69 ms, slow path 34 ms, mosaik-pandapower-2 33 ms, plain ``runpp`` 31 ms (raw lightsim2grid
``ac_pf`` about 0.02-0.07 ms of the fast step; the rest is Python around it). Fast-path bus voltages
agree with a fresh ``runpp`` within 3e-9 pu (4e-14 pu on the cold start).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import warnings
from dataclasses import dataclass
from typing import Any, override

import mosaik_api_v3
import numpy as np
import pandapower as pp
import pandapower.networks
from mosaik_api_v3.types import CreateResult, InputData, Meta, ModelName, OutputData, OutputRequest, SimId, Time
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

logger = logging.getLogger(__name__)

FAST_PATH_TOL_PU = 1e-6
"""Largest bus-voltage difference to a fresh ``runpp`` for the fast path to be used."""
NR_TOL = 1e-10
NR_MAXIT = 30
TRAFO_MODELS = ("pandapower_v2", "pandapower_v3")
"""lightsim2grid ``pp_orig_file`` options tried in turn; with pandapower 3.5 the v2 one matches runpp."""
DEFAULT_MIN_VM_PU = 0.95
DEFAULT_MAX_VM_PU = 1.05


@dataclass(frozen=True)
class ModelSpec:
    """A mosaik model: its pandapower table, input attributes and output attributes.

    ``outputs`` maps each output attribute to the key of the result array the simulator fills each
    step (for element models the pandapower result column name where one exists).
    """

    element: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


MODEL_SPECS: dict[str, ModelSpec] = {
    "Bus": ModelSpec("bus", (), ("vm_pu", "va_degree", "p_mw", "q_mvar")),
    "Line": ModelSpec("line", (), ("loading_percent", "i_ka", "p_from_mw", "q_from_mvar", "p_to_mw", "pl_mw")),
    "Switch": ModelSpec("switch", ("closed",), ("closed",)),
    "Load": ModelSpec("load", ("p_mw", "q_mvar", "shed_mw"), ("p_mw", "q_mvar", "shed_mw")),
    "StaticGen": ModelSpec("sgen", ("p_mw", "p_avail_mw"), ("p_mw", "p_avail_mw", "curtailed_mw")),
    "Storage": ModelSpec("storage", ("p_mw",), ("p_mw", "soc_mwh", "clipped_mw")),
    "ExtGrid": ModelSpec("ext_grid", (), ("p_mw", "q_mvar")),
}
GRID_OUTPUTS = (
    "pf_converged",
    "losses_mw",
    "min_vm_pu",
    "max_vm_pu",
    "max_loading_percent",
    "n_voltage_violations",
    "n_overloads",
    "unsupplied_mw",
    "shed_mw",
)

META: Meta = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Grid": {"public": True, "params": ["net"], "attrs": list(GRID_OUTPUTS), "any_inputs": False},
        **{
            model: {
                "public": False,
                "params": [],
                "attrs": sorted(set(spec.inputs) | set(spec.outputs)),
                "any_inputs": False,
            }
            for model, spec in MODEL_SPECS.items()
        },
    },
}


def load_net(net: str) -> pp.pandapowerNet:
    """A pandapower net from a pandapower.networks function name, a JSON file path or a JSON string."""
    if not isinstance(net, str) or not net.strip():
        raise ValueError(f"net must be a non-empty string, got {net!r}")
    text = net.strip()
    if text.startswith("{"):
        return pp.from_json_string(text)
    if os.path.isfile(text):
        return pp.from_json(text)
    func = getattr(pandapower.networks, text, None)
    if text.isidentifier() and callable(func) and not text.startswith("_"):
        result = func()
        if isinstance(result, pp.pandapowerNet):
            return result
    raise ValueError(f"unknown net {net!r}: neither a pandapower.networks function, a JSON file nor a JSON string")


def _col(table: Any, name: str, default: float) -> np.ndarray:
    """Float column of a pandapower table, ``default`` where missing or NaN."""
    if name not in table.columns:
        return np.full(len(table), default, dtype=float)
    values = table[name].to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(values), default, values)


def _bool_col(table: Any, name: str, default: bool) -> np.ndarray:
    if name not in table.columns:
        return np.full(len(table), default, dtype=bool)
    return table[name].fillna(default).to_numpy(dtype=bool)


class _FastModel:
    """lightsim2grid ``LSGrid`` built once from the net and updated in place each step.

    Element positions are the row positions of the pandapower tables (out-of-service rows are
    deactivated elements); buses are mapped through ``bus_pos`` (sorted pandapower bus index).
    """

    def __init__(self, net: pp.pandapowerNet, bus_pos: dict[int, int], trafo_model: str) -> None:
        from lightsim2grid.network import init_from_pandapower

        work = copy.deepcopy(net)
        work.switch = work.switch.iloc[0:0]  # switch states are applied as line side status
        if not work.bus.index.is_monotonic_increasing:
            raise RuntimeError("fast path needs a sorted bus index")
        pp.toolbox.create_continuous_bus_index(work, start=0, store_old_index=False)
        for table in ("sgen", "gen", "storage", "load"):
            for column in ("min_p_mw", "max_p_mw", "min_q_mvar", "max_q_mvar"):
                if column in work[table].columns:
                    work[table][column] = work[table][column].fillna(0.0)
        with warnings.catch_warnings():
            # lightsim2grid warns that it adds the slack from the ext_grid: that is what we want
            warnings.simplefilter("ignore", UserWarning)
            self.model = init_from_pandapower(work, pp_orig_file=trafo_model)
        self.n_bus = len(net.bus)
        self.n_gen = len(net.gen)
        self.ext_va_deg = float(net.ext_grid["va_degree"].iloc[0])
        self.line_state = np.where(net.line["in_service"].to_numpy(dtype=bool), 3, 0)
        """Per line: bit 0 side 1 connected, bit 1 side 2 connected."""
        self.trafo_state = np.where(net.trafo["in_service"].to_numpy(dtype=bool), 3, 0)
        """Per trafo: bit 0 hv side connected, bit 1 lv side connected."""
        self.bus_active = net.bus["in_service"].to_numpy(dtype=bool).copy()
        self.load_active = net.load["in_service"].to_numpy(dtype=bool).copy()
        self.sgen_active = net.sgen["in_service"].to_numpy(dtype=bool).copy()
        self.storage_active = net.storage["in_service"].to_numpy(dtype=bool).copy()
        self.values: dict[str, np.ndarray] = {}
        self.V = np.full(self.n_bus, 1.0 + 0.0j)
        self.bus_pos = bus_pos

    def set_values(self, key: str, values: np.ndarray, setter: Any) -> None:
        old = self.values.get(key)
        changed = range(len(values)) if old is None else np.flatnonzero(old != values).tolist()
        for i in changed:
            setter(i, float(values[i]))
        self.values[key] = values.copy()

    def set_active(self, current: np.ndarray, wanted: np.ndarray, deactivate: Any, reactivate: Any) -> None:
        for i in np.flatnonzero(current != wanted).tolist():
            (reactivate if wanted[i] else deactivate)(i)
        current[:] = wanted

    def apply_topology(
        self,
        line_state: np.ndarray,
        trafo_state: np.ndarray,
        bus_active: np.ndarray,
        load_on: np.ndarray,
        sgen_on: np.ndarray,
        storage_on: np.ndarray,
    ) -> None:
        m = self.model
        # element and line deactivation before buses, bus reactivation before elements
        self.set_active(self.load_active, load_on, m.deactivate_load, m.reactivate_load)
        self.set_active(self.sgen_active, sgen_on, m.deactivate_sgen, m.reactivate_sgen)
        self.set_active(self.storage_active, storage_on, m.deactivate_storage, m.reactivate_storage)
        self._set_sides(
            self.line_state,
            line_state,
            m.deactivate_powerline,
            m.reactivate_powerline,
            m.deactivate_powerline_side1,
            m.deactivate_powerline_side2,
        )
        self._set_sides(
            self.trafo_state,
            trafo_state,
            m.deactivate_trafo,
            m.reactivate_trafo,
            m.deactivate_trafo_side1,
            m.deactivate_trafo_side2,
        )
        for i in np.flatnonzero(self.bus_active != bus_active).tolist():
            if bus_active[i]:
                m.reactivate_bus(i)
            else:
                m.deactivate_bus(i)
                self.V[i] = 1.0
        self.bus_active[:] = bus_active
        # reactivations that depend on reactivated buses
        self.set_active(self.load_active, load_on, m.deactivate_load, m.reactivate_load)
        self.set_active(self.sgen_active, sgen_on, m.deactivate_sgen, m.reactivate_sgen)
        self.set_active(self.storage_active, storage_on, m.deactivate_storage, m.reactivate_storage)

    @staticmethod
    def _set_sides(
        current: np.ndarray,
        wanted: np.ndarray,
        deactivate: Any,
        reactivate: Any,
        deactivate_side1: Any,
        deactivate_side2: Any,
    ) -> None:
        for i in np.flatnonzero(current != wanted).tolist():
            new = int(wanted[i])
            if new == 0:
                deactivate(i)
                continue
            reactivate(i)
            if new == 1:
                deactivate_side2(i)
            elif new == 2:
                deactivate_side1(i)
        current[:] = wanted

    def solve(self) -> np.ndarray | None:
        """Complex bus voltages (length n_bus), or None if the Newton-Raphson did not converge.

        Warm-started from the last solution; on failure (or phase-shifting trafos on a cold start)
        retried from a DC power flow, as pandapower's ``init="auto"`` does.
        """
        V0 = self.V.copy()
        V0[~self.bus_active] = 1.0
        V = self._ac_pf(V0)
        if V is None:
            V = self._ac_pf(self._dc_start())
        if V is None:
            self.V = np.full(self.n_bus, 1.0 + 0.0j)
            return None
        self.V = V
        return V

    def _ac_pf(self, V0: np.ndarray | None) -> np.ndarray | None:
        if V0 is None:
            return None
        try:
            V = self.model.ac_pf(V0, NR_MAXIT, NR_TOL)
        except Exception:
            logger.debug("lightsim2grid ac_pf raised", exc_info=True)
            return None
        if len(V) == 0 or not np.all(np.isfinite(V)):
            return None
        return np.asarray(V[: self.n_bus]).copy()

    def _dc_start(self) -> np.ndarray | None:
        flat = np.full(self.n_bus, 1.0 + 0.0j)
        try:
            V = self.model.dc_pf(flat, NR_MAXIT, NR_TOL)
        except Exception:  # noqa: BLE001
            return None
        if len(V) == 0 or not np.all(np.isfinite(V)):
            return None
        return np.exp(1j * np.angle(np.asarray(V[: self.n_bus])))


@dataclass
class _IslandModel:
    """Fast model of one island fed by a grid-forming unit (that unit is the island's slack).

    Built from ``pandapower.toolbox.select_subnet`` of the island with a temporary ext_grid at the
    unit's bus and the unit itself out of service; ``*_pos`` map the sub-net's rows to the
    positions of the same rows in the full net.
    """

    model: _FastModel
    bus_pos: np.ndarray
    line_pos: np.ndarray
    trafo_pos: np.ndarray
    load_pos: np.ndarray
    sgen_pos: np.ndarray
    st_pos: np.ndarray


class GridSim(mosaik_api_v3.Simulator):
    """pandapower AC power flow with switches, static generators, storages and islands."""

    def __init__(self) -> None:
        super().__init__(copy.deepcopy(META))
        self.sid = ""
        self.time_resolution = 1.0
        self.step_size = 3600
        self.net: pp.pandapowerNet | None = None
        self._eids: dict[str, tuple[str, int]] = {}
        self.last_path = ""
        """Power-flow path of the last step: "fast", "runpp" or "diverged" (diagnostics, tests)."""

    # ------------------------------------------------------------------ mosaik API
    @override
    def init(self, sid: SimId, time_resolution: float = 1.0, **sim_params: Any) -> Meta:
        """``sim_params``: ``step_size`` (time units per step, default 3600) and nothing else."""
        step_size = sim_params.pop("step_size", 3600)
        if sim_params:
            raise ValueError(f"unknown GridSim params: {sorted(sim_params)}")
        if step_size <= 0:
            raise ValueError(f"step_size must be positive, got {step_size}")
        self.sid = sid
        self.time_resolution = float(time_resolution)
        self.step_size = int(step_size)
        return self.meta

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        if model != "Grid":
            raise ValueError(f"only Grid entities can be created, not {model!r}")
        if num != 1 or self.net is not None:
            raise ValueError("GridSim holds exactly one Grid entity")
        if set(model_params) != {"net"}:
            raise ValueError(f"Grid takes exactly the param 'net', got {sorted(model_params)}")
        self._setup(load_net(model_params["net"]))
        net = self.net
        assert net is not None
        children = []
        bus_of = {
            "line": ("from_bus", "to_bus"),
            "load": ("bus",),
            "sgen": ("bus",),
            "storage": ("bus",),
            "ext_grid": ("bus",),
            "switch": ("bus",),
            "bus": (),
        }
        for model_name, spec in MODEL_SPECS.items():
            table = net[spec.element]
            buses = [table[c].to_numpy() for c in bus_of[spec.element]]
            for pos, idx in enumerate(table.index):
                eid = f"{model_name}-{idx}"
                self._eids[eid] = (model_name, pos)
                children.append(
                    {
                        "eid": eid,
                        "type": model_name,
                        "rel": [f"Bus-{int(b[pos])}" for b in buses],
                    }
                )
        self._eids["Grid-0"] = ("Grid", 0)
        return [{"eid": "Grid-0", "type": "Grid", "children": children, "rel": []}]

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time:
        for eid, attrs in inputs.items():
            model, pos = self._eids[eid]
            for attr, sources in attrs.items():
                values = [v for v in sources.values() if v is not None]
                if not values:
                    continue
                self._set_input(model, pos, attr, values)
        self._simulate(time)
        return time + self.step_size

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        out = self._out
        data: OutputData = {}
        for eid, attrs in outputs.items():
            model, pos = self._eids[eid]
            table = out[model]
            data[eid] = {attr: table[attr][pos] for attr in attrs}
        return data

    # ------------------------------------------------------------------ set-up
    def _setup(self, net: pp.pandapowerNet) -> None:
        net.bus.sort_index(inplace=True)
        self.net = net
        self._pp_net = copy.deepcopy(net)  # slow-path working copy
        self.dt_h = self.step_size * self.time_resolution / 3600.0
        bus_index = net.bus.index.to_numpy()
        self._bus_pos = {int(b): i for i, b in enumerate(bus_index)}
        bpos = self._bus_pos

        def pos_of(values: Any) -> np.ndarray:
            return np.array([bpos[int(b)] for b in values], dtype=np.int64)

        self._n_bus = len(net.bus)
        self._bus_in_service = net.bus["in_service"].to_numpy(dtype=bool)
        self._vmin = _col(net.bus, "min_vm_pu", DEFAULT_MIN_VM_PU)
        self._vmax = _col(net.bus, "max_vm_pu", DEFAULT_MAX_VM_PU)

        line = net.line
        self._line_from = pos_of(line["from_bus"])
        self._line_to = pos_of(line["to_bus"])
        self._line_in_service = line["in_service"].to_numpy(dtype=bool)
        self._line_imax = _col(line, "max_i_ka", np.inf) * _col(line, "df", 1.0) * _col(line, "parallel", 1.0)
        trafo = net.trafo
        self._trafo_hv = pos_of(trafo["hv_bus"])
        self._trafo_lv = pos_of(trafo["lv_bus"])
        self._trafo_in_service = trafo["in_service"].to_numpy(dtype=bool)

        sw = net.switch
        self._sw_bus = pos_of(sw["bus"])
        self._sw_et = sw["et"].to_numpy(dtype=str)
        self._sw_element = sw["element"].to_numpy(dtype=np.int64)
        self._sw_closed = sw["closed"].to_numpy(dtype=bool).copy()
        self._topology_cache: dict[bytes, dict[str, Any]] = {}
        line_pos = {int(i): p for p, i in enumerate(line.index)}
        self._sw_line_pos = np.array(
            [line_pos.get(int(e), -1) if t == "l" else -1 for e, t in zip(self._sw_element, self._sw_et, strict=True)],
            dtype=np.int64,
        )
        # a line switch opens the line end at its bus, a trafo switch the trafo side at its bus
        self._sw_line_side = np.array(
            [
                0 if p < 0 else (1 if self._line_from[p] == b else 2)
                for p, b in zip(self._sw_line_pos, self._sw_bus, strict=True)
            ],
            dtype=np.int64,
        )
        trafo_pos = {int(i): p for p, i in enumerate(trafo.index)}
        self._sw_trafo_pos = np.array(
            [trafo_pos.get(int(e), -1) if t == "t" else -1 for e, t in zip(self._sw_element, self._sw_et, strict=True)],
            dtype=np.int64,
        )
        self._sw_trafo_side = np.array(
            [
                0 if p < 0 else (1 if self._trafo_hv[p] == b else 2)
                for p, b in zip(self._sw_trafo_pos, self._sw_bus, strict=True)
            ],
            dtype=np.int64,
        )

        load = net.load
        self._load_bus = pos_of(load["bus"])
        self._load_in_service = load["in_service"].to_numpy(dtype=bool)
        self._load_scaling = _col(load, "scaling", 1.0)
        # inputs and outputs are actual MW: the net's own values enter times their scaling
        self._load_p = _col(load, "p_mw", 0.0) * self._load_scaling
        self._load_q = _col(load, "q_mvar", 0.0) * self._load_scaling
        self._load_shed_in = np.zeros(len(load))
        # loads with the same shed_group share the shed asked of any of them (in proportion to demand)
        groups = [g if isinstance(g, str) and g else None for g in load.get("shed_group", [None] * len(load))]
        names = sorted({g for g in groups if g is not None})
        self._load_group = np.array([-1 if g is None else names.index(g) for g in groups], dtype=np.int64)
        self._n_shed_groups = len(names)

        sgen = net.sgen
        self._sgen_bus = pos_of(sgen["bus"])
        self._sgen_in_service = sgen["in_service"].to_numpy(dtype=bool)
        self._sgen_scaling = _col(sgen, "scaling", 1.0)
        self._sgen_net_p = _col(sgen, "p_mw", 0.0) * self._sgen_scaling
        self._sgen_q = _col(sgen, "q_mvar", 0.0) * self._sgen_scaling
        self._sgen_controllable = _bool_col(sgen, "controllable", False)
        self._sgen_max_p = _col(sgen, "max_p_mw", np.nan)
        self._sgen_gf = _bool_col(sgen, "grid_forming", False) & self._sgen_in_service
        self._sgen_set = np.full(len(sgen), np.nan)
        self._sgen_avail = np.full(len(sgen), np.nan)

        st = net.storage
        self._st_bus = pos_of(st["bus"])
        self._st_in_service = st["in_service"].to_numpy(dtype=bool)
        self._st_scaling = _col(st, "scaling", 1.0)
        self._st_q = _col(st, "q_mvar", 0.0) * self._st_scaling
        self._st_set = _col(st, "p_mw", 0.0) * self._st_scaling
        self._st_eta_ch = _col(st, "eta_ch", 1.0)
        self._st_eta_dis = _col(st, "eta_dis", 1.0)
        self._st_min_e = _col(st, "min_e_mwh", 0.0)
        self._st_max_e = _col(st, "max_e_mwh", np.inf)
        self._st_max_p = _col(st, "max_p_mw", np.inf)
        self._st_min_p = _col(st, "min_p_mw", -np.inf)
        soc_pct = _col(st, "soc_percent", np.nan)
        energy_cap = np.where(np.isfinite(self._st_max_e), self._st_max_e, 0.0)
        self._soc = np.where(np.isnan(soc_pct), self._st_min_e, soc_pct / 100.0 * energy_cap)
        self._st_gf = _bool_col(st, "grid_forming", False) & self._st_in_service
        self._st_names = [str(n) for n in st["name"]] if "name" in st.columns else [""] * len(st)
        self._st_index = st.index.to_numpy()

        eg = net.ext_grid
        self._eg_bus = pos_of(eg["bus"])
        self._eg_in_service = eg["in_service"].to_numpy(dtype=bool)
        self._gen_bus = pos_of(net.gen["bus"]) if len(net.gen) else np.zeros(0, dtype=np.int64)
        self._shunt_bus = pos_of(net.shunt["bus"]) if len(net.shunt) else np.zeros(0, dtype=np.int64)

        self._fast: _FastModel | None = None
        self._trafo_model = TRAFO_MODELS[0]
        reason = self._fast_path_blocker(net)
        if reason is None:
            # lightsim2grid's two trafo conversions; the one that reproduces runpp is kept
            for trafo_model in TRAFO_MODELS:
                try:
                    self._fast = _FastModel(net, self._bus_pos, trafo_model)
                    reason = self._validate_fast_path()
                except Exception as exc:  # noqa: BLE001 - conversion failures only disable the fast path
                    reason = f"lightsim2grid conversion failed: {exc}"
                if reason is None:
                    self._trafo_model = trafo_model
                    break
                self._fast = None
                if not len(net.trafo):
                    break
        if reason is not None:
            logger.info("GridSim uses pandapower.runpp for every step: %s", reason)
        self._out: dict[str, dict[str, list]] = {}
        self._empty_outputs()

    @staticmethod
    def _fast_path_blocker(net: pp.pandapowerNet) -> str | None:
        """Why the lightsim2grid fast path cannot represent this net (None if it can)."""
        if int(net.ext_grid["in_service"].sum()) != 1 or len(net.ext_grid) != 1:
            return "the fast path needs exactly one ext_grid"
        if len(net.gen):
            return "net has gen elements"
        if len(net.switch) and not net.switch["et"].isin(["l", "t"]).all():
            return "net has bus-bus switches"
        for table in (
            "trafo3w",
            "impedance",
            "ward",
            "xward",
            "dcline",
            "motor",
            "asymmetric_load",
            "asymmetric_sgen",
            "svc",
            "tcsc",
            "ssc",
            "vsc",
        ):
            if table in net and len(net[table]):
                return f"net has {table} elements"
        for column in (
            "const_z_p_percent",
            "const_i_p_percent",
            "const_z_q_percent",
            "const_i_q_percent",
            "const_z_percent",
            "const_i_percent",
        ):
            if column in net.load.columns and (net.load[column].fillna(0) != 0).any():
                return "net has voltage-dependent loads"
        for table in ("line", "trafo"):
            if "parallel" in net[table].columns and (net[table]["parallel"] != 1).any():
                return f"net has parallel {table}s"
        return None

    def _validate_fast_path(self) -> str | None:
        """Compare the fast path with a fresh runpp on the initial state (None if they agree)."""
        probe = copy.deepcopy(self.net)
        try:
            pp.runpp(probe, numba=False)
        except Exception as exc:  # noqa: BLE001
            return f"initial runpp failed ({exc}); fast path not validated"
        topo = dict(self._topology())
        # pandapower leaves islands without ext_grid unsolved: compare on the supplied part only
        topo["energised"] = topo["supplied"]
        topo["line_state"] = self._line_state(topo["line_side"], topo["supplied"])
        topo["trafo_state"] = self._trafo_state(topo["trafo_side"], topo["supplied"])
        self._apply_fast_topology(topo)
        fast = self._fast
        assert fast is not None
        p_sg = self._sgen_net_p
        p_st = self._st_set
        fast.set_values("load_p", self._load_p, fast.model.change_p_load)
        fast.set_values("load_q", self._load_q, fast.model.change_q_load)
        fast.set_values("sgen_p", p_sg, fast.model.change_p_sgen)
        fast.set_values("sgen_q", self._sgen_q, fast.model.change_q_sgen)
        fast.set_values("st_p", p_st, fast.model.change_p_storage)
        fast.set_values("st_q", self._st_q, fast.model.change_q_storage)
        return self._compare_with_runpp(probe, fast, ran=True)

    @staticmethod
    def _compare_with_runpp(probe: pp.pandapowerNet, fast: _FastModel, ran: bool = False) -> str | None:
        """Solve ``fast`` and compare its bus voltages with runpp on ``probe`` (None if they agree)."""
        if not ran:
            probe = copy.deepcopy(probe)
            try:
                pp.runpp(probe, numba=False)
            except Exception as exc:  # noqa: BLE001
                return f"runpp failed ({exc}); fast path not validated"
        V = fast.solve()
        if V is None:
            return "lightsim2grid did not converge on the initial state"
        vm_pp = probe.res_bus["vm_pu"].to_numpy(dtype=float)
        vm_fast = np.where(fast.bus_active, np.abs(V), np.nan)
        both = ~np.isnan(vm_pp)
        if not np.array_equal(both, ~np.isnan(vm_fast)):
            return "energised buses differ between lightsim2grid and pandapower"
        dev = float(np.max(np.abs(vm_pp[both] - vm_fast[both]), initial=0.0))
        va_pp = probe.res_bus["va_degree"].to_numpy(dtype=float)
        va_dev = float(np.max(np.abs(va_pp[both] - np.degrees(np.angle(V[both])) - fast.ext_va_deg), initial=0.0))
        if dev > FAST_PATH_TOL_PU or va_dev > 1e-4:
            return f"lightsim2grid deviates from runpp by {dev:.2e} pu / {va_dev:.2e} deg"
        logger.debug("fast path validated: max |dvm| %.2e pu", dev)
        return None

    # ------------------------------------------------------------------ inputs
    def _set_input(self, model: str, pos: int, attr: str, values: list) -> None:
        if model == "Load":
            target = {"p_mw": self._load_p, "q_mvar": self._load_q, "shed_mw": self._load_shed_in}[attr]
            target[pos] = float(sum(values))
        elif model == "StaticGen":
            target = self._sgen_set if attr == "p_mw" else self._sgen_avail
            target[pos] = float(sum(values))
        elif model == "Storage":
            self._st_set[pos] = float(sum(values))
        elif model == "Switch":
            # several sources: the switch is closed only if all of them say so
            self._sw_closed[pos] = all(bool(v) for v in values)
        else:
            raise ValueError(f"{model} takes no input {attr!r}")

    # ------------------------------------------------------------------ topology
    def _topology(self) -> dict[str, Any]:
        key = self._sw_closed.tobytes()
        topo = self._topology_cache.get(key)
        if topo is None:
            topo = self._analyse_topology()
            if len(self._topology_cache) > 256:
                self._topology_cache.clear()
            self._topology_cache[key] = topo
        return topo

    def _analyse_topology(self) -> dict[str, Any]:
        n = self._n_bus
        side = np.where(self._line_in_service, 3, 0)
        open_sw = ~self._sw_closed
        for p, s in zip(self._sw_line_pos[open_sw], self._sw_line_side[open_sw], strict=True):
            if p >= 0:
                side[p] &= ~s
        tside = np.where(self._trafo_in_service, 3, 0)
        for p, s in zip(self._sw_trafo_pos[open_sw], self._sw_trafo_side[open_sw], strict=True):
            if p >= 0:
                tside[p] &= ~s
        both = side == 3
        tboth = tside == 3
        rows = [self._line_from[both], self._trafo_hv[tboth]]
        cols = [self._line_to[both], self._trafo_lv[tboth]]
        bb = (self._sw_et == "b") & self._sw_closed
        if bb.any():
            rows.append(self._sw_bus[bb])
            cols.append(np.array([self._bus_pos[int(e)] for e in self._sw_element[bb]], dtype=np.int64))
        r = np.concatenate(rows)
        c = np.concatenate(cols)
        keep = self._bus_in_service[r] & self._bus_in_service[c]
        graph = coo_matrix((np.ones(int(keep.sum())), (r[keep], c[keep])), shape=(n, n))
        _, label = connected_components(graph, directed=False)
        label = np.where(self._bus_in_service, label, -1)
        eg_bus = self._eg_bus[self._eg_in_service]
        supplied_labels = set(label[eg_bus].tolist()) - {-1}
        gf_islands: dict[int, tuple[str, int]] = {}
        for kind, mask, buses in (("sgen", self._sgen_gf, self._sgen_bus), ("storage", self._st_gf, self._st_bus)):
            for pos in np.flatnonzero(mask).tolist():
                lab = int(label[buses[pos]])
                if lab >= 0 and lab not in supplied_labels and lab not in gf_islands:
                    gf_islands[lab] = (kind, pos)
        energised_labels = supplied_labels | set(gf_islands)
        energised = np.isin(label, list(energised_labels)) & (label >= 0)
        supplied = np.isin(label, list(supplied_labels)) & (label >= 0)
        return {
            "label": label,
            "energised": energised,
            "supplied": supplied,
            "gf_islands": gf_islands,
            "line_side": side,
            "line_state": self._line_state(side, energised),
            "trafo_side": tside,
            "trafo_state": self._trafo_state(tside, energised),
            "has_bus_switch": bool((self._sw_et == "b").any()),
        }

    def _line_state(self, side: np.ndarray, energised: np.ndarray) -> np.ndarray:
        """Line side status for lightsim2grid: only sides at energised buses stay connected."""
        state = side.copy()
        state[~energised[self._line_from]] &= ~1
        state[~energised[self._line_to]] &= ~2
        return state

    def _trafo_state(self, side: np.ndarray, energised: np.ndarray) -> np.ndarray:
        """Trafo side status for lightsim2grid: only sides at energised buses stay connected."""
        state = side.copy()
        state[~energised[self._trafo_hv]] &= ~1
        state[~energised[self._trafo_lv]] &= ~2
        return state

    # ------------------------------------------------------------------ units
    def _sgen_power(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Applied p (generator sign), availability and curtailment of every static generator."""
        avail_in = self._sgen_avail
        default_avail = np.where(np.isnan(self._sgen_max_p), self._sgen_net_p, self._sgen_max_p)
        avail = np.where(np.isnan(avail_in), default_avail, avail_in)
        no_set_default = np.where(self._sgen_controllable, self._sgen_net_p, avail)
        setpoint = np.where(np.isnan(self._sgen_set), no_set_default, self._sgen_set)
        p = np.minimum(setpoint, avail)
        curtailed = np.where(np.isnan(avail_in), 0.0, avail_in - p)
        p = np.where(self._sgen_in_service, p, 0.0)
        return p, avail, curtailed

    def _load_shed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Served p and q of every load and the MW shed from it.

        The shed asked of a load (``shed_mw`` input; NaN counts as 0, negative values as 0) is clipped to
        its demand ``max(p_mw, 0)``; loads of one ``shed_group`` pool what is asked of them and share it
        in proportion to their demand. q is reduced in proportion to p (the load's power factor stays).
        Out-of-service loads shed nothing.
        """
        p = self._load_p
        demand = np.where(self._load_in_service, np.maximum(p, 0.0), 0.0)
        asked = np.maximum(np.nan_to_num(self._load_shed_in, nan=0.0), 0.0)
        shed = np.minimum(asked, demand)
        grouped = self._load_group >= 0
        if grouped.any():
            g = self._load_group[grouped]
            asked_g = np.bincount(g, asked[grouped], self._n_shed_groups)
            demand_g = np.bincount(g, demand[grouped], self._n_shed_groups)
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(demand_g > 0, np.minimum(asked_g, demand_g) / demand_g, 0.0)
            shed[grouped] = demand[grouped] * share[g]
        with np.errstate(divide="ignore", invalid="ignore"):
            kept = np.where(p > 0, 1.0 - shed / p, 1.0)
        return p - shed, self._load_q * kept, shed

    def _storage_limits(self, p: np.ndarray, time: int, what: str = "setpoint") -> np.ndarray:
        """Clip storage powers (load sign) to power and energy limits over the step; warn per unit."""
        dt = self.dt_h
        room_ch = np.maximum(self._st_max_e - self._soc, 0.0)
        room_dis = np.maximum(self._soc - self._st_min_e, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            p_ch_max = np.where(self._st_eta_ch > 0, room_ch / (self._st_eta_ch * dt), np.inf)
        p_dis_max = room_dis * self._st_eta_dis / dt
        upper = np.minimum(self._st_max_p, p_ch_max)
        lower = np.maximum(self._st_min_p, -p_dis_max)
        applied = np.clip(p, np.minimum(lower, 0.0), np.maximum(upper, 0.0))
        applied = np.where(self._st_in_service, applied, 0.0)
        clipped = p - applied
        for pos in np.flatnonzero(np.abs(clipped) > 1e-9).tolist():
            logger.warning(
                "t=%s: storage %s (index %s) %s %.4f MW clipped to %.4f MW (SoC %.4f MWh)",
                time,
                self._st_names[pos],
                self._st_index[pos],
                what,
                p[pos],
                applied[pos],
                self._soc[pos],
            )
        return applied

    def _integrate_soc(self, p: np.ndarray) -> None:
        ch = np.maximum(p, 0.0)
        dis = np.maximum(-p, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            de = (self._st_eta_ch * ch - np.where(dis > 0, dis / self._st_eta_dis, 0.0)) * self.dt_h
        soc = self._soc + de
        self._soc = np.clip(soc, self._st_min_e, self._st_max_e)

    # ------------------------------------------------------------------ step
    def _simulate(self, time: int) -> None:
        topo = self._topology()
        energised = topo["energised"]
        sgen_p, sgen_avail, curtailed = self._sgen_power()
        st_set = np.where(self._st_in_service, self._st_set, 0.0)
        gf_islands = topo["gf_islands"]
        slack_units = list(gf_islands.values())
        slack_st = [pos for kind, pos in slack_units if kind == "storage"]
        # a storage that is its island's slack ignores its setpoint (no clipping warning for it)
        st_p = self._storage_limits(np.where(np.isin(np.arange(len(st_set)), slack_st), 0.0, st_set), time)
        # units on unsupplied buses cannot exchange power
        sgen_on = self._sgen_in_service & energised[self._sgen_bus]
        st_on = self._st_in_service & energised[self._st_bus]
        load_on = self._load_in_service & energised[self._load_bus]
        sgen_p = np.where(sgen_on, sgen_p, 0.0)
        curtailed = np.where(np.isnan(self._sgen_avail), curtailed, sgen_avail - sgen_p)
        st_p = np.where(st_on, st_p, 0.0)
        load_p, load_q, load_shed = self._load_shed()
        unsupplied_mw = float(np.sum(load_p[self._load_in_service & ~energised[self._load_bus]]))

        result = None
        self.last_path = "fast"
        if self._fast is not None and not topo["has_bus_switch"]:
            result = self._run_fast(topo, load_p, load_q, sgen_p, st_p)
        if result is None:
            self.last_path = "runpp"
            result = self._run_pandapower(topo, load_p, load_q, sgen_p, st_p, slack_units)
        converged = result is not None
        if not converged:
            self.last_path = "diverged"

        if result is not None:
            # grid-forming units report the power that balanced their island
            for kind, pos in slack_units:
                if kind == "sgen":
                    sgen_p[pos] = result["slack_p"][(kind, pos)]
                    limit = sgen_avail[pos]
                    if not 0.0 <= sgen_p[pos] <= limit + 1e-9:
                        logger.warning(
                            "t=%s: grid-forming sgen %s balances its island with %.4f MW, outside [0, %.4f] MW",
                            time,
                            self._pp_net.sgen.index[pos],
                            sgen_p[pos],
                            limit,
                        )
                    curtailed[pos] = 0.0
                else:
                    st_p[pos] = result["slack_p"][(kind, pos)]
            gf_st = [pos for kind, pos in slack_units if kind == "storage"]
            feasible = st_p.copy()
            if gf_st:
                limited = self._storage_limits(st_p, time, what="balancing power")
                feasible[gf_st] = limited[gf_st]
            self._integrate_soc(feasible)
            clipped = st_set - st_p
            for pos in gf_st:
                clipped[pos] = st_p[pos] - feasible[pos]
        else:
            logger.warning("t=%s: power flow did not converge; electrical outputs are NaN", time)
            gf_st = [pos for kind, pos in slack_units if kind == "storage"]
            gf_sg = [pos for kind, pos in slack_units if kind == "sgen"]
            st_p[gf_st] = np.nan
            sgen_p[gf_sg] = np.nan
            self._integrate_soc(np.nan_to_num(st_p, nan=0.0))
            clipped = st_set - st_p
        self._fill_outputs(
            result,
            topo,
            load_on,
            load_p,
            load_q,
            load_shed,
            sgen_p,
            sgen_avail,
            curtailed,
            st_p,
            clipped,
            unsupplied_mw,
        )

    def _apply_fast_topology(self, topo: dict[str, Any]) -> None:
        fast = self._fast
        assert fast is not None
        energised = topo["energised"]
        fast.apply_topology(
            topo["line_state"],
            topo["trafo_state"],
            energised,
            self._load_in_service & energised[self._load_bus],
            self._sgen_in_service & energised[self._sgen_bus],
            self._st_in_service & energised[self._st_bus],
        )

    def _run_fast(
        self, topo: dict[str, Any], load_p: np.ndarray, load_q: np.ndarray, sgen_p: np.ndarray, st_p: np.ndarray
    ) -> dict | None:
        fast = self._fast
        assert fast is not None
        m = fast.model
        gf_islands = topo["gf_islands"]
        if gf_islands:
            # the main model solves the ext_grid island(s); each grid-forming island has its own model
            topo = self._main_topology(topo)
        self._apply_fast_topology(topo)
        fast.set_values("load_p", load_p, m.change_p_load)
        fast.set_values("load_q", load_q, m.change_q_load)
        fast.set_values("sgen_p", sgen_p, m.change_p_sgen)
        fast.set_values("sgen_q", self._sgen_q, m.change_q_sgen)
        fast.set_values("st_p", st_p, m.change_p_storage)
        fast.set_values("st_q", self._st_q, m.change_q_storage)
        V = fast.solve()
        if V is None:
            return None
        energised = topo["energised"]
        vm = np.where(energised, np.abs(V), np.nan)
        va = np.where(energised, np.degrees(np.angle(V)) + fast.ext_va_deg, np.nan)
        p1, q1, _, a1 = m.get_line_res1()
        p2, q2, _, a2 = m.get_line_res2()
        gen_p, gen_q, _ = m.get_gen_res()
        n_gen = fast.n_gen
        eg_p = np.zeros(len(self._eg_bus))
        eg_q = np.zeros(len(self._eg_bus))
        eg_on = np.flatnonzero(self._eg_in_service)
        eg_p[eg_on] = gen_p[n_gen : n_gen + len(eg_on)]
        eg_q[eg_on] = gen_q[n_gen : n_gen + len(eg_on)]
        res = {
            "vm": vm,
            "va": va,
            "line": (np.array(p1), np.array(q1), np.array(a1), np.array(p2), np.array(q2), np.array(a2)),
            "eg_p": eg_p,
            "eg_q": eg_q,
            "slack_p": {},
        }
        if len(self._trafo_hv):
            tp1, tq1, _, ta1 = m.get_trafo_res1()
            tp2, tq2, _, ta2 = m.get_trafo_res2()
            res["trafo"] = (np.array(tp1), np.array(tq1), np.array(ta1), np.array(tp2), np.array(tq2), np.array(ta2))
        shunt_p = np.zeros(0)
        shunt_q = np.zeros(0)
        if len(self._shunt_bus):
            shunt_p, shunt_q, _ = (np.asarray(x) for x in m.get_shunts_res())
        res["shunt"] = (shunt_p, shunt_q)
        if gf_islands and not self._solve_islands(topo, gf_islands, res, load_p, load_q, sgen_p, st_p):
            return None
        return res

    def _main_topology(self, topo: dict[str, Any]) -> dict[str, Any]:
        main = topo.get("main")
        if main is None:
            main = dict(topo)
            main["energised"] = topo["supplied"]
            main["line_state"] = self._line_state(topo["line_side"], topo["supplied"])
            main["island_line_state"] = topo["line_state"]
            main["trafo_state"] = self._trafo_state(topo["trafo_side"], topo["supplied"])
            main["island_trafo_state"] = topo["trafo_state"]
            main["island_models"] = {}
            topo["main"] = main
        return main

    def _solve_islands(
        self,
        main: dict[str, Any],
        gf_islands: dict[int, tuple[str, int]],
        res: dict,
        load_p: np.ndarray,
        load_q: np.ndarray,
        sgen_p: np.ndarray,
        st_p: np.ndarray,
    ) -> bool:
        """Solve each grid-forming island on its own fast model; merge into ``res``. False if any fails."""
        cache = main["island_models"]
        for label, unit in gf_islands.items():
            if label not in cache:
                cache[label] = self._build_island_model(main, label, unit)
            island = cache[label]
            if island is None:
                return False
            fast = island.model
            m = fast.model
            fast.set_values("load_p", load_p[island.load_pos], m.change_p_load)
            fast.set_values("load_q", load_q[island.load_pos], m.change_q_load)
            fast.set_values("sgen_p", sgen_p[island.sgen_pos], m.change_p_sgen)
            fast.set_values("sgen_q", self._sgen_q[island.sgen_pos], m.change_q_sgen)
            fast.set_values("st_p", st_p[island.st_pos], m.change_p_storage)
            fast.set_values("st_q", self._st_q[island.st_pos], m.change_q_storage)
            V = fast.solve()
            if V is None:
                return False
            res["vm"][island.bus_pos] = np.abs(V)
            res["va"][island.bus_pos] = np.degrees(np.angle(V)) + fast.ext_va_deg
            line_res = (m.get_line_res1(), m.get_line_res2())
            for k, (side, col) in enumerate(((0, 0), (0, 1), (0, 3), (1, 0), (1, 1), (1, 3))):
                res["line"][k][island.line_pos] = np.asarray(line_res[side][col])
            if len(island.trafo_pos):
                trafo_res = (m.get_trafo_res1(), m.get_trafo_res2())
                for k, (side, col) in enumerate(((0, 0), (0, 1), (0, 3), (1, 0), (1, 1), (1, 3))):
                    res["trafo"][k][island.trafo_pos] = np.asarray(trafo_res[side][col])
            p_slack = float(m.get_gen_res()[0][fast.n_gen])
            res["slack_p"][unit] = p_slack if unit[0] == "sgen" else -p_slack
        return True

    def _build_island_model(self, main: dict[str, Any], label: int, unit: tuple[str, int]) -> _IslandModel | None:
        net = self.net
        assert net is not None
        kind, pos = unit
        buses = net.bus.index[main["label"] == label]
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
        line_state = np.where(main["island_line_state"][line_pos] == 3, 3, 0)
        sub.line["in_service"] = line_state == 3
        trafo_pos = net.trafo.index.get_indexer(sub.trafo.index)
        trafo_state = np.where(main["island_trafo_state"][trafo_pos] == 3, 3, 0)
        sub.trafo["in_service"] = trafo_state == 3
        reason = self._fast_path_blocker(sub)
        island = None
        if reason is None:
            try:
                fast = _FastModel(sub, {int(b): i for i, b in enumerate(sub.bus.index)}, self._trafo_model)
                island = _IslandModel(
                    model=fast,
                    bus_pos=net.bus.index.get_indexer(sub.bus.index),
                    line_pos=line_pos,
                    trafo_pos=trafo_pos,
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
                reason = self._compare_with_runpp(sub, fast)
            except Exception as exc:  # noqa: BLE001 - conversion failures only disable the fast path
                reason = f"lightsim2grid conversion failed: {exc}"
        if reason is not None:
            logger.info("island of %s %s runs on pandapower.runpp: %s", kind, unit_idx, reason)
            return None
        return island

    def _run_pandapower(
        self,
        topo: dict[str, Any],
        load_p: np.ndarray,
        load_q: np.ndarray,
        sgen_p: np.ndarray,
        st_p: np.ndarray,
        slack_units: list[tuple[str, int]],
    ) -> dict | None:
        net = self._pp_net
        ls = self._load_scaling
        net.load["p_mw"] = np.divide(load_p, ls, out=np.zeros_like(load_p), where=ls != 0)
        net.load["q_mvar"] = np.divide(load_q, ls, out=np.zeros_like(load_q), where=ls != 0)
        scaling = self._sgen_scaling
        net.sgen["p_mw"] = np.divide(sgen_p, scaling, out=np.zeros_like(sgen_p), where=scaling != 0)
        st_scaling = self._st_scaling
        net.storage["p_mw"] = np.divide(st_p, st_scaling, out=np.zeros_like(st_p), where=st_scaling != 0)
        net.switch["closed"] = self._sw_closed
        n_eg = len(net.ext_grid)
        temp_eg = []
        for kind, pos in slack_units:
            table = net[kind]
            idx = table.index[pos]
            table.at[idx, "in_service"] = False
            bus = int(table.at[idx, "bus"])
            temp_eg.append((kind, pos, pp.create_ext_grid(net, bus, vm_pu=1.0, name=f"gf-{kind}-{idx}")))
        try:
            pp.runpp(net, numba=False, max_iteration=NR_MAXIT)
            ok = bool(net.converged)
        except Exception as exc:  # noqa: BLE001 - LoadflowNotConverged or any solver failure
            logger.debug("runpp failed: %s", exc)
            ok = False
        try:
            if not ok:
                return None
            energised = topo["energised"]
            vm = net.res_bus["vm_pu"].to_numpy(dtype=float)
            vm = np.where(energised, vm, np.nan)
            va = np.where(energised, net.res_bus["va_degree"].to_numpy(dtype=float), np.nan)
            rl = net.res_line
            res = {
                "vm": vm,
                "va": va,
                "line": tuple(
                    rl[c].to_numpy(dtype=float)
                    for c in ("p_from_mw", "q_from_mvar", "i_from_ka", "p_to_mw", "q_to_mvar", "i_to_ka")
                ),
                "eg_p": net.res_ext_grid["p_mw"].to_numpy(dtype=float)[:n_eg],
                "eg_q": net.res_ext_grid["q_mvar"].to_numpy(dtype=float)[:n_eg],
                "pp_bus_pq": (net.res_bus["p_mw"].to_numpy(dtype=float), net.res_bus["q_mvar"].to_numpy(dtype=float)),
                "slack_p": {},
            }
            if len(self._trafo_hv):
                rt = net.res_trafo
                res["trafo"] = tuple(
                    rt[c].to_numpy(dtype=float)
                    for c in ("p_hv_mw", "q_hv_mvar", "i_hv_ka", "p_lv_mw", "q_lv_mvar", "i_lv_ka")
                )
                res["trafo_loading"] = rt["loading_percent"].to_numpy(dtype=float)
            for kind, pos, eg_idx in temp_eg:
                p_eg = float(net.res_ext_grid.at[eg_idx, "p_mw"])
                res["slack_p"][(kind, pos)] = p_eg if kind == "sgen" else -p_eg
            return res
        finally:
            for kind, pos, eg_idx in temp_eg:
                net[kind].at[net[kind].index[pos], "in_service"] = True
                net.ext_grid.drop(eg_idx, inplace=True)
            if temp_eg:
                for table in ("res_ext_grid",):
                    net[table] = net[table].iloc[:n_eg]

    # ------------------------------------------------------------------ outputs
    def _empty_outputs(self) -> None:
        net = self.net
        assert net is not None
        nan = float("nan")
        self._out = {
            model: {attr: [nan] * len(net[spec.element]) for attr in spec.outputs}
            for model, spec in MODEL_SPECS.items()
        }
        self._out["Switch"]["closed"] = [bool(c) for c in self._sw_closed]
        self._out["Grid"] = {attr: [nan] for attr in GRID_OUTPUTS}

    def _fill_outputs(
        self,
        res: dict | None,
        topo: dict[str, Any],
        load_on: np.ndarray,
        load_p: np.ndarray,
        load_q: np.ndarray,
        load_shed: np.ndarray,
        sgen_p: np.ndarray,
        sgen_avail: np.ndarray,
        curtailed: np.ndarray,
        st_p: np.ndarray,
        clipped: np.ndarray,
        unsupplied_mw: float,
    ) -> None:
        out = self._out
        nb = self._n_bus
        load_p_out = np.where(load_on, load_p, 0.0)
        load_q_out = np.where(load_on, load_q, 0.0)
        out["Load"] = {"p_mw": load_p_out.tolist(), "q_mvar": load_q_out.tolist(), "shed_mw": load_shed.tolist()}
        out["StaticGen"] = {
            "p_mw": sgen_p.tolist(),
            "p_avail_mw": sgen_avail.tolist(),
            "curtailed_mw": curtailed.tolist(),
        }
        out["Storage"] = {"p_mw": st_p.tolist(), "soc_mwh": self._soc.tolist(), "clipped_mw": clipped.tolist()}
        out["Switch"] = {"closed": [bool(c) for c in self._sw_closed]}
        nan = float("nan")
        grid = out["Grid"] = {attr: [nan] for attr in GRID_OUTPUTS}
        grid["unsupplied_mw"] = [unsupplied_mw]
        grid["shed_mw"] = [float(np.sum(load_shed))]
        n_line = len(self._line_from)
        if res is None:
            grid["pf_converged"] = [0]
            out["Bus"] = {a: [nan] * nb for a in MODEL_SPECS["Bus"].outputs}
            out["Line"] = {a: [nan] * n_line for a in MODEL_SPECS["Line"].outputs}
            out["ExtGrid"] = {a: [nan] * len(self._eg_bus) for a in MODEL_SPECS["ExtGrid"].outputs}
            return
        energised = topo["energised"]
        vm, va = res["vm"], res["va"]
        if "pp_bus_pq" in res:
            bus_p, bus_q = res["pp_bus_pq"]
        else:
            sg = np.where(np.isnan(sgen_p), 0.0, sgen_p)
            sg_q = np.where(self._sgen_in_service & energised[self._sgen_bus], self._sgen_q, 0.0)
            st = np.where(np.isnan(st_p), 0.0, st_p)
            st_q = np.where(self._st_in_service & energised[self._st_bus], self._st_q, 0.0)
            bus_p = (
                np.bincount(self._load_bus, load_p_out, nb)
                - np.bincount(self._sgen_bus, sg, nb)
                + np.bincount(self._st_bus, st, nb)
                - np.bincount(self._eg_bus, res["eg_p"], nb)
            )
            bus_q = (
                np.bincount(self._load_bus, load_q_out, nb)
                - np.bincount(self._sgen_bus, sg_q, nb)
                + np.bincount(self._st_bus, st_q, nb)
                - np.bincount(self._eg_bus, res["eg_q"], nb)
            )
            sh_p, sh_q = res["shunt"]
            if len(sh_p):
                bus_p = bus_p + np.bincount(self._shunt_bus, sh_p, nb)
                bus_q = bus_q + np.bincount(self._shunt_bus, sh_q, nb)
        bus_p = np.where(energised, bus_p, nan)
        bus_q = np.where(energised, bus_q, nan)
        out["Bus"] = {"vm_pu": vm.tolist(), "va_degree": va.tolist(), "p_mw": bus_p.tolist(), "q_mvar": bus_q.tolist()}
        p1, q1, a1, p2, _q2, a2 = res["line"]
        i_ka = np.maximum(np.nan_to_num(a1), np.nan_to_num(a2))
        with np.errstate(divide="ignore", invalid="ignore"):
            loading = i_ka / self._line_imax * 100.0
        pl = p1 + p2
        out["Line"] = {
            "loading_percent": loading.tolist(),
            "i_ka": i_ka.tolist(),
            "p_from_mw": p1.tolist(),
            "q_from_mvar": q1.tolist(),
            "p_to_mw": p2.tolist(),
            "pl_mw": pl.tolist(),
        }
        out["ExtGrid"] = {"p_mw": res["eg_p"].tolist(), "q_mvar": res["eg_q"].tolist()}

        losses = float(np.nansum(pl))
        loadings = [loading]
        if "trafo" in res:
            tp1, _, ta1, tp2, _, ta2 = res["trafo"]
            losses += float(np.nansum(tp1 + tp2))
            if "trafo_loading" in res:
                loadings.append(res["trafo_loading"])
            else:
                loadings.append(self._trafo_loading(ta1, ta2))
        all_loading = np.concatenate(loadings)
        vm_e = vm[energised]
        grid["pf_converged"] = [1]
        grid["losses_mw"] = [losses]
        grid["min_vm_pu"] = [float(np.min(vm_e))] if len(vm_e) else [nan]
        grid["max_vm_pu"] = [float(np.max(vm_e))] if len(vm_e) else [nan]
        grid["max_loading_percent"] = [float(np.nanmax(all_loading))] if len(all_loading) else [0.0]
        grid["n_voltage_violations"] = [int(np.sum((vm_e < self._vmin[energised]) | (vm_e > self._vmax[energised])))]
        grid["n_overloads"] = [int(np.sum(all_loading > 100.0))]

    def _trafo_loading(self, i_hv: np.ndarray, i_lv: np.ndarray) -> np.ndarray:
        net = self.net
        assert net is not None
        t = net.trafo
        sn = _col(t, "sn_mva", np.inf) * _col(t, "parallel", 1.0) * _col(t, "df", 1.0)
        s_hv = np.nan_to_num(i_hv) * _col(t, "vn_hv_kv", 0.0) * math.sqrt(3)
        s_lv = np.nan_to_num(i_lv) * _col(t, "vn_lv_kv", 0.0) * math.sqrt(3)
        return np.maximum(s_hv, s_lv) / sn * 100.0


def main() -> None:
    """Run GridSim as a separate process: ``python -m sims.grid HOST:PORT``."""
    mosaik_api_v3.start_simulation(GridSim(), "mmg-cosim pandapower grid simulator")


if __name__ == "__main__":
    main()
