"""The mosaik adapter every optimising EMS shares: inputs to a planning problem, a plan to setpoints.

One ``MG`` entity per party (eid = its name; ``DN`` for the network operator's units), the interface of
``docs/interfaces.md``. A strategy subclasses :class:`PlanningEMS` and implements :meth:`solve`, which gets
every party's problem over one horizon and returns a typed :class:`SolveResult`; this class does the rest:

* **When to plan.** Day-ahead (default): whenever new forecasts arrive (hour 0 of each day with the
  scenario's day-ahead forecasts), over the forecast's length. Rolling (``rolling=True``): every step,
  from the measured state of charge, over the next ``forecast_horizon`` steps (``horizon="receding"``) or
  to the end of the day (``horizon="shrinking"``).
* **The day.** Time 0 is midnight; a battery's final-energy target applies at the last step of each day
  inside the horizon (``Horizon.final_step``).
* **Fallback** (a failed or infeasible solve never ends a run, nor is its plan used): the previous plan
  if it still covers the step, else the rule-based EMS for the step; ``ems_status`` says which and why
  (``"fallback: previous plan (infeasible: ...)"``), and the reason is logged.
* **Outputs** per step: the plan's setpoints at this step, the planned exchange, cost and SoC, the solve
  time spent at this step, and at planning instants the whole plan (``plan_*`` lists, None otherwise)
  and the messages that crossed an ownership boundary (``messages``).
"""

from __future__ import annotations

import abc
import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, override

import mosaik_api_v3

from ems_controllers.core.mg_entity import Clock, MgEntityParams, mg_meta, no_forecast_setpoints, read_inputs, rule_step
from ems_controllers.core.nesting import nesting_order
from ems_controllers.core.outputs import PLANNER_OUTPUTS
from ems_controllers.core.types import (
    EmsStatus,
    Forecast,
    Horizon,
    Microgrid,
    PartyPlan,
    PartyProblem,
    SolveResult,
    SolverOptions,
    SolveStatus,
    Tariff,
    UnitState,
)

if TYPE_CHECKING:
    from mosaik_api_v3.types import CreateResult, InputData, Meta, ModelName, OutputData, OutputRequest, SimId, Time

logger = logging.getLogger(__name__)

OUTPUT_ATTRS = list(PLANNER_OUTPUTS)

META: Meta = mg_meta(OUTPUT_ATTRS)

HORIZON_MODES = ("receding", "shrinking")


@dataclass
class Party:
    """One ``MG`` entity's state in the adapter (what :meth:`PlanningEMS._outputs` gets)."""

    mg: Microgrid
    pv_rated_mw: float
    wind_rated_mw: float
    e_mwh: float
    load_buses: dict[str, int] | None = None  # load forecast source (full id) -> bus, where known
    load_owners: dict[str, str] | None = None  # load forecast source (full id) -> its owner, where known
    prev_diesel_mw: float = 0.0
    out: dict[str, Any] | None = None


@dataclass
class _ActivePlan:
    start: int  # mosaik time of the plan's first step
    plan: PartyPlan


@dataclass(frozen=True)
class PartyRound:
    """What a planning round did for one party: a new plan (``fallback_reason`` None, its ``ems_status``
    in ``plan_status``) or none, and why (``fallback_reason``)."""

    solve_time_s: float
    objective: float | None
    plan_status: str = EmsStatus.OK.value
    fallback_reason: str | None = None

    @property
    def new_plan(self) -> bool:
        return self.fallback_reason is None


