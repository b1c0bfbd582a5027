"""One builder for every scenario: the pandapower net and where each party's units sit, from the config.

``build_net(cfg, config_dir)`` takes the net ``grid.net`` names (:mod:`scenarios.grids`) and, in this order:

1. fuses its closed bus-bus switches (``grid.fuse_closed_bus_switches``) and cuts it at ``grid.slack_bus``
   (external grids and transformers go, one external grid on that bus, unreached buses go);
2. checks every bus and line the config names against the net (ConfigError naming the field);
3. the network operator: with a ``[dn]`` table the net's own loads are the operator's feeder loads (less
   those at ``grid.remove_loads_at_buses``) and its units sit on ``dn.bus``; without one the net's loads
   go and the utility is the external grid. The net's own static generators and storages always go: what
   generates or stores is what the config lists;
4. sets the voltage band, the slack voltage, the line ratings (``grid.line_max_i_ka`` on every line, then
   ``grid.trunk_max_i_ka`` on ``grid.trunk_lines``) and puts the tie lines in service, each behind one
   switch (``grid.tie_switches_closed``; the net's own switches on them go);
5. adds each cluster of MGs (``[[clusters]]``): a bus of its own joined to its network ``bus`` by a feeder
   line behind a switch ``"<C> feeder"`` (closed), and each tie between two clusters (``[[cluster_ties]]``):
   a line between their buses behind a switch ``"<C1>-<C2> tie"`` (open, a normally-open point);
6. places each MG on a bus of its own behind a PCC line and switch: an outer MG on its ``bus``, an MG in a
   cluster on its cluster's bus, a nested one on its parent's bus (``grid.pcc_line`` for the line's data);
7. adds each static var compensator (``[[svcs]]``) as a static generator of type ``"SVC"``: no active
   power, ``q_mvar`` 0, its reactive range as ``min_q_mvar`` / ``max_q_mvar``.

Nothing runs on import; :func:`scenarios.wiring.wire` turns the layout into a mosaik world.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pandapower as pp
import pandapower.toolbox as pp_toolbox
import pandapower.topology as pp_topology

from scenarios.config import Config, ConfigError, GridCfg, MgCfg
from scenarios.grids import load_net
from scenarios.layout import (
    DN,
    ClusterTie,
    ClusterUnits,
    NetLayout,
    PartyUnits,
    PendingElements,
    _add_units,
    add_mg_behind_pcc,
    add_switched_line,
    finish_flags,
)


def build_net(cfg: Config, config_dir: Path | None = None) -> NetLayout:
    """The scenario's net and layout (ConfigError naming the field for anything the net lacks);
    ``config_dir``: the config's folder, where a relative ``grid.net`` JSON file is looked for."""
    g = cfg.grid
    net = prepared_net(g, config_dir)
    validate_against_net(cfg, net)
    _own_elements(cfg, net)
    if "grid_forming" not in net.sgen.columns:
        net.sgen["grid_forming"] = False
    net.bus["min_vm_pu"] = g.vm_min_pu
    net.bus["max_vm_pu"] = g.vm_max_pu
    net.ext_grid["vm_pu"] = g.ext_grid_vm_pu
    if g.line_max_i_ka is not None:
        net.line["max_i_ka"] = g.line_max_i_ka
    net.line.loc[g.trunk_lines, "max_i_ka"] = g.trunk_max_i_ka
    tie_switches = add_tie_switches(net, g)
    feeder_loads = list(net.load.index) if cfg.dn is not None else []
    clusters, cluster_ties = place_clusters(cfg, net)
    parties = place_mgs(cfg, net, clusters)
    if cfg.dn is not None:
        dn = PartyUnits(bus=cfg.dn.bus, load=list(feeder_loads))
        pending = PendingElements(net)
        _add_units(pending, cfg.dn, cfg.dn.bus, DN, dn)
        pending.flush()
        parties[DN] = dn
    svcs = place_svcs(cfg, net)
    finish_flags(net)
    if not g.external_grid:
        islanded(cfg, net)
    elif not net.ext_grid["in_service"].astype(bool).any():
        raise ConfigError(
            f"grid.external_grid: {g.net} has no external grid in service; give grid.slack_bus (where the "
            "upstream grid connects) or set external_grid = false (an islanded system)"
        )
    return NetLayout(net, parties, feeder_loads, tie_switches, clusters, cluster_ties, svcs)


