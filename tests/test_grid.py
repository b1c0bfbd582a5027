"""Tests of sims.grid:GridSim against pandapower and analytic storage/curtailment cases."""

from __future__ import annotations

import copy
import logging
from typing import Any, override

import mosaik
import mosaik_api_v3
import numpy as np
import pandapower as pp
import pytest
from mosaik_api_v3.types import CreateResult, InputData, Meta, ModelName, OutputData, OutputRequest, SimId, Time

from sims.grid import MODEL_SPECS, GridSim, load_net
from tests.bench.bench_grid import build_test_net

VM_TOL_PU = 1e-6
P_TOL_MW = 1e-6
BIG = 10**9


@pytest.fixture(scope="module")
def base_net() -> pp.pandapowerNet:
    return build_test_net()


def make_sim(net: pp.pandapowerNet, step_size: int = 3600) -> tuple[GridSim, dict[str, list[str]]]:
    sim = GridSim()
    sim.init("Grid", time_resolution=1.0, step_size=step_size)
    entities = sim.create(1, "Grid", net=pp.to_json(net))
    request = {c["eid"]: sim.meta["models"][c["type"]]["attrs"] for c in entities[0]["children"]}
    request["Grid-0"] = sim.meta["models"]["Grid"]["attrs"]
    return sim, request


def inputs(**by_eid: dict[str, Any]) -> dict:
    return {eid: {attr: {"src": value} for attr, value in attrs.items()} for eid, attrs in by_eid.items()}


def eid_of(net: pp.pandapowerNet, table: str, name: str, model: str) -> str:
    return f"{model}-{net[table].index[net[table]['name'] == name][0]}"


def reference_runpp(net: pp.pandapowerNet, data: dict) -> pp.pandapowerNet:
    """A fresh pandapower power flow with the powers and switch states GridSim applied."""
    ref = copy.deepcopy(net)
    for idx in ref.load.index:
        ref.load.at[idx, "p_mw"] = data[f"Load-{idx}"]["p_mw"]
        ref.load.at[idx, "q_mvar"] = data[f"Load-{idx}"]["q_mvar"]
    for idx in ref.sgen.index:
        ref.sgen.at[idx, "p_mw"] = data[f"StaticGen-{idx}"]["p_mw"]
        ref.sgen.at[idx, "q_mvar"] = data[f"StaticGen-{idx}"]["q_mvar"]
    for idx in ref.storage.index:
        ref.storage.at[idx, "p_mw"] = data[f"Storage-{idx}"]["p_mw"]
    for idx in ref.switch.index:
        ref.switch.at[idx, "closed"] = data[f"Switch-{idx}"]["closed"]
    pp.runpp(ref, numba=False)
    return ref


def assert_matches_runpp(net: pp.pandapowerNet, data: dict) -> None:
    ref = reference_runpp(net, data)
    vm = np.array([data[f"Bus-{i}"]["vm_pu"] for i in net.bus.index])
    va = np.array([data[f"Bus-{i}"]["va_degree"] for i in net.bus.index])
    np.testing.assert_allclose(vm, ref.res_bus["vm_pu"].to_numpy(), atol=VM_TOL_PU, rtol=0)
    np.testing.assert_allclose(va, ref.res_bus["va_degree"].to_numpy(), atol=1e-5, rtol=0)
    bus_p = np.array([data[f"Bus-{i}"]["p_mw"] for i in net.bus.index])
    np.testing.assert_allclose(bus_p, ref.res_bus["p_mw"].to_numpy(), atol=P_TOL_MW, rtol=0)
    p_from = np.array([data[f"Line-{i}"]["p_from_mw"] for i in net.line.index])
    np.testing.assert_allclose(p_from, ref.res_line["p_from_mw"].to_numpy(), atol=P_TOL_MW, rtol=0)
    loading = np.array([data[f"Line-{i}"]["loading_percent"] for i in net.line.index])
    np.testing.assert_allclose(loading, ref.res_line["loading_percent"].to_numpy(), atol=1e-4, rtol=0)
    assert data["ExtGrid-0"]["p_mw"] == pytest.approx(ref.res_ext_grid.at[0, "p_mw"], abs=P_TOL_MW)
    losses = ref.res_line["pl_mw"].sum()
    assert data["Grid-0"]["losses_mw"] == pytest.approx(losses, abs=P_TOL_MW)


