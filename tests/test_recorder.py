"""Tests of sims.recorder and sims.record_reader: HDF5 layout, gaps, value kinds, messages, KPIs, crash safety,
a mosaik world."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, cast, override

import h5py
import mosaik
import mosaik_api_v3
import numpy as np
import pytest
from mosaik_api_v3 import MosaikProxy
from mosaik_api_v3.types import CreateResult, InputData, ModelName, OutputData, OutputRequest, Time

from sims.record_reader import (
    open_run,
    read_attrs,
    read_kpis,
    read_messages,
    read_plans,
    read_relations,
    read_series,
)
from sims.recorder import RecorderSim, write_kpis

REPO = Path(__file__).resolve().parents[1]
STEP = 3600

# what ``record`` feeds the recorder: {step number: {attr: {src_full_id: value}}}
Steps = dict[int, dict[str, dict[str, Any]]]


def record(path: Path, steps: Steps, **init_kw: Any) -> RecorderSim:
    """Drive a RecorderSim directly. ``steps``: {step number: {attr: {src_full_id: value}}}."""
    sim = RecorderSim()
    sim.init("Rec", step_size=STEP, path=str(path), **init_kw)
    assert sim.create(1, "Recorder") == [{"eid": "Recorder", "type": "Recorder"}]
    for k in sorted(steps):
        assert sim.step(k * STEP, {"Recorder": steps[k]}, 0) == (k + 1) * STEP
    sim.finalize()
    return sim


def test_layout_and_root_attrs(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "run.h5"  # parents are created
    cfg = {"strategy": {"name": "central"}, "mgs": [1, 2]}
    steps = {
        k: {"p_mw": {"Grid-0.Load-1": 0.5 * k}, "vm_pu": {"Grid-0.Bus-1": 1.0, "Grid-0.Bus-2": 0.99}} for k in range(5)
    }
    record(
        path,
        steps,
        attrs={
            "scenario": "ieee33",
            "strategy": "central",
            "start": "2016-01-01 00:00:00",
            "config": cfg,
            "seed": 3,
            "skip_me": None,
        },
        n_steps=5,
    )
    with h5py.File(path, "r") as f:
        assert set(f) == {"Series", "Plans", "Pareto", "Messages", "Relations"}
        assert set(f["Series"]) == {"Grid-0.Load-1", "Grid-0.Bus-1", "Grid-0.Bus-2"}
        ds = f["Series/Grid-0.Load-1/p_mw"]
        assert ds.dtype == np.float64 and ds.shape == (5,) and ds.maxshape == (None,) and ds.chunks
        assert f["Series"].attrs["step_s"] == STEP
        assert f.attrs["config"] == '{"mgs": [1, 2], "strategy": {"name": "central"}}'  # JSON string
        assert "skip_me" not in f.attrs
    attrs = read_attrs(path)
    assert attrs["scenario"] == "ieee33" and attrs["strategy"] == "central" and attrs["seed"] == 3
    assert attrs["config"] == cfg  # decoded by the read helper
    assert attrs["step_s"] == STEP and attrs["n_steps"] == 5 and attrs["n_steps_completed"] == 5
    assert isinstance(attrs["package_version"], str) and attrs["created_utc"].endswith("+00:00")
    series = read_series(path)
    np.testing.assert_array_equal(series[("Grid-0.Load-1", "p_mw")], [0, 0.5, 1, 1.5, 2])
    np.testing.assert_array_equal(series[("Grid-0.Bus-2", "vm_pu")], [0.99] * 5)


def test_late_start_skipped_steps_and_recorder_gaps_are_nan(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    steps: Steps = {}
    for k in [0, 1, 2, 3, 4, 7, 8, 9]:  # the recorder itself is not stepped at 5 and 6
        steps[k] = {"a": {"S.x": float(k)}}
        if k >= 3:
            steps[k]["late"] = {"S.y": float(k)}
        if k % 2 == 0:
            steps[k]["even"] = {"S.z": k}  # ints are stored as float64
        if k == 8:
            steps[k]["a"]["S.w"] = None  # None never seen with a value: no series
    record(path, steps, buffer_steps=2)
    s = read_series(path)
    nan = math.nan
    np.testing.assert_array_equal(s[("S.x", "a")], [0, 1, 2, 3, 4, nan, nan, 7, 8, 9])
    np.testing.assert_array_equal(s[("S.y", "late")], [nan, nan, nan, 3, 4, nan, nan, 7, 8, 9])
    np.testing.assert_array_equal(s[("S.z", "even")], [0, nan, 2, nan, 4, nan, nan, nan, 8, nan])
    assert ("S.w", "a") not in s
    assert s[("S.z", "even")].dtype == np.float64


def test_many_steps_across_chunk_windows_match(tmp_path: Path) -> None:
    """600 steps with random gaps and a jump of 1000 steps, buffer 7: every row as sent."""
    rng = np.random.default_rng(1)
    n = 600
    expected = {"A.0": np.full(n + 1000, np.nan), "B.0": np.full(n + 1000, np.nan)}
    steps: Steps = {}
    for k in [*range(n), n + 999]:
        steps[k] = {"v": {}}
        for src, exp in expected.items():
            if rng.random() < 0.7:
                val = float(rng.normal())
                steps[k]["v"][src] = val
                exp[k] = val
    record(tmp_path / "run.h5", steps, buffer_steps=7)
    s = read_series(tmp_path / "run.h5")
    for src, exp in expected.items():
        np.testing.assert_array_equal(s[(src, "v")], exp)
    with h5py.File(tmp_path / "run.h5", "r") as f:  # after finalize: exact lengths in the file
        assert f["Series/A.0/v"].shape == (n + 1000,)
        assert f.attrs["n_steps_completed"] == n + 1000


def test_bools_and_numpy_scalars_are_float64(tmp_path: Path) -> None:
    steps: Steps = {
        0: {"closed": {"G.sw": True}, "n": {"G.g": np.int64(3)}},
        1: {"closed": {"G.sw": False}, "n": {"G.g": np.float32(2.5)}},
    }
    record(tmp_path / "run.h5", steps)
    s = read_series(tmp_path / "run.h5")
    np.testing.assert_array_equal(s[("G.sw", "closed")], [1.0, 0.0])
    np.testing.assert_array_equal(s[("G.g", "n")], [3.0, 2.5])


def test_list_valued_attributes_are_2d(tmp_path: Path) -> None:
    steps: Steps = {
        0: {"forecast_p_mw": {"P.pv": [1.0, 2.0, 3.0]}},
        2: {"forecast_p_mw": {"P.pv": np.array([4.0, 5.0, 6.0])}},
        3: {"forecast_p_mw": {"P.pv": [7.0, None]}},
    }  # shorter: padded with NaN
    record(tmp_path / "run.h5", steps, buffer_steps=1)
    arr = read_series(tmp_path / "run.h5")[("P.pv", "forecast_p_mw")]
    nan = math.nan
    np.testing.assert_array_equal(arr, [[1, 2, 3], [nan, nan, nan], [4, 5, 6], [7, nan, nan]])


def test_longer_list_is_an_error(tmp_path: Path) -> None:
    sim = RecorderSim()
    sim.init("Rec", path=str(tmp_path / "run.h5"))
    sim.create(1, "Recorder")
    sim.step(0, {"Recorder": {"f": {"P.pv": [1.0, 2.0]}}}, 0)
    with pytest.raises(ValueError, match="first seen with 2 elements, now got 3"):
        sim.step(STEP, {"Recorder": {"f": {"P.pv": [1.0, 2.0, 3.0]}}}, 0)
    sim.step(2 * STEP, {"Recorder": {"g": {"P.pv": 1.0}}}, 0)
    with pytest.raises(TypeError, match="holds numbers"):
        sim.step(3 * STEP, {"Recorder": {"g": {"P.pv": "oops"}}}, 0)
    with pytest.raises(TypeError, match="holds lists"):
        sim.step(3 * STEP, {"Recorder": {"f": {"P.pv": 2.0}}}, 0)
    sim.finalize()


def _raw(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of ``Series/`` and ``Plans/`` as stored."""
    with h5py.File(path, "r") as f:
        return {
            f"{top}/{name}/{attr}": f[top][name][attr][()]
            for top in ("Series", "Plans")
            for name in f[top]
            for attr in f[top][name]
        }