def prepared_net(g: GridCfg, config_dir: Path | None = None) -> Any:
    """Step 1: the net ``grid.net`` names, its closed bus-bus switches fused, cut at ``grid.slack_bus``
    (whose bus numbers every other field, and the fleet's placement, refer to)."""
    net = load_net(g, config_dir)
    if g.fuse_closed_bus_switches:
        fuse_closed_bus_switches(net)
    if g.slack_bus is not None:
        if g.slack_bus not in net.bus.index:
            known = _index_text(net.bus.index)
            raise ConfigError(f"grid.slack_bus: bus {g.slack_bus} is not in {g.net} (buses {known})")
        cut_at_slack_bus(net, g.slack_bus)
    return net


def islanded(cfg: Config, net: Any) -> None:
    """The net without its external grids: its grid-forming units (every battery that is one, else every
    diesel, ``scenarios.layout``) hold voltage and balance; ConfigError if it has none."""
    forming = [
        name
        for name, units in [(m.name, m) for m in cfg.mgs] + ([("DN", cfg.dn)] if cfg.dn is not None else [])
        if units.generator is not None or (units.battery is not None and units.battery.grid_forming)
    ]
    if not forming:
        raise ConfigError(
            "grid.external_grid: an islanded system needs a grid-forming unit (a battery with grid_forming = "
            "true, or a diesel) in some party; none has one"
        )
    net.ext_grid.drop(net.ext_grid.index, inplace=True)


def fuse_closed_bus_switches(net: Any) -> None:
    """Each closed bus-bus switch's two buses become one (its ``bus``), and the switch goes (pandapower's
    fast power flow and the network operator's line model take no bus-bus switches)."""
    closed = net.switch[(net.switch.et == "b") & net.switch.closed.astype(bool)]
    for _, sw in closed.iterrows():
        pp_toolbox.fuse_buses(net, int(sw.bus), {int(sw.element)})
    net.switch.drop(net.switch.index.intersection(closed.index), inplace=True)  # if fusing left them


def cut_at_slack_bus(net: Any, slack_bus: int) -> None:
    """The part of the net that ``slack_bus`` feeds: every external grid and transformer goes, the
    buses it does not reach through in-service lines with closed switches go with their elements, and
    one external grid sits on ``slack_bus`` (its voltage is set later)."""
    net.ext_grid.drop(net.ext_grid.index, inplace=True)
    for table in ("trafo", "trafo3w"):
        if len(net[table]):
            pp_toolbox.drop_trafos(net, net[table].index, table=table)
    graph = pp_topology.create_nxgraph(net, respect_switches=True)
    fed = set(pp_topology.connected_component(graph, slack_bus))
    gone = [int(b) for b in net.bus.index if int(b) not in fed]
    if gone:
        pp_toolbox.drop_buses(net, gone)
    pp.create_ext_grid(net, slack_bus, vm_pu=1.0)


def _index_text(index: Any) -> str:
    values = sorted(int(i) for i in index)
    if not values:
        return "none"
    if values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}..{values[-1]}"
    return str(values) if len(values) <= 40 else f"{values[:40]} and {len(values) - 40} more"


def _check_buses(cfg: Config, net: Any, places: list[tuple[str, int | None]]) -> None:
    for where, bus in places:
        if bus is not None and bus not in net.bus.index:
            raise ConfigError(f"{where}: bus {bus} is not in {cfg.grid.net} (buses {_index_text(net.bus.index)})")


