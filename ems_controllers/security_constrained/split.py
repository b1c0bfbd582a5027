r"""The MGC's split of case 3's cost among the MGs (spec 002): no MG pays more than in case 2.

Pure math on numbers; no Pyomo model, no mosaik. Two games over the MGs ``N``:

- the **aggregation game** of step 1, ``v(C)`` = cost of coalition C scheduled as one unit against the
  tariff, without network or DNO (singletons: stand-alone costs). Its Shapley value
  (:func:`shapley_values`) says how much each MG adds to the saving of aggregation
  (:func:`shapley_shares`); the MGs' ``saving_share`` output is that share.
- the **saving game against case 2**, what the split uses. An MG's outside option is not its stand-alone
  cost ``v({i})`` but its case-2 outcome ``b_i``: its final bill after the DNO's case-2 grants and its
  step-3 reschedule (deviations at ``pi^dev``). The saving of coalition C is

  .. math::
      w(\{i\}) = 0,\qquad w(C) = \textstyle\sum_{i \in C} v(\{i\}) - v(C)\ \ (2 \le |C| < n),\qquad
      w(N) = D = \textstyle\sum_i b_i - C_3

  with ``C_3`` the MGC's final (step-3) cost of all MGs: ``D`` is what case 3 saved the MGs against
  case 2, and a proper coalition claims what it could save at the tariff by aggregating alone (its
  step-1 saving; its own pass through the DNO is not solved: that would cost a DNO solve per coalition).

**Rule** (:func:`split_against_case2`): each MG's saving ``y_i`` is the Shapley value of ``w``; when that
point lies outside the core ``{y: sum y = D, sum_{i in C} y_i >= w(C) for every proper C}`` (which
contains the individually rational set's condition ``y_i >= 0``) and the core is not empty, ``y`` moves
to the core point nearest to it in L1 (an LP); when the core is empty but ``D >= 0``, to the nearest point
with ``y_i >= 0`` (individually rational); when ``D < 0`` no split can leave every MG at or below its
case-2 bill (the MGs pay ``-D`` more in total), the Shapley value is kept and the result says so. The bill
is ``bill_i = b_i - y_i``: the bills sum to ``C_3`` (efficiency), and ``bill_i <= b_i`` whenever
``D >= 0`` (individual rationality). The Shapley value of a convex game lies in its core, so the LP
only moves it when ``w`` is not convex (a pair that saves much alone, a grand coalition that saves
little).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from ems_controllers.core.types import DEFAULT_SOLVER_OPTIONS

_TOL = 1e-9  # relative tolerance of the core and IR checks (times max(1, |D|, max |w|))


class SplitRule(StrEnum):
    """How :func:`split_against_case2` found the savings."""

    SHAPLEY = "shapley"  # the Shapley value of w lies in the core
    NEAREST_CORE = "nearest_core"  # moved into the (non-empty) core
    NEAREST_RATIONAL = "nearest_rational"  # core empty, D >= 0: moved to y >= 0
    NOT_RATIONAL = "not_rational"  # D < 0: no individually rational split exists; Shapley kept


@dataclass(frozen=True)
class Split:
    """A split of case 3's cost: ``bills[i] = case2_bills[i] - savings[i]``, summing to ``final_cost``.
    ``joint_saving`` is ``D``; ``core_empty`` whether the core of ``w`` is empty."""

    bills: dict[str, float]
    savings: dict[str, float]
    joint_saving: float
    rule: SplitRule
    core_empty: bool

    @property
    def individually_rational(self) -> bool:
        """Every MG pays at most its case-2 bill (``savings >= 0``)."""
        return self.rule != SplitRule.NOT_RATIONAL


def _players(costs_by_coalition: Mapping[frozenset[str], float]) -> list[str]:
    players = sorted(set().union(*costs_by_coalition)) if costs_by_coalition else []
    if not players:
        raise ValueError("no players")
    missing = [
        sorted(c)
        for k in range(1, len(players) + 1)
        for c in itertools.combinations(players, k)
        if frozenset(c) not in costs_by_coalition
    ]
    if missing:
        raise ValueError(f"coalitions missing: {missing}")
    return players


def shapley_values(costs_by_coalition: Mapping[frozenset[str], float]) -> dict[str, float]:
    """Shapley value ``phi_i = sum_{C not containing i} |C|!(n-|C|-1)!/n! (v(C+i) - v(C))`` of the game
    ``v`` (``v(empty) = 0``; a cost or a saving game alike). Every non-empty coalition of the players (the
    union of the keys) must be given; raises ``ValueError`` otherwise. ``sum_i phi_i = v(N)``."""
    try:
        players = _players(costs_by_coalition)
    except ValueError as exc:
        raise ValueError(f"shapley_values: {exc}") from None
    n = len(players)

    def v(c: frozenset[str]) -> float:
        return float(costs_by_coalition[c]) if c else 0.0

    phi = {}
    for i in players:
        others = [p for p in players if p != i]
        total = 0.0
        for k in range(n):
            weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            for c in itertools.combinations(others, k):
                fc = frozenset(c)
                total += weight * (v(fc | {i}) - v(fc))
        phi[i] = total
    return phi


def shapley_shares(costs_by_coalition: Mapping[frozenset[str], float]) -> dict[str, float]:
    """Each player's share of the saving of aggregation ``S = sum_i v({i}) - v(N)``:
    ``share_i = v({i}) - phi_i`` (:func:`shapley_values`). The shares sum to S."""
    phi = shapley_values(costs_by_coalition)
    return {i: float(costs_by_coalition[frozenset({i})]) - p for i, p in phi.items()}


def saving_game(
    coalition_costs: Mapping[frozenset[str], float], case2_bills: Mapping[str, float], final_cost: float
) -> dict[frozenset[str], float]:
    """The saving game ``w`` against case 2 (module docstring) from the aggregation game's coalition
    costs, each MG's case-2 bill ``b_i`` and the MGC's final cost ``C_3``."""
    players = _players(coalition_costs)
    if sorted(case2_bills) != players:
        raise ValueError(f"case-2 bills for {sorted(case2_bills)}, coalitions of {players}")
    grand = frozenset(players)
    w: dict[frozenset[str], float] = {}
    for c, cost in coalition_costs.items():
        if c == grand:
            w[c] = sum(float(b) for b in case2_bills.values()) - float(final_cost)
        elif len(c) == 1:
            w[c] = 0.0
        else:
            w[c] = sum(float(coalition_costs[frozenset({i})]) for i in c) - float(cost)
    return w


def _nearest(
    target: Mapping[str, float], total: float, floors: Mapping[frozenset[str], float]
) -> dict[str, float] | None:
    """The point ``y`` nearest to ``target`` in L1 with ``sum y = total`` and ``sum_{i in C} y_i >=
    floors[C]``; None when there is none (HiGHS LP: ``y - e+ + e- = target``, min ``sum e+ + e-``)."""
    import highspy

    names = sorted(target)
    n = len(names)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", DEFAULT_SOLVER_OPTIONS.threads)
    inf = highspy.kHighsInf
    h.addCols(3 * n, [0.0] * n + [1.0] * 2 * n, [-inf] * n + [0.0] * 2 * n, [inf] * 3 * n, 0, [], [], [])
    for k, name in enumerate(names):
        h.addRow(target[name], target[name], 3, [k, n + k, 2 * n + k], [1.0, -1.0, 1.0])
    h.addRow(total, total, n, list(range(n)), [1.0] * n)
    for c, floor in floors.items():
        idx = [names.index(i) for i in sorted(c)]
        h.addRow(floor, inf, len(idx), idx, [1.0] * len(idx))
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    y = list(h.getSolution().col_value)[:n]
    return dict(zip(names, (float(v) for v in y), strict=True))


def split_against_case2(
    coalition_costs: Mapping[frozenset[str], float], case2_bills: Mapping[str, float], final_cost: float
) -> Split:
    """Split ``final_cost`` (the MGC's case-3 cost) among the MGs by the rule of the module docstring:
    Shapley savings of the saving game ``w``, moved into the core (or, the core empty, into ``y >= 0``)
    when outside it. Raises ``ValueError`` when a coalition or a case-2 bill is missing."""
    w = saving_game(coalition_costs, case2_bills, final_cost)
    grand = frozenset(case2_bills)
    joint = w[grand]
    proper = {c: v for c, v in w.items() if c != grand}
    tol = _TOL * max(1.0, abs(joint), *(abs(v) for v in proper.values()))
    shapley = shapley_values(w)
    in_core = all(sum(shapley[i] for i in c) >= v - tol for c, v in proper.items())
    core = shapley if in_core else _nearest(shapley, joint, proper)
    if in_core:
        y, rule = shapley, SplitRule.SHAPLEY
    elif core is not None:
        y, rule = core, SplitRule.NEAREST_CORE
    elif joint >= -tol:
        singles = {c: 0.0 for c in proper if len(c) == 1}
        rational = _nearest(shapley, joint, singles)
        if rational is None:  # y = D/n is feasible: the LP cannot fail on valid numbers
            raise RuntimeError("split_against_case2: no individually rational point although D >= 0")
        y, rule = rational, SplitRule.NEAREST_RATIONAL
    else:
        y, rule = shapley, SplitRule.NOT_RATIONAL
    bills = {i: float(case2_bills[i]) - y[i] for i in sorted(case2_bills)}
    return Split(bills, dict(y), joint, rule, core_empty=core is None)
