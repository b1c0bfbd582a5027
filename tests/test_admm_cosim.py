"""Strategy admm in the co-simulation of islanded_img: MG agents and the authority as mosaik simulators.

One day with perfect forecasts, day-ahead: one planning instant whose ADMM iterations run as a mosaik
same-time loop. Checked: the run converges and records its iterations; its cost is within 1 % of the
centralized reference on the same data; the plans balance; the AC power flow judged every hour; only
ciphertext crosses between parties; the same numbers with every agent as a process of its own, and no
MG's exchange plan in plaintext in any other process's inputs; the masked aggregation gives the same
numbers to the last bit; a run past mosaik's default of 100 loop iterations that does not converge is
recorded as such, with the last iterate as its plan.
"""

from __future__ import annotations

import itertools
import json
import math
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ems_controllers.admm.strategy import STRATEGY, Settings
from scenarios.child import TRACE_ENV
from scenarios.cli import main
from scenarios.config import DATA_DIR, load_config
from scenarios.runner import RunResult, run_scenario
from sims.record_reader import read_attrs, read_messages, read_plans, read_series

CONFIG = DATA_DIR / "islanded_img.toml"
MGS = ("MG1", "MG2", "MG3", "MG4")
T = 24

pytestmark = pytest.mark.xdist_group("admm_cosim")  # one worker builds the module fixtures once


def _run(path: Path, overrides: list[str] | None = None) -> RunResult:
    cfg, data_dir = load_config(CONFIG, overrides or [], ["admm"])
    return run_scenario(cfg, data_dir, "admm", path, progress=False)


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return _run(tmp_path_factory.mktemp("admm") / "ring.h5")


SHORT = ["ems.max_iter=25"]
"""The comparisons (processes, masked, connect) need identical numbers, not convergence: 25 iterations,
the last iterate as the plan, keep them short."""


