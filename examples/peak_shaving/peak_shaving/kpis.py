"""KPIs of the peak-shaving strategy, computed from the run's record next to the KPIs every run gets:
each MG's measured peak import at its PCC (0 if it never imported) and the energy its plan left above the
threshold."""

from __future__ import annotations

import numpy as np

from ems_controllers.core.contract import RunRecord, StrategyKpis


def kpis(r: RunRecord) -> StrategyKpis:
    out = StrategyKpis()
    peaks: dict[str, float] = {}
    for name, pm in r.entities.mgs().items():
        if pm.pcc_line is None:
            continue
        import_mw = -r.s(pm.pcc_line, "p_to_mw")  # the flow out of the line's MG-side end, into the MG
        peaks[name] = float(max(np.nanmax(import_mw), 0.0)) if np.isfinite(import_mw).any() else float("nan")
        excess_mwh = float(np.nansum(r.s(pm.ems, "peak_excess_mw")) * r.dt_h)
        out.by_party[name] = {"peak_import_mw": peaks[name], "planned_peak_excess_mwh": excess_mwh}
    out.top["peak_import_by_mg_mw"] = peaks
    return out
