"""Benchmark of the day-ahead centralized MILP: Pyomo (persistent HiGHS) vs the same model built
directly with highspy (numpy arrays, ``addVars``/``addRows``) as the floor.

Run with ``python tests/bench/bench_milp.py [--sizes 3,10,50] [--repeats 1] [--backend contrib]``.
Same synthetic data (seeded), same HiGHS options (mip_rel_gap 1e-3, threads 1) for both.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from dataclasses import replace

import highspy
import numpy as np

from ems_controllers.core.blocks import exchange_bound_mw, pwl_points
from ems_controllers.core.system import SystemModel
from ems_controllers.core.types import (
    Battery,
    DieselUnit,
    Forecast,
    Horizon,
    Microgrid,
    PartyProblem,
    SolverOptions,
    UnitState,
)

N_STEPS = 24
# The same algorithm on both sides: HiGHS's MILP (the LP-relaxation certificate of core.solver is off
# here; the highspy floor has none).
OPTS = SolverOptions(mip_rel_gap=1e-3, time_limit_s=300.0, threads=1, certify_relaxation=False)


# ----------------------------------------------------------------------------------------- data


def tariff(n: int) -> Horizon:
    buy = tuple(115.0 + 45.0 * math.exp(-(((h - 12.0) / 4.0) ** 2)) for h in range(n))
    return Horizon(1.0, buy, tuple(b - 10.0 for b in buy), final_step=n - 1)


def synthetic_system(n_mg: int, seed: int = 2024, n: int = N_STEPS) -> list[PartyProblem]:
    """n_mg MGs (diesel on two of three, battery, PV, wind, load) plus the DN; seeded variation."""
    rng = random.Random(seed)
    out = []
    for i in range(n_mg + 1):
        name = "DN" if i == n_mg else f"MG{i + 1}"
        scale = 2.0 if name == "DN" else 1.0
        dg = (
            DieselUnit(
                p_max_mw=scale * rng.uniform(1.2, 2.5),
                p_min_mw=0.2 * scale,
                a2_per_mw2h=rng.uniform(10, 20),
                a1_per_mwh=rng.uniform(75, 95),
                startup_cost=rng.choice([150.0, 200.0]),
                ramp_up_mw_per_h=1.2 * scale,
                ramp_down_mw_per_h=1.2 * scale,
            )
            if (i % 3 != 2 or name == "DN")
            else None
        )
        e_max = scale * rng.uniform(0.8, 1.5)
        bat = Battery(
            e_max_mwh=e_max,
            e_init_mwh=0.2 * e_max,
            p_ch_max_mw=0.5 * e_max,
            p_dis_max_mw=0.5 * e_max,
            eta_ch=0.98,
            eta_dis=0.98,
            e_final_mwh=0.5 * e_max,
        )
        mg = Microgrid(
            name,
            diesel=dg,
            battery=bat,
            pcc_max_mw=1e3 if name == "DN" else 2.5,
            res_curtailment_price_per_mwh=5.0,
            load_shed_price_per_mwh=1000.0,
        )
        peak = scale * rng.uniform(1.5, 3.0)
        load = tuple(
            peak * (0.6 + 0.4 * math.sin((h - 6) / 24 * 2 * math.pi) ** 2) * rng.uniform(0.9, 1.1) for h in range(n)
        )
        pv_peak = scale * rng.uniform(0.8, 2.0)
        pv = tuple(pv_peak * max(0.0, math.sin((h - 6) / 12 * math.pi)) for h in range(n))
        wind = tuple(max(0.0, rng.gauss(0.5, 0.3)) * scale for _ in range(n))
        out.append(PartyProblem(mg, Forecast(load, pv, wind)))
    return out


def next_hour(problems: list[PartyProblem], k: int = 1) -> list[PartyProblem]:
    """The rolling re-solve's data: forecasts one hour on, a measured state."""

    def rot(s: tuple[float, ...]) -> tuple[float, ...]:
        return s[k:] + s[:k]

    return [
        PartyProblem(
            p.mg,
            Forecast(rot(p.forecast.load_p_mw), rot(p.forecast.pv_p_mw), rot(p.forecast.wind_p_mw)),
            UnitState(e_mwh=(p.mg.battery.e_init_mwh + 0.05) if p.mg.battery else None, diesel_p_mw=0.0),
        )
        for p in problems
    ]


# ------------------------------------------------------------------- the same model in highspy


