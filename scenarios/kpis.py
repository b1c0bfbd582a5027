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
and EMS step (summing to 0 over the parties); it is added to each party's bill and taken out of the
operator's. A nested MG (one with a parent) pays for the flow at its PCC at its trading prices, to its
parent; its parent's PCC flow includes it, so the parent pays for it at its own prices (telescoping to
the tariff at the outermost PCC). Payments between parties cancel, so ``sum(cost_by_mg) == total_cost``.
A step whose power flow failed has NaN measurements; it counts in ``pf_failures`` and adds nothing to
energies and costs measured by the grid.

Steps: energies and costs integrate over the recorded (physics) step ``scenario.step_s``, at the price of
the tariff period each step lies in. The EMS steps every ``ems.step_s`` (a multiple); its outputs hold over
the physics steps inside, so what it outputs once per EMS step (solve times, fallbacks, settlements) is
counted once per EMS step. ``exchange_deviation_mwh`` is the energy by which each party's measured PCC
exchange left its planned import, physics step by physics step; ``exchange_intra_step_deviation_mwh`` the
part of the exchange's variation inside each EMS step (its distance from its own mean over the EMS step),
which an EMS stepping at its own rate cannot see and which is 0 when the physics steps with the EMS.

Physical limits: an MG's PCC limit ``pcc_max_mw`` applies to the measured flow at its PCC in either
direction; a step whose ``|flow|`` exceeds it by more than ``PCC_TOL_MW`` counts in ``pcc_excess_steps``,
with the worst excess ``pcc_excess_max_mw`` and the energy over the limit ``pcc_excess_mwh`` (per MG in
``parties``, summed or maxed over the MGs at the top level).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ems_controllers.core.contract import StrategyError
from ems_controllers.core.entities import DN, EntityMap, PartyEntities
from ems_controllers.core.types import DieselUnit
from ems_controllers.registry import get_strategy
from scenarios.config import Config, MgCfg, PricesCfg, UnitsCfg
from sims.record_reader import read_attrs, read_pareto, read_series

log = logging.getLogger(__name__)

PCC_TOL_MW = 1e-6
"""A PCC flow counts as over its limit when it exceeds it by more than this (power-flow round-off)."""


def _nz(a: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(a, dtype=float), nan=0.0)


