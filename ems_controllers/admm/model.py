"""Strategy ``admm``: the math (no mosaik, no crypto). Spec: ``shared/specs/001-admm-paillier.md``.

N islanded, interconnected microgrids schedule themselves over a horizon of T steps of ``dt_h`` hours.
The only coupling is that the exchanges balance: sum_n P_exch[n,t] = 0 for every t (no losses modelled).

Local problem of MG n (the paper's symbols; sign: P_exch > 0 = MG n imports from the other MGs)::

    min  sum_t dt_h * [ a2*P_d[t]^2 + a1*P_d[t]                         (C_diesel, convex)
                        + a_b*(P_ch[t]^2 + P_dis[t]^2) + b_b*(P_ch[t] + P_dis[t])   (C_bess, battery life)
                        + c_curt*(P_pv^fc[t] - P_pv[t] + P_w^fc[t] - P_w[t])        (curtailment, optional)
                        + c_shed*P_shed[t] ]                                        (load shedding)
    s.t. P_d[t] + P_w[t] + P_pv[t] + P_dis[t] - P_ch[t] + P_shed[t] + P_exch[t] = P_load[t]   (balance)
         0 <= P_d[t] <= P_d^max;  0 <= P_ch[t] <= P_ch^max;  0 <= P_dis[t] <= P_dis^max
         0 <= P_pv[t] <= P_pv^fc[t];  0 <= P_w[t] <= P_w^fc[t]  (forecasts are upper bounds: curtailment)
         0 <= P_shed[t] <= P_load[t];  |P_exch[t]| <= P_exch^max
         E[t] = E[t-1] + (eta_ch*P_ch[t] - P_dis[t]/eta_dis)*dt_h,  E[-1] = E_0   (SoC across the horizon)
         E^min <= E[t] <= E^max;  E[T-1] >= E^final (when the battery has one)

This first version is a **continuous convex QP**: no binaries. The diesel has no on/off state: its output
ranges over [0, P_d^max] (``p_min_mw`` is ignored unless ``must_run``, then it is the lower bound), its
no-load cost a0 is counted only for a must-run unit (a constant), and start-up cost and ramps are not
modelled. Charge and discharge are not made exclusive (with a zero curtailment price and eta < 1 nothing
rewards doing both at once; the quadratic cost penalises it).

ADMM, exchange (sharing) form, scaled dual u (Boyd et al. 2011, section 7.3.2; the spec's form)::

    P_n^{k+1} = argmin_{P_n}  h_n(P_n) + rho/2 * || P_n - P_n^k + Pbar^k + u^k ||^2     (each MG)
    Pbar^{k+1} = mean_n P_n^{k+1}                                                      (aggregator)
    u^{k+1}   = u^k + Pbar^{k+1}                                                       (broadcast)

The spec writes the unscaled dual y = rho*u (``y^{k+1} = y^k + rho*Pbar^{k+1}``); it is the same
iteration. y[t] is the price of exchanged power at step t (reported as ``price_per_mw``).
Residuals (Boyd 7.3.2, stacked over MGs and steps): primal r = sqrt(N)*||Pbar||_2, dual
s = rho*||(P_n^{k+1} - Pbar^{k+1}) - (P_n^k - Pbar^k)||_2. Stop when r <= eps_pri and s <= eps_dual, where
eps = sqrt(N*T)*tol. The paper stops on the primal residual only: ``stop="primal"`` offers its rule (it can
stop early at a balanced but not optimal point, notably from a warm start). Residual balancing (Boyd 3.4.1):
r > mu*s: rho *= tau, u /= tau; s > mu*r: rho /= tau, u *= tau (the scaled dual is rescaled so y holds).

Each MG's QP is built once (per structure) and re-solved by updating mutable params: rho (the quadratic
coefficient) and the centre v = P_n^k - Pbar^k - u^k (the linear term -rho*v), and the forecasts/initial
SoC of a new planning instant. HiGHS solves it through Pyomo's persistent ``pyomo.contrib.solver`` interface
(``core.solver.PersistentHighs``). The centralized reference is one QP over all MGs with the balance rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyomo.environ as pyo

from ems_controllers.core.solver import PersistentHighs, solve_status
from ems_controllers.core.types import Battery, DieselUnit, SolverOptions, SolveStatus

FloatArray = npt.NDArray[np.float64]

# A QP has no integers: skip the LP-relaxation certification of core.solver (a MILP device).
QP_SOLVER_OPTIONS = SolverOptions(certify_relaxation=False, time_limit_s=30.0)


@dataclass(frozen=True)
class AdmmMg:
    """One MG's data at a planning instant: units (structure) and forecasts (one value per step, MW)."""

    name: str
    load_mw: tuple[float, ...]
    pv_mw: tuple[float, ...]
    wind_mw: tuple[float, ...]
    diesel: DieselUnit | None = None
    battery: Battery | None = None
    battery_cost_per_mw2h: float = 0.0  # a_b: life cost on P_ch^2 + P_dis^2
    battery_cost_per_mwh: float = 0.0  # b_b: life cost on P_ch + P_dis
    curtailment_price_per_mwh: float = 0.0
    load_shed_price_per_mwh: float = 1000.0
    exch_max_mw: float = math.inf
    e_init_mwh: float | None = None  # None: the battery's e_init_mwh

    def __post_init__(self) -> None:
        n = len(self.load_mw)
        if n == 0 or len(self.pv_mw) != n or len(self.wind_mw) != n:
            raise ValueError(f"AdmmMg {self.name}: load, pv and wind must be non-empty and equally long")
        if self.battery_cost_per_mw2h < 0 or (self.diesel is not None and self.diesel.a2_per_mw2h < 0):
            raise ValueError(f"AdmmMg {self.name}: quadratic costs must be >= 0 (convex QP)")

    @property
    def n_steps(self) -> int:
        return len(self.load_mw)

    def structure_key(self) -> Hashable:
        """What fixes the QP's variables, rows and constant coefficients (the forecasts are params)."""
        return (
            self.diesel,
            self.battery,
            self.battery_cost_per_mw2h,
            self.battery_cost_per_mwh,
            self.curtailment_price_per_mwh,
            self.load_shed_price_per_mwh,
            self.exch_max_mw,
            self.n_steps,
        )


