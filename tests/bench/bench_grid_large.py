"""The grid step on a SimBench MV/LV grid of about 5,500 buses (transformers included): GridSim's fast path
against a fresh ``pandapower.runpp`` (a command, not a test; nothing here asserts on a timing).

Run: ``python tests/bench/bench_grid_large.py [--code 1-MVLV-rural-all-0-sw] [--steps 100] [--profile 20]``.

The net as the scenario builder prepares it (closed bus-bus switches fused, SimBench's own generators
kept as the units), seeded hourly inputs: every load at 40-120 % of its nominal power (a daily shape
times noise), every generator's availability at 0-100 % of its nominal power. The loads' powers reach
GridSim as the scenarios send a network operator's feeder loads: through one load group (a list per
attribute); the same steps with one input per load and attribute run too, as the baseline. Printed: the
net's size, GridSim's set-up (including its check against ``runpp``), the median and 95th percentile of
GridSim's step alone, of step plus ``get_data`` of the Grid entity only and of every entity, and of
``runpp`` with the same inputs, their ratios, and the largest bus voltage difference to a fresh ``runpp``
over ``--check`` steps; with ``--profile N``, where a step's time goes (cProfile over N more steps of the
grouped inputs: the functions with the most time of their own).
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandapower as pp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scenarios.build import fuse_closed_bus_switches
from tests.bench.bench_grid import _apply_to_net, _stats, bench_runpp


def _net(code: str) -> pp.pandapowerNet:
    import simbench as sb

    net = sb.get_simbench_net(code)
    for key in ("profiles", "loadcases"):
        net.pop(key, None)
    fuse_closed_bus_switches(net)
    net.sgen["controllable"] = False
    net.sgen["max_p_mw"] = net.sgen["p_mw"]
    return net


def _inputs(net: pp.pandapowerNet, n_steps: int, seed: int = 42) -> list[dict]:
    """Seeded inputs in GridSim's mosaik format, scaled to each element's own size."""
    rng = np.random.default_rng(seed)
    p, q, avail = net.load["p_mw"].to_numpy(), net.load["q_mvar"].to_numpy(), net.sgen["p_mw"].to_numpy()
    steps = []
    for k in range(n_steps):
        f = (0.8 + 0.2 * np.sin(2 * np.pi * (k % 24) / 24)) * rng.uniform(0.5, 1.0, len(p))
        sun = max(np.sin(np.pi * ((k % 24) - 6) / 12), 0.0) * rng.uniform(0.0, 1.0, len(avail))
        step: dict[str, dict[str, dict[str, object]]] = {
            f"Load-{i}": {"p_mw": {"src": float(p[j] * f[j])}, "q_mvar": {"src": float(q[j] * f[j])}}
            for j, i in enumerate(net.load.index)
        }
        step.update(
            {f"StaticGen-{i}": {"p_avail_mw": {"src": float(avail[j] * sun[j])}} for j, i in enumerate(net.sgen.index)}
        )
        steps.append(step)
    return steps


GROUP = "LoadGroup-feeders"


def _grouped(net: pp.pandapowerNet, steps: list[dict]) -> list[dict]:
    """The same steps with every load's p and q in one load-group input (lists in ``net.load`` order)."""
    out = []
    for step in steps:
        loads = [step[f"Load-{i}"] for i in net.load.index]
        rest = {eid: v for eid, v in step.items() if not eid.startswith("Load-")}
        p = [d["p_mw"]["src"] for d in loads]
        q = [d["q_mvar"]["src"] for d in loads]
        out.append({GROUP: {"p_mw": {"src": p}, "q_mvar": {"src": q}}, **rest})
    return out


