"""Strategy ``admm``: every party's part of ADMM in one object, with exact sums (no mosaik, no crypto).

The iteration is :mod:`ems_controllers.admm.coordinator`'s - each MG's :class:`~ems_controllers.admm.
coordinator.MgIterate` and the authority's :class:`~ems_controllers.admm.coordinator.Coordinator` - the
same the mosaik agents run; here the authority gets the plain sum of the MGs' contributions instead of a
decrypted one. For tests, benchmarks and as the baseline the co-simulated protocol is measured against.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from ems_controllers.admm.coordinator import Broadcast, Coordinator, MgIterate
from ems_controllers.admm.model import AdmmMg, AdmmResult, AdmmSettings, AdmmState, LocalQp, check_fleet
from ems_controllers.core.types import SolveStatus


class AdmmSolver:
    """Exchange ADMM over a fleet of MGs; keeps each MG's local QP between calls (planning instants)."""

    def __init__(self, settings: AdmmSettings | None = None) -> None:
        self.settings = settings or AdmmSettings()
        self._mgs: dict[str, MgIterate] = {}

    def local_qps(self) -> dict[str, LocalQp | None]:
        """Each MG's local QP as built so far (the same objects across instants of the same structure)."""
        return {name: it.qp for name, it in self._mgs.items()}

    def _iterate(self, mg: AdmmMg, dt_h: float) -> MgIterate:
        it = self._mgs.get(mg.name)
        if it is None or it.dt_h != dt_h or it.relaxation != self.settings.relaxation:
            it = self._mgs[mg.name] = MgIterate(dt_h, self.settings.relaxation, share_norm=self.settings.tol_rel > 0.0)
        return it

    def solve(self, mgs: Sequence[AdmmMg], dt_h: float, start: AdmmState | None = None) -> AdmmResult:
        """Run ADMM at one planning instant, from ``start`` (the previous instant's state) if given."""
        t0 = time.perf_counter()
        n_steps = check_fleet(mgs)
        n = len(mgs)
        warm = start is not None and np.shape(start.eep_mw) == (n, n_steps)
        iterates = [self._iterate(mg, dt_h) for mg in mgs]
        for i, (it, mg) in enumerate(zip(iterates, mgs, strict=True)):
            it.start(mg, start.eep_mw[i] if warm and start is not None else None)
        coord = Coordinator(self.settings, n, n_steps)
        if warm and start is not None:
            b = coord.start(tuple(np.mean(start.eep_mw, axis=0)), start.u, start.rho)
        else:
            b = coord.start(None, None, None)
        message = ""
        while not b.done:
            contributions = []
            for it, mg in zip(iterates, mgs, strict=True):
                status, c = it.iterate(b)
                if not status.has_plan:
                    message = f"local QP of {mg.name}: {status.value}"
                    break
                contributions.append(c)
            if message:
                b = coord.abort()
                break
            x_sum = np.sum([c.x_mw for c in contributions], axis=0)
            b = coord.update(x_sum, sum(c.dx_sq for c in contributions), sum(c.x_sq for c in contributions))
        return _result(mgs, iterates, coord, b, message, time.perf_counter() - t0)


def _result(
    mgs: Sequence[AdmmMg],
    iterates: Sequence[MgIterate],
    coord: Coordinator,
    final: Broadcast,
    message: str,
    solve_s: float,
) -> AdmmResult:
    trace = coord.trace(final)
    status = SolveStatus.ERROR if message else SolveStatus.OPTIMAL if final.converged else SolveStatus.FEASIBLE
    schedules = {}
    if not message:
        schedules = {mg.name: it.qp.schedule(mg) for mg, it in zip(mgs, iterates, strict=True) if it.qp is not None}
    x = np.array([it.x for it in iterates])
    eep = {mg.name: tuple(float(v) for v in x[i]) for i, mg in enumerate(mgs)}
    return AdmmResult(
        status=status,
        converged=final.converged,
        iterations=trace.iterations,
        schedules=schedules,
        eep_mw=eep,
        price_per_mw=trace.price_per_mw,
        primal_residual=trace.primal,
        dual_residual=trace.dual,
        rho=trace.rho,
        final_gap_mw=float(np.max(np.abs(x.sum(axis=0)))),
        total_cost=sum(s.cost for s in schedules.values()) if schedules else math.nan,
        solve_s=solve_s,
        highs_s=sum(it.highs_s for it in iterates),
        state=AdmmState(tuple(eep.values()), final.u, final.rho),
        message=message,
    )


def solve_admm(
    mgs: Sequence[AdmmMg], dt_h: float, settings: AdmmSettings | None = None, start: AdmmState | None = None
) -> AdmmResult:
    """One-shot ADMM (builds the local QPs; keep an :class:`AdmmSolver` to re-solve across instants)."""
    return AdmmSolver(settings).solve(mgs, dt_h, start)
