"""The grid model without mosaik: a net, its unit inputs and switch states, and one step at a time.

Each step
    1. unit powers are computed from the inputs held (:mod:`sims.grid.units`);
    2. the topology of the current switch state is looked up (:mod:`sims.grid.topology`);
    3. the AC power flow runs (:mod:`sims.grid.powerflow`: lightsim2grid, else pandapower runpp);
    4. a power flow that diverges on both paths gives NaN electrical outputs, ``pf_converged`` 0 and a
       logged warning with the time; the run continues. Unit setpoints that were applied stay applied;
    5. grid-forming units take their balancing power, the SoC integrates; the outputs are built when asked
       for (:mod:`sims.grid.outputs`).
"""

from __future__ import annotations

import logging

import pandapower as pp

from sims.grid.netindex import NetIndex
from sims.grid.outputs import StepOutputs
from sims.grid.pf_result import Injections
from sims.grid.powerflow import PowerFlow
from sims.grid.topology import TopologyCache
from sims.grid.units import Units

logger = logging.getLogger(__package__)  # one logger for the grid simulator: "sims.grid"


class GridModel:
    """One pandapower net stepped in time (``dt_h`` hours per step)."""

    def __init__(self, net: pp.pandapowerNet, dt_h: float) -> None:
        net.bus.sort_index(inplace=True)
        self.net = net
        self.index = NetIndex.from_net(net)
        self.units = Units(net, self.index, dt_h)
        self.switch_closed = net.switch["closed"].to_numpy(dtype=bool).copy()
        """Switch inputs: held until a new value arrives."""
        self.topologies = TopologyCache(self.index)
        # the fast path is checked on the net's own state
        initial = Injections.from_net(net)
        topo = self.topologies.get(self.switch_closed)
        self.powerflow = PowerFlow(net, self.index, topo, initial)
        self.outputs = StepOutputs(self.index, topo)
        """The outputs of the last step (before the first: NaN but the switch states)."""
        self.last_path = ""
        """Power-flow path of the last step: "fast", "runpp" or "diverged" (diagnostics, tests)."""

    def step(self, time: int) -> StepOutputs:
        """Simulate the step starting at ``time`` with the inputs held; its outputs."""
        topo = self.topologies.get(self.switch_closed)
        dispatch = self.units.dispatch(topo, time)
        result = self.powerflow.run(topo, dispatch.injections(self.units.params))
        self.last_path = result.path.value
        if not result.converged:
            logger.warning("t=%s: power flow did not converge; electrical outputs are NaN", time)
        settled = self.units.settle(dispatch, result.slack_p_mw if result.converged else None, time)
        self.outputs = StepOutputs(self.index, topo, settled, result)
        return self.outputs