@dataclass(frozen=True)
class MgSchedule:
    """One MG's plan, one value per step (MW; battery_p_mw + = charging; exch_mw + = import)."""

    name: str
    diesel_p_mw: tuple[float, ...]
    battery_p_mw: tuple[float, ...]
    battery_ch_mw: tuple[float, ...]
    battery_dis_mw: tuple[float, ...]
    soc_mwh: tuple[float, ...]  # at the end of each step
    pv_p_mw: tuple[float, ...]
    wind_p_mw: tuple[float, ...]
    load_shed_mw: tuple[float, ...]
    exch_mw: tuple[float, ...]
    cost: float  # the local cost h_n (no augmented term)


@dataclass(frozen=True)
class AdmmState:
    """What warm-starts the next instant: EEPs (N x T, MG order), scaled dual u (T) and rho."""

    eep_mw: tuple[tuple[float, ...], ...]
    u: tuple[float, ...]
    rho: float

    def shifted(self, steps: int) -> AdmmState:
        """This state moved ``steps`` steps earlier (a rolling horizon; the last value repeats)."""

        def sh(row: Sequence[float]) -> tuple[float, ...]:
            n = len(row)
            return tuple(row[min(i + steps, n - 1)] for i in range(n))

        return AdmmState(tuple(sh(r) for r in self.eep_mw), sh(self.u), self.rho)


@dataclass(frozen=True)
class AdmmSettings:
    rho: float = 10.0  # initial penalty (cost per MW^2 of the augmented term)
    tol_primal_mw: float = 1e-4  # eps_pri = sqrt(N*T) * tol
    tol_dual: float = 1e-3  # eps_dual = sqrt(N*T) * tol
    max_iter: int = 500
    stop: Literal["both", "primal"] = "both"
    residual_balancing: bool = True
    mu: float = 10.0
    tau: float = 2.0
    rho_min: float = 1e-3
    rho_max: float = 1e6


