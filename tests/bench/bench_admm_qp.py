"""Benchmark of strategy ``admm``'s QPs (ems_controllers/admm/model.py): the local QP's re-solve and the
centralized reference, against the previous setting measured in the same process (a command, not a test;
nothing here asserts on a timing).

Run: ``python tests/bench/bench_admm_qp.py [--sizes 4 10] [--seed 2024] [--repeats 3] [--no-baseline]``.

Data: N MGs x 24 hourly steps, seeded (``fleet``): a load around U(0.6, 2.0) MW with a daily swing, PV of
peak U(0, 2.5) MW, wind around U(0, 1.5) MW, a diesel (p_max U(1, 4) MW, a2 U(8, 50), a1 U(150, 240)), a
4 MWh battery (1 MW, eta 0.95, SoC 0.4..4, 2 at start and end, wear 5 p^2 + 2 p); default ADMM settings.

* ``new``: :class:`~ems_controllers.admm.model.LocalQp` as it is: a re-solve pushes the objective's params
  only and hot-starts HiGHS from the previous optimum (model._QpHighs).
* ``old``: the previous LocalQp, rebuilt here: the same Pyomo model re-solved through
  ``core.solver.PersistentHighs`` (every param pushed, Pyomo's ``solve()``, HiGHS from scratch with its
  default options: presolve, phase 1, dual tolerance 1e-7).

Figures: (1) per re-solve of the local QP (ms, median / p90 over every MG's re-solves of one ADMM run; the
first solve of each MG excluded): the call's wall time, of it HiGHS's own run time (``getRunTime``), and QP
iterations. Both sides replay the very same (rho, centre) sequence, recorded from a ``new`` ADMM run.
(2) ADMM wall time (the whole ``AdmmSolver.solve``; the old side with LocalQp's methods swapped for the
old ones), iterations and cost. (3) The centralized reference (``solve_centralized`` vs the previous
solve: one-shot Pyomo HiGHS, default options, a retry with ``qp_regularization_value`` 1e-5 after a
failure): wall time, status and cost. Times are medians of ``--repeats`` runs, new and old alternating.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pyomo.environ as pyo

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ems_controllers.admm import model
from ems_controllers.admm.model import AdmmMg, CentralResult, LocalQp, MgSchedule, solve_centralized
from ems_controllers.admm.solver import AdmmSolver
from ems_controllers.core.solver import PersistentHighs, solve_status
from ems_controllers.core.types import Battery, DieselUnit, SolveStatus

N_STEPS = 24


def fleet(n_mg: int, seed: int = 2024, n_steps: int = N_STEPS) -> list[AdmmMg]:
    """n_mg MGs with seeded data (see the module docstring)."""
    rng = random.Random(seed)
    mgs = []
    for i in range(n_mg):
        load_mean, phase = rng.uniform(0.6, 2.0), rng.uniform(0.0, 2 * math.pi)
        pv_peak, wind_mean = rng.uniform(0.0, 2.5), rng.uniform(0.0, 1.5)
        load = tuple(load_mean * (1 + 0.35 * math.sin(2 * math.pi * t / n_steps + phase)) for t in range(n_steps))
        pv = tuple(pv_peak * max(0.0, math.sin(math.pi * (t - 6) / 12)) for t in range(n_steps))
        wind = tuple(
            max(0.0, wind_mean * (1 + 0.5 * math.sin(2 * math.pi * t / n_steps + phase + 1.0))) for t in range(n_steps)
        )
        diesel = DieselUnit(
            p_max_mw=rng.uniform(1.0, 4.0), a2_per_mw2h=rng.uniform(8.0, 50.0), a1_per_mwh=rng.uniform(150.0, 240.0)
        )
        battery = Battery(
            e_max_mwh=4.0,
            e_init_mwh=2.0,
            p_ch_max_mw=1.0,
            p_dis_max_mw=1.0,
            eta_ch=0.95,
            eta_dis=0.95,
            e_min_mwh=0.4,
            e_final_mwh=2.0,
        )
        mgs.append(
            AdmmMg(f"mg{i}", load, pv, wind, diesel, battery, battery_cost_per_mw2h=5.0, battery_cost_per_mwh=2.0)
        )
    return mgs


# ------------------------------------------------------------------------------------- the old setting


class OldLocalQp:
    """The local QP before the change: the same model, re-solved through PersistentHighs."""

    def __init__(self, mg: AdmmMg, dt_h: float) -> None:
        m = pyo.ConcreteModel()
        m.mg = pyo.Block()
        model._add_mg_block(m.mg, mg, dt_h)
        m.rho = pyo.Param(mutable=True, initialize=1.0)
        m.v = pyo.Param(m.mg.T, mutable=True, initialize=0.0)
        m.obj = pyo.Objective(
            expr=m.mg.cost + sum(m.rho / 2 * m.mg.x[t] ** 2 - m.rho * m.v[t] * m.mg.x[t] for t in m.mg.T)
        )
        self.model = m
        self.key = (mg.structure_key(), dt_h)
        self._solver = PersistentHighs(m, "contrib")

    def set_data(self, mg: AdmmMg) -> None:
        model._write_mg_data(self.model.mg, mg)

    def solve(self, rho: float, centre: Any) -> tuple[SolveStatus, Any, float]:
        m = self.model
        m.rho = rho
        for t, v in enumerate(centre):
            m.v[t] = float(v)
        raw = self._solver.solve(model.QP_SOLVER_OPTIONS)
        if not raw.feasible:
            return raw.status, np.zeros(len(centre)), raw.highs_s
        return raw.status, np.array([pyo.value(m.mg.x[t]) for t in range(len(centre))]), raw.highs_s

    def schedule(self, mg: AdmmMg) -> MgSchedule:
        return model._schedule(self.model.mg, mg)

    def highs(self) -> Any:
        return self._solver._opt._solver_model  # type: ignore[union-attr]


def old_centralized(mgs: list[AdmmMg], dt_h: float) -> CentralResult:
    """The reference before the change: one-shot Pyomo HiGHS, default options, a regularized retry."""
    from pyomo.contrib.solver.solvers.highs import Highs

    t0 = time.perf_counter()
    m = pyo.ConcreteModel()
    m.mgs = pyo.Block(range(len(mgs)))
    for i, mg in enumerate(mgs):
        model._add_mg_block(m.mgs[i], mg, dt_h)
        model._write_mg_data(m.mgs[i], mg)
    m.exch_balance = pyo.Constraint(range(N_STEPS), rule=lambda m, t: sum(m.mgs[i].x[t] for i in m.mgs) == 0)
    m.obj = pyo.Objective(expr=sum(m.mgs[i].cost for i in m.mgs))
    status = SolveStatus.ERROR
    for options in ({}, {"qp_regularization_value": 1e-5}):
        opt = Highs()
        opt.config.load_solutions = False
        opt.config.raise_exception_on_nonoptimal_result = False
        opt.config.threads = model.QP_SOLVER_OPTIONS.threads
        opt.config.time_limit = model.QP_SOLVER_OPTIONS.time_limit_s
        opt.config.solver_options = options
        res = opt.solve(m)
        status = solve_status(res.termination_condition, res.incumbent_objective is not None)
        if status.has_plan:
            res.solution_loader.load_vars()
            break
    if not status.has_plan:
        return CentralResult(status, None, {}, {}, time.perf_counter() - t0)
    cost = sum(model._schedule(m.mgs[i], mg).cost for i, mg in enumerate(mgs))
    return CentralResult(status, cost, {}, {}, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------ measuring


@contextmanager
def patched(**methods: Any) -> Iterator[None]:
    """LocalQp's methods replaced for the duration (reaches every driver of the class)."""
    saved = {name: getattr(LocalQp, name) for name in methods}
    for name, fn in methods.items():
        setattr(LocalQp, name, fn)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(LocalQp, name, fn)


