"""mosaik adapter of the real-time rule of :mod:`ems_controllers.core.tracking`: one ``Tracker`` entity per
microgrid battery, stepping with the physics (``step_size`` = ``scenario.step_s``).

Inputs: ``battery_p_mw`` and ``planned_import_mw`` from the MG's EMS entity (they hold over the EMS's step);
``load_p_mw`` and ``renewable_p_mw``, the MG's loads' demand and its PV and wind availability this step (from
the profile entities; several sources summed); the measured ``pcc_p_to_mw`` of the MG's PCC line (the power
leaving the line into the MG: its import) and the battery's applied ``applied_p_mw`` (the grid's ``Storage``
``p_mw``), both connected time-shifted (the previous physics step's). Output: ``battery_p_mw``, the setpoint
for the grid's ``Storage``. Params of ``Tracker``: ``p_ch_max_mw``, ``p_dis_max_mw``. Run it as its own
process with ``python -m ems_controllers.core.tracking_sim HOST:PORT``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, override

import mosaik_api_v3

from ems_controllers.core.tracking import LastStep, TrackingLimits, tracking_setpoint_mw

if TYPE_CHECKING:
    from mosaik_api_v3.types import CreateResult, InputData, Meta, ModelName, OutputData, OutputRequest, SimId, Time

INPUTS = ("battery_p_mw", "planned_import_mw", "load_p_mw", "renewable_p_mw", "pcc_p_to_mw", "applied_p_mw")
META: Meta = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Tracker": {
            "public": True,
            "params": ["p_ch_max_mw", "p_dis_max_mw"],
            "attrs": [*INPUTS],
        }
    },
}


def _value(inputs: dict[str, Any], attr: str) -> float | None:
    """The one value an input carries this step (None: none arrived, or None was sent)."""
    sources = inputs.get(attr)
    if not sources:
        return None
    values = [v for v in sources.values() if v is not None]
    return float(sum(values)) if values else None


class TrackingSim(mosaik_api_v3.Simulator):
    """Batteries that keep their MG's PCC exchange at the plan between EMS steps."""

    def __init__(self) -> None:
        super().__init__(META)
        self.step_size = 900
        self.limits: dict[str, TrackingLimits] = {}
        self.out: dict[str, float] = {}
        self.net_demand: dict[str, float] = {}
        """Per tracker: its MG's net demand (load less renewables) at its last step."""

    @override
    def init(self, sid: SimId, time_resolution: float = 1.0, step_size: int = 900, **sim_params: Any) -> Meta:
        if int(step_size) <= 0:
            raise ValueError(f"step_size must be positive, got {step_size!r}")
        self.step_size = int(step_size)
        return self.meta

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        if model != "Tracker":
            raise ValueError(f"model: unknown model {model!r}; valid: ['Tracker']")
        limits = TrackingLimits(float(model_params["p_ch_max_mw"]), float(model_params["p_dis_max_mw"]))
        if limits.p_ch_max_mw < 0 or limits.p_dis_max_mw < 0:
            raise ValueError("Tracker: p_ch_max_mw and p_dis_max_mw must be >= 0")
        out: list[CreateResult] = []
        for _ in range(num):
            eid = f"Tracker-{len(self.limits)}"
            self.limits[eid] = limits
            out.append({"eid": eid, "type": "Tracker"})
        return out

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time:
        nan = float("nan")
        for eid, limits in self.limits.items():
            got = inputs.get(eid, {})
            scheduled = _value(got, "battery_p_mw")
            if scheduled is None:
                self.out.pop(eid, None)
                continue
            pcc, applied = _value(got, "pcc_p_to_mw"), _value(got, "applied_p_mw")
            last = LastStep(
                nan if pcc is None else -pcc, nan if applied is None else applied, self.net_demand.get(eid, nan)
            )
            load, renewable = _value(got, "load_p_mw"), _value(got, "renewable_p_mw")
            net = nan if load is None else load - (renewable or 0.0)
            planned = _value(got, "planned_import_mw")
            self.out[eid] = tracking_setpoint_mw(limits, scheduled, nan if planned is None else planned, net, last)
            self.net_demand[eid] = net
        return time + self.step_size

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        return {eid: {a: self.out.get(eid) for a in attrs if a == "battery_p_mw"} for eid, attrs in outputs.items()}


def main() -> None:
    """Run the tracker as a separate process: ``python -m ems_controllers.core.tracking_sim HOST:PORT``."""
    mosaik_api_v3.start_simulation(TrackingSim(), "mmg-cosim real-time battery tracker")


if __name__ == "__main__":
    main()
