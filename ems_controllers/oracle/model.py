r"""The oracle: one operator with full information schedules every party, unit and operable switch
against the tariff with the network inside the model. A benchmark, not a coordination scheme.

It is the system MILP (:mod:`ems_controllers.core.system`: every party's units and balance, the
substation priced by the tariff) with the network hook :class:`NetworkRows`, which adds

- **LinDistFlow** (:func:`ems_controllers.core.network.add_lindistflow`) over the energised net with
  every operable switch closed: each MG's net withdrawal ``I_{p,t}`` at its bus (its reactive
  withdrawal: its load's, at the bus's load Q/P ratio), the network operator's (DN) feeder load per bus
  and its units at its bus; the voltage band narrowed by ``vm_margin_pu`` at both ends and each branch
  held to ``s_max_factor`` of its rating (the inscribed polygon), so that what LinDistFlow leaves out
  (the losses' own voltage drop ``(r^2+x^2) l``, the current's ``1/v``) stays inside the margins;
- **losses** as a piecewise-linear function of the branch flows: ``l_b >= c_b (2 x_k P - x_k^2)`` and the
  same in Q (:mod:`ems_controllers.core.losses`, ``c_b = r_pu / S_base`` MW per MW^2). The tangents
  never overestimate ``c_b (P^2 + Q^2)`` and underestimate it by at most ``loss_max_error_share`` of the
  branch's loss at the largest flow it may carry, per step (:func:`branch_loss_error_mw`; the tangent
  spacing is chosen for that). A branch's loss is drawn at its far end
  (its flow is measured at the near end) and its reactive loss is ``x/r`` times it, so the substation
  supplies the imports plus the losses: ``G_t = P^{root}_t``, which the tariff prices. The tangents
  only bound a loss from below, so where surplus energy has no use (export blocked by the network, an
  islanded system, a zero price) a minimiser could "lose" it on a branch instead of curtailing it; each
  MWh of modelled loss therefore carries ``dump_price_per_mwh`` = the highest curtailment price + 1 in
  the objective (``m.network_cost``): curtailing is always cheaper than inventing losses, and the loss
  sits on its tangents. The reported cost (``SolveResult.objective``) includes this term. Against AC the
  modelled loss misses ``c_b (P^2+Q^2) (1/v^2 - 1)`` (the current at ``v`` pu) besides the tangent
  error; the co-simulation measures the AC losses, and the tests state the tolerance;
- **switches** as binaries per group and step ``z_{g,t}``: the tie switches (one group: the scenario
  drives them together), each cluster switch and, if the site names them, MGs' PCC switches (only for
  an MG with a grid-forming unit: it can run islanded; open, its import is 0 and its reactive withdrawal
  leaves the network). A switched branch's flows are ``|P|, |Q| <= S z`` and its voltage-drop and angle rows hold
  only when closed (big-M). Loops are allowed: with the angle rows LinDistFlow solves meshed networks
  (:mod:`ems_controllers.core.network`), and the AC grid runs them meshed.

Each MG's flexible loads move as the scenario allows (:meth:`NetworkRows._flexible_loads`): its EVs'
charging inside their plug-in window, and with ``dr_share`` > 0 a share of its load within the day.
Islanded, the slack's battery keeps a reserve for the losses the model misses (:meth:`NetworkRows._slack_reserve`).

The objective is the system's (every party's unit costs and penalties, the substation at the tariff);
an optimum is the least cost any strategy can reach with the same information and the same assets
while keeping the network's limits, up to the stated tolerances. :meth:`OracleModel.solve` runs two
passes (switches held closed, started from the network-free optimum's commitments; then the switches
free, started from the first pass). HiGHS stops at ``mip_rel_gap`` (or its time limit); the round
reports its incumbent's cost and the branch-and-bound's lower bound (``OracleRound.lower_bound``):
where the MILP is too large to close, the bound is what the claim rests on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pyomo.environ as pyo

from ems_controllers.core import blocks
from ems_controllers.core.ev import EvSpec
from ems_controllers.core.losses import tangent_points
from ems_controllers.core.model_cache import ModelCache, StartValues
from ems_controllers.core.network import Branch, NetworkData, add_lindistflow, set_network_loads
from ems_controllers.core.system import build_system_model, set_system_data, system_party_plan
from ems_controllers.core.types import (
    DEFAULT_SOLVER_OPTIONS,
    Horizon,
    PartyPlan,
    PartyProblem,
    SolveResult,
    SolverOptions,
)

log = logging.getLogger(__name__)

_CACHE_SIZE = 2
_THETA_MAX_RAD = 0.5  # angles are bounded so that an open switch's angle row can be relaxed by a finite M
_LOAD_SUM_TOL_MW = 1e-6


@dataclass(frozen=True)
class OracleConfig:
    """The oracle's settings (``strategy.Settings``)."""

    vm_margin_pu: float = 0.005
    s_max_factor: float = 0.95
    loss_max_error_share: float = 2e-3
    n_polygon: int = 12
    dr_share: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.vm_margin_pu < 0.05:
            raise ValueError("OracleConfig.vm_margin_pu must be in [0, 0.05)")
        if not 0 < self.s_max_factor <= 1:
            raise ValueError("OracleConfig.s_max_factor must be in (0, 1]")
        if not 0 < self.loss_max_error_share < 1:
            raise ValueError("OracleConfig.loss_max_error_share must be in (0, 1)")
        if not 0 <= self.dr_share < 1:
            raise ValueError("OracleConfig.dr_share must be in [0, 1)")


