"""The scenarios this package ships: a name, a TOML config and a description each.

A scenario is data: every one, shipped or a user's, is built by :func:`scenarios.build.build_net` from its
config and wired by :func:`scenarios.wiring.wire`. :func:`get_scenario` also takes the path of a user's
TOML config (any ``scenario.name``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from scenarios.config import DATA_DIR


@dataclass(frozen=True)
class ScenarioEntry:
    name: str
    default_config: Path
    description: str


SCENARIOS: dict[str, ScenarioEntry] = {
    e.name: e
    for e in [
        ScenarioEntry(
            "ieee33_3mg",
            DATA_DIR / "ieee33_3mg.toml",
            "case33bw feeder, three microgrids (PV, wind, diesel, battery), the DN's diesel and battery",
        ),
        ScenarioEntry(
            "community_3mg",
            DATA_DIR / "community_3mg.toml",
            "three CHP + PV microgrids trading internally and with the utility (spec 003)",
        ),
        ScenarioEntry(
            "nested_campus",
            DATA_DIR / "nested_campus.toml",
            "department inside faculty inside campus with owners' loads, CIGRE LV (spec 000)",
        ),
        ScenarioEntry(
            "islanded_img",
            DATA_DIR / "islanded_img.toml",
            "four interconnected microgrids without a utility grid, CIGRE LV residential feeder (spec 001)",
        ),
        ScenarioEntry(
            "mv_clusters",
            DATA_DIR / "mv_clusters.toml",
            "ten microgrids in three clusters with feeder, tie and PCC switches, SimBench rural MV grid, a DN",
        ),
    ]
}
DEFAULT_SCENARIO = "ieee33_3mg"
DEFAULT_STRATEGY = "rule_based"


def get_scenario(name: str) -> ScenarioEntry:
    """A shipped scenario by name, or a user's config given as the path of its TOML file (its
    ``scenario.name``, or the file's stem if it has none; the file is checked when it is loaded)."""
    if name in SCENARIOS:
        return SCENARIOS[name]
    path = Path(name)
    if path.suffix.lower() == ".toml" or path.is_file():
        return ScenarioEntry(_name_in(path), path, f"config {path}")
    raise ValueError(f"unknown scenario {name!r}; known: {sorted(SCENARIOS)}, or the path of a TOML config")


def _name_in(path: Path) -> str:
    try:
        name = tomllib.loads(path.read_text()).get("scenario", {}).get("name")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return path.stem
    return name if isinstance(name, str) and name else path.stem