@pytest.fixture(scope="module")
def ring_short(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return _run(tmp_path_factory.mktemp("admm_short") / "ring.h5", SHORT)


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    """The short run with every agent and the authority a process of its own, their inputs traced."""
    d = tmp_path_factory.mktemp("admm_proc")
    trace = d / "trace"
    trace.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(TRACE_ENV, str(trace))
        run = _run(d / "proc.h5", [*SHORT, 'run.separate_processes=["ems"]'])
    return run, trace


@pytest.fixture(scope="module")
def masked(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return _run(tmp_path_factory.mktemp("admm_masked") / "masked.h5", [*SHORT, 'ems.aggregation="masked"'])


def _au(path: Path) -> str:
    return str(read_attrs(path)["entity_map"]["system"])


def _ems(path: Path, mg: str) -> str:
    return str(read_attrs(path)["entity_map"]["parties"][mg]["ems"])


def test_the_run_converges_and_records_its_iterations(ring: RunResult) -> None:
    s, au = read_series(ring.path), _au(ring.path)
    its = s[(au, "admm_iterations")]
    assert its[0] > 1 and np.isnan(its[1:]).all()  # day-ahead: one planning instant
    assert s[(au, "admm_converged")][0] == 1
    n = int(its[0])
    primal, dual = s[(au, "admm_primal_residual")][0], s[(au, "admm_dual_residual")][0]
    assert np.isfinite(primal[:n]).all() and np.isnan(primal[n:]).all()
    cfg, _ = load_config(CONFIG, [], ["admm"])
    settings = STRATEGY.make_settings(cfg.ems.strategy_fields)
    assert isinstance(settings, Settings)
    root = math.sqrt(len(MGS) * T)
    eps_pri, eps_dual = root * settings.tol_primal_mw, root * settings.tol_dual
    assert primal[n - 1] <= eps_pri and dual[n - 1] <= eps_dual
    early = (primal[: n - 1] <= eps_pri) & (dual[: n - 1] <= eps_dual)
    assert not early.any()  # it stopped at the first iteration that met both
    assert s[(au, "admm_price_per_mw")].shape == (T, T)
    admm = ring.kpis["admm"]
    assert admm["instants"] == 1 and admm["converged_instants"] == 1 and admm["iterations_max"] == n
    for mg in MGS:
        status = s[(_ems(ring.path, mg), "ems_status")]
        assert all(str(x) == "ok" for x in status), status


def test_cost_within_one_percent_of_the_centralized_reference(ring: RunResult) -> None:
    admm = ring.kpis["admm"]
    assert math.isfinite(admm["central_cost"]) and admm["central_cost"] > 0
    assert abs(admm["gap_to_central_pct"]) < 1.0, admm


def test_the_plans_balance_within_the_final_gap(ring: RunResult) -> None:
    plans = read_plans(ring.path)
    eep = np.array([plans[(_ems(ring.path, mg), "plan_import_mw")][0] for mg in MGS])
    gap = float(np.max(np.abs(eep.sum(axis=0))))
    assert gap == pytest.approx(ring.kpis["admm"]["final_gap_mw_max"], abs=1e-8)
    assert gap < 0.01 * float(np.max(np.abs(eep)))


def test_the_ac_power_flow_judges_every_hour(ring: RunResult) -> None:
    k = ring.kpis
    assert k["pf_failures"] == 0 and k["n_steps"] == T
    for key in ("min_vm_pu", "max_vm_pu", "max_loading_percent", "losses_mwh", "grid_forming_deviation_mwh"):
        assert math.isfinite(k[key]), key
    # the grid-forming battery takes what the plans leave unbalanced: at least the losses' order
    assert k["grid_forming_deviation_mwh"] > 0.5 * k["losses_mwh"] > 0


def test_only_ciphertext_crosses_between_parties(ring: RunResult) -> None:
    msgs = read_messages(ring.path)
    n_iter = int(ring.kpis["admm"]["iterations_max"])
    hops = [m for m in msgs if m["kind"] == "eep_partial_sum"]
    assert len(hops) == n_iter * len(MGS)
    for m in hops:
        assert "values" not in m and m["ciphertext_bytes"] >= 512  # one 2048-bit ciphertext (mod n^2) at least
    order = [*MGS, "AU"]
    assert {(m["sender"], m["receiver"]) for m in hops} == set(itertools.pairwise(order))
    averages = [m for m in msgs if m["kind"] == "eep_average"]
    assert len(averages) == (n_iter + 1) * len(MGS)  # the start broadcast and one per iteration
    assert all(m["sender"] == "AU" and len(m["values"]) == 2 * T + 1 for m in averages)


def test_the_audit_names_the_coalitions(ring: RunResult, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(ring.path), "--json"]) == 0
    doc = json.loads(capfd.readouterr().out)
    assert doc["findings"] == []
    rows = {r["mg"]: r for r in doc["protocol"]["coalitions"]["rows"]}
    assert rows["MG1"]["coalitions"] == [["AU", "MG2"]]  # the first MG: AU and its successor
    assert rows["MG4"]["coalitions"] == [["AU", "MG3"]]


def test_report_shows_the_iterations_and_writes_the_convergence_plot(
    ring: RunResult, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(ring.path), "--plots", str(tmp_path)]) == 0
    out = capfd.readouterr().out
    assert "admm: instants 1, converged_instants 1" in out and "gap_to_central_pct" in out
    assert (tmp_path / "admm_convergence.png").stat().st_size > 10_000


def test_separate_processes_give_the_same_numbers(ring_short: RunResult, processes: tuple[RunResult, Path]) -> None:
    ring = ring_short
    proc, _ = processes
    a, b = read_series(ring.path), read_series(proc.path)
    for mg in MGS:
        for attr in ("battery_p_mw", "diesel_p_mw", "planned_import_mw", "objective"):
            np.testing.assert_array_equal(a[(_ems(ring.path, mg), attr)], b[(_ems(proc.path, mg), attr)])
    np.testing.assert_array_equal(
        a[(_au(ring.path), "admm_primal_residual")], b[(_au(proc.path), "admm_primal_residual")]
    )
    assert proc.kpis["total_cost"] == ring.kpis["total_cost"]


def _float_lists(obj: Any) -> list[list[float]]:
    """Every list of numbers anywhere inside a JSON value."""
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _float_lists(v)]
    if isinstance(obj, list):
        if obj and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in obj):
            return [[float(v) for v in obj]]
        return [x for v in obj for x in _float_lists(v)]
    return []


def _contains(haystack: list[float], needle: np.ndarray) -> bool:
    n = len(needle)
    arr = np.asarray(haystack)
    return any(np.allclose(arr[i : i + n], needle, rtol=0, atol=1e-12) for i in range(len(arr) - n + 1))


