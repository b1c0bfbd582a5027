"""Fault injection: simulator processes that die, raise or hang, a main process that is interrupted or
killed, a full disk, an earlier result in the way.

Every case runs ``mmg-cosim run`` as a user does (a subprocess) and asserts the exit code, that no
simulator process outlives the run, and that the HDF5 file holds every flushed step and says what happened.
Faults inside simulators come from ``tests/faults/inject/sitecustomize.py`` (``MMG_FAULT``), so the code
under test is the shipped code.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sims.record_reader import read_attrs, read_series
from tests.helpers.same_run import assert_no_child_left, children_of, steps_in

INJECT = Path(__file__).parent / "inject"
STEP_S = 3600
SEED = 20261201
TARGETS = {
    "grid": "sims.grid:GridSim",
    "profiles": "sims.profiles:ProfileSim",
    "recorder": "sims.recorder:RecorderSim",
    "ems": "ems_controllers.rule_based.sim:RuleBasedEMS",
}


def _env(fault: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(INJECT), str(Path(__file__).parents[2]), env.get("PYTHONPATH", "")])
    env.pop("MMG_FAULT", None)
    if fault:
        env["MMG_FAULT"] = fault
    return env


def _run_args(out: Path, *sets: str, days: int = 2) -> list[str]:
    args = [sys.executable, "-m", "scenarios.cli", "run", "--quiet", "--days", str(days), "--out", str(out)]
    for s in ("run.recorder_buffer_steps=1", *sets):
        args += ["--set", s]
    return args


def _wait_for_step(path: Path, k: int, proc: subprocess.Popen[Any], timeout_s: float = 240.0) -> None:
    deadline = time.monotonic() + timeout_s
    while steps_in(path) < k:
        assert proc.poll() is None, f"the run ended early: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "the run did not reach the step in time"
        time.sleep(0.2)


def _reap(proc: subprocess.Popen[Any]) -> None:
    """However a test ends: the run's process is gone and its pipes are closed."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def _read_when_unlocked(path: Path, within_s: float = 10.0) -> dict[str, Any]:
    """The file's attributes once no process holds its HDF5 lock (a killed process releases it as the
    kernel tears it down, which can lag its disappearance from /proc on a loaded machine)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return read_attrs(path)
        except BlockingIOError:
            assert time.monotonic() < deadline, f"{path} is still locked {within_s} s after the run ended"
            time.sleep(0.2)


def _failed(out: Path) -> Path:
    return out.with_name(f"{out.stem}.failed{out.suffix}")


def _partial(out: Path) -> Path:
    return out.with_name(f"{out.stem}.partial{out.suffix}")


def _assert_failed_file(out: Path, *, at_least: int, words: str) -> dict[str, object]:
    """The failed run's file: readable, flushed steps complete, ``run_error`` says what happened."""
    path = _failed(out)
    assert path.exists() and not out.exists(), sorted(p.name for p in out.parent.iterdir())
    attrs = read_attrs(path)
    done = int(attrs["n_steps_completed"])
    assert done >= at_least
    grid = attrs["entity_map"]["grid"]
    conv = read_series(path)[(grid, "pf_converged")]
    assert len(conv) == done and (conv == 1).all()
    assert words in str(attrs["run_error"]), attrs["run_error"]
    return attrs


