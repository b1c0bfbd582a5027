"""Load groups: many loads fed through one entity whose attributes are vectors (``Grid`` param ``load_groups``).

A network operator's thousands of feeder loads each get their demand from a profile; as single inputs that
is ~11,000 values a step in mosaik's nested dicts, which costs more than the power flow itself on a 5,000-bus
grid. A group ``{"DN": [3, 4, 7, ...]}`` (pandapower load indices) adds the entity ``LoadGroup-DN``: its
``p_mw`` and ``q_mvar`` inputs are lists with one value per member in the listed order, written into the
members' load inputs with one vectorised assignment. The members' ``Load-<i>`` entities stay what they are
(their outputs, ``shed_mw``); a member's ``p_mw`` or ``q_mvar`` cannot also come from an input of its own
(which one would hold is ambiguous), a ValueError says so when the inputs first arrive that way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandapower as pp
from mosaik_api_v3.types import CreateResult

from sims.grid.spec import LOAD_GROUP_MODEL


@dataclass(frozen=True, eq=False)
class LoadGroup:
    """One group: its entity id and its members' row positions in ``net.load`` (in the listed order)."""

    eid: str
    load_pos: np.ndarray


def parse_load_groups(net: pp.pandapowerNet, groups: Any) -> list[LoadGroup]:
    """The groups of the ``load_groups`` param (None: none); ValueError naming the bad group or index."""
    if groups is None:
        return []
    if not isinstance(groups, Mapping):
        raise ValueError(f"load_groups must map a group name to a list of load indices, got {type(groups).__name__}")
    pos_of = {int(idx): pos for pos, idx in enumerate(net.load.index)}
    owner: dict[int, str] = {}
    out: list[LoadGroup] = []
    for name, members in groups.items():
        if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
            raise ValueError(f"load_groups: group name {name!r} must be a non-empty alphanumeric string")
        if not isinstance(members, (list, tuple)) or not members:
            raise ValueError(f"load_groups.{name}: expected a non-empty list of load indices")
        positions = []
        for idx in members:
            if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)) or int(idx) not in pos_of:
                raise ValueError(f"load_groups.{name}: {idx!r} is no load index of the net")
            if int(idx) in owner:
                raise ValueError(f"load_groups.{name}: load {int(idx)} is already in group {owner[int(idx)]!r}")
            owner[int(idx)] = name
            positions.append(pos_of[int(idx)])
        out.append(LoadGroup(f"{LOAD_GROUP_MODEL}-{name}", np.array(positions, dtype=np.int64)))
    return out


def group_children(groups: list[LoadGroup]) -> list[CreateResult]:
    """The groups' child entities of ``Grid-0``."""
    return [{"eid": g.eid, "type": LOAD_GROUP_MODEL, "rel": []} for g in groups]
