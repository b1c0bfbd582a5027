"""The fallback power-flow path: pandapower ``runpp`` (numba off) on a working copy of the net.

Each grid-forming unit that balances an island is taken out of service for the step and a temporary
ext_grid at its bus is its island's slack. Used for nets the fast path cannot express (bus-bus switches,
gens, several ext_grids, voltage-dependent loads, failed validation) and as a retry whenever the fast
path does not converge.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pandapower as pp

from sims.grid.lsmodel import NR_MAXIT
from sims.grid.netindex import NetIndex, float_column
from sims.grid.pf_result import BranchFlows, BranchLoading, Injections, PfPath, PowerFlowResult
from sims.grid.topology import Topology, Unit

logger = logging.getLogger(__package__)  # one logger for the grid simulator: "sims.grid"

_LINE_COLUMNS = ("p_from_mw", "q_from_mvar", "i_from_ka", "p_to_mw", "q_to_mvar", "i_to_ka")
_TRAFO_COLUMNS = ("p_hv_mw", "q_hv_mvar", "i_hv_ka", "p_lv_mw", "q_lv_mvar", "i_lv_ka")


def _unscaled(p: np.ndarray, scaling: np.ndarray) -> np.ndarray:
    """What to write into a ``p_mw`` column so that times ``scaling`` it is ``p`` (0 where scaling is 0)."""
    return np.divide(p, scaling, out=np.zeros_like(p), where=scaling != 0)


class RunppPath:
    """pandapower power flows of one net on a working copy of it."""

    def __init__(self, net: pp.pandapowerNet, index: NetIndex) -> None:
        self.net = copy.deepcopy(net)
        self.index = index
        self.load_scaling = float_column(net.load, "scaling", 1.0)
        self.sgen_scaling = float_column(net.sgen, "scaling", 1.0)
        self.st_scaling = float_column(net.storage, "scaling", 1.0)

    def run(self, topo: Topology, inj: Injections) -> PowerFlowResult | None:
        """The power flow of ``topo`` with ``inj`` (q of storages: the net's), None if it failed."""
        net = self.net
        net.load["p_mw"] = _unscaled(inj.load_p_mw, self.load_scaling)
        net.load["q_mvar"] = _unscaled(inj.load_q_mvar, self.load_scaling)
        net.sgen["p_mw"] = _unscaled(inj.sgen_p_mw, self.sgen_scaling)
        net.sgen["q_mvar"] = _unscaled(inj.sgen_q_mvar, self.sgen_scaling)
        net.storage["p_mw"] = _unscaled(inj.st_p_mw, self.st_scaling)
        net.switch["closed"] = topo.closed
        n_eg = len(net.ext_grid)
        temp_eg = []
        for unit in topo.slack_units:
            table = net[unit.kind]
            idx = table.index[unit.pos]
            table.at[idx, "in_service"] = False
            bus = int(table.at[idx, "bus"])
            temp_eg.append((unit, pp.create_ext_grid(net, bus, vm_pu=1.0, name=f"gf-{unit.kind}-{idx}")))
        try:
            pp.runpp(net, numba=False, max_iteration=NR_MAXIT)
            ok = bool(net.converged)
        except Exception as exc:  # noqa: BLE001 - LoadflowNotConverged or any solver failure
            logger.debug("runpp failed: %s", exc)
            ok = False
        try:
            if not ok:
                return None
            return self._result(topo, n_eg, temp_eg)
        finally:
            for unit, eg_idx in temp_eg:
                net[unit.kind].at[net[unit.kind].index[unit.pos], "in_service"] = True
                net.ext_grid.drop(eg_idx, inplace=True)
            if temp_eg:
                net["res_ext_grid"] = net["res_ext_grid"].iloc[:n_eg]

    def _result(self, topo: Topology, n_eg: int, temp_eg: list[tuple[Unit, int]]) -> PowerFlowResult:
        net = self.net
        energised = topo.energised
        res_bus = net.res_bus
        trafo = None
        trafo_loading = None
        if len(self.index.trafo_hv):
            rt = net.res_trafo
            trafo = BranchFlows(*(rt[c].to_numpy(dtype=float) for c in _TRAFO_COLUMNS))
            trafo_loading = rt["loading_percent"].to_numpy(dtype=float)
        slack = {}
        for unit, eg_idx in temp_eg:
            p_eg = float(net.res_ext_grid.at[eg_idx, "p_mw"])
            slack[unit] = p_eg if unit.kind == "sgen" else -p_eg
        line = BranchFlows(*(net.res_line[c].to_numpy(dtype=float) for c in _LINE_COLUMNS))
        return PowerFlowResult(
            path=PfPath.RUNPP,
            vm_pu=np.where(energised, res_bus["vm_pu"].to_numpy(dtype=float), np.nan),
            va_degree=np.where(energised, res_bus["va_degree"].to_numpy(dtype=float), np.nan),
            bus_pq=(
                np.where(energised, res_bus["p_mw"].to_numpy(dtype=float), np.nan),
                np.where(energised, res_bus["q_mvar"].to_numpy(dtype=float), np.nan),
            ),
            line=line,
            trafo=trafo,
            loading=BranchLoading.of(self.index, line, trafo, trafo_loading),
            ext_grid_p_mw=net.res_ext_grid["p_mw"].to_numpy(dtype=float)[:n_eg],
            ext_grid_q_mvar=net.res_ext_grid["q_mvar"].to_numpy(dtype=float)[:n_eg],
            slack_p_mw=slack,
        )
