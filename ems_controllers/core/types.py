"""Typed unit and microgrid data shared by every EMS strategy.

Frozen dataclasses with units in field names. Signs: generation positive, battery power positive when
charging (pandapower's storage convention), exchange positive when the MG imports from the network.
These types carry no mosaik and no solver; adapters build them from JSON-able dicts with ``from_dict``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def _from_dict[T: DataclassInstance](cls: type[T], data: dict[str, Any]) -> T:
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}")
    return cls(**data)


@dataclass(frozen=True)
class DieselUnit:
    """Dispatchable diesel generator; cost per hour = a2*P^2 + a1*P + a0 while on."""

    p_max_mw: float
    p_min_mw: float = 0.0
    a2_per_mw2h: float = 0.0
    a1_per_mwh: float = 0.0
    a0_per_h: float = 0.0
    startup_cost: float = 0.0
    ramp_up_mw_per_h: float = math.inf
    ramp_down_mw_per_h: float = math.inf
    must_run: bool = False  # on in every step (e.g. a CHP that never stops)

    def cost_per_h(self, p_mw: float) -> float:
        """Running cost rate at output ``p_mw`` (zero when off)."""
        if p_mw <= 1e-9:
            return 0.0
        return self.a2_per_mw2h * p_mw**2 + self.a1_per_mwh * p_mw + self.a0_per_h

    def marginal_cost_per_mwh(self, p_mw: float) -> float:
        return 2.0 * self.a2_per_mw2h * p_mw + self.a1_per_mwh

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class Battery:
    """Battery energy storage: SoC_{t+1} = SoC_t + (eta_ch*P_ch - P_dis/eta_dis)*dt_h."""

    e_max_mwh: float
    e_init_mwh: float
    p_ch_max_mw: float
    p_dis_max_mw: float
    eta_ch: float = 1.0
    eta_dis: float = 1.0
    e_min_mwh: float = 0.0
    e_final_mwh: float | None = None
    # battery life cost per hour of operation: wear_a2*(P_ch^2 + P_dis^2) + wear_a1*(P_ch + P_dis); used by
    # strategies that model it (admm), zero by default
    wear_a2_per_mw2h: float = 0.0
    wear_a1_per_mwh: float = 0.0

    def max_charge_mw(self, e_mwh: float, dt_h: float) -> float:
        """Largest charging power that keeps SoC <= e_max over ``dt_h``."""
        room = max(self.e_max_mwh - e_mwh, 0.0)
        return min(self.p_ch_max_mw, room / (self.eta_ch * dt_h))

    def max_discharge_mw(self, e_mwh: float, dt_h: float) -> float:
        """Largest discharging power that keeps SoC >= e_min over ``dt_h``."""
        avail = max(e_mwh - self.e_min_mwh, 0.0)
        return min(self.p_dis_max_mw, avail * self.eta_dis / dt_h)

    def next_e_mwh(self, e_mwh: float, p_mw: float, dt_h: float) -> float:
        """SoC after applying ``p_mw`` (+ charge) for ``dt_h``."""
        if p_mw >= 0:
            return e_mwh + self.eta_ch * p_mw * dt_h
        return e_mwh + p_mw / self.eta_dis * dt_h

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class Tariff:
    """Prices for energy bought from and sold to the level above, one value per step of a day."""

    buy_price_per_mwh: tuple[float, ...]
    sell_price_per_mwh: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.buy_price_per_mwh) != len(self.sell_price_per_mwh):
            raise ValueError("Tariff: buy and sell price series differ in length")

    def at(self, step_of_day: int) -> tuple[float, float]:
        n = len(self.buy_price_per_mwh)
        return self.buy_price_per_mwh[step_of_day % n], self.sell_price_per_mwh[step_of_day % n]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(tuple(data["buy_price_per_mwh"]), tuple(data["sell_price_per_mwh"]))


@dataclass(frozen=True)
class Microgrid:
    """One microgrid (or the network operator's own units) as an EMS sees it."""

    name: str
    diesel: DieselUnit | None = None
    battery: Battery | None = None
    pcc_max_mw: float = math.inf
    res_curtailment_price_per_mwh: float = 0.0
    load_shed_price_per_mwh: float = 1000.0
    pv_curtailable: bool = True  # False: the EMS must take all the PV there is
    wind_curtailable: bool = True
    # Prices of this party's exchange at its PCC when they are not the utility tariff (a microgrid nested
    # in another trades with its parent at trading prices), one value per step of a day; None: tariff.
    trade_buy_price_per_mwh: tuple[float, ...] | None = None
    trade_sell_price_per_mwh: tuple[float, ...] | None = None
    parent: str | None = None  # the party this one is nested in (None: coupled to the utility/network)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        data = dict(data)
        diesel = data.pop("diesel", None)
        battery = data.pop("battery", None)
        for key in ("trade_buy_price_per_mwh", "trade_sell_price_per_mwh"):
            if data.get(key) is not None:
                data[key] = tuple(float(x) for x in data[key])
        return cls(
            diesel=DieselUnit.from_dict(diesel) if diesel else None,
            battery=Battery.from_dict(battery) if battery else None,
            **data,
        )


@dataclass(frozen=True)
class Forecast:
    """What a party expects over the horizon, one value per step (MW, generation and load positive)."""

    load_p_mw: tuple[float, ...]
    pv_p_mw: tuple[float, ...]
    wind_p_mw: tuple[float, ...]
    # net injection of microgrids nested inside this party (+ = their surplus arriving as a source,
    # - = their shortage as a load); empty = none
    inner_net_mw: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.load_p_mw)
        if len(self.pv_p_mw) != n or len(self.wind_p_mw) != n:
            raise ValueError("Forecast: load, pv and wind series differ in length")
        if self.inner_net_mw and len(self.inner_net_mw) != n:
            raise ValueError("Forecast: inner_net_mw differs in length from the load")

    @property
    def n_steps(self) -> int:
        return len(self.load_p_mw)