def varied_inputs(net: pp.pandapowerNet, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    attrs: dict[str, dict[str, Any]] = {}
    for idx in net.load.index:
        attrs[f"Load-{idx}"] = {"p_mw": float(rng.uniform(0.02, 0.4)), "q_mvar": float(rng.uniform(0, 0.1))}
    for idx in net.sgen.index:
        attrs[f"StaticGen-{idx}"] = {"p_mw": float(rng.uniform(0, 1.5)), "p_avail_mw": float(rng.uniform(0, 1))}
    for idx in net.storage.index:
        attrs[f"Storage-{idx}"] = {"p_mw": float(rng.uniform(-0.3, 0.3))}
    return inputs(**attrs)


def test_fast_path_matches_fresh_runpp(base_net: pp.pandapowerNet) -> None:
    sim, request = make_sim(base_net)
    assert sim._fast is not None, "the ieee33-style net must run on the fast path"
    for k in range(3):
        sim.step(3600 * k, varied_inputs(base_net, k), BIG)
        data = sim.get_data(request)
        assert data["Grid-0"]["pf_converged"] == 1
        assert_matches_runpp(base_net, data)


def test_fast_path_matches_runpp_with_tie_switch_closed(base_net: pp.pandapowerNet) -> None:
    sim, request = make_sim(base_net)
    tie = eid_of(base_net, "switch", "tie-33", "Switch")
    sim.step(0, {**varied_inputs(base_net, 7), **inputs(**{tie: {"closed": True}})}, BIG)
    data = sim.get_data(request)
    assert data[tie]["closed"] is True
    assert_matches_runpp(base_net, data)


def test_switch_changes_line_flows_same_step(base_net: pp.pandapowerNet) -> None:
    sim, request = make_sim(base_net)
    tie = eid_of(base_net, "switch", "tie-33", "Switch")
    tie_line = f"Line-{base_net.switch.at[int(tie.split('-')[1]), 'element']}"
    sim.step(0, {}, BIG)
    open_flow = sim.get_data(request)[tie_line]["p_from_mw"]
    assert open_flow == pytest.approx(0.0, abs=1e-9)
    sim.step(3600, inputs(**{tie: {"closed": True}}), BIG)
    closed = sim.get_data(request)
    assert abs(closed[tie_line]["p_from_mw"]) > 1e-3
    sim.step(7200, inputs(**{tie: {"closed": False}}), BIG)
    assert sim.get_data(request)[tie_line]["p_from_mw"] == pytest.approx(0.0, abs=1e-9)


def storage_net(base_net: pp.pandapowerNet, eta: float) -> pp.pandapowerNet:
    net = copy.deepcopy(base_net)
    net.storage["eta_ch"] = eta
    net.storage["eta_dis"] = eta
    return net


@pytest.mark.parametrize("step_size", [3600, 900])
def test_storage_soc_integration(base_net: pp.pandapowerNet, step_size: int) -> None:
    net = storage_net(base_net, 0.9)
    sim, request = make_sim(net, step_size)
    dt_h = step_size / 3600
    soc0 = 0.2  # 20 % of 1 MWh
    sim.step(0, inputs(**{"Storage-0": {"p_mw": 0.5}}), BIG)
    s = sim.get_data(request)["Storage-0"]
    assert s["p_mw"] == pytest.approx(0.5)
    assert s["clipped_mw"] == pytest.approx(0.0)
    assert s["soc_mwh"] == pytest.approx(soc0 + 0.5 * 0.9 * dt_h)
    sim.step(step_size, inputs(**{"Storage-0": {"p_mw": -0.15}}), BIG)
    s2 = sim.get_data(request)["Storage-0"]
    assert s2["soc_mwh"] == pytest.approx(s["soc_mwh"] - 0.15 / 0.9 * dt_h)
    # the setpoint holds until a new one arrives
    sim.step(2 * step_size, {}, BIG)
    s3 = sim.get_data(request)["Storage-0"]
    assert s3["p_mw"] == pytest.approx(-0.15)
    assert s3["soc_mwh"] == pytest.approx(s2["soc_mwh"] - 0.15 / 0.9 * dt_h)


def test_storage_clipped_at_power_limit(base_net: pp.pandapowerNet, caplog: pytest.LogCaptureFixture) -> None:
    sim, request = make_sim(base_net)
    with caplog.at_level(logging.WARNING, logger="sims.grid"):
        sim.step(0, inputs(**{"Storage-0": {"p_mw": 0.8}}), BIG)
    s = sim.get_data(request)["Storage-0"]
    assert s["p_mw"] == pytest.approx(0.5)
    assert s["clipped_mw"] == pytest.approx(0.3)
    assert s["soc_mwh"] == pytest.approx(0.2 + 0.5 * 0.98)
    assert "MG1-bess" in caplog.text


def test_storage_clipped_at_energy_limit(base_net: pp.pandapowerNet, caplog: pytest.LogCaptureFixture) -> None:
    sim, request = make_sim(base_net)
    with caplog.at_level(logging.WARNING, logger="sims.grid"):
        sim.step(0, inputs(**{"Storage-0": {"p_mw": -0.5}}), BIG)
    s = sim.get_data(request)["Storage-0"]
    # 0.2 MWh at eta_dis 0.98 deliver at most 0.196 MW for one hour
    assert s["p_mw"] == pytest.approx(-0.196)
    assert s["clipped_mw"] == pytest.approx(-0.304)
    assert s["soc_mwh"] == pytest.approx(0.0, abs=1e-12)
    assert "MG1-bess" in caplog.text
    # charging to the top: 0.5 MW * 0.98 for 3 h would pass 1 MWh
    sim.step(3600, inputs(**{"Storage-0": {"p_mw": 0.5}}), BIG)
    sim.step(7200, {}, BIG)
    sim.step(10800, {}, BIG)
    s = sim.get_data(request)["Storage-0"]
    assert s["soc_mwh"] == pytest.approx(1.0)
    assert s["p_mw"] == pytest.approx((1.0 - 2 * 0.49) / 0.98)
    assert s["clipped_mw"] == pytest.approx(0.5 - (1.0 - 2 * 0.49) / 0.98)


def test_curtailment(base_net: pp.pandapowerNet) -> None:
    sim, request = make_sim(base_net)
    pv = eid_of(base_net, "sgen", "MG1-pv", "StaticGen")
    sim.step(0, inputs(**{pv: {"p_mw": 0.5, "p_avail_mw": 0.8}}), BIG)
    d = sim.get_data(request)[pv]
    assert (d["p_mw"], d["p_avail_mw"], d["curtailed_mw"]) == pytest.approx((0.5, 0.8, 0.3))
    sim.step(3600, inputs(**{pv: {"p_mw": 1.0}}), BIG)  # availability holds at 0.8
    d = sim.get_data(request)[pv]
    assert (d["p_mw"], d["curtailed_mw"]) == pytest.approx((0.8, 0.0))


def test_sgen_defaults_without_inputs(base_net: pp.pandapowerNet) -> None:
    sim, request = make_sim(base_net)
    sim.step(0, {}, BIG)
    data = sim.get_data(request)
    pv = eid_of(base_net, "sgen", "MG1-pv", "StaticGen")
    diesel = eid_of(base_net, "sgen", "MG1-diesel", "StaticGen")
    assert data[pv]["p_mw"] == pytest.approx(1.0)  # non-controllable: availability = max_p_mw
    assert data[diesel]["p_mw"] == pytest.approx(0.0)  # controllable: its net p_mw


def svc_net(base_net: pp.pandapowerNet) -> tuple[pp.pandapowerNet, str, str]:
    """The test net with an SVC (a static generator of no active power and a reactive range of
    +-0.5 Mvar) on the far end of its longest feeder; the SVC's entity and its bus's."""
    net = copy.deepcopy(base_net)
    far = int(net.bus.index[-1])
    idx = pp.create_sgen(
        net, far, p_mw=0.0, q_mvar=0.0, max_p_mw=0.0, min_q_mvar=-0.5, max_q_mvar=0.5, name="svc", type="SVC"
    )
    return net, f"StaticGen-{idx}", f"Bus-{far}"


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "runpp"])
def test_reactive_setpoint_of_an_svc_moves_its_bus_voltage(base_net: pp.pandapowerNet, fast: bool) -> None:
    """An sgen's ``q_mvar`` input is applied within its ``[min_q_mvar, max_q_mvar]`` (an SVC injecting
    raises its bus's voltage, absorbing lowers it), on both power-flow paths, as a fresh runpp has it."""
    net, svc, bus = svc_net(base_net)
    sim, request = make_sim(net)
    if not fast:
        sim._fast = None
    vm: dict[float, float] = {}
    for k, q in enumerate((0.0, 0.4, -0.4, 0.9)):
        sim.step(3600 * k, {**varied_inputs(net, 3), **inputs(**{svc: {"q_mvar": q}})}, BIG)
        data = sim.get_data(request)
        assert data["Grid-0"]["pf_converged"] == 1
        assert data[svc]["p_mw"] == pytest.approx(0.0, abs=1e-12)
        assert data[svc]["q_mvar"] == pytest.approx(min(q, 0.5))
        assert_matches_runpp(net, data)
        vm[q] = data[bus]["vm_pu"]
    assert vm[-0.4] < vm[0.0] < vm[0.4] < vm[0.9]
    assert vm[0.4] - vm[0.0] > 1e-3  # a measurable lift, not rounding
    sim.step(3600 * 4, varied_inputs(net, 3), BIG)  # no new input: the last setpoint holds
    assert sim.get_data(request)[svc]["q_mvar"] == pytest.approx(0.5)


