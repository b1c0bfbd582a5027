"""Net indexing: loading a net, row positions of its elements, and mosaik entity ids <-> those positions.

Every array the simulator keeps is indexed by the row position of a pandapower table (buses sorted by
index); entity ids are ``<Model>-<pandapower index>`` (``Bus-3``, ``Line-7``, ``Switch-0``, ...) plus
``Grid-0`` for the whole net.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandapower as pp
import pandapower.networks
from mosaik_api_v3.types import CreateResult

from sims.grid.spec import MODEL_SPECS

DEFAULT_MIN_VM_PU = 0.95
DEFAULT_MAX_VM_PU = 1.05
GRID_EID = "Grid-0"

# the bus columns of each table: a child entity's mosaik relations
_BUS_COLUMNS = {
    "line": ("from_bus", "to_bus"),
    "load": ("bus",),
    "sgen": ("bus",),
    "storage": ("bus",),
    "ext_grid": ("bus",),
    "switch": ("bus",),
    "bus": (),
}


def load_net(net: str) -> pp.pandapowerNet:
    """A pandapower net from a pandapower.networks function name, a JSON file path or a JSON string."""
    if not isinstance(net, str) or not net.strip():
        raise ValueError(f"net must be a non-empty string, got {net!r}")
    text = net.strip()
    if text.startswith("{"):
        return pp.from_json_string(text)
    if os.path.isfile(text):
        return pp.from_json(text)
    func = getattr(pandapower.networks, text, None)
    if text.isidentifier() and callable(func) and not text.startswith("_"):
        result = func()
        if isinstance(result, pp.pandapowerNet):
            return result
    raise ValueError(f"unknown net {net!r}: neither a pandapower.networks function, a JSON file nor a JSON string")


def float_column(table: Any, name: str, default: float) -> np.ndarray:
    """Float column of a pandapower table, ``default`` where missing or NaN."""
    if name not in table.columns:
        return np.full(len(table), default, dtype=float)
    values = table[name].to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(values), default, values)


def bool_column(table: Any, name: str, default: bool) -> np.ndarray:
    """Bool column of a pandapower table, ``default`` where missing or NaN."""
    if name not in table.columns:
        return np.full(len(table), default, dtype=bool)
    return table[name].fillna(default).to_numpy(dtype=bool)


def in_service(table: Any) -> np.ndarray:
    return table["in_service"].to_numpy(dtype=bool)


Entity = tuple[str, int]
"""A mosaik entity of the grid simulator: its model and the row position in the model's table (a plain
tuple: ``get_data`` unpacks one per requested entity, and CPython unpacks exact tuples fastest)."""


def entities(net: pp.pandapowerNet) -> tuple[dict[str, Entity], list[CreateResult]]:
    """Entity ids -> :class:`Entity` (``Grid-0`` included) and the child entities ``create`` returns."""
    eids: dict[str, Entity] = {}
    children: list[CreateResult] = []
    for model, spec in MODEL_SPECS.items():
        table = net[spec.element]
        buses = [table[c].to_numpy() for c in _BUS_COLUMNS[spec.element]]
        for pos, idx in enumerate(table.index):
            eid = f"{model}-{idx}"
            eids[eid] = (model, pos)
            children.append({"eid": eid, "type": model, "rel": [f"Bus-{int(b[pos])}" for b in buses]})
    eids[GRID_EID] = ("Grid", 0)
    return eids, children


@dataclass(frozen=True, eq=False)
class SwitchIndex:
    """Switches: the bus each is at and what it opens (a line end, a trafo side, or a bus-bus link)."""

    bus: np.ndarray
    et: np.ndarray
    element: np.ndarray
    line_pos: np.ndarray
    """Row position of the switched line (-1 for other switches)."""
    line_side: np.ndarray
    """1 if the switch opens the line's from end, 2 its to end, 0 for other switches."""
    trafo_pos: np.ndarray
    trafo_side: np.ndarray
    """1 if the switch opens the trafo's hv side, 2 its lv side, 0 for other switches."""

    @classmethod
    def from_net(
        cls, net: pp.pandapowerNet, bus: np.ndarray, line_from: np.ndarray, trafo_hv: np.ndarray
    ) -> SwitchIndex:
        sw = net.switch
        et = sw["et"].to_numpy(dtype=str)
        element = sw["element"].to_numpy(dtype=np.int64)
        line_pos = _element_pos(net.line.index, element, et, "l")
        trafo_pos = _element_pos(net.trafo.index, element, et, "t")
        # a line switch opens the line end at its bus, a trafo switch the trafo side at its bus
        return cls(
            bus=bus,
            et=et,
            element=element,
            line_pos=line_pos,
            line_side=_side(line_pos, bus, line_from),
            trafo_pos=trafo_pos,
            trafo_side=_side(trafo_pos, bus, trafo_hv),
        )


