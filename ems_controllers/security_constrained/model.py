r"""Security-constrained hierarchical EMS with tie lines (spec 002): three solves per planning instant.

Pure math on typed inputs; no mosaik, no file I/O. Parties: the microgrids (MGs), in case 3 a central
MG controller (MGC) that schedules them as one unit, and the distribution network operator (DNO) with
its own units (the party ``DN``). Signs as in ``core.types``: generation positive, battery + =
charging, an MG's import + = buying at its PCC. ``r``: request, ``g``: grant, per MG ``m`` and step t.

**Step 1 (MGs).** Case 1/2: each MG solves :class:`~ems_controllers.local.model.LocalModel` against the
tariff; its request is its planned import ``r_{m,t}`` (+ shortage, - surplus); its objective is its
stand-alone cost ``v({m})``. Case 3: the MGC solves
:class:`~ems_controllers.core.system.SystemModel` over the MGs only (the MGs net against
each other, only the aggregate is priced at the tariff); the requests are the per-MG imports of that
plan and its objective is the aggregated cost ``v(N)``. The stand-alone costs are solved as well (for
the split rule, which also solves the case-2 chain as the MGs' baseline).

**Step 2 (DNO).** One MILP (:func:`build_dno_model`): the DN's units (``blocks.add_party_units`` on the
DN's :class:`PartyProblem`, whose load is the whole feeder load ``L_t`` and whose load shedding ``S_t``
is the feeder's curtailment), the substation exchange ``B_t - X_t`` (``blocks.add_exchange``, tariff,
one binary per step) and a grant per MG tied to its request (``blocks.add_tied_exchange``):

.. math::
    g_{m,t} = r_{m,t} + d^+_{m,t} - d^-_{m,t}\quad\text{(case 1/2)},\qquad
    \sum_m g_{m,t} = \sum_m r_{m,t} + d^+_t - d^-_t\quad\text{(case 3)}

    P^{dg}_t + PV_t + W_t + P^{dis}_t - P^{ch}_t + (B_t - X_t - \textstyle\sum_m g_{m,t}) + S_t = L_t

    \min \sum_t \big[\mathrm{unitcost}^{DN}_t + (\pi^b_t B_t - \pi^s_t X_t)\Delta t
        + \pi^{dev} \textstyle\sum (d^+ + d^-)\Delta t\big]

``|g_{m,t}| <= pcc_max_mw`` of the MG (``max_t |r_{m,t}|`` when unlimited). The MGs' payments are
transfers and do not enter. In case 3 the deviation is priced on the aggregate only, so the DNO may
move a grant from one MG to another (useful with the tie lines closed). Two additions make that
workable: a per-MG tie ``g_{m,t} = r_{m,t} + \delta^+ - \delta^-`` priced at
``redistribution_price_per_mwh`` ``pi^red < pi^dev`` (without it the LP is degenerate and an optimal
vertex scatters the grants to their bounds). A pure cut of x MW then costs the DNO
``(pi^dev + pi^red) x``, moving x MW from one MG to another ``2 pi^red x``: it redistributes rather
than cuts whenever the network allows. ``pi^red`` is what an MG's own grant is worth to the DNO; the
default ``pi^dev / 2`` (250 $/MWh) was chosen by measurement on the test feeder: at 1 $/MWh the DNO
moved load onto an MG whose battery could not follow and the MGC paid 527 $ of deviation (its final
cost above case 2); at 250 $/MWh no MG deviated and case 3 cost less than case 2 for DN and MGs alike.
And the MGC sends with
each MG's request its feasible import range per step (:func:`import_range_mw`: from all renewables,
diesel and discharge at full output to all renewables curtailed and full charging, no shedding), and
the DNO keeps ``g_{m,t}`` inside it. Without the range the DNO asked an MG with only load and a small
battery to export, which the MGC could follow only by deviating at ``pi^dev``. The range ignores the
battery's energy and the diesel's ramps, so a redistributed grant can still be infeasible for an MG
over several steps: the MGC then deviates and pays ``pi^dev``.

Case 1: no network rows. Case 2/3: LinDistFlow (``core.network.add_lindistflow``) with injections
``-g_{m,t}`` (P) and ``-q_{m,t}`` (Q, the MG's reactive withdrawal, data) at each MG's bus, the DN's
units at their bus, the feeder loads per bus as the block's fixed demand and the shedding spread as a
uniform fraction of every feeder bus's load: bus j's load becomes ``p_{j,t} (1 - S_t / L_t)`` (linear
in ``S_t``; Q likewise); the substation exchange equals the root's supply,
``B_t - X_t = P^{root}_t``. Line limit: the 12-gon at ``s_max_factor`` times the rating (default 0.95
= ``v_min``: a current limit that holds over the whole voltage band). Case 3 passes the network with
the tie switches closed (the caller builds the :class:`NetworkData` from the switch states).

**Step 3 (MGs reschedule).** Each MG (case 1/2), or the MGC over all MGs (case 3), re-solves the
step-1 model with every MG's import tied to its grant,
``I_{m,t} = g_{m,t} + e^+_{m,t} - e^-_{m,t}``, ``e^\pm`` priced at ``pi^dev`` (deviations cost the
MG); the exchange stays priced at the tariff (per MG in case 1/2, on the aggregate in case 3). This is
``SystemModel`` over the MG(s) with a network hook that adds the ties; over one MG it is the
local problem.

**Split rule (case 3).** Spec 002's case 3 exists to compensate the MGs, so an MG's outside option is
its **case-2 outcome** ``b_i``: its final bill after the DNO's case-2 grant and its own step-3 reschedule
(deviations at ``pi^dev``), not its stand-alone cost ``v({i})`` (no network, no DNO). The MGC therefore
solves the case-2 chain as its baseline (:meth:`SecurityConstrainedModel._baseline`: steps 1-3 with
``case=2`` on the network with the tie lines open, ``case2_network``; extra solves: one DNO and n
reschedules, the stand-alone solves being case 3's own; they count in ``split_s``, ``baseline_s`` alone).
The DNO answers that counterfactual request (messages ``baseline_request`` / ``baseline_grant``). Then
:func:`~ems_controllers.security_constrained.split.split_against_case2` splits the MGC's final (step-3)
cost ``C_3`` (only the aggregate priced at the tariff: the DN bills the MGC as one unit): each MG saves
``y_i`` against ``b_i``, the Shapley value of the saving game ``w`` with ``w({i}) = 0``, ``w(C)`` = the
aggregation saving ``sum_{i in C} v({i}) - v(C)`` of the step-1 coalitions (2^n - n - 2 extra solves,
the pairs for 3 MGs) and ``w(N) = D = sum_i b_i - C_3``; moved to the nearest point of the core of ``w``
when outside it (or, the core empty, of ``y >= 0``), so ``bill_i = b_i - y_i <= b_i`` whenever
``D >= 0``, and the bills sum to ``C_3``. When ``D < 0`` (case 3 cost the MGs more in total than case 2:
the DNO cut the aggregate more than it cut the MGs one by one) no split can keep every MG at its case-2
bill: the Shapley value is kept, ``split_rule`` says ``not_rational`` and the log warns with the amount.
Only the grand coalition closes the tie lines, so no smaller coalition can claim their relief: the part
of ``D`` beyond the aggregation savings is split symmetrically. ``v(N) <= sum v({m})`` still holds (any
set of stand-alone plans is feasible for the aggregate and costs no more there: buy >= sell price), up to
the MIP gap; each MG's ``saving_share`` stays its Shapley share of that aggregation saving.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import pyomo.environ as pyo

from ems_controllers.core import blocks
from ems_controllers.core.model_cache import ModelCache
from ems_controllers.core.network import (
    NetworkData,
    add_lindistflow,
    lindistflow_solve,
    predicted,
    set_network_loads,
)
from ems_controllers.core.system import SystemModel
from ems_controllers.core.types import Horizon, PartyPlan, PartyProblem, SolveResult, SolverOptions, SolveStatus
from ems_controllers.local.model import LocalModel
from ems_controllers.security_constrained.split import Split, SplitRule, shapley_shares, split_against_case2

log = logging.getLogger(__name__)

DNO = "DNO"  # the network operator as a sender/receiver of messages
MGC = "MGC"  # the central MG controller (case 3)
DN = "DN"  # the network operator as a party with units (plans, costs)

_CACHE_SIZE = 4
_LOAD_SUM_TOL_MW = 1e-6


# --------------------------------------------------------------------------------------------------
# Inputs, config, result
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScConfig:
    """Strategy settings. ``case``: 1 (no network constraints), 2 (LinDistFlow), 3 (LinDistFlow on the
    network with tie lines closed + MGC + split rule)."""

    case: int
    deviation_price_per_mwh: float = 500.0  # pi^dev: DNO's grant vs request, MG's import vs grant
    s_max_factor: float = 0.95  # line limit = factor * rating (0.95 = v_min: current limit in the band)
    n_polygon: int = 12  # sides of the inscribed polygon of the line limit
    redistribution_price_per_mwh: float = 250.0  # case 3: per-MG grant tie in step 2 (< deviation)
    split: bool = True  # case 3: split C_3 against case 2 (2^n - n - 2 coalitions + the case-2 chain)

    def __post_init__(self) -> None:
        if self.case not in (1, 2, 3):
            raise ValueError(f"ScConfig.case must be 1, 2 or 3, not {self.case!r}")
        if not self.deviation_price_per_mwh > 0:
            raise ValueError("ScConfig.deviation_price_per_mwh must be positive")
        if not self.s_max_factor > 0:
            raise ValueError("ScConfig.s_max_factor must be positive")
        if self.n_polygon < 3:
            raise ValueError("ScConfig.n_polygon must be >= 3")
        if not 0 <= self.redistribution_price_per_mwh < self.deviation_price_per_mwh:
            raise ValueError("ScConfig.redistribution_price_per_mwh must be in [0, deviation price)")


@dataclass(frozen=True)
class DnSite:
    """The DNO's view of its network and units.

    ``problem``: the DN's units and forecasts; ``problem.forecast.load_p_mw`` is the total feeder load
    (it must equal the sum of ``feeder_p_mw`` over the buses when a network is modelled).
    ``unit_bus``: bus of the DN's units. ``mg_bus``: MG name -> its PCC bus (network side of the
    injection ``-g``). ``feeder_p_mw`` / ``feeder_q_mvar``: feeder load per bus and step (consumption
    positive). ``mg_q_mvar``: MG name -> reactive withdrawal per step (absent: 0).
    """

    problem: PartyProblem
    unit_bus: int
    mg_bus: Mapping[str, int]
    feeder_p_mw: Mapping[int, Sequence[float]] = field(default_factory=dict)
    feeder_q_mvar: Mapping[int, Sequence[float]] = field(default_factory=dict)
    mg_q_mvar: Mapping[str, Sequence[float]] = field(default_factory=dict)


class ScStep(StrEnum):
    """Where a planning instant can fail (``ScResult.failed_step``) and whose MIP gaps are reported."""

    INPUT = "input"
    STEP1 = "step1"
    STEP2 = "step2"
    STEP3 = "step3"
    SPLIT = "split"


@dataclass(frozen=True)
class ScResult:
    """Outcome of one planning instant. ``ok`` iff every step found a feasible plan.

    ``status`` as in :class:`SolveResult` (optimal | feasible | infeasible | no_solution | error):
    the failed step's status, else "feasible" if any solve stopped with an incumbent, else "optimal".
    ``failed_step``: None or the :class:`ScStep` that failed; ``message`` says why.
    Whatever was computed before a failure is kept (e.g. the requests when step 2 fails).

    Costs ($ over the horizon): ``standalone_costs`` v({m}); ``aggregated_cost`` v(N) (case 3, step 1);
    ``coalition_costs`` every coalition's value (case 3); ``shapley_shares`` each MG's share of the
    saving (sum = ``saving``); ``mg_costs`` each MG's final bill from step 3 (units + its import at the
    tariff + its deviation penalty; in case 3 the import as if priced alone, so they do not sum to
    ``mg_final_cost``); ``mg_final_cost`` the MGs' total step-3 objective; ``mg_bills`` (case 3) the
    split of ``mg_final_cost`` by the rule (module docstring), against ``case2_mg_costs``, each MG's
    final bill in the case-2 chain the MGC solves as its baseline (``case2_plans``, ``case2_grants_mw``:
    that chain's plans, the DN's included, and grants; ``case2_dn_cost`` and
    ``case2_dn_cost_with_penalties``: the DN's in that chain; ``joint_saving``: ``sum case2_mg_costs -
    mg_final_cost``; ``split_rule``: how the split found the bills; ``baseline_s``: the chain's solve
    time, inside ``split_s``). ``dn_cost``: the DN's unit running and
    start-up costs + tariff on the substation exchange; ``dn_cost_with_penalties``: its step-2 objective
    (+ shedding, curtailment, deviation and redistribution penalties, itemised in ``dn_penalties``).

    ``vm_pu[(bus, t)]``, ``loading_percent[(line, t)]``: LinDistFlow prediction of step 2 (case 1 with
    a network: the same equations solved for its schedule, unconstrained). ``substation_import_mw``:
    buy - sell at the root. ``messages``: what crossed an ownership boundary, in order.
    """

    case: int
    status: SolveStatus
    termination: str = ""
    failed_step: ScStep | None = None
    message: str = ""
    plans: dict[str, PartyPlan] | None = None
    requests_mw: dict[str, tuple[float, ...]] = field(default_factory=dict)
    import_ranges_mw: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)
    grants_mw: dict[str, tuple[float, ...]] = field(default_factory=dict)
    standalone_costs: dict[str, float] = field(default_factory=dict)
    aggregated_cost: float | None = None
    coalition_costs: dict[frozenset[str], float] = field(default_factory=dict)
    saving: float | None = None
    shapley_shares: dict[str, float] = field(default_factory=dict)
    mg_costs: dict[str, float] = field(default_factory=dict)
    mg_deviation_costs: dict[str, float] = field(default_factory=dict)
    mg_final_cost: float | None = None
    mg_bills: dict[str, float] = field(default_factory=dict)
    case2_mg_costs: dict[str, float] = field(default_factory=dict)
    case2_plans: dict[str, PartyPlan] = field(default_factory=dict)
    case2_grants_mw: dict[str, tuple[float, ...]] = field(default_factory=dict)
    case2_dn_cost: float | None = None
    case2_dn_cost_with_penalties: float | None = None
    joint_saving: float | None = None
    split_rule: SplitRule | None = None
    baseline_s: float = 0.0
    dn_cost: float | None = None
    dn_cost_with_penalties: float | None = None
    dn_penalties: dict[str, float] = field(default_factory=dict)
    substation_import_mw: tuple[float, ...] = ()
    vm_pu: dict[tuple[int, int], float] = field(default_factory=dict)
    loading_percent: dict[tuple[int, int], float] = field(default_factory=dict)
    step1_s: float = 0.0
    step2_s: float = 0.0
    step3_s: float = 0.0
    split_s: float = 0.0
    mip_gaps: dict[ScStep, float | None] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status.has_plan and self.plans is not None


# --------------------------------------------------------------------------------------------------
# Step 2: the DNO's model
# --------------------------------------------------------------------------------------------------


def build_dno_model(
    dn: DnSite,
    mg_names: Sequence[str],
    network: NetworkData | None,
    n_steps: int,
    dt_h: float,
    cfg: ScConfig,
    max_error_per_h: float,
) -> pyo.ConcreteModel:
    """The DNO's MILP (module docstring, step 2) with placeholder data.

    Components: ``m.dn`` (the DN's unit blocks, ``import_mw`` = its net withdrawal from the network
    incl. the feeder load, balance), ``m.sub`` (substation exchange), ``m.grant_mw[m, t]``,
    ``m.grant_lo_mw[m, t]``, ``m.grant_hi_mw[m, t]`` (mutable bounds), ``m.tie[m]`` (tied grant per MG)
    and in case 3 ``m.tie_agg`` (tied aggregate), ``m.net`` (LinDistFlow, cases 2/3) with
    ``m.shed_share_p/q[bus, t]`` (mutable ``p_{j,t}/L_t``, ``q_{j,t}/L_t``), ``m.mg_q_mvar[m, t]`` and
    ``m.root_con``.
    """
    mg = dn.problem.mg
    names = list(mg_names)
    m = pyo.ConcreteModel(name="dno")
    m.T = pyo.RangeSet(0, n_steps - 1)
    m.MG = pyo.Set(initialize=names, ordered=True)
    m.dn = pyo.Block()
    b = m.dn
    blocks.add_party_units(b, mg, m.T, dt_h, max_error_per_h=max_error_per_h)
    m.grant_lo_mw = pyo.Param(m.MG, m.T, mutable=True, initialize=0.0)
    m.grant_hi_mw = pyo.Param(m.MG, m.T, mutable=True, initialize=0.0)
    m.grant_mw = pyo.Var(m.MG, m.T, bounds=lambda m, n, t: (m.grant_lo_mw[n, t], m.grant_hi_mw[n, t]))
    m.sub = pyo.Block()
    blocks.add_exchange(m.sub, mg.pcc_max_mw, m.T, dt_h)
    b.import_mw = pyo.Expression(
        m.T, rule=lambda b, t: m.sub.buy_mw[t] - m.sub.sell_mw[t] - pyo.quicksum(m.grant_mw[n, t] for n in names)
    )
    blocks.add_balance(b, mg, m.T, dt_h, import_mw=b.import_mw)

    aggregate = cfg.case == 3
    m.tie = pyo.Block(m.MG)
    per_mg_price = cfg.redistribution_price_per_mwh if aggregate else cfg.deviation_price_per_mwh
    for n in names:
        blocks.add_tied_exchange(m.tie[n], _grant_flow(m, n), m.T, dt_h, price_per_mwh=per_mg_price)
    if aggregate:
        m.tie_agg = pyo.Block()
        blocks.add_tied_exchange(
            m.tie_agg,
            lambda t: pyo.quicksum(m.grant_mw[n, t] for n in names),
            m.T,
            dt_h,
            price_per_mwh=cfg.deviation_price_per_mwh,
        )

    if network is not None and cfg.case in (2, 3):
        _add_network(m, dn, names, network, cfg)

    def tie_cost(m, t):
        c = pyo.quicksum(m.tie[n].tie_cost[t] for n in names)
        return c + m.tie_agg.tie_cost[t] if aggregate else c

    m.tie_cost = pyo.Expression(m.T, rule=tie_cost)
    m.obj = pyo.Objective(
        expr=pyo.quicksum(b.unit_cost[t] + m.sub.exch_cost[t] + m.tie_cost[t] for t in m.T), sense=pyo.minimize
    )
    return m


def _grant_flow(m: pyo.ConcreteModel, n: str) -> Callable[[Any], Any]:
    """``t -> m.grant_mw[n, t]``: MG ``n``'s grant as the flow of a tied exchange."""
    return lambda t: m.grant_mw[n, t]


