"""Each Pyomo block of ems_controllers.core.blocks against a hand-solved case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ems_controllers.core.blocks import pwl_error_bound, pwl_points
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
from ems_controllers.local.model import solve_local

TIGHT = SolverOptions(mip_rel_gap=1e-9, time_limit_s=20.0)


def _fc(load, pv=None, wind=None) -> Forecast:
    n = len(load)
    return Forecast(tuple(load), tuple(pv or (0.0,) * n), tuple(wind or (0.0,) * n))


def _hz(buy, sell, dt_h=1.0, final_step=None) -> Horizon:
    return Horizon(dt_h, tuple(buy), tuple(sell), final_step)


def test_battery_arbitrage_three_steps():
    """Buy 10/50/100, sell 9/49/99, eta 0.9 each way, 1 MWh, 1 MW, empty at start.

    By hand: charge 1 MW at t0 (0.9 MWh, cost 10); topping up at t1 pays: 1 MWh bought at 50 becomes
    0.81 MWh sold at 99 = 80.19 > 50, and the 1 MWh capacity needs 0.1/0.9 MWh more input (cost 5.556);
    discharge all at t2: 1 MWh * 0.9 = 0.9 MW sold at 99 (89.1). Objective = 10 + 50/9 - 89.1.
    """
    bat = Battery(e_max_mwh=1.0, e_init_mwh=0.0, p_ch_max_mw=1.0, p_dis_max_mw=1.0, eta_ch=0.9, eta_dis=0.9)
    mg = Microgrid("A", battery=bat, pcc_max_mw=10.0)
    r = solve_local(PartyProblem(mg, _fc([0, 0, 0])), _hz([10, 50, 100], [9, 49, 99]), TIGHT)
    assert r.status == "optimal" and r.ok
    assert r.plans is not None
    p = r.plans["A"]
    assert r.objective == pytest.approx(10 + 50 / 9 - 89.1, abs=1e-6)
    assert p.battery_p_mw == pytest.approx((1.0, 1 / 9, -0.9), abs=1e-6)
    assert p.soc_mwh == pytest.approx((0.9, 1.0, 0.0), abs=1e-6)
    assert p.import_mw == pytest.approx((1.0, 1 / 9, -0.9), abs=1e-6)
    assert sum(p.cost) == pytest.approx(r.objective, abs=1e-6)


def test_battery_half_hour_steps():
    """dt_h = 0.5, eta 1: the 1 MW discharge limit sells only 0.5 MWh at t2, so only 0.5 MWh is bought,
    at the cheapest step: objective = 0.5*10 - 0.5*99 = -44.5."""
    bat = Battery(e_max_mwh=1.0, e_init_mwh=0.0, p_ch_max_mw=1.0, p_dis_max_mw=1.0)
    mg = Microgrid("A", battery=bat, pcc_max_mw=10.0)
    r = solve_local(PartyProblem(mg, _fc([0, 0, 0])), _hz([10, 50, 100], [9, 49, 99], dt_h=0.5), TIGHT)
    assert r.objective == pytest.approx(-44.5, abs=1e-6)
    assert r.plans is not None
    assert r.plans["A"].soc_mwh == pytest.approx((0.5, 0.5, 0.0), abs=1e-6)
    assert r.plans["A"].battery_p_mw == pytest.approx((1.0, 0.0, -1.0), abs=1e-6)


def test_battery_final_target_is_lower_bound_at_final_step():
    """Flat prices, target 0.5 at step 1 of 3 from 0.2: buy 0.3 MWh by step 1, may then sell it."""
    bat = Battery(e_max_mwh=1.0, e_init_mwh=0.2, p_ch_max_mw=1.0, p_dis_max_mw=1.0, e_final_mwh=0.5)
    mg = Microgrid("A", battery=bat, pcc_max_mw=10.0)
    r = solve_local(PartyProblem(mg, _fc([0, 0, 0])), _hz([10, 10, 100], [9, 9, 99], final_step=1), TIGHT)
    assert r.plans is not None
    soc = r.plans["A"].soc_mwh
    assert soc[1] >= 0.5 - 1e-7
    # after the target: fill up at 10 in steps 0/1, sell 1 MWh at 99: 0.8*10 - 99
    assert r.objective == pytest.approx(0.8 * 10 - 99, abs=1e-6)


def test_diesel_ramp_and_startup_linear_cost():
    """Load 2 MW x 3 h, buy 100, diesel 50 $/MWh, start-up 100, P_min 0.5, P_max 2, ramp 1 MW/h, off.

    Start-up ramp SU = max(P_min, ramp) = 1 MW, so the diesel runs 1, 2, 2 MW: 5 MWh * 50 + 100
    + 1 MWh bought * 100 = 450 (not starting: 600; starting at t1: 550).
    """
    dg = DieselUnit(
        p_max_mw=2.0, p_min_mw=0.5, a1_per_mwh=50.0, startup_cost=100.0, ramp_up_mw_per_h=1.0, ramp_down_mw_per_h=1.0
    )
    mg = Microgrid("D", diesel=dg, pcc_max_mw=10.0)
    hz = _hz([100] * 3, [0] * 3)
    r = solve_local(PartyProblem(mg, _fc([2, 2, 2])), hz, TIGHT)
    assert r.objective == pytest.approx(450.0, abs=1e-6)
    assert r.plans is not None
    p = r.plans["D"]
    assert p.diesel_p_mw == pytest.approx((1.0, 2.0, 2.0), abs=1e-6)
    assert p.diesel_on == (True, True, True)
    assert p.cost[0] == pytest.approx(100 + 50 + 100, abs=1e-6)
    # already running at 2 MW: no start-up, no ramp limit from the start: 6 MWh * 50
    r = solve_local(PartyProblem(mg, _fc([2, 2, 2]), UnitState(diesel_p_mw=2.0)), hz, TIGHT)
    assert r.objective == pytest.approx(300.0, abs=1e-6)


def test_diesel_ramp_down_and_shutdown():
    """Running at 2 MW, load 0, nothing sells (price 0), ramp-down 0.5 MW/h, P_min 0.2:
    the unit must come down 1.5, 1.0 and may stop only from SD = max(P_min, 0.5) = 0.5 MW:
    outputs 1.5, 1.0, 0.5, 0 with surplus sold at 0 -> cost = 3 MWh * 50."""
    dg = DieselUnit(p_max_mw=2.0, p_min_mw=0.2, a1_per_mwh=50.0, ramp_down_mw_per_h=0.5)
    mg = Microgrid("D", diesel=dg, pcc_max_mw=10.0)
    r = solve_local(PartyProblem(mg, _fc([0] * 4), UnitState(diesel_p_mw=2.0)), _hz([100] * 4, [0] * 4), TIGHT)
    assert r.plans is not None
    assert r.plans["D"].diesel_p_mw == pytest.approx((1.5, 1.0, 0.5, 0.0), abs=1e-6)
    assert r.objective == pytest.approx(150.0, abs=1e-6)


def test_diesel_pwl_cost_within_bound():
    """Island (pcc 0): the diesel must serve 1 MW; its PWL cost is within the bound below the truth."""
    dg = DieselUnit(p_max_mw=1.6, a2_per_mw2h=18.0, a1_per_mwh=90.0, a0_per_h=5.0)
    mg = Microgrid("D", diesel=dg, pcc_max_mw=0.0)
    opts = SolverOptions(mip_rel_gap=1e-9, pwl_max_error_per_h=0.5)
    for dt_h in (1.0, 0.25):
        r = solve_local(PartyProblem(mg, _fc([1.0, 0.7])), _hz([100] * 2, [0] * 2, dt_h=dt_h), opts)
        true = sum(dg.cost_per_h(p) * dt_h for p in (1.0, 0.7))
        bound = pwl_error_bound(dg, len(pwl_points(dg, 0.5)))
        assert r.objective is not None
        assert true - 2 * bound * dt_h - 1e-6 <= r.objective <= true + 1e-6


@pytest.mark.parametrize(
    ("a2", "p_min", "p_max", "err"),
    [(18.0, 0.0, 1.6, 0.5), (15.0, 0.3, 2.0, 0.1), (12.0, 0.0, 3.0, 1.0), (0.5, 0.0, 1.0, 0.5)],
)
def test_pwl_bound_holds_and_is_tight(a2, p_min, p_max, err):
    dg = DieselUnit(p_max_mw=p_max, p_min_mw=p_min, a2_per_mw2h=a2, a1_per_mwh=80.0)
    xs = pwl_points(dg, err)
    n = len(xs)
    bound = pwl_error_bound(dg, n)
    assert bound <= err
    if n > 1:
        assert pwl_error_bound(dg, n - 1) > err  # fewest points
    grid = np.linspace(p_min, p_max, 20001)
    true = a2 * grid**2 + 80.0 * grid
    pwl = np.max([a2 * (2 * x * grid - x * x) + 80.0 * grid for x in xs], axis=0)
    under = true - pwl
    assert under.min() >= -1e-9  # outer approximation: never above the truth
    assert under.max() <= bound + 1e-9
    assert under.max() >= 0.9 * bound  # tight within 10 %


def test_curtailment_when_export_capped():
    """PV 5, load 1, export cap 2, sell 10, curtailment 3 $/MWh: sell 2, curtail 2 -> -20 + 6."""
    mg = Microgrid("R", pcc_max_mw=2.0, res_curtailment_price_per_mwh=3.0)
    r = solve_local(PartyProblem(mg, _fc([1.0], pv=[5.0])), _hz([50], [10]), TIGHT)
    assert r.plans is not None
    p = r.plans["R"]
    assert p.import_mw == pytest.approx((-2.0,))
    assert p.res_curtailed_mw == pytest.approx((2.0,))
    assert r.objective == pytest.approx(-14.0, abs=1e-6)


@pytest.mark.parametrize(
    ("shed_price", "expected_shed", "expected_cost"), [(200.0, 3.0, 2 * 50 + 3 * 200), (30.0, 5.0, 5 * 30)]
)
def test_load_shedding(shed_price, expected_shed, expected_cost):
    """Load 5, import cap 2 at 50: shed the rest at 200; or shed all when shedding (30) is cheaper."""
    mg = Microgrid("L", pcc_max_mw=2.0, load_shed_price_per_mwh=shed_price)
    r = solve_local(PartyProblem(mg, _fc([5.0])), _hz([50], [40]), TIGHT)
    assert r.plans is not None
    assert r.plans["L"].load_shed_mw == pytest.approx((expected_shed,))
    assert r.objective == pytest.approx(expected_cost, abs=1e-6)


def test_no_simultaneous_buy_and_sell():
    """Sell price above buy price: without the binary, buying and selling 10 MW at once would pay."""
    mg = Microgrid("X", pcc_max_mw=10.0)
    r = solve_local(PartyProblem(mg, _fc([0.0, 0.0])), _hz([10, 10], [20, 20]), TIGHT)
    assert r.objective == pytest.approx(0.0, abs=1e-9)


def test_infinite_pcc_and_shed_disabled():
    """Unlimited PCC: the big-M comes from the data; an infinite shed price disables shedding."""
    mg = Microgrid("U", load_shed_price_per_mwh=math.inf)
    r = solve_local(PartyProblem(mg, _fc([3.0, 0.0], pv=[0.0, 4.0])), _hz([50, 50], [20, 20]), TIGHT)
    assert r.plans is not None
    assert r.plans["U"].import_mw == pytest.approx((3.0, -4.0))
    assert r.objective == pytest.approx(150 - 80, abs=1e-6)


def test_non_curtailable_renewables_are_taken_whole():
    """Export capped at 0.5 MW, 1 MW of PV, no load: a curtailable PV is cut to 0.5 MW; a
    non-curtailable one makes the problem infeasible (nothing can absorb the surplus)."""
    fc = _fc([0.0], pv=[1.0])
    hz = _hz([100.0], [90.0])
    mg = Microgrid("A", pcc_max_mw=0.5, res_curtailment_price_per_mwh=1.0)
    r = solve_local(PartyProblem(mg, fc), hz, TIGHT)
    assert r.ok and r.plans is not None and r.plans["A"].pv_p_mw[0] == pytest.approx(0.5)
    fixed = Microgrid("A", pcc_max_mw=0.5, res_curtailment_price_per_mwh=1.0, pv_curtailable=False)
    r = solve_local(PartyProblem(fixed, fc), hz, TIGHT)
    assert r.status == "infeasible" and not r.ok
