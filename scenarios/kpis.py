"""KPIs of a run, computed from what happened (the HDF5 ``Series/``), the same way for every strategy.

Cost definitions (docs/architecture.md): ``total_cost`` is the system's cost: diesel running (exact quadratic on the
measured output) and start-up costs, renewable curtailment and unserved-load penalties, and the tariff on
the energy exchanged at the substation (external grid), less the value of the energy the batteries gained
over the run (``stored_energy_value`` = ``stored_energy_change_mwh`` x ``stored_energy_price_per_mwh``;
the change is the measured ``soc_mwh`` at the end of the last step less the config's ``e_init_mwh``, summed
over the batteries; the price is ``penalties.stored_energy_price_per_mwh``, by default the tariff's mean
buy price over the run's steps), so a strategy that ends the run with emptier batteries pays for the
energy it took out. Unserved load is what the grid did not serve: the load its EMS shed (the grid's
``shed_mw``), penalised in the bill of the party whose load it is, and load on islands without supply
(``unsupplied_mw``), penalised in the operator's. ``cost_by_mg`` is each party's own bill: its units'
costs and penalties, less the value of its batteries' change in stored energy, plus what it pays for its
exchange at its point of common coupling (PCC) at the tariff;
the network operator ``DN`` pays for the substation exchange, receives the MGs' payments and carries the
unsupplied-load penalty; where a scenario has no operator party (a community behind the utility's meter)
that balance is reported as ``network`` (losses and the spread on trades netted inside the feeder). A
strategy that settles trades between parties at its own prices outputs ``settlement_cost`` per party
and step (summing to 0 over the parties); it is added to each party's bill and taken out of the
operator's. A nested MG (one with a parent) pays for the flow at its PCC at its trading prices, to its
parent; its parent's PCC flow includes it, so the parent pays for it at its own prices (telescoping to
the tariff at the outermost PCC). Payments between parties cancel, so ``sum(cost_by_mg) == total_cost``.
A step whose power flow failed has NaN measurements; it counts in ``pf_failures`` and adds nothing to
energies and costs measured by the grid.

Physical limits: an MG's PCC limit ``pcc_max_mw`` applies to the measured flow at its PCC in either
direction; a step whose ``|flow|`` exceeds it by more than ``PCC_TOL_MW`` counts in ``pcc_excess_steps``,
with the worst excess ``pcc_excess_max_mw`` and the energy over the limit ``pcc_excess_mwh`` (per MG in
``parties``, summed or maxed over the MGs at the top level).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ems_controllers.core.types import DieselUnit
from scenarios.config import Config, MgCfg
from sims.recorder import read_attrs, read_series

PCC_TOL_MW = 1e-6
"""A PCC flow counts as over its limit when it exceeds it by more than this (power-flow round-off)."""


def _nz(a: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(a, dtype=float), nan=0.0)


class _Run:
    def __init__(self, path: Path) -> None:
        self.attrs = read_attrs(path)
        self.series = read_series(path)
        self.cfg = Config.model_validate(self.attrs["config"])
        self.emap: dict[str, Any] = self.attrs["entity_map"]
        self.dt_h = float(self.attrs.get("step_s", self.cfg.scenario.step_s)) / 3600.0
        grid_conv = self.series.get((self.emap["grid"], "pf_converged"))
        self.n = len(grid_conv) if grid_conv is not None else 0
        if "n_steps_completed" in self.attrs:
            self.n = min(self.n, int(self.attrs["n_steps_completed"]))
        spd = len(self.cfg.tariff.buy_price_per_mwh)
        idx = np.arange(self.n) % spd
        self.buy = np.asarray(self.cfg.tariff.buy_price_per_mwh, dtype=float)[idx]
        self.sell = np.asarray(self.cfg.tariff.sell_price_per_mwh, dtype=float)[idx]

    def s(self, fid: str, attr: str) -> np.ndarray:
        a = self.series.get((fid, attr))
        if a is None:
            return np.full(self.n, np.nan)
        a = np.asarray(a, dtype=float)[: self.n]
        if len(a) < self.n:
            a = np.concatenate([a, np.full(self.n - len(a), np.nan)])
        return a

    def text(self, fid: str, attr: str) -> list[str]:
        a = self.series.get((fid, attr))
        return [] if a is None else [str(x) for x in a[: self.n]]

    def exchange_cost(self, import_mw: np.ndarray, prices: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        imp = _nz(import_mw)
        buy, sell = prices if prices is not None else (self.buy, self.sell)
        return (buy * np.maximum(imp, 0.0) - sell * np.maximum(-imp, 0.0)) * self.dt_h

    def trade_prices(self, mg: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """A nested MG's prices with its parent per step (None: the tariff)."""
        trade = getattr(mg, "trade", None)
        if trade is None:
            return None
        spd = len(trade.buy_price_per_mwh)
        idx = np.arange(self.n) % spd
        return (
            np.asarray(trade.buy_price_per_mwh, dtype=float)[idx],
            np.asarray(trade.sell_price_per_mwh, dtype=float)[idx],
        )


