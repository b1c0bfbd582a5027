r"""The lower level of the ``clustered`` strategy (spec 004): the MGs and their clusters, without the
distribution network's own loads, as one MILP over the day.

Per MG ``m`` (the shared unit blocks of :mod:`ems_controllers.core.blocks`: the micro-turbine is the
MG's ``diesel`` with its commitment and piecewise-linear fuel cost, the battery with exclusive charge and
discharge, curtailable PV and wind, load shedding at its penalty), demand response and the PCC:

.. math::
    MT_{m,t} + PV_{m,t} + W_{m,t} + P^{dis}_{m,t} - P^{ch}_{m,t} + S_{m,t} + F_{m,t} = L_{m,t} + D_{m,t}

    -\phi L_{m,t} \le D_{m,t} \le \phi L_{m,t},\qquad \sum_t D_{m,t} = 0,\qquad
    |F_{m,t}| \le \bar F_m\, x_{m,t}

``D`` is the demand-response shift (the seed's ``P_{DR,t} = \gamma_t P_{L,t}`` with
``1 - \phi \le \gamma_t \le 1 + \phi`` and the day's energy kept, ``\phi`` = the flexible share, 20 %);
``F`` the flow from the cluster's bus into the MG through its PCC, ``x`` the PCC switch (binary).
Per cluster ``c`` and tie ``k = (a, b)``:

.. math::
    G_{c,t} + \sum_{k: b_k = c} \tau_{k,t} - \sum_{k: a_k = c} \tau_{k,t} = \sum_{m \in c} F_{m,t},\qquad
    |G_{c,t}| \le \bar G_c\, y_{c,t},\qquad |\tau_{k,t}| \le \bar\tau_k\, z_{k,t}

    \sum_c G_{c,t} = B_t - X_t,\qquad B_t, X_t \ge 0

``G`` is the cluster's exchange with the distribution network through its feeder switch ``y``, ``tau``
the flow on a tie switched by ``z``, ``B``/``X`` what the clusters buy from / sell to the network at the
tariff. Which switches may close at each hour is the escalation's business (:mod:`levels`): a switch
that may not close has its binary held at 0 by a mutable bound (``allow_*``).

Objectives (:class:`~ems_controllers.clustered.pareto.ObjectiveValues`), over the day:

- GC = the units' running, start-up, curtailment and shedding costs + ``(\pi^b_t B_t - \pi^s_t X_t) dt``
  (the units' own cost curves, not the seed's energy price on MT output: so GC is what the run's KPIs
  count);
- EC = ``(e^{MT} \sum_m MT_{m,t} + e^{grid} (B_t - X_t)) dt`` with the emission penalty prices
  ``e`` per MWh (the seed's ``N_{CO2} + N_{SO2} + N_{NOx}``): exports displace substation emissions, so
  EC can be negative;
- Loss = ``\sum_t dt \sum_{links} r (flow)^2 / V^2`` over the closed PCC, feeder and tie links, each a
  piecewise-linear outer approximation (:mod:`losses`: at most ``loss_max_error_mw`` under per link and
  hour). Flows balance without their losses (they are MV cables of a few hundred metres to a few km).

One model minimises ``w_gc GC + w_ec EC + w_loss Loss + c^{sw} \sum (x + y + z)`` subject to
``GC <= eps_gc`` and ``Loss <= eps_loss`` (all mutable), so the payoff table, the eps-constraint front and
the escalation solves re-solve the one model by parameter update. ``c^{sw}`` is a tiny cost per closed
switch and hour (not part of GC): a switch closes only where it carries power that helps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pyomo.environ as pyo

from ems_controllers.clustered.pareto import ObjectiveValues
from ems_controllers.clustered.system import ClusterSystem
from ems_controllers.core import blocks
from ems_controllers.core.losses import add_pwl_loss, loss_coefficient_per_mw
from ems_controllers.core.types import Horizon, PartyProblem

NO_BOUND = 1e9
"""An eps bound that never binds (GC in currency, Loss in MWh)."""


@dataclass(frozen=True)
class LowerSettings:
    """The lower level's data that fix the model's coefficients."""

    mt_emission_cost_per_mwh: float
    grid_emission_cost_per_mwh: float
    dr_share: float
    switch_hour_cost: float
    loss_max_error_mw: float
    pwl_max_error_per_h: float


@dataclass(frozen=True)
class Weights:
    """The objective's weights ``w_gc GC + w_ec EC + w_loss Loss`` of one solve."""

    gc: float
    ec: float
    loss: float


