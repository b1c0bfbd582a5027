"""Solving the lower level: the escalation through the sub-levels, the payoff table, the eps-constraint
front and the fuzzy pick, all on one model re-solved by parameter update (:mod:`lower`).

Pure math on typed inputs (no mosaik). :meth:`LowerLevel.plan` returns a :class:`LowerOutcome`: the
picked point's schedule (plans, switch states, demand-response shifts, cluster exchanges), the levels per
cluster and hour, the front and the pick, and the solve time of every stage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pyomo.environ as pyo

from ems_controllers.clustered import escalation
from ems_controllers.clustered.lower import (
    LowerSettings,
    Weights,
    build_lower,
    cap_shedding,
    fix_feeders,
    objective_values,
    set_lower_data,
    set_objective,
)
from ems_controllers.clustered.pareto import (
    EpsPoint,
    FuzzyChoice,
    Objective,
    ObjectiveValues,
    ParetoFront,
    PayoffTable,
    eps_constraint_front,
    eps_grid,
    fuzzy_pick,
    payoff_table,
)
from ems_controllers.clustered.system import ClusterSystem
from ems_controllers.core import blocks
from ems_controllers.core.model_cache import ModelCache, ModelRun
from ems_controllers.core.types import Horizon, PartyPlan, PartyProblem, SolverOptions

log = logging.getLogger(__name__)

SECONDARY_SHARE = 1e-4
"""When one objective is minimised, each other one enters with a weight that makes it worth this share of
the minimised one at the escalation's solution (so a payoff row is a Pareto point, and the tie-break never
outweighs the objective: GC is thousands, Loss hundredths)."""

GC_FIRST = Weights(1.0, 1e-4, 1e-4)
"""The escalation rounds and the rescheduling: least cost, tie-broken by emissions and losses."""


def weights(primary: Objective, scale: ObjectiveValues, others: tuple[Objective, ...] | None = None) -> Weights:
    """Minimise ``primary``; the ``others`` (default: the other two) weighted by :data:`SECONDARY_SHARE`
    of ``primary``'s size relative to theirs (sizes from ``scale``, at least 1e-6 each)."""
    size = {o: max(abs(scale.value(o)), 1e-6) for o in Objective}
    rest = others if others is not None else tuple(o for o in Objective if o is not primary)
    w = {
        o: (1.0 if o is primary else SECONDARY_SHARE * size[primary] / size[o] if o in rest else 0.0) for o in Objective
    }
    return Weights(w[Objective.GC], w[Objective.EC], w[Objective.LOSS])


class LowerLevelFailed(RuntimeError):
    """A lower-level solve that must succeed (escalation, payoff table, the pick) did not."""


@dataclass(frozen=True)
class Schedule:
    """One solution of the lower level, hour by hour."""

    plans: dict[str, PartyPlan]
    pcc_closed: dict[str, tuple[bool, ...]]
    dr_shift_mw: dict[str, tuple[float, ...]]
    ev_mw: dict[str, tuple[float, ...]]
    """EV charging per MG with EVs (planned, MW)."""
    feeder_closed: dict[str, tuple[bool, ...]]
    feeder_mw: dict[str, tuple[float, ...]]
    tie_closed: dict[str, tuple[bool, ...]]
    tie_mw: dict[str, tuple[float, ...]]
    loss_mw: tuple[float, ...]
    values: ObjectiveValues


@dataclass(frozen=True)
class LowerOutcome:
    """The lower level's result: the picked schedule and how it was found."""

    schedule: Schedule
    levels: dict[str, tuple[int, ...]]
    payoff: PayoffTable
    front: ParetoFront
    choice: FuzzyChoice
    level_rounds_s: tuple[float, ...]
    """Solve time of each escalation round (round k runs with the levels found by round k - 1)."""
    payoff_s: float
    front_s: float
    pick_s: float
    shed_cap_mw: dict[str, tuple[float, ...]] = field(default_factory=dict)


