"""Longer studies, run by `make test-slow` (not in the default test run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sims.record_reader import read_attrs, read_series
from tests.conftest import run_default

pytestmark = pytest.mark.slow


def test_thirty_days_rule_based_balance_every_step(tmp_path: Path) -> None:
    res = run_default(tmp_path, ["scenario.days=30"])
    s = read_series(res.path)
    attrs = read_attrs(res.path)
    grid = attrs["entity_map"]["grid"]
    sid = grid.split(".", 1)[0]

    def total(model: str) -> np.ndarray:
        zero = np.zeros_like(s[(grid, "losses_mw")])
        return sum((v for (fid, a), v in s.items() if a == "p_mw" and fid.startswith(f"{sid}.{model}-")), zero)

    assert res.kpis["n_steps"] == 30 * 24 and res.kpis["pf_failures"] == 0
    np.testing.assert_allclose(
        total("ExtGrid"), total("Load") + total("Storage") - total("StaticGen") + s[(grid, "losses_mw")], atol=1e-6
    )
    assert sum(res.kpis["cost_by_mg"].values()) == pytest.approx(res.kpis["total_cost"], rel=1e-9)


def test_three_days_rolling_centralized_with_forecast_errors(tmp_path: Path) -> None:
    res = run_default(
        tmp_path, ["scenario.days=3", "ems.rolling=true", "forecast.error_std=0.1"], strategy="centralized"
    )
    k = res.kpis
    assert k["ems_fallback_steps"] == 0 and k["pf_failures"] == 0
    assert 0 < k["exchange_deviation_mwh"] < 20
    s = read_series(res.path)
    ems = read_attrs(res.path)["entity_map"]["parties"]["MG1"]["ems"]
    assert np.count_nonzero(s[(ems, "solve_time_s")] > 0) == 72, "re-planned every hour"