@dataclass(frozen=True)
class OracleSite:
    """The network as the oracle sees it.

    ``network``: LinDistFlow's view with every operable switch closed. ``party_bus``: each party's bus
    (an MG's own bus behind its PCC; the DN's units' bus). ``feeder_party``: the party whose loads are
    spread over the buses (the DN; its forecast must equal the sum of :class:`NetworkLoads`' feeder
    loads), None if there is none. ``switch_groups``: group name -> the branch ids (``Branch.line``) its
    switches cut; a group's switches open and close together. ``pcc_group``: MG -> its PCC's group (an
    MG without one stays connected). ``islanded``: no upstream grid (the root is a grid-forming bus);
    ``slack_party``: then the party whose unit is the grid's slack (it keeps a reserve for the losses).
    """

    network: NetworkData
    party_bus: Mapping[str, int]
    feeder_party: str | None = None
    switch_groups: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    pcc_group: Mapping[str, str] = field(default_factory=dict)
    islanded: bool = False
    slack_party: str | None = None


@dataclass(frozen=True)
class NetworkLoads:
    """One solve's fixed network data: the feeder party's load per bus (MW, Mvar; one value per step)
    and each MG's reactive withdrawal (Mvar per step; absent: 0)."""

    feeder_p_mw: Mapping[int, Sequence[float]] = field(default_factory=dict)
    feeder_q_mvar: Mapping[int, Sequence[float]] = field(default_factory=dict)
    party_q_mvar: Mapping[str, Sequence[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class OracleRound:
    """What a solve planned besides the parties' plans (per step of the horizon).

    ``lower_bound``: no schedule of this model costs less (the incumbent's cost less the MIP gap).
    ``switch_closed``: group -> closed per step. ``loss_mw``: the modelled network losses.
    ``min_vm_pu`` / ``max_vm_pu``: LinDistFlow's extreme voltages per step (energised buses)."""

    substation_import_mw: tuple[float, ...]
    loss_mw: tuple[float, ...]
    switch_closed: Mapping[str, tuple[bool, ...]]
    min_vm_pu: tuple[float, ...]
    max_vm_pu: tuple[float, ...]
    lower_bound: float | None
    load_shift_mw: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    ev_shift_mw: Mapping[str, tuple[float, ...]] = field(default_factory=dict)


type OracleResult = SolveResult[OracleRound]


Term = Callable[[Any], Any]
"""``t -> expression``: one term of a bus's injection."""


def _scaled(coef: float, comp: Any, *key: Any) -> Term:
    return lambda t: coef * comp[(*key, t)]


def _product(share: Any, j: int, var: Any) -> Term:
    return lambda t: share[j, t] * var[t]


def _generation(b: pyo.Block, mg: Any) -> Term:
    return lambda t: blocks.generation_mw(b, mg, t)


def _switched_q(o: pyo.Block, name: str, group: str) -> Term:
    return lambda t: -o.party_q_mvar[name, t] * o.closed[group, t]


def _summed(terms: Sequence[Term]) -> Term:
    return lambda t: pyo.quicksum(f(t) for f in terms)


def branch_loss_error_mw(br: Branch, data: NetworkData, cfg: OracleConfig) -> float:
    """The most the tangents underestimate a branch's loss at one step (MW): ``loss_max_error_share`` of
    its loss at the largest flow it may carry, ``c (s_max_factor s_max)^2`` (half in P, half in Q)."""
    return cfg.loss_max_error_share * br.loss_per_mw2(data.base_mva) * (cfg.s_max_factor * br.s_max_mva) ** 2


def loss_error_bound_mw(data: NetworkData, cfg: OracleConfig) -> float:
    """The most the tangents underestimate the network's losses at one step (MW), over every branch."""
    return sum(branch_loss_error_mw(br, data, cfg) for br in data.branches)


def loss_excess_share(vm_min_pu: float) -> float:
    """How much more the AC losses of the modelled flows can be than the model's (at 1 pu): the current
    of a power flow at ``v`` pu is ``1/v`` times its 1-pu value, so its losses are ``1/v^2`` times;
    ``1/v_min^2 - 1`` at the band's lower end (10.8 % at 0.95 pu)."""
    return 1.0 / (vm_min_pu * vm_min_pu) - 1.0


class NetworkRows:
    """The system model's network hook (module docstring); ``site`` fixed, the loads written per solve."""

    def __init__(self, site: OracleSite, cfg: OracleConfig) -> None:
        self.site = site
        self.cfg = cfg
        self.dt_h = 1.0  # the horizon's step, set before each build

    def __call__(self, m: pyo.ConcreteModel, problems: Sequence[PartyProblem], T: pyo.Set) -> Callable[[Any], Any]:
        site, data = self.site, self.site.network
        names = [p.mg.name for p in problems]
        missing = [n for n in names if n not in site.party_bus]
        if missing:
            raise ValueError(f"oracle: no bus for parties {missing}")
        m.O = pyo.Block()
        o = m.O
        o.group = pyo.Set(initialize=list(site.switch_groups), ordered=True)
        o.closed = pyo.Var(o.group, T, domain=pyo.Binary)
        o.closed_lo = pyo.Param(o.group, T, mutable=True, initialize=0.0)  # 1: held closed (the first pass)
        o.closed_lo_con = pyo.Constraint(o.group, T, rule=lambda o, g, t: o.closed[g, t] >= o.closed_lo[g, t])
        o.party_q_mvar = pyo.Param(names, T, mutable=True, initialize=0.0)
        o.shed_share = pyo.Param(list(data.buses), T, mutable=True, initialize=0.0)
        o.q_share = pyo.Param(list(data.buses), T, mutable=True, initialize=0.0)
        o.loss_mw = pyo.Var(list(data.lines), T, bounds=(0.0, None))
        self._flexible_loads(m, problems, T)
        p_inj, q_inj = self._injections(m, problems)
        m.net = pyo.Block()
        add_lindistflow(
            m.net, data, T, p_inj_mw=p_inj, q_inj_mvar=q_inj, n_polygon=self.cfg.n_polygon,
            s_max_factor=self.cfg.s_max_factor,
        )  # fmt: skip
        self._losses(m, T)
        self._switches(m, T)
        self._slack_reserve(m, problems, T)
        o.dump_price_per_mwh = pyo.Param(mutable=True, initialize=0.0)
        lines, dt_h = list(data.lines), self.dt_h
        m.network_cost = pyo.Expression(
            T, rule=lambda m, t: o.dump_price_per_mwh * dt_h * pyo.quicksum(o.loss_mw[li, t] for li in lines)
        )
        return lambda t: m.net.p_root_mw[t]

    def _injections(self, m: pyo.ConcreteModel, problems: Sequence[PartyProblem]) -> tuple[dict, dict]:
        """Per bus: the parties' injections, less the losses of the branches that end there."""
        site, o = self.site, m.O
        p_terms: dict[int, list[Term]] = {}
        q_terms: dict[int, list[Term]] = {}
        for prob in problems:
            name, mg = prob.mg.name, prob.mg
            bus = int(site.party_bus[name])
            b = m.party[name]
            if name == site.feeder_party:  # its loads are per bus (params); its units and shedding are variables
                p_terms.setdefault(bus, []).append(_generation(b, mg))
                for j in self.site.network.buses:
                    p_terms.setdefault(j, []).append(_product(o.shed_share, j, b.shed_mw))
                    q_terms.setdefault(j, []).append(_product(o.q_share, j, b.shed_mw))
                continue
            p_terms.setdefault(bus, []).append(_scaled(-1.0, o.pcc_flow_mw, name))
            group = site.pcc_group.get(name)
            if group is None:
                q_terms.setdefault(bus, []).append(_scaled(-1.0, o.party_q_mvar, name))
            else:  # open, the MG's own grid-forming unit serves its reactive load
                q_terms.setdefault(bus, []).append(_switched_q(o, name, group))
        for br in site.network.branches:
            ratio = br.x_pu / br.r_pu if br.r_pu > 0 else 0.0
            p_terms.setdefault(br.to_bus, []).append(_scaled(-1.0, o.loss_mw, br.line))
            q_terms.setdefault(br.to_bus, []).append(_scaled(-ratio, o.loss_mw, br.line))
        return {j: _summed(fs) for j, fs in p_terms.items()}, {j: _summed(fs) for j, fs in q_terms.items()}

    def _flexible_loads(self, m: pyo.ConcreteModel, problems: Sequence[PartyProblem], T: pyo.Set) -> None:
        """Each MG's flexible load on top of its balance: demand response (``D``, within ``dr_share`` of
        its load without EVs, the day's energy kept) and EV charging (``E``, inside the plug-in window, the
        uncontrolled charging's energy ``U`` delivered). Its PCC flow is ``I + D + E - U`` (its load
        forecast holds ``U``), within its PCC limit."""
        o, share = m.O, self.cfg.dr_share
        names = [p.mg.name for p in problems if p.mg.name != self.site.feeder_party]
        o.mg = pyo.Set(initialize=names, ordered=True)
        o.dr_base_mw = pyo.Param(o.mg, T, mutable=True, initialize=0.0)
        o.dr_mw = pyo.Var(o.mg, T, bounds=(None, None) if share > 0 else (0.0, 0.0))
        o.ev_cap_mw = pyo.Param(o.mg, T, mutable=True, initialize=0.0)
        o.ev_uncontrolled_mw = pyo.Param(o.mg, T, mutable=True, initialize=0.0)
        o.ev_energy_mwh = pyo.Param(o.mg, mutable=True, initialize=0.0)
        o.ev_mw = pyo.Var(o.mg, T, bounds=(0.0, None))
        dt_h = self.dt_h
        o.ev_cap_con = pyo.Constraint(o.mg, T, rule=lambda o, n, t: o.ev_mw[n, t] <= o.ev_cap_mw[n, t])
        o.ev_energy_con = pyo.Constraint(
            o.mg, rule=lambda o, n: dt_h * pyo.quicksum(o.ev_mw[n, t] for t in T) == o.ev_energy_mwh[n]
        )
        if share > 0:
            o.dr_lo_con = pyo.Constraint(o.mg, T, rule=lambda o, n, t: o.dr_mw[n, t] >= -share * o.dr_base_mw[n, t])
            o.dr_hi_con = pyo.Constraint(o.mg, T, rule=lambda o, n, t: o.dr_mw[n, t] <= share * o.dr_base_mw[n, t])
            o.dr_day_con = pyo.Constraint(o.mg, rule=lambda o, n: pyo.quicksum(o.dr_mw[n, t] for t in T) == 0.0)
        o.pcc_flow_mw = pyo.Expression(
            o.mg,
            T,
            rule=lambda o, n, t: m.party[n].import_mw[t] + o.dr_mw[n, t] + o.ev_mw[n, t] - o.ev_uncontrolled_mw[n, t],
        )
        limits = {p.mg.name: p.mg.pcc_max_mw for p in problems if p.mg.name in names and math.isfinite(p.mg.pcc_max_mw)}
        o.pcc_limited = pyo.Set(initialize=list(limits), ordered=True)
        o.pcc_hi_con = pyo.Constraint(o.pcc_limited, T, rule=lambda o, n, t: o.pcc_flow_mw[n, t] <= limits[n])
        o.pcc_lo_con = pyo.Constraint(o.pcc_limited, T, rule=lambda o, n, t: o.pcc_flow_mw[n, t] >= -limits[n])

    def _losses(self, m: pyo.ConcreteModel, T: pyo.Set) -> None:
        """``loss >= c (2 x P - x^2) + c (2 y Q - y^2)`` for every pair of tangent points (x, y): the
        sum of two tangent families is the max over the pairs, and fewer rows: one family per flow on
        its own variable."""
        data, o, net = self.site.network, m.O, m.net
        o.loss_p_mw = pyo.Var(list(data.lines), T, bounds=(0.0, None))
        o.loss_q_mw = pyo.Var(list(data.lines), T, bounds=(0.0, None))
        o.loss_cuts = pyo.ConstraintList()
        o.loss_sum_con = pyo.Constraint(
            list(data.lines), T, rule=lambda o, li, t: o.loss_mw[li, t] == o.loss_p_mw[li, t] + o.loss_q_mw[li, t]
        )
        for br in data.branches:
            c = br.loss_per_mw2(data.base_mva)
            if c <= 0.0:
                continue
            flow = max(self.cfg.s_max_factor * br.s_max_mva, 1e-6)
            points = tangent_points(c, flow, branch_loss_error_mw(br, data, self.cfg) / 2.0)
            for t in T:
                for var, flow in ((o.loss_p_mw, net.p_line_mw), (o.loss_q_mw, net.q_line_mvar)):
                    for x in points:
                        o.loss_cuts.add(var[br.line, t] >= c * (2.0 * x * flow[br.line, t] - x * x))

    def _slack_reserve(self, m: pyo.ConcreteModel, problems: Sequence[PartyProblem], T: pyo.Set) -> None:
        """Islanded: the slack's battery (the party at the root) takes what the AC losses exceed the
        modelled ones by, up to ``1/v_min^2 - 1`` of them (the current at the band's lower end): it keeps
        that much discharge power and, cumulated, that much energy above its floor."""
        site = self.site
        slack = next((p.mg for p in problems if p.mg.name == site.slack_party), None)
        if not site.islanded or slack is None or slack.battery is None:
            return
        bat, b, o, lines = slack.battery, m.party[slack.name], m.O, list(site.network.lines)
        share = loss_excess_share(min(site.network.vm_min_pu.values()) + self.cfg.vm_margin_pu)
        steps = list(T)

        def extra(t: Any) -> Any:
            return share * pyo.quicksum(o.loss_mw[li, t] for li in lines)

        o.slack_power_con = pyo.Constraint(T, rule=lambda o, t: b.bat_dis_mw[t] + extra(t) <= bat.p_dis_max_mw)
        o.slack_energy_con = pyo.Constraint(
            T,
            rule=lambda o, t: (
                b.bat_e_mwh[t] >= bat.e_min_mwh + self.dt_h * pyo.quicksum(extra(u) for u in steps if u <= t)
            ),
        )

    def _switches(self, m: pyo.ConcreteModel, T: pyo.Set) -> None:
        """Flows only through closed switches; a switched branch's voltage rows only while closed."""
        data, o, net = self.site.network, m.O, m.net
        by_line = {br.line: br for br in data.branches}
        member = [(g, li) for g, lines in self.site.switch_groups.items() for li in lines]
        unknown = [li for _, li in member if li not in by_line]
        if unknown:
            raise ValueError(f"oracle: switched branches {unknown} are not in the network")
        for j in data.buses:
            for t in T:
                net.theta_rad[j, t].setlb(-_THETA_MAX_RAD)
                net.theta_rad[j, t].setub(_THETA_MAX_RAD)
        w_span = max(data.vm_max_pu.values()) ** 2 - min(data.vm_min_pu.values()) ** 2 + 0.1
        o.sw = pyo.Set(initialize=member, dimen=2, ordered=True)
        # A switched branch's voltage-drop and angle rows (LinDistFlow's own, as `body == 0`) hold only while
        # it is closed: |body| <= M (1 - z).
        drop = {(li, t): net.v_drop_con[li, t].body for _, li in member for t in T}
        turn = {(li, t): net.angle_con[li, t].body for _, li in member for t in T}
        for _, li in member:
            for t in T:
                net.v_drop_con[li, t].deactivate()
                net.angle_con[li, t].deactivate()
        big_theta = 2.0 * _THETA_MAX_RAD + 0.1
        o.drop_lo = pyo.Constraint(o.sw, T, rule=lambda o, g, li, t: drop[li, t] >= -w_span * (1 - o.closed[g, t]))
        o.drop_hi = pyo.Constraint(o.sw, T, rule=lambda o, g, li, t: drop[li, t] <= w_span * (1 - o.closed[g, t]))
        o.turn_lo = pyo.Constraint(o.sw, T, rule=lambda o, g, li, t: turn[li, t] >= -big_theta * (1 - o.closed[g, t]))
        o.turn_hi = pyo.Constraint(o.sw, T, rule=lambda o, g, li, t: turn[li, t] <= big_theta * (1 - o.closed[g, t]))

        def cap(li: int) -> float:
            return by_line[li].s_max_mva

        o.p_lo = pyo.Constraint(o.sw, T, rule=lambda o, g, li, t: net.p_line_mw[li, t] >= -cap(li) * o.closed[g, t])
        o.p_hi = pyo.Constraint(o.sw, T, rule=lambda o, g, li, t: net.p_line_mw[li, t] <= cap(li) * o.closed[g, t])
        o.q_lo = pyo.Constraint(o.sw, T, rule=lambda o, g, li, t: net.q_line_mvar[li, t] >= -cap(li) * o.closed[g, t])
        o.q_hi = pyo.Constraint(o.sw, T, rule=lambda o, g, li, t: net.q_line_mvar[li, t] <= cap(li) * o.closed[g, t])


def set_network_data(
    m: pyo.ConcreteModel, site: OracleSite, cfg: OracleConfig, loads: NetworkLoads, problems: Sequence[PartyProblem]
) -> None:
    """Write one solve's network data: the feeder loads, the parties' reactive withdrawals, the shares
    of the feeder party's shedding per bus, the narrowed voltage band; widen the substation's big-M by
    what the losses can add."""
    n = len(m.T)
    p_load = {int(j): [float(v) for v in s] for j, s in loads.feeder_p_mw.items()}
    q_load = {int(j): [float(v) for v in s] for j, s in loads.feeder_q_mvar.items()}
    set_network_loads(m.net, p_load, q_load)
    feeder = next((p for p in problems if p.mg.name == site.feeder_party), None)
    for t in range(n):
        total = sum(v[t] for v in p_load.values())
        if feeder is not None and abs(total - max(feeder.forecast.load_p_mw[t], 0.0)) > _LOAD_SUM_TOL_MW * max(
            1.0, total
        ):
            raise ValueError(
                f"oracle: {site.feeder_party}'s load forecast {feeder.forecast.load_p_mw[t]:.6f} MW at step {t} "
                f"differs from its loads per bus, {total:.6f} MW"
            )
        for j in site.network.buses:
            m.O.shed_share[j, t] = p_load[j][t] / total if j in p_load and total > 0 else 0.0
            m.O.q_share[j, t] = q_load[j][t] / total if j in q_load and total > 0 else 0.0
    for prob in problems:
        q = loads.party_q_mvar.get(prob.mg.name)
        for t in range(n):
            m.O.party_q_mvar[prob.mg.name, t] = float(q[t]) if q is not None else 0.0
    m.O.dump_price_per_mwh = 1.0 + max([0.0, *(p.mg.res_curtailment_price_per_mwh for p in problems)])
    data = site.network
    for j in m.net.nonroot_bus:
        m.net.w_min_pu2[j] = (data.vm_min_pu[j] + cfg.vm_margin_pu) ** 2
        m.net.w_max_pu2[j] = (data.vm_max_pu[j] - cfg.vm_margin_pu) ** 2
    if not site.islanded:
        root = data.root_bus
        headroom = sum(br.s_max_mva for br in data.branches if root in (br.from_bus, br.to_bus))
        for t in range(n):
            m.sub.exch_cap_mw[t] = max(pyo.value(m.sub.exch_cap_mw[t]), headroom)


def set_flexible_loads(m: pyo.ConcreteModel, problems: Sequence[PartyProblem], horizon: Horizon) -> None:
    """Each MG's EVs (``mg.extra["ev"]``: the plug-in window at full power, the uncontrolled charging the
    load forecast holds and its energy inside the horizon; a window past midnight lends its morning hours
    to the day) and the base of its demand response (its load without the EVs)."""
    o = m.O
    hours = [int((horizon.first_step_of_day + k) * horizon.dt_h) % 24 for k in range(horizon.n_steps)]
    for prob in problems:
        name = prob.mg.name
        if name not in o.mg:
            continue
        ev = prob.mg.extra.get("ev")
        spec = EvSpec.from_dict(ev) if ev is not None else None
        by_hour = spec.uncontrolled_mw() if spec is not None else [0.0] * 24
        window = set(spec.window()) if spec is not None else set()
        unc = [by_hour[h] for h in hours]
        for t, (h, u) in enumerate(zip(hours, unc, strict=True)):
            o.ev_uncontrolled_mw[name, t] = u
            o.ev_cap_mw[name, t] = spec.p_max_mw if spec is not None and h in window else 0.0
            o.dr_base_mw[name, t] = max(prob.forecast.load_p_mw[t] - u, 0.0)
        o.ev_energy_mwh[name] = sum(unc) * horizon.dt_h


class OracleModel:
    """The oracle's MILP, built once per structure and re-solved (module docstring)."""

    def __init__(self, site: OracleSite, cfg: OracleConfig, backend: str = "contrib") -> None:
        self.site = site
        self.cfg = cfg
        self.rows = NetworkRows(site, cfg)
        self._models = ModelCache(_CACHE_SIZE, backend)
        self._free = ModelCache(_CACHE_SIZE, backend)

    def solve(
        self,
        problems: Sequence[PartyProblem],
        horizon: Horizon,
        loads: NetworkLoads,
        opts: SolverOptions = DEFAULT_SOLVER_OPTIONS,
        switch_time_limit_s: float | None = None,
    ) -> OracleResult:
        """Two passes: every operable switch held closed (a MILP only in the units' binaries, which
        HiGHS's relaxation usually certifies fast), then the switches free, started from the first
        pass's schedule (within ``switch_time_limit_s``, default the solve's limit); the cheaper schedule
        wins, the second pass's bound is the round's bound."""
        names = [p.mg.name for p in problems]
        if len(set(names)) != len(names) or not names:
            return SolveResult.error("bad_input", f"party names must be unique and non-empty: {names}")
        first = self._pass(
            problems, horizon, loads, opts, hold_closed=True, start=self._free_start(problems, horizon, opts)
        )
        if not self.site.switch_groups:
            return first
        start = replace(
            opts,
            warm_start_shift=0 if first.ok else None,
            mip_heuristics=True,
            time_limit_s=switch_time_limit_s if switch_time_limit_s is not None else opts.time_limit_s,
        )
        second = self._pass(problems, horizon, loads, start, hold_closed=False)
        if not second.ok:
            return _with_bound(first, None) if first.ok else second
        bound = second.detail.lower_bound if second.detail is not None else None
        cheaper = first.ok and second.objective is not None and (first.objective or 0.0) < second.objective
        if cheaper:
            return _with_bound(first, bound, second)
        return _with_bound(second, bound, first)

    def _pass(
        self,
        problems: Sequence[PartyProblem],
        horizon: Horizon,
        loads: NetworkLoads,
        opts: SolverOptions,
        *,
        hold_closed: bool,
        start: StartValues | None = None,
    ) -> OracleResult:
        key = (tuple(blocks.party_key(p.mg) for p in problems), horizon.n_steps, horizon.dt_h, opts.pwl_max_error_per_h)
        self.rows.dt_h = horizon.dt_h

        def write(m: pyo.ConcreteModel) -> None:
            set_system_data(m, problems, horizon)
            set_network_data(m, self.site, self.cfg, loads, problems)
            set_flexible_loads(m, problems, horizon)
            for g in m.O.group:
                for t in m.T:
                    m.O.closed_lo[g, t] = 1.0 if hold_closed else 0.0

        try:
            run = self._models.solve(
                key,
                lambda: build_system_model(
                    problems, horizon.n_steps, horizon.dt_h, opts.pwl_max_error_per_h, self.rows, self.site.islanded
                ),
                write,
                opts,
                start=start,
            )
        except ValueError as exc:
            log.error("oracle: bad input: %s", exc)
            return SolveResult.error("bad_input", str(exc))
        if not run.raw.feasible:
            log.warning("oracle: %s (%s) %s", run.raw.status, run.raw.termination, run.raw.message)
            return run.result(None)
        m = run.model
        plans = {p.mg.name: _with_pcc_flow(m, p.mg.name, system_party_plan(m, p, horizon)) for p in problems}
        return run.result(plans, _round(m, self.site, run.raw.objective, run.raw.mip_gap))

    def _free_start(
        self, problems: Sequence[PartyProblem], horizon: Horizon, opts: SolverOptions
    ) -> StartValues | None:
        """The network-free system MILP's commitments (every binary: units on, starts, charging, buying)
        as a partial MIP start: the same parties' optimum without the network is usually close, it
        solves in a fraction of the time and HiGHS completes it or drops it."""
        key = (tuple(blocks.party_key(p.mg) for p in problems), horizon.n_steps, horizon.dt_h, opts.pwl_max_error_per_h)
        try:
            run = self._free.solve(
                key,
                lambda: build_system_model(
                    problems, horizon.n_steps, horizon.dt_h, opts.pwl_max_error_per_h, None, self.site.islanded
                ),
                lambda m: set_system_data(m, problems, horizon),
                opts,
            )
        except ValueError:
            return None
        if not run.raw.feasible:
            return None
        binaries = [
            (v.name, round(v.value))
            for v in run.model.component_data_objects(pyo.Var)
            if v.is_binary() and v.value is not None
        ]

        def start(m: pyo.ConcreteModel) -> list[tuple[Any, float]]:
            found = ((m.find_component(name), value) for name, value in binaries)
            return [(v, float(value)) for v, value in found if v is not None]

        return start


def _with_bound(chosen: OracleResult, bound: float | None, other: OracleResult | None = None) -> OracleResult:
    """``chosen`` with the round's lower bound (the switch-free pass's) and both passes' time."""
    assert chosen.detail is not None
    if bound is None:
        bound = chosen.detail.lower_bound
    if bound is not None and chosen.objective is not None:
        bound = min(bound, chosen.objective)
    extra_build = other.build_s if other is not None else 0.0
    extra_solve = other.solve_s if other is not None else 0.0
    return replace(
        chosen,
        build_s=chosen.build_s + extra_build,
        solve_s=chosen.solve_s + extra_solve,
        detail=replace(chosen.detail, lower_bound=bound),
    )


def _with_pcc_flow(m: pyo.ConcreteModel, name: str, plan: PartyPlan) -> PartyPlan:
    """An MG's plan whose import is its PCC flow (its balance's import plus its flexible loads' shifts)."""
    if name not in m.O.mg:
        return plan
    return replace(plan, import_mw=tuple(float(pyo.value(m.O.pcc_flow_mw[name, t])) for t in m.T))


def _shifts(m: pyo.ConcreteModel) -> tuple[dict[str, tuple[float, ...]], dict[str, tuple[float, ...]]]:
    """Per MG the demand-response shift and the EVs' shift against their uncontrolled charging (MW)."""
    o, T = m.O, list(m.T)
    dr = {n: tuple(float(o.dr_mw[n, t].value or 0.0) for t in T) for n in o.mg}
    ev = {
        n: tuple(float((o.ev_mw[n, t].value or 0.0) - pyo.value(o.ev_uncontrolled_mw[n, t])) for t in T) for n in o.mg
    }
    return dr, ev


def _round(m: pyo.ConcreteModel, site: OracleSite, objective: float | None, gap: float | None) -> OracleRound:
    T = list(m.T)
    sub = tuple(float((m.sub.buy_mw[t].value or 0.0) - (m.sub.sell_mw[t].value or 0.0)) for t in T)
    loss = tuple(float(sum(m.O.loss_mw[li, t].value or 0.0 for li in site.network.lines)) for t in T)
    closed = {g: tuple(bool(round(m.O.closed[g, t].value or 0.0)) for t in T) for g in site.switch_groups}
    vm = [[math.sqrt(max(m.net.w_pu2[j, t].value or 0.0, 0.0)) for j in m.net.nonroot_bus] for t in T]
    bound = None
    if objective is not None:
        bound = objective - (gap or 0.0) * max(abs(objective), 1e-10)
    dr, ev = _shifts(m)
    return OracleRound(sub, loss, closed, tuple(min(v) for v in vm), tuple(max(v) for v in vm), bound, dr, ev)