def _add_network(m: pyo.ConcreteModel, dn: DnSite, names: list[str], network: NetworkData, cfg: ScConfig) -> None:
    b, mg = m.dn, dn.problem.mg
    load_buses = sorted({int(j) for j in dn.feeder_p_mw} | {int(j) for j in dn.feeder_q_mvar})
    missing = [n for n in names if n not in dn.mg_bus]
    if missing:
        raise ValueError(f"DnSite.mg_bus has no bus for {missing}")
    m.load_bus = pyo.Set(initialize=load_buses, ordered=True)
    m.shed_share_p = pyo.Param(m.load_bus, m.T, mutable=True, initialize=0.0)
    m.shed_share_q = pyo.Param(m.load_bus, m.T, mutable=True, initialize=0.0)
    m.mg_q_mvar = pyo.Param(m.MG, m.T, mutable=True, initialize=0.0)
    p_terms: dict[int, list[Any]] = {}
    q_terms: dict[int, list[Any]] = {}
    p_terms.setdefault(int(dn.unit_bus), []).append(lambda t: blocks.generation_mw(b, mg, t))
    for n in names:
        j = int(dn.mg_bus[n])
        p_terms.setdefault(j, []).append(lambda t, n=n: -m.grant_mw[n, t])
        q_terms.setdefault(j, []).append(lambda t, n=n: -m.mg_q_mvar[n, t])
    for j in load_buses:  # shedding gives back the fraction S_t / L_t of every bus's load
        p_terms.setdefault(j, []).append(lambda t, j=j: m.shed_share_p[j, t] * b.shed_mw[t])
        q_terms.setdefault(j, []).append(lambda t, j=j: m.shed_share_q[j, t] * b.shed_mw[t])
    p_inj = {j: (lambda t, fs=fs: pyo.quicksum(f(t) for f in fs)) for j, fs in p_terms.items()}
    q_inj = {j: (lambda t, fs=fs: pyo.quicksum(f(t) for f in fs)) for j, fs in q_terms.items()}
    m.net = pyo.Block()
    add_lindistflow(
        m.net, network, m.T, p_inj_mw=p_inj, q_inj_mvar=q_inj, n_polygon=cfg.n_polygon, s_max_factor=cfg.s_max_factor
    )
    m.root_con = pyo.Constraint(m.T, rule=lambda m, t: m.sub.buy_mw[t] - m.sub.sell_mw[t] == m.net.p_root_mw[t])


