"""The rule-based EMS: hand-checked single steps, invariants over a plan, the adapter's fallback."""

from __future__ import annotations

import math

import pytest

from ems_controllers.core import rule as model
from ems_controllers.core.types import Battery, DieselUnit, Microgrid, Tariff
from ems_controllers.rule_based.sim import RuleBasedEMS

DIESEL = DieselUnit(
    p_max_mw=1.6,
    p_min_mw=0.2,
    a2_per_mw2h=18.0,
    a1_per_mwh=90.0,
    startup_cost=200.0,
    ramp_up_mw_per_h=1.3,
    ramp_down_mw_per_h=1.3,
)
BATT = Battery(e_max_mwh=1.0, e_init_mwh=0.2, p_ch_max_mw=0.5, p_dis_max_mw=0.5, eta_ch=0.98, eta_dis=0.98)
MG = Microgrid("MG1", diesel=DIESEL, battery=BATT, pcc_max_mw=2.0, res_curtailment_price_per_mwh=20.0)


def _decide(**kw: float) -> model.Decision:
    args: dict[str, float] = {
        "load_mw": 0.0,
        "res_mw": 0.0,
        "e_mwh": 0.5,
        "buy_price_per_mwh": 150.0,
        "sell_price_per_mwh": 140.0,
        "prev_diesel_mw": 0.0,
        "dt_h": 1.0,
    }
    args.update(kw)
    return model.decide(MG, **args)


def test_surplus_charges_then_sells_then_curtails() -> None:
    d = _decide(load_mw=0.2, res_mw=1.0)  # 0.8 MW surplus, battery takes 0.5
    assert d.battery_p_mw == pytest.approx(0.5) and d.import_mw == pytest.approx(-0.3)
    assert d.e_next_mwh == pytest.approx(0.5 + 0.98 * 0.5)
    d = _decide(load_mw=0.0, res_mw=3.0, e_mwh=1.0)  # full battery, export limit 2 MW
    assert d.battery_p_mw == 0 and d.import_mw == pytest.approx(-2.0) and d.res_curtailed_mw == pytest.approx(1.0)
    # charging limited by the room left: 0.098 MWh room at eta 0.98 -> 0.1 MW
    d = _decide(load_mw=0.0, res_mw=1.0, e_mwh=0.902)
    assert d.battery_p_mw == pytest.approx(0.1) and d.e_next_mwh == pytest.approx(1.0)


def test_deficit_discharges_then_diesel_at_price_equal_marginal_cost() -> None:
    # 2 MW deficit, battery gives 0.5, diesel p* = (150 - 90) / (2*18) = 1.667 -> capped at ramp 1.3 from 0?
    # a start may jump (no start-up ramp), so p = min(1.5 residual, 1.6 max, 1.667) = 1.5
    d = _decide(load_mw=2.0, res_mw=0.0, e_mwh=1.0)
    assert d.battery_p_mw == pytest.approx(-0.5)
    assert d.diesel_p_mw == pytest.approx(1.5) and d.import_mw == pytest.approx(0.0)
    # cheap grid: price 100 -> p* = 0.278 MW, the rest bought
    d = _decide(load_mw=2.0, res_mw=0.0, e_mwh=0.0, buy_price_per_mwh=100.0)
    assert d.diesel_p_mw == pytest.approx(10 / 36) and d.import_mw == pytest.approx(2.0 - 10 / 36)
    # price below marginal cost at p_min: diesel stays off
    d = _decide(load_mw=2.0, res_mw=0.0, e_mwh=0.0, buy_price_per_mwh=95.0)
    assert d.diesel_p_mw == 0.0 and d.import_mw == pytest.approx(2.0)


def test_ramp_limits_and_cost_with_start_up() -> None:
    d = _decide(load_mw=0.3, res_mw=0.0, e_mwh=0.0, prev_diesel_mw=1.6)  # may drop only to 0.3
    assert d.diesel_p_mw == pytest.approx(0.3)
    d = _decide(load_mw=0.1, res_mw=0.0, e_mwh=0.0, prev_diesel_mw=1.6)  # held at 0.3: surplus to battery
    assert d.diesel_p_mw == pytest.approx(0.3) and d.battery_p_mw == pytest.approx(0.2)
    d = _decide(load_mw=1.0, res_mw=0.0, e_mwh=0.0)
    expected = 18 * 1.0**2 + 90 * 1.0 + 200.0  # running + start-up, nothing bought
    assert d.cost == pytest.approx(expected)


def test_unserved_beyond_import_limit_is_reported() -> None:
    mg = Microgrid("X", pcc_max_mw=1.0, load_shed_price_per_mwh=1000.0)
    d = model.decide(
        mg,
        load_mw=1.5,
        res_mw=0.0,
        e_mwh=0.0,
        buy_price_per_mwh=150.0,
        sell_price_per_mwh=140.0,
        prev_diesel_mw=0.0,
        dt_h=0.5,
    )
    assert d.import_mw == pytest.approx(1.0) and d.unserved_mw == pytest.approx(0.5)
    assert d.cost == pytest.approx(150 * 1.0 * 0.5 + 1000 * 0.5 * 0.5)


