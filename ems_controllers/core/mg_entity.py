"""The ``MG`` entity every EMS simulator offers, as far as it is the same for all of them: its params
(mosaik ``create``), what arrives at its inputs each step, and the setpoints of the rule-based EMS (the
``rule_based`` strategy's every step, a planning EMS's last fallback).

Used by the planning adapter (:mod:`ems_controllers.core.adapter`) and by the rule-based simulator, so
both read their inputs and apply the rule the same way. No solver here; the mosaik types only.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ems_controllers.core import rule
from ems_controllers.core.outputs import INPUT_ATTRS
from ems_controllers.core.types import Microgrid, Tariff

if TYPE_CHECKING:
    from mosaik_api_v3.types import Meta

FORECAST_ATTRS = ("load_forecast_p_mw", "pv_forecast_p_mw", "wind_forecast_p_mw")
LOAD_FORECAST = "load_forecast_p_mw"


MG_PARAMS = ["mg", "pv_rated_mw", "wind_rated_mw", "load_buses", "load_owners"]


def mg_meta(outputs: Iterable[str]) -> Meta:
    """The mosaik meta of a time-based EMS simulator whose ``MG`` entity has ``outputs``."""
    return {
        "api_version": "3.0",
        "type": "time-based",
        "models": {"MG": {"public": True, "params": list(MG_PARAMS), "attrs": [*INPUT_ATTRS, *outputs]}},
    }


@dataclass(frozen=True)
class Clock:
    """An EMS simulator's time step and the tariff it plans with, checked: the step divides a day and the
    tariff has one price per step of a day."""

    step_size: int
    time_resolution: float
    tariff: Tariff

    @classmethod
    def parse(cls, who: str, step_size: int, time_resolution: float, tariff: dict[str, Any] | None) -> Clock:
        if tariff is None:
            raise ValueError(f"{who} needs the 'tariff' sim param")
        if int(step_size) <= 0 or 86400 % int(step_size * time_resolution):
            raise ValueError("step_size must be positive and divide a day")
        clock = cls(int(step_size), float(time_resolution), Tariff.from_dict(tariff))
        steps_per_day = round(86400 / (clock.step_size * clock.time_resolution))
        if len(clock.tariff.buy_price_per_mwh) != steps_per_day:
            raise ValueError(f"tariff has {len(clock.tariff.buy_price_per_mwh)} values, a day {steps_per_day} steps")
        return clock


def sum_inputs(values: dict[str, Any]) -> Any:
    """Sum scalar or list inputs from several sources (elementwise for lists); None = no value."""
    vals = [v for v in values.values() if v is not None]
    if not vals:
        return None
    if isinstance(vals[0], (list, tuple)):
        return [sum(col) for col in zip(*vals, strict=True)]
    return sum(vals)


# --------------------------------------------------------------------------------------------------
# Params
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MgEntityParams:
    """The params of one ``MG`` entity, checked: the microgrid and the rated power of its PV and wind
    (the setpoint that means "no curtailment"); ``load_buses`` (load forecast source -> bus) and
    ``load_owners`` (source -> its owner), where the scenario gives them."""

    mg: Microgrid
    pv_rated_mw: float
    wind_rated_mw: float
    load_buses: dict[str, int] | None
    load_owners: dict[str, str] | None

    @classmethod
    def parse(
        cls,
        num: int,
        taken: Container[str],
        mg: dict[str, Any] | None = None,
        pv_rated_mw: float = 0.0,
        wind_rated_mw: float = 0.0,
        load_buses: Mapping[str, int] | None = None,
        load_owners: Mapping[str, str] | None = None,
    ) -> MgEntityParams:
        """The params of a ``create(num, "MG", **params)`` call (the model's params are this method's
        keyword arguments); ``taken``: the names of the entities created so far."""
        if mg is None or num != 1:
            raise ValueError("create one MG entity per call with its 'mg' param")
        spec = Microgrid.from_dict(mg)
        if spec.name in taken:
            raise ValueError(f"MG {spec.name!r} created twice")
        return cls(
            spec,
            float(pv_rated_mw),
            float(wind_rated_mw),
            dict(load_buses) if load_buses else None,
            dict(load_owners) if load_owners else None,
        )


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MgInputs:
    """What reached one ``MG`` entity in one step.

    ``forecasts``: attribute -> the sum over its sources, for the forecast attributes that arrived;
    ``load_sources``: each load forecast source's own values; ``soc_mwh``: the measured stored energy
    (None when absent, or NaN after a failed power flow); ``owner_messages``: an owner's forecast
    handed to this EMS in plaintext, on record as a message from the owner."""

    forecasts: dict[str, list[float]] = field(default_factory=dict)
    load_sources: dict[str, list[float]] = field(default_factory=dict)
    soc_mwh: float | None = None
    owner_messages: list[dict[str, Any]] = field(default_factory=list)


def read_inputs(time: int, name: str, inp: Mapping[str, Any], load_owners: Mapping[str, str]) -> MgInputs:
    """The inputs of entity ``name`` at ``time`` (``inp``: attribute -> source -> value, as mosaik gives
    them); ``load_owners``: load forecast source -> its owner."""
    forecasts: dict[str, list[float]] = {}
    for attr in FORECAST_ATTRS:
        val = sum_inputs(inp.get(attr, {}))
        if val is not None:
            forecasts[attr] = [float(x) for x in val]
    load_sources: dict[str, list[float]] = {}
    owner_messages: list[dict[str, Any]] = []
    # (no load forecast summed: every source's value is None, between planning instants)
    for src, val in inp.get(LOAD_FORECAST, {}).items() if LOAD_FORECAST in forecasts else ():
        if val is None:
            continue
        load_sources[src] = [float(x) for x in val]
        owner = load_owners.get(src)
        if owner is not None:
            owner_messages.append(
                {
                    "t": time,
                    "sender": f"{name}:{owner}",
                    "receiver": name,
                    "kind": LOAD_FORECAST,
                    "values": [float(x) for x in val],
                }
            )
    soc = sum_inputs(inp.get("soc_mwh", {}))
    measured = float(soc) if soc is not None and not math.isnan(soc) else None
    return MgInputs(forecasts, load_sources, measured, owner_messages)


# --------------------------------------------------------------------------------------------------
# The rule's setpoints
# --------------------------------------------------------------------------------------------------


def no_forecast_setpoints(pv_rated_mw: float, wind_rated_mw: float) -> dict[str, Any]:
    """Without a forecast that covers the step: diesel and battery at 0, renewables uncurtailed, the
    plan's numbers unknown (NaN)."""
    return {
        "diesel_p_mw": 0.0,
        "battery_p_mw": 0.0,
        "pv_p_mw": pv_rated_mw,
        "wind_p_mw": wind_rated_mw,
        "planned_import_mw": float("nan"),
        "planned_cost": float("nan"),
        "unserved_mw": float("nan"),
    }


