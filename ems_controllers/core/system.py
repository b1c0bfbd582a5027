"""The full-information system MILP: one operator schedules every party (the MGs and the network
operator "DN"). The ``centralized`` strategy solves it as is; strategies that add the network (or tie
the parties to grants) add rows through the network hook.

One MILP. Each party p has its unit blocks and its own balance with a free import ``I_{p,t}``
(``|I_{p,t}| <= pcc_max_mw``; no per-party buy/sell binaries: inside the distribution network the
parties exchange freely and at no price). The substation exchange with the upstream grid is the sum
of the imports, split into buy and sell with a binary and priced by the tariff:

.. math::
    G_t = \\sum_p I_{p,t} = B_t - X_t,\\qquad 0 \\le B_t \\le M_t z_t,\\quad 0 \\le X_t \\le M_t (1 - z_t)

    \\min \\sum_t \\Big[ \\sum_p \\mathrm{unitcost}_{p,t} + (\\pi^b_t B_t - \\pi^s_t X_t) \\Delta t \\Big]

(unit cost = diesel running and start-up, curtailment and load-shed penalties;
``M_t = sum_p`` of each party's exchange bound, see ``blocks.exchange_bound_mw``).

Network hook: ``network(m, problems, T)`` is called once per build, after the parties and the
substation exist and before the objective. ``m.party[name].import_mw[t]`` is each party's net
withdrawal from the network at its PCC, ``m.sub`` the substation exchange. The hook adds its own
components (e.g. linearised DistFlow rows); data that change between solves must live in mutable
params the hook's owner updates, since the model is reused. A component ``m.network_cost`` indexed by
``T`` (Expression), if the hook adds one, enters the objective. If the hook returns a function
``t -> expression``, that expression is the substation's exchange (``G_t``) instead of the sum of the
imports: a network model whose root supplies the imports *and* the network's losses says so this way.
``islanded=True`` builds the system without an upstream grid: ``G_t = 0``.

Reported per-party cost (``PartyPlan.cost``): the party's own bill *as if* its import were priced at
the tariff, ``unitcost_{p,t} + (pi^b_t [I]^+ - pi^s_t [I]^-) dt``. These bills do not sum to the
system cost (internal trades net out at the substation); ``SolveResult.objective`` is the system cost.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyomo.environ as pyo

from ems_controllers.core import blocks
from ems_controllers.core.model_cache import ModelCache
from ems_controllers.core.types import (
    DEFAULT_SOLVER_OPTIONS,
    Horizon,
    PartyPlan,
    PartyProblem,
    SolveResult,
    SolverOptions,
)

log = logging.getLogger(__name__)

SubstationFlow = Callable[[Any], Any]
"""``t -> expression``: the substation's exchange (MW, + = import) as a network hook models it."""
NetworkHook = Callable[[pyo.ConcreteModel, Sequence[PartyProblem], pyo.Set], SubstationFlow | None]

_CACHE_SIZE = 4


@dataclass(frozen=True)
class SystemExchange:
    """The centralized solve's own result beside the plans: the planned substation exchange with the
    upstream grid, ``B_t - X_t`` per step (MW, + = import)."""

    substation_import_mw: tuple[float, ...]


type SystemResult = SolveResult[SystemExchange]
"""What :meth:`SystemModel.solve` returns."""


def build_system_model(
    problems: Sequence[PartyProblem],
    n_steps: int,
    dt_h: float,
    max_error_per_h: float,
    network: NetworkHook | None = None,
    islanded: bool = False,
) -> pyo.ConcreteModel:
    """The system MILP with placeholder data (see the module docstring for the components)."""
    names = [p.mg.name for p in problems]
    m = pyo.ConcreteModel(name="system")
    m.T = pyo.RangeSet(0, n_steps - 1)
    m.party = pyo.Block(names)
    for prob in problems:
        mg = prob.mg
        b = m.party[mg.name]
        blocks.add_party_units(b, mg, m.T, dt_h, max_error_per_h=max_error_per_h)
        bound = mg.pcc_max_mw if math.isfinite(mg.pcc_max_mw) else None
        b.import_mw = pyo.Var(m.T, bounds=(-bound if bound is not None else None, bound))
        blocks.add_balance(b, mg, m.T, dt_h, import_mw=b.import_mw)
    m.sub = pyo.Block()
    blocks.add_exchange(m.sub, 0.0 if islanded else math.inf, m.T, dt_h)
    flow = network(m, problems, m.T) if network is not None else None
    if flow is None:
        flow = lambda t: pyo.quicksum(m.party[n].import_mw[t] for n in names)  # noqa: E731
    m.sub.g_con = pyo.Constraint(m.T, rule=lambda s, t: s.buy_mw[t] - s.sell_mw[t] == flow(t))
    extra = getattr(m, "network_cost", None)
    m.obj = pyo.Objective(
        expr=pyo.quicksum(m.party[n].unit_cost[t] for n in names for t in m.T)
        + pyo.quicksum(m.sub.exch_cost[t] for t in m.T)
        + (pyo.quicksum(extra[t] for t in m.T) if extra is not None else 0.0),
        sense=pyo.minimize,
    )
    return m