def diesel_cost(unit: DieselUnit, p_mw: np.ndarray, dt_h: float) -> tuple[float, int]:
    """Running plus start-up cost of a measured diesel output series, and the number of starts."""
    p = _nz(p_mw)
    running = float(sum(unit.cost_per_h(x) for x in p) * dt_h)
    on = p > 1e-9
    starts = int(np.sum(on & ~np.concatenate([[False], on[:-1]])))
    return running + starts * unit.startup_cost, starts


def compute_kpis(path: str | Path) -> dict[str, Any]:
    r = _Run(Path(path))
    cfg, emap, dt = r.cfg, r.emap, r.dt_h
    pen = cfg.penalties
    ext = sum((_nz(r.s(fid, "p_mw")) for fid in emap["ext_grid"]), np.zeros(r.n))
    energy_price = stored_energy_price(r)
    cost_by_mg: dict[str, float] = {}
    per_party: dict[str, dict[str, float]] = {}
    mg_payments = 0.0
    unit_costs_total = 0.0  # units' costs, penalties and stored-energy value of every party
    shed_total = np.zeros(r.n)
    stored_change_total = 0.0
    received: dict[str, float] = {}  # parent -> what its nested MGs paid it
    for name, pm in emap["parties"].items():
        units = cfg.dn if name == "DN" else next(m for m in cfg.mgs if m.name == name)
        detail: dict[str, float] = {}
        cost = 0.0
        if pm.get("diesel") and units is not None and units.generator is not None:
            unit = DieselUnit(**units.generator.model_dump(exclude_none=True))
            p = r.s(pm["diesel"], "p_mw")
            c, starts = diesel_cost(unit, p, dt)
            detail.update(diesel_cost=c, diesel_starts=starts, diesel_mwh=float(np.sum(_nz(p)) * dt))
            cost += c
        curtailed = sum((_nz(r.s(fid, "curtailed_mw")) for fid in pm["pv"] + pm["wind"]), np.zeros(r.n))
        detail["res_curtailed_mwh"] = float(np.sum(curtailed) * dt)
        c_curt = detail["res_curtailed_mwh"] * pen.res_curtailment_price_per_mwh
        detail["curtailment_cost"] = c_curt
        cost += c_curt
        shed = sum((_nz(r.s(fid, "shed_mw")) for fid in pm["load"]), np.zeros(r.n))
        detail["shed_mwh"] = float(np.sum(shed) * dt)
        detail["shed_cost"] = detail["shed_mwh"] * pen.load_shed_price_per_mwh
        cost += detail["shed_cost"]
        shed_total += shed
        if pm.get("storage") and units is not None and units.battery is not None:
            change = _stored_energy_change(r.s(pm["storage"], "soc_mwh"), units.battery.e_init_mwh)
            detail["stored_energy_change_mwh"] = change
            detail["stored_energy_value"] = change * energy_price
            cost -= detail["stored_energy_value"]
            stored_change_total += change
        unit_costs_total += cost
        if pm.get("pcc_line"):
            imp = -r.s(pm["pcc_line"], "p_to_mw")  # flow out of the line's MG-side end = into the MG
            pay = float(np.sum(r.exchange_cost(imp, r.trade_prices(units))))
            detail.update(
                exchange_cost=pay,
                import_mwh=float(np.sum(np.maximum(_nz(imp), 0)) * dt),
                export_mwh=float(np.sum(np.maximum(-_nz(imp), 0)) * dt),
            )
            cost += pay
            parent = pm.get("parent")
            if parent:  # a nested MG pays its parent at the trading prices
                received[parent] = received.get(parent, 0.0) + pay
            else:
                mg_payments += pay
        if pm.get("storage"):
            soc = r.s(pm["storage"], "soc_mwh")
            detail["soc_final_mwh"] = float(soc[-1]) if r.n else float("nan")
            planned = r.s(pm["ems"], "planned_soc_mwh")
            if np.isfinite(planned).any():
                detail["soc_drift_mwh_max"] = float(np.nanmax(np.abs(planned - soc)))
        if pm.get("pcc_line") and isinstance(units, MgCfg):
            detail.update(_pcc_excess(r, -r.s(pm["pcc_line"], "p_to_mw"), units.pcc_max_mw))
        if pm.get("pcc_line"):
            planned_imp = r.s(pm["ems"], "planned_import_mw")
            if np.isfinite(planned_imp).any():
                dev = np.abs(-r.s(pm["pcc_line"], "p_to_mw") - planned_imp)
                detail["exchange_deviation_mwh"] = float(np.nansum(dev) * dt)
        status = r.text(pm["ems"], "ems_status")
        detail["ems_fallback_steps"] = sum(1 for x in status if x.startswith("fallback"))
        per_party[name] = detail
        cost_by_mg[name] = cost
    unsupplied = _nz(r.s(emap["grid"], "unsupplied_mw"))
    unserved_cost = float(np.sum(unsupplied) * dt * pen.load_shed_price_per_mwh)
    ext_cost = float(np.sum(r.exchange_cost(ext)))
    for parent, amount in received.items():
        cost_by_mg[parent] -= amount
        per_party[parent]["received_from_nested"] = amount
    # Strategy settlements between parties (e.g. internal trades at internal prices): they sum to 0.
    settled = 0.0
    for name, pm in emap["parties"].items():
        settle = r.s(pm["ems"], "settlement_cost")
        if np.isfinite(settle).any():
            per_party[name]["settlement_cost"] = float(np.nansum(settle))
            cost_by_mg[name] += per_party[name]["settlement_cost"]
            settled += per_party[name]["settlement_cost"]
    operator = "DN" if "DN" in cost_by_mg else "network"
    if operator == "network":  # no operator party: the feeder's own balance (losses, netted trades)
        cost_by_mg[operator] = 0.0
        per_party[operator] = {}
    cost_by_mg[operator] += ext_cost - mg_payments + unserved_cost - settled
    per_party[operator]["exchange_cost"] = ext_cost
    per_party[operator]["mg_payments_received"] = mg_payments
    per_party[operator]["unserved_cost"] = unserved_cost  # load on islands without supply
    per_party[operator]["unsupplied_mwh"] = float(np.sum(unsupplied) * dt)
    total = unit_costs_total + ext_cost + unserved_cost
    g = emap["grid"]
    conv = r.s(g, "pf_converged")
    vmin, vmax, load = r.s(g, "min_vm_pu"), r.s(g, "max_vm_pu"), r.s(g, "max_loading_percent")

    def _nanstat(fn: Any, a: np.ndarray) -> float:
        return float(fn(a)) if np.isfinite(a).any() else float("nan")

    # Solve time: parties of one planning round solve in parallel (each MG its own computer), so a
    # round costs the slowest party's time; a central solve reports the same time on every entity.
    solve = np.vstack([_nz(r.s(pm["ems"], "solve_time_s")) for pm in emap["parties"].values()])
    solve_per_step = solve.max(axis=0) if solve.size else np.zeros(r.n)
    fallback_steps = sum(p.get("ems_fallback_steps", 0) for p in per_party.values())
    extra = _strategy_kpis(r, emap, per_party)
    extra["internal_trade_mwh"] = _internal_trade_mwh(r, emap)
    community = emap.get("community")
    if community:  # the cooperative EMS's own account of its internal trades (kWh per step)
        extra["internal_trade_by_kind_mwh"] = {
            kind: float(np.nansum(r.s(community, f"{kind}_internal_kwh"))) / 1000.0 for kind in ("main", "ancillary")
        }
    return {
        "scenario": r.attrs.get("scenario"),
        "strategy": r.attrs.get("strategy"),
        "n_steps": r.n,
        "step_s": cfg.scenario.step_s,
        "total_cost": total,
        "cost_by_mg": cost_by_mg,
        "energy_bought_mwh": float(np.sum(np.maximum(ext, 0)) * dt),
        "energy_sold_mwh": float(np.sum(np.maximum(-ext, 0)) * dt),
        "unserved_mwh": float(np.sum(unsupplied + shed_total) * dt),
        "shed_mwh": float(np.sum(shed_total) * dt),
        "stored_energy_change_mwh": stored_change_total,
        "stored_energy_value": stored_change_total * energy_price,
        "stored_energy_price_per_mwh": energy_price,
        **_pcc_excess_total(per_party),
        "n_voltage_violations": int(np.nansum(r.s(g, "n_voltage_violations"))),
        "min_vm_pu": _nanstat(np.nanmin, vmin),
        "max_vm_pu": _nanstat(np.nanmax, vmax),
        "n_line_overloads": int(np.nansum(r.s(g, "n_overloads"))),
        "max_loading_percent": _nanstat(np.nanmax, load),
        "losses_mwh": float(np.nansum(r.s(g, "losses_mw")) * dt),
        "pf_failures": int(np.sum(conv == 0) + np.sum(np.isnan(conv))),
        "solve_time_s": float(np.sum(solve_per_step)),
        "solve_time_max_s": float(np.max(solve_per_step)) if r.n else 0.0,
        "ems_fallback_steps": int(fallback_steps),
        "soc_drift_mwh_max": max(
            (p["soc_drift_mwh_max"] for p in per_party.values() if "soc_drift_mwh_max" in p), default=float("nan")
        ),
        "exchange_deviation_mwh": float(sum(p.get("exchange_deviation_mwh", 0.0) for p in per_party.values())),
        "wall_time_s": float(r.attrs.get("wall_time_s", float("nan"))),
        "parties": per_party,
        **extra,
    }


