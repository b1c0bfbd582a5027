"""Unit physics: what loads, static generators and storages apply in a step, and the storages' SoC.

* loads: demand less what is shed (``shed_mw`` input clipped to ``[0, p_mw]``, q scaled with p); loads of
  one ``shed_group`` column value in ``net.load`` share the shed asked of any of them in proportion to
  their demand;
* static generators: ``min(setpoint, availability)`` (curtailment = availability - applied); a reactive
  setpoint (``q_mvar`` input, e.g. of an SVC: an sgen with no active power) is clipped to the sgen's
  ``[min_q_mvar, max_q_mvar]`` where given, and without one the sgen keeps the net's ``q_mvar``;
* storages: setpoints clipped to their power and energy limits over the step (``clipped_mw`` = setpoint -
  applied, a logged warning naming the unit); the SoC integrates ``e += (eta_ch*p_ch - p_dis/eta_dis) *
  dt_h``;
* units and loads on unsupplied buses exchange no power; a grid-forming unit that balanced its island
  reports that power (a storage integrates it, and what its SoC or power limit cannot cover is
  ``clipped_mw``, with a warning).

Inputs are actual MW: the net's own values enter times their ``scaling``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandapower as pp

from sims.grid.netindex import NetIndex, bool_column, float_column
from sims.grid.pf_result import Injections
from sims.grid.topology import Topology, Unit

logger = logging.getLogger(__package__)  # one logger for the grid simulator: "sims.grid"

BALANCE_TOL_MW = 1e-9
"""A grid-forming sgen's balancing power may exceed its availability by this much without a warning."""
CLIP_TOL_MW = 1e-9
"""A storage power changed by more than this by its limits is reported with a warning."""


@dataclass(frozen=True, eq=False)
class UnitParams:
    """The static unit columns of a net, one entry per table row."""

    dt_h: float
    """Hours per step."""
    load_in_service: np.ndarray
    load_group: np.ndarray
    """Shed group of each load (position in the sorted group names), -1 for none."""
    n_shed_groups: int
    sgen_in_service: np.ndarray
    sgen_net_p: np.ndarray
    """The sgens' own ``p_mw`` times scaling: the setpoint of a controllable sgen without input."""
    sgen_q: np.ndarray
    sgen_min_q: np.ndarray
    sgen_max_q: np.ndarray
    sgen_controllable: np.ndarray
    sgen_max_p: np.ndarray
    sgen_index: np.ndarray
    st_in_service: np.ndarray
    st_q: np.ndarray
    st_eta_ch: np.ndarray
    st_eta_dis: np.ndarray
    st_min_e: np.ndarray
    st_max_e: np.ndarray
    st_max_p: np.ndarray
    st_min_p: np.ndarray
    st_names: list[str]
    st_index: np.ndarray

    @classmethod
    def from_net(cls, net: pp.pandapowerNet, dt_h: float, own: Injections) -> UnitParams:
        """``own``: the net's own powers (:meth:`Injections.from_net`)."""
        load, sgen, st = net.load, net.sgen, net.storage
        # loads with the same shed_group share the shed asked of any of them (in proportion to demand)
        groups = [g if isinstance(g, str) and g else None for g in load.get("shed_group", [None] * len(load))]
        names = sorted({g for g in groups if g is not None})
        return cls(
            dt_h=dt_h,
            load_in_service=load["in_service"].to_numpy(dtype=bool),
            load_group=np.array([-1 if g is None else names.index(g) for g in groups], dtype=np.int64),
            n_shed_groups=len(names),
            sgen_in_service=sgen["in_service"].to_numpy(dtype=bool),
            sgen_net_p=own.sgen_p_mw,
            sgen_q=own.sgen_q_mvar,
            sgen_min_q=float_column(sgen, "min_q_mvar", -np.inf),
            sgen_max_q=float_column(sgen, "max_q_mvar", np.inf),
            sgen_controllable=bool_column(sgen, "controllable", False),
            sgen_max_p=float_column(sgen, "max_p_mw", np.nan),
            sgen_index=sgen.index.to_numpy(),
            st_in_service=st["in_service"].to_numpy(dtype=bool),
            st_q=own.st_q_mvar,
            st_eta_ch=float_column(st, "eta_ch", 1.0),
            st_eta_dis=float_column(st, "eta_dis", 1.0),
            st_min_e=float_column(st, "min_e_mwh", 0.0),
            st_max_e=float_column(st, "max_e_mwh", np.inf),
            st_max_p=float_column(st, "max_p_mw", np.inf),
            st_min_p=float_column(st, "min_p_mw", -np.inf),
            st_names=[str(n) for n in st["name"]] if "name" in st.columns else [""] * len(st),
            st_index=st.index.to_numpy(),
        )


