"""community_3mg with the cooperative EMS (spec 003) in the co-simulation, read back from HDF5."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from ems_controllers.cooperative.strategy import MG_ATTRS as COOPERATIVE_MG_ATTRS
from scenarios.config import load_config
from scenarios.registry import get_scenario
from scenarios.runner import RunResult, run_scenario
from sims.record_reader import read_attrs, read_messages

CONFIG = get_scenario("community_3mg").default_config
MG_ATTRS = [a for a in COOPERATIVE_MG_ATTRS if a != "settlement_cost"]  # the spec's per-MG record
COMMUNITY_ATTRS = ["main_internal_kwh", "ancillary_internal_kwh", "cost_step1", "cost_final", "cost_central_lp"]
# Hours (0-based steps) where the paper's two steps miss the central LP on the spec's data: B could
# displace purchases in hours 13-14 and C could stop selling below its cost in hours 17-22 (1-based),
# but the paper's step 2 moves only self-sufficient MGs (see ems_controllers/cooperative/model.py).
PAPER_GAP_STEPS = [12, 13, 16, 17, 18, 19, 20, 21]


def _run(tmp: Path, name: str, strategy: str, overrides: list[str] | None = None, config: Path = CONFIG) -> RunResult:
    cfg, data_dir = load_config(config, overrides or [])
    return run_scenario(cfg, data_dir, strategy, tmp / name, progress=False)


pytestmark = pytest.mark.xdist_group("community")  # one worker builds the module fixture once


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    d = tmp_path_factory.mktemp("community")
    return {
        "paper": _run(d, "paper.h5", "cooperative"),
        "extended": _run(d, "extended.h5", "cooperative", ["ems.ancillary='extended'"]),
        "merit": _run(d, "merit.h5", "cooperative", ["ems.ancillary='merit'"]),
        "centralized": _run(d, "central.h5", "centralized"),
        "local": _run(d, "local.h5", "local"),
    }


def _series_h5(path: Path, eid: str, attr: str) -> np.ndarray:
    """Read a recorded attribute with plain h5py (no package code): Series/<sid>.<eid>/<attr>."""
    with h5py.File(path, "r") as f:
        n = int(f.attrs["n_steps_completed"])
        (group,) = [g for g in f["Series"] if g.endswith("." + eid)]
        return f["Series"][group][attr][:n]


def test_record_carries_the_spec_attributes_readable_by_plain_h5py(runs: dict[str, RunResult]) -> None:
    path = runs["paper"].path
    for mg in ("A", "B", "C"):
        for attr in MG_ATTRS:
            assert _series_h5(path, mg, attr).shape == (24,), (mg, attr)
    for attr in COMMUNITY_ATTRS:
        assert np.isfinite(_series_h5(path, "community", attr)).all(), attr


def test_every_mg_balances_every_hour(runs: dict[str, RunResult]) -> None:
    cfg, _ = load_config(CONFIG)
    for mode in ("paper", "extended"):
        path = runs[mode].path
        ancillary_flow = np.zeros(24)
        for mg in cfg.mgs:
            g = {a: _series_h5(path, mg.name, a) for a in MG_ATTRS}
            assert mg.load is not None and mg.pv is not None
            demand = np.asarray(mg.load.p_mw_per_hour) * 1000.0  # MW over 1 h -> kWh
            pv = np.asarray(mg.pv.p_mw_per_hour) * 1000.0
            np.testing.assert_allclose(
                g["chp_kwh"], g["chp_step1_kwh"] + g["ancillary_up_kwh"] - g["ancillary_down_kwh"], atol=1e-9
            )
            # supply = demand, with main and external trades; ancillary energy moves inside the CHP change
            net_import = demand - pv - g["chp_kwh"]
            trades = g["ext_buy_kwh"] - g["ext_sell_kwh"] + g["main_receive_kwh"] - g["main_send_kwh"]
            ancillary_flow += net_import - trades  # what the MG got (+) or gave (-) in ancillary trades
            # what the grid measured at the MG's PCC is the planned net import (perfect forecasts)
            attrs = read_attrs(path)
            pcc = attrs["entity_map"]["parties"][mg.name]["pcc_line"]
            with h5py.File(path) as f:
                measured = -f["Series"][pcc]["p_to_mw"][:24] * 1000.0
            np.testing.assert_allclose(measured, net_import, atol=1e-3)
        # ancillary energy only moves between MGs: it sums to zero over the community every hour
        np.testing.assert_allclose(ancillary_flow, 0.0, atol=1e-6)


def test_paper_gap_where_the_analysis_says_and_extended_closes_it(runs: dict[str, RunResult]) -> None:
    gap = _series_h5(runs["paper"].path, "community", "gap")
    assert np.all(gap >= -1e-6)
    assert list(np.flatnonzero(gap > 1e-6)) == PAPER_GAP_STEPS
    assert float(gap.sum()) == pytest.approx(12120.0)
    ext_gap = _series_h5(runs["extended"].path, "community", "gap")
    np.testing.assert_allclose(ext_gap, 0.0, atol=1e-6)


def test_costs_order_and_add_up(runs: dict[str, RunResult]) -> None:
    k = {name: r.kpis for name, r in runs.items()}
    for run in k.values():
        assert sum(run["cost_by_mg"].values()) == pytest.approx(run["total_cost"], rel=1e-9)
        assert run["n_voltage_violations"] == 0 and run["pf_failures"] == 0

    # No plan sees the losses: allow the cost of the runs' difference in losses at the top price
    # (170 KRW/kWh = 170000 KRW/MWh). The extended rule reaches the LP, the paper's rule lies between.
    def tol(a: str, b: str) -> float:
        return 170000.0 * abs(k[a]["losses_mwh"] - k[b]["losses_mwh"]) + 1.0

    assert k["extended"]["total_cost"] <= k["paper"]["total_cost"] + tol("extended", "paper")
    assert k["paper"]["total_cost"] <= k["local"]["total_cost"] + tol("paper", "local")
    assert abs(k["extended"]["total_cost"] - k["centralized"]["total_cost"]) <= tol("extended", "centralized")
    assert tol("extended", "paper") < k["paper"]["total_cost"] - k["extended"]["total_cost"], (
        "the tolerance must be smaller than the gap it checks (12,120 KRW on the plans)"
    )


def test_merit_mode_is_the_central_lp_every_hour_and_reveals_what_extended_does(runs: dict[str, RunResult]) -> None:
    """Merit's step 2 reaches the hour's central LP (gap 0 every hour, the same co-simulated cost as
    ``centralized`` within the losses' price) and asks the MGs for what extended mode asks: the room and
    cost of every MG between the prices, in more hours than the paper's rule (self-sufficient MGs only)."""
    np.testing.assert_allclose(_series_h5(runs["merit"].path, "community", "gap"), 0.0, atol=1e-6)
    k = {name: r.kpis for name, r in runs.items()}
    tol = 170000.0 * abs(k["merit"]["losses_mwh"] - k["centralized"]["losses_mwh"]) + 1.0
    assert abs(k["merit"]["total_cost"] - k["centralized"]["total_cost"]) <= tol
    revealed = {mode: k[mode]["room_reports_by_mg"] for mode in ("paper", "extended", "merit")}
    assert revealed["merit"] == revealed["extended"]
    for mg in ("A", "B", "C"):
        self_sufficient = int(np.nansum(_series_h5(runs["paper"].path, mg, "self_sufficient")))
        assert revealed["paper"][mg] == self_sufficient <= revealed["merit"][mg]
    assert sum(revealed["paper"].values()) < sum(revealed["merit"].values())


def test_uems_messages_hold_only_what_the_spec_allows(runs: dict[str, RunResult]) -> None:
    allowed = {"surplus_kwh", "shortage_kwh", "self_sufficient", "up_room_kwh", "down_room_kwh", "chp_cost_per_kwh"}
    msgs = read_messages(runs["paper"].path)
    reports = [m for m in msgs if m["receiver"] == "central"]
    assert len(reports) == 24 * 3
    for m in reports:
        kind, fields = m["kind"].split(":")
        assert kind == "report" and set(fields.split(",")) <= allowed, m
        assert len(m["values"]) == len(fields.split(","))


def test_a_second_community_runs_from_its_own_files(tmp_path: Path) -> None:
    """Five made-up MGs with other names, prices and CHPs: nothing is specific to A, B, C."""
    rng = np.random.default_rng(7)
    names = ["north", "south", "east", "west", "mill"]
    rows = ["hour,sell_price,buy_price," + ",".join(f"demand_{n}_kwh,pv_{n}_kwh" for n in names)]
    for h in range(24):
        sell = 80 + 20 * (h // 6)
        vals = [f"{rng.uniform(100, 600):.1f},{max(0.0, 200 * np.sin((h - 6) / 12 * np.pi)):.1f}" for _ in names]
        rows.append(f"{h + 1},{sell},{sell + 35}," + ",".join(vals))
    (tmp_path / "five.csv").write_text("\n".join(rows) + "\n")
    text = CONFIG.read_text().split("[[mgs]]")[0].replace('file = "community_3mg_chp.csv"', 'file = "five.csv"')
    buses = [4, 6, 9, 11, 13]
    for i, (n, bus) in enumerate(zip(names, buses, strict=True)):
        lo, hi, cost = 100 + 20 * i, 350 + 30 * i, 95 + 8 * i
        text += (
            f'\n[[mgs]]\nname = "{n}"\nbus = {bus}\nload = {{ column = "demand_{n}_kwh" }}\n'
            f'pv = {{ column = "pv_{n}_kwh", curtailable = false }}\n'
            f"chp = {{ p_min_mw = {lo / 1000}, p_max_mw = {hi / 1000}, a1_per_mwh = {cost * 1000.0}, "
            f"must_run = true }}\n"
        )
    (tmp_path / "five.toml").write_text(text)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "scenarios.cli",
            "compare",
            "community_3mg",
            "--config",
            str(tmp_path / "five.toml"),
            "--strategies",
            "cooperative,centralized",
            "--json",
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    k = json.loads(r.stdout)
    assert set(k["cooperative"]["cost_by_mg"]) == {*names, "network"}
    gap = _series_h5(tmp_path / "community_3mg-cooperative.h5", "community", "gap")
    assert gap.shape == (24,) and np.all(gap >= -1e-6)
