"""Tests of the grid's AC power flow without mosaik: ``PowerFlow.run`` against a fresh ``pandapower.runpp``.

Tolerances: the fast path (lightsim2grid) is used only when it reproduces runpp within 1e-6 pu at set-up,
so bus voltages are compared at :data:`VM_TOL_PU`; angles at :data:`VA_TOL_DEG`; powers at
:data:`P_TOL_MW`; line and trafo loading at :data:`LOADING_TOL_PERCENT`. The runpp path is pandapower
itself and is compared at :data:`EXACT_TOL`.
"""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from sims.grid.lsmodel import FLOAT32_TOL_MW
from sims.grid.netindex import NetIndex
from sims.grid.pf_result import Injections, PfPath, PowerFlowResult
from sims.grid.powerflow import PowerFlow
from sims.grid.topology import Unit, analyse

VM_TOL_PU = 1e-6
VA_TOL_DEG = 1e-5
P_TOL_MW = 1e-6
LOADING_TOL_PERCENT = 1e-4
EXACT_TOL = 1e-9

ISLAND_LINE = 17
"""case33bw line 1 -> 18: opening it at bus 18 cuts buses 18-21 off."""
ISLAND_BUSES = [18, 19, 20, 21]


def case33() -> pp.pandapowerNet:
    net = pn.case33bw()
    net.line["max_i_ka"] = 0.4  # case33bw's 99999 kA would make every loading ~0
    return net


def island_net(grid_forming: bool) -> pp.pandapowerNet:
    """case33bw with an open switch that islands buses 18-21, a PV there and a storage that may form it."""
    net = case33()
    pp.create_switch(net, bus=18, element=ISLAND_LINE, et="l", closed=False)
    pp.create_sgen(net, 19, p_mw=0.05, q_mvar=0.0)
    pp.create_storage(net, 20, p_mw=0.0, max_e_mwh=1.0)
    net.storage["grid_forming"] = grid_forming
    return net


def varied(net: pp.pandapowerNet, seed: int) -> Injections:
    """The net's own injections with every load drawn between 0.5 and 1.5 times its value."""
    rng = np.random.default_rng(seed)
    own = Injections.from_net(net)
    factor = rng.uniform(0.5, 1.5, len(own.load_p_mw))
    return Injections(
        own.load_p_mw * factor, own.load_q_mvar * factor, own.sgen_p_mw, own.sgen_q_mvar, own.st_p_mw, own.st_q_mvar
    )


def solve(net: pp.pandapowerNet, inj: Injections, fast: bool = True) -> tuple[PowerFlowResult, PowerFlow]:
    """Set up the power flow of ``net`` (a copy) and run it once in the net's switch state."""
    pf, index = PowerFlow.of_net(copy.deepcopy(net), use_fast_path=fast)
    topo = analyse(index, net.switch["closed"].to_numpy(dtype=bool))
    return pf.run(topo, inj), pf


def reference(net: pp.pandapowerNet, inj: Injections) -> pp.pandapowerNet:
    """A fresh runpp of ``net`` with the powers of ``inj`` (nets here have scaling 1)."""
    ref = copy.deepcopy(net)
    ref.load["p_mw"] = inj.load_p_mw
    ref.load["q_mvar"] = inj.load_q_mvar
    ref.sgen["p_mw"] = inj.sgen_p_mw
    ref.storage["p_mw"] = inj.st_p_mw
    pp.runpp(ref, numba=False)
    return ref


