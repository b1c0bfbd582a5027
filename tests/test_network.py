"""LinDistFlow (ems_controllers.core.network): hand-checked feeders, agreement with pandapower's AC power
flow, Pyomo block == numpy snapshot, binding voltage and line limits, malformed nets.

Tolerances against AC (measured here, with margin): LinDistFlow drops the losses, so its voltages sit
above AC and its flows miss the downstream losses.

===================================  ===================  =========================================
case                                 measured             asserted
===================================  ===================  =========================================
case33bw nominal load, radial        max dvm 0.0028 pu    dvm in [0, 0.004] pu
                                     (bus 17, AC 0.9131)  0 <= P_AC - P_lin <= AC losses (0.2027 MW)
ieee33_3mg net, radial, MG set pts   max dvm 0.0033 pu    |dvm| <= 0.005 pu
                                     (bus 17)             0 <= P_AC - P_lin <= AC losses (0.161 MW)
                                     max dloading 1.78    |dloading| <= 2.5 percentage points
                                     (line 1, AC 33.7 %)
ieee33_3mg, tie lines 33, 35 closed  max dvm 0.0021 pu    |dvm| <= 0.005 pu
                                     (bus 35)             |P_AC - P_lin| <= AC losses (0.140 MW)
                                     max dloading 1.52    |dloading| <= 2.5 percentage points
===================================  ===================  =========================================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandapower as pp
import pandapower.networks as pn
import pyomo.environ as pyo
import pytest

from ems_controllers.core.network import (
    NetworkData,
    add_lindistflow,
    injections_from_pandapower,
    lindistflow_solve,
    network_from_pandapower,
    predicted,
    set_network_loads,
)
from ems_controllers.core.solver import PersistentHighs
from ems_controllers.core.types import SolverOptions
from scenarios.build import build_net
from scenarios.config import load_config
from scenarios.registry import get_scenario

VM_TOL_CASE33_PU = 0.004
VM_TOL_SCENARIO_PU = 0.005
LOADING_TOL_SCENARIO = 2.5  # percentage points
EXACT = 1e-9


def _three_bus(max_i_ka: float = 0.2, vm_max_pu: float = 1.05):
    """Root 0 (1.0 pu) - line 0 (r=1, x=2 ohm) - bus 1 - line 1 (r=2, x=1 ohm) - bus 2, 10 kV, 1 MVA."""
    net = pp.create_empty_network(sn_mva=1.0)
    for _ in range(3):
        pp.create_bus(net, vn_kv=10.0, min_vm_pu=0.9, max_vm_pu=vm_max_pu)
    pp.create_ext_grid(net, 0, vm_pu=1.0)
    pp.create_line_from_parameters(
        net, 0, 1, 1.0, r_ohm_per_km=1.0, x_ohm_per_km=2.0, c_nf_per_km=0.0, max_i_ka=max_i_ka
    )
    pp.create_line_from_parameters(
        net, 1, 2, 1.0, r_ohm_per_km=2.0, x_ohm_per_km=1.0, c_nf_per_km=0.0, max_i_ka=max_i_ka
    )
    return net


def _scenario_net():
    cfg, _ = load_config(get_scenario("ieee33_3mg").default_config)
    layout = build_net(cfg)
    net = layout.net
    # A fixed operating point: every sgen (PV, wind, diesel) at 60 % of its maximum, batteries charging.
    net.sgen["p_mw"] = 0.6 * net.sgen["max_p_mw"]
    net.storage["p_mw"] = 0.3
    return layout


def _compare(net, data):
    pp.runpp(net, numba=False)
    p, q = injections_from_pandapower(net)
    snap = lindistflow_solve(data, p, q)
    dvm = {b: snap.vm_pu[b] - float(net.res_bus.vm_pu[b]) for b in data.buses}
    dp = {li: float(net.res_line.p_from_mw[li]) - snap.p_mw[li] for li in data.lines}
    return snap, dvm, dp, float(net.res_line.pl_mw.sum())


# --------------------------------------------------------------------------------------------------
# Hand-checked 3-bus feeder
# --------------------------------------------------------------------------------------------------


def test_three_bus_by_hand():
    """Loads 0.5 MW + 0.2 Mvar at bus 1, 1.0 MW + 0.5 Mvar at bus 2, V_b = 10 kV (V_b^2 = 100):

    P_1 = 1.0, Q_1 = 0.5; P_0 = 1.5, Q_0 = 0.7
    w_1 = 1 - 2 (1*1.5 + 2*0.7)/100 = 0.942;  w_2 = 0.942 - 2 (2*1.0 + 1*0.5)/100 = 0.892
    theta_1 = -(2*1.5 - 1*0.7)/100 = -0.023;  theta_2 = theta_1 - (1*1.0 - 2*0.5)/100 = -0.023
    s_max = sqrt(3) * 10 * 0.2 = 3.4641 MVA; loading_0 = 100 * hypot(1.5, 0.7) / 3.4641
    """
    net = _three_bus()
    data = network_from_pandapower(net)
    assert data.buses == (0, 1, 2) and data.n_loops == 0
    assert data.branches[0].r_pu == pytest.approx(1.0 / 100.0)  # z_base = 10^2 / 1 ohm
    assert data.branches[0].s_max_mva == pytest.approx(math.sqrt(3) * 2.0)
    snap = lindistflow_solve(data, {1: -0.5, 2: -1.0}, {1: -0.2, 2: -0.5})
    assert snap.p_mw == pytest.approx({0: 1.5, 1: 1.0}, abs=EXACT)
    assert snap.q_mvar == pytest.approx({0: 0.7, 1: 0.5}, abs=EXACT)
    assert snap.vm_pu == pytest.approx({0: 1.0, 1: math.sqrt(0.942), 2: math.sqrt(0.892)}, abs=EXACT)
    assert snap.loading_percent[0] == pytest.approx(100 * math.hypot(1.5, 0.7) / (math.sqrt(3) * 2.0))

    m = pyo.ConcreteModel()
    m.T = pyo.RangeSet(0, 0)
    m.net = pyo.Block()
    add_lindistflow(m.net, data, m.T)
    set_network_loads(m.net, {1: [0.5], 2: [1.0]}, {1: [0.2], 2: [0.5]})
    m.obj = pyo.Objective(expr=m.net.p_root_mw[0])
    assert PersistentHighs(m).solve(SolverOptions()).status == "optimal"
    assert pyo.value(m.net.w_pu2[2, 0]) == pytest.approx(0.892, abs=EXACT)
    assert pyo.value(m.net.theta_rad[2, 0]) == pytest.approx(-0.023, abs=EXACT)
    assert pyo.value(m.net.p_root_mw[0]) == pytest.approx(1.5, abs=EXACT)
    assert pyo.value(m.net.q_root_mvar[0]) == pytest.approx(0.7, abs=EXACT)


# --------------------------------------------------------------------------------------------------
# Against AC
# --------------------------------------------------------------------------------------------------


def test_case33bw_nominal_load_vs_ac():
    net = pn.case33bw()  # tie lines 32-36 out of service: radial
    data = network_from_pandapower(net)
    assert data.n_loops == 0 and data.left_out_lines == (32, 33, 34, 35, 36)
    snap, dvm, dp, losses = _compare(net, data)
    worst = max(dvm, key=lambda b: abs(dvm[b]))
    assert worst == 17 and dvm[worst] == pytest.approx(0.0028, abs=3e-4)  # measured 0.00284 pu
    assert all(-EXACT <= v <= VM_TOL_CASE33_PU for v in dvm.values())  # losses dropped: optimistic
    # Radial: AC p_from = downstream load + downstream losses, LinDistFlow = downstream load.
    assert snap.p_mw[0] == pytest.approx(float(net.load.p_mw.sum()), abs=EXACT)
    assert dp[0] == pytest.approx(losses, rel=1e-6)  # 0.2027 MW
    assert all(-EXACT <= v <= losses * (1 + 1e-6) for v in dp.values())


@pytest.mark.parametrize("tie_closed", [(), (1, 3)], ids=["radial", "meshed"])
def test_scenario_net_vs_ac(tie_closed):
    layout = _scenario_net()
    net = layout.net
    for k in tie_closed:
        net.switch.loc[layout.tie_switches[k], "closed"] = True
    data = network_from_pandapower(net)
    assert data.n_loops == len(tie_closed)
    assert {33, 34, 35} <= set(data.buses)  # the MG buses behind their PCC lines
    snap, dvm, dp, losses = _compare(net, data)
    assert max(abs(v) for v in dvm.values()) <= VM_TOL_SCENARIO_PU  # measured 0.0033 / 0.0021 pu
    assert max(abs(v) for v in dp.values()) <= losses * (1 + 1e-6)
    dloading = [snap.loading_percent[li] - float(net.res_line.loading_percent[li]) for li in data.lines]
    assert max(abs(v) for v in dloading) <= LOADING_TOL_SCENARIO  # measured 1.78 / 1.52
    if not tie_closed:
        assert all(v >= -EXACT for v in dp.values())


def test_switch_override_and_islands():
    layout = _scenario_net()
    net = layout.net
    ties = layout.tie_switches
    data = network_from_pandapower(net, {ties[1]: True, ties[3]: True})
    assert data.n_loops == 2 and not net.switch.loc[ties, "closed"].any()  # net untouched
    mg1 = layout.parties["MG1"]
    data = network_from_pandapower(net, {mg1.pcc_switch: False})
    assert mg1.bus in data.left_out_buses and mg1.bus not in data.buses
    assert mg1.pcc_line in data.left_out_lines
    m = pyo.ConcreteModel()
    m.T = pyo.RangeSet(0, 0)
    m.net = pyo.Block()
    with pytest.raises(ValueError, match=f"buses \\[{mg1.bus}\\]"):
        add_lindistflow(m.net, data, m.T, p_inj_mw={mg1.bus: lambda t: 1.0})
    with pytest.raises(ValueError, match="not in the network"):
        lindistflow_solve(data, {mg1.bus: 1.0}, {})


# --------------------------------------------------------------------------------------------------
# Pyomo block == numpy snapshot
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sense", [pyo.minimize, pyo.maximize], ids=["min_import", "max_tie_flow"])
def test_block_matches_numpy_on_meshed_scenario(sense):
    """With the angle rows the loop flows are determined: minimising the substation import and
    maximising the flow on tie line 35 find the same point, the numpy snapshot's."""
    layout = _scenario_net()
    net = layout.net
    data = network_from_pandapower(net, {layout.tie_switches[1]: True, layout.tie_switches[3]: True})
    p, q = injections_from_pandapower(net)
    mg_buses = {layout.parties[n].bus for n in ("MG1", "MG2", "MG3")}
    scale = [1.0, 0.5]  # step 1: every injection halved

    def injection(values: dict[int, float], b: int) -> Callable[[int], float]:
        return lambda t: scale[t] * values[b]

    m = pyo.ConcreteModel()
    m.T = pyo.RangeSet(0, 1)
    m.net = pyo.Block()
    # MG buses through the injection callables, every other bus through the load params.
    add_lindistflow(
        m.net,
        data,
        m.T,
        p_inj_mw={b: injection(p, b) for b in mg_buses},
        q_inj_mvar={b: injection(q, b) for b in mg_buses},
    )
    set_network_loads(
        m.net,
        {b: [-s * p[b] for s in scale] for b in p if b not in mg_buses},
        {b: [-s * q[b] for s in scale] for b in q if b not in mg_buses},
    )
    for j in m.net.nonroot_bus:  # the operating point is below 0.95 pu at the feeder end
        m.net.w_min_pu2[j] = 0.8**2
    if sense == pyo.minimize:
        m.obj = pyo.Objective(expr=sum(m.net.p_root_mw[t] for t in m.T))
    else:
        m.obj = pyo.Objective(expr=sum(m.net.p_line_mw[35, t] for t in m.T), sense=sense)
    assert_block_is_the_snapshot(m, data, p, q, scale)


