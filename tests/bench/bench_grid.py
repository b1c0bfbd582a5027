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
        pp.create_switch(
            net, bus=int(net.line.at[line, "from_bus"]), element=int(line), et="l", closed=False, name=f"tie-{line}"
        )
    vn_kv = float(net.bus.at[0, "vn_kv"])
    for k, feeder_bus in enumerate(MG_FEEDER_BUSES):
        mg = f"MG{k + 1}"
        bus = pp.create_bus(net, vn_kv=vn_kv, name=f"{mg}-bus", min_vm_pu=0.9, max_vm_pu=1.1)
        line = pp.create_line_from_parameters(
            net,
            feeder_bus,
            bus,
            length_km=0.1,
            r_ohm_per_km=0.1,
            x_ohm_per_km=0.1,
            c_nf_per_km=0.0,
            max_i_ka=0.4,
            name=f"{mg}-pcc",
        )
        pp.create_switch(net, bus=feeder_bus, element=line, et="l", closed=True, name=f"{mg}-pcc")
        pp.create_load(net, bus, p_mw=0.5, q_mvar=0.1, name=f"{mg}-load")
        pp.create_sgen(net, bus, p_mw=0.0, name=f"{mg}-pv", type="PV", controllable=False, max_p_mw=1.0)
        pp.create_sgen(net, bus, p_mw=0.0, name=f"{mg}-wind", type="WP", controllable=False, max_p_mw=0.8)
        pp.create_sgen(
            net, bus, p_mw=0.0, name=f"{mg}-diesel", type="diesel", controllable=True, max_p_mw=1.6, min_p_mw=0.0
        )
        pp.create_storage(
            net,
            bus,
            p_mw=0.0,
            max_e_mwh=1.0,
            soc_percent=20.0,
            max_p_mw=0.5,
            min_p_mw=-0.5,
            min_e_mwh=0.0,
            name=f"{mg}-bess",
        )
    pp.create_sgen(
        net, DN_BUS, p_mw=0.0, name="DN-diesel", type="diesel", controllable=True, max_p_mw=2.0, min_p_mw=0.0
    )
    pp.create_storage(
        net,
        DN_BUS,
        p_mw=0.0,
        max_e_mwh=3.0,
        soc_percent=50.0,
        max_p_mw=0.75,
        min_p_mw=-0.75,
        min_e_mwh=0.0,
        name="DN-bess",
    )
    is_mg_bess = net.storage["name"].str.startswith("MG")
    net.storage["eta_ch"] = 0.98
    net.storage["eta_dis"] = 0.98
    net.storage["grid_forming"] = is_mg_bess.to_numpy()
    net.sgen["grid_forming"] = False
    return net


# ----------------------------------------------------------------------------- benchmark
N_STEPS_GRIDSIM = 8760
N_STEPS_BASELINE = 200
N_STEPS_ISLANDED = 200
STEP_S = 3600


def make_inputs(net: pp.pandapowerNet, n_steps: int, seed: int = 42) -> list[dict]:
    """Seeded hourly-ish inputs in GridSim's mosaik input format (one source per attribute)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    base_p = net.load["p_mw"].to_numpy()
    base_q = net.load["q_mvar"].to_numpy()
    renewable = net.sgen.index[~net.sgen["controllable"].astype(bool)]
    dispatchable = net.sgen.index[net.sgen["controllable"].astype(bool)]
    steps = []
    for k in range(n_steps):
        daily = 0.7 + 0.3 * np.sin(2 * np.pi * (k % 24) / 24)
        noise = rng.uniform(0.85, 1.15, len(base_p))
        step: dict[str, dict[str, dict[str, object]]] = {}
        for i, idx in enumerate(net.load.index):
            step[f"Load-{idx}"] = {
                "p_mw": {"src": float(base_p[i] * daily * noise[i])},
                "q_mvar": {"src": float(base_q[i] * daily * noise[i])},
            }
        for idx in renewable:
            step[f"StaticGen-{idx}"] = {"p_avail_mw": {"src": float(rng.uniform(0.0, 0.8))}}
        for idx in dispatchable:
            step[f"StaticGen-{idx}"] = {"p_mw": {"src": float(rng.uniform(0.0, 0.6))}}
        for idx in net.storage.index:
            step[f"Storage-{idx}"] = {"p_mw": {"src": float(rng.uniform(-0.3, 0.3))}}
        if k % 168 == 100:
            step["Switch-0"] = {"closed": {"src": True}}
        if k % 168 == 124:
            step["Switch-0"] = {"closed": {"src": False}}
        steps.append(step)
    return steps


def _apply_to_net(net: pp.pandapowerNet, step: dict) -> None:
    """Write one step's inputs straight into a pandapower net (for the baselines)."""
    table_of = {"Load": "load", "StaticGen": "sgen", "Storage": "storage", "Switch": "switch"}
    for eid, attrs in step.items():
        model, idx = eid.split("-")
        table = net[table_of[model]]
        for attr, sources in attrs.items():
            value = next(iter(sources.values()))
            column = "p_mw" if attr == "p_avail_mw" else attr
            table.at[int(idx), column] = value


