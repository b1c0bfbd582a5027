"""Strategy ``admm``'s math: exchange ADMM against the centralized QP (ems_controllers/admm/model.py).

Tolerances: the ADMM default settings (tol_primal_mw = 1e-4, tol_dual = 1e-3, scaled by sqrt(N*T)).
At convergence the exchange imbalance max_t |sum_n P_exch| is below 1e-3 MW here; costs are compared
relatively (1 % is the issue's acceptance; the runs below land far closer and are asserted tighter).
The centralized reference is checked for optimality independently of HiGHS's QP solver: its plan must be
feasible and its cost must meet a lower bound from an LP built here (tangent cuts, simplex) within 1e-6.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyomo.environ as pyo
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ems_controllers.admm.model import (
    AdmmMg,
    AdmmResult,
    AdmmSettings,
    CentralResult,
    LocalQp,
    MgSchedule,
    solve_centralized,
)
from ems_controllers.admm.solver import AdmmSolver, solve_admm
from ems_controllers.core.types import Battery, DieselUnit, SolveStatus

GAP_MW = 1e-3


def _two_mg(n_steps: int) -> list[AdmmMg]:
    """MG a: surplus PV 2 MW and a cheap diesel (1 p^2 + 10 p); MG b: deficit 4 MW, dear diesel (10 p^2 + 50 p)."""
    a = AdmmMg(
        "a", (1.0,) * n_steps, (3.0,) * n_steps, (0.0,) * n_steps, DieselUnit(5.0, a2_per_mw2h=1.0, a1_per_mwh=10.0)
    )
    b = AdmmMg(
        "b", (4.0,) * n_steps, (0.0,) * n_steps, (0.0,) * n_steps, DieselUnit(5.0, a2_per_mw2h=10.0, a1_per_mwh=50.0)
    )
    return [a, b]


@pytest.mark.parametrize("n_steps", [1, 2, 3])
def test_two_mg_analytic(n_steps: int) -> None:
    # By hand: b's marginal cost at 0 MW is 50, a's at p is 2p + 10 <= 14 for p <= 2. So b's diesel stays
    # off, a covers b's 4 MW: 2 MW of surplus PV + 2 MW of diesel. Cost per hour 2^2 + 10*2 = 24 (dt = 1 h);
    # EEP a = -4, b = +4; the exchange price is a's marginal cost 14.
    mgs = _two_mg(n_steps)
    central = solve_centralized(mgs, 1.0)
    admm = solve_admm(mgs, 1.0)
    assert central.status is SolveStatus.OPTIMAL
    assert central.total_cost == pytest.approx(24.0 * n_steps, abs=1e-6)
    assert central.eep_mw["a"] == pytest.approx((-4.0,) * n_steps, abs=1e-6)
    assert admm.converged
    assert admm.status is SolveStatus.OPTIMAL
    assert admm.total_cost == pytest.approx(24.0 * n_steps, rel=1e-3)
    assert admm.eep_mw["a"] == pytest.approx((-4.0,) * n_steps, abs=1e-2)
    assert admm.eep_mw["b"] == pytest.approx((4.0,) * n_steps, abs=1e-2)
    assert admm.schedules["a"].diesel_p_mw == pytest.approx((2.0,) * n_steps, abs=1e-2)
    assert admm.schedules["b"].diesel_p_mw == pytest.approx((0.0,) * n_steps, abs=1e-2)
    assert admm.price_per_mw == pytest.approx((14.0,) * n_steps, abs=0.1)
    assert admm.final_gap_mw < GAP_MW


def _profile(n: int, base: float, amp: float, phase: float) -> tuple[float, ...]:
    return tuple(max(base + amp * math.sin(2 * math.pi * (t / n) + phase), 0.0) for t in range(n))


def four_mg(n_steps: int = 24) -> list[AdmmMg]:
    """Four made-up MGs (MW scale): PV-rich, wind-rich, diesel-heavy, mixed; each with a battery."""
    pv = tuple(max(0.0, 2.5 * math.sin(math.pi * (t - 6) / 12)) for t in range(n_steps))
    mgs = []
    specs = [
        ("pv_rich", 1.0, 0.3, DieselUnit(1.5, a2_per_mw2h=40.0, a1_per_mwh=220.0), 1.0, 0.2),
        ("wind_rich", 0.3, 1.6, DieselUnit(1.0, a2_per_mw2h=50.0, a1_per_mwh=240.0), 0.8, 0.5),
        ("diesel", 0.1, 0.1, DieselUnit(4.0, a2_per_mw2h=8.0, a1_per_mwh=150.0), 1.8, 1.0),
        ("mixed", 0.5, 0.6, DieselUnit(2.5, a2_per_mw2h=20.0, a1_per_mwh=180.0), 1.2, 2.0),
    ]
    for name, pv_scale, wind_mean, diesel, load_mean, phase in specs:
        bat = Battery(
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
            AdmmMg(
                name,
                load_mw=_profile(n_steps, load_mean, 0.35 * load_mean, phase),
                pv_mw=tuple(pv_scale * p for p in pv),
                wind_mw=_profile(n_steps, wind_mean, 0.5 * wind_mean, phase + 1.0),
                diesel=diesel,
                battery=bat,
                battery_cost_per_mw2h=5.0,
                battery_cost_per_mwh=2.0,
            )
        )
    return mgs


def _check_physics(mgs: list[AdmmMg], res: AdmmResult | CentralResult, dt_h: float) -> None:
    for mg in mgs:
        s = res.schedules[mg.name]
        bat = mg.battery
        assert bat is not None
        soc = np.array(s.soc_mwh)
        assert np.all(soc >= bat.e_min_mwh - 1e-6)
        assert np.all(soc <= bat.e_max_mwh + 1e-6)
        assert bat.e_final_mwh is not None
        assert soc[-1] >= bat.e_final_mwh - 1e-6
        e = bat.e_init_mwh
        for t in range(mg.n_steps):
            supply = s.diesel_p_mw[t] + s.pv_p_mw[t] + s.wind_p_mw[t] - s.battery_p_mw[t] + s.load_shed_mw[t]
            assert supply + s.exch_mw[t] == pytest.approx(mg.load_mw[t], abs=1e-6)
            assert s.pv_p_mw[t] <= mg.pv_mw[t] + 1e-6
            e += (bat.eta_ch * s.battery_ch_mw[t] - s.battery_dis_mw[t] / bat.eta_dis) * dt_h
            assert soc[t] == pytest.approx(e, abs=1e-6)


def test_four_mg_24h_matches_centralized() -> None:
    mgs = four_mg()
    central = solve_centralized(mgs, 1.0)
    admm = solve_admm(mgs, 1.0)
    assert central.status is SolveStatus.OPTIMAL
    assert central.total_cost is not None
    assert admm.converged
    assert abs(admm.total_cost - central.total_cost) <= 0.01 * central.total_cost  # the acceptance
    assert abs(admm.total_cost - central.total_cost) <= 1e-3 * central.total_cost  # what it actually does
    assert admm.final_gap_mw < GAP_MW
    assert len(admm.primal_residual) == len(admm.dual_residual) == len(admm.rho) == admm.iterations
    for name in central.eep_mw:
        assert admm.eep_mw[name] == pytest.approx(central.eep_mw[name], abs=0.05)
    _check_physics(mgs, admm, 1.0)
    _check_physics(mgs, central, 1.0)


def test_stop_primal_no_later_than_default() -> None:
    mgs = _two_mg(3)
    both = solve_admm(mgs, 1.0)
    primal = solve_admm(mgs, 1.0, AdmmSettings(stop="primal"))
    assert primal.converged
    assert primal.iterations <= both.iterations
    assert primal.primal_residual[-1] <= math.sqrt(2 * 3) * AdmmSettings().tol_primal_mw
    assert len(primal.primal_residual) == primal.iterations  # each iteration recorded
    # From a warm start at a balanced point the paper's rule can stop at once; both residuals need not.
    warm_primal = solve_admm(mgs, 1.0, AdmmSettings(stop="primal"), start=both.state)
    assert warm_primal.iterations <= 2


def test_warm_start_and_reuse_of_local_qps() -> None:
    mgs = _two_mg(3)
    solver = AdmmSolver()
    cold = solver.solve(mgs, 1.0)
    qps = solver.local_qps()
    assert all(qp is not None for qp in qps.values())
    warm = solver.solve(mgs, 1.0, start=cold.state.shifted(1))
    assert solver.local_qps() == qps  # the same QP objects: re-solved by parameter update, not rebuilt
    assert warm.converged
    assert warm.iterations < cold.iterations
    assert warm.total_cost == pytest.approx(cold.total_cost, rel=1e-3)


def _check_plan(mgs: list[AdmmMg], res: AdmmResult | CentralResult, dt_h: float, tol: float = 1e-6) -> None:
    """Every MG's plan within the spec's bounds and rows (any units; SoC from the data's initial SoC)."""
    for mg in mgs:
        s = res.schedules[mg.name]
        bat, d = mg.battery, mg.diesel
        e = mg.e_init_mwh if mg.e_init_mwh is not None else (bat.e_init_mwh if bat else 0.0)
        for t in range(mg.n_steps):
            supply = s.diesel_p_mw[t] + s.pv_p_mw[t] + s.wind_p_mw[t] - s.battery_p_mw[t] + s.load_shed_mw[t]
            assert supply + s.exch_mw[t] == pytest.approx(mg.load_mw[t], abs=tol)
            assert -tol <= s.pv_p_mw[t] <= mg.pv_mw[t] + tol
            assert -tol <= s.wind_p_mw[t] <= mg.wind_mw[t] + tol
            assert -tol <= s.load_shed_mw[t] <= mg.load_mw[t] + tol
            assert abs(s.exch_mw[t]) <= mg.exch_max_mw + tol
            lo = d.p_min_mw if d is not None and d.must_run else 0.0
            assert lo - tol <= s.diesel_p_mw[t] <= (d.p_max_mw if d else 0.0) + tol
            if bat is None:
                assert s.battery_ch_mw[t] == s.battery_dis_mw[t] == 0.0
                continue
            assert -tol <= s.battery_ch_mw[t] <= bat.p_ch_max_mw + tol
            assert -tol <= s.battery_dis_mw[t] <= bat.p_dis_max_mw + tol
            e += (bat.eta_ch * s.battery_ch_mw[t] - s.battery_dis_mw[t] / bat.eta_dis) * dt_h
            assert s.soc_mwh[t] == pytest.approx(e, abs=tol)
            assert bat.e_min_mwh - tol <= s.soc_mwh[t] <= bat.e_max_mwh + tol
        if bat is not None and bat.e_final_mwh is not None:
            assert s.soc_mwh[-1] >= bat.e_final_mwh - tol


def _lp_mg(b: pyo.Block, mg: AdmmMg, dt_h: float, own: MgSchedule) -> Any:
    """MG ``mg``'s rows and variables on block ``b`` of :func:`_tangent_lower_bound`; its cost (linear)."""
    T = range(mg.n_steps)
    d, bat = mg.diesel, mg.battery
    xmax = mg.exch_max_mw if math.isfinite(mg.exch_max_mw) else None
    b.pd = pyo.Var(T, bounds=(d.p_min_mw if d and d.must_run else 0.0, d.p_max_mw if d else 0.0))
    b.pv = pyo.Var(T, bounds=lambda b, t: (0.0, mg.pv_mw[t]))
    b.wind = pyo.Var(T, bounds=lambda b, t: (0.0, mg.wind_mw[t]))
    b.shed = pyo.Var(T, bounds=lambda b, t: (0.0, mg.load_mw[t]))
    b.x = pyo.Var(T, bounds=(-xmax if xmax is not None else None, xmax))
    b.ch = pyo.Var(T, bounds=(0.0, bat.p_ch_max_mw if bat else 0.0))
    b.dis = pyo.Var(T, bounds=(0.0, bat.p_dis_max_mw if bat else 0.0))
    b.e = pyo.Var(T, bounds=(bat.e_min_mwh, bat.e_max_mwh) if bat else (0.0, 0.0))
    b.zd, b.zch, b.zdis = (pyo.Var(T, bounds=(0.0, None)) for _ in range(3))
    b.balance = pyo.Constraint(
        T, rule=lambda b, t: b.pd[t] + b.pv[t] + b.wind[t] + b.dis[t] - b.ch[t] + b.shed[t] + b.x[t] == mg.load_mw[t]
    )
    b.rows = pyo.ConstraintList()
    if bat is not None:
        e0 = mg.e_init_mwh if mg.e_init_mwh is not None else bat.e_init_mwh
        for t in T:
            before = e0 if t == 0 else b.e[t - 1]
            b.rows.add(b.e[t] == before + (bat.eta_ch * b.ch[t] - b.dis[t] / bat.eta_dis) * dt_h)
        if bat.e_final_mwh is not None:
            b.rows.add(b.e[mg.n_steps - 1] >= bat.e_final_mwh)
    for z, p, hi, values in (
        (b.zd, b.pd, d.p_max_mw if d else 0.0, own.diesel_p_mw),
        (b.zch, b.ch, bat.p_ch_max_mw if bat else 0.0, own.battery_ch_mw),
        (b.zdis, b.dis, bat.p_dis_max_mw if bat else 0.0, own.battery_dis_mw),
    ):
        for t in T:
            for q in (0.0, hi, values[t]):  # tangents of p^2 at q
                b.rows.add(z[t] >= 2 * q * p[t] - q * q)
    a2, a1 = (d.a2_per_mw2h, d.a1_per_mwh) if d else (0.0, 0.0)
    a0 = d.a0_per_h if d and d.must_run else 0.0
    ab2, ab1 = (mg.battery_cost_per_mw2h, mg.throughput_cost_per_mwh) if bat else (0.0, 0.0)
    c_curt, c_shed = mg.curtailment_price_per_mwh, mg.load_shed_price_per_mwh
    return sum(
        dt_h
        * (
            a2 * b.zd[t]
            + a1 * b.pd[t]
            + a0
            + ab2 * (b.zch[t] + b.zdis[t])
            + ab1 * (b.ch[t] + b.dis[t])
            + c_curt * (mg.pv_mw[t] - b.pv[t] + mg.wind_mw[t] - b.wind[t])
            + c_shed * b.shed[t]
        )
        for t in T
    )


def _tangent_lower_bound(mgs: list[AdmmMg], dt_h: float, ref: CentralResult) -> float:
    """A lower bound of the centralized optimum, from an LP built here from the spec (not model.py's
    builder) and solved by HiGHS's simplex (not its QP solver).

    Every quadratic term a*p^2 (diesel a2, battery a_b) becomes a*z with z >= 2*q*p - q^2 for tangent
    points q (a convex function lies above its tangents, so the LP's optimum is <= the QP's). The
    tangent points include the reference's own values: if the reference is optimal (KKT holds), its plan
    is optimal for the linearisation at itself, so the bound equals its cost; a reference that is not
    optimal by delta leaves a gap of about delta. Endpoints 0 and p_max are added (still a lower bound)."""
    from pyomo.contrib.solver.solvers.highs import Highs

    m = pyo.ConcreteModel()
    m.mgs = pyo.Block(range(len(mgs)))
    costs = [_lp_mg(m.mgs[i], mg, dt_h, ref.schedules[mg.name]) for i, mg in enumerate(mgs)]
    m.exch = pyo.Constraint(range(mgs[0].n_steps), rule=lambda m, t: sum(m.mgs[i].x[t] for i in m.mgs) == 0)
    m.obj = pyo.Objective(expr=sum(costs))
    opt = Highs()
    opt.config.threads = 1
    res = opt.solve(m)
    assert res.incumbent_objective is not None
    return float(res.incumbent_objective)


def _check_reference(mgs: list[AdmmMg], central: CentralResult, dt_h: float = 1.0) -> None:
    """The reference is optimal: a feasible plan whose cost the LP lower bound meets (relative 1e-6)."""
    assert central.status is SolveStatus.OPTIMAL
    assert central.total_cost is not None
    _check_plan(mgs, central, dt_h)
    for t in range(mgs[0].n_steps):
        assert abs(sum(s.exch_mw[t] for s in central.schedules.values())) <= 1e-6
    lower = _tangent_lower_bound(mgs, dt_h, central)
    assert lower - 1e-6 <= central.total_cost <= lower + 1e-6 * max(1.0, abs(lower))


def _imbalance_value(res: AdmmResult) -> float:
    """sum_t |y_t| * |sum_n P_exch[n,t]|: the ADMM plan's leftover imbalance valued at its exchange price.

    ADMM stops with |sum_n P_exch| up to eps_pri (not 0); its cost then differs from the balanced
    optimum by about this much (power one side got at the price y without the other side producing it).
    On 800 drawn cases of ``_small_cases`` the cost difference was at most 0.61 * (0.5 %-or-0.05 + this)."""
    imbalance = np.sum(np.array(list(res.eep_mw.values())), axis=0)
    return float(np.sum(np.abs(np.array(res.price_per_mw)) * np.abs(imbalance)))


def _grid_mg(
    i: int, load_k: tuple[int, ...], pv_k: tuple[int, ...], diesel_k: tuple[int, int, int], battery: bool
) -> AdmmMg:
    """One MG of ``_small_cases`` from its integer draws (k/100 on each range)."""
    diesel = DieselUnit(
        p_max_mw=1.5 + 1.5 * (diesel_k[0] / 100),
        a2_per_mw2h=1.0 + 49.0 * (diesel_k[1] / 100),
        a1_per_mwh=50.0 + 200.0 * (diesel_k[2] / 100),
    )
    bat = (
        Battery(e_max_mwh=2.0, e_init_mwh=1.0, p_ch_max_mw=0.5, p_dis_max_mw=0.5, eta_ch=0.95, eta_dis=0.95)
        if battery
        else None
    )
    load = tuple(0.2 + 1.3 * (k / 100) for k in load_k)
    pv = tuple(1.5 * (k / 100) for k in pv_k)
    return AdmmMg(f"mg{i}", load, pv, (0.0,) * len(load), diesel, bat, battery_cost_per_mw2h=5.0)


@st.composite
def _small_cases(draw: st.DrawFn) -> list[AdmmMg]:
    n_mg = draw(st.integers(2, 4))
    n_steps = draw(st.integers(1, 4))
    # on a 0.01 grid of each range (_grid_mg); _hard_cases draws data down to 1e-4 MW
    k = st.integers(0, 100)
    mgs = []
    for i in range(n_mg):
        load_k = tuple(draw(k) for _ in range(n_steps))
        pv_k = tuple(draw(k) for _ in range(n_steps))
        diesel_k = (draw(k), draw(k), draw(k))
        mgs.append(_grid_mg(i, load_k, pv_k, diesel_k, draw(st.booleans())))
    return mgs


def recorded_instance() -> list[AdmmMg]:
    """The draw of ``_small_cases`` on which HiGHS's QP solver failed the reference before (4 MGs x 3 steps;
    from the Hypothesis database): the first solve ended "Solve error", the retry with
    qp_regularization_value 1e-5 ran into the 30 s time limit (291,907 QP iterations in 3 s at the optimum's
    objective), so the reference came back "feasible"."""
    return [
        _grid_mg(0, (15, 53, 66), (51, 69, 6), (31, 10, 45), True),  # loads 0.395/0.889/1.058, PV 0.765/1.035/0.09
        _grid_mg(1, (71, 19, 51), (6, 2, 8), (92, 0, 34), False),
        _grid_mg(2, (86, 23, 62), (20, 56, 22), (9, 58, 78), False),
        _grid_mg(3, (93, 32, 82), (36, 94, 38), (32, 9, 67), True),
    ]


def test_recorded_instance_solved_to_optimality() -> None:
    mgs = recorded_instance()
    assert mgs[0].load_mw == pytest.approx((0.395, 0.889, 1.058))
    assert mgs[0].pv_mw == pytest.approx((0.765, 1.035, 0.09))
    d = mgs[0].diesel
    assert d is not None
    assert (d.a2_per_mw2h, d.a1_per_mwh) == pytest.approx((5.9, 140.0))
    central = solve_centralized(mgs, 1.0)
    _check_reference(mgs, central)
    assert central.total_cost == pytest.approx(440.466082, abs=1e-5)
    admm = solve_admm(mgs, 1.0)
    assert admm.converged
    _check_plan(mgs, admm, 1.0)
    assert admm.total_cost == pytest.approx(central.total_cost, rel=1e-3)


def test_local_qp_hot_resolve_matches_cold_solve() -> None:
    """A re-solve (hot start from the previous optimum, only the objective pushed) ends where a fresh
    QP solved once with the same rho and centre ends; also across a rho change and new data."""
    mg = four_mg(24)[0]
    rng = np.random.default_rng(3)
    hot = LocalQp(mg, 1.0)
    hot.set_data(mg)
    for rho in (10.0, 10.0, 20.0, 5.0):
        centre = rng.normal(0.0, 0.5, mg.n_steps)
        status, x, _ = hot.solve(rho, centre)
        fresh = LocalQp(mg, 1.0)
        fresh.set_data(mg)
        status_f, x_f, _ = fresh.solve(rho, centre)
        assert status is status_f is SolveStatus.OPTIMAL
        assert x == pytest.approx(x_f, abs=1e-6)
        assert hot.schedule(mg).cost == pytest.approx(fresh.schedule(mg).cost, rel=1e-9, abs=1e-6)
    other = four_mg(24)[2]  # the same structure, other data: set_data, then a cold solve
    other = AdmmMg(mg.name, other.load_mw, other.pv_mw, other.wind_mw, mg.diesel, mg.battery, 5.0, 2.0)
    hot.set_data(other)
    fresh = LocalQp(other, 1.0)
    fresh.set_data(other)
    assert hot.solve(10.0, np.zeros(mg.n_steps))[1] == pytest.approx(
        fresh.solve(10.0, np.zeros(mg.n_steps))[1], abs=1e-6
    )
    sched = hot.schedule(other)
    _check_plan([other], CentralResult(SolveStatus.OPTIMAL, sched.cost, {}, {other.name: sched}, 0.0), 1.0)


@settings(
    max_examples=30,
    deadline=None,  # speed is measured by benchmarks (tests/bench/bench_admm_qp.py), not asserted here
    suppress_health_check=[HealthCheck.too_slow],
    phases=(Phase.explicit, Phase.reuse, Phase.generate),  # no shrinking: keeps a failure's run short
)
@given(_small_cases())
def test_property_admm_reaches_central_optimum(mgs: list[AdmmMg]) -> None:
    # Feasible by construction, without shedding: each MG's diesel (>= 1.5 MW) covers its own load (<= 1.5 MW).
    central = solve_centralized(mgs, 1.0)
    admm = solve_admm(mgs, 1.0)
    _check_reference(mgs, central)
    assert central.total_cost is not None
    assert admm.converged
    n, t = len(mgs), mgs[0].n_steps
    eps = math.sqrt(n * t)
    assert admm.primal_residual[-1] <= eps * AdmmSettings().tol_primal_mw
    assert admm.dual_residual[-1] <= eps * AdmmSettings().tol_dual
    # cost tolerance: 0.5 % or 0.05 (absolute, for near-zero optima), plus the leftover imbalance at its price
    tol = max(5e-3 * abs(central.total_cost), 0.05) + _imbalance_value(admm)
    assert abs(admm.total_cost - central.total_cost) <= tol
    assert admm.final_gap_mw < GAP_MW


@st.composite
def _hard_cases(draw: st.DrawFn) -> list[AdmmMg]:
    """Wider than _small_cases: data on a 1e-4 MW grid with tiny values (HiGHS's phase 1 zeroes start values
    below 1e-4), wind, MGs without diesel, finite exchange caps, curtailment prices, final SoC, shedding."""
    n_mg = draw(st.integers(2, 5))
    n_steps = draw(st.integers(1, 6))

    def mw(top: float) -> float:
        return draw(
            st.one_of(
                st.just(0.0),
                st.integers(1, 30).map(lambda k: k / 1e4),
                st.integers(0, int(top * 1e4)).map(lambda k: k / 1e4),
            )
        )

    mgs = []
    for i in range(n_mg):
        diesel = None
        if draw(st.booleans()):
            diesel = DieselUnit(
                p_max_mw=mw(3.0), a2_per_mw2h=draw(st.sampled_from([0.0, 2.0, 20.0, 60.0])), a1_per_mwh=mw(260.0)
            )
        battery = None
        if draw(st.booleans()):
            e_max = 0.5 + mw(3.5)
            battery = Battery(
                e_max_mwh=e_max,
                e_init_mwh=0.5 * e_max,
                p_ch_max_mw=0.25 * e_max,
                p_dis_max_mw=0.25 * e_max,
                eta_ch=0.95,
                eta_dis=0.95,
                e_min_mwh=0.1 * e_max,
                e_final_mwh=draw(st.sampled_from([None, 0.4 * e_max])),
            )
        mgs.append(
            AdmmMg(
                f"mg{i}",
                tuple(mw(1.5) for _ in range(n_steps)),
                tuple(mw(1.5) for _ in range(n_steps)),
                tuple(mw(1.0) for _ in range(n_steps)),
                diesel,
                battery,
                battery_cost_per_mw2h=draw(st.sampled_from([0.0, 5.0])) if battery else 0.0,
                battery_cost_per_mwh=draw(st.sampled_from([0.0, 2.0])) if battery else 0.0,
                curtailment_price_per_mwh=draw(st.sampled_from([0.0, 5.0, 30.0])),
                load_shed_price_per_mwh=draw(st.sampled_from([300.0, 1000.0, 5000.0])),
                exch_max_mw=draw(st.sampled_from([math.inf, 0.5, 2.0])),
            )
        )
    return mgs


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)
@given(_hard_cases())
def test_property_reference_optimal_on_harder_data(mgs: list[AdmmMg]) -> None:
    # Feasible by construction: shedding (<= the load) can cover every load, batteries need not move.
    _check_reference(mgs, solve_centralized(mgs, 1.0))


