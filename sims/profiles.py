"""PV, wind and load profiles: actual power each step and day-ahead forecasts at planning times.

The module has two halves:

* **Math** (pure functions, no mosaik): one year of interval means per unit at the data's native
  resolution (a :class:`Shape`: hourly for PV, wind and ``Series``, hourly or quarter-hourly for load
  profiles), :func:`pv_profile_p_mw`, :func:`wind_profile_p_mw`, :func:`load_profile_p_mw` (hourly
  values); sampling of such a periodic series at arbitrary steps, :func:`step_means_p_mw` and
  :func:`pv_step_means_p_mw`; the forecast error model, :func:`forecast_p_mw`.
* **Adapter** :class:`ProfileSim` (a ``mosaik_api_v3.Simulator``) that only translates.

Time axis
---------
Every profile is a 365-day year of interval means at its native resolution ``R``: 8760 hourly values
(PV, wind, ``Series``, a user's hourly load file) or 35040 quarter-hour values (the embedded load
profiles); value *i* is the mean power over ``[i R, (i+1) R)`` after 1 January 00:00. A run's time 0
is the instant of the sim param ``start`` in that year, counted in a 365-day calendar: in a leap year
29 February is skipped (a start on 29 February is treated as 28 February). Runs longer than a year
wrap around to 1 January. A step at time *t* outputs the mean power over ``[t, t + step)``, sampled as
"Sampling" says: a step of at least ``R`` (``step_size=3600`` on hourly data: exactly one value) gives
the time-weighted mean of the native intervals it covers; a shorter step gives the mean of a
mean-preserving curve through the data, so a 15 min run and an hourly run see the same energy in every
hour.

Sampling
--------
Whether a profile is sampled piecewise constant or along its sub-interval curve is decided once per
simulator: by its step (``step_size * time_resolution`` seconds) against the profile's ``R``. With
``step >= R`` the profile is piecewise constant (value *i* all over interval *i*). With ``step < R``
it follows the curve below; forecast windows (``forecast_step_s``) are means of the same signal.

*Interpolation* (loads below their resolution, wind, ``Series``, ``LoadGroup``, and PV where the
clear-sky rule below does not apply): the continuous piecewise-linear curve with nodes at every
interval's start, middle and end. With ``v_i`` the mean of interval *i* (periodic: ``v_-1 = v_N-1``)
and ``U`` the curve's bound (PV: ``PV_INVERTER_ETA`` per unit of nameplate, wind: the rating, a
generation ``Series``: its largest value, loads: none, ``U = inf``; a ``U`` below the data's maximum is
raised to it), the boundary between intervals *i-1* and *i* takes::

    b_i = clip((v_i-1 + v_i) / 2,  max(0, 2 max(v_i-1, v_i) - U),  min(U, 2 min(v_i-1, v_i)))

(the mean of the neighbours, clipped so both intervals can keep their means within ``[0, U]``). Where
that range is empty (only with a finite ``U``: ``|v_i - v_i-1| > U/2``) each side clips the mean into
its own range ``[max(0, 2 v - U), min(U, 2 v)]`` and the curve jumps there. On interval *i* the curve
runs linearly from ``s_i`` (its start node) to the middle node ``m_i`` and on to ``e_i`` (its end node),
with ``m_i = 2 v_i - (s_i + e_i) / 2``, so its mean ``(s_i + 2 m_i + e_i) / 4`` is exactly ``v_i``. All
three nodes lie in ``[0, U]``, so the curve does: an interval of mean 0 stays 0, an interval next to
one of mean 0 starts (or ends) at 0, a constant series stays constant and a linear one is reproduced.
A step's value is the curve's exact integral over the step (quadratic within each half interval)
divided by its length: the mean over every native interval is its data value (energy preserved).

*PV below an hour*: each hour's energy (the hourly PVWatts value ``P_h`` of the TMY weather, unchanged)
is distributed within the hour by the shape of the clear-sky global horizontal irradiance (GHI) at the
site: ``p(t) = P_h * G(t) / mean_h(G)``, ``G`` pvlib's Ineichen clear sky (Linke turbidity climatology)
with pvlib's solar position (``ephemeris``) at nodes every ``CLEAR_SKY_NODE_S = 60`` s, linear in
between, 0 where the sun's apparent elevation is <= 0. So PV is 0 while the sun is down (to the
1-minute nodes) and every hour's mean is ``P_h`` exactly. GHI rather than the plane of array: one
shape for every PV plane of a site (shared by a fleet); the plane's geometry changes slowly within an
hour, so the difference is second order (the hour's energy comes from the plane-of-array model). An hour
whose clear sky has no energy but ``P_h > 0``, or whose shaped peak ``P_h * max_h(G) / mean_h(G)`` would
exceed ``U``, falls back to the interpolation above. Hourly weather data holds no intra-hour cloud
transients: sub-hourly PV is a clear-sky-shaped, smoother signal than real PV under broken clouds (its
steps at hour boundaries follow the hourly clearness).

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
``scenarios/data/load_profiles.csv`` (35040 quarter-hours, each column normalised so that its hourly
means peak at 1.0, see ``load_profiles.md``): ``p_peak_mw`` is the peak of the hourly mean power, and a
quarter-hour (or a shorter step) may exceed it (the embedded profiles' quarter-hours reach 1.07 to 1.57
times it). A user's file (``load_profiles_file``) holds 8760 hourly or 35040 quarter-hour rows
(:func:`load_profiles`). ``q_mvar = p_mw * tan(acos(cos_phi))`` (inductive, consuming, for
``0 < cos_phi <= 1``).

A ``LoadGroup`` is many loads on one profile (a network operator's feeder loads): params ``p_peak_mw``
(a list, one per member), ``profile`` and ``cos_phi`` (one value or a list); its ``p_mw`` and
``q_mvar`` are lists in the members' order, each the value a ``Load`` of that size outputs (no forecast:
a consumer that plans gets forecasts from ``Load`` entities). It feeds the grid simulator's load group of
the same members with one input per attribute instead of one per member.

Forecast error model
--------------------
A forecast issued at a planning time holds ``H = forecast_horizon_steps`` values, each over one
forecast step of ``forecast_step_s`` seconds (default: the simulator's own step; a positive multiple
of it, e.g. hourly values for an hourly EMS while the simulator steps every 15 min). Its actual values
``a_k`` are the mean power over forecast step *k* from the planning time (the mean of the simulator's
steps it holds), and the forecast is ``f_k = a_k + e_k`` with
``e_k = sum_{j<=k} z_j * sigma / sqrt(H)``, ``z_j ~ N(0, 1)`` i.i.d., ``k = 0 .. H-1`` (one per
forecast step): a Gaussian random walk whose standard deviation grows with lead time as
``sigma * sqrt((k+1)/H)`` and reaches ``sigma`` at the end of the horizon, errors being correlated
in time as real forecast errors are. ``sigma = forecast_error_std * rating`` (``p_peak_mw`` or
``p_rated_mw``). The result is clipped to ``[0, rating]`` for PV and wind and to ``>= 0`` for loads;
a PV forecast is 0 wherever the actual value (the forecast step's mean) is 0 (night).
``forecast_error_std = 0`` returns the actual values exactly. The random numbers come from
``numpy.random.default_rng([seed, crc32(eid), planning_time_s])``: the same seed gives the same
forecasts regardless of which other entities exist or in which order they are created.

mosaik specifics
----------------
The simulator is ``time-based`` and every output is persistent, so it plugs into time-based
consumers (EMS, recorder, other people's simulators) without mosaik's warning about non-persistent
outputs on non-trigger inputs. Between planning times ``forecast_p_mw`` is ``None``: a consumer takes
a list as a new forecast and ``None`` as "no new forecast this step" (mosaik passes ``None`` on; it
warns only for an attribute missing from ``get_data``). The sim param ``load_profiles_file`` points to
a CSV with a ``time`` column and one column per profile, 8760 hourly or 35040 quarter-hour rows
(default: ``scenarios/data/load_profiles.csv``).

Cost: the distinct shapes (loads on one profile share theirs, PV units one per plane, wind units one
per turbine type and hub height) are stacked with their cumulative sums at the native resolution; a
window's mean costs a few look-ups per shape, whatever the step, and the step means of every shape are
computed for a block of steps at once (up to ``STEP_BLOCK_DAYS`` days, at most ``STEP_BLOCK_VALUES``
values), so no year of sub-hourly values is ever held. Clear-sky nodes are computed for 7 days at a
time and cached.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import importlib.util
import logging
import math
import warnings
import zlib
from collections.abc import Sequence
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
S_PER_DAY = 86400
DAYS_PER_YEAR = 365
YEAR_S = HOURS_PER_YEAR * S_PER_H
QUARTER_HOUR_S = 900
LOAD_ROWS_RESOLUTION_S: dict[int, int] = {HOURS_PER_YEAR: S_PER_H, 4 * HOURS_PER_YEAR: QUARTER_HOUR_S}
"""The row counts a load profile file may have and the interval of its rows in seconds."""
WIND_UPPER_PER_UNIT = 1.0
CLEAR_SKY_NODE_S = 60
"""Spacing of the clear-sky nodes that shape PV within an hour (seconds, divides an hour)."""
CLEAR_SKY_BLOCK_DAYS = 7
"""Days of clear-sky nodes computed (and cached) at once."""
STEP_BLOCK_DAYS = 7
"""Days of step means the simulator computes at once (fewer if :data:`STEP_BLOCK_VALUES` says so)."""
STEP_BLOCK_VALUES = 2**21
"""At most this many step means (shapes x steps, 16 MB) are held per simulator."""


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


@dataclass(frozen=True, eq=False)
class Shape:
    """One unit's profile for a scale of 1: a periodic year of interval means and how to sample it (see
    "Sampling" in the module docstring). Units on one shape share it; hashing is by identity."""

    values: np.ndarray
    """The interval means (read-only); value *i* is the mean over ``[i, i+1) * resolution_s``."""
    resolution_s: int
    """Length of an interval in seconds: 3600 (hourly) or 900 (quarter-hourly)."""
    upper: float = math.inf
    """Bound of the curve below the resolution (a rating per unit of scale; inf: none)."""
    clear_sky: Weather | None = None
    """PV: below an hour, each hour's energy follows this site's clear-sky GHI (None: interpolation)."""


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
    """The normalised load profiles of ``path`` (default: the embedded ``scenarios/data/load_profiles.csv``):
    the table as in the file, index ``time``, one column per profile (finite values >= 0).

    A file holds one 365-day year at one resolution, told by its row count (:data:`LOAD_ROWS_RESOLUTION_S`):
    8760 hourly rows or 35040 quarter-hour rows; any other count is a ValueError naming the file and the
    counts accepted, and so is a ``time`` column whose first two stamps are not one row's interval apart
    (when they parse as time stamps). :func:`load_profiles_resolution_s` gives the resolution."""
    source = path or "the embedded load_profiles.csv"
    if path is None:
        embedded = importlib.resources.files("scenarios") / "data" / "load_profiles.csv"
        with importlib.resources.as_file(embedded) as p:
            frame = pd.read_csv(p, index_col="time")
    else:
        frame = pd.read_csv(path, index_col="time")
    resolution_s = LOAD_ROWS_RESOLUTION_S.get(len(frame))
    if resolution_s is None:
        accepted = " or ".join(f"{rows} ({s} s rows)" for rows, s in LOAD_ROWS_RESOLUTION_S.items())
        raise ValueError(f"{source}: expected {accepted}, got {len(frame)} rows")
    problem = _time_column_problem(frame.index, resolution_s)
    if problem:
        raise ValueError(f"{source}: {problem}")
    if frame.isna().any().any():
        raise ValueError(f"{source}: holds NaN in {list(frame.columns[frame.isna().any()])}")
    problem = profile_values_problem(frame)
    if problem:
        raise ValueError(f"{source}: {problem}")
    return frame


def load_profiles_resolution_s(path: str | None = None) -> int:
    """The interval of the rows of :func:`load_profiles` ``(path)`` in seconds: 3600 or 900."""
    return LOAD_ROWS_RESOLUTION_S[len(load_profiles(path))]


def _time_column_problem(index: pd.Index, resolution_s: int) -> str | None:
    """What is wrong with a profile file's ``time`` column (None if nothing): its first two entries, if both
    parse as time stamps, must be ``resolution_s`` apart (a column of anything else is not checked)."""
    if len(index) < 2 or not (pd.api.types.is_object_dtype(index) or pd.api.types.is_string_dtype(index)):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns when it cannot infer a format
        stamps = pd.to_datetime(pd.Series(index[:2].astype(str)), errors="coerce")
    if stamps.isna().any():
        return None
    spacing_s = (stamps.iloc[1] - stamps.iloc[0]).total_seconds()
    if spacing_s != resolution_s:
        return (
            f"{len(index)} rows mean {resolution_s} s rows, but the time column steps {spacing_s:g} s "
            f"({index[0]!r}, {index[1]!r})"
        )
    return None


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
def _profile_shape(profile: str, path: str | None = None) -> Shape:
    """A load profile's normalised year at the file's resolution (hourly means peak at 1), one read-only
    shape shared by every load on it; its curve below the resolution is unbounded."""
    _check_profile(profile, path)
    values = load_profiles(path)[profile].to_numpy(dtype=float).copy()
    values.flags.writeable = False
    return Shape(values, load_profiles_resolution_s(path))


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
    return p_peak_mw * pv_shape(tilt_deg, azimuth_deg, weather).values


def pv_shape(tilt_deg: float, azimuth_deg: float, weather: Weather) -> Shape:
    """The hourly AC power per unit DC nameplate of a PV plane as a :class:`Shape`: bounded by the
    inverter's limit, each hour shaped by ``weather``'s clear sky below an hour (one per plane and site)."""
    if not 0.0 <= float(tilt_deg) <= 90.0:
        raise ValueError(f"tilt_deg must be in [0, 90], got {tilt_deg!r}")
    if not 0.0 <= float(azimuth_deg) <= 360.0:
        raise ValueError(f"azimuth_deg must be in [0, 360], got {azimuth_deg!r}")
    return _pv_shape(float(tilt_deg), float(azimuth_deg), weather)


@functools.lru_cache(maxsize=64)
def _pv_shape(tilt_deg: float, azimuth_deg: float, weather: Weather) -> Shape:
    return Shape(_pv_per_unit(tilt_deg, azimuth_deg, weather), S_PER_H, PV_INVERTER_ETA, weather)


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
    return p_rated_mw * wind_shape(turbine_type, hub_height_m, weather).values


def wind_shape(turbine_type: str, hub_height_m: float, weather: Weather) -> Shape:
    """The hourly power per unit of rating of a turbine as a :class:`Shape` (bounded by the rating)."""
    _check_turbine(turbine_type)
    problem = hub_height_problem(turbine_type, hub_height_m)
    if problem:
        raise ValueError(f"hub_height_m: {problem}")
    return _wind_shape(turbine_type, float(hub_height_m), weather)


@functools.lru_cache(maxsize=64)
def _wind_shape(turbine_type: str, hub_height_m: float, weather: Weather) -> Shape:
    return Shape(_wind_per_unit(turbine_type, hub_height_m, weather), S_PER_H, WIND_UPPER_PER_UNIT)


def load_profile_p_mw(profile: str, p_peak_mw: float, path: str | None = None) -> np.ndarray:
    """Hourly active power (MW, 8760 values: the hourly means of the file's rows) of a load whose hourly
    means peak at ``p_peak_mw``."""
    shape = _profile_shape(profile, path)
    hourly = shape.values.reshape(HOURS_PER_YEAR, -1).mean(axis=1) if shape.resolution_s < S_PER_H else shape.values
    return _check_positive("p_peak_mw", p_peak_mw) * hourly


def q_from_cos_phi_mvar(p_mw: np.ndarray | float, cos_phi: float) -> np.ndarray:
    """Reactive power (MVAr, inductive = positive) for active power ``p_mw`` at ``cos_phi``."""
    return np.asarray(p_mw, dtype=float) * math.tan(math.acos(cos_phi))


# --------------------------------------------------------------------------------------------------
# Sampling a periodic year of interval means at steps
# --------------------------------------------------------------------------------------------------
def _boundary_p(v_a: np.ndarray, v_b: np.ndarray, v_own: np.ndarray, upper: np.ndarray | float) -> np.ndarray:
    """The curve's value on ``v_own``'s side of the boundary between intervals of means ``v_a`` (before) and
    ``v_b`` (after): their mean, clipped into ``[max(0, 2 max(v) - U), min(U, 2 min(v))]`` (every value both
    intervals allow), or, where that range is empty (only with a finite ``upper`` U), into the range of
    ``v_own`` alone, ``[max(0, 2 v_own - U), min(U, 2 v_own)]`` (a jump at that boundary)."""
    mid = 0.5 * (v_a + v_b)
    lo = np.maximum(0.0, 2.0 * np.maximum(v_a, v_b) - upper)
    hi = np.minimum(upper, 2.0 * np.minimum(v_a, v_b))
    own_lo, own_hi = np.maximum(0.0, 2.0 * v_own - upper), np.minimum(upper, 2.0 * v_own)
    return np.where(lo <= hi, np.minimum(np.maximum(mid, lo), hi), np.minimum(np.maximum(mid, own_lo), own_hi))


def _interp_nodes(
    v_prev: np.ndarray, v: np.ndarray, v_next: np.ndarray, upper: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (start, middle, end) nodes of the curve over intervals of means ``v`` between ``v_prev`` and
    ``v_next``; the middle node makes the interval's mean ``(start + 2 middle + end) / 4`` equal ``v``."""
    start = _boundary_p(v_prev, v, v, upper)
    end = _boundary_p(v, v_next, v, upper)
    return start, 2.0 * v - 0.5 * (start + end), end


def _interp_partial(start: np.ndarray, middle: np.ndarray, end: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Integral of the curve from an interval's start to ``frac`` (0..1) of it, in value x intervals."""
    a = np.minimum(frac, 0.5)
    b = np.maximum(frac - 0.5, 0.0)
    return start * a + (middle - start) * a * a + middle * b + (end - middle) * b * b


def interpolated_p_mw(
    values_p_mw: np.ndarray, t_s: np.ndarray, *, resolution_s: float = S_PER_H, upper_mw: float | None = None
) -> np.ndarray:
    """The sub-interval curve of the periodic interval means ``values_p_mw`` at instants ``t_s`` (seconds since
    the start of interval 0): the continuous piecewise-linear curve of the module docstring ("Sampling")."""
    values = np.asarray(values_p_mw, dtype=float)
    pos = np.asarray(t_s, dtype=float) / resolution_s
    i = np.floor(pos).astype(np.int64)
    frac = pos - i
    n = values.shape[-1]
    upper = math.inf if upper_mw is None else max(float(upper_mw), float(values.max()))
    start, middle, end = _interp_nodes(values[(i - 1) % n], values[i % n], values[(i + 1) % n], upper)
    first = frac <= 0.5
    return np.where(first, start + (middle - start) * 2.0 * frac, middle + (end - middle) * (2.0 * frac - 1.0))


@dataclass(frozen=True)
class _ClearSkyDays:
    """Clear-sky GHI (W/m2) of a block of days at nodes every :data:`CLEAR_SKY_NODE_S` (day x node, the last
    node of a day at 24:00) and what shapes an hour with it: the trapezoid integral from the day's start
    (W/m2 x node), each hour's integral and the ratio of its largest node to its mean (0 without energy)."""

    ghi: np.ndarray
    cum: np.ndarray
    hour_total: np.ndarray
    peak_ratio: np.ndarray


@functools.lru_cache(maxsize=16)
def _clear_sky_days(weather: Weather, block: int) -> _ClearSkyDays:
    """Days ``[block * 7, block * 7 + 7)`` of the 365-day year (of ``weather``'s calendar): pvlib's solar
    position (``ephemeris``) and Ineichen clear sky (Linke turbidity climatology) at the site, GHI set to 0
    where the sun's apparent elevation is <= 0."""
    import pvlib

    first = block * CLEAR_SKY_BLOCK_DAYS
    days = min(CLEAR_SKY_BLOCK_DAYS, DAYS_PER_YEAR - first)
    per_day = S_PER_DAY // CLEAR_SKY_NODE_S
    starts = pd.DatetimeIndex(weather.frame.index[(first + np.arange(days)) * HOURS_PER_DAY]).tz_convert("UTC")
    offsets = np.arange(per_day + 1) * np.timedelta64(CLEAR_SKY_NODE_S, "s")
    stamps = starts.tz_localize(None).to_numpy()[:, None] + offsets[None, :]
    times = pd.DatetimeIndex(stamps.ravel()).tz_localize("UTC")
    sun = pvlib.solarposition.get_solarposition(
        times, weather.latitude, weather.longitude, altitude=weather.altitude_m, method="ephemeris"
    )
    site = pvlib.location.Location(weather.latitude, weather.longitude, altitude=weather.altitude_m)
    ghi = np.nan_to_num(site.get_clearsky(times, model="ineichen", solar_position=sun)["ghi"].to_numpy(float))
    ghi = np.where(sun["apparent_elevation"].to_numpy(float) > 0.0, np.maximum(ghi, 0.0), 0.0)
    ghi = ghi.reshape(days, per_day + 1)
    cum = np.concatenate((np.zeros((days, 1)), np.cumsum(0.5 * (ghi[:, 1:] + ghi[:, :-1]), axis=1)), axis=1)
    per_hour = S_PER_H // CLEAR_SKY_NODE_S
    hour_total = np.diff(cum[:, ::per_hour], axis=1)
    peak = np.maximum(ghi[:, :-1].reshape(days, HOURS_PER_DAY, per_hour).max(axis=2), ghi[:, per_hour::per_hour])
    has = hour_total > 0.0
    ratio = np.where(has, peak * per_hour / np.where(has, hour_total, 1.0), 0.0)
    return _ClearSkyDays(ghi, cum, hour_total, ratio)


def _clear_sky_share(weather: Weather, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per instant ``t_s`` (seconds since hour-of-year 0, periodic): the share of its hour's clear-sky energy
    before it (0..1), the hour's peak-to-mean ratio and whether the hour has clear-sky energy."""
    rest = np.mod(np.asarray(t_s, dtype=float), YEAR_S)
    day = np.minimum((rest // S_PER_DAY).astype(np.int64), DAYS_PER_YEAR - 1)
    in_day_s = rest - day * S_PER_DAY
    per_day, per_hour = S_PER_DAY // CLEAR_SKY_NODE_S, S_PER_H // CLEAR_SKY_NODE_S
    node = np.minimum((in_day_s // CLEAR_SKY_NODE_S).astype(np.int64), per_day - 1)
    u = (in_day_s - node * CLEAR_SKY_NODE_S) / CLEAR_SKY_NODE_S
    hour = node // per_hour
    share, ratio, has = np.zeros(rest.shape), np.zeros(rest.shape), np.zeros(rest.shape, dtype=bool)
    blocks = day // CLEAR_SKY_BLOCK_DAYS
    for block in np.unique(blocks).tolist():
        days = _clear_sky_days(weather, block)
        sel = blocks == block
        d, j, h, uu = day[sel] - block * CLEAR_SKY_BLOCK_DAYS, node[sel], hour[sel], u[sel]
        g0, g1 = days.ghi[d, j], days.ghi[d, j + 1]
        within = days.cum[d, j] - days.cum[d, h * per_hour] + g0 * uu + 0.5 * (g1 - g0) * uu * uu
        total = days.hour_total[d, h]
        has[sel] = total > 0.0
        share[sel] = np.where(has[sel], np.minimum(within / np.where(has[sel], total, 1.0), 1.0), 0.0)
        ratio[sel] = days.peak_ratio[d, h]
    return share, ratio, has


class _Bank:
    """Periodic years of interval means of one resolution (one row each) sampled together: their cumulative
    sums are kept, so a window's mean costs a few look-ups per row, whatever the step (no per-step arrays).
    ``fine``: the rows follow the sub-interval curve (the simulator's step is shorter than the resolution),
    else they are piecewise constant; ``clear_sky``: hourly PV rows shaped by the site's clear sky."""

    def __init__(
        self, values: np.ndarray, resolution_s: int, upper: np.ndarray, fine: bool, clear_sky: Weather | None
    ) -> None:
        self.values = np.atleast_2d(np.asarray(values, dtype=float))
        self.resolution_s = int(resolution_s)
        n = self.values.shape[1]
        if n == 0:
            raise ValueError("a profile needs at least one value")
        if clear_sky is not None and (n != HOURS_PER_YEAR or self.resolution_s != S_PER_H):
            raise ValueError(f"clear-sky shaping needs {HOURS_PER_YEAR} hourly values, got {n}")
        self.cum = np.concatenate((np.zeros((len(self.values), 1)), np.cumsum(self.values, axis=1)), axis=1)
        row_max = self.values.max(axis=1) if len(self.values) else np.zeros(0)
        self.upper = np.maximum(np.asarray(upper, dtype=float), row_max)[:, None]
        self.fine = fine
        self.clear_sky = clear_sky if fine else None

    @classmethod
    def of(cls, shapes: Sequence[Shape], step_s: float) -> _Bank:
        first = shapes[0]
        fine = step_s < first.resolution_s
        upper = np.array([s.upper for s in shapes], dtype=float)
        return cls(np.stack([s.values for s in shapes]), first.resolution_s, upper, fine, first.clear_sky)

    def means(self, start_s: float, step_s: float, n: int) -> np.ndarray:
        """Mean over ``[start_s + k step_s, start_s + (k+1) step_s)``, ``k < n``: rows x n."""
        if not step_s > 0:
            raise ValueError(f"step must be > 0 s, got {step_s!r}")
        per_step = step_s / self.resolution_s
        if start_s % self.resolution_s == 0 and per_step >= 1 and per_step == int(per_step):
            k = int(per_step)  # whole intervals: their plain mean (k = 1: the values themselves)
            idx = (int(start_s // self.resolution_s) + np.arange(n * k)) % self.values.shape[1]
            taken = self.values[:, idx]
            return taken if k == 1 else taken.reshape(len(self.values), n, k).mean(axis=2)
        return self.window_means(start_s + step_s * np.arange(n + 1, dtype=float))

    def window_means(self, edges_s: np.ndarray) -> np.ndarray:
        """Mean over each ``[edges_s[k], edges_s[k+1])`` (increasing): rows x (len(edges_s) - 1). Summed
        from the windows' own intervals (no difference of two year-long sums within an interval)."""
        n = self.values.shape[1]
        pos = edges_s / self.resolution_s
        g = np.floor(pos).astype(np.int64)  # global interval index (years x n + i)
        frac = pos - g
        i = g % n
        partial = self._partial(i, frac, edges_s)
        ga, gb = g[:-1], g[1:]
        x, y = ga + 1, np.maximum(gb, ga + 1)  # whole intervals strictly inside a window: [x, y)
        whole = (y // n - x // n) * self.cum[:, -1:] + self.cum[:, y % n] - self.cum[:, x % n]
        energy = np.where(
            ga == gb,
            partial[:, 1:] - partial[:, :-1],
            self.values[:, i[:-1]] - partial[:, :-1] + whole + partial[:, 1:],
        )
        means = energy / (np.diff(edges_s) / self.resolution_s)
        return np.maximum(means, 0.0) if self.fine else means

    def _partial(self, i: np.ndarray, frac: np.ndarray, edges_s: np.ndarray) -> np.ndarray:
        """Energy from the start of interval ``i`` to ``frac`` of it (value x intervals), rows x edges."""
        v = self.values[:, i]
        if not self.fine:
            return frac * v
        n = self.values.shape[1]
        nodes = _interp_nodes(self.values[:, (i - 1) % n], v, self.values[:, (i + 1) % n], self.upper)
        smooth = _interp_partial(*nodes, frac)
        if self.clear_sky is None:
            return smooth
        share, ratio, has = _clear_sky_share(self.clear_sky, edges_s)
        shaped = has & (v * ratio <= self.upper * (1.0 + 1e-12))
        return np.where(shaped, v * share, smooth)


def step_means_p_mw(
    values_p_mw: np.ndarray,
    start_s: float,
    step_s: float,
    n: int,
    *,
    resolution_s: int = S_PER_H,
    upper_mw: float | None = None,
) -> np.ndarray:
    """Mean power over ``[start_s + k*step_s, start_s + (k+1)*step_s)`` for ``k = 0 .. n-1``.

    ``values_p_mw`` is a periodic series of interval means of ``resolution_s`` along its last axis (one year;
    a run past its end wraps to its start); a 2-D array holds one unit per row and gives an ``(units, n)``
    result. ``start_s`` is in seconds since the start of interval 0. A step of at least ``resolution_s``
    averages the intervals it covers (piecewise constant); a shorter step samples the mean-preserving curve of
    the module docstring ("Sampling"), bounded by ``upper_mw`` (default: unbounded).
    """
    values = np.asarray(values_p_mw, dtype=float)
    rows = values.reshape(-1, values.shape[-1])
    upper = np.full(len(rows), math.inf if upper_mw is None else float(upper_mw))
    bank = _Bank(rows, resolution_s, upper, step_s < resolution_s, None)
    return bank.means(start_s, step_s, n).reshape(*values.shape[:-1], n)


def pv_step_means_p_mw(
    hourly_p_mw: np.ndarray, weather: Weather, start_s: float, step_s: float, n: int, *, upper_mw: float
) -> np.ndarray:
    """:func:`step_means_p_mw` of hourly PV power (8760 values along the last axis, bounded by ``upper_mw``,
    e.g. ``PV_INVERTER_ETA * p_peak_mw``): below an hour each hour's energy follows ``weather``'s clear sky."""
    values = np.asarray(hourly_p_mw, dtype=float)
    rows = values.reshape(-1, values.shape[-1])
    fine = step_s < S_PER_H
    bank = _Bank(rows, S_PER_H, np.full(len(rows), float(upper_mw)), fine, weather)
    return bank.means(start_s, step_s, n).reshape(*values.shape[:-1], n)


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
    """What the adapter keeps per entity: its :class:`Shape` (``scale * shape`` is its power; units on one
    shape share it, so thousands of loads on a profile cost one year of memory, not one each) and how to
    forecast it."""

    shape: Shape
    scale: float
    error_std_mw: float
    upper_mw: float | None
    zero_where_actual_zero: bool
    cos_phi: float | None


@dataclass(frozen=True)
class _Group:
    """A ``LoadGroup``: the profile's shape (1 MW of hourly-mean peak), each member's peak and tan(phi)."""

    shape: Shape
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


@functools.lru_cache(maxsize=256)
def _series_shape(daily_p_mw: tuple[float, ...], generation: bool) -> Shape:
    """A ``Series`` unit's day repeated over the year (hourly), shared by units of the same day and kind;
    a generation's curve below an hour is bounded by the day's largest value."""
    daily = np.asarray(daily_p_mw, dtype=float)
    series = np.tile(np.repeat(daily, HOURS_PER_DAY // len(daily)), HOURS_PER_YEAR // HOURS_PER_DAY)
    series.flags.writeable = False
    return Shape(series, S_PER_H, float(daily.max()) if generation else math.inf)


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
    """Length of each forecast in forecast steps (``forecast_step_s``)."""
    forecast_step_s: int | None = None
    """Seconds per forecast value (each the mean power over one forecast step), a positive multiple of the
    simulator's step in seconds, e.g. the EMS's 3600 while the simulator steps every 900 s. None: the
    simulator's own step."""
    seed: int = 0
    """Seed of the forecast errors (each entity draws from its own stream)."""
    load_profiles_file: str | None = None
    """A CSV of normalised load profiles, 8760 hourly or 35040 quarter-hour rows (default: the embedded
    SimBench profiles, quarter-hourly)."""


def _checked_params(params: ProfileParams, time_resolution: float) -> float:
    """ValueError naming the first bad sim param; returns the forecast step in seconds."""
    step_size, seed = params.step_size, params.seed
    if not (isinstance(step_size, int) and step_size > 0):
        raise ValueError(f"step_size must be a positive integer (time units), got {step_size!r}")
    if not (float(time_resolution) > 0):
        raise ValueError(f"time_resolution must be > 0, got {time_resolution!r}")
    if not float(params.forecast_every_s) > 0:
        raise ValueError(f"forecast_every_s must be > 0, got {params.forecast_every_s!r}")
    horizon = params.forecast_horizon_steps
    if not (isinstance(horizon, int) and horizon > 0):
        raise ValueError(f"forecast_horizon_steps must be a positive integer, got {horizon!r}")
    if not (isinstance(seed, int) and seed >= 0):
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    step_s = step_size * float(time_resolution)
    fc_step = params.forecast_step_s
    if fc_step is None:
        return step_s
    multiple = fc_step / step_s if isinstance(fc_step, int) and not isinstance(fc_step, bool) else 0.0
    if not (multiple >= 1 and math.isclose(multiple, round(multiple), rel_tol=0.0, abs_tol=1e-9)):
        raise ValueError(
            f"forecast_step_s must be a positive integer multiple of the step ({step_s:g} s), got {fc_step!r}"
        )
    return float(fc_step)


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
        self._forecast_step_s = float(S_PER_H)
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
        # the distinct shapes of units and groups, stacked into banks (one per resolution and kind) at the
        # first step after a create; per unit (in _eids' order) its shape's row in the banks' output and its
        # scale; per group its row
        self._banks: list[_Bank] | None = None
        self._shape_row = np.zeros(0, dtype=np.int64)
        self._scale = np.zeros(0)
        self._group_row: dict[str, int] = {}
        # step means of every shape for a block of the run's steps: (first step index, shapes x steps)
        self._block: tuple[int, np.ndarray] | None = None

    @override
    def init(self, sid: SimId, time_resolution: float = 1.0, **sim_params: Any) -> Meta:
        """``sim_params`` are the fields of :class:`ProfileParams`."""
        params = ProfileParams(**sim_params)
        forecast_step_s = _checked_params(params, time_resolution)
        try:
            ts = pd.Timestamp(params.start)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"start: cannot parse {params.start!r} as a time stamp") from exc
        self._sid = sid
        self._time_resolution = float(time_resolution)
        self._step_size = params.step_size
        self._start = str(params.start)
        self._offset_s = start_offset_s(ts)
        self._year = int(ts.year)
        self._forecast_every_s = float(params.forecast_every_s)
        self._forecast_step_s = forecast_step_s
        self._horizon = params.forecast_horizon_steps
        self._seed = params.seed
        file = params.load_profiles_file
        self._profiles_file = None if file is None else str(file)
        logger.debug(
            "%s: start %s (hour-of-year %.2f), step %s s, forecasts every %s s for %d steps of %s s",
            sid,
            params.start,
            self._offset_s / S_PER_H,
            self.step_s,
            params.forecast_every_s,
            self._horizon,
            forecast_step_s,
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
            tilt, azimuth = params.get("tilt_deg", 30.0), params.get("azimuth_deg", 180.0)
            shape = pv_shape(tilt, azimuth, self._weather_for_run())
            return _Unit(shape, rating, error_frac * rating, rating, True, None)
        if model == "Wind":
            if "p_rated_mw" not in params:
                raise ValueError("Wind: p_rated_mw is required")
            rating = _check_positive("p_rated_mw", params["p_rated_mw"])
            turbine = params.get("turbine_type", DEFAULT_TURBINE_TYPE)
            shape = wind_shape(turbine, params.get("hub_height_m", DEFAULT_HUB_HEIGHT_M), self._weather_for_run())
            return _Unit(shape, rating, error_frac * rating, rating, False, None)
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
        shape = _series_shape(tuple(daily.tolist()), kind == "generation")
        peak = float(daily.max())
        if kind == "generation":
            return _Unit(shape, 1.0, error_frac * peak, peak, True, None)
        cos_phi = float(params.get("cos_phi", 0.95))
        if not 0.0 < cos_phi <= 1.0:
            raise ValueError(f"cos_phi must be in (0, 1], got {cos_phi!r}")
        return _Unit(shape, 1.0, error_frac * peak, None, False, cos_phi)

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        self._banks = None  # stacked once, not per create (quadratic for thousands of entities)
        self._block = None
        if model == _GROUP_MODEL:
            return self._create_groups(num, _load_group(model_params, self._profiles_file))
        if model not in _MODELS:
            raise ValueError(f"model: unknown model {model!r}; valid: {[*_MODELS, _GROUP_MODEL]}")
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

    def _stack(self) -> list[_Bank]:
        """The banks of the distinct shapes of units and groups (made at the first step after a create)."""
        if self._banks is not None:
            return self._banks
        self._eids = list(self._units)
        units = list(self._units.values())
        kinds: dict[tuple[int, int], list[Shape]] = {}  # (resolution, clear-sky site) -> distinct shapes
        seen: set[int] = set()
        for shape in [*(u.shape for u in units), *(g.shape for g in self._groups.values())]:
            if id(shape) not in seen:
                seen.add(id(shape))
                kinds.setdefault((shape.resolution_s, id(shape.clear_sky)), []).append(shape)
        ordered = [shape for shapes in kinds.values() for shape in shapes]
        row_of = {id(shape): row for row, shape in enumerate(ordered)}
        self._banks = [_Bank.of(shapes, self.step_s) for shapes in kinds.values()]
        self._shape_row = np.array([row_of[id(u.shape)] for u in units], dtype=np.int64)
        self._scale = np.array([u.scale for u in units], dtype=float)
        self._group_row = {eid: row_of[id(g.shape)] for eid, g in self._groups.items()}
        return self._banks

    def _means(self, start_s: float, step_s: float, n: int) -> np.ndarray:
        """Every distinct shape's mean over the ``n`` windows of ``step_s`` from ``start_s``: shapes x n."""
        banks = self._stack()
        if not banks:
            return np.zeros((0, n))
        return np.concatenate([bank.means(start_s, step_s, n) for bank in banks], axis=0)

    def _step_means(self, t_s: float) -> np.ndarray:
        """Every distinct shape's mean over the step at ``t_s`` (run time in s): from the block of steps that
        holds it (computed at once for up to :data:`STEP_BLOCK_DAYS` days), or alone off the step grid."""
        k = t_s / self.step_s
        if k != math.floor(k):
            return self._means(self._offset_s + t_s, self.step_s, 1)[:, 0]
        n_rows = sum(len(bank.values) for bank in self._stack())
        per_block = max(1, min(int(STEP_BLOCK_DAYS * S_PER_DAY // self.step_s), STEP_BLOCK_VALUES // max(n_rows, 1)))
        step = int(k)
        if self._block is None or not 0 <= step - self._block[0] < self._block[1].shape[1]:
            first = step - step % per_block
            self._block = (first, self._means(self._offset_s + first * self.step_s, self.step_s, per_block))
        return self._block[1][:, step - self._block[0]]

    def _is_planning_time(self, t_s: float) -> bool:
        return math.isclose(math.remainder(t_s, self._forecast_every_s), 0.0, abs_tol=1e-6)

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time:
        t_s = time * self._time_resolution
        start_s = self._offset_s + t_s
        planning = self._is_planning_time(t_s)
        means = self._step_means(t_s)
        actual = means[self._shape_row] * self._scale
        ahead: np.ndarray | None = None  # per unit, the actual means over the forecast steps
        if planning:
            ahead = self._means(start_s, self._forecast_step_s, self._horizon)[self._shape_row] * self._scale[:, None]
        out: dict[str, dict[str, Any]] = {}
        for row, (eid, p_mw) in enumerate(zip(self._eids, actual.tolist(), strict=True)):
            unit = self._units[eid]
            data: dict[str, Any] = {"p_mw": p_mw}
            if unit.cos_phi is not None:
                data["q_mvar"] = p_mw * math.tan(math.acos(unit.cos_phi))
            if ahead is not None:
                rng = entity_rng(self._seed, eid, round(t_s))
                fc = forecast_p_mw(ahead[row], unit.error_std_mw, rng, unit.upper_mw, unit.zero_where_actual_zero)
                data[_FORECAST_ATTR] = fc.tolist()
            else:
                data[_FORECAST_ATTR] = None
            out[eid] = data
        for eid, group in self._groups.items():
            p_mw = float(means[self._group_row[eid]]) * group.p_peak_mw
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
