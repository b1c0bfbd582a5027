"""A fleet of MGs placed on the net by the rules of a config's ``[fleet]`` (:class:`FleetCfg`), before the
config is validated: the placed MGs join ``mgs`` as if the config had listed them.

The placement, on the net as the builder prepares it (``grid.net`` loaded, closed bus-bus switches fused,
cut at ``grid.slack_bus``), so bus numbers are the builder's:

1. candidate buses: in service, at or below ``fleet.vn_kv_max``, whose ``subnet`` (SimBench names each
   bus's LV or MV grid, e.g. ``LV1.101``) matches one of ``fleet.subnets`` (shell patterns; empty: any),
   of the kind ``fleet.buses`` says (``load``: a load of the net sits there; ``leaf``: one line ends
   there, a feeder's end; ``any``), and not taken by the config (its MGs', clusters', SVCs', the network
   operator's and the slack's buses). A net without a ``subnet`` column is one subnet;
2. the subnets in a seeded order, and in each its candidates in a seeded order; the MGs go round-robin
   over the subnets, one bus each per round, at most ``fleet.per_subnet_max`` per subnet, so they spread
   over the grid before any subnet gets a second one;
3. each MG's kind drawn by ``weight`` and its size factor uniformly from the kind's ``scale``; its name
   ``<name_prefix><number>`` (zero-padded, in placement order).

Everything is drawn from one generator seeded with ``fleet.seed`` (else ``scenario.seed``): the same
config places the same fleet. Too few candidates is a ConfigError naming ``fleet.n``.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from scenarios.config import ConfigError, FleetCfg, FleetKindCfg, GridCfg, MgCfg, _format_validation_error

SIZE_SUFFIXES = ("_mw", "_mwh", "_mw_per_h")
"""A kind's fields that its size factor scales: powers, energies and ramp rates."""


@dataclass(frozen=True)
class Placed:
    """One placed MG: its name, bus, kind and size factor."""

    name: str
    bus: int
    kind: str
    scale: float


def expand_fleet(raw: dict[str, Any], config_dir: Path | None = None) -> dict[str, Any]:
    """``raw`` with the fleet's MGs appended to ``mgs`` (ConfigError naming the field for a bad fleet)."""
    fleet = _validated(raw)
    grid = _grid(raw)
    net = _prepared_net(grid, config_dir)
    seed = fleet.seed if fleet.seed is not None else int(raw.get("scenario", {}).get("seed", 0))
    taken = taken_buses(raw)
    placed = place(fleet, net, taken, seed)
    out = copy.deepcopy(raw)
    kinds = {k.name: k for k in fleet.kinds}
    out["mgs"] = list(out.get("mgs", [])) + [mg_table(kinds[p.kind], p) for p in placed]
    return out


def _validated(raw: dict[str, Any]) -> FleetCfg:
    try:
        fleet = FleetCfg.model_validate(raw["fleet"])
    except ValidationError as exc:
        raise ConfigError(f"fleet.{_format_validation_error(exc, raw['fleet'])}") from None
    names = [k.name for k in fleet.kinds]
    if len(set(names)) != len(names):
        raise ConfigError(f"fleet.kinds: duplicate kind names {names}")
    for i, kind in enumerate(fleet.kinds):
        try:
            MgCfg.model_validate({**kind.mg, "name": "kind", "bus": 0})
        except ValidationError as exc:
            raise ConfigError(f"fleet.kinds[{i}] ({kind.name}).mg.{_format_validation_error(exc, kind.mg)}") from None
    return fleet


def _grid(raw: dict[str, Any]) -> GridCfg:
    try:
        return GridCfg.model_validate(raw.get("grid", {}))
    except ValidationError as exc:
        raise ConfigError(f"grid.{_format_validation_error(exc, raw.get('grid', {}))}") from None


def _prepared_net(grid: GridCfg, config_dir: Path | None) -> Any:
    from scenarios.build import prepared_net

    return prepared_net(grid, config_dir)


def taken_buses(raw: Mapping[str, Any]) -> set[int]:
    """The buses a config already puts something on (its MGs, clusters, SVCs, network operator, slack)."""
    taken = {int(t["bus"]) for key in ("mgs", "clusters", "svcs") for t in raw.get(key, []) if "bus" in t}
    dn, grid = raw.get("dn"), raw.get("grid", {})
    if isinstance(dn, Mapping) and "bus" in dn:
        taken.add(int(dn["bus"]))
    if grid.get("slack_bus") is not None:
        taken.add(int(grid["slack_bus"]))
    return taken