def open_pcc(net: pp.pandapowerNet, mg: str) -> dict:
    return inputs(**{eid_of(net, "switch", f"{mg}-pcc", "Switch"): {"closed": False}})


def test_island_without_grid_forming_unit_is_unsupplied(base_net: pp.pandapowerNet) -> None:
    net = copy.deepcopy(base_net)
    net.storage["grid_forming"] = False
    sim, request = make_sim(net)
    mg_bus = int(net.bus.index[net.bus["name"] == "MG1-bus"][0])
    sim.step(0, open_pcc(net, "MG1"), BIG)
    data = sim.get_data(request)
    assert data["Grid-0"]["pf_converged"] == 1
    assert np.isnan(data[f"Bus-{mg_bus}"]["vm_pu"])
    assert data["Grid-0"]["unsupplied_mw"] == pytest.approx(0.5)
    assert not np.isnan(data["Bus-0"]["vm_pu"])
    mg_load = eid_of(net, "load", "MG1-load", "Load")
    assert data[mg_load]["p_mw"] == 0.0
    # the rest of the grid still matches pandapower (which leaves the island unsolved)
    ref = reference_runpp(net, {**data, mg_load: {"p_mw": 0.5, "q_mvar": 0.1}})
    vm = np.array([data[f"Bus-{i}"]["vm_pu"] for i in net.bus.index])
    np.testing.assert_allclose(vm, ref.res_bus["vm_pu"].to_numpy(), atol=VM_TOL_PU, rtol=0)
    # reconnecting supplies it again
    sim.step(3600, inputs(**{eid_of(net, "switch", "MG1-pcc", "Switch"): {"closed": True}}), BIG)
    data = sim.get_data(request)
    assert data["Grid-0"]["unsupplied_mw"] == 0.0
    assert not np.isnan(data[f"Bus-{mg_bus}"]["vm_pu"])


