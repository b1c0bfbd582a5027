"""Spec 002: MGs request, the DNO grants under LinDistFlow network limits (case 2/3) and the MGs
reschedule; case 3 adds tie lines and a central MG controller whose split leaves no MG above its case-2 bill."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ems_controllers.core.contract import GRID_TIED, Capability, Strategy, StrategySettings
from ems_controllers.core.outputs import PLANNER_OUTPUTS

EXTRA_ATTRS = (
    "tie_closed",
    "request_mw",
    "grant_mw",
    "saving_share",
    "settlement_cost",
    "dn_cost",
    "predicted_vm_pu",
    "predicted_loading_percent",
    "step1_s",
    "step2_s",
    "step3_s",
    "split_s",
)
OUTPUT_ATTRS = (*PLANNER_OUTPUTS, *EXTRA_ATTRS)


class Settings(StrategySettings):
    case: Literal[1, 2, 3] = Field(default=2, description="spec 002's case")
    deviation_price_per_mwh: float = Field(default=500.0, gt=0)
    redistribution_price_per_mwh: float = Field(default=250.0, ge=0)
    s_max_factor: float = Field(default=0.95, gt=0, le=1, description="line limit as a share of the rating")

    @model_validator(mode="after")
    def _prices(self) -> Settings:
        if self.redistribution_price_per_mwh >= self.deviation_price_per_mwh:
            raise ValueError("redistribution_price_per_mwh must be below deviation_price_per_mwh")
        return self


def _requires(settings: Settings) -> frozenset[Capability]:
    """Case 3 closes the tie lines: it needs tie switches."""
    return frozenset({Capability.TIE_SWITCHES}) if settings.case == 3 else frozenset()


NEEDS = frozenset({Capability.NETWORK_OPERATOR})
NOT_WITH = GRID_TIED | {Capability.NESTED, Capability.TRANSFORMERS, Capability.SUB_STEP_PHYSICS}
"""Sub-step physics: its KPI hook sums solve times and aggregation shares over recorded steps."""
STRATEGY = Strategy.declare(
    __name__,
    "SecurityConstrainedEMS",
    OUTPUT_ATTRS,
    Settings,
    NEEDS,
    NOT_WITH,
    requires_for=_requires,
    operates_tie_switches=True,
    kpis=f"{__package__}.kpis:kpis",
)