def _check_len(name: str, series: Sequence[float], n: int) -> None:
    if len(series) != n:
        raise ValueError(f"{name}: {len(series)} values for a horizon of {n} steps")


def _grant_cap_mw(pcc_max_mw: float, request: Sequence[float]) -> float:
    if math.isfinite(pcc_max_mw):
        return pcc_max_mw
    return max((abs(r) for r in request), default=0.0)


def import_range_mw(problem: PartyProblem) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """An MG's feasible import per step without shedding, from its units' power limits only:
    ``lo = L - PV - W - P^dg_max - P^dis_max`` (everything at full output) and ``hi = L + P^ch_max``
    (renewables curtailed, full charging), both within ``+-pcc_max_mw``. Battery energy, diesel ramps
    and minimum output are ignored (the range is a per-step bound, not a guarantee)."""
    mg, fc = problem.mg, problem.forecast
    dg = mg.diesel.p_max_mw if mg.diesel else 0.0
    dis = mg.battery.p_dis_max_mw if mg.battery else 0.0
    ch = mg.battery.p_ch_max_mw if mg.battery else 0.0
    cap = mg.pcc_max_mw
    lo = tuple(
        max(-cap, max(ld, 0.0) - max(pv, 0.0) - max(w, 0.0) - dg - dis)
        for ld, pv, w in zip(fc.load_p_mw, fc.pv_p_mw, fc.wind_p_mw, strict=True)
    )
    hi = tuple(min(cap, max(ld, 0.0) + ch) for ld in fc.load_p_mw)
    return lo, hi


