"""KPIs of strategy ``admm``: how its planning instants went, and how far its plans are from the
centralized optimum on the same data.

Per planning instant (a step where the authority recorded iterations): iterations, convergence, final
primal gap (max_t |sum_n P_exch[n,t]|), the ADMM cost (the sum of the MGs' local costs h_n at their last
iterate, each MG's ``objective``) and the centralized reference (:func:`~ems_controllers.admm.model.
solve_centralized` on the MGs' recorded problems, ``admm_problem``; NaN where that solve fails, and then
the run's gap is NaN too). The reference is the experimenter's
check, computed after the run from the record; no party of the run ever sees it.
"""

from __future__ import annotations

import math

import numpy as np

from ems_controllers.admm.adapter import mg_from_json
from ems_controllers.admm.model import solve_centralized
from ems_controllers.core.contract import RunRecord, StrategyKpis


def _instants(r: RunRecord, au: str) -> list[int]:
    its = r.s(au, "admm_iterations")
    return [int(k) for k in np.flatnonzero(np.isfinite(its))]


def kpis(r: RunRecord) -> StrategyKpis:
    out = StrategyKpis()
    au = r.entities.system
    if not au:
        return out
    steps = _instants(r, au)
    its, conv, gap = r.s(au, "admm_iterations"), r.s(au, "admm_converged"), r.s(au, "admm_final_gap_mw")
    rows = []
    admm_total = central_total = 0.0
    for k in steps:
        problems = [r.text(p.ems, "admm_problem")[k] for p in r.entities.parties.values()]
        admm_cost = float(sum(r.s(p.ems, "objective")[k] for p in r.entities.parties.values()))
        central = None
        if all(problems):
            ref = solve_centralized([mg_from_json(t) for t in problems], r.dt_h)
            central = ref.total_cost
        rows.append(
            {
                "step": k,
                "iterations": float(its[k]),
                "converged": bool(conv[k] == 1.0),
                "final_gap_mw": float(gap[k]),
                "cost": admm_cost,
                "central_cost": central if central is not None else math.nan,
            }
        )
        admm_total += admm_cost
        central_total += central if central is not None else math.nan  # no reference: no gap either
    gap_pct = 100.0 * (admm_total - central_total) / abs(central_total) if central_total else math.nan
    out.top["admm"] = {
        "instants": len(rows),
        "converged_instants": sum(1 for row in rows if row["converged"]),
        "iterations_max": max((row["iterations"] for row in rows), default=math.nan),
        "final_gap_mw_max": max((row["final_gap_mw"] for row in rows), default=math.nan),
        "cost": admm_total,
        "central_cost": central_total,
        "gap_to_central_pct": gap_pct,
        "by_instant": rows,
    }
    return out
