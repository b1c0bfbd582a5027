"""One run over two hosts through mosaik's ``connect``: two network namespaces on this machine joined by a
veth pair (host A 10.231.0.1, host B 10.231.0.2, no route to anything else). Simulators started by hand
on A (``python -m <module> A:PORT --remote``), the run on B (``mmg-cosim run ... --set
run.connect.<Name>=A:PORT``): the run is the in-process run, and when it ends, or fails because a
simulator on A was killed, no process and no namespace is left."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scenarios.runner import RunResult
from scenarios.supervision import SimulatorFailed, Supervisor
from sims.record_reader import read_attrs
from tests.helpers.same_run import assert_same_run, steps_in

ADDR_A, ADDR_B = "10.231.0.1", "10.231.0.2"
INJECT = Path(__file__).parent / "faults" / "inject"
MMG_COSIM = Path(sys.executable).with_name("mmg-cosim")
STEP_S = 3600


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@dataclass
class Hosts:
    """Two namespaces ``a`` and ``b``; the processes started in them (each started by ``exec_in``)."""

    a: str
    b: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def exec_in(self, ns: str, args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """``args`` run in namespace ``ns``: stderr to ``log``, stdout to a pipe if it is a run (its result)."""
        with log.open("w") as err:
            stdout = subprocess.PIPE if args[0] == str(MMG_COSIM) else err
            proc = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdout=stdout, stderr=err, text=True, env=env)
        self.procs.append(proc)
        return proc

    def pids(self, ns: str) -> list[int]:
        return [int(p) for p in _ip("netns", "pids", ns).stdout.split()]


def _build(a: str, b: str, tag: str) -> None:
    """Both namespaces, the veth pair between them (its ends made inside them), addresses, links up."""
    for ns in (a, b):
        r = _ip("netns", "add", ns)
        if r.returncode != 0:
            pytest.skip(f"ip netns add is not permitted here: {r.stderr.strip()}")
    steps = [
        ["-n", a, "link", "add", f"va{tag}", "type", "veth", "peer", "name", f"vb{tag}", "netns", b],
        ["-n", a, "addr", "add", f"{ADDR_A}/24", "dev", f"va{tag}"],
        ["-n", b, "addr", "add", f"{ADDR_B}/24", "dev", f"vb{tag}"],
        *(["-n", ns, "link", "set", dev, "up"] for ns, dev in ((a, f"va{tag}"), (b, f"vb{tag}"), (a, "lo"), (b, "lo"))),
    ]
    for step in steps:
        r = _ip(*step)
        assert r.returncode == 0, f"ip {' '.join(step)}: {r.stderr}"


def _tear_down(hosts: Hosts) -> None:
    """Every process started in the namespaces, then the namespaces (and with them the veth pair)."""
    for proc in hosts.procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    for ns in (hosts.a, hosts.b):
        for pid in hosts.pids(ns):  # only ours: the namespaces are this test's
            os.kill(pid, signal.SIGKILL)
        _ip("netns", "del", ns)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    if shutil.which("ip") is None:
        pytest.skip("iproute2's ip is not installed")
    tag = str(os.getpid())
    h = Hosts(f"mmg-a{tag}", f"mmg-b{tag}")
    try:
        _build(h.a, h.b, tag)
        yield h
    finally:
        _tear_down(h)
    left = _ip("netns", "list").stdout
    assert h.a not in left and h.b not in left, left


def _start_remote(
    hosts: Hosts, sims: dict[str, tuple[str, int]], logs: Path, env: dict[str, str] | None = None
) -> dict[str, subprocess.Popen[str]]:
    """Each simulator (sim_config name -> (module, port)) started on host A as a user would (the run, started
    right after, tries again while one does not listen yet)."""
    return {
        name: hosts.exec_in(
            hosts.a, [sys.executable, "-m", module, f"{ADDR_A}:{port}", "--remote"], logs / f"{name}.log", env
        )
        for name, (module, port) in sims.items()
    }


def _run_args(out: Path, sets: list[str]) -> list[str]:
    args = [str(MMG_COSIM), "run", "ieee33_3mg", "--strategy", "rule_based", "--days", "1", "--quiet", "--json"]
    return [*args, "--out", str(out), *(a for s in sets for a in ("--set", s))]


def _connect(sims: dict[str, tuple[str, int]]) -> list[str]:
    return [f"run.connect.{name}={ADDR_A}:{port}" for name, (_, port) in sims.items()]


def test_a_run_on_host_b_with_its_simulators_on_host_a_is_the_in_process_run(
    hosts: Hosts, default_run: RunResult, tmp_path: Path
) -> None:
    sims = {
        "Grid": ("sims.grid", 5001),
        "Profiles": ("sims.profiles", 5002),
        "EMS-1": ("ems_controllers.rule_based.sim", 5003),
        "EMS-2": ("ems_controllers.rule_based.sim", 5004),
    }
    remote = _start_remote(hosts, sims, tmp_path)
    out = tmp_path / "multihost.h5"
    run = hosts.exec_in(hosts.b, _run_args(out, ["run.processes=2", *_connect(sims)]), tmp_path / "run.log")
    stdout, _ = run.communicate(timeout=300)
    assert run.returncode == 0, (tmp_path / "run.log").read_text()[-3000:]
    for name, proc in remote.items():  # the run's end stops them
        assert proc.wait(timeout=30) == 0, (tmp_path / f"{name}.log").read_text()[-2000:]
    assert hosts.pids(hosts.a) == [] and hosts.pids(hosts.b) == []
    assert_same_run(default_run.path, out, json.loads(stdout))
    sids = {pm["ems"].split(".")[0] for pm in read_attrs(out)["entity_map"]["parties"].values()}
    assert sids == {"EMS-1-0", "EMS-2-0"}


def _kill_when_hung(run: subprocess.Popen[str], grid: subprocess.Popen[str], partial: Path, at_step: int) -> float:
    """SIGKILL the grid once the run recorded ``at_step`` steps (the grid hangs in the next); the time."""
    deadline = time.monotonic() + 240
    while steps_in(partial) < at_step:
        assert run.poll() is None, "the run ended before the grid hung"
        assert time.monotonic() < deadline, "the run did not reach the step in time"
        time.sleep(0.2)
    time.sleep(1.0)  # the grid is in its step now
    grid.kill()
    return time.monotonic()


@pytest.mark.slow  # about 25 s: with the run above, past the default run's budget
def test_a_simulator_killed_on_host_a_fails_the_run_on_host_b_naming_it(hosts: Hosts, tmp_path: Path) -> None:
    at_step, timeout_s = 3, 20
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")])}
    env["MMG_FAULT"] = f"sims.grid:GridSim:hang:{at_step * STEP_S}"
    sims = {"Grid": ("sims.grid", 5001)}
    grid = _start_remote(hosts, sims, tmp_path, env)["Grid"]
    out = tmp_path / "killed.h5"
    sets = ["run.recorder_buffer_steps=1", f"run.step_timeout_s={timeout_s}", *_connect(sims)]
    run = hosts.exec_in(hosts.b, _run_args(out, sets), tmp_path / "run.log")
    killed_at = _kill_when_hung(run, grid, out.with_name("killed.partial.h5"), at_step)
    run.communicate(timeout=120)
    ended_in = time.monotonic() - killed_at
    log = (tmp_path / "run.log").read_text()
    assert run.returncode == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert ended_in < timeout_s, f"the run took {ended_in:.1f} s to notice"
    assert hosts.pids(hosts.a) == [] and hosts.pids(hosts.b) == []
    attrs = read_attrs(out.with_name("killed.failed.h5"))
    assert int(attrs["n_steps_completed"]) == at_step and not out.exists()
    words = f"simulator Grid (sims.grid:GridSim at {ADDR_A}:5001) closed its connection"
    assert words in str(attrs["run_error"]), attrs["run_error"]


def test_a_simulator_that_cannot_be_reached_fails_its_start_saying_how_to_start_it() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    starter = Supervisor(step_timeout_s=5).connector("Grid", "sims.grid:GridSim", f"127.0.0.1:{port}")
    no_world: Any = None  # the starter fails before it would hand anything to mosaik
    config: Any = {"start_timeout": 1.0}
    t0 = time.monotonic()
    with pytest.raises(SimulatorFailed) as info:
        asyncio.run(starter.start("Grid-0", no_world, config))
    assert 0.7 <= time.monotonic() - t0 < 5, "it tries again while refused, until the start timeout"
    words = f"simulator Grid (sims.grid:GridSim at 127.0.0.1:{port}) cannot be reached (ConnectionRefusedError"
    assert words in str(info.value)
    assert f"start it there: python -m sims.grid 127.0.0.1:{port} --remote" in str(info.value)
