"""EMS simulators that fail on purpose, to test that a run which dies keeps what it completed."""

from __future__ import annotations

import os
import signal

from ems_controllers.rule_based.sim import OUTPUT_ATTRS, RuleBasedEMS  # noqa: F401  (OUTPUT_ATTRS: registry)

FAIL_AT_S = 30 * 3600


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


def main() -> None:
    import mosaik_api_v3

    mosaik_api_v3.start_simulation(DyingEMS())


if __name__ == "__main__":
    main()