@dataclass(frozen=True)
class UnitState:
    """A party's state at the start of the horizon: stored energy and the diesel's last output."""

    e_mwh: float | None = None  # None: the battery's e_init_mwh
    diesel_p_mw: float = 0.0  # > 0 means the diesel is on (ramp and start-up refer to it)


@dataclass(frozen=True)
class PartyProblem:
    """One party's (an MG's or the network operator's) scheduling input."""

    mg: Microgrid
    forecast: Forecast
    state: UnitState = UnitState()


@dataclass(frozen=True)
class Horizon:
    """The planning window: ``n_steps`` steps of ``dt_h`` hours with the prices of each step.

    ``final_step`` is the index of the step after which a battery's ``e_final_mwh`` target applies
    (the last step of the day inside this window), or None when the day does not end inside it.
    """

    dt_h: float
    buy_price_per_mwh: tuple[float, ...]
    sell_price_per_mwh: tuple[float, ...]
    final_step: int | None = None
    first_step_of_day: int = 0  # the step of the day the window starts at

    def for_party(self, mg: Microgrid) -> Horizon:
        """This window with the party's own trading prices where it has them."""
        if mg.trade_buy_price_per_mwh is None or mg.trade_sell_price_per_mwh is None:
            return self
        spd = len(mg.trade_buy_price_per_mwh)
        idx = [(self.first_step_of_day + k) % spd for k in range(self.n_steps)]
        return Horizon(
            self.dt_h,
            tuple(mg.trade_buy_price_per_mwh[i] for i in idx),
            tuple(mg.trade_sell_price_per_mwh[i] for i in idx),
            self.final_step,
            self.first_step_of_day,
        )

    def __post_init__(self) -> None:
        if len(self.buy_price_per_mwh) != len(self.sell_price_per_mwh):
            raise ValueError("Horizon: buy and sell price series differ in length")
        if self.dt_h <= 0:
            raise ValueError("Horizon: dt_h must be positive")
        if self.final_step is not None and not 0 <= self.final_step < self.n_steps:
            raise ValueError("Horizon: final_step outside the window")

    @property
    def n_steps(self) -> int:
        return len(self.buy_price_per_mwh)


@dataclass(frozen=True)
class PartyPlan:
    """A party's schedule, one value per step. Battery power + = charging; import + = buying at the PCC
    (for the network operator: its net withdrawal from the network at its own buses)."""

    diesel_p_mw: tuple[float, ...]
    diesel_on: tuple[bool, ...]
    battery_p_mw: tuple[float, ...]
    soc_mwh: tuple[float, ...]  # at the end of each step
    pv_p_mw: tuple[float, ...]  # used (after curtailment)
    wind_p_mw: tuple[float, ...]
    res_curtailed_mw: tuple[float, ...]
    load_shed_mw: tuple[float, ...]
    import_mw: tuple[float, ...]
    cost: tuple[float, ...]  # the party's own bill per step at the prices of the horizon