def test_no_plaintext_exchange_plan_reaches_another_process(processes: tuple[RunResult, Path]) -> None:
    run, trace = processes
    files = {p.stem: p for p in trace.glob("*.jsonl")}
    assert {f"EMS-{mg}-0" for mg in MGS} | {"Coordinator-0"} <= set(files), sorted(files)
    plans = read_plans(run.path)
    for mg in MGS:
        eep = plans[(_ems(run.path, mg), "plan_import_mw")][0]
        assert np.max(np.abs(eep)) > 1e-4  # a plan worth hiding
        for sid, path in files.items():
            if sid == f"EMS-{mg}-0":
                continue
            for line in path.read_text().splitlines():
                step = json.loads(line)
                for values in _float_lists(step["inputs"]):
                    assert not _contains(values, eep), f"{mg}'s exchange plan reached {sid} at t={step['time']}"
                for entity in step["inputs"].values():  # what the ring carries: hex ciphertexts and a flag
                    for ring_in in entity.get("ring_in", {}).values():
                        if ring_in is None:  # sent every step (persistent), None between hops
                            continue
                        assert set(ring_in) == {"sum", "ok"} and set(ring_in["sum"]) == {
                            "ciphertexts",
                            "n_values",
                            "n_addends",
                        }
                        assert all(isinstance(c, str) and len(c) >= 1024 for c in ring_in["sum"]["ciphertexts"])


def test_masked_aggregation_gives_the_same_numbers_to_the_last_bit(ring_short: RunResult, masked: RunResult) -> None:
    ring = ring_short
    a, b = read_series(ring.path), read_series(masked.path)
    for attr in ("admm_primal_residual", "admm_dual_residual", "admm_price_per_mw"):
        np.testing.assert_array_equal(a[(_au(ring.path), attr)], b[(_au(masked.path), attr)])
    assert masked.kpis["total_cost"] == ring.kpis["total_cost"]


def test_a_run_past_100_loop_iterations_that_does_not_converge_uses_its_last_iterate(tmp_path: Path) -> None:
    run = _run(tmp_path / "x.h5", ["ems.max_iter=110", "ems.tol_primal_mw=1e-12", "ems.tol_dual=1e-12"])
    s, au = read_series(run.path), _au(run.path)
    assert s[(au, "admm_iterations")][0] == 110 and s[(au, "admm_converged")][0] == 0
    status = [str(x) for x in s[(_ems(run.path, "MG1"), "ems_status")]]
    assert status[0].startswith("ok (ADMM did not converge: not converged after 110 iterations")
    assert run.kpis["admm"]["converged_instants"] == 0 and run.kpis["ems_fallback_steps"] == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_agent_running_elsewhere_joins_through_connect(ring_short: RunResult, tmp_path: Path) -> None:
    """MG2's agent started by hand (as on another host) and reached through ``run.connect``."""
    port = _free_port()
    log = (tmp_path / "agent.log").open("w")
    agent = subprocess.Popen(
        [sys.executable, "-m", "ems_controllers.admm.sim", f"127.0.0.1:{port}", "--remote"], stderr=log
    )
    try:
        time.sleep(2.0)  # it listens once imported
        run = _run(tmp_path / "connect.h5", [*SHORT, f'run.connect={{"EMS-MG2" = "127.0.0.1:{port}"}}'])
        assert agent.wait(timeout=30) == 0  # the run's end stops it
    finally:
        agent.kill()
        agent.wait()
        log.close()
    assert run.kpis["total_cost"] == ring_short.kpis["total_cost"]
    a, b = read_series(ring_short.path), read_series(run.path)
    key = "planned_import_mw"
    np.testing.assert_array_equal(a[(_ems(ring_short.path, "MG2"), key)], b[(_ems(run.path, "MG2"), key)])


def test_connect_to_a_simulator_the_run_does_not_have_is_bad_input(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.h5"
    args = ["run", str(CONFIG), "--strategy", "admm", "--quiet", "--out", str(out)]
    code = main([*args, "--set", 'run.connect={"EMS-MG9" = "h:1"}'])
    err = capfd.readouterr().err
    assert code == 2 and not out.exists()
    assert "run.connect: no simulator named EMS-MG9" in err and "EMS-MG1" in err, err
