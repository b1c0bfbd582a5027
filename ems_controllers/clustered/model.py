"""The ``clustered`` strategy's planning round (spec 004), lower level then upper level, pure math.

1. Lower level (:mod:`lower_solve`): the MGs escalate through the sub-levels (island -> cluster ->
   other clusters -> network, :mod:`escalation`), then minimise EC under lockstep bounds on GC and Loss
   (the eps-constraint front) and take the fuzzy min-max pick. Demand response lives here (see the
   strategy's docstring for why).
2. Upper level (:mod:`upper`): the network operator, with its own loads, grants each cluster's exchange
   under the network's limits and trades the rest upstream (weighted sum with ``zeta``).
3. Where a grant differs from its request, the MGs reschedule around the grants.

:meth:`ClusteredModel.solve` returns a :class:`SolveResult` with a plan per MG and the whole round in
:class:`ClusteredDetail`; a failed stage gives an error result (the adapter falls back) and says which.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ems_controllers.clustered.lower import LowerSettings
from ems_controllers.clustered.lower_solve import LowerLevel, LowerLevelFailed, LowerOutcome, Schedule
from ems_controllers.clustered.pareto import Zeta
from ems_controllers.clustered.system import ClusterSystem, SvcSpec
from ems_controllers.clustered.upper import UpperLevel, UpperOutcome, UpperSettings
from ems_controllers.core.network import NetworkData
from ems_controllers.core.types import Horizon, PartyProblem, SolveResult, SolverOptions, SolveStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusteredSettings:
    """Everything the planning round needs besides the scenario's data (from the strategy's settings)."""

    lower: LowerSettings
    zeta: Zeta
    deviation_price_per_mwh: float
    s_max_factor: float
    n_points: int
    network_loss_max_error_mw: float
    point_time_limit_s: float
    vm_margin_pu: float
    svc_price_per_mvarh: float = 1.0


@dataclass(frozen=True)
class ClusteredDetail:
    """A planning round: the lower level's outcome, the upper level's, and the schedule the MGs follow
    (the picked point's, or the rescheduled one where the network changed a grant)."""

    lower: LowerOutcome
    upper: UpperOutcome | None
    schedule: Schedule
    rescheduled: bool
    reschedule_s: float
    upper_status: str


type ClusteredResult = SolveResult[ClusteredDetail]


class ClusteredModel:
    """Lower and upper level of one scenario, each built once and re-solved."""

    def __init__(
        self,
        system: ClusterSystem,
        network: NetworkData | None,
        cluster_bus: Mapping[str, int],
        s: ClusteredSettings,
        svcs: Sequence[SvcSpec] = (),
    ) -> None:
        self.system = system
        self.lower = LowerLevel(system, s.lower, s.n_points, s.point_time_limit_s)
        upper_settings = UpperSettings(
            s.zeta,
            s.lower.grid_emission_cost_per_mwh,
            s.deviation_price_per_mwh,
            s.network_loss_max_error_mw,
            s.s_max_factor,
            s.vm_margin_pu,
            s.svc_price_per_mvarh,
        )
        self.upper = UpperLevel(network, cluster_bus, upper_settings, svcs) if network is not None else None

    def solve(
        self,
        problems: Sequence[PartyProblem],
        network_load: tuple[Mapping[int, Sequence[float]], Mapping[int, Sequence[float]]],
        horizon: Horizon,
        opts: SolverOptions,
    ) -> ClusteredResult:
        """Plan every clustered MG (``problems``) with the network's loads by bus (``network_load``:
        P and Q, MW and Mvar per step)."""
        t0 = time.perf_counter()
        try:
            lower = self.lower.plan(problems, horizon, opts)
        except LowerLevelFailed as exc:
            log.warning("clustered: lower level failed: %s", exc)
            return SolveResult.error("lower_level", str(exc))
        schedule, upper, rescheduled, resched_s, status = lower.schedule, None, False, 0.0, "no network model"
        if self.upper is not None:
            upper = self.upper.plan(lower.schedule.feeder_mw, lower.schedule.feeder_closed, network_load, horizon, opts)
            status = "infeasible: the network cannot carry the requests" if upper is None else upper.status
            if upper is not None and upper.changed(lower.schedule.feeder_mw):
                t1 = time.perf_counter()
                again = self.lower.reschedule(problems, horizon, opts, lower, upper.grant_mw)
                resched_s, rescheduled = time.perf_counter() - t1, True
                if again is None:
                    return SolveResult.error("reschedule", "the MGs cannot meet the network's grants")
                schedule = again
        detail = ClusteredDetail(lower, upper, schedule, rescheduled, resched_s, status)
        total = time.perf_counter() - t0
        return SolveResult(
            SolveStatus.OPTIMAL, "optimal", schedule.values.gc_per_day, schedule.plans, 0.0, total, detail=detail
        )