def record_calls(mgs: list[AdmmMg]) -> dict[str, list[tuple[float, Any]]]:
    """Each MG's (rho, centre) sequence of one ADMM run (the new LocalQp)."""
    names: dict[int, str] = {}
    calls: dict[str, list[tuple[float, Any]]] = {mg.name: [] for mg in mgs}
    set_data, solve = LocalQp.set_data, LocalQp.solve

    def rec_set_data(self: LocalQp, mg: AdmmMg) -> None:
        names[id(self)] = mg.name
        set_data(self, mg)

    def rec_solve(self: LocalQp, rho: float, centre: Any) -> Any:
        calls[names[id(self)]].append((rho, np.array(centre, dtype=float)))
        return solve(self, rho, centre)

    with patched(set_data=rec_set_data, solve=rec_solve):
        res = AdmmSolver().solve(mgs, 1.0)
    assert res.converged, res.message
    return calls


def replay(
    mgs: list[AdmmMg],
    calls: dict[str, list[tuple[float, Any]]],
    make: Callable[[AdmmMg], Any],
    highs: Callable[[Any], Any],
) -> dict[str, list[float]]:
    """Re-solve times (ms, first solve of each MG excluded): wall, HiGHS run time, QP iterations."""
    out: dict[str, list[float]] = {"wall": [], "highs": [], "iters": []}
    for mg in mgs:
        qp = make(mg)
        qp.set_data(mg)
        for k, (rho, centre) in enumerate(calls[mg.name]):
            run0 = highs(qp).getRunTime() if k > 0 else 0.0  # HiGHS's run clock accumulates over runs
            t0 = time.perf_counter()
            status, _, _ = qp.solve(rho, centre)
            wall = time.perf_counter() - t0
            h = highs(qp)
            run1 = h.getRunTime()
            assert status is SolveStatus.OPTIMAL, status
            if k > 0:
                out["wall"].append(1e3 * wall)
                out["highs"].append(1e3 * (run1 - run0))
                out["iters"].append(float(h.getInfo().qp_iteration_count))
    return out


def fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):6.2f} / {np.percentile(xs, 90):6.2f}"


def admm_wall(mgs: list[AdmmMg], old: bool) -> tuple[float, int, float]:
    """One ADMM run: wall s, iterations, cost; ``old``: with the old LocalQp's methods."""
    methods = {name: getattr(OldLocalQp, name) for name in ("__init__", "set_data", "solve", "schedule")}
    with patched(**methods) if old else nullcontext():
        t0 = time.perf_counter()
        res = AdmmSolver().solve(mgs, 1.0)
        wall = time.perf_counter() - t0
    return wall, res.iterations, res.total_cost


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 10])
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-baseline", action="store_true", help="skip the old setting")
    args = ap.parse_args()
    solve_centralized(fleet(2, args.seed, 2), 1.0)  # warm-up: imports, first-use costs
    for n_mg in args.sizes:
        mgs = fleet(n_mg, args.seed)
        calls = record_calls(mgs)
        n_calls = sum(len(c) for c in calls.values())
        print(f"\n{n_mg} MGs x {N_STEPS} h (seed {args.seed}): ADMM re-solves recorded: {n_calls}")
        print(f"  local QP re-solve, median / p90 over {n_calls - n_mg} re-solves ({args.repeats} replays pooled)")
        print(f"  {'':4} {'wall ms':>15}   {'HiGHS run ms':>15}   {'QP iterations':>15}")
        sides: list[tuple[str, Callable[[AdmmMg], Any], Callable[[Any], Any]]] = [
            ("new", lambda mg: LocalQp(mg, 1.0), lambda qp: qp._qp._h),
        ]
        if not args.no_baseline:
            sides.append(("old", lambda mg: OldLocalQp(mg, 1.0), lambda qp: qp.highs()))
        pooled: dict[str, dict[str, list[float]]] = {
            name: {"wall": [], "highs": [], "iters": []} for name, _, _ in sides
        }
        for _ in range(args.repeats):
            for name, make, highs in sides:
                for key, vals in replay(mgs, calls, make, highs).items():
                    pooled[name][key] += vals
        for name, _, _ in sides:
            p = pooled[name]
            print(f"  {name:4} {fmt(p['wall'])}   {fmt(p['highs'])}   {fmt(p['iters'])}")
        if not args.no_baseline:
            ratio = statistics.median(pooled["old"]["wall"]) / statistics.median(pooled["new"]["wall"])
            print(f"  median re-solve wall: old / new = {ratio:.1f}x")
        print("  ADMM (AdmmSolver.solve, building the local QPs included): wall s, iterations, cost")
        walls: dict[str, list[float]] = {name: [] for name, _, _ in sides}
        summary: dict[str, tuple[int, float]] = {}
        for _ in range(args.repeats):
            for name, _, _ in sides:
                wall, its, cost = admm_wall(mgs, old=name == "old")
                walls[name].append(wall)
                summary[name] = (its, cost)
        for name, _, _ in sides:
            its, cost = summary[name]
            print(f"  {name:4} {statistics.median(walls[name]):7.2f} s  {its:4d} it  cost {cost:.4f}")
        print("  centralized reference: wall s, status, cost")
        refs: list[tuple[str, Callable[[list[AdmmMg], float], CentralResult]]] = [("new", solve_centralized)]
        if not args.no_baseline:
            refs.append(("old", old_centralized))
        ref_walls: dict[str, list[float]] = {name: [] for name, _ in refs}
        last: dict[str, CentralResult] = {}
        for _ in range(args.repeats):
            for name, fn in refs:
                t0 = time.perf_counter()
                last[name] = fn(mgs, 1.0)
                ref_walls[name].append(time.perf_counter() - t0)
        for name, _ in refs:
            r = last[name]
            shown = f"{r.total_cost:.4f}" if r.total_cost is not None else "-"
            print(f"  {name:4} {statistics.median(ref_walls[name]):7.3f} s  {r.status.value:<9} cost {shown}")


if __name__ == "__main__":
    main()
