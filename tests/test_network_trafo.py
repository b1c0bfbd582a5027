"""LinDistFlow with two-winding transformers, several voltage levels and an islanded root
(ems_controllers.core.network) against pandapower's AC power flow, the Pyomo block == numpy snapshot, the
transformer switches and the loss coefficient.

Tolerances against AC (measured here, with margin). LinDistFlow drops the losses, so its voltages sit
above AC and a transformer's flow misses the losses behind it; on the CIGRE MV net the dropped term
that matters most is the transformers' own ``(r^2 + x^2) |S|^2`` (vk = 12 % at 100 % loading: ~0.007
pu on its own) and their reactive losses (5.2 Mvar of Q that the model does not see).

=====================================  ===================  =========================================
case                                   measured             asserted
=====================================  ===================  =========================================
CIGRE MV (no DER), nominal load,       max dvm 0.0093 pu    dvm in [0, 0.011] pu
radial (S1-S3 open)                    (bus 3, AC 0.9310)   sum_t (P_AC - P_lin) = AC losses (0.304 MW)
                                       trafo dloading 1.78  |dloading| <= 2.5 percentage points
CIGRE MV, S1-S3 closed (3 loops)       max dvm 0.0062 pu    dvm in [0, 0.008] pu
                                       (bus 13)
CIGRE LV, bus-bus switches fused       max dvm 0.0035 pu    dvm in [0, 0.0045] pu
                                       (bus 35, AC 0.9123)  sum_t (P_AC - P_lin) = AC losses (0.0283 MW)
                                       trafo dloading 4.59  |dloading| <= 5.5 percentage points
2-level 20/0.4 kV, taps off neutral    max dvm 0.0052 -     dvm in [0, 0.009] pu
                                       0.0077 pu (bus 3,
                                       AC 0.839 pu)
                                       no load: 6e-11 pu    |dvm| <= 1e-8 pu (the ratio is exact)
islanded root at the 0.4 kV bus        max dvm 0.0041 pu    dvm in [0, 0.006] pu
=====================================  ===================  =========================================
"""

from __future__ import annotations

import math

import pandapower as pp
import pandapower.networks as pn
import pyomo.environ as pyo
import pytest

from ems_controllers.core.network import (
    Branch,
    NetworkData,
    add_lindistflow,
    injections_from_pandapower,
    lindistflow_solve,
    network_from_pandapower,
    set_network_loads,
    trafo_branch_id,
)
from scenarios.build import fuse_closed_bus_switches
from tests.test_network import assert_block_is_the_snapshot

EXACT = 1e-9
AC_TOL = 1e-8  # pandapower's convergence tolerance (1e-8 MVA) shows up at this level
VM_TOL_CIGRE_MV_PU = 0.011
VM_TOL_CIGRE_MV_MESHED_PU = 0.008
VM_TOL_CIGRE_LV_PU = 0.0045
VM_TOL_TWO_LEVEL_PU = 0.009
VM_TOL_ISLANDED_PU = 0.006
TRAFO_LOADING_TOL_MV = 2.5  # percentage points
TRAFO_LOADING_TOL_LV = 5.5
CIGRE_MV_TIE_SWITCHES = [1, 2, 4]  # S2, S3, S1 (line switches; 6 and 7 are the trafo switches)


def _cigre_mv():
    return pn.create_cigre_network_mv(with_der=False)


def _cigre_lv():
    net = pn.create_cigre_network_lv()
    assert set(net.switch.et) == {"b"}  # S1-S3 join the 20 kV busbar: fused here, the model takes none
    fuse_closed_bus_switches(net)
    return net


