"""MGs and their units go into the net in one go per table (``scenarios.layout.PendingElements``): the net is
the one adding them one element at a time gives (same indices, values, columns and dtypes), and a large
fleet is placed in a handful of pandapower calls."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandapower as pp
import pandapower.toolbox as pp_toolbox
import pandas as pd
import pytest

import scenarios.build
from scenarios.build import build_net
from scenarios.config import DATA_DIR, load_config
from scenarios.layout import NetLayout, PendingElements


class OneByOne(PendingElements):
    """Each element into the net at once by pandapower's one-element function, at the index pandapower
    picks (its highest + 1): how the net was built before the bulk path."""

    def add(self, table: str, **values: Any) -> int:
        expected = self._first_index(table)
        index = getattr(pp, self.CREATE[table][0])(self.net, **values)
        assert index == expected
        return int(index)

    def flush(self) -> None:
        pass


def _build(config: Path, overrides: list[str], monkeypatch: pytest.MonkeyPatch, one_by_one: bool) -> NetLayout:
    cfg, config_dir = load_config(config, overrides)
    with monkeypatch.context() as m:
        if one_by_one:
            m.setattr(scenarios.build, "PendingElements", OneByOne)
        return build_net(cfg, config_dir)


def _tables_differ(a: Any, b: Any) -> list[str]:
    """What differs between two nets' element tables: index, set of columns, a column's dtype or values
    (missing values alike, NaN or None; column order aside, as ``nets_equal`` does)."""
    problems = []
    for key in sorted(k for k in a if not k.startswith("_") and isinstance(a[k], pd.DataFrame)):
        x, y = a[key], b[key]
        if not x.index.equals(y.index):
            problems.append(f"{key}: index")
        if set(x.columns) != set(y.columns):
            problems.append(f"{key}: columns {sorted(set(x.columns) ^ set(y.columns))}")
        for col in x.columns.intersection(y.columns):
            if x[col].dtype != y[col].dtype:
                problems.append(f"{key}.{col}: dtype {x[col].dtype} vs {y[col].dtype}")
            elif not x[col].equals(y[col]):
                problems.append(f"{key}.{col}: values")
    return problems


CASES = [
    pytest.param("nested_campus.toml", [], id="nested-owners"),
    pytest.param("nested_campus.toml", ["grid.pcc_line={like='first'}"], id="nested-pcc-first"),
    pytest.param("mv_clusters.toml", [], id="clusters-ev-svc"),
    pytest.param("ieee33_3mg.toml", [], id="dn-units"),
    pytest.param("community_3mg.toml", [], id="chp"),
    pytest.param("islanded_img.toml", [], id="islanded"),
    pytest.param("mvlv_fleet.toml", ["fleet.n=12"], id="simbench-fleet"),
]


@pytest.mark.parametrize(("config", "overrides"), CASES)
def test_bulk_net_is_the_one_by_one_net(config: str, overrides: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    bulk = _build(DATA_DIR / config, overrides, monkeypatch, one_by_one=False)
    ref = _build(DATA_DIR / config, overrides, monkeypatch, one_by_one=True)
    assert _tables_differ(ref.net, bulk.net) == []
    assert pp_toolbox.nets_equal(ref.net, bulk.net, assume_geojson_strings=False)  # (True: 30 s on SimBench)
    assert bulk.parties == ref.parties
    assert (bulk.clusters, bulk.cluster_ties, bulk.svcs) == (ref.clusters, ref.cluster_ties, ref.svcs)
    assert (bulk.feeder_loads, bulk.tie_switches) == (ref.feeder_loads, ref.tie_switches)
    for table in ("sgen", "storage"):  # finish_flags: clean bools, also on rows added in bulk
        assert "grid_forming" not in bulk.net[table] or bulk.net[table]["grid_forming"].dtype == bool


def test_fleet_of_100_is_placed_in_a_few_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """100 MGs on SimBench's 5,477 buses: two pandapower calls per table (one element, then the rest),
    not one per element (about 650 of them, 10-20 ms each on tables this size)."""
    cfg, config_dir = load_config(DATA_DIR / "mvlv_fleet.toml", ["fleet.n=100"])
    calls: list[str] = []
    for name in [n for one_and_bulk in PendingElements.CREATE.values() for n in one_and_bulk]:
        original = getattr(pp, name)

        def counted(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(pp, name, counted)
    layout = build_net(cfg, config_dir)
    mgs = {name: p for name, p in layout.parties.items() if name != "DN"}
    assert len(mgs) == 100
    assert sorted(calls) == sorted(n for one_and_bulk in PendingElements.CREATE.values() for n in one_and_bulk)
    for name, p in mgs.items():
        assert layout.net.bus.at[p.bus, "name"] == name
        assert layout.net.line.at[p.pcc_line, "to_bus"] == p.bus
        assert layout.net.switch.at[p.pcc_switch, "element"] == p.pcc_line
        assert list(layout.net.load.loc[p.load, "bus"]) == [p.bus]
        assert layout.net.storage.at[p.storage, "name"] == f"{name} battery"


def test_pending_indices_are_pandapowers() -> None:
    """Each element gets the index pandapower would give it (the table's highest + 1, gaps and order
    aside; 0 in an empty table), elements may refer to pending ones, and a value left out is NaN."""
    net = pp.create_empty_network()
    pp.create_bus(net, 20.0, index=7)
    pp.create_bus(net, 20.0, index=3)
    pp.create_ext_grid(net, 7)
    pp.create_line_from_parameters(net, 7, 3, 1.0, 0.2, 0.1, 0.0, 0.3, index=4)
    pp.create_load(net, 3, p_mw=0.1, index=9)
    pending = PendingElements(net)
    b1, b2 = (pending.add("bus", vn_kv=20.0, name=n, min_vm_pu=0.9, max_vm_pu=1.1) for n in ("a", "b"))
    data = {"length_km": 0.1, "r_ohm_per_km": 0.2, "x_ohm_per_km": 0.1, "c_nf_per_km": 0.0, "max_i_ka": 0.3}
    lines = [pending.add("line", from_bus=f, to_bus=t, name=f"{f}-{t}", **data) for f, t in ((3, b1), (b1, b2))]
    switch = pending.add("switch", bus=b1, element=lines[1], et="l", closed=False, name="a-b")
    loads = [pending.add("load", bus=b, p_mw=0.1, name=f"load {b}") for b in (b1, b2, 3)]
    batteries = [
        pending.add("storage", bus=b2, p_mw=0.0, max_e_mwh=1.0, eta_ch=0.9),
        pending.add("storage", bus=b1, p_mw=0.0, max_e_mwh=2.0),
    ]
    assert (b1, b2, lines, switch, loads, batteries) == (8, 9, [5, 6], 0, [10, 11, 12], [0, 1])
    assert b1 not in net.bus.index  # nothing is in the net before the flush
    pending.flush()
    assert list(net.bus.loc[[b1, b2], "name"]) == ["a", "b"]
    assert list(net.line.loc[lines, "to_bus"]) == [b1, b2]
    assert (net.switch.at[switch, "element"], bool(net.switch.at[switch, "closed"])) == (lines[1], False)
    assert list(net.load.loc[loads, "bus"]) == [b1, b2, 3]
    assert net.storage.at[0, "eta_ch"] == 0.9 and math.isnan(net.storage.at[1, "eta_ch"])
    assert all(not rows for rows in pending.rows.values())
    pending.flush()  # nothing left: nothing happens
    assert (len(net.bus), len(net.load)) == (4, 4)
    pp.runpp(net)  # a sound net
    assert net.converged
