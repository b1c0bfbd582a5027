"""Multi-objective machinery of the ``clustered`` strategy (spec 004): pure math, no mosaik, no solver.

The lower level of the seed trades off three daily objectives, all minimised:

- GC, generation cost (``gc_per_day``, currency per day, the seed's $);
- EC, emission cost (``ec_per_day``, currency per day; negative when MG exports displace substation
  emissions);
- Loss, network losses (``loss_mwh``, energy lost over the day, MWh).

Method (the seed's, as the spec states it):

1. **Payoff table** (:func:`payoff_table`): each objective is minimised alone; its row holds all three
   objectives of that solution. Each objective's range is the minimum and maximum of its column.
2. **Lockstep eps grid** (:func:`eps_grid`): EC is minimised subject to ``GC <= eps2`` and
   ``Loss <= eps1``. The two bounds do not form a 10 x 10 grid: they step *together* on one grid of
   ``n_points`` from the payoff table's minimum to its maximum (point k bounds both at the fraction
   ``k / (n_points - 1)`` of their ranges). The seed's Table 2 does exactly this: its GC and loss
   columns are that grid to the printed precision. The first points (tightest bounds) may be infeasible:
   the GC and loss minima need not be reached by one solution.
3. **Front** (:func:`eps_constraint_front`): one solve per grid point; an infeasible point is kept in
   the front as infeasible (``values is None``), never dropped, so positions match the grid.
4. **Fuzzy min-max pick** (:func:`fuzzy_pick`): over the feasible points of the front, the membership
   of objective i is ``mu_i = (f_i_max - f) / (f_i_max - f_i_min)`` clipped to [0, 1] (1 at the front's
   best value, 0 at its worst; the clip only guards rounding). Each point scores the *minimum* of its
   three memberships, and the point with the *largest* score is the best compromise.

   Why this rule: on the seed's Table 2 it picks point 4, the paper's choice (score 0.590 against 0.555
   for point 5 and 0.520 for point 3), and the table's last column is that minimum. The normalised
   *sum* of memberships would pick point 2 (2.149 against 1.924 for point 4): not the seed's rule.
   The table's printed memberships are this formula truncated to three decimals, except the GC
   membership of point 7 (printed 0.219, its GC column gives 0.333), a seed typo that does not change
   the pick.

   Ties are broken deterministically: among the points whose score is within ``tie_tol`` of the best,
   the largest sum of memberships wins (so a tie never picks a point that another tied point dominates),
   then the lowest position in the front.

   An objective whose minimum equals its maximum over the feasible points does not discriminate: every
   point has membership 1 in it (a single-point front has all memberships 1).

Upper level: :func:`weighted_sum` ``zeta1*GC + zeta2*EC + zeta3*Loss`` with the network operator's
weights :class:`Zeta` (non-negative, summing to 1). As in the seed, the sum mixes currency and MWh: the
weights carry that conversion.

Positions (``EpsPoint.index``, ``FuzzyChoice.index``) are 0-based; the paper numbers points from 1
(its point 4 is index 3).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise


class Objective(StrEnum):
    GC = "gc"
    EC = "ec"
    LOSS = "loss"


OBJECTIVES: tuple[Objective, ...] = (Objective.GC, Objective.EC, Objective.LOSS)


def _check_finite(owner: str, **values: float) -> None:
    for name, v in values.items():
        if not math.isfinite(v):
            raise ValueError(f"{owner}: {name} must be finite, got {v!r}")


@dataclass(frozen=True, slots=True)
class ObjectiveValues:
    """The three objectives of one solution over the planning day (all minimised)."""

    gc_per_day: float
    """Generation cost, currency per day."""
    ec_per_day: float
    """Emission cost, currency per day (negative when exports displace substation emissions)."""
    loss_mwh: float
    """Network losses over the day, MWh."""

    def __post_init__(self) -> None:
        _check_finite("ObjectiveValues", gc_per_day=self.gc_per_day, ec_per_day=self.ec_per_day, loss_mwh=self.loss_mwh)

    def value(self, objective: Objective) -> float:
        match objective:
            case Objective.GC:
                return self.gc_per_day
            case Objective.EC:
                return self.ec_per_day
            case Objective.LOSS:
                return self.loss_mwh


@dataclass(frozen=True, slots=True)
class PayoffTable:
    """Each objective minimised alone (one row per minimised objective, holding all three objectives)."""

    gc_row: ObjectiveValues
    """The solution minimising GC alone."""
    ec_row: ObjectiveValues
    """The solution minimising EC alone."""
    loss_row: ObjectiveValues
    """The solution minimising Loss alone."""

    def row(self, objective: Objective) -> ObjectiveValues:
        match objective:
            case Objective.GC:
                return self.gc_row
            case Objective.EC:
                return self.ec_row
            case Objective.LOSS:
                return self.loss_row

    def minimum(self, objective: Objective) -> float:
        """The objective's column minimum (its own row's value when the single solves are exact)."""
        return min(self.row(o).value(objective) for o in OBJECTIVES)

    def maximum(self, objective: Objective) -> float:
        """The objective's column maximum (the payoff table's estimate of its worst Pareto value)."""
        return max(self.row(o).value(objective) for o in OBJECTIVES)


@dataclass(frozen=True, slots=True)
class EpsPoint:
    """One point of the lockstep grid: minimise EC with GC <= ``gc_max_per_day`` and Loss <= ``loss_max_mwh``."""

    index: int
    """0-based position on the grid (0 = tightest bounds, the payoff table's minima)."""
    gc_max_per_day: float
    """eps2, the bound on GC, currency per day."""
    loss_max_mwh: float
    """eps1, the bound on Loss, MWh."""


@dataclass(frozen=True, slots=True)
class FrontPoint:
    """One solve of the front: its bounds (None when the front was given as values) and its objectives
    (None when infeasible)."""

    eps: EpsPoint | None
    values: ObjectiveValues | None

    @property
    def feasible(self) -> bool:
        return self.values is not None


@dataclass(frozen=True, slots=True)
class ParetoFront:
    """The eps-constraint points in grid order, infeasible ones included."""

    points: tuple[FrontPoint, ...]

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError("ParetoFront: no points (an empty grid or an empty table)")

    @classmethod
    def from_values(cls, values: Sequence[ObjectiveValues | None]) -> ParetoFront:
        """A front from known objective values (e.g. a published table), None for an infeasible point."""
        return cls(tuple(FrontPoint(None, v) for v in values))

    @property
    def feasible_values(self) -> list[ObjectiveValues]:
        return [p.values for p in self.points if p.values is not None]


@dataclass(frozen=True, slots=True)
class Memberships:
    """Fuzzy memberships of one point, each in [0, 1] (1 = the front's best value of that objective)."""

    gc: float
    ec: float
    loss: float

    @property
    def minimum(self) -> float:
        """The point's min-max score."""
        return min(self.gc, self.ec, self.loss)

    @property
    def total(self) -> float:
        """The sum of memberships (the tie-break)."""
        return self.gc + self.ec + self.loss


@dataclass(frozen=True, slots=True)
class FuzzyChoice:
    """The fuzzy min-max pick over a front."""

    index: int
    """0-based position of the chosen point in ``front.points`` (the paper's point number minus 1)."""
    memberships: tuple[Memberships | None, ...]
    """Per point of the front, in its order; None for an infeasible point."""
    best: ObjectiveValues
    """Per objective, the best (smallest) value over the feasible points (membership 1)."""
    worst: ObjectiveValues
    """Per objective, the worst (largest) value over the feasible points (membership 0)."""
    front: ParetoFront

    @property
    def point(self) -> FrontPoint:
        return self.front.points[self.index]

    @property
    def values(self) -> ObjectiveValues:
        v = self.point.values
        assert v is not None  # the pick is always feasible
        return v


@dataclass(frozen=True, slots=True)
class Zeta:
    """Upper-level weights of GC, EC and Loss: non-negative, summing to 1 (the network operator's choice)."""

    gc: float
    ec: float
    loss: float

    def __post_init__(self) -> None:
        _check_finite("Zeta", gc=self.gc, ec=self.ec, loss=self.loss)
        if min(self.gc, self.ec, self.loss) < 0.0:
            raise ValueError(f"Zeta: weights must be >= 0, got {self}")
        total = self.gc + self.ec + self.loss
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"Zeta: weights must sum to 1, got {total!r} ({self})")


