"""mosaik adapter of the security-constrained hierarchical EMS (spec 002, cases 1-3).

The math is :mod:`ems_controllers.security_constrained.model`; this adapter builds its inputs from what
the planning adapter collects (:mod:`ems_controllers.core.adapter`) and from the scenario's ``site``
(the net as pandapower JSON, each party's bus, the tie switches): the DNO's feeder load per bus comes
from the load forecasts the DN entity receives (``load_buses`` maps each source to its bus), reactive
loads from the net's own p/q ratio per bus, the network from the net with the PCC switches closed and
the tie switches open (cases 1 and 2) or closed (case 3). The DN entity outputs ``tie_closed``, which the
scenario connects to every tie switch, so the switch states the EMS decides reach the power flow.

Extra outputs per party each step: ``request_mw`` and ``grant_mw`` (MGs; the DN: the substation import),
``settlement_cost`` (case 3: what the MGC's split moves between the parties' bills, see
:func:`_settlement_per_step`; the KPIs add it to each party's bill), and at planning instants ``saving_share``
(case 3, an MG's Shapley share of the aggregation saving over the plan), ``dn_cost`` (planned) and ``step1_s``
.. ``split_s`` (solve time of each step; DN only); on the DN entity ``predicted_vm_pu`` and
``predicted_loading_percent``: LinDistFlow's prediction for this step, one value per bus / line of the net in
index order (NaN where not modelled), so the report can set the linearisation against the AC power flow of the
same step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, override

import pandapower as pp

from ems_controllers.core.adapter import Party, PartyRound, PlanningEMS, run
from ems_controllers.core.network import NetworkData, load_q_ratio, network_from_pandapower
from ems_controllers.core.types import Horizon, PartyProblem, SolveResult
from ems_controllers.security_constrained.model import DnSite, ScConfig, ScResult, SecurityConstrainedModel
from ems_controllers.security_constrained.strategy import EXTRA_ATTRS
from ems_controllers.security_constrained.strategy import OUTPUT_ATTRS as STRATEGY_OUTPUTS

DN = "DN"
OUTPUT_ATTRS = list(STRATEGY_OUTPUTS)


class SecurityConstrainedEMS(PlanningEMS[ScResult]):
    strategy_name = "security_constrained"

    def __init__(self) -> None:
        super().__init__()
        self.meta["models"]["MG"]["attrs"] = [*self.meta["models"]["MG"]["attrs"], *EXTRA_ATTRS]
        self.model = SecurityConstrainedModel()
        self.sc: ScConfig | None = None
        self.network: NetworkData | None = None
        self.case2_network: NetworkData | None = None
        self.net: Any = None
        self.q_ratio: dict[int, float] = {}
        self.last: tuple[int, ScResult] | None = None
        self.now = 0

    @override
    def configure_strategy(
        self,
        site: dict[str, Any] | None = None,
        case: int = 2,
        deviation_price_per_mwh: float = 500.0,
        redistribution_price_per_mwh: float = 250.0,
        s_max_factor: float = 0.95,
        **params: Any,
    ) -> None:
        super().configure_strategy(site=site, **params)
        self.sc = ScConfig(
            case=int(case),
            deviation_price_per_mwh=float(deviation_price_per_mwh),
            redistribution_price_per_mwh=float(redistribution_price_per_mwh),
            s_max_factor=float(s_max_factor),
        )
        for key in ("net", "party_bus", "tie_switches"):
            if key not in self.site:
                raise ValueError(f"security_constrained needs site['{key}'] from the scenario")
        self.net = pp.from_json_string(self.site["net"])
        ties = [int(s) for s in self.site["tie_switches"]]
        closed = dict.fromkeys(ties, self.sc.case == 3)
        for s in self.site.get("pcc_switches", {}).values():
            closed[int(s)] = True
        self.network = network_from_pandapower(self.net, closed)
        self.case2_network = None
        if self.sc.case == 3:  # the split's case-2 baseline: the same net with the tie lines open
            self.case2_network = network_from_pandapower(self.net, {**closed, **dict.fromkeys(ties, False)})
        self.q_ratio = load_q_ratio(self.net)

    @property
    def bus_order(self) -> list[int]:
        return sorted(int(b) for b in self.net.bus.index)

    @property
    def line_order(self) -> list[int]:
        return sorted(int(li) for li in self.net.line.index)

    @override
    def _plan(self, time: int) -> dict[str, PartyRound]:
        self.now = time
        return super()._plan(time)

    @override
    def solve(self, problems: list[PartyProblem], horizon: Horizon) -> SolveResult[ScResult]:
        assert self.sc is not None
        by_name = {p.mg.name: p for p in problems}
        if DN not in by_name:
            raise ValueError("security_constrained needs the network operator's entity 'DN'")
        mgs = [p for n, p in by_name.items() if n != DN]
        n = horizon.n_steps
        p_bus, q_bus = self.load_by_bus(DN, self.now, n, self.q_ratio)
        bus_of = self.site["party_bus"]
        mg_q = {
            p.mg.name: [v * self.q_ratio.get(int(bus_of[p.mg.name]), 0.0) for v in p.forecast.load_p_mw] for p in mgs
        }
        dn = DnSite(
            problem=by_name[DN],
            unit_bus=int(bus_of[DN]),
            mg_bus={p.mg.name: int(bus_of[p.mg.name]) for p in mgs},
            feeder_p_mw=p_bus,
            feeder_q_mvar=q_bus,
            mg_q_mvar=mg_q,
        )
        res = self.model.solve(mgs, dn, self.network, horizon, self.solve_opts, self.sc, self.case2_network)
        self.last = (self.now, res)
        build_s = res.step1_s + res.step2_s + res.step3_s + res.split_s
        return SolveResult(
            status=res.status,
            termination=res.termination,
            objective=res.dn_cost,
            plans=res.plans if res.ok else None,
            build_s=0.0,
            solve_s=build_s,
            message=f"{res.failed_step}: {res.message}" if res.failed_step else res.message,
            detail=res,
        )

    @override
    def boundary_messages(
        self, problems: list[PartyProblem], result: SolveResult[ScResult], time: int
    ) -> list[dict[str, Any]]:
        res = result.detail
        if res is None:
            return []
        return [flat for m in res.messages for flat in _flatten(dict(m, t=time))]

    @override
    def _outputs(self, name: str, party: Party, time: int, rounds: Mapping[str, PartyRound]) -> dict[str, Any]:
        out = super()._outputs(name, party, time, rounds)
        assert self.sc is not None
        out["tie_closed"] = self.sc.case == 3 if name == DN else None
        out.update({a: None for a in EXTRA_ATTRS if a != "tie_closed"})
        if self.last is None or not self.last[1].ok:
            return out
        start, res = self.last
        k = (time - start) // self.step_size
        out["settlement_cost"] = _settlement_per_step(res, name, k)
        if name == DN:
            if k < len(res.substation_import_mw):
                out["grant_mw"] = res.substation_import_mw[k]
            if k == 0:
                out.update(
                    dn_cost=res.dn_cost,
                    step1_s=res.step1_s,
                    step2_s=res.step2_s,
                    step3_s=res.step3_s,
                    split_s=res.split_s,
                )
            n = len(res.substation_import_mw)
            if k < n:
                out["predicted_vm_pu"] = [res.vm_pu.get((b, k), math.nan) for b in self.bus_order]
                out["predicted_loading_percent"] = [
                    res.loading_percent.get((li, k), math.nan) for li in self.line_order
                ]
        else:
            if name in res.requests_mw and k < len(res.requests_mw[name]):
                out["request_mw"] = res.requests_mw[name][k]
                out["grant_mw"] = res.grants_mw[name][k]
            if k == 0:
                out["saving_share"] = res.shapley_shares.get(name)
        return out


def _settlement_per_step(res: ScResult, name: str, k: int) -> float | None:
    """Case 3's settlement of party ``name`` at step ``k`` of the plan, spread evenly over its steps
    (a rolling run applies the first step of each plan: 1/n of each plan's settlement).

    The co-simulation bills each MG its own units and its PCC flow at the tariff (``mg_costs``); the MGC's
    split gives it ``mg_bills`` (summing to the MGC's cost, the aggregate priced at the tariff). MG i
    settles ``mg_bills[i] - mg_costs[i]``; the DN the opposite of their sum (the tariff's spread on what
    the MGs netted among themselves, which the DN bills the MGC as one unit), so the settlements sum to 0.
    None outside case 3's split or past the plan."""
    n = len(res.substation_import_mw)
    if not res.mg_bills or not 0 <= k < n:
        return None
    if name == DN:
        return sum(res.mg_costs[m] - b for m, b in res.mg_bills.items()) / n
    if name not in res.mg_bills:
        return None
    return (res.mg_bills[name] - res.mg_costs[name]) / n


def _flatten(msg: dict[str, Any]) -> list[dict[str, Any]]:
    """A message whose values are a mapping (e.g. the MGC's per-MG requests) as one message per entry,
    ``kind.key``, with a flat list of numbers each: the record stores values as lists of floats."""
    values = msg.get("values")
    if isinstance(values, dict):
        out = []
        for key, v in values.items():
            out.extend(_flatten(dict(msg, kind=f"{msg['kind']}.{key}", values=v)))
        return out
    if values is not None and not isinstance(values, (list, tuple)):
        values = [values]
    return [dict(msg, values=[float(x) for x in values]) if values is not None else msg]


def main() -> None:
    run(SecurityConstrainedEMS())


if __name__ == "__main__":
    main()
