"""What goes into an AC power flow (:class:`Injections`) and what comes out (:class:`PowerFlowResult`).

Both power-flow paths (lightsim2grid, pandapower ``runpp``) return a :class:`PowerFlowResult` whose
:class:`BranchLoading` (loading, losses) is derived the same way whichever path ran.

These are built every step: plain slotted dataclasses, not frozen ones (which take ~3 us each to construct,
a few percent of a fast-path step); nothing changes them after construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandapower as pp

from sims.grid.netindex import NetIndex, float_column
from sims.grid.topology import Topology, Unit

_FLOAT_MAX = float(np.finfo(np.float64).max)


def nan_to_num(x: np.ndarray) -> np.ndarray:
    """What ``numpy.nan_to_num`` gives for a float array (NaN -> 0, +-inf -> +-largest float), without its
    Python overhead (about 8 us a call here, three times this; the grid calls it five times a step)."""
    return np.minimum(np.maximum(np.where(np.isnan(x), 0.0, x), -_FLOAT_MAX), _FLOAT_MAX)


class PfPath(StrEnum):
    """Which power flow produced a step's result."""

    FAST = "fast"
    """lightsim2grid models updated in place."""
    RUNPP = "runpp"
    """pandapower ``runpp`` on a working copy of the net."""
    DIVERGED = "diverged"
    """Neither converged: electrical results are NaN."""


@dataclass(eq=False, slots=True)
class Injections:
    """Unit powers into the power flow: actual MW / Mvar, pandapower signs, one entry per table row."""

    load_p_mw: np.ndarray
    load_q_mvar: np.ndarray
    sgen_p_mw: np.ndarray
    sgen_q_mvar: np.ndarray
    st_p_mw: np.ndarray
    st_q_mvar: np.ndarray

    @classmethod
    def from_net(cls, net: pp.pandapowerNet) -> Injections:
        """The net's own values: its ``p_mw`` / ``q_mvar`` columns times their ``scaling``."""
        load, sgen, st = net.load, net.sgen, net.storage
        load_scaling = float_column(load, "scaling", 1.0)
        sgen_scaling = float_column(sgen, "scaling", 1.0)
        st_scaling = float_column(st, "scaling", 1.0)
        return cls(
            load_p_mw=float_column(load, "p_mw", 0.0) * load_scaling,
            load_q_mvar=float_column(load, "q_mvar", 0.0) * load_scaling,
            sgen_p_mw=float_column(sgen, "p_mw", 0.0) * sgen_scaling,
            sgen_q_mvar=float_column(sgen, "q_mvar", 0.0) * sgen_scaling,
            st_p_mw=float_column(st, "p_mw", 0.0) * st_scaling,
            st_q_mvar=float_column(st, "q_mvar", 0.0) * st_scaling,
        )

    def subset(self, load_pos: np.ndarray, sgen_pos: np.ndarray, st_pos: np.ndarray) -> Injections:
        """The injections of the given rows (for the model of an island)."""
        return Injections(
            load_p_mw=self.load_p_mw[load_pos],
            load_q_mvar=self.load_q_mvar[load_pos],
            sgen_p_mw=self.sgen_p_mw[sgen_pos],
            sgen_q_mvar=self.sgen_q_mvar[sgen_pos],
            st_p_mw=self.st_p_mw[st_pos],
            st_q_mvar=self.st_q_mvar[st_pos],
        )


@dataclass(eq=False, slots=True)
class BranchFlows:
    """Flows at both ends of every branch row (line: from / to end, trafo: hv / lv side)."""

    p1_mw: np.ndarray
    q1_mvar: np.ndarray
    i1_ka: np.ndarray
    p2_mw: np.ndarray
    q2_mvar: np.ndarray
    i2_ka: np.ndarray

    @classmethod
    def nan(cls, n: int) -> BranchFlows:
        return cls(*(np.full(n, np.nan) for _ in range(6)))


@dataclass(eq=False, slots=True)
class BranchLoading:
    """Loading and losses of the branches, derived the same way on both power-flow paths."""

    line_i_ka: np.ndarray
    """The larger of the two end currents (NaN counts as 0)."""
    line_loading_percent: np.ndarray
    """``line_i_ka`` over ``max_i_ka * df * parallel``."""
    line_pl_mw: np.ndarray
    trafo_loading_percent: np.ndarray | None
    """None when the net has no trafo."""
    losses_mw: float
    """Active losses of lines and trafos."""

    @classmethod
    def of(
        cls, index: NetIndex, line: BranchFlows, trafo: BranchFlows | None, trafo_loading: np.ndarray | None = None
    ) -> BranchLoading:
        """From the flows; trafo loading from the side currents unless the solver gave it."""
        i_ka = np.maximum(nan_to_num(line.i1_ka), nan_to_num(line.i2_ka))
        with np.errstate(divide="ignore", invalid="ignore"):
            loading = i_ka / index.line_imax_ka * 100.0
        pl = line.p1_mw + line.p2_mw
        losses = float(np.nansum(pl))
        if trafo is not None:
            losses += float(np.nansum(trafo.p1_mw + trafo.p2_mw))
            if trafo_loading is None:
                trafo_loading = trafo_loading_from_currents(index, trafo.i1_ka, trafo.i2_ka)
        return cls(i_ka, loading, pl, trafo_loading, losses)

    @classmethod
    def nan(cls, n_line: int, n_trafo: int) -> BranchLoading:
        trafo = np.full(n_trafo, np.nan) if n_trafo else None
        return cls(np.full(n_line, np.nan), np.full(n_line, np.nan), np.full(n_line, np.nan), trafo, math.nan)


