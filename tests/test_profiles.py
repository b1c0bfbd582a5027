"""Tests of sims/profiles.py: load energy, PV and wind plausibility, forecasts, a mosaik run."""

from __future__ import annotations

import math
from importlib.resources import files
from typing import Any, ClassVar, override

import mosaik
import mosaik_api_v3
import numpy as np
import pandas as pd
import pytest
from mosaik.async_scenario import SimConfig
from mosaik_api_v3.types import CreateResult, InputData, ModelName, OutputData, OutputRequest, Time

from sims import profiles as P

HOUR_S = 3600
DAY_S = 86400


def make_sim(**sim_params: Any) -> P.ProfileSim:
    sim = P.ProfileSim()
    sim.init("P", time_resolution=1.0, **sim_params)
    return sim


def run_steps(sim: P.ProfileSim, n: int, step_s: int = HOUR_S) -> list[dict[str, Any]]:
    """Step ``n`` times from 0; return get_data of all entities' attrs at each step."""
    request = {eid: ["p_mw", "q_mvar", "forecast_p_mw"] for eid in sim._units}
    frames = []
    for k in range(n):
        sim.step(k * step_s, {}, max_advance=k * step_s)
        frames.append(sim.get_data(request))
    return frames


@pytest.fixture(scope="module")
def weather() -> P.Weather:
    return P.tmy_weather(2021)


@pytest.fixture(scope="module")
def quarters() -> pd.DataFrame:
    """The embedded file as it is: 35040 quarter-hour rows."""
    path = files("scenarios") / "data" / "load_profiles.csv"
    return pd.read_csv(str(path), index_col="time")


