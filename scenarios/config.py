"""Scenario configuration: typed, strict, validated before any simulator starts.

A config is a TOML file. ``load_config(path, overrides)`` parses it, applies ``--set key=value``
overrides (dotted keys; ``mgs.MG1.battery.e_max_mwh`` addresses an MG by name), validates the schema
(pydantic, unknown keys rejected), the strategies' own settings in ``[ems]`` (each strategy's contract,
:mod:`scenarios.strategy_fit`) and the cross-field rules (horizons, data files), and raises ``ConfigError``
whose message names the bad field. Checks that need the grid (bus and line numbers) run in
:func:`scenarios.build.build_net`.
"""

from __future__ import annotations

import copy
import json
import math
import tomllib
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from ems_controllers.core.ev import EvSpec
from sims.profiles import (
    DEFAULT_HUB_HEIGHT_M,
    DEFAULT_TURBINE_TYPE,
    LOAD_ROWS_RESOLUTION_S,
    hub_height_problem,
    load_profiles,
    turbine_type_problem,
)

DATA_DIR = Path(__file__).parent / "data"


class ConfigError(ValueError):
    """A scenario config or its data is invalid; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


NonNeg = Field(ge=0)


def _hourly_power(v: list[float] | None) -> list[float] | None:
    """A series of power values (a load's demand, a PV's output): finite and >= 0."""
    if v is None:
        return v
    for i, x in enumerate(v):
        if not math.isfinite(x) or x < 0:
            raise ValueError(f"value {x!r} at index {i}: power values must be finite and >= 0")
    return v


class DieselCfg(_Strict):
    p_max_mw: float = Field(gt=0)
    p_min_mw: float = Field(default=0.0, ge=0)
    a2_per_mw2h: float = Field(default=0.0, ge=0)
    a1_per_mwh: float = Field(default=0.0, ge=0)
    a0_per_h: float = Field(default=0.0, ge=0)
    startup_cost: float = Field(default=0.0, ge=0)
    ramp_up_mw_per_h: float | None = Field(default=None, gt=0, description="none: no ramp limit")
    ramp_down_mw_per_h: float | None = Field(default=None, gt=0, description="none: no ramp limit")
    must_run: bool = False  # on in every step (a CHP that never stops)

    @model_validator(mode="after")
    def _limits(self) -> DieselCfg:
        if self.p_min_mw > self.p_max_mw:
            raise ValueError("p_min_mw exceeds p_max_mw")
        return self


class BatteryCfg(_Strict):
    e_max_mwh: float = Field(gt=0)
    e_init_mwh: float = Field(ge=0)
    e_final_mwh: float | None = Field(default=None, ge=0)
    e_min_mwh: float = Field(default=0.0, ge=0)
    p_ch_max_mw: float = Field(gt=0)
    p_dis_max_mw: float = Field(gt=0)
    eta_ch: float = Field(default=1.0, gt=0, le=1)
    eta_dis: float = Field(default=1.0, gt=0, le=1)
    wear_a2_per_mw2h: float = Field(
        default=0.0, ge=0, description="battery life cost on P_ch^2 + P_dis^2 per hour (strategies that model it)"
    )
    wear_a1_per_mwh: float = Field(default=0.0, ge=0, description="battery life cost per MWh charged or discharged")
    grid_forming: bool = True

    @model_validator(mode="after")
    def _energy(self) -> BatteryCfg:
        for name in ("e_init_mwh", "e_final_mwh", "e_min_mwh"):
            v = getattr(self, name)
            if v is not None and v > self.e_max_mwh:
                raise ValueError(f"{name} ({v}) exceeds e_max_mwh ({self.e_max_mwh})")
        if self.e_init_mwh < self.e_min_mwh:
            raise ValueError("e_init_mwh is below e_min_mwh")
        return self


class LoadCfg(_Strict):
    """A load following a standard profile scaled to ``p_peak_mw``, or a column of the scenario's data
    file (``column``; its values land in ``p_mw_per_hour`` when the config is loaded)."""

    p_peak_mw: float | None = Field(default=None, ge=0)
    profile: str = "H0-A"
    column: str | None = None
    p_mw_per_hour: list[float] | None = None
    cos_phi: float = Field(default=0.95, gt=0, le=1)

    _power = field_validator("p_mw_per_hour")(_hourly_power)

    @model_validator(mode="after")
    def _source(self) -> LoadCfg:
        if self.p_mw_per_hour is None and self.p_peak_mw is None:
            raise ValueError("needs p_peak_mw (with profile) or column (from the data file)")
        return self

    @property
    def peak_mw(self) -> float:
        return max(self.p_mw_per_hour) if self.p_mw_per_hour is not None else float(self.p_peak_mw or 0.0)


class PvCfg(_Strict):
    """PV from pvlib scaled to ``p_peak_mw``, or a column of the scenario's data file (``column``)."""

    p_peak_mw: float | None = Field(default=None, ge=0)
    column: str | None = None
    p_mw_per_hour: list[float] | None = None
    curtailable: bool = True

    _power = field_validator("p_mw_per_hour")(_hourly_power)

    @model_validator(mode="after")
    def _source(self) -> PvCfg:
        if self.p_mw_per_hour is None and self.p_peak_mw is None:
            raise ValueError("needs p_peak_mw or column (from the data file)")
        return self

    @property
    def peak_mw(self) -> float:
        return max(self.p_mw_per_hour) if self.p_mw_per_hour is not None else float(self.p_peak_mw or 0.0)

    tilt_deg: float = Field(default=30.0, ge=0, le=90)
    azimuth_deg: float = Field(default=180.0, ge=0, lt=360)