def set_dno_data(
    m: pyo.ConcreteModel,
    dn: DnSite,
    requests: Mapping[str, Sequence[float]],
    pcc_max_mw: Mapping[str, float],
    horizon: Horizon,
    cfg: ScConfig,
    ranges: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
) -> None:
    """Write the DN's data, the tariff, the requests, the deviation prices and (cases 2/3) the feeder
    loads into a model built by :func:`build_dno_model`. Grant bounds: ``+-pcc_max_mw`` (or
    ``max |r|``), narrowed to ``ranges[m]`` = (lo, hi) per step where given, and always widened to
    hold the request. Raises ``ValueError`` on inconsistent data."""
    n = horizon.n_steps
    mg = dn.problem.mg
    fc = dn.problem.forecast
    blocks.set_party_data(m.dn, dn.problem, horizon)
    caps = {}
    for name in m.MG:
        r = requests[name]
        _check_len(f"request of {name}", r, n)
        caps[name] = _grant_cap_mw(pcc_max_mw[name], r)
        rng = (ranges or {}).get(name)
        if rng is not None:
            _check_len(f"import range of {name}", rng[0], n)
            _check_len(f"import range of {name}", rng[1], n)
        for t in range(n):
            lo, hi = -caps[name], caps[name]
            if rng is not None:
                lo, hi = max(lo, float(rng[0][t])), min(hi, float(rng[1][t]))
            m.grant_lo_mw[name, t] = min(lo, float(r[t]))
            m.grant_hi_mw[name, t] = max(hi, float(r[t]))
            m.tie[name].tie_target_mw[t] = float(r[t])
    aggregate = hasattr(m, "tie_agg")
    per_mg_price = cfg.redistribution_price_per_mwh if aggregate else cfg.deviation_price_per_mwh
    for name in m.MG:
        m.tie[name].tie_price_per_mwh = per_mg_price
    if aggregate:
        m.tie_agg.tie_price_per_mwh = cfg.deviation_price_per_mwh
        for t in range(n):
            m.tie_agg.tie_target_mw[t] = sum(float(requests[name][t]) for name in m.MG)
    ch = mg.battery.p_ch_max_mw if mg.battery else 0.0
    dis = mg.battery.p_dis_max_mw if mg.battery else 0.0
    dg = mg.diesel.p_max_mw if mg.diesel else 0.0
    s = m.sub
    for t in range(n):
        s.price_buy_per_mwh[t] = horizon.buy_price_per_mwh[t]
        s.price_sell_per_mwh[t] = horizon.sell_price_per_mwh[t]
        bound = max(fc.load_p_mw[t] + ch, fc.pv_p_mw[t] + fc.wind_p_mw[t] + dg + dis) + sum(caps.values())
        s.exch_cap_mw[t] = min(mg.pcc_max_mw, bound)
    if hasattr(m, "net"):
        p_load = {int(j): list(v) for j, v in dn.feeder_p_mw.items()}
        q_load = {int(j): list(v) for j, v in dn.feeder_q_mvar.items()}
        set_network_loads(m.net, p_load, q_load)
        for t in range(n):
            total = sum(v[t] for v in p_load.values())
            if abs(total - max(fc.load_p_mw[t], 0.0)) > _LOAD_SUM_TOL_MW * max(1.0, abs(total)):
                raise ValueError(
                    f"DN load forecast {fc.load_p_mw[t]:.6f} MW at step {t} differs from the "
                    f"sum of the feeder loads per bus {total:.6f} MW"
                )
            for j in m.load_bus:
                m.shed_share_p[j, t] = p_load[j][t] / total if j in p_load and total > 0 else 0.0
                m.shed_share_q[j, t] = q_load[j][t] / total if j in q_load and total > 0 else 0.0
        for name in m.MG:
            q = dn.mg_q_mvar.get(name)
            if q is not None:
                _check_len(f"reactive withdrawal of {name}", q, n)
            for t in range(n):
                m.mg_q_mvar[name, t] = float(q[t]) if q is not None else 0.0