def test_plan_keeps_soc_in_bounds_and_balances_every_step() -> None:
    tariff = Tariff(tuple([120.0] * 12 + [160.0] * 12), tuple([110.0] * 12 + [150.0] * 12))
    load = [0.4 + 0.3 * math.sin(k / 3) for k in range(24)]
    res = [max(0.0, 1.5 * math.sin(math.pi * (k - 6) / 12)) for k in range(24)]
    for dt_h in (1.0, 0.25):
        plan = model.plan(
            MG,
            tariff,
            load_forecast_mw=load,
            res_forecast_mw=res,
            e_mwh=0.2,
            prev_diesel_mw=0.0,
            first_step_of_day=0,
            dt_h=dt_h,
        )
        e = 0.2
        for k, d in enumerate(plan):
            assert BATT.e_min_mwh - 1e-9 <= d.e_next_mwh <= BATT.e_max_mwh + 1e-9
            assert d.e_next_mwh == pytest.approx(BATT.next_e_mwh(e, d.battery_p_mw, dt_h))
            supply = res[k] - d.res_curtailed_mw + d.diesel_p_mw - d.battery_p_mw + d.import_mw + d.unserved_mw
            assert supply == pytest.approx(load[k], abs=1e-9), k
            e = d.e_next_mwh


def _sim() -> RuleBasedEMS:
    sim = RuleBasedEMS()
    sim.init(
        "EMS",
        time_resolution=1.0,
        step_size=3600,
        tariff={"buy_price_per_mwh": [150.0] * 24, "sell_price_per_mwh": [140.0] * 24},
    )
    sim.create(1, "MG", mg=MG.to_dict(), pv_rated_mw=1.0, wind_rated_mw=0.5)
    return sim


def test_adapter_uses_the_forecast_of_the_current_step_and_feeds_back_soc() -> None:
    sim = _sim()
    fc = {
        "load_forecast_p_mw": {"P.Load-0": [0.2] * 24},
        "pv_forecast_p_mw": {"P.PV-0": [1.0] * 24},
        "wind_forecast_p_mw": {"P.Wind-0": [0.0] * 24, "P.Wind-1": [0.1] * 24},
    }
    sim.step(0, {"MG1": {**fc, "soc_mwh": {"G.Storage-0": 0.2}}}, 0)
    out = sim.get_data({"MG1": ["battery_p_mw", "plan_soc_mwh", "ems_status", "pcc_closed"]})["MG1"]
    assert out["battery_p_mw"] == pytest.approx(0.5) and out["ems_status"] == "ok" and out["pcc_closed"]
    assert len(out["plan_soc_mwh"]) == 24
    # next hour: no new forecast (None), measured SoC 0.99 -> only 0.01/0.98 MW fits
    none = {k: dict.fromkeys(v) for k, v in fc.items()}
    sim.step(3600, {"MG1": {**none, "soc_mwh": {"G.Storage-0": 0.99}}}, 3600)
    out = sim.get_data({"MG1": ["battery_p_mw", "plan_soc_mwh"]})["MG1"]
    assert out["battery_p_mw"] == pytest.approx(0.01 / 0.98) and out["plan_soc_mwh"] is None


def test_adapter_falls_back_without_a_forecast_and_says_so() -> None:
    sim = _sim()
    sim.step(0, {"MG1": {"soc_mwh": {"G.Storage-0": 0.2}}}, 0)
    out = sim.get_data({"MG1": ["battery_p_mw", "diesel_p_mw", "ems_status", "pv_p_mw"]})["MG1"]
    assert out["ems_status"].startswith("fallback") and out["battery_p_mw"] == 0 and out["diesel_p_mw"] == 0
    assert out["pv_p_mw"] == 1.0, "no curtailment cap in the fallback"


def test_bad_params_are_named() -> None:
    sim = RuleBasedEMS()
    with pytest.raises(ValueError, match="tariff"):
        sim.init("EMS")
    with pytest.raises(ValueError, match="tariff has 1 values, a day 24 steps"):
        sim.init("EMS", tariff={"buy_price_per_mwh": [1.0], "sell_price_per_mwh": [1.0]})
    sim.init("EMS", tariff={"buy_price_per_mwh": [1.0] * 24, "sell_price_per_mwh": [1.0] * 24})
    with pytest.raises(ValueError, match="unknown field"):
        sim.create(
            1,
            "MG",
            mg={
                "name": "A",
                "battery": {"e_max_mwh": 1, "e_init_mwh": 0, "p_ch_max_mw": 1, "p_dis_max_mw": 1, "colour": 3},
            },
        )
