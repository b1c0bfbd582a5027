"""A microgrid's real-time rule between its EMS's steps: the battery keeps the PCC exchange at the plan.

An EMS plans every ``ems.step_s`` (an hour by default) on forecasts of each step's mean; the physics steps
faster (``scenario.step_s``) and sees the variation inside the hour and the forecast error. With
``ems.intra_step = "hold"`` the battery holds the EMS's setpoint over the hour and the grid takes the
difference at the PCC. With ``"track_import"`` a local controller sets the battery every physics step so
that the MG's import stays at the EMS's ``planned_import_mw``. It measures its MG's own demand and
renewable availability as they are (a local controller acts within seconds, far inside a physics step:
same-step values), and corrects by what the rest of the MG did one physics step ago (diesel, curtailment,
shedding, the MG's own losses: they move at the EMS's pace):

    n(t) = load(t) - renewables(t)                                  (the MG's own net demand, measured)
    e(t - 1) = import(t - 1) - p_battery_applied(t - 1) - n(t - 1)  (everything else, last step; 0 at first)
    p_battery(t) = planned_import(t) - n(t) - e(t - 1)

clipped to the battery's power limits (load sign: a positive power charges; the grid clips to its energy
limits and reports what it clipped). With no plan (NaN) the EMS's setpoint passes unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TrackingLimits:
    """A battery's power limits, MW (charging and discharging, both >= 0)."""

    p_ch_max_mw: float
    p_dis_max_mw: float


@dataclass(frozen=True)
class LastStep:
    """What the tracker measured and saw one physics step ago (MW; NaN: nothing measured yet)."""

    import_mw: float
    applied_p_mw: float
    net_demand_mw: float

    def rest_mw(self) -> float:
        """``e``: the MG's import that neither its battery nor its own net demand explains (0 if unknown)."""
        e = self.import_mw - self.applied_p_mw - self.net_demand_mw
        return e if math.isfinite(e) else 0.0


def tracking_setpoint_mw(
    limits: TrackingLimits, scheduled_p_mw: float, planned_import_mw: float, net_demand_mw: float, last: LastStep
) -> float:
    """The battery's setpoint (load sign) this physics step, by the rule of the module docstring."""
    if not (math.isfinite(planned_import_mw) and math.isfinite(net_demand_mw)):
        return scheduled_p_mw
    p = planned_import_mw - net_demand_mw - last.rest_mw()
    return min(max(p, -limits.p_dis_max_mw), limits.p_ch_max_mw)
