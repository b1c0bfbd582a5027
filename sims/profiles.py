"""PV, wind and load profiles: actual power each step and day-ahead forecasts at planning times.

The module has two halves:

* **Math** (pure functions, no mosaik): one year of hourly power (8760 values) per unit,
  :func:`pv_profile_p_mw`, :func:`wind_profile_p_mw`, :func:`load_profile_p_mw`; sampling of that
  periodic hourly series at arbitrary steps, :func:`step_means_p_mw`; the forecast error model,
  :func:`forecast_p_mw`.
* **Adapter** :class:`ProfileSim` (a ``mosaik_api_v3.Simulator``) that only translates.

Time axis
---------
Every profile is a 365-day year of 8760 hourly values; value *i* is the mean power over
hour-of-year *i* (``[i, i+1)`` h after 1 January 00:00). A run's time 0 is the hour-of-year of the
sim param ``start``, counted in a 365-day calendar: in a leap year 29 February is skipped (a start
on 29 February is treated as 28 February). Runs longer than a year wrap around to 1 January.
A step at time *t* outputs the mean of the hourly series over ``[t, t + step)``: with the default
``step_size=3600`` that is exactly one hourly value; shorter steps hold the hour's value (the energy
is preserved, there is no intra-hour variability); longer or unaligned steps give the time-weighted
mean of the hours they cover.

Weather (PV, wind)
------------------
pvlib's shipped TMY3 file ``723170TYA.CSV`` (Greensboro NC, 36.1 N, 79.95 W, 273 m), read with
``pvlib.iotools.read_tmy3(map_variables=True)``. TMY3 rows are hour-ending in local standard time
(UTC-5, no daylight saving), ``01:00`` .. ``24:00``, with the months taken from different years. We
ignore the file's dates and use the rows in file order: row *i* (ending at hour *i+1*) describes
hour-of-year *i*, re-dated to the scenario year (from ``start``, 29 February skipped) in the fixed
UTC-5 zone. So the local standard time of the weather site is the scenario clock; no time-zone
shift is applied. The load profiles are likewise in local standard time (SimBench's CET, daylight
saving removed, see ``scenarios/data/load_profiles.md``): every profile is "local standard time,
hour-of-year", and the scenario clock has no daylight saving. Solar position is taken at
the middle of each hour. The file's albedo column is empty (0); a constant 0.2 is used instead.

PV model (PVWatts)
------------------
Hay-Davies transposition to a fixed plane (``tilt_deg``, ``azimuth_deg``: 180 = south), physical IAM
on the beam component, SAPM cell temperature (open rack, glass/polymer) from air temperature and
10 m wind speed, ``pvwatts_dc`` with ``gamma_pdc = -0.4 %/K``, PVWatts default system losses
(14.08 %), ``pvwatts`` inverter with nominal efficiency 0.96 and DC/AC ratio 1.0. ``p_peak_mw`` is
the DC nameplate; AC output never exceeds ``0.96 * p_peak_mw``.

Wind model (windpowerlib)
-------------------------
``windpowerlib.ModelChain`` with a named turbine from windpowerlib's shipped turbine library (its
power curve), the TMY wind speed measured at 10 m, logarithmic height correction with roughness
length 0.15 m, barometric density, linear temperature gradient, no density correction of the power
curve. The power is scaled so the turbine's nominal power maps to ``p_rated_mw``.

Load model
----------
``p_mw = p_peak_mw * profile`` with the SimBench standard profiles of
``scenarios/data/load_profiles.csv`` (each normalised to an annual peak of 1.0, see
``load_profiles.md``); ``q_mvar = p_mw * tan(acos(cos_phi))`` (inductive, consuming, for
``0 < cos_phi <= 1``).

A ``LoadGroup`` is many loads on one profile (a network operator's feeder loads): params ``p_peak_mw``
(a list, one per member), ``profile`` and ``cos_phi`` (one value or a list); its ``p_mw`` and
``q_mvar`` are lists in the members' order, each the value a ``Load`` of that size outputs (no forecast:
a consumer that plans gets forecasts from ``Load`` entities). It feeds the grid simulator's load group of
the same members with one input per attribute instead of one per member.

Forecast error model
--------------------
At a planning time the forecast for the next ``H = forecast_horizon_steps`` steps is
``f_k = a_k + e_k`` with ``e_k = sum_{j<=k} z_j * sigma / sqrt(H)``, ``z_j ~ N(0, 1)`` i.i.d.,
``k = 0 .. H-1``: a Gaussian random walk whose standard deviation grows with lead time as
``sigma * sqrt((k+1)/H)`` and reaches ``sigma`` at the end of the horizon, errors being correlated
in time as real forecast errors are. ``sigma = forecast_error_std * rating`` (``p_peak_mw`` or
``p_rated_mw``). The result is clipped to ``[0, rating]`` for PV and wind and to ``>= 0`` for loads;
a PV forecast is 0 wherever the actual value is 0 (night). ``forecast_error_std = 0`` returns the
actual values exactly. The random numbers come from
``numpy.random.default_rng([seed, crc32(eid), planning_time_s])``: the same seed gives the same
forecasts regardless of which other entities exist or in which order they are created.

mosaik specifics
----------------
The simulator is ``time-based`` and every output is persistent, so it plugs into time-based
consumers (EMS, recorder, other people's simulators) without mosaik's warning about non-persistent
outputs on non-trigger inputs. Between planning times ``forecast_p_mw`` is ``None``: a consumer takes
a list as a new forecast and ``None`` as "no new forecast this step" (mosaik passes ``None`` on; it
warns only for an attribute missing from ``get_data``). The sim param ``load_profiles_file`` points to
a CSV of the same shape as ``scenarios/data/load_profiles.csv`` (default: that file).
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import importlib.util
import logging
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, override

import mosaik_api_v3
import numpy as np
import pandas as pd
from mosaik_api_v3.types import CreateResult, InputData, Meta, ModelName, OutputData, OutputRequest, SimId, Time

logger = logging.getLogger(__name__)

HOURS_PER_DAY = 24
HOURS_PER_YEAR = 8760
S_PER_H = 3600
TMY_FILE = "723170TYA.CSV"
DEFAULT_TURBINE_TYPE = "E-82/2350"
DEFAULT_HUB_HEIGHT_M = 98.0
WIND_MEASUREMENT_HEIGHT_M = 10.0
ROUGHNESS_LENGTH_M = 0.15
PV_ALBEDO = 0.2
PV_GAMMA_PDC_PER_K = -0.004
PV_INVERTER_ETA = 0.96


# --------------------------------------------------------------------------------------------------
# Calendar
# --------------------------------------------------------------------------------------------------
def year_index(year: int) -> pd.DatetimeIndex:
    """The 8760 hour-beginning time stamps of ``year``, 365-day calendar (29 February dropped)."""
    idx = pd.date_range(f"{year}-01-01", f"{year + 1}-01-01", freq="h", inclusive="left")
    idx = idx[~((idx.month == 2) & (idx.day == 29))]
    if len(idx) != HOURS_PER_YEAR:  # pragma: no cover - pandas guarantees this
        raise RuntimeError(f"calendar of {year} has {len(idx)} hours")
    return idx


def start_offset_s(start: str | pd.Timestamp) -> float:
    """Seconds since 1 January 00:00 of ``start``'s year, in a 365-day calendar.

    In a leap year the days after 29 February move back by one; 29 February itself counts as
    28 February.
    """
    ts = pd.Timestamp(start)
    day = ts.dayofyear - 1
    if (ts.is_leap_year and ts.month > 2) or (ts.is_leap_year and ts.month == 2 and ts.day == 29):
        day -= 1
    return float(day * 86400 + ts.hour * 3600 + ts.minute * 60 + ts.second)


# --------------------------------------------------------------------------------------------------
# Input data
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Weather:
    """One year of hourly weather at a site; row i = hour-of-year i (hour-beginning index).

    ``frame`` columns: ghi, dni, dhi (W/m2), temp_air (degC), wind_speed (m/s, at 10 m),
    pressure (Pa). Hashing is by identity (cached per year by :func:`tmy_weather`).
    """

    frame: pd.DataFrame
    latitude: float
    longitude: float
    altitude_m: float


def tmy_path() -> Path:
    import pvlib

    return Path(pvlib.__file__).resolve().parent / "data" / TMY_FILE


@functools.lru_cache(maxsize=8)
def tmy_weather(year: int) -> Weather:
    """pvlib's Greensboro TMY3 file re-dated to ``year`` (see the module docstring)."""
    import pvlib

    raw, meta = pvlib.iotools.read_tmy3(str(tmy_path()), map_variables=True)
    if len(raw) != HOURS_PER_YEAR:
        raise ValueError(f"{TMY_FILE}: expected {HOURS_PER_YEAR} rows, got {len(raw)}")
    tz = f"Etc/GMT{-int(meta['TZ']):+d}"  # POSIX sign: UTC-5 is Etc/GMT+5
    index = year_index(year).tz_localize(tz)
    frame = pd.DataFrame(
        {
            "ghi": raw["ghi"].to_numpy(dtype=float),
            "dni": raw["dni"].to_numpy(dtype=float),
            "dhi": raw["dhi"].to_numpy(dtype=float),
            "temp_air": raw["temp_air"].to_numpy(dtype=float),
            "wind_speed": raw["wind_speed"].to_numpy(dtype=float),
            "pressure": raw["pressure"].to_numpy(dtype=float) * 100.0,  # mbar -> Pa
        },
        index=index,
    )
    lat, lon, alt = (float(meta[key]) for key in ("latitude", "longitude", "altitude"))
    return Weather(frame, lat, lon, alt)


