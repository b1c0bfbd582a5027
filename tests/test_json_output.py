"""``--json`` prints exactly one strict JSON document on stdout, whatever solvers and libraries print.

Every command that has ``--json`` runs here as a user runs it (a subprocess), and every shipped strategy
solves in one of them on a scenario it runs on; ``json.loads`` of the whole stdout must succeed and
``NaN``/``Infinity`` must not appear.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from ems_controllers.registry import strategies
from scenarios.cli import main, result_file_name
from scenarios.registry import DEFAULT_SCENARIO
from scenarios.stdio import result_stdout, strict, write_json
from tests.conftest import SHIPPED_GROUP
from tests.reference.shipped import CASES

CLI = [sys.executable, "-m", "scenarios.cli"]
HIGHS_PRINTS_BANNER = tuple(int(x) for x in version("highspy").split(".")[:2]) >= (1, 16)


def _strict_loads(text: str) -> Any:
    def refuse(token: str) -> float:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def _strategies_by_scenario() -> dict[str, list[str]]:
    """Each shipped strategy once, on the first shipped scenario it fits (the default scenario first)."""
    by: dict[str, list[str]] = defaultdict(list)
    placed: set[str] = set()
    for scenario, strategy in sorted(CASES, key=lambda c: c[0] != DEFAULT_SCENARIO):
        if strategy not in placed:
            by[scenario].append(strategy)
            placed.add(strategy)
    return dict(by)


# The ``compare --json`` processes are the shared runs of tests/conftest.py (``shipped_compare``, also read by
# tests/test_reference_kpis.py and tests/test_fair_kpis.py): the tests that read them run on the worker that
# makes them once for all (SHIPPED_GROUP); the others go to whichever worker is free.
SHIPPED = pytest.mark.xdist_group(SHIPPED_GROUP)


@pytest.fixture(scope="module")
def compared(
    shipped_compare: dict[str, tuple[Path, subprocess.CompletedProcess[str]]],
) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    """``compare --json`` of every shipped strategy on every shipped scenario it fits (each strategy at least
    once), one process per scenario, run side by side."""
    return shipped_compare


@SHIPPED
def test_compare_json_of_every_strategy_is_one_strict_document(compared: dict[str, Any]) -> None:
    assert set(_strategies_by_scenario()) <= set(compared)
    for scenario, (_, r) in compared.items():
        assert r.returncode == 0, r.stderr[-3000:]
        doc = _strict_loads(r.stdout)
        assert set(doc) == {strategy for sc, strategy in CASES if sc == scenario}
        for kpis in doc.values():
            assert kpis["scenario"] == scenario and isinstance(kpis["total_cost"], float)
    if HIGHS_PRINTS_BANNER:  # the chatter existed and went to stderr
        assert any("Running HiGHS" in r.stderr for _, r in compared.values())
        assert not any("HiGHS" in r.stdout for _, r in compared.values())


AUDIT_KEYS = {"received", "findings", "n_messages", "n_ciphertext", "protocol"}


def _one_file_per_strategy(compared: dict[str, Any]) -> list[Path]:
    """The run of each shipped strategy on the first scenario it fits (the default scenario first)."""
    by = _strategies_by_scenario()
    files = [compared[sc][0] / result_file_name(sc, st) for sc, names in by.items() for st in names]
    # a strategy that fits only a scenario left out of the shared runs (NOT_IN_REFERENCE) is compared by
    # its own module (clustered: tests/test_clustered_cosim.py)
    assert len(files) == len({strategy for _, strategy in CASES})
    return files


@SHIPPED
def test_report_and_audit_json_of_every_run(compared: dict[str, Any], capfd: pytest.CaptureFixture[str]) -> None:
    """``report --json`` and ``audit --json`` of each strategy's run print one strict document. Each command
    runs once as a user runs it (a subprocess: whatever its imports print), on the nested run (ciphertext
    in its audit); on every run it runs through ``main`` in this process, where ``capfd`` sees the file
    descriptors as a terminal would (native writes included)."""
    files = _one_file_per_strategy(compared)
    for f in files:
        for command in ("report", "audit"):
            capfd.readouterr()
            code = main([command, str(f), "--json"])
            out, err = capfd.readouterr()
            assert code == 0, (command, f.name, err[-3000:])
            doc = _strict_loads(out)
            if command == "report":
                assert doc["n_steps"] > 0
            else:
                assert set(doc) == AUDIT_KEYS
    nested = next(f for f in files if f.name.endswith("-nested.h5"))
    r = subprocess.run([*CLI, "report", str(nested), "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert _strict_loads(r.stdout)["n_steps"] > 0
    r = subprocess.run([*CLI, "audit", str(nested), "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    doc = _strict_loads(r.stdout)
    assert set(doc) == AUDIT_KEYS and doc["n_ciphertext"] > 0


def test_run_json_with_a_solving_ems_in_its_own_process(tmp_path: Path) -> None:
    """The EMS child process inherits the redirected descriptor: its banner cannot reach stdout."""
    out = tmp_path / "c.h5"
    r = subprocess.run(
        [
            *CLI,
            "run",
            "--strategy",
            "centralized",
            "--quiet",
            "--json",
            "--out",
            str(out),
            "--set",
            "run.separate_processes=['ems']",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert _strict_loads(r.stdout)["strategy"] == "centralized"
    if HIGHS_PRINTS_BANNER:
        assert "Running HiGHS" in r.stderr


def test_list_json() -> None:
    r = subprocess.run([*CLI, "list", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = _strict_loads(r.stdout)
    assert set(doc["strategies"]) == set(strategies()) and DEFAULT_SCENARIO in doc["scenarios"]


def test_native_writes_inside_the_block_go_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    with result_stdout() as out:
        os.write(1, b"native chatter\n")
        print("python chatter")
        subprocess.run([sys.executable, "-c", "print('child chatter')"], check=True)
        write_json(out, {"x": float("nan"), "y": [float("inf"), 1.5], "z": {"a"}})
    captured = capfd.readouterr()
    assert _strict_loads(captured.out) == {"x": None, "y": [None, 1.5], "z": ["a"]}
    for chatter in ("native chatter", "python chatter", "child chatter"):
        assert chatter in captured.err


def test_strict_converts_numpy_and_non_finite() -> None:
    import numpy as np

    doc = strict({"a": np.float64("nan"), "b": np.int64(3), "c": np.array([1.0, np.inf]), 4: np.bool_(True)})
    assert doc == {"a": None, "b": 3, "c": [1.0, None], "4": True}
    assert json.dumps(doc, allow_nan=False)