class LowerLevel:
    """The lower-level model of one cluster system, built once per structure and re-solved."""

    def __init__(
        self, system: ClusterSystem, settings: LowerSettings, n_points: int = 10, point_time_limit_s: float = 20.0
    ) -> None:
        self.system = system
        self.settings = settings
        self.n_points = n_points
        self.point_time_limit_s = point_time_limit_s
        self._models = ModelCache(2)

    def plan(self, problems: Sequence[PartyProblem], horizon: Horizon, opts: SolverOptions) -> LowerOutcome:
        """Escalate, build the front at the final levels, pick, and return the picked schedule.

        ``opts.warm_start_shift`` (a rolling re-plan: the previous round's solution moved by that many
        steps) serves the first solve only. Each later escalation round and payoff row starts from the
        solution the model holds (shift 0: the previous solve's, feasible there, as the levels only open
        switches and a row only changes the objective), so a solve the time limit stops still has an
        incumbent; along the front each point starts from the previous point's solution, if it had one."""
        levels, rounds, shed, scale = self._escalate(problems, horizon, opts)
        opts = _within_round(opts)
        allow = replace(escalation.allowed(self.system, levels), shed_cap_mw=shed)
        t0 = time.perf_counter()
        # a payoff row only sets a range of the grid: it is solved to a 1 % gap, and a row stopped by the
        # time limit with an incumbent (status "feasible") serves
        row_opts = replace(
            opts, time_limit_s=min(opts.time_limit_s, self.point_time_limit_s), mip_rel_gap=max(opts.mip_rel_gap, 1e-2)
        )
        payoff = payoff_table(
            lambda o: self._values(self._solve(problems, horizon, row_opts, allow, weights(o, scale)), o)
        )
        w_eps = weights(Objective.EC, scale, (Objective.GC,))
        t1 = time.perf_counter()
        schedules: dict[int, Schedule] = {}
        front = eps_constraint_front(
            lambda e: self._eps_values(problems, horizon, opts, allow, w_eps, e, schedules),
            eps_grid(payoff, self.n_points),
        )
        t2 = time.perf_counter()
        if not front.feasible_values:
            raise LowerLevelFailed(f"no point of the eps-constraint front found a solution ({self.n_points} points)")
        choice = fuzzy_pick(front)
        schedule = schedules[choice.index]
        return LowerOutcome(
            schedule, levels, payoff, front, choice, rounds, t1 - t0, t2 - t1, time.perf_counter() - t2, shed
        )

    def reschedule(
        self,
        problems: Sequence[PartyProblem],
        horizon: Horizon,
        opts: SolverOptions,
        outcome: LowerOutcome,
        grants_mw: dict[str, tuple[float, ...]],
    ) -> Schedule | None:
        """The MGs' least-cost schedule (GC first) at the final levels with each cluster's exchange held at
        the upper level's grants (None if the MGs cannot meet them): the picked point's eps bounds may no
        longer be reachable once the network changed a grant, and an MG may have to shed load (at its
        penalty, recorded as unserved) where the network cannot carry what it needs."""
        allow = replace(escalation.allowed(self.system, outcome.levels), feeder_fixed_mw=grants_mw)
        run = self._solve(problems, horizon, replace(opts, warm_start_shift=None), allow, GC_FIRST)
        return read_schedule(run.model, self.system, problems, horizon) if run.raw.feasible else None

    def _escalate(
        self, problems: Sequence[PartyProblem], horizon: Horizon, opts: SolverOptions
    ) -> tuple[dict[str, tuple[int, ...]], tuple[float, ...], dict[str, tuple[float, ...]], ObjectiveValues]:
        """The final levels, each round's solve time, what the last round had to shed and its objectives."""
        levels: dict[str, tuple[int, ...]] | None = escalation.start_levels(self.system, horizon.n_steps)
        rounds: list[float] = []
        final, shed, scale = levels, {}, ObjectiveValues(1.0, 1.0, 1.0)
        while levels is not None:
            final = levels
            t0 = time.perf_counter()
            first = opts if not rounds else _within_round(opts)
            run = self._solve(problems, horizon, first, escalation.allowed(self.system, levels), GC_FIRST)
            rounds.append(time.perf_counter() - t0)
            if not run.raw.feasible:
                raise LowerLevelFailed(f"escalation round {len(rounds)}: {run.raw.status} ({run.raw.message})")
            shed = {p.mg.name: _vals(run.model.mg[p.mg.name].shed_mw, list(run.model.T)) for p in problems}
            scale = objective_values(run.model)
            levels = escalation.escalate(self.system, levels, _trouble_mw(run.model, problems))
        assert final is not None
        return final, tuple(rounds), shed, scale

    def _eps_values(
        self,
        problems: Sequence[PartyProblem],
        horizon: Horizon,
        opts: SolverOptions,
        allow: escalation.Allowed,
        w: Weights,
        eps: EpsPoint,
        schedules: dict[int, Schedule],
    ) -> ObjectiveValues | None:
        """EC minimised at one grid point; its schedule kept in ``schedules`` (by point), for the pick.
        The grid's bounds only loosen from point to point, so the previous point's solution is feasible
        here: it is the MIP start (HiGHS checks it and ignores one that is not; the first point gets the
        last payoff row's). After a point without a solution there is no start. HiGHS's primal heuristics
        stay on."""
        limited = replace(opts, time_limit_s=min(opts.time_limit_s, self.point_time_limit_s))
        start = replace(limited, warm_start_shift=0, mip_heuristics=True)
        run = self._solve(problems, horizon, start, allow, w, eps)
        if not run.raw.feasible:
            return None
        schedules[eps.index] = read_schedule(run.model, self.system, problems, horizon)
        return schedules[eps.index].values

    @staticmethod
    def _values(run: ModelRun, objective: Objective) -> ObjectiveValues:
        if not run.raw.feasible:
            raise LowerLevelFailed(f"minimising {objective.name} alone: {run.raw.status} ({run.raw.message})")
        return objective_values(run.model)

    def _solve(
        self,
        problems: Sequence[PartyProblem],
        horizon: Horizon,
        opts: SolverOptions,
        allow: escalation.Allowed,
        weights: Weights,
        eps: EpsPoint | None = None,
    ) -> ModelRun:
        key = (tuple(blocks.party_key(p.mg) for p in problems), horizon.n_steps, horizon.dt_h, self.settings)

        def write(m: pyo.ConcreteModel) -> None:
            set_lower_data(m, problems, horizon)
            write_allowed(m, allow)
            if eps is None:
                set_objective(m, weights)
            else:
                set_objective(m, weights, eps.gc_max_per_day, eps.loss_max_mwh)

        return self._models.solve(
            key,
            lambda: build_lower(self.system, problems, horizon.n_steps, horizon.dt_h, self.settings),
            write,
            opts,
            keep=self.system,
        )