def build_lower(
    system: ClusterSystem, problems: Sequence[PartyProblem], n_steps: int, dt_h: float, s: LowerSettings
) -> pyo.ConcreteModel:
    """The lower-level MILP with placeholder data (module docstring)."""
    m = pyo.ConcreteModel(name="clustered_lower")
    m.T = pyo.RangeSet(0, n_steps - 1)
    names = [p.mg.name for p in problems]
    caps = link_caps(system, {p.mg.name: p.mg.pcc_max_mw for p in problems})
    m.mg = pyo.Block(names)
    for prob in problems:
        _add_mg(m.mg[prob.mg.name], prob, caps[system.pcc[prob.mg.name].name], m.T, dt_h, s)
    _add_clusters(m, system, caps)
    _add_losses(m, system, caps, s.loss_max_error_mw)
    _add_objectives(m, names, dt_h, s)
    return m


def link_caps(system: ClusterSystem, pcc_max_mw: dict[str, float]) -> dict[str, float]:
    """The most each link (by name) can carry: an MG's PCC its rating or the MG's ``pcc_max_mw``; a
    feeder its rating or what its MGs' PCCs carry together; a tie its rating or all the MGs' PCCs.
    (Tight big-Ms, and fewer loss tangents.)"""
    caps = {system.pcc[g].name: min(system.pcc[g].max_mw, pcc_max_mw[g]) for g in system.pcc}
    every = sum(caps.values())
    for c in system.clusters:
        caps[c.feeder.name] = min(c.feeder.max_mw, sum(caps[system.pcc[g].name] for g in c.mgs))
    for k in system.ties:
        caps[k.link.name] = min(k.link.max_mw, every)
    return caps


def _add_mg(b: pyo.Block, prob: PartyProblem, cap: float, T: pyo.Set, dt_h: float, s: LowerSettings) -> None:
    mg = prob.mg
    blocks.add_party_units(b, mg, T, dt_h, max_error_per_h=s.pwl_max_error_per_h)
    b.pcc_closed = pyo.Var(T, domain=pyo.Binary)
    b.allow_pcc = pyo.Param(T, mutable=True, initialize=1.0)
    b.allow_pcc_con = pyo.Constraint(T, rule=lambda b, t: b.pcc_closed[t] <= b.allow_pcc[t])
    b.inflow_mw = pyo.Var(T, bounds=(-cap, cap))
    b.inflow_up_con = pyo.Constraint(T, rule=lambda b, t: b.inflow_mw[t] <= cap * b.pcc_closed[t])
    b.inflow_dn_con = pyo.Constraint(T, rule=lambda b, t: -b.inflow_mw[t] <= cap * b.pcc_closed[t])
    b.shed_cap_mw = pyo.Param(T, mutable=True, initialize=NO_BOUND)
    b.shed_cap_con = pyo.Constraint(T, rule=lambda b, t: b.shed_mw[t] <= b.shed_cap_mw[t])
    share = s.dr_share
    b.dr_shift_mw = pyo.Var(T, bounds=lambda b, t: (-share * b.load_mw[t], share * b.load_mw[t]))
    b.dr_neutral_con = pyo.Constraint(expr=pyo.quicksum(b.dr_shift_mw[t] for t in T) == 0.0)

    has_ev = EV_KEY in mg.extra
    if has_ev:
        _add_ev(b, T, dt_h)

    def balance(b: pyo.Block, t: int) -> pyo.Expression:
        supply = b.pv_mw[t] + b.wind_mw[t] + b.shed_mw[t] + b.inflow_mw[t]
        if mg.diesel is not None:
            supply += b.dg_p_mw[t]
        if mg.battery is not None:
            supply += b.bat_dis_mw[t] - b.bat_ch_mw[t]
        return supply == b.load_mw[t] + b.dr_shift_mw[t] + (b.ev_mw[t] if has_ev else 0.0)

    b.balance_con = pyo.Constraint(T, rule=balance)
    b.mt_mw = pyo.Expression(T, rule=lambda b, t: b.dg_p_mw[t] if mg.diesel is not None else 0.0)