class WindCfg(_Strict):
    p_rated_mw: float = Field(ge=0)
    curtailable: bool = True
    turbine_type: str = DEFAULT_TURBINE_TYPE
    hub_height_m: float = Field(default=DEFAULT_HUB_HEIGHT_M, gt=0)

    @field_validator("turbine_type")
    @classmethod
    def _turbine(cls, v: str) -> str:
        problem = turbine_type_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("hub_height_m")
    @classmethod
    def _hub(cls, v: float, info: ValidationInfo) -> float:
        # turbine_type is validated first (field order); a bad type is reported on its own field.
        problem = hub_height_problem(str(info.data.get("turbine_type", "")), v)
        if problem:
            raise ValueError(problem)
        return v


class UnitsCfg(_Strict):
    """What an MG or the network operator owns at one bus."""

    load: LoadCfg | None = None
    pv: PvCfg | None = None
    wind: WindCfg | None = None
    diesel: DieselCfg | None = None
    chp: DieselCfg | None = None  # a CHP unit: dispatchable like a diesel (usually must_run, linear cost)
    battery: BatteryCfg | None = None

    @model_validator(mode="after")
    def _one_generator(self) -> UnitsCfg:
        if self.diesel is not None and self.chp is not None:
            raise ValueError("a party has a diesel or a chp, not both")
        return self

    @property
    def generator(self) -> DieselCfg | None:
        return self.diesel if self.diesel is not None else self.chp


class EvCfg(_Strict):
    """Electric-vehicle charging of an MG: chargers of ``p_max_mw`` together that must deliver
    ``e_mwh_per_day`` between ``arrive_h`` and ``depart_h`` (hours of the day; the window may wrap past
    midnight). Without coordination the EVs charge at full power from arrival until the energy is in
    (:meth:`uncontrolled_mw`): that is the load every strategy sees; a strategy that outputs
    ``ev_shift_mw`` may move the charging inside the window."""

    p_max_mw: float = Field(gt=0)
    e_mwh_per_day: float = Field(gt=0)
    arrive_h: int = Field(ge=0, le=23)
    depart_h: int = Field(ge=0, le=23)
    cos_phi: float = Field(default=1.0, gt=0, le=1)

    @model_validator(mode="after")
    def _fits(self) -> EvCfg:
        if self.arrive_h == self.depart_h:
            raise ValueError("arrive_h equals depart_h: the EVs are never plugged in")
        if self.e_mwh_per_day > self.p_max_mw * len(self.window()) + 1e-9:
            raise ValueError(
                f"e_mwh_per_day {self.e_mwh_per_day} does not fit in the window: at most "
                f"{self.p_max_mw * len(self.window()):g} MWh ({len(self.window())} h at p_max_mw)"
            )
        return self

    def spec(self) -> EvSpec:
        return EvSpec(self.p_max_mw, self.e_mwh_per_day, self.arrive_h, self.depart_h)

    def window(self) -> list[int]:
        """The hours of the day the EVs are plugged in (:meth:`EvSpec.window`)."""
        return self.spec().window()

    def uncontrolled_mw(self) -> list[float]:
        """Charging power per hour of the day without coordination (:meth:`EvSpec.uncontrolled_mw`)."""
        return self.spec().uncontrolled_mw()


class OwnerLoadCfg(_Strict):
    """One owner's load inside an MG (owners need not reveal their profile to the MG's EMS)."""

    owner: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    p_peak_mw: float = Field(ge=0)
    profile: str = "H0-A"
    cos_phi: float = Field(default=0.95, gt=0, le=1)


