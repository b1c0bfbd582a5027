"""Cooperative community (spec 003): step 1, step 2, central LP, gap analysis (pure math, fast)."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ems_controllers.cooperative.model import (
    INSTRUCTION_FIELDS,
    REPORT_FIELDS,
    REPORT_FIELDS_ALWAYS,
    ChpMg,
    HourData,
    Mode,
    Report,
    Swap,
    central_lp,
    gap_analysis,
    hours_from_rows,
    merit_order_lp,
    run_hour,
    step1,
    step2,
)

# The spec's data (shared/data/community_3mg_chp.csv), inlined so the tests do not read ../shared.
SPEC_CSV = """hour,sell_price,buy_price,demand_A_kwh,pv_A_kwh,demand_B_kwh,pv_B_kwh,demand_C_kwh,pv_C_kwh
1,110,150,369,0,192,0,550,0
2,110,150,345,0,187,0,525,0
3,90,130,329,0,189,0,475,0
4,90,130,351,0,188,0,472,0
5,90,130,381,0,200,0,485,0
6,110,150,372,0,224,0,495,0
7,125,150,470,0,247,0,511,0
8,145,170,454,6,305,0,568,7
9,145,170,363,9,535,0,620,10
10,145,170,371,10,673,5,651,12
11,145,170,373,13,670,8,682,16
12,145,170,416,18,651,10,729,25
13,90,130,361,23,320,15,743,28
14,90,130,362,25,343,19,762,24
15,90,130,357,24,585,20,803,20
16,90,130,351,21,603,14,807,13
17,125,150,357,18,600,12,769,4
18,125,150,391,8,557,4,775,0
19,125,150,464,0,424,0,824,0
20,125,150,467,0,356,0,804,0
21,125,150,428,0,317,0,793,0
22,125,150,417,0,299,0,723,0
23,145,170,414,0,247,0,664,0
24,145,170,400,0,216,0,604,0
"""
SPEC_MGS = [ChpMg("A", 180, 450, 100), ChpMg("B", 360, 600, 120), ChpMg("C", 480, 700, 140)]
SPEC_HOURS = hours_from_rows(list(csv.DictReader(io.StringIO(SPEC_CSV))), ["A", "B", "C"])

# What the gap analysis finds on the spec's data in paper mode (hour -> gap); every other hour is 0.
PAPER_GAPS = {13: 680.0, 14: 1090.0, 17: 870.0, 18: 585.0, 19: 570.0, 20: 1845.0, 21: 3180.0, 22: 3300.0}


def _five_mg_community() -> tuple[list[ChpMg], list[HourData]]:
    """A made-up community: five MGs with other names, limits, costs and prices (seeded)."""
    rng = np.random.default_rng(7)
    mgs = [
        ChpMg("north", 50, 250, 0.21),
        ChpMg("south", 0, 120, 0.15),
        ChpMg("east", 100, 400, 0.27),
        ChpMg("west", 30, 90, 0.33),
        ChpMg("hub", 200, 600, 0.18),
    ]
    hours = []
    for k in range(24):
        sell = 0.12 + 0.06 * (k % 4)
        buy = sell + 0.04 + 0.05 * ((k // 4) % 3)
        demand = {m.name: float(rng.uniform(0.3, 1.4) * m.chp_max_kwh) for m in mgs}
        pv = {m.name: float(rng.uniform(0, 0.5) * m.chp_max_kwh * (6 <= k <= 18)) for m in mgs}
        hours.append(HourData(buy, sell, demand, pv))
    return mgs, hours


FIVE_MGS, FIVE_HOURS = _five_mg_community()


# ---- inputs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (
            {"buy_price_per_kwh": 1.0, "sell_price_per_kwh": 2.0, "demand_kwh": {"A": 1}, "pv_kwh": {"A": 0}},
            "buy_price_per_kwh",
        ),
        (
            {"buy_price_per_kwh": 2.0, "sell_price_per_kwh": 1.0, "demand_kwh": {"A": -1}, "pv_kwh": {"A": 0}},
            "demand_kwh",
        ),
        ({"buy_price_per_kwh": 2.0, "sell_price_per_kwh": 1.0, "demand_kwh": {"A": 1}, "pv_kwh": {"A": -2}}, "pv_kwh"),
        ({"buy_price_per_kwh": 2.0, "sell_price_per_kwh": 1.0, "demand_kwh": {"A": 1}, "pv_kwh": {"B": 0}}, "pv_kwh"),
    ],
)
def test_hour_data_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        HourData(**kwargs)


def test_chp_mg_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="chp_min_kwh"):
        ChpMg("A", 500, 400, 100)
    with pytest.raises(ValueError, match="chp_min_kwh"):
        ChpMg("A", -1, 400, 100)
    with pytest.raises(ValueError, match="chp_cost_per_kwh"):
        ChpMg("A", 0, 400, float("nan"))
    greedy: Any = "greedy"  # not a Mode: the run-time check is under test
    with pytest.raises(ValueError, match="mode"):
        run_hour(SPEC_MGS, SPEC_HOURS[0], greedy)
    with pytest.raises(ValueError, match="no data for MG"):
        run_hour([*SPEC_MGS, ChpMg("D", 0, 1, 1)], SPEC_HOURS[0])


# ---- step 1 ---------------------------------------------------------------------------------------

M = ChpMg("M", 100, 300, 120)


def test_step1_cost_at_or_above_buy_runs_minimum() -> None:
    r = step1(M, 250, 50, 120, 100)  # cost == buy: the uEMS buys
    assert (r.regime, r.chp_kwh, r.shortage_kwh, r.surplus_kwh) == ("min", 100, 100, 0)
    assert r.cost == pytest.approx(120 * 100 + 120 * 100)
    assert not r.self_sufficient and r.report.as_dict() == {
        "surplus_kwh": 0,
        "shortage_kwh": 100,
        "self_sufficient": False,
    }
    # net inside [min, max] but cost == buy: not self-sufficient (the rule needs sell < cost < buy)
    assert not step1(M, 100, 0, 120, 100).self_sufficient


def test_step1_cost_at_or_below_sell_runs_maximum() -> None:
    r = step1(M, 250, 50, 150, 120)  # cost == sell: the uEMS produces and sells
    assert (r.regime, r.chp_kwh, r.surplus_kwh, r.shortage_kwh) == ("max", 300, 100, 0)
    assert r.cost == pytest.approx(120 * 300 - 120 * 100)
    assert not r.self_sufficient
    # buy == sell == cost: the first rule (minimum) applies
    assert step1(M, 250, 50, 120, 120).regime == "min"


def test_step1_between_prices_follows_net_demand_clipped() -> None:
    low = step1(M, 50, 0, 150, 100)
    assert (low.regime, low.chp_kwh, low.surplus_kwh, low.shortage_kwh) == ("follow", 100, 50, 0)
    assert low.cost == pytest.approx(120 * 100 - 100 * 50)
    high = step1(M, 420, 20, 150, 100)
    assert (high.chp_kwh, high.surplus_kwh, high.shortage_kwh) == (300, 0, 100)
    assert high.cost == pytest.approx(120 * 300 + 150 * 100)
    assert not low.self_sufficient and not high.self_sufficient
    assert set(low.report.as_dict()) == set(REPORT_FIELDS_ALWAYS)


def test_step1_self_sufficient_reports_its_room_and_cost() -> None:
    r = step1(M, 250, 50, 150, 100)
    assert r.self_sufficient and r.chp_kwh == 200 and r.surplus_kwh == r.shortage_kwh == 0
    assert r.cost == pytest.approx(120 * 200)
    assert r.report.as_dict() == {
        "surplus_kwh": 0,
        "shortage_kwh": 0,
        "self_sufficient": True,
        "up_room_kwh": 100,
        "down_room_kwh": 100,
        "chp_cost_per_kwh": 120,
    }
    # the bounds are inclusive
    assert step1(M, 100, 0, 150, 100).self_sufficient and step1(M, 300, 0, 150, 100).self_sufficient


def test_step1_extended_report_of_a_movable_mg() -> None:
    r = step1(M, 50, 0, 150, 100, mode="extended")
    assert not r.self_sufficient
    assert r.report.as_dict() == {
        "surplus_kwh": 50,
        "shortage_kwh": 0,
        "self_sufficient": False,
        "up_room_kwh": 200,
        "down_room_kwh": 0,
        "chp_cost_per_kwh": 120,
    }
    # a CHP outside the prices reports no room even in extended mode
    assert not step1(M, 50, 0, 120, 100, mode="extended").report.movable


# ---- step 2 ---------------------------------------------------------------------------------------


def _ss(up: float, down: float, cost: float) -> Report:
    return Report(0.0, 0.0, True, up, down, cost)


def test_step2_surplus_rich_hour() -> None:
    reports = {"P": Report(60, 0, False), "Q": Report(40, 0, False), "R": Report(0, 50, False), "H": _ss(10, 20, 130)}
    r = step2(reports, 150, 100)
    z = r.by_mg
    assert r.main_internal_kwh == 50
    assert (z["P"].main_send_kwh, z["Q"].main_send_kwh, z["R"].main_receive_kwh) == (30, 20, 50)
    assert z["H"].ancillary_down_kwh == 20 and z["H"].ancillary_up_kwh == 0
    assert z["P"].ancillary_send_kwh == pytest.approx(12) and z["Q"].ancillary_send_kwh == pytest.approx(8)
    assert z["P"].ext_sell_kwh == pytest.approx(18) and z["Q"].ext_sell_kwh == pytest.approx(12)
    assert sum(x.ext_buy_kwh for x in z.values()) == 0
    assert r.saving == pytest.approx(50 * 50 + 30 * 20)


def test_step2_shortage_rich_hour_cheapest_raises_first() -> None:
    reports = {
        "R": Report(0, 45, False),
        "T": Report(0, 20, False),
        "P": Report(40, 0, False),
        "H": _ss(30, 5, 130),
        "G": _ss(10, 5, 110),
        "K": _ss(20, 5, 120),
    }
    r = step2(reports, 150, 100)
    z = r.by_mg
    assert r.main_internal_kwh == 40
    assert z["R"].main_receive_kwh == pytest.approx(40 * 45 / 65)
    assert z["T"].main_receive_kwh == pytest.approx(40 * 20 / 65)
    # leftover 25: G (110) gives its 10, K (120) 15, H (130) nothing
    assert (z["G"].ancillary_up_kwh, z["K"].ancillary_up_kwh, z["H"].ancillary_up_kwh) == (10, 15, 0)
    assert z["R"].ancillary_receive_kwh == pytest.approx(25 * 45 / 65)
    assert sum(x.ext_buy_kwh for x in z.values()) == pytest.approx(0)
    assert r.ancillary_internal_kwh == 25
    assert r.saving == pytest.approx(50 * 40 + 40 * 10 + 30 * 15)
    # more shortage than room: the rest is bought, split in proportion to shortage
    r2 = step2({"R": Report(0, 90, False), "T": Report(0, 30, False), "G": _ss(10, 0, 110)}, 150, 100)
    assert r2.by_mg["R"].ext_buy_kwh == pytest.approx(110 * 0.75)
    assert r2.by_mg["T"].ext_buy_kwh == pytest.approx(110 * 0.25)


def test_step2_most_expensive_lowers_first() -> None:
    reports = {"P": Report(25, 0, False), "G": _ss(0, 10, 110), "H": _ss(0, 20, 130), "K": _ss(0, 20, 120)}
    z = step2(reports, 150, 100).by_mg
    assert (z["H"].ancillary_down_kwh, z["K"].ancillary_down_kwh, z["G"].ancillary_down_kwh) == (20, 5, 0)
    assert z["P"].ext_sell_kwh == 0 and z["P"].ancillary_send_kwh == 25


def test_step2_ancillary_only_when_it_saves() -> None:
    # hand-made reports of movable MGs whose cost is not between the prices: never moved
    reports = {"R": Report(0, 50, False), "X": _ss(30, 30, 150), "Y": Report(50, 0, False)}
    assert step2({"R": reports["R"], "X": reports["X"]}, 150, 100).by_mg["X"].ancillary_up_kwh == 0
    assert step2({"Y": reports["Y"], "X": _ss(30, 30, 100)}, 150, 100).by_mg["X"].ancillary_down_kwh == 0


def test_step2_main_and_ancillary_in_one_hour_on_the_spec_data() -> None:
    res = run_hour(SPEC_MGS, SPEC_HOURS[4])  # hour 5: B surplus 160, C shortage 5, A self-sufficient
    assert res.main_internal_kwh == pytest.approx(5) and res.ancillary_internal_kwh == pytest.approx(155)
    a, b, c = (res.mgs[n] for n in "ABC")
    assert a.self_sufficient and a.ancillary_down_kwh == pytest.approx(155)
    assert a.chp_kwh == pytest.approx(226)
    assert b.main_send_kwh == pytest.approx(5) and c.main_receive_kwh == pytest.approx(5)
    assert b.ext_sell_kwh == pytest.approx(0)


def test_step2_hour_with_no_trading() -> None:
    r = step2({"A": _ss(10, 10, 120), "B": _ss(5, 5, 110)}, 150, 100)
    assert r.main_internal_kwh == r.ancillary_internal_kwh == r.saving == 0
    assert all(v == 0 for x in r.by_mg.values() for v in x.values())
    res = run_hour(SPEC_MGS, SPEC_HOURS[7])  # hour 8: A and B at max, C at min; the shares do not meet
    assert res.main_internal_kwh == 0 and res.ancillary_internal_kwh == 0
    assert res.cost_final == res.cost_step1


def test_step2_paper_mode_ignores_room_of_non_self_sufficient_mgs() -> None:
    reports = {"R": Report(0, 50, False), "B": Report(20, 0, False, 200, 0, 120)}
    assert step2(reports, 150, 100).by_mg["B"].ancillary_up_kwh == 0
    assert step2(reports, 150, 100, "extended").by_mg["B"].ancillary_up_kwh == 30


# ---- invariants over whole days -------------------------------------------------------------------


def _days():
    for mode in ("paper", "extended", "merit"):
        yield SPEC_MGS, SPEC_HOURS, mode
        yield FIVE_MGS, FIVE_HOURS, mode


@pytest.mark.parametrize(("mgs", "hours", "mode"), list(_days()))
def test_energy_balance_bills_and_gap_every_hour(mgs, hours, mode) -> None:
    for hour in hours:
        res = run_hour(mgs, hour, mode)
        for m in mgs:
            x = res.mgs[m.name]
            # pv + chp_final + main_receive + ancillary_receive + ext_buy
            #   = demand + main_send + ancillary_send + ext_sell
            lhs = hour.pv_kwh[m.name] + x.chp_kwh + x.main_receive_kwh + x.ancillary_receive_kwh + x.ext_buy_kwh
            rhs = hour.demand_kwh[m.name] + x.main_send_kwh + x.ancillary_send_kwh + x.ext_sell_kwh
            assert lhs == pytest.approx(rhs, abs=1e-9)
            assert x.chp_kwh == pytest.approx(x.chp_step1_kwh + x.ancillary_up_kwh - x.ancillary_down_kwh)
            assert m.chp_min_kwh - 1e-9 <= x.chp_kwh <= m.chp_max_kwh + 1e-9
            direct = (
                m.chp_cost_per_kwh * x.chp_kwh
                + hour.buy_price_per_kwh * x.ext_buy_kwh
                - hour.sell_price_per_kwh * x.ext_sell_kwh
                + x.internal_payment
            )
            assert x.bill == pytest.approx(direct, abs=1e-6)
            assert min(x.main_send_kwh, x.main_receive_kwh) == 0 and min(x.ext_buy_kwh, x.ext_sell_kwh) == 0
        assert sum(x.bill for x in res.mgs.values()) == pytest.approx(res.cost_final, abs=1e-6)
        assert abs(sum(x.internal_payment for x in res.mgs.values())) < 1e-6
        community = sum(m.chp_cost_per_kwh * res.mgs[m.name].chp_kwh for m in mgs) + sum(
            hour.buy_price_per_kwh * x.ext_buy_kwh - hour.sell_price_per_kwh * x.ext_sell_kwh for x in res.mgs.values()
        )
        assert res.cost_final == pytest.approx(community, abs=1e-6)
        assert sum(x.main_send_kwh for x in res.mgs.values()) == pytest.approx(res.main_internal_kwh)
        assert sum(x.main_receive_kwh for x in res.mgs.values()) == pytest.approx(res.main_internal_kwh)
        assert res.lp.ok and res.gap is not None and res.gap >= -1e-9
        assert res.cost_final <= res.cost_step1 + 1e-9


@pytest.mark.parametrize(("mgs", "hours"), [(SPEC_MGS, SPEC_HOURS), (FIVE_MGS, FIVE_HOURS)])
def test_extended_never_costs_more_than_paper(mgs, hours) -> None:
    for hour in hours:
        assert run_hour(mgs, hour, "extended").cost_final <= run_hour(mgs, hour, "paper").cost_final + 1e-9


# ---- central LP -----------------------------------------------------------------------------------


def test_central_lp_matches_the_merit_order_closed_form() -> None:
    rng = np.random.default_rng(3)
    cases = [(SPEC_MGS, h) for h in SPEC_HOURS] + [(FIVE_MGS, h) for h in FIVE_HOURS]
    for _ in range(200):
        n = int(rng.integers(1, 7))
        mgs = []
        for i in range(n):
            lo = float(rng.uniform(0, 100))
            mgs.append(ChpMg(f"m{i}", lo, lo + float(rng.uniform(0, 200)), float(rng.uniform(50, 200))))
        sell = float(rng.uniform(50, 150))
        buy = sell + float(rng.uniform(0, 60))
        cases.append(
            (
                mgs,
                HourData(
                    buy,
                    sell,
                    {m.name: float(rng.uniform(0, 400)) for m in mgs},
                    {m.name: float(rng.uniform(0, 100)) for m in mgs},
                ),
            )
        )
    for mgs, hour in cases:
        lp, ref = central_lp(mgs, hour), merit_order_lp(mgs, hour)
        assert lp.ok and lp.status == "optimal"
        assert lp.cost == pytest.approx(ref.cost, rel=1e-9, abs=1e-6)
        assert lp.chp_kwh is not None and lp.ext_buy_kwh is not None and lp.ext_sell_kwh is not None
        total = sum(lp.chp_kwh.values()) + lp.ext_buy_kwh - lp.ext_sell_kwh
        assert total == pytest.approx(sum(hour.demand_kwh[m.name] - hour.pv_kwh[m.name] for m in mgs))


def test_central_lp_failure_is_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    import highspy

    def boom(*_a, **_k):
        raise RuntimeError("no solver today")

    monkeypatch.setattr(highspy, "Highs", boom)
    lp = central_lp(SPEC_MGS, SPEC_HOURS[0])
    assert lp.status == "error" and not lp.ok and "no solver" in lp.message
    res = run_hour(SPEC_MGS, SPEC_HOURS[0])
    assert res.gap is None and res.cost_final == pytest.approx(135710.0)
    row = gap_analysis(SPEC_MGS, SPEC_HOURS[:1])[0]
    assert row.gap is None and "central LP failed" in row.reason


# ---- gap analysis (pinned findings) ---------------------------------------------------------------


def test_gap_analysis_paper_mode_on_the_spec_data() -> None:
    rows = gap_analysis(SPEC_MGS, SPEC_HOURS, "paper")
    assert [r.hour for r in rows] == list(range(1, 25))
    gaps = {r.hour: r.gap for r in rows if r.gap is not None and r.gap > 1e-6}
    assert gaps == pytest.approx(PAPER_GAPS)
    for r in rows:
        assert r.gap is not None and r.lp_cost is not None
        assert r.gap >= -1e-9
        assert (r.reason != "") == (r.hour in PAPER_GAPS)
        assert r.cost_final == pytest.approx(r.lp_cost + r.gap)
    by_hour = {r.hour: r.reason for r in rows}
    for h in (13, 14):  # B surplus at its minimum while the community buys: it could raise instead
        assert by_hour[h].startswith(
            "MG B's CHP (cost 120, between prices; not self-sufficient, step 1 at its minimum with surplus"
        )
        assert "displacing" in by_hour[h] and "paper's step 2 moves only self-sufficient MGs" in by_hour[h]
    for h in (17, 18, 19, 20, 21, 22):  # C short at its maximum while the community sells at < 140
        assert by_hour[h].startswith(
            "MG C's CHP (cost 140, between prices; not self-sufficient, step 1 at its maximum with shortage"
        )
        assert "cutting" in by_hour[h] and "paper's step 2 moves only self-sufficient MGs" in by_hour[h]
    # the gap is exactly the price margin on the energy the stuck CHP could have moved
    assert PAPER_GAPS[13] == (130 - 120) * 68 and PAPER_GAPS[22] == (140 - 125) * 220


def test_gap_analysis_extended_mode_closes_the_gap_on_the_spec_data() -> None:
    rows = gap_analysis(SPEC_MGS, SPEC_HOURS, "extended")
    assert all(r.gap is not None and abs(r.gap) <= 1e-6 and r.reason == "" for r in rows)
    res = run_hour(SPEC_MGS, SPEC_HOURS[12], "extended")  # hour 13: B now raises by 68 kWh
    assert res.mgs["B"].ancillary_up_kwh == pytest.approx(68)
    assert res.mgs["A"].ancillary_up_kwh == pytest.approx(112)


def test_extended_mode_does_not_close_a_swap_gap() -> None:
    """Two self-sufficient MGs, the dearer one producing: no surplus, no shortage, so step 2 does
    nothing in either mode, while the LP shifts output to the cheaper CHP."""
    mgs = [ChpMg("X", 0, 100, 110), ChpMg("Y", 0, 100, 140)]
    hour = HourData(150, 100, {"X": 0, "Y": 50}, {"X": 0, "Y": 0})
    for mode in ("paper", "extended"):
        row = gap_analysis(mgs, [hour], mode)[0]
        assert row.gap == pytest.approx(1500.0)
        assert "never swaps output" in row.reason


def test_merit_mode_swaps_output_to_the_cheaper_chp_and_settles_at_the_midpoint() -> None:
    """The same hour in merit mode: X raises 50 kWh and sends it to Y, which lowers by 50 and pays the
    midpoint of the two CHP costs; each keeps half the saving (140 - 110) * 50."""
    mgs = [ChpMg("X", 0, 100, 110), ChpMg("Y", 0, 100, 140)]
    hour = HourData(150, 100, {"X": 0, "Y": 50}, {"X": 0, "Y": 0})
    res = run_hour(mgs, hour, "merit")
    assert res.gap == pytest.approx(0.0, abs=1e-9)
    assert res.step2.swaps == (Swap("X", "Y", 50.0, 125.0),)
    x, y = res.mgs["X"], res.mgs["Y"]
    assert (x.chp_kwh, y.chp_kwh) == (50.0, 0.0)
    assert (x.ancillary_send_kwh, y.ancillary_receive_kwh) == (50.0, 50.0)
    assert x.internal_payment == -y.internal_payment == -125.0 * 50
    assert x.bill == pytest.approx(x.cost_step1 - 750.0) and y.bill == pytest.approx(y.cost_step1 - 750.0)
    assert res.ancillary_internal_kwh == 50.0


def test_merit_mode_reaches_the_lp_on_the_spec_and_five_mg_data() -> None:
    for mgs, hours in ((SPEC_MGS, SPEC_HOURS), (FIVE_MGS, FIVE_HOURS)):
        rows = gap_analysis(mgs, hours, "merit")
        assert all(r.gap is not None and abs(r.gap) <= 1e-6 and r.reason == "" for r in rows)


@st.composite
def _community(draw: st.DrawFn) -> tuple[list[ChpMg], HourData]:
    """2-8 MGs with random CHP limits and costs, prices with sell <= buy (equal ones too), and each MG's net
    demand below, inside or above its CHP's range (so that surplus, shortage and self-sufficient MGs all
    occur); costs are drawn on a coarse grid, often between the prices, so that swaps and ties with each
    other and with the prices occur."""
    n = draw(st.integers(2, 8))
    sell = draw(st.integers(50, 150))
    buy = sell + draw(st.sampled_from([0, 5, 20, 60]))
    mgs, demand, pv = [], {}, {}
    for i in range(n):
        lo = float(draw(st.integers(0, 200)))
        hi = lo + float(draw(st.sampled_from([0, 10, 50, 200, 400])))
        between = st.integers(sell + 1, buy - 1) if buy - sell >= 2 else st.nothing()
        cost = float(draw(between | st.integers(sell - 20, buy + 20)))
        where = draw(st.sampled_from(["below", "inside", "inside", "above"]))
        offset = draw(st.floats(0, 1)) * (hi - lo if where == "inside" else 300.0)
        net = {"below": lo - offset, "inside": lo + offset, "above": hi + offset}[where]
        pv[f"mg{i}"] = float(draw(st.sampled_from([0, 50, 300])))
        demand[f"mg{i}"] = max(net + pv[f"mg{i}"], 0.0)
        mgs.append(ChpMg(f"mg{i}", lo, hi, cost))
    return mgs, HourData(float(buy), float(sell), demand, pv)


@given(_community())
@settings(max_examples=300, deadline=None)
def test_merit_is_the_central_lp_and_the_modes_are_ordered(case: tuple[list[ChpMg], HourData]) -> None:
    """LP <= merit == LP <= extended <= paper <= step 1 alone; each mode's energy balance per MG, bills
    that sum to the community's cost and internal payments that sum to zero."""
    mgs, hour = case
    res = {mode: run_hour(mgs, hour, mode) for mode in ("paper", "extended", "merit")}
    lp = res["merit"].lp
    assert lp.ok and lp.cost is not None
    tol = 1e-9 * max(1.0, abs(lp.cost)) + 1e-6
    merit, ext, paper = (res[m].cost_final for m in ("merit", "extended", "paper"))
    assert lp.cost - tol <= merit <= lp.cost + tol
    assert merit <= ext + tol and ext <= paper + tol and paper <= res["paper"].cost_step1 + tol
    for r in res.values():
        for m in mgs:
            x = r.mgs[m.name]
            supply = hour.pv_kwh[m.name] + x.chp_kwh + x.main_receive_kwh + x.ancillary_receive_kwh + x.ext_buy_kwh
            use = hour.demand_kwh[m.name] + x.main_send_kwh + x.ancillary_send_kwh + x.ext_sell_kwh
            assert supply == pytest.approx(use, rel=1e-9, abs=1e-6)
            assert m.chp_min_kwh - 1e-6 <= x.chp_kwh <= m.chp_max_kwh + 1e-6
        assert abs(sum(x.internal_payment for x in r.mgs.values())) <= tol
        assert sum(x.bill for x in r.mgs.values()) == pytest.approx(r.cost_final, rel=1e-9, abs=1e-6)


