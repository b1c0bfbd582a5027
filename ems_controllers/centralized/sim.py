"""mosaik adapter of the centralized EMS: one operator schedules every party with full information.

The full-information lower bound on cost: one MILP over all MGs and the network operator's units; the MGs
exchange freely through the network and only the substation exchange is priced by the tariff. Every MG
hands its forecasts and unit data to the operator and gets its schedule back: both are recorded as
messages (``Messages/``), so what the operator saw is on file. Interface and fallbacks:
:mod:`ems_controllers.core.adapter`.
"""

from __future__ import annotations

from typing import Any, override

from ems_controllers.centralized.model import CentralizedModel, SystemExchange, SystemResult
from ems_controllers.core.adapter import OUTPUT_ATTRS, PlanningEMS, run
from ems_controllers.core.types import Horizon, PartyProblem

__all__ = ["OUTPUT_ATTRS", "CentralizedEMS"]

OPERATOR = "operator"


class CentralizedEMS(PlanningEMS[SystemExchange]):
    strategy_name = "centralized"

    def __init__(self) -> None:
        super().__init__()
        self.model = CentralizedModel()

    @override
    def solve(self, problems: list[PartyProblem], horizon: Horizon) -> SystemResult:
        return self.model.solve(problems, horizon, self.solve_opts)

    @override
    def boundary_messages(self, problems: list[PartyProblem], result: SystemResult, time: int) -> list[dict[str, Any]]:
        msgs: list[dict[str, Any]] = []
        for p in problems:
            name = p.mg.name
            for kind, values in (
                ("load_forecast_p_mw", p.forecast.load_p_mw),
                ("pv_forecast_p_mw", p.forecast.pv_p_mw),
                ("wind_forecast_p_mw", p.forecast.wind_p_mw),
            ):
                msgs.append({"t": time, "sender": name, "receiver": OPERATOR, "kind": kind, "values": list(values)})
            msgs.append(
                {
                    "t": time,
                    "sender": name,
                    "receiver": OPERATOR,
                    "kind": "unit_data_and_state",
                    "values": [p.state.e_mwh if p.state.e_mwh is not None else float("nan"), p.state.diesel_p_mw],
                }
            )
            plan = (result.plans or {}).get(name)
            if plan is not None:
                for kind, values in (
                    ("schedule_diesel_p_mw", plan.diesel_p_mw),
                    ("schedule_battery_p_mw", plan.battery_p_mw),
                    ("schedule_import_mw", plan.import_mw),
                ):
                    msgs.append({"t": time, "sender": OPERATOR, "receiver": name, "kind": kind, "values": list(values)})
        return msgs


def main() -> None:
    run(CentralizedEMS())


if __name__ == "__main__":
    main()
