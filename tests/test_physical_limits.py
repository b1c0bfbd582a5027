"""Physical limits are enforced or flagged: load an EMS sheds is shed in the grid and counted as unserved,
a PCC flow over its limit is counted in the KPIs."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandapower as pp
import pytest

from ems_controllers.rule_based.sim import OUTPUT_ATTRS as RULE_OUTPUT_ATTRS
from ems_controllers.rule_based.sim import RuleBasedEMS
from scenarios.cli import _print_compare, _print_kpis
from scenarios.kpis import PCC_TOL_MW
from scenarios.runner import RunResult
from sims.grid import GridSim
from sims.record_reader import read_attrs, read_series
from tests.conftest import run_default

BIG = 10**9
P_TOL_MW = 1e-6  # against pandapower.runpp (its own tolerance is 1e-8 MVA), as in tests/test_grid.py
MG3_OVERLOAD = ["mgs.MG3.load.p_peak_mw=6", "mgs.MG3.pcc_max_mw=0.5"]

# A user's EMS that plans shedding but does not output it (no ``unserved_mw`` in OUTPUT_ATTRS): the grid
# then serves the whole load through the PCC, over its limit, and the KPIs must say so.
OUTPUT_ATTRS = [a for a in RULE_OUTPUT_ATTRS if a != "unserved_mw"]


class NoShedEMS(RuleBasedEMS):
    pass


# ---------------------------------------------------------------- the grid's shed input, analytically
def tiny_net(group: bool = False) -> pp.pandapowerNet:
    """External grid - 1 km line - bus with a 1 MW / 0.5 Mvar load (and a 0.25 MW / 0.05 Mvar one)."""
    net = pp.create_empty_network()
    b0 = pp.create_bus(net, vn_kv=10.0)
    b1 = pp.create_bus(net, vn_kv=10.0)
    pp.create_ext_grid(net, b0)
    pp.create_line_from_parameters(
        net, b0, b1, length_km=1.0, r_ohm_per_km=0.2, x_ohm_per_km=0.1, c_nf_per_km=0.0, max_i_ka=0.4
    )
    pp.create_load(net, b1, p_mw=1.0, q_mvar=0.5, name="a")
    pp.create_load(net, b1, p_mw=0.25, q_mvar=0.05, name="b")
    if group:
        net.load["shed_group"] = "party"
    return net


def _step(sim: GridSim, t: int, load_inputs: dict[str, dict[str, float]]) -> dict[str, Any]:
    sim.step(t, {eid: {a: {"ems": v} for a, v in attrs.items()} for eid, attrs in load_inputs.items()}, BIG)
    request = {"Load-0": ["p_mw", "q_mvar", "shed_mw"], "Load-1": ["p_mw", "q_mvar", "shed_mw"]}
    request["Grid-0"] = ["shed_mw", "losses_mw", "pf_converged"]
    request["ExtGrid-0"] = ["p_mw", "q_mvar"]
    return sim.get_data(request)


def _sim(net: pp.pandapowerNet, fast: bool) -> GridSim:
    sim = GridSim()
    sim.init("Grid", time_resolution=1.0, step_size=3600)
    sim.create(1, "Grid", net=pp.to_json(net))
    assert sim._fast is not None
    if not fast:
        sim._fast = None  # every step on pandapower.runpp
    return sim


def _runpp(net: pp.pandapowerNet, p: list[float], q: list[float]) -> pp.pandapowerNet:
    ref = copy.deepcopy(net)
    ref.load["p_mw"] = p
    ref.load["q_mvar"] = q
    pp.runpp(ref, numba=False)
    return ref


@pytest.mark.parametrize("fast", [True, False])
def test_shed_input_reduces_the_load_at_its_power_factor(fast: bool) -> None:
    net = tiny_net()
    sim = _sim(net, fast)
    d = _step(sim, 0, {"Load-0": {"shed_mw": 0.4}})
    # 0.4 of 1 MW shed: 0.6 MW served, q scaled with p (0.5 * 0.6), the other load untouched
    assert (d["Load-0"]["p_mw"], d["Load-0"]["q_mvar"], d["Load-0"]["shed_mw"]) == pytest.approx((0.6, 0.3, 0.4))
    assert (d["Load-1"]["p_mw"], d["Load-1"]["shed_mw"]) == pytest.approx((0.25, 0.0))
    assert d["Grid-0"]["shed_mw"] == pytest.approx(0.4)
    ref = _runpp(net, [0.6, 0.25], [0.3, 0.05])
    assert d["ExtGrid-0"]["p_mw"] == pytest.approx(ref.res_ext_grid.at[0, "p_mw"], abs=P_TOL_MW)
    assert d["ExtGrid-0"]["q_mvar"] == pytest.approx(ref.res_ext_grid.at[0, "q_mvar"], abs=P_TOL_MW)
    # the external grid supplies the served load and the line's I^2 R
    assert d["ExtGrid-0"]["p_mw"] == pytest.approx(0.85 + d["Grid-0"]["losses_mw"], abs=P_TOL_MW)

    d = _step(sim, 3600, {"Load-0": {"p_mw": 0.8}})  # the shed holds until a new value arrives
    assert (d["Load-0"]["p_mw"], d["Load-0"]["q_mvar"], d["Load-0"]["shed_mw"]) == pytest.approx((0.4, 0.25, 0.4))
    d = _step(sim, 7200, {"Load-0": {"shed_mw": 2.0}})  # clipped to the load
    assert (d["Load-0"]["p_mw"], d["Load-0"]["q_mvar"], d["Load-0"]["shed_mw"]) == pytest.approx((0.0, 0.0, 0.8))
    for bad in (-0.3, float("nan")):  # a negative or unknown shed sheds nothing
        d = _step(sim, 10800, {"Load-0": {"shed_mw": bad}})
        assert (d["Load-0"]["p_mw"], d["Load-0"]["shed_mw"]) == pytest.approx((0.8, 0.0))
    assert d["Grid-0"]["pf_converged"] == 1


def test_shed_group_splits_in_proportion_and_paths_agree() -> None:
    """Two loads of one party (shed_group): 0.5 MW asked of one of them is shared 0.4 / 0.1 (1 : 0.25);
    the lightsim2grid fast path and pandapower.runpp give the same flows."""
    out = []
    for fast in (True, False):
        sim = _sim(tiny_net(group=True), fast)
        out.append(_step(sim, 0, {"Load-0": {"shed_mw": 0.5}}))
        assert sim.last_path == ("fast" if fast else "runpp")
    for d in out:
        assert (d["Load-0"]["shed_mw"], d["Load-1"]["shed_mw"]) == pytest.approx((0.4, 0.1))
        assert (d["Load-0"]["p_mw"], d["Load-1"]["p_mw"]) == pytest.approx((0.6, 0.15))
        assert (d["Load-0"]["q_mvar"], d["Load-1"]["q_mvar"]) == pytest.approx((0.3, 0.03))
    assert out[0]["ExtGrid-0"]["p_mw"] == pytest.approx(out[1]["ExtGrid-0"]["p_mw"], abs=P_TOL_MW)
    assert out[0]["Grid-0"]["losses_mw"] == pytest.approx(out[1]["Grid-0"]["losses_mw"], abs=P_TOL_MW)
    # more than the group's demand: everything shed
    sim = _sim(tiny_net(group=True), True)
    d = _step(sim, 0, {"Load-0": {"shed_mw": 1.0}, "Load-1": {"shed_mw": 1.0}})
    assert (d["Load-0"]["shed_mw"], d["Load-1"]["shed_mw"], d["Grid-0"]["shed_mw"]) == pytest.approx((1.0, 0.25, 1.25))


# ---------------------------------------------------------------- co-simulations
pytestmark = pytest.mark.xdist_group("physical_limits")  # one worker builds the module fixture once


@pytest.fixture(scope="module")
def overloaded(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """ieee33_3mg, MG3's load at 6 MW peak behind a 0.5 MW PCC: the rule-based EMS must shed."""
    return run_default(tmp_path_factory.mktemp("limits"), MG3_OVERLOAD)