def validate_against_net(cfg: Config, net: Any) -> None:
    """Every bus and line the config names is in the net (ConfigError naming the field)."""
    g = cfg.grid
    places: list[tuple[str, int | None]] = [(f"mgs[{i}] ({m.name}).bus", m.bus) for i, m in enumerate(cfg.mgs)]
    places += [(f"clusters[{i}] ({c.name}).bus", c.bus) for i, c in enumerate(cfg.clusters)]
    places += [(f"svcs[{i}] ({v.name}).bus", v.bus) for i, v in enumerate(cfg.svcs)]
    if cfg.dn is not None:
        places.append(("dn.bus", cfg.dn.bus))
    places += [(f"grid.remove_loads_at_buses[{i}]", b) for i, b in enumerate(g.remove_loads_at_buses)]
    _check_buses(cfg, net, places)
    for where, lines in (("grid.trunk_lines", g.trunk_lines), ("grid.tie_lines", g.tie_lines)):
        bad = [li for li in lines if li not in net.line.index]
        if bad:
            raise ConfigError(f"{where}: lines {bad} are not in {g.net} (lines {_index_text(net.line.index)})")
    if g.remove_loads_at_buses and cfg.dn is None:
        raise ConfigError("grid.remove_loads_at_buses: without a network operator ([dn]) the net's loads all go")
    if cfg.dn is not None and cfg.dn.load is not None:
        raise ConfigError(
            "dn.load: the network operator's loads are the net's own (grid.feeder_load_profile, "
            "grid.feeder_load_scale); it has no load of its own"
        )


def _own_elements(cfg: Config, net: Any) -> None:
    """The net's own loads stay only as the network operator's; its static generators and storages go."""
    if cfg.dn is None:
        net.load.drop(net.load.index, inplace=True)
    elif cfg.grid.remove_loads_at_buses:
        net.load.drop(net.load.index[net.load.bus.isin(cfg.grid.remove_loads_at_buses)], inplace=True)
    for table in (net.sgen, net.storage):
        if len(table):
            table.drop(table.index, inplace=True)


def add_tie_switches(net: Any, g: GridCfg) -> list[int]:
    """Each tie line in service behind one switch at its from bus (the net's own switches on it go)."""
    own = net.switch[(net.switch.et == "l") & net.switch.element.isin(g.tie_lines)]
    if len(own):
        net.switch.drop(own.index, inplace=True)
    switches = []
    for li in g.tie_lines:
        net.line.loc[li, "in_service"] = True
        at = int(net.line.at[li, "from_bus"])
        switches.append(
            pp.create_switch(net, bus=at, element=li, et="l", closed=g.tie_switches_closed, name=f"tie {li}")
        )
    return switches


def _depth(cfg: Config, mg: MgCfg) -> int:
    parents = {m.name: m.parent for m in cfg.mgs}
    depth, cur = 0, mg.parent
    while cur is not None:
        depth, cur = depth + 1, parents[cur]
    return depth


def _pcc_line_data(net: Any, at: int, g: GridCfg) -> tuple[float, float, float]:
    """r, x (ohm/km) and rating (kA) of a PCC line from bus ``at``: ``grid.pcc_line``'s, else copied."""
    pcc = g.pcc_line
    given = (pcc.r_ohm_per_km, pcc.x_ohm_per_km, pcc.max_i_ka)
    if all(v is not None for v in given):
        return float(pcc.r_ohm_per_km or 0.0), float(pcc.x_ohm_per_km or 0.0), float(pcc.max_i_ka or 0.0)
    if not len(net.line):
        raise ConfigError("grid.pcc_line: the net has no line to copy; give r_ohm_per_km, x_ohm_per_km, max_i_ka")
    adjacent = net.line[(net.line.from_bus == at) | (net.line.to_bus == at)]
    ref = adjacent.iloc[0] if pcc.like == "adjacent" and len(adjacent) else net.line.iloc[0]
    return _line_data(given, (float(ref.r_ohm_per_km), float(ref.x_ohm_per_km), float(ref.max_i_ka)))


def _line_data(
    given: tuple[float | None, float | None, float | None], ref: tuple[float, float, float]
) -> tuple[float, float, float]:
    """r, x (ohm/km) and rating (kA): each given value, else ``ref``'s."""
    r, x, i = (float(v) if v is not None else c for v, c in zip(given, ref, strict=True))
    return r, x, i