def assert_matches(res: PowerFlowResult, ref: pp.pandapowerNet, vm_tol: float = VM_TOL_PU) -> None:
    """Buses, lines, ext_grid and losses of ``res`` against ``ref``'s results.

    Buses pandapower leaves unsolved (vm NaN) are NaN in every bus array of ``res``; lines it leaves
    unsolved (loading NaN) have 0 % loading in ``res``.
    """
    np.testing.assert_allclose(res.vm_pu, ref.res_bus["vm_pu"].to_numpy(), atol=vm_tol, rtol=0)
    np.testing.assert_allclose(res.va_degree, ref.res_bus["va_degree"].to_numpy(), atol=VA_TOL_DEG, rtol=0)
    solved = ~np.isnan(ref.res_bus["vm_pu"].to_numpy())
    assert np.isnan(res.bus_p_mw[~solved]).all()
    assert np.isnan(res.bus_q_mvar[~solved]).all()
    np.testing.assert_allclose(res.bus_p_mw[solved], ref.res_bus["p_mw"].to_numpy()[solved], atol=P_TOL_MW, rtol=0)
    np.testing.assert_allclose(res.bus_q_mvar[solved], ref.res_bus["q_mvar"].to_numpy()[solved], atol=P_TOL_MW, rtol=0)
    line = ref.res_line
    # lines pandapower leaves unsolved (in an unsupplied island) carry no current here: 0 %
    flowing = ~np.isnan(line["loading_percent"].to_numpy())
    assert (res.loading.line_loading_percent[~flowing] == 0.0).all()
    for ours, column in (
        (res.line.p1_mw, "p_from_mw"),
        (res.line.q2_mvar, "q_to_mvar"),
        (res.loading.line_pl_mw, "pl_mw"),
        (res.loading.line_loading_percent, "loading_percent"),
    ):
        tol = LOADING_TOL_PERCENT if column == "loading_percent" else P_TOL_MW
        np.testing.assert_allclose(ours[flowing], line[column].to_numpy()[flowing], atol=tol, rtol=0, err_msg=column)
    np.testing.assert_allclose(res.ext_grid_p_mw, ref.res_ext_grid["p_mw"].to_numpy(), atol=P_TOL_MW, rtol=0)
    np.testing.assert_allclose(res.ext_grid_q_mvar, ref.res_ext_grid["q_mvar"].to_numpy(), atol=P_TOL_MW, rtol=0)
    losses = line["pl_mw"].sum() + (ref.res_trafo["pl_mw"].sum() if len(ref.trafo) else 0.0)
    assert res.losses_mw == pytest.approx(losses, abs=P_TOL_MW)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_path_matches_runpp_on_case33bw(seed: int) -> None:
    net = case33()
    inj = varied(net, seed)
    res, pf = solve(net, inj)
    assert pf.fast is not None
    assert res.path is PfPath.FAST
    assert res.converged
    assert res.slack_p_mw == {}
    assert_matches(res, reference(net, inj))
    assert np.nanmax(res.loading.line_loading_percent) > 10.0  # the comparison is not of zeros


def test_fast_path_warm_start_follows_new_injections() -> None:
    """One PowerFlow, several steps: each result matches runpp of that step's powers."""
    net = case33()
    pf, index = PowerFlow.of_net(copy.deepcopy(net))
    topo = analyse(index, net.switch["closed"].to_numpy(dtype=bool))
    for seed in range(4):
        inj = varied(net, 10 + seed)
        res = pf.run(topo, inj)
        assert res.path is PfPath.FAST
        assert_matches(res, reference(net, inj))


def test_runpp_path_is_pandapower() -> None:
    net = case33()
    inj = varied(net, 5)
    res, pf = solve(net, inj, fast=False)
    assert pf.fast is None
    assert res.path is PfPath.RUNPP
    assert_matches(res, reference(net, inj), vm_tol=EXACT_TOL)
    fast, _ = solve(net, inj)
    np.testing.assert_allclose(fast.vm_pu, res.vm_pu, atol=VM_TOL_PU, rtol=0)
    np.testing.assert_allclose(
        fast.loading.line_loading_percent, res.loading.line_loading_percent, atol=LOADING_TOL_PERCENT, rtol=0
    )


def test_runpp_retries_when_the_fast_path_does_not_converge(monkeypatch: pytest.MonkeyPatch) -> None:
    net = case33()
    pf, index = PowerFlow.of_net(copy.deepcopy(net))
    assert pf.fast is not None
    monkeypatch.setattr(pf.fast.model, "solve", lambda: None)
    inj = varied(net, 7)
    res = pf.run(analyse(index, net.switch["closed"].to_numpy(dtype=bool)), inj)
    assert res.path is PfPath.RUNPP
    assert_matches(res, reference(net, inj), vm_tol=EXACT_TOL)


