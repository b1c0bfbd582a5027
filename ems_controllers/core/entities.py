"""The entity map of a run: which mosaik entity (full id ``sim_id.entity_id``) is which unit of which party.

The wiring builds it, the record keeps it as JSON in the root attribute ``entity_map`` (the layout of
that JSON is part of the file format, see ``docs/architecture.md``), and the KPIs, plots, audit and a
strategy's KPI hook read it back through :meth:`EntityMap.from_dict`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

DN = "DN"
"""The network operator party's name."""


@dataclass
class UnitProfiles:
    """The profile entities behind a party's loads, PV and wind units (actuals and forecasts)."""

    load: list[str] = field(default_factory=list)
    pv: list[str] = field(default_factory=list)
    wind: list[str] = field(default_factory=list)


@dataclass
class PartyEntities:
    """One party's entities: its EMS entity and its units in the grid simulator."""

    ems: str
    kind: Literal["mg", "dn"]
    load: list[str] = field(default_factory=list)
    pv: list[str] = field(default_factory=list)
    wind: list[str] = field(default_factory=list)
    diesel: str | None = None
    storage: str | None = None
    pcc_switch: str | None = None
    pcc_line: str | None = None  # the MG's import is the flow into its bus: minus the line's p_to_mw
    parent: str | None = None
    owners: dict[str, str] = field(default_factory=dict)  # owner -> its agent entity
    profiles: UnitProfiles = field(default_factory=UnitProfiles)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PartyEntities:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "profiles"}
        return cls(**known, profiles=UnitProfiles(**d.get("profiles", {})))


@dataclass
class EntityMap:
    grid: str
    ext_grid: list[str] = field(default_factory=list)
    parties: dict[str, PartyEntities] = field(default_factory=dict)
    tie_switches: list[str] = field(default_factory=list)
    system: str | None = None  # the strategy's system-level entity, if it has one
    cluster_switches: dict[str, str] = field(default_factory=dict)
    """Cluster switch name (``"<C> feeder"``, ``"<C1>-<C2> tie"``) -> the grid's Switch entity."""
    switch_entities: dict[str, str] = field(default_factory=dict)
    """Cluster switch name -> the strategy's entity that drives it (its contract's ``switch_entity``)."""
    svcs: dict[str, str] = field(default_factory=dict)
    """Static var compensator name -> the grid's StaticGen entity."""
    svc_entities: dict[str, str] = field(default_factory=dict)
    """SVC name -> the strategy's entity that sets it (its contract's ``svc_entity``)."""

    @property
    def grid_sim(self) -> str:
        """The grid simulator's id (the part of every grid entity's full id before the dot)."""
        return self.grid.split(".", 1)[0]

    @property
    def operator(self) -> PartyEntities | None:
        return self.parties.get(DN)

    def mgs(self) -> dict[str, PartyEntities]:
        """The microgrids (every party but the network operator)."""
        return {n: p for n, p in self.parties.items() if p.kind == "mg"}

    def named_grid_entities(self) -> set[str]:
        """The grid simulator's entities this map names: the Grid and external grids, every party's units,
        PCC switch and line, the tie and cluster switches and the SVCs; not the network operator's loads
        (the net's own feeder loads, thousands on a large grid)."""
        ids = {self.grid, *self.ext_grid, *self.tie_switches, *self.cluster_switches.values(), *self.svcs.values()}
        for p in self.parties.values():
            ids.update([*(p.load if p.kind == "mg" else []), *p.pv, *p.wind])
            ids.update(x for x in (p.diesel, p.storage, p.pcc_switch, p.pcc_line) if x is not None)
        return ids

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # absent where a run has none
        for key in ("system", "cluster_switches", "switch_entities", "svcs", "svc_entities"):
            if not d[key]:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EntityMap:
        return cls(
            grid=d["grid"],
            ext_grid=list(d.get("ext_grid", [])),
            parties={n: PartyEntities.from_dict(p) for n, p in d.get("parties", {}).items()},
            tie_switches=list(d.get("tie_switches", [])),
            system=d.get("system", d.get("community")),
            cluster_switches=dict(d.get("cluster_switches", {})),
            switch_entities=dict(d.get("switch_entities", {})),
            svcs=dict(d.get("svcs", {})),
            svc_entities=dict(d.get("svc_entities", {})),
        )