def test_column_inputs_are_recorded_as_each_entitys_own(tmp_path: Path) -> None:
    """A column input (param ``columns``: element j is entity j's value) gives the very datasets the
    entities' own inputs give, across blocks and chunk windows: rows not recorded (None) have none, a
    missing value (None, or a None element) is NaN, bools are 0 / 1, an entity's own input of the same
    attribute lands in the same dataset."""
    rng = np.random.default_rng(4)
    n = 300
    ids = ["G.Bus-0", "G.Bus-1", "G.Bus-2", "G.Bus-3"]
    recorded = [ids[0], None, ids[2], ids[3]]  # Bus-1 is not recorded
    one_by_one: Steps = {}
    columns: Steps = {}
    for k in [*range(n), n + 300]:  # a jump past a chunk window
        col: list[Any] = rng.normal(size=len(ids)).tolist()
        if k % 7 == 0:
            col[2] = None
        if k % 11 == 0:
            col[3] = bool(k % 2)
        one_by_one[k] = {"vm_pu": {i: v for i, v in zip(ids, col, strict=True) if i in recorded}}
        columns[k] = {"Bus.vm_pu": {"G.Grid-0": None if k == 5 else col}, "p_mw": {"G.Load-0": float(k)}}
        one_by_one[k]["p_mw"] = {"G.Load-0": float(k)}
        if k == 5:  # no value at all in this step
            one_by_one[k]["vm_pu"] = {i: None for i in recorded if i}
    for k in (8, 9):  # an entity's own input of the attribute: the same column
        columns[k]["vm_pu"] = {"G.Bus-0": 42.0 + k}
        one_by_one[k]["vm_pu"]["G.Bus-0"] = 42.0 + k
    spec = {"G.Grid-0": {"Bus.vm_pu": ["vm_pu", recorded]}}
    record(tmp_path / "one.h5", one_by_one, buffer_steps=3)
    record(tmp_path / "col.h5", columns, buffer_steps=3, columns=spec)
    want, got = _raw(tmp_path / "one.h5"), _raw(tmp_path / "col.h5")
    assert (
        set(got)
        == set(want)
        == {"Series/G.Bus-0/vm_pu", "Series/G.Bus-2/vm_pu", "Series/G.Bus-3/vm_pu", "Series/G.Load-0/p_mw"}
    )
    for name, values in want.items():
        np.testing.assert_array_equal(got[name], values, err_msg=name)
    s = read_series(tmp_path / "col.h5")
    assert s[("G.Bus-0", "vm_pu")][9] == 51.0 and math.isnan(s[("G.Bus-2", "vm_pu")][7])
    assert math.isnan(s[("G.Bus-3", "vm_pu")][5]) and s[("G.Bus-3", "vm_pu")][11] == 1.0


