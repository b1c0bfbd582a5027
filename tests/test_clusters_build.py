"""Clusters of microgrids: the config (``[[clusters]]``, ``[[cluster_ties]]``, ``mgs.cluster``), the net the
builder makes of them (``scenarios/data/mv_clusters.toml`` on SimBench's 1-MV-rural--0-sw), the capability,
islands the grid simulator energises when a cluster's switches open, a load shift summed with its profile,
and the wiring of a strategy's switch entities and ``load_shift_mw`` in a short co-simulation."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandapower as pp
import pytest

from ems_controllers.core.contract import Capability
from scenarios.build import build_net
from scenarios.cli import main
from scenarios.config import ConfigError, load_config
from scenarios.layout import NetLayout
from scenarios.registry import SCENARIOS
from scenarios.runner import run_scenario
from scenarios.strategy_fit import offered
from scenarios.wiring import cluster_switches, site_of
from sims.grid.adapter import GridSim
from tests.helpers.cluster_ems import OPENED_FEEDER, SHIFT_MW, SVC_Q_MVAR, SWITCH_AT_S

MV_CLUSTERS = SCENARIOS["mv_clusters"].default_config
NETWORK_BUSES = 94  # 1-MV-rural--0-sw fused and cut at its 20 kV busbar
CLUSTER_OF = {
    **dict.fromkeys(["MG1", "MG2", "MG3"], "C1"),
    **dict.fromkeys(["MG4", "MG5", "MG6"], "C2"),
    **dict.fromkeys(["MG7", "MG8", "MG9", "MG10"], "C3"),
}
NETWORK_BUS = {"C1": 12, "C2": 47, "C3": 68}

# The xdist worker that builds the SimBench net (several seconds, once per process) keeps it for all of them.
pytestmark = pytest.mark.xdist_group("mv_clusters")


@pytest.fixture(scope="module")
def mv() -> NetLayout:
    cfg, data_dir = load_config(MV_CLUSTERS)
    return build_net(cfg, data_dir)


def _switch(net: Any, name: str) -> Any:
    rows = net.switch[net.switch.name == name]
    assert len(rows) == 1, f"{name}: {len(rows)} switches"
    return rows.iloc[0]


# --------------------------------------------------------------------------------------------------
# The built net
# --------------------------------------------------------------------------------------------------


def test_buses_clusters_and_mgs(mv: NetLayout) -> None:
    net = mv.net
    assert len(net.bus) == NETWORK_BUSES + 3 + 10
    assert list(mv.clusters) == ["C1", "C2", "C3"]
    for name, c in mv.clusters.items():
        assert net.bus.at[c.bus, "name"] == name and c.network_bus == NETWORK_BUS[name]
        assert net.bus.at[c.bus, "vn_kv"] == net.bus.at[c.network_bus, "vn_kv"] == 20.0
        assert (net.bus.at[c.bus, "min_vm_pu"], net.bus.at[c.bus, "max_vm_pu"]) == (0.95, 1.05)
        assert c.mgs == [mg for mg, cl in CLUSTER_OF.items() if cl == name]
    for mg, cluster in CLUSTER_OF.items():
        party = mv.parties[mg]
        assert net.bus.at[party.bus, "name"] == mg
        line = net.line.loc[party.pcc_line]
        assert (line.from_bus, line.to_bus) == (mv.clusters[cluster].bus, party.bus)
        sw = net.switch.loc[party.pcc_switch]
        assert sw.bus == mv.clusters[cluster].bus and sw.element == party.pcc_line and bool(sw.closed)
        assert sw["name"] == f"{mg} PCC"
    assert net.ext_grid.bus.tolist() == [2] and len(net.sgen) == 10 + 6 + 10 + 1  # PV, wind, MTs, the SVC: the config's


def test_switches_and_their_default_states(mv: NetLayout) -> None:
    net = mv.net
    assert mv.tie_switches == []  # the network operator's tie_closed never drives a cluster switch
    for name, c in mv.clusters.items():
        sw = _switch(net, f"{name} feeder")
        assert sw.name == c.switch and bool(sw.closed)  # normal operation: fed from the network
        assert sw.bus == c.network_bus and sw.et == "l" and sw.element == c.line
    assert [(t.name, t.between) for t in mv.cluster_ties] == [("C1-C2 tie", ("C1", "C2")), ("C2-C3 tie", ("C2", "C3"))]
    for t in mv.cluster_ties:
        sw = _switch(net, t.name)
        assert sw.name == t.switch and not bool(sw.closed)  # a normally-open point
        assert sw.bus == mv.clusters[t.between[0]].bus and sw.element == t.line
    assert list(cluster_switches(mv)) == ["C1 feeder", "C2 feeder", "C3 feeder", "C1-C2 tie", "C2-C3 tie"]
    assert (~net.switch.closed.astype(bool)).sum() == 6 + 2  # the net's own loop switches stay open


def test_line_data(mv: NetLayout) -> None:
    net = mv.net
    for name, c in mv.clusters.items():
        line = net.line.loc[c.line]
        assert (line.from_bus, line.to_bus, line.length_km, line["name"]) == (
            c.network_bus,
            c.bus,
            0.5,
            f"{name} feeder",
        )
        at = net.line[(net.line.from_bus == c.network_bus) | (net.line.to_bus == c.network_bus)].iloc[0]
        assert (line.r_ohm_per_km, line.x_ohm_per_km, line.max_i_ka) == (at.r_ohm_per_km, at.x_ohm_per_km, at.max_i_ka)
    for t, length in zip(mv.cluster_ties, (1.5, 3.5), strict=True):
        line = net.line.loc[t.line]
        a, b = (mv.clusters[n].bus for n in t.between)
        assert (line.from_bus, line.to_bus, line.length_km) == (a, b, length)
        assert (line.r_ohm_per_km, line.x_ohm_per_km, line.max_i_ka) == (0.253, 0.119, 0.283)
    for mg in CLUSTER_OF:  # PCC lines: the data of the first line at the cluster bus, its feeder line
        line, feeder = net.line.loc[mv.parties[mg].pcc_line], net.line.loc[mv.clusters[CLUSTER_OF[mg]].line]
        assert line.length_km == 0.2 and line.r_ohm_per_km == feeder.r_ohm_per_km


def test_site_and_capabilities(mv: NetLayout) -> None:
    cfg, _ = load_config(MV_CLUSTERS)
    have = offered(cfg)
    assert have == {Capability.CLUSTERS, Capability.NETWORK_OPERATOR}
    site = site_of(cfg, mv)
    assert site["clusters"]["C3"] == {
        "bus": mv.clusters["C3"].bus,
        "network_bus": 68,
        "line": mv.clusters["C3"].line,
        "switch": mv.clusters["C3"].switch,
        "switch_name": "C3 feeder",
        "mgs": ["MG7", "MG8", "MG9", "MG10"],
    }
    assert [t["name"] for t in site["cluster_ties"]] == ["C1-C2 tie", "C2-C3 tie"]
    assert site["cluster_ties"][1]["between"] == ["C2", "C3"]
    ieee, _ = load_config(SCENARIOS["ieee33_3mg"].default_config)
    plain = build_net(ieee)
    assert Capability.CLUSTERS not in offered(ieee)
    assert (site_of(ieee, plain)["clusters"], site_of(ieee, plain)["cluster_ties"]) == ({}, [])


# --------------------------------------------------------------------------------------------------
# Bad input: the field is named
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ('mgs.MG1.cluster="C9"', "mgs[0] (MG1).cluster: no cluster named 'C9'"),
        ("mgs.MG1.bus=5", "mgs[0] (MG1): cluster: an MG in a cluster hangs on its cluster's bus"),
        ('mgs.MG1.parent="MG2"', "mgs[0] (MG1): cluster: a nested MG hangs on its parent's bus"),
        ('cluster_ties.0.between=["C1", "C1"]', "cluster_ties[0]: between: a tie joins two different clusters"),
        ('cluster_ties.1.between=["C2", "C1"]', "cluster_ties[1].between: a second tie between C2 and C1"),
        ('cluster_ties.0.between=["C1", "C7"]', "cluster_ties[0].between: no cluster named 'C7'"),
        ('clusters.C2.name="MG4"', "clusters[1] (MG4).name: the name of an MG"),
        ('clusters.C2.name="C1"', "clusters[1] (C1).name: duplicate cluster names"),
        ("clusters.C1.line_length_km=0", "clusters[0] (C1).line_length_km: Input should be greater than 0"),
        ("cluster_ties.0.length_km=-1", "cluster_ties[0].length_km: Input should be greater than 0"),
        ("svcs.SVC68.q_min_mvar=0.1", "svcs[0] (SVC68).q_min_mvar: Input should be less than or equal to 0"),
    ],
)
def test_bad_cluster_config_names_the_field(override: str, field: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(field)):
        load_config(MV_CLUSTERS, [override])


def test_bad_svc_config_names_the_field(mv: NetLayout) -> None:
    with pytest.raises(ConfigError, match=re.escape("svcs[0] (SVC68): q_min_mvar, q_max_mvar: an SVC needs a")):
        load_config(MV_CLUSTERS, ["svcs.SVC68.q_min_mvar=0", "svcs.SVC68.q_max_mvar=0"])
    cfg, data_dir = load_config(MV_CLUSTERS, ["svcs.SVC68.bus=999"])
    with pytest.raises(ConfigError, match=re.escape("svcs[0] (SVC68).bus: bus 999 is not in 1-MV-rural--0-sw")):
        build_net(cfg, data_dir)


def test_the_svc_is_a_static_generator_of_reactive_power_only(mv: NetLayout) -> None:
    """``[[svcs]]``: an sgen of type SVC on its bus, no active power, its range as the sgen's Q limits,
    listed in the site for the EMS."""
    net = mv.net
    idx = mv.svcs["SVC68"]
    row = net.sgen.loc[idx]
    assert (row["bus"], row["type"], row["name"]) == (68, "SVC", "SVC68")
    assert (row["p_mw"], row["max_p_mw"], row["q_mvar"]) == (0.0, 0.0, 0.0)
    assert (row["min_q_mvar"], row["max_q_mvar"]) == (-1.0, 1.0)
    assert not row["grid_forming"]
    cfg, _ = load_config(MV_CLUSTERS)
    assert site_of(cfg, mv)["svcs"] == {"SVC68": {"bus": 68, "sgen": idx, "q_min_mvar": -1.0, "q_max_mvar": 1.0}}


def test_a_cluster_needs_an_mg(tmp_path: Path) -> None:
    text = MV_CLUSTERS.read_text().replace('cluster = "C2"', 'cluster = "C1"')
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(ConfigError, match=re.escape("clusters[1] (C2): no MG is in it")):
        load_config(tmp_path / "c.toml")


def test_a_cluster_bus_not_in_the_net_is_named(mv: NetLayout) -> None:
    cfg, data_dir = load_config(MV_CLUSTERS, ["clusters.C1.bus=999"])
    with pytest.raises(ConfigError, match=re.escape("clusters[0] (C1).bus: bus 999 is not in 1-MV-rural--0-sw")):
        build_net(cfg, data_dir)


def test_the_command_line_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.h5"
    code = main(["run", "mv_clusters", "--quiet", "--out", str(out), "--set", 'mgs.MG5.cluster="C4"'])
    assert code == 2 and "mgs[4] (MG5).cluster: no cluster named 'C4'" in capsys.readouterr().err
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# The grid simulator on the built net: islands and a load shift
# --------------------------------------------------------------------------------------------------


def _grid(net: Any) -> GridSim:
    sim = GridSim()
    sim.init("Grid", step_size=3600)
    sim.create(1, "Grid", net=pp.to_json(net))
    return sim


def _step(sim: GridSim, inputs: dict[str, dict[str, dict[str, Any]]], time: int = 0) -> None:
    sim.step(time, inputs, 10**9)


def _get(sim: GridSim, eid: str, attr: str) -> Any:
    return sim.get_data({eid: [attr]})[eid][attr]


def test_opened_cluster_and_pcc_switches_make_islands_their_grid_forming_units_energise(mv: NetLayout) -> None:
    net = mv.net
    sim = _grid(copy.deepcopy(net))
    c1 = mv.clusters["C1"]
    mg1, mg2, mg3 = (mv.parties[m] for m in c1.mgs)
    island_loads = {f"Load-{p.load[0]}": 0.1 * (k + 1) for k, p in enumerate((mg1, mg2, mg3))}
    inputs: dict[str, dict[str, dict[str, Any]]] = {eid: {"p_mw": {"src": p}} for eid, p in island_loads.items()}
    for p in (mg1, mg2, mg3):  # no sun, no wind, no EV charging
        inputs |= {f"StaticGen-{s}": {"p_avail_mw": {"src": 0.0}} for s in p.pv + p.wind}
        if p.ev is not None:
            inputs[f"Load-{p.ev}"] = {"p_mw": {"src": 0.0}}
    _step(sim, {**inputs, f"Switch-{c1.switch}": {"closed": {"ems": False}}})
    assert _get(sim, "Grid-0", "unsupplied_mw") == 0.0 and _get(sim, "Grid-0", "pf_converged") == 1
    for bus in (c1.bus, mg1.bus, mg2.bus, mg3.bus):
        assert _get(sim, f"Bus-{bus}", "vm_pu") == pytest.approx(1.0, abs=0.01)
    # MG3's micro-turbine forms the island (MG3's battery is not grid-forming; the first grid-forming
    # static generator is the island's slack): it supplies the island's loads and losses
    assert not net.storage.at[mg3.storage, "grid_forming"] and net.sgen.at[mg3.diesel, "grid_forming"]
    mt = _get(sim, f"StaticGen-{mg3.diesel}", "p_mw")
    assert mt == pytest.approx(sum(island_loads.values()), rel=0.02) and mt >= sum(island_loads.values())
    assert abs(_get(sim, f"Line-{c1.line}", "p_from_mw")) < 1e-9  # nothing crosses the opened feeder switch

    _step(sim, {f"Switch-{mg1.pcc_switch}": {"closed": {"ems": False}}}, time=3600)  # MG1 alone as well
    assert _get(sim, "Grid-0", "unsupplied_mw") == 0.0
    assert _get(sim, f"Bus-{mg1.bus}", "vm_pu") == pytest.approx(1.0, abs=1e-6)  # its battery's bus, no line
    assert _get(sim, f"Storage-{mg1.storage}", "p_mw") == pytest.approx(-0.1, abs=1e-9)  # discharges its load
    assert _get(sim, f"StaticGen-{mg3.diesel}", "p_mw") == pytest.approx(0.5, rel=0.02)  # MG2's and MG3's


def test_a_load_shift_is_added_to_the_load_profile() -> None:
    """The grid sums every source of a load's ``p_mw``: the profile and the EMS's ``load_shift_mw``."""
    net = pp.create_empty_network()
    b0, b1 = pp.create_bus(net, 20.0), pp.create_bus(net, 20.0)
    pp.create_ext_grid(net, b0)
    pp.create_line_from_parameters(net, b0, b1, 1.0, 0.2, 0.1, 0.0, 0.3)
    pp.create_load(net, b1, p_mw=1.0)
    sim = _grid(net)
    for k, (profile, shift) in enumerate([(0.5, 0.2), (0.5, -0.2), (0.4, 0.0)]):
        _step(sim, {"Load-0": {"p_mw": {"Profiles.load": profile, "EMS.MG1": shift}}}, time=3600 * k)
        assert _get(sim, "Load-0", "p_mw") == pytest.approx(profile + shift)
        assert _get(sim, "ExtGrid-0", "p_mw") == pytest.approx(profile + shift, rel=1e-3)


# --------------------------------------------------------------------------------------------------
# Wiring: switch entities and load_shift_mw, end to end on a small config
# --------------------------------------------------------------------------------------------------

SMALL = (
    f"""