def per_step(values: list[float] | tuple[float, ...], step_s: int) -> list[float]:
    """A day of piecewise-constant values (``n`` per day, each holding for ``86400 / n`` s) at steps of
    ``step_s``: each value repeated over the steps inside its period, or the mean of the periods inside a
    step (their time-weighted mean, as an energy over the step is priced). The period and the step must
    fit (one a multiple of the other, see :func:`periods_fit`)."""
    n = len(values)
    period_s = 86400 // n
    if step_s <= period_s:
        return [float(v) for v in values for _ in range(period_s // step_s)]
    k = step_s // period_s
    return [float(np.mean(values[i : i + k])) for i in range(0, n, k)]


def periods_fit(n: int, step_s: int) -> str | None:
    """Why ``n`` values per day cannot be taken at steps of ``step_s`` (None: they can)."""
    if n == 0 or 86400 % n:
        return f"{n} values do not divide a day into whole seconds"
    period_s = 86400 // n
    if period_s % step_s and step_s % period_s:
        return f"{n} values per day ({period_s} s each) do not fit steps of {step_s} s"
    return None


class PricesCfg(_Strict):
    """Buy and sell prices per period of a day: ``n`` values each, value *i* holding for ``[i, i + 1) *
    86400 / n`` s of every day (24 values: hourly). They apply to every step inside their period (a
    step longer than a period takes the periods' mean); the period must be a multiple of the steps it
    prices, or they of it."""

    buy_price_per_mwh: list[float]
    sell_price_per_mwh: list[float]

    @field_validator("buy_price_per_mwh", "sell_price_per_mwh")
    @classmethod
    def _finite(cls, v: list[float]) -> list[float]:
        if not all(math.isfinite(x) for x in v):
            raise ValueError("holds a non-finite price")
        if not v or 86400 % len(v):
            raise ValueError(f"{len(v)} values do not divide a day into whole seconds (24: hourly)")
        return v

    @field_validator("sell_price_per_mwh")
    @classmethod
    def _same_periods(cls, v: list[float], info: ValidationInfo) -> list[float]:
        buy = info.data.get("buy_price_per_mwh")
        if buy is not None and len(buy) != len(v):
            raise ValueError(f"has {len(v)} values, buy_price_per_mwh {len(buy)}: both are per the same periods")
        return v

    @model_validator(mode="after")
    def _order(self) -> PricesCfg:
        if any(s > b for s, b in zip(self.sell_price_per_mwh, self.buy_price_per_mwh, strict=True)):
            raise ValueError("sell_price_per_mwh exceeds buy_price_per_mwh in some period")
        return self

    def at_step(self, step_s: int) -> tuple[list[float], list[float]]:
        """(buy, sell) per step of ``step_s`` of a day (:func:`per_step`)."""
        return per_step(self.buy_price_per_mwh, step_s), per_step(self.sell_price_per_mwh, step_s)


class TradeCfg(PricesCfg):
    """Prices at which a nested MG trades with its parent, per period of a day (as the tariff's)."""


class DnCfg(UnitsCfg):
    """The network operator's own units."""

    bus: int = Field(ge=0, description="pandapower bus index (0-based) of the feeder bus it hangs on")


NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
"""What an MG's, an owner's or a cluster's name may hold."""


class MgCfg(UnitsCfg):
    name: str = Field(min_length=1, pattern=NAME_PATTERN)
    bus: int | None = Field(
        default=None,
        ge=0,
        description="feeder bus (pandapower index); none for an MG nested in another (it hangs on its parent's "
        "bus) or in a cluster (it hangs on its cluster's bus)",
    )
    pcc_max_mw: float = Field(default=5.0, gt=0)
    pcc_line_length_km: float = Field(default=0.1, gt=0)
    parent: str | None = Field(default=None, description="the MG this one is nested in")
    cluster: str | None = Field(
        default=None,
        description="the cluster ([[clusters]]) whose bus this MG hangs on, behind its PCC line and switch",
    )
    trade: TradeCfg | None = Field(default=None, description="prices of the exchange with the parent")
    owners: list[OwnerLoadCfg] = Field(default_factory=list)
    ev: EvCfg | None = Field(default=None, description="EV charging, a load of its own at the MG's bus")
    kind: str | None = Field(default=None, description="the fleet kind ([fleet]) it was placed as, if any")

    @model_validator(mode="after")
    def _placement(self) -> MgCfg:
        if self.cluster is not None and self.bus is not None:
            raise ValueError("cluster: an MG in a cluster hangs on its cluster's bus; give bus or cluster, not both")
        if self.cluster is not None and self.parent is not None:
            raise ValueError("cluster: a nested MG hangs on its parent's bus; give parent or cluster, not both")
        if self.parent is None and self.cluster is None and self.bus is None:
            raise ValueError("bus: an MG that is neither nested nor in a cluster needs its feeder bus")
        if self.parent is not None and self.trade is None:
            raise ValueError("trade: a nested MG needs the prices it trades at with its parent")
        owners = [o.owner for o in self.owners]
        if len(set(owners)) != len(owners):
            raise ValueError(f"owners: duplicate owner names {owners}")
        if self.load is None and not self.owners:
            raise ValueError("load: an MG needs a load or owners' loads")
        return self


class PccLineCfg(_Strict):
    """The line from the bus an MG hangs on to the MG's own bus (its PCC switch sits on it): the
    ``length_km`` is the MG's ``pcc_line_length_km``; r, x and rating are copied from a line of the net
    (``like``) where not given here."""

    like: Literal["adjacent", "first"] = Field(
        default="adjacent",
        description="adjacent: the first line at the bus the MG hangs on (for a nested MG its parent's PCC "
        "line; the net's first line if the bus has none); first: the net's first line",
    )
    r_ohm_per_km: float | None = Field(default=None, ge=0)
    x_ohm_per_km: float | None = Field(default=None, ge=0)
    max_i_ka: float | None = Field(default=None, gt=0)


class ClusterCfg(_Strict):
    """A cluster of MGs: a bus of its own (named after the cluster, at the voltage of ``bus``) joined to the
    network bus ``bus`` by a feeder line whose switch (``"<name> feeder"``, at the network side) is closed
    at the start; its MGs (``mgs.cluster``) hang on the cluster bus behind their PCC lines. r, x and rating
    of the feeder line are copied from the first line at ``bus`` where not given here."""

    name: str = Field(min_length=1, pattern=NAME_PATTERN, description="the cluster's name (and its bus's)")
    bus: int = Field(ge=0, description="pandapower bus index of the network bus the cluster's feeder line leaves from")
    line_length_km: float = Field(default=0.5, gt=0, description="length of the feeder line to the cluster bus")
    r_ohm_per_km: float | None = Field(default=None, ge=0, description="none: the first line at bus's")
    x_ohm_per_km: float | None = Field(default=None, ge=0, description="none: the first line at bus's")
    max_i_ka: float | None = Field(default=None, gt=0, description="none: the first line at bus's")


class ClusterTieCfg(_Strict):
    """A line between two cluster buses behind a switch (``"<C1>-<C2> tie"``, at the first cluster's bus),
    open at the start: a normally-open point. r, x and rating are copied from the first cluster's feeder
    line where not given here."""

    between: tuple[str, str] = Field(description="the names of the two clusters it joins")
    length_km: float = Field(gt=0, description="length of the tie line")
    r_ohm_per_km: float | None = Field(default=None, ge=0, description="none: the first cluster's feeder line's")
    x_ohm_per_km: float | None = Field(default=None, ge=0, description="none: the first cluster's feeder line's")
    max_i_ka: float | None = Field(default=None, gt=0, description="none: the first cluster's feeder line's")

    @model_validator(mode="after")
    def _two(self) -> ClusterTieCfg:
        if self.between[0] == self.between[1]:
            raise ValueError(f"between: a tie joins two different clusters, not {self.between[0]!r} with itself")
        return self

    @property
    def name(self) -> str:
        """The tie's line and switch name: ``"<C1>-<C2> tie"``."""
        return f"{self.between[0]}-{self.between[1]} tie"


class SvcCfg(_Strict):
    """A static var compensator of the network (its operator's, where there is a ``[dn]``): a static
    generator of no active power whose reactive power (generator sign: positive injects, raising the
    voltage) a strategy may set hourly within ``[q_min_mvar, q_max_mvar]`` (its contract's ``svc_entity``);
    a strategy that does not operate SVCs leaves it at 0 Mvar."""

    name: str = Field(min_length=1, pattern=NAME_PATTERN, description="the SVC's name (its static generator's)")
    bus: int = Field(ge=0, description="pandapower bus index of the network bus it sits on")
    q_min_mvar: float = Field(le=0, description="largest absorption (negative: inductive)")
    q_max_mvar: float = Field(ge=0, description="largest injection (positive: capacitive)")

    @model_validator(mode="after")
    def _range(self) -> SvcCfg:
        if self.q_max_mvar - self.q_min_mvar <= 0:
            raise ValueError("q_min_mvar, q_max_mvar: an SVC needs a reactive range (both are 0)")
        return self


class FleetKindCfg(_Strict):
    """A kind of MG in a fleet: the MG table (any ``[[mgs]]`` field but ``name``, ``bus``, ``parent`` and
    ``cluster``) and a size factor drawn per MG from ``scale`` (every power and energy size of the table,
    the fields ending in ``_mw``, ``_mwh`` or ``_mw_per_h``, times that factor; prices and efficiencies as
    given)."""

    name: str = Field(min_length=1, pattern=NAME_PATTERN, description="the kind's name (recorded per MG)")
    weight: float = Field(default=1.0, gt=0, description="relative share of the fleet's MGs of this kind")
    scale: tuple[float, float] = Field(default=(1.0, 1.0), description="[low, high] of the size factor (> 0)")
    mg: dict[str, Any] = Field(description="the MG table, as in [[mgs]]")

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError(f"[low, high] with 0 < low <= high, not {list(v)}")
        return v

    @field_validator("mg")
    @classmethod
    def _unplaced(cls, v: dict[str, Any]) -> dict[str, Any]:
        placed = sorted(set(v) & {"name", "bus", "parent", "cluster", "kind"})
        if placed:
            raise ValueError(f"{', '.join(placed)} come from the fleet's placement, not the kind")
        return v


class FleetCfg(_Strict):
    """``n`` MGs placed on the net by rules (see :mod:`scenarios.fleet`): the candidate buses are those in
    service at or below ``vn_kv_max`` whose ``subnet`` (SimBench's column; the whole net where it has
    none) matches one of ``subnets``, of the kind ``buses`` says, not taken by the config; the MGs are
    spread round-robin over the subnets in a seeded order, a seeded bus in each, at most
    ``per_subnet_max`` per subnet. Each MG's kind is drawn by ``weight``, its size factor from ``scale``."""

    n: int = Field(ge=1, description="how many MGs")
    seed: int | None = Field(default=None, description="placement and size draws; none: scenario.seed")
    name_prefix: str = Field(default="MG", pattern=NAME_PATTERN, description="MG names: prefix + number")
    subnets: list[str] = Field(
        default_factory=list, description="shell patterns on the buses' subnet names (e.g. 'LV*'); empty: any"
    )
    vn_kv_max: float | None = Field(default=None, gt=0, description="only buses at or below this voltage")
    buses: Literal["load", "leaf", "any"] = Field(
        default="load",
        description="load: buses with a load of the net; leaf: the ends of feeders (one line); any: every bus",
    )
    per_subnet_max: int | None = Field(default=None, ge=1, description="at most this many MGs in one subnet")
    kinds: list[FleetKindCfg] = Field(min_length=1)


class GridCfg(_Strict):
    """The net (see :mod:`scenarios.grids` for ``net``) and what the scenario changes in it (see
    :mod:`scenarios.build`); bus and line numbers are pandapower indices of the net as loaded, after
    fusing its closed bus-bus switches."""

    net: str = Field(
        default="case33bw",
        description="a pandapower.networks function, a pandapower JSON file (relative to the config's folder "
        "or absolute) or a SimBench code (e.g. 1-MV-rural--0-sw)",
    )
    net_args: dict[str, bool | int | float | str] = Field(
        default_factory=dict, description="keyword arguments of the pandapower.networks function"
    )
    fuse_closed_bus_switches: bool = Field(
        default=True, description="join the buses of each closed bus-bus switch into one (the switch goes)"
    )
    slack_bus: int | None = Field(
        default=None,
        ge=0,
        description="cut the net here: its external grids and transformers go, one external grid sits on this "
        "bus, and the buses it does not reach through closed lines go with their elements; none: as loaded",
    )
    remove_loads_at_buses: list[int] = Field(
        default_factory=list, description="buses whose own loads go (e.g. other feeders' load at a substation)"
    )
    vm_min_pu: float = Field(default=0.95, gt=0)
    vm_max_pu: float = Field(default=1.05, gt=0)
    ext_grid_vm_pu: float = Field(default=1.0, gt=0)
    external_grid: bool = Field(
        default=True,
        description="false: the net's external grids go and the system runs islanded, its grid-forming units "
        "(batteries with grid_forming = true, else diesels) hold voltage and balance",
    )
    trunk_lines: list[int] = Field(default_factory=list)
    trunk_max_i_ka: float = Field(default=0.4, gt=0)
    line_max_i_ka: float | None = Field(default=None, gt=0, description="rating of every line; none: the net's")
    tie_lines: list[int] = Field(default_factory=list)
    tie_switches_closed: bool = False
    pcc_line: PccLineCfg = PccLineCfg()
    feeder_load_profile: str = "G0-A"
    feeder_load_scale: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _band(self) -> GridCfg:
        if self.vm_min_pu >= self.vm_max_pu:
            raise ValueError("vm_min_pu must be below vm_max_pu")
        return self


class TariffCfg(PricesCfg):
    """The tariff at the network's connection, per period of a day, given here or as columns of the
    scenario's data file."""

    buy_column: str | None = None
    sell_column: str | None = None

    def for_step(self, step_s: int) -> dict[str, Any]:
        """The tariff as a simulator takes it (``Tariff.from_dict``): one price per step of ``step_s``."""
        buy, sell = self.at_step(step_s)
        return {**self.model_dump(), "buy_price_per_mwh": buy, "sell_price_per_mwh": sell}


class ForecastCfg(_Strict):
    error_std: float = Field(default=0.0, ge=0, description="fraction of rated power")
    every_s: int = Field(default=86400, gt=0)
    horizon_steps: int = Field(default=24, gt=0)


class EmsCfg(_Strict):
    """The ``[ems]`` table: the settings every strategy shares, and each strategy's own settings (its
    contract's ``settings`` model; checked by :func:`check_ems_settings`, passed to it by
    :func:`strategy_settings`)."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    mip_rel_gap: float = Field(default=1e-3, gt=0, lt=1)
    time_limit_s: float = Field(default=60.0, gt=0)
    pwl_max_error_per_h: float = Field(default=0.5, gt=0, description="diesel cost PWL bound, $/h")
    step_s: int | None = Field(
        default=None,
        gt=0,
        description="the EMS's step: it plans and sets its setpoints every step_s seconds, which the physics "
        "(scenario.step_s) steps inside; None: 3600, or scenario.step_s where that is longer",
    )
    intra_step: Literal["hold", "track_import"] = Field(
        default="hold",
        description="between the EMS's steps: 'hold' its battery setpoints (the PCC takes the difference), or "
        "'track_import': each battery keeps its MG's PCC import at the plan, from the last physics step's "
        "measurements (ems_controllers.core.tracking)",
    )
    rolling: bool = Field(default=False, description="re-plan every EMS step from the measured SoC")
    horizon: Literal["receding", "shrinking"] = Field(
        default="receding", description="rolling window: forecast length, or to the end of the day"
    )

    @property
    def strategy_fields(self) -> dict[str, Any]:
        """The fields of ``[ems]`` that are some strategy's own settings."""
        return dict(self.model_extra or {})


class PenaltyCfg(_Strict):
    res_curtailment_price_per_mwh: float = Field(default=20.0, ge=0)
    load_shed_price_per_mwh: float = Field(default=1000.0, ge=0)
    stored_energy_price_per_mwh: float | None = Field(
        default=None, ge=0, description="KPIs value the change in stored energy at this; none: the mean buy price"
    )


class RunCfg(_Strict):
    separate_processes: list[Literal["grid", "profiles", "ems", "recorder"]] = Field(default_factory=list)
    recorder_buffer_steps: int = Field(default=24, gt=0)
    step_timeout_s: float = Field(
        default=600.0, gt=0, description="a simulator process that does not answer a request within this fails the run"
    )
    start_timeout_s: float = Field(
        default=60.0, gt=0, description="a simulator process must connect within this after it was started"
    )
    connect: dict[str, str] = Field(
        default_factory=dict,
        description="simulators already running elsewhere (another host): sim_config name -> HOST:PORT",
    )
    record: Literal["all", "parties"] = Field(
        default="all",
        description="all: every grid element and profile; parties: the Grid's totals, the external grids and "
        "what the entity map names (the parties' units, PCC switches and lines, tie and cluster switches, "
        "SVCs) with their profiles, not the network operator's feeder loads (one dataset per element does "
        "not scale to a 5,000-bus grid)",
    )
    processes: int = Field(
        default=1,
        ge=1,
        description="EMS simulators the parties are spread over (EMS-1..EMS-n), each a process of its own whose "
        "solves run in parallel; only for a strategy whose contract declares them partitionable",
    )

    @field_validator("connect")
    @classmethod
    def _addresses(cls, v: dict[str, str]) -> dict[str, str]:
        for name, addr in v.items():
            host, sep, port = addr.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{name}: {addr!r} is not HOST:PORT")
        return v


class ScenarioCfg(_Strict):
    name: str
    start: str = "2019-06-12 00:00:00"
    step_s: int = Field(
        default=3600, gt=0, description="the physics step: profiles, grid and record (the EMS's is ems.step_s)"
    )
    days: int = Field(default=1, gt=0)
    seed: int = 0
    load_profiles_file: str = "load_profiles.csv"

    @field_validator("start")
    @classmethod
    def _start(cls, v: str) -> str:
        try:
            ts = pd.Timestamp(v)
        except ValueError as exc:
            raise ValueError(f"not a timestamp: {v!r}") from exc
        if ts != ts.normalize():
            raise ValueError(f"must be at midnight (the EMS's days start at time 0), got {v!r}")
        return v


class DataCfg(_Strict):
    """A scenario data file with one row per hour of a day (a paper's 24 hourly values; 12, 8, ... rows for
    longer periods), whatever the run's steps:
    ``tariff.buy_column`` etc. and ``column`` of loads and PV name its columns."""

    file: str
    energy_to_mwh: float = Field(default=1.0, gt=0, description="unit of energy columns -> MWh")
    price_to_per_mwh: float = Field(default=1.0, gt=0, description="unit of price columns -> per MWh")
    currency: str = "$"


class Config(_Strict):
    scenario: ScenarioCfg
    data: DataCfg | None = None
    grid: GridCfg = GridCfg()
    tariff: TariffCfg
    forecast: ForecastCfg = ForecastCfg()
    ems: EmsCfg = EmsCfg()
    penalties: PenaltyCfg = PenaltyCfg()
    run: RunCfg = RunCfg()
    dn: DnCfg | None = None
    mgs: list[MgCfg] = Field(min_length=1)
    clusters: list[ClusterCfg] = Field(
        default_factory=list, description="clusters of MGs, each on a bus of its own behind a feeder switch"
    )
    cluster_ties: list[ClusterTieCfg] = Field(
        default_factory=list, description="normally-open lines between two clusters' buses"
    )
    svcs: list[SvcCfg] = Field(
        default_factory=list, description="the network operator's static var compensators (reactive power)"
    )
    fleet: FleetCfg | None = Field(
        default=None, description="MGs placed by rules (scenarios.fleet); they join mgs before validation"
    )

    @model_validator(mode="after")
    def _cross(self) -> Config:
        self._check_steps()
        names = [m.name for m in self.mgs]
        if len(set(names)) != len(names):
            raise ValueError(f"mgs: duplicate MG names {names}")
        for m in self.mgs:
            if m.parent is not None and m.parent not in names:
                raise ValueError(f"mgs ({m.name}).parent: no MG named {m.parent!r}")
            if m.trade is not None:
                self._check_periods(f"mgs ({m.name}).trade.buy_price_per_mwh", len(m.trade.buy_price_per_mwh))
        parents = {m.name: m.parent for m in self.mgs}
        for m in self.mgs:
            seen, cur = [m.name], m.parent
            while cur is not None:
                if cur in seen:
                    raise ValueError(f"mgs: nesting cycle {' -> '.join([*seen, cur])}")
                seen.append(cur)
                cur = parents[cur]
        if "DN" in names:
            raise ValueError("mgs: 'DN' is reserved for the network operator")
        self._check_clusters()
        svc_names = [v.name for v in self.svcs]
        for i, v in enumerate(self.svcs):
            if v.name in svc_names[:i]:
                raise ValueError(f"svcs[{i}] ({v.name}).name: duplicate SVC names {svc_names}")
        return self

    def _check_steps(self) -> None:
        """The physics step and the EMS's divide a day, the EMS's is a multiple of the physics', the prices'
        periods fit both, and the forecasts reach the next planning instant."""
        step_s, ems_s = self.scenario.step_s, self.ems_step_s
        if 86400 % step_s:
            raise ValueError("scenario.step_s must divide a day (86400 s)")
        if 86400 % ems_s or ems_s % step_s:
            raise ValueError(
                f"ems.step_s={ems_s} must divide a day (86400 s) and be a multiple of scenario.step_s={step_s}"
            )
        self._check_periods("tariff.buy_price_per_mwh", len(self.tariff.buy_price_per_mwh))
        if self.forecast.every_s % ems_s:
            raise ValueError(f"forecast.every_s must be a multiple of the EMS's step ({ems_s} s, ems.step_s)")
        if self.forecast.horizon_steps * ems_s < self.forecast.every_s:
            raise ValueError(
                "forecast.horizon_steps (EMS steps) does not reach the next planning time (forecast.every_s)"
            )

    def _check_periods(self, where: str, n: int) -> None:
        """``n`` values per day can be taken at the physics step and at the EMS's."""
        for step_s in (self.scenario.step_s, self.ems_step_s):
            if (why := periods_fit(n, step_s)) is not None:
                raise ValueError(f"{where}: {why}")

    def _check_clusters(self) -> None:
        """Cluster names are unique and no MG's, every MG's cluster exists and every cluster has an MG,
        ties join existing clusters, at most one tie per pair."""
        names = [c.name for c in self.clusters]
        mg_names = {m.name for m in self.mgs}
        for i, c in enumerate(self.clusters):
            if c.name in names[:i]:
                raise ValueError(f"clusters[{i}] ({c.name}).name: duplicate cluster names {names}")
            if c.name in mg_names or c.name == "DN":
                raise ValueError(f"clusters[{i}] ({c.name}).name: the name of an MG or of the network operator")
        for i, m in enumerate(self.mgs):
            if m.cluster is not None and m.cluster not in names:
                raise ValueError(f"mgs[{i}] ({m.name}).cluster: no cluster named {m.cluster!r} (clusters: {names})")
        for i, c in enumerate(self.clusters):
            if not any(m.cluster == c.name for m in self.mgs):
                raise ValueError(f"clusters[{i}] ({c.name}): no MG is in it (mgs.cluster)")
        pairs: set[frozenset[str]] = set()
        for i, t in enumerate(self.cluster_ties):
            for name in t.between:
                if name not in names:
                    raise ValueError(f"cluster_ties[{i}].between: no cluster named {name!r} (clusters: {names})")
            pair = frozenset(t.between)
            if pair in pairs:
                raise ValueError(f"cluster_ties[{i}].between: a second tie between {t.between[0]} and {t.between[1]}")
            pairs.add(pair)

    @property
    def dt_h(self) -> float:
        """The physics step in hours."""
        return self.scenario.step_s / 3600.0

    @property
    def ems_step_s(self) -> int:
        """The EMS's step (``ems.step_s``; unset: an hour, or the physics step where that is longer)."""
        return self.ems.step_s if self.ems.step_s is not None else max(3600, self.scenario.step_s)

    @property
    def n_steps(self) -> int:
        return self.scenario.days * 86400 // self.scenario.step_s

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


NAMED_LISTS = ("mgs", "clusters", "svcs", "kinds")
"""Lists of tables with a ``name``: an error names the entry by index and name."""


def _format_validation_error(exc: ValidationError, raw: dict[str, Any]) -> str:
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        parts: list[str] = []
        for i, p in enumerate(loc):
            table = str(loc[i - 1]) if i > 0 else ""
            if isinstance(p, int) and table in NAMED_LISTS:  # a list entry by its index and name
                try:
                    parts[-1] = f"{table}[{p}] ({raw[table][p].get('name', '?')})"
                    continue
                except (KeyError, IndexError, AttributeError, TypeError):
                    pass
            if isinstance(p, int) and table == "cluster_ties":
                parts[-1] = f"cluster_ties[{p}]"
                continue
            parts.append(str(p))
        field = ".".join(parts) or "<root>"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{field}: {msg}")
    return "; ".join(lines)


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides (dotted keys, TOML literals; MGs addressed by name or index)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"--set {key.strip()!r}: empty part in the dotted key")
        node: Any = raw
        for i, p in enumerate(parts[:-1]):
            if isinstance(node, list):
                match = [m for m in node if isinstance(m, dict) and m.get("name") == p]
                if match:
                    node = match[0]
                elif p.isdigit() and int(p) < len(node):
                    node = node[int(p)]
                else:
                    raise ConfigError(f"--set {key}: no entry {p!r} in {'.'.join(parts[:i]) or 'config'}")
            else:
                node = node.setdefault(p, {})
            if not isinstance(node, (dict, list)):
                raise ConfigError(
                    f"--set {key}: {'.'.join(parts[: i + 1])} is a value ({node!r}), not a table; "
                    f"it has no field {'.'.join(parts[i + 1 :])!r}"
                )
        if isinstance(node, list):
            raise ConfigError(f"--set {key}: cannot set a list element this way")
        node[parts[-1]] = _parse_value(text.strip())
    return raw


def _data_path(file: str, data_dir: Path) -> Path:
    p = Path(file)
    if p.is_absolute():
        return p
    return data_dir / p if (data_dir / p).is_file() or not (DATA_DIR / p).is_file() else DATA_DIR / p


def fill_from_data(raw: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """Put the data file's columns where the config names them (``tariff.buy_column``, a load's or PV's
    ``column``), converted to MW and per-MWh prices; raise ConfigError naming the field otherwise."""
    data = raw.get("data")
    if not isinstance(data, dict) or "file" not in data:
        return raw
    raw = copy.deepcopy(raw)
    path = _data_path(str(data["file"]), data_dir)
    if not path.is_file():
        raise ConfigError(f"data.file: file not found: {path}")
    try:
        df = pd.read_csv(path, comment="#")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"data.file: cannot read {path}: {exc}") from None
    energy = float(data.get("energy_to_mwh", 1.0))
    price = float(data.get("price_to_per_mwh", 1.0))

    def column(where: str, name: Any, *, non_negative: bool) -> list[float]:
        """The column's values: numbers, finite, and >= 0 if ``non_negative`` (demand, generation)."""
        if not isinstance(name, str) or name not in df.columns:
            raise ConfigError(f"{where}: column {name!r} not in {path.name} (has {list(df.columns)})")
        col = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)
        if np.isnan(col).any():
            raise ConfigError(
                f"{where}: column {name!r} in {path.name} holds NaN or non-numbers "
                f"(first at row {int(np.flatnonzero(np.isnan(col))[0])})"
            )
        if not np.isfinite(col).all():
            bad = int(np.flatnonzero(~np.isfinite(col))[0])
            raise ConfigError(f"{where}: column {name!r} in {path.name} holds infinite values (first at row {bad})")
        if non_negative and (col < 0).any():
            bad = int(np.flatnonzero(col < 0)[0])
            raise ConfigError(
                f"{where}: column {name!r} in {path.name} holds negative values (first at row {bad}: "
                f"{float(col[bad])}); demand and generation must be >= 0"
            )
        if len(col) == 0 or 24 % len(col):
            raise ConfigError(
                f"{where}: column {name!r} has {len(col)} rows; a data file holds a day of hourly values "
                "(24 rows, or a divisor of 24 for longer periods)"
            )
        return [float(x) for x in col]

    tariff = raw.setdefault("tariff", {})
    for key, col_key in (("buy_price_per_mwh", "buy_column"), ("sell_price_per_mwh", "sell_column")):
        if col_key in tariff:
            tariff[key] = [v * price for v in column(f"tariff.{col_key}", tariff[col_key], non_negative=False)]
    for i, mg in enumerate(raw.get("mgs", [])):
        for kind in ("load", "pv"):
            unit = mg.get(kind) if isinstance(mg, dict) else None
            if isinstance(unit, dict) and "column" in unit:
                where = f"mgs[{i}] ({mg.get('name', '?')}).{kind}.column"
                values = column(where, unit["column"], non_negative=True)
                period_h = 24 / len(values)  # each row is an energy over its period
                unit["p_mw_per_hour"] = [v * energy / period_h for v in values]
    return raw