def test_column_input_errors(tmp_path: Path) -> None:
    sim = RecorderSim()
    sim.init(
        "Rec", path=str(tmp_path / "run.h5"), columns={"G.Grid-0": {"Bus.vm_pu": ["vm_pu", ["G.Bus-0", "G.Bus-1"]]}}
    )
    sim.create(1, "Recorder")
    sim.step(0, {"Recorder": {"Bus.vm_pu": {"G.Grid-0": [1.0, 0.9]}}}, 0)
    with pytest.raises(ValueError, match="has 2 elements, got shape"):
        sim.step(STEP, {"Recorder": {"Bus.vm_pu": {"G.Grid-0": [1.0, 0.9, 0.8]}}}, 0)
    with pytest.raises(TypeError, match="holds lists of numbers"):
        sim.step(STEP, {"Recorder": {"Bus.vm_pu": {"G.Grid-0": "oops"}}}, 0)
    # a source the param does not name: recorded as a list of its own
    sim.step(STEP, {"Recorder": {"Bus.vm_pu": {"H.Grid-0": [1.0, 0.9]}}}, 0)
    sim.finalize()
    s = read_series(tmp_path / "run.h5")
    np.testing.assert_array_equal(s[("G.Bus-1", "vm_pu")], [0.9, np.nan])
    assert s[("H.Grid-0", "Bus.vm_pu")].shape == (2, 2)


def test_rare_list_values_across_blocks_and_windows(tmp_path: Path) -> None:
    """A list that arrives now and then (a daily forecast), None in between: each block writes a window's
    chunk only when a value arrived since the last block; every row reads as sent."""
    steps: Steps = {}
    for k in range(700):
        steps[k] = {"forecast_p_mw": {"P.pv": [float(k), float(k + 1)] if k % 40 == 3 else None}, "x": {"P.pv": 1.0}}
    record(tmp_path / "run.h5", steps, buffer_steps=5)
    arr = read_series(tmp_path / "run.h5")[("P.pv", "forecast_p_mw")]
    assert arr.shape == (700, 2)
    for k in range(700):
        if k % 40 == 3:
            np.testing.assert_array_equal(arr[k], [k, k + 1])
        else:
            assert np.isnan(arr[k]).all(), k