# ---- messages -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["paper", "extended", "merit"])
def test_reports_hold_only_the_allowed_keys(mode: Mode) -> None:
    for mgs, hours in ((SPEC_MGS, SPEC_HOURS), (FIVE_MGS, FIVE_HOURS)):
        for hour in hours:
            res = run_hour(mgs, hour, mode)
            reports = [m for m in res.messages if m["receiver"] == "central"]
            assert len(reports) == len(mgs) and {m["sender"] for m in reports} == {m.name for m in mgs}
            for msg in reports:
                s1 = res.step1[msg["sender"]]
                assert msg["kind"] == "report" and set(msg["fields"]) <= set(REPORT_FIELDS)
                movable = s1.self_sufficient if mode == "paper" else s1.report.movable
                expected = list(REPORT_FIELDS) if movable else list(REPORT_FIELDS_ALWAYS)
                assert msg["fields"] == expected
                assert all(isinstance(v, float) for v in msg["values"])
                assert len(msg["values"]) == len(msg["fields"])
            for msg in res.messages:
                if msg["sender"] == "central":
                    assert msg["kind"] == "instruction" and msg["fields"] == list(INSTRUCTION_FIELDS)
                    assert all(isinstance(v, float) for v in msg["values"])


def test_reports_reveal_no_demand_or_pv() -> None:
    """Two MGs with different demand and PV but the same net demand send identical reports."""
    a = step1(M, 250, 50, 150, 100).report
    b = step1(M, 400, 200, 150, 100).report
    assert a == b


def test_a_single_mg_community_runs() -> None:
    res = run_hour([M], HourData(150, 100, {"M": 400}, {"M": 0}))
    assert res.mgs["M"].ext_buy_kwh == 100 and res.gap == pytest.approx(0)