def candidates(fleet: FleetCfg, net: Any, taken: set[int]) -> dict[str, list[int]]:
    """The candidate buses by subnet (name -> sorted bus indices), per the rules above."""
    bus = net.bus
    subnet = bus["subnet"].astype(str) if "subnet" in bus.columns else bus.index.map(lambda _: "").to_series()
    keep = bus["in_service"].astype(bool).to_numpy() & ~bus.index.isin([*taken, *map(int, net.ext_grid.bus)])
    if fleet.vn_kv_max is not None:
        keep &= (bus.vn_kv <= fleet.vn_kv_max).to_numpy()
    if fleet.subnets:
        keep &= np.array([any(fnmatch.fnmatchcase(s, pat) for pat in fleet.subnets) for s in subnet])
    if fleet.buses == "load":
        keep &= bus.index.isin(net.load.bus[net.load["in_service"].astype(bool)])
    elif fleet.buses == "leaf":
        lines = net.line[net.line["in_service"].astype(bool)]
        ends = pd.concat([lines.from_bus, lines.to_bus]).value_counts()
        keep &= bus.index.map(lambda b: ends.get(b, 0) == 1).to_numpy(dtype=bool)
    groups: dict[str, list[int]] = {}
    for b, s in zip(bus.index[keep], np.asarray(subnet)[keep], strict=True):
        groups.setdefault(str(s), []).append(int(b))
    return {s: sorted(b) for s, b in sorted(groups.items())}


def place(fleet: FleetCfg, net: Any, taken: set[int], seed: int) -> list[Placed]:
    """The fleet's MGs: buses round-robin over the subnets in a seeded order, kinds and sizes drawn."""
    rng = np.random.default_rng(seed)
    groups = candidates(fleet, net, taken)
    order = [groups[s] for s in rng.permutation(sorted(groups))] if groups else []
    queues = [list(rng.permutation(b)) for b in order]
    cap = fleet.per_subnet_max or max((len(q) for q in queues), default=0)
    buses: list[int] = []
    for _ in range(cap):
        for q in queues:
            if q and len(buses) < fleet.n:
                buses.append(int(q.pop(0)))
    if len(buses) < fleet.n:
        raise ConfigError(
            f"fleet.n: {fleet.n} MGs asked, the rules give {len(buses)} buses in {len(groups)} subnets "
            f"(subnets {fleet.subnets or 'any'}, buses {fleet.buses!r}, vn_kv_max {fleet.vn_kv_max}, "
            f"per_subnet_max {fleet.per_subnet_max})"
        )
    weights = np.array([k.weight for k in fleet.kinds])
    width = max(3, len(str(fleet.n)))  # MG001...: the same names at every n (placement is a prefix)
    placed = []
    for i, b in enumerate(buses):
        kind = fleet.kinds[int(rng.choice(len(fleet.kinds), p=weights / weights.sum()))]
        scale = float(rng.uniform(*kind.scale)) if kind.scale[0] < kind.scale[1] else kind.scale[0]
        placed.append(Placed(f"{fleet.name_prefix}{i + 1:0{width}d}", b, kind.name, scale))
    return placed


def mg_table(kind: FleetKindCfg, placed: Placed) -> dict[str, Any]:
    """The ``[[mgs]]`` table of a placed MG: its kind's table scaled, its name and bus."""
    return {**scaled(kind.mg, placed.scale), "name": placed.name, "bus": placed.bus, "kind": placed.kind}


def scaled(table: Mapping[str, Any], factor: float) -> dict[str, Any]:
    """``table`` with every number whose key ends in :data:`SIZE_SUFFIXES` times ``factor`` (nested)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            out[key] = scaled(value, factor)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            out[key] = [scaled(v, factor) for v in value]  # e.g. owners' loads
        elif isinstance(value, int | float) and not isinstance(value, bool) and key.endswith(SIZE_SUFFIXES):
            out[key] = float(value) * factor
        else:
            out[key] = copy.deepcopy(value)
    return out