def load_config(
    path: str | Path, overrides: list[str] | None = None, strategies: list[str] | None = None
) -> tuple[Config, Path]:
    """Read, override and validate a scenario config; returns it and the folder of its data files.
    ``strategies``: the ones about to run (their settings in ``[ems]`` are checked with the registered
    strategies')."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    raw = apply_overrides(raw, overrides or [])
    raw = fill_from_data(raw, path.parent)
    if "fleet" in raw:
        from scenarios.fleet import expand_fleet  # it builds the net, whose builder needs this module

        raw = expand_fleet(raw, path.parent)
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_format_validation_error(exc, raw)}") from None
    from scenarios.strategy_fit import check_ems_settings, resolve  # it needs this module's Config

    try:
        check_ems_settings(cfg, [resolve(s) for s in strategies or []])
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    validate_data(cfg, path.parent)
    return cfg, path.parent


def load_profiles_path(cfg: Config, data_dir: Path) -> Path:
    """The profile file: absolute, or relative to the config's folder, else to the embedded data."""
    p = Path(cfg.scenario.load_profiles_file)
    if p.is_absolute():
        return p
    return data_dir / p if (data_dir / p).is_file() or not (DATA_DIR / p).is_file() else DATA_DIR / p


def validate_data(cfg: Config, data_dir: Path) -> None:
    """Data files exist, hold finite values >= 0 (no NaN), name the profiles the config uses and cover a
    year of hours (and pass the profile simulator's own checks of the file)."""
    path = load_profiles_path(cfg, data_dir)
    field = "scenario.load_profiles_file"
    if not path.is_file():
        raise ConfigError(f"{field}: file not found: {path}")
    try:
        df = pd.read_csv(path, comment="#")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"{field}: cannot read {path}: {exc}") from None
    wanted: dict[str, str] = {"grid.feeder_load_profile": cfg.grid.feeder_load_profile}
    for i, mg in enumerate(cfg.mgs):
        if mg.load is not None and mg.load.p_mw_per_hour is None:
            wanted[f"mgs[{i}] ({mg.name}).load.profile"] = mg.load.profile
        for j, o in enumerate(mg.owners):
            wanted[f"mgs[{i}] ({mg.name}).owners[{j}] ({o.owner}).profile"] = o.profile
    if cfg.dn is not None and cfg.dn.load is not None:
        wanted["dn.load.profile"] = cfg.dn.load.profile
    for where, name in wanted.items():
        if name not in df.columns:
            cols = [c for c in df.columns if c.lower() not in ("hour", "time")]
            raise ConfigError(f"{where}: profile {name!r} not in {path.name} (has {cols})")
        col = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)
        if np.isnan(col).any():
            bad = int(np.flatnonzero(np.isnan(col))[0])
            raise ConfigError(f"{where}: profile {name!r} in {path.name} holds NaN or non-numbers (first at row {bad})")
        if len(col) not in LOAD_ROWS_RESOLUTION_S:
            raise ConfigError(
                f"{where}: profile {name!r} in {path.name} has {len(col)} values, a year needs 8760 hourly or "
                "35040 quarter-hour values"
            )
        bad_values = ~np.isfinite(col) | (col < 0)
        if bad_values.any():
            bad = int(np.flatnonzero(bad_values)[0])
            raise ConfigError(
                f"{where}: profile {name!r} in {path.name} holds {'negative' if col[bad] < 0 else 'infinite'} "
                f"values (first at row {bad}: {float(col[bad])}); load profiles must be finite and >= 0"
            )
    # What the profile simulator itself will check when it reads the file (every column, the time index,
    # exactly a year of rows), here, before any simulator starts.
    try:
        load_profiles(str(path))
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"{field}: {exc}") from None