def _within_round(opts: SolverOptions) -> SolverOptions:
    """The options of a solve after a round's first: the model holds this round's last solution, not the
    previous round's, so it starts from it unshifted, with HiGHS's heuristics on (a different problem:
    the start is a fallback incumbent, not the answer)."""
    return replace(opts, warm_start_shift=0, mip_heuristics=True)


def write_allowed(m: pyo.ConcreteModel, allow: escalation.Allowed) -> None:
    for g, ok in allow.pcc.items():
        for t, v in enumerate(ok):
            m.mg[g].allow_pcc[t] = 1.0 if v else 0.0
    for c, ok in allow.feeder.items():
        for t, v in enumerate(ok):
            m.allow_feeder[c, t] = 1.0 if v else 0.0
    for k, ok in allow.tie.items():
        for t, v in enumerate(ok):
            m.allow_tie[k, t] = 1.0 if v else 0.0
    cap_shedding(m, allow.shed_cap_mw)
    fix_feeders(m, allow.feeder_fixed_mw)


def _trouble_mw(m: pyo.ConcreteModel, problems: Sequence[PartyProblem]) -> dict[str, tuple[float, ...]]:
    """Per MG and hour: load shed + renewables curtailed (MW) in the solution the model holds."""
    out = {}
    for p in problems:
        b = m.mg[p.mg.name]
        out[p.mg.name] = tuple(
            float(b.shed_mw[t].value or 0.0) + max(float(pyo.value(b.res_curtailed_mw[t])), 0.0) for t in m.T
        )
    return out


def _vals(var: pyo.Var, keys: Sequence[object]) -> tuple[float, ...]:
    return tuple(float(var[k].value or 0.0) for k in keys)


def read_schedule(
    m: pyo.ConcreteModel, system: ClusterSystem, problems: Sequence[PartyProblem], horizon: Horizon
) -> Schedule:
    """The solution the model holds as a :class:`Schedule` (call after a feasible solve)."""
    T = list(m.T)
    plans, pcc, shift, ev = {}, {}, {}, {}
    for p in problems:
        b = m.mg[p.mg.name]
        inflow = list(_vals(b.inflow_mw, T))
        cost = [
            float(pyo.value(b.unit_cost[t]))
            + horizon.dt_h * (horizon.buy_price_per_mwh[t] * f if f >= 0 else horizon.sell_price_per_mwh[t] * f)
            for t, f in zip(T, inflow, strict=True)
        ]
        plans[p.mg.name] = blocks.party_plan(b, p.mg, m.T, import_mw=inflow, cost=cost)
        pcc[p.mg.name] = tuple(v > 0.5 for v in _vals(b.pcc_closed, T))
        shift[p.mg.name] = _vals(b.dr_shift_mw, T)
        if hasattr(b, "ev_mw"):
            ev[p.mg.name] = _vals(b.ev_mw, T)
    feeders = [c.name for c in system.clusters]
    ties = [k.name for k in system.ties]
    return Schedule(
        plans=plans,
        pcc_closed=pcc,
        dr_shift_mw=shift,
        ev_mw=ev,
        feeder_closed={c: tuple(v > 0.5 for v in _vals(m.feeder_closed, [(c, t) for t in T])) for c in feeders},
        feeder_mw={c: _vals(m.feeder_mw, [(c, t) for t in T]) for c in feeders},
        tie_closed={k: tuple(v > 0.5 for v in _vals(m.tie_closed, [(k, t) for t in T])) for k in ties},
        tie_mw={k: _vals(m.tie_mw, [(k, t) for t in T]) for k in ties},
        loss_mw=tuple(float(pyo.value(m.loss_mw[t])) for t in T),
        values=objective_values(m),
    )
