"""Shared fixtures: one 1-day default run, reused by the end-to-end tests that only read its file."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.config import load_config
from scenarios.registry import get_scenario
from scenarios.runner import RunResult, run_scenario

DEFAULT_CONFIG = get_scenario("ieee33_3mg").default_config


def run_default(
    tmp_path: Path, overrides: list[str] | None = None, name: str = "run.h5", strategy: str = "rule_based"
) -> RunResult:
    cfg, data_dir = load_config(DEFAULT_CONFIG, overrides or [])
    return run_scenario(cfg, data_dir, strategy, tmp_path / name, progress=False)


@pytest.fixture(scope="session")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return run_default(tmp_path_factory.mktemp("default_run"))


@pytest.fixture(scope="session")
def shipped_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], RunResult]:
    """Every shipped scenario x fitting strategy, 1 day, defaults (``tests.reference.shipped.CASES``)."""
    from tests.reference.shipped import CASES, run_case

    d = tmp_path_factory.mktemp("shipped")
    return {(scenario, strategy): run_case(scenario, strategy, d) for scenario, strategy in CASES}
