"""The scenarios this package ships, by name, with their embedded default config."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from scenarios.config import DATA_DIR


@dataclass(frozen=True)
class ScenarioEntry:
    name: str
    module: str
    default_config: Path
    description: str

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


SCENARIOS: dict[str, ScenarioEntry] = {
    e.name: e
    for e in [
        ScenarioEntry(
            "ieee33_3mg",
            "scenarios.ieee33_3mg",
            DATA_DIR / "ieee33_3mg.toml",
            "case33bw feeder, three microgrids (PV, wind, diesel, battery), the DN's diesel and battery",
        ),
        ScenarioEntry(
            "community_3mg",
            "scenarios.community_3mg",
            DATA_DIR / "community_3mg.toml",
            "three CHP + PV microgrids trading internally and with the utility (spec 003)",
        ),
        ScenarioEntry(
            "nested_campus",
            "scenarios.nested_campus",
            DATA_DIR / "nested_campus.toml",
            "department inside faculty inside campus with owners' loads, CIGRE LV (spec 000)",
        ),
    ]
}
DEFAULT_SCENARIO = "ieee33_3mg"
DEFAULT_STRATEGY = "rule_based"


def get_scenario(name: str) -> ScenarioEntry:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {sorted(SCENARIOS)}") from None
