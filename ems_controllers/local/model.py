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
import time
from collections import OrderedDict
from dataclasses import dataclass

import pyomo.environ as pyo

from ems_controllers.core import blocks
from ems_controllers.core.solver import PersistentHighs
from ems_controllers.core.types import DEFAULT_SOLVER_OPTIONS, Horizon, PartyProblem, SolveResult, SolverOptions

log = logging.getLogger(__name__)

_CACHE_SIZE = 8


@dataclass
class _Built:
    model: pyo.ConcreteModel
    solver: PersistentHighs
    build_s: float


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
    """One party's scheduling MILP, built once per structure and horizon length, then re-solved.

    ``solve`` returns a :class:`SolveResult` whose ``plans`` is ``{mg.name: PartyPlan}`` (``cost`` per
    step = the party's bill, summing to ``objective``) when feasible, else None. ``extra`` holds
    ``rebuilt`` (bool), ``pyomo_build_s``, ``set_data_s``, ``translate_s`` (first solve: Pyomo ->
    HiGHS; re-solve: param push), ``highs_s`` and ``backend``. ``build_s`` = build + data,
    ``solve_s`` = translate/update + HiGHS.
    """

    def __init__(self, backend: str = "contrib") -> None:
        self.backend = backend
        self._cache: OrderedDict[tuple, _Built] = OrderedDict()

    def _get(self, problem: PartyProblem, horizon: Horizon, opts: SolverOptions) -> tuple[_Built, bool]:
        key = (blocks.party_key(problem.mg), horizon.n_steps, horizon.dt_h, opts.pwl_max_error_per_h)
        built = self._cache.get(key)
        if built is not None:
            self._cache.move_to_end(key)
            return built, False
        t0 = time.perf_counter()
        m = build_local_model(problem, horizon.n_steps, horizon.dt_h, opts.pwl_max_error_per_h)
        built = _Built(m, PersistentHighs(m, self.backend), time.perf_counter() - t0)
        self._cache[key] = built
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return built, True

    def solve(
        self, problem: PartyProblem, horizon: Horizon, opts: SolverOptions = DEFAULT_SOLVER_OPTIONS
    ) -> SolveResult:
        try:
            built, rebuilt = self._get(problem, horizon, opts)
            t0 = time.perf_counter()
            set_local_data(built.model, problem, horizon)
            set_s = time.perf_counter() - t0
        except ValueError as exc:
            log.error("local %s: bad input: %s", problem.mg.name, exc)
            return SolveResult("error", "bad_input", None, None, 0.0, 0.0, message=str(exc))
        raw = built.solver.solve(opts)
        build_s = (built.build_s if rebuilt else 0.0) + set_s
        extra = {
            "rebuilt": rebuilt,
            "pyomo_build_s": built.build_s if rebuilt else 0.0,
            "set_data_s": set_s,
            "translate_s": raw.translate_s,
            "highs_s": raw.highs_s,
            "backend": self.backend,
        }
        plans = None
        if raw.feasible:
            b, T = built.model.party, built.model.T
            plans = {
                problem.mg.name: blocks.party_plan(
                    b,
                    problem.mg,
                    T,
                    import_mw=[pyo.value(b.import_mw[t]) for t in T],
                    cost=[pyo.value(b.cost[t]) for t in T],
                )
            }
        else:
            log.warning("local %s: %s (%s) %s", problem.mg.name, raw.status, raw.termination, raw.message)
        return SolveResult(
            raw.status,
            raw.termination,
            raw.objective if raw.feasible else None,
            plans,
            build_s,
            raw.translate_s + raw.highs_s,
            raw.mip_gap,
            raw.message,
            extra,
        )


def solve_local(problem: PartyProblem, horizon: Horizon, opts: SolverOptions = DEFAULT_SOLVER_OPTIONS) -> SolveResult:
    """Build and solve once (no reuse); see :class:`LocalModel` for repeated solves."""
    return LocalModel().solve(problem, horizon, opts)