@dataclass(frozen=True)
class DnoOutcome:
    """What step 2 hands back (see :class:`ScResult` for the meaning of the fields)."""

    raw_status: SolveStatus
    termination: str
    message: str
    objective: float | None
    mip_gap: float | None
    grants_mw: dict[str, tuple[float, ...]]
    plan: PartyPlan | None
    substation_import_mw: tuple[float, ...]
    dn_cost: float | None
    penalties: dict[str, float]
    vm_pu: dict[tuple[int, int], float]
    loading_percent: dict[tuple[int, int], float]

    @classmethod
    def failed(cls, status: SolveStatus, termination: str, message: str) -> DnoOutcome:
        """Step 2 without a plan."""
        return cls(status, termination, message, None, None, {}, None, (), None, {}, {}, {})


class DnoModel:
    """Step 2: the DNO's MILP, built once per structure and re-solved with new data
    (:class:`~ems_controllers.core.model_cache.ModelCache`)."""

    def __init__(self, backend: str = "contrib") -> None:
        self.backend = backend
        self._models = ModelCache(_CACHE_SIZE, backend)

    @staticmethod
    def _key(
        dn: DnSite, names: list[str], net: NetworkData | None, horizon: Horizon, cfg: ScConfig, opts: SolverOptions
    ) -> tuple:
        """What fixes the structure of the DNO's model (the network by identity: see ``keep``)."""
        key: tuple = (
            blocks.party_key(dn.problem.mg),
            tuple(names),
            horizon.n_steps,
            horizon.dt_h,
            opts.pwl_max_error_per_h,
            cfg.case == 3,
            cfg.n_polygon,
        )
        if net is not None:
            loads = tuple(sorted({int(j) for j in dn.feeder_p_mw} | {int(j) for j in dn.feeder_q_mvar}))
            key += (
                id(net),
                int(dn.unit_bus),
                tuple(sorted((n, int(b)) for n, b in dn.mg_bus.items())),
                loads,
                cfg.s_max_factor,
            )
        return key

    def solve(
        self,
        dn: DnSite,
        requests: Mapping[str, Sequence[float]],
        pcc_max_mw: Mapping[str, float],
        network: NetworkData | None,
        horizon: Horizon,
        opts: SolverOptions,
        cfg: ScConfig,
        ranges: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    ) -> DnoOutcome:
        """Step 2 for the given requests (and, case 3, the MGs' import ranges: see
        :func:`set_dno_data`)."""
        names = list(requests)
        net = network if cfg.case in (2, 3) else None
        try:
            run = self._models.solve(
                self._key(dn, names, net, horizon, cfg, opts),
                lambda: build_dno_model(dn, names, net, horizon.n_steps, horizon.dt_h, cfg, opts.pwl_max_error_per_h),
                lambda m: set_dno_data(m, dn, requests, pcc_max_mw, horizon, cfg, ranges),
                opts,
                keep=net,
            )
        except (ValueError, KeyError) as exc:
            log.error("DNO: bad input: %s", exc)
            return DnoOutcome.failed(SolveStatus.ERROR, "bad_input", str(exc))
        raw = run.raw
        if not raw.feasible:
            log.warning("DNO: %s (%s) %s", raw.status, raw.termination, raw.message)
            return DnoOutcome.failed(raw.status, raw.termination, raw.message)
        m, T, dt = run.model, run.model.T, horizon.dt_h
        mg, b = dn.problem.mg, m.dn
        grants = {n: tuple(float(m.grant_mw[n, t].value or 0.0) for t in T) for n in names}
        sub = tuple(float((m.sub.buy_mw[t].value or 0.0) - (m.sub.sell_mw[t].value or 0.0)) for t in T)
        plan = blocks.party_plan(
            b,
            mg,
            T,
            import_mw=[pyo.value(b.import_mw[t]) for t in T],
            cost=[pyo.value(b.unit_cost[t] + m.sub.exch_cost[t]) for t in T],
        )
        dg = sum(pyo.value(b.dg_cost[t]) for t in T) if mg.diesel is not None else 0.0
        dn_cost = dg + sum(pyo.value(m.sub.exch_cost[t]) for t in T)
        dev_price = cfg.deviation_price_per_mwh
        if cfg.case == 3:
            deviation = sum(pyo.value(m.tie_agg.tie_cost[t]) for t in T)
            redistribution = sum(pyo.value(m.tie[n].tie_cost[t]) for n in names for t in T)
        else:
            deviation = sum(
                dev_price * dt * abs(grants[n][k] - float(requests[n][k])) for n in names for k in range(len(T))
            )
            redistribution = 0.0
        penalties = {
            "shed": sum(pyo.value(b.shed_cost[t]) for t in T),
            "curtailment": sum(pyo.value(b.res_cost[t]) for t in T),
            "deviation": deviation,
            "redistribution": redistribution,
        }
        if hasattr(m, "net"):
            vm, loading = predicted(m.net)
        elif network is not None:
            vm, loading = _snapshot_prediction(network, dn, plan, grants, horizon)
        else:
            vm, loading = {}, {}
        return DnoOutcome(
            raw.status,
            raw.termination,
            raw.message,
            raw.objective,
            raw.mip_gap,
            grants,
            plan,
            sub,
            dn_cost,
            penalties,
            vm,
            loading,
        )