def _two_level(tap_side: str = "hv", tap_pos: int = -2, vn_hv_kv: float = 20.0, load: float = 1.0):
    """20 kV bus 0 (ext_grid 1.02 pu, a 0.3 MW load) - trafo 0.4 MVA 20/0.4 kV (vk 6 %, vkr 1.425 %,
    Dyn5, 2.5 % per tap step, no magnetising branch) - 0.4 kV bus 1 - line 0 - bus 2 - line 1 - bus 3."""
    net = pp.create_empty_network(sn_mva=1.0)
    hv = pp.create_bus(net, vn_kv=20.0)
    lv, b2, b3 = (pp.create_bus(net, vn_kv=0.4, min_vm_pu=0.9, max_vm_pu=1.1) for _ in range(3))
    pp.create_ext_grid(net, hv, vm_pu=1.02)
    pp.create_transformer_from_parameters(
        net,
        hv,
        lv,
        sn_mva=0.4,
        vn_hv_kv=vn_hv_kv,
        vn_lv_kv=0.4,
        vkr_percent=1.425,
        vk_percent=6.0,
        pfe_kw=0.0,
        i0_percent=0.0,
        shift_degree=150.0,
        tap_side=tap_side,
        tap_neutral=0,
        tap_min=-2,
        tap_max=2,
        tap_step_percent=2.5,
        tap_pos=tap_pos,
        tap_changer_type="Ratio",
    )
    pp.create_line_from_parameters(
        net, lv, b2, 0.2, r_ohm_per_km=0.206, x_ohm_per_km=0.08, c_nf_per_km=0.0, max_i_ka=0.27
    )
    pp.create_line_from_parameters(
        net, b2, b3, 0.15, r_ohm_per_km=0.443, x_ohm_per_km=0.083, c_nf_per_km=0.0, max_i_ka=0.17
    )
    pp.create_load(net, b2, p_mw=0.12 * load, q_mvar=0.04 * load)
    pp.create_load(net, b3, p_mw=0.08 * load, q_mvar=0.02 * load)
    pp.create_load(net, hv, p_mw=0.3 * load, q_mvar=0.1 * load)
    return net


def _compare(net, data: NetworkData):
    """AC power flow and the LinDistFlow snapshot at the same injections; per bus ``vm_lin - vm_AC``."""
    pp.runpp(net, numba=False)
    p, q = injections_from_pandapower(net)
    snap = lindistflow_solve(data, p, q)
    dvm = {b: snap.vm_pu[b] - float(net.res_bus.vm_pu[b]) for b in data.buses}
    return snap, dvm


def _ac_losses(net) -> tuple[float, float]:
    return (
        float(net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum()),
        float(net.res_line.ql_mvar.sum() + net.res_trafo.ql_mvar.sum()),
    )


# --------------------------------------------------------------------------------------------------
# CIGRE nets against AC
# --------------------------------------------------------------------------------------------------


def test_cigre_mv_vs_ac():
    net = _cigre_mv()
    data = network_from_pandapower(net)
    assert data.trafos == (0, 1) and data.n_loops == 0 and data.root_bus == 0
    assert data.base_kv == 110.0 and data.left_out_lines == (12, 13, 14)  # the open S1-S3
    snap, dvm = _compare(net, data)
    worst = max(dvm, key=lambda b: abs(dvm[b]))
    assert worst == 3 and dvm[worst] == pytest.approx(0.0093, abs=3e-4)  # measured 0.00933 pu
    assert all(-EXACT <= v <= VM_TOL_CIGRE_MV_PU for v in dvm.values())  # losses dropped: optimistic
    # The two transformers are the only way in: AC imports the loads plus every loss, LinDistFlow the loads.
    pl, ql = _ac_losses(net)
    dp = {t: float(net.res_trafo.p_hv_mw[t]) - snap.p_mw[trafo_branch_id(t)] for t in data.trafos}
    dq = {t: float(net.res_trafo.q_hv_mvar[t]) - snap.q_mvar[trafo_branch_id(t)] for t in data.trafos}
    assert sum(dp.values()) == pytest.approx(pl, rel=1e-6)  # 0.304 MW
    assert sum(dq.values()) == pytest.approx(ql, rel=1e-6)  # 5.30 Mvar, mostly the trafos' own
    assert all(v >= -EXACT for v in (*dp.values(), *dq.values()))
    for t in data.trafos:
        dloading = snap.loading_percent[trafo_branch_id(t)] - float(net.res_trafo.loading_percent[t])
        assert abs(dloading) <= TRAFO_LOADING_TOL_MV  # measured 1.78 (trafo 0, AC 101.4 %)


def test_cigre_mv_meshed_vs_ac():
    """S1-S3 closed: three loops, two of them through both transformers. Both shift 30 deg, so the
    shifts cancel around every loop and the model (which leaves them out) holds."""
    net = _cigre_mv()
    data = network_from_pandapower(net, dict.fromkeys(CIGRE_MV_TIE_SWITCHES, True))
    assert data.n_loops == 3 and data.left_out_lines == ()
    net.switch.loc[CIGRE_MV_TIE_SWITCHES, "closed"] = True
    snap, dvm = _compare(net, data)
    assert all(-EXACT <= v <= VM_TOL_CIGRE_MV_MESHED_PU for v in dvm.values())  # measured max 0.0062 pu
    pl, _ = _ac_losses(net)
    dp = [float(net.res_trafo.p_hv_mw[t]) - snap.p_mw[trafo_branch_id(t)] for t in data.trafos]
    assert sum(dp) == pytest.approx(pl, rel=1e-6)


