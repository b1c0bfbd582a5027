"""Failures are values, not lost runs: a diverged power flow, an EMS that raises, a dead EMS process."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from scenarios.runner import RunFailed
from sims.record_reader import read_attrs, read_series
from tests.conftest import run_default
from tests.helpers.failing_ems import FAIL_AT_S, KPI_FAILURE

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_diverged_power_flow_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    # 70x the feeder load cannot be carried: the AC power flow diverges in most hours (not at noon,
    # when the MGs export).
    res = run_default(tmp_path, ["grid.feeder_load_scale=70.0"])
    attrs = read_attrs(res.path)
    s = read_series(res.path)
    grid = attrs["entity_map"]["grid"]
    conv = s[(grid, "pf_converged")]
    assert len(conv) == 24 and int(attrs["n_steps_completed"]) == 24
    failed = conv == 0
    assert failed.any() and not failed.all(), "the overload must make some power flows fail"
    assert np.isnan(s[(grid, "min_vm_pu")][failed]).all()
    assert np.isfinite(s[(grid, "min_vm_pu")][~failed]).all()
    assert res.kpis["pf_failures"] == int(failed.sum())


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("raising", f"RuntimeError: EMS failure injected at t={FAIL_AT_S}"),
        ("dead process", r"simulator EMS \(tests.helpers.failing_ems:DyingEMS, pid \d+\) was killed by SIGKILL"),
    ],
)
def test_failed_ems_keeps_every_completed_step(kind: str, message: str, tmp_path: Path) -> None:
    """The file moves to ``run.failed.h5`` with every completed step (the recorder writes its buffered
    rows when the world stops) and the error in ``run_error``."""
    overrides = ["scenario.days=2", "run.recorder_buffer_steps=24"]
    strategy = "tests.helpers.failing_ems:RaisingEMS"
    if kind == "dead process":
        overrides.append("run.separate_processes=['ems']")
        strategy = "tests.helpers.failing_ems:DyingEMS"
    with pytest.raises(RunFailed, match=message) as info:
        run_default(tmp_path, overrides, strategy=strategy)
    failed = tmp_path / "run.failed.h5"
    assert info.value.path == failed and not (tmp_path / "run.h5").exists()
    attrs = read_attrs(failed)
    n_done = FAIL_AT_S // 3600
    assert int(attrs["n_steps_completed"]) == n_done == info.value.steps_completed
    assert re.search(message, attrs["run_error"])
    s = read_series(failed)
    grid = attrs["entity_map"]["grid"]
    assert len(s[(grid, "pf_converged")]) == n_done
    assert (s[(grid, "pf_converged")] == 1).all()


def test_a_kpi_hook_that_raises_fails_the_run_and_keeps_the_record(tmp_path: Path) -> None:
    """Every step ran, but the strategy's KPI hook raises: the run exits as failed (not with a traceback
    and a ``.partial.h5``), the file moves to ``run.failed.h5`` with all its steps and says why."""
    with pytest.raises(RunFailed, match=f"every step ran, but the KPIs failed: ValueError: {KPI_FAILURE}") as info:
        run_default(tmp_path, strategy="tests.helpers.failing_ems:KPI_FAILING")
    failed = tmp_path / "run.failed.h5"
    assert info.value.path == failed and info.value.steps_completed == 24
    assert not (tmp_path / "run.h5").exists() and not (tmp_path / "run.partial.h5").exists()
    attrs = read_attrs(failed)
    assert int(attrs["n_steps_completed"]) == 24 and KPI_FAILURE in attrs["run_error"]
