"""The EMS strategies this package ships, by name: where their mosaik simulator lives and what it does."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Strategy:
    name: str
    target: str  # "module:Class" of the mosaik simulator
    description: str
    params: tuple[str, ...] = ()  # fields of the config's [ems] table passed to it as sim params
    scenarios: tuple[str, ...] | None = None  # the scenarios it is built for (None: any)

    def check_scenario(self, scenario: str) -> None:
        if self.scenarios is not None and scenario not in self.scenarios:
            raise ValueError(f"strategy {self.name!r} runs on the scenario(s) {list(self.scenarios)}, not {scenario!r}")

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
        Strategy(
            "local",
            "ems_controllers.local.sim:LocalEMS",
            "each MG (and the DN) minimises its own bill against the tariff at its coupling point, "
            "MILP with HiGHS; the decentralized upper bound on cost",
        ),
        Strategy(
            "centralized",
            "ems_controllers.centralized.sim:CentralizedEMS",
            "one operator schedules all MGs and the DN's units in one MILP, substation exchange priced by "
            "the tariff; the full-information lower bound on cost",
        ),
        Strategy(
            "security_constrained",
            "ems_controllers.security_constrained.sim:SecurityConstrainedEMS",
            "spec 002: MGs request, the DNO grants under LinDistFlow network limits (case 2/3) and the "
            "MGs reschedule; case 3 adds tie lines and a central MG controller with a Shapley split",
            params=("case", "deviation_price_per_mwh", "redistribution_price_per_mwh", "s_max_factor"),
            scenarios=("ieee33_3mg",),
        ),
        Strategy(
            "cooperative",
            "ems_controllers.cooperative.sim:CooperativeEMS",
            "spec 003: each MG's uEMS sets its CHP against the prices and reports surplus/shortage; a "
            "central EMS runs main and ancillary internal trading (--set ems.ancillary=extended widens it)",
            params=("ancillary",),
            scenarios=("community_3mg",),
        ),
        Strategy(
            "nested",
            "ems_controllers.nested.sim:NestedEMS",
            "spec 000: nested MGs schedule innermost to outermost, each handing its parent only its "
            "surplus/shortage; owners' loads reach their MG's EMS only as a Paillier-encrypted sum",
            params=("key_bits", "packed"),
            scenarios=("nested_campus",),
        ),
    ]
}


def get_strategy(name: str) -> Strategy:
    """A shipped strategy by name, or a user's EMS simulator given as ``"package.module:Class"`` (its
    module must define ``OUTPUT_ATTRS`` and the class must offer the ``MG`` model of the shipped ones)."""
    if name in STRATEGIES:
        return STRATEGIES[name]
    if ":" in name:
        module, _, cls = name.partition(":")
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"strategy {name!r}: cannot import {module!r}: {exc}") from None
        if not hasattr(mod, cls) or not hasattr(mod, "OUTPUT_ATTRS"):
            raise ValueError(f"strategy {name!r}: {module} needs the class {cls} and OUTPUT_ATTRS")
        return Strategy(name, name, f"user EMS simulator {name}")
    raise ValueError(f"unknown strategy {name!r}; known: {sorted(STRATEGIES)} or 'module:Class'")