def test_loop_through_unequal_phase_shifts_raises():
    net = _cigre_mv()
    net.trafo.loc[1, "shift_degree"] = 0.0
    network_from_pandapower(net)  # radial: the shift does not matter
    with pytest.raises(ValueError, match="phase shifts add up to 30 deg"):
        network_from_pandapower(net, dict.fromkeys(CIGRE_MV_TIE_SWITCHES, True))


def test_cigre_lv_vs_ac():
    net = _cigre_lv()
    data = network_from_pandapower(net)
    assert data.trafos == (0, 1, 2) and data.n_loops == 0 and data.left_out_buses == ()
    assert {data.base_kv, *(float(net.bus.vn_kv[b]) for b in data.buses)} == {20.0, 0.4}
    snap, dvm = _compare(net, data)
    worst = max(dvm, key=lambda b: abs(dvm[b]))
    assert dvm[worst] == pytest.approx(0.0035, abs=3e-4)  # measured 0.00349 pu (bus 35, AC 0.9123)
    assert all(-EXACT <= v <= VM_TOL_CIGRE_LV_PU for v in dvm.values())
    assert all(br.tau == 1.0 for br in data.branches)
    pl, _ = _ac_losses(net)
    dp = {t: float(net.res_trafo.p_hv_mw[t]) - snap.p_mw[trafo_branch_id(t)] for t in data.trafos}
    assert sum(dp.values()) == pytest.approx(pl, rel=1e-6)  # 0.0283 MW
    assert all(v >= -EXACT for v in dp.values())
    for t in data.trafos:
        dloading = snap.loading_percent[trafo_branch_id(t)] - float(net.res_trafo.loading_percent[t])
        assert abs(dloading) <= TRAFO_LOADING_TOL_LV  # measured 4.59 (trafo 2, AC 85.3 %)


# --------------------------------------------------------------------------------------------------
# Hand-built two-level net: ratio, taps, per-unit impedance
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tap_side", "tap_pos", "vn_hv_kv"),
    [("hv", -2, 20.0), ("lv", 2, 20.0), ("hv", 0, 20.0), ("hv", 1, 20.6), ("lv", -1, 19.5)],
)
def test_two_level_vs_ac(tap_side, tap_pos, vn_hv_kv):
    """With no load the AC lv voltage is the hv one over the ratio, exactly: ``tau`` (rated voltages,
    tap on either side) is pandapower's. Loaded, LinDistFlow sits above AC by the dropped losses."""
    data = network_from_pandapower(_two_level(tap_side, tap_pos, vn_hv_kv, load=0.0))
    (tr,) = (br for br in data.branches if br.kind == "trafo")
    step = 1.0 + 0.025 * tap_pos
    expect = (vn_hv_kv * step / 0.4) / 50.0 if tap_side == "hv" else (vn_hv_kv / (0.4 * step)) / 50.0
    assert tr.tau == pytest.approx(expect, rel=1e-12)
    assert (tr.line, tr.element, tr.from_bus, tr.to_bus) == (-1, 0, 0, 1)
    _, dvm = _compare(_two_level(tap_side, tap_pos, vn_hv_kv, load=0.0), data)
    assert all(abs(v) <= AC_TOL for v in dvm.values())  # measured 6e-11 pu

    net = _two_level(tap_side, tap_pos, vn_hv_kv)
    data = network_from_pandapower(net)
    snap, dvm = _compare(net, data)
    assert all(
        -EXACT <= v <= VM_TOL_TWO_LEVEL_PU for v in dvm.values()
    )  # measured 0.0052-0.0077 pu (AC 0.839 pu at rated 20.6 kV, tap +1)
    assert snap.p_mw[-1] == pytest.approx(0.2, abs=EXACT)  # the 0.4 kV loads
    assert 0.0 <= float(net.res_trafo.p_hv_mw[0]) - snap.p_mw[-1] <= _ac_losses(net)[0] * (1 + 1e-6)


