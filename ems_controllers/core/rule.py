"""Rule-based self-consumption EMS of one microgrid (the baseline pymgrid calls a rule-based controller).

Per step, with net load ``n = load - pv - wind`` (forecast for that step) and stored energy ``e``:

1. ``n < 0`` (surplus): charge the battery with ``min(-n, P_ch_max, room)``; sell the rest up to the
   export limit at the point of common coupling (PCC); curtail renewables beyond that.
2. ``n > 0`` (deficit): discharge the battery with ``min(n, P_dis_max, available)``; for the residual
   ``r`` run the diesel at ``p = min(r, P_max, p*)`` with ``p*`` where its marginal cost
   ``2*a2*p + a1`` equals the buy price, if ``p >= P_min`` (ramp limits from the previous output apply);
   buy the rest up to the import limit; what is left is unserved (reported, never hidden).

A plan is the same rule rolled forward over a forecast from the current SoC. Pure functions: no mosaik.

It lives in core because it is two things: the ``rule_based`` strategy's model, and the fallback every
planning EMS applies when a solve fails (``core/adapter.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ems_controllers.core.types import Microgrid, Tariff


@dataclass(frozen=True)
class Decision:
    """Setpoints of one step. ``battery_p_mw`` > 0 charges; ``import_mw`` > 0 buys at the PCC."""

    diesel_p_mw: float
    battery_p_mw: float
    import_mw: float
    res_curtailed_mw: float
    unserved_mw: float
    e_next_mwh: float
    cost: float


def _diesel_output(mg: Microgrid, residual_mw: float, buy_price: float, prev_diesel_mw: float) -> float:
    d = mg.diesel
    if d is None or residual_mw <= 0:
        return 0.0
    if d.a2_per_mw2h > 0:
        p_star = (buy_price - d.a1_per_mwh) / (2.0 * d.a2_per_mw2h)
    else:
        p_star = math.inf if buy_price > d.a1_per_mwh else 0.0
    p = min(residual_mw, d.p_max_mw, p_star)
    lo = max(prev_diesel_mw - d.ramp_down_mw_per_h, 0.0)
    hi = prev_diesel_mw + d.ramp_up_mw_per_h
    if prev_diesel_mw <= 1e-9:  # a start: the unit may jump to any level (start-up ramp not modelled)
        hi = math.inf
    p = min(max(p, lo), hi)
    if p < d.p_min_mw - 1e-9:
        return 0.0
    return p


def decide(
    mg: Microgrid,
    *,
    load_mw: float,
    res_mw: float,
    e_mwh: float,
    buy_price_per_mwh: float,
    sell_price_per_mwh: float,
    prev_diesel_mw: float,
    dt_h: float,
) -> Decision:
    """Apply the rule for one step of ``dt_h`` hours."""
    net_mw = load_mw - res_mw
    battery_p_mw = 0.0
    diesel_p_mw = 0.0
    curtailed = 0.0
    unserved = 0.0
    b = mg.battery
    if net_mw < 0:
        surplus = -net_mw
        if b is not None:
            battery_p_mw = min(surplus, b.max_charge_mw(e_mwh, dt_h))
            surplus -= battery_p_mw
        export = min(surplus, mg.pcc_max_mw)
        curtailed = surplus - export
        import_mw = -export
    else:
        deficit = net_mw
        if b is not None:
            dis = min(deficit, b.max_discharge_mw(e_mwh, dt_h))
            battery_p_mw = -dis
            deficit -= dis
        diesel_p_mw = _diesel_output(mg, deficit, buy_price_per_mwh, prev_diesel_mw)
        deficit -= diesel_p_mw
        if deficit < 0:  # diesel held above the residual by its ramp-down limit or minimum
            surplus = -deficit
            if b is not None and battery_p_mw >= 0:
                extra = min(surplus, b.max_charge_mw(e_mwh, dt_h) - battery_p_mw)
                battery_p_mw += extra
                surplus -= extra
            import_mw = -min(surplus, mg.pcc_max_mw)
            curtailed = surplus + import_mw
        else:
            import_mw = min(deficit, mg.pcc_max_mw)
            unserved = deficit - import_mw
    e_next = b.next_e_mwh(e_mwh, battery_p_mw, dt_h) if b is not None else 0.0
    cost = step_cost(
        mg, diesel_p_mw, prev_diesel_mw, import_mw, curtailed, unserved, buy_price_per_mwh, sell_price_per_mwh, dt_h
    )
    return Decision(diesel_p_mw, battery_p_mw, import_mw, curtailed, unserved, e_next, cost)


def step_cost(
    mg: Microgrid,
    diesel_p_mw: float,
    prev_diesel_mw: float,
    import_mw: float,
    res_curtailed_mw: float,
    unserved_mw: float,
    buy_price_per_mwh: float,
    sell_price_per_mwh: float,
    dt_h: float,
) -> float:
    """The MG's own bill for one step: diesel running + start-up, penalties, exchange at the tariff."""
    cost = 0.0
    if mg.diesel is not None:
        cost += mg.diesel.cost_per_h(diesel_p_mw) * dt_h
        if diesel_p_mw > 1e-9 and prev_diesel_mw <= 1e-9:
            cost += mg.diesel.startup_cost
    price = buy_price_per_mwh if import_mw >= 0 else sell_price_per_mwh
    cost += price * import_mw * dt_h
    cost += mg.res_curtailment_price_per_mwh * res_curtailed_mw * dt_h
    cost += mg.load_shed_price_per_mwh * unserved_mw * dt_h
    return cost


def plan(
    mg: Microgrid,
    tariff: Tariff,
    *,
    load_forecast_mw: list[float],
    res_forecast_mw: list[float],
    e_mwh: float,
    prev_diesel_mw: float,
    first_step_of_day: int,
    dt_h: float,
) -> list[Decision]:
    """Roll the rule forward over a forecast from the current SoC (the plan the rule implies)."""
    out: list[Decision] = []
    for k, (load, res) in enumerate(zip(load_forecast_mw, res_forecast_mw, strict=True)):
        buy, sell = tariff.at(first_step_of_day + k)
        d = decide(
            mg,
            load_mw=load,
            res_mw=res,
            e_mwh=e_mwh,
            buy_price_per_mwh=buy,
            sell_price_per_mwh=sell,
            prev_diesel_mw=prev_diesel_mw,
            dt_h=dt_h,
        )
        out.append(d)
        e_mwh, prev_diesel_mw = d.e_next_mwh, d.diesel_p_mw
    return out
