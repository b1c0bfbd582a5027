"""mosaik output requests -> ``get_data``'s answer, built column by column.

A request (``{eid: [attr, ...]}``) is planned once: its entities grouped by model and attribute list,
with their row positions. mosaik asks the same each step (an in-process simulator gets the very same
dict), so the plans of the last :data:`PLANS_KEPT` requests are kept and reused while a request compares
equal to one of them. Answering it takes each requested column
once (:meth:`StepOutputs.values`, vectorised) and builds the entities' dicts by C-level iteration over
a function per group that makes a dict display of its attributes (twice as fast as ``dict(zip(...))``).
The ``Grid`` entity's answer holds its aggregates and its column outputs (each a whole column as a list,
:data:`~sims.grid.spec.GRID_COLUMNS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, cast

import numpy as np
from mosaik_api_v3.types import OutputData, OutputRequest

from sims.grid.groups import LoadGroup
from sims.grid.netindex import Entity
from sims.grid.outputs import StepOutputs
from sims.grid.spec import GRID_COLUMNS, LOAD_GROUP_MODEL

PLANS_KEPT = 4


@dataclass(frozen=True, eq=False)
class _Group:
    """Entities of one model asking for the same attributes."""

    model: str
    attrs: tuple[str, ...]
    eids: list[str]
    pos: np.ndarray | None
    """Row positions of the entities (None: every row of the model, in order)."""
    row: Callable[..., dict[str, Any]] = field(init=False)
    """One value per attribute -> the entity's dict."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "row", _row_builder(self.attrs))


def _row_builder(attrs: tuple[str, ...]) -> Callable[..., dict[str, Any]]:
    """A function of one value per attribute that returns ``{attr: value}`` (the names bound in a display)."""
    match attrs:
        case (a,):
            return lambda x: {a: x}
        case (a, b):
            return lambda x, y: {a: x, b: y}
        case (a, b, c):
            return lambda x, y, z: {a: x, b: y, c: z}
        case (a, b, c, d):
            return lambda x, y, z, w: {a: x, b: y, c: z, d: w}
        case (a, b, c, d, e, f):
            return lambda x, y, z, w, u, v: {a: x, b: y, c: z, d: w, e: u, f: v}
        case _:
            return lambda *values: dict(zip(attrs, values, strict=True))


def _grid_answer(attrs: tuple[str, ...], outputs: StepOutputs) -> dict[str, Any]:
    """The ``Grid`` entity's answer: its aggregates and its column outputs (whole columns as lists)."""
    out: dict[str, Any] = {}
    grid: dict[str, Any] | None = None
    for attr in attrs:
        column = GRID_COLUMNS.get(attr)
        if column is not None:
            out[attr] = outputs.column(*column).tolist()
        else:
            if grid is None:
                grid = outputs.grid()
            out[attr] = grid[attr]
    return out


@dataclass(frozen=True, eq=False)
class _Plan:
    request: dict[str, list[str]]
    """A copy of the request planned."""
    groups: list[_Group]
    in_order: bool
    """The groups, one after the other, list the entities in the request's order."""


class OutputPlanner:
    """Answers ``get_data`` requests for the entities of one grid (see the module docstring)."""

    def __init__(
        self, eids: Mapping[str, Entity], rows: Mapping[str, int], groups: list[LoadGroup] | None = None
    ) -> None:
        """``eids``: entity id -> (model, row position); ``rows``: the number of rows of each model;
        ``groups``: the load groups (a group's attribute: its members' ``Load`` outputs as a list)."""
        self._eids = eids
        self._rows = rows
        self._groups = groups or []
        self._plans: list[_Plan] = []
        """The last used first."""

    def answer(self, request: OutputRequest, outputs: StepOutputs) -> OutputData:
        """``{eid: {attr: value}}`` for every entity and attribute of ``request``, in its order."""
        plan = self._plan_of(request)
        # in the request's order: every entity's key first (its value comes with its group)
        data: OutputData = {} if plan.in_order else cast(OutputData, dict.fromkeys(request))
        for g in plan.groups:
            if not g.attrs:
                data.update(zip(g.eids, map(dict, repeat(())), strict=False))
                continue
            if g.model == LOAD_GROUP_MODEL:
                data.update(self._group_answer(g, outputs))
                continue
            if g.model == "Grid":  # its aggregates and whole columns
                for eid in g.eids:
                    data[eid] = _grid_answer(g.attrs, outputs)
                continue
            columns = [outputs.values(g.model, attr, g.pos) for attr in g.attrs]
            data.update(zip(g.eids, map(g.row, *columns), strict=True))
        return data

    def _group_answer(self, g: _Group, outputs: StepOutputs) -> dict[str, dict[str, Any]]:
        """Load groups: each attribute as the list of its members' ``Load`` values."""
        assert g.pos is not None
        return {
            eid: {attr: outputs.values("Load", attr, self._groups[k].load_pos) for attr in g.attrs}
            for eid, k in zip(g.eids, g.pos.tolist(), strict=True)
        }

    def _plan_of(self, request: OutputRequest) -> _Plan:
        for k, plan in enumerate(self._plans):
            if request == plan.request:
                if k:
                    self._plans.insert(0, self._plans.pop(k))
                return plan
        plan = self._plan(request)
        self._plans = [plan, *self._plans[: PLANS_KEPT - 1]]
        return plan

    def _plan(self, request: OutputRequest) -> _Plan:
        by_key: dict[tuple[str, tuple[str, ...]], tuple[list[str], list[int]]] = {}
        for eid, attrs in request.items():
            model, pos = self._eids[eid]
            eids, rows = by_key.setdefault((model, tuple(attrs)), ([], []))
            eids.append(eid)
            rows.append(pos)
        groups = []
        for (model, names), (eids, rows) in by_key.items():
            every = model not in ("Grid", LOAD_GROUP_MODEL) and rows == list(range(self._rows[model]))
            groups.append(_Group(model, names, eids, None if every else np.array(rows, dtype=np.int64)))
        in_order = [eid for g in groups for eid in g.eids] == list(request)
        return _Plan({eid: list(attrs) for eid, attrs in request.items()}, groups, in_order)