def test_strings_with_gaps(tmp_path: Path) -> None:
    steps: Steps = {k: {"status": {"EMS.mg1": "ok" if k != 4 else "infeasible: no diesel"}} for k in range(2, 6)}
    steps[0] = {"p": {"X.y": 1.0}}
    steps[6] = {"p": {"X.y": 1.0}}
    steps[7] = {"status": {"EMS.mg1": {"why": "dict stored as JSON"}}}
    record(tmp_path / "run.h5", steps, buffer_steps=3)
    arr = read_series(tmp_path / "run.h5")[("EMS.mg1", "status")]
    assert list(arr) == ["", "", "ok", "ok", "infeasible: no diesel", "ok", "", '{"why": "dict stored as JSON"}']
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert h5py.check_string_dtype(f["Series/EMS.mg1/status"].dtype).encoding == "utf-8"


def test_plan_attributes_go_to_plans(tmp_path: Path) -> None:
    plan = [0.1 * i for i in range(24)]
    steps: Steps = {0: {"plan_p_mw": {"EMS-0.mg1": plan}, "p_mw": {"EMS-0.mg1": 0.1}}, 1: {"p_mw": {"EMS-0.mg1": 0.2}}}
    record(tmp_path / "run.h5", steps)
    assert ("EMS-0.mg1", "plan_p_mw") not in read_series(tmp_path / "run.h5")
    plans = read_plans(tmp_path / "run.h5")
    arr = plans[("EMS-0.mg1", "plan_p_mw")]
    assert arr.shape == (2, 24)
    np.testing.assert_array_equal(arr[0], plan)
    assert np.isnan(arr[1]).all()
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert "Plans/EMS-0.mg1/plan_p_mw" in f


def test_messages(tmp_path: Path) -> None:
    steps: Steps = {
        0: {
            "messages": {
                "Coord.c": [
                    {"sender": "mg1", "receiver": "coord", "kind": "bid", "values": [1, 2.5]},
                    {"sender": "mg2", "receiver": "coord", "kind": "enc_bid", "ciphertext_bytes": 512, "t": 10.0},
                ]
            }
        },
        1: {"messages": {"Coord.c": []}},
        3: {"messages": {"Coord.c": [{"sender": "coord", "receiver": "mg1", "kind": "price", "values": []}]}},
    }
    record(tmp_path / "run.h5", steps, buffer_steps=1)
    msgs = read_messages(tmp_path / "run.h5")
    assert msgs == [
        {"t": 0.0, "sender": "mg1", "receiver": "coord", "kind": "bid", "values": [1.0, 2.5]},
        {"t": 10.0, "sender": "mg2", "receiver": "coord", "kind": "enc_bid", "ciphertext_bytes": 512},
        {"t": 3 * STEP, "sender": "coord", "receiver": "mg1", "kind": "price", "values": []},
    ]
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert f["Messages/n_values"][...].tolist() == [2, -1, 0]
        assert f["Messages/ciphertext_bytes"][...].tolist() == [-1, 512, -1]
    assert "messages" not in {attr for _, attr in read_series(tmp_path / "run.h5")}


def test_write_kpis_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    record(path, {0: {"p": {"A.b": 1.0}}})
    kpis = {
        "total_cost": 1234.5,
        "n_pf_failures": 0,
        "strategy": "central",
        "worst_vm_pu": None,
        "cost_by_mg": {"mg1": 100.0, "mg2": -20.0, "DN": {"losses": 3.0}},
        "solve_times_s": [0.1, 0.2],
        "voltage_violations": np.int64(2),
    }
    write_kpis(path, kpis)
    write_kpis(path, kpis)  # replaces, does not fail
    got = read_kpis(path)
    assert got["cost_by_mg"] == {"mg1": 100.0, "mg2": -20.0, "DN": {"losses": 3.0}}
    assert got["total_cost"] == 1234.5 and got["voltage_violations"] == 2 and got["worst_vm_pu"] is None
    with h5py.File(path, "r") as f:
        g = f["KPIs"]
        assert g.attrs["total_cost"] == 1234.5 and g.attrs["strategy"] == "central"
        assert math.isnan(g.attrs["worst_vm_pu"])
        assert g["cost_by_mg"].attrs["mg2"] == -20.0 and g["cost_by_mg/DN"].attrs["losses"] == 3.0
        np.testing.assert_array_equal(g["solve_times_s"][...], [0.1, 0.2])
    run = open_run(path)
    assert run.kpis == got and run.n_steps == 1 and run.step_s == STEP
    assert read_kpis(tmp_path / "run.h5") == open_run(path).kpis


