"""Where each party's units sit in a pandapower net: the layout a scenario builds before anything runs.

``NetLayout`` is the net and, per party (an MG or the network operator ``DN``), the pandapower indices of
its elements, and per cluster of MGs its bus, feeder line and switch (and the ties between clusters); the
helpers here put an MG behind its point of common coupling, add a party's units at a bus and join two buses
by a line behind a switch (:mod:`scenarios.build` uses them to build every scenario's net). MGs and units
go into a :class:`PendingElements` first and into the net in one go per table: one element at a time takes
10-20 ms each on the tables of a net of thousands of buses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandapower as pp

from scenarios.config import MgCfg, UnitsCfg

DN = "DN"


@dataclass
class PartyUnits:
    """pandapower indices of one party's (an MG's or the DN's) elements."""

    bus: int
    load: list[int] = field(default_factory=list)
    pv: list[int] = field(default_factory=list)
    wind: list[int] = field(default_factory=list)
    diesel: int | None = None
    storage: int | None = None
    pcc_line: int | None = None
    pcc_switch: int | None = None
    owner_loads: dict[str, int] = field(default_factory=dict)  # owner -> load index
    ev: int | None = None  # the EV charging load


@dataclass
class ClusterUnits:
    """pandapower indices of one cluster: its bus, the network bus its feeder line leaves from, that line
    and its switch (``"<name> feeder"``, at the network bus; closed at the start), and its MGs' names."""

    bus: int
    network_bus: int
    line: int
    switch: int
    mgs: list[str] = field(default_factory=list)


@dataclass
class ClusterTie:
    """A normally-open line between two cluster buses: ``name`` (``"<C1>-<C2> tie"``, its line's and its
    switch's), the two clusters, and the pandapower indices of the line and its switch (at ``between[0]``'s
    bus; open at the start)."""

    name: str
    between: tuple[str, str]
    line: int
    switch: int


@dataclass
class NetLayout:
    net: Any
    parties: dict[str, PartyUnits]
    feeder_loads: list[int]
    tie_switches: list[int]
    clusters: dict[str, ClusterUnits] = field(default_factory=dict)
    """Clusters by name (config ``[[clusters]]``); their switches are not ``tie_switches``."""
    cluster_ties: list[ClusterTie] = field(default_factory=list)
    svcs: dict[str, int] = field(default_factory=dict)
    """The network operator's static var compensators (config ``[[svcs]]``): name -> sgen index."""


