"""Physics steps shorter than the EMS's: prices per period, the config's checks, and 15-minute runs of
ieee33_3mg read back from their HDF5 files (energy balance, intra-hour effects an hourly run hides)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ems_controllers.core.tracking import LastStep, TrackingLimits, tracking_setpoint_mw
from scenarios.config import Config, PricesCfg, per_step, periods_fit
from scenarios.runner import RunResult
from sims.record_reader import read_attrs, read_series
from tests.conftest import assert_energy_balance, run_default

DAY_DIVISORS = [d for d in range(1, 86401) if 86400 % d == 0 and d >= 60]
"""Steps (s) that divide a day, a minute or longer."""


@st.composite
def _prices_and_step(draw: st.DrawFn) -> tuple[list[float], int]:
    n = draw(st.sampled_from([1, 2, 3, 4, 6, 8, 12, 24, 48, 96]))
    period_s = 86400 // n
    step_s = draw(st.sampled_from([d for d in DAY_DIVISORS if period_s % d == 0 or d % period_s == 0]))
    values = draw(st.lists(st.floats(-500, 500, allow_nan=False), min_size=n, max_size=n))
    return values, step_s


@settings(max_examples=200, deadline=None)
@given(_prices_and_step())
def test_per_step_keeps_the_days_priced_energy(case: tuple[list[float], int]) -> None:
    """A constant 1 MW over the day costs the same at any step: sum(price * step) is the day's."""
    values, step_s = case
    out = per_step(values, step_s)
    assert len(out) == 86400 // step_s
    period_s = 86400 // len(values)
    assert math.isclose(sum(out) * step_s, sum(values) * period_s, rel_tol=1e-9, abs_tol=1e-6)
    if step_s <= period_s:  # each step takes the price of the period it lies in
        for k, v in enumerate(out):
            assert v == values[k * step_s // period_s]


def test_periods_fit_names_what_does_not() -> None:
    assert periods_fit(24, 900) is None and periods_fit(24, 7200) is None and periods_fit(96, 3600) is None
    assert "do not fit" in str(periods_fit(24, 5400))
    assert "whole seconds" in str(periods_fit(7, 900))


def test_hourly_tariff_at_15_minutes() -> None:
    prices = PricesCfg(buy_price_per_mwh=[float(h) for h in range(24)], sell_price_per_mwh=[0.0] * 24)
    buy, sell = prices.at_step(900)
    assert buy[:8] == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0] and len(sell) == 96
    np.testing.assert_allclose(prices.at_step(7200)[0], [h + 0.5 for h in range(0, 24, 2)])


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.0, 2.0),
    st.floats(0.0, 2.0),
    st.floats(-3.0, 3.0),
    st.floats(-3.0, 3.0),
    st.floats(-0.2, 0.2),
    st.floats(-2.0, 2.0),
    st.floats(-3.0, 3.0),
)
def test_tracking_keeps_the_planned_import_within_the_battery_limits(
    p_ch: float, p_dis: float, plan: float, net_demand: float, rest: float, applied: float, last_net: float
) -> None:
    """Against an MG whose import is its net demand plus its battery plus a rest that held since the last
    step (diesel, losses), the tracker's setpoint brings the import to the plan wherever its limits allow,
    and never leaves them."""
    limits = TrackingLimits(p_ch, p_dis)
    last = LastStep(last_net + applied + rest, applied, last_net)
    p = tracking_setpoint_mw(limits, 0.0, plan, net_demand, last)
    assert -p_dis - 1e-12 <= p <= p_ch + 1e-12
    if -p_dis <= plan - net_demand - rest <= p_ch:
        assert math.isclose(net_demand + p + rest, plan, abs_tol=1e-9)


def test_tracking_passes_the_schedule_without_a_plan_and_ignores_a_missing_measurement() -> None:
    limits, nan = TrackingLimits(1.0, 1.0), float("nan")
    assert tracking_setpoint_mw(limits, 0.3, nan, 0.2, LastStep(nan, nan, nan)) == 0.3
    assert tracking_setpoint_mw(limits, 0.3, 0.5, 0.2, LastStep(nan, nan, nan)) == pytest.approx(0.3)


# --- 15-minute runs of ieee33_3mg (hourly tariff and EMS), read back from their files -----------------

QUARTER = ["scenario.step_s=900"]


@pytest.fixture(scope="module")
def quarter_run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return run_default(tmp_path_factory.mktemp("quarter"), QUARTER)


def test_quarter_hour_run_with_the_hourly_tariff(quarter_run: RunResult) -> None:
    attrs = read_attrs(quarter_run.path)
    assert attrs["step_s"] == 900 and attrs["n_steps_completed"] == 96
    cfg = Config.model_validate(attrs["config"])
    assert len(cfg.tariff.buy_price_per_mwh) == 24 and cfg.ems_step_s == 3600
    s = read_series(quarter_run.path)
    ems = attrs["entity_map"]["parties"]["MG1"]["ems"]
    battery = s[(ems, "battery_p_mw")].reshape(24, 4)
    assert np.all(battery == battery[:, :1]), "the EMS's setpoints hold over its hour"
    load = attrs["entity_map"]["parties"]["MG1"]["profiles"]["load"][0]
    forecast = s[(load, "forecast_p_mw")]
    assert forecast.shape == (96, 24) and np.isfinite(forecast[0]).all() and np.isnan(forecast[1:]).all()
    actual = s[(load, "p_mw")].reshape(24, 4)
    np.testing.assert_allclose(forecast[0], actual.mean(axis=1), rtol=1e-9)  # error 0: hourly means
    assert np.ptp(actual, axis=1).max() > 0, "the load varies inside the hour"