@pytest.fixture(scope="module")
def not_shed(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """The same, with an EMS that does not hand its shedding to the grid: the PCC limit is exceeded."""
    return run_default(tmp_path_factory.mktemp("noshed"), MG3_OVERLOAD, strategy=f"{__name__}:NoShedEMS")


def _mg3(run: RunResult) -> tuple[dict[str, Any], dict[tuple[str, str], np.ndarray]]:
    return read_attrs(run.path)["entity_map"]["parties"]["MG3"], read_series(run.path)


def test_planned_shedding_is_shed_in_the_grid(overloaded: RunResult) -> None:
    pm, s = _mg3(overloaded)
    k = overloaded.kpis
    demand = s[(pm["profiles"]["load"][0], "p_mw")]
    served = s[(pm["load"][0], "p_mw")]
    shed = s[(pm["load"][0], "shed_mw")]
    planned = s[(pm["ems"], "unserved_mw")]
    assert np.sum(served < demand - 0.1) >= 20, "the grid serves less than the demand"
    np.testing.assert_allclose(served + shed, demand, atol=1e-9)
    np.testing.assert_allclose(shed, planned, atol=1e-9)  # perfect forecasts: the plan is what the grid shed
    assert k["unserved_mwh"] == pytest.approx(float(np.sum(shed)), rel=1e-9)  # from the grid's record (1 h steps)
    assert k["unserved_mwh"] > 10.0
    assert k["parties"]["MG3"]["shed_mwh"] == pytest.approx(k["unserved_mwh"])
    assert k["parties"]["MG3"]["shed_cost"] == pytest.approx(k["unserved_mwh"] * 1000.0)  # load_shed_price
    assert sum(k["cost_by_mg"].values()) == pytest.approx(k["total_cost"], rel=1e-12)
    # the PCC flow now respects the limit
    flow = -s[(pm["pcc_line"], "p_to_mw")]
    assert np.max(np.abs(flow)) <= 0.5 + PCC_TOL_MW
    assert k["pcc_excess_steps"] == 0 and k["parties"]["MG3"]["pcc_excess_steps"] == 0


def test_pcc_excess_is_counted(not_shed: RunResult) -> None:
    pm, s = _mg3(not_shed)
    k = not_shed.kpis
    assert k["unserved_mwh"] == 0.0  # nothing shed: the grid serves the demand through the PCC
    np.testing.assert_allclose(s[(pm["load"][0], "p_mw")], s[(pm["profiles"]["load"][0], "p_mw")], atol=1e-12)
    flow = -s[(pm["pcc_line"], "p_to_mw")]
    excess = np.abs(flow) - 0.5
    mg3 = k["parties"]["MG3"]
    assert mg3["pcc_excess_steps"] == int(np.sum(excess > PCC_TOL_MW)) > 12
    assert mg3["pcc_excess_max_mw"] == pytest.approx(float(np.max(excess)))
    assert mg3["pcc_excess_max_mw"] > 0.9  # about 1.45 MW through a 0.5 MW PCC
    assert mg3["pcc_excess_mwh"] == pytest.approx(float(np.sum(excess[excess > PCC_TOL_MW])))  # 1 h steps
    assert (k["pcc_excess_steps"], k["pcc_excess_max_mw"], k["pcc_excess_mwh"]) == pytest.approx(
        (mg3["pcc_excess_steps"], mg3["pcc_excess_max_mw"], mg3["pcc_excess_mwh"])
    )
    for other in ("MG1", "MG2"):
        assert k["parties"][other]["pcc_excess_steps"] == 0
    text = io.StringIO()
    _print_kpis(k, text)
    assert "MG3" in text.getvalue() and "PCC limit exceeded in" in text.getvalue()
    table = io.StringIO()
    _print_compare({"rule": k}, table)
    header = table.getvalue().splitlines()[0]
    assert "PCC over" in header and "unserved MWh" in header


def test_report_json_has_the_new_kpis(overloaded: RunResult, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "scenarios.cli", "report", str(overloaded.path), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    k = json.loads(r.stdout)
    for key in (
        "unserved_mwh",
        "pcc_excess_steps",
        "pcc_excess_max_mw",
        "pcc_excess_mwh",
        "stored_energy_value",
        "stored_energy_change_mwh",
    ):
        assert key in k, key
    assert k["unserved_mwh"] == pytest.approx(overloaded.kpis["unserved_mwh"])