class PendingElements:
    """Elements to add to a net, created in one go per table (:meth:`flush`) instead of one pandapower call
    each: a one-element ``pp.create_*`` call on a table of thousands of rows takes 10-20 ms.

    ``add("load", bus=..., p_mw=..., ...)`` takes the arguments of the one-element ``pp.create_load`` (extra
    ones become columns, like ``eta_ch``) and returns the index pandapower would have given the element
    (the table's highest index + 1, or 0): other elements may refer to it before it is in the net (a PCC
    line and switch to their MG's bus). Nothing else may add to these tables before :meth:`flush`. Give the
    elements of a table the same arguments where pandapower's default is not NaN: one an element leaves out
    while others give it is NaN for it."""

    # table: pandapower's one-element and bulk functions; flushed in this order, so that what an element
    # refers to (a bus, a line) is in the net before it
    CREATE: ClassVar[dict[str, tuple[str, str]]] = {
        "bus": ("create_bus", "create_buses"),
        "line": ("create_line_from_parameters", "create_lines_from_parameters"),
        "switch": ("create_switch", "create_switches"),
        "load": ("create_load", "create_loads"),
        "sgen": ("create_sgen", "create_sgens"),
        "storage": ("create_storage", "create_storages"),
    }
    PLURAL: ClassVar[dict[str, str]] = {
        "bus": "buses",
        "from_bus": "from_buses",
        "to_bus": "to_buses",
        "element": "elements",
    }
    """The one-element functions' argument names that the bulk ones spell in the plural."""

    def __init__(self, net: Any) -> None:
        self.net = net
        self.rows: dict[str, list[dict[str, Any]]] = {table: [] for table in self.CREATE}

    def _first_index(self, table: str) -> int:
        existing = self.net[table].index
        return int(existing.max()) + 1 if len(existing) else 0

    def add(self, table: str, **values: Any) -> int:
        rows = self.rows[table]
        rows.append(values)
        return self._first_index(table) + len(rows) - 1

    def flush(self) -> None:
        """Create the pending elements: per table the first by pandapower's one-element function, which sets
        up the table's columns and their dtypes as adding one by one does (the bulk functions keep what a
        table has, e.g. SimBench's empty object columns for ``min_p_mw`` or ``controllable``), the rest by its
        bulk function in one call."""
        for table, rows in self.rows.items():
            if not rows:
                continue
            one, bulk = (getattr(pp, name) for name in self.CREATE[table])
            had_generator_type = "generator_type" in self.net[table].columns
            first = self._first_index(table)
            one(self.net, index=first, **rows[0])
            rest = rows[1:]
            if rest:
                keys = dict.fromkeys(key for row in rest for key in row)
                columns: dict[str, Any] = {self.PLURAL.get(k, k): [row.get(k, math.nan) for row in rest] for k in keys}
                if table == "bus":
                    columns["nr_buses"] = len(rest)
                bulk(self.net, index=list(range(first + 1, first + len(rows))), **columns)
            if not had_generator_type and "generator_type" in self.net[table].columns:
                # create_sgens always adds it ("current_source", pandapower's default); create_sgen does not
                self.net[table].drop(columns="generator_type", inplace=True)
            rows.clear()


def _add_units(pending: PendingElements, units: UnitsCfg, bus: int, name: str, party: PartyUnits) -> None:
    if units.load is not None:
        p = units.load.peak_mw
        q = p * math.tan(math.acos(units.load.cos_phi))
        party.load.append(pending.add("load", bus=bus, p_mw=p, q_mvar=q, name=f"{name} load"))
    ev = getattr(units, "ev", None)
    if ev is not None:
        q = ev.p_max_mw * math.tan(math.acos(ev.cos_phi))
        party.ev = pending.add("load", bus=bus, p_mw=ev.p_max_mw, q_mvar=q, name=f"{name} EV")
    for o in getattr(units, "owners", []):
        q = o.p_peak_mw * math.tan(math.acos(o.cos_phi))
        party.owner_loads[o.owner] = pending.add("load", bus=bus, p_mw=o.p_peak_mw, q_mvar=q, name=f"{name} {o.owner}")
    renewables = (
        (party.pv, units.pv.peak_mw if units.pv else None, "PV", "PV"),
        (party.wind, units.wind.p_rated_mw if units.wind else None, "wind", "WP"),
    )
    for units_of_kind, rating_mw, label, sgen_type in renewables:
        if rating_mw is not None:
            units_of_kind.append(
                pending.add(
                    "sgen",
                    bus=bus,
                    p_mw=0.0,
                    max_p_mw=rating_mw,
                    name=f"{name} {label}",
                    type=sgen_type,
                    controllable=False,
                    grid_forming=False,
                )
            )
    gen = units.generator
    if gen is not None:
        kind = "CHP" if units.chp is not None else "diesel"
        party.diesel = pending.add(
            "sgen",
            bus=bus,
            p_mw=0.0,
            max_p_mw=gen.p_max_mw,
            min_p_mw=0.0,
            name=f"{name} {kind}",
            type=kind,
            controllable=True,
            grid_forming=units.battery is None or not units.battery.grid_forming,
        )
    if units.battery is not None:
        b = units.battery
        party.storage = pending.add(
            "storage",
            bus=bus,
            p_mw=0.0,
            max_e_mwh=b.e_max_mwh,
            name=f"{name} battery",
            soc_percent=100.0 * b.e_init_mwh / b.e_max_mwh,
            min_e_mwh=b.e_min_mwh,
            max_p_mw=b.p_ch_max_mw,
            min_p_mw=-b.p_dis_max_mw,
            controllable=True,
            eta_ch=b.eta_ch,
            eta_dis=b.eta_dis,
            grid_forming=b.grid_forming,
        )


