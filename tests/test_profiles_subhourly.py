"""Tests of sub-hourly profiles in sims/profiles.py: the quarter-hourly load file, the mean-preserving
interpolation below a profile's resolution, clear-sky-shaped PV below an hour and forecasts at the EMS's step."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import sys
from importlib.resources import files
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sims import profiles as P

HOUR_S = 3600
DAY_S = 86400
DIVISORS = [2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60]  # divide both 900 and 3600

# The former hourly load_profiles.csv (8760 rows, 5 decimals): sha256 of its values in units of 1e-5
# (int64, row-major, columns H0-A H0-B G0-A G1-A G4-A L0-A), its column sums and two of its rows.
OLD_HOURLY_SHA256 = "62750ec18f539118a5801c748765d263ec63932a04c08c98370cc1727cce0ea1"
OLD_HOURLY_SUMS = {
    "H0-A": 3255.88113,
    "H0-B": 1623.66533,
    "G0-A": 3030.09011,
    "G1-A": 1474.0982,
    "G4-A": 1210.44731,
    "L0-A": 3604.80681,
}
OLD_HOURLY_ROWS = {
    1416: [0.19539, 0.05461, 0.38509, 0.0374, 0.12562, 0.20421],  # 2016-03-01 00:00
    4000: [0.60426, 0.11049, 0.37924, 0.0459, 0.1898, 0.50351],  # 2016-06-16 16:00
}


def make_sim(**sim_params: Any) -> P.ProfileSim:
    sim = P.ProfileSim()
    sim.init("P", time_resolution=1.0, **sim_params)
    return sim


def run_steps(sim: P.ProfileSim, n: int, step_s: int) -> list[dict[str, Any]]:
    request = {eid: ["p_mw", "q_mvar", "forecast_p_mw"] for eid in [*sim._units, *sim._groups]}
    frames = []
    for k in range(n):
        sim.step(k * step_s, {}, k * step_s)
        frames.append(sim.get_data(request))
    return frames


def series(frames: list[dict[str, Any]], eid: str, attr: str = "p_mw") -> np.ndarray:
    return np.array([f[eid][attr] for f in frames], dtype=float)


@pytest.fixture(scope="module")
def weather() -> P.Weather:
    return P.tmy_weather(2021)


@pytest.fixture(scope="module")
def quarters() -> pd.DataFrame:
    return pd.read_csv(str(files("scenarios") / "data" / "load_profiles.csv"), index_col="time")


# -------------------------------------------------------------------------------------------------
# The quarter-hourly load file
# -------------------------------------------------------------------------------------------------
def test_file_is_quarter_hourly_and_its_hour_means_are_the_old_hourly_values(quarters: pd.DataFrame) -> None:
    assert len(quarters) == 35040
    assert list(quarters.columns) == list(OLD_HOURLY_SUMS)
    assert quarters.index[0] == "2016-01-01 00:00" and quarters.index[1] == "2016-01-01 00:15"
    assert not quarters.index.str.startswith("2016-02-29").any()
    hourly = quarters.to_numpy().reshape(8760, 4, -1).mean(axis=1)
    units = np.rint(hourly * 1e5).astype("<i8")
    assert hashlib.sha256(units.tobytes()).hexdigest() == OLD_HOURLY_SHA256
    for row, values in OLD_HOURLY_ROWS.items():
        np.testing.assert_allclose(hourly[row], values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(hourly.sum(axis=0), list(OLD_HOURLY_SUMS.values()), rtol=0, atol=1e-9)
    np.testing.assert_allclose(hourly.max(axis=0), 1.0, rtol=0, atol=1e-12)  # the hourly means peak at 1
    assert (quarters.max() > 1.0).all()  # quarter-hours exceed the hourly peak
    assert P.load_profiles_resolution_s() == 900
    assert P.load_profile_p_mw("G0-A", 2.0).shape == (8760,)


def _load_script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "scenarios" / "data" / "make_load_profiles.py"
    spec = importlib.util.spec_from_file_location("make_load_profiles", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_rounding_keeps_each_hours_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    script = _load_script(monkeypatch)
    rng = np.random.default_rng(3)
    raw = rng.uniform(0.0, 1.5, size=(8760 * 4, 2))
    raw[:40] = rng.integers(0, 3, size=(40, 2)) * 1e-5  # exact units: nearest rounding misses the hour sums
    hour_means = np.round(raw.reshape(8760, 4, 2).mean(axis=1), 5)
    units = script.round_keeping_hour_means(raw, hour_means)
    assert (units >= 0).all() and (units == np.rint(units)).all()
    assert np.abs(units / 1e5 - raw).max() <= 2.5e-5  # [0, 0, 0, 2] units with mean 0 (rounded): -2 on one
    np.testing.assert_array_equal(units.reshape(8760, 4, 2).sum(axis=1), 4 * np.rint(hour_means * 1e5))


def _profile_file(tmp_path: Path, rows: int, step: str = "1h") -> str:
    index = pd.date_range("2016-01-01", periods=rows, freq=step).strftime("%Y-%m-%d %H:%M")
    frame = pd.DataFrame({"A": np.linspace(0.1, 1.0, rows)}, index=pd.Index(index, name="time"))
    path = tmp_path / f"profiles_{rows}_{step}.csv"
    frame.to_csv(path)
    return str(path)


@pytest.mark.parametrize("rows", [100, 8761, 17520, 35041])
def test_bad_row_count_names_the_file_and_the_counts_accepted(tmp_path: Path, rows: int) -> None:
    path = _profile_file(tmp_path, rows)
    with pytest.raises(ValueError, match=rf"{Path(path).name}: expected 8760 .*35040 .*got {rows} rows"):
        P.load_profiles(path)


def test_time_column_must_match_the_row_count(tmp_path: Path) -> None:
    path = _profile_file(tmp_path, 8760, "15min")
    with pytest.raises(ValueError, match=r"time column steps 900 s"):
        P.load_profiles(path)


def test_hourly_and_quarter_hourly_files_are_accepted(tmp_path: Path) -> None:
    hourly, quarter = _profile_file(tmp_path, 8760), _profile_file(tmp_path, 35040, "15min")
    assert len(P.load_profiles(hourly)) == 8760 and P.load_profiles_resolution_s(hourly) == 3600
    assert len(P.load_profiles(quarter)) == 35040 and P.load_profiles_resolution_s(quarter) == 900


# -------------------------------------------------------------------------------------------------
# Interpolation below the resolution
# -------------------------------------------------------------------------------------------------
# power values: 0 or between 1e-12 and 100 (no subnormal numbers), some tiny next to large ones
power = st.one_of(st.just(0.0), st.floats(1e-12, 100.0), st.floats(1e-6, 1e-3))
values_strategy = st.lists(power, min_size=1, max_size=30)


@settings(max_examples=150, deadline=None)
@given(
    values=values_strategy,
    resolution_s=st.sampled_from([900, 3600]),
    per_interval=st.sampled_from(DIVISORS),
    phase=st.integers(0, 10_000),
    bound=st.one_of(st.none(), st.floats(1.0, 3.0)),
)
def test_interpolation_preserves_means_and_bounds(
    values: list[float], resolution_s: int, per_interval: int, phase: int, bound: float | None
) -> None:
    v = np.array(values)
    step_s = resolution_s // per_interval
    upper = None if bound is None else bound * float(v.max())
    first = phase % (len(v) * per_interval)  # start anywhere on the step grid; the run wraps around
    n = len(v) * per_interval
    means = P.step_means_p_mw(v, first * step_s, step_s, n, resolution_s=resolution_s, upper_mw=upper)
    assert (means >= 0).all()
    if upper is not None:
        assert (means <= upper * (1 + 1e-12)).all()
    per_step = np.roll(means, first)  # step k of the period at position k
    got = per_step.reshape(len(v), per_interval).mean(axis=1)
    np.testing.assert_allclose(got, v, rtol=1e-9, atol=1e-300)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(power, min_size=2, max_size=20))
def test_unbounded_curve_is_continuous_and_exact_for_constants(values: list[float]) -> None:
    v = np.array(values)
    boundaries_s = np.arange(len(v)) * 900.0
    before = P.interpolated_p_mw(v, boundaries_s - 1e-6, resolution_s=900)
    after = P.interpolated_p_mw(v, boundaries_s, resolution_s=900)
    np.testing.assert_allclose(before, after, rtol=0, atol=1e-6 * (1 + v.max()))
    const = P.step_means_p_mw(np.full(len(v), v[0]), 0.0, 60.0, 15 * len(v), resolution_s=900)
    np.testing.assert_allclose(const, v[0], rtol=1e-12)


def test_interpolation_is_not_a_step_function() -> None:
    hourly = np.array([0.0, 1.0, 3.0, 3.0, 1.0])
    q = P.step_means_p_mw(hourly, 0.0, 900, 20).reshape(5, 4)
    np.testing.assert_allclose(q.mean(axis=1), hourly, rtol=1e-12, atol=1e-15)
    assert (q[0] == 0).all()  # an hour of mean 0 stays 0
    assert np.all(np.diff(q[1]) > 0)  # rising within the rising hour
    linear = P.step_means_p_mw(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 2 * HOUR_S, 900, 4)
    np.testing.assert_allclose(linear, [2.625, 2.875, 3.125, 3.375], rtol=1e-12)  # a linear ramp is reproduced
    # a bound forces a jump where the neighbours differ by more than half of it: values stay in [0, U]
    bounded = P.step_means_p_mw(np.array([0.0, 1.0, 0.0]), 0.0, 60, 180, upper_mw=1.0).reshape(3, 60)
    np.testing.assert_allclose(bounded[1], 1.0, rtol=1e-12)


# -------------------------------------------------------------------------------------------------
# PV below an hour
# -------------------------------------------------------------------------------------------------
def test_pv_at_900_s_is_zero_at_night_and_keeps_the_hour_means(weather: P.Weather) -> None:
    day = 171  # 21 June
    sim = make_sim(start="2021-06-21 00:00:00", step_size=900, forecast_every_s=DAY_S)
    sim.create(1, "PV", p_peak_mw=2.0)
    p = series(run_steps(sim, 96, 900), "PV-0").reshape(24, 4)
    hourly = P.pv_profile_p_mw(2.0, 30.0, 180.0, weather)[day * 24 : (day + 1) * 24]
    np.testing.assert_allclose(p.mean(axis=1), hourly, rtol=1e-12, atol=1e-15)
    assert (p[hourly == 0] == 0).all()
    assert (p[[0, 1, 2, 3, 21, 22, 23]] == 0).all()  # local standard time, dark at 36 N
    assert (p >= 0).all() and p.max() <= 2.0 * P.PV_INVERTER_ETA
    assert (np.ptp(p[hourly > 0], axis=1) > 0).all()  # varies within every sunny hour


def test_pv_follows_the_clear_sky_and_falls_back_where_it_has_no_energy(weather: P.Weather) -> None:
    shape = P.pv_shape(30.0, 180.0, weather)
    week = P.pv_step_means_p_mw(shape.values, weather, 0.0, 60, 7 * 1440, upper_mw=P.PV_INVERTER_ETA)
    np.testing.assert_allclose(week.reshape(-1, 60).mean(axis=1), shape.values[: 7 * 24], rtol=1e-12, atol=1e-15)
    # 2:00-3:00 has no clear-sky energy: a made-up value there is interpolated, its mean kept
    made_up = np.zeros(8760)
    made_up[2] = 0.5
    night = P.pv_step_means_p_mw(made_up, weather, 0.0, 900, 24, upper_mw=1.0)
    np.testing.assert_allclose(night[8:12].mean(), 0.5, rtol=1e-12)
    assert (night >= 0).all() and night.max() <= 1.0 and (night[:8] == 0).all() and (night[12:] == 0).all()
    # an hour whose clear-sky shape would overshoot the bound is interpolated within [0, U]
    sunrise = np.zeros(8760)
    sunrise[6] = 0.9
    capped = P.pv_step_means_p_mw(sunrise, weather, 0.0, 300, 24 * 12, upper_mw=0.96)
    np.testing.assert_allclose(capped[72:84].mean(), 0.9, rtol=1e-12)
    assert capped.max() <= 0.96 * (1 + 1e-12)


def test_hourly_pv_and_wind_at_3600_s_are_the_hourly_values(weather: P.Weather) -> None:
    sim = make_sim(start="2021-03-05 00:00:00")
    sim.create(1, "PV", p_peak_mw=1.5, tilt_deg=20.0, azimuth_deg=200.0)
    sim.create(1, "Wind", p_rated_mw=3.0)
    frames = run_steps(sim, 24, HOUR_S)
    day = 63
    pv = P.pv_profile_p_mw(1.5, 20.0, 200.0, weather)[day * 24 : (day + 1) * 24]
    wind = P.wind_profile_p_mw(3.0, P.DEFAULT_TURBINE_TYPE, P.DEFAULT_HUB_HEIGHT_M, weather)[day * 24 : (day + 1) * 24]
    assert series(frames, "PV-0").tolist() == pv.tolist()  # exactly
    assert series(frames, "Wind-0").tolist() == wind.tolist()


# -------------------------------------------------------------------------------------------------
# Other units below their resolution, energy per hour
# -------------------------------------------------------------------------------------------------
def test_every_model_keeps_its_hour_means_at_900_s(tmp_path: Path, weather: P.Weather) -> None:
    hourly_file = tmp_path / "hourly.csv"
    source = P.load_profiles()
    hourly = source.groupby(np.arange(len(source)) // 4).mean()
    hourly.index = source.index[::4]
    hourly.to_csv(hourly_file)
    day_values = [0.2, 0.0, 0.6, 1.0, 0.4, 0.3]
    sim = make_sim(start="2021-09-01 00:00:00", step_size=900, load_profiles_file=str(hourly_file))
    sim.create(1, "Wind", p_rated_mw=2.0)
    sim.create(1, "Load", p_peak_mw=0.7, profile="H0-A", cos_phi=0.9)
    sim.create(1, "Series", p_mw_per_hour=day_values, kind="generation")
    sim.create(1, "LoadGroup", p_peak_mw=[0.5, 1.5], profile="H0-A")
    frames = run_steps(sim, 96, 900)
    day = 243
    wind = P.wind_profile_p_mw(2.0, P.DEFAULT_TURBINE_TYPE, P.DEFAULT_HUB_HEIGHT_M, weather)[day * 24 : day * 24 + 24]
    load = 0.7 * hourly["H0-A"].to_numpy()[day * 24 : day * 24 + 24]
    wind_q = series(frames, "Wind-0").reshape(24, 4)
    np.testing.assert_allclose(wind_q.mean(axis=1), wind, rtol=1e-9, atol=1e-12)
    assert wind_q.max() <= 2.0 * (1 + 1e-12)
    load_q = series(frames, "Load-0").reshape(24, 4)
    np.testing.assert_allclose(load_q.mean(axis=1), load, rtol=1e-9)
    np.testing.assert_allclose(series(frames, "Load-0", "q_mvar"), series(frames, "Load-0") * math.tan(math.acos(0.9)))
    assert (np.ptp(load_q, axis=1) > 0).any()  # not held: the curve moves within the hours
    gen = series(frames, "Series-0").reshape(24, 4)
    np.testing.assert_allclose(gen.mean(axis=1), np.repeat(day_values, 4), rtol=1e-9, atol=1e-12)
    assert gen.max() <= 1.0 * (1 + 1e-12) and (gen[4:8] == 0).all()
    group = np.array([f["LoadGroup-0"]["p_mw"] for f in frames])
    np.testing.assert_allclose(group[:, 0], load_q.ravel() / 0.7 * 0.5, rtol=1e-12)


def test_a_60_s_run_sees_the_energy_of_the_hourly_run() -> None:
    fine = make_sim(start="2021-11-02 00:00:00", step_size=60, forecast_every_s=DAY_S)
    fine.create(1, "Load", p_peak_mw=1.0, profile="G4-A")
    coarse = make_sim(start="2021-11-02 00:00:00", forecast_every_s=DAY_S)
    coarse.create(1, "Load", p_peak_mw=1.0, profile="G4-A")
    per_minute = series(run_steps(fine, 1440, 60), "Load-0").reshape(24, 60)
    per_hour = series(run_steps(coarse, 24, HOUR_S), "Load-0")
    np.testing.assert_allclose(per_minute.mean(axis=1), per_hour, rtol=1e-9)


# -------------------------------------------------------------------------------------------------
# Forecasts at the EMS's step
# -------------------------------------------------------------------------------------------------
def test_forecast_at_hourly_steps_from_a_900_s_simulator(weather: P.Weather) -> None:
    sim = make_sim(
        start="2021-05-10 00:00:00",
        step_size=900,
        forecast_every_s=DAY_S,
        forecast_horizon_steps=24,
        forecast_step_s=3600,
    )
    sim.create(1, "PV", p_peak_mw=1.0)
    sim.create(1, "Load", p_peak_mw=0.5, profile="G0-A")
    frames = run_steps(sim, 96, 900)
    day = 129
    for eid, hourly in (
        ("PV-0", P.pv_profile_p_mw(1.0, 30.0, 180.0, weather)[day * 24 : day * 24 + 24]),
        ("Load-0", P.load_profile_p_mw("G0-A", 0.5)[day * 24 : day * 24 + 24]),
    ):
        fc = np.array(frames[0][eid]["forecast_p_mw"])
        assert fc.shape == (24,)
        np.testing.assert_allclose(fc, hourly, rtol=1e-12, atol=1e-15)  # error 0: the hourly means
        np.testing.assert_allclose(fc, series(frames, eid).reshape(24, 4).mean(axis=1), rtol=1e-9, atol=1e-12)
        assert all(f[eid]["forecast_p_mw"] is None for f in frames[1:])


def test_forecast_errors_work_per_forecast_step() -> None:
    kwargs: dict[str, Any] = {"start": "2021-04-10 00:00:00", "seed": 4, "forecast_horizon_steps": 48}
    hourly = make_sim(**kwargs)
    hourly.create(1, "PV", p_peak_mw=1.0, forecast_error_std=0.2)
    hourly.step(0, {}, 0)
    fine = make_sim(**kwargs, step_size=900, forecast_step_s=3600)
    fine.create(1, "PV", p_peak_mw=1.0, forecast_error_std=0.2)
    fine.step(0, {}, 0)
    request = {"PV-0": ["forecast_p_mw"]}
    # the same hourly actuals and the same random numbers: the same forecast, zero where the hour is dark
    np.testing.assert_allclose(
        fine.get_data(request)["PV-0"]["forecast_p_mw"], hourly.get_data(request)["PV-0"]["forecast_p_mw"], rtol=1e-12
    )


def test_forecast_step_none_is_the_own_step() -> None:
    outputs = []
    for forecast_step_s in (None, 1800):
        sim = make_sim(step_size=1800, forecast_every_s=6 * 1800, forecast_step_s=forecast_step_s)
        sim.create(1, "Load", p_peak_mw=1.0, profile="H0-B", forecast_error_std=0.1)
        outputs.append(run_steps(sim, 13, 1800))
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("bad", [0, -3600, 1000, 450, 3600.5, "3600", True])
def test_bad_forecast_step_names_the_field(bad: Any) -> None:
    with pytest.raises(ValueError, match="forecast_step_s"):
        P.ProfileSim().init("P", time_resolution=1.0, step_size=900, forecast_step_s=bad)