class RunFile:
    """A finished run's record, read once; what a strategy's KPI hook sees of it (``RunRecord``)."""

    def __init__(self, path: Path) -> None:
        self.attrs = read_attrs(path)
        self.series = read_series(path)
        self.pareto = read_pareto(path)
        self.cfg = Config.model_validate(self.attrs["config"])
        self.entities = EntityMap.from_dict(self.attrs["entity_map"])
        self.dt_h = float(self.attrs.get("step_s", self.cfg.scenario.step_s)) / 3600.0
        grid_conv = self.series.get((self.entities.grid, "pf_converged"))
        self.n = len(grid_conv) if grid_conv is not None else 0
        if "n_steps_completed" in self.attrs:
            self.n = min(self.n, int(self.attrs["n_steps_completed"]))
        self.step_s = round(self.dt_h * 3600)
        self.buy, self.sell = self._per_run_step(self.cfg.tariff)
        self.per_ems_step = max(self.cfg.ems_step_s // self.step_s, 1)
        """Recorded steps per EMS step: an EMS output holds (is recorded again) over the physics steps inside."""

    def at_ems_steps(self, a: np.ndarray) -> np.ndarray:
        """The rows of ``a`` (one per recorded step) at which the EMS stepped."""
        return a[:: self.per_ems_step]

    def intra_ems_step(self, a: np.ndarray) -> np.ndarray:
        """``a`` less its mean over each EMS step (0 when the physics steps with the EMS): what an EMS that
        sees one value per step does not see."""
        k = self.per_ems_step
        if k == 1 or not len(a):
            return np.zeros(len(a))
        full = -(-len(a) // k) * k
        blocks = np.concatenate([a, np.full(full - len(a), np.nan)]).reshape(-1, k)
        with np.errstate(invalid="ignore"):
            means = np.nanmean(blocks, axis=1, keepdims=True)
        return (blocks - means).ravel()[: len(a)]

    def s(self, fid: str, attr: str) -> np.ndarray:
        a = self.get(fid, attr)
        if a is None:
            return np.full(self.n, np.nan)
        a = np.asarray(a, dtype=float)[: self.n]
        if len(a) < self.n:
            a = np.concatenate([a, np.full(self.n - len(a), np.nan)])
        return a

    def get(self, fid: str, attr: str) -> np.ndarray | None:
        a = self.series.get((fid, attr))
        if a is None:
            a = self.pareto.get((fid, attr))
        return None if a is None else np.asarray(a)

    def grid_series(self, model: str, attr: str) -> tuple[list[int], np.ndarray]:
        prefix = f"{self.entities.grid_sim}.{model}-"
        idx = sorted(int(fid.rsplit("-", 1)[1]) for (fid, a) in self.series if a == attr and fid.startswith(prefix))
        cols = [self.s(f"{prefix}{i}", attr) for i in idx]
        return idx, np.column_stack(cols) if cols else np.zeros((self.n, 0))

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
        return None if trade is None else self._per_run_step(trade)

    def _per_run_step(self, prices: PricesCfg) -> tuple[np.ndarray, np.ndarray]:
        """(buy, sell) at each recorded step: the price of the period the step lies in."""
        buy, sell = prices.at_step(self.step_s)
        idx = np.arange(self.n) % len(buy)
        return np.asarray(buy, dtype=float)[idx], np.asarray(sell, dtype=float)[idx]


def diesel_cost(unit: DieselUnit, p_mw: np.ndarray, dt_h: float) -> tuple[float, int]:
    """Running plus start-up cost of a measured diesel output series, and the number of starts."""
    p = _nz(p_mw)
    running = float(sum(unit.cost_per_h(x) for x in p) * dt_h)
    on = p > 1e-9
    starts = int(np.sum(on & ~np.concatenate([[False], on[:-1]])))
    return running + starts * unit.startup_cost, starts


@dataclass
class _Account:
    """One party's share of a run: its bill and its details (``parties`` entry of the KPIs)."""

    cost: float = 0.0  # its bill (units, penalties, stored-energy value, exchange at its PCC)
    unit_cost: float = 0.0  # units' costs, penalties and stored-energy value only
    detail: dict[str, float] = field(default_factory=dict)
    shed_mw: np.ndarray | None = None
    stored_change_mwh: float = 0.0
    pcc_payment: float | None = None  # what it pays for its PCC exchange (to its parent or the operator)


def _shed_mw(r: RunFile, loads: list[str]) -> np.ndarray:
    """What the grid shed of these loads per step. Loads the record does not hold (the network operator's
    feeder loads under ``run.record = "parties"``; no other party's loads go unrecorded) shed what the
    Grid's total shed leaves after every recorded load's."""
    recorded = [fid for fid in loads if (fid, "shed_mw") in r.series]
    shed = sum((_nz(r.s(fid, "shed_mw")) for fid in recorded), np.zeros(r.n))
    if len(recorded) == len(loads):
        return shed
    every = [fid for pm in r.entities.parties.values() for fid in pm.load if (fid, "shed_mw") in r.series]
    rest = _nz(r.s(r.entities.grid, "shed_mw")) - sum((_nz(r.s(f, "shed_mw")) for f in every), np.zeros(r.n))
    return shed + np.maximum(rest, 0.0)


def _units_cost(r: RunFile, pm: PartyEntities, units: UnitsCfg | None, energy_price: float, a: _Account) -> None:
    """Diesel, curtailment, shed load and the change in stored energy of one party."""
    pen, dt, d = r.cfg.penalties, r.dt_h, a.detail
    if pm.diesel and units is not None and units.generator is not None:
        unit = DieselUnit(**units.generator.model_dump(exclude_none=True))
        p = r.s(pm.diesel, "p_mw")
        c, starts = diesel_cost(unit, p, dt)
        d.update(diesel_cost=c, diesel_starts=starts, diesel_mwh=float(np.sum(_nz(p)) * dt))
        a.cost += c
    curtailed = sum((_nz(r.s(fid, "curtailed_mw")) for fid in pm.pv + pm.wind), np.zeros(r.n))
    d["res_curtailed_mwh"] = float(np.sum(curtailed) * dt)
    d["curtailment_cost"] = d["res_curtailed_mwh"] * pen.res_curtailment_price_per_mwh
    a.cost += d["curtailment_cost"]
    a.shed_mw = _shed_mw(r, pm.load)
    d["shed_mwh"] = float(np.sum(a.shed_mw) * dt)
    d["shed_cost"] = d["shed_mwh"] * pen.load_shed_price_per_mwh
    a.cost += d["shed_cost"]
    if pm.storage and units is not None and units.battery is not None:
        a.stored_change_mwh = _stored_energy_change(r.s(pm.storage, "soc_mwh"), units.battery.e_init_mwh)
        d["stored_energy_change_mwh"] = a.stored_change_mwh
        d["stored_energy_value"] = a.stored_change_mwh * energy_price
        a.cost -= d["stored_energy_value"]
    a.unit_cost = a.cost


def _pcc_account(r: RunFile, pm: PartyEntities, units: UnitsCfg | None, a: _Account) -> None:
    """An MG's exchange at its PCC: what it pays, how far it kept to its plan and its PCC limit."""
    if not pm.pcc_line:
        return
    imp = -r.s(pm.pcc_line, "p_to_mw")  # flow out of the line's MG-side end = into the MG
    a.pcc_payment = float(np.sum(r.exchange_cost(imp, r.trade_prices(units))))
    a.detail.update(
        exchange_cost=a.pcc_payment,
        import_mwh=float(np.sum(np.maximum(_nz(imp), 0)) * r.dt_h),
        export_mwh=float(np.sum(np.maximum(-_nz(imp), 0)) * r.dt_h),
    )
    a.cost += a.pcc_payment


def _party_account(r: RunFile, name: str, pm: PartyEntities, energy_price: float) -> _Account:
    cfg = r.cfg
    units: UnitsCfg | None = cfg.dn if name == DN else next(m for m in cfg.mgs if m.name == name)
    a = _Account()
    _units_cost(r, pm, units, energy_price, a)
    _pcc_account(r, pm, units, a)
    d = a.detail
    if pm.storage:
        soc = r.s(pm.storage, "soc_mwh")
        d["soc_final_mwh"] = float(soc[-1]) if r.n else float("nan")
        planned = r.s(pm.ems, "planned_soc_mwh")
        if np.isfinite(planned).any():
            d["soc_drift_mwh_max"] = float(np.nanmax(np.abs(planned - soc)))
    if not r.entities.ext_grid:
        d.update(_forming_deviation(r, pm, units))
    if pm.pcc_line and isinstance(units, MgCfg):
        d.update(_pcc_excess(r, -r.s(pm.pcc_line, "p_to_mw"), units.pcc_max_mw))
    if pm.pcc_line:
        planned_imp = r.s(pm.ems, "planned_import_mw")
        if np.isfinite(planned_imp).any():
            actual = -r.s(pm.pcc_line, "p_to_mw")
            d["exchange_deviation_mwh"] = float(np.nansum(np.abs(actual - planned_imp)) * r.dt_h)
            d["exchange_intra_step_deviation_mwh"] = float(np.nansum(np.abs(r.intra_ems_step(actual))) * r.dt_h)
    status = r.text(pm.ems, "ems_status")
    d["ems_fallback_steps"] = sum(1 for x in status[:: r.per_ems_step] if x.startswith("fallback"))
    return a


def _forming_deviation(r: RunFile, pm: PartyEntities, units: UnitsCfg | None) -> dict[str, float]:
    """Islanded runs: how far a party's grid-forming unit (its battery if that is grid-forming, else its
    diesel) left its setpoint - the island's slack takes what the plans left unbalanced, losses included."""
    if units is None:
        return {}
    if pm.storage and units.battery is not None and units.battery.grid_forming:
        dev = np.abs(r.s(pm.storage, "p_mw") - r.s(pm.ems, "battery_p_mw"))
    elif pm.diesel:
        dev = np.abs(r.s(pm.diesel, "p_mw") - r.s(pm.ems, "diesel_p_mw"))
    else:
        return {}
    return {
        "grid_forming_deviation_mwh": float(np.nansum(dev) * r.dt_h),
        "grid_forming_deviation_max_mw": _nanstat(np.nanmax, dev),
    }


@dataclass
class _Bills:
    cost_by_mg: dict[str, float]
    per_party: dict[str, dict[str, float]]
    ext_mw: np.ndarray
    unsupplied_mw: np.ndarray
    ext_cost: float
    unserved_cost: float


def _bills(r: RunFile, accounts: dict[str, _Account]) -> _Bills:
    """Each party's bill: its own account, what its nested MGs paid it, the strategy's settlements between
    parties, and the operator's (or the network's) balance at the substation; they sum to the total."""
    cost_by_mg = {n: a.cost for n, a in accounts.items()}
    per_party = {n: a.detail for n, a in accounts.items()}
    parents = {n: r.entities.parties[n].parent for n in accounts}
    mg_payments = 0.0
    received: dict[str, float] = {}  # parent -> what its nested MGs paid it
    for name, a in accounts.items():
        parent = parents[name]
        if a.pcc_payment is not None and parent:  # a nested MG pays its parent at the trading prices
            received[parent] = received.get(parent, 0.0) + a.pcc_payment
        elif a.pcc_payment is not None:
            mg_payments += a.pcc_payment
    for parent, amount in received.items():
        cost_by_mg[parent] -= amount
        per_party[parent]["received_from_nested"] = amount
    # Strategy settlements between parties (e.g. internal trades at internal prices): they sum to 0.
    settled = 0.0
    for name, pm in r.entities.parties.items():
        settle = r.at_ems_steps(r.s(pm.ems, "settlement_cost"))  # a cost per EMS step
        if np.isfinite(settle).any():
            per_party[name]["settlement_cost"] = float(np.nansum(settle))
            cost_by_mg[name] += per_party[name]["settlement_cost"]
            settled += per_party[name]["settlement_cost"]
    ext = sum((_nz(r.s(fid, "p_mw")) for fid in r.entities.ext_grid), np.zeros(r.n))
    unsupplied = _nz(r.s(r.entities.grid, "unsupplied_mw"))
    unserved_cost = float(np.sum(unsupplied) * r.dt_h * r.cfg.penalties.load_shed_price_per_mwh)
    ext_cost = float(np.sum(r.exchange_cost(ext)))
    operator = DN if DN in cost_by_mg else "network"
    if operator == "network":  # no operator party: the feeder's own balance (losses, netted trades)
        cost_by_mg[operator] = 0.0
        per_party[operator] = {}
    cost_by_mg[operator] += ext_cost - mg_payments + unserved_cost - settled
    per_party[operator]["exchange_cost"] = ext_cost
    per_party[operator]["mg_payments_received"] = mg_payments
    per_party[operator]["unserved_cost"] = unserved_cost  # load on islands without supply
    per_party[operator]["unsupplied_mwh"] = float(np.sum(unsupplied) * r.dt_h)
    return _Bills(cost_by_mg, per_party, ext, unsupplied, ext_cost, unserved_cost)


def _nanstat(fn: Any, a: np.ndarray) -> float:
    return float(fn(a)) if np.isfinite(a).any() else float("nan")


def _grid_kpis(r: RunFile) -> dict[str, Any]:
    """Voltages, loading, losses and power-flow failures, as the grid measured them."""
    g = r.entities.grid
    conv = r.s(g, "pf_converged")
    vmin, vmax, load = r.s(g, "min_vm_pu"), r.s(g, "max_vm_pu"), r.s(g, "max_loading_percent")
    return {
        "n_voltage_violations": int(np.nansum(r.s(g, "n_voltage_violations"))),
        "min_vm_pu": _nanstat(np.nanmin, vmin),
        "max_vm_pu": _nanstat(np.nanmax, vmax),
        "n_line_overloads": int(np.nansum(r.s(g, "n_overloads"))),
        "max_loading_percent": _nanstat(np.nanmax, load),
        "losses_mwh": float(np.nansum(r.s(g, "losses_mw")) * r.dt_h),
        "pf_failures": int(np.sum(conv == 0) + np.sum(np.isnan(conv))),
    }


def _ems_kpis(r: RunFile, per_party: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Solve times, fallbacks and how far the measured state left the plans."""
    # Solve time: parties of one planning round solve in parallel (each MG its own computer), so a
    # round costs the slowest party's time; a central solve reports the same time on every entity.
    solve = np.vstack([_nz(r.at_ems_steps(r.s(pm.ems, "solve_time_s"))) for pm in r.entities.parties.values()])
    solve_per_step = solve.max(axis=0) if solve.size else np.zeros(r.n)
    return {
        "solve_time_s": float(np.sum(solve_per_step)),
        "solve_time_max_s": float(np.max(solve_per_step)) if r.n else 0.0,
        "ems_fallback_steps": int(sum(p.get("ems_fallback_steps", 0) for p in per_party.values())),
        "soc_drift_mwh_max": max(
            (p["soc_drift_mwh_max"] for p in per_party.values() if "soc_drift_mwh_max" in p), default=float("nan")
        ),
        "exchange_deviation_mwh": float(sum(p.get("exchange_deviation_mwh", 0.0) for p in per_party.values())),
        "exchange_intra_step_deviation_mwh": float(
            sum(p.get("exchange_intra_step_deviation_mwh", 0.0) for p in per_party.values())
        ),
        **_grid_forming(per_party),
    }


def _grid_forming(per_party: dict[str, dict[str, float]]) -> dict[str, float]:
    """Islanded runs: how far the grid-forming batteries' output left their setpoints (losses, forecast
    errors and plans that do not balance all land there)."""
    devs = [p["grid_forming_deviation_mwh"] for p in per_party.values() if "grid_forming_deviation_mwh" in p]
    if not devs:
        return {}
    peak = [p["grid_forming_deviation_max_mw"] for p in per_party.values() if "grid_forming_deviation_max_mw" in p]
    return {"grid_forming_deviation_mwh": float(sum(devs)), "grid_forming_deviation_max_mw": max(peak)}


def _strategy_kpis(r: RunFile, per_party: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The KPIs the run's strategy computes of its own outputs (its contract's ``kpis`` hook)."""
    name = str(r.attrs.get("strategy", ""))
    try:
        hook = get_strategy(name).kpi_hook()
    except (StrategyError, ImportError, AttributeError) as exc:
        log.warning("KPIs of strategy %r's own outputs left out: %s", name, exc)
        return {}
    if hook is None:
        return {}
    extra = hook(r)
    for party, values in extra.by_party.items():
        per_party.setdefault(party, {}).update(values)
    return {**extra.top, "strategy_kpis": sorted(extra.top)}


def compute_kpis(path: str | Path) -> dict[str, Any]:
    r = RunFile(Path(path))
    energy_price = stored_energy_price(r)
    accounts = {name: _party_account(r, name, pm, energy_price) for name, pm in r.entities.parties.items()}
    b = _bills(r, accounts)
    dt = r.dt_h
    shed_total = sum((a.shed_mw for a in accounts.values() if a.shed_mw is not None), np.zeros(r.n))
    stored_change_total = float(sum(a.stored_change_mwh for a in accounts.values()))
    total = sum(a.unit_cost for a in accounts.values()) + b.ext_cost + b.unserved_cost
    extra = _strategy_kpis(r, b.per_party)
    extra["internal_trade_mwh"] = _internal_trade_mwh(r)
    return {
        "scenario": r.attrs.get("scenario"),
        "strategy": r.attrs.get("strategy"),
        "n_steps": r.n,
        "step_s": r.cfg.scenario.step_s,
        "total_cost": total,
        "cost_by_mg": b.cost_by_mg,
        "energy_bought_mwh": float(np.sum(np.maximum(b.ext_mw, 0)) * dt),
        "energy_sold_mwh": float(np.sum(np.maximum(-b.ext_mw, 0)) * dt),
        "unserved_mwh": float(np.sum(b.unsupplied_mw + shed_total) * dt),
        "shed_mwh": float(np.sum(shed_total) * dt),
        "stored_energy_change_mwh": stored_change_total,
        "stored_energy_value": stored_change_total * energy_price,
        "stored_energy_price_per_mwh": energy_price,
        **_pcc_excess_total(b.per_party),
        **_grid_kpis(r),
        **_ems_kpis(r, b.per_party),
        "wall_time_s": float(r.attrs.get("wall_time_s", float("nan"))),
        "parties": b.per_party,
        **extra,
    }


def stored_energy_price(r: RunFile) -> float:
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


def _pcc_excess(r: RunFile, flow_mw: np.ndarray, limit_mw: float) -> dict[str, float]:
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


def _internal_trade_mwh(r: RunFile) -> float:
    """Energy exchanged between microgrids through the network, as measured: per step the smaller of
    what the MGs exported and what they imported (each MG's own exchange: the flow at its PCC less what
    its nested MGs exchange through it)."""
    parties = {n: pm for n, pm in r.entities.parties.items() if pm.pcc_line}
    flow = {n: _nz(-r.s(pm.pcc_line, "p_to_mw")) for n, pm in parties.items() if pm.pcc_line}
    own = {n: f.copy() for n, f in flow.items()}
    for n, pm in parties.items():
        if pm.parent in own:
            own[pm.parent] -= flow[n]
    if not own:
        return 0.0
    imports = sum((np.maximum(v, 0.0) for v in own.values()), np.zeros(r.n))
    exports = sum((np.maximum(-v, 0.0) for v in own.values()), np.zeros(r.n))
    return float(np.sum(np.minimum(imports, exports)) * r.dt_h)
