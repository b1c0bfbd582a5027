"""Each MG (and the DN) minimises its own bill against the tariff at its coupling point, MILP with HiGHS;
the decentralized upper bound on cost."""

from __future__ import annotations

from ems_controllers.core.contract import GRID_TIED, Strategy
from ems_controllers.core.outputs import PLANNER_OUTPUTS

# Each party solves its own model (a nested MG plans with the MG it is nested in: the planner adds its
# exchange to the parent's planned import): a run may spread the parties over several simulator
# processes (run.processes).
STRATEGY = Strategy.declare(__name__, "LocalEMS", PLANNER_OUTPUTS, cannot_handle=GRID_TIED, partitionable=True)