def stored_energy_price(r: _Run) -> float:
    """The price of stored energy: the config's, else the tariff's mean buy price over the run's steps."""
    price = r.cfg.penalties.stored_energy_price_per_mwh
    if price is not None:
        return float(price)
    buy = r.buy if r.n else np.asarray(r.cfg.tariff.buy_price_per_mwh, dtype=float)
    return float(np.mean(buy))


def _stored_energy_change(soc_mwh: np.ndarray, e_init_mwh: float) -> float:
    """Measured energy at the end of the run (the last finite ``soc_mwh``) less the initial energy."""
    finite = soc_mwh[np.isfinite(soc_mwh)]
    return float(finite[-1]) - e_init_mwh if len(finite) else 0.0


def _pcc_excess(r: _Run, flow_mw: np.ndarray, limit_mw: float) -> dict[str, float]:
    """Steps, worst excess and energy of a measured PCC flow over its limit (either direction)."""
    excess = np.maximum(np.abs(_nz(flow_mw)) - limit_mw, 0.0)
    over = excess > PCC_TOL_MW
    return {
        "pcc_excess_steps": int(np.sum(over)),
        "pcc_excess_max_mw": float(np.max(excess, initial=0.0)) if over.any() else 0.0,
        "pcc_excess_mwh": float(np.sum(excess[over]) * r.dt_h),
    }


