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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, override

import mosaik_api_v3

from ems_controllers.core import rule as model
from ems_controllers.core.adapter import sum_inputs
from ems_controllers.core.types import Microgrid, Tariff

if TYPE_CHECKING:
    from mosaik_api_v3.types import CreateResult, InputData, Meta, ModelName, OutputData, OutputRequest, SimId, Time

logger = logging.getLogger(__name__)

SETPOINT_ATTRS = ["diesel_p_mw", "battery_p_mw", "pv_p_mw", "wind_p_mw", "pcc_closed"]
STATUS_ATTRS = ["planned_import_mw", "planned_cost", "unserved_mw", "ems_status"]
PLAN_ATTRS = ["plan_diesel_p_mw", "plan_battery_p_mw", "plan_import_mw", "plan_soc_mwh"]
INPUT_ATTRS = ["load_forecast_p_mw", "pv_forecast_p_mw", "wind_forecast_p_mw", "soc_mwh"]
OUTPUT_ATTRS = SETPOINT_ATTRS + STATUS_ATTRS + PLAN_ATTRS + ["messages"]

META: Meta = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "MG": {
            "public": True,
            "params": ["mg", "pv_rated_mw", "wind_rated_mw", "load_buses", "load_owners"],
            "attrs": INPUT_ATTRS + OUTPUT_ATTRS,
        },
    },
}


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
    def init(
        self,
        sid: SimId,
        time_resolution: float = 1.0,
        step_size: int = 3600,
        tariff: dict[str, Any] | None = None,
        **sim_params: Any,
    ) -> Meta:
        if step_size <= 0:
            raise ValueError("step_size must be positive")
        if tariff is None:
            raise ValueError("RuleBasedEMS needs a tariff sim param")
        self.time_resolution = float(time_resolution)
        self.step_size = int(step_size)
        self.tariff = Tariff.from_dict(tariff)
        return self.meta

    @property
    def dt_h(self) -> float:
        return self.step_size * self.time_resolution / 3600.0

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        return self._create_mg(num, model, **model_params)

    def _create_mg(
        self,
        num: int,
        model: ModelName,
        mg: dict[str, Any] | None = None,
        pv_rated_mw: float = 0.0,
        wind_rated_mw: float = 0.0,
        load_buses: Mapping[str, int] | None = None,
        load_owners: Mapping[str, str] | None = None,
    ) -> list[CreateResult]:
        """One ``MG`` entity (the model's params are this method's keyword arguments; ``load_buses`` is
        accepted for the interface's sake and not used)."""
        if mg is None:
            raise ValueError("MG entity needs the 'mg' param")
        spec = Microgrid.from_dict(mg)
        if num != 1:
            raise ValueError("create one MG entity per call (its eid is the MG's name)")
        if spec.name in self.entities:
            raise ValueError(f"MG {spec.name!r} created twice")
        self.entities[spec.name] = _Entity(spec, float(pv_rated_mw), float(wind_rated_mw))
        self.entities[spec.name].load_owners = dict(load_owners or {})
        return [{"eid": spec.name, "type": model}]

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time:
        assert self.tariff is not None
        steps_per_day = len(self.tariff.buy_price_per_mwh)
        step_index = time // self.step_size
        for eid, ent in self.entities.items():
            inp = inputs.get(eid, {})
            planning = False
            # an owner's forecast reaches this EMS in plaintext: on record as a message from the owner
            ent.messages = [
                {
                    "t": time,
                    "sender": f"{eid}:{ent.load_owners[src]}",
                    "receiver": eid,
                    "kind": "load_forecast_p_mw",
                    "values": [float(x) for x in val],
                }
                for src, val in inp.get("load_forecast_p_mw", {}).items()
                if val is not None and src in ent.load_owners
            ]
            for attr in ("load_forecast_p_mw", "pv_forecast_p_mw", "wind_forecast_p_mw"):
                val = sum_inputs(inp.get(attr, {}))
                if val is not None:
                    ent.forecasts[attr] = (time, [float(x) for x in val])
                    planning = True
            soc = sum_inputs(inp.get("soc_mwh", {}))
            if soc is not None and soc == soc:  # NaN after a failed power flow: keep own estimate
                ent.e_mwh = float(soc)
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
                "diesel_p_mw": 0.0,
                "battery_p_mw": 0.0,
                "pv_p_mw": ent.pv_rated_mw,
                "wind_p_mw": ent.wind_rated_mw,
                "pcc_closed": True,
                "planned_import_mw": float("nan"),
                "planned_cost": float("nan"),
                "unserved_mw": float("nan"),
                "ems_status": "fallback: no forecast",
            }
        n = len(load)
        pv_f = pv[:n] if pv else [0.0] * n
        wind_f = wind[:n] if wind else [0.0] * n
        res = [a + b for a, b in zip(pv_f, wind_f, strict=True)]
        out: dict[str, Any] = {}
        if planning:
            decisions = model.plan(
                ent.mg,
                tariff,
                load_forecast_mw=load,
                res_forecast_mw=res,
                e_mwh=ent.e_mwh,
                prev_diesel_mw=ent.prev_diesel_mw,
                first_step_of_day=step_of_day,
                dt_h=self.dt_h,
            )
            out["plan_diesel_p_mw"] = [d.diesel_p_mw for d in decisions]
            out["plan_battery_p_mw"] = [d.battery_p_mw for d in decisions]
            out["plan_import_mw"] = [d.import_mw for d in decisions]
            out["plan_soc_mwh"] = [d.e_next_mwh for d in decisions]
        buy, sell = tariff.at(step_of_day)
        d = model.decide(
            ent.mg,
            load_mw=load[0],
            res_mw=res[0],
            e_mwh=ent.e_mwh,
            buy_price_per_mwh=buy,
            sell_price_per_mwh=sell,
            prev_diesel_mw=ent.prev_diesel_mw,
            dt_h=self.dt_h,
        )
        ent.prev_diesel_mw = d.diesel_p_mw
        ent.e_mwh = d.e_next_mwh  # own estimate; a measured soc_mwh, where connected, replaces it
        pv_cap, wind_cap = ent.pv_rated_mw, ent.wind_rated_mw
        if d.res_curtailed_mw > 1e-9 and res[0] > 0:
            keep = 1.0 - d.res_curtailed_mw / res[0]
            pv_cap, wind_cap = pv_f[0] * keep, wind_f[0] * keep
        out.update(
            {
                "diesel_p_mw": d.diesel_p_mw,
                "battery_p_mw": d.battery_p_mw,
                "pv_p_mw": pv_cap,
                "wind_p_mw": wind_cap,
                "pcc_closed": True,
                "planned_import_mw": d.import_mw,
                "planned_cost": d.cost,
                "unserved_mw": d.unserved_mw,
                "ems_status": "ok",
            }
        )
        return out

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        data: OutputData = {}
        for eid, attrs in outputs.items():
            ent = self.entities[eid]
            data[eid] = {}
            for attr in attrs:
                if attr == "messages":
                    data[eid][attr] = ent.messages
                else:  # plans exist only at planning times: None in between (mosaik passes it on)
                    data[eid][attr] = ent.out.get(attr)
        return data


def main() -> None:
    mosaik_api_v3.start_simulation(RuleBasedEMS(), "rule-based EMS of mmg-cosim")


if __name__ == "__main__":
    main()
