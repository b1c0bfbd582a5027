"""Benchmark of the grid step: GridSim vs mosaik-pandapower-2 vs plain pandapower.runpp.

Run with ``python tests/bench/bench_grid.py``.
"""

from __future__ import annotations

import pandapower as pp
import pandapower.networks as pn

MG_FEEDER_BUSES = (17, 21, 32)
DN_BUS = 5


def build_test_net() -> pp.pandapowerNet:
    """case33bw with closed-able tie lines, three microgrids and a DN diesel/storage."""
    net = pn.case33bw()
    net.line["max_i_ka"] = 0.4
    ties = net.line.index[~net.line["in_service"]]
    for line in ties:
        net.line.at[line, "in_service"] = True
        pp.create_switch(net, bus=int(net.line.at[line, "from_bus"]), element=int(line), et="l",
                         closed=False, name=f"tie-{line}")
    vn_kv = float(net.bus.at[0, "vn_kv"])
    for k, feeder_bus in enumerate(MG_FEEDER_BUSES):
        mg = f"MG{k + 1}"
        bus = pp.create_bus(net, vn_kv=vn_kv, name=f"{mg}-bus", min_vm_pu=0.9, max_vm_pu=1.1)
        line = pp.create_line_from_parameters(net, feeder_bus, bus, length_km=0.1, r_ohm_per_km=0.1,
                                              x_ohm_per_km=0.1, c_nf_per_km=0.0, max_i_ka=0.4,
                                              name=f"{mg}-pcc")
        pp.create_switch(net, bus=feeder_bus, element=line, et="l", closed=True, name=f"{mg}-pcc")
        pp.create_load(net, bus, p_mw=0.5, q_mvar=0.1, name=f"{mg}-load")
        pp.create_sgen(net, bus, p_mw=0.0, name=f"{mg}-pv", type="PV", controllable=False, max_p_mw=1.0)
        pp.create_sgen(net, bus, p_mw=0.0, name=f"{mg}-wind", type="WP", controllable=False, max_p_mw=0.8)
        pp.create_sgen(net, bus, p_mw=0.0, name=f"{mg}-diesel", type="diesel", controllable=True,
                       max_p_mw=1.6, min_p_mw=0.0)
        pp.create_storage(net, bus, p_mw=0.0, max_e_mwh=1.0, soc_percent=20.0, max_p_mw=0.5,
                          min_p_mw=-0.5, min_e_mwh=0.0, name=f"{mg}-bess")
    pp.create_sgen(net, DN_BUS, p_mw=0.0, name="DN-diesel", type="diesel", controllable=True,
                   max_p_mw=2.0, min_p_mw=0.0)
    pp.create_storage(net, DN_BUS, p_mw=0.0, max_e_mwh=3.0, soc_percent=50.0, max_p_mw=0.75,
                      min_p_mw=-0.75, min_e_mwh=0.0, name="DN-bess")
    is_mg_bess = net.storage["name"].str.startswith("MG")
    net.storage["eta_ch"] = 0.98
    net.storage["eta_dis"] = 0.98
    net.storage["grid_forming"] = is_mg_bess.to_numpy()
    net.sgen["grid_forming"] = False
    return net