@dataclass(eq=False, slots=True)
class PowerFlowResult:
    """One AC power flow. Bus arrays are NaN on buses that are not energised; all NaN if it diverged."""

    path: PfPath
    vm_pu: np.ndarray
    va_degree: np.ndarray
    bus_pq: tuple[np.ndarray, np.ndarray] | Callable[[], tuple[np.ndarray, np.ndarray]]
    """Net p and q drawn at each bus (pandapower's ``res_bus``: load sign), or how to compute them when first
    asked for (:attr:`bus_p_mw`: a 5,000-bus balance costs a fraction of a millisecond most steps never ask for)."""
    line: BranchFlows
    trafo: BranchFlows | None
    """None when the net has no trafo."""
    loading: BranchLoading
    ext_grid_p_mw: np.ndarray
    ext_grid_q_mvar: np.ndarray
    slack_p_mw: dict[Unit, float]
    """Power of each grid-forming unit that balanced its island (sgen: generated, storage: charged)."""

    @property
    def converged(self) -> bool:
        return self.path is not PfPath.DIVERGED

    def _bus_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if callable(self.bus_pq):
            self.bus_pq = self.bus_pq()
        return self.bus_pq

    @property
    def bus_p_mw(self) -> np.ndarray:
        return self._bus_arrays()[0]

    @property
    def bus_q_mvar(self) -> np.ndarray:
        return self._bus_arrays()[1]

    @property
    def losses_mw(self) -> float:
        return self.loading.losses_mw

    @classmethod
    def diverged(cls, index: NetIndex) -> PowerFlowResult:
        n_bus, n_line, n_trafo, n_eg = index.n_bus, len(index.line_from), len(index.trafo_hv), len(index.eg_bus)
        return cls(
            path=PfPath.DIVERGED,
            vm_pu=np.full(n_bus, np.nan),
            va_degree=np.full(n_bus, np.nan),
            bus_pq=(np.full(n_bus, np.nan), np.full(n_bus, np.nan)),
            line=BranchFlows.nan(n_line),
            trafo=BranchFlows.nan(n_trafo) if n_trafo else None,
            loading=BranchLoading.nan(n_line, n_trafo),
            ext_grid_p_mw=np.full(n_eg, np.nan),
            ext_grid_q_mvar=np.full(n_eg, np.nan),
            slack_p_mw={},
        )


def trafo_loading_from_currents(index: NetIndex, i_hv: np.ndarray, i_lv: np.ndarray) -> np.ndarray:
    """Trafo loading in percent from the side currents: the larger apparent power over the rating."""
    s_hv = nan_to_num(i_hv) * index.trafo_vn_hv_kv * math.sqrt(3)
    s_lv = nan_to_num(i_lv) * index.trafo_vn_lv_kv * math.sqrt(3)
    return np.maximum(s_hv, s_lv) / index.trafo_sn_mva * 100.0


def bus_balance(
    index: NetIndex,
    topo: Topology,
    inj: Injections,
    solved_eg: tuple[np.ndarray, np.ndarray],
    slack_p_mw: dict[Unit, float],
    shunt: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Net p and q drawn at each bus from the units, ext_grids and shunts (where no solver reports it).

    Grid-forming units count with the power that balanced their island; NaN on buses not energised.
    """
    nb = index.n_bus
    energised = topo.energised
    sgen_p = inj.sgen_p_mw.copy()
    st_p = inj.st_p_mw.copy()
    for unit, p in slack_p_mw.items():
        (sgen_p if unit.kind == "sgen" else st_p)[unit.pos] = p
    load_p = np.where(topo.load_on, inj.load_p_mw, 0.0)
    load_q = np.where(topo.load_on, inj.load_q_mvar, 0.0)
    sg = np.where(np.isnan(sgen_p), 0.0, sgen_p)
    sg_q = np.where(topo.sgen_on, inj.sgen_q_mvar, 0.0)
    st = np.where(np.isnan(st_p), 0.0, st_p)
    st_q = np.where(topo.st_on, inj.st_q_mvar, 0.0)
    eg_p, eg_q = solved_eg
    bus_p = (
        np.bincount(index.load_bus, load_p, nb)
        - np.bincount(index.sgen_bus, sg, nb)
        + np.bincount(index.st_bus, st, nb)
        - np.bincount(index.eg_bus, eg_p, nb)
    )
    bus_q = (
        np.bincount(index.load_bus, load_q, nb)
        - np.bincount(index.sgen_bus, sg_q, nb)
        + np.bincount(index.st_bus, st_q, nb)
        - np.bincount(index.eg_bus, eg_q, nb)
    )
    sh_p, sh_q = shunt
    if len(sh_p):
        bus_p = bus_p + np.bincount(index.shunt_bus, sh_p, nb)
        bus_q = bus_q + np.bincount(index.shunt_bus, sh_q, nb)
    return np.where(energised, bus_p, math.nan), np.where(energised, bus_q, math.nan)
