"""mosaik adapter of the local EMS: every party schedules itself against the tariff at its PCC (or
against its own trading prices where it has them: a microgrid nested in another trades with its parent).

The parties solve separately (each MG on its own controller), so one infeasible MG falls back alone and
a planning round costs the slowest party's solve time. No message crosses an ownership boundary: each MG
knows only its own data and the tariff. Interface and fallbacks: :mod:`ems_controllers.core.adapter`.
"""

from __future__ import annotations

from typing import override

from ems_controllers.core.adapter import OUTPUT_ATTRS, PlanningEMS, run
from ems_controllers.core.types import Horizon, PartyPlan, PartyProblem, SolveResult, SolveStatus
from ems_controllers.local.model import LocalModel

__all__ = ["OUTPUT_ATTRS", "LocalEMS"]


class LocalEMS(PlanningEMS[None]):
    strategy_name = "local"

    def __init__(self) -> None:
        super().__init__()
        self.models: dict[str, LocalModel] = {}

    @override
    def solve(self, problems: list[PartyProblem], horizon: Horizon) -> SolveResult[None]:
        plans: dict[str, PartyPlan] = {}
        failed: dict[str, str] = {}
        by_party: dict[str, float] = {}
        statuses: list[SolveStatus] = []
        build_s, solve_s, objective = 0.0, 0.0, 0.0
        for p in problems:
            model = self.models.setdefault(p.mg.name, LocalModel())
            r = model.solve(p, horizon.for_party(p.mg), self.solve_opts)
            by_party[p.mg.name] = r.build_s + r.solve_s
            build_s += r.build_s
            solve_s += r.solve_s
            if r.ok and r.plans is not None:
                plans.update(r.plans)
                statuses.append(r.status)
                objective += r.objective or 0.0
            else:
                failed[p.mg.name] = f"{r.status}: {r.message or r.termination}"
        if not plans:
            status = SolveStatus.INFEASIBLE
        elif all(s is SolveStatus.OPTIMAL for s in statuses):
            status = SolveStatus.OPTIMAL
        else:
            status = SolveStatus.FEASIBLE
        return SolveResult(
            status=status,
            termination="per party",
            objective=objective if plans else None,
            plans=plans or None,
            build_s=build_s,
            solve_s=solve_s,
            message="; ".join(f"{k}: {v}" for k, v in failed.items()),
            failed=failed,
            solve_s_by_party=by_party,
        )


def main() -> None:
    run(LocalEMS())


if __name__ == "__main__":
    main()
