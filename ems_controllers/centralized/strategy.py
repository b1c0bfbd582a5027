"""One operator schedules all MGs and the DN's units in one MILP, substation exchange priced by the
tariff; the network is left out, so its schedules may break voltage and line limits (the full-information
bound only where the network does not bind)."""

from __future__ import annotations

from ems_controllers.core.contract import GRID_TIED, Strategy
from ems_controllers.core.outputs import PLANNER_OUTPUTS

STRATEGY = Strategy.declare(__name__, "CentralizedEMS", PLANNER_OUTPUTS, cannot_handle=GRID_TIED)
