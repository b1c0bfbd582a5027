"""Strategy clustered (spec 004) at its limits, without mosaik.

1. The lower level's time limit per payoff row and eps point (``LowerLevel(point_time_limit_s=...)``) on the
   small system of :mod:`tests.test_clustered_model`: a solve stopped at the limit serves with its incumbent
   (inside its eps bounds, physically sound), a grid point without one is kept in the front as None, and a
   payoff row without one fails the lower level by name.
2. The upper level (``UpperLevel``) on a four-bus feeder with two clusters behind one shared line: grants
   equal feasible requests whatever zeta, a tight line cuts exactly its overload, and zeta moves the
   grants toward the objective it weighs.

Determinism of part 1: a limit of 0 s makes HiGHS stop at its first check, before presolve, so whether a
stopped solve has an incumbent depends only on whether it was handed a MIP start it accepts (measured
with highspy 1.16: a started solve ends "feasible" with the start, an unstarted one "no_solution", every
time). ``warm_start_shift=0`` hands each solve the model's last solution; the LP-relaxation shortcut is off
(its own allowance would be ~0 s too), so every stopped solve is a MILP run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import override

import pandapower as pp
import pytest

from ems_controllers.clustered import escalation
from ems_controllers.clustered.lower import Weights
from ems_controllers.clustered.lower_solve import LowerLevel, LowerLevelFailed, LowerOutcome, Schedule, read_schedule
from ems_controllers.clustered.pareto import EpsPoint, ObjectiveValues, Zeta
from ems_controllers.clustered.upper import GRANT_TOL_MW, UpperLevel, UpperOutcome, UpperSettings
from ems_controllers.core.model_cache import ModelRun
from ems_controllers.core.network import NetworkData, network_from_pandapower
from ems_controllers.core.types import Horizon, PartyProblem, SolverOptions, SolveStatus
from tests.test_clustered_model import HORIZON, SETTINGS, assert_physical, small_problems, small_system

# ---------------------------------------------------------------------------------------------------------
# 1. The lower level's time limit
# ---------------------------------------------------------------------------------------------------------

STOP_AT_ONCE = 0.0
"""``point_time_limit_s``: HiGHS stops each payoff row and eps point at its first time check."""

STARTED = SolverOptions(mip_rel_gap=1e-5, certify_relaxation=False, warm_start_shift=0)
"""Every solve (the escalation's first aside) starts from the model's last solution."""

UNSTARTED = SolverOptions(mip_rel_gap=1e-5, certify_relaxation=False)
"""No MIP starts but those the lower level gives a grid point whose predecessor was feasible."""

BOUND_REL_TOL = 1e-6
"""An eps bound holds to this share of ``max(1, |bound|)`` (HiGHS's row feasibility tolerance is 1e-7)."""

EXACT = 1e-6


@dataclass(frozen=True)
class SolveEnd:
    """How one solve of the lower level ended."""

    grid_index: int | None
    """The eps point's position on the grid; None for an escalation round or a payoff row."""
    status: SolveStatus
    termination: str
    schedule: Schedule | None
    """A grid point's solution, read as the lower level reads it (None when it has none)."""


class ObservedLower(LowerLevel):
    """The small system's lower level with the end of every solve recorded (``LowerOutcome`` keeps each
    point's objectives, not how its solve ended) and the MIP start withheld from the grid points in
    ``no_start`` (and from the payoff rows with ``no_row_start``): at a 0 s limit such a solve ends
    without an incumbent, deterministically."""

    def __init__(
        self,
        n_points: int,
        point_time_limit_s: float,
        no_start: frozenset[int] = frozenset(),
        no_row_start: bool = False,
    ) -> None:
        super().__init__(small_system(), SETTINGS, n_points, point_time_limit_s)
        self.no_start = no_start
        self.no_row_start = no_row_start
        self.ends: list[SolveEnd] = []

    @override
    def _solve(
        self,
        problems: Sequence[PartyProblem],
        horizon: Horizon,
        opts: SolverOptions,
        allow: escalation.Allowed,
        weights: Weights,
        eps: EpsPoint | None = None,
    ) -> ModelRun:
        # a payoff row is a solve at the point time limit without an eps point (the escalation runs on 60 s)
        row = eps is None and opts.time_limit_s == self.point_time_limit_s
        if (eps is not None and eps.index in self.no_start) or (row and self.no_row_start):
            opts = replace(opts, warm_start_shift=None)
        run = super()._solve(problems, horizon, opts, allow, weights, eps)
        kept = eps is not None and run.raw.feasible
        schedule = read_schedule(run.model, self.system, problems, horizon) if kept else None
        index = None if eps is None else eps.index
        self.ends.append(SolveEnd(index, run.raw.status, run.raw.termination, schedule))
        return run

    def stages(self, outcome: LowerOutcome) -> tuple[list[SolveEnd], list[SolveEnd], list[SolveEnd]]:
        """The recorded ends split into the escalation rounds, the three payoff rows and the grid points."""
        k = len(outcome.level_rounds_s)
        return self.ends[:k], self.ends[k : k + 3], self.ends[k + 3 :]


def assert_within_eps(values: ObjectiveValues, eps: EpsPoint) -> None:
    assert values.gc_per_day <= eps.gc_max_per_day + BOUND_REL_TOL * max(1.0, abs(eps.gc_max_per_day))
    assert values.loss_mwh <= eps.loss_max_mwh + BOUND_REL_TOL * max(1.0, abs(eps.loss_max_mwh))


def test_rows_and_points_stopped_at_the_limit_serve_their_incumbent() -> None:
    """Every payoff row and grid point stops at the 0 s limit holding its MIP start as incumbent (status
    "feasible", HiGHS's time-limit termination), and serves: the payoff table and the whole front are
    built from these incumbents, each point's schedule is inside its eps bounds and physically sound, and
    the pick is one of them. The escalation rounds run on the caller's own 60 s and end optimal.
    (The incumbents are the escalation's solution passed on from solve to solve, so the front collapses onto
    one point: the spread a front needs takes solves that get past their start.)"""
    lower = ObservedLower(n_points=4, point_time_limit_s=STOP_AT_ONCE)
    out = lower.plan(small_problems(), HORIZON, STARTED)
    rounds, rows, points = lower.stages(out)
    assert [e.status for e in rounds] == [SolveStatus.OPTIMAL] * len(rounds)
    assert len(rows) == 3 and len(points) == 4
    for e in (*rows, *points):
        assert (e.status, e.termination) == (SolveStatus.FEASIBLE, "maxTimeLimit")
    assert [e.grid_index for e in points] == [0, 1, 2, 3]
    for end, point in zip(points, out.front.points, strict=True):
        assert point.eps is not None and point.values is not None and end.schedule is not None
        assert end.schedule.values == point.values
        assert_within_eps(point.values, point.eps)
        assert_physical(end.schedule, out.levels)
    assert out.schedule.values == out.front.points[out.choice.index].values
    assert_physical(out.schedule, out.levels)


def test_a_point_without_an_incumbent_is_kept_as_none_and_skipped_by_the_pick() -> None:
    """Grid point 2 gets no MIP start, so at the 0 s limit HiGHS stops it without an incumbent
    ("no_solution", time-limit termination): the front still holds all four points in grid order, point 2
    with its bounds and no values, its membership is None, and the pick is a point with values whose
    schedule serves, no exception. (A point after a None one inherits no start either; at this limit it
    may end the same way, which the front holds just as well: only its bounds are asserted, if it has
    values.)"""
    lower = ObservedLower(n_points=4, point_time_limit_s=STOP_AT_ONCE, no_start=frozenset({2}))
    out = lower.plan(small_problems(), HORIZON, STARTED)
    _, _, points = lower.stages(out)
    assert (points[2].status, points[2].termination) == (SolveStatus.NO_SOLUTION, "maxTimeLimit")
    front = out.front.points
    assert [p.eps.index if p.eps is not None else None for p in front] == [0, 1, 2, 3]
    assert front[2].values is None and not front[2].feasible
    assert [p.values is None for p in front] == [m is None for m in out.choice.memberships]
    assert out.choice.memberships[2] is None
    assert front[0].values is not None and front[1].values is not None  # started from their predecessors
    for p in front:
        if p.values is not None and p.eps is not None:
            assert_within_eps(p.values, p.eps)
    picked = front[out.choice.index]
    assert picked.values is not None and out.choice.index != 2
    assert out.schedule.values == picked.values
    assert_physical(out.schedule, out.levels)


def test_a_payoff_row_without_an_incumbent_fails_the_lower_level_by_name() -> None:
    """With the MIP start withheld from the payoff rows (the lower level gives each the previous solve's
    solution) a row stops at the 0 s limit with nothing: the first row, GC alone, raises
    ``LowerLevelFailed`` naming its objective and the status (the row sets the grid's range, so it must
    exist; the planning round turns this error into its "lower_level" error result). The escalation
    before it, on the caller's 60 s, ended optimal."""
    lower = ObservedLower(n_points=4, point_time_limit_s=STOP_AT_ONCE, no_row_start=True)
    with pytest.raises(LowerLevelFailed, match=r"minimising GC alone: no_solution"):
        lower.plan(small_problems(), HORIZON, UNSTARTED)
    *rounds, last = lower.ends
    assert rounds and all(e.status is SolveStatus.OPTIMAL for e in rounds)
    assert (last.grid_index, last.status, last.termination) == (None, SolveStatus.NO_SOLUTION, "maxTimeLimit")


def test_a_front_without_any_incumbent_fails_the_lower_level() -> None:
    """No grid point gets a MIP start, so all four stop at the 0 s limit without an incumbent (the payoff
    rows, started, serve). There is nothing to pick: the lower level must say so as ``LowerLevelFailed``
    (its docstring lists the pick among the solves that must succeed), the error the planning round turns
    into a fallback."""
    lower = ObservedLower(n_points=4, point_time_limit_s=STOP_AT_ONCE, no_start=frozenset(range(4)))
    with pytest.raises(LowerLevelFailed):
        lower.plan(small_problems(), HORIZON, STARTED)


# ---------------------------------------------------------------------------------------------------------
# 2. The upper level's zeta
# ---------------------------------------------------------------------------------------------------------

KV = 10.0
LOOSE_MVA = 10.0
TIGHT_MVA = 3.0
S_MAX_FACTOR = 0.95
SHARED_LINE = 0
LOAD_BUS = 1
LOAD_MW = 0.5
CLUSTER_BUS = {"C1": 2, "C2": 3}
DAY = Horizon(1.0, (100.0, 120.0, 80.0), (50.0, 60.0, 40.0))
IMPORTS = {"C1": (1.5, 1.2, 0.5), "C2": (1.5, 2.0, 0.5)}
"""What the clusters ask for (MW into each): with the network's 0.5 MW load, line 0 would carry 3.5, 3.7
and 1.5 MW, against 2.85 MW on the tight line (95 % of 3 MVA): over by 0.65 and 0.85 MW in hours 0-1."""
EXPORTS = {c: tuple(-x for x in v) for c, v in IMPORTS.items()}
"""The same amounts sent into the network: on the loose line the day's reference GC is negative (it sells)."""
ALL_CLOSED = dict.fromkeys(CLUSTER_BUS, (True,) * DAY.n_steps)
NETWORK_LOAD: tuple[Mapping[int, Sequence[float]], Mapping[int, Sequence[float]]] = (
    {LOAD_BUS: (LOAD_MW,) * DAY.n_steps},
    {},
)
DEVIATION_PRICE = 500.0
"""The strategy's default: above every energy price of the day, so no zeta buys a changed grant with it."""
CHEAP_DEVIATION = 1.0
"""Below every energy and emission price: a grant moved by 1 MWh costs the network less than the GC or EC it
moves, so the deviation price no longer pins the grants to the requests and zeta decides where they go."""
GC_HEAVY, EC_HEAVY, LOSS_HEAVY = Zeta(1.0, 0.0, 0.0), Zeta(0.0, 1.0, 0.0), Zeta(0.0, 0.0, 1.0)
MIXED = Zeta(0.5, 0.3, 0.2)
ZETAS = {"gc": GC_HEAVY, "ec": EC_HEAVY, "loss": LOSS_HEAVY, "mixed": MIXED}
UPPER_OPTS = SolverOptions()
NETWORK_LOSS_MAX_ERROR_MW = 1e-3
"""The strategy's default PWL error of a network line's losses per hour."""
LP_TOL = 1e-6


@cache
def two_cluster_network(shared_mva: float) -> NetworkData:
    """Root 0 --line 0 (shared, rated ``shared_mva``)-- bus 1 (the network's load) --line 1-- bus 2 (C1)
    and --line 2-- bus 3 (C2), 10 kV, no line charging; lines 1 and 2 rated 17 MVA. Line 2 has twice
    line 1's resistance. Cached: building a pandapower net takes longer than the LP."""
    net = pp.create_empty_network(sn_mva=1.0)
    for _ in range(4):
        pp.create_bus(net, vn_kv=KV, min_vm_pu=0.9, max_vm_pu=1.1)
    pp.create_ext_grid(net, 0, vm_pu=1.0)
    for a, b, r_ohm, i_ka in ((0, 1, 0.2, shared_mva / (math.sqrt(3) * KV)), (1, 2, 0.5, 1.0), (1, 3, 1.0, 1.0)):
        pp.create_line_from_parameters(net, a, b, 1.0, r_ohm, 0.3, 0.0, i_ka)
    return network_from_pandapower(net)


def plan_upper(
    shared_mva: float, zeta: Zeta, deviation_price: float, requests: Mapping[str, Sequence[float]]
) -> UpperOutcome:
    settings = UpperSettings(zeta, 45.0, deviation_price, NETWORK_LOSS_MAX_ERROR_MW, S_MAX_FACTOR)
    out = UpperLevel(two_cluster_network(shared_mva), CLUSTER_BUS, settings).plan(
        requests, ALL_CLOSED, NETWORK_LOAD, DAY, UPPER_OPTS
    )
    assert out is not None, "the upper level found no schedule"
    return out


def assert_substation_balance(out: UpperOutcome) -> None:
    """What the substation imports is what the clusters are granted plus the network's load and losses."""
    for t in range(DAY.n_steps):
        drawn = sum(out.grant_mw[c][t] for c in CLUSTER_BUS) + LOAD_MW + out.loss_mw[t]
        assert out.substation_import_mw[t] == pytest.approx(drawn, abs=LP_TOL)


@pytest.mark.parametrize(
    ("day", "zeta"),
    [
        *((pytest.param("imports", z, id=f"imports-{k}")) for k, z in ZETAS.items()),
        *(pytest.param("exports", z, id=f"exports-{k}") for k, z in ZETAS.items()),
    ],
)
def test_feasible_requests_are_granted_as_asked_for_any_zeta(day: str, zeta: Zeta) -> None:
    """On the loose line every request fits: at the default deviation price (above every energy price) the
    grants equal the requests whatever zeta, the weighted solve is the reference solve (same GC, EC,
    Loss), the status is "ok", and the substation carries grants, load and losses. On an export day too:
    zeta weighs objectives whose reference values are negative there."""
    requests = IMPORTS if day == "imports" else EXPORTS
    out = plan_upper(LOOSE_MVA, zeta, DEVIATION_PRICE, requests)
    assert out.status == "ok" and not out.changed(requests)
    for c in CLUSTER_BUS:
        assert out.grant_mw[c] == pytest.approx(requests[c], abs=GRANT_TOL_MW)
    assert out.values.gc_per_day == pytest.approx(out.reference.gc_per_day, abs=LP_TOL)
    assert out.values.ec_per_day == pytest.approx(out.reference.ec_per_day, abs=LP_TOL)
    assert out.values.loss_mwh == pytest.approx(out.reference.loss_mwh, abs=LP_TOL)
    assert_substation_balance(out)


@pytest.mark.parametrize("zeta", ZETAS.values(), ids=ZETAS.keys())
def test_a_tight_line_cuts_the_grants_by_exactly_its_overload(zeta: Zeta) -> None:
    """Both requests granted would overload the shared line in hours 0 and 1. Whatever zeta, at the
    default deviation price: the predicted loading stays at most ``s_max_factor`` of the rating every hour,
    no grant is raised above its request, the cuts of an hour sum to that hour's overload (the line ends
    exactly at its limit: nothing is cut that the network does not need), hour 2 is untouched, and the
    status says the grants changed."""
    network = two_cluster_network(TIGHT_MVA)
    limit_mw = S_MAX_FACTOR * next(br.s_max_mva for br in network.branches if br.line == SHARED_LINE)
    overload = [max(sum(IMPORTS[c][t] for c in CLUSTER_BUS) + LOAD_MW - limit_mw, 0.0) for t in range(DAY.n_steps)]
    assert overload == pytest.approx([0.65, 0.85, 0.0], abs=1e-9)  # the day is what the docstring says
    out = plan_upper(TIGHT_MVA, zeta, DEVIATION_PRICE, IMPORTS)
    assert out.changed(IMPORTS) and "grants changed" in out.status
    for t in range(DAY.n_steps):
        assert out.predicted_max_loading_percent[t] <= 100.0 * S_MAX_FACTOR + LP_TOL
        for c in CLUSTER_BUS:
            assert out.grant_mw[c][t] <= IMPORTS[c][t] + LP_TOL
        cut = sum(IMPORTS[c][t] - out.grant_mw[c][t] for c in CLUSTER_BUS)
        assert cut == pytest.approx(overload[t], abs=LP_TOL)
    assert_substation_balance(out)


@pytest.mark.parametrize("shared_mva", [LOOSE_MVA, TIGHT_MVA], ids=["loose", "tight"])
def test_zeta_moves_the_grants_toward_the_objective_it_weighs(shared_mva: float) -> None:
    """At a deviation price below every energy price (so changing a grant is cheap and zeta decides), each
    single-objective zeta reaches the lowest value of its own objective among the three: GC-heavy sells
    the most upstream (lowest GC, lowest substation import), loss-heavy carries the least (lowest losses),
    EC-heavy the lowest EC. And zeta matters: GC-heavy's GC and loss-heavy's losses are strictly better than
    the other's. Every outcome keeps the shared line within its limit. On the loose line the objectives are
    scaled by the reference solve (every request granted); on the tight one that solve is infeasible and
    plan() weighs them unscaled: the direction must hold either way."""
    out = {k: plan_upper(shared_mva, z, CHEAP_DEVIATION, IMPORTS) for k, z in ZETAS.items() if k != "mixed"}
    gc = {k: o.values.gc_per_day for k, o in out.items()}
    ec = {k: o.values.ec_per_day for k, o in out.items()}
    loss = {k: o.values.loss_mwh for k, o in out.items()}
    assert gc["gc"] <= min(gc.values()) + LP_TOL
    assert ec["ec"] <= min(ec.values()) + LP_TOL
    assert loss["loss"] <= min(loss.values()) + LP_TOL
    assert gc["gc"] < gc["loss"] - 1.0  # currency per day
    assert loss["loss"] < loss["gc"] - 1e-3  # MWh
    assert sum(out["gc"].substation_import_mw) < sum(out["loss"].substation_import_mw) - LP_TOL
    for o in out.values():
        assert max(o.predicted_max_loading_percent) <= 100.0 * S_MAX_FACTOR + LP_TOL
        assert_substation_balance(o)