@functools.lru_cache(maxsize=4)
def load_profiles(path: str | None = None) -> pd.DataFrame:
    """The normalised hourly load profiles (8760 rows, one column per profile, peak 1.0) of ``path``
    (default: the embedded ``scenarios/data/load_profiles.csv``)."""
    source = path or "the embedded load_profiles.csv"
    if path is None:
        embedded = importlib.resources.files("scenarios") / "data" / "load_profiles.csv"
        with importlib.resources.as_file(embedded) as p:
            frame = pd.read_csv(p, index_col="time")
    else:
        frame = pd.read_csv(path, index_col="time")
    if len(frame) != HOURS_PER_YEAR:
        raise ValueError(f"{source}: expected {HOURS_PER_YEAR} rows, got {len(frame)}")
    if frame.isna().any().any():
        raise ValueError(f"{source}: holds NaN in {list(frame.columns[frame.isna().any()])}")
    problem = profile_values_problem(frame)
    if problem:
        raise ValueError(f"{source}: {problem}")
    return frame


def profile_values_problem(frame: pd.DataFrame) -> str | None:
    """What is wrong with the values of a load profile table (None if nothing): every value a finite
    number >= 0. Names the first bad column and its row (0-based, data rows)."""
    for name in frame.columns:
        col = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(col) | (col < 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            what = "non-finite or non-numeric" if not np.isfinite(col[row]) else "negative"
            value = frame[name].iloc[row]
            value = value.item() if isinstance(value, np.generic) else value
            return (
                f"column {name!r} holds {what} values (first at row {row}: {value!r}); "
                "load profiles must be finite and >= 0"
            )
    return None


def load_profile_names(path: str | None = None) -> list[str]:
    return list(load_profiles(path).columns)


@functools.lru_cache(maxsize=64)
def _profile_shape(profile: str, path: str | None = None) -> np.ndarray:
    """A load profile's normalised hourly year (peak 1), one read-only array shared by every load on it."""
    _check_profile(profile, path)
    shape = load_profiles(path)[profile].to_numpy(dtype=float).copy()
    shape.flags.writeable = False
    return shape


TURBINE_TYPES_HINT = "windpowerlib.get_turbine_types(print_out=False), rows with has_power_curve"


@functools.lru_cache(maxsize=1)
def _turbine_library() -> dict[str, float]:
    """windpowerlib's shipped turbine library (the ``oedb`` files ``WindTurbine`` reads by default):
    turbine type -> rotor diameter in m (NaN if unknown), for the types that have a power curve.
    Read from the file without importing windpowerlib (its import alone takes about half a second)."""
    spec = importlib.util.find_spec("windpowerlib")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - a dependency
        raise ImportError("windpowerlib is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "oedb" / "turbine_data.csv"
    data = pd.read_csv(path, usecols=["turbine_type", "has_power_curve", "rotor_diameter"])
    has_curve = data["has_power_curve"].astype(str).str.lower() == "true"
    rows = data.loc[has_curve].sort_values("turbine_type")
    diameters = pd.to_numeric(rows["rotor_diameter"], errors="coerce")
    return {str(t): float(d) for t, d in zip(rows["turbine_type"], diameters, strict=True)}


def turbine_types() -> tuple[str, ...]:
    """Turbine types of windpowerlib's shipped library that have a power curve."""
    return tuple(_turbine_library())


def turbine_type_problem(turbine_type: str) -> str | None:
    """Why ``turbine_type`` cannot be simulated (None if it can): not a type with a power curve in
    windpowerlib's library. The message lists the valid types and how to look them up."""
    valid = turbine_types()
    if turbine_type in valid:
        return None
    close = difflib.get_close_matches(str(turbine_type), valid, n=3)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return (
        f"unknown turbine {turbine_type!r}{hint}; valid are the {len(valid)} types with a power curve in "
        f"windpowerlib's turbine library ({TURBINE_TYPES_HINT}): {', '.join(valid)}"
    )


def hub_height_problem(turbine_type: str, hub_height_m: float) -> str | None:
    """Why ``hub_height_m`` is invalid for ``turbine_type`` (None if it is fine): the wind speed is
    measured at 10 m and extrapolated upwards, and windpowerlib rejects a hub below half the rotor
    diameter (the same rule as ``windpowerlib.WindTurbine``)."""
    h = float(hub_height_m)
    if not math.isfinite(h) or h <= WIND_MEASUREMENT_HEIGHT_M:
        return f"must be > {WIND_MEASUREMENT_HEIGHT_M} m (the wind measurement height), got {hub_height_m!r}"
    diameter = _turbine_library().get(turbine_type, math.nan)
    if math.isfinite(diameter) and h <= 0.5 * diameter:
        return (
            f"{h} m invalid for {turbine_type}: windpowerlib needs a hub above half the rotor diameter "
            f"({diameter} m), i.e. > {0.5 * diameter} m"
        )
    return None


# --------------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------------
def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _check_profile(profile: str, path: str | None = None) -> str:
    names = load_profile_names(path)
    if profile not in names:
        raise ValueError(f"profile: unknown load profile {profile!r}; valid: {', '.join(names)}")
    return profile


def _check_turbine(turbine_type: str) -> str:
    problem = turbine_type_problem(turbine_type)
    if problem:
        raise ValueError(f"turbine_type: {problem}")
    return turbine_type


# --------------------------------------------------------------------------------------------------
# Annual hourly profiles
# --------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _pv_per_unit(tilt_deg: float, azimuth_deg: float, weather: Weather) -> np.ndarray:
    """AC power per unit DC nameplate, 8760 hourly values (see module docstring)."""
    import pvlib

    w = weather.frame
    mid = pd.DatetimeIndex(w.index) + pd.Timedelta(minutes=30)
    sun = pvlib.solarposition.get_solarposition(
        mid,
        weather.latitude,
        weather.longitude,
        altitude=weather.altitude_m,
        pressure=w["pressure"].to_numpy(),
        temperature=w["temp_air"].to_numpy(),
    )
    dni_extra = pvlib.irradiance.get_extra_radiation(mid)
    airmass = pvlib.atmosphere.get_relative_airmass(sun["apparent_zenith"])
    poa = pvlib.irradiance.get_total_irradiance(
        tilt_deg,
        azimuth_deg,
        sun["apparent_zenith"],
        sun["azimuth"],
        w["dni"].to_numpy(),
        w["ghi"].to_numpy(),
        w["dhi"].to_numpy(),
        dni_extra=dni_extra.to_numpy(),
        airmass=airmass.to_numpy(),
        albedo=PV_ALBEDO,
        model="haydavies",
    )
    aoi = pvlib.irradiance.aoi(tilt_deg, azimuth_deg, sun["apparent_zenith"], sun["azimuth"])
    iam = np.nan_to_num(np.asarray(pvlib.iam.physical(aoi), dtype=float), nan=0.0)
    poa_direct = np.nan_to_num(np.asarray(poa["poa_direct"], dtype=float), nan=0.0)
    poa_diffuse = np.nan_to_num(np.asarray(poa["poa_diffuse"], dtype=float), nan=0.0)
    effective = np.clip(poa_direct * iam + poa_diffuse, 0.0, None)
    params = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_polymer"]
    temp_cell = pvlib.temperature.sapm_cell(
        poa_direct + poa_diffuse, w["temp_air"].to_numpy(), w["wind_speed"].to_numpy(), **params
    )
    pdc = pvlib.pvsystem.pvwatts_dc(effective, temp_cell, 1.0, PV_GAMMA_PDC_PER_K)
    pdc = np.asarray(pdc, dtype=float) * (1.0 - pvlib.pvsystem.pvwatts_losses() / 100.0)
    pac = pvlib.inverter.pvwatts(pdc, 1.0, eta_inv_nom=PV_INVERTER_ETA)
    out = np.clip(np.nan_to_num(np.asarray(pac, dtype=float), nan=0.0), 0.0, 1.0)
    out[w["ghi"].to_numpy() <= 0.0] = 0.0
    out.setflags(write=False)
    return out


def pv_profile_p_mw(p_peak_mw: float, tilt_deg: float, azimuth_deg: float, weather: Weather) -> np.ndarray:
    """Hourly AC power (MW) of a PV system of DC nameplate ``p_peak_mw`` over one year (8760)."""
    p_peak_mw = _check_positive("p_peak_mw", p_peak_mw)
    if not 0.0 <= float(tilt_deg) <= 90.0:
        raise ValueError(f"tilt_deg must be in [0, 90], got {tilt_deg!r}")
    if not 0.0 <= float(azimuth_deg) <= 360.0:
        raise ValueError(f"azimuth_deg must be in [0, 360], got {azimuth_deg!r}")
    return p_peak_mw * _pv_per_unit(float(tilt_deg), float(azimuth_deg), weather)


@functools.lru_cache(maxsize=64)
def _wind_per_unit(turbine_type: str, hub_height_m: float, weather: Weather) -> np.ndarray:
    """Power per unit of the turbine's nominal power, 8760 hourly values."""
    from windpowerlib import ModelChain, WindTurbine

    try:
        turbine = WindTurbine(hub_height=hub_height_m, turbine_type=turbine_type)
    except ValueError as exc:  # windpowerlib: hub height below half the rotor diameter
        msg = f"hub_height_m: {hub_height_m} m invalid for {turbine_type}: {exc}"
        raise ValueError(msg) from exc
    w = weather.frame
    frame = pd.DataFrame(
        {
            ("wind_speed", WIND_MEASUREMENT_HEIGHT_M): w["wind_speed"].to_numpy(),
            ("temperature", 2.0): w["temp_air"].to_numpy() + 273.15,
            ("pressure", 0.0): w["pressure"].to_numpy(),
            ("roughness_length", 0.0): ROUGHNESS_LENGTH_M,
        },
        index=w.index,
    )
    frame.columns.names = ["variable_name", "height"]
    chain = ModelChain(turbine, wind_speed_model="logarithmic").run_model(frame)
    out = np.asarray(chain.power_output, dtype=float) / float(turbine.nominal_power)
    out = np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0)
    out.setflags(write=False)
    return out


def wind_profile_p_mw(p_rated_mw: float, turbine_type: str, hub_height_m: float, weather: Weather) -> np.ndarray:
    """Hourly power (MW) of a wind unit of rating ``p_rated_mw`` over one year (8760 values)."""
    p_rated_mw = _check_positive("p_rated_mw", p_rated_mw)
    _check_turbine(turbine_type)
    problem = hub_height_problem(turbine_type, hub_height_m)
    if problem:
        raise ValueError(f"hub_height_m: {problem}")
    hub_height_m = float(hub_height_m)
    return p_rated_mw * _wind_per_unit(turbine_type, hub_height_m, weather)


def load_profile_p_mw(profile: str, p_peak_mw: float, path: str | None = None) -> np.ndarray:
    """Hourly active power (MW) of a load of annual peak ``p_peak_mw`` (8760 values)."""
    return _check_positive("p_peak_mw", p_peak_mw) * _profile_shape(profile, path)


def q_from_cos_phi_mvar(p_mw: np.ndarray | float, cos_phi: float) -> np.ndarray:
    """Reactive power (MVAr, inductive = positive) for active power ``p_mw`` at ``cos_phi``."""
    return np.asarray(p_mw, dtype=float) * math.tan(math.acos(cos_phi))


# --------------------------------------------------------------------------------------------------
# Sampling the periodic hourly series at steps
# --------------------------------------------------------------------------------------------------
def step_means_p_mw(hourly_p_mw: np.ndarray, start_s: float, step_s: float, n: int) -> np.ndarray:
    """Mean power over ``[start_s + k*step_s, start_s + (k+1)*step_s)`` for ``k = 0 .. n-1``.

    ``hourly_p_mw`` is one year of hourly means along its last axis (piecewise constant, periodic:
    a run past the end of the year wraps to its start); a 2-D array holds one unit per row and
    gives an ``(units, n)`` result. ``start_s`` is in seconds since hour-of-year 0.
    """
    if step_s <= 0:
        raise ValueError(f"step must be > 0 s, got {step_s!r}")
    hourly = np.asarray(hourly_p_mw, dtype=float)
    hours = hourly.shape[-1]
    if start_s % S_PER_H == 0 and step_s == S_PER_H:
        idx = (int(start_s // S_PER_H) + np.arange(n)) % hours
        return hourly[..., idx]
    zeros = np.zeros((*hourly.shape[:-1], 1))
    cum = np.concatenate((zeros, np.cumsum(hourly, axis=-1)), axis=-1)  # MWh up to hour i
    year_s = hours * S_PER_H
    edges = start_s + step_s * np.arange(n + 1, dtype=float)
    years, rest_s = np.divmod(edges, year_s)
    hour = np.minimum((rest_s // S_PER_H).astype(int), hours - 1)
    frac_h = (rest_s - hour * S_PER_H) / S_PER_H
    energy_mwh = years * cum[..., -1:] + cum[..., hour] + frac_h * hourly[..., hour]
    return np.diff(energy_mwh, axis=-1) / (step_s / S_PER_H)


# --------------------------------------------------------------------------------------------------
# Forecasts
# --------------------------------------------------------------------------------------------------
def forecast_p_mw(
    actual_p_mw: np.ndarray,
    error_std_mw: float,
    rng: np.random.Generator,
    upper_mw: float | None = None,
    zero_where_actual_zero: bool = False,
) -> np.ndarray:
    """Forecast of ``actual_p_mw`` (the true values over the horizon, lead 1 .. H).

    Random-walk error ``e_k = sum_{j<=k} z_j * error_std_mw / sqrt(H)`` (std at lead k+1 is
    ``error_std_mw * sqrt((k+1)/H)``), result clipped to ``[0, upper_mw]`` (``upper_mw=None``: no
    upper bound), and set to 0 where the actual is 0 if ``zero_where_actual_zero``.
    ``error_std_mw == 0`` returns the actual values unchanged (no random numbers drawn).
    """
    actual = np.asarray(actual_p_mw, dtype=float)
    error_std_mw = _check_positive("forecast error std (MW)", error_std_mw)
    if error_std_mw == 0.0 or actual.size == 0:
        return actual.copy()
    steps = rng.standard_normal(actual.size) * (error_std_mw / math.sqrt(actual.size))
    fc = np.clip(actual + np.cumsum(steps), 0.0, upper_mw)
    if zero_where_actual_zero:
        fc[actual == 0.0] = 0.0
    return fc


def entity_rng(seed: int, eid: str, planning_time_s: int) -> np.random.Generator:
    """Generator for one entity's forecast at one planning time (stable across processes)."""
    return np.random.default_rng([seed, zlib.crc32(eid.encode("utf-8")), planning_time_s])


# --------------------------------------------------------------------------------------------------
# mosaik adapter
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _ModelSpec:
    params: tuple[str, ...]
    persistent: tuple[str, ...]


_MODELS: dict[str, _ModelSpec] = {
    "PV": _ModelSpec(("p_peak_mw", "tilt_deg", "azimuth_deg", "forecast_error_std"), ("p_mw",)),
    "Wind": _ModelSpec(("p_rated_mw", "turbine_type", "hub_height_m", "forecast_error_std"), ("p_mw",)),
    "Load": _ModelSpec(("p_peak_mw", "profile", "cos_phi", "forecast_error_std"), ("p_mw", "q_mvar")),
    # A given daily series (e.g. a paper's 24 hourly values), repeated every day: a load (with q from
    # cos_phi) or a generation (forecasts clipped to [0, its peak], zero where the actual is zero).
    "Series": _ModelSpec(("p_mw_per_hour", "kind", "cos_phi", "forecast_error_std"), ("p_mw", "q_mvar")),
}
_FORECAST_ATTR = "forecast_p_mw"
_GROUP_MODEL = "LoadGroup"
_GROUP_SPEC = _ModelSpec(("p_peak_mw", "profile", "cos_phi"), ("p_mw", "q_mvar"))

META: Meta = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        **{
            name: {"public": True, "params": list(spec.params), "attrs": [*spec.persistent, _FORECAST_ATTR]}
            for name, spec in _MODELS.items()
        },
        _GROUP_MODEL: {"public": True, "params": list(_GROUP_SPEC.params), "attrs": list(_GROUP_SPEC.persistent)},
    },
}


@dataclass(frozen=True)
class _Unit:
    """What the adapter keeps per entity: the annual series (``scale * shape``; loads on one profile share
    its ``shape``, so thousands of them cost one year of memory, not one each) and how to forecast it."""

    shape: np.ndarray
    scale: float
    error_std_mw: float
    upper_mw: float | None
    zero_where_actual_zero: bool
    cos_phi: float | None


@dataclass(frozen=True)
class _Group:
    """A ``LoadGroup``: the profile's hourly year for a peak of 1 MW, each member's peak and tan(phi)."""

    hourly_per_mw: np.ndarray
    p_peak_mw: np.ndarray
    tan_phi: np.ndarray


def _load_group(params: dict[str, Any], path: str | None) -> _Group:
    """A ``LoadGroup`` from its params (ValueError naming the bad one)."""
    unknown = set(params) - set(_GROUP_SPEC.params)
    if unknown:
        raise ValueError(f"{_GROUP_MODEL}: unknown params {sorted(unknown)}; valid: {list(_GROUP_SPEC.params)}")
    peaks = params.get("p_peak_mw")
    if not isinstance(peaks, (list, tuple)) or not peaks or "profile" not in params:
        raise ValueError(f"{_GROUP_MODEL}: p_peak_mw (a non-empty list) and profile are required")
    p_peak = np.array([_check_positive(f"p_peak_mw[{k}]", v) for k, v in enumerate(peaks)])
    cos_phi = params.get("cos_phi", 0.95)
    cos = np.asarray([cos_phi] * len(p_peak) if isinstance(cos_phi, (int, float)) else cos_phi, dtype=float)
    if cos.shape != p_peak.shape:
        raise ValueError(f"{_GROUP_MODEL}: cos_phi must be one value or one per member ({len(p_peak)})")
    if not ((cos > 0.0) & (cos <= 1.0)).all():
        raise ValueError(f"{_GROUP_MODEL}: cos_phi must be in (0, 1], got {cos[(cos <= 0) | (cos > 1)][0]!r}")
    return _Group(
        _profile_shape(params["profile"], path),
        p_peak,
        np.array([math.tan(math.acos(c)) for c in cos.tolist()]),
    )


@dataclass(frozen=True)
class ProfileParams:
    """The sim params of :class:`ProfileSim` (``world.start("Profiles", **params)``)."""

    step_size: int = S_PER_H
    """Time units per step."""
    start: str = "2016-01-01 00:00:00"
    """Time stamp of step 0 (its hour of the year selects the weather and profile rows)."""
    forecast_every_s: float = 86400
    """Seconds between planning instants (a forecast is issued at each)."""
    forecast_horizon_steps: int = 24
    """Length of each forecast in steps."""
    seed: int = 0
    """Seed of the forecast errors (each entity draws from its own stream)."""
    load_profiles_file: str | None = None
    """A CSV of normalised load profiles (default: the embedded SimBench profiles)."""


class ProfileSim(mosaik_api_v3.Simulator):
    """mosaik adapter for PV, wind and load profiles (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(META)
        self._sid = ""
        self._time_resolution = 1.0
        self._step_size = S_PER_H
        self._start = ""
        self._offset_s = 0.0
        self._forecast_every_s = 86400.0
        self._horizon = 24
        self._seed = 0
        self._profiles_file: str | None = None
        self._weather: Weather | None = None
        self._units: dict[str, _Unit] = {}
        self._groups: dict[str, _Group] = {}
        self._counters: dict[str, int] = dict.fromkeys([*_MODELS, _GROUP_MODEL], 0)
        self._year = 2016
        self._out: dict[str, dict[str, Any]] = {}
        self._eids: list[str] = []
        # the distinct hourly years (shapes) of the units, stacked at the first step after a create; per
        # unit (in _eids' order) its shape's row and its scale
        self._matrix: np.ndarray | None = None
        self._shape_row = np.zeros(0, dtype=np.int64)
        self._scale = np.zeros(0)

    @override
    def init(self, sid: SimId, time_resolution: float = 1.0, **sim_params: Any) -> Meta:
        """``sim_params`` are the fields of :class:`ProfileParams`."""
        params = ProfileParams(**sim_params)
        step_size, start, seed = params.step_size, params.start, params.seed
        forecast_every_s, forecast_horizon_steps = params.forecast_every_s, params.forecast_horizon_steps
        load_profiles_file = params.load_profiles_file
        if not (isinstance(step_size, int) and step_size > 0):
            raise ValueError(f"step_size must be a positive integer (time units), got {step_size!r}")
        if not (float(time_resolution) > 0):
            raise ValueError(f"time_resolution must be > 0, got {time_resolution!r}")
        if not float(forecast_every_s) > 0:
            raise ValueError(f"forecast_every_s must be > 0, got {forecast_every_s!r}")
        if not (isinstance(forecast_horizon_steps, int) and forecast_horizon_steps > 0):
            raise ValueError(f"forecast_horizon_steps must be a positive integer, got {forecast_horizon_steps!r}")
        if not (isinstance(seed, int) and seed >= 0):
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        try:
            ts = pd.Timestamp(start)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"start: cannot parse {start!r} as a time stamp") from exc
        self._sid = sid
        self._time_resolution = float(time_resolution)
        self._step_size = step_size
        self._start = str(start)
        self._offset_s = start_offset_s(ts)
        self._year = int(ts.year)
        self._forecast_every_s = float(forecast_every_s)
        self._horizon = forecast_horizon_steps
        self._seed = seed
        self._profiles_file = None if load_profiles_file is None else str(load_profiles_file)
        logger.debug(
            "%s: start %s (hour-of-year %.2f), step %s s, forecasts every %s s for %d steps",
            sid,
            start,
            self._offset_s / S_PER_H,
            self.step_s,
            forecast_every_s,
            forecast_horizon_steps,
        )
        return self.meta

    @property
    def step_s(self) -> float:
        return self._step_size * self._time_resolution

    def _weather_for_run(self) -> Weather:
        if self._weather is None:
            self._weather = tmy_weather(self._year)
        return self._weather

    def _make_unit(self, model: str, params: dict[str, Any]) -> _Unit:
        unknown = set(params) - set(_MODELS[model].params)
        if unknown:
            raise ValueError(f"{model}: unknown params {sorted(unknown)}; valid: {list(_MODELS[model].params)}")
        error_frac = _check_positive("forecast_error_std", params.get("forecast_error_std", 0.0))
        if model == "PV":
            if "p_peak_mw" not in params:
                raise ValueError("PV: p_peak_mw is required")
            rating = _check_positive("p_peak_mw", params["p_peak_mw"])
            series = pv_profile_p_mw(
                rating,
                params.get("tilt_deg", 30.0),
                params.get("azimuth_deg", 180.0),
                self._weather_for_run(),
            )
            return _Unit(series, 1.0, error_frac * rating, rating, True, None)
        if model == "Wind":
            if "p_rated_mw" not in params:
                raise ValueError("Wind: p_rated_mw is required")
            rating = _check_positive("p_rated_mw", params["p_rated_mw"])
            series = wind_profile_p_mw(
                rating,
                params.get("turbine_type", DEFAULT_TURBINE_TYPE),
                params.get("hub_height_m", DEFAULT_HUB_HEIGHT_M),
                self._weather_for_run(),
            )
            return _Unit(series, 1.0, error_frac * rating, rating, False, None)
        if model == "Series":
            return self._series_unit(params, error_frac)
        if "p_peak_mw" not in params or "profile" not in params:
            raise ValueError("Load: p_peak_mw and profile are required")
        rating = _check_positive("p_peak_mw", params["p_peak_mw"])
        cos_phi = float(params.get("cos_phi", 0.95))
        if not 0.0 < cos_phi <= 1.0:
            raise ValueError(f"cos_phi must be in (0, 1], got {cos_phi!r}")
        shape = _profile_shape(params["profile"], self._profiles_file)
        return _Unit(shape, rating, error_frac * rating, None, False, cos_phi)

    @staticmethod
    def _series_unit(params: dict[str, Any], error_frac: float) -> _Unit:
        values = params.get("p_mw_per_hour")
        if not isinstance(values, (list, tuple)) or not values or HOURS_PER_DAY % len(values):
            raise ValueError("Series: p_mw_per_hour must be a list of hourly values whose length divides 24")
        daily = np.asarray([float(v) for v in values], dtype=float)
        if not np.isfinite(daily).all() or (daily < 0).any():
            raise ValueError("Series: p_mw_per_hour must hold finite values >= 0")
        kind = params.get("kind", "load")
        if kind not in ("load", "generation"):
            raise ValueError(f"Series: kind must be 'load' or 'generation', got {kind!r}")
        series = np.tile(np.repeat(daily, HOURS_PER_DAY // len(daily)), HOURS_PER_YEAR // HOURS_PER_DAY)
        peak = float(daily.max())
        if kind == "generation":
            return _Unit(series, 1.0, error_frac * peak, peak, True, None)
        cos_phi = float(params.get("cos_phi", 0.95))
        if not 0.0 < cos_phi <= 1.0:
            raise ValueError(f"cos_phi must be in (0, 1], got {cos_phi!r}")
        return _Unit(series, 1.0, error_frac * peak, None, False, cos_phi)

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        if model == _GROUP_MODEL:
            return self._create_groups(num, _load_group(model_params, self._profiles_file))
        if model not in _MODELS:
            raise ValueError(f"model: unknown model {model!r}; valid: {[*_MODELS, _GROUP_MODEL]}")
        self._matrix = None  # stacked once, not per create (quadratic for thousands of entities)
        return self._new_entities(num, model, self._units, self._make_unit(model, model_params))

    def _create_groups(self, num: int, group: _Group) -> list[CreateResult]:
        return self._new_entities(num, _GROUP_MODEL, self._groups, group)

    def _new_entities(self, num: int, model: str, store: dict[str, Any], value: Any) -> list[CreateResult]:
        """``num`` entities ``<model>-<k>`` (k counted per model), each kept in ``store`` with ``value``."""
        entities: list[CreateResult] = []
        for _ in range(num):
            eid = f"{model}-{self._counters[model]}"
            self._counters[model] += 1
            store[eid] = value
            entities.append({"eid": eid, "type": model})
        return entities

    def _windows_p_mw(self, start_s: float, n: int) -> np.ndarray:
        """Every unit's mean power over the ``n`` steps from ``start_s``, one row per entity in
        :attr:`_eids`' order: the distinct shapes' step means, scaled per unit."""
        if self._matrix is None:
            self._eids = list(self._units)
            units = list(self._units.values())
            row_of: dict[int, int] = {}
            shapes: list[np.ndarray] = []
            for u in units:
                if id(u.shape) not in row_of:
                    row_of[id(u.shape)] = len(shapes)
                    shapes.append(u.shape)
            self._matrix = np.stack(shapes) if shapes else np.zeros((0, HOURS_PER_YEAR))
            self._shape_row = np.array([row_of[id(u.shape)] for u in units], dtype=np.int64)
            self._scale = np.array([u.scale for u in units], dtype=float)
        means = step_means_p_mw(self._matrix, start_s, self.step_s, n)
        return means[self._shape_row] * self._scale[:, None]

    def _is_planning_time(self, t_s: float) -> bool:
        return math.isclose(math.remainder(t_s, self._forecast_every_s), 0.0, abs_tol=1e-6)

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time:
        t_s = time * self._time_resolution
        planning = self._is_planning_time(t_s)
        n = self._horizon if planning else 1
        windows = self._windows_p_mw(self._offset_s + t_s, n)
        out: dict[str, dict[str, Any]] = {}
        for row, (eid, p_mw) in enumerate(zip(self._eids, windows[:, 0].tolist(), strict=True)):
            unit = self._units[eid]
            data: dict[str, Any] = {"p_mw": p_mw}
            if unit.cos_phi is not None:
                data["q_mvar"] = p_mw * math.tan(math.acos(unit.cos_phi))
            if planning:
                rng = entity_rng(self._seed, eid, round(t_s))
                fc = forecast_p_mw(windows[row], unit.error_std_mw, rng, unit.upper_mw, unit.zero_where_actual_zero)
                data[_FORECAST_ATTR] = fc.tolist()
            else:
                data[_FORECAST_ATTR] = None
            out[eid] = data
        for eid, group in self._groups.items():
            per_mw = float(step_means_p_mw(group.hourly_per_mw, self._offset_s + t_s, self.step_s, 1)[0])
            p_mw = per_mw * group.p_peak_mw
            out[eid] = {"p_mw": p_mw.tolist(), "q_mvar": (p_mw * group.tan_phi).tolist()}
        self._out = out
        return time + self._step_size

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        data: dict[str, Any] = {}
        for eid, attrs in outputs.items():
            if eid not in self._out:
                raise ValueError(f"unknown entity {eid!r}")
            values = self._out[eid]
            data[eid] = {attr: values[attr] for attr in attrs if attr in values}
        return data


def main() -> None:
    mosaik_api_v3.start_simulation(ProfileSim(), "mmg-cosim profile simulator (PV, wind, load)")


if __name__ == "__main__":
    main()
