"""What the ``clustered`` simulator's ``Switch``, ``Svc`` and ``Clusters`` entities output at a step, from the
planning round that covers it (pure functions of the typed round; no mosaik)."""

from __future__ import annotations

import math
from typing import Any

from ems_controllers.clustered.escalation import TOP_LEVEL, tie_groups
from ems_controllers.clustered.model import ClusteredDetail
from ems_controllers.clustered.pareto import OBJECTIVES
from ems_controllers.clustered.system import ClusterSystem

Active = tuple[int, ClusteredDetail] | None
"""Step k of the round that covers the current step, or None (no plan: the normal switch states)."""


def switch_outputs(system: ClusterSystem, name: str, active: Active) -> dict[str, Any]:
    """``closed`` and ``planned_flow_mw`` of the cluster switch ``name`` (a cluster's feeder or a tie)."""
    feeder = next((c.name for c in system.clusters if c.feeder.name == name), None)
    tie = next((t.name for t in system.ties if t.link.name == name), None)
    if feeder is None and tie is None:
        raise ValueError(f"clustered: no cluster switch named {name!r}")
    if active is None:
        return {"closed": feeder is not None, "planned_flow_mw": None}
    k, detail = active
    s = detail.schedule
    if feeder is not None:
        return {"closed": bool(s.feeder_closed[feeder][k]), "planned_flow_mw": float(s.feeder_mw[feeder][k])}
    assert tie is not None
    return {"closed": bool(s.tie_closed[tie][k]), "planned_flow_mw": float(s.tie_mw[tie][k])}


def svc_outputs(name: str, active: Active) -> dict[str, Any]:
    """``q_mvar`` of the SVC ``name``: the upper level's setpoint for the step (0 without a plan)."""
    if active is None or active[1].upper is None:
        return {"q_mvar": 0.0}
    k, detail = active
    assert detail.upper is not None
    return {"q_mvar": float(detail.upper.svc_q_mvar[name][k])}


def islanded_mgs(system: ClusterSystem, detail: ClusteredDetail, k: int) -> int:
    """How many MGs the plan leaves without a path to the distribution network at step k."""
    s = detail.schedule
    fed: set[str] = set()
    for group in tie_groups(system, {t: closed[k] for t, closed in s.tie_closed.items()}):
        if any(s.feeder_closed[c][k] for c in group.clusters):
            fed.update(group.clusters)
    return sum(1 for c in system.clusters for m in c.mgs if not (s.pcc_closed[m][k] and c.name in fed))


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def system_outputs(system: ClusterSystem, active: Active, *, new_plan: bool) -> dict[str, Any]:
    """The ``Clusters`` entity's outputs: the step's levels, losses and predictions, and at a new plan
    the front, the pick, the payoff table and the solve times."""
    if active is None:
        return {}
    k, detail = active
    out: dict[str, Any] = {
        "cluster_levels": [float(detail.lower.levels[c.name][k]) for c in system.clusters],
        "lower_loss_mw": detail.schedule.loss_mw[k],
        "islanded_mgs": islanded_mgs(system, detail, k),
    }
    up = detail.upper
    if up is not None:
        out.update(
            network_loss_mw=up.loss_mw[k],
            substation_import_mw=up.substation_import_mw[k],
            predicted_min_vm_pu=up.predicted_min_vm_pu[k],
            predicted_max_vm_pu=up.predicted_max_vm_pu[k],
            predicted_max_loading_percent=up.predicted_max_loading_percent[k],
        )
    if new_plan:
        out.update(_round_outputs(detail))
    return out


def _round_outputs(detail: ClusteredDetail) -> dict[str, Any]:
    low = detail.lower
    rounds = [*low.level_rounds_s, *([math.nan] * (TOP_LEVEL - len(low.level_rounds_s)))]
    points = low.front.points
    return {
        "level_round_s": rounds[:TOP_LEVEL],
        "payoff_s": low.payoff_s,
        "front_s": low.front_s,
        "pick_s": low.pick_s,
        "upper_s": detail.upper.solve_s if detail.upper is not None else None,
        "reschedule_s": detail.reschedule_s,
        "rescheduled": detail.rescheduled,
        "upper_status": detail.upper_status,
        "pareto_gc_per_day": [_nan(p.values.gc_per_day if p.values else None) for p in points],
        "pareto_ec_per_day": [_nan(p.values.ec_per_day if p.values else None) for p in points],
        "pareto_loss_mwh": [_nan(p.values.loss_mwh if p.values else None) for p in points],
        "pareto_eps_gc_per_day": [_nan(p.eps.gc_max_per_day if p.eps else None) for p in points],
        "pareto_eps_loss_mwh": [_nan(p.eps.loss_max_mwh if p.eps else None) for p in points],
        "pareto_membership": [_nan(m.minimum if m else None) for m in low.choice.memberships],
        "pareto_pick": low.choice.index,
        "pareto_payoff": [low.payoff.row(r).value(c) for r in OBJECTIVES for c in OBJECTIVES],
    }
