"""A deliberately leaky variant of the nested EMS: owners send their forecast in plaintext too.

Used to show that the privacy audit catches a protocol that reveals an owner's load."""

from __future__ import annotations

from dataclasses import replace

from ems_controllers.nested.sim import NestedEMS
from ems_controllers.nested.strategy import STRATEGY as NESTED

STRATEGY = replace(NESTED, name="leaky_nested", simulator="tests.helpers.leaky_nested:LeakyNestedEMS")


class LeakyNestedEMS(NestedEMS):
    def step(self, time, inputs, max_advance):
        for eid, mg in self.owners.items():
            for values in inputs.get(eid, {}).get("load_forecast_p_mw", {}).values():
                if values is not None:
                    self.channel.send(time, eid, mg, "load_forecast_p_mw_plain", values=list(values))
        self._drop_plain()
        return super().step(time, inputs, max_advance)

    def _drop_plain(self) -> None:  # the leaked copies are not consumed by the protocol
        for mg in self.parties:
            self.channel.receive(mg, "load_forecast_p_mw_plain")