def payoff_table(solve_single: Callable[[Objective], ObjectiveValues]) -> PayoffTable:
    """Minimise each objective alone with ``solve_single`` (which returns all three objectives of its
    solution). A single-objective problem must be feasible: ``None`` from it is an error."""
    rows: dict[Objective, ObjectiveValues] = {}
    for objective in OBJECTIVES:
        row = solve_single(objective)
        if not isinstance(row, ObjectiveValues):
            raise ValueError(
                f"payoff table: minimising {objective.name} alone returned {row!r}, not ObjectiveValues "
                "(infeasible? the payoff table needs every single-objective problem solved)"
            )
        rows[objective] = row
    return PayoffTable(gc_row=rows[Objective.GC], ec_row=rows[Objective.EC], loss_row=rows[Objective.LOSS])


def eps_grid(payoff: PayoffTable, n_points: int = 10) -> list[EpsPoint]:
    """The lockstep grid: point k bounds GC and Loss both at the fraction k/(n_points - 1) of their
    payoff ranges, from the minimum (k = 0) to the maximum (k = n_points - 1, exactly)."""
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 2:
        raise ValueError(f"eps grid: n_points must be an integer >= 2, got {n_points!r}")
    gc_lo, gc_hi = payoff.minimum(Objective.GC), payoff.maximum(Objective.GC)
    loss_lo, loss_hi = payoff.minimum(Objective.LOSS), payoff.maximum(Objective.LOSS)
    last = n_points - 1
    return [
        EpsPoint(
            index=k,
            gc_max_per_day=gc_hi if k == last else gc_lo + (gc_hi - gc_lo) * k / last,
            loss_max_mwh=loss_hi if k == last else loss_lo + (loss_hi - loss_lo) * k / last,
        )
        for k in range(n_points)
    ]


