"""A fleet of MGs placed by the rules of ``[fleet]`` (scenarios/fleet.py): which buses, how spread, the
seed, the sizes, bad input; and a run of a placed fleet read back from its file."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from ems_controllers.core.entities import EntityMap
from scenarios.build import build_net
from scenarios.config import DATA_DIR, ConfigError, FleetCfg, load_config
from scenarios.fleet import candidates
from scenarios.runner import RunResult, run_scenario
from sims.record_reader import open_run

BASE = DATA_DIR / "ieee33_3mg.toml"
KIND = {
    "pcc_max_mw": 0.5,
    "load": {"p_peak_mw": 0.2, "profile": "H0-A"},
    "pv": {"p_peak_mw": 0.3},
    "battery": {"e_max_mwh": 0.4, "e_init_mwh": 0.2, "p_ch_max_mw": 0.1, "p_dis_max_mw": 0.1},
}


def _net_with_subnets(tmp_path: Path) -> Path:
    """case33bw with SimBench-like subnet names: its main feeder and three laterals."""
    net = pn.case33bw()
    laterals = {"A": range(18, 22), "B": range(22, 25), "C": range(25, 33)}
    net.bus["subnet"] = "MAIN"
    for name, buses in laterals.items():
        net.bus.loc[list(buses), "subnet"] = f"LAT_{name}"
    path = tmp_path / "net.json"
    pp.to_json(net, str(path))
    return path


def _config(tmp_path: Path, fleet: dict[str, Any], net: str | None = None, name: str = "cfg.toml") -> Path:
    """ieee33_3mg without its MGs and DN, plus ``[fleet]`` (TOML written from a dict)."""
    raw = tomllib.loads(BASE.read_text())
    raw.pop("mgs")
    raw.pop("dn")
    if net is not None:
        raw["grid"]["net"] = net
    raw["fleet"] = {"kinds": [{"name": "home", "mg": KIND}], **fleet}
    path = tmp_path / name
    path.write_text(_toml(raw))
    return path


def _toml(d: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer (tables, arrays of tables, inline values) for the test's configs."""
    scalars, tables = [], []
    for k, v in d.items():
        if isinstance(v, dict):
            tables.append(f"\n[{prefix}{k}]\n" + _toml(v, f"{prefix}{k}."))
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            tables += [f"\n[[{prefix}{k}]]\n" + _toml(e, f"{prefix}{k}.") for e in v]
        else:
            scalars.append(f"{k} = {_value(v)}")
    return "\n".join(scalars) + "".join(tables) + "\n"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + "}"
    return repr(v)


def test_the_same_config_places_the_same_fleet_and_a_larger_one_extends_it(tmp_path: Path) -> None:
    path = _config(tmp_path, {"n": 8, "buses": "any"})
    a, _ = load_config(path)
    b, _ = load_config(path)
    c, _ = load_config(path, ["fleet.n=12"])
    d, _ = load_config(path, ["fleet.seed=99"])
    placed = [(m.name, m.bus) for m in a.mgs]
    assert placed == [(m.name, m.bus) for m in b.mgs]
    assert placed == [(m.name, m.bus) for m in c.mgs[:8]]  # the same MGs, then four more
    assert placed != [(m.name, m.bus) for m in d.mgs]  # another seed, another placement
    assert [m.name for m in a.mgs] == [f"MG{i:03d}" for i in range(1, 9)]
    assert len({m.bus for m in c.mgs}) == 12  # one MG per bus


def test_mgs_spread_over_the_subnets_before_any_gets_a_second(tmp_path: Path) -> None:
    net = _net_with_subnets(tmp_path)
    cfg, _ = load_config(_config(tmp_path, {"n": 4, "buses": "any"}, net=str(net)))
    subnet = pp.from_json(str(net)).bus.subnet
    assert sorted(subnet[m.bus] for m in cfg.mgs) == ["LAT_A", "LAT_B", "LAT_C", "MAIN"]
    cfg, _ = load_config(_config(tmp_path, {"n": 6, "buses": "any", "subnets": ["LAT_*"]}, net=str(net)))
    counts = {s: sum(subnet[m.bus] == s for m in cfg.mgs) for s in ("LAT_A", "LAT_B", "LAT_C")}
    assert counts == {"LAT_A": 2, "LAT_B": 2, "LAT_C": 2}


def test_the_bus_rules_hold_for_every_candidate(tmp_path: Path) -> None:
    net = pn.case33bw()
    net.bus.loc[[5, 6], "vn_kv"] = 0.4  # two buses at a lower voltage
    taken = {17, 21}
    leaf = candidates(FleetCfg(n=1, buses="leaf", kinds=[_kind()]), net, taken)
    ends = np.bincount(np.r_[net.line.from_bus[net.line.in_service], net.line.to_bus[net.line.in_service]])
    assert leaf == {"": [24, 32]}  # the ends of case33bw's laterals; 17 and 21 are taken
    assert all(ends[b] == 1 for b in leaf[""])
    load = candidates(FleetCfg(n=1, buses="load", kinds=[_kind()]), net, taken)
    assert set(load[""]) == set(net.load.bus) - taken - {0}
    low = candidates(FleetCfg(n=1, buses="any", vn_kv_max=1.0, kinds=[_kind()]), net, taken)
    assert low == {"": [5, 6]}


