"""KPIs of the cooperative EMS's own outputs: its account of the internal trades by kind (main and
ancillary trading, from the community entity's kWh per step)."""

from __future__ import annotations

import numpy as np

from ems_controllers.core.contract import RunRecord, StrategyKpis


def kpis(r: RunRecord) -> StrategyKpis:
    out = StrategyKpis()
    community = r.entities.system
    if community:
        out.top["internal_trade_by_kind_mwh"] = {
            kind: float(np.nansum(r.s(community, f"{kind}_internal_kwh"))) / 1000.0 for kind in ("main", "ancillary")
        }
    return out