def _bound_tolerance(bounds: Sequence[float], bound: float, rel_tol: float) -> float:
    span = max(bounds) - min(bounds)
    return rel_tol * (span if span > 0.0 else max(1.0, abs(bound)))


def eps_constraint_front(
    solve_eps: Callable[[EpsPoint], ObjectiveValues | None],
    grid: Sequence[EpsPoint],
    bound_rel_tol: float = 1e-6,
) -> ParetoFront:
    """Minimise EC at every grid point with ``solve_eps`` (None = infeasible, kept in the front as such).

    A solution above one of its bounds by more than ``bound_rel_tol`` of that bound's span over the grid
    (solver feasibility tolerance; of ``max(1, |bound|)`` when the span is 0) is an error: it means the
    bounds reached the model wrongly (e.g. eps1 and eps2 swapped)."""
    if not grid:
        raise ValueError("eps-constraint front: the grid is empty")
    gc_bounds = [e.gc_max_per_day for e in grid]
    loss_bounds = [e.loss_max_mwh for e in grid]
    points = []
    for eps in grid:
        values = solve_eps(eps)
        if values is not None:
            checks = (
                ("GC", values.gc_per_day, eps.gc_max_per_day, gc_bounds),
                ("Loss", values.loss_mwh, eps.loss_max_mwh, loss_bounds),
            )
            for name, value, bound, bounds in checks:
                if value - bound > _bound_tolerance(bounds, bound, bound_rel_tol):
                    raise ValueError(
                        f"eps-constraint grid point {eps.index} (0-based): {name} = {value!r} is above its bound "
                        f"{bound!r} (tolerance {bound_rel_tol!r} of the grid's span)"
                    )
        points.append(FrontPoint(eps, values))
    return ParetoFront(tuple(points))


def _membership(value: float, best: float, worst: float) -> float:
    if worst == best:
        return 1.0  # the objective does not discriminate between the points
    return min(1.0, max(0.0, (worst - value) / (worst - best)))