def test_island_with_grid_forming_storage(base_net: pp.pandapowerNet) -> None:
    sim, request = make_sim(base_net)
    pv = eid_of(base_net, "sgen", "MG1-pv", "StaticGen")
    wind = eid_of(base_net, "sgen", "MG1-wind", "StaticGen")
    diesel = eid_of(base_net, "sgen", "MG1-diesel", "StaticGen")
    step_in = {
        **open_pcc(base_net, "MG1"),
        **inputs(
            **{pv: {"p_avail_mw": 0.3}, wind: {"p_avail_mw": 0.1}, diesel: {"p_mw": 0.0}, "Storage-0": {"p_mw": 0.4}}
        ),
    }
    sim.step(0, step_in, BIG)
    data = sim.get_data(request)
    assert data["Grid-0"]["pf_converged"] == 1
    assert data["Grid-0"]["unsupplied_mw"] == 0.0
    mg_bus = int(base_net.bus.index[base_net.bus["name"] == "MG1-bus"][0])
    assert data[f"Bus-{mg_bus}"]["vm_pu"] == pytest.approx(1.0)
    # the storage balances its island: load 0.5 - PV 0.3 - wind 0.1 -> discharges 0.1 MW
    assert data["Storage-0"]["p_mw"] == pytest.approx(-0.1, abs=1e-6)
    assert data["Storage-0"]["soc_mwh"] == pytest.approx(0.2 - 0.1 / 0.98, abs=1e-6)
    assert data["Storage-0"]["clipped_mw"] == pytest.approx(0.0, abs=1e-9)
    assert data["Storage-1"]["p_mw"] == pytest.approx(0.0)
    assert sim.last_path == "fast"
    # without PV it needs 0.4 MW for an hour but holds only ~0.098 MWh: runs empty, marked as clipped
    sim.step(3600, inputs(**{pv: {"p_avail_mw": 0.0}}), BIG)
    data = sim.get_data(request)
    assert data["Grid-0"]["pf_converged"] == 1
    assert data["Storage-0"]["p_mw"] == pytest.approx(-0.4, abs=1e-6)
    assert data["Storage-0"]["soc_mwh"] == pytest.approx(0.0, abs=1e-12)
    deliverable = (0.2 - 0.1 / 0.98) * 0.98
    assert data["Storage-0"]["clipped_mw"] == pytest.approx(-0.4 + deliverable, abs=1e-6)


