"""community_3mg: a cooperative community of CHP microgrids (spec 003) on a 20 kV network.

``build_net(cfg)``: pandapower's CIGRE MV network (``create_cigre_network_mv(with_der=False)``: 110 kV
external grid, two 25 MVA 110/20 kV transformers, two 20 kV feeders with their open-ring switches) with
its own 18 loads removed, so that what flows is the community's. Each MG sits on a bus of its own behind
a short line whose switch is its point of common coupling; its load, PV and CHP are on that bus (the CHP
as a controllable static generator). The MGs' buses, data columns and CHP data come from
``scenarios/data/community_3mg.toml``; any number of MGs works. There is no network operator party: the
utility is the external grid. ``build(world, cfg, ...)`` wires it with :mod:`scenarios.wiring`.
"""

from __future__ import annotations

from typing import Any

import pandapower.networks as pn

from scenarios.config import Config, ConfigError
from scenarios.layout import NetLayout, PartyUnits, add_mg_behind_pcc, finish_flags, utility_net
from scenarios.wiring import Built, wire

NAME = "community_3mg"
DESCRIPTION = "three CHP + PV microgrids trading internally and with the utility (spec 003), CIGRE MV"
NETS = {"cigre_mv": lambda: pn.create_cigre_network_mv(with_der=False)}


def build_net(cfg: Config) -> NetLayout:
    net = utility_net(cfg, NETS, NAME)
    g = cfg.grid
    for i, mg in enumerate(cfg.mgs):
        if mg.parent is not None:
            raise ConfigError(f"mgs[{i}] ({mg.name}).parent: {NAME} has no nested microgrids")
        if mg.bus not in net.bus.index:
            raise ConfigError(f"mgs[{i}] ({mg.name}).bus: bus {mg.bus} is not in {g.net} (buses {list(net.bus.index)})")
        if mg.generator is None:
            raise ConfigError(f"mgs[{i}] ({mg.name}).chp: every community MG needs its CHP")
    parties: dict[str, PartyUnits] = {}
    for mg in cfg.mgs:
        feeder_line = net.line[(net.line.from_bus == mg.bus) | (net.line.to_bus == mg.bus)].iloc[0]
        parties[mg.name] = add_mg_behind_pcc(
            net,
            mg,
            float(net.bus.at[mg.bus, "vn_kv"]),
            float(feeder_line.r_ohm_per_km),
            float(feeder_line.x_ohm_per_km),
            float(feeder_line.max_i_ka),
            (g.vm_min_pu, g.vm_max_pu),
        )
    finish_flags(net)
    return NetLayout(net, parties, [], [])


def build(world: Any, cfg: Config, *, strategy: str, data_dir: Any) -> Built:
    """Wire the scenario into ``world`` (see :mod:`scenarios.wiring`)."""
    return wire(world, cfg, build_net(cfg), strategy=strategy, data_dir=data_dir)