def test_trafo_per_unit_and_rating():
    """vk 6 %, vkr 1.425 % on 0.4 MVA at rated = nominal voltages, S_b = 1 MVA: r_pu = 0.01425 / 0.4,
    x_pu = sqrt(0.06^2 - 0.01425^2) / 0.4; a tap on the lv side scales them by its factor squared
    (pandapower's convention). Rating: sn_mva * df * parallel * max_loading_percent / 100."""
    net = _two_level(tap_pos=0)
    net.trafo.loc[0, ["parallel", "df"]] = [2, 0.9]
    net.trafo["max_loading_percent"] = 80.0
    (tr,) = (br for br in network_from_pandapower(net).branches if br.kind == "trafo")
    assert tr.r_pu == pytest.approx(0.01425 / 0.4 / 2, rel=1e-12)
    assert tr.x_pu == pytest.approx(math.sqrt(0.06**2 - 0.01425**2) / 0.4 / 2, rel=1e-12)
    assert tr.r_ohm == pytest.approx(tr.r_pu * 0.4**2, rel=1e-12)  # referred to the 0.4 kV side
    assert tr.s_max_mva == pytest.approx(0.4 * 0.9 * 2 * 0.8, rel=1e-12)
    assert tr.tau == 1.0 and tr.shift_degree == 150.0
    (tr,) = (br for br in network_from_pandapower(_two_level("lv", 2)).branches if br.kind == "trafo")
    assert tr.r_pu == pytest.approx(0.01425 / 0.4 * 1.05**2, rel=1e-12)


def test_loss_coefficient():
    """MW per MW^2: ``r_ohm / vn_kv^2`` on a line at any voltage, ``vkr / 100 / sn_mva`` on a trafo."""
    net = pp.create_empty_network(sn_mva=1.0)
    for _ in range(2):
        pp.create_bus(net, vn_kv=10.0)
    pp.create_ext_grid(net, 0)
    pp.create_line_from_parameters(net, 0, 1, 2.0, r_ohm_per_km=0.3, x_ohm_per_km=0.1, c_nf_per_km=0.0, max_i_ka=0.2)
    data = network_from_pandapower(net)
    assert data.branches[0].loss_per_mw2(data.base_mva) == pytest.approx(0.6 / 10.0**2, rel=1e-12)
    data = network_from_pandapower(_two_level(tap_pos=0))
    coef = data.loss_per_mw2
    assert coef[0] == pytest.approx(0.206 * 0.2 / 0.4**2, rel=1e-12)  # line 0 at 0.4 kV
    assert coef[trafo_branch_id(0)] == pytest.approx(0.01425 / 0.4, rel=1e-12)
    assert set(coef) == set(data.lines) == {0, 1, -1}


def test_branch_defaults_and_ids():
    br = Branch(3, 0, 1, 1.0, 2.0, 0.01, 0.02, 0.2, 3.46)  # a line, constructed as before
    assert (br.kind, br.element, br.tau, br.shift_degree) == ("line", 3, 1.0, 0.0)
    assert trafo_branch_id(0) == -1 and trafo_branch_id(4) == -5
    with pytest.raises(ValueError, match="must have the id -3"):
        Branch(-1, 0, 1, 1.0, 2.0, 0.01, 0.02, 0.2, 3.46, kind="trafo", element=2)
    with pytest.raises(ValueError, match="kind"):
        Branch(3, 0, 1, 1.0, 2.0, 0.01, 0.02, 0.2, 3.46, kind="cable")


# --------------------------------------------------------------------------------------------------
# Islanded root
# --------------------------------------------------------------------------------------------------


def test_islanded_root_matches_ext_grid_on_that_bus():
    """No ext_grid, the grid-forming unit at 0.4 kV bus 1 (1.0 pu): the same model as an ext_grid
    there, and against AC with that ext_grid; the transformer feeds the 20 kV load backwards."""
    island = _two_level()
    island.ext_grid.drop(island.ext_grid.index, inplace=True)
    with pytest.raises(ValueError, match="root_bus"):
        network_from_pandapower(island)
    data = network_from_pandapower(island, root_bus=1)
    assert data.root_bus == 1 and data.root_vm_pu == 1.0 and data.base_kv == 0.4
    assert data.buses[0] == 1 and set(data.buses) == {0, 1, 2, 3}

    grid = _two_level()
    grid.ext_grid.drop(grid.ext_grid.index, inplace=True)
    pp.create_ext_grid(grid, 1, vm_pu=1.0)
    assert network_from_pandapower(grid) == data
    assert network_from_pandapower(grid, root_bus=1) == data  # its own ext_grid: allowed
    snap, dvm = _compare(grid, data)
    assert all(-EXACT <= v <= VM_TOL_ISLANDED_PU for v in dvm.values())  # measured max 0.0041 pu (bus 3, AC 0.899)
    assert snap.p_mw[-1] == pytest.approx(-0.3, abs=EXACT)  # lv -> hv
    assert snap.p_mw[-1] == pytest.approx(float(grid.res_trafo.p_hv_mw[0]), abs=AC_TOL)  # no loss on that side

    data = network_from_pandapower(island, root_bus=1, root_vm_pu=1.03)
    assert data.root_vm_pu == 1.03
    with pytest.raises(ValueError, match=r"root_bus 2 given but ext_grid \[0\] in service at bus \[1\]"):
        network_from_pandapower(grid, root_bus=2)


