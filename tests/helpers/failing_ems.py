"""EMS simulators that fail on purpose, to test that a run which dies keeps what it completed."""

from __future__ import annotations

import os
import signal

from ems_controllers.core.contract import RunRecord, Strategy, StrategyKpis
from ems_controllers.rule_based.sim import OUTPUT_ATTRS, RuleBasedEMS  # noqa: F401  (OUTPUT_ATTRS: registry)
from ems_controllers.rule_based.strategy import STRATEGY as RULE_BASED

FAIL_AT_S = 30 * 3600
KPI_FAILURE = "KPI failure injected"


class RaisingEMS(RuleBasedEMS):
    """Raises in its step at FAIL_AT_S (an EMS bug)."""

    def step(self, time, inputs, max_advance):
        if time >= FAIL_AT_S:
            raise RuntimeError(f"EMS failure injected at t={time}")
        return super().step(time, inputs, max_advance)


class DyingEMS(RuleBasedEMS):
    """Kills its own process at FAIL_AT_S (a dead simulator process; run it with `cmd`)."""

    def step(self, time, inputs, max_advance):
        if time >= FAIL_AT_S:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().step(time, inputs, max_advance)


def raising_kpis(r: RunRecord) -> StrategyKpis:
    """A strategy's KPI hook with a bug: it raises once the run is over."""
    raise ValueError(f"{KPI_FAILURE} after {r.n} steps")


KPI_FAILING = Strategy(
    name="kpi_failing",
    simulator=RULE_BASED.simulator,
    description="the rule-based EMS with a KPI hook that raises (tests)",
    outputs=RULE_BASED.outputs,
    cannot_handle=RULE_BASED.cannot_handle,
    kpis=f"{__name__}:raising_kpis",
)


def main() -> None:
    import mosaik_api_v3

    mosaik_api_v3.start_simulation(DyingEMS())


if __name__ == "__main__":
    main()