SLOW = pytest.mark.slow  # the same mechanism as a case of the default run: `make test-slow` runs these too


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("grid", marks=SLOW),
        pytest.param("profiles", marks=SLOW),
        "recorder",
        pytest.param("ems", marks=SLOW),
    ],
)
def test_a_child_that_dies_fails_the_run_naming_it(kind: str, tmp_path: Path) -> None:
    at_step = random.Random(f"{SEED}-{kind}").randint(3, 20)
    out = tmp_path / "run.h5"
    proc = subprocess.run(
        _run_args(out, f"run.separate_processes=['{kind}']", days=1),
        env=_env(f"{TARGETS[kind]}:exit:{at_step * STEP_S}"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    name = {"grid": "Grid", "profiles": "Profiles", "recorder": "Recorder", "ems": "EMS"}[kind]
    assert f"simulator {name} " in proc.stderr and "exited with code 3" in proc.stderr
    assert "Traceback" not in proc.stderr
    _assert_failed_file(out, at_least=at_step - 1, words=f"simulator {name} ")


@pytest.mark.parametrize("separate", [pytest.param(False, marks=SLOW), True], ids=["in-process", "own-process"])
def test_an_ems_that_raises_fails_the_run_with_its_words(separate: bool, tmp_path: Path) -> None:
    out = tmp_path / "run.h5"
    sets = ["run.separate_processes=['ems']"] if separate else []
    proc = subprocess.run(
        _run_args(out, *sets, days=2),
        env=_env(f"{TARGETS['ems']}:raise:{30 * STEP_S}"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "fault injected into RuleBasedEMS.step at t=108000" in proc.stderr
    _assert_failed_file(out, at_least=30, words="fault injected into RuleBasedEMS.step at t=108000")


def test_a_hung_child_fails_the_run_within_the_step_timeout(tmp_path: Path) -> None:
    out = tmp_path / "run.h5"
    t0 = time.monotonic()
    proc = subprocess.run(
        _run_args(out, "run.separate_processes=['ems']", "run.step_timeout_s=5", days=1),
        env=_env(f"{TARGETS['ems']}:hang:{5 * STEP_S}"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert time.monotonic() - t0 < 120
    _assert_failed_file(out, at_least=5, words="did not answer 'step' within run.step_timeout_s = 5 s")


def test_sigkill_of_the_grid_child_in_a_rolling_run_does_not_hang(tmp_path: Path) -> None:
    """Row 1 of the issue: the grid process killed from outside while the EMS re-plans every hour."""
    out = tmp_path / "run.h5"
    args = _run_args(out, "ems.rolling=true", "run.separate_processes=['ems','grid']", "run.step_timeout_s=60", days=30)
    proc = subprocess.Popen(
        [*args[:4], "--strategy", "centralized", *args[4:]],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_step(_partial(out), 4, proc)
        grid = [c for c in children_of(proc.pid) if b"sims.grid:GridSim" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(grid) == 1
        os.kill(grid[0], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    finally:
        _reap(proc)
    assert proc.returncode == 1, stderr[-3000:]
    assert "was killed by SIGKILL" in stderr
    assert_no_child_left(proc.pid)
    _assert_failed_file(out, at_least=4, words="simulator Grid ")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), pytest.param(signal.SIGTERM, 143, marks=SLOW)])
def test_interrupt_stops_cleanly(sig: signal.Signals, code: int, tmp_path: Path) -> None:
    out = tmp_path / "run.h5"
    proc = subprocess.Popen(
        _run_args(out, "run.separate_processes=['ems','recorder']", days=30),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_step(_partial(out), 3, proc)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        _reap(proc)
    assert proc.returncode == code, stderr[-3000:]
    assert "Traceback" not in stderr and "Task was destroyed" not in stderr, stderr[-3000:]
    assert_no_child_left(proc.pid)
    attrs = _assert_failed_file(out, at_least=3, words=f"interrupted by {sig.name} at step")
    assert str(attrs["run_error"]).endswith(f"at step {attrs['n_steps_completed']}")


@pytest.mark.parametrize("kind", [pytest.param("ems", marks=SLOW), "recorder"])
def test_sigkill_of_the_main_process_leaves_no_child_and_a_readable_file(kind: str, tmp_path: Path) -> None:
    out = tmp_path / "run.h5"
    proc = subprocess.Popen(
        _run_args(out, f"run.separate_processes=['{kind}']", days=30),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_step(_partial(out), 3, proc)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        _reap(proc)
    assert_no_child_left(proc.pid, within_s=5.0)
    attrs = _read_when_unlocked(_partial(out))  # the recorder died with the run: its lock goes with it
    assert int(attrs["n_steps_completed"]) >= 3 and not out.exists()
    r = subprocess.run(
        [sys.executable, "-m", "scenarios.cli", "report", str(_partial(out)), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr


def test_full_disk_fails_the_run_and_keeps_the_flushed_steps(tmp_path: Path) -> None:
    """The process may write files of at most 13 MB (RLIMIT_FSIZE, as a full disk would): the record of 12
    days outgrows that when its datasets grow by a second window (row 256). The recorder refuses the block
    before HDF5 writes any of it (HDF5 does not survive a half-written block), the run fails with exit 1,
    and the file keeps every flushed step."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (13_000_000, 13_000_000))

    out = tmp_path / "run.h5"
    proc = subprocess.run(
        _run_args(out, days=12), env=_env(), capture_output=True, text=True, timeout=300, preexec_fn=limit_file_size
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "[Errno 28] recorder:" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    _assert_failed_file(out, at_least=200, words="[Errno 28] recorder:")
    assert steps_in(_failed(out)) < 12 * 24


def test_a_failed_run_never_touches_an_earlier_result(tmp_path: Path) -> None:
    out = tmp_path / "run.h5"
    ok = subprocess.run(_run_args(out, days=1), env=_env(), capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-3000:]
    before = out.read_bytes()
    bad = subprocess.run(
        _run_args(out, days=2), env=_env(f"{TARGETS['ems']}:raise:{3 * STEP_S}"), capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert out.read_bytes() == before
    assert "run_error" not in read_attrs(out)
    assert "fault injected" in str(read_attrs(_failed(out))["run_error"])


@pytest.mark.parametrize("where", ["folder", "under a file"])
def test_an_unwritable_output_is_bad_input_before_the_start(where: str, tmp_path: Path) -> None:
    if where == "folder":
        out = tmp_path / "run.h5"
        out.mkdir()
    else:
        (tmp_path / "file").write_text("")
        out = tmp_path / "file" / "run.h5"
    proc = subprocess.run(_run_args(out, days=1), env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"--out {out}" in proc.stderr and "Traceback" not in proc.stderr
    assert not _partial(out).exists()
