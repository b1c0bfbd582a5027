"""Grids as data: where a net comes from (``grid.net``), the one builder every scenario uses, its errors,
the shipped scenarios' nets as they were when each had its own module, and a network-aware strategy
run end to end on a grid other than case33bw (``scenarios/data/cigre_mv_dn.toml``)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pandapower.toolbox as pp_toolbox
import pytest

from scenarios.build import build_net
from scenarios.cli import main
from scenarios.config import DATA_DIR, Config, ConfigError, GridCfg, load_config
from scenarios.grids import SIMBENCH_INSTALL, load_net, net_source
from scenarios.layout import DN, NetLayout
from scenarios.registry import SCENARIOS, get_scenario
from sims.record_reader import read_attrs, read_series

CIGRE_MV_DN = DATA_DIR / "cigre_mv_dn.toml"


def _ranges(index: Any) -> str:
    """``0-19,21,24-46``: an index, compactly."""
    values = sorted(int(i) for i in index)
    parts: list[str] = []
    start = prev = values[0] if values else 0
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ",".join(parts) if values else ""


def _shape(layout: NetLayout) -> dict[str, Any]:
    net = layout.net
    out: dict[str, Any] = {t: _ranges(net[t].index) for t in ("bus", "line", "switch", "load", "sgen", "storage")}
    out["trafo"] = len(net.trafo)
    out["closed_switches"] = _ranges(net.switch.index[net.switch.closed.astype(bool)])
    out["line_sums"] = [round(float(net.line[c].sum()), 9) for c in ("length_km", "r_ohm_per_km", "x_ohm_per_km")]
    out["line_sums"].append(round(float(net.line.max_i_ka.sum()), 9))
    out["load_sums"] = [round(float(net.load[c].sum()), 9) for c in ("p_mw", "q_mvar")]
    out["parties"] = {n: (p.bus, p.pcc_line, p.pcc_switch, p.diesel, p.storage) for n, p in layout.parties.items()}
    out["tie_switches"] = list(layout.tie_switches)
    out["feeder_loads"] = _ranges(layout.feeder_loads)
    return out


# The nets the per-scenario modules (scenarios/ieee33_3mg.py, community_3mg.py, nested_campus.py) built
# from the default configs before the generic builder replaced them (their pandapower JSON was compared
# byte for byte when the builder came in; this is what a pandapower upgrade must not move either).
SHIPPED_SHAPES: dict[str, dict[str, Any]] = {
    "ieee33_3mg": {
        "bus": "0-35",
        "line": "0-39",
        "switch": "0-7",
        "load": "0-34",
        "sgen": "0-8",
        "storage": "0-3",
        "trafo": 0,
        "closed_switches": "5-7",
        "line_sums": [37.3, 27.855, 24.9253, 10.75],
        "load_sums": [6.415, 3.187447084],
        "parties": {
            "MG1": (33, 37, 5, 2, 0),
            "MG2": (34, 38, 6, 5, 1),
            "MG3": (35, 39, 7, None, 2),
            DN: (5, None, None, 8, 3),
        },
        "tie_switches": [0, 1, 2, 3, 4],
        "feeder_loads": "0-31",
    },
    "community_3mg": {
        "bus": "0-17",
        "line": "0-17",
        "switch": "0-10",
        "load": "0-2",
        "sgen": "0-5",
        "storage": "",
        "trafo": 2,
        "closed_switches": "0,3,5-10",
        "line_sums": [25.25, 9.054, 11.488, 2.81],
        "load_sums": [1.967, 0.646521635],
        "parties": {"A": (15, 15, 8, 1, None), "B": (16, 16, 9, 3, None), "C": (17, 17, 10, 5, None)},
        "tie_switches": [],
        "feeder_loads": "",
    },
    "nested_campus": {
        "bus": "0,2-19,21-22,24-46",
        "line": "0-39",
        "switch": "0-2",
        "load": "0-8",
        "sgen": "0-5",
        "storage": "0-2",
        "trafo": 3,
        "closed_switches": "0-2",
        "line_sums": [1.64, 32.118, 7.66, 40.0],
        "load_sums": [0.22, 0.072310503],
        "parties": {"campus": (44, 37, 0, 1, 0), "faculty": (45, 38, 1, 3, 1), "department": (46, 39, 2, 5, 2)},
        "tie_switches": [],
        "feeder_loads": "",
    },
}


def _shipped(name: str, overrides: list[str] | None = None) -> tuple[Config, Path]:
    return load_config(SCENARIOS[name].default_config, overrides or [])


# --------------------------------------------------------------------------------------------------
# Net sources
# --------------------------------------------------------------------------------------------------


def test_a_networks_function_takes_its_keyword_arguments() -> None:
    assert net_source(GridCfg(net="create_cigre_network_mv")).kind == "networks"
    plain = load_net(GridCfg(net="create_cigre_network_mv", net_args={"with_der": False}))
    with_der = load_net(GridCfg(net="create_cigre_network_mv", net_args={"with_der": "pv_wind"}))
    assert len(plain.sgen) == 0 and len(with_der.sgen) > 0
    assert len(plain.bus) == len(with_der.bus) == 15


def test_a_json_file_relative_to_the_config_builds_the_same_net(tmp_path: Path) -> None:
    """The shipped ieee33_3mg config on case33bw written to a JSON file beside a user's config (any
    scenario name) builds the shipped net."""
    pp.to_json(pn.case33bw(), str(tmp_path / "feeder.json"))
    text = SCENARIOS["ieee33_3mg"].default_config.read_text()
    text = text.replace('net = "case33bw"', 'net = "feeder.json"').replace('name = "ieee33_3mg"', 'name = "my_feeder"')
    (tmp_path / "mine.toml").write_text(text)
    assert get_scenario(str(tmp_path / "mine.toml")).name == "my_feeder"
    cfg, data_dir = load_config(tmp_path / "mine.toml")
    assert net_source(cfg.grid, data_dir).kind == "json"
    mine = build_net(cfg, data_dir)
    shipped = build_net(_shipped("ieee33_3mg")[0])
    assert _shape(mine) == _shape(shipped)
    assert pp_toolbox.nets_equal(mine.net, shipped.net)
    absolute = cfg.model_copy(update={"grid": cfg.grid.model_copy(update={"net": str(tmp_path / "feeder.json")})})
    assert _shape(build_net(absolute)) == _shape(shipped)


def test_a_net_without_an_external_grid_needs_a_slack_bus_or_an_islanded_config(tmp_path: Path) -> None:
    """The capabilities come from the config (``list`` builds no net), so a grid-tied config on a net
    without an external grid is refused naming the field; with ``grid.slack_bus`` it builds."""
    net = pn.case33bw()
    net.ext_grid.drop(net.ext_grid.index, inplace=True)
    pp.to_json(net, str(tmp_path / "no_slack.json"))
    text = SCENARIOS["ieee33_3mg"].default_config.read_text().replace('net = "case33bw"', 'net = "no_slack.json"')
    (tmp_path / "c.toml").write_text(text)
    cfg, data_dir = load_config(tmp_path / "c.toml")
    with pytest.raises(ConfigError, match=r"grid\.external_grid: .*no_slack\.json has no external grid in service"):
        build_net(cfg, data_dir)
    cfg, data_dir = load_config(tmp_path / "c.toml", ["grid.slack_bus=0"])
    assert build_net(cfg, data_dir).net.ext_grid.bus.tolist() == [0]


def test_a_simbench_code_needs_simbench(monkeypatch: pytest.MonkeyPatch) -> None:
    grid = GridCfg(net="1-MV-rural--0-sw")
    assert net_source(grid).kind == "simbench"
    monkeypatch.setitem(sys.modules, "simbench", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"grid\.net: '1-MV-rural--0-sw' is a SimBench code") as err:
        load_net(grid)
    assert SIMBENCH_INSTALL in str(err.value) and "uv sync --frozen" in str(err.value)


@pytest.mark.xdist_group("mv_clusters")  # the worker that parses SimBench's data (seconds) once for all
def test_a_simbench_grid_loads() -> None:
    net = load_net(GridCfg(net="1-MV-rural--0-sw"))
    assert len(net.bus) > 0 and len(net.line) > 0
    with pytest.raises(ConfigError, match=r"grid\.net: SimBench has no grid"):
        load_net(GridCfg(net="1-MV-nowhere--0-sw"))


# --------------------------------------------------------------------------------------------------
# Bad input: the field is named
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"net": "no_such_net"}, "grid.net: 'no_such_net' is no pandapower.networks function"),
        ({"net": "case33"}, "did you mean case33bw"),
        ({"net": "create_bus"}, "grid.net: pandapower.networks.create_bus cannot be called with no arguments"),
        (
            {"net": "case33bw", "net_args": {"colour": 1}},
            "grid.net_args: pandapower.networks.case33bw",
        ),
        ({"net": "missing.json"}, "grid.net: file not found"),
        ({"net": "missing.json", "net_args": {"a": 1}}, "grid.net_args: only a pandapower.networks function"),
    ],
)
def test_a_bad_net_names_grid_net(grid: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_net(GridCfg.model_validate(grid), tmp_path)


def test_a_file_that_is_no_net_names_grid_net(tmp_path: Path) -> None:
    (tmp_path / "junk.json").write_text('{"not": "a net"}')
    with pytest.raises(ConfigError, match=r"grid\.net: "):
        load_net(GridCfg(net="junk.json"), tmp_path)


@pytest.mark.parametrize(
    ("scenario", "override", "field"),
    [
        ("ieee33_3mg", "mgs.MG2.bus=99", "mgs[1] (MG2).bus: bus 99 is not in case33bw (buses 0..32)"),
        ("ieee33_3mg", "dn.bus=40", "dn.bus: bus 40"),
        ("ieee33_3mg", "grid.trunk_lines=[0, 50]", "grid.trunk_lines: lines [50]"),
        ("ieee33_3mg", "grid.tie_lines=[37]", "grid.tie_lines: lines [37]"),
        ("ieee33_3mg", "grid.slack_bus=40", "grid.slack_bus: bus 40"),
        ("ieee33_3mg", "grid.remove_loads_at_buses=[3, 77]", "grid.remove_loads_at_buses[1]: bus 77"),
        ("ieee33_3mg", "dn.load={p_peak_mw=1.0}", "dn.load: the network operator's loads are the net's own"),
        ("community_3mg", "grid.remove_loads_at_buses=[3]", "grid.remove_loads_at_buses: without a network"),
        ("cigre_mv_dn", "mgs.MG3.bus=13", "mgs[2] (MG3).bus: bus 13 is not in create_cigre_network_mv (buses 1..11)"),
        ("cigre_mv_dn", "grid.tie_lines=[14]", "grid.tie_lines: lines [14]"),
    ],
)
def test_a_bus_or_line_the_net_lacks_is_named(scenario: str, override: str, field: str) -> None:
    path = CIGRE_MV_DN if scenario == "cigre_mv_dn" else SCENARIOS[scenario].default_config
    cfg, data_dir = load_config(path, [override])
    with pytest.raises(ConfigError, match=re.escape(field)):
        build_net(cfg, data_dir)


def test_the_cli_exits_2_naming_grid_net(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.h5"
    for override, field in (("grid.net='nope'", "grid.net"), ("mgs.MG1.bus=13", "mgs[0] (MG1).bus")):
        code = main(["run", str(CIGRE_MV_DN), "--quiet", "--out", str(out), "--set", override])
        err = capsys.readouterr().err
        assert code == 2 and field in err, err
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# The builder
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SHIPPED_SHAPES))
def test_the_shipped_configs_build_the_nets_of_their_old_modules(name: str) -> None:
    assert _shape(build_net(_shipped(name)[0])) == SHIPPED_SHAPES[name]


def test_pcc_lines_copy_the_line_the_config_says() -> None:
    cfg, _ = _shipped("ieee33_3mg")
    layout = build_net(cfg)
    line = layout.net.line
    for mg in cfg.mgs:  # like = "first", rated max_i_ka = 0.25
        pcc = line.loc[layout.parties[mg.name].pcc_line]
        assert (pcc.r_ohm_per_km, pcc.x_ohm_per_km, pcc.max_i_ka) == (
            line.at[0, "r_ohm_per_km"],
            line.at[0, "x_ohm_per_km"],
            0.25,
        )
    cfg, _ = _shipped("community_3mg")
    layout = build_net(cfg)
    line = layout.net.line
    for mg in cfg.mgs:  # like = "adjacent": the first line at the MG's bus
        pcc = line.loc[layout.parties[mg.name].pcc_line]
        first = line[(line.from_bus == mg.bus) | (line.to_bus == mg.bus)].iloc[0]
        assert [pcc[c] for c in ("r_ohm_per_km", "x_ohm_per_km", "max_i_ka")] == [
            first[c] for c in ("r_ohm_per_km", "x_ohm_per_km", "max_i_ka")
        ]
    cfg, _ = _shipped("community_3mg", ["grid.pcc_line={like='adjacent', r_ohm_per_km=0.2, max_i_ka=0.3}"])
    pcc = build_net(cfg).net.line.iloc[-1]
    assert (pcc.r_ohm_per_km, pcc.max_i_ka) == (0.2, 0.3) and pcc.x_ohm_per_km == 0.366  # x from the feeder line


def test_cigre_mv_dn_is_cut_at_its_slack_bus() -> None:
    cfg, data_dir = load_config(CIGRE_MV_DN)
    layout = build_net(cfg, data_dir)
    net = layout.net
    assert (
        len(net.trafo) == 0 and list(net.ext_grid.bus) == [1] and net.ext_grid.vm_pu.iloc[0] == cfg.grid.ext_grid_vm_pu
    )
    assert {f"Bus {b}" for b in (0, 12, 13, 14)}.isdisjoint(net.bus.name), "the 110 kV bus and feeder 2 go"
    assert set(net.bus.vn_kv) == {20.0}
    assert 1 not in set(net.load.loc[layout.feeder_loads, "bus"]), "the other feeders' loads at bus 1 go"
    assert layout.parties[DN].load == layout.feeder_loads and len(layout.feeder_loads) == 11
    ties = net.switch.loc[layout.tie_switches]
    assert list(ties.element) == [12, 13] and not ties.closed.any()
    assert len(net.switch[net.switch.element.isin([12, 13])]) == 2, "one switch per tie line"
    assert len(net.sgen) == 8 and len(net.storage) == 4, "the MGs' and the DN's units only"


def test_network_operators_model_covers_cigre_mv_dn() -> None:
    from ems_controllers.core.network import network_from_pandapower

    layout = build_net(*load_config(CIGRE_MV_DN))
    data = network_from_pandapower(layout.net)
    assert data.root_bus == 1 and data.n_loops == 0 and len(data.buses) == 11 + 3
    closed = network_from_pandapower(layout.net, dict.fromkeys(layout.tie_switches, True))
    assert closed.n_loops == 2


# --------------------------------------------------------------------------------------------------
# A network-aware strategy on a user's grid, end to end
# --------------------------------------------------------------------------------------------------


def test_security_constrained_runs_on_cigre_mv_dn(tmp_path: Path) -> None:
    out = tmp_path / "sc.h5"
    cmd = [sys.executable, "-m", "scenarios.cli", "run", str(CIGRE_MV_DN), "--strategy", "security_constrained"]
    cmd += ["--days", "1", "--json", "--quiet", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    kpis = json.loads(done.stdout)
    attrs = read_attrs(out)
    assert attrs["scenario"] == "cigre_mv_dn" and attrs["strategy"] == "security_constrained"
    assert int(attrs["n_steps_completed"]) == 24
    series = read_series(out)
    pf = series[(attrs["entity_map"]["grid"], "pf_converged")]
    assert pf.shape == (24,) and np.all(pf == 1)
    assert math.isfinite(kpis["total_cost"]) and all(math.isfinite(c) for c in kpis["cost_by_mg"].values())
    assert set(kpis["cost_by_mg"]) == {DN, "MG1", "MG2", "MG3"}
    assert kpis["pf_failures"] == 0 and kpis["ems_fallback_steps"] == 0
    # The grants respect the feeder's limits (case 2): no overload, no voltage outside the band.
    assert kpis["n_line_overloads"] == 0 and kpis["n_voltage_violations"] == 0
