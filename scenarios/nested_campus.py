"""nested_campus: a department inside a faculty inside a campus (spec 000) on a low-voltage network.

``build_net(cfg)``: pandapower's CIGRE LV network (``create_cigre_network_lv``) with its own loads
removed and its three closed bus-bus circuit breakers fused, so the grid simulator's fast path applies.
The outermost MG hangs on its feeder bus behind a PCC line; every nested MG on its parent's bus behind its
own PCC line (the cable data of the feeder's first line). Each MG's loads are its owners' (one load per
owner, ``owners`` in the config). ``build(world, cfg, ...)`` wires it with :mod:`scenarios.wiring`.
"""

from __future__ import annotations

from typing import Any

import pandapower as pp
import pandapower.networks as pn

from scenarios.config import Config, ConfigError
from scenarios.layout import NetLayout, PartyUnits, add_mg_behind_pcc, finish_flags, utility_net
from scenarios.wiring import Built, wire

NAME = "nested_campus"
DESCRIPTION = "department inside faculty inside campus, owners' loads, CIGRE LV (spec 000)"


def _cigre_lv() -> Any:
    net = pn.create_cigre_network_lv()
    for _, sw in net.switch[net.switch.et == "b"].iterrows():  # closed breakers: one bus each
        pp.toolbox.fuse_buses(net, int(sw.bus), {int(sw.element)})
    net.switch.drop(net.switch[net.switch.et == "b"].index, inplace=True)
    return net


NETS = {"cigre_lv": _cigre_lv}


def _depth(cfg: Config, name: str) -> int:
    parent = next(m.parent for m in cfg.mgs if m.name == name)
    return 0 if parent is None else 1 + _depth(cfg, parent)


def build_net(cfg: Config) -> NetLayout:
    net = utility_net(cfg, NETS, NAME)
    g = cfg.grid
    parties: dict[str, PartyUnits] = {}
    for i, mg in sorted(enumerate(cfg.mgs), key=lambda im: _depth(cfg, im[1].name)):
        if mg.parent is None:
            if mg.bus is None or mg.bus not in net.bus.index:
                raise ConfigError(f"mgs[{i}] ({mg.name}).bus: bus {mg.bus} is not in {g.net}")
            at = int(mg.bus)
        else:
            at = parties[mg.parent].bus
        ref = net.line[(net.line.from_bus == at) | (net.line.to_bus == at)]
        ref_line = ref.iloc[0] if len(ref) else net.line.iloc[0]
        parties[mg.name] = add_mg_behind_pcc(
            net,
            mg,
            float(net.bus.at[at, "vn_kv"]),
            float(ref_line.r_ohm_per_km),
            float(ref_line.x_ohm_per_km),
            float(ref_line.max_i_ka),
            (g.vm_min_pu, g.vm_max_pu),
            from_bus=at,
        )
    finish_flags(net)
    return NetLayout(net, parties, [], [])


def build(world: Any, cfg: Config, *, strategy: str, data_dir: Any) -> Built:
    """Wire the scenario into ``world`` (see :mod:`scenarios.wiring`)."""
    return wire(world, cfg, build_net(cfg), strategy=strategy, data_dir=data_dir)
