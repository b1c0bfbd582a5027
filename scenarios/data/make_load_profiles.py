"""Regenerate ``load_profiles.csv`` from the SimBench standard load profiles, at 15 min resolution.

Reads ``LoadProfile.csv`` of the SimBench data set shipped in the installed ``simbench`` package
(``simbench/networks/1-complete_data-mixed-all-0-sw/LoadProfile.csv``, 15 min resolution, year
2016, German wall-clock time with daylight saving), re-stamps the rows on CET (UTC+1) standard
time, keeps the active-power columns of a few standard profiles, drops 29 February (2016 is a leap
year) so that the year has 35040 quarter-hours, and divides every column by the annual peak of its
hourly means (each hour the mean of its four quarter-hours starting at HH:00), so the hourly means
peak at 1.0 and quarter-hours may exceed 1.0. The values are rounded to 5 decimals such that the mean
of each hour's four quarter-hours is exactly that hour's mean rounded to 5 decimals (the value of the
former hourly file): see :func:`round_keeping_hour_means`. The scale factors (the hourly-mean peak in
the units of the SimBench file, whose 15 min peak is 1.0) are logged; ``load_profiles.md`` records them.

Run from the repository root (simbench is a dependency of mmg-cosim)::

    python scenarios/data/make_load_profiles.py [--out PATH]

The runtime reads the CSV, not simbench's profile files.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

#: SimBench profile name -> short description (kept in the provenance file).
PROFILES: dict[str, str] = {
    "H0-A": "household (BDEW H0 type, variant A)",
    "H0-B": "household (variant B)",
    "G0-A": "commercial, general",
    "G1-A": "commercial, weekdays 8-18 h",
    "G4-A": "commercial, shops / hairdressers",
    "L0-A": "agricultural, general",
}
SOURCE_DIR = "1-complete_data-mixed-all-0-sw"
SOURCE_FILE = "LoadProfile.csv"
SOURCE_YEAR = 2016
SOURCE_TZ = "Europe/Berlin"
STANDARD_TZ = "Etc/GMT-1"  # CET all year (POSIX sign)
DECIMALS = 5
QUARTERS_PER_HOUR = 4
HOURS_PER_YEAR = 8760
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Profiles:
    """The regenerated table and what the log and ``load_profiles.md`` report about it."""

    quarter_hourly: pd.DataFrame
    """35040 rows (time = beginning of the quarter-hour, CET), one column per profile, 5 decimals."""
    factors: dict[str, float]
    """Per column: the annual peak of the hourly means before normalisation (value = raw / factor)."""
    hourly: pd.DataFrame
    """8760 rows: the hourly means, normalised and rounded to 5 decimals (the former hourly file)."""
    max_rounding_error: float
    """Largest |rounded quarter-hour - unrounded normalised quarter-hour| over the table."""


def source_path() -> Path:
    """Path of SimBench's LoadProfile.csv inside the installed simbench package."""
    import simbench  # only the regeneration script needs simbench

    return Path(simbench.__file__).resolve().parent / "networks" / SOURCE_DIR / SOURCE_FILE


def read_source(path: Path) -> pd.DataFrame:
    """The active-power columns of ``path``, re-stamped on CET standard time, 29 February dropped."""
    columns = [f"{name}_pload" for name in PROFILES]
    raw = pd.read_csv(path, sep=";", usecols=["time", *columns])
    wall = pd.DatetimeIndex(pd.to_datetime(raw.pop("time"), format="%d.%m.%Y %H:%M"))
    # SimBench stamps are German wall-clock time with daylight saving (27 March 02:00-02:45 missing,
    # 30 October 02:00-02:45 twice). Re-stamp the rows in order on a fixed UTC+1 (CET) clock and
    # check that this is the same instant as the wall-clock stamps.
    raw.index = pd.date_range(f"{SOURCE_YEAR}-01-01", periods=len(raw), freq="15min")
    if len(raw) != 366 * 96 or wall[0] != raw.index[0]:
        raise ValueError(f"unexpected time axis in {path}: starts {wall[0]}, {len(raw)} rows")
    instants = wall.tz_localize(SOURCE_TZ, ambiguous="infer").tz_convert(STANDARD_TZ)
    if not (instants.tz_localize(None) == raw.index).all():
        raise ValueError(f"{path}: time stamps are not consecutive quarter-hours of {SOURCE_TZ}")
    stamps = pd.DatetimeIndex(raw.index)
    quarters = raw[~((stamps.month == 2) & (stamps.day == 29))]
    if len(quarters) != HOURS_PER_YEAR * QUARTERS_PER_HOUR:
        raise ValueError(f"expected 35040 quarter-hour rows after dropping 29 Feb, got {len(quarters)}")
    quarters.columns = list(PROFILES)
    quarters.index.name = "time"
    return quarters