def _stats(times: list[float]) -> tuple[float, float]:
    import numpy as np

    arr = np.asarray(times) * 1e3
    return float(np.median(arr)), float(np.percentile(arr, 95))


def bench_gridsim(
    net: pp.pandapowerNet, steps: list[dict], islanded: bool = False, force_runpp: bool = False
) -> list[float]:
    import time

    from sims.grid import GRID_OUTPUTS, GridSim

    sim = GridSim()
    sim.init("Grid", time_resolution=1.0, step_size=STEP_S)
    children = sim.create(1, "Grid", net=pp.to_json(net))[0]["children"]
    request = {c["eid"]: sim.meta["models"][c["type"]]["attrs"] for c in children}
    request["Grid-0"] = list(GRID_OUTPUTS)  # its aggregates (its column outputs repeat the entities')
    if force_runpp:
        sim._fast = None  # what GridSim does for nets the fast path cannot express
    extra = {}
    if islanded:
        pcc = int(net.switch.index[net.switch["name"] == "MG1-pcc"][0])
        extra = {f"Switch-{pcc}": {"closed": {"src": False}}}
    times = []
    for k, step in enumerate(steps):
        t0 = time.perf_counter()
        sim.step(k * STEP_S, {**step, **extra}, 10**12)
        sim.get_data(request)
        times.append(time.perf_counter() - t0)
    return times


def voltage_agreement(net: pp.pandapowerNet, steps: list[dict], islanded: bool = False) -> float:
    """Largest |vm| difference (pu) between GridSim and a fresh runpp with the same applied powers."""
    import copy

    import numpy as np

    from sims.grid import GridSim

    sim = GridSim()
    sim.init("Grid", time_resolution=1.0, step_size=STEP_S)
    children = sim.create(1, "Grid", net=pp.to_json(net))[0]["children"]
    request = {c["eid"]: sim.meta["models"][c["type"]]["attrs"] for c in children}
    pcc = int(net.switch.index[net.switch["name"] == "MG1-pcc"][0])
    worst = 0.0
    for k, step in enumerate(steps):
        extra = {f"Switch-{pcc}": {"closed": {"src": False}}} if islanded else {}
        sim.step(k * STEP_S, {**step, **extra}, 10**12)
        data = sim.get_data(request)
        ref = copy.deepcopy(net)
        for model, table in (("Load", "load"), ("StaticGen", "sgen"), ("Storage", "storage")):
            for idx in ref[table].index:
                ref[table].at[idx, "p_mw"] = data[f"{model}-{idx}"]["p_mw"]
        for idx in ref.load.index:
            ref.load.at[idx, "q_mvar"] = data[f"Load-{idx}"]["q_mvar"]
        for idx in ref.switch.index:
            ref.switch.at[idx, "closed"] = data[f"Switch-{idx}"]["closed"]
        if islanded:
            bess = int(ref.storage.index[ref.storage["name"] == "MG1-bess"][0])
            ref.storage.at[bess, "in_service"] = False
            pp.create_ext_grid(ref, int(ref.storage.at[bess, "bus"]), vm_pu=1.0)
        pp.runpp(ref, numba=False)
        vm = np.array([data[f"Bus-{i}"]["vm_pu"] for i in net.bus.index])
        worst = max(worst, float(np.nanmax(np.abs(vm - ref.res_bus["vm_pu"].to_numpy()))))
    return worst


