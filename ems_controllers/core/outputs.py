"""Attribute names of the EMS entity every planning strategy shares (its mosaik model ``MG``).

Kept apart from the planning adapter so that a strategy's contract (``<strategy>/strategy.py``) can list
its outputs without importing the solver stack.
"""

from __future__ import annotations

INPUT_ATTRS = ("load_forecast_p_mw", "pv_forecast_p_mw", "wind_forecast_p_mw", "soc_mwh")
SETPOINT_ATTRS = ("diesel_p_mw", "battery_p_mw", "pv_p_mw", "wind_p_mw", "pcc_closed")
STATUS_ATTRS = (
    "planned_import_mw",
    "planned_cost",
    "planned_soc_mwh",
    "unserved_mw",
    "ems_status",
    "solve_time_s",
    "objective",
)
PLAN_ATTRS = ("plan_diesel_p_mw", "plan_battery_p_mw", "plan_import_mw", "plan_soc_mwh", "plan_cost")
PLANNER_OUTPUTS = (*SETPOINT_ATTRS, *STATUS_ATTRS, *PLAN_ATTRS, "messages")
"""What every strategy built on the planning adapter outputs for each party."""