def test_no_plan_dumps_surplus_through_simultaneous_charge_and_discharge() -> None:
    """A PV surplus no battery can store, a curtailment price and no battery life cost: without the
    throughput-cost floor the QP charges and discharges at once to burn the surplus in the battery's
    losses (cheaper than curtailing); with it, it curtails, and both plans agree on the cost."""
    bat = Battery(e_max_mwh=1.0, e_init_mwh=1.0, p_ch_max_mw=1.0, p_dis_max_mw=1.0, eta_ch=0.9, eta_dis=0.9)
    surplus = AdmmMg("s", (0.5,) * 3, (2.0,) * 3, (0.0,) * 3, battery=bat, curtailment_price_per_mwh=20.0)
    other = AdmmMg("o", (0.5,) * 3, (1.0,) * 3, (0.0,) * 3, battery=bat, curtailment_price_per_mwh=20.0)
    central, admm = solve_centralized([surplus, other], 1.0), solve_admm([surplus, other], 1.0)
    for res in (central, admm):
        for s in res.schedules.values():
            both = np.minimum(s.battery_ch_mw, s.battery_dis_mw)
            assert float(np.max(both)) < 1e-6, s
    # all 2 MW of surplus per hour are curtailed (the batteries are full): 3 h x 2 MW x 20 $/MWh
    assert central.total_cost == pytest.approx(120.0, rel=1e-6)
    assert admm.total_cost == pytest.approx(120.0, rel=1e-3)
    assert surplus.throughput_cost_per_mwh == pytest.approx(1.05 * 20.0 * (1 - 0.81) / (1 + 0.81))
