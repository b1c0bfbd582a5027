"""Self-consumption rule per MG: battery absorbs surplus and covers deficit, diesel runs when the buy
price exceeds its marginal cost, the rest is bought or sold."""

from __future__ import annotations

from ems_controllers.core.contract import GRID_TIED, Strategy

SETPOINT_ATTRS = ("diesel_p_mw", "battery_p_mw", "pv_p_mw", "wind_p_mw", "pcc_closed")
STATUS_ATTRS = ("planned_import_mw", "planned_cost", "unserved_mw", "ems_status")
PLAN_ATTRS = ("plan_diesel_p_mw", "plan_battery_p_mw", "plan_import_mw", "plan_soc_mwh")
OUTPUT_ATTRS = (*SETPOINT_ATTRS, *STATUS_ATTRS, *PLAN_ATTRS, "messages")

# Each MG entity applies the rule to its own units and forecasts alone: a run may spread them over
# several simulator processes (run.processes).
STRATEGY = Strategy.declare(__name__, "RuleBasedEMS", OUTPUT_ATTRS, cannot_handle=GRID_TIED, partitionable=True)
