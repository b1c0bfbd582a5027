"""Local and centralized EMS in the co-simulation of ieee33_3mg, read back from their HDF5 files.

Tolerances: a plan objective is optimal within ``ems.mip_rel_gap`` (1e-3); the co-simulation's cost
also pays for network losses, which no plan models, so cost comparisons between runs allow the gap
on the plan objective plus the cost of the difference in losses at the highest price.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scenarios.config import Config
from scenarios.runner import RunResult
from sims.record_reader import read_attrs, read_messages, read_series
from tests.conftest import SHIPPED_GROUP, run_default

GAP = 1e-3


# local and centralized (1 day, defaults) are the shared runs of ieee33_3mg (tests/conftest.py's
# ``shipped_runs``): the tests of ``runs`` go to the worker that makes them (SHIPPED_GROUP), which makes the
# shrinking-horizon run beside them; the others go to whichever worker is free.
SHIPPED = pytest.mark.xdist_group(SHIPPED_GROUP)


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, shipped_runs: dict[tuple[str, str], RunResult]
) -> dict[str, RunResult]:
    d = tmp_path_factory.mktemp("strategies")
    return {
        "local": shipped_runs[("ieee33_3mg", "local")],
        "centralized": shipped_runs[("ieee33_3mg", "centralized")],
        "shrinking": run_default(
            d, ["ems.rolling=true", "ems.horizon='shrinking'"], name="shrink.h5", strategy="centralized"
        ),
    }


def _objective_at_0(run: RunResult) -> float:
    attrs = read_attrs(run.path)
    ems = attrs["entity_map"]["parties"]["MG1"]["ems"]
    return float(read_series(run.path)[(ems, "objective")][0])


def _tolerance(a: RunResult, b: RunResult) -> float:
    cfg = Config.model_validate(read_attrs(a.path)["config"])
    max_price = max(cfg.tariff.buy_price_per_mwh)
    obj = max(abs(_objective_at_0(a)), abs(_objective_at_0(b)))
    return GAP * obj + max_price * abs(a.kpis["losses_mwh"] - b.kpis["losses_mwh"])


@SHIPPED
def test_every_step_ran_on_an_optimal_plan(runs: dict[str, RunResult]) -> None:
    for name, run in runs.items():
        attrs = read_attrs(run.path)
        s = read_series(run.path)
        for party, pm in attrs["entity_map"]["parties"].items():
            status = s[(pm["ems"], "ems_status")]
            assert all(x == "ok" for x in status), (name, party, set(status))
        assert run.kpis["pf_failures"] == 0 and run.kpis["ems_fallback_steps"] == 0


@SHIPPED
def test_centralized_is_a_lower_bound_of_local(runs: dict[str, RunResult]) -> None:
    local, central = runs["local"], runs["centralized"]
    # the plans: one MILP over everything vs the sum of the parties' own optima (same data at t=0)
    assert _objective_at_0(central) <= _objective_at_0(local) + GAP * abs(_objective_at_0(local))
    # what happened in the co-simulation
    assert central.kpis["total_cost"] <= local.kpis["total_cost"] + _tolerance(local, central)


@SHIPPED
def test_planned_setpoints_are_what_the_grid_received(runs: dict[str, RunResult]) -> None:
    run = runs["centralized"]
    attrs = read_attrs(run.path)
    s = read_series(run.path)
    cfg = Config.model_validate(attrs["config"])
    for mg in cfg.mgs:
        pm = attrs["entity_map"]["parties"][mg.name]
        np.testing.assert_allclose(s[(pm["storage"], "p_mw")], s[(pm["ems"], "battery_p_mw")], atol=1e-7)
        np.testing.assert_allclose(s[(pm["storage"], "soc_mwh")], s[(pm["ems"], "planned_soc_mwh")], atol=1e-6)
        # with perfect forecasts the MG's measured exchange is its planned one
        np.testing.assert_allclose(-s[(pm["pcc_line"], "p_to_mw")], s[(pm["ems"], "planned_import_mw")], atol=1e-6)
        if mg.battery is not None and mg.battery.e_final_mwh is not None:
            assert s[(pm["storage"], "soc_mwh")][-1] >= mg.battery.e_final_mwh - 1e-6


@SHIPPED
def test_centralized_records_what_the_operator_saw(runs: dict[str, RunResult]) -> None:
    msgs = read_messages(runs["centralized"].path)
    sent = {(m["sender"], m["kind"]) for m in msgs if m["receiver"] == "operator"}
    for mg in ("MG1", "MG2", "MG3", "DN"):
        assert (mg, "load_forecast_p_mw") in sent
    assert any(m["sender"] == "operator" and m["kind"] == "schedule_import_mw" for m in msgs)
    assert read_messages(runs["local"].path) == [], "local MGs share nothing"


@SHIPPED
def test_shrinking_rolling_horizon_reproduces_the_day_ahead_cost(runs: dict[str, RunResult]) -> None:
    da, rolling = runs["centralized"], runs["shrinking"]
    s = read_series(rolling.path)
    ems = read_attrs(rolling.path)["entity_map"]["parties"]["MG1"]["ems"]
    assert np.count_nonzero(s[(ems, "solve_time_s")] > 0) == 24, "re-planned every hour"
    assert abs(rolling.kpis["total_cost"] - da.kpis["total_cost"]) <= _tolerance(da, rolling)


def test_infeasible_party_falls_back_alone_and_the_run_completes(tmp_path: Path) -> None:
    # MG1 cannot reach its final energy (0.2 -> 1.0 MWh at 0.01 MW): its MILP is infeasible every time.
    bad = ["mgs.MG1.battery.e_final_mwh=1.0", "mgs.MG1.battery.p_ch_max_mw=0.01"]
    local = run_default(tmp_path, bad, name="local_bad.h5", strategy="local")
    attrs = read_attrs(local.path)
    s = read_series(local.path)
    status = {p: list(s[(pm["ems"], "ems_status")]) for p, pm in attrs["entity_map"]["parties"].items()}
    assert all(x.startswith("fallback: rule (infeasible") for x in status["MG1"])
    assert all(x == "ok" for p in ("MG2", "MG3", "DN") for x in status[p])
    assert local.kpis["ems_fallback_steps"] == 24 and local.kpis["pf_failures"] == 0
    assert len(s[(attrs["entity_map"]["grid"], "pf_converged")]) == 24
    # centralized: one infeasible party makes the joint problem infeasible; everybody falls back
    central = run_default(tmp_path, bad, name="central_bad.h5", strategy="centralized")
    assert central.kpis["ems_fallback_steps"] == 24 * 4


def test_forecast_errors_day_ahead_and_rolling_side_by_side(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "scenarios.cli",
            "compare",
            "--strategies",
            "centralized,centralized:rolling=true",
            "--set",
            "forecast.error_std=0.1",
            "--json",
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    k = json.loads(r.stdout)
    da, rolling = k["centralized"], k["centralized:rolling=true"]
    for run in (da, rolling):
        for key in ("total_cost", "soc_drift_mwh_max", "exchange_deviation_mwh", "solve_time_s"):
            assert key in run
    # re-planning every hour from measured SoC and fresh forecasts tracks its own plan better
    assert rolling["exchange_deviation_mwh"] < da["exchange_deviation_mwh"]
    assert da["exchange_deviation_mwh"] > 0.5, "forecast errors must show in the exchange"