def assert_block_is_the_snapshot(
    m: pyo.ConcreteModel,
    data: NetworkData,
    p: dict[int, float],
    q: dict[int, float],
    scale: list[float],
    *,
    loadings: bool = True,
) -> dict[tuple[int, Any], float]:
    """Solve ``m`` (its objective set) and check that its LinDistFlow block ``m.net`` at each step t equals
    the snapshot solve of the injections ``scale[t] * p``, ``scale[t] * q`` (and, with ``loadings``, the
    loadings: the block's ratings must be the net's); returns the block's loadings."""
    assert PersistentHighs(m).solve(SolverOptions()).status == "optimal"
    vm, loading = predicted(m.net)
    for t, s in enumerate(scale):
        snap = lindistflow_solve(data, {b: s * v for b, v in p.items()}, {b: s * v for b, v in q.items()})
        for b in data.buses:
            assert vm[(b, t)] == pytest.approx(snap.vm_pu[b], abs=1e-7)
        for li in data.lines:
            assert pyo.value(m.net.p_line_mw[li, t]) == pytest.approx(snap.p_mw[li], abs=1e-6)
            assert pyo.value(m.net.q_line_mvar[li, t]) == pytest.approx(snap.q_mvar[li], abs=1e-6)
            if loadings:
                assert loading[(li, t)] == pytest.approx(snap.loading_percent[li], abs=1e-5)
    return loading