@dataclass(frozen=True)
class AdmmResult:
    status: SolveStatus  # optimal: converged; feasible: stopped at max_iter; error: a local solve failed
    converged: bool
    iterations: int
    schedules: dict[str, MgSchedule]
    eep_mw: dict[str, tuple[float, ...]]
    price_per_mw: tuple[float, ...]  # y = rho*u at the end
    primal_residual: tuple[float, ...]  # per iteration
    dual_residual: tuple[float, ...]
    rho: tuple[float, ...]  # the rho each iteration's local solves used
    final_gap_mw: float  # max_t |sum_n P_exch[n,t]|
    total_cost: float  # sum_n h_n at the final iterate
    solve_s: float  # wall time of the whole loop
    highs_s: float  # of which HiGHS (all local solves)
    state: AdmmState
    message: str = ""


@dataclass(frozen=True)
class CentralResult:
    status: SolveStatus
    total_cost: float | None
    eep_mw: dict[str, tuple[float, ...]]
    schedules: dict[str, MgSchedule]
    solve_s: float


# ---------------------------------------------------------------------------------------------- model


def _add_units(b: Any, mg: AdmmMg, dt_h: float) -> None:
    """Diesel and battery variables, SoC rows (cost terms in :func:`_add_mg_block`)."""
    d = mg.diesel
    lo = d.p_min_mw if d is not None and d.must_run else 0.0
    # a missing unit's powers are constant zeros, not variables fixed by bounds (HiGHS's QP solver
    # failed on instances with such columns)
    if d is not None:
        b.pd = pyo.Var(b.T, bounds=(lo, d.p_max_mw))
    else:
        b.pd = pyo.Param(b.T, initialize=0.0)
    bat = mg.battery
    b.e0 = pyo.Param(mutable=True, initialize=bat.e_init_mwh if bat else 0.0)
    if bat is None:
        b.pch = pyo.Param(b.T, initialize=0.0)
        b.pdis = pyo.Param(b.T, initialize=0.0)
        return
    b.pch = pyo.Var(b.T, bounds=(0.0, bat.p_ch_max_mw))
    b.pdis = pyo.Var(b.T, bounds=(0.0, bat.p_dis_max_mw))
    b.e = pyo.Var(b.T, bounds=(bat.e_min_mwh, bat.e_max_mwh))

    def soc(b: Any, t: int) -> Any:
        before = b.e0 if t == 0 else b.e[t - 1]
        return b.e[t] == before + (bat.eta_ch * b.pch[t] - b.pdis[t] / bat.eta_dis) * dt_h

    b.soc = pyo.Constraint(b.T, rule=soc)
    if bat.e_final_mwh is not None:
        b.e_final = pyo.Constraint(expr=b.e[mg.n_steps - 1] >= bat.e_final_mwh)


def _add_mg_block(b: Any, mg: AdmmMg, dt_h: float) -> None:
    """MG n's variables, rows and its cost expression ``b.cost`` (h_n) on block ``b``."""
    b.T = pyo.RangeSet(0, mg.n_steps - 1)
    b.load = pyo.Param(b.T, mutable=True, initialize=0.0)
    b.pv_fc = pyo.Param(b.T, mutable=True, initialize=0.0)
    b.wind_fc = pyo.Param(b.T, mutable=True, initialize=0.0)
    b.pv = pyo.Var(b.T, bounds=(0.0, None))
    b.wind = pyo.Var(b.T, bounds=(0.0, None))
    b.shed = pyo.Var(b.T, bounds=(0.0, None))
    xmax = mg.exch_max_mw if math.isfinite(mg.exch_max_mw) else None
    b.x = pyo.Var(b.T, bounds=(-xmax if xmax is not None else None, xmax))
    b.pv_cap = pyo.Constraint(b.T, rule=lambda b, t: b.pv[t] <= b.pv_fc[t])
    b.wind_cap = pyo.Constraint(b.T, rule=lambda b, t: b.wind[t] <= b.wind_fc[t])
    b.shed_cap = pyo.Constraint(b.T, rule=lambda b, t: b.shed[t] <= b.load[t])
    _add_units(b, mg, dt_h)
    b.balance = pyo.Constraint(
        b.T,
        rule=lambda b, t: b.pd[t] + b.pv[t] + b.wind[t] + b.pdis[t] - b.pch[t] + b.shed[t] + b.x[t] == b.load[t],
    )
    d = mg.diesel
    a2, a1 = (d.a2_per_mw2h, d.a1_per_mwh) if d is not None else (0.0, 0.0)
    a0 = d.a0_per_h if d is not None and d.must_run else 0.0
    # no battery: no cost on its (fixed at 0) variables (HiGHS's QP solver failed on such Hessian columns)
    ab2, ab1 = (mg.battery_cost_per_mw2h, mg.battery_cost_per_mwh) if mg.battery is not None else (0.0, 0.0)
    c_curt, c_shed = mg.curtailment_price_per_mwh, mg.load_shed_price_per_mwh

    def step_cost(t: int) -> Any:
        diesel = (a2 * b.pd[t] ** 2 if a2 else 0.0) + a1 * b.pd[t] + a0
        bess = (ab2 * (b.pch[t] ** 2 + b.pdis[t] ** 2) if ab2 else 0.0) + ab1 * (b.pch[t] + b.pdis[t])
        curt = c_curt * (b.pv_fc[t] - b.pv[t] + b.wind_fc[t] - b.wind[t])
        return dt_h * (diesel + bess + curt + c_shed * b.shed[t])

    b.cost = pyo.Expression(expr=sum(step_cost(t) for t in range(mg.n_steps)))