def _snapshot_prediction(
    network: NetworkData, dn: DnSite, plan: PartyPlan, grants: Mapping[str, Sequence[float]], horizon: Horizon
) -> tuple[dict[tuple[int, int], float], dict[tuple[int, int], float]]:
    """LinDistFlow voltages and loadings of an unconstrained (case 1) schedule, step by step."""
    vm: dict[tuple[int, int], float] = {}
    loading: dict[tuple[int, int], float] = {}
    fc = dn.problem.forecast
    for t in range(horizon.n_steps):
        keep = 1.0 - plan.load_shed_mw[t] / fc.load_p_mw[t] if fc.load_p_mw[t] > 0 else 1.0
        p: dict[int, float] = {}
        q: dict[int, float] = {}
        for j, v in dn.feeder_p_mw.items():
            p[int(j)] = p.get(int(j), 0.0) - keep * v[t]
        for j, v in dn.feeder_q_mvar.items():
            q[int(j)] = q.get(int(j), 0.0) - keep * v[t]
        gen = plan.diesel_p_mw[t] + plan.pv_p_mw[t] + plan.wind_p_mw[t] - plan.battery_p_mw[t]
        p[int(dn.unit_bus)] = p.get(int(dn.unit_bus), 0.0) + gen
        for n, g in grants.items():
            j = int(dn.mg_bus[n])
            p[j] = p.get(j, 0.0) - g[t]
            qm = dn.mg_q_mvar.get(n)
            q[j] = q.get(j, 0.0) - (qm[t] if qm is not None else 0.0)
        snap = lindistflow_solve(network, p, q)
        vm.update({(b, t): v for b, v in snap.vm_pu.items()})
        loading.update({(li, t): v for li, v in snap.loading_percent.items()})
    return vm, loading


# --------------------------------------------------------------------------------------------------
# Step 3: imports tied to grants (a network hook of SystemModel)
# --------------------------------------------------------------------------------------------------


def _import_flow(m: pyo.ConcreteModel, n: str) -> Callable[[Any], Any]:
    """``t -> m.party[n].import_mw[t]``: party ``n``'s import as the flow of a tied exchange."""
    return lambda t: m.party[n].import_mw[t]


class _GrantTie:
    """``SystemModel`` network hook: ties each MG's import to its grant
    (``blocks.add_tied_exchange`` on ``m.party[name].import_mw``, target = grant, price = pi^dev) and
    puts the deviation cost in ``m.network_cost``. The grants live in mutable params; :meth:`set`
    writes them into every model this hook built for the same parties before a solve, and a model
    built during the solve reads them at build time."""

    _KEEP = 8

    def __init__(self) -> None:
        self.grants: dict[str, Sequence[float]] = {}
        self.price_per_mwh = 0.0
        self.dt_h = 1.0
        self._models: list[tuple[tuple[str, ...], pyo.ConcreteModel]] = []

    def __call__(self, m: pyo.ConcreteModel, problems: Sequence[PartyProblem], T: pyo.Set) -> None:
        names = [p.mg.name for p in problems]
        m.grant_tie = pyo.Block(names)
        for n in names:
            blocks.add_tied_exchange(m.grant_tie[n], _import_flow(m, n), T, self.dt_h, price_per_mwh=self.price_per_mwh)
        m.network_cost = pyo.Expression(T, rule=lambda m, t: pyo.quicksum(m.grant_tie[n].tie_cost[t] for n in names))
        self._write(m, names)
        self._models.append((tuple(names), m))
        del self._models[: -self._KEEP]

    def set(self, grants: Mapping[str, Sequence[float]], price_per_mwh: float, dt_h: float) -> None:
        self.grants = dict(grants)
        self.price_per_mwh = price_per_mwh
        self.dt_h = dt_h
        for names, m in self._models:
            if set(names) <= set(grants) and all(len(grants[n]) == len(m.T) for n in names):
                self._write(m, list(names))

    def _write(self, m: pyo.ConcreteModel, names: list[str]) -> None:
        for n in names:
            blk = m.grant_tie[n]
            blk.tie_price_per_mwh = self.price_per_mwh
            g = self.grants.get(n)
            for t in m.T:
                blk.tie_target_mw[t] = float(g[t]) if g is not None else 0.0


# --------------------------------------------------------------------------------------------------
# The strategy
# --------------------------------------------------------------------------------------------------


class _Failed(Exception):
    def __init__(self, step: ScStep, status: SolveStatus, termination: str, message: str) -> None:
        super().__init__(message)
        self.step, self.status, self.termination, self.message = step, status, termination, message


@dataclass(frozen=True)
class _Solved:
    """What a successful solve gives a step: its objective and its plans."""

    objective: float
    plans: dict[str, PartyPlan]


def _check(
    step: ScStep, what: str, res: SolveResult[Any], stati: list[SolveStatus], gaps: list[float | None]
) -> _Solved:
    """A step's solve: its objective and plans, its status and gap noted; raises :class:`_Failed`
    when it has no plan."""
    if not res.ok:
        raise _Failed(
            step,
            res.status,
            res.termination,
            f"{step} ({what}): {res.status} ({res.termination}) {res.message}".strip(),
        )
    if res.objective is None or res.plans is None:  # ok: a feasible plan, hence an objective
        raise ValueError(f"{step} ({what}): {res.status} without an objective or plans")
    stati.append(res.status)
    gaps.append(res.mip_gap)
    return _Solved(res.objective, res.plans)


@dataclass
class _Round:
    """One planning instant in the making: its inputs, the status of every solve so far, and what the
    steps found: ``found``, the :class:`ScResult` filled in step by step (its ``status`` and
    ``termination`` are set when the round ends)."""

    mgs: Sequence[PartyProblem]
    horizon: Horizon
    opts: SolverOptions
    cfg: ScConfig
    found: ScResult
    stati: list[SolveStatus] = field(default_factory=list)
    standalone: tuple[dict[str, float], dict[str, tuple[float, ...]]] | None = None
    """Each MG alone against the tariff: its cost and planned import (solved once; the split's case-2
    baseline reuses case 3's)."""


