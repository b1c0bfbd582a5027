"""Nested EMS (spec 000): microgrids nested like rings schedule sequentially, innermost first.

Each level ``k`` solves its own MILP (:class:`~ems_controllers.local.model.LocalModel`: its units, its
aggregate load, its renewables) against the prices of the level above: trading prices with its parent
(``Microgrid.trade_*_price_per_mwh``), or the utility tariff for the outermost level. What the levels
nested directly inside ``k`` planned to exchange enters ``k``'s balance as a fixed injection (their
surplus as a source, their shortage as a load, ``Forecast.inner_net_mw``):

.. math::
    P^{dg}_t + PV_t + W_t + P^{dis}_t - P^{ch}_t + (B_t - X_t) + S_t
        + \\sum_{c \\in \\mathrm{children}(k)} (X^c_t - B^c_t) = L_t

Nothing else about an inner level crosses the boundary: the messages of a round are, per inner level,
its planned surplus and shortage to its parent (and the trading prices are public). The outer levels
therefore never see an inner load, unit or forecast. A failed solve at any level fails the round: the
levels outside it cannot plan without its exchange (the adapter then falls back for everybody).
Pure math: no mosaik, no file I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ems_controllers.core.nesting import nesting_order
from ems_controllers.core.types import Horizon, PartyProblem, SolveResult, SolverOptions, SolveStatus
from ems_controllers.local.model import LocalModel


@dataclass(frozen=True)
class NestedRound:
    """The nested solve's own result beside the plans: the levels in the order they solved (innermost
    first) and the messages each inner level sent its parent (its planned surplus and shortage)."""

    order: tuple[str, ...]
    messages: tuple[dict[str, Any], ...] = ()


type NestedResult = SolveResult[NestedRound]
"""What :meth:`NestedModel.solve` returns."""


class NestedModel:
    """Sequential scheduling innermost -> outermost; one cached LocalModel per level."""

    def __init__(self) -> None:
        self.models: dict[str, LocalModel] = {}

    def solve(self, problems: Sequence[PartyProblem], horizon: Horizon, opts: SolverOptions) -> NestedResult:
        by_name = {p.mg.name: p for p in problems}
        try:
            order = nesting_order([p.mg for p in problems])
        except ValueError as exc:
            return SolveResult.error("bad nesting", str(exc))
        n = horizon.n_steps
        inner: dict[str, list[float]] = {name: [0.0] * n for name in order}
        plans, by_party, messages = {}, {}, []
        objective, build_s, solve_s = 0.0, 0.0, 0.0
        for name in order:
            p = by_name[name]
            problem = replace(p, forecast=replace(p.forecast, inner_net_mw=tuple(inner[name])))
            model = self.models.setdefault(name, LocalModel())
            r = model.solve(problem, horizon.for_party(p.mg), opts)
            by_party[name] = r.build_s + r.solve_s
            build_s += r.build_s
            solve_s += r.solve_s
            if not r.ok or r.plans is None:
                return SolveResult(
                    r.status,
                    r.termination,
                    None,
                    None,
                    build_s,
                    solve_s,
                    message=f"level {name} failed: {r.message or r.termination}",
                    failed=dict.fromkeys(order, f"level {name}: {r.status}: {r.message or r.termination}"),
                    solve_s_by_party=by_party,
                    detail=NestedRound(tuple(order)),
                )
            plan = r.plans[name]
            plans[name] = plan
            objective += r.objective or 0.0
            parent = p.mg.parent
            if parent is not None:
                surplus = [max(-x, 0.0) for x in plan.import_mw]
                shortage = [max(x, 0.0) for x in plan.import_mw]
                for t in range(n):
                    inner[parent][t] += surplus[t] - shortage[t]
                messages.append({"sender": name, "receiver": parent, "kind": "surplus_mw", "values": surplus})
                messages.append({"sender": name, "receiver": parent, "kind": "shortage_mw", "values": shortage})
        return SolveResult(
            SolveStatus.OPTIMAL,
            "sequential",
            objective,
            plans,
            build_s,
            solve_s,
            solve_s_by_party=by_party,
            detail=NestedRound(tuple(order), tuple(messages)),
        )