EV_KEY = "ev_plan"
"""``Microgrid.extra[EV_KEY]``: the EV charging of one planning round, ``{"cap_mw": [...], "energy_mwh": e}``
(what the chargers may draw at each step, 0 outside the plug-in window, and what they must deliver over
the horizon); the MG's load forecast then excludes the EVs."""


def _add_ev(b: pyo.Block, T: pyo.Set, dt_h: float) -> None:
    """EV charging, a flexible load: ``0 <= EV_t <= cap_t`` (the window), ``sum_t EV_t dt = E``."""
    b.ev_cap_mw = pyo.Param(T, mutable=True, initialize=0.0)
    b.ev_energy_mwh = pyo.Param(mutable=True, initialize=0.0)
    b.ev_mw = pyo.Var(T, bounds=lambda b, t: (0.0, b.ev_cap_mw[t]))
    b.ev_energy_con = pyo.Constraint(expr=dt_h * pyo.quicksum(b.ev_mw[t] for t in T) == b.ev_energy_mwh)


def _switched_flow(m: pyo.ConcreteModel, name: str, index: list[str], cap: dict[str, float]) -> None:
    """``m.<name>_mw[i, t]`` in ``[-cap, cap]``, zero unless ``m.<name>_closed[i, t]`` (binary, held at 0
    where ``m.allow_<name>[i, t]`` is 0)."""
    T = m.T
    m.add_component(f"{name}_set", pyo.Set(initialize=index, ordered=True))
    idx = getattr(m, f"{name}_set")
    flow = pyo.Var(idx, T, bounds=lambda _, i, t: (-cap[i], cap[i]))
    closed = pyo.Var(idx, T, domain=pyo.Binary)
    allow = pyo.Param(idx, T, mutable=True, initialize=1.0)
    m.add_component(f"{name}_mw", flow)
    m.add_component(f"{name}_closed", closed)
    m.add_component(f"allow_{name}", allow)
    m.add_component(f"allow_{name}_con", pyo.Constraint(idx, T, rule=lambda _, i, t: closed[i, t] <= allow[i, t]))
    m.add_component(f"{name}_up_con", pyo.Constraint(idx, T, rule=lambda _, i, t: flow[i, t] <= cap[i] * closed[i, t]))
    m.add_component(f"{name}_dn_con", pyo.Constraint(idx, T, rule=lambda _, i, t: -flow[i, t] <= cap[i] * closed[i, t]))


