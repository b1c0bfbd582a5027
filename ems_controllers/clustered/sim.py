"""mosaik adapter of the clustered multi-level EMS (spec 004).

The math is :mod:`ems_controllers.clustered.model`; this adapter feeds it what the planning adapter
collects (:mod:`ems_controllers.core.adapter`) and the scenario's ``site`` (the net, the clusters, their
ties, each MG's PCC switch). Entities:

- ``MG`` (one per party; ``DN`` is the network operator with the network's own loads): the planned
  setpoints, the PCC switch state of the hour (``pcc_closed``), the demand-response shift added to the
  MG's load (``load_shift_mw``), the EV charging moved against its uncontrolled profile
  (``ev_shift_mw``, added to the EV load) and the cluster's level at the hour (``cluster_level``);
- ``Switch`` (one per cluster switch, ``switch=<name>``: each cluster's feeder and each tie): ``closed``
  drives the switch in the grid, ``planned_flow_mw`` is the flow the plan put on it;
- ``Svc`` (one per static var compensator of the network operator, ``svc=<name>``): ``q_mvar``, the upper
  level's reactive setpoint of the hour (0 before a plan, or when the network was not planned);
- ``Clusters`` (one): the levels, the network's predicted voltages and loadings and the losses of the hour,
  and at planning instants the Pareto front (``pareto_*``, recorded in ``Pareto/``), the payoff table and
  the solve time of every stage.

Before a plan exists, or when a planning round failed (the MGs fall back to the rule, connected), the
switches keep the scenario's normal state: feeders closed, ties open.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, override

import pandapower as pp

from ems_controllers.clustered.lower import EV_KEY, LowerSettings
from ems_controllers.clustered.model import ClusteredDetail, ClusteredModel, ClusteredResult, ClusteredSettings
from ems_controllers.clustered.outputs import svc_outputs, switch_outputs, system_outputs
from ems_controllers.clustered.pareto import Zeta
from ems_controllers.clustered.strategy import MG_ATTRS, SVC_ATTRS, SWITCH_ATTRS, SYSTEM_ATTRS, Settings
from ems_controllers.clustered.system import ClusterSystem, cluster_system, svcs_of
from ems_controllers.core.adapter import Party, PartyRound, PlanningEMS, run
from ems_controllers.core.ev import EvSpec
from ems_controllers.core.network import load_q_ratio, network_from_pandapower
from ems_controllers.core.types import Horizon, PartyPlan, PartyProblem, SolveResult

if TYPE_CHECKING:
    from mosaik_api_v3.types import CreateResult, ModelName, OutputData, OutputRequest, Time

log = logging.getLogger(__name__)

DN = "DN"
OPERATOR = "MGCC"
"""The clusters' central controller that solves the lower level (it sees every MG's data)."""


def _eid(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)


class ClusteredEMS(PlanningEMS[ClusteredDetail]):
    strategy_name = "clustered"

    def __init__(self) -> None:
        super().__init__()
        models = self.meta["models"]
        models["MG"]["attrs"] = [*models["MG"]["attrs"], *MG_ATTRS]
        models["Clusters"] = {"public": True, "params": [], "attrs": list(SYSTEM_ATTRS)}
        models["Switch"] = {"public": True, "params": ["switch"], "attrs": list(SWITCH_ATTRS)}
        models["Svc"] = {"public": True, "params": ["svc"], "attrs": list(SVC_ATTRS)}
        self.system: ClusterSystem | None = None
        self.model: ClusteredModel | None = None
        self.q_ratio: dict[int, float] = {}
        self.switches: dict[str, str] = {}  # eid -> switch name
        self.svcs: dict[str, str] = {}  # eid -> SVC name
        self.system_eid: str | None = None
        self.last: tuple[int, ClusteredDetail] | None = None
        self.now = 0
        self.ev_uncontrolled: dict[str, list[float]] = {}  # MG -> EV charging without coordination, per plan step

    @override
    def configure_strategy(self, site: dict[str, Any] | None = None, **params: Any) -> None:
        settings = Settings.model_validate(params)
        super().configure_strategy(site=site)
        for key in ("net", "clusters", "pcc_switches"):
            if key not in self.site:
                raise ValueError(f"clustered needs site['{key}'] from the scenario")
        net = pp.from_json_string(self.site["net"])
        self.system = cluster_system(net, self.site)
        self.q_ratio = load_q_ratio(net)
        open_all = {lk.switch: False for lk in self.system.links}
        network = network_from_pandapower(net, open_all)
        lower = LowerSettings(
            settings.mt_emission_cost_per_mwh,
            settings.grid_emission_cost_per_mwh,
            settings.dr_share,
            settings.switch_hour_cost,
            settings.loss_max_error_mw,
            self.opts.pwl_max_error_per_h,
        )
        cs = ClusteredSettings(
            lower,
            Zeta(settings.zeta_gc, settings.zeta_ec, settings.zeta_loss),
            settings.deviation_price_per_mwh,
            settings.s_max_factor,
            settings.pareto_points,
            settings.network_loss_max_error_mw,
            settings.point_time_limit_s,
            settings.vm_margin_pu,
            settings.svc_price_per_mvarh,
        )
        buses = {c.name: c.network_bus for c in self.system.clusters}
        self.model = ClusteredModel(self.system, network, buses, cs, svcs_of(self.site))

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        if model == "Clusters":
            self.system_eid = "Clusters"
            return [{"eid": self.system_eid, "type": model}]
        if model == "Switch":
            name = str(model_params["switch"])
            eid = _eid(name)
            self.switches[eid] = name
            return [{"eid": eid, "type": model}]
        if model == "Svc":
            name = str(model_params["svc"])
            eid = f"svc-{_eid(name)}"
            self.svcs[eid] = name
            return [{"eid": eid, "type": model}]
        return super().create(num, model, **model_params)

    @override
    def step(self, time: Time, inputs: Any, max_advance: Time) -> Time | None:
        self.now = int(time)
        return super().step(time, inputs, max_advance)

    @override
    def solve(self, problems: list[PartyProblem], horizon: Horizon) -> SolveResult[ClusteredDetail]:
        assert self.model is not None and self.system is not None
        by_name = {p.mg.name: p for p in problems}
        outside = sorted(set(by_name) - set(self.system.mgs) - {DN})
        if outside:
            return SolveResult.error("bad_input", f"MGs in no cluster: {outside}")
        mgs = [self._with_ev(by_name[m], horizon) for m in self.system.mgs]
        load = self.load_by_bus(DN, self.now, horizon.n_steps, self.q_ratio) if DN in by_name else ({}, {})
        result: ClusteredResult = self.model.solve(mgs, load, horizon, self.solve_opts)
        if not result.ok or result.detail is None or result.plans is None:
            self.last = None
            return result
        plans = dict(result.plans)
        if DN in by_name:
            plans[DN] = _network_plan(by_name[DN], result.detail)
        self.last = (self.now, result.detail)
        return SolveResult(
            result.status,
            result.termination,
            result.objective,
            plans,
            result.build_s,
            result.solve_s,
            detail=result.detail,
        )

    def _with_ev(self, prob: PartyProblem, horizon: Horizon) -> PartyProblem:
        """An MG with EVs: its load forecast without the EVs' uncontrolled charging (which the forecast
        includes, as for every strategy), and the EVs as a flexible load (``lower.EV_KEY``): the plug-in
        window's hours at full power, and the uncontrolled charging's energy inside the horizon. The day
        is treated as periodic: a window that wraps past midnight lends its morning hours to this day."""
        ev = prob.mg.extra.get("ev")
        if ev is None:
            return prob
        cfg = EvSpec.from_dict(ev)
        unc_by_hour, window = cfg.uncontrolled_mw(), set(cfg.window())
        hours = [int((horizon.first_step_of_day + k) * horizon.dt_h) % 24 for k in range(horizon.n_steps)]
        unc = [unc_by_hour[h] for h in hours]
        self.ev_uncontrolled[prob.mg.name] = unc
        plan = {
            "cap_mw": [cfg.p_max_mw if h in window else 0.0 for h in hours],
            "energy_mwh": sum(unc) * horizon.dt_h,
        }
        load = tuple(max(x - u, 0.0) for x, u in zip(prob.forecast.load_p_mw, unc, strict=True))
        return PartyProblem(
            replace(prob.mg, extra={**prob.mg.extra, EV_KEY: plan}), replace(prob.forecast, load_p_mw=load), prob.state
        )

    @override
    def boundary_messages(
        self, problems: list[PartyProblem], result: SolveResult[ClusteredDetail], time: int
    ) -> list[dict[str, Any]]:
        """Each MG's forecasts to the clusters' controller and its schedule back; each cluster's exchange
        request to the network operator and the grant back."""
        detail = result.detail
        if detail is None:
            return []
        msgs: list[dict[str, Any]] = []
        for p in problems:
            if p.mg.name == DN:
                continue
            for kind, values in (
                ("load_forecast_p_mw", p.forecast.load_p_mw),
                ("pv_forecast_p_mw", p.forecast.pv_p_mw),
                ("wind_forecast_p_mw", p.forecast.wind_p_mw),
            ):
                msgs.append(
                    {"t": time, "sender": p.mg.name, "receiver": OPERATOR, "kind": kind, "values": list(values)}
                )
            plan = detail.schedule.plans[p.mg.name]
            msgs.append(
                {
                    "t": time,
                    "sender": OPERATOR,
                    "receiver": p.mg.name,
                    "kind": "schedule_import_mw",
                    "values": list(plan.import_mw),
                }
            )
        for c, req in detail.lower.schedule.feeder_mw.items():
            msgs.append({"t": time, "sender": OPERATOR, "receiver": DN, "kind": f"request_mw.{c}", "values": list(req)})
            if detail.upper is not None:
                grant = list(detail.upper.grant_mw[c])
                msgs.append({"t": time, "sender": DN, "receiver": OPERATOR, "kind": f"grant_mw.{c}", "values": grant})
        return msgs

    def _active(self, time: int) -> tuple[int, ClusteredDetail] | None:
        """The planning round whose schedule covers ``time`` (step k of it), if any."""
        if self.last is None:
            return None
        start, detail = self.last
        k = (time - start) // self.step_size
        n = len(next(iter(detail.schedule.plans.values())).import_mw)
        return (k, detail) if 0 <= k < n else None

    @override
    def _outputs(self, name: str, party: Party, time: int, rounds: Mapping[str, PartyRound]) -> dict[str, Any]:
        out = super()._outputs(name, party, time, rounds)
        out.update(load_shift_mw=0.0, ev_shift_mw=0.0, cluster_level=None)
        active = self._active(time) if name in self.active else None
        if active is None or name == DN or not out["ems_status"].startswith("ok"):
            return out
        k, detail = active
        sched = detail.schedule
        assert self.system is not None
        out["pcc_closed"] = bool(sched.pcc_closed[name][k])
        out["load_shift_mw"] = float(sched.dr_shift_mw[name][k])
        if name in sched.ev_mw:
            out["ev_shift_mw"] = float(sched.ev_mw[name][k] - self.ev_uncontrolled[name][k])
        out["cluster_level"] = int(detail.lower.levels[self.system.cluster_of(name).name][k])
        return out

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        party_req = {eid: attrs for eid, attrs in outputs.items() if eid in self.parties}
        data = super().get_data(party_req)
        assert self.system is not None
        active = self._active(self.now)
        for eid, attrs in outputs.items():
            if eid in self.switches:
                vals = switch_outputs(self.system, self.switches[eid], active)
            elif eid in self.svcs:
                vals = svc_outputs(self.svcs[eid], active)
            elif eid == self.system_eid:
                vals = system_outputs(self.system, active, new_plan=active is not None and active[0] == 0)
            else:
                continue
            data[eid] = {a: vals.get(a) for a in attrs}
        return data


def _network_plan(dn: PartyProblem, detail: ClusteredDetail) -> PartyPlan:
    """The network operator's plan: no units; its import is its own load (the substation exchange is on
    the ``Clusters`` entity)."""
    n = len(dn.forecast.load_p_mw)
    zeros = (0.0,) * n
    return PartyPlan(
        diesel_p_mw=zeros,
        diesel_on=(False,) * n,
        battery_p_mw=zeros,
        soc_mwh=zeros,
        pv_p_mw=zeros,
        wind_p_mw=zeros,
        res_curtailed_mw=zeros,
        load_shed_mw=zeros,
        import_mw=tuple(dn.forecast.load_p_mw),
        cost=zeros,
    )


def main() -> None:
    run(ClusteredEMS())


if __name__ == "__main__":
    main()