# --------------------------------------------------------------------------------------------------
# Limits bind
# --------------------------------------------------------------------------------------------------


def _export_model(data, q_per_p: float = 0.0):
    """Maximise a generator's export P (Q = q_per_p * P) at bus 2 of the 3-bus feeder, no load."""
    m = pyo.ConcreteModel()
    m.T = pyo.RangeSet(0, 0)
    m.gen_p_mw = pyo.Var(m.T, bounds=(0.0, None))
    m.net = pyo.Block()
    add_lindistflow(
        m.net, data, m.T, p_inj_mw={2: lambda t: m.gen_p_mw[t]}, q_inj_mvar={2: lambda t: q_per_p * m.gen_p_mw[t]}
    )
    m.obj = pyo.Objective(expr=m.gen_p_mw[0], sense=pyo.maximize)
    return m, PersistentHighs(m)


def test_export_stops_at_vmax_then_at_line_limit():
    """Export P from bus 2, Q = 0: w_2 = 1 + 2 (r_0 + r_1) P / V_b^2 = 1 + 6 P / 100.

    v_max = 1.05: P_v = (1.05^2 - 1) * 100 / 6 = 1.70833 MW; the rating at 0.2 kA is 3.464 MVA, so the
    voltage binds. Re-solved with the (mutable) rating cut to 0.05 kA (0.8660 MVA) the line binds
    first: pure active flow sits on a polygon vertex, so P = s_max exactly.
    """
    data = network_from_pandapower(_three_bus(max_i_ka=0.2))
    m, solver = _export_model(data)
    assert solver.solve(SolverOptions()).status == "optimal"
    assert pyo.value(m.gen_p_mw[0]) == pytest.approx((1.05**2 - 1) * 100 / 6, abs=1e-7)
    assert pyo.value(m.net.w_pu2[2, 0]) == pytest.approx(1.05**2, abs=1e-9)
    s_max = math.sqrt(3) * 10 * 0.05
    for li in m.net.line:
        m.net.s_max_mva[li] = s_max
    assert solver.solve(SolverOptions()).status == "optimal"
    assert pyo.value(m.gen_p_mw[0]) == pytest.approx(s_max, abs=1e-7)
    assert pyo.value(m.net.p_line_mw[0, 0]) == pytest.approx(-s_max, abs=1e-7)
    vm, loading = predicted(m.net)
    assert loading[(0, 0)] == pytest.approx(100.0, abs=1e-5) and vm[(2, 0)] < 1.05