def _write_mg_data(b: Any, mg: AdmmMg) -> None:
    for t in range(mg.n_steps):
        b.load[t] = mg.load_mw[t]
        b.pv_fc[t] = mg.pv_mw[t]
        b.wind_fc[t] = mg.wind_mw[t]
    if mg.battery is not None:
        b.e0 = mg.e_init_mwh if mg.e_init_mwh is not None else mg.battery.e_init_mwh


def _vals(var: Any, n: int) -> tuple[float, ...]:
    return tuple(float(pyo.value(var[t])) for t in range(n))


def _schedule(b: Any, mg: AdmmMg) -> MgSchedule:
    n = mg.n_steps
    ch, dis = _vals(b.pch, n), _vals(b.pdis, n)
    soc = _vals(b.e, n) if mg.battery is not None else (0.0,) * n
    return MgSchedule(
        mg.name,
        _vals(b.pd, n),
        tuple(c - d for c, d in zip(ch, dis, strict=True)),
        ch,
        dis,
        soc,
        _vals(b.pv, n),
        _vals(b.wind, n),
        _vals(b.shed, n),
        _vals(b.x, n),
        float(pyo.value(b.cost)),
    )


class LocalQp:
    """MG n's local ADMM QP, built once and re-solved by updating rho, the centre v and the data."""

    def __init__(self, mg: AdmmMg, dt_h: float) -> None:
        m = pyo.ConcreteModel()
        m.mg = pyo.Block()
        _add_mg_block(m.mg, mg, dt_h)
        m.rho = pyo.Param(mutable=True, initialize=1.0)
        m.v = pyo.Param(m.mg.T, mutable=True, initialize=0.0)
        # h_n + rho/2*||x - v||^2 without its constant rho/2*||v||^2
        m.obj = pyo.Objective(
            expr=m.mg.cost + sum(m.rho / 2 * m.mg.x[t] ** 2 - m.rho * m.v[t] * m.mg.x[t] for t in m.mg.T)
        )
        self.model = m
        self.key = (mg.structure_key(), dt_h)
        self._solver = PersistentHighs(m, "contrib")

    def set_data(self, mg: AdmmMg) -> None:
        _write_mg_data(self.model.mg, mg)

    def solve(self, rho: float, centre: FloatArray) -> tuple[SolveStatus, FloatArray, float]:
        """Solve with penalty ``rho`` and centre v; (status, P_exch of the solution, HiGHS seconds)."""
        m = self.model
        m.rho = rho
        for t, v in enumerate(centre):
            m.v[t] = float(v)
        raw = self._solver.solve(QP_SOLVER_OPTIONS)
        if not raw.feasible:
            return raw.status, np.zeros(len(centre)), raw.highs_s
        return raw.status, np.array(_vals(m.mg.x, len(centre))), raw.highs_s

    def schedule(self, mg: AdmmMg) -> MgSchedule:
        return _schedule(self.model.mg, mg)


# ----------------------------------------------------------------------------------------------- ADMM


