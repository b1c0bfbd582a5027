"""Local EMS: one party schedules its own units against the tariff at its point of common coupling.

The network is ignored. The party minimises its own bill over the horizon:

.. math::
    \\min \\sum_t \\big[ c^{dg}_t \\Delta t + C_{su} s_t + \\pi^{curt} \\mathrm{curt}_t \\Delta t
        + \\pi^{shed} S_t \\Delta t + (\\pi^b_t B_t - \\pi^s_t X_t) \\Delta t \\big]

subject to the blocks of :mod:`ems_controllers.core.blocks` (diesel, battery, renewables, load,
exchange with ``I_t = B_t - X_t`` limited by ``pcc_max_mw``, balance). The model is built once per
(party structure, ``n_steps``, ``dt_h``, PWL accuracy) and re-solved by writing new forecasts, prices,
initial state and final step into its mutable params (no rebuild, incremental update of HiGHS).
"""

from __future__ import annotations

import logging

import pyomo.environ as pyo

from ems_controllers.core import blocks
from ems_controllers.core.model_cache import ModelCache
from ems_controllers.core.types import DEFAULT_SOLVER_OPTIONS, Horizon, PartyProblem, SolveResult, SolverOptions

log = logging.getLogger(__name__)

_CACHE_SIZE = 8


def build_local_model(problem: PartyProblem, n_steps: int, dt_h: float, max_error_per_h: float) -> pyo.ConcreteModel:
    """The party's MILP with placeholder data; ``m.party`` holds the blocks, ``m.party.cost[t]``
    the party's per-step bill, ``m.party.import_mw[t] = buy - sell``."""
    mg = problem.mg
    m = pyo.ConcreteModel(name=f"local_{mg.name}")
    m.T = pyo.RangeSet(0, n_steps - 1)
    m.party = pyo.Block()
    b = m.party
    blocks.add_party_units(b, mg, m.T, dt_h, max_error_per_h=max_error_per_h)
    blocks.add_exchange(b, mg.pcc_max_mw, m.T, dt_h)
    b.import_mw = pyo.Expression(m.T, rule=lambda b, t: b.buy_mw[t] - b.sell_mw[t])
    blocks.add_balance(b, mg, m.T, dt_h, import_mw=b.import_mw)
    b.cost = pyo.Expression(m.T, rule=lambda b, t: b.unit_cost[t] + b.exch_cost[t])
    m.obj = pyo.Objective(expr=pyo.quicksum(b.cost[t] for t in m.T), sense=pyo.minimize)
    return m


def set_local_data(m: pyo.ConcreteModel, problem: PartyProblem, horizon: Horizon) -> None:
    """Write the problem and the horizon's prices into the mutable params of a built local model."""
    b = m.party
    blocks.set_party_data(b, problem, horizon)
    fc = problem.forecast
    for t in range(horizon.n_steps):
        b.price_buy_per_mwh[t] = horizon.buy_price_per_mwh[t]
        b.price_sell_per_mwh[t] = horizon.sell_price_per_mwh[t]
        b.exch_cap_mw[t] = blocks.exchange_bound_mw(problem.mg, fc.load_p_mw[t], fc.pv_p_mw[t], fc.wind_p_mw[t])


class LocalModel:
    """One party's scheduling MILP, built once per structure and horizon length, then re-solved
    (:class:`~ems_controllers.core.model_cache.ModelCache`).

    ``solve`` returns a :class:`SolveResult` whose ``plans`` is ``{mg.name: PartyPlan}`` (``cost`` per
    step = the party's bill, summing to ``objective``) when feasible, else None; ``times`` says whether
    the model was rebuilt and where the time went. ``build_s`` = build + data, ``solve_s`` =
    translate/update + HiGHS.
    """

    def __init__(self, backend: str = "contrib") -> None:
        self.backend = backend
        self._models = ModelCache(_CACHE_SIZE, backend)

    def solve(
        self, problem: PartyProblem, horizon: Horizon, opts: SolverOptions = DEFAULT_SOLVER_OPTIONS
    ) -> SolveResult[None]:
        key = (blocks.party_key(problem.mg), horizon.n_steps, horizon.dt_h, opts.pwl_max_error_per_h)
        try:
            run = self._models.solve(
                key,
                lambda: build_local_model(problem, horizon.n_steps, horizon.dt_h, opts.pwl_max_error_per_h),
                lambda m: set_local_data(m, problem, horizon),
                opts,
            )
        except ValueError as exc:
            log.error("local %s: bad input: %s", problem.mg.name, exc)
            return SolveResult.error("bad_input", str(exc))
        raw = run.raw
        if not raw.feasible:
            log.warning("local %s: %s (%s) %s", problem.mg.name, raw.status, raw.termination, raw.message)
            return run.result(None)
        b, T = run.model.party, run.model.T
        plan = blocks.party_plan(
            b,
            problem.mg,
            T,
            import_mw=[pyo.value(b.import_mw[t]) for t in T],
            cost=[pyo.value(b.cost[t]) for t in T],
        )
        return run.result({problem.mg.name: plan})


def solve_local(
    problem: PartyProblem, horizon: Horizon, opts: SolverOptions = DEFAULT_SOLVER_OPTIONS
) -> SolveResult[None]:
    """Build and solve once (no reuse); see :class:`LocalModel` for repeated solves."""
    return LocalModel().solve(problem, horizon, opts)
