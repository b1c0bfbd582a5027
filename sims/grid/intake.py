"""mosaik inputs -> the grid's input arrays: every input of a step in one pass.

A step on a 5,000-bus grid brings ~11,000 inputs (every load's ``p_mw`` and ``q_mvar``, every generator's
``p_avail_mw``), and mosaik brings the same entities, attributes and sources every step. Their layout is
planned once (:class:`_Plan`: where each input goes, which source it has); a step then checks that its
inputs have that layout and takes the values with C-level iteration (``map``, no Python bytecode per
input), writing every single-source input with one vectorised assignment into
:attr:`UnitInputs.buffer`. A step with another layout is planned anew. The rules:

* a value holds until a new one arrives; ``None`` is no value;
* several sources of one attribute are summed;
* a switch is closed only if every source says so (``bool`` of each value);
* a load group's input (:mod:`sims.grid.groups`) is a list, one value per member (``None`` or NaN: that
  member's value holds); a member whose attribute also has inputs of its own gets the sum of the group's
  last value and those.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from operator import getitem
from typing import Any

import numpy as np
from mosaik_api_v3.types import InputData

from sims.grid.groups import LoadGroup
from sims.grid.netindex import Entity
from sims.grid.spec import LOAD_GROUP_ATTRS, LOAD_GROUP_MODEL
from sims.grid.units import UnitInputs

INPUT_ARRAYS: dict[tuple[str, str], str] = {
    ("Load", "p_mw"): "load_p",
    ("Load", "q_mvar"): "load_q",
    ("Load", "shed_mw"): "load_shed",
    ("StaticGen", "p_mw"): "sgen_set",
    ("StaticGen", "p_avail_mw"): "sgen_avail",
    ("StaticGen", "q_mvar"): "sgen_q",
    ("Storage", "p_mw"): "st_set",
}
"""(model, input attribute) -> the :class:`UnitInputs` array it is held in."""
SWITCH_INPUT = ("Switch", "closed")


@dataclass(frozen=True, eq=False)
class _Plan:
    """The layout of a step's inputs: one entry per (entity, attribute), in the order mosaik gives them."""

    n_eids: int
    eids: list[str]
    attrs: list[str]
    n_src: list[int]
    """Number of sources of each input."""
    slot: np.ndarray
    """Where each input goes: a position in the unit input buffer, ``n_unit + pos`` for switch ``pos``, or
    ``-1 - j`` for the load-group target ``j`` (:attr:`InputIntake._targets`)."""
    single: list[int] | None
    """The inputs (their positions in this plan) of one source that go to the unit input buffer (None:
    every input)."""
    single_src: list[str]
    """The source of each of those."""
    single_slot: np.ndarray
    others: list[int]
    """The rest (several sources, switches, load groups): one by one, load groups first."""
    on_group: dict[int, tuple[int, int]]
    """Inputs of a load that is also a member of a group feeding that attribute: input -> (target, member)."""


