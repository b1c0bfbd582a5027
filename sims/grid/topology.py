"""Topology: which buses a switch state connects, which islands are energised and by what.

scipy connected components on the bus graph of the closed branches: islands with an ext_grid are
supplied; an island without one but with an in-service ``grid_forming`` unit (first such sgen, else first
such storage) is energised by that unit (its slack); all other islands are unsupplied. Results are cached
per switch state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from sims.grid.netindex import NetIndex

CACHE_SIZE = 256
"""Switch states kept; the cache starts over when it holds more."""


class Unit(NamedTuple):
    """A unit by its table (``"sgen"`` or ``"storage"``) and row position."""

    kind: str
    pos: int


@dataclass(frozen=True, eq=False)
class Topology:
    """The topology of one switch state. Bus arrays have one entry per bus position."""

    closed: np.ndarray
    """The switch state: one closed flag per switch row."""
    key: bytes
    """``closed`` as bytes (the cache key)."""
    generation: int
    """Which filling of the :class:`TopologyCache` this belongs to (solver state cached per topology
    lives as long as this pair of key and generation)."""
    label: np.ndarray
    """Connected-component label of each bus, -1 for buses out of service."""
    energised: np.ndarray
    """Buses of islands with an ext_grid or a grid-forming unit."""
    supplied: np.ndarray
    """Buses of islands with an ext_grid."""
    gf_islands: dict[int, Unit]
    """Island label -> the grid-forming unit that is its slack (islands without ext_grid only)."""
    line_side: np.ndarray
    """Per line: bit 0 from end connected, bit 1 to end connected (in service and switches only)."""
    line_state: np.ndarray
    """``line_side`` with only the ends at energised buses connected (lightsim2grid's side status)."""
    trafo_side: np.ndarray
    """Per trafo: bit 0 hv side connected, bit 1 lv side connected."""
    trafo_state: np.ndarray
    has_bus_switch: bool
    load_on: np.ndarray
    """Loads in service on energised buses (likewise ``sgen_on``, ``st_on``)."""
    sgen_on: np.ndarray
    st_on: np.ndarray
    load_off: np.ndarray
    """Loads in service on buses that are not energised."""

    @property
    def slack_units(self) -> list[Unit]:
        """The grid-forming units that balance an island this step."""
        return list(self.gf_islands.values())


def line_state(index: NetIndex, side: np.ndarray, energised: np.ndarray) -> np.ndarray:
    """Line side status for lightsim2grid: only sides at energised buses stay connected."""
    state = side.copy()
    state[~energised[index.line_from]] &= ~1
    state[~energised[index.line_to]] &= ~2
    return state


def trafo_state(index: NetIndex, side: np.ndarray, energised: np.ndarray) -> np.ndarray:
    """Trafo side status for lightsim2grid: only sides at energised buses stay connected."""
    state = side.copy()
    state[~energised[index.trafo_hv]] &= ~1
    state[~energised[index.trafo_lv]] &= ~2
    return state


class UnitMasks(NamedTuple):
    """Which loads, sgens and storages are in service on energised buses, and which loads are in service on
    buses that are not."""

    load_on: np.ndarray
    sgen_on: np.ndarray
    st_on: np.ndarray
    load_off: np.ndarray


def unit_masks(index: NetIndex, energised: np.ndarray) -> UnitMasks:
    load_energised = energised[index.load_bus]
    return UnitMasks(
        load_on=index.load_in_service & load_energised,
        sgen_on=index.sgen_in_service & energised[index.sgen_bus],
        st_on=index.st_in_service & energised[index.st_bus],
        load_off=index.load_in_service & ~load_energised,
    )


def supplied_part(index: NetIndex, topo: Topology) -> Topology:
    """``topo`` as seen by the ext_grid's power flow: only the supplied buses energised."""
    return dataclasses.replace(
        topo,
        energised=topo.supplied,
        line_state=line_state(index, topo.line_side, topo.supplied),
        trafo_state=trafo_state(index, topo.trafo_side, topo.supplied),
        **unit_masks(index, topo.supplied)._asdict(),
    )


def _branch_sides(index: NetIndex, closed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected sides of every line and trafo (in service, less the ends opened by switches)."""
    sw = index.switch
    side = np.where(index.line_in_service, 3, 0)
    open_sw = ~closed
    for p, s in zip(sw.line_pos[open_sw], sw.line_side[open_sw], strict=True):
        if p >= 0:
            side[p] &= ~s
    tside = np.where(index.trafo_in_service, 3, 0)
    for p, s in zip(sw.trafo_pos[open_sw], sw.trafo_side[open_sw], strict=True):
        if p >= 0:
            tside[p] &= ~s
    return side, tside


def _bus_labels(index: NetIndex, closed: np.ndarray, side: np.ndarray, tside: np.ndarray) -> np.ndarray:
    """Connected-component label of every bus over the closed branches and bus-bus switches (-1: off)."""
    sw = index.switch
    both = side == 3
    tboth = tside == 3
    rows = [index.line_from[both], index.trafo_hv[tboth]]
    cols = [index.line_to[both], index.trafo_lv[tboth]]
    bb = (sw.et == "b") & closed
    if bb.any():
        rows.append(sw.bus[bb])
        cols.append(np.array([index.bus_pos[int(e)] for e in sw.element[bb]], dtype=np.int64))
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    keep = index.bus_in_service[r] & index.bus_in_service[c]
    n = index.n_bus
    graph = coo_matrix((np.ones(int(keep.sum())), (r[keep], c[keep])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    return np.where(index.bus_in_service, label, -1)


def analyse(index: NetIndex, closed: np.ndarray, generation: int = 0) -> Topology:
    """The topology of the switch state ``closed`` (one flag per switch row)."""
    side, tside = _branch_sides(index, closed)
    label = _bus_labels(index, closed, side, tside)
    eg_bus = index.eg_bus[index.eg_in_service]
    supplied_labels = set(label[eg_bus].tolist()) - {-1}
    gf_islands: dict[int, Unit] = {}
    for kind, mask, buses in (
        ("sgen", index.sgen_grid_forming, index.sgen_bus),
        ("storage", index.st_grid_forming, index.st_bus),
    ):
        for pos in np.flatnonzero(mask).tolist():
            lab = int(label[buses[pos]])
            if lab >= 0 and lab not in supplied_labels and lab not in gf_islands:
                gf_islands[lab] = Unit(kind, pos)
    energised_labels = supplied_labels | set(gf_islands)
    energised = np.isin(label, list(energised_labels)) & (label >= 0)
    supplied = np.isin(label, list(supplied_labels)) & (label >= 0)
    return Topology(
        closed=closed.copy(),
        key=closed.tobytes(),
        generation=generation,
        label=label,
        energised=energised,
        supplied=supplied,
        gf_islands=gf_islands,
        line_side=side,
        line_state=line_state(index, side, energised),
        trafo_side=tside,
        trafo_state=trafo_state(index, tside, energised),
        has_bus_switch=bool((index.switch.et == "b").any()),
        **unit_masks(index, energised)._asdict(),
    )


class TopologyCache:
    """Topologies by switch state; more than :data:`CACHE_SIZE` states start a new generation."""

    def __init__(self, index: NetIndex) -> None:
        self.index = index
        self.generation = 0
        self._cache: dict[bytes, Topology] = {}

    def get(self, closed: np.ndarray) -> Topology:
        key = closed.tobytes()
        topo = self._cache.get(key)
        if topo is None:
            if len(self._cache) > CACHE_SIZE:
                self._cache.clear()
                self.generation += 1
            topo = analyse(self.index, closed, self.generation)
            self._cache[key] = topo
        return topo
