"""Regenerate ``load_profiles.csv`` from the SimBench standard load profiles.

Reads ``LoadProfile.csv`` of the SimBench data set shipped in the installed ``simbench`` package
(``simbench/networks/1-complete_data-mixed-all-0-sw/LoadProfile.csv``, 15 min resolution, year
2016, German wall-clock time with daylight saving), re-stamps the rows on CET (UTC+1) standard
time, keeps the active-power columns of a few standard profiles, takes hourly means (each hour is
the mean of its four quarter-hours starting at HH:00), drops 29 February (2016 is a leap year) so
that the year has 8760 rows, and scales every column so its annual hourly peak is 1.0. The scale
factors (the hourly-mean peak in the units of the SimBench file, whose 15 min peak is 1.0) are
logged; ``load_profiles.md`` records them.

Run from the repository root (simbench is a dependency of mmg-cosim)::

    python scenarios/data/make_load_profiles.py

The runtime reads the CSV, not simbench's profile files.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
from pathlib import Path

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
HERE = Path(__file__).resolve().parent


def source_path() -> Path:
    """Path of SimBench's LoadProfile.csv inside the installed simbench package."""
    import simbench  # only the regeneration script needs simbench

    return Path(simbench.__file__).resolve().parent / "networks" / SOURCE_DIR / SOURCE_FILE


def build_profiles(path: Path) -> tuple[pd.DataFrame, dict[str, float]]:
    """Return (hourly profiles normalised to peak 1.0, normalisation factor per column).

    The factor is the annual peak of the hourly means before normalisation (value = raw / factor).
    """
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
    hourly = raw.resample("1h").mean()
    stamps = pd.DatetimeIndex(hourly.index)
    hourly = hourly[~((stamps.month == 2) & (stamps.day == 29))]
    if len(hourly) != 8760:
        raise ValueError(f"expected 8760 hourly rows after dropping 29 Feb, got {len(hourly)}")
    hourly.columns = list(PROFILES)
    factors = {name: float(hourly[name].max()) for name in PROFILES}
    normalised = hourly / pd.Series(factors)
    normalised.index.name = "time"
    return normalised.round(DECIMALS), factors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "load_profiles.csv")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = source_path()
    profiles, factors = build_profiles(path)
    profiles.to_csv(args.out, date_format="%Y-%m-%d %H:%M", float_format=f"%.{DECIMALS}f")
    version = importlib.metadata.version("simbench")
    logger.info("simbench %s, %s -> %s (%d rows)", version, path, args.out, len(profiles))
    for name, factor in factors.items():
        logger.info(
            "  %s: hourly peak before normalisation %.6f, annual sum %.3f h", name, factor, profiles[name].sum()
        )


if __name__ == "__main__":
    main()
