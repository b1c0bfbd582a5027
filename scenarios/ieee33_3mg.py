"""ieee33_3mg: three microgrids and the network operator's units on the 33-bus Baran-Wu feeder.

``build_net(cfg)`` makes the pandapower net from the config; ``build(world, cfg, ...)`` wires the grid,
profile, EMS and recorder simulators into a mosaik world and returns what the runner needs. Nothing runs
on import.

Net (all from ``scenarios/data/ieee33_3mg.toml``): pandapower ``case33bw`` with line ratings set (it ships
none), its five tie lines in service behind switches (open by default), and per MG a bus of its own joined
to its feeder bus by a short line whose switch is the point of common coupling (PCC). MG units sit on the
MG bus; the network operator's (``DN``) units on their feeder bus.
"""

from __future__ import annotations

from typing import Any

import pandapower as pp
import pandapower.networks as pn

from scenarios.config import Config, ConfigError
from scenarios.layout import DN, NetLayout, PartyUnits, _add_units, add_mg_behind_pcc, finish_flags
from scenarios.wiring import Built, wire

NAME = "ieee33_3mg"
DESCRIPTION = "case33bw feeder, three microgrids (PV, wind, diesel, battery) and the DN's diesel and battery"


def build_net(cfg: Config) -> NetLayout:
    """The pandapower net of the scenario (raises ConfigError for buses or lines the net lacks)."""
    g = cfg.grid
    if g.net != "case33bw":
        raise ConfigError(f"grid.net: scenario {NAME} is built on case33bw, not {g.net!r}")
    net = pn.case33bw()
    validate_against_net(cfg, net)
    for i, mg in enumerate(cfg.mgs):
        if mg.parent is not None:
            raise ConfigError(f"mgs[{i}] ({mg.name}).parent: {NAME} has no nested microgrids")
    if "grid_forming" not in net.sgen.columns:
        net.sgen["grid_forming"] = False
    net.bus["min_vm_pu"] = g.vm_min_pu
    net.bus["max_vm_pu"] = g.vm_max_pu
    net.ext_grid["vm_pu"] = g.ext_grid_vm_pu
    net.line["max_i_ka"] = g.line_max_i_ka
    net.line.loc[g.trunk_lines, "max_i_ka"] = g.trunk_max_i_ka
    feeder_loads = list(net.load.index)
    tie_switches = []
    for li in g.tie_lines:
        net.line.loc[li, "in_service"] = True
        tie_switches.append(
            pp.create_switch(
                net,
                bus=int(net.line.at[li, "from_bus"]),
                element=li,
                et="l",
                closed=g.tie_switches_closed,
                name=f"tie {li}",
            )
        )
    parties: dict[str, PartyUnits] = {}
    vn_kv = float(net.bus.vn_kv.iloc[0])
    ref_line = net.line.iloc[0]
    for mg in cfg.mgs:
        parties[mg.name] = add_mg_behind_pcc(
            net,
            mg,
            vn_kv,
            float(ref_line.r_ohm_per_km),
            float(ref_line.x_ohm_per_km),
            g.line_max_i_ka,
            (g.vm_min_pu, g.vm_max_pu),
        )
    dn = PartyUnits(bus=cfg.dn.bus if cfg.dn else 0, load=feeder_loads)
    if cfg.dn is not None:
        _add_units(net, cfg.dn, cfg.dn.bus, DN, dn)
    parties[DN] = dn
    finish_flags(net)
    return NetLayout(net, parties, feeder_loads, tie_switches)


def validate_against_net(cfg: Config, net: Any) -> None:
    n_bus = len(net.bus)
    places: list[tuple[str, int | None]] = [(f"mgs[{i}] ({m.name}).bus", m.bus) for i, m in enumerate(cfg.mgs)]
    if cfg.dn is not None:
        places.append(("dn.bus", cfg.dn.bus))
    for where, bus in places:
        if bus not in net.bus.index:
            raise ConfigError(f"{where}: bus {bus} is not in {cfg.grid.net} (buses 0..{n_bus - 1})")
    for where, lines in (("grid.trunk_lines", cfg.grid.trunk_lines), ("grid.tie_lines", cfg.grid.tie_lines)):
        bad = [li for li in lines if li not in net.line.index]
        if bad:
            raise ConfigError(f"{where}: lines {bad} are not in {cfg.grid.net} (lines 0..{len(net.line) - 1})")


def build(world: Any, cfg: Config, *, strategy: str, data_dir: Any) -> Built:
    """Wire the scenario into ``world`` (see :mod:`scenarios.wiring`)."""
    return wire(world, cfg, build_net(cfg), strategy=strategy, data_dir=data_dir)