def _pcc_excess_total(per_party: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The MGs' PCC excesses together (each MG's are in its ``parties`` entry)."""
    mgs = {n: d for n, d in per_party.items() if "pcc_excess_steps" in d}
    return {
        "pcc_excess_steps": int(sum(d["pcc_excess_steps"] for d in mgs.values())),
        "pcc_excess_max_mw": max((d["pcc_excess_max_mw"] for d in mgs.values()), default=0.0),
        "pcc_excess_mwh": float(sum(d["pcc_excess_mwh"] for d in mgs.values())),
    }


def _internal_trade_mwh(r: _Run, emap: dict[str, Any]) -> float:
    """Energy exchanged between microgrids through the network, as measured: per step the smaller of
    what the MGs exported and what they imported (each MG's own exchange: the flow at its PCC less what
    its nested MGs exchange through it)."""
    parties = {n: pm for n, pm in emap["parties"].items() if pm.get("pcc_line")}
    flow = {n: _nz(-r.s(pm["pcc_line"], "p_to_mw")) for n, pm in parties.items()}
    own = {n: f.copy() for n, f in flow.items()}
    for n, pm in parties.items():
        parent = pm.get("parent")
        if parent in own:
            own[parent] -= flow[n]
    if not own:
        return 0.0
    imports = sum((np.maximum(v, 0.0) for v in own.values()), np.zeros(r.n))
    exports = sum((np.maximum(-v, 0.0) for v in own.values()), np.zeros(r.n))
    return float(np.sum(np.minimum(imports, exports)) * r.dt_h)


def _strategy_kpis(r: _Run, emap: dict[str, Any], per_party: dict[str, dict[str, float]]) -> dict[str, Any]:
    """KPIs of outputs only some strategies have: the security-constrained EMS's step times,
    aggregation saving shares, and its LinDistFlow prediction set against the AC power flow."""
    out: dict[str, Any] = {}
    dn = emap["parties"].get("DN")
    if dn is None:
        return out
    steps = {k: r.s(dn["ems"], k) for k in ("step1_s", "step2_s", "step3_s", "split_s")}
    if any(np.isfinite(v).any() for v in steps.values()):
        out["solve_time_by_step_s"] = {k: float(np.nansum(v)) for k, v in steps.items()}
        out["solve_time_by_step_max_s"] = {
            k: float(np.nanmax(v)) if np.isfinite(v).any() else 0.0 for k, v in steps.items()
        }
    shares = {name: r.s(pm["ems"], "saving_share") for name, pm in emap["parties"].items() if name != "DN"}
    if any(np.isfinite(v).any() for v in shares.values()):
        out["aggregation_saving_share"] = {n: float(np.nansum(v)) for n, v in shares.items()}
        for n, v in out["aggregation_saving_share"].items():
            per_party[n]["aggregation_saving_share"] = v
    pred_vm = r.series.get((dn["ems"], "predicted_vm_pu"))
    if pred_vm is not None and pred_vm.ndim == 2:
        sid = emap["grid"].split(".", 1)[0]
        buses = sorted(
            int(fid.rsplit("-", 1)[1]) for (fid, a) in r.series if a == "vm_pu" and fid.startswith(sid + ".Bus-")
        )
        if len(buses) == pred_vm.shape[1]:
            ac = np.column_stack([r.s(f"{sid}.Bus-{b}", "vm_pu") for b in buses])
            err = pred_vm[: r.n] - ac
            if np.isfinite(err).any():
                i = np.nanargmax(np.abs(err))
                out["linearisation_vm_error_max_pu"] = float(np.abs(err).flat[i])
                out["linearisation_vm_error_where"] = {"step": int(i // err.shape[1]), "bus": buses[i % err.shape[1]]}
        pred_ld = r.series.get((dn["ems"], "predicted_loading_percent"))
        lines = sorted(
            int(fid.rsplit("-", 1)[1])
            for (fid, a) in r.series
            if a == "loading_percent" and fid.startswith(sid + ".Line-")
        )
        if pred_ld is not None and len(lines) == pred_ld.shape[1]:
            ac = np.column_stack([r.s(f"{sid}.Line-{li}", "loading_percent") for li in lines])
            err = pred_ld[: r.n] - ac
            if np.isfinite(err).any():
                out["linearisation_loading_error_max_percent"] = float(np.nanmax(np.abs(err)))
    return out