class PlanningEMS[D](mosaik_api_v3.Simulator, abc.ABC):
    """Base adapter of an optimising EMS (see the module docstring). Subclasses implement ``solve``."""

    strategy_name = "planning"
    # whether a party's plan already contains what its nested MGs exchange through its PCC (the nested
    # EMS's does: they enter its balance); otherwise the adapter adds them to planned_import_mw
    plans_include_nested = False

    def __init__(self) -> None:
        super().__init__(copy.deepcopy(META))  # subclasses extend their own copy
        self.parties: dict[str, Party] = {}
        self.forecasts: dict[str, dict[str, tuple[int, list[float]]]] = {}
        # per source, for strategies that need to know where a load is: party -> source -> (t, values)
        self.load_sources: dict[str, dict[str, tuple[int, list[float]]]] = {}
        self.site: dict[str, Any] = {}
        self.step_size = 3600
        self.time_resolution = 1.0
        self.tariff: Tariff | None = None
        self.opts = SolverOptions()
        self.rolling = False
        self.horizon_mode = "receding"
        self.active: dict[str, _ActivePlan] = {}
        self.last_plan_time: int | None = None
        self.force_plan = False  # a subclass that learned a new forecast by other means sets it
        self.failure: dict[str, str] = {}  # party -> why its last planning round gave it no plan
        self.warm_start = True
        self.solve_opts = self.opts
        self.messages: list[dict[str, Any]] = []

    # -- mosaik API -----------------------------------------------------------------------------------
    @override
    def init(
        self,
        sid: SimId,
        time_resolution: float = 1.0,
        step_size: int = 3600,
        tariff: dict[str, Any] | None = None,
        mip_rel_gap: float = 1e-3,
        time_limit_s: float = 60.0,
        pwl_max_error_per_h: float = 0.5,
        rolling: bool = False,
        horizon: str = "receding",
        **params: Any,
    ) -> Meta:
        if horizon not in HORIZON_MODES:
            raise ValueError(f"horizon must be one of {HORIZON_MODES}, got {horizon!r}")
        clock = Clock.parse(type(self).__name__, step_size, time_resolution, tariff)
        self.step_size, self.time_resolution, self.tariff = clock.step_size, clock.time_resolution, clock.tariff
        self.opts = SolverOptions(
            mip_rel_gap=float(mip_rel_gap),
            time_limit_s=float(time_limit_s),
            pwl_max_error_per_h=float(pwl_max_error_per_h),
        )
        self.rolling = bool(rolling)
        self.horizon_mode = horizon
        self.configure_strategy(**params)
        return self.meta

    def configure_strategy(self, site: dict[str, Any] | None = None, **params: Any) -> None:
        """Strategy-specific sim params (the ``init`` params this class does not take). ``site``: where
        things are in the grid (the scenario's net as pandapower JSON, buses of the parties, tie switches;
        see the scenario), for network-aware strategies; others ignore it.

        Not named ``configure``: that is mosaik's hook for the command line arguments of a simulator
        started as its own process (:meth:`mosaik_api_v3.Simulator.configure`), called before ``init``."""
        if params:
            raise ValueError(f"{type(self).__name__}: unknown sim params {sorted(params)}")
        self.site = site or {}

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        """One ``MG`` entity per call (params: :meth:`MgEntityParams.parse`)."""
        p = MgEntityParams.parse(num, self.parties, **model_params)
        name = p.mg.name
        e0 = p.mg.battery.e_init_mwh if p.mg.battery else 0.0
        self.parties[name] = Party(p.mg, p.pv_rated_mw, p.wind_rated_mw, e0, p.load_buses, p.load_owners)
        self.forecasts[name] = {}
        self.load_sources[name] = {}
        return [{"eid": name, "type": model}]

    @property
    def dt_h(self) -> float:
        return self.step_size * self.time_resolution / 3600.0

    @property
    def steps_per_day(self) -> int:
        assert self.tariff is not None
        return len(self.tariff.buy_price_per_mwh)

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time | None:
        plan_now, owner_msgs = self.read_step_inputs(time, inputs)
        self.messages = []
        rounds = self._plan(time) if plan_now else {}
        self.finish_step(time, rounds, owner_msgs)
        return time + self.step_size

    def read_step_inputs(self, time: int, inputs: InputData) -> tuple[bool, list[dict[str, Any]]]:
        """Take in a step's forecasts and measured state; (whether to plan now, the owners' messages)."""
        new_forecast = False
        owner_msgs: list[dict[str, Any]] = []
        for name, party in self.parties.items():
            got = read_inputs(time, name, inputs.get(name, {}), party.load_owners or {})
            for attr, values in got.forecasts.items():
                self.forecasts[name][attr] = (time, values)
                new_forecast = True
            for src, values in got.load_sources.items():
                self.load_sources[name][src] = (time, values)
            owner_msgs += got.owner_messages
            if got.soc_mwh is not None:
                party.e_mwh = got.soc_mwh
        plan_now = (self.rolling or new_forecast or self.force_plan) and self._forecasts_cover(time)
        self.force_plan = False
        return plan_now, owner_msgs

    def finish_step(self, time: int, rounds: Mapping[str, PartyRound], owner_msgs: list[dict[str, Any]]) -> None:
        """Every party's outputs of the step, after its planning round (if any)."""
        for name, party in self.parties.items():
            party.out = self._outputs(name, party, time, rounds)
        if not self.plans_include_nested:
            self._add_nested_flows()
        self.messages = owner_msgs + self.messages

    def _add_nested_flows(self) -> None:
        """A nested MG's exchange flows through its parent's PCC: add it (innermost first) to the parent's
        planned import, so ``planned_import_mw`` is the planned flow at each party's PCC."""
        parents = {n: p.mg.parent for n, p in self.parties.items() if p.mg.parent in self.parties}
        if not parents:
            return
        for name in nesting_order([p.mg for p in self.parties.values()]):
            parent = parents.get(name)
            out = self.parties[name].out
            if parent is None or out is None:
                continue
            pout = self.parties[parent].out
            if (
                pout is not None
                and pout.get("planned_import_mw") is not None
                and out.get("planned_import_mw") is not None
            ):
                pout["planned_import_mw"] += out["planned_import_mw"]

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        data: OutputData = {}
        for eid, attrs in outputs.items():
            out = self.parties[eid].out or {}
            data[eid] = {a: self._messages_of(eid) if a == "messages" else out.get(a) for a in attrs}
        return data

    def _messages_of(self, eid: str) -> list[dict[str, Any]]:
        """Each message once, on one entity: its sender's if a party sent it, else its receiver's, else
        (between two non-parties, e.g. a coordinator and the network operator) the first party's."""

        def owner(m: dict[str, Any]) -> str:
            if m["sender"] in self.parties:
                return m["sender"]
            if m["receiver"] in self.parties:
                return m["receiver"]
            return "DN" if "DN" in self.parties else next(iter(self.parties))

        return [m for m in self.messages if owner(m) == eid]

    # -- strategy hook --------------------------------------------------------------------------------
    @abc.abstractmethod
    def solve(self, problems: list[PartyProblem], horizon: Horizon) -> SolveResult[D]:
        """Plan every party over ``horizon``; never raise for an infeasible problem.

        A strategy whose parties solve separately may return plans for some parties only: it names the
        others in ``SolveResult.failed`` (party -> reason) and their solve times in
        ``SolveResult.solve_s_by_party`` (party -> seconds; default: the whole build + solve time).
        What else the strategy knows about the round goes in ``SolveResult.detail`` (type ``D``).
        """

    def boundary_messages(
        self, problems: list[PartyProblem], result: SolveResult[D], time: int
    ) -> list[dict[str, Any]]:
        """Messages that crossed an ownership boundary in this planning round (none by default)."""
        return []

    def plan_detail(self, result: SolveResult[D]) -> str | None:
        """What ``ems_status`` adds to "ok" for a new plan: the solve's status unless it is optimal."""
        return None if result.status is SolveStatus.OPTIMAL else result.status.value

    # -- planning -------------------------------------------------------------------------------------
    def load_by_bus(
        self, name: str, time: int, n: int, q_ratio: Mapping[int, float]
    ) -> tuple[dict[int, list[float]], dict[int, list[float]]]:
        """Party ``name``'s load forecasts summed per bus (its ``load_buses``), ``n`` steps from ``time``:
        P (MW) and Q (Mvar, P times the bus's ``q_ratio``), for network-aware strategies."""
        party = self.parties[name]
        p_by_bus: dict[int, list[float]] = {}
        for src, bus in (party.load_buses or {}).items():
            entry = self.load_sources[name].get(src)
            if entry is None:
                continue
            t0, values = entry
            k = (time - t0) // self.step_size
            acc = p_by_bus.setdefault(int(bus), [0.0] * n)
            for i, v in enumerate(values[k : k + n]):
                acc[i] += v
        q_by_bus = {b: [v * q_ratio.get(b, 0.0) for v in p] for b, p in p_by_bus.items()}
        return p_by_bus, q_by_bus

    def _forecast_from(self, name: str, attr: str, time: int) -> list[float] | None:
        entry = self.forecasts[name].get(attr)
        if entry is None:
            return None
        t0, values = entry
        k = (time - t0) // self.step_size
        return values[k:] if 0 <= k < len(values) else None

    def _forecasts_cover(self, time: int) -> bool:
        return all(self._forecast_from(n, "load_forecast_p_mw", time) is not None for n in self.parties)

    def _horizon(self, time: int, n: int) -> Horizon:
        assert self.tariff is not None
        spd = self.steps_per_day
        first = (time // self.step_size) % spd
        if self.horizon_mode == "shrinking":
            n = min(n, spd - first)
        final = spd - 1 - first
        idx = [(first + i) % spd for i in range(n)]
        return Horizon(
            dt_h=self.dt_h,
            buy_price_per_mwh=tuple(self.tariff.buy_price_per_mwh[i] for i in idx),
            sell_price_per_mwh=tuple(self.tariff.sell_price_per_mwh[i] for i in idx),
            final_step=final if final < n else None,
            first_step_of_day=first,
        )

    def _problems(self, time: int) -> tuple[list[PartyProblem], Horizon]:
        loads = {n: self._forecast_from(n, "load_forecast_p_mw", time) or [] for n in self.parties}
        n = min(len(v) for v in loads.values())
        horizon = self._horizon(time, n)
        n = horizon.n_steps
        problems = []
        for name, party in self.parties.items():
            pv = self._forecast_from(name, "pv_forecast_p_mw", time) or [0.0] * n
            wind = self._forecast_from(name, "wind_forecast_p_mw", time) or [0.0] * n
            fc = Forecast(tuple(loads[name][:n]), tuple(pv[:n]), tuple(wind[:n]))
            state = UnitState(e_mwh=party.e_mwh if party.mg.battery else None, diesel_p_mw=party.prev_diesel_mw)
            problems.append(PartyProblem(party.mg, fc, state))
        return problems, horizon

    def _plan(self, time: int) -> dict[str, PartyRound]:
        """Solve, keep the new plans, and say per party what happened (solve time, status, reason)."""
        problems, horizon = self._problems(time)
        consecutive = self.last_plan_time is not None and time - self.last_plan_time == self.step_size
        self.solve_opts = replace(self.opts, warm_start_shift=1 if self.warm_start and consecutive else None)
        self.last_plan_time = time
        result = self.solve(problems, horizon)
        total_s = result.build_s + result.solve_s
        failed: dict[str, str] = dict(result.failed)
        plans = result.plans if result.ok and result.plans is not None else {}
        if not plans:
            reason = f"{result.status}: {result.message or result.termination}"
            failed = {name: failed.get(name, reason) for name in self.parties}
        plan_status = EmsStatus.OK.text(self.plan_detail(result))
        rounds: dict[str, PartyRound] = {}
        for name in self.parties:
            solve_time_s = result.solve_s_by_party.get(name, total_s)
            if name in plans:
                self.active[name] = _ActivePlan(time, plans[name])
                self.failure.pop(name, None)
                rounds[name] = PartyRound(solve_time_s, result.objective, plan_status=plan_status)
            else:
                reason = failed.get(name, "no plan for this party")
                rounds[name] = PartyRound(solve_time_s, result.objective, fallback_reason=reason)
                self.failure[name] = reason
                logger.warning("%s at t=%s: no plan for %s (%s); falling back", self.strategy_name, time, name, reason)
        if plans:
            self.messages = self.boundary_messages(problems, result, time)
        return rounds

    def _outputs(self, name: str, party: Party, time: int, rounds: Mapping[str, PartyRound]) -> dict[str, Any]:
        rnd = rounds.get(name)
        out: dict[str, Any] = {
            "pcc_closed": True,
            "solve_time_s": rnd.solve_time_s if rnd is not None else 0.0,
            "objective": rnd.objective if rnd is not None else None,
        }
        plan = None
        k = 0
        active = self.active.get(name)
        if active is not None:
            k = (time - active.start) // self.step_size
            plan = active.plan if k < len(active.plan.diesel_p_mw) else None
        fallback = rnd.fallback_reason if rnd is not None else None
        if plan is not None and fallback is None:
            status = rnd.plan_status if rnd is not None else EmsStatus.OK.text()
        elif plan is not None:
            status = EmsStatus.FALLBACK_PREVIOUS_PLAN.text(fallback)
        else:
            status = EmsStatus.FALLBACK_RULE.text(fallback or self.failure.get(name, "no plan covers this step"))
        if plan is not None:
            out.update(
                diesel_p_mw=plan.diesel_p_mw[k],
                battery_p_mw=plan.battery_p_mw[k],
                planned_import_mw=plan.import_mw[k],
                planned_cost=plan.cost[k],
                planned_soc_mwh=plan.soc_mwh[k] if party.mg.battery else None,
                unserved_mw=plan.load_shed_mw[k],
                pv_p_mw=plan.pv_p_mw[k] if plan.res_curtailed_mw[k] > 1e-9 else party.pv_rated_mw,
                wind_p_mw=plan.wind_p_mw[k] if plan.res_curtailed_mw[k] > 1e-9 else party.wind_rated_mw,
            )
            if rnd is not None and rnd.new_plan:
                out.update(
                    plan_diesel_p_mw=list(plan.diesel_p_mw),
                    plan_battery_p_mw=list(plan.battery_p_mw),
                    plan_import_mw=list(plan.import_mw),
                    plan_soc_mwh=list(plan.soc_mwh),
                    plan_cost=list(plan.cost),
                )
        else:
            out.update(self._rule_step(name, party, time))
        out["ems_status"] = status
        party.prev_diesel_mw = float(out["diesel_p_mw"])
        if party.mg.battery is not None:
            party.e_mwh = party.mg.battery.next_e_mwh(party.e_mwh, float(out["battery_p_mw"]), self.dt_h)
        return out

    def _rule_step(self, name: str, party: Party, time: int) -> dict[str, Any]:
        """The rule-based EMS for one step (the last fallback)."""
        assert self.tariff is not None
        load = self._forecast_from(name, "load_forecast_p_mw", time)
        if load is None:
            return {**no_forecast_setpoints(party.pv_rated_mw, party.wind_rated_mw), "planned_soc_mwh": None}
        pv = self._forecast_from(name, "pv_forecast_p_mw", time) or [0.0]
        wind = self._forecast_from(name, "wind_forecast_p_mw", time) or [0.0]
        step_of_day = (time // self.step_size) % self.steps_per_day
        d, setpoints = rule_step(party, self.tariff, step_of_day, load[0], pv[0], wind[0], self.dt_h)
        return {**setpoints, "planned_soc_mwh": d.e_next_mwh if party.mg.battery else None}


def run(sim: mosaik_api_v3.Simulator) -> None:
    mosaik_api_v3.start_simulation(sim, f"{type(sim).__name__} of mmg-cosim")