def test_energy_balance_of_every_quarter_hour(quarter_run: RunResult) -> None:
    assert_energy_balance(quarter_run.path)


def test_soc_integrates_over_the_quarter_hour(quarter_run: RunResult) -> None:
    attrs = read_attrs(quarter_run.path)
    cfg = Config.model_validate(attrs["config"])
    s = read_series(quarter_run.path)
    for mg in cfg.mgs:
        b = mg.battery
        assert b is not None
        fid = attrs["entity_map"]["parties"][mg.name]["storage"]
        soc, p = s[(fid, "soc_mwh")], s[(fid, "p_mw")]
        assert np.all(soc >= b.e_min_mwh - 1e-9) and np.all(soc <= b.e_max_mwh + 1e-9)
        e_prev = np.concatenate([[b.e_init_mwh], soc[:-1]])
        np.testing.assert_allclose(soc, e_prev + np.where(p >= 0, b.eta_ch * p, p / b.eta_dis) * 0.25, atol=1e-9)


def test_the_hours_energy_is_the_hourly_runs(quarter_run: RunResult, default_run: RunResult) -> None:
    """Same data, same plans: each hour's mean of the quarter-hours is the hourly run's step, for what the
    profiles give (the interpolation keeps each hour's energy) and for what the EMS set."""
    q, h = read_series(quarter_run.path), read_series(default_run.path)
    parties = read_attrs(default_run.path)["entity_map"]["parties"]
    for pm in parties.values():
        for fid in [*pm["profiles"]["load"], *pm["profiles"]["pv"]]:
            np.testing.assert_allclose(q[(fid, "p_mw")].reshape(24, 4).mean(axis=1), h[(fid, "p_mw")], atol=1e-9)
        np.testing.assert_allclose(q[(pm["ems"], "battery_p_mw")][::4], h[(pm["ems"], "battery_p_mw")], atol=1e-9)


def _exports_mw(path: Path) -> dict[str, np.ndarray]:
    s, parties = read_series(path), read_attrs(path)["entity_map"]["parties"]
    return {name: s[(pm["pcc_line"], "p_to_mw")] for name, pm in parties.items() if pm.get("pcc_line")}


def test_a_pcc_overload_inside_an_hour_the_hourly_run_hides(
    quarter_run: RunResult, default_run: RunResult, tmp_path: Path
) -> None:
    """A PCC limit between the largest hourly export and the largest quarter-hour export: the hourly run
    reports no excess, the 15-minute run of the same plans reports the quarter-hours over it, in hours
    whose mean export is within it."""
    hourly, quarter = _exports_mw(default_run.path), _exports_mw(quarter_run.path)
    gap = {n: quarter[n].max() - hourly[n].max() for n in hourly}
    mg = max(gap, key=lambda n: gap[n])
    assert gap[mg] > 0.02, f"no MG exports more inside an hour than in any hour's mean ({gap})"
    limit_mw = round(float(hourly[mg].max() + gap[mg] / 2), 4)
    limit = [f"mgs.{mg}.pcc_max_mw={limit_mw}"]
    h = run_default(tmp_path, limit, name="hourly.h5")
    q = run_default(tmp_path, [*QUARTER, *limit], name="quarter.h5")
    assert h.kpis["parties"][mg]["pcc_excess_steps"] == 0
    assert q.kpis["parties"][mg]["pcc_excess_steps"] > 0
    export = _exports_mw(q.path)[mg].reshape(24, 4)
    over_hours = np.flatnonzero((export > limit_mw).any(axis=1))
    assert len(over_hours) and np.all(export[over_hours].mean(axis=1) <= limit_mw)


def test_tracking_batteries_keep_the_exchange_nearer_the_plan(quarter_run: RunResult, tmp_path: Path) -> None:
    """``ems.intra_step = "track_import"``: the batteries move inside the hour (their applied power is the
    trackers', no longer the EMS's hourly setpoint), and the PCC exchange leaves the plan by less energy."""
    tracked = run_default(tmp_path, [*QUARTER, "ems.intra_step='track_import'"])
    held = quarter_run.kpis
    assert tracked.kpis["exchange_deviation_mwh"] < 0.5 * held["exchange_deviation_mwh"]
    s, attrs = read_series(tracked.path), read_attrs(tracked.path)
    pm = attrs["entity_map"]["parties"]["MG1"]
    applied = s[(pm["storage"], "p_mw")] + s[(pm["storage"], "clipped_mw")]
    assert np.ptp(applied.reshape(24, 4), axis=1).max() > 1e-3, "the battery moves inside the hour"
    trackers = [fid for (fid, a) in s if a == "battery_p_mw" and fid.startswith("Tracker-0.")]
    assert len(trackers) == 3


def test_a_strategy_that_counts_per_recorded_step_is_refused_sub_step_physics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """cooperative's KPI hook sums its per-EMS-step trades over recorded steps: at 15-minute physics it
    would count each hour four times, so the run is refused before any simulator starts (exit 2)."""
    from scenarios.cli import main

    out = tmp_path / "x.h5"
    code = main(["run", "community_3mg", "--strategy", "cooperative", "--quiet", "--out", str(out), "--set", *QUARTER])
    err = capsys.readouterr().err
    assert code == 2 and "cannot handle sub_step_physics" in err, err
    assert not out.exists()