class RuleParty(Protocol):
    """What the rule needs of an ``MG`` entity's state (the planning adapter's party, the rule-based
    simulator's entity): its microgrid, its renewables' rated power, its stored energy and the
    diesel's last output."""

    mg: Microgrid
    pv_rated_mw: float
    wind_rated_mw: float
    e_mwh: float
    prev_diesel_mw: float


def rule_plan(
    party: RuleParty,
    tariff: Tariff,
    first_step_of_day: int,
    load_mw: list[float],
    res_mw: list[float],
    dt_h: float,
) -> list[rule.Decision]:
    """The rule rolled forward over a forecast of load and renewables from the party's state
    (:func:`rule.plan`)."""
    return rule.plan(
        party.mg,
        tariff,
        load_forecast_mw=load_mw,
        res_forecast_mw=res_mw,
        e_mwh=party.e_mwh,
        prev_diesel_mw=party.prev_diesel_mw,
        first_step_of_day=first_step_of_day,
        dt_h=dt_h,
    )


def rule_step(
    party: RuleParty,
    tariff: Tariff,
    step_of_day: int,
    load_mw: float,
    pv_mw: float,
    wind_mw: float,
    dt_h: float,
) -> tuple[rule.Decision, dict[str, Any]]:
    """The rule for one step of ``dt_h`` hours (:func:`rule_plan` over that step alone) and its
    setpoints: the renewables' caps are
    the forecast scaled down by the curtailed share where the rule curtails, else their rated power
    (no cap)."""
    res = pv_mw + wind_mw
    d = rule_plan(party, tariff, step_of_day, [load_mw], [res], dt_h)[0]
    pv_cap, wind_cap = party.pv_rated_mw, party.wind_rated_mw
    if d.res_curtailed_mw > 1e-9 and res > 0:
        keep = 1.0 - d.res_curtailed_mw / res
        pv_cap, wind_cap = pv_mw * keep, wind_mw * keep
    return d, {
        "diesel_p_mw": d.diesel_p_mw,
        "battery_p_mw": d.battery_p_mw,
        "pv_p_mw": pv_cap,
        "wind_p_mw": wind_cap,
        "planned_import_mw": d.import_mw,
        "planned_cost": d.cost,
        "unserved_mw": d.unserved_mw,
    }