def test_relations_from_entity_graph(tmp_path: Path) -> None:
    """The recorder asks mosaik for its own neighbours, then for theirs, and stores every edge once."""

    class FakeMosaik:
        def get_related_entities(self, entities: Any = None) -> Any:
            return ("request", entities)  # what mosaik would await

    sim = RecorderSim()
    sim.init("Rec-0", path=str(tmp_path / "run.h5"))
    sim.create(1, "Recorder")
    list(sim.setup_done())  # without a mosaik proxy: nothing, no error
    # the recorder drives mosaik-api-v3's generator protocol (it yields the request object), which
    # MosaikProxy's async methods do not describe: the fake stands in for the proxy
    sim.mosaik = cast(MosaikProxy, FakeMosaik())
    gen = sim.setup_done()
    assert next(gen) == ("request", "Rec-0.Recorder")
    fed_by = {"Src-0.a": {"type": "A"}, "Grid-0.Bus-1": {"type": "Bus"}}
    assert gen.send(fed_by) == ("request", ["Grid-0.Bus-1", "Src-0.a"])
    related = {
        "Src-0.a": {"Rec-0.Recorder": {"type": "Recorder"}, "Grid-0.Bus-1": {"type": "Bus"}},
        "Grid-0.Bus-1": {"Rec-0.Recorder": {"type": "Recorder"}, "Src-0.a": {"type": "A"}, "EMS-0.x": {"type": "X"}},
    }
    with pytest.raises(StopIteration):
        gen.send(related)
    sim.finalize()
    edges = {frozenset(e) for e in read_relations(tmp_path / "run.h5")}
    assert edges == {
        frozenset(("Src-0.a", "Rec-0.Recorder")),
        frozenset(("Grid-0.Bus-1", "Rec-0.Recorder")),
        frozenset(("Src-0.a", "Grid-0.Bus-1")),
        frozenset(("Grid-0.Bus-1", "EMS-0.x")),
    }
    assert len(read_relations(tmp_path / "run.h5")) == 4


def test_ids_with_slashes_are_escaped(tmp_path: Path) -> None:
    record(tmp_path / "run.h5", {0: {"p/q": {"S-0.a/b": 1.0}}})
    assert read_series(tmp_path / "run.h5") == {("S-0.a/b", "p/q"): pytest.approx(np.array([1.0]))}


CRASH_CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from sims.recorder import RecorderSim
    sim = RecorderSim()
    sim.init("Rec", step_size=3600, path={path!r}, buffer_steps=5)
    sim.create(1, "Recorder")
    last = 0
    for k in range(1_000_000):
        inputs = {{"Recorder": {{
            "v": {{"A.0": float(k)}},
            "f": {{"A.0": [float(k), float(k) + 0.5]}},
            "status": {{"A.0": "s%d" % k}},
        }}}}
        if k % 3 == 0:
            inputs["Recorder"]["messages"] = {{"A.0": [{{"sender": "a", "receiver": "b", "kind": "k",
                                                         "values": [float(k)]}}]}}
        sim.step(k * 3600, inputs, 0)
        if sim.writer.flushed != last:
            last = sim.writer.flushed
            print(last, flush=True)
        time.sleep(0.0005)