@dataclass
class _Trace:
    primal: list[float] = field(default_factory=list)
    dual: list[float] = field(default_factory=list)
    rho: list[float] = field(default_factory=list)
    highs_s: float = 0.0


def _check_fleet(mgs: Sequence[AdmmMg]) -> int:
    if len(mgs) < 2:
        raise ValueError("ADMM needs at least two MGs")
    n_steps = {mg.n_steps for mg in mgs}
    if len(n_steps) != 1:
        raise ValueError("all MGs must share the horizon length")
    if len({mg.name for mg in mgs}) != len(mgs):
        raise ValueError("MG names must be unique")
    return n_steps.pop()


def _balance_rho(rho: float, u: FloatArray, r: float, s: float, cfg: AdmmSettings) -> tuple[float, FloatArray]:
    """Residual balancing (Boyd 3.4.1); the scaled dual is rescaled so y = rho*u is unchanged."""
    if r > cfg.mu * s and rho * cfg.tau <= cfg.rho_max:
        return rho * cfg.tau, u / cfg.tau
    if s > cfg.mu * r and rho / cfg.tau >= cfg.rho_min:
        return rho / cfg.tau, u * cfg.tau
    return rho, u


class AdmmSolver:
    """Exchange ADMM over a fleet of MGs; keeps each MG's local QP between calls (planning instants)."""

    def __init__(self, settings: AdmmSettings | None = None) -> None:
        self.settings = settings or AdmmSettings()
        self._qps: dict[str, LocalQp] = {}

    def _local(self, mg: AdmmMg, dt_h: float) -> LocalQp:
        qp = self._qps.get(mg.name)
        if qp is None or qp.key != (mg.structure_key(), dt_h):
            qp = LocalQp(mg, dt_h)
            self._qps[mg.name] = qp
        qp.set_data(mg)
        return qp

    def solve(self, mgs: Sequence[AdmmMg], dt_h: float, start: AdmmState | None = None) -> AdmmResult:
        """Run ADMM at one planning instant, from ``start`` (the previous instant's state) if given."""
        t0 = time.perf_counter()
        cfg = self.settings
        n_steps = _check_fleet(mgs)
        n = len(mgs)
        qps = [self._local(mg, dt_h) for mg in mgs]
        if start is not None and np.shape(start.eep_mw) == (n, n_steps):
            x, u, rho = np.array(start.eep_mw, dtype=float), np.array(start.u, dtype=float), start.rho
        else:
            x, u, rho = np.zeros((n, n_steps)), np.zeros(n_steps), cfg.rho
        xbar = x.mean(axis=0)
        eps_pri = math.sqrt(n * n_steps) * cfg.tol_primal_mw
        eps_dual = math.sqrt(n * n_steps) * cfg.tol_dual
        trace, converged, message = _Trace(), False, ""
        for _ in range(cfg.max_iter):
            x_new = np.empty_like(x)
            for i, qp in enumerate(qps):
                status, x_new[i], highs_s = qp.solve(rho, x[i] - xbar - u)
                trace.highs_s += highs_s
                if not status.has_plan:
                    message = f"local QP of {mgs[i].name}: {status.value}"
                    break
            if message:
                break
            xbar_new = x_new.mean(axis=0)
            u = u + xbar_new
            r = math.sqrt(n) * float(np.linalg.norm(xbar_new))
            s = rho * float(np.linalg.norm((x_new - xbar_new) - (x - xbar)))
            trace.primal.append(r)
            trace.dual.append(s)
            trace.rho.append(rho)
            x, xbar = x_new, xbar_new
            if r <= eps_pri and (cfg.stop == "primal" or s <= eps_dual):
                converged = True
                break
            if cfg.residual_balancing:
                rho, u = _balance_rho(rho, u, r, s, cfg)
        return self._result(mgs, qps, x, u, rho, trace, converged, message, time.perf_counter() - t0)

    @staticmethod
    def _result(
        mgs: Sequence[AdmmMg],
        qps: Sequence[LocalQp],
        x: FloatArray,
        u: FloatArray,
        rho: float,
        trace: _Trace,
        converged: bool,
        message: str,
        solve_s: float,
    ) -> AdmmResult:
        status = SolveStatus.OPTIMAL if converged else SolveStatus.FEASIBLE
        if message:
            status = SolveStatus.ERROR
        schedules = {mg.name: qp.schedule(mg) for mg, qp in zip(mgs, qps, strict=True)} if not message else {}
        eep = {mg.name: tuple(float(v) for v in x[i]) for i, mg in enumerate(mgs)}
        return AdmmResult(
            status=status,
            converged=converged,
            iterations=len(trace.primal),
            schedules=schedules,
            eep_mw=eep,
            price_per_mw=tuple(float(v) for v in rho * u),
            primal_residual=tuple(trace.primal),
            dual_residual=tuple(trace.dual),
            rho=tuple(trace.rho),
            final_gap_mw=float(np.max(np.abs(x.sum(axis=0)))),
            total_cost=sum(s.cost for s in schedules.values()) if schedules else math.nan,
            solve_s=solve_s,
            highs_s=trace.highs_s,
            state=AdmmState(tuple(eep.values()), tuple(float(v) for v in u), rho),
            message=message,
        )


