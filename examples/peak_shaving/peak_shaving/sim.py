"""The peak-shaving EMS as a mosaik simulator: one ``MG`` entity per party (eid = the party's name).

The rule, per party and step, on the forecast net load (load - PV - wind) and the measured stored energy:
above the threshold the battery discharges to bring the import down to it (within its power and energy
limits), the diesel covers what the battery cannot (at least its ``p_min_mw``), the rest is imported;
below the threshold the battery charges from surplus renewables or from the grid, up to the threshold.
The threshold is ``peak_import_mw``, or ``peak_share`` x the peak of the forecast net load, set anew
with each forecast. PV and wind are never curtailed, no load is shed, diesel ramps and the PCC limit are
not modelled (the KPIs count any PCC excess).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, override

import mosaik_api_v3

from ems_controllers.core.outputs import INPUT_ATTRS
from ems_controllers.core.types import EmsStatus, Microgrid

from .strategy import OUTPUT_ATTRS, Settings

if TYPE_CHECKING:
    from mosaik_api_v3.types import CreateResult, InputData, Meta, ModelName, OutputData, OutputRequest, SimId, Time

logger = logging.getLogger(__name__)

META: Meta = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "MG": {
            "public": True,
            "params": ["mg", "pv_rated_mw", "wind_rated_mw", "load_buses", "load_owners"],
            "attrs": [*INPUT_ATTRS, *OUTPUT_ATTRS],
        },
    },
}
FORECASTS = ("load_forecast_p_mw", "pv_forecast_p_mw", "wind_forecast_p_mw")


@dataclass(frozen=True)
class Step:
    """What the rule decides for one step (battery + = charging, import + = buying)."""

    diesel_p_mw: float
    battery_p_mw: float
    import_mw: float
    peak_excess_mw: float
    e_next_mwh: float


def shave(mg: Microgrid, *, net_load_mw: float, threshold_mw: float, e_mwh: float, dt_h: float) -> Step:
    """The rule for one step: battery first, then diesel, then import (pure; no mosaik)."""
    over_mw = net_load_mw - threshold_mw  # > 0: the import must come down by this; < 0: room to charge
    battery_mw = 0.0
    if mg.battery is not None:
        if over_mw > 0:
            battery_mw = -min(over_mw, mg.battery.max_discharge_mw(e_mwh, dt_h))
        else:
            battery_mw = min(-over_mw, mg.battery.max_charge_mw(e_mwh, dt_h))
    diesel_mw = 0.0
    rest_mw = over_mw + battery_mw  # still above the threshold after the battery
    if mg.diesel is not None and (rest_mw > 1e-9 or mg.diesel.must_run):
        diesel_mw = min(mg.diesel.p_max_mw, max(mg.diesel.p_min_mw, rest_mw))
    import_mw = net_load_mw + battery_mw - diesel_mw
    e_next_mwh = mg.battery.next_e_mwh(e_mwh, battery_mw, dt_h) if mg.battery else 0.0
    return Step(diesel_mw, battery_mw, import_mw, max(import_mw - threshold_mw, 0.0), e_next_mwh)


@dataclass
class _Party:
    """One ``MG`` entity's state: the latest forecast of each kind (its time, its values), the threshold
    set from it, the stored energy (measured, else own estimate) and this step's outputs."""

    mg: Microgrid
    pv_rated_mw: float
    wind_rated_mw: float
    e_mwh: float
    forecasts: dict[str, tuple[int, list[float]]] = field(default_factory=dict)
    threshold_mw: float = math.inf
    out: dict[str, Any] = field(default_factory=dict)


def _sum(values: dict[str, Any]) -> Any:
    """Several sources of one input summed (elementwise for lists); None: nothing arrived."""
    got = [v for v in values.values() if v is not None]
    if not got:
        return None
    if isinstance(got[0], list | tuple):
        return [float(sum(col)) for col in zip(*got, strict=True)]
    return float(sum(got))