def _add_clusters(m: pyo.ConcreteModel, system: ClusterSystem, caps: dict[str, float]) -> None:
    _switched_flow(
        m, "feeder", [c.name for c in system.clusters], {c.name: caps[c.feeder.name] for c in system.clusters}
    )
    _switched_flow(m, "tie", [t.name for t in system.ties], {t.name: caps[t.link.name] for t in system.ties})

    def bus_balance(m: pyo.ConcreteModel, c: str, t: int) -> pyo.Expression:
        spec = next(x for x in system.clusters if x.name == c)
        into = m.feeder_mw[c, t] + pyo.quicksum(m.tie_mw[k.name, t] for k in system.ties if k.b == c)
        out = pyo.quicksum(m.tie_mw[k.name, t] for k in system.ties if k.a == c)
        return into - out == pyo.quicksum(m.mg[g].inflow_mw[t] for g in spec.mgs)

    m.cluster_bus_con = pyo.Constraint(m.feeder_set, m.T, rule=bus_balance)
    # the upper level's grants, when they differ from the requests: the MGs reschedule around them
    m.feeder_target_mw = pyo.Param(m.feeder_set, m.T, mutable=True, initialize=0.0)
    m.feeder_free = pyo.Param(m.feeder_set, m.T, mutable=True, initialize=1.0)
    cap = {c.name: 2.0 * caps[c.feeder.name] for c in system.clusters}
    m.feeder_fix_up_con = pyo.Constraint(
        m.feeder_set,
        m.T,
        rule=lambda m, c, t: m.feeder_mw[c, t] - m.feeder_target_mw[c, t] <= cap[c] * m.feeder_free[c, t],
    )
    m.feeder_fix_dn_con = pyo.Constraint(
        m.feeder_set,
        m.T,
        rule=lambda m, c, t: m.feeder_target_mw[c, t] - m.feeder_mw[c, t] <= cap[c] * m.feeder_free[c, t],
    )
    m.buy_mw = pyo.Var(m.T, bounds=(0.0, None))
    m.sell_mw = pyo.Var(m.T, bounds=(0.0, None))
    m.exchange_con = pyo.Constraint(
        m.T, rule=lambda m, t: m.buy_mw[t] - m.sell_mw[t] == pyo.quicksum(m.feeder_mw[c, t] for c in m.feeder_set)
    )
    m.price_buy_per_mwh = pyo.Param(m.T, mutable=True, initialize=0.0)
    m.price_sell_per_mwh = pyo.Param(m.T, mutable=True, initialize=0.0)


def _add_losses(m: pyo.ConcreteModel, system: ClusterSystem, caps: dict[str, float], max_error_mw: float) -> None:
    """The PWL losses of every link (``pcc_loss_mw``, ``feeder_loss_mw``, ``tie_loss_mw``) and their sum
    per step (``loss_mw``)."""
    m.pcc_index = pyo.Set(initialize=list(system.pcc), ordered=True)
    parts = (
        ("pcc_loss_mw", m.pcc_index, dict(system.pcc), lambda g, t: m.mg[g].inflow_mw[t]),
        ("feeder_loss_mw", m.feeder_set, {c.name: c.feeder for c in system.clusters}, lambda c, t: m.feeder_mw[c, t]),
        ("tie_loss_mw", m.tie_set, {k.name: k.link for k in system.ties}, lambda k, t: m.tie_mw[k, t]),
    )
    for name, index, links, flow in parts:
        coef = {i: loss_coefficient_per_mw(lk.r_ohm, lk.v_kv) for i, lk in links.items()}
        cap = {i: caps[lk.name] for i, lk in links.items()}
        add_pwl_loss(
            m, name, index * m.T, flow, lambda i, t, coef=coef: coef[i], lambda i, t, cap=cap: cap[i], max_error_mw
        )
    m.loss_mw = pyo.Expression(
        m.T,
        rule=lambda m, t: (
            pyo.quicksum(m.pcc_loss_mw[g, t] for g in m.pcc_index)
            + pyo.quicksum(m.feeder_loss_mw[c, t] for c in m.feeder_set)
            + pyo.quicksum(m.tie_loss_mw[k, t] for k in m.tie_set)
        ),
    )