def solve_admm(
    mgs: Sequence[AdmmMg], dt_h: float, settings: AdmmSettings | None = None, start: AdmmState | None = None
) -> AdmmResult:
    """One-shot ADMM (builds the local QPs; keep an :class:`AdmmSolver` to re-solve across instants)."""
    return AdmmSolver(settings).solve(mgs, dt_h, start)


# ---------------------------------------------------------------------------------------- centralized


def _highs_once(m: pyo.ConcreteModel, options: dict[str, Any]) -> SolveStatus:
    from pyomo.contrib.solver.solvers.highs import Highs

    opt = Highs()
    opt.config.load_solutions = False
    opt.config.raise_exception_on_nonoptimal_result = False
    # the project's thread count: HiGHS's global scheduler keeps the first count it is started with
    opt.config.threads = QP_SOLVER_OPTIONS.threads
    opt.config.time_limit = QP_SOLVER_OPTIONS.time_limit_s
    opt.config.solver_options = dict(options)
    res = opt.solve(m)
    status = solve_status(res.termination_condition, res.incumbent_objective is not None)
    if status.has_plan:
        res.solution_loader.load_vars()
    return status


def _solve_reference(m: pyo.ConcreteModel) -> SolveStatus:
    """One-shot HiGHS solve of the reference QP (loads the solution when there is one).

    HiGHS 1.16's QP solver ends in "Solve error" on some degenerate instances (seen: 3 MGs, one with a
    PV surplus curtailed, every diesel at 0); a retry with a larger QP regularization
    (``qp_regularization_value`` 1e-5, default 1e-7) solved those. Known still to fail: instances with
    data of the order of 1e-4 MW ("QP solver claims optimality, but with ... primal infeasibilities").
    """
    status = _highs_once(m, {})
    if not status.has_plan:
        status = _highs_once(m, {"qp_regularization_value": 1e-5})
    return status


def solve_centralized(mgs: Sequence[AdmmMg], dt_h: float) -> CentralResult:
    """The reference: one QP over all MGs, sum_n P_exch[n,t] = 0 for every t, the same cost terms."""
    t0 = time.perf_counter()
    n_steps = _check_fleet(mgs)
    m = pyo.ConcreteModel()
    m.mgs = pyo.Block(range(len(mgs)))
    for i, mg in enumerate(mgs):
        _add_mg_block(m.mgs[i], mg, dt_h)
        _write_mg_data(m.mgs[i], mg)
    m.exch_balance = pyo.Constraint(range(n_steps), rule=lambda m, t: sum(m.mgs[i].x[t] for i in range(len(mgs))) == 0)
    m.obj = pyo.Objective(expr=sum(m.mgs[i].cost for i in range(len(mgs))))
    status = _solve_reference(m)
    if not status.has_plan:
        return CentralResult(status, None, {}, {}, time.perf_counter() - t0)
    schedules = {mg.name: _schedule(m.mgs[i], mg) for i, mg in enumerate(mgs)}
    return CentralResult(
        status,
        sum(s.cost for s in schedules.values()),
        {name: s.exch_mw for name, s in schedules.items()},
        schedules,
        time.perf_counter() - t0,
    )