def bench_mosaik_pandapower(net: pp.pandapowerNet, steps: list[dict]) -> list[float]:
    """mosaik-pandapower-2 driven without a world: inputs written to its net, step + get_data."""
    import copy
    import time

    from mosaik_components.pandapower import Simulator

    sim = Simulator()
    sim.init("PP", time_resolution=1.0, step_size=STEP_S)
    own = copy.deepcopy(net)
    # its setup_done() appends sgens with pp.create_sgens, which refuses a bool custom column
    own.sgen = own.sgen.drop(columns=["grid_forming"])
    children = sim.create(1, "Grid", net=own)[0]["children"]
    sim.setup_done()
    request = {
        c["eid"]: [a for a in sim.meta["models"][c["type"]]["attrs"] if "[" in a and "_" not in a] for c in children
    }
    pp_net = sim.get_net()
    times = []
    for k, step in enumerate(steps):
        t0 = time.perf_counter()
        _apply_to_net(pp_net, step)
        sim.step(k * STEP_S, {}, 10**12)
        sim.get_data(request)
        times.append(time.perf_counter() - t0)
    return times


def bench_runpp(net: pp.pandapowerNet, steps: list[dict]) -> list[float]:
    import copy
    import time

    work = copy.deepcopy(net)
    times = []
    for step in steps:
        t0 = time.perf_counter()
        _apply_to_net(work, step)
        pp.runpp(work, numba=False)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    import logging
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    logging.getLogger("sims.grid").setLevel(logging.ERROR)  # storage clipping warnings
    try:
        from loguru import logger as loguru_logger

        loguru_logger.remove()  # mosaik-pandapower-2's numba hint
    except ImportError:
        pass
    net = build_test_net()
    steps = make_inputs(net, N_STEPS_GRIDSIM)
    rows = [
        ("GridSim (fast path)", N_STEPS_GRIDSIM, _stats(bench_gridsim(net, steps))),
        (
            "GridSim, MG1 islanded (fast, island)",
            N_STEPS_ISLANDED,
            _stats(bench_gridsim(net, steps[:N_STEPS_ISLANDED], islanded=True)),
        ),
        (
            "GridSim, runpp path (fallback)",
            N_STEPS_BASELINE,
            _stats(bench_gridsim(net, steps[:N_STEPS_BASELINE], force_runpp=True)),
        ),
        (
            "mosaik-pandapower-2 step+get_data",
            N_STEPS_BASELINE,
            _stats(bench_mosaik_pandapower(net, steps[:N_STEPS_BASELINE])),
        ),
        ("plain pandapower.runpp", N_STEPS_BASELINE, _stats(bench_runpp(net, steps[:N_STEPS_BASELINE]))),
    ]
    ref = rows[0][2][0]
    print(
        f"ieee33-style net: {len(net.bus)} buses, {len(net.line)} lines, {len(net.switch)} switches, "
        f"{len(net.load)} loads, {len(net.sgen)} sgens, {len(net.storage)} storages"
    )
    print(f"{'path':<38}{'steps':>7}{'median ms':>11}{'p95 ms':>9}{'median / GridSim':>18}")
    for name, n, (median, p95) in rows:
        print(f"{name:<38}{n:>7}{median:>11.3f}{p95:>9.3f}{median / ref:>17.1f}x")
    print(
        "times: GridSim = step + get_data of every entity and attribute; mosaik-pandapower-2 = inputs "
        "written to its net + step + get_data; runpp = inputs written + pandapower.runpp (numba off)"
    )
    n_check = 50
    print(
        f"max |vm - fresh runpp| over {n_check} steps: "
        f"{voltage_agreement(net, steps[:n_check]):.1e} pu grid-connected, "
        f"{voltage_agreement(net, steps[:n_check], islanded=True):.1e} pu with MG1 islanded"
    )


if __name__ == "__main__":
    main()
