"""The benchmark: one operator with full information over every party, unit and operable switch
(tie, PCC and cluster switches, hourly binaries) schedules against the tariff with the network inside
the model (LinDistFlow with voltage and line limits, piecewise-linear losses); no strategy keeping the
network's limits can cost less, up to the loss tolerance."""

from __future__ import annotations

from pydantic import Field

from ems_controllers.core.contract import EntityModel, Strategy, StrategySettings
from ems_controllers.core.outputs import PLANNER_OUTPUTS

EXTRA_ATTRS = (
    "tie_closed",
    "load_shift_mw",
    "ev_shift_mw",
    "lower_bound",
    "planned_loss_mw",
    "predicted_min_vm_pu",
    "predicted_max_vm_pu",
)
OUTPUT_ATTRS = (*PLANNER_OUTPUTS, *EXTRA_ATTRS)
SWITCH_ATTRS = ("closed",)


class Settings(StrategySettings):
    vm_margin_pu: float = Field(
        default=0.005, ge=0, lt=0.05, description="the model narrows the voltage band by this at both ends"
    )
    s_max_factor: float = Field(default=0.95, gt=0, le=1, description="branch limit as a share of the rating")
    loss_max_error_share: float = Field(
        default=2e-3,
        gt=0,
        lt=1,
        description="largest underestimate of a branch's loss by its PWL tangents, as a share of its loss at its limit",
    )
    diesel_pwl_max_error_per_h: float = Field(
        default=0.05,
        gt=0,
        description="largest underestimate of a diesel's cost rate ($/h) by its PWL (ems.pwl_max_error_per_h if "
        "smaller): a reference whose units cost less on paper than in the grid is no reference",
    )
    dr_share: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="flexible share of each MG's load (demand response, the day's energy kept); a scenario "
        "that declares it in [ems] gives every strategy that reads it the same",
    )
    operate_pcc: bool = Field(
        default=False,
        description="PCC switches as binaries too (an MG with a grid-forming unit may island; slow, rarely useful)",
    )
    switch_time_limit_s: float = Field(
        default=60.0, gt=0, description="time limit of the pass with the switches free (its bound is reported)"
    )


STRATEGY = Strategy.declare(
    __name__,
    "OracleEMS",
    OUTPUT_ATTRS,
    Settings,
    switch_entity=EntityModel("Switch", SWITCH_ATTRS),
    operates_tie_switches=True,
    reference=True,
)
