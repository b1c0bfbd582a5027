"""One operator schedules all MGs and the DN's units in one MILP, substation exchange priced by the
tariff; the full-information lower bound on cost."""

from __future__ import annotations

from ems_controllers.core.contract import GRID_TIED, Strategy
from ems_controllers.core.outputs import PLANNER_OUTPUTS

STRATEGY = Strategy.declare(__name__, "CentralizedEMS", PLANNER_OUTPUTS, cannot_handle=GRID_TIED)
