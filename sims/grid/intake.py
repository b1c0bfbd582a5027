"""mosaik inputs -> the grid's input arrays: every input of a step in one pass.

A step on a 5,000-bus grid brings ~11,000 inputs (every load's ``p_mw`` and ``q_mvar``, every generator's
``p_avail_mw``), and mosaik brings the same entities, attributes and sources every step. Their layout is
planned once (:class:`_Plan`: where each input goes, which source it has); a step then checks that its
inputs have that layout and takes the values with C-level iteration (``map``, no Python bytecode per
input), writing every single-source input with one vectorised assignment into
:attr:`UnitInputs.buffer`. A step with another layout is planned anew. The rules:

* a value holds until a new one arrives; ``None`` is no value;
* several sources of one attribute are summed;
* a switch is closed only if every source says so (``bool`` of each value).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from operator import getitem
from typing import Any

import numpy as np
from mosaik_api_v3.types import InputData

from sims.grid.netindex import Entity
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
    """Where each input goes: a position in the unit input buffer, or ``n_unit + pos`` for switch ``pos``."""
    single: list[int] | None
    """The inputs (their positions in this plan) of one source that go to the unit input buffer (None:
    every input)."""
    single_src: list[str]
    """The source of each of those."""
    single_slot: np.ndarray
    others: list[int]
    """The rest (several sources, switches): one by one."""


class InputIntake:
    """Writes a step's mosaik inputs into :class:`UnitInputs` and the switch states (see the module docstring)."""

    def __init__(self, eids: Mapping[str, Entity], held: UnitInputs, switch_closed: np.ndarray) -> None:
        self._eids = eids
        self._offsets = held.offsets
        self._buffer = held.buffer
        self._switch_closed = switch_closed
        self._n_unit = len(held.buffer)
        self._plan: _Plan | None = None

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
            others: list[int] = list(range(len(sources)))
        else:
            self._write(plan.single_slot, flat, values)
            others = plan.others
        for k in others:
            self._apply_one(int(plan.slot[k]), sources[k])

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
                if (model, attr) in INPUT_ARRAYS:
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
        is_single = (np.array(n_src) == 1) & (slot < self._n_unit)
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
            others=np.flatnonzero(~is_single).tolist(),
        )

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