@dataclass(eq=False)
class UnitInputs:
    """The unit inputs last received (a value holds until a new one arrives); NaN: none yet.

    Every array is a view into ``buffer`` (at ``offsets[name]``), so that all the inputs of a step are written
    with one vectorised assignment (:mod:`sims.grid.intake`); nothing may rebind the arrays.
    """

    buffer: np.ndarray
    offsets: dict[str, int]
    load_p: np.ndarray
    load_q: np.ndarray
    load_shed: np.ndarray
    sgen_set: np.ndarray
    sgen_avail: np.ndarray
    sgen_q: np.ndarray
    st_set: np.ndarray

    @classmethod
    def initial(cls, own: Injections) -> UnitInputs:
        """Before any input: loads and storages at the net's own values, sgens without setpoint."""
        n_sgen = len(own.sgen_p_mw)
        parts = {
            "load_p": own.load_p_mw,
            "load_q": own.load_q_mvar,
            "load_shed": np.zeros(len(own.load_p_mw)),
            "sgen_set": np.full(n_sgen, np.nan),
            "sgen_avail": np.full(n_sgen, np.nan),
            "sgen_q": np.full(n_sgen, np.nan),
            "st_set": own.st_p_mw,
        }
        buffer = np.concatenate([np.asarray(a, dtype=float) for a in parts.values()])
        ends = np.cumsum([len(a) for a in parts.values()]).tolist()
        offsets = dict(zip(parts, [0, *ends[:-1]], strict=True))
        views = {name: buffer[offsets[name] : end] for name, end in zip(parts, ends, strict=True)}
        return cls(buffer=buffer, offsets=offsets, **views)


def initial_soc(net: pp.pandapowerNet) -> np.ndarray:
    """Storage energy in MWh from ``soc_percent`` of ``max_e_mwh`` (``min_e_mwh`` where not given)."""
    st = net.storage
    min_e = float_column(st, "min_e_mwh", 0.0)
    max_e = float_column(st, "max_e_mwh", np.inf)
    soc_pct = float_column(st, "soc_percent", np.nan)
    energy_cap = np.where(np.isfinite(max_e), max_e, 0.0)
    return np.where(np.isnan(soc_pct), min_e, soc_pct / 100.0 * energy_cap)


@dataclass(eq=False, slots=True)
class Dispatch:
    """The unit powers of one step before the power flow (actual MW, pandapower signs).

    Built every step, so not frozen (see :mod:`sims.grid.pf_result`); nothing changes it after construction.
    """

    load_on: np.ndarray
    """Loads in service on energised buses."""
    load_p: np.ndarray
    """Served load (demand less shed), also of loads that are not on."""
    load_q: np.ndarray
    load_shed: np.ndarray
    unsupplied_mw: float
    """Served load on buses no island supplies."""
    sgen_p: np.ndarray
    sgen_avail: np.ndarray
    curtailed: np.ndarray
    sgen_q: np.ndarray
    """Reactive power of every sgen (generator sign): its setpoint within its limits, else the net's."""
    st_set: np.ndarray
    """Storage setpoints (0 out of service)."""
    st_p: np.ndarray
    """Storage powers within their limits (a grid-forming slack storage: 0 until it balances)."""
    slack_units: list[Unit]
    """The grid-forming units that balance an island this step (their setpoints do not count)."""

    def injections(self, params: UnitParams) -> Injections:
        return Injections(self.load_p, self.load_q, self.sgen_p, self.sgen_q, self.st_p, params.st_q)


@dataclass(eq=False, slots=True)
class UnitOutputs:
    """What the units did in a step, after the power flow: the dispatch and what the step settled."""

    dispatch: Dispatch
    sgen_p: np.ndarray
    """Applied (a grid-forming sgen: its balancing power; NaN if the power flow diverged)."""
    curtailed: np.ndarray
    st_p: np.ndarray
    """Applied (a grid-forming storage: its balancing power; NaN if the power flow diverged)."""
    soc_mwh: np.ndarray
    """Energy at the end of the step."""
    clipped: np.ndarray
    """Setpoint (or balancing power) the limits did not allow."""