def test_islands_match_runpp_with_slack_at_grid_forming_units(base_net: pp.pandapowerNet) -> None:
    """Two grid-forming islands and one unsupplied island at once, against pandapower."""
    net = copy.deepcopy(base_net)
    mg3_storage = int(net.storage.index[net.storage["name"] == "MG3-bess"][0])
    net.storage.at[mg3_storage, "grid_forming"] = False
    sim, request = make_sim(net)
    step_in = {**varied_inputs(net, 3), **open_pcc(net, "MG1"), **open_pcc(net, "MG2"), **open_pcc(net, "MG3")}
    sim.step(0, step_in, BIG)
    data = sim.get_data(request)
    assert sim.last_path == "fast"
    assert data["Grid-0"]["pf_converged"] == 1
    assert data["Grid-0"]["unsupplied_mw"] == pytest.approx(step_in["Load-34"]["p_mw"]["src"])
    # reference: pandapower with an ext_grid at each grid-forming storage, which is taken out
    ref_data = copy.deepcopy(data)
    ref_data["Load-34"] = {"p_mw": step_in["Load-34"]["p_mw"]["src"], "q_mvar": step_in["Load-34"]["q_mvar"]["src"]}
    ref = copy.deepcopy(net)
    for name in ("MG1-bess", "MG2-bess"):
        idx = int(ref.storage.index[ref.storage["name"] == name][0])
        ref.storage.at[idx, "in_service"] = False
        pp.create_ext_grid(ref, int(ref.storage.at[idx, "bus"]), vm_pu=1.0)
    ref = reference_runpp(ref, ref_data)
    vm = np.array([data[f"Bus-{i}"]["vm_pu"] for i in net.bus.index])
    np.testing.assert_allclose(vm, ref.res_bus["vm_pu"].to_numpy(), atol=VM_TOL_PU, rtol=0)
    for k, name in ((1, "MG1-bess"), (2, "MG2-bess")):
        idx = int(net.storage.index[net.storage["name"] == name][0])
        assert data[f"Storage-{idx}"]["p_mw"] == pytest.approx(-ref.res_ext_grid.at[k, "p_mw"], abs=P_TOL_MW)
    p_from = np.array([data[f"Line-{i}"]["p_from_mw"] for i in net.line.index])
    np.testing.assert_allclose(p_from, ref.res_line["p_from_mw"].to_numpy(), atol=P_TOL_MW, rtol=0)
    mg3_bus = int(net.bus.index[net.bus["name"] == "MG3-bus"][0])
    assert np.isnan(data[f"Bus-{mg3_bus}"]["vm_pu"])


def test_multi_bus_grid_forming_island_matches_runpp(base_net: pp.pandapowerNet) -> None:
    """Feeder buses 15-17 and MG1 cut off by a sectionalising switch, fed by MG1's storage."""
    net = copy.deepcopy(base_net)
    line = int(net.line.index[(net.line["from_bus"] == 14) & (net.line["to_bus"] == 15)][0])
    sw = pp.create_switch(net, bus=15, element=line, et="l", closed=True, name="section")
    for k in range(2):
        sim, request = make_sim(net)
        step_in = {**varied_inputs(net, 11 + k), **inputs(**{f"Switch-{sw}": {"closed": False}})}
        step_in["Load-15"] = {"p_mw": {"src": 0.05}, "q_mvar": {"src": 0.01}}
        sim.step(0, step_in, BIG)
        data = sim.get_data(request)
        assert sim.last_path == "fast"
        ref = copy.deepcopy(net)
        ref.storage.at[0, "in_service"] = False
        pp.create_ext_grid(ref, int(ref.storage.at[0, "bus"]), vm_pu=1.0)
        ref = reference_runpp(ref, data)
        vm = np.array([data[f"Bus-{i}"]["vm_pu"] for i in net.bus.index])
        np.testing.assert_allclose(vm, ref.res_bus["vm_pu"].to_numpy(), atol=VM_TOL_PU, rtol=0)
        p_from = np.array([data[f"Line-{i}"]["p_from_mw"] for i in net.line.index])
        np.testing.assert_allclose(p_from, ref.res_line["p_from_mw"].to_numpy(), atol=P_TOL_MW, rtol=0)
        assert data["Storage-0"]["p_mw"] == pytest.approx(-ref.res_ext_grid.at[1, "p_mw"], abs=P_TOL_MW)


def test_diverged_power_flow_gives_nan_and_recovers(
    base_net: pp.pandapowerNet, caplog: pytest.LogCaptureFixture
) -> None:
    sim, request = make_sim(base_net)
    with caplog.at_level(logging.WARNING, logger="sims.grid"):
        sim.step(0, inputs(**{"Load-17": {"p_mw": 500.0}, "Storage-3": {"p_mw": 0.5}}), BIG)
    data = sim.get_data(request)
    assert data["Grid-0"]["pf_converged"] == 0
    assert np.isnan(data["Bus-5"]["vm_pu"])
    assert np.isnan(data["Line-3"]["loading_percent"])
    assert np.isnan(data["Grid-0"]["losses_mw"])
    assert "t=0" in caplog.text
    # applied setpoints are physical: the SoC integrates them
    assert data["Storage-3"]["soc_mwh"] == pytest.approx(1.5 + 0.5 * 0.98)
    sim.step(3600, inputs(**{"Load-17": {"p_mw": 0.09}}), BIG)
    data = sim.get_data(request)
    assert data["Grid-0"]["pf_converged"] == 1
    assert_matches_runpp(base_net, data)


