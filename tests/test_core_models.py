"""Local and centralized models: lower-bound property, infeasible and timed-out solves as values,
re-solve by parameter update equal to a fresh build, dt_h != 1."""

from __future__ import annotations

import math
import random

import pytest

from ems_controllers.core.system import SystemModel
from ems_controllers.core.types import (
    Battery,
    DieselUnit,
    Forecast,
    Horizon,
    Microgrid,
    PartyProblem,
    SolveResult,
    SolverOptions,
    UnitState,
)
from ems_controllers.local.model import LocalModel, solve_local

TIGHT = SolverOptions(mip_rel_gap=1e-7, time_limit_s=30.0)


def objective_of(r: SolveResult) -> float:
    """The objective of a solve the test expects to have one."""
    assert r.objective is not None, r.status
    return r.objective


def tariff(n: int, dt_h: float = 1.0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    hours = [k * dt_h for k in range(n)]
    buy = tuple(115.0 + 45.0 * math.exp(-((((h % 24) - 12.0) / 4.0) ** 2)) for h in hours)
    return buy, tuple(b - 10.0 for b in buy)


def party(
    name: str, rng: random.Random, n: int, dt_h: float = 1.0, *, diesel: bool = True, pcc: float = 2.0
) -> PartyProblem:
    dg = (
        DieselUnit(
            p_max_mw=rng.uniform(1.2, 2.5),
            p_min_mw=0.2,
            a2_per_mw2h=rng.uniform(10, 20),
            a1_per_mwh=rng.uniform(75, 95),
            startup_cost=rng.choice([150.0, 200.0]),
            ramp_up_mw_per_h=1.2,
            ramp_down_mw_per_h=1.2,
        )
        if diesel
        else None
    )
    bat = Battery(
        e_max_mwh=1.0, e_init_mwh=0.2, p_ch_max_mw=0.5, p_dis_max_mw=0.5, eta_ch=0.98, eta_dis=0.98, e_final_mwh=0.5
    )
    mg = Microgrid(
        name, diesel=dg, battery=bat, pcc_max_mw=pcc, res_curtailment_price_per_mwh=5.0, load_shed_price_per_mwh=1000.0
    )
    hours = [k * dt_h for k in range(n)]
    peak = rng.uniform(1.5, 3.0)
    load = tuple(peak * (0.6 + 0.4 * math.sin((h - 6) / 24 * 2 * math.pi) ** 2) for h in hours)
    pv = tuple(rng.uniform(0.8, 2.0) * max(0.0, math.sin((h % 24 - 6) / 12 * math.pi)) for h in hours)
    wind = tuple(max(0.0, rng.gauss(0.5, 0.3)) for _ in hours)
    return PartyProblem(mg, Forecast(load, pv, wind))


def system(seed: int, n_mg: int, n: int = 24, dt_h: float = 1.0) -> list[PartyProblem]:
    rng = random.Random(seed)
    probs = [party(f"MG{i + 1}", rng, n, dt_h, diesel=(i % 3 != 2)) for i in range(n_mg)]
    probs.append(party("DN", rng, n, dt_h, pcc=1e3))
    return probs


def test_centralized_cost_at_most_sum_of_local():
    probs = system(1, 3)
    buy, sell = tariff(24)
    hz = Horizon(1.0, buy, sell, final_step=23)
    opts = SolverOptions(mip_rel_gap=1e-4, time_limit_s=30.0)
    c = SystemModel().solve(probs, hz, opts)
    assert c.status == "optimal"
    local = [solve_local(p, hz, opts) for p in probs]
    assert all(r.status == "optimal" for r in local)
    total_local = sum(objective_of(r) for r in local)
    assert c.objective is not None
    assert c.objective <= total_local + opts.mip_rel_gap * abs(c.objective) + 1e-6
    # plans: each party balances, and the substation carries the sum of the imports
    assert c.detail is not None and c.plans is not None
    sub = c.detail.substation_import_mw
    for t in range(24):
        assert sum(c.plans[p.mg.name].import_mw[t] for p in probs) == pytest.approx(sub[t], abs=1e-6)
    for p in probs:
        pl = c.plans[p.mg.name]
        for t in range(24):
            supply = (
                pl.diesel_p_mw[t]
                + pl.pv_p_mw[t]
                + pl.wind_p_mw[t]
                - pl.battery_p_mw[t]
                + pl.import_mw[t]
                + pl.load_shed_mw[t]
            )
            assert supply == pytest.approx(p.forecast.load_p_mw[t], abs=1e-6)
        assert pl.soc_mwh[23] >= 0.5 - 1e-6


def test_infeasible_final_target_is_a_value():
    """A final target above what the charger can reach in the window: typed infeasible, no plan."""
    bat = Battery(e_max_mwh=1.0, e_init_mwh=0.0, p_ch_max_mw=0.1, p_dis_max_mw=0.1, e_final_mwh=0.9)
    mg = Microgrid("A", battery=bat, pcc_max_mw=10.0)
    fc = Forecast((0.0,) * 3, (0.0,) * 3, (0.0,) * 3)
    hz = Horizon(1.0, (10.0,) * 3, (9.0,) * 3, final_step=2)
    r = solve_local(PartyProblem(mg, fc), hz, TIGHT)
    assert r.status == "infeasible" and not r.ok and r.plans is None and r.objective is None
    probs = [PartyProblem(mg, fc), PartyProblem(Microgrid("DN", pcc_max_mw=100.0), fc)]
    c = SystemModel().solve(probs, hz, TIGHT)
    assert c.status == "infeasible" and c.plans is None and c.detail is None


def test_bad_input_is_a_value():
    mg = Microgrid("A", pcc_max_mw=10.0)
    fc = Forecast((1.0,) * 2, (0.0,) * 2, (0.0,) * 2)
    r = solve_local(PartyProblem(mg, fc), Horizon(1.0, (10.0,) * 3, (9.0,) * 3), TIGHT)
    assert r.status == "error" and r.plans is None
    c = SystemModel().solve([PartyProblem(mg, fc)] * 2, Horizon(1.0, (1.0,) * 2, (1.0,) * 2))
    assert c.status == "error" and c.plans is None


def test_time_limit_is_reported_honestly():
    probs = system(7, 30)
    buy, sell = tariff(24)
    hz = Horizon(1.0, buy, sell, final_step=23)
    r = SystemModel().solve(probs, hz, SolverOptions(mip_rel_gap=1e-9, time_limit_s=1e-3))
    assert r.status in ("feasible", "no_solution")
    if r.status == "feasible":
        assert r.plans is not None and r.objective is not None
    else:
        assert r.plans is None and r.objective is None


def _shifted(probs: list[PartyProblem], shift: int, n: int, dt_h: float = 1.0) -> list[PartyProblem]:
    """The same parties one window later: rotated forecasts, a measured state."""
    out = []
    for k, p in enumerate(probs):
        fc = p.forecast

        def rot(s: tuple[float, ...]) -> tuple[float, ...]:
            return s[shift:] + s[:shift]

        out.append(
            PartyProblem(
                p.mg,
                Forecast(rot(fc.load_p_mw), rot(fc.pv_p_mw), rot(fc.wind_p_mw)),
                UnitState(e_mwh=0.3 + 0.1 * k, diesel_p_mw=0.8 if k % 2 else 0.0),
            )
        )
    return out


@pytest.mark.parametrize("dt_h", [1.0, 0.5])
def test_rolling_update_equals_fresh_build(dt_h):
    n = 12
    probs = system(3, 3, n=n, dt_h=dt_h)
    buy, sell = tariff(n, dt_h)
    hz1 = Horizon(dt_h, buy, sell, final_step=n - 1)
    hz2 = Horizon(dt_h, buy[2:] + buy[:2], sell[2:] + sell[:2], final_step=n - 3)
    later = _shifted(probs, 2, n)

    cm = SystemModel()
    first = cm.solve(probs, hz1, TIGHT)
    again = cm.solve(later, hz2, TIGHT)
    fresh = SystemModel().solve(later, hz2, TIGHT)
    assert first.times is not None and again.times is not None and fresh.times is not None
    assert first.times.rebuilt and not again.times.rebuilt and fresh.times.rebuilt
    assert again.objective == pytest.approx(fresh.objective, rel=1e-6)
    assert again.plans is not None
    assert again.plans["MG1"].soc_mwh[n - 3] >= 0.5 - 1e-6

    lm = LocalModel()
    for p, q in zip(probs, later, strict=True):
        lm.solve(p, hz1, TIGHT)
        r_again = lm.solve(q, hz2, TIGHT)
        assert r_again.times is not None and not r_again.times.rebuilt
        r_fresh = solve_local(q, hz2, TIGHT)
        assert r_again.objective == pytest.approx(r_fresh.objective, rel=1e-6, abs=1e-6)
        assert r_again.plans is not None
        assert sum(r_again.plans[q.mg.name].cost) == pytest.approx(r_again.objective, abs=1e-5)


def test_appsi_backend_gives_the_same_results():
    probs = system(5, 2, n=8)
    buy, sell = tariff(8)
    hz = Horizon(1.0, buy, sell, final_step=7)
    a = SystemModel(backend="appsi")
    b = SystemModel(backend="contrib")
    for probs_k in (probs, _shifted(probs, 3, 8)):
        ra, rb = a.solve(probs_k, hz, TIGHT), b.solve(probs_k, hz, TIGHT)
        assert ra.objective == pytest.approx(rb.objective, rel=1e-6)


def test_half_hour_steps_scale_energy_not_power():
    """Same MG over 12 h: 24 half-hour steps with the hourly data repeated cost what 12 hourly steps
    cost (diesel off: the PWL/start-up is the same either way; battery off-target)."""
    rng = random.Random(11)
    p = party("MG", rng, 12, diesel=False)
    fc = p.forecast

    def dup(s: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(v for v in s for _ in range(2))

    p2 = PartyProblem(p.mg, Forecast(dup(fc.load_p_mw), dup(fc.pv_p_mw), dup(fc.wind_p_mw)))
    buy, sell = tariff(12)
    r1 = solve_local(p, Horizon(1.0, buy, sell, final_step=11), TIGHT)
    r2 = solve_local(p2, Horizon(0.5, dup(buy), dup(sell), final_step=23), TIGHT)
    assert r1.status == r2.status == "optimal"
    # the half-hour model can only do at least as well (it may split hours); never worse
    assert r1.objective is not None and r2.objective is not None
    assert r2.objective <= r1.objective + 1e-6
    assert r2.objective == pytest.approx(r1.objective, rel=0.05)


def test_network_hook_constrains_the_parties():
    """A hook capping MG1's export at 0.1 MW binds in the plan and cannot lower the system cost."""
    import pyomo.environ as pyo

    probs = system(2, 2, n=8)
    buy, sell = tariff(8)
    hz = Horizon(1.0, buy, sell, final_step=7)

    def cap(m, problems, T):
        m.net_cap = pyo.Constraint(T, rule=lambda m, t: m.party["MG1"].import_mw[t] >= -0.1)

    free = SystemModel().solve(probs, hz, TIGHT)
    capped = SystemModel(network=cap).solve(probs, hz, TIGHT)
    assert capped.status == "optimal"
    assert capped.plans is not None
    assert min(capped.plans["MG1"].import_mw) >= -0.1 - 1e-7
    assert capped.objective is not None and free.objective is not None
    assert capped.objective >= free.objective - 1e-6


def test_certified_relaxation_matches_the_milp():
    """The LP-relaxation shortcut (round, fix, re-solve, accept within the gap of the LP bound) gives
    the MILP's optimum within the gap, on instances where it certifies and where it must fall back."""
    buy, sell = tariff(24)
    hz = Horizon(1.0, buy, sell, final_step=23)
    opts = SolverOptions(mip_rel_gap=1e-4)
    plain = SolverOptions(mip_rel_gap=1e-4, certify_relaxation=False)
    certified = 0
    for seed in range(6):
        probs = system(seed, 3)
        a = SystemModel().solve(probs, hz, opts)
        b = SystemModel().solve(probs, hz, plain)
        assert a.ok and b.ok
        assert a.objective == pytest.approx(b.objective, rel=2e-4)
        certified += "certified" in a.termination
        assert a.plans is not None
        for name, plan in a.plans.items():  # integrality of what is applied
            assert all(on in (True, False) for on in plan.diesel_on), name
        for p in probs:  # the certified plan is a real schedule: balance, bounds
            plan = a.plans[p.mg.name]
            if p.mg.battery is not None:
                assert all(p.mg.battery.e_min_mwh - 1e-6 <= e <= p.mg.battery.e_max_mwh + 1e-6 for e in plan.soc_mwh)
            if p.mg.diesel is not None:
                for on, pw in zip(plan.diesel_on, plan.diesel_p_mw, strict=True):
                    assert (not on and pw <= 1e-6) or (
                        on and p.mg.diesel.p_min_mw - 1e-6 <= pw <= p.mg.diesel.p_max_mw + 1e-6
                    )
    assert certified >= 1, "the shortcut never applied on these instances"


def test_model_cache_builds_once_per_key_and_identity():
    """The one solve-and-cache wrapper: a key is built once and re-solved; a different ``keep`` object
    under the same key rebuilds; the least recently used model goes beyond ``size``."""
    import pyomo.environ as pyo

    from ems_controllers.core.model_cache import ModelCache

    builds: list[str] = []

    def build(tag: str):
        def make() -> pyo.ConcreteModel:
            builds.append(tag)
            m = pyo.ConcreteModel()
            m.lo = pyo.Param(mutable=True, initialize=0.0)
            m.x = pyo.Var(bounds=(m.lo, None))
            m.obj = pyo.Objective(expr=m.x)
            return m

        return make

    def write(lo: float):
        def set_lo(m: pyo.ConcreteModel) -> None:
            m.lo = lo

        return set_lo

    cache = ModelCache(size=2)
    net_a, net_b = object(), object()
    first = cache.solve("a", build("a"), write(1.0), TIGHT, keep=net_a)
    again = cache.solve("a", build("a"), write(2.0), TIGHT, keep=net_a)
    assert first.times.rebuilt and not again.times.rebuilt and again.times.pyomo_build_s == 0.0
    assert first.raw.objective == pytest.approx(1.0) and again.raw.objective == pytest.approx(2.0)
    assert cache.solve("a", build("a"), write(3.0), TIGHT, keep=net_b).times.rebuilt  # another object
    cache.solve("b", build("b"), write(1.0), TIGHT)
    cache.solve("c", build("c"), write(1.0), TIGHT)  # evicts "a" (least recently used)
    assert len(cache) == 2
    assert cache.solve("a", build("a"), write(1.0), TIGHT, keep=net_b).times.rebuilt
    assert builds == ["a", "a", "b", "c", "a"]
    res: SolveResult[None] = again.result(None)
    assert res.status == "optimal" and res.times is again.times and res.plans is None


def test_one_status_map_with_the_record_strings():
    """Statuses are an enum whose values are the strings the record carries; one table maps Pyomo's
    terminations (and, through Pyomo's, HiGHS's model status) onto them."""
    import highspy
    from pyomo.contrib.solver.common.results import TerminationCondition as TC

    from ems_controllers.core.solver import STATUS_TABLE, highs_termination, solve_status
    from ems_controllers.core.types import EmsStatus, SolveStatus

    assert [s.value for s in SolveStatus] == ["optimal", "feasible", "infeasible", "no_solution", "error"]
    assert set(STATUS_TABLE) == set(TC)
    assert solve_status(TC.convergenceCriteriaSatisfied, True) is SolveStatus.OPTIMAL
    assert solve_status(TC.maxTimeLimit, True) is SolveStatus.FEASIBLE
    assert solve_status(TC.maxTimeLimit, False) is SolveStatus.NO_SOLUTION
    hms = highspy.HighsModelStatus
    assert solve_status(highs_termination(hms.kInfeasible), False) is SolveStatus.INFEASIBLE
    assert solve_status(highs_termination(hms.kSolveError), False) is SolveStatus.ERROR
    assert all(isinstance(highs_termination(s), TC) for s in hms.__members__.values())
    assert EmsStatus.OK.text() == "ok" and EmsStatus.OK.text("feasible") == "ok (feasible)"
    assert EmsStatus.FALLBACK_PREVIOUS_PLAN.text("infeasible: x") == "fallback: previous plan (infeasible: x)"
    assert EmsStatus.FALLBACK_RULE.text("y") == "fallback: rule (y)"
    assert EmsStatus.FALLBACK_NO_FORECAST.text() == "fallback: no forecast"