def _add_objectives(m: pyo.ConcreteModel, names: list[str], dt_h: float, s: LowerSettings) -> None:
    T = m.T
    m.gc = pyo.Expression(
        expr=pyo.quicksum(m.mg[n].unit_cost[t] for n in names for t in T)
        + dt_h * pyo.quicksum(m.price_buy_per_mwh[t] * m.buy_mw[t] - m.price_sell_per_mwh[t] * m.sell_mw[t] for t in T)
    )
    m.ec = pyo.Expression(
        expr=dt_h
        * pyo.quicksum(
            s.mt_emission_cost_per_mwh * pyo.quicksum(m.mg[n].mt_mw[t] for n in names)
            + s.grid_emission_cost_per_mwh * (m.buy_mw[t] - m.sell_mw[t])
            for t in T
        )
    )
    m.loss = pyo.Expression(expr=dt_h * pyo.quicksum(m.loss_mw[t] for t in T))
    m.switch_hours = pyo.Expression(
        expr=pyo.quicksum(m.mg[n].pcc_closed[t] for n in names for t in T)
        + pyo.quicksum(m.feeder_closed[c, t] for c in m.feeder_set for t in T)
        + pyo.quicksum(m.tie_closed[k, t] for k in m.tie_set for t in T)
    )
    m.w_gc = pyo.Param(mutable=True, initialize=1.0)
    m.w_ec = pyo.Param(mutable=True, initialize=0.0)
    m.w_loss = pyo.Param(mutable=True, initialize=0.0)
    m.eps_gc = pyo.Param(mutable=True, initialize=NO_BOUND)
    m.eps_loss = pyo.Param(mutable=True, initialize=NO_BOUND)
    m.eps_gc_con = pyo.Constraint(expr=m.gc <= m.eps_gc)
    m.eps_loss_con = pyo.Constraint(expr=m.loss <= m.eps_loss)
    m.obj = pyo.Objective(
        expr=m.w_gc * m.gc + m.w_ec * m.ec + m.w_loss * m.loss + s.switch_hour_cost * m.switch_hours,
        sense=pyo.minimize,
    )


def set_lower_data(m: pyo.ConcreteModel, problems: Sequence[PartyProblem], horizon: Horizon) -> None:
    """Every MG's forecasts and state and the tariff into the model's mutable params."""
    for prob in problems:
        b = m.mg[prob.mg.name]
        blocks.set_party_data(b, prob, horizon)
        ev = prob.mg.extra.get(EV_KEY)
        if ev is not None:
            for t in range(horizon.n_steps):
                b.ev_cap_mw[t] = float(ev["cap_mw"][t])
            b.ev_energy_mwh = float(ev["energy_mwh"])
    for t in range(horizon.n_steps):
        m.price_buy_per_mwh[t] = horizon.buy_price_per_mwh[t]
        m.price_sell_per_mwh[t] = horizon.sell_price_per_mwh[t]


SHED_ZERO_MW = 1e-7
"""An escalation solution's shedding up to this is none (the solver's primal tolerance)."""


def cap_shedding(m: pyo.ConcreteModel, shed_mw: dict[str, tuple[float, ...]] | None) -> None:
    """Hold each MG's shedding at most at ``shed_mw`` (what the escalation could not avoid), or free it
    (None): the front trades GC, EC and Loss, never load against emissions. Where the escalation shed
    nothing the cap is 0 (its solution shows none is needed); elsewhere a 1 W slack absorbs the
    solver's tolerances (a slack everywhere let the EC-minimising points shed 1 W in every hour)."""
    for b in m.mg.values():
        cap = shed_mw.get(b.index()) if shed_mw is not None else None
        for t in m.T:
            b.shed_cap_mw[t] = NO_BOUND if cap is None else (0.0 if cap[t] <= SHED_ZERO_MW else cap[t] + 1e-6)


def fix_feeders(m: pyo.ConcreteModel, grants_mw: dict[str, tuple[float, ...]] | None) -> None:
    """Hold each cluster's exchange with the network at ``grants_mw`` (the upper level's), or free it."""
    for c in m.feeder_set:
        for t in m.T:
            m.feeder_free[c, t] = 1.0 if grants_mw is None else 0.0
            m.feeder_target_mw[c, t] = 0.0 if grants_mw is None else grants_mw[c][t]


def set_objective(m: pyo.ConcreteModel, w: Weights, eps_gc: float = NO_BOUND, eps_loss: float = NO_BOUND) -> None:
    m.w_gc = w.gc
    m.w_ec = w.ec
    m.w_loss = w.loss
    m.eps_gc = eps_gc if math.isfinite(eps_gc) else NO_BOUND
    m.eps_loss = eps_loss if math.isfinite(eps_loss) else NO_BOUND


def objective_values(m: pyo.ConcreteModel) -> ObjectiveValues:
    """GC, EC and Loss of the solution the model holds."""
    return ObjectiveValues(float(pyo.value(m.gc)), float(pyo.value(m.ec)), float(pyo.value(m.loss)))