def test_polygon_is_conservative_by_cos_pi_over_k():
    """Export at Q = tan(15 deg) P: the flow points at 195 deg, the middle of a facet of the 12-gon,
    so |S| stops at s_max cos(pi/12) and P at s_max cos(pi/12) cos(15 deg) = 0.8080 MW
    (s_max = 0.8660 MVA; voltage then 1 + 2 (3 P + 3 Q)/100 = 1.0615 <= 1.05^2, not binding)."""
    data = network_from_pandapower(_three_bus(max_i_ka=0.05))
    m, solver = _export_model(data, q_per_p=math.tan(math.pi / 12))
    assert solver.solve(SolverOptions()).status == "optimal"
    s_max = math.sqrt(3) * 10 * 0.05
    assert pyo.value(m.gen_p_mw[0]) == pytest.approx(s_max * math.cos(math.pi / 12) ** 2, abs=1e-7)
    s = math.hypot(pyo.value(m.net.p_line_mw[0, 0]), pyo.value(m.net.q_line_mvar[0, 0]))
    assert s == pytest.approx(s_max * math.cos(math.pi / 12), abs=1e-7)


def test_infeasible_when_load_breaks_the_band():
    """5 MW at bus 2 would need w_2 = 1 - 2 (3 * 5)/100 = 0.70 < 0.9^2: no feasible point."""
    data = network_from_pandapower(_three_bus(max_i_ka=1.0))
    m = pyo.ConcreteModel()
    m.T = pyo.RangeSet(0, 0)
    m.net = pyo.Block()
    add_lindistflow(m.net, data, m.T)
    set_network_loads(m.net, {2: [5.0]})
    m.obj = pyo.Objective(expr=m.net.p_root_mw[0])
    assert PersistentHighs(m).solve(SolverOptions()).status == "infeasible"


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