[scenario]
name = "small_clusters"
start = "2019-06-12 00:00:00"
days = 1

[grid]
net = "case33bw"
line_max_i_ka = 0.25

[tariff]
buy_price_per_mwh = {[100.0] * 24}
sell_price_per_mwh = {[80.0] * 24}
"""
    + """
[[clusters]]
name = "C1"
bus = 17

[[clusters]]
name = "C2"
bus = 32

[[cluster_ties]]
between = ["C1", "C2"]
length_km = 1.0

[[svcs]]
name = "S"
bus = 30
q_min_mvar = -0.5
q_max_mvar = 0.8

[[mgs]]
name = "A"
cluster = "C1"
load = { p_peak_mw = 0.4, profile = "H0-A" }
pv = { p_peak_mw = 0.3 }
battery = { e_max_mwh = 0.5, e_init_mwh = 0.25, p_ch_max_mw = 0.2, p_dis_max_mw = 0.2 }

[[mgs]]
name = "B"
cluster = "C1"
load = { p_peak_mw = 0.3, profile = "G0-A" }

[[mgs]]
name = "C"
cluster = "C2"
load = { p_peak_mw = 0.3, profile = "L0-A" }
pv = { p_peak_mw = 0.2 }
"""
)


def test_switch_entities_and_load_shift_are_wired(tmp_path: Path) -> None:
    (tmp_path / "small.toml").write_text(SMALL)
    cfg, data_dir = load_config(tmp_path / "small.toml")
    result = run_scenario(cfg, data_dir, "tests.helpers.cluster_ems:STRATEGY", tmp_path / "r.h5", progress=False)
    from scenarios.kpis import RunFile

    r = RunFile(result.path)
    e = r.entities
    assert set(e.cluster_switches) == set(e.switch_entities) == {"C1 feeder", "C2 feeder", "C1-C2 tie"}
    late = np.arange(r.n) * cfg.scenario.step_s >= SWITCH_AT_S
    for name, fid in e.cluster_switches.items():
        grid_state = r.s(fid, "closed").astype(bool)
        ems_state = r.s(e.switch_entities[name], "closed").astype(bool)  # the switch entity's output, recorded
        expected = late if name.endswith("tie") else ~(late & (name == OPENED_FEEDER))
        assert (grid_state == expected).all() and (ems_state == expected).all(), name
    assert r.s(e.grid, "unsupplied_mw").max() == 0.0  # C1 is fed through the tie once its feeder opens
    for mg, party in e.mgs().items():
        profile, grid_load = r.s(party.profiles.load[0], "p_mw"), r.s(party.load[0], "p_mw")
        assert grid_load == pytest.approx(profile + SHIFT_MW.get(mg, 0.0), abs=1e-9), mg
        assert math.isfinite(float(np.sum(grid_load)))
    # the SVC's setpoint reaches the grid, clipped to its range from noon (the helper asks 5 Mvar)
    assert set(e.svcs) == set(e.svc_entities) == {"S"}
    assert r.s(e.svcs["S"], "q_mvar") == pytest.approx(np.where(late, 0.8, SVC_Q_MVAR))
    assert r.s(e.svc_entities["S"], "q_mvar") == pytest.approx(np.where(late, 5.0, SVC_Q_MVAR))
    assert r.s(e.svcs["S"], "p_mw") == pytest.approx(np.zeros(r.n))
