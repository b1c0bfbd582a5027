"""``report`` says how a run ended (issue 10, row 11): a partial run (``n_steps_completed < n_steps``, e.g. a
killed run) and a failed run (``run_error``) are named at the top of the text report, and ``report --json``
carries ``n_steps_completed``, ``n_steps_planned``, ``complete`` and ``run_error`` (null when none).

The files are a real 1-day run whose root attributes are then edited with h5py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import h5py
import pytest

from scenarios.cli import main
from scenarios.runner import RunResult


def _copy(run: RunResult, tmp_path: Path, **attrs: Any) -> Path:
    """A copy of ``run``'s file with root attributes set (None: deleted)."""
    path = tmp_path / "run.h5"
    shutil.copyfile(run.path, path)
    with h5py.File(path, "a") as f:
        for key, value in attrs.items():
            if value is None:
                f.attrs.pop(key, None)
            else:
                f.attrs[key] = value
    return path


def _report(path: Path, capfd: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(["report", str(path), *args])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    return captured.out


def _report_json(path: Path, capfd: pytest.CaptureFixture[str]) -> dict[str, Any]:
    doc = json.loads(_report(path, capfd, "--json"))
    assert isinstance(doc, dict)
    return doc


def test_complete_run_is_reported_complete(
    default_run: RunResult, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = _copy(default_run, tmp_path)
    text = _report(path, capfd)
    assert "PARTIAL RUN" not in text and "RUN FAILED" not in text, text
    doc = _report_json(path, capfd)
    assert doc["n_steps_completed"] == 24 and doc["n_steps_planned"] == 24
    assert doc["complete"] is True
    assert "run_error" in doc and doc["run_error"] is None


def test_partial_run_says_so_at_the_top(
    default_run: RunResult, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = _copy(default_run, tmp_path, n_steps_completed=6)
    text = _report(path, capfd)
    assert text.splitlines()[0].startswith("PARTIAL RUN: 6 of 24 steps completed"), text
    assert "RUN FAILED" not in text
    doc = _report_json(path, capfd)
    assert doc["n_steps_completed"] == 6 and doc["n_steps_planned"] == 24
    assert doc["complete"] is False and doc["run_error"] is None
    assert doc["n_steps"] == 6, "the KPIs cover the completed steps"


def test_failed_run_says_so_and_why_at_the_top(
    default_run: RunResult, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    error = "SimulatorFailed: the EMS process died at step 6"
    path = _copy(default_run, tmp_path, n_steps_completed=6, run_error=error)
    lines = _report(path, capfd).splitlines()
    assert lines[0] == f"RUN FAILED: {error}", lines
    assert lines[1].startswith("PARTIAL RUN: 6 of 24 steps completed"), lines
    doc = _report_json(path, capfd)
    assert doc["run_error"] == error and doc["complete"] is False
    assert doc["n_steps_completed"] == 6 and doc["n_steps_planned"] == 24


def test_failed_run_with_every_step_recorded_is_not_complete(
    default_run: RunResult, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = _copy(default_run, tmp_path, run_error="RuntimeError: a simulator process died after the last step")
    lines = _report(path, capfd).splitlines()
    assert lines[0] == "RUN FAILED: RuntimeError: a simulator process died after the last step", lines
    assert not any(line.startswith("PARTIAL RUN") for line in lines)
    doc = _report_json(path, capfd)
    assert doc["complete"] is False and doc["n_steps_completed"] == doc["n_steps_planned"] == 24


def test_run_without_planned_steps_is_judged_by_its_error_only(
    default_run: RunResult, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = _copy(default_run, tmp_path, n_steps=None)
    doc = _report_json(path, capfd)
    assert doc["n_steps_planned"] is None and doc["n_steps_completed"] == 24 and doc["complete"] is True
    assert "PARTIAL RUN" not in _report(path, capfd)