def fuzzy_pick(front: ParetoFront, tie_tol: float = 1e-9) -> FuzzyChoice:
    """The fuzzy min-max best compromise over the feasible points of ``front`` (module docstring: the
    memberships, the rule, the tie-break). No feasible point is an error."""
    if not math.isfinite(tie_tol) or tie_tol < 0.0:
        raise ValueError(f"fuzzy pick: tie_tol must be finite and >= 0, got {tie_tol!r}")
    feasible = front.feasible_values
    if not feasible:
        raise ValueError(f"fuzzy pick: none of the front's {len(front.points)} points is feasible")
    lo = {o: min(v.value(o) for v in feasible) for o in OBJECTIVES}
    hi = {o: max(v.value(o) for v in feasible) for o in OBJECTIVES}
    memberships: list[Memberships | None] = []
    for p in front.points:
        if p.values is None:
            memberships.append(None)
            continue
        mu = {o: _membership(p.values.value(o), lo[o], hi[o]) for o in OBJECTIVES}
        memberships.append(Memberships(gc=mu[Objective.GC], ec=mu[Objective.EC], loss=mu[Objective.LOSS]))
    scored = [(i, m) for i, m in enumerate(memberships) if m is not None]
    top_score = max(m.minimum for _, m in scored)
    tied = [(i, m) for i, m in scored if m.minimum >= top_score - tie_tol]
    top_total = max(m.total for _, m in tied)
    index = min(i for i, m in tied if m.total >= top_total - tie_tol)
    return FuzzyChoice(
        index=index,
        memberships=tuple(memberships),
        best=ObjectiveValues(lo[Objective.GC], lo[Objective.EC], lo[Objective.LOSS]),
        worst=ObjectiveValues(hi[Objective.GC], hi[Objective.EC], hi[Objective.LOSS]),
        front=front,
    )


def weighted_sum(values: ObjectiveValues, zeta: Zeta) -> float:
    """The upper level's objective ``zeta.gc*GC + zeta.ec*EC + zeta.loss*Loss``."""
    return zeta.gc * values.gc_per_day + zeta.ec * values.ec_per_day + zeta.loss * values.loss_mwh


@dataclass(frozen=True, slots=True)
class MonotoneViolation:
    """Along the feasible points of a front, ``objective`` moved the wrong way by ``amount`` (> tolerance)
    between positions ``before`` and ``after`` (0-based, in ``front.points``)."""

    objective: Objective
    before: int
    after: int
    amount: float


def monotone_violations(
    front: ParetoFront, rel_tol: float = 1e-6, abs_tol: float = 1e-9, gap_rel: float = 0.0
) -> list[MonotoneViolation]:
    """Where GC falls or EC rises from one feasible point to the next along the grid (infeasible points
    are skipped). Tolerance per objective: ``abs_tol + rel_tol * (its span over the feasible points) +
    gap_rel * (its largest magnitude)``; ``gap_rel``: the MIP gap the points were solved to (a point is
    optimal only within it). Loss is not checked: its bound is not necessarily active."""
    feasible = [(i, p.values) for i, p in enumerate(front.points) if p.values is not None]
    out = []
    for objective, sign in ((Objective.GC, 1.0), (Objective.EC, -1.0)):
        series = [v.value(objective) for _, v in feasible]
        span = (max(series) - min(series)) if series else 0.0
        tol = abs_tol + rel_tol * span + gap_rel * max((abs(x) for x in series), default=0.0)
        for (i, a), (j, b) in pairwise(feasible):
            wrong_way = sign * (a.value(objective) - b.value(objective))
            if wrong_way > tol:
                out.append(MonotoneViolation(objective, i, j, wrong_way))
    return out


def is_monotone(front: ParetoFront, rel_tol: float = 1e-6, abs_tol: float = 1e-9, gap_rel: float = 0.0) -> bool:
    """GC non-decreasing and EC non-increasing along the front's feasible points, within the tolerance
    of :func:`monotone_violations` (which says where, when not)."""
    return not monotone_violations(front, rel_tol, abs_tol, gap_rel)