def test_fast_path_with_trafo_and_cable_ring_matches_runpp() -> None:
    """A 110/20 kV trafo (150 deg shift) and a cable ring whose open point moves."""
    import pandapower.networks as pn

    net = pn.simple_mv_open_ring_net()
    sim, request = make_sim(net)
    assert sim._fast is not None
    for k, (open_sw, close_sw) in enumerate(((None, None), (6, None), (0, 6))):
        step_in = {}
        if open_sw is not None:
            step_in[f"Switch-{open_sw}"] = {"closed": {"src": False}}
        if close_sw is not None:
            step_in[f"Switch-{close_sw}"] = {"closed": {"src": True}}
        data, ref = _step_matches_runpp(sim, net, request, 3600 * k, step_in)
        loading = max(ref.res_line["loading_percent"].max(), ref.res_trafo["loading_percent"].max())
        assert data["Grid-0"]["max_loading_percent"] == pytest.approx(loading, abs=1e-4)


def _step_matches_runpp(sim, net, request, time_s: int, step_in: dict):
    """Step the fast path and check its voltages and losses against a fresh runpp of the same state."""
    sim.step(time_s, step_in, BIG)
    data = sim.get_data(request)
    assert sim.last_path == "fast"
    ref = reference_runpp(net, data)
    vm = np.array([data[f"Bus-{i}"]["vm_pu"] for i in net.bus.index])
    np.testing.assert_allclose(vm, ref.res_bus["vm_pu"].to_numpy(), atol=VM_TOL_PU, rtol=0)
    losses = ref.res_line["pl_mw"].sum() + ref.res_trafo["pl_mw"].sum()
    assert data["Grid-0"]["losses_mw"] == pytest.approx(losses, abs=P_TOL_MW)
    return data, ref


def test_fast_path_with_trafo_switches_matches_runpp() -> None:
    """CIGRE MV: opening the hv switch of one trafo leaves its feeder unsupplied, the rest as runpp."""
    import pandapower.networks as pn

    net = pn.create_cigre_network_mv(with_der="all")
    sim, request = make_sim(net)
    assert sim._fast is not None
    trafo_switch = int(net.switch.index[(net.switch["et"] == "t") & (net.switch["element"] == 1)][0])
    for k, step_in in enumerate(({}, inputs(**{f"Switch-{trafo_switch}": {"closed": False}}))):
        data, ref = _step_matches_runpp(sim, net, request, 3600 * k, step_in)
    fed = net.bus.index[np.isnan(ref.res_bus["vm_pu"].to_numpy())]
    assert data["Grid-0"]["unsupplied_mw"] == pytest.approx(net.load.loc[net.load["bus"].isin(fed), "p_mw"].sum())


def test_bus_bus_switch_uses_pandapower(tmp_path: Any) -> None:
    net = pp.create_empty_network()
    b0, b1, b2 = (pp.create_bus(net, vn_kv=20.0) for _ in range(3))
    pp.create_ext_grid(net, b0)
    pp.create_line_from_parameters(net, b0, b1, 1.0, 0.2, 0.2, 0.0, 0.4)
    sw = pp.create_switch(net, b1, b2, et="b", closed=True)
    load = pp.create_load(net, b2, p_mw=1.0)
    sim, request = make_sim(net)
    assert sim._fast is None
    sim.step(0, {}, BIG)
    data = sim.get_data(request)
    assert data["Grid-0"]["pf_converged"] == 1
    assert data[f"Bus-{b2}"]["vm_pu"] < 1.0
    sim.step(3600, inputs(**{f"Switch-{sw}": {"closed": False}}), BIG)
    data = sim.get_data(request)
    assert np.isnan(data[f"Bus-{b2}"]["vm_pu"])
    assert data["Grid-0"]["unsupplied_mw"] == pytest.approx(1.0)
    assert data[f"Load-{load}"]["p_mw"] == 0.0


def test_net_loading(base_net: pp.pandapowerNet, tmp_path: Any) -> None:
    assert len(load_net("case33bw").bus) == 33
    text = pp.to_json(base_net)
    from_string = load_net(text)
    assert len(from_string.storage) == 4
    path = tmp_path / "net.json"
    path.write_text(text)
    from_file = load_net(str(path))
    # the custom storage columns survive the JSON round trip
    for net in (from_string, from_file):
        np.testing.assert_allclose(net.storage["eta_ch"].to_numpy(), 0.98)
        assert net.storage["grid_forming"].tolist() == [True, True, True, False]
        assert net.storage["grid_forming"].dtype == bool
    with pytest.raises(ValueError, match="no_such_net"):
        load_net("no_such_net")
    sim = GridSim()
    sim.init("Grid")
    with pytest.raises(ValueError, match="no_such_net"):
        sim.create(1, "Grid", net="no_such_net")


