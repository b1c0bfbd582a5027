"""mosaik adapter of the cooperative community EMS (spec 003): one uEMS per MG and a central EMS.

The math is :mod:`ems_controllers.cooperative.model` (energies in kWh per interval, prices per kWh);
this adapter converts at its boundary (``kWh = MW * dt_h * 1000``, ``price per kWh = price per MWh /
1000``) and plans day-ahead over the forecast like every planning EMS (:mod:`ems_controllers.core.adapter`):
each interval of the horizon is one run of step 1 (each MG alone) and step 2 (main and ancillary
internal trading), with the central LP of the same interval solved beside it for the record. A party's
CHP (``Microgrid.diesel``, linear cost ``a1_per_mwh``) is its only controllable unit.

Outputs per MG entity (eid = the MG's name) each step: the setpoint ``diesel_p_mw`` (the CHP) and the
spec's record ``chp_step1_kwh``, ``chp_kwh``, ``surplus_kwh``, ``shortage_kwh``, ``self_sufficient``,
``main_send_kwh``, ``main_receive_kwh``, ``ancillary_up_kwh``, ``ancillary_down_kwh``, ``ext_sell_kwh``,
``ext_buy_kwh``, ``settlement_cost`` (what its bill at the internal prices differs from its own costs
plus its exchange at the tariff: the KPIs add it) and ``revealed_room`` (1 if its report carried its
CHP's room and cost: what the mode made it reveal beyond surplus and shortage). One ``Community`` entity
(eid ``community``): ``main_internal_kwh``, ``ancillary_internal_kwh``, ``cost_step1``, ``cost_final``,
``cost_central_lp`` and ``gap`` (``cost_final - cost_central_lp``). Sim param ``ancillary``: ``"paper"``
(the spec's rule, default), ``"extended"`` or ``"merit"`` (:mod:`ems_controllers.cooperative.model`). The
uEMS reports and the central EMS's instructions are the recorded messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, override

from ems_controllers.cooperative.model import MODES, ChpMg, HourData, HourResult, Mode, is_mode, run_hour
from ems_controllers.cooperative.strategy import COMMUNITY_ATTRS, MG_ATTRS
from ems_controllers.cooperative.strategy import OUTPUT_ATTRS as STRATEGY_OUTPUTS
from ems_controllers.core.adapter import Party, PartyRound, PlanningEMS, run
from ems_controllers.core.types import Horizon, PartyPlan, PartyProblem, SolveResult, SolveStatus

if TYPE_CHECKING:
    from mosaik_api_v3.types import CreateResult, ModelName, OutputData, OutputRequest

OUTPUT_ATTRS = list(STRATEGY_OUTPUTS)
COMMUNITY = "community"


class CooperativeEMS(PlanningEMS[None]):
    strategy_name = "cooperative"

    def __init__(self) -> None:
        super().__init__()
        self.meta["models"]["MG"]["attrs"] = [*self.meta["models"]["MG"]["attrs"], *MG_ATTRS]
        self.meta["models"]["Community"] = {"public": True, "params": [], "attrs": list(COMMUNITY_ATTRS)}
        self.mode: Mode = "paper"
        self.now = 0
        self.hours: tuple[int, list[HourResult]] | None = None
        self.community_out: dict[str, Any] = {}
        self.has_community = False

    @override
    def configure_strategy(self, site: dict[str, Any] | None = None, ancillary: str = "paper", **params: Any) -> None:
        super().configure_strategy(site=site, **params)
        if not is_mode(ancillary):
            raise ValueError(f"ancillary must be one of {MODES}, got {ancillary!r}")
        self.mode = ancillary

    @override
    def create(self, num: int, model: ModelName, **params: Any) -> list[CreateResult]:
        if model == "Community":
            if num != 1 or self.has_community or params:
                raise ValueError("create one Community entity, without params")
            self.has_community = True
            return [{"eid": COMMUNITY, "type": model}]
        return super().create(num, model, **params)

    @override
    def _plan(self, time: int) -> dict[str, PartyRound]:
        self.now = time
        return super()._plan(time)

    @override
    def solve(self, problems: list[PartyProblem], horizon: Horizon) -> SolveResult[None]:
        dt_h = horizon.dt_h
        kwh = 1000.0 * dt_h  # MW -> kWh per interval
        mgs = []
        for p in problems:
            d = p.mg.diesel
            if d is None or d.a2_per_mw2h != 0:
                raise ValueError(f"cooperative: MG {p.mg.name} needs a CHP with a linear cost (a1_per_mwh)")
            mgs.append(ChpMg(p.mg.name, d.p_min_mw * kwh, d.p_max_mw * kwh, d.a1_per_mwh / 1000.0))
        results: list[HourResult] = []
        for k in range(horizon.n_steps):
            hour = HourData(
                horizon.buy_price_per_mwh[k] / 1000.0,
                horizon.sell_price_per_mwh[k] / 1000.0,
                {p.mg.name: p.forecast.load_p_mw[k] * kwh for p in problems},
                {p.mg.name: (p.forecast.pv_p_mw[k] + p.forecast.wind_p_mw[k]) * kwh for p in problems},
            )
            results.append(run_hour(mgs, hour, self.mode))
        self.hours = (self.now, results)
        plans: dict[str, PartyPlan] = {}
        for p in problems:
            name, n = p.mg.name, horizon.n_steps
            chp = [r.mgs[name].chp_kwh / kwh for r in results]
            res = [p.forecast.pv_p_mw[k] + p.forecast.wind_p_mw[k] for k in range(n)]
            imp = [p.forecast.load_p_mw[k] - res[k] - chp[k] for k in range(n)]
            plans[name] = PartyPlan(
                diesel_p_mw=tuple(chp),
                diesel_on=(True,) * n,
                battery_p_mw=(0.0,) * n,
                soc_mwh=(0.0,) * n,
                pv_p_mw=tuple(p.forecast.pv_p_mw),
                wind_p_mw=tuple(p.forecast.wind_p_mw),
                res_curtailed_mw=(0.0,) * n,
                load_shed_mw=(0.0,) * n,
                import_mw=tuple(imp),
                cost=tuple(r.mgs[name].bill for r in results),
            )
        lp_ok = all(r.lp.ok for r in results)
        return SolveResult(
            status=SolveStatus.OPTIMAL,
            termination="closed form + central LP" if lp_ok else "LP failed",
            objective=sum(r.cost_final for r in results),
            plans=plans,
            build_s=0.0,
            solve_s=sum(r.lp.solve_s for r in results),
        )

    @override
    def boundary_messages(
        self, problems: list[PartyProblem], result: SolveResult[None], time: int
    ) -> list[dict[str, Any]]:
        assert self.hours is not None
        msgs: list[dict[str, Any]] = []
        for k, r in enumerate(self.hours[1]):
            for m in r.messages:
                msgs.append(
                    {
                        "t": time + k * self.step_size,
                        "sender": m["sender"],
                        "receiver": m["receiver"],
                        "kind": f"{m['kind']}:{','.join(m.get('fields', []))}",
                        "values": [float(v) for v in m["values"]],
                    }
                )
        return msgs

    @override
    def _outputs(self, name: str, party: Party, time: int, rounds: Mapping[str, PartyRound]) -> dict[str, Any]:
        out = super()._outputs(name, party, time, rounds)
        out.update(dict.fromkeys(MG_ATTRS))
        self.community_out = dict.fromkeys(COMMUNITY_ATTRS)
        if self.hours is None:
            return out
        start, results = self.hours
        k = (time - start) // self.step_size
        if not 0 <= k < len(results) or name not in results[k].mgs:
            return out
        r = results[k]
        x = r.mgs[name]
        assert self.tariff is not None
        buy, sell = self.tariff.at((time // self.step_size) % self.steps_per_day)
        imp_kwh = (
            x.ext_buy_kwh
            - x.ext_sell_kwh
            + x.main_receive_kwh
            - x.main_send_kwh
            + x.ancillary_receive_kwh
            - x.ancillary_send_kwh
        )
        own = (party.mg.diesel.a1_per_mwh / 1000.0) * x.chp_kwh if party.mg.diesel else 0.0
        at_tariff = (buy if imp_kwh >= 0 else sell) / 1000.0 * imp_kwh
        out.update(
            chp_step1_kwh=x.chp_step1_kwh,
            chp_kwh=x.chp_kwh,
            surplus_kwh=x.surplus_kwh,
            shortage_kwh=x.shortage_kwh,
            self_sufficient=int(x.self_sufficient),
            main_send_kwh=x.main_send_kwh,
            main_receive_kwh=x.main_receive_kwh,
            ancillary_up_kwh=x.ancillary_up_kwh,
            ancillary_down_kwh=x.ancillary_down_kwh,
            ext_sell_kwh=x.ext_sell_kwh,
            ext_buy_kwh=x.ext_buy_kwh,
            settlement_cost=x.bill - own - at_tariff,
            revealed_room=int(r.step1[name].report.movable),
        )
        self.community_out = {
            "main_internal_kwh": r.main_internal_kwh,
            "ancillary_internal_kwh": r.ancillary_internal_kwh,
            "cost_step1": r.cost_step1,
            "cost_final": r.cost_final,
            "cost_central_lp": r.lp.cost,
            "gap": r.gap,
        }
        return out

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        data = super().get_data({e: a for e, a in outputs.items() if e != COMMUNITY})
        if COMMUNITY in outputs:
            data[COMMUNITY] = {a: self.community_out.get(a) for a in outputs[COMMUNITY]}
        return data


def main() -> None:
    run(CooperativeEMS())


if __name__ == "__main__":
    main()