class InputIntake:
    """Writes a step's mosaik inputs into :class:`UnitInputs` and the switch states (see the module docstring)."""

    def __init__(
        self,
        eids: Mapping[str, Entity],
        held: UnitInputs,
        switch_closed: np.ndarray,
        groups: list[LoadGroup] | None = None,
    ) -> None:
        self._eids = eids
        self._offsets = held.offsets
        self._buffer = held.buffer
        self._switch_closed = switch_closed
        self._n_unit = len(held.buffer)
        self._plan: _Plan | None = None
        # load-group target j = (group g, attribute a) at j = len(LOAD_GROUP_ATTRS) * g + a: buffer slots
        # of its members, and the last value each member got through the group
        self._targets: list[np.ndarray] = [
            self._offsets[INPUT_ARRAYS["Load", attr]] + g.load_pos for g in groups or [] for attr in LOAD_GROUP_ATTRS
        ]
        self._group_last = [np.zeros(len(t)) for t in self._targets]

    def apply(self, inputs: InputData) -> None:
        """Write ``inputs`` (``{eid: {attr: {source: value}}}``); a ValueError names an input the grid does
        not take (nothing is written then)."""
        if not inputs:
            return
        taken = self._take(inputs)
        if taken is None:
            self._plan = self._make_plan(inputs)
            taken = self._take(inputs)
            assert taken is not None, "inputs of the layout just planned"
        plan = self._plan
        assert plan is not None
        sources, values = taken
        try:
            flat = np.fromiter(values, float, len(values))  # None -> NaN
        except (TypeError, ValueError):  # a value that is no number: every input one by one
            others: list[int] = sorted(range(len(sources)), key=lambda k: int(plan.slot[k]) >= 0)
        else:
            self._write(plan.single_slot, flat, values)
            others = plan.others
        for k in others:
            slot = int(plan.slot[k])
            if slot < 0:
                self._apply_group(-1 - slot, sources[k], plan.eids[k], plan.attrs[k])
            elif k in plan.on_group:
                self._apply_member(slot, sources[k], *plan.on_group[k])
            else:
                self._apply_one(slot, sources[k])

    def _take(self, inputs: InputData) -> tuple[list[dict[str, Any]], list[Any]] | None:
        """The inputs' source dicts and the values of the plan's single-source inputs, or None if the
        inputs do not have the plan's layout."""
        plan = self._plan
        if plan is None or len(inputs) != plan.n_eids:
            return None
        try:
            sources = [*map(getitem, map(inputs.__getitem__, plan.eids), plan.attrs)]
            if sum(map(len, inputs.values())) != len(sources):
                return None  # an attribute more
            # if every input is planned as a unit input of one source, each has its planned source
            # (getitem below), so a sum tells whether each has just that one; else compare each count
            if plan.single is None:
                if sum(map(len, sources)) != len(sources):
                    return None
            elif [*map(len, sources)] != plan.n_src:
                return None
            single = sources if plan.single is None else map(sources.__getitem__, plan.single)
            return sources, [*map(getitem, single, plan.single_src)]
        except KeyError:
            return None

    def _make_plan(self, inputs: InputData) -> _Plan:
        """The layout of ``inputs``; KeyError for an unknown entity, ValueError for an input the grid does
        not take."""
        eids: list[str] = []
        attrs: list[str] = []
        n_src: list[int] = []
        slots: list[int] = []
        src: list[str] = []
        for eid, by_attr in inputs.items():
            model, pos = self._eids[eid]
            for attr, sources in by_attr.items():
                if model == LOAD_GROUP_MODEL and attr in LOAD_GROUP_ATTRS:
                    slots.append(-1 - (len(LOAD_GROUP_ATTRS) * pos + LOAD_GROUP_ATTRS.index(attr)))
                elif (model, attr) in INPUT_ARRAYS:
                    slots.append(self._offsets[INPUT_ARRAYS[model, attr]] + pos)
                elif (model, attr) == SWITCH_INPUT:
                    slots.append(self._n_unit + pos)
                else:
                    raise ValueError(f"{model} takes no input {attr!r}")
                eids.append(eid)
                attrs.append(attr)
                n_src.append(len(sources))
                src.append(next(iter(sources)) if len(sources) == 1 else "")
        slot = np.array(slots, dtype=np.int64)
        on_group = self._on_group(slot)
        is_single = (np.array(n_src) == 1) & (slot >= 0) & (slot < self._n_unit)
        is_single[list(on_group)] = False
        single = np.flatnonzero(is_single).tolist()
        return _Plan(
            n_eids=len(inputs),
            eids=eids,
            attrs=attrs,
            n_src=n_src,
            slot=slot,
            single=None if is_single.all() else single,
            single_src=[src[k] for k in single],
            single_slot=slot[is_single],
            others=sorted(np.flatnonzero(~is_single).tolist(), key=lambda k: slots[k] >= 0),
            on_group=on_group,
        )

    def _on_group(self, slot: np.ndarray) -> dict[int, tuple[int, int]]:
        """Inputs into a slot that a load group also feeds: input -> (group target, member)."""
        fed = {int(s): (j, m) for j, target in enumerate(self._targets) for m, s in enumerate(target.tolist())}
        if not fed:
            return {}
        return {k: fed[int(s)] for k, s in enumerate(slot.tolist()) if s >= 0 and s in fed}

    def _apply_group(self, j: int, sources: Mapping[str, Any], eid: str, attr: str) -> None:
        """A load group's list(s) into its members' slots (several sources summed; NaN/None: that member holds)."""
        target = self._targets[j]
        total: np.ndarray | None = None
        for src, value in sources.items():
            if value is None:
                continue
            try:
                vec = _floats(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{eid}.{attr} from {src}: expected a list of numbers ({exc})") from exc
            if vec.shape != target.shape:
                raise ValueError(f"{eid}.{attr} from {src}: expected {len(target)} values, got shape {vec.shape}")
            total = vec if total is None else total + vec
        if total is None:
            return
        held = ~np.isnan(total)
        self._group_last[j][held] = total[held]
        self._buffer[target[held]] = total[held]

    def _apply_member(self, slot: int, sources: Mapping[str, Any], j: int, m: int) -> None:
        """A group member's own inputs: added to what the group gave it last."""
        values = [float(v) for v in sources.values() if v is not None]
        self._buffer[slot] = self._group_last[j][m] + sum(values)

    def _write(self, slot: np.ndarray, flat: np.ndarray, values: list[Any]) -> None:
        """Single-source values (``flat``: as floats) into their slots; None is no value."""
        nan = np.isnan(flat)
        if nan.any():
            keep = np.ones(len(flat), dtype=bool)
            for k in np.flatnonzero(nan).tolist():
                keep[k] = values[k] is not None
            slot, flat = slot[keep], flat[keep]
        self._buffer[slot] = flat

    def _apply_one(self, slot: int, sources: Mapping[str, Any]) -> None:
        """One input by the rules of the module docstring (several sources, a switch, odd values)."""
        values = [v for v in sources.values() if v is not None]
        if not values:
            return
        if slot >= self._n_unit:
            self._switch_closed[slot - self._n_unit] = all(bool(v) for v in values)
        else:
            self._buffer[slot] = float(values[0]) if len(values) == 1 else float(sum(values))


def _floats(value: Any) -> np.ndarray:
    """A list of numbers (None: NaN) as a float array; ``fromiter`` first, a third faster than ``asarray`` on
    a list of Python floats (0.14 against 0.21 ms for 5,000), which is what a group's list is but for a None."""
    if isinstance(value, list):
        try:
            return np.fromiter(value, dtype=float, count=len(value))
        except TypeError:
            pass  # a None among them: asarray makes it NaN
    return np.asarray(value, dtype=float)