""")


def test_sigkill_leaves_readable_file_with_flushed_steps(tmp_path: Path) -> None:
    path = tmp_path / "crash.h5"
    script = tmp_path / "child.py"
    script.write_text(CRASH_CHILD.format(repo=str(REPO), path=str(path)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    seen = 0
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        while seen < 400 and time.monotonic() < deadline:  # past the first chunk window (256 rows)
            line = proc.stdout.readline()
            assert line, "child ended early"
            seen = int(line)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert seen >= 400 and seen % 5 == 0
    with h5py.File(path, "r") as f:  # a plain open, no SWMR, no h5clear
        n = int(f.attrs["n_steps_completed"])
        assert n >= seen
        assert f["Series/A.0/v"].shape[0] >= n
    run = open_run(path)
    assert run.n_steps == n
    ks = np.arange(n, dtype=float)
    np.testing.assert_array_equal(run.series[("A.0", "v")], ks)
    np.testing.assert_array_equal(run.series[("A.0", "f")], np.column_stack([ks, ks + 0.5]))
    assert list(run.series[("A.0", "status")]) == [f"s{k}" for k in range(n)]
    assert [m["values"][0] for m in run.messages] == [float(k) for k in range(0, n, 3)]


# ---- a small real mosaik world ----------------------------------------------------------------------

SRC_META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Src": {"public": True, "params": [], "attrs": ["p_mw", "forecast_p_mw", "status", "plan_p_mw", "messages"]}
    },
}


class SourceSim(mosaik_api_v3.Simulator):
    """Emits, for entity i at step k: p_mw = i + k, a 3-value forecast, a status, a plan and a message."""

    def __init__(self) -> None:
        super().__init__(SRC_META)
        self.n = 0
        self.time = 0

    @override
    def create(self, num: int, model: ModelName, **params: Any) -> list[CreateResult]:
        out: list[CreateResult] = [{"eid": f"src{self.n + i}", "type": model} for i in range(num)]
        self.n += num
        return out

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time:
        self.time = time
        return time + STEP

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        k = self.time // STEP
        data: dict[str, Any] = {}
        for eid, attrs in outputs.items():
            i = int(eid[3:])
            values = {
                "p_mw": float(i + k),
                "forecast_p_mw": [float(k), float(k + 1), float(k + 2)],
                "status": "ok" if k % 2 == 0 else "fallback",
                "plan_p_mw": [float(i)] * 4,
                "messages": [{"sender": eid, "receiver": "coord", "kind": "bid", "values": [float(k)]}],
            }
            data[eid] = {a: values[a] for a in attrs}
        return data


def test_mosaik_world(tmp_path: Path) -> None:
    path = tmp_path / "world.h5"
    world = mosaik.World(
        {"Src": {"python": "tests.test_recorder:SourceSim"}, "Rec": {"python": "sims.recorder:RecorderSim"}}
    )
    src_sim = world.start("Src", step_size=STEP)
    rec_sim = world.start(
        "Rec", step_size=STEP, path=str(path), buffer_steps=2, n_steps=5, attrs={"scenario": "test", "config": {"x": 1}}
    )
    srcs = src_sim.Src.create(2)
    rec = rec_sim.Recorder()
    for s in srcs:
        world.connect(s, rec, "p_mw", "forecast_p_mw", "status", "plan_p_mw", "messages")
    world.run(until=5 * STEP, print_progress=False)

    run = open_run(path)
    assert run.attrs["scenario"] == "test" and run.attrs["config"] == {"x": 1}
    assert run.n_steps == 5
    np.testing.assert_array_equal(run.series[("Src-0.src1", "p_mw")], [1, 2, 3, 4, 5])
    assert run.series[("Src-0.src0", "forecast_p_mw")].shape == (5, 3)
    assert list(run.series[("Src-0.src0", "status")]) == ["ok", "fallback", "ok", "fallback", "ok"]
    np.testing.assert_array_equal(run.plans[("Src-0.src1", "plan_p_mw")], np.ones((5, 4)))
    assert len(run.messages) == 10 and {m["sender"] for m in run.messages} == {"src0", "src1"}
    assert ("Src-0.src0", "Rec-0.Recorder") in run.relations


def test_mosaik_world_recorder_in_own_process(tmp_path: Path) -> None:
    """The recorder as a separate process (``python -m sims.recorder``): same file, relations over TCP."""
    path = tmp_path / "proc.h5"
    world = mosaik.World(
        {
            "Src": {"python": "tests.test_recorder:SourceSim"},
            "Rec": {"cmd": "%(python)s -m sims.recorder %(addr)s", "cwd": str(REPO)},
        }
    )
    src = world.start("Src", step_size=STEP).Src.create(1)[0]
    rec = world.start("Rec", step_size=STEP, path=str(path), attrs={"scenario": "proc"}).Recorder()
    world.connect(src, rec, "p_mw", "status")
    world.run(until=3 * STEP, print_progress=False)
    run = open_run(path)
    assert run.attrs["scenario"] == "proc" and run.n_steps == 3
    np.testing.assert_array_equal(run.series[("Src-0.src0", "p_mw")], [0, 1, 2])
    assert ("Src-0.src0", "Rec-0.Recorder") in run.relations
