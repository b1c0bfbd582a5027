"""What the ``clustered`` strategy knows of a scenario: its clusters, their switchable links and prices.

Typed data only (no Pyomo, no mosaik). :func:`cluster_system` reads it from the ``site`` the scenario
hands to network-aware EMSs (the net as pandapower JSON, the clusters, their ties, each MG's PCC);
:func:`svcs_of` the network operator's static var compensators.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Link:
    """A switchable branch (an MG's PCC line, a cluster's feeder line or a tie between two clusters):
    its series impedance, its rating at nominal voltage and the pandapower switch that opens it."""

    name: str
    r_ohm: float
    x_ohm: float
    v_kv: float
    max_mva: float
    switch: int
    line: int

    @property
    def max_mw(self) -> float:
        """The largest active flow the link may carry (its apparent-power rating at nominal voltage)."""
        return self.max_mva


@dataclass(frozen=True)
class ClusterSpec:
    """One cluster: its MGs (each behind its PCC link on the cluster's bus) and its feeder link to the
    distribution network (at ``network_bus``)."""

    name: str
    mgs: tuple[str, ...]
    bus: int
    network_bus: int
    feeder: Link


@dataclass(frozen=True)
class TieSpec:
    """A tie between clusters ``a`` and ``b`` (flow positive from a to b)."""

    name: str
    a: str
    b: str
    link: Link


@dataclass(frozen=True)
class ClusterSystem:
    """The clusters, the ties between them and every clustered MG's PCC link."""

    clusters: tuple[ClusterSpec, ...]
    ties: tuple[TieSpec, ...]
    pcc: Mapping[str, Link]

    def cluster_of(self, mg: str) -> ClusterSpec:
        for c in self.clusters:
            if mg in c.mgs:
                return c
        raise KeyError(f"MG {mg!r} is in no cluster")

    def neighbours(self, cluster: str) -> list[str]:
        return [t.b if t.a == cluster else t.a for t in self.ties if cluster in (t.a, t.b)]

    @property
    def mgs(self) -> list[str]:
        return [m for c in self.clusters for m in c.mgs]

    @property
    def links(self) -> list[Link]:
        return [*self.pcc.values(), *(c.feeder for c in self.clusters), *(t.link for t in self.ties)]


@dataclass(frozen=True)
class SvcSpec:
    """A static var compensator of the network operator: its network bus and reactive range (Mvar,
    generator sign)."""

    name: str
    bus: int
    q_min_mvar: float
    q_max_mvar: float


def svcs_of(site: Mapping[str, Any]) -> tuple[SvcSpec, ...]:
    """The scenario's SVCs (``site["svcs"]``: name -> bus, q_min_mvar, q_max_mvar; none if absent)."""
    return tuple(
        SvcSpec(str(name), int(v["bus"]), float(v["q_min_mvar"]), float(v["q_max_mvar"]))
        for name, v in (site.get("svcs") or {}).items()
    )


def _link(net: Any, fallback_name: str, line: int, switch: int) -> Link:
    """The link of ``line`` behind ``switch``, named as the switch is in the net (else ``fallback_name``)."""
    row = net.line.loc[line]
    own = net.switch.at[switch, "name"] if "name" in net.switch.columns else None
    name = str(own) if isinstance(own, str) and own else fallback_name
    par = float(row.get("parallel", 1.0) or 1.0)
    v_kv = float(net.bus.at[int(row["from_bus"]), "vn_kv"])
    i_ka = float(row["max_i_ka"]) * float(row.get("df", 1.0) or 1.0) * par
    return Link(
        name=name,
        r_ohm=float(row["r_ohm_per_km"]) * float(row["length_km"]) / par,
        x_ohm=float(row["x_ohm_per_km"]) * float(row["length_km"]) / par,
        v_kv=v_kv,
        max_mva=math.sqrt(3.0) * v_kv * i_ka,
        switch=int(switch),
        line=int(line),
    )


def cluster_system(net: Any, site: Mapping[str, Any]) -> ClusterSystem:
    """The cluster system of a scenario's ``site`` (``clusters``, ``cluster_ties``, ``pcc_switches``) on
    ``net``; ValueError if the site has no clusters."""
    clusters_in = site.get("clusters") or {}
    if not clusters_in:
        raise ValueError("clustered: the scenario has no clusters (config [[clusters]])")
    pcc_switch = {str(k): int(v) for k, v in (site.get("pcc_switches") or {}).items()}
    clusters, pcc = [], {}
    for name, c in clusters_in.items():
        mgs = tuple(str(m) for m in c["mgs"])
        for mg in mgs:
            sw = pcc_switch[mg]
            pcc[mg] = _link(net, f"{mg} PCC", int(net.switch.at[sw, "element"]), sw)
        feeder = _link(net, str(c.get("switch_name", f"{name} feeder")), int(c["line"]), int(c["switch"]))
        clusters.append(ClusterSpec(str(name), mgs, int(c["bus"]), int(c["network_bus"]), feeder))
    ties = [
        TieSpec(
            str(t["name"]),
            str(t["between"][0]),
            str(t["between"][1]),
            _link(net, str(t["name"]), int(t["line"]), int(t["switch"])),
        )
        for t in site.get("cluster_ties") or []
    ]
    return ClusterSystem(tuple(clusters), tuple(ties), pcc)