class PeakShavingEMS(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.parties: dict[str, _Party] = {}
        self.step_size = 3600
        self.dt_h = 1.0
        self.settings = Settings()

    @override
    def init(self, sid: SimId, time_resolution: float = 1.0, step_size: int = 3600, **sim_params: Any) -> Meta:
        """``sim_params``: the settings every EMS gets (tariff, solver settings, ``site``, ...; this rule
        uses none of them) and this strategy's own (validated again: the simulator may run alone)."""
        own = {k: v for k, v in sim_params.items() if k in Settings.model_fields}
        self.settings = Settings.model_validate(own)
        self.step_size = int(step_size)
        self.dt_h = self.step_size * float(time_resolution) / 3600.0
        return self.meta

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        """One entity per call; ``load_buses`` and ``load_owners`` are accepted and not used."""
        if num != 1 or "mg" not in model_params:
            raise ValueError("create one MG entity per call with its 'mg' param")
        mg = Microgrid.from_dict(model_params["mg"])
        if mg.name in self.parties:
            raise ValueError(f"MG {mg.name!r} created twice")
        e_mwh = mg.battery.e_init_mwh if mg.battery else 0.0
        pv, wind = float(model_params.get("pv_rated_mw", 0.0)), float(model_params.get("wind_rated_mw", 0.0))
        self.parties[mg.name] = _Party(mg, pv, wind, e_mwh)
        return [{"eid": mg.name, "type": model}]

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time:
        for eid, party in self.parties.items():
            inp = inputs.get(eid, {})
            new = {attr: _sum(inp.get(attr, {})) for attr in FORECASTS}
            for attr, values in new.items():
                if values is not None:  # a new forecast: a list from this step on
                    party.forecasts[attr] = (time, values)
            if new["load_forecast_p_mw"] is not None:
                party.threshold_mw = self._threshold(party, time)
            soc = _sum(inp.get("soc_mwh", {}))  # the measured energy at the start of this step
            if soc is not None and not math.isnan(soc):  # NaN after a failed power flow: keep the estimate
                party.e_mwh = soc
            party.out = self._act(party, time)
        return time + self.step_size

    def _forecast(self, party: _Party, attr: str, time: int) -> list[float] | None:
        """The latest forecast of ``attr`` from step ``time`` on; None if it does not reach this step."""
        if attr not in party.forecasts:
            return None
        t0, values = party.forecasts[attr]
        k = (time - t0) // self.step_size
        return values[k:] if k < len(values) else None

    def _net_load(self, party: _Party, time: int) -> list[float] | None:
        """Load - PV - wind from step ``time`` on (a party without PV or wind gets no such forecast)."""
        net = self._forecast(party, "load_forecast_p_mw", time)
        for attr in ("pv_forecast_p_mw", "wind_forecast_p_mw"):
            if net is not None and attr in party.forecasts:
                gen = self._forecast(party, attr, time)
                net = None if gen is None else [x - g for x, g in zip(net, gen, strict=False)]
        return net

    def _threshold(self, party: _Party, time: int) -> float:
        if self.settings.peak_import_mw is not None:
            return self.settings.peak_import_mw
        net = self._net_load(party, time) or [0.0]
        return self.settings.peak_share * max(*net, 0.0)

    def _act(self, party: _Party, time: int) -> dict[str, Any]:
        out: dict[str, Any] = {"pv_p_mw": party.pv_rated_mw, "wind_p_mw": party.wind_rated_mw, "pcc_closed": True}
        net = self._net_load(party, time)
        if not net:  # no forecast covers this step: hold the units, buy what is missing
            logger.warning("%s at t=%s: no forecast covers this step", party.mg.name, time)
            nan = float("nan")
            return out | {
                "diesel_p_mw": 0.0,
                "battery_p_mw": 0.0,
                "planned_import_mw": nan,
                "planned_soc_mwh": party.e_mwh,
                "unserved_mw": 0.0,
                "ems_status": EmsStatus.FALLBACK_NO_FORECAST.text(),
                "peak_excess_mw": nan,
            }
        s = shave(party.mg, net_load_mw=net[0], threshold_mw=party.threshold_mw, e_mwh=party.e_mwh, dt_h=self.dt_h)
        party.e_mwh = s.e_next_mwh  # own estimate; the measured soc_mwh replaces it next step
        return out | {
            "diesel_p_mw": s.diesel_p_mw,
            "battery_p_mw": s.battery_p_mw,
            "planned_import_mw": s.import_mw,
            "planned_soc_mwh": s.e_next_mwh,
            "unserved_mw": 0.0,
            "ems_status": EmsStatus.OK.text(),
            "peak_excess_mw": s.peak_excess_mw,
        }

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        return {eid: {attr: self.parties[eid].out.get(attr) for attr in attrs} for eid, attrs in outputs.items()}


def main() -> None:
    """Run the simulator as a process of its own (``python -m peak_shaving.sim HOST:PORT``)."""
    mosaik_api_v3.start_simulation(PeakShavingEMS(), "peak-shaving EMS (mmg-cosim example plug-in)")


if __name__ == "__main__":
    main()
