"""HiGHS's ``time_limit`` counts the run time its object accumulated over all its runs. A model built
once and re-solved for a long time (a rolling year, ADMM's local QPs) must still get its full allowance on
every solve: ``PersistentHighs`` sets the limit relative to what the object has already spent."""

from __future__ import annotations

import pyomo.environ as pyo
import pytest

from ems_controllers.core.solver import PersistentHighs
from ems_controllers.core.types import SolverOptions, SolveStatus

N = 400


def _chain_lp() -> pyo.ConcreteModel:
    m = pyo.ConcreteModel()
    m.I = pyo.RangeSet(0, N - 1)
    m.c = pyo.Param(m.I, mutable=True, initialize=1.0)
    m.x = pyo.Var(m.I, bounds=(0.0, 10.0))
    m.link = pyo.Constraint(pyo.RangeSet(0, N - 2), rule=lambda m, i: m.x[i] + m.x[i + 1] >= 1.0)
    m.obj = pyo.Objective(expr=sum(m.c[i] * m.x[i] for i in m.I))
    return m


@pytest.mark.parametrize("backend", ["contrib", "appsi"])
def test_re_solves_keep_their_time_allowance(backend: str) -> None:
    m = _chain_lp()
    solver = PersistentHighs(m, backend)
    opts = SolverOptions(time_limit_s=0.25, certify_relaxation=False)  # one solve takes ~2 ms
    spent, statuses = 0.0, []
    k = 0
    while spent < 1.0 and k < 5000:  # together four times one solve's limit
        for i in range(N):
            m.c[i] = 1.0 + ((i * 7 + k * 13) % 17) / 17.0
        raw = solver.solve(opts)
        statuses.append(raw.status)
        spent += raw.highs_s
        k += 1
    assert spent >= 1.0, "the solves were too fast to accumulate the limit several times over"
    assert all(s is SolveStatus.OPTIMAL for s in statuses), sorted({s.value for s in statuses})