def _first_line_at(cfg: Config, net: Any, bus: int, where: str) -> tuple[float, float, float]:
    """r, x (ohm/km) and rating (kA) of the first line at ``bus`` (ConfigError naming ``where`` if none)."""
    adjacent = net.line[(net.line.from_bus == bus) | (net.line.to_bus == bus)]
    if not len(adjacent):
        raise ConfigError(
            f"{where}: no line at bus {bus} in {cfg.grid.net} to copy; give r_ohm_per_km, x_ohm_per_km, max_i_ka"
        )
    ref = adjacent.iloc[0]
    return float(ref.r_ohm_per_km), float(ref.x_ohm_per_km), float(ref.max_i_ka)


def place_clusters(cfg: Config, net: Any) -> tuple[dict[str, ClusterUnits], list[ClusterTie]]:
    """Each cluster on a bus of its own behind its feeder line and switch (closed), and the ties between
    clusters' buses (open); line data given in the config, else copied (see :class:`ClusterCfg`)."""
    g = cfg.grid
    clusters: dict[str, ClusterUnits] = {}
    line_data: dict[str, tuple[float, float, float]] = {}
    for i, c in enumerate(cfg.clusters):
        given = (c.r_ohm_per_km, c.x_ohm_per_km, c.max_i_ka)
        # copied only where something is not given (a bus without lines is fine then)
        ref = (0.0, 0.0, 0.0) if None not in given else _first_line_at(cfg, net, c.bus, f"clusters[{i}] ({c.name})")
        line_data[c.name] = _line_data(given, ref)
        bus = pp.create_bus(
            net, vn_kv=float(net.bus.at[c.bus, "vn_kv"]), name=c.name, min_vm_pu=g.vm_min_pu, max_vm_pu=g.vm_max_pu
        )
        line, switch = add_switched_line(
            net, c.bus, int(bus), c.line_length_km, line_data[c.name], f"{c.name} feeder", closed=True
        )
        mgs = [m.name for m in cfg.mgs if m.cluster == c.name]
        clusters[c.name] = ClusterUnits(bus=int(bus), network_bus=c.bus, line=line, switch=switch, mgs=mgs)
    ties = []
    for t in cfg.cluster_ties:
        a, b = t.between
        data = _line_data((t.r_ohm_per_km, t.x_ohm_per_km, t.max_i_ka), line_data[a])
        line, switch = add_switched_line(net, clusters[a].bus, clusters[b].bus, t.length_km, data, t.name, closed=False)
        ties.append(ClusterTie(name=t.name, between=(a, b), line=line, switch=switch))
    return clusters, ties


def place_svcs(cfg: Config, net: Any) -> dict[str, int]:
    """Each SVC as a static generator of no active power and its reactive range: name -> sgen index."""
    return {
        v.name: int(
            pp.create_sgen(
                net,
                v.bus,
                p_mw=0.0,
                q_mvar=0.0,
                max_p_mw=0.0,
                min_q_mvar=v.q_min_mvar,
                max_q_mvar=v.q_max_mvar,
                name=v.name,
                type="SVC",
            )
        )
        for v in cfg.svcs
    }


def place_mgs(cfg: Config, net: Any, clusters: dict[str, ClusterUnits] | None = None) -> dict[str, PartyUnits]:
    """Each MG behind its PCC: outer MGs on their bus, MGs in a cluster on its bus (``clusters``), nested
    ones on their parent's bus. One depth of nesting at a time, each created in one go (:class:`PendingElements`):
    a parent's bus and PCC line are in the net before its nested MGs are placed (their PCC line's data is
    copied from what is at that bus)."""
    g = cfg.grid
    parties: dict[str, PartyUnits] = {}
    for _, level in itertools.groupby(sorted(cfg.mgs, key=lambda m: _depth(cfg, m)), key=lambda m: _depth(cfg, m)):
        pending = PendingElements(net)
        for mg in level:
            if mg.cluster is not None:
                at = (clusters or {})[mg.cluster].bus
            elif mg.parent is None and mg.bus is not None:
                at = int(mg.bus)
            else:
                at = parties[str(mg.parent)].bus
            r, x, max_i_ka = _pcc_line_data(net, at, g)
            parties[mg.name] = add_mg_behind_pcc(
                pending,
                mg,
                float(net.bus.at[at, "vn_kv"]),
                r,
                x,
                max_i_ka,
                (g.vm_min_pu, g.vm_max_pu),
                from_bus=at,
            )
        pending.flush()
    return parties
