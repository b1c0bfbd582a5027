"""Load groups: many loads fed through one entity with list-valued attributes (grid and profile simulators).

A group must give the grid exactly what one input per load gives; a member's own extra input adds to the
group's value; bad groups and bad lists are refused with the group named. The profile simulator's
``LoadGroup`` outputs exactly what a ``Load`` of each member's size outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandapower as pp
import pytest

from sims.grid import GridSim
from sims.profiles import ProfileSim
from tests.bench.bench_grid import build_test_net

BIG = 10**9
GROUP = "LoadGroup-feeders"


@pytest.fixture(scope="module")
def net() -> pp.pandapowerNet:
    return build_test_net()


def _sim(net: pp.pandapowerNet, groups: dict[str, list[int]] | None) -> tuple[GridSim, dict[str, list[str]]]:
    sim = GridSim()
    sim.init("Grid", time_resolution=1.0, step_size=3600)
    children = sim.create(1, "Grid", net=pp.to_json(net), load_groups=groups)[0]["children"]
    request = {c["eid"]: sim.meta["models"][c["type"]]["attrs"] for c in children if c["type"] != "LoadGroup"}
    request["Grid-0"] = sim.meta["models"]["Grid"]["attrs"]
    return sim, request


def _draws(net: pp.pandapowerNet, n: int, seed: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    p0, q0 = net.load["p_mw"].to_numpy(), net.load["q_mvar"].to_numpy()
    return [(p0 * rng.uniform(0.2, 1.5, len(p0)), q0 * rng.uniform(0.2, 1.5, len(q0))) for _ in range(n)]


def test_a_group_gives_the_grid_exactly_what_one_input_per_load_gives(net: pp.pandapowerNet) -> None:
    members = [int(i) for i in net.load.index]
    single, request = _sim(net, None)
    grouped, _ = _sim(net, {"feeders": members})
    for k, (p, q) in enumerate(_draws(net, 4)):
        single.step(
            k * 3600, {f"Load-{i}": {"p_mw": {"s": p[j]}, "q_mvar": {"s": q[j]}} for j, i in enumerate(members)}, BIG
        )
        grouped.step(k * 3600, {GROUP: {"p_mw": {"s": p.tolist()}, "q_mvar": {"s": q.tolist()}}}, BIG)
        assert grouped.get_data(request) == single.get_data(request)
        # the group's own outputs are its members' Load outputs, in the listed order
        answer = grouped.get_data({GROUP: ["p_mw", "q_mvar"]})[GROUP]
        assert answer == {"p_mw": p.tolist(), "q_mvar": q.tolist()}


def test_a_members_own_input_adds_to_the_groups_value_and_none_holds(net: pp.pandapowerNet) -> None:
    members = [int(i) for i in net.load.index]
    sim, _ = _sim(net, {"feeders": members})
    first, other = members[0], members[1]
    p = [0.1] * len(members)
    sim.step(0, {GROUP: {"p_mw": {"s": p}}, f"Load-{first}": {"p_mw": {"ems": 0.25}}}, BIG)
    out = sim.get_data({f"Load-{first}": ["p_mw"], f"Load-{other}": ["p_mw"]})
    assert out[f"Load-{first}"]["p_mw"] == pytest.approx(0.35, abs=1e-12)
    assert out[f"Load-{other}"]["p_mw"] == pytest.approx(0.1, abs=1e-12)
    # None (and NaN) in a list: that member's value holds; the own input changes alone
    held = [None if k == 1 else 0.2 for k in range(len(members))]
    sim.step(3600, {GROUP: {"p_mw": {"s": held}}, f"Load-{first}": {"p_mw": {"ems": 0.05}}}, BIG)
    out = sim.get_data({f"Load-{first}": ["p_mw"], f"Load-{other}": ["p_mw"]})
    assert out[f"Load-{first}"]["p_mw"] == pytest.approx(0.25, abs=1e-12)
    assert out[f"Load-{other}"]["p_mw"] == pytest.approx(0.1, abs=1e-12)


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ({"feeders": []}, "load_groups.feeders: expected a non-empty list"),
        ({"feeders": [10**6]}, "load_groups.feeders: 1000000 is no load index"),
        ({"a": [0], "b": [0]}, "load_groups.b: load 0 is already in group 'a'"),
        ({"bad name": [0]}, "group name 'bad name'"),
        ([0, 1], "load_groups must map"),
    ],
)
def test_bad_groups_are_refused_by_name(net: pp.pandapowerNet, groups: Any, message: str) -> None:
    sim = GridSim()
    sim.init("Grid", time_resolution=1.0, step_size=3600)
    with pytest.raises(ValueError, match=message):
        sim.create(1, "Grid", net=pp.to_json(net), load_groups=groups)


def test_a_list_of_the_wrong_length_names_the_group(net: pp.pandapowerNet) -> None:
    sim, _ = _sim(net, {"feeders": [int(i) for i in net.load.index]})
    with pytest.raises(ValueError, match=rf"{GROUP}\.p_mw from s: expected {len(net.load)} values"):
        sim.step(0, {GROUP: {"p_mw": {"s": [0.1]}}}, BIG)
    with pytest.raises(ValueError, match=rf"{GROUP}\.q_mvar from s: expected a list of numbers"):
        sim.step(0, {GROUP: {"q_mvar": {"s": ["x"] * len(net.load)}}}, BIG)


@pytest.mark.parametrize("step_size", [3600, 900])
def test_a_profile_group_outputs_what_each_members_load_outputs(step_size: int) -> None:
    peaks, cos_phis = [0.01, 0.2, 0.035], [0.97, 0.9, 1.0]
    sim = ProfileSim()
    sim.init("P", time_resolution=1.0, step_size=step_size, start="2019-08-16 00:00:00")
    loads = [
        sim.create(1, "Load", p_peak_mw=p, profile="H0-A", cos_phi=c)[0]["eid"]
        for p, c in zip(peaks, cos_phis, strict=True)
    ]
    group = sim.create(1, "LoadGroup", p_peak_mw=peaks, profile="H0-A", cos_phi=cos_phis)[0]["eid"]
    for k in range(6):
        sim.step(k * step_size, {}, BIG)
        out = sim.get_data({**{eid: ["p_mw", "q_mvar"] for eid in loads}, group: ["p_mw", "q_mvar"]})
        # hourly steps pick the same products; sub-hourly means differ by the rounding of their cumulative sums
        tol = 0.0 if step_size == 3600 else 1e-9  # a year of cumulative sums: ~1e-12 apart
        assert out[group]["p_mw"] == pytest.approx([out[eid]["p_mw"] for eid in loads], rel=tol, abs=0.0)
        assert out[group]["q_mvar"] == pytest.approx([out[eid]["q_mvar"] for eid in loads], rel=tol, abs=0.0)
        assert out[group]["p_mw"][0] > 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"p_peak_mw": [], "profile": "H0-A"}, "p_peak_mw \\(a non-empty list\\) and profile are required"),
        ({"p_peak_mw": [0.1, -1.0], "profile": "H0-A"}, "p_peak_mw\\[1\\] must be a finite number >= 0"),
        ({"p_peak_mw": [0.1], "profile": "H0-A", "cos_phi": [0.9, 0.9]}, "cos_phi must be one value or one per member"),
        ({"p_peak_mw": [0.1], "profile": "nope"}, "unknown load profile 'nope'"),
        ({"p_peak_mw": [0.1], "profile": "H0-A", "kind": "x"}, "unknown params \\['kind'\\]"),
    ],
)
def test_bad_profile_groups_are_refused(params: dict[str, Any], message: str) -> None:
    sim = ProfileSim()
    sim.init("P", time_resolution=1.0)
    with pytest.raises(ValueError, match=message):
        sim.create(1, "LoadGroup", **params)
