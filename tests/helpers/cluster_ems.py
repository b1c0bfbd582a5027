"""A test strategy for the cluster wiring: the rule-based EMS plus a demand-response shift and one entity per
cluster switch (its contract's ``switch_entity``), each with a fixed schedule.

* ``MG`` entities output ``load_shift_mw``: ``SHIFT_MW[name]`` (0 for other parties), every step;
* ``Switch`` entities (param ``switch``: the switch's name) output ``closed``: every feeder switch closed
  before ``SWITCH_AT_S`` and the first cluster's (``"C1 feeder"``) open from then on; every tie open before
  and closed from then on, so the first cluster is fed through its tie in the second half of the day;
* ``Svc`` entities (param ``svc``: the SVC's name, its contract's ``svc_entity``) output ``q_mvar``:
  ``SVC_Q_MVAR`` before ``SWITCH_AT_S`` and ``SVC_Q_LATE_MVAR`` (beyond any range: the grid clips it) from
  then on.
"""

from __future__ import annotations

import copy
from typing import Any, override

from mosaik_api_v3.types import CreateResult, Meta, ModelName, OutputData, OutputRequest, Time

from ems_controllers.core.contract import GRID_TIED, Capability, EntityModel, Strategy
from ems_controllers.rule_based.sim import META as RULE_META
from ems_controllers.rule_based.sim import RuleBasedEMS
from ems_controllers.rule_based.strategy import OUTPUT_ATTRS as RULE_OUTPUTS

SHIFT_MW = {"A": 0.1, "B": -0.01}
SWITCH_AT_S = 12 * 3600
OPENED_FEEDER = "C1 feeder"
SVC_Q_MVAR = -0.2
SVC_Q_LATE_MVAR = 5.0

META: Meta = copy.deepcopy(RULE_META)
META["models"]["MG"]["attrs"].append("load_shift_mw")
META["models"]["Switch"] = {"public": True, "params": ["switch"], "attrs": ["closed"]}
META["models"]["Svc"] = {"public": True, "params": ["svc"], "attrs": ["q_mvar"]}


class ClusterTestEMS(RuleBasedEMS):
    """:class:`RuleBasedEMS` with ``load_shift_mw`` and ``Switch`` entities (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.meta = copy.deepcopy(META)
        self.switches: dict[str, str] = {}  # eid -> switch name
        self.svcs: dict[str, str] = {}  # eid -> SVC name
        self.now = 0

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        if model == "Svc":
            eid = f"svc-{len(self.svcs)}"
            self.svcs[eid] = str(model_params["svc"])
            return [{"eid": eid, "type": model}]
        if model != "Switch":
            return super().create(num, model, **model_params)
        eid = f"switch-{len(self.switches)}"
        self.switches[eid] = str(model_params["switch"])
        return [{"eid": eid, "type": model}]

    @override
    def step(self, time: Time, inputs: Any, max_advance: Time) -> Time:
        self.now = time
        own = {**self.switches, **self.svcs}
        return super().step(time, {k: v for k, v in inputs.items() if k not in own}, max_advance)

    def _closed(self, name: str) -> bool:
        late = self.now >= SWITCH_AT_S
        if name.endswith(" tie"):
            return late
        return not (late and name == OPENED_FEEDER)

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        mg_out = {eid: [a for a in attrs if a != "load_shift_mw"] for eid, attrs in outputs.items()}
        own = {**self.switches, **self.svcs}
        data = super().get_data({eid: attrs for eid, attrs in mg_out.items() if eid not in own})
        for eid, attrs in outputs.items():
            if eid in self.svcs:
                data[eid] = {"q_mvar": SVC_Q_LATE_MVAR if self.now >= SWITCH_AT_S else SVC_Q_MVAR}
            elif eid in self.switches:
                data[eid] = {"closed": self._closed(self.switches[eid])}
            elif "load_shift_mw" in attrs:
                data[eid]["load_shift_mw"] = SHIFT_MW.get(eid, 0.0)
        return data


STRATEGY = Strategy(
    name="cluster_test",
    simulator=f"{__name__}:ClusterTestEMS",
    description="rule-based EMS with a fixed load shift and fixed cluster switch schedules (tests)",
    outputs=(*RULE_OUTPUTS, "load_shift_mw"),
    requires=frozenset({Capability.CLUSTERS}),
    cannot_handle=GRID_TIED,
    switch_entity=EntityModel("Switch", ("closed",)),
    svc_entity=EntityModel("Svc", ("q_mvar",)),
)
