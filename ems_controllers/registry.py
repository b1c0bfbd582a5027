"""The EMS strategies this package ships, by name: where their mosaik simulator lives and what it does."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Strategy:
    name: str
    target: str  # "module:Class" of the mosaik simulator
    description: str

    @property
    def module(self) -> str:
        return self.target.split(":", 1)[0]


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in [
        Strategy(
            "rule_based",
            "ems_controllers.rule_based.sim:RuleBasedEMS",
            "self-consumption rule per MG: battery absorbs surplus and covers deficit, diesel runs when "
            "the buy price exceeds its marginal cost, the rest is bought or sold",
        ),
    ]
}


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {sorted(STRATEGIES)}") from None
