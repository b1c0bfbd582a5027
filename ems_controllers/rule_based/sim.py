"""mosaik adapter of the rule-based EMS: one ``MG`` entity per microgrid, eid = the MG's name.

Inputs (several sources of one attribute are summed):
  load_forecast_p_mw, pv_forecast_p_mw, wind_forecast_p_mw  lists, at planning times
  soc_mwh                                                     measured SoC, fed back time-shifted
                                                              (optional: without it the EMS integrates
                                                              its own setpoints)
Outputs: setpoints (diesel_p_mw, battery_p_mw (+ charge), pv_p_mw / wind_p_mw caps, pcc_closed),
planned_import_mw, planned_cost, unserved_mw, ems_status, and at planning times the rolled-forward plan
(plan_diesel_p_mw, plan_battery_p_mw, plan_import_mw, plan_soc_mwh).

Fallback: without a forecast that covers the step the EMS holds diesel and battery at 0, keeps the PCC
closed (everything is bought) and says ``ems_status = "fallback: no forecast"``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, override

import mosaik_api_v3

from ems_controllers.core.mg_entity import (
    Clock,
    MgEntityParams,
    mg_meta,
    no_forecast_setpoints,
    read_inputs,
    rule_plan,
    rule_step,
)
from ems_controllers.core.types import EmsStatus, Microgrid, Tariff
from ems_controllers.rule_based.strategy import OUTPUT_ATTRS

if TYPE_CHECKING:
    from mosaik_api_v3.types import CreateResult, InputData, Meta, ModelName, OutputData, OutputRequest, SimId, Time

logger = logging.getLogger(__name__)


META: Meta = mg_meta(OUTPUT_ATTRS)
_OK = EmsStatus.OK.text()


class _Entity:
    def __init__(self, mg: Microgrid, pv_rated_mw: float, wind_rated_mw: float) -> None:
        self.mg = mg
        self.pv_rated_mw = pv_rated_mw
        self.wind_rated_mw = wind_rated_mw
        self.forecasts: dict[str, tuple[int, list[float]]] = {}
        self.e_mwh = mg.battery.e_init_mwh if mg.battery else 0.0
        self.prev_diesel_mw = 0.0
        self.out: dict[str, Any] = {}
        self.load_owners: dict[str, str] = {}
        self.messages: list[dict[str, Any]] = []


class RuleBasedEMS(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.entities: dict[str, _Entity] = {}
        self.step_size = 3600
        self.time_resolution = 1.0
        self.tariff: Tariff | None = None

    @override
    def init(self, sid: SimId, time_resolution: float = 1.0, **sim_params: Any) -> Meta:
        """``step_size`` and ``tariff`` as every EMS gets them; the solver settings are ignored."""
        step_size, tariff = sim_params.get("step_size", 3600), sim_params.get("tariff")
        clock = Clock.parse(type(self).__name__, step_size, time_resolution, tariff)
        self.step_size, self.time_resolution, self.tariff = clock.step_size, clock.time_resolution, clock.tariff
        return self.meta

    @property
    def dt_h(self) -> float:
        return self.step_size * self.time_resolution / 3600.0

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        """One ``MG`` entity per call (params: :meth:`MgEntityParams.parse`; ``load_buses`` is accepted
        for the interface's sake and not used)."""
        p = MgEntityParams.parse(num, self.entities, **model_params)
        name = p.mg.name
        self.entities[name] = _Entity(p.mg, p.pv_rated_mw, p.wind_rated_mw)
        self.entities[name].load_owners = dict(p.load_owners or {})
        return [{"eid": name, "type": model}]

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time:
        assert self.tariff is not None
        steps_per_day = len(self.tariff.buy_price_per_mwh)
        step_index = time // self.step_size
        for eid, ent in self.entities.items():
            got = read_inputs(time, eid, inputs.get(eid, {}), ent.load_owners)
            ent.messages = got.owner_messages
            for attr, values in got.forecasts.items():
                ent.forecasts[attr] = (time, values)
            planning = bool(got.forecasts)
            if got.soc_mwh is not None:  # None (or NaN after a failed power flow): keep own estimate
                ent.e_mwh = got.soc_mwh
            ent.out = self._act(ent, time, step_index % steps_per_day, planning)
        return time + self.step_size

    def _forecast_now(self, ent: _Entity, attr: str, time: int) -> list[float] | None:
        """The forecast of ``attr`` from the current step on, or None if none covers it."""
        if attr not in ent.forecasts:
            return None if attr == "load_forecast_p_mw" else []
        t0, values = ent.forecasts[attr]
        k = (time - t0) // self.step_size
        return values[k:] if k < len(values) else None

    def _act(self, ent: _Entity, time: int, step_of_day: int, planning: bool) -> dict[str, Any]:
        tariff = self.tariff
        if tariff is None:
            raise RuntimeError("RuleBasedEMS: init (which sets the tariff) must run before step")
        load = self._forecast_now(ent, "load_forecast_p_mw", time)
        pv = self._forecast_now(ent, "pv_forecast_p_mw", time)
        wind = self._forecast_now(ent, "wind_forecast_p_mw", time)
        if load is None or pv is None or wind is None:
            logger.warning("%s at t=%s: no forecast covers this step; fallback", ent.mg.name, time)
            ent.prev_diesel_mw = 0.0
            return {
                **no_forecast_setpoints(ent.pv_rated_mw, ent.wind_rated_mw),
                "pcc_closed": True,
                "ems_status": EmsStatus.FALLBACK_NO_FORECAST.text(),
            }
        n = len(load)
        pv_f = pv[:n] if pv else [0.0] * n
        wind_f = wind[:n] if wind else [0.0] * n
        if len(pv_f) != n or len(wind_f) != n:
            raise ValueError(f"{ent.mg.name} at t={time}: the renewables' forecasts are shorter than the load's")
        out: dict[str, Any] = {}
        if planning:  # the rule rolled over the forecast (between planning instants only this step counts)
            res = [a + b for a, b in zip(pv_f, wind_f, strict=True)]
            decisions = rule_plan(ent, tariff, step_of_day, load, res, self.dt_h)
            out["plan_diesel_p_mw"] = [d.diesel_p_mw for d in decisions]
            out["plan_battery_p_mw"] = [d.battery_p_mw for d in decisions]
            out["plan_import_mw"] = [d.import_mw for d in decisions]
            out["plan_soc_mwh"] = [d.e_next_mwh for d in decisions]
        d, setpoints = rule_step(ent, tariff, step_of_day, load[0], pv_f[0], wind_f[0], self.dt_h)
        ent.prev_diesel_mw = d.diesel_p_mw
        ent.e_mwh = d.e_next_mwh  # own estimate; a measured soc_mwh, where connected, replaces it
        out.update(setpoints, pcc_closed=True, ems_status=_OK)
        return out

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        data: OutputData = {}
        for eid, attrs in outputs.items():
            ent = self.entities[eid]
            out = ent.out
            # plans exist only at planning times: None in between (mosaik passes it on)
            data[eid] = {attr: ent.messages if attr == "messages" else out.get(attr) for attr in attrs}
        return data


def main() -> None:
    mosaik_api_v3.start_simulation(RuleBasedEMS(), "rule-based EMS of mmg-cosim")


if __name__ == "__main__":
    main()
