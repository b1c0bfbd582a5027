"""KPIs of strategy ``clustered``, from the record: the fronts and their picks, the hours run islanded,
demand response, the AC power flow against the linearised network's predictions hour by hour, and the
solve time of every level.

- ``pareto``: per planning instant the front (GC, EC, Loss per point, None where infeasible), the pick
  (1-based point, as the seed numbers them), whether the front is monotone (GC up, EC down, within the
  MIP gap the points were solved to) and whether
  the fuzzy rule applied again to the recorded values picks the same point;
- ``hours``: per hour the clusters' levels, the MGs without a path to the network, the AC power flow's
  lowest and highest voltage, highest loading and violations next to what the upper level's LinDistFlow
  predicted for the network (the AC figures cover every bus and line, islands and MG buses included;
  the prediction covers the distribution network);
- ``demand_response``: per MG the energy shifted over the day (0 when energy-neutral), the largest shift
  as a share of the MG's load (<= ``dr_share``) and what left the evening peak (hours 18-23);
- ``solve_s``: per instant the escalation rounds (levels 1-4), payoff table, front, pick and upper level;
- ``svc``: per static var compensator the reactive power per hour the grid applied (``q_mvar``) and the
  upper level planned (``planned_q_mvar``), and the day's injected and absorbed Mvarh.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ems_controllers.clustered.pareto import ObjectiveValues, ParetoFront, fuzzy_pick, is_monotone
from ems_controllers.core.contract import RunRecord, StrategyKpis

EVENING = range(18, 24)


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(float(x)) else None


def _instants(r: RunRecord, sys: str) -> list[int]:
    gc = r.get(sys, "pareto_gc_per_day")
    if gc is None or gc.ndim != 2:
        return []
    return [k for k in range(min(r.n, len(gc))) if np.isfinite(gc[k]).any()]


def mip_gap(r: RunRecord) -> float:
    """The MIP gap the run's solves stopped at (``ems.mip_rel_gap``)."""
    return float(r.attrs.get("config", {}).get("ems", {}).get("mip_rel_gap", 1e-3))


def pareto_rows(r: RunRecord, sys: str) -> list[dict[str, Any]]:
    gc, ec, loss = (r.get(sys, a) for a in ("pareto_gc_per_day", "pareto_ec_per_day", "pareto_loss_mwh"))
    pick = r.s(sys, "pareto_pick")
    rows = []
    for k in _instants(r, sys):
        assert gc is not None and ec is not None and loss is not None
        values = [
            ObjectiveValues(float(g), float(e), float(lo)) if np.isfinite([g, e, lo]).all() else None
            for g, e, lo in zip(gc[k], ec[k], loss[k], strict=True)
        ]
        front = ParetoFront.from_values(values)
        again = fuzzy_pick(front).index
        rows.append(
            {
                "step": k,
                "gc_per_day": [_num(v) for v in gc[k]],
                "ec_per_day": [_num(v) for v in ec[k]],
                "loss_mwh": [_num(v) for v in loss[k]],
                "pick_point": int(pick[k]) + 1,
                "pick_reproduced": again == int(pick[k]),
                "monotone": is_monotone(front, rel_tol=1e-3, gap_rel=mip_gap(r)),
            }
        )
    return rows


def hour_rows(r: RunRecord, sys: str) -> list[dict[str, Any]]:
    g = r.entities.grid
    levels = r.get(sys, "cluster_levels")
    cols = {
        "ac_min_vm_pu": r.s(g, "min_vm_pu"),
        "predicted_min_vm_pu": r.s(sys, "predicted_min_vm_pu"),
        "ac_max_vm_pu": r.s(g, "max_vm_pu"),
        "predicted_max_vm_pu": r.s(sys, "predicted_max_vm_pu"),
        "ac_max_loading_percent": r.s(g, "max_loading_percent"),
        "predicted_max_loading_percent": r.s(sys, "predicted_max_loading_percent"),
        "ac_voltage_violations": r.s(g, "n_voltage_violations"),
        "ac_overloads": r.s(g, "n_overloads"),
        "islanded_mgs": r.s(sys, "islanded_mgs"),
        "unsupplied_mw": r.s(g, "unsupplied_mw"),
    }
    rows = []
    for k in range(r.n):
        row: dict[str, Any] = {"step": k}
        row.update({name: _num(series[k]) for name, series in cols.items()})
        row["levels"] = [int(v) for v in levels[k]] if levels is not None and np.isfinite(levels[k]).all() else None
        rows.append(row)
    return rows


def demand_response(r: RunRecord) -> dict[str, dict[str, float]]:
    out = {}
    hours = (np.arange(r.n) * r.dt_h) % 24
    evening = np.isin(np.floor(hours).astype(int), list(EVENING))
    for name, p in r.entities.mgs().items():
        shift = np.nan_to_num(r.s(p.ems, "load_shift_mw"))
        # the grid's load serves profile + shift less what was shed: the profile is what the band refers to
        served = np.nan_to_num(r.s(p.load[0], "p_mw")) if p.load else np.zeros(r.n)
        shed = np.nan_to_num(r.s(p.load[0], "shed_mw")) if p.load else np.zeros(r.n)
        base = served + shed - shift
        share = np.divide(np.abs(shift), base, out=np.zeros_like(shift), where=base > 1e-9)
        out[name] = {
            "shifted_mwh": float(shift.sum() * r.dt_h),
            "moved_mwh": float(np.abs(shift).sum() * r.dt_h / 2.0),
            "max_share": float(share.max()) if len(share) else 0.0,
            "evening_change_mwh": float(shift[evening].sum() * r.dt_h),
        }
    return out


def solve_times(r: RunRecord, sys: str) -> list[dict[str, Any]]:
    rounds = r.get(sys, "level_round_s")
    rows = []
    for k in _instants(r, sys):
        rows.append(
            {
                "step": k,
                "level_rounds_s": [_num(v) for v in rounds[k]] if rounds is not None else [],
                **{a: _num(r.s(sys, a)[k]) for a in ("payoff_s", "front_s", "pick_s", "upper_s", "reschedule_s")},
            }
        )
    return rows


def svc_rows(r: RunRecord) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, grid_fid in r.entities.svcs.items():
        q = r.s(grid_fid, "q_mvar")
        ent = r.entities.svc_entities.get(name)
        planned = r.s(ent, "q_mvar") if ent else np.full(r.n, np.nan)
        out[name] = {
            "q_mvar": [_num(v) for v in q],
            "planned_q_mvar": [_num(v) for v in planned],
            "injected_mvarh": float(np.nansum(np.maximum(q, 0.0)) * r.dt_h),
            "absorbed_mvarh": float(np.nansum(np.maximum(-q, 0.0)) * r.dt_h),
        }
    return out


def kpis(r: RunRecord) -> StrategyKpis:
    out = StrategyKpis()
    sys = r.entities.system
    if not sys:
        return out
    hours = hour_rows(r, sys)
    dr = demand_response(r)
    out.top["clustered"] = {
        "pareto": pareto_rows(r, sys),
        "hours_with_islanded_mgs": sum(1 for h in hours if (h["islanded_mgs"] or 0) > 0),
        "islanded_mg_hours": sum(h["islanded_mgs"] or 0 for h in hours),
        "evening_change_mwh": sum(v["evening_change_mwh"] for v in dr.values()),
        "hours": hours,
        "demand_response": dr,
        "solve_s": solve_times(r, sys),
        "svc": svc_rows(r),
    }
    out.by_party = {name: {"dr_moved_mwh": v["moved_mwh"]} for name, v in dr.items()}
    return out
