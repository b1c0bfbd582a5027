"""End-to-end co-simulations of ieee33_3mg read back from their HDF5 files."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from scenarios.config import Config
from scenarios.runner import RunResult
from sims.record_reader import read_attrs, read_plans, read_series
from tests.conftest import DEFAULT_CONFIG, assert_energy_balance, run_default
from tests.conftest import by_type as _by_type

ENERGY_TOL_MW = 1e-6


def test_record_layout_and_attrs(default_run: RunResult) -> None:
    attrs = read_attrs(default_run.path)
    assert attrs["scenario"] == "ieee33_3mg" and attrs["strategy"] == "rule_based"
    assert attrs["step_s"] == 3600
    cfg = Config.model_validate(attrs["config"])
    assert cfg.scenario.days == 1
    with h5py.File(default_run.path) as f:
        for group in ("Series", "Plans", "KPIs"):
            assert group in f
        assert int(f.attrs["n_steps_completed"]) == 24
    series = read_series(default_run.path)
    grid = attrs["entity_map"]["grid"]
    assert series[(grid, "pf_converged")].shape == (24,)
    assert np.all(series[(grid, "pf_converged")] == 1)
    plans = read_plans(default_run.path)
    soc_plan = plans[(attrs["entity_map"]["parties"]["MG1"]["ems"], "plan_soc_mwh")]
    assert soc_plan.shape == (24, 24)
    assert np.isfinite(soc_plan[0]).all() and np.isnan(soc_plan[1:]).all(), "one day-ahead plan at hour 0"


def test_energy_balance_of_every_step(default_run: RunResult) -> None:
    """External-grid import = loads + storage charging - static generation + losses, every step."""
    s = assert_energy_balance(default_run.path, ENERGY_TOL_MW)
    grid = read_attrs(default_run.path)["entity_map"]["grid"]
    assert len(_by_type(s, grid, "Load", "p_mw")) == 32 + 3
    assert np.all(s[(grid, "losses_mw")] > 0)


def test_soc_within_bounds_and_consistent_with_power(default_run: RunResult) -> None:
    attrs = read_attrs(default_run.path)
    cfg = Config.model_validate(attrs["config"])
    s = read_series(default_run.path)
    for mg in cfg.mgs:
        fid = attrs["entity_map"]["parties"][mg.name]["storage"]
        soc, p = s[(fid, "soc_mwh")], s[(fid, "p_mw")]
        b = mg.battery
        assert b is not None
        assert np.all(soc >= b.e_min_mwh - 1e-9) and np.all(soc <= b.e_max_mwh + 1e-9)
        e_prev = np.concatenate([[b.e_init_mwh], soc[:-1]])
        expected = e_prev + np.where(p >= 0, b.eta_ch * p, p / b.eta_dis) * cfg.dt_h
        np.testing.assert_allclose(soc, expected, atol=1e-9)
        assert np.all(np.abs(p) <= max(b.p_ch_max_mw, b.p_dis_max_mw) + 1e-9)


def test_costs_add_up_and_kpis_are_complete(default_run: RunResult) -> None:
    k = default_run.kpis
    for key in (
        "scenario",
        "strategy",
        "total_cost",
        "cost_by_mg",
        "energy_bought_mwh",
        "energy_sold_mwh",
        "n_voltage_violations",
        "min_vm_pu",
        "max_vm_pu",
        "n_line_overloads",
        "max_loading_percent",
        "losses_mwh",
        "pf_failures",
        "wall_time_s",
    ):
        assert key in k, key
    assert set(k["cost_by_mg"]) == {"MG1", "MG2", "MG3", "DN"}
    assert sum(k["cost_by_mg"].values()) == pytest.approx(k["total_cost"], abs=1e-6)
    assert k["pf_failures"] == 0 and k["losses_mwh"] > 0
    assert 0.9 < k["min_vm_pu"] <= k["max_vm_pu"] < 1.1


def test_ems_setpoints_reach_the_grid(default_run: RunResult) -> None:
    attrs = read_attrs(default_run.path)
    s = read_series(default_run.path)
    for name, pm in attrs["entity_map"]["parties"].items():
        if pm["storage"]:
            sp = s[(pm["ems"], "battery_p_mw")]
            applied = s[(pm["storage"], "p_mw")] + s[(pm["storage"], "clipped_mw")]
            np.testing.assert_allclose(applied, sp, atol=1e-9, err_msg=name)
        if pm["diesel"]:
            np.testing.assert_allclose(s[(pm["diesel"], "p_mw")], s[(pm["ems"], "diesel_p_mw")], atol=1e-9)


def test_ems_as_separate_process_gives_the_same_numbers(default_run: RunResult, tmp_path: Path) -> None:
    other = run_default(tmp_path, ["run.separate_processes=['ems']"])
    a, b = read_series(default_run.path), read_series(other.path)
    assert a.keys() == b.keys()
    for key in a:
        if a[key].dtype.kind == "f":
            np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-12, err_msg=str(key))
        else:
            assert (a[key] == b[key]).all(), key
    assert other.kpis["total_cost"] == pytest.approx(default_run.kpis["total_cost"], abs=1e-9)


@dataclass(frozen=True)
class CliRun:
    out: Path
    plots: Path
    report: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    """``mmg-cosim run`` as a user runs it, of a user's copy of the config elsewhere (profiles resolved from
    the embedded data) with a bigger PV in MG1, and a ``--set`` on top (forecast errors); then ``report
    --json --plots`` of its file. One run serves both tests below (they are one group: one worker runs it)."""
    tmp = tmp_path_factory.mktemp("cli")
    text = DEFAULT_CONFIG.read_text().replace("pv = { p_peak_mw = 1.0 }", "pv = { p_peak_mw = 2.0 }", 1)
    variant = tmp / "variant.toml"
    variant.write_text(text)
    out = tmp / "cli.h5"
    exe = [sys.executable, "-m", "scenarios.cli"]
    r = subprocess.run(
        [*exe, "run", "--quiet", "--config", str(variant), "--out", str(out), "--set", "forecast.error_std=0.1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    plots = tmp / "plots"
    report = subprocess.run(
        [*exe, "report", str(out), "--json", "--plots", str(plots)], capture_output=True, text=True, timeout=300
    )
    return CliRun(out, plots, report)


@pytest.mark.xdist_group("e2e_cli")
def test_cli_run_and_report_json(cli_run: CliRun) -> None:
    r = cli_run.report
    assert r.returncode == 0, r.stderr
    k = json.loads(r.stdout)
    assert k["scenario"] == "ieee33_3mg" and set(k["cost_by_mg"]) == {"MG1", "MG2", "MG3", "DN"}
    cfg = Config.model_validate(read_attrs(cli_run.out)["config"])
    assert cfg.forecast.error_std == 0.1  # the --set reached the run
    pngs = sorted(p.name for p in cli_run.plots.glob("*.png"))
    assert {"dispatch.png", "soc.png", "grid_exchange.png", "voltage.png", "line_loading.png"} <= set(pngs)
    for p in cli_run.plots.glob("*.png"):
        assert p.stat().st_size > 5000


@pytest.mark.xdist_group("e2e_cli")
def test_config_variant_file_runs_with_its_own_data(cli_run: CliRun, default_run: RunResult) -> None:
    """A user's copy of the config elsewhere (profiles resolved from the embedded data) with a bigger PV."""
    out = cli_run.out
    cfg = Config.model_validate(read_attrs(out)["config"])
    assert cfg.mgs[0].pv is not None and cfg.mgs[0].pv.p_peak_mw == 2.0
    pv = read_attrs(out)["entity_map"]["parties"]["MG1"]["pv"][0]
    base_pv = read_series(default_run.path)[(pv, "p_avail_mw")]
    np.testing.assert_allclose(read_series(out)[(pv, "p_avail_mw")], 2.0 * base_pv, rtol=1e-9, atol=1e-12)
