"""``mmg-cosim sweep --scheduler``: the sweep on a Dask cluster the user runs (here a ``dask scheduler`` and
two ``dask worker`` processes on 127.0.0.1, each in a working folder of its own, not the sweep's). The runs
execute on those workers (the summary names the worker, the scheduler's task stream agrees), write their
files where the sweep's relative ``--out-dir`` and scenario path point, the summary is whole (CSV and
Parquet alike, also after a resume), and the sweep leaves the cluster running: it is the user's, stopped
here by the fixture, which checks that no process of it is left."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from distributed import Client

from scenarios.registry import get_scenario
from scenarios.sweep import SweepRun, run_sweep, sweep_task
from sims.record_reader import read_attrs, read_kpis
from tests.test_sweep import assert_parquet_is_the_csv

pytestmark = pytest.mark.xdist_group("sweep")

START_TIMEOUT_S = 30.0
SWEEP_TIMEOUT_S = 120.0


@dataclass
class DaskCluster:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    logs: Path

    def log_tails(self) -> str:
        return "\n".join(f"{f.name}: ...{f.read_text()[-1500:]}" for f in sorted(self.logs.glob("*.log")))


def _start(args: list[str], folder: Path, log: str) -> subprocess.Popen[bytes]:
    """A process in a session (process group) of its own, its output in ``folder/log``."""
    with (folder / log).open("wb") as f:
        return subprocess.Popen(args, cwd=folder, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Its whole process group (a worker's runs and their simulators too): SIGTERM, then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _group_alive(proc):
            time.sleep(0.1)
        if not _group_alive(proc):
            break


def _group_alive(proc: subprocess.Popen[bytes]) -> bool:
    proc.poll()  # reap the leader, or its zombie keeps the group
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _scheduler_address(scheduler: subprocess.Popen[bytes], file: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and scheduler.poll() is None:
        if file.exists():
            try:
                return str(json.loads(file.read_text())["address"])
            except (json.JSONDecodeError, KeyError):
                pass  # being written
        time.sleep(0.1)
    raise RuntimeError(f"dask scheduler did not start (exit {scheduler.poll()})")


def _worker_addresses(address: str) -> set[str]:
    with Client(address, timeout=START_TIMEOUT_S) as client:
        return set(client.scheduler_info()["workers"])


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    """A scheduler on a free port of 127.0.0.1 and two single-threaded workers, as a user starts them; all
    stopped afterwards, however the test ends, and checked gone."""
    folder = tmp_path / "cluster"
    folder.mkdir()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        file = folder / "scheduler.json"  # port 0: the scheduler takes a free one and writes its address here
        scheduler = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0"]
        procs.append(_start([*scheduler, "--no-dashboard", "--scheduler-file", str(file)], folder, "scheduler.log"))
        address = _scheduler_address(procs[0], file)
        for i in range(2):
            worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny"]
            worker += ["--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(folder / f"w{i}")]
            procs.append(_start(worker, folder, f"worker{i}.log"))
        with Client(address, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        yield DaskCluster(address, procs[0], procs[1:], folder)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        left = [p.args for p in procs if _group_alive(p)]
        assert not left, f"still running: {left}"


def _sweep(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``mmg-cosim sweep ...`` in ``cwd``; on a timeout its process group is killed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "scenarios.cli", "sweep", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=SWEEP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_sweep_runs_on_the_users_cluster_and_leaves_it_running(
    dask_cluster: DaskCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two 1-day runs (two seeds) of a scenario given as a relative TOML path, into a relative out-dir: the
    sweep's working folder is neither worker's."""
    here = tmp_path / "client"
    here.mkdir()
    shutil.copy(get_scenario("ieee33_3mg").default_config, here / "my33.toml")
    workers = _worker_addresses(dask_cluster.address)
    with Client(dask_cluster.address) as client:
        client.get_task_stream()  # the scheduler starts recording which worker computes which task
    args = ["my33.toml", "--strategies", "rule_based", "--seeds", "1,2", "--days", "1", "--out-dir", "sweep"]
    args += ["--scheduler", dask_cluster.address, "--json"]
    done = _sweep(args, here)
    assert done.returncode == 0, done.stderr[-3000:] + dask_cluster.log_tails()
    out = here / "sweep"
    rows = {r["run_id"]: r for r in json.loads(done.stdout)["runs"]}
    ids = [SweepRun("rule_based", seed, None).run_id for seed in (1, 2)]
    assert sorted(rows) == ids and all(rows[i]["status"] == "ok" for i in ids)
    for run_id in ids:
        path = out / "runs" / f"{run_id}.h5"
        assert rows[run_id]["path"] == str(path)
        assert read_attrs(path)["n_steps_completed"] == read_attrs(path)["n_steps"] == 24
        assert read_kpis(path)["total_cost"] == pytest.approx(rows[run_id]["total_cost"])
    table = assert_parquet_is_the_csv(out).set_index("run_id")
    assert sorted(table.index) == ids and set(table["status"]) == {"ok"}
    assert table[["total_cost", "losses_mwh", "unserved_mwh", "max_vm_pu"]].notna().all().all()
    assert set(table["worker"]) <= workers  # the cluster's workers ran them, not a local cluster of the sweep's

    with Client(dask_cluster.address) as client:
        stream = {t["key"]: t["worker"] for t in client.get_task_stream()}
    assert {str(k).rsplit("-", 1)[0]: w for k, w in stream.items()} == {f"run-{i}": table.at[i, "worker"] for i in ids}
    assert dask_cluster.scheduler.poll() is None and all(w.poll() is None for w in dask_cluster.workers)
    assert _worker_addresses(dask_cluster.address) == workers  # the same workers: none stopped or restarted

    monkeypatch.chdir(here)  # resumed (the sweep's own call, without the CLI's start-up): read back on the workers
    runs = [SweepRun("rule_based", seed, None) for seed in (1, 2)]
    task = sweep_task("my33.toml", None, Path("sweep"), 1)
    assert {o.status for o in run_sweep(runs, task, out, scheduler=dask_cluster.address)} == {"resumed"}
    resumed = assert_parquet_is_the_csv(out).set_index("run_id")
    assert set(resumed["status"]) == {"resumed"} and set(resumed["worker"]) <= workers
    assert resumed["total_cost"].to_dict() == pytest.approx(table["total_cost"].to_dict())