@pytest.mark.parametrize("fast", [True, False])
def test_open_switch_leaves_an_unsupplied_island(fast: bool) -> None:
    """Without a grid-forming unit the island is unsolved: NaN there, as in pandapower."""
    net = island_net(grid_forming=False)
    inj = varied(net, 3)
    res, _ = solve(net, inj, fast)
    assert res.path is (PfPath.FAST if fast else PfPath.RUNPP)
    assert np.isnan(res.vm_pu[ISLAND_BUSES]).all()
    assert np.isnan(res.bus_p_mw[ISLAND_BUSES]).all()
    assert not np.isnan(np.delete(res.vm_pu, ISLAND_BUSES)).any()
    ref = reference(net, inj)
    assert np.isnan(ref.res_bus["vm_pu"].to_numpy()[ISLAND_BUSES]).all()
    assert_matches(res, ref, vm_tol=VM_TOL_PU if fast else EXACT_TOL)
    assert res.line.p1_mw[ISLAND_LINE] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("fast", [True, False])
def test_grid_forming_storage_is_the_slack_of_its_island(fast: bool) -> None:
    """The island runs with the storage as slack: pandapower with an ext_grid there instead."""
    net = island_net(grid_forming=True)
    inj = varied(net, 4)
    res, _ = solve(net, inj, fast)
    assert res.path is (PfPath.FAST if fast else PfPath.RUNPP)
    ref_net = copy.deepcopy(net)
    ref_net.storage.at[0, "in_service"] = False
    pp.create_ext_grid(ref_net, 20, vm_pu=1.0)
    ref = reference(ref_net, inj)
    np.testing.assert_allclose(res.vm_pu, ref.res_bus["vm_pu"].to_numpy(), atol=VM_TOL_PU, rtol=0)
    np.testing.assert_allclose(
        res.loading.line_loading_percent, ref.res_line["loading_percent"].to_numpy(), atol=LOADING_TOL_PERCENT, rtol=0
    )
    # the storage charges with what the island's slack takes in (load sign), the ext_grid row is the real one
    assert res.slack_p_mw == {Unit("storage", 0): pytest.approx(-ref.res_ext_grid.at[1, "p_mw"], abs=P_TOL_MW)}
    assert res.ext_grid_p_mw[0] == pytest.approx(ref.res_ext_grid.at[0, "p_mw"], abs=P_TOL_MW)
    assert res.vm_pu[20] == pytest.approx(1.0)
    island_load = inj.load_p_mw[net.load["bus"].isin(ISLAND_BUSES).to_numpy()].sum()
    # the storage discharges the island's load less the PV, plus the island's losses
    assert -res.slack_p_mw[Unit("storage", 0)] > island_load - 0.05


def test_trafo_loading_matches_runpp() -> None:
    """A 110/20 kV trafo: its loading from the side currents against pandapower's."""
    net = pn.simple_mv_open_ring_net()
    inj = Injections.from_net(net)
    res, _ = solve(net, inj)
    assert res.path is PfPath.FAST
    ref = reference(net, inj)
    assert res.trafo is not None
    assert res.loading.trafo_loading_percent is not None
    np.testing.assert_allclose(
        res.loading.trafo_loading_percent, ref.res_trafo["loading_percent"].to_numpy(), atol=LOADING_TOL_PERCENT, rtol=0
    )
    np.testing.assert_allclose(res.trafo.p1_mw, ref.res_trafo["p_hv_mw"].to_numpy(), atol=P_TOL_MW, rtol=0)
    assert_matches(res, ref)