def sgen_power(params: UnitParams, inputs: UnitInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Applied p (generator sign), availability and curtailment of every static generator.

    Without a setpoint a non-controllable sgen gives its availability, a controllable one its net
    ``p_mw``; without an availability input it is the sgen's ``max_p_mw`` if given, else its net ``p_mw``.
    """
    avail_in = inputs.sgen_avail
    default_avail = np.where(np.isnan(params.sgen_max_p), params.sgen_net_p, params.sgen_max_p)
    avail = np.where(np.isnan(avail_in), default_avail, avail_in)
    no_set_default = np.where(params.sgen_controllable, params.sgen_net_p, avail)
    setpoint = np.where(np.isnan(inputs.sgen_set), no_set_default, inputs.sgen_set)
    p = np.minimum(setpoint, avail)
    curtailed = np.where(np.isnan(avail_in), 0.0, avail_in - p)
    p = np.where(params.sgen_in_service, p, 0.0)
    return p, avail, curtailed


def sgen_reactive(params: UnitParams, inputs: UnitInputs) -> np.ndarray:
    """Reactive power of every static generator: its setpoint clipped to ``[min_q_mvar, max_q_mvar]``,
    the net's ``q_mvar`` without one, 0 out of service."""
    q = np.where(np.isnan(inputs.sgen_q), params.sgen_q, np.clip(inputs.sgen_q, params.sgen_min_q, params.sgen_max_q))
    return np.where(params.sgen_in_service, q, 0.0)


def load_shed(params: UnitParams, inputs: UnitInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Served p and q of every load and the MW shed from it.

    The shed asked of a load (``shed_mw`` input; NaN counts as 0, negative values as 0) is clipped to
    its demand ``max(p_mw, 0)``; loads of one ``shed_group`` pool what is asked of them and share it
    in proportion to their demand. q is reduced in proportion to p (the load's power factor stays).
    Out-of-service loads shed nothing.
    """
    p = inputs.load_p
    asked = np.where(inputs.load_shed > 0.0, inputs.load_shed, 0.0)
    if not asked.any():
        return p.copy(), inputs.load_q.copy(), asked
    demand = np.where(params.load_in_service, np.maximum(p, 0.0), 0.0)
    shed = np.minimum(asked, demand)
    grouped = params.load_group >= 0
    if grouped.any():
        g = params.load_group[grouped]
        asked_g = np.bincount(g, asked[grouped], params.n_shed_groups)
        demand_g = np.bincount(g, demand[grouped], params.n_shed_groups)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(demand_g > 0, np.minimum(asked_g, demand_g) / demand_g, 0.0)
        shed[grouped] = demand[grouped] * share[g]
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = np.where(p > 0, 1.0 - shed / p, 1.0)
    return p - shed, inputs.load_q * kept, shed


def storage_limits(params: UnitParams, soc: np.ndarray, p: np.ndarray, time: int, what: str = "setpoint") -> np.ndarray:
    """Storage powers (load sign) clipped to power and energy limits over the step; a warning per unit."""
    dt = params.dt_h
    room_ch = np.maximum(params.st_max_e - soc, 0.0)
    room_dis = np.maximum(soc - params.st_min_e, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_ch_max = np.where(params.st_eta_ch > 0, room_ch / (params.st_eta_ch * dt), np.inf)
    p_dis_max = room_dis * params.st_eta_dis / dt
    upper = np.minimum(params.st_max_p, p_ch_max)
    lower = np.maximum(params.st_min_p, -p_dis_max)
    applied = np.clip(p, np.minimum(lower, 0.0), np.maximum(upper, 0.0))
    applied = np.where(params.st_in_service, applied, 0.0)
    clipped = p - applied
    for pos in np.flatnonzero(np.abs(clipped) > CLIP_TOL_MW).tolist():
        logger.warning(
            "t=%s: storage %s (index %s) %s %.4f MW clipped to %.4f MW (SoC %.4f MWh)",
            time,
            params.st_names[pos],
            params.st_index[pos],
            what,
            p[pos],
            applied[pos],
            soc[pos],
        )
    return applied


def integrate_soc(params: UnitParams, soc: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Energy after a step at storage powers ``p`` (load sign), within ``[min_e_mwh, max_e_mwh]``."""
    ch = np.maximum(p, 0.0)
    dis = np.maximum(-p, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        de = (params.st_eta_ch * ch - np.where(dis > 0, dis / params.st_eta_dis, 0.0)) * params.dt_h
    return np.clip(soc + de, params.st_min_e, params.st_max_e)


class Units:
    """The units of one net: their inputs, the storages' SoC and the rules above."""

    def __init__(self, net: pp.pandapowerNet, index: NetIndex, dt_h: float) -> None:
        own = Injections.from_net(net)
        self.index = index
        self.params = UnitParams.from_net(net, dt_h, own)
        self.inputs = UnitInputs.initial(own)
        self.soc = initial_soc(net)

    def dispatch(self, topo: Topology, time: int) -> Dispatch:
        """The unit powers of this step in the topology ``topo``, before the power flow."""
        params, inputs = self.params, self.inputs
        sgen_p, sgen_avail, curtailed = sgen_power(params, inputs)
        st_set = np.where(params.st_in_service, inputs.st_set, 0.0)
        slack_units = topo.slack_units
        # a storage that is its island's slack ignores its setpoint (no clipping warning for it)
        st_asked = st_set.copy()
        st_asked[[pos for kind, pos in slack_units if kind == "storage"]] = 0.0
        st_p = storage_limits(params, self.soc, st_asked, time)
        # units on unsupplied buses cannot exchange power
        sgen_p = np.where(topo.sgen_on, sgen_p, 0.0)
        curtailed = np.where(np.isnan(inputs.sgen_avail), curtailed, sgen_avail - sgen_p)
        load_p, load_q, shed = load_shed(params, inputs)
        return Dispatch(
            load_on=topo.load_on,
            load_p=load_p,
            load_q=load_q,
            load_shed=shed,
            unsupplied_mw=float(np.sum(load_p[topo.load_off])) if topo.load_off.any() else 0.0,
            sgen_p=sgen_p,
            sgen_avail=sgen_avail,
            curtailed=curtailed,
            sgen_q=np.where(topo.sgen_on, sgen_reactive(params, inputs), 0.0),
            st_set=st_set,
            st_p=np.where(topo.st_on, st_p, 0.0),
            slack_units=slack_units,
        )

    def settle(self, d: Dispatch, slack_p_mw: dict[Unit, float] | None, time: int) -> UnitOutputs:
        """Apply a step: grid-forming units take their balancing power, the SoC integrates.

        ``slack_p_mw``: the power flow's balancing power of each unit in ``d.slack_units``, None if it
        diverged (then their power is unknown: NaN, and a grid-forming storage's SoC stays).
        """
        params = self.params
        sgen_p, st_p, curtailed = d.sgen_p.copy(), d.st_p.copy(), d.curtailed.copy()
        gf_st = [pos for kind, pos in d.slack_units if kind == "storage"]
        if slack_p_mw is None:
            gf_sg = [pos for kind, pos in d.slack_units if kind == "sgen"]
            st_p[gf_st] = np.nan
            sgen_p[gf_sg] = np.nan
            self.soc = integrate_soc(params, self.soc, np.nan_to_num(st_p, nan=0.0))
            return self._outputs(d, sgen_p, curtailed, st_p, d.st_set - st_p)
        for unit in d.slack_units:
            if unit.kind == "sgen":
                sgen_p[unit.pos] = slack_p_mw[unit]
                self._check_balancing_sgen(unit.pos, sgen_p[unit.pos], d.sgen_avail[unit.pos], time)
                curtailed[unit.pos] = 0.0
            else:
                st_p[unit.pos] = slack_p_mw[unit]
        feasible = st_p.copy()
        if gf_st:
            limited = storage_limits(params, self.soc, st_p, time, what="balancing power")
            feasible[gf_st] = limited[gf_st]
        self.soc = integrate_soc(params, self.soc, feasible)
        clipped = d.st_set - st_p
        for pos in gf_st:
            clipped[pos] = st_p[pos] - feasible[pos]
        return self._outputs(d, sgen_p, curtailed, st_p, clipped)

    def _check_balancing_sgen(self, pos: int, p: float, limit: float, time: int) -> None:
        if not 0.0 <= p <= limit + BALANCE_TOL_MW:
            logger.warning(
                "t=%s: grid-forming sgen %s balances its island with %.4f MW, outside [0, %.4f] MW",
                time,
                self.params.sgen_index[pos],
                p,
                limit,
            )

    def _outputs(
        self, d: Dispatch, sgen_p: np.ndarray, curtailed: np.ndarray, st_p: np.ndarray, clipped: np.ndarray
    ) -> UnitOutputs:
        return UnitOutputs(d, sgen_p=sgen_p, curtailed=curtailed, st_p=st_p, soc_mwh=self.soc, clipped=clipped)