class _Lp:
    """Columns and rows assembled as numpy arrays, each constraint family T rows at once."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.lb: list[np.ndarray] = []
        self.ub: list[np.ndarray] = []
        self.cost: list[np.ndarray] = []
        self.integer: list[np.ndarray] = []
        self.ncol = 0
        self.rows: list[tuple] = []  # (list of (cols, coefs)), lower, upper
        self.offset = 0.0

    def cols(self, lb, ub, cost=0.0, integer=False) -> np.ndarray:
        n = self.n
        idx = np.arange(self.ncol, self.ncol + n)
        self.ncol += n
        self.lb.append(np.broadcast_to(np.asarray(lb, float), (n,)).copy())
        self.ub.append(np.broadcast_to(np.asarray(ub, float), (n,)).copy())
        self.cost.append(np.broadcast_to(np.asarray(cost, float), (n,)).copy())
        self.integer.append(np.full(n, integer))
        return idx

    def rows_(self, terms, lower, upper) -> None:
        """terms: (cols[T], coef) with cols -1 where the term is absent (e.g. t-1 at t = 0)."""
        n = self.n
        self.rows.append(
            (
                [(np.asarray(c), np.broadcast_to(np.asarray(v, float), (n,))) for c, v in terms],
                np.broadcast_to(np.asarray(lower, float), (n,)),
                np.broadcast_to(np.asarray(upper, float), (n,)),
            )
        )

    def to_highs(self, h: highspy.Highs) -> None:
        inf = highspy.kHighsInf
        lb, ub = np.concatenate(self.lb), np.concatenate(self.ub)
        lb[np.isneginf(lb)] = -inf
        ub[np.isposinf(ub)] = inf
        h.addVars(self.ncol, lb, ub)
        h.changeColsCost(self.ncol, np.arange(self.ncol, dtype=np.int32), np.concatenate(self.cost))
        ints = np.flatnonzero(np.concatenate(self.integer)).astype(np.int32)
        h.changeColsIntegrality(len(ints), ints, np.full(len(ints), highspy.HighsVarType.kInteger))
        r_all, c_all, v_all, lo_all, up_all = [], [], [], [], []
        base = 0
        for terms, lo, up in self.rows:
            ridx = base + np.arange(self.n)
            for c, v in terms:
                keep = (c >= 0) & (v != 0)
                r_all.append(ridx[keep])
                c_all.append(c[keep])
                v_all.append(v[keep])
            lo_all.append(lo)
            up_all.append(up)
            base += self.n
        r = np.concatenate(r_all)
        c = np.concatenate(c_all)
        v = np.concatenate(v_all)
        order = np.lexsort((c, r))
        r, c, v = r[order], c[order], v[order]
        starts = np.searchsorted(r, np.arange(base)).astype(np.int32)
        lo, up = np.concatenate(lo_all), np.concatenate(up_all)
        lo[np.isneginf(lo)] = -inf
        up[np.isposinf(up)] = inf
        h.addRows(base, lo, up, len(v), starts, c.astype(np.int32), v)


def _prev(cols: np.ndarray) -> np.ndarray:
    return np.concatenate(([-1], cols[:-1]))


def build_highspy(problems: list[PartyProblem], hz: Horizon, opts: SolverOptions) -> tuple[highspy.Highs, float]:
    """The centralized MILP of ems_controllers.centralized, straight into highspy: the same columns
    and rows in the same order and orientation as Pyomo passes them (``a >= b`` with variables on
    both sides becomes ``b - a <= 0``), so HiGHS sees the same model and takes the same path."""
    n, dt = hz.n_steps, hz.dt_h
    lp = _Lp(n)
    first = np.arange(n) == 0
    imports = []
    caps = np.zeros(n)
    for p in problems:
        mg, fc, st = p.mg, p.forecast, p.state
        load, pvf, wf = (np.maximum(np.asarray(x, float), 0.0) for x in (fc.load_p_mw, fc.pv_p_mw, fc.wind_p_mw))
        caps += [exchange_bound_mw(mg, a, b, c) for a, b, c in zip(load, pvf, wf, strict=True)]
        bal = []
        if (d := mg.diesel) is not None:
            p_prev = min(max(st.diesel_p_mw, 0.0), d.p_max_mw)
            u_prev = 1.0 if p_prev > 1e-9 else 0.0
            P = lp.cols(0.0, d.p_max_mw)
            U = lp.cols(0.0, 1.0, integer=True)
            S = lp.cols(0.0, 1.0, d.startup_cost)
            C = lp.cols(-np.inf, np.inf, dt)
            inf = np.inf
            lp.rows_([(P, 1.0), (U, -d.p_max_mw)], -inf, 0.0)
            if d.p_min_mw > 0:
                lp.rows_([(P, -1.0), (U, d.p_min_mw)], -inf, 0.0)
            lp.rows_([(S, -1.0), (U, 1.0), (_prev(U), -1.0)], -inf, np.where(first, u_prev, 0.0))
            lp.rows_([(S, 1.0), (U, -1.0)], -inf, 0.0)
            lp.rows_([(S, 1.0), (_prev(U), 1.0)], -inf, np.where(first, 1.0 - u_prev, 1.0))
            ru, rd = d.ramp_up_mw_per_h * dt, d.ramp_down_mw_per_h * dt
            if ru < d.p_max_mw:
                su = max(d.p_min_mw, ru)
                lp.rows_(
                    [(P, 1.0), (_prev(P), -1.0), (_prev(U), su - ru)],
                    -inf,
                    np.where(first, su + p_prev - (su - ru) * u_prev, su),
                )
            if rd < d.p_max_mw:
                sd = max(d.p_min_mw, rd)
                lp.rows_([(_prev(P), 1.0), (P, -1.0), (U, sd - rd)], -inf, np.where(first, sd - p_prev, sd))
            xs = pwl_points(d, opts.pwl_max_error_per_h) if d.a2_per_mw2h > 0 else [0.0]
            for x in xs:
                lp.rows_(
                    [(C, -1.0), (P, 2 * d.a2_per_mw2h * x + d.a1_per_mwh), (U, d.a0_per_h - d.a2_per_mw2h * x**2)],
                    -inf,
                    0.0,
                )
            lp.rows_([(C, 1.0)], 0.0, np.inf)
            bal.append((P, 1.0))
        if (b := mg.battery) is not None:
            e0 = min(max(b.e_init_mwh if st.e_mwh is None else st.e_mwh, b.e_min_mwh), b.e_max_mwh)
            CH = lp.cols(0.0, b.p_ch_max_mw)
            DIS = lp.cols(0.0, b.p_dis_max_mw)
            Y = lp.cols(0.0, 1.0, integer=True)
            E = lp.cols(b.e_min_mwh, b.e_max_mwh)
            lp.rows_([(CH, 1.0), (Y, -b.p_ch_max_mw)], -np.inf, 0.0)
            lp.rows_([(DIS, 1.0), (Y, b.p_dis_max_mw)], -np.inf, b.p_dis_max_mw)
            rhs = np.where(first, e0, 0.0)
            lp.rows_([(E, 1.0), (_prev(E), -1.0), (CH, -b.eta_ch * dt), (DIS, dt / b.eta_dis)], rhs, rhs)
            req = np.full(n, b.e_min_mwh)
            if b.e_final_mwh is not None and hz.final_step is not None:
                req[hz.final_step] = b.e_final_mwh
            lp.rows_([(E, 1.0)], req, np.inf)
            bal += [(DIS, 1.0), (CH, -1.0)]
        cp = mg.res_curtailment_price_per_mwh
        PV = lp.cols(0.0, pvf, -cp * dt)
        W = lp.cols(0.0, wf, -cp * dt)
        lp.offset += cp * dt * float(pvf.sum() + wf.sum())
        SH = lp.cols(0.0, load, mg.load_shed_price_per_mwh * dt)
        pcc = mg.pcc_max_mw
        IMP = lp.cols(-pcc, pcc)
        imports.append(IMP)
        lp.rows_([*bal, (PV, 1.0), (W, 1.0), (IMP, 1.0), (SH, 1.0)], load, load)
    buy, sell = np.asarray(hz.buy_price_per_mwh), np.asarray(hz.sell_price_per_mwh)
    B = lp.cols(0.0, np.inf, buy * dt)
    X = lp.cols(0.0, np.inf, -sell * dt)
    Z = lp.cols(0.0, 1.0, integer=True)
    lp.rows_([(B, 1.0), (Z, -caps)], -np.inf, 0.0)
    lp.rows_([(X, 1.0), (Z, caps)], -np.inf, caps)
    lp.rows_([(B, 1.0), (X, -1.0)] + [(i, -1.0) for i in imports], 0.0, 0.0)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", opts.mip_rel_gap)
    h.setOptionValue("threads", opts.threads)
    h.setOptionValue("time_limit", opts.time_limit_s)
    lp.to_highs(h)
    h.changeObjectiveOffset(lp.offset)  # as Pyomo passes it: HiGHS's relative gap includes it
    return h, 0.0


# ------------------------------------------------------------------------------------- runs


def run_highspy(problems, hz):
    t0 = time.perf_counter()
    h, offset = build_highspy(problems, hz, OPTS)
    t1 = time.perf_counter()
    h.run()
    t2 = time.perf_counter()
    info = h.getInfo()
    return {
        "build": t1 - t0,
        "solve": t2 - t1,
        "total": t2 - t0,
        "obj": info.objective_function_value + offset,
        "gap": info.mip_gap,
        "rows": h.getNumRow(),
        "cols": h.getNumCol(),
    }


def run_pyomo(problems, hz, backend):
    cm = SystemModel(backend=backend)
    t0 = time.perf_counter()
    r = cm.solve(problems, hz, OPTS)
    total = time.perf_counter() - t0
    t1 = time.perf_counter()
    r2 = cm.solve(next_hour(problems), hz, OPTS)
    total2 = time.perf_counter() - t1
    x, x2 = r.times, r2.times
    assert x is not None and x2 is not None
    return {
        "build": x.pyomo_build_s + x.set_data_s,
        "translate": x.translate_s,
        "highs": x.highs_s,
        "total": total,
        "obj": r.objective,
        "gap": r.mip_gap,
        "status": r.status,
        "re_update": x2.set_data_s + x2.translate_s,
        "re_highs": x2.highs_s,
        "re_total": total2,
        "re_obj": r2.objective,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="3,10,50")
    ap.add_argument("--repeats", type=int, default=1, help="best of N for each timing")
    ap.add_argument("--backend", default="contrib", choices=["contrib", "appsi"])
    args = ap.parse_args()
    hz = tariff(N_STEPS)
    run_pyomo(synthetic_system(1), hz, args.backend)  # warm-up: imports, first-use costs
    run_highspy(synthetic_system(1), hz)
    print(
        f"day-ahead centralized MILP, {N_STEPS} steps, mip_rel_gap {OPTS.mip_rel_gap}, threads "
        f"{OPTS.threads}, backend {args.backend}; times in s (best of {args.repeats})"
    )
    hdr = (
        f"{'MGs':>4} {'rows':>6} {'cols':>6} | {'py build':>8} {'py transl':>9} {'py HiGHS':>8}"
        f" {'py total':>8} | {'hs build':>8} {'hs HiGHS':>8} {'hs total':>8} | {'ratio':>5}"
        f" | {'obj pyomo':>11} {'obj highspy':>11} {'d rel':>7} | {'re upd':>6} {'re HiGHS':>8}"
        f" {'re total':>8}"
    )
    print(hdr)
    print("-" * len(hdr))
    for n_mg in (int(s) for s in args.sizes.split(",")):
        probs = synthetic_system(n_mg)
        py = min((run_pyomo(probs, hz, args.backend) for _ in range(args.repeats)), key=lambda d: d["total"])
        hs = min((run_highspy(probs, hz) for _ in range(args.repeats)), key=lambda d: d["total"])
        d_rel = abs(py["obj"] - hs["obj"]) / max(abs(hs["obj"]), 1e-9)
        print(
            f"{n_mg:>4} {hs['rows']:>6} {hs['cols']:>6} | {py['build']:>8.3f} {py['translate']:>9.3f}"
            f" {py['highs']:>8.3f} {py['total']:>8.3f} | {hs['build']:>8.3f} {hs['solve']:>8.3f}"
            f" {hs['total']:>8.3f} | {py['total'] / hs['total']:>5.2f} | {py['obj']:>11.2f}"
            f" {hs['obj']:>11.2f} {d_rel:>7.1e} | {py['re_update']:>6.3f} {py['re_highs']:>8.3f}"
            f" {py['re_total']:>8.3f}"
        )
    print(
        "ratio = Pyomo total (build + data + translate + HiGHS) / highspy total (numpy build + "
        "HiGHS);\nd rel: objectives agree within the MIP gap when <= 2*gap; re = re-solve of the "
        "built Pyomo model with the next hour's data (param update, no rebuild)."
    )
    print("\nwith the LP-relaxation certificate of core.solver (default in the EMSs), same models:")
    for n_mg in (int(s) for s in args.sizes.split(",")):
        probs = synthetic_system(n_mg)
        for certify in (False, True):
            opts = replace(OPTS, certify_relaxation=certify)
            cm = SystemModel(backend=args.backend)
            t0 = time.perf_counter()
            r = cm.solve(probs, hz, opts)
            t1 = time.perf_counter()
            cm.solve(next_hour(probs), hz, opts)
            t2 = time.perf_counter()
            print(
                f"{n_mg:>4} MGs certify={certify!s:<5}: first {t1 - t0:7.3f} s, re-solve {t2 - t1:7.3f} s, "
                f"obj {r.objective:.2f} ({r.termination})"
            )


if __name__ == "__main__":
    main()