def _gridsim(
    net: pp.pandapowerNet, steps: list[dict], check: int, singles: list[dict]
) -> tuple[Any, float, dict[str, list[float]], float]:
    """GridSim on ``steps`` (``singles``: the same steps with one input per load, for the runpp check)."""
    from sims.grid import GRID_OUTPUTS, GridSim

    sim = GridSim()
    sim.init("Grid", time_resolution=1.0, step_size=3600)
    t0 = time.perf_counter()
    groups = {"feeders": [int(i) for i in net.load.index]} if GROUP in steps[0] else None
    children = sim.create(1, "Grid", net=pp.to_json(net), load_groups=groups)[0]["children"]
    setup = time.perf_counter() - t0
    assert sim._fast is not None, "the fast path refused this net"
    every = {c["eid"]: sim.meta["models"][c["type"]]["attrs"] for c in children}
    grid_only = {"Grid-0": list(GRID_OUTPUTS)}  # its aggregates (its column outputs repeat the entities')
    times: dict[str, list[float]] = {"step": [], "step + Grid outputs": [], "step + every output": []}
    worst = 0.0
    for k, step in enumerate(steps):
        t0 = time.perf_counter()
        sim.step(k * 3600, step, 10**12)
        t1 = time.perf_counter()
        sim.get_data(grid_only)
        t2 = time.perf_counter()
        data = sim.get_data(every)
        t3 = time.perf_counter()
        times["step"].append(t1 - t0)
        times["step + Grid outputs"].append(t2 - t0)
        times["step + every output"].append(t1 - t0 + t3 - t2)
        if k < check:
            worst = max(worst, _vm_difference(net, singles[k], data))
    return sim, setup, times, worst


def _profile(sim: Any, steps: list[dict], k0: int) -> None:
    """Where the time of ``len(steps)`` more steps goes: cProfile, the functions with most time of their own."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for k, step in enumerate(steps):
        sim.step((k0 + k) * 3600, step, 10**12)
    profiler.disable()
    print(f"profile of {len(steps)} steps (cProfile adds its own overhead to every Python call):")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(12)


def _vm_difference(net: pp.pandapowerNet, step: dict, data: dict) -> float:
    """Largest |vm| difference to a fresh runpp with the powers GridSim applied."""
    ref = copy.deepcopy(net)
    _apply_to_net(ref, step)
    for model, table in (("Load", "load"), ("StaticGen", "sgen"), ("Storage", "storage")):
        for idx in ref[table].index:
            ref[table].at[idx, "p_mw"] = data[f"{model}-{idx}"]["p_mw"]
    for idx in ref.load.index:
        ref.load.at[idx, "q_mvar"] = data[f"Load-{idx}"]["q_mvar"]
    pp.runpp(ref, numba=False)
    vm = np.array([data[f"Bus-{i}"]["vm_pu"] for i in net.bus.index])
    return float(np.nanmax(np.abs(vm - ref.res_bus["vm_pu"].to_numpy())))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--code", default="1-MVLV-rural-all-0-sw")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--check", type=int, default=5, help="steps checked against a fresh runpp")
    p.add_argument("--profile", type=int, default=0, help="steps profiled after the timed ones (0: none)")
    a = p.parse_args()
    logging.getLogger("sims.grid").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    net = _net(a.code)
    print(
        f"{a.code}: {len(net.bus)} buses, {len(net.line)} lines, {len(net.trafo)} transformers, "
        f"{len(net.load)} loads, {len(net.sgen)} static generators, {len(net.switch)} switches "
        f"(read and prepared in {time.perf_counter() - t0:.1f} s)"
    )
    singles = _inputs(net, a.steps)
    grouped = _grouped(net, singles)
    runs = {"one input per load": _gridsim(net, singles, a.check, singles)}
    runs["load group"] = _gridsim(net, grouped, a.check, singles)
    base = _stats(bench_runpp(net, singles))
    print(f"{'':<44}{'median ms':>10}{'p95 ms':>10}{'runpp / this':>14}")
    for label, (_, setup, times, worst) in runs.items():
        print(f"loads as {label}: set-up (fast path built and checked against runpp) {setup:.1f} s, largest |vm|")
        print(f"  difference to a fresh runpp over {a.check} steps {worst:.2e} pu")
        for name, ts in times.items():
            med, p95 = _stats(ts)
            print(f"{'  GridSim ' + name:<44}{med:>10.2f}{p95:>10.2f}{base[0] / med:>14.1f}")
    print(f"{'pandapower.runpp':<44}{base[0]:>10.2f}{base[1]:>10.2f}{1.0:>14.1f}")
    single_med = _stats(runs["one input per load"][2]["step"])[0]
    group_med = _stats(runs["load group"][2]["step"])[0]
    print(f"step with a load group / with one input per load: {group_med / single_med:.2f}")
    if a.profile:
        _profile(runs["load group"][0], grouped[: a.profile], len(grouped))


if __name__ == "__main__":
    main()
