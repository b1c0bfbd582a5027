"""mosaik adapter of the centralized EMS: one operator schedules every party with full information.

The full-information lower bound on cost: one MILP over all MGs and the network operator's units; the MGs
exchange freely through the network and only the substation exchange is priced by the tariff. Every MG
hands its forecasts and unit data to the operator and gets its schedule back: both are recorded as
messages (``Messages/``), so what the operator saw is on file. Interface and fallbacks:
:mod:`ems_controllers.core.adapter`.
"""

from __future__ import annotations

from typing import Any, override

from ems_controllers.core.adapter import OUTPUT_ATTRS, PlanningEMS, run
from ems_controllers.core.system import SystemExchange, SystemModel, SystemResult, full_information_messages
from ems_controllers.core.types import Horizon, PartyProblem

__all__ = ["OUTPUT_ATTRS", "CentralizedEMS"]

OPERATOR = "operator"


class CentralizedEMS(PlanningEMS[SystemExchange]):
    strategy_name = "centralized"

    def __init__(self) -> None:
        super().__init__()
        self.model = SystemModel()

    @override
    def solve(self, problems: list[PartyProblem], horizon: Horizon) -> SystemResult:
        return self.model.solve(problems, horizon, self.solve_opts)

    @override
    def boundary_messages(self, problems: list[PartyProblem], result: SystemResult, time: int) -> list[dict[str, Any]]:
        return full_information_messages(problems, result.plans or {}, time, OPERATOR)


def main() -> None:
    run(CentralizedEMS())


if __name__ == "__main__":
    main()