def test_sizes_scale_within_the_kinds_range_and_the_kind_is_kept(tmp_path: Path) -> None:
    kinds = [
        {"name": "small", "weight": 1.0, "scale": [0.5, 1.0], "mg": KIND},
        {"name": "fixed", "weight": 1.0, "mg": {**KIND, "pcc_max_mw": 0.25}},
    ]
    cfg, _ = load_config(_config(tmp_path, {"n": 20, "buses": "any", "kinds": kinds}))
    assert {m.kind for m in cfg.mgs} == {"small", "fixed"}
    for m in cfg.mgs:
        assert m.load is not None and m.pv is not None and m.battery is not None
        f = m.load.p_peak_mw / 0.2 if m.load.p_peak_mw is not None else 0.0
        assert (0.5 - 1e-12 <= f <= 1.0 + 1e-12) if m.kind == "small" else f == pytest.approx(1.0)
        # every size by the same factor, efficiencies and prices as given
        assert m.pv.p_peak_mw == pytest.approx(0.3 * f) and m.battery.e_max_mwh == pytest.approx(0.4 * f)
        assert m.battery.p_ch_max_mw == pytest.approx(0.1 * f) and m.battery.eta_ch == 1.0
        assert m.pcc_max_mw == pytest.approx((0.5 if m.kind == "small" else 0.25) * f)


def test_a_fleet_goes_beside_the_configs_own_mgs_not_on_their_buses(tmp_path: Path) -> None:
    raw_path = _config(tmp_path, {"n": 29, "buses": "any"})
    text = raw_path.read_text() + '\n[[mgs]]\nname = "OWN"\nbus = 17\nload = { p_peak_mw = 0.1 }\n'
    raw_path.write_text(text)
    cfg, _ = load_config(raw_path)
    assert cfg.mgs[0].name == "OWN" and len(cfg.mgs) == 30
    assert 17 not in [m.bus for m in cfg.mgs[1:]] and 0 not in [m.bus for m in cfg.mgs]  # 0: the slack
    load_config(raw_path, ["fleet.n=31"])  # 33 buses less the slack and OWN's
    with pytest.raises(ConfigError, match=r"fleet.n: 32 MGs asked, the rules give 31 buses"):
        load_config(raw_path, ["fleet.n=32"])


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("fleet.n=40", r"fleet.n: 40 MGs asked, the rules give 32 buses in 1 subnets"),
        ("fleet.n=0", r"fleet.n: Input should be greater than or equal to 1"),
        ("fleet.buses='feeder'", r"fleet.buses: Input should be 'load', 'leaf' or 'any'"),
        ("fleet.kinds.home.scale=[2.0, 1.0]", r"fleet.kinds\[0\] \(home\).scale: \[low, high\]"),
        ("fleet.kinds.home.mg.bus=3", r"fleet.kinds\[0\] \(home\).mg: bus come from the fleet's placement"),
        ("fleet.kinds.0.mg.pv.p_peak_mw=-1", r"fleet.kinds\[0\] \(home\).mg.pv.p_peak_mw: Input should be greater"),
        ("fleet.subnets=['LV*']", r"fleet.n: 3 MGs asked, the rules give 0 buses in 0 subnets"),
    ],
)
def test_bad_fleet_input_names_the_field(tmp_path: Path, override: str, field: str) -> None:
    path = _config(tmp_path, {"n": 3, "buses": "any"})
    with pytest.raises(ConfigError, match=field):
        load_config(path, [override])


def _kind() -> Any:
    from scenarios.config import FleetKindCfg

    return FleetKindCfg(name="k", mg=KIND)


def test_a_placed_fleet_is_built_and_its_record_says_where_each_mg_sits(tmp_path: Path) -> None:
    """The builder puts each placed MG behind its PCC on its bus; the config a run records (``to_json``)
    lists each with its bus and kind."""
    path = _config(tmp_path, {"n": 5, "buses": "load"})
    cfg, _ = load_config(path)
    layout = build_net(cfg)
    assert [layout.parties[m.name].bus for m in cfg.mgs] == [int(b) for b in layout.net.bus.index[-5:]]
    pcc_from = layout.net.line.from_bus[[layout.parties[m.name].pcc_line for m in cfg.mgs]]
    assert list(pcc_from) == [m.bus for m in cfg.mgs]
    saved = json.loads(cfg.to_json())
    assert [(m["name"], m["bus"], m["kind"]) for m in saved["mgs"]] == [(m.name, m.bus, "home") for m in cfg.mgs]


def test_recording_the_parties_only_gives_the_same_kpis(default_run: RunResult, tmp_path: Path) -> None:
    """ieee33_3mg with its network operator's 32 feeder loads: the KPIs of a run recorded with
    ``run.record = "parties"`` equal those of the default run that recorded every element."""
    cfg, data_dir = load_config(BASE, ["run.record='parties'"])
    res = run_scenario(cfg, data_dir, "rule_based", tmp_path / "parties.h5", progress=False)
    timings = {"wall_time_s", "solve_time_s", "solve_time_max_s"}

    def same(kpis: dict[str, Any]) -> str:  # as text: NaN (a KPI without data) equals NaN
        return json.dumps({k: v for k, v in kpis.items() if k not in timings}, sort_keys=True)

    assert same(res.kpis) == same(default_run.kpis)
    run = open_run(res.path)
    recorded = {fid for fid, _ in run.series}
    emap = EntityMap.from_dict(run.attrs["entity_map"])
    assert len(emap.parties["DN"].load) == 32 and not set(emap.parties["DN"].load) & recorded
    for name in ("MG1", "MG2", "MG3"):  # every MG's units and PCC line are in the file
        pm = emap.parties[name]
        assert set(pm.load + pm.pv + pm.wind) <= recorded and {pm.storage, pm.pcc_line} <= recorded
    assert len(open_run(res.path).series) < len(open_run(default_run.path).series) / 2
