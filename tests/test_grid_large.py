"""The grid simulator's fast path (lightsim2grid) against a fresh ``pandapower.runpp`` on grids with
transformers: a naive mapping of such grids to lightsim2grid was off by up to 0.03 pu on SimBench MV grids.

In the default run: pandapower's MV Oberrhein grid fed through both of its 110/20 kV transformers (150 deg
shift, tap positions -2 and -3) from one external grid, so that the rings they feed are joined and the
transformers share the load. Marked slow: SimBench's 5,477-bus ``1-MVLV-rural-all-0-sw`` (92 MV/LV
transformers) as the large-grid bench prepares it, the grid the fast path was tuned on.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from tests.test_grid import BIG, make_sim, reference_runpp

VM_TOL_PU = 1e-6
VA_TOL_DEG = 1e-5
P_TOL_MW = 1e-6


def oberrhein_one_feed() -> pp.pandapowerNet:
    """MV Oberrhein with the high-voltage buses of its two transformers fused: one ext_grid feeds both.

    Its loads' scaling (0.6) is folded into their powers and its generators' (0) set to 1: the grid
    simulator's inputs are actual MW, and so are the powers the reference writes into a copy of the net."""
    net = pn.mv_oberrhein()
    hv = [int(b) for b in net.ext_grid["bus"]]
    pp.toolbox.fuse_buses(net, hv[0], set(hv[1:]))
    net.ext_grid = net.ext_grid.iloc[:1]
    for column in ("p_mw", "q_mvar"):
        net.load[column] *= net.load["scaling"]
    net.load["scaling"] = 1.0
    net.sgen["scaling"] = 1.0
    return net


def seeded_inputs(net: pp.pandapowerNet, seed: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Every load at 50-120 % of its size, every generator's availability at 0-100 % of its size."""
    rng = np.random.default_rng(seed)
    f = rng.uniform(0.5, 1.2, len(net.load))
    sun = rng.uniform(0.0, 1.0, len(net.sgen))
    step: dict[str, dict[str, dict[str, Any]]] = {
        f"Load-{i}": {"p_mw": {"src": float(p * f[j])}, "q_mvar": {"src": float(q * f[j])}}
        for j, (i, p, q) in enumerate(zip(net.load.index, net.load["p_mw"], net.load["q_mvar"], strict=True))
    }
    step.update(
        {
            f"StaticGen-{i}": {"p_avail_mw": {"src": float(p * sun[j])}}
            for j, (i, p) in enumerate(zip(net.sgen.index, net.sgen["p_mw"], strict=True))
        }
    )
    return step


def assert_matches_runpp(net: pp.pandapowerNet, data: dict[str, dict[str, Any]]) -> pp.pandapowerNet:
    """Bus voltages, line flows, the ext_grid's power and the losses against a fresh runpp of what the
    grid simulator applied (its unit powers and switch states)."""
    ref = reference_runpp(net, data)
    vm = np.array([data[f"Bus-{i}"]["vm_pu"] for i in net.bus.index])
    va = np.array([data[f"Bus-{i}"]["va_degree"] for i in net.bus.index])
    np.testing.assert_allclose(vm, ref.res_bus["vm_pu"].to_numpy(), atol=VM_TOL_PU, rtol=0)
    np.testing.assert_allclose(va, ref.res_bus["va_degree"].to_numpy(), atol=VA_TOL_DEG, rtol=0)
    p_from = np.array([data[f"Line-{i}"]["p_from_mw"] for i in net.line.index])
    np.testing.assert_allclose(p_from, ref.res_line["p_from_mw"].to_numpy(), atol=P_TOL_MW, rtol=0)
    assert data["ExtGrid-0"]["p_mw"] == pytest.approx(ref.res_ext_grid["p_mw"].iloc[0], abs=P_TOL_MW)
    losses = ref.res_line["pl_mw"].sum() + ref.res_trafo["pl_mw"].sum()
    assert data["Grid-0"]["losses_mw"] == pytest.approx(losses, abs=P_TOL_MW)
    return ref


def test_fast_path_matches_runpp_on_two_tapped_transformers() -> None:
    """Three steps of new load and generation, the last with a ring's open point moved (one line switch
    closed, another opened): each within 1e-6 pu of a fresh runpp, the transformers' flows included."""
    net = oberrhein_one_feed()
    sim, request = make_sim(net)
    assert sim._fast is not None, "the fast path must reproduce runpp on this net"
    open_sw = net.switch.index[~net.switch["closed"].astype(bool)]
    closed_sw = net.switch.index[net.switch["closed"].astype(bool)]
    moves = [
        {},
        {},
        {f"Switch-{open_sw[0]}": {"closed": {"src": True}}, f"Switch-{closed_sw[0]}": {"closed": {"src": False}}},
    ]
    for k, move in enumerate(moves):
        sim.step(3600 * k, {**seeded_inputs(net, k), **move}, BIG)
        data = sim.get_data(request)
        assert sim.last_path == "fast"
        ref = assert_matches_runpp(net, data)
        trafo_mw = ref.res_trafo["p_hv_mw"].to_numpy()
        assert (trafo_mw > 1.0).all(), "both transformers carry load"
        loading = max(ref.res_line["loading_percent"].max(), ref.res_trafo["loading_percent"].max())
        assert data["Grid-0"]["max_loading_percent"] == pytest.approx(loading, abs=1e-4)


@pytest.mark.slow
def test_fast_path_matches_runpp_on_simbench_mvlv() -> None:
    """SimBench 1-MVLV-rural-all-0-sw (5,477 buses, 92 transformers), three steps of the bench's inputs."""
    from tests.bench.bench_grid_large import _inputs, _net

    net = _net("1-MVLV-rural-all-0-sw")
    sim, request = make_sim(copy.deepcopy(net))
    assert sim._fast is not None, "the fast path must reproduce runpp on this net"
    for k, step in enumerate(_inputs(net, 3)):
        sim.step(3600 * k, step, BIG)
        data = sim.get_data(request)
        assert sim.last_path == "fast"
        assert data["Grid-0"]["pf_converged"] == 1
        assert_matches_runpp(net, data)