def _element_pos(index: Iterable[Any], element: np.ndarray, et: np.ndarray, kind: str) -> np.ndarray:
    pos = {int(i): p for p, i in enumerate(index)}
    rows = [pos.get(int(e), -1) if t == kind else -1 for e, t in zip(element, et, strict=True)]
    return np.array(rows, dtype=np.int64)


def _side(pos: np.ndarray, sw_bus: np.ndarray, first_bus: np.ndarray) -> np.ndarray:
    return np.array(
        [0 if p < 0 else (1 if first_bus[p] == b else 2) for p, b in zip(pos, sw_bus, strict=True)], dtype=np.int64
    )


@dataclass(frozen=True, eq=False)
class NetIndex:
    """Row positions, bus positions and the static columns the simulator reads from a net (buses sorted)."""

    bus_pos: dict[int, int]
    """pandapower bus index -> row position."""
    bus_in_service: np.ndarray
    vmin_pu: np.ndarray
    vmax_pu: np.ndarray
    line_from: np.ndarray
    line_to: np.ndarray
    line_in_service: np.ndarray
    line_imax_ka: np.ndarray
    """``max_i_ka * df * parallel``: the current of 100 % loading."""
    trafo_hv: np.ndarray
    trafo_lv: np.ndarray
    trafo_in_service: np.ndarray
    trafo_sn_mva: np.ndarray
    """``sn_mva * parallel * df``: the apparent power of 100 % loading."""
    trafo_vn_hv_kv: np.ndarray
    trafo_vn_lv_kv: np.ndarray
    switch: SwitchIndex
    load_bus: np.ndarray
    load_in_service: np.ndarray
    sgen_bus: np.ndarray
    sgen_in_service: np.ndarray
    sgen_grid_forming: np.ndarray
    """``grid_forming`` and in service: may be the slack of an island without ext_grid."""
    st_bus: np.ndarray
    st_in_service: np.ndarray
    st_grid_forming: np.ndarray
    eg_bus: np.ndarray
    eg_in_service: np.ndarray
    shunt_bus: np.ndarray

    @property
    def n_bus(self) -> int:
        return len(self.bus_in_service)

    @classmethod
    def from_net(cls, net: pp.pandapowerNet) -> NetIndex:
        """The index of ``net``, whose bus table must be sorted by index."""
        bus_pos = {int(b): i for i, b in enumerate(net.bus.index.to_numpy())}

        def pos_of(values: Any) -> np.ndarray:
            return np.array([bus_pos[int(b)] for b in values], dtype=np.int64)

        line, trafo, sgen, st = net.line, net.trafo, net.sgen, net.storage
        line_from = pos_of(line["from_bus"])
        trafo_hv = pos_of(trafo["hv_bus"])
        sgen_in_service = in_service(sgen)
        st_in_service = in_service(st)
        return cls(
            bus_pos=bus_pos,
            bus_in_service=in_service(net.bus),
            vmin_pu=float_column(net.bus, "min_vm_pu", DEFAULT_MIN_VM_PU),
            vmax_pu=float_column(net.bus, "max_vm_pu", DEFAULT_MAX_VM_PU),
            line_from=line_from,
            line_to=pos_of(line["to_bus"]),
            line_in_service=in_service(line),
            line_imax_ka=float_column(line, "max_i_ka", np.inf)
            * float_column(line, "df", 1.0)
            * float_column(line, "parallel", 1.0),
            trafo_hv=trafo_hv,
            trafo_lv=pos_of(trafo["lv_bus"]),
            trafo_in_service=in_service(trafo),
            trafo_sn_mva=float_column(trafo, "sn_mva", np.inf)
            * float_column(trafo, "parallel", 1.0)
            * float_column(trafo, "df", 1.0),
            trafo_vn_hv_kv=float_column(trafo, "vn_hv_kv", 0.0),
            trafo_vn_lv_kv=float_column(trafo, "vn_lv_kv", 0.0),
            switch=SwitchIndex.from_net(net, pos_of(net.switch["bus"]), line_from, trafo_hv),
            load_bus=pos_of(net.load["bus"]),
            load_in_service=in_service(net.load),
            sgen_bus=pos_of(sgen["bus"]),
            sgen_in_service=sgen_in_service,
            sgen_grid_forming=bool_column(sgen, "grid_forming", False) & sgen_in_service,
            st_bus=pos_of(st["bus"]),
            st_in_service=st_in_service,
            st_grid_forming=bool_column(st, "grid_forming", False) & st_in_service,
            eg_bus=pos_of(net.ext_grid["bus"]),
            eg_in_service=in_service(net.ext_grid),
            shunt_bus=pos_of(net.shunt["bus"]) if len(net.shunt) else np.zeros(0, dtype=np.int64),
        )
