"""mosaik adapter of the oracle (:mod:`ems_controllers.oracle.model`).

From the scenario's ``site`` (the net as pandapower JSON, each party's bus, its tie, PCC and cluster
switches) it builds the network with every operable switch closed and groups the switches the way the
scenario drives them: all tie switches together (the network operator's ``tie_closed``), each MG's PCC
switch (``pcc_closed``; only for an MG with a grid-forming unit at its bus, others stay closed) and each
cluster switch (its ``Switch`` entity's ``closed``). A net without an external grid is islanded: the
root is the grid's slack, the first grid-forming static generator's bus, else the first grid-forming
storage's (as the grid simulator picks it), at 1 pu.

Entities: ``MG`` (one per party; the planning adapter's outputs, ``pcc_closed`` of the hour, and on every
party the round's ``lower_bound``, ``planned_loss_mw``, ``predicted_min_vm_pu`` / ``predicted_max_vm_pu``
of this step; the DN's ``tie_closed``) and ``Switch`` (``closed``). The operator sees every party's
forecasts and units: recorded as messages, as the centralized EMS does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, override

import pandapower as pp
from mosaik_api_v3.types import CreateResult, ModelName, OutputData, OutputRequest

from ems_controllers.core.adapter import OUTPUT_ATTRS, Party, PartyRound, PlanningEMS, run
from ems_controllers.core.network import load_q_ratio, network_from_pandapower
from ems_controllers.core.system import full_information_messages
from ems_controllers.core.types import Horizon, PartyProblem
from ems_controllers.oracle.model import NetworkLoads, OracleConfig, OracleModel, OracleResult, OracleRound, OracleSite
from ems_controllers.oracle.strategy import EXTRA_ATTRS, SWITCH_ATTRS, Settings

__all__ = ["OUTPUT_ATTRS", "OracleEMS"]

DN = "DN"
TIES = "ties"
OPERATOR = "oracle"


class OracleEMS(PlanningEMS[OracleRound]):
    strategy_name = "oracle"

    def __init__(self) -> None:
        super().__init__()
        models = self.meta["models"]
        models["MG"]["attrs"] = [*models["MG"]["attrs"], *EXTRA_ATTRS]
        models["Switch"] = {"public": True, "params": ["switch"], "attrs": list(SWITCH_ATTRS)}
        self.model: OracleModel | None = None
        self.q_ratio: dict[int, float] = {}
        self.switch_names: set[str] = set()  # Switch entities: id = the switch's name = its group
        self.last: tuple[int, OracleRound] | None = None
        self.now = 0
        self.switch_time_limit_s = 60.0
        self.diesel_pwl_max_error_per_h = 0.05

    @override
    def configure_strategy(self, site: dict[str, Any] | None = None, **params: Any) -> None:
        settings = Settings.model_validate(params)
        super().configure_strategy(site=site)
        for key in ("net", "party_bus"):
            if key not in self.site:
                raise ValueError(f"oracle needs site['{key}'] from the scenario")
        net = pp.from_json_string(self.site["net"])
        self.q_ratio = load_q_ratio(net)
        cfg = OracleConfig(
            settings.vm_margin_pu, settings.s_max_factor, settings.loss_max_error_share, dr_share=settings.dr_share
        )
        self.model = OracleModel(oracle_site(net, self.site, operate_pcc=settings.operate_pcc), cfg)
        self.switch_time_limit_s = settings.switch_time_limit_s
        self.diesel_pwl_max_error_per_h = settings.diesel_pwl_max_error_per_h

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        if model == "Switch":
            name = str(model_params["switch"])
            self.switch_names.add(name)
            return [{"eid": name, "type": model}]
        return super().create(num, model, **model_params)

    @override
    def _plan(self, time: int) -> dict[str, PartyRound]:
        self.now = time
        return super()._plan(time)

    @override
    def solve(self, problems: list[PartyProblem], horizon: Horizon) -> OracleResult:
        assert self.model is not None
        site = self.model.site
        feeder_p: dict[int, list[float]] = {}
        feeder_q: dict[int, list[float]] = {}
        if site.feeder_party is not None:
            feeder_p, feeder_q = self.load_by_bus(site.feeder_party, self.now, horizon.n_steps, self.q_ratio)
        party_q = {
            p.mg.name: [v * self.q_ratio.get(int(site.party_bus[p.mg.name]), 0.0) for v in p.forecast.load_p_mw]
            for p in problems
            if p.mg.name != site.feeder_party
        }
        loads = NetworkLoads(feeder_p, feeder_q, party_q)
        pwl = min(self.solve_opts.pwl_max_error_per_h, self.diesel_pwl_max_error_per_h)
        opts = replace(self.solve_opts, pwl_max_error_per_h=pwl)
        result = self.model.solve(problems, horizon, loads, opts, self.switch_time_limit_s)
        if result.ok and result.detail is not None:
            self.last = (self.now, result.detail)
        return result

    @override
    def boundary_messages(self, problems: list[PartyProblem], result: OracleResult, time: int) -> list[dict[str, Any]]:
        return full_information_messages(problems, result.plans or {}, time, OPERATOR)

    def _active(self) -> tuple[int, OracleRound] | None:
        """The step of the last round's plan this step is at, and the round (None past its horizon)."""
        if self.last is None:
            return None
        start, rnd = self.last
        k = (self.now - start) // self.step_size
        return (k, rnd) if 0 <= k < len(rnd.loss_mw) else None

    @override
    def _outputs(self, name: str, party: Party, time: int, rounds: Mapping[str, PartyRound]) -> dict[str, Any]:
        self.now = time
        out = super()._outputs(name, party, time, rounds)
        out.update(dict.fromkeys(EXTRA_ATTRS))
        out.update(load_shift_mw=0.0, ev_shift_mw=0.0)  # the grid adds them to the MG's load and its EVs
        active = self._active()
        if name == DN:
            out["tie_closed"] = _closed(active, TIES, default=False)
        if active is None:
            return out
        k, rnd = active
        group = self.model.site.pcc_group.get(name) if self.model is not None else None
        if group is not None:
            out["pcc_closed"] = _closed(active, group, default=True)
        out.update(
            load_shift_mw=rnd.load_shift_mw.get(name, (0.0,) * (k + 1))[k],
            ev_shift_mw=rnd.ev_shift_mw.get(name, (0.0,) * (k + 1))[k],
            planned_loss_mw=rnd.loss_mw[k],
            predicted_min_vm_pu=rnd.min_vm_pu[k],
            predicted_max_vm_pu=rnd.max_vm_pu[k],
            lower_bound=rnd.lower_bound if k == 0 else None,
        )
        return out

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        data = super().get_data({eid: attrs for eid, attrs in outputs.items() if eid in self.parties})
        active = self._active()
        for eid, attrs in outputs.items():
            if eid in self.switch_names:
                data[eid] = {a: _closed(active, eid, default=True) for a in attrs}
        return data


