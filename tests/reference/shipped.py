"""Every shipped scenario with every shipped strategy that runs on it: 1 day, default config and seeds.

``python -m tests.reference.shipped`` writes ``kpis_1day.json`` beside this file: the KPIs of each run
that describe what happened (costs, energies, violations, losses; not times). The refactor of the
strategy contract must not move any of them (``tests/test_reference_kpis.py`` compares within 1e-9
relative). Run it again, and say why in the commit, only when a change is meant to move results.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from ems_controllers.registry import strategies
from scenarios.config import load_config
from scenarios.registry import SCENARIOS
from scenarios.runner import RunResult, run_scenario
from scenarios.stdio import strict

REFERENCE_FILE = Path(__file__).with_name("kpis_1day.json")
NOT_IN_REFERENCE = frozenset({"mv_clusters"})
"""Shipped scenarios whose runs are not in the reference file, nor in the tests sharing its runs
(``tests/test_fair_kpis.py``): mv_clusters (10 MGs on a SimBench MV grid) adds four runs of about 5-12 s
each; it has its own tests (``tests/test_clusters_build.py``). Take a name out of here and regenerate the
file to reference it."""


def _cases() -> list[tuple[str, str]]:
    """Every shipped scenario with every shipped strategy that fits it (its default config), but the
    reference strategy: its search over switch states stops at a time limit, so its KPIs may differ
    from one machine to the next (``tests/test_oracle.py`` checks it against these runs)."""
    from scenarios.strategy_fit import offered, strategy_settings

    cases = []
    for name, entry in SCENARIOS.items():
        if name in NOT_IN_REFERENCE:
            continue
        cfg, _ = load_config(entry.default_config)
        have = offered(cfg)
        cases += [
            (name, s.name)
            for s in strategies().values()
            if not s.reference and s.problem(have, strategy_settings(cfg, s)) is None
        ]
    return cases


CASES = _cases()
TIMING_WORDS = ("time", "wall")


def run_case(scenario: str, strategy: str, out_dir: Path) -> RunResult:
    cfg, data_dir = load_config(SCENARIOS[scenario].default_config, [])
    return run_scenario(cfg, data_dir, strategy, out_dir / f"{scenario}-{strategy}.h5", progress=False)


def outcome(kpis: dict[str, Any]) -> dict[str, Any]:
    """The KPIs that describe what happened: numbers and tables of numbers, without timings."""

    def keep(key: str, value: Any) -> bool:
        if any(word in key for word in TIMING_WORDS):
            return False
        if isinstance(value, dict):
            return all(isinstance(v, (int, float)) or v is None for v in value.values())
        return isinstance(value, (int, float)) or value is None

    return {k: v for k, v in strict(kpis).items() if keep(k, v)}


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        refs = {f"{sc}/{st}": outcome(run_case(sc, st, Path(d)).kpis) for sc, st in CASES}
    REFERENCE_FILE.write_text(json.dumps(refs, indent=1, sort_keys=True, allow_nan=False) + "\n")
    print(f"wrote {REFERENCE_FILE} ({len(refs)} runs)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