@dataclass(frozen=True)
class SolverOptions:
    mip_rel_gap: float = 1e-3
    time_limit_s: float = 60.0
    pwl_max_error_per_h: float = 0.5  # largest underestimate of a diesel's quadratic cost rate ($/h)
    threads: int = 1
    # Rolling horizon: start HiGHS from the previous solution of the same model shifted by this many
    # steps (a MIP start; HiGHS checks it and ignores it if infeasible). None: no start.
    warm_start_shift: int | None = None
    # HiGHS's primal heuristics (feasibility jump, RINS, RENS): None runs them only without a start (a
    # rolling re-solve's start makes them mostly re-find it); a start that is only a fallback incumbent
    # (the last solve of a different problem) wants them on.
    mip_heuristics: bool | None = None
    # First try to prove the optimum from the LP relaxation (rounded, fixed and re-solved: see
    # core.solver); the MILP runs only when that fails.
    certify_relaxation: bool = True


DEFAULT_SOLVER_OPTIONS = SolverOptions()
"""The options a solve uses when given none (frozen: safe to share as a default argument)."""


class SolveStatus(StrEnum):
    """The outcome of a solve, one of five (the values are the text the record and the logs carry).

    ``core.solver.STATUS_TABLE`` is the one map from the solver's termination to these."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"  # stopped (time limit, ...) with an incumbent
    INFEASIBLE = "infeasible"
    NO_SOLUTION = "no_solution"  # stopped without an incumbent
    ERROR = "error"

    @property
    def has_plan(self) -> bool:
        """Whether a solve with this status left a feasible solution."""
        return self in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE)


class EmsStatus(StrEnum):
    """What an EMS did at a step: its ``ems_status`` output, recorded as text, ``<kind>`` or
    ``<kind> (<detail>)`` (see :meth:`text`)."""

    OK = "ok"  # a plan's setpoints (detail: the solve's status when it was not optimal)
    FALLBACK_PREVIOUS_PLAN = "fallback: previous plan"  # detail: why the new round gave no plan
    FALLBACK_RULE = "fallback: rule"  # detail: why no plan covers the step
    FALLBACK_NO_FORECAST = "fallback: no forecast"

    def text(self, detail: str | None = None) -> str:
        """The output's text: the kind, followed by ``(detail)`` when there is one."""
        return self.value if detail is None else f"{self.value} ({detail})"


@dataclass(frozen=True)
class SolveTimes:
    """Where the time of one solve of a built Pyomo model went (``core.model_cache``)."""

    rebuilt: bool  # the model was built for this solve (else: re-solved with new params)
    pyomo_build_s: float  # building the model (0 when re-solved)
    set_data_s: float  # writing the data into its mutable params
    translate_s: float  # Pyomo -> HiGHS (first solve) or the param push (re-solve)
    highs_s: float  # HiGHS
    backend: str  # the Pyomo interface to HiGHS


@dataclass(frozen=True)
class SolveResult[D]:
    """A typed solve outcome. ``ok`` iff a feasible plan exists (``status`` optimal or feasible).

    ``failed`` and ``solve_s_by_party`` serve a strategy whose parties solve separately: plans for some
    parties only, the others named in ``failed`` (party -> reason), each party's solve time in
    ``solve_s_by_party`` (default: the whole ``build_s + solve_s``). ``times``: the breakdown of a
    single model's solve. ``detail``: what the strategy itself knows about the round (its own type).
    """

    status: SolveStatus
    termination: str  # the solver's own words
    objective: float | None
    plans: dict[str, PartyPlan] | None
    build_s: float
    solve_s: float
    mip_gap: float | None = None
    message: str = ""
    failed: Mapping[str, str] = field(default_factory=dict)
    solve_s_by_party: Mapping[str, float] = field(default_factory=dict)
    times: SolveTimes | None = None
    detail: D | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", SolveStatus(self.status))

    @classmethod
    def error(cls, termination: str, message: str) -> Self:
        """A solve that did not run (bad input, ...): status error, no plan, no time spent."""
        return cls(SolveStatus.ERROR, termination, None, None, 0.0, 0.0, message=message)

    @property
    def ok(self) -> bool:
        return self.status.has_plan and self.plans is not None
