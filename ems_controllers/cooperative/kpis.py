"""KPIs of the cooperative EMS's own outputs: its account of the internal trades by kind (main and
ancillary trading, from the community entity's kWh per step) and, per MG, in how many EMS steps its report
revealed its CHP's room and cost (what step 2's mode asked of it beyond surplus and shortage)."""

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
    revealed = {name: r.at_ems_steps(r.s(pm.ems, "revealed_room")) for name, pm in r.entities.mgs().items()}
    if any(np.isfinite(v).any() for v in revealed.values()):
        out.top["room_reports_by_mg"] = {n: int(np.nansum(v)) for n, v in revealed.items()}
    return out