@pytest.fixture(scope="module")
def csv(quarters: pd.DataFrame) -> pd.DataFrame:
    """The embedded file's hourly means (hour i = the mean of rows 4i .. 4i+3), stamped by their first row."""
    hourly = quarters.groupby(np.arange(len(quarters)) // 4).mean()
    hourly.index = quarters.index[::4]
    return hourly


# -------------------------------------------------------------------------------------------------
# Load profiles
# -------------------------------------------------------------------------------------------------
def test_csv_shape_and_peaks(csv: pd.DataFrame) -> None:
    assert len(csv) == 8760
    assert {"H0-A", "G0-A", "G1-A", "L0-A"} <= set(csv.columns)
    assert np.allclose(csv.max(), 1.0)
    assert (csv.min() >= 0).all()
    assert not csv.index.str.startswith("2016-02-29").any()


def test_load_energy_of_a_known_day_is_analytic(csv: pd.DataFrame) -> None:
    """11 January: energy over 24 hourly steps = p_peak * sum of the CSV's rows for that day."""
    p_peak_mw, cos_phi = 2.5, 0.95
    sim = make_sim(start="2021-01-11 00:00:00")
    sim.create(1, "Load", p_peak_mw=p_peak_mw, profile="H0-A", cos_phi=cos_phi)
    frames = run_steps(sim, 24)
    p = np.array([f["Load-0"]["p_mw"] for f in frames])
    q = np.array([f["Load-0"]["q_mvar"] for f in frames])
    expected = p_peak_mw * csv["H0-A"].to_numpy()[10 * 24 : 11 * 24]
    assert p.sum() * 1.0 == pytest.approx(expected.sum(), rel=1e-12)  # MWh with dt = 1 h
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    np.testing.assert_allclose(q, p * math.tan(math.acos(cos_phi)), rtol=1e-12)
    assert (q > 0).all()


def test_load_annual_peak_equals_p_peak() -> None:
    for name in P.load_profile_names():
        assert P.load_profile_p_mw(name, 3.0).max() == pytest.approx(3.0)


def test_leap_year_start_skips_feb_29(csv: pd.DataFrame) -> None:
    """Start 1 March 2016 (leap year) = hour-of-year 59*24 of the 365-day year."""
    sim = make_sim(start="2016-03-01 00:00:00")
    sim.create(1, "Load", p_peak_mw=1.0, profile="G0-A")
    p = [f["Load-0"]["p_mw"] for f in run_steps(sim, 3)]
    assert csv.index[59 * 24].startswith("2016-03-01 00:00")
    np.testing.assert_allclose(p, csv["G0-A"].to_numpy()[59 * 24 : 59 * 24 + 3])


def test_run_wraps_around_the_year(csv: pd.DataFrame) -> None:
    sim = make_sim(start="2021-12-31 22:00:00")
    sim.create(1, "Load", p_peak_mw=1.0, profile="L0-A")
    p = [f["Load-0"]["p_mw"] for f in run_steps(sim, 4)]
    col = csv["L0-A"].to_numpy()
    np.testing.assert_allclose(p, [col[8758], col[8759], col[0], col[1]])


@pytest.mark.parametrize("step_s", [900, 1800, 7200, 5400])
def test_other_step_sizes_preserve_energy(csv: pd.DataFrame, quarters: pd.DataFrame, step_s: int) -> None:
    """Any step gives the mean over [t, t+step): a day's energy equals the hourly sum."""
    sim = make_sim(start="2021-06-01 00:00:00", step_size=step_s, forecast_every_s=DAY_S)
    sim.create(1, "Load", p_peak_mw=1.0, profile="G1-A")
    n = DAY_S // step_s
    p = np.array([f["Load-0"]["p_mw"] for f in run_steps(sim, n, step_s)])
    day = 151  # 1 June in a 365-day year (0-based)
    expected_mwh = csv["G1-A"].to_numpy()[day * 24 : (day + 1) * 24].sum()
    assert (p * step_s / HOUR_S).sum() == pytest.approx(expected_mwh, rel=1e-9)
    # every step is the mean of the file's quarter-hours it covers (the file is quarter-hourly)
    rows = quarters["G1-A"].to_numpy()[day * 96 : (day + 1) * 96]
    np.testing.assert_allclose(p, rows.reshape(n, step_s // 900).mean(axis=1), rtol=1e-9, atol=1e-12)


def test_step_means_wraps_and_averages() -> None:
    hourly = np.arange(8760, dtype=float)
    # 2 h step starting at hour 8759 covers hours 8759 and 0 -> mean (8759 + 0) / 2
    got = P.step_means_p_mw(hourly, 8759 * HOUR_S, 2 * HOUR_S, 2)
    np.testing.assert_allclose(got, [8759 / 2, 1.5 + 0.0])


# -------------------------------------------------------------------------------------------------
# PV and wind
# -------------------------------------------------------------------------------------------------
def test_pv_summer_day_beats_winter_day_and_is_zero_at_night(weather: P.Weather) -> None:
    """TMY days are real weather (21 June is cloudy there): compare clearest days, month sums."""
    p = P.pv_profile_p_mw(1.0, 30.0, 180.0, weather).reshape(365, 24)
    june, december = p[151:181].sum(axis=1), p[334:365].sum(axis=1)
    assert june.max() > december.max() > 0
    assert june.sum() > december.sum()
    night_hours = [0, 1, 2, 3, 21, 22, 23]  # local standard time, dark all year at 36 N
    assert (p[:, night_hours] == 0).all()
    ghi = weather.frame["ghi"].to_numpy()
    assert (p.ravel()[ghi == 0] == 0).all()


def test_pv_annual_yield_is_plausible(weather: P.Weather) -> None:
    """Greensboro NC, 30 deg south, PVWatts, 14 % losses: 1250-1600 kWh/kWp (here about 1360)."""
    p = P.pv_profile_p_mw(2.0, 30.0, 180.0, weather)
    kwh_per_kwp = p.sum() / 2.0  # MWh/MWp = kWh/kWp with 1 h values
    assert 1250 < kwh_per_kwp < 1600
    assert p.max() <= 2.0 * P.PV_INVERTER_ETA + 1e-12
    assert p.min() >= 0


def test_pv_scales_linearly_and_is_cached(weather: P.Weather) -> None:
    a = P.pv_profile_p_mw(1.0, 20.0, 170.0, weather)
    b = P.pv_profile_p_mw(3.0, 20.0, 170.0, weather)
    np.testing.assert_allclose(b, 3.0 * a)


def test_wind_capacity_factor_plausible_and_bounded(weather: P.Weather) -> None:
    """E-82/2350 at the default 98 m hub from 10 m TMY winds (mean 3.05 m/s), z0 = 0.15 m: CF about 0.14."""
    p = P.wind_profile_p_mw(5.0, P.DEFAULT_TURBINE_TYPE, P.DEFAULT_HUB_HEIGHT_M, weather)
    cf = p.mean() / 5.0
    assert 0.05 < cf < 0.35
    assert p.max() <= 5.0
    assert p.max() == pytest.approx(5.0)  # reaches rated power in the strongest hours
    assert p.min() >= 0
    lower = P.wind_profile_p_mw(5.0, P.DEFAULT_TURBINE_TYPE, 78.0, weather)
    assert lower.mean() < p.mean()


# -------------------------------------------------------------------------------------------------
# Forecasts
# -------------------------------------------------------------------------------------------------
def _three_units(sim: P.ProfileSim, error_std: float) -> None:
    sim.create(1, "PV", p_peak_mw=1.0, forecast_error_std=error_std)
    sim.create(1, "Wind", p_rated_mw=2.0, forecast_error_std=error_std)
    sim.create(1, "Load", p_peak_mw=0.5, profile="H0-A", forecast_error_std=error_std)


@pytest.mark.parametrize("step_s", [HOUR_S, 900, 5400])
def test_zero_error_forecast_equals_actuals(step_s: int) -> None:
    sim = make_sim(
        start="2021-07-01 00:00:00", forecast_horizon_steps=24, step_size=step_s, forecast_every_s=24 * step_s
    )
    _three_units(sim, 0.0)
    frames = run_steps(sim, 24, step_s)
    for eid in ("PV-0", "Wind-0", "Load-0"):
        actual = [f[eid]["p_mw"] for f in frames]
        assert frames[0][eid]["forecast_p_mw"] == actual  # exactly


def _forecasts(seed: int, error_std: float = 0.2, start: str = "2021-04-10 00:00:00") -> dict:
    sim = make_sim(start=start, seed=seed, forecast_horizon_steps=48)
    _three_units(sim, error_std)
    sim.step(0, {}, 0)
    return sim.get_data({eid: ["p_mw", "forecast_p_mw"] for eid in ("PV-0", "Wind-0", "Load-0")})


def test_forecast_is_deterministic_per_seed_and_bounded() -> None:
    a, b, c = _forecasts(7), _forecasts(7), _forecasts(8)
    assert a == b
    for eid in ("PV-0", "Wind-0", "Load-0"):
        assert a[eid]["forecast_p_mw"] != c[eid]["forecast_p_mw"]
        assert len(a[eid]["forecast_p_mw"]) == 48
    pv = np.array(a["PV-0"]["forecast_p_mw"])
    wind = np.array(a["Wind-0"]["forecast_p_mw"])
    load = np.array(a["Load-0"]["forecast_p_mw"])
    assert ((pv >= 0) & (pv <= 1.0)).all()
    assert ((wind >= 0) & (wind <= 2.0)).all()
    assert (load >= 0).all()
    # PV forecast is 0 at night (where the actual is 0) and has errors by day
    sim = make_sim(start="2021-04-10 00:00:00", forecast_horizon_steps=48)
    sim.create(1, "PV", p_peak_mw=1.0)
    actual = np.array(run_steps(sim, 1)[0]["PV-0"]["forecast_p_mw"])
    assert (pv[actual == 0] == 0).all()
    assert np.abs(pv - actual)[actual > 0].max() > 0


def test_forecast_does_not_depend_on_other_entities() -> None:
    alone = make_sim(seed=3)
    alone.create(1, "PV", p_peak_mw=1.0, forecast_error_std=0.2)
    alone.step(0, {}, 0)
    crowded = make_sim(seed=3)
    crowded.create(2, "Load", p_peak_mw=0.5, profile="G0-A", forecast_error_std=0.2)
    crowded.create(1, "PV", p_peak_mw=1.0, forecast_error_std=0.2)
    crowded.step(0, {}, 0)
    req = {"PV-0": ["forecast_p_mw"]}
    assert alone.get_data(req) == crowded.get_data(req)


def test_forecast_error_grows_with_lead_time() -> None:
    """Random walk: std at lead k of H is sigma * sqrt(k/H); check first and last lead."""
    actual = np.full(24, 5.0)
    sigma = 0.5
    draws = np.array([P.forecast_p_mw(actual, sigma, np.random.default_rng([1, i])) for i in range(4000)]) - actual
    std = draws.std(axis=0)
    assert std[-1] == pytest.approx(sigma, rel=0.06)
    assert std[0] == pytest.approx(sigma * math.sqrt(1 / 24), rel=0.06)
    assert abs(draws.mean()) < 0.02


def test_forecast_only_at_planning_times() -> None:
    sim = make_sim(forecast_every_s=6 * HOUR_S, forecast_horizon_steps=12)
    sim.create(1, "Load", p_peak_mw=1.0, profile="H0-A", forecast_error_std=0.1)
    frames = run_steps(sim, 13)
    for k, frame in enumerate(frames):
        has_forecast = frame["Load-0"]["forecast_p_mw"] is not None
        assert has_forecast == (k % 6 == 0), k
        assert "p_mw" in frame["Load-0"]
    assert len(frames[6]["Load-0"]["forecast_p_mw"]) == 12


# -------------------------------------------------------------------------------------------------
# A real mosaik world
# -------------------------------------------------------------------------------------------------
class Collector(mosaik_api_v3.Simulator):
    """Time-based sink, as an EMS or a recorder of a user's setup would be."""

    records: ClassVar[list[tuple[int, dict[str, Any]]]] = []

    def __init__(self) -> None:
        super().__init__(
            {
                "api_version": "3.0",
                "type": "time-based",
                "models": {
                    "Sink": {
                        "public": True,
                        "params": [],
                        "attrs": ["p_mw", "q_mvar", "forecast_p_mw"],
                    }
                },
            }
        )

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        if model_params:
            raise TypeError(f"unexpected model params {sorted(model_params)}")
        return [{"eid": f"Sink-{i}", "type": model} for i in range(num)]

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time:
        Collector.records.append((time, inputs.get("Sink-0", {})))
        return time + HOUR_S

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        return {}


def test_mosaik_world_delivers_actuals_and_forecasts() -> None:
    Collector.records = []
    sim_config: SimConfig = {
        "P": {"python": "sims.profiles:ProfileSim"},
        "C": {"python": "tests.test_profiles:Collector"},
    }
    with mosaik.World(sim_config) as world:
        prof = world.start(
            "P",
            step_size=HOUR_S,
            start="2021-06-21 00:00:00",
            forecast_every_s=12 * HOUR_S,
            forecast_horizon_steps=24,
            seed=1,
        )
        pv = prof.PV(p_peak_mw=1.0, forecast_error_std=0.1)
        load = prof.Load(p_peak_mw=0.4, profile="G0-A")
        sink, sink_load = world.start("C").Sink.create(2)
        world.connect(pv, sink, "p_mw", "forecast_p_mw")
        world.connect(load, sink_load, "p_mw", "q_mvar")
        world.run(until=DAY_S + 1, print_progress=False)
    steps = dict(Collector.records)
    assert sorted(steps) == list(range(0, DAY_S + 1, HOUR_S))
    assert all(len(inp["p_mw"]) == 1 for inp in steps.values())
    with_fc = sorted(
        t
        for t, inp in steps.items()
        if "forecast_p_mw" in inp and next(iter(inp["forecast_p_mw"].values())) is not None
    )
    assert with_fc == [0, 12 * HOUR_S, 24 * HOUR_S]
    fc = next(iter(steps[0]["forecast_p_mw"].values()))
    assert len(fc) == 24 and all(0.0 <= v <= 1.0 for v in fc)
    assert next(iter(steps[12 * HOUR_S]["p_mw"].values())) > 0  # noon on 21 June


# -------------------------------------------------------------------------------------------------
# Bad inputs
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "params", "field"),
    [
        ("PV", {"p_peak_mw": -1.0}, "p_peak_mw"),
        ("PV", {"p_peak_mw": 1.0, "tilt_deg": 120}, "tilt_deg"),
        ("PV", {"p_peak_mw": 1.0, "forecast_error_std": -0.1}, "forecast_error_std"),
        ("Wind", {"p_rated_mw": -2.0}, "p_rated_mw"),
        ("Wind", {"p_rated_mw": 2.0, "turbine_type": "NoSuch/1"}, "turbine_type"),
        ("Wind", {"p_rated_mw": 2.0, "hub_height_m": 30.0}, "hub_height_m"),
        ("Load", {"p_peak_mw": -0.1, "profile": "H0-A"}, "p_peak_mw"),
        ("Load", {"p_peak_mw": 0.1, "profile": "X9"}, "profile"),
        ("Load", {"p_peak_mw": 0.1, "profile": "H0-A", "cos_phi": 0.0}, "cos_phi"),
        ("Load", {"p_peak_mw": 0.1, "profile": "H0-A", "colour": 1}, "colour"),
        ("Battery", {}, "model"),
    ],
)
def test_bad_entity_params_name_the_field(model: str, params: dict, field: str) -> None:
    sim = make_sim()
    with pytest.raises(ValueError, match=field):
        sim.create(1, model, **params)


def test_unknown_profile_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"H0-A.*G0-A"):
        P.load_profile_p_mw("nope", 1.0)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"step_size": 0}, "step_size"),
        ({"step_size": 900.5}, "step_size"),
        ({"forecast_every_s": 0}, "forecast_every_s"),
        ({"forecast_horizon_steps": 0}, "forecast_horizon_steps"),
        ({"seed": -1}, "seed"),
        ({"start": "not a date"}, "start"),
    ],
)
def test_bad_sim_params_name_the_field(params: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        P.ProfileSim().init("P", time_resolution=1.0, **params)


def test_load_profiles_file_param_is_used(tmp_path) -> None:
    src = P.load_profiles()
    alt = src * 0.5
    path = tmp_path / "alt.csv"
    alt.to_csv(path)
    a = make_sim()
    a.create(1, "Load", p_peak_mw=1.0, profile="H0-A")
    b = make_sim(load_profiles_file=str(path))
    b.create(1, "Load", p_peak_mw=1.0, profile="H0-A")
    pa = run_steps(a, 3)
    pb = run_steps(b, 3)
    for fa, fb in zip(pa, pb, strict=True):
        assert fb["Load-0"]["p_mw"] == pytest.approx(0.5 * fa["Load-0"]["p_mw"])


def test_series_model_repeats_a_given_day() -> None:
    day = [0.1 * (h % 6) for h in range(24)]
    sim = make_sim(forecast_every_s=86400, forecast_horizon_steps=24)
    sim.create(1, "Series", p_mw_per_hour=day, kind="generation", forecast_error_std=0.0)
    frames = run_steps(sim, 48)
    assert [f["Series-0"]["p_mw"] for f in frames] == pytest.approx(day + day)
    assert frames[24]["Series-0"]["forecast_p_mw"] == pytest.approx(day)
    with pytest.raises(ValueError, match="p_mw_per_hour"):
        make_sim().create(1, "Series", p_mw_per_hour=[1.0] * 5)
    with pytest.raises(ValueError, match="kind"):
        make_sim().create(1, "Series", p_mw_per_hour=[1.0] * 24, kind="storage")
