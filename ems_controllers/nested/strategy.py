"""Spec 000: nested MGs schedule innermost to outermost, each handing its parent only its
surplus/shortage; owners' loads reach their MG's EMS only as a Paillier-encrypted sum."""

from __future__ import annotations

from pydantic import Field

from ems_controllers.core.contract import GRID_TIED, Capability, EntityModel, Strategy, StrategySettings
from ems_controllers.core.outputs import PLANNER_OUTPUTS

OWNER_ATTRS = ("sent_ciphertext_bytes",)


class Settings(StrategySettings):
    key_bits: int = Field(default=2048, ge=2048, description="Paillier key size")
    packed: bool = Field(default=True, description="pack a forecast into one plaintext")


NEEDS = frozenset({Capability.NESTED})
NOT_WITH = GRID_TIED | {Capability.NETWORK_OPERATOR}
OWNER_AGENT = EntityModel("Owner", OWNER_ATTRS)
STRATEGY = Strategy.declare(__name__, "NestedEMS", PLANNER_OUTPUTS, Settings, NEEDS, NOT_WITH, owner_agent=OWNER_AGENT)