def add_mg_behind_pcc(
    pending: PendingElements,
    mg: MgCfg,
    vn_kv: float,
    r_ohm_per_km: float,
    x_ohm_per_km: float,
    max_i_ka: float,
    vm_band: tuple[float, float],
    from_bus: int | None = None,
) -> PartyUnits:
    """An MG on a bus of its own, joined to its feeder bus (or, nested, to its parent's bus:
    ``from_bus``) by a short line whose switch is its PCC (all in ``pending``, created by its flush)."""
    at = mg.bus if from_bus is None else from_bus
    mg_bus = pending.add("bus", vn_kv=vn_kv, name=mg.name, min_vm_pu=vm_band[0], max_vm_pu=vm_band[1])
    line = pending.add(
        "line",
        from_bus=at,
        to_bus=mg_bus,
        length_km=mg.pcc_line_length_km,
        r_ohm_per_km=r_ohm_per_km,
        x_ohm_per_km=x_ohm_per_km,
        c_nf_per_km=0.0,
        max_i_ka=max_i_ka,
        name=f"{mg.name} PCC",
    )
    sw = pending.add("switch", bus=at, element=line, et="l", closed=True, name=f"{mg.name} PCC")
    party = PartyUnits(bus=mg_bus, pcc_line=line, pcc_switch=sw)
    _add_units(pending, mg, mg_bus, mg.name, party)
    return party


def add_switched_line(
    net: Any,
    from_bus: int,
    to_bus: int,
    length_km: float,
    line_data: tuple[float, float, float],
    name: str,
    closed: bool,
) -> tuple[int, int]:
    """A line ``name`` from ``from_bus`` to ``to_bus`` (``line_data``: r and x in ohm/km, rating in kA; no
    capacitance, like a PCC line) behind a switch of the same name at ``from_bus``: (line, switch)."""
    r_ohm_per_km, x_ohm_per_km, max_i_ka = line_data
    line = pp.create_line_from_parameters(
        net,
        from_bus=from_bus,
        to_bus=to_bus,
        length_km=length_km,
        r_ohm_per_km=r_ohm_per_km,
        x_ohm_per_km=x_ohm_per_km,
        c_nf_per_km=0.0,
        max_i_ka=max_i_ka,
        name=name,
    )
    switch = pp.create_switch(net, bus=from_bus, element=line, et="l", closed=closed, name=name)
    return int(line), int(switch)


def finish_flags(net: Any) -> None:
    """``grid_forming`` as a clean bool column of sgen and storage (the grid simulator reads it)."""
    for table in (net.sgen, net.storage):
        if "grid_forming" in table.columns:
            table["grid_forming"] = [v is True or v == 1 for v in table["grid_forming"]]


def party_loads(party: PartyUnits) -> list[int]:
    """The pandapower indices of a party's loads (its own load or the network's feeder loads, its
    owners' loads and its EV charging)."""
    evs = [party.ev] if party.ev is not None else []
    return list(dict.fromkeys([*party.load, *party.owner_loads.values(), *evs]))


def mark_shed_groups(net: Any, layout: NetLayout) -> None:
    """``net.load.shed_group``: the party's name on the loads of a party with several loads, so the grid
    splits the shed its EMS asks for over them in proportion to their demand (one load: no group)."""
    net.load["shed_group"] = None
    for name, party in layout.parties.items():
        loads = party_loads(party)
        if len(loads) > 1:
            net.load.loc[loads, "shed_group"] = name
