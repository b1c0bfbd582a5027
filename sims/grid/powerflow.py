"""The AC power flow of a net: one call, :meth:`PowerFlow.run`, one typed result, whichever path ran.

* **fast path** (:mod:`sims.grid.fastpath`): lightsim2grid models updated in place. Used when the net has
  exactly one ext_grid, no gen, only line and trafo switches, constant-power loads, no element
  lightsim2grid cannot convert, and the model reproduced a fresh ``pandapower.runpp`` within 1e-6 pu at
  set-up (each island model is checked the same way when built). lightsim2grid's trafo conversions
  ``pandapower_v2`` and ``pandapower_v3`` are tried in turn; with pandapower 3.5 only v2 matches (v3 is
  off by 2.5e-5 pu on simple_mv_open_ring_net).
* **runpp path** (:mod:`sims.grid.fallback`): ``pandapower.runpp`` on a working copy, for every other
  net and as a retry whenever the fast path does not converge.

A power flow that diverges on both gives a result with ``path`` DIVERGED and NaN everywhere.
"""

from __future__ import annotations

import logging

import pandapower as pp

from sims.grid.fallback import RunppPath
from sims.grid.fastpath import FastPath
from sims.grid.netindex import NetIndex
from sims.grid.pf_result import Injections, PowerFlowResult
from sims.grid.topology import Topology, analyse

logger = logging.getLogger(__package__)  # one logger for the grid simulator: "sims.grid"


class PowerFlow:
    """The power-flow paths of one net (its bus table sorted by index)."""

    def __init__(
        self,
        net: pp.pandapowerNet,
        index: NetIndex,
        topo: Topology,
        initial: Injections,
        use_fast_path: bool = True,
    ) -> None:
        """``topo`` and ``initial``: the switch state and injections the fast path is checked on."""
        self.index = index
        self.runpp = RunppPath(net, index)
        self.fast: FastPath | None = None
        reason: str | None = "the fast path is switched off"
        if use_fast_path:
            self.fast, reason = FastPath.build(net, index, topo, initial)
        if reason is not None:
            logger.info("GridSim uses pandapower.runpp for every step: %s", reason)

    @classmethod
    def of_net(cls, net: pp.pandapowerNet, use_fast_path: bool = True) -> tuple[PowerFlow, NetIndex]:
        """The power flow of ``net`` as it is (its switch states and values); sorts its bus table."""
        net.bus.sort_index(inplace=True)
        index = NetIndex.from_net(net)
        closed = net.switch["closed"].to_numpy(dtype=bool)
        return cls(net, index, analyse(index, closed), Injections.from_net(net), use_fast_path), index

    def run(self, topo: Topology, inj: Injections) -> PowerFlowResult:
        """The AC power flow of ``topo`` with the unit powers ``inj``: fast path, else runpp, else diverged."""
        result = None
        if self.fast is not None and not topo.has_bus_switch:
            result = self.fast.run(topo, inj)
        if result is None:
            result = self.runpp.run(topo, inj)
        return result if result is not None else PowerFlowResult.diverged(self.index)