def test_inputs_follow_their_rules_whatever_their_layout(base_net: pp.pandapowerNet) -> None:
    """Several sources are summed, None is no value, a switch is closed only if every source says so, and
    a step whose inputs have another layout (a source more, one less, an attribute more) than the last is
    read as it is: the grid plans the layout of its inputs once and checks it every step."""
    sim, request = make_sim(base_net)
    tie = eid_of(base_net, "switch", "tie-33", "Switch")
    pv = eid_of(base_net, "sgen", "MG1-pv", "StaticGen")
    first: InputData = {
        "Load-1": {"p_mw": {"a": 0.05, "b": 0.02}, "q_mvar": {"a": 0.01}},
        "Load-2": {"p_mw": {"a": 0.07}},
        "Storage-0": {"p_mw": {"ems": None}},
        pv: {"p_avail_mw": {"a": 0.6}},
        tie: {"closed": {"a": True, "b": True}},
    }
    sim.step(0, first, BIG)
    d = sim.get_data(request)
    assert (d["Load-1"]["p_mw"], d["Load-1"]["q_mvar"], d["Load-2"]["p_mw"]) == pytest.approx((0.07, 0.01, 0.07))
    assert d["Storage-0"]["p_mw"] == 0.0  # None: the net's own setpoint holds
    assert d[pv]["p_mw"] == pytest.approx(0.6)
    assert d[tie]["closed"] is True
    layouts: list[InputData] = [
        # the same layout, new values; one switch source says open
        {**first, "Load-2": {"p_mw": {"a": 0.03}}, tie: {"closed": {"a": True, "b": False}}},
        # Load-1 loses a source, Load-2 gains one (the number of sources stays)
        {**first, "Load-1": {"p_mw": {"a": 0.04}, "q_mvar": {"a": 0.01}}, "Load-2": {"p_mw": {"a": 0.03, "c": 0.01}}},
        # an attribute more; None of a source leaves the other
        {**first, "Load-1": {"p_mw": {"a": 0.04, "b": None}, "q_mvar": {"a": 0.02}, "shed_mw": {"ems": 0.01}}},
    ]
    expected = [(0.07, 0.03, False), (0.04, 0.04, True), (0.04 - 0.01, 0.07, True)]  # served: less the shed
    for k, (step_in, (load1, load2, closed)) in enumerate(zip(layouts, expected, strict=True)):
        sim.step(3600 * (k + 1), step_in, BIG)
        d = sim.get_data(request)
        assert (d["Load-1"]["p_mw"], d["Load-2"]["p_mw"]) == pytest.approx((load1, load2)), k
        assert d[tie]["closed"] is closed
        assert d["Grid-0"]["pf_converged"] == 1
        assert_matches_runpp(base_net, d)
    assert d["Load-1"]["shed_mw"] == pytest.approx(0.01)
    # the last layout and an attribute more of an entity that had inputs (no source count changes)
    sim.step(4 * 3600, {**layouts[-1], "Load-2": {"p_mw": {"a": 0.07}, "q_mvar": {"a": 0.02}}}, BIG)
    assert sim.get_data(request)["Load-2"]["q_mvar"] == pytest.approx(0.02)
    # the same, but another source of the same attribute
    sim.step(5 * 3600, {**layouts[-1], "Load-2": {"p_mw": {"z": 0.05}, "q_mvar": {"a": 0.02}}}, BIG)
    assert sim.get_data(request)["Load-2"]["p_mw"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="Bus takes no input 'p_mw'"):
        sim.step(6 * 3600, {"Load-1": {"p_mw": {"a": 0.3}}, "Bus-3": {"p_mw": {"a": 1.0}}}, BIG)
    sim.step(7 * 3600, {}, BIG)  # the refused step wrote nothing
    assert sim.get_data({"Load-1": ["p_mw"]})["Load-1"]["p_mw"] == pytest.approx(0.03)
    with pytest.raises(ValueError, match="could not convert string to float: 'much'"):
        sim.step(8 * 3600, {"Load-1": {"p_mw": {"a": "much"}}}, BIG)


def test_get_data_answers_any_request_in_its_order(base_net: pp.pandapowerNet) -> None:
    """A request of some entities and attributes, models interleaved, gets the values of the full request
    for exactly those, keys in the request's order; requests that alternate are answered alike."""
    sim, every = make_sim(base_net)
    sim.step(0, varied_inputs(base_net, 5), BIG)
    full = sim.get_data(every)
    some = {
        "Bus-7": ["va_degree", "vm_pu"],
        "Load-3": ["p_mw"],
        "Grid-0": ["losses_mw", "pf_converged"],
        "Bus-2": ["va_degree", "vm_pu"],
        "Line-4": [],
        "Switch-1": ["closed"],
        "Storage-2": ["soc_mwh", "p_mw", "clipped_mw"],
    }
    for request in (some, every, some):
        data = sim.get_data(request)
        assert list(data) == list(request)
        for eid, attrs in request.items():
            assert list(data[eid]) == list(attrs)
            for attr in attrs:
                assert data[eid][attr] == full[eid][attr] or np.isnan(full[eid][attr])
    assert isinstance(data["Grid-0"]["pf_converged"], int)
    assert isinstance(data["Bus-7"]["vm_pu"], float)
    assert isinstance(data["Switch-1"]["closed"], bool)


