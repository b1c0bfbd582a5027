"""KPIs of the security-constrained EMS's own outputs: the time each step of its hierarchy took, the MGs'
shares of the aggregation saving (case 3), and its LinDistFlow prediction set against the AC power flow
(worst voltage and line-loading error, and where the voltage error was)."""

from __future__ import annotations

import numpy as np

from ems_controllers.core.contract import RunRecord, StrategyKpis

STEP_ATTRS = ("step1_s", "step2_s", "step3_s", "split_s")


def _step_times(r: RunRecord, dn_ems: str, out: StrategyKpis) -> None:
    steps = {k: r.s(dn_ems, k) for k in STEP_ATTRS}
    if any(np.isfinite(v).any() for v in steps.values()):
        out.top["solve_time_by_step_s"] = {k: float(np.nansum(v)) for k, v in steps.items()}
        out.top["solve_time_by_step_max_s"] = {
            k: float(np.nanmax(v)) if np.isfinite(v).any() else 0.0 for k, v in steps.items()
        }


def _saving_shares(r: RunRecord, out: StrategyKpis) -> None:
    shares = {name: r.s(pm.ems, "saving_share") for name, pm in r.entities.mgs().items()}
    if any(np.isfinite(v).any() for v in shares.values()):
        out.top["aggregation_saving_share"] = {n: float(np.nansum(v)) for n, v in shares.items()}
        for n, v in out.top["aggregation_saving_share"].items():
            out.by_party[n] = {"aggregation_saving_share": v}


def _prediction_errors(r: RunRecord, dn_ems: str, out: StrategyKpis) -> None:
    pred_vm = r.get(dn_ems, "predicted_vm_pu")
    if pred_vm is None or pred_vm.ndim != 2:
        return
    buses, ac_vm = r.grid_series("Bus", "vm_pu")
    if len(buses) == pred_vm.shape[1]:
        err = pred_vm[: r.n].astype(float) - ac_vm
        if np.isfinite(err).any():
            i = np.nanargmax(np.abs(err))
            out.top["linearisation_vm_error_max_pu"] = float(np.abs(err).flat[i])
            out.top["linearisation_vm_error_where"] = {"step": int(i // err.shape[1]), "bus": buses[i % err.shape[1]]}
    pred_ld = r.get(dn_ems, "predicted_loading_percent")
    lines, ac_ld = r.grid_series("Line", "loading_percent")
    if pred_ld is not None and len(lines) == pred_ld.shape[1]:
        err = pred_ld[: r.n].astype(float) - ac_ld
        if np.isfinite(err).any():
            out.top["linearisation_loading_error_max_percent"] = float(np.nanmax(np.abs(err)))


def kpis(r: RunRecord) -> StrategyKpis:
    out = StrategyKpis()
    dn = r.entities.operator
    if dn is None:
        return out
    _step_times(r, dn.ems, out)
    _saving_shares(r, out)
    _prediction_errors(r, dn.ems, out)
    return out