class SecurityConstrainedModel:
    """The three steps and the split rule (module docstring). Holds the models of every step, built
    once per structure and re-solved by parameter updates:

    - step 1: a :class:`LocalModel` (stand-alone solves) and a :class:`SystemModel` (the MGC's
      solve, and the coalitions of the split rule);
    - step 2: a :class:`DnoModel`;
    - step 3: a :class:`SystemModel` with the grant-tie hook, over one MG (case 1/2) or all (3).
    """

    def __init__(self, backend: str = "contrib") -> None:
        self.local = LocalModel(backend)
        self.mgc = SystemModel(backend=backend)
        self.dno = DnoModel(backend)
        self._tie = _GrantTie()
        self.reschedule = SystemModel(network=self._tie, backend=backend)

    def solve(
        self,
        mg_problems: Sequence[PartyProblem],
        dn: DnSite,
        network: NetworkData | None,
        horizon: Horizon,
        opts: SolverOptions,
        cfg: ScConfig,
        case2_network: NetworkData | None = None,
    ) -> ScResult:
        """One planning instant (module docstring). ``case2_network``: the network of case 2 (tie lines
        open) on which case 3's split solves its case-2 baseline; None: ``network``."""
        names = [p.mg.name for p in mg_problems]
        err = None
        if not names or len(set(names)) != len(names) or DN in names:
            err = f"MG names must be unique, non-empty and not {DN!r}: {names}"
        elif cfg.case in (2, 3) and network is None:
            err = f"case {cfg.case} needs a NetworkData"
        if err is not None:
            log.error("security_constrained: bad input: %s", err)
            return ScResult(cfg.case, SolveStatus.ERROR, "bad_input", ScStep.INPUT, err, messages=[])
        r = _Round(mg_problems, horizon, opts, cfg, ScResult(cfg.case, SolveStatus.OPTIMAL))
        try:
            self._step1(r)
            self._step2(r, dn, network)
            mg_final_cost = self._step3(r)
            if cfg.case == 3 and cfg.split:
                self._split(r, mg_final_cost, dn, case2_network if case2_network is not None else network)
        except _Failed as f:
            log.warning("security_constrained case %d: %s", cfg.case, f.message)
            return replace(
                r.found, status=f.status, termination=f.termination, failed_step=f.step, message=f.message, plans=None
            )
        status = SolveStatus.FEASIBLE if SolveStatus.FEASIBLE in r.stati else SolveStatus.OPTIMAL
        return replace(r.found, status=status, termination="ok")

    # ---- step 1 ---------------------------------------------------------------------------------
    def _step1(self, r: _Round) -> None:
        t0 = time.perf_counter()
        msgs = r.found.messages
        gaps: list[float | None] = []
        if r.standalone is None:
            costs: dict[str, float] = {}
            imports: dict[str, tuple[float, ...]] = {}
            for p in r.mgs:
                res = self.local.solve(p, r.horizon, r.opts)
                solved = _check(ScStep.STEP1, f"stand-alone {p.mg.name}", res, r.stati, gaps)
                costs[p.mg.name] = float(solved.objective)
                imports[p.mg.name] = solved.plans[p.mg.name].import_mw
            r.standalone = (costs, imports)
        standalone, requests = dict(r.standalone[0]), dict(r.standalone[1])
        r.found = replace(r.found, standalone_costs=standalone)
        if r.cfg.case == 3:
            msgs.extend(_problem_message(p) for p in r.mgs)
            agg = self.mgc.solve(list(r.mgs), r.horizon, r.opts)
            solved = _check(ScStep.STEP1, "MGC aggregate", agg, r.stati, gaps)
            aggregated = float(solved.objective)
            requests = {n: solved.plans[n].import_mw for n in requests}
            coalitions = {frozenset({n}): c for n, c in standalone.items()}
            coalitions[frozenset(requests)] = aggregated
            ranges = {p.mg.name: import_range_mw(p) for p in r.mgs}
            r.found = replace(r.found, aggregated_cost=aggregated, coalition_costs=coalitions, import_ranges_mw=ranges)
            msgs.append(
                {"sender": MGC, "receiver": DNO, "kind": "request", "values": {n: list(q) for n, q in requests.items()}}
            )
            msgs.append(
                {
                    "sender": MGC,
                    "receiver": DNO,
                    "kind": "import_range",
                    "values": {n: {"min": list(lo), "max": list(hi)} for n, (lo, hi) in ranges.items()},
                }
            )
        else:
            for n, q in requests.items():
                msgs.append({"sender": n, "receiver": DNO, "kind": "request", "values": list(q)})
        r.found.mip_gaps[ScStep.STEP1] = _max_gap(gaps)
        r.found = replace(r.found, requests_mw=requests, step1_s=time.perf_counter() - t0)

    # ---- step 2 ---------------------------------------------------------------------------------
    def _step2(self, r: _Round, dn: DnSite, network: NetworkData | None) -> None:
        t0 = time.perf_counter()
        pcc = {p.mg.name: p.mg.pcc_max_mw for p in r.mgs}
        found = r.found
        ranges = found.import_ranges_mw or None
        res = self.dno.solve(dn, found.requests_mw, pcc, network, r.horizon, r.opts, r.cfg, ranges)
        r.found = replace(found, step2_s=time.perf_counter() - t0)
        if res.plan is None:
            raise _Failed(
                ScStep.STEP2,
                res.raw_status,
                res.termination,
                f"step2 (DNO): {res.raw_status} ({res.termination}) {res.message}".strip(),
            )
        r.stati.append(res.raw_status)
        r.found.mip_gaps[ScStep.STEP2] = res.mip_gap
        r.found = replace(
            r.found,
            grants_mw=res.grants_mw,
            plans={DN: res.plan},
            substation_import_mw=res.substation_import_mw,
            dn_cost=res.dn_cost,
            dn_cost_with_penalties=res.objective,
            dn_penalties=res.penalties,
            vm_pu=res.vm_pu,
            loading_percent=res.loading_percent,
        )
        if r.cfg.case == 3:
            grants = {n: list(g) for n, g in res.grants_mw.items()}
            r.found.messages.append({"sender": DNO, "receiver": MGC, "kind": "grant", "values": grants})
        else:
            for n, g in res.grants_mw.items():
                r.found.messages.append({"sender": DNO, "receiver": n, "kind": "grant", "values": list(g)})

    # ---- step 3 ---------------------------------------------------------------------------------
    def _step3(self, r: _Round) -> float:
        """Step 3; returns the MGs' total step-3 objective (``mg_final_cost``)."""
        t0 = time.perf_counter()
        case3 = r.cfg.case == 3
        grants = r.found.grants_mw
        price, dt = r.cfg.deviation_price_per_mwh, r.horizon.dt_h
        groups = [list(r.mgs)] if case3 else [[p] for p in r.mgs]
        plans: dict[str, PartyPlan] = {}
        total = 0.0
        gaps: list[float | None] = []
        for group in groups:
            self._tie.set({p.mg.name: grants[p.mg.name] for p in group}, price, dt)
            what = "MGC" if case3 else group[0].mg.name
            res = self.reschedule.solve(group, r.horizon, r.opts)
            solved = _check(ScStep.STEP3, what, res, r.stati, gaps)
            total += float(solved.objective)
            plans.update(solved.plans)
        mg_costs, dev_costs = {}, {}
        for p in r.mgs:
            n = p.mg.name
            plan = plans[n]
            dev = [price * dt * abs(i - g) for i, g in zip(plan.import_mw, grants[n], strict=True)]
            plan = replace(plan, cost=tuple(c + d for c, d in zip(plan.cost, dev, strict=True)))
            plans[n] = plan
            mg_costs[n] = float(sum(plan.cost))
            dev_costs[n] = float(sum(dev))
        r.found = replace(
            r.found,
            plans={**plans, **(r.found.plans or {})},
            mg_costs=mg_costs,
            mg_deviation_costs=dev_costs,
            mg_final_cost=total,
        )
        r.found.mip_gaps[ScStep.STEP3] = _max_gap(gaps)
        if case3:
            for p in r.mgs:
                r.found.messages.append(
                    {
                        "sender": MGC,
                        "receiver": p.mg.name,
                        "kind": "schedule",
                        "values": list(plans[p.mg.name].import_mw),
                    }
                )
        r.found = replace(r.found, step3_s=time.perf_counter() - t0)
        return total

    # ---- split rule (case 3) --------------------------------------------------------------------
    def _baseline(self, r: _Round, dn: DnSite, network: NetworkData | None) -> ScResult:
        """The case-2 chain on the same inputs (steps 1-3 with ``case=2`` on ``network``): each MG's
        outside option for the split. A failure of any of its steps fails the split."""
        base = _Round(
            r.mgs, r.horizon, r.opts, replace(r.cfg, case=2), ScResult(2, SolveStatus.OPTIMAL), standalone=r.standalone
        )
        try:
            self._step1(base)
            self._step2(base, dn, network)
            self._step3(base)
        except _Failed as f:
            raise _Failed(ScStep.SPLIT, f.status, f.termination, f"case-2 baseline: {f.message}") from None
        r.stati.extend(base.stati)
        found = base.found
        msgs = r.found.messages
        msgs.append({"sender": MGC, "receiver": DNO, "kind": "baseline_request", "values": found.requests_mw})
        msgs.append({"sender": DNO, "receiver": MGC, "kind": "baseline_grant", "values": found.grants_mw})
        return found

    def _split(self, r: _Round, mg_final_cost: float, dn: DnSite, network: NetworkData | None) -> None:
        t0 = time.perf_counter()
        costs = r.found.coalition_costs  # v({m}) and v(N) from step 1; the other coalitions added here
        by_name = {p.mg.name: p for p in r.mgs}
        gaps: list[float | None] = []
        for k in range(2, len(r.mgs)):
            for c in itertools.combinations(list(by_name), k):
                res = self.mgc.solve([by_name[n] for n in c], r.horizon, r.opts)
                solved = _check(ScStep.SPLIT, f"coalition {'+'.join(c)}", res, r.stati, gaps)
                costs[frozenset(c)] = float(solved.objective)
        t_base = time.perf_counter()
        base = self._baseline(r, dn, network)
        baseline_s = time.perf_counter() - t_base
        gaps.extend(base.mip_gaps.values())
        split: Split = split_against_case2(costs, base.mg_costs, mg_final_cost)
        if not split.individually_rational:
            log.warning(
                "security_constrained case 3: the MGs pay %.2f more than in case 2: no split leaves each "
                "at or below its case-2 bill",
                -split.joint_saving,
            )
        standalone = r.found.standalone_costs
        r.found = replace(
            r.found,
            saving=sum(standalone.values()) - costs[frozenset(by_name)],
            shapley_shares=shapley_shares(costs),
            mg_bills=split.bills,
            case2_mg_costs=dict(base.mg_costs),
            case2_plans=dict(base.plans or {}),
            case2_grants_mw=dict(base.grants_mw),
            case2_dn_cost=base.dn_cost,
            case2_dn_cost_with_penalties=base.dn_cost_with_penalties,
            joint_saving=split.joint_saving,
            split_rule=split.rule,
            baseline_s=baseline_s,
        )
        r.found.mip_gaps[ScStep.SPLIT] = _max_gap(gaps)
        for n in by_name:
            values = {
                "standalone_cost": standalone[n],
                "share_of_saving": r.found.shapley_shares[n],
                "case2_bill": base.mg_costs[n],
                "bill": split.bills[n],
            }
            r.found.messages.append({"sender": MGC, "receiver": n, "kind": "split", "values": values})
        r.found = replace(r.found, split_s=time.perf_counter() - t0)


def _problem_message(p: PartyProblem) -> dict[str, Any]:
    """An MG's problem as it hands it to the MGC (case 3)."""
    return {
        "sender": p.mg.name,
        "receiver": MGC,
        "kind": "problem",
        "values": {
            "load_p_mw": list(p.forecast.load_p_mw),
            "pv_p_mw": list(p.forecast.pv_p_mw),
            "wind_p_mw": list(p.forecast.wind_p_mw),
            "e_mwh": p.state.e_mwh,
            "diesel_p_mw": p.state.diesel_p_mw,
        },
    }


def _max_gap(gaps: Sequence[float | None]) -> float | None:
    known = [g for g in gaps if g is not None]
    return max(known) if known else None
