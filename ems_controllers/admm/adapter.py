"""Strategy ``admm``: the planning adapter's types to and from the ADMM model's.

A party's problem (:class:`~ems_controllers.core.types.PartyProblem` over a
:class:`~ems_controllers.core.types.Horizon`) becomes an :class:`~ems_controllers.admm.model.AdmmMg`;
an MG's schedule becomes the adapter's :class:`~ems_controllers.core.types.PartyPlan`.

Mapping notes: the battery's life cost comes from its ``wear_a2_per_mw2h`` / ``wear_a1_per_mwh``; its
final-energy target applies only where the day ends at the horizon's last step (the ADMM model has the
target on the last step only; a rolling window that ends mid-day plans without it); a PV or wind unit
that may not be curtailed keeps a curtailment price of the load-shedding price (the QP has no binaries);
the PCC limit bounds the exchange.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace

from ems_controllers.admm.model import AdmmMg, MgSchedule
from ems_controllers.core.types import Battery, DieselUnit, Horizon, PartyPlan, PartyProblem


def admm_mg(problem: PartyProblem, horizon: Horizon) -> AdmmMg:
    """One MG's ADMM data from its planning problem (see the module docstring)."""
    mg, fc = problem.mg, problem.forecast
    n = horizon.n_steps
    battery = mg.battery
    if battery is not None and horizon.final_step != n - 1:
        battery = replace(battery, e_final_mwh=None)
    curt = mg.res_curtailment_price_per_mwh
    if not (mg.pv_curtailable and mg.wind_curtailable):
        curt = max(curt, mg.load_shed_price_per_mwh)
    return AdmmMg(
        name=mg.name,
        load_mw=tuple(fc.load_p_mw[:n]),
        pv_mw=tuple(fc.pv_p_mw[:n]),
        wind_mw=tuple(fc.wind_p_mw[:n]),
        diesel=mg.diesel,
        battery=battery,
        battery_cost_per_mw2h=battery.wear_a2_per_mw2h if battery else 0.0,
        battery_cost_per_mwh=battery.wear_a1_per_mwh if battery else 0.0,
        curtailment_price_per_mwh=curt,
        load_shed_price_per_mwh=mg.load_shed_price_per_mwh,
        exch_max_mw=mg.pcc_max_mw,
        e_init_mwh=problem.state.e_mwh if battery is not None else None,
    )


def step_costs(mg: AdmmMg, s: MgSchedule, dt_h: float) -> tuple[float, ...]:
    """The MG's own cost h_n per step of its schedule (the terms of the local problem)."""
    d = mg.diesel
    a2, a1 = (d.a2_per_mw2h, d.a1_per_mwh) if d is not None else (0.0, 0.0)
    a0 = d.a0_per_h if d is not None and d.must_run else 0.0
    out = []
    for t in range(mg.n_steps):
        pd, ch, dis = s.diesel_p_mw[t], s.battery_ch_mw[t], s.battery_dis_mw[t]
        curtailed = mg.pv_mw[t] - s.pv_p_mw[t] + mg.wind_mw[t] - s.wind_p_mw[t]
        rate = (
            a2 * pd**2
            + a1 * pd
            + a0
            + mg.battery_cost_per_mw2h * (ch**2 + dis**2)
            + (mg.throughput_cost_per_mwh if mg.battery is not None else 0.0) * (ch + dis)
            + mg.curtailment_price_per_mwh * curtailed
            + mg.load_shed_price_per_mwh * s.load_shed_mw[t]
        )
        out.append(dt_h * rate)
    return tuple(out)


def party_plan(mg: AdmmMg, s: MgSchedule, dt_h: float) -> PartyPlan:
    """The adapter's plan of one MG from its ADMM schedule (import = the EEP: + = from the other MGs)."""
    curtailed = tuple(max(mg.pv_mw[t] - s.pv_p_mw[t] + mg.wind_mw[t] - s.wind_p_mw[t], 0.0) for t in range(mg.n_steps))
    return PartyPlan(
        diesel_p_mw=s.diesel_p_mw,
        diesel_on=tuple(p > 1e-9 for p in s.diesel_p_mw),
        battery_p_mw=s.battery_p_mw,
        soc_mwh=s.soc_mwh,
        pv_p_mw=s.pv_p_mw,
        wind_p_mw=s.wind_p_mw,
        res_curtailed_mw=curtailed,
        load_shed_mw=s.load_shed_mw,
        import_mw=s.exch_mw,
        cost=step_costs(mg, s, dt_h),
    )


def mg_to_json(mg: AdmmMg) -> str:
    """An MG's ADMM data as JSON (infinite limits as ``Infinity``, read back by :func:`mg_from_json`)."""
    return json.dumps(asdict(mg))


def mg_from_json(text: str) -> AdmmMg:
    data = json.loads(text)
    for key in ("load_mw", "pv_mw", "wind_mw"):
        data[key] = tuple(float(v) for v in data[key])
    data["diesel"] = DieselUnit.from_dict(data["diesel"]) if data["diesel"] else None
    data["battery"] = Battery.from_dict(data["battery"]) if data["battery"] else None
    return AdmmMg(**data)
