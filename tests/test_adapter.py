"""The planning adapter's decisions, driven directly (no world): when it plans, what it falls back to."""

from __future__ import annotations

from typing import Any

import pytest

from ems_controllers.core.types import Battery, DieselUnit, Microgrid
from ems_controllers.local.sim import LocalEMS

H = 3600
MG = Microgrid(
    "MG1",
    diesel=DieselUnit(p_max_mw=1.0, p_min_mw=0.1, a2_per_mw2h=10.0, a1_per_mwh=80.0),
    battery=Battery(
        e_max_mwh=1.0, e_init_mwh=0.5, e_final_mwh=0.5, p_ch_max_mw=0.5, p_dis_max_mw=0.5, eta_ch=0.9, eta_dis=0.9
    ),
    pcc_max_mw=2.0,
)
TARIFF = {"buy_price_per_mwh": [100.0] * 12 + [200.0] * 12, "sell_price_per_mwh": [90.0] * 12 + [180.0] * 12}


def _ems(**params: Any) -> LocalEMS:
    ems = LocalEMS()
    ems.init("EMS", time_resolution=1.0, step_size=H, tariff=TARIFF, **params)
    ems.create(1, "MG", mg=MG.to_dict(), pv_rated_mw=1.0, wind_rated_mw=0.0)
    return ems


def _inputs(n: int | None, soc: float) -> dict:
    fc = None if n is None else [0.3] * n
    return {
        "MG1": {
            "load_forecast_p_mw": {"P.L": fc},
            "pv_forecast_p_mw": {"P.PV": None if n is None else [0.0] * n},
            "soc_mwh": {"G.S": soc},
        }
    }


def _out(ems: LocalEMS) -> dict:
    return ems.get_data({"MG1": ["battery_p_mw", "ems_status", "plan_soc_mwh", "solve_time_s", "planned_soc_mwh"]})[
        "MG1"
    ]


def test_day_ahead_plans_only_when_forecasts_arrive() -> None:
    ems = _ems()
    ems.step(0, _inputs(24, 0.5), 0)
    first = _out(ems)
    assert first["ems_status"] == "ok" and len(first["plan_soc_mwh"]) == 24 and first["solve_time_s"] > 0
    ems.step(H, _inputs(None, 0.5), H)
    second = _out(ems)
    assert second["plan_soc_mwh"] is None and second["solve_time_s"] == 0.0
    assert second["planned_soc_mwh"] == pytest.approx(first["plan_soc_mwh"][1])


def test_failed_rolling_solve_keeps_the_previous_plan_then_the_rule() -> None:
    ems = _ems(rolling=True, horizon="shrinking")
    ems.step(22 * H, _inputs(2, 0.5), 22 * H)  # two steps to the end of the day: feasible
    assert _out(ems)["ems_status"] == "ok"
    # measured SoC 0 at 23:00: 0.5 MWh in one hour at 0.5 MW x 0.9 is out of reach -> infeasible
    ems.step(23 * H, {"MG1": {"soc_mwh": {"G.S": 0.0}}}, 23 * H)
    out = _out(ems)
    assert out["ems_status"].startswith("fallback: previous plan (infeasible")
    # the next day without new forecasts: nothing covers the step, the rule runs and says why
    ems.step(24 * H, {"MG1": {"soc_mwh": {"G.S": 0.0}}}, 24 * H)
    assert _out(ems)["ems_status"].startswith("fallback: rule (")


def test_bad_sim_params_are_named() -> None:
    with pytest.raises(ValueError, match="horizon"):
        _ems(horizon="sideways")
    with pytest.raises(ValueError, match="tariff"):
        LocalEMS().init("EMS", tariff={"buy_price_per_mwh": [1.0] * 5, "sell_price_per_mwh": [1.0] * 5})
