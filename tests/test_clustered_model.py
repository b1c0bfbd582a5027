"""Strategy clustered (spec 004), its math without mosaik: the PWL loss bound, the escalation rules, and
the lower level on a small system (2 clusters, 3 MGs, 6 hours) solved by HiGHS."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ems_controllers.clustered import escalation
from ems_controllers.clustered.lower import LowerSettings
from ems_controllers.clustered.lower_solve import LowerLevel, LowerOutcome, Schedule
from ems_controllers.clustered.pareto import is_monotone
from ems_controllers.clustered.system import ClusterSpec, ClusterSystem, Link, TieSpec
from ems_controllers.core.ev import EvSpec
from ems_controllers.core.losses import loss_error_bound_mw, tangent_points
from ems_controllers.core.types import Battery, DieselUnit, Forecast, Horizon, Microgrid, PartyProblem, SolverOptions
from scenarios.config import EvCfg

N = 6


@settings(max_examples=60, deadline=None)
@example(r_ohm=3.0, v_kv=0.40625, f_max=18.0, max_error=1e-05)  # the gap at the ends is coef F^2 less ~coef F^2
@given(
    r_ohm=st.floats(0.01, 5.0),
    v_kv=st.floats(0.4, 30.0),
    f_max=st.floats(0.1, 20.0),
    max_error=st.floats(1e-5, 1e-1),
)
def test_pwl_losses_never_overestimate_and_miss_at_most_the_bound(
    r_ohm: float, v_kv: float, f_max: float, max_error: float
) -> None:
    coef = r_ohm / v_kv**2
    points = tangent_points(coef, f_max, max_error)
    bound = loss_error_bound_mw(coef, f_max, len(points))
    assert bound <= max_error * (1 + 1e-9)
    f = np.linspace(-f_max, f_max, 2001)
    pwl = np.max([coef * (2 * x * f - x * x) for x in points], axis=0)
    gap = coef * f * f - np.maximum(pwl, 0.0)
    # the gap is a difference of numbers of size coef F^2: float rounding of a few ulps of that is no miss
    rounding = 8 * np.finfo(float).eps * coef * f_max**2
    assert gap.min() >= -rounding
    assert gap.max() <= bound * (1 + 1e-9) + rounding


def _link(name: str, sw: int, r_ohm: float = 0.05) -> Link:
    return Link(name, r_ohm, 0.03, 20.0, 9.8, sw, sw)


def small_system() -> ClusterSystem:
    clusters = (
        ClusterSpec("C1", ("MG1", "MG2"), 100, 5, _link("C1 feeder", 10)),
        ClusterSpec("C2", ("MG3",), 101, 7, _link("C2 feeder", 11)),
    )
    ties = (TieSpec("C1-C2 tie", "C1", "C2", _link("C1-C2 tie", 12, 0.4)),)
    return ClusterSystem(clusters, ties, {m: _link(f"{m} PCC", i) for i, m in enumerate(("MG1", "MG2", "MG3"))})


def test_levels_open_the_switches_the_spec_names() -> None:
    sys = small_system()
    levels = {"C1": (1, 2, 3, 4, 1, 1), "C2": (1, 1, 1, 1, 3, 4)}
    a = escalation.allowed(sys, levels)
    assert a.pcc["MG1"] == (False, True, True, True, True, True)  # hours 4-5: C2 at level >= 3 reaches C1
    assert a.pcc["MG3"] == (False, False, True, True, True, True)  # C1 at level 3 reaches C2's MG
    assert a.tie["C1-C2 tie"] == (False, False, True, True, True, True)
    assert a.feeder["C1"] == (False, False, False, True, False, False)
    assert a.feeder["C2"] == (False, False, False, False, False, True)


def test_a_tie_never_closes_a_loop_through_the_network() -> None:
    sys = small_system()
    chain = ClusterSystem(
        (*sys.clusters, ClusterSpec("C3", ("MG4",), 102, 9, _link("C3 feeder", 13))),
        (*sys.ties, TieSpec("C2-C3 tie", "C2", "C3", _link("C2-C3 tie", 14, 0.4))),
        {**sys.pcc, "MG4": _link("MG4 PCC", 15)},
    )
    # C1 and C3 may reach the network, C2 between them only its neighbours: both ties would close a loop
    a = escalation.allowed(chain, {"C1": (4, 4), "C2": (3, 3), "C3": (4, 1)})
    assert a.tie["C1-C2 tie"] == (False, True) and a.tie["C2-C3 tie"] == (False, True)
    assert a.feeder["C1"] == (True, True) and a.feeder["C3"] == (True, False)


def test_escalation_moves_only_the_clusters_and_hours_in_trouble() -> None:
    sys = small_system()
    levels = escalation.start_levels(sys, 3)
    trouble = {"MG1": (0.0, 0.2, 0.0), "MG2": (0.0, 0.0, 0.0), "MG3": (0.0, 0.0, 1e-6)}
    up = escalation.escalate(sys, levels, trouble)
    assert up == {"C1": (1, 2, 1), "C2": (1, 1, 1)}
    assert escalation.escalate(sys, {"C1": (4, 4, 4), "C2": (1, 1, 1)}, trouble) is None  # top level, or no trouble


def _mg(name: str, diesel_mw: float | None, battery_mw: float) -> Microgrid:
    return Microgrid(
        name,
        diesel=DieselUnit(p_max_mw=diesel_mw, a1_per_mwh=120.0, a2_per_mw2h=10.0) if diesel_mw else None,
        battery=Battery(1.0, 0.5, battery_mw, battery_mw, 0.95, 0.95, e_final_mwh=0.5),
        pcc_max_mw=2.0,
        res_curtailment_price_per_mwh=20.0,
        load_shed_price_per_mwh=1000.0,
    )


def small_problems() -> list[PartyProblem]:
    """MG1: short at the evening hours 4-5 (no diesel, a small battery); MG2: PV surplus at hours 1-2;
    MG3: a diesel that covers its own load."""
    load = (0.3, 0.3, 0.3, 0.4, 0.8, 0.8)
    pv2 = (0.0, 1.2, 1.2, 0.2, 0.0, 0.0)
    return [
        PartyProblem(_mg("MG1", None, 0.2), Forecast(load, (0.0, 0.3, 0.3, 0.1, 0.0, 0.0), (0.1,) * N)),
        PartyProblem(_mg("MG2", 0.3, 0.3), Forecast(tuple(x * 0.5 for x in load), pv2, (0.0,) * N)),
        PartyProblem(_mg("MG3", 0.6, 0.2), Forecast(tuple(x * 0.6 for x in load), (0.0,) * N, (0.0,) * N)),
    ]


HORIZON = Horizon(
    dt_h=1.0,
    buy_price_per_mwh=(60.0, 70.0, 70.0, 120.0, 200.0, 180.0),
    sell_price_per_mwh=(40.0, 45.0, 45.0, 90.0, 150.0, 140.0),
    final_step=N - 1,
    first_step_of_day=0,
)
SETTINGS = LowerSettings(25.0, 45.0, 0.2, 0.01, 1e-4, 0.5)


@pytest.fixture(scope="module")
def outcome() -> LowerOutcome:
    return LowerLevel(small_system(), SETTINGS, n_points=6).plan(
        small_problems(), HORIZON, SolverOptions(mip_rel_gap=1e-5)
    )


def test_the_levels_escalate_where_an_mg_cannot_balance(outcome: LowerOutcome) -> None:
    # MG1 cannot cover its day alone (it must shed) and MG2 has a PV surplus at hours 1-2: C1 escalates;
    # MG3's diesel covers MG3, so C2 never needs to; after escalation nobody sheds
    assert all(outcome.levels["C1"][t] >= 2 for t in (1, 2))
    assert outcome.levels["C2"] == (1,) * N
    assert len(outcome.level_rounds_s) >= 2
    assert all(x < 1e-6 for plan in outcome.schedule.plans.values() for x in plan.load_shed_mw)


def assert_physical(s: Schedule, levels: Mapping[str, tuple[int, ...]]) -> None:
    """The invariants of a schedule of the small system (the pick's here, each front point's in
    ``test_clustered_limits``): every MG balances each hour, a switch closes only where its level allows
    and an open one carries nothing, demand response stays in its band and is energy-neutral; and each
    cluster bus balances."""
    system = small_system()
    allow = escalation.allowed(system, levels)
    for p in small_problems():
        name = p.mg.name
        plan = s.plans[name]
        shift = s.dr_shift_mw[name]
        assert abs(sum(shift)) < 1e-6
        for t in range(N):
            load = p.forecast.load_p_mw[t]
            assert abs(shift[t]) <= SETTINGS.dr_share * load + 1e-7
            assert allow.pcc[name][t] or not s.pcc_closed[name][t]
            assert s.pcc_closed[name][t] or abs(plan.import_mw[t]) < 1e-7
            supply = (
                plan.diesel_p_mw[t]
                - plan.battery_p_mw[t]
                + plan.pv_p_mw[t]
                + plan.wind_p_mw[t]
                + plan.load_shed_mw[t]
                + plan.import_mw[t]
            )
            assert supply == pytest.approx(load + shift[t], abs=1e-6)
    for c in system.clusters:
        for t in range(N):
            assert allow.feeder[c.name][t] or not s.feeder_closed[c.name][t]
            assert s.feeder_closed[c.name][t] or abs(s.feeder_mw[c.name][t]) < 1e-7
            into = s.feeder_mw[c.name][t]
            into += sum(s.tie_mw[k.name][t] for k in system.ties if k.b == c.name)
            into -= sum(s.tie_mw[k.name][t] for k in system.ties if k.a == c.name)
            assert into == pytest.approx(sum(s.plans[g].import_mw[t] for g in c.mgs), abs=1e-6)


def test_the_schedule_obeys_switches_balance_and_demand_response(outcome: LowerOutcome) -> None:
    assert_physical(outcome.schedule, outcome.levels)


def test_the_front_is_monotone_and_the_pick_is_the_fuzzy_rules(outcome: LowerOutcome) -> None:
    assert is_monotone(outcome.front, rel_tol=1e-3)
    values = outcome.front.feasible_values
    assert len(values) >= 3
    picked = outcome.front.points[outcome.choice.index].values
    assert picked == outcome.schedule.values
    gc = [v.gc_per_day for v in values]
    assert gc[-1] >= gc[0]


def test_a_tight_feeder_is_met_by_rescheduling() -> None:
    lower = LowerLevel(small_system(), SETTINGS, n_points=3)
    opts = SolverOptions(mip_rel_gap=1e-5)
    out = lower.plan(small_problems(), HORIZON, opts)
    grants = {c: tuple(0.0 for _ in v) for c, v in out.schedule.feeder_mw.items()}
    again = lower.reschedule(small_problems(), HORIZON, opts, out, grants)
    assert again is not None
    assert all(abs(x) < 1e-6 for v in again.feeder_mw.values() for x in v)
    assert again.values.gc_per_day >= out.payoff.gc_row.gc_per_day - 1e-6


def test_ev_charging_without_coordination_fills_the_window_from_arrival() -> None:
    ev = EvSpec(p_max_mw=0.3, e_mwh_per_day=0.8, arrive_h=22, depart_h=6)
    assert ev.window() == [22, 23, 0, 1, 2, 3, 4, 5]
    unc = ev.uncontrolled_mw()
    assert unc[22] == 0.3 and unc[23] == 0.3 and unc[0] == pytest.approx(0.2) and sum(unc) == pytest.approx(0.8)
    assert all(unc[h] == 0.0 for h in range(24) if h not in ev.window())


def test_an_ev_day_that_does_not_fit_its_window_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="e_mwh_per_day"):
        EvCfg(p_max_mw=0.1, e_mwh_per_day=1.0, arrive_h=17, depart_h=20)
    with pytest.raises(ValidationError, match="arrive_h"):
        EvCfg(p_max_mw=0.1, e_mwh_per_day=0.1, arrive_h=7, depart_h=7)
