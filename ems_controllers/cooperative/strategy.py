"""Spec 003: each MG's uEMS sets its CHP against the prices and reports surplus/shortage; a central EMS
runs main and ancillary internal trading (--set ems.ancillary=extended widens it, ems.ancillary=merit makes
it the hour's central LP)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ems_controllers.core.contract import GRID_TIED, Capability, EntityModel, Strategy, StrategySettings
from ems_controllers.core.outputs import PLANNER_OUTPUTS

MG_ATTRS = (
    "chp_step1_kwh",
    "chp_kwh",
    "surplus_kwh",
    "shortage_kwh",
    "self_sufficient",
    "main_send_kwh",
    "main_receive_kwh",
    "ancillary_up_kwh",
    "ancillary_down_kwh",
    "ext_sell_kwh",
    "ext_buy_kwh",
    "settlement_cost",
    "revealed_room",
)
COMMUNITY_ATTRS = ("main_internal_kwh", "ancillary_internal_kwh", "cost_step1", "cost_final", "cost_central_lp", "gap")
OUTPUT_ATTRS = (*PLANNER_OUTPUTS, *MG_ATTRS)


class Settings(StrategySettings):
    ancillary: Literal["paper", "extended", "merit"] = Field(
        default="paper",
        description="step 2's rule: 'paper' moves self-sufficient MGs only; 'extended' every MG whose CHP "
        "cost lies between the prices (they report room and cost); 'merit' the same reports, plus swaps "
        "from dearer to cheaper CHPs: the hour's central LP",
    )


NEEDS = frozenset({Capability.CHP})
NOT_WITH = GRID_TIED | {Capability.NETWORK_OPERATOR, Capability.NESTED, Capability.SUB_STEP_PHYSICS}
"""Sub-step physics: its KPI hook sums the internal trades (energy per EMS step) over recorded steps."""
COMMUNITY = EntityModel("Community", COMMUNITY_ATTRS)
KPIS = f"{__package__}.kpis:kpis"
STRATEGY = Strategy.declare(
    __name__, "CooperativeEMS", OUTPUT_ATTRS, Settings, NEEDS, NOT_WITH, system_entity=COMMUNITY, kpis=KPIS
)