def test_bus_bus_switch_runs_on_runpp() -> None:
    net = pp.create_empty_network()
    b0, b1, b2 = (pp.create_bus(net, vn_kv=20.0) for _ in range(3))
    pp.create_ext_grid(net, b0)
    pp.create_line_from_parameters(net, b0, b1, 1.0, 0.2, 0.2, 0.0, 0.4)
    pp.create_switch(net, b1, b2, et="b", closed=True)
    pp.create_load(net, b2, p_mw=1.0)
    inj = Injections.from_net(net)
    res, pf = solve(net, inj)
    assert pf.fast is None
    assert res.path is PfPath.RUNPP
    assert_matches(res, reference(net, inj), vm_tol=EXACT_TOL)


@pytest.mark.parametrize("fast", [True, False])
def test_non_converging_power_flow_is_a_value(fast: bool) -> None:
    """500 MW at the end of a feeder: both paths diverge; the result says so, NaN everywhere; the next
    solvable step converges again."""
    net = case33()
    pf, index = PowerFlow.of_net(copy.deepcopy(net), use_fast_path=fast)
    topo = analyse(index, net.switch["closed"].to_numpy(dtype=bool))
    inj = varied(net, 6)
    heavy = Injections(
        inj.load_p_mw.copy(), inj.load_q_mvar, inj.sgen_p_mw, inj.sgen_q_mvar, inj.st_p_mw, inj.st_q_mvar
    )
    heavy.load_p_mw[16] = 500.0
    res = pf.run(topo, heavy)
    assert res.path is PfPath.DIVERGED
    assert not res.converged
    for values in (res.vm_pu, res.bus_p_mw, res.loading.line_loading_percent, res.line.p1_mw, res.ext_grid_p_mw):
        assert np.isnan(values).all()
    assert np.isnan(res.losses_mw)
    assert res.slack_p_mw == {}
    again = pf.run(topo, inj)
    assert again.path is (PfPath.FAST if fast else PfPath.RUNPP)
    assert_matches(again, reference(net, inj))


def test_index_positions_follow_sorted_buses() -> None:
    """A net whose bus index is not sorted: the power flow sorts it and results follow the sorted order."""
    net = case33()
    net.bus = net.bus.iloc[::-1]
    pf, index = PowerFlow.of_net(net)
    assert isinstance(index, NetIndex)
    assert list(index.bus_pos) == sorted(index.bus_pos)
    inj = Injections.from_net(net)
    res = pf.run(analyse(index, net.switch["closed"].to_numpy(dtype=bool)), inj)
    assert res.path is PfPath.FAST
    assert_matches(res, reference(net, inj))


def test_fast_model_holds_the_injections_asked_for() -> None:
    """Powers from 0.1 kW to 2 MW, written twice (all changed, then half of them): what the lightsim2grid
    model holds is each value within FLOAT32_TOL_MW, whether it went in single precision or one by one."""
    net = case33()
    pf, _ = PowerFlow.of_net(copy.deepcopy(net))
    assert pf.fast is not None
    fast = pf.fast.model
    rng = np.random.default_rng(3)
    own = Injections.from_net(net)
    n = len(own.load_p_mw)
    inj = Injections(
        10.0 ** rng.uniform(-4, np.log10(2.0), n), 10.0 ** rng.uniform(-4, -1, n), own.sgen_p_mw, own.sgen_q_mvar,
        own.st_p_mw, own.st_q_mvar,
    )  # fmt: skip
    for changed in (slice(None), slice(0, n, 2)):
        inj.load_p_mw[changed] *= 1.1
        fast.set_injections(inj)
        held_p = np.array([load.target_p_mw for load in fast.model.get_loads()])
        held_q = np.array([load.target_q_mvar for load in fast.model.get_loads()])
        np.testing.assert_allclose(held_p, inj.load_p_mw, atol=FLOAT32_TOL_MW, rtol=0)
        np.testing.assert_allclose(held_q, inj.load_q_mvar, atol=FLOAT32_TOL_MW, rtol=0)
    assert (np.abs(inj.load_p_mw.astype(np.float32) - inj.load_p_mw) > FLOAT32_TOL_MW).any()
    assert (np.abs(inj.load_p_mw.astype(np.float32) - inj.load_p_mw) <= FLOAT32_TOL_MW).any()