def set_system_data(m: pyo.ConcreteModel, problems: Sequence[PartyProblem], horizon: Horizon) -> None:
    """Write every party's data and the tariff into the mutable params of a built model."""
    caps = [0.0] * horizon.n_steps
    for prob in problems:
        blocks.set_party_data(m.party[prob.mg.name], prob, horizon)
        fc = prob.forecast
        for t in range(horizon.n_steps):
            caps[t] += blocks.exchange_bound_mw(prob.mg, fc.load_p_mw[t], fc.pv_p_mw[t], fc.wind_p_mw[t])
    s = m.sub
    for t in range(horizon.n_steps):
        s.price_buy_per_mwh[t] = horizon.buy_price_per_mwh[t]
        s.price_sell_per_mwh[t] = horizon.sell_price_per_mwh[t]
        s.exch_cap_mw[t] = caps[t]


class SystemModel:
    """The full-information MILP over several parties, built once per structure, then re-solved
    (:class:`~ems_controllers.core.model_cache.ModelCache`).

    ``solve`` returns a :class:`SolveResult`: ``objective`` = system cost; ``plans`` = a PartyPlan per
    party name (``import_mw`` = net withdrawal at its PCC, ``cost`` = its bill if its import were priced
    at the tariff); ``times`` as in ``LocalModel``; ``detail``: the substation exchange
    (:class:`SystemExchange`) when feasible.
    """

    def __init__(self, network: NetworkHook | None = None, backend: str = "contrib", islanded: bool = False) -> None:
        self.network = network
        self.islanded = islanded
        self.backend = backend
        self._models = ModelCache(_CACHE_SIZE, backend)

    def solve(
        self, problems: Sequence[PartyProblem], horizon: Horizon, opts: SolverOptions = DEFAULT_SOLVER_OPTIONS
    ) -> SystemResult:
        names = [p.mg.name for p in problems]
        if len(set(names)) != len(names) or not names:
            msg = f"party names must be unique and non-empty: {names}"
            log.error("system model: bad input: %s", msg)
            return SolveResult.error("bad_input", msg)
        key = (tuple(blocks.party_key(p.mg) for p in problems), horizon.n_steps, horizon.dt_h, opts.pwl_max_error_per_h)
        try:
            run = self._models.solve(
                key,
                lambda: build_system_model(
                    problems, horizon.n_steps, horizon.dt_h, opts.pwl_max_error_per_h, self.network, self.islanded
                ),
                lambda m: set_system_data(m, problems, horizon),
                opts,
            )
        except ValueError as exc:
            log.error("system model: bad input: %s", exc)
            return SolveResult.error("bad_input", str(exc))
        raw = run.raw
        if not raw.feasible:
            log.warning("system model: %s (%s) %s", raw.status, raw.termination, raw.message)
            return run.result(None)
        m, T = run.model, run.model.T
        plans = {prob.mg.name: system_party_plan(m, prob, horizon) for prob in problems}
        sub = tuple(float((m.sub.buy_mw[t].value or 0.0) - (m.sub.sell_mw[t].value or 0.0)) for t in T)
        return run.result(plans, SystemExchange(sub))


def system_party_plan(m: pyo.ConcreteModel, prob: PartyProblem, horizon: Horizon) -> PartyPlan:
    """A solved party's plan read from a system model; its cost: its units plus its import as if
    priced at the tariff."""
    b, T, dt = m.party[prob.mg.name], m.T, horizon.dt_h
    imp = [float(b.import_mw[t].value or 0.0) for t in T]
    cost = [
        pyo.value(b.unit_cost[t])
        + dt * (horizon.buy_price_per_mwh[t] * i if i >= 0 else horizon.sell_price_per_mwh[t] * i)
        for t, i in zip(T, imp, strict=True)
    ]
    return blocks.party_plan(b, prob.mg, T, import_mw=imp, cost=cost)


def full_information_messages(
    problems: Sequence[PartyProblem], plans: Mapping[str, PartyPlan], time: int, operator: str
) -> list[dict[str, Any]]:
    """What crosses the parties' boundaries when one operator plans for all: each party's forecasts,
    unit state and data to the operator, and its schedule back (for ``Messages/`` and the audit)."""
    msgs: list[dict[str, Any]] = []
    for p in problems:
        name = p.mg.name
        for kind, values in (
            ("load_forecast_p_mw", p.forecast.load_p_mw),
            ("pv_forecast_p_mw", p.forecast.pv_p_mw),
            ("wind_forecast_p_mw", p.forecast.wind_p_mw),
        ):
            msgs.append({"t": time, "sender": name, "receiver": operator, "kind": kind, "values": list(values)})
        msgs.append(
            {
                "t": time,
                "sender": name,
                "receiver": operator,
                "kind": "unit_data_and_state",
                "values": [p.state.e_mwh if p.state.e_mwh is not None else float("nan"), p.state.diesel_p_mw],
            }
        )
        plan = plans.get(name)
        if plan is not None:
            for kind, values in (
                ("schedule_diesel_p_mw", plan.diesel_p_mw),
                ("schedule_battery_p_mw", plan.battery_p_mw),
                ("schedule_import_mw", plan.import_mw),
            ):
                msgs.append({"t": time, "sender": operator, "receiver": name, "kind": kind, "values": list(values)})
    return msgs