def test_grid_column_outputs_are_the_entities_values_in_child_order(base_net: pp.pandapowerNet) -> None:
    """``Grid-0``'s ``"<Model>.<attr>"`` outputs: the attribute of every entity of the model as one list, in
    the order of the Grid's children of that model; before the first step NaN (switches: their state)."""
    sim = GridSim()
    sim.init("Grid", time_resolution=1.0, step_size=3600)
    children = sim.create(1, "Grid", net=pp.to_json(base_net))[0]["children"]
    columns = [a for a in sim.meta["models"]["Grid"]["attrs"] if "." in a]
    assert set(columns) == {f"{m}.{a}" for m, spec in MODEL_SPECS.items() for a in spec.outputs}
    before = sim.get_data({"Grid-0": columns})["Grid-0"]
    assert np.isnan(before["Bus.vm_pu"]).all()
    assert before["Switch.closed"] == base_net.switch["closed"].tolist()
    sim.step(0, varied_inputs(base_net, 3), BIG)
    every = {c["eid"]: list(MODEL_SPECS[c["type"]].outputs) for c in children}
    one_by_one = sim.get_data(every)
    got = sim.get_data({"Grid-0": ["losses_mw", *columns]})["Grid-0"]
    assert list(got) == ["losses_mw", *columns]
    for col in columns:
        model, attr = col.split(".")
        want = [one_by_one[c["eid"]][attr] for c in children if c["type"] == model]
        assert got[col] == want, col
    assert isinstance(got["Switch.closed"][0], bool)


# --------------------------------------------------------------------- mosaik end-to-end
SOURCE_META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {"Source": {"public": True, "params": ["values"], "attrs": ["p_mw"]}},
}
COLLECTOR_META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {"Collector": {"public": True, "params": [], "attrs": [], "any_inputs": True}},
}


class SourceSim(mosaik_api_v3.Simulator):
    """Emits one value per step from a list."""

    def __init__(self) -> None:
        super().__init__(SOURCE_META)
        self.values: dict[str, list[float]] = {}
        self.now = 0

    @override
    def init(self, sid: SimId, time_resolution: float = 1.0, step_size: int = 3600, **sim_params: Any) -> Meta:
        if sim_params:
            raise TypeError(f"unexpected sim params {sorted(sim_params)}")
        self.step_size = step_size
        return self.meta

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        values: list[float] = model_params["values"]
        eid = f"Source-{len(self.values)}"
        self.values[eid] = list(values)
        return [{"eid": eid, "type": model}]

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time:
        self.now = time
        return time + self.step_size

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        k = self.now // self.step_size
        return {eid: {"p_mw": self.values[eid][k]} for eid in outputs}


COLLECTED: list[dict] = []


class CollectorSim(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(COLLECTOR_META)

    @override
    def init(self, sid: SimId, time_resolution: float = 1.0, step_size: int = 3600, **sim_params: Any) -> Meta:
        if sim_params:
            raise TypeError(f"unexpected sim params {sorted(sim_params)}")
        self.step_size = step_size
        return self.meta

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        if model_params:
            raise TypeError(f"unexpected model params {sorted(model_params)}")
        return [{"eid": "Collector-0", "type": model}]

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time:
        COLLECTED.append({"time": time, **inputs.get("Collector-0", {})})
        return time + self.step_size


def test_mosaik_world_inputs_reach_grid(base_net: pp.pandapowerNet) -> None:
    COLLECTED.clear()
    world = mosaik.World(
        {
            "Grid": {"python": "sims.grid:GridSim"},
            "Source": {"python": "tests.test_grid:SourceSim"},
            "Collector": {"python": "tests.test_grid:CollectorSim"},
        }
    )
    grid = world.start("Grid", step_size=3600).Grid(net=pp.to_json(base_net))
    children = {e.eid: e for e in grid.children}
    source = world.start("Source", step_size=3600).Source(values=[0.0, 0.5, -0.5, 0.0])
    collector = world.start("Collector", step_size=3600).Collector()
    world.connect(source, children["Storage-3"], "p_mw")
    world.connect(children["Storage-3"], collector, "soc_mwh")
    world.connect(grid, collector, "pf_converged")
    world.connect(children["ExtGrid-0"], collector, "p_mw")
    world.run(until=4 * 3600, print_progress=False)
    assert [row["time"] for row in COLLECTED] == [0, 3600, 7200, 10800]
    socs = [next(iter(row["soc_mwh"].values())) for row in COLLECTED]
    assert socs == pytest.approx([1.5, 1.5 + 0.49, 1.5 + 0.49 - 0.5 / 0.98, 1.5 + 0.49 - 0.5 / 0.98])
    ext = [next(iter(row["p_mw"].values())) for row in COLLECTED]
    assert ext[1] - ext[0] == pytest.approx(0.5, abs=0.01)  # charging draws from upstream
    assert all(next(iter(row["pf_converged"].values())) == 1 for row in COLLECTED)
