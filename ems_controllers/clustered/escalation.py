"""The lower level's sub-levels (spec 004): which switches may close, hour by hour, escalating only
where a level cannot supply the MGs.

Each cluster has a level per hour:

1. every MG on its own (islanded; no switch may close);
2. the MGs of the cluster may join on the cluster's bus (their PCC switches may close);
3. the cluster may join neighbouring clusters (the ties at it may close, and the neighbours' PCCs);
4. the cluster may join the distribution network (its feeder switch may close).

Radial operation, as distribution networks run: where the ties that may close would join two clusters
that may both close their feeders, those ties stay open at that hour (a closed loop through the network
would split its flows by impedance, not as the clusters' transport model plans them); each of those
clusters has the network through its own feeder.

All clusters start at level 1. After a solve, a cluster where some MG sheds load or curtails renewables at
an hour (it cannot balance with what the level lets it reach: a deficit or a surplus) goes one level up at
that hour; the solve is repeated until no cluster is in trouble at a level below 4. Pure logic, no solver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ems_controllers.clustered.system import ClusterSystem

TOP_LEVEL = 4
TROUBLE_MW = 1e-4
"""Shedding or curtailment above this (MW) at an hour means the MG could not balance there."""


@dataclass(frozen=True)
class Allowed:
    """Which switches may close, per hour (True: the solver decides; False: held open)."""

    pcc: dict[str, tuple[bool, ...]]
    feeder: dict[str, tuple[bool, ...]]
    tie: dict[str, tuple[bool, ...]]
    shed_cap_mw: dict[str, tuple[float, ...]] | None = None
    """Per MG and hour the most it may shed (None: any amount, at its penalty)."""
    feeder_fixed_mw: dict[str, tuple[float, ...]] | None = None
    """Per cluster and hour its exchange with the network as the upper level granted it (None: free)."""


def allowed(system: ClusterSystem, levels: Mapping[str, tuple[int, ...]]) -> Allowed:
    """The switches each hour's levels let close (module docstring)."""
    n = len(next(iter(levels.values())))
    pcc: dict[str, tuple[bool, ...]] = {}
    for c in system.clusters:
        nbrs = system.neighbours(c.name)
        ok = tuple(levels[c.name][t] >= 2 or any(levels[x][t] >= 3 for x in nbrs) for t in range(n))
        pcc.update(dict.fromkeys(c.mgs, ok))
    feeder = {c.name: tuple(levels[c.name][t] >= TOP_LEVEL for t in range(n)) for c in system.clusters}
    tie = {k.name: [max(levels[k.a][t], levels[k.b][t]) >= 3 for t in range(n)] for k in system.ties}
    for t in range(n):
        for group in tie_groups(system, {k: v[t] for k, v in tie.items()}):
            if sum(feeder[c][t] for c in group.clusters) > 1:
                for k in group.ties:
                    tie[k][t] = False
    return Allowed(pcc, feeder, {k: tuple(v) for k, v in tie.items()})


@dataclass(frozen=True)
class TieGroup:
    clusters: tuple[str, ...]
    ties: tuple[str, ...]


def tie_groups(system: ClusterSystem, tie_ok: Mapping[str, bool]) -> list[TieGroup]:
    """The clusters joined by the ties that may close (connected components), with those ties."""
    root = {c.name: c.name for c in system.clusters}

    def find(c: str) -> str:
        while root[c] != c:
            c = root[c]
        return c

    for k in system.ties:
        if tie_ok[k.name]:
            root[find(k.a)] = find(k.b)
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for c in system.clusters:
        groups.setdefault(find(c.name), ([], []))[0].append(c.name)
    for k in system.ties:
        if tie_ok[k.name]:
            groups[find(k.a)][1].append(k.name)
    return [TieGroup(tuple(cs), tuple(ks)) for cs, ks in groups.values()]


def escalate(
    system: ClusterSystem,
    levels: Mapping[str, tuple[int, ...]],
    trouble_mw: Mapping[str, tuple[float, ...]],
) -> dict[str, tuple[int, ...]] | None:
    """The next levels, given each MG's shedding + curtailment per hour (MW) at ``levels``; None when no
    cluster below the top level is in trouble (the levels are final)."""
    out = {c: list(v) for c, v in levels.items()}
    changed = False
    for c in system.clusters:
        for t, level in enumerate(levels[c.name]):
            if level < TOP_LEVEL and any(trouble_mw[m][t] > TROUBLE_MW for m in c.mgs):
                out[c.name][t] = level + 1
                changed = True
    return {c: tuple(v) for c, v in out.items()} if changed else None


def start_levels(system: ClusterSystem, n_steps: int) -> dict[str, tuple[int, ...]]:
    return {c.name: (1,) * n_steps for c in system.clusters}