def _closed(active: tuple[int, OracleRound] | None, group: str, *, default: bool) -> bool:
    if active is None or group not in active[1].switch_closed:
        return default
    k, rnd = active
    return rnd.switch_closed[group][k]


def oracle_site(net: Any, site: Mapping[str, Any], *, operate_pcc: bool = False) -> OracleSite:
    """The oracle's view of the scenario's net (module docstring): switch groups, root, feeder party;
    the PCC switches are operated only with ``operate_pcc``."""
    line_of = {int(s): int(net.switch.at[s, "element"]) for s in net.switch.index if net.switch.at[s, "et"] == "l"}
    groups: dict[str, list[int]] = {}
    ties = [int(s) for s in site.get("tie_switches", [])]
    if ties:
        groups[TIES] = ties
    pcc_group: dict[str, str] = {}
    for mg, s in site.get("pcc_switches", {}).items() if operate_pcc else ():
        if _grid_forming_at(net, int(site["party_bus"][mg])):
            pcc_group[mg] = f"pcc {mg}"
            groups[pcc_group[mg]] = [int(s)]
    for c in site.get("clusters", {}).values():
        groups[str(c["switch_name"])] = [int(c["switch"])]
    for tie in site.get("cluster_ties", []):
        groups[str(tie["name"])] = [int(tie["switch"])]
    closed = {s: True for members in groups.values() for s in members}
    islanded = not bool(net.ext_grid["in_service"].astype(bool).any()) if len(net.ext_grid) else True
    root = _slack_bus(net) if islanded else None
    network = network_from_pandapower(net, closed, root_bus=root, root_vm_pu=1.0 if islanded else None)
    party_bus = {n: int(b) for n, b in site["party_bus"].items()}
    return OracleSite(
        network=network,
        party_bus=party_bus,
        feeder_party=DN if DN in site["party_bus"] else None,
        switch_groups={g: tuple(line_of[s] for s in members) for g, members in groups.items()},
        pcc_group=pcc_group,
        islanded=islanded,
        slack_party=next((n for n, b in party_bus.items() if b == root), None),
    )


def _grid_forming_at(net: Any, bus: int) -> bool:
    """Whether an in-service grid-forming unit sits at ``bus`` (the MG can run islanded)."""
    for table in (net.sgen, net.storage):
        if "grid_forming" not in table.columns:
            continue
        rows = table[(table["bus"] == bus) & table["in_service"].astype(bool) & table["grid_forming"].astype(bool)]
        if len(rows):
            return True
    return False


def _slack_bus(net: Any) -> int:
    """The bus of the islanded grid's slack: the first grid-forming sgen, else the first storage."""
    for table in (net.sgen, net.storage):
        if "grid_forming" not in table.columns:
            continue
        rows = table[table["in_service"].astype(bool) & table["grid_forming"].astype(bool)]
        if len(rows):
            return int(rows["bus"].iloc[0])
    raise ValueError("oracle: an islanded net needs a grid-forming unit (the grid's slack)")


def main() -> None:
    run(OracleEMS())


if __name__ == "__main__":
    main()
