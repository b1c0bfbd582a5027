"""``mmg-cosim sweep``: a grid of runs as independent mosaik worlds on a local Dask cluster, each writing its
own HDF5 file, a failed run recorded while the others go on, one summary table (CSV and the same typed in
Parquet) and the spread's figure, and a sweep that resumes without running a completed run again. The same
sweep on a Dask cluster of the user's: tests/test_sweep_cluster.py."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from scenarios.cli import main
from scenarios.sweep import SUMMARY_FLOATS, SUMMARY_INTS, SweepRun, parse_vary, plan_runs, run_one
from sims.record_reader import read_attrs, read_kpis

pytestmark = pytest.mark.xdist_group("sweep")

FAILING = "tests.helpers.failing_ems:KPI_FAILING"


def assert_parquet_is_the_csv(out: Path) -> pd.DataFrame:
    """``summary.parquet`` holds ``summary.csv``'s rows and columns, typed: int64 and float64 numbers (NaN
    where the CSV has nothing), strings for the rest; returns it."""
    table = pd.read_parquet(out / "summary.parquet")
    text = pd.read_csv(out / "summary.csv", dtype=str, keep_default_na=False)
    expected = text.copy()
    for col in SUMMARY_INTS:
        expected[col] = text[col].astype("int64")
    for col in SUMMARY_FLOATS:
        expected[col] = pd.Series([math.nan if v == "" else float(v) for v in text[col]], dtype="float64")
    assert {col: str(table[col].dtype) for col in (*SUMMARY_INTS, *SUMMARY_FLOATS)} == {
        **dict.fromkeys(SUMMARY_INTS, "int64"),
        **dict.fromkeys(SUMMARY_FLOATS, "float64"),
    }
    pd.testing.assert_frame_equal(table, expected)
    return table


def test_the_grid_is_every_combination_with_its_own_file() -> None:
    runs = plan_runs(["a", "b"], [1, 2, 3], [0.0, 0.1], parse_vary(["grid.feeder_load_scale=0.8,1.2"]), ["x.y=1"])
    assert len(runs) == 2 * 3 * 2 * 2
    assert len({r.run_id for r in runs}) == len(runs)
    r = runs[0]
    assert r.settings() == ["scenario.seed=1", "forecast.error_std=0", "x.y=1", "grid.feeder_load_scale=0.8"]
    assert SweepRun("m.n:X", 1, None).run_id == "m.n_X-seed1"  # no ':' or '/' in a file name


@pytest.mark.parametrize("bad", ["novalue", "=1,2", "a.b="])
def test_a_malformed_axis_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match="--vary"):
        parse_vary([bad])


def test_repeated_values_would_collide_and_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        plan_runs(["a"], [1, 1], [None])


def test_bad_input_exits_2_before_any_run(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code = main(["sweep", "--strategies", "rule_based", "--vary", "forecast.error_std=-1", "--out-dir", str(tmp_path)])
    assert code == 2
    assert "forecast.error_std" in capfd.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_sweep_runs_records_a_failure_and_resumes(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Two runs on two workers at once, each with its EMS in a process of its own (their sockets must not
    collide): one completes, one fails (its KPIs raise); exit 1, one strict JSON document, the summary
    and the figure. Asked again, the completed run is read back from its file, not run."""
    out = tmp_path / "sweep"
    args = ["sweep", "--strategies", f"rule_based,{FAILING}", "--seeds", "3", "--days", "1"]
    args += ["--set", "run.separate_processes=['ems']", "--out-dir", str(out), "--workers", "2", "--json"]
    code = main(args)
    doc = json.loads(capfd.readouterr().out)
    assert code == 1
    by_strategy = {r["strategy"]: r for r in doc["runs"]}
    ok, failed = by_strategy["rule_based"], by_strategy[FAILING]
    assert ok["status"] == "ok" and ok["total_cost"] != ""
    assert failed["status"] == "failed" and "KPIs failed" in failed["error"]
    assert Path(failed["path"]).name.endswith(".failed.h5") and Path(failed["path"]).exists()
    path = Path(ok["path"])
    run = SweepRun("rule_based", 3, None, ("run.separate_processes=['ems']",))
    assert path == out / "runs" / f"{run.run_id}.h5" and path.name.startswith("rule_based-seed3-")
    assert read_attrs(path)["n_steps_completed"] == 24
    assert read_kpis(path)["total_cost"] == pytest.approx(ok["total_cost"])
    with (out / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["status"] for r in rows) == ["failed", "ok"]
    assert all(r["worker"].startswith("tcp://127.0.0.1:") for r in rows)  # the local cluster's workers
    table = assert_parquet_is_the_csv(out)
    assert table.set_index("strategy")["total_cost"].isna().to_dict() == {"rule_based": False, FAILING: True}
    assert (out / "spread.png").stat().st_size > 10_000
    again = run_one(run, "ieee33_3mg", None, str(out), 1)
    assert again.status == "resumed" and again.kpis["total_cost"] == pytest.approx(ok["total_cost"])
