"""Electric-vehicle charging as a load: the plug-in window and the charging without coordination.

Shared by the config (:class:`scenarios.config.EvCfg`, which checks the numbers) and the strategies that
move the charging (``clustered``): pure functions of the hours of the day, no solver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EvSpec:
    """Chargers of ``p_max_mw`` together that deliver ``e_mwh_per_day`` between ``arrive_h`` and
    ``depart_h`` (hours of the day; the window may wrap past midnight)."""

    p_max_mw: float
    e_mwh_per_day: float
    arrive_h: int
    depart_h: int

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvSpec:
        return cls(float(d["p_max_mw"]), float(d["e_mwh_per_day"]), int(d["arrive_h"]), int(d["depart_h"]))

    def window(self) -> list[int]:
        """The hours the EVs are plugged in, from arrival (inclusive) to departure (exclusive)."""
        n = (self.depart_h - self.arrive_h) % 24
        return [(self.arrive_h + i) % 24 for i in range(n)]

    def uncontrolled_mw(self) -> list[float]:
        """Charging power per hour of the day without coordination: full power from arrival on."""
        out, left = [0.0] * 24, self.e_mwh_per_day
        for h in self.window():
            out[h] = min(self.p_max_mw, left)
            left -= out[h]
        return out