def round_keeping_hour_means(quarters: np.ndarray, hour_means: np.ndarray) -> np.ndarray:
    """``quarters`` (35040 x columns, unrounded) in integer units of 10**-DECIMALS, each hour's four summing
    to 4 * that hour's ``hour_means`` (8760 x columns, already rounded to DECIMALS).

    Each value is first rounded to the nearest unit. While an hour's sum misses its target by d units, the
    min(|d|, 4) quarter-hours rounded down the most get +1 (d > 0), or those rounded up the most among the
    values >= 1 unit get -1 (d < 0); every value stays >= 0. Usually one pass, each value then within 1.5
    units of the unrounded one (the SimBench data: 1.22 units at most, logged by :func:`main`).
    """
    unit = 10.0**DECIMALS
    x = quarters.reshape(HOURS_PER_YEAR, QUARTERS_PER_HOUR, -1) * unit
    rounded = np.rint(x)
    target = QUARTERS_PER_HOUR * np.rint(hour_means * unit)
    for _ in range(8 * QUARTERS_PER_HOUR):
        deficit = (target - rounded.sum(axis=1))[:, None, :]  # hours x 1 x columns
        if not deficit.any():
            return rounded.reshape(quarters.shape)
        residual = x - rounded  # > 0: rounded down
        # rank of each quarter-hour within its hour: 0 = first to get +1 (largest residual) / -1 (smallest)
        up_rank = np.argsort(np.argsort(-residual, axis=1, kind="stable"), axis=1, kind="stable")
        down_key = np.where(rounded >= 1.0, residual, np.inf)
        down_rank = np.argsort(np.argsort(down_key, axis=1, kind="stable"), axis=1, kind="stable")
        up = (deficit > 0) & (up_rank < deficit)
        down = (deficit < 0) & (down_rank < -deficit) & (rounded >= 1.0)
        rounded += np.where(up, 1.0, 0.0) - np.where(down, 1.0, 0.0)
    raise ValueError("rounding failed to keep the hour sums")  # pragma: no cover - each pass closes >= 1 unit


def build_profiles(path: Path) -> Profiles:
    """The quarter-hourly table normalised by the annual peak of each column's hourly means."""
    quarters = read_source(path)
    hourly_raw = quarters.resample("1h").mean()
    hourly_raw = hourly_raw[hourly_raw.notna().all(axis=1)]  # 29 February: an empty day after resampling
    if len(hourly_raw) != HOURS_PER_YEAR:
        raise ValueError(f"expected 8760 hourly rows after dropping 29 Feb, got {len(hourly_raw)}")
    factors = {name: float(hourly_raw[name].max()) for name in PROFILES}
    hourly = (hourly_raw / pd.Series(factors)).round(DECIMALS)
    normalised = (quarters / pd.Series(factors)).to_numpy(dtype=float)
    units = round_keeping_hour_means(normalised, hourly.to_numpy(dtype=float))
    table = pd.DataFrame(units / 10.0**DECIMALS, index=quarters.index, columns=list(PROFILES))
    error = float(np.abs(table.to_numpy() - normalised).max())
    hourly.index.name = "time"
    return Profiles(table, factors, hourly, error)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "load_profiles.csv")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = source_path()
    result = build_profiles(path)
    table = result.quarter_hourly
    table.to_csv(args.out, date_format="%Y-%m-%d %H:%M", float_format=f"%.{DECIMALS}f")
    version = importlib.metadata.version("simbench")
    logger.info("simbench %s, %s -> %s (%d rows)", version, path, args.out, len(table))
    means = table.to_numpy().reshape(HOURS_PER_YEAR, QUARTERS_PER_HOUR, -1).mean(axis=1)
    logger.info(
        "largest |rounded - exact| quarter-hour %.2e; largest |hour mean of quarter-hours - rounded hourly mean| %.2e",
        result.max_rounding_error,
        float(np.abs(means - result.hourly.to_numpy()).max()),
    )
    for name, factor in result.factors.items():
        logger.info(
            "  %s: hourly peak before normalisation %.6f, quarter-hour peak %.5f, annual sum %.3f h",
            name,
            factor,
            table[name].max(),
            table[name].sum() / QUARTERS_PER_HOUR,
        )


if __name__ == "__main__":
    main()
