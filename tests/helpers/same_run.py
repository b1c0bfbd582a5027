"""Two records of one scenario and strategy that must be the same run, wherever their simulators ran (in
one process, spread over processes, on another host), and the simulator processes a run left behind."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from sims.record_reader import read_attrs, read_kpis, read_series

KPIS = ("total_cost", "losses_mwh", "unserved_mwh")
PER_SIMULATOR = {"solve_time_s", "objective"}
"""Outputs that are not the same whatever an EMS simulator holds: a timing, and a planning round's objective
summed over the parties the simulator holds (see the contract's ``partitionable``)."""


def by_party(path: Path) -> dict[tuple[str, str], np.ndarray]:
    """The record's series, each EMS entity named by its party (its sim id says which simulator it was in)."""
    parties = read_attrs(path)["entity_map"]["parties"]
    name = {pm["ems"]: f"party {p}" for p, pm in parties.items()}
    return {(name.get(fid, fid), attr): v for (fid, attr), v in read_series(path).items() if attr not in PER_SIMULATOR}


def assert_same_run(one: Path, other: Path, other_kpis: dict[str, Any] | None = None) -> None:
    """The KPIs (``other_kpis``: as the run printed them; default: its record's) agree to 1e-9 relative and
    every recorded series is equal."""
    a_kpis, b_kpis = read_kpis(one), other_kpis if other_kpis is not None else read_kpis(other)
    for k in KPIS:
        assert b_kpis[k] == pytest.approx(a_kpis[k], rel=1e-9, abs=1e-12), k
    a, b = by_party(one), by_party(other)
    assert a.keys() == b.keys()
    for key, va in a.items():
        if va.dtype.kind == "f":
            np.testing.assert_array_equal(va, b[key], err_msg=str(key))
        else:
            assert (va == b[key]).all(), key


def children_of(pid: int) -> list[int]:
    """Simulator processes (``scenarios.child``) that the run in process ``pid`` started, still alive."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except (OSError, IndexError):
            continue
        ours = b"scenarios.child" in cmd and b"--parent" in cmd and cmd[cmd.index(b"--parent") + 1] == str(pid).encode()
        if ours and state != "Z":
            found.append(int(entry.name))
    return found


def assert_no_child_left(pid: int, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while children_of(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not children_of(pid), f"simulator processes of the run in process {pid} outlived it"


def steps_in(path: Path) -> int:
    """The steps a (possibly still written) record holds; 0 if it cannot be read yet."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f.attrs.get("n_steps_completed", 0))
    except (OSError, KeyError):
        return 0