# --------------------------------------------------------------------------------------------------
# Transformer switches
# --------------------------------------------------------------------------------------------------


def test_open_trafo_switch_cuts_trafo_and_what_is_behind_it():
    net = _cigre_mv()
    (sw,) = net.switch.index[(net.switch.et == "t") & (net.switch.element == 0)]
    feeder_1 = tuple(range(1, 12))  # the lv bus of trafo 0 and the buses of its feeder (S1-S3 open)
    data = network_from_pandapower(net, {int(sw): False})
    assert data.trafos == (1,) and data.left_out_trafos == (0,)
    assert data.left_out_buses == feeder_1 and not set(feeder_1) & set(data.buses)
    assert trafo_branch_id(0) not in data.lines
    assert data.left_out_lines == (*range(10), 12, 13, 14)  # lines 10 and 11 are feeder 2

    net.switch.loc[sw, "closed"] = False
    assert network_from_pandapower(net) == data
    assert network_from_pandapower(net, {int(sw): True}).trafos == (0, 1)  # the override closes it
    net.trafo.loc[0, "in_service"] = False
    assert network_from_pandapower(net, {int(sw): True}).left_out_trafos == (0,)


def test_rejects_what_the_trafo_model_does_not_cover():
    net = _two_level()
    net.trafo.loc[0, "tap_changer_type"] = "Ideal"
    with pytest.raises(ValueError, match="trafo 0 has a 'Ideal' tap changer"):
        network_from_pandapower(net)
    net.trafo.loc[0, "tap_pos"] = 0  # at neutral: no tap, nothing to model
    network_from_pandapower(net)

    net = _two_level()
    net.trafo.loc[0, "tap_changer_type"] = None  # pandapower 3 ignores such a tap; so does the model
    assert network_from_pandapower(net).branches[-1].tau == 1.0

    net = _two_level()
    pp.create_line_from_parameters(net, 0, 3, 1.0, r_ohm_per_km=0.1, x_ohm_per_km=0.1, c_nf_per_km=0.0, max_i_ka=0.1)
    with pytest.raises(ValueError, match=r"line 2 joins buses of 20\.0 and 0\.4 kV"):
        network_from_pandapower(net)

    net = _two_level()
    net.trafo.loc[0, "vk_percent"] = 0.0
    with pytest.raises(ValueError, match="trafo 0 needs"):
        network_from_pandapower(net)


# --------------------------------------------------------------------------------------------------
# Pyomo block == numpy snapshot
# --------------------------------------------------------------------------------------------------


def _islanded_two_level() -> tuple[object, NetworkData]:
    net = _two_level("lv", 2)
    net.ext_grid.drop(net.ext_grid.index, inplace=True)
    return net, network_from_pandapower(net, root_bus=2, root_vm_pu=1.01)


@pytest.mark.parametrize(
    "case",
    [
        "two_level_tap",
        "cigre_mv_meshed",
        "islanded_behind_trafo",
    ],
)
def test_block_matches_numpy(case):
    """Fixed injections (the net's loads, halved at step 1) through the load params: the LP's only
    point is the snapshot's, taps (``1/tau^2`` in the drop row), loops and a mid-feeder root alike."""
    if case == "two_level_tap":
        net = _two_level("hv", -2)
        data = network_from_pandapower(net)
    elif case == "cigre_mv_meshed":
        net = _cigre_mv()
        data = network_from_pandapower(net, dict.fromkeys(CIGRE_MV_TIE_SWITCHES, True))
    else:
        net, data = _islanded_two_level()
    assert any(br.kind == "trafo" for br in data.branches)
    p, q = injections_from_pandapower(net)
    scale = [1.0, 0.5]
    m = pyo.ConcreteModel()
    m.T = pyo.RangeSet(0, 1)
    m.net = pyo.Block()
    add_lindistflow(m.net, data, m.T)
    set_network_loads(
        m.net, {b: [-s * v for s in scale] for b, v in p.items()}, {b: [-s * v for s in scale] for b, v in q.items()}
    )
    for j in m.net.nonroot_bus:
        m.net.w_min_pu2[j] = 0.5
    for li in m.net.line:
        m.net.s_max_mva[li] = 1e3
    m.obj = pyo.Objective(expr=sum(m.net.p_root_mw[t] for t in m.T))
    loading = assert_block_is_the_snapshot(m, data, p, q, list(scale), loadings=False)  # ratings raised above
    assert min(data.lines) < 0 and all(loading[(li, 0)] >= 0 for li in data.lines)