def test_rejects_what_the_model_does_not_cover():
    net = _three_bus()
    hv = pp.create_bus(net, vn_kv=110.0)
    mv = pp.create_bus(net, vn_kv=20.0)
    pp.create_transformer3w(net, hv, mv, 0, std_type="63/25/38 MVA 110/20/10 kV")
    with pytest.raises(ValueError, match=r"trafo3w \[0\]"):
        network_from_pandapower(net)

    net = _three_bus()
    pp.create_ext_grid(net, 2, vm_pu=1.0)
    with pytest.raises(ValueError, match=r"exactly one ext_grid.*ext_grid \[0, 1\]"):
        network_from_pandapower(net)

    net = _three_bus()
    pp.create_gen(net, 2, p_mw=0.5, vm_pu=1.0)
    with pytest.raises(ValueError, match=r"gen \[0\]"):
        network_from_pandapower(net)

    net = _three_bus()
    pp.create_switch(net, 1, 2, et="b")
    with pytest.raises(ValueError, match="switch 0 is a bus-bus switch"):
        network_from_pandapower(net)

    net = _three_bus()
    with pytest.raises(ValueError, match="switches \\[7\\]"):
        network_from_pandapower(net, {7: True})

    data = network_from_pandapower(_three_bus())
    m = pyo.ConcreteModel()
    m.T = pyo.RangeSet(0, 1)
    m.net = pyo.Block()
    add_lindistflow(m.net, data, m.T)
    with pytest.raises(ValueError, match="2 steps"):
        set_network_loads(m.net, {1: [1.0]})
    with pytest.raises(ValueError, match="no solution"):
        predicted(m.net)
