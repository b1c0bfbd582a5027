"""Shared fixtures: one 1-day default run, reused by the end-to-end tests that only read its file, and the
shipped scenario x strategy runs, made once by ``mmg-cosim compare --json`` as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from scenarios.config import load_config
from scenarios.registry import get_scenario
from scenarios.runner import RunResult, run_scenario

DEFAULT_CONFIG = get_scenario("ieee33_3mg").default_config
SHIPPED_GROUP = "shipped_runs"
"""The xdist group of every test that uses ``shipped_compare`` or ``shipped_runs`` (one worker makes them)."""


def run_default(
    tmp_path: Path, overrides: list[str] | None = None, name: str = "run.h5", strategy: str = "rule_based"
) -> RunResult:
    cfg, data_dir = load_config(DEFAULT_CONFIG, overrides or [])
    return run_scenario(cfg, data_dir, strategy, tmp_path / name, progress=False)


def by_type(series: dict, grid_fid: str, model: str, attr: str) -> dict[str, np.ndarray]:
    """The grid simulator's series of one model (not the profile entities of the same name)."""
    prefix = grid_fid.split(".", 1)[0] + "." + model + "-"
    return {fid: v for (fid, a), v in series.items() if a == attr and fid.startswith(prefix)}


def assert_energy_balance(path: Path, tol_mw: float = 1e-6) -> dict:
    """External-grid import = loads + storage charging - static generation + losses, every recorded step;
    returns the record's series."""
    from sims.record_reader import read_attrs, read_series

    s = read_series(path)
    grid = read_attrs(path)["entity_map"]["grid"]
    ext, loads, gens, stor = (
        sum(by_type(s, grid, model, "p_mw").values()) for model in ("ExtGrid", "Load", "StaticGen", "Storage")
    )
    np.testing.assert_allclose(ext, loads + stor - gens + s[(grid, "losses_mw")], atol=tol_mw)
    return s


@pytest.fixture(scope="session")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return run_default(tmp_path_factory.mktemp("default_run"))


@pytest.fixture(scope="session")
def shipped_compare(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    """Every shipped scenario x fitting strategy (``tests.reference.shipped.CASES``: 1 day, defaults), as
    ``mmg-cosim compare <scenario> --strategies <all that fit> --json --out-dir DIR``, one process per
    scenario, run side by side: scenario -> (DIR, the finished process). ``shipped_runs`` reads these runs;
    ``tests/test_json_output.py`` checks the processes' stdout and runs ``report``/``audit`` on the files."""
    from tests.reference.shipped import CASES

    by_scenario: dict[str, list[str]] = defaultdict(list)
    for scenario, strategy in CASES:
        by_scenario[scenario].append(strategy)
    procs = {}
    for scenario, names in by_scenario.items():
        out_dir = tmp_path_factory.mktemp(f"shipped-{scenario}")
        cmd = [sys.executable, "-m", "scenarios.cli", "compare", scenario, "--strategies", ",".join(names)]
        cmd += ["--json", "--out-dir", str(out_dir)]
        procs[scenario] = (out_dir, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    done = {}
    for scenario, (out_dir, p) in procs.items():
        stdout, stderr = p.communicate(timeout=900)
        done[scenario] = (out_dir, subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return done


@pytest.fixture(scope="session")
def shipped_runs(
    shipped_compare: dict[str, tuple[Path, subprocess.CompletedProcess[str]]],
) -> dict[tuple[str, str], RunResult]:
    """Every shipped scenario x fitting strategy, 1 day, defaults (``tests.reference.shipped.CASES``): the
    runs of ``shipped_compare``, each its file and the KPIs the compare printed for it."""
    import json

    from scenarios.cli import result_file_name
    from tests.reference.shipped import CASES

    runs = {}
    for scenario, strategy in CASES:
        out_dir, proc = shipped_compare[scenario]
        assert proc.returncode == 0, f"compare {scenario}: {proc.stderr[-3000:]}"
        kpis = json.loads(proc.stdout)[strategy]
        path = out_dir / result_file_name(scenario, strategy)
        assert path.is_file(), path
        runs[(scenario, strategy)] = RunResult(path, kpis, float(kpis["wall_time_s"]))
    return runs
