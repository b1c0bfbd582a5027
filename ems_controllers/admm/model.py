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
modelled. Charge and discharge are not made exclusive by binaries, so charging and discharging at once
could dump surplus energy through the battery's losses, cheaper than curtailing it: with
P_dis = eta_ch*eta_dis*P_ch the SoC stays put and the grid takes P_ch*(1 - eta_ch*eta_dis), at a life cost
of b_b*P_ch*(1 + eta_ch*eta_dis). The throughput cost used is therefore at least
c_curt*(1 - eta_ch*eta_dis)/(1 + eta_ch*eta_dis) (times 1.05; :meth:`AdmmMg.throughput_cost_per_mwh`), so
curtailing is always cheaper and no plan charges and discharges in the same step to dump energy.

ADMM, exchange (sharing) form, scaled dual u (Boyd et al. 2011, section 7.3.2; the spec's form)::

    P_n^{k+1} = argmin_{P_n}  h_n(P_n) + rho/2 * || P_n - P_n^k + Pbar^k + u^k ||^2     (each MG)
    Pbar^{k+1} = mean_n P_n^{k+1}                                                      (aggregator)
    u^{k+1}   = u^k + Pbar^{k+1}                                                       (broadcast)

The spec writes the unscaled dual y = rho*u (``y^{k+1} = y^k + rho*Pbar^{k+1}``); it is the same
iteration. y[t] is the price of exchanged power at step t (reported as ``price_per_mw``).
Residuals (Boyd 7.3.2, stacked over MGs and steps): primal r = sqrt(N)*||Pbar||_2, dual
s = rho*||(P_n^{k+1} - Pbar^{k+1}) - (P_n^k - Pbar^k)||_2. Stop when r <= eps_pri and s <= eps_dual, where
eps = sqrt(N*T)*tol (+ tol_rel*||P|| and tol_rel*||y||: Boyd 3.3.1's relative part, off by default). The
paper stops on the primal residual only: ``stop="primal"`` offers its rule (it can stop early at a balanced
but not optimal point, notably from a warm start). Residual balancing (Boyd 3.4.1): r > mu*s: rho *= tau,
u /= tau; s > mu*r: rho /= tau, u *= tau (the scaled dual is rescaled so y holds); or, ``balancing =
"relative"``, on r/eps_pri against s/eps_dual with rho scaled by the square root of their ratio. Optional
over-relaxation (Boyd 3.4.3, ``relaxation`` alpha): the MG's centre becomes its anchor z_n^k - u^k with
z^{k+1} = xhat - mean(xhat), xhat = alpha*P^{k+1} + (1 - alpha)*z^k, and u^{k+1} = u^k + alpha*Pbar^{k+1};
r stays the imbalance of the plans themselves (:class:`AdmmSettings`; the defaults are the spec's form).
The iteration itself lives in :mod:`ems_controllers.admm.coordinator` (each party's part, shared by the
mosaik agents) and :mod:`ems_controllers.admm.solver` (all parties in one object); this module holds the
math they call: the local QP, the settings and results, and the centralized reference.

Each MG's QP is built once (per structure) and re-solved by updating mutable params: rho (the quadratic
coefficient) and the centre v = P_n^k - Pbar^k - u^k (the linear term -rho*v), and the forecasts/initial
SoC of a new planning instant. HiGHS's active-set QP solver solves it under Pyomo's persistent
``pyomo.contrib.solver`` interface, hot-started from the previous iterate (``_QpHighs``: also why the
first solve starts from the LP optimum and HiGHS's dual tolerance is 1e-5). The centralized reference is
one QP over all MGs with the balance rows, solved the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import highspy
import numpy as np
import numpy.typing as npt
import pyomo.environ as pyo

from ems_controllers.core.solver import FIXED_STRUCTURE_UPDATES, highs_termination, solve_status
from ems_controllers.core.types import Battery, DieselUnit, SolverOptions, SolveStatus

FloatArray = npt.NDArray[np.float64]

# A QP has no integers: skip the LP-relaxation certification of core.solver (a MILP device).
QP_SOLVER_OPTIONS = SolverOptions(certify_relaxation=False, time_limit_s=30.0)


NO_DUMP_MARGIN = 1.05
"""How much dearer than curtailing dumping energy through the battery's losses is made."""


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

    @property
    def throughput_cost_per_mwh(self) -> float:
        """b_b as the model uses it: the battery's life cost per MWh charged or discharged, at least what
        makes dumping energy through simultaneous charge and discharge dearer than curtailing (module
        docstring)."""
        if self.battery is None:
            return self.battery_cost_per_mwh
        loop = self.battery.eta_ch * self.battery.eta_dis
        floor = NO_DUMP_MARGIN * self.curtailment_price_per_mwh * (1.0 - loop) / (1.0 + loop)
        return max(self.battery_cost_per_mwh, floor)

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
    """ADMM's settings; the defaults are the spec's form (scaled exchange ADMM, raw residual balancing).

    * ``rho`` - the initial penalty, cost per MW^2 (per hour of the step) of the augmented term.
    * ``tol_primal_mw``, ``tol_dual``, ``tol_rel`` - Boyd et al. 2011, 3.3.1, for the stacked exchange
      form: stop when ``r <= sqrt(N*T)*tol_primal_mw + tol_rel*||x||`` and ``s <= sqrt(N*T)*tol_dual +
      tol_rel*||y||`` (``||x||`` over every MG's EEP in MW, ``||y|| = sqrt(N)*rho*||u||`` every MG's price);
      ``tol_rel`` 0: the absolute tolerances alone (the spec's rule).
    * ``stop`` - ``"both"`` residuals, or ``"primal"`` only (the paper's rule).
    * ``residual_balancing``, ``balancing``, ``mu``, ``tau``, ``tau_max``, ``balance_every_iters`` - rho
      adapted every ``balance_every_iters`` iterations: ``"absolute"`` (Boyd 3.4.1) compares r and s as they
      are, by ``mu`` and a factor ``tau``; ``"relative"`` compares ``r/eps_pri`` and ``s/eps_dual`` (each
      residual over its own tolerance: free of the units and the scale of the problem, Wohlberg 2017)
      and, when one is ``mu`` times the other, scales rho by the square root of their ratio, at most
      ``tau_max`` (OSQP's rule, Stellato et al. 2020, 5.2). Within ``rho_min``..``rho_max`` either way.
    * ``relaxation`` - over-relaxation alpha in (0, 2) (Boyd 3.4.3; 1: none, 1.5-1.8 usually faster).
    """

    rho: float = 10.0
    tol_primal_mw: float = 1e-4
    tol_dual: float = 1e-3
    max_iter: int = 500
    stop: Literal["both", "primal"] = "both"
    residual_balancing: bool = True
    mu: float = 10.0
    tau: float = 2.0
    rho_min: float = 1e-3
    rho_max: float = 1e6
    tol_rel: float = 0.0
    relaxation: float = 1.0
    balancing: Literal["absolute", "relative"] = "absolute"
    tau_max: float = 10.0
    balance_every_iters: int = 1

    def __post_init__(self) -> None:
        checks = (
            (self.rho > 0 and self.tol_primal_mw > 0 and self.tol_dual > 0, "rho and the tolerances must be > 0"),
            (0.0 <= self.tol_rel < 1.0, f"tol_rel must be in [0, 1), got {self.tol_rel}"),
            (0.0 < self.relaxation < 2.0, f"relaxation must be in (0, 2), got {self.relaxation}"),
            (self.max_iter >= 1 and self.balance_every_iters >= 1, "max_iter and balance_every_iters must be >= 1"),
            (self.mu > 1.0 and self.tau > 1.0 and self.tau_max > 1.0, "mu, tau and tau_max must be > 1"),
            (0.0 < self.rho_min <= self.rho_max, "need 0 < rho_min <= rho_max"),
            (self.stop in ("both", "primal"), f"stop must be 'both' or 'primal', got {self.stop!r}"),
            (
                self.balancing in ("absolute", "relative"),
                f"balancing: 'absolute' or 'relative', not {self.balancing!r}",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"AdmmSettings: {message}")


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
    ab2, ab1 = (mg.battery_cost_per_mw2h, mg.throughput_cost_per_mwh) if mg.battery is not None else (0.0, 0.0)
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


QP_DUAL_TOLERANCE = 1e-5
"""HiGHS's ``dual_feasibility_tolerance`` for these QPs (cost per MW or MWh), 100x its default 1e-7.

An optimal answer has every dual infeasibility <= this (HiGHS's KKT check of the final point), so its
cost exceeds the true optimum by at most ``QP_DUAL_TOLERANCE * (sum of the ranges of the variables and
inequality rows)`` (convexity: f(x*) >= f(x) + grad f(x)'(x* - x); every variable is bounded, explicitly or
through the balance rows): for the 4 MGs x 24 h of the tests about 1e-5 * 1,800 = 0.018 (6e-6 of the
optimum, 3,101), far below ADMM's 1 % acceptance."""

QP_ITERATION_CAP = 20
"""QP iterations per row and column of the model allowed in one HiGHS run (see :class:`_QpHighs`)."""

_AUTO_UPDATES_OFF = (
    *FIXED_STRUCTURE_UPDATES,
    "update_parameters",
    "update_objective",
)


class _QpHighs:
    """HiGHS's active-set QP solver under a Pyomo model: a robust first solve and hot re-solves.

    The cause of the failures (HiGHS 1.16; found on the recorded instance of the tests, whose first solve
    ended "Solve error" at iteration 0 and whose retry with ``qp_regularization_value`` 1e-5 cycled at the
    optimum's objective, 291,907 QP iterations in 3 s, into the time limit): the objective is only positive
    semi-definite (pv, wind, shed, e and, in the reference, x have no quadratic term) and the optima are
    dual degenerate (a PV surplus curtailed at zero price can be curtailed by any MG; idle diesels;
    several equally cheap SoC paths). HiGHS adds 1e-7 to the Hessian's diagonal, so the reduced Hessian's
    eigenvalues span 1e-7..1e2 and the multipliers it prices carry errors of 1e-7..1e-6 (on costs of
    1e2..1e3); at its default dual tolerance 1e-7 it releases active bounds whose true multiplier is 0 and
    steps along (near) zero-curvature directions, where its bookkeeping fails (a zero-curvature step does
    not expand the reduced Hessian's Cholesky factor; with the nullspace grown the dimensions differ:
    "Solve error") or it cycles (curvature near its fixed threshold p'Qp < 1e-7: the 1e-5 retry).
    Independently, its phase 1 (an LP for a feasible start) sets start values below 1e-4 to 0, so data of
    the order of 1e-4 MW end in "QP solver claims optimality, but with ... primal infeasibilities".

    The remedy, chosen by measurement (first solves of instances drawn like the property test's: 76 of
    5,000 failed before; of harder ones, 2-5 MGs, 1-8 steps, data down to 1e-4 MW, wind, exchange caps,
    curtailment prices, final SoC, MGs without diesel: 15 %; afterwards none of 5,000 of each kind):

    * ``dual_feasibility_tolerance`` :data:`QP_DUAL_TOLERANCE`, the QP solver's pricing threshold:
      noise-level multipliers are not priced (the cost bound is in its docstring). Alone it left 5 % of
      the harder instances failing, every one with data below 3e-3 MW.
    * A cold solve (the first, and the first after new data) starts from the LP optimum: the Hessian is
      taken off, the LP solved by simplex, the Hessian put back and the QP hot-started
      (``qp_allow_hot_start``) from that vertex and basis, which skips phase 1 and its rounding.
    * A re-solve after an objective-only change (ADMM's rho and centre) hot-starts from the previous
      optimum, still feasible (rows and bounds unchanged): 4 MGs x 24 h, 218 -> 1 QP iterations (median).
    * Every run is capped at :data:`QP_ITERATION_CAP` per row and column (hot starts were seen to cycle,
      7e6 iterations in 30 s: 12 of 180,000 in ADMM runs on the harder instances, none of 180,000 on the
      property test's; the cold solve then succeeded) and at
      ``QP_SOLVER_OPTIONS.time_limit_s`` per solve. HiGHS's ``time_limit`` counts the object's
      accumulated run time, so it is set relative to ``getRunTime()`` before each run. A hot run that does
      not end optimal is repeated cold; a cold one that fails, from HiGHS's own start. Presolve is off.
    Rejected by measurement: a proximal term eps*||v||^2 (eps <= 1e-3: 2 % of the property test's
    instances stalled; eps = 1e-2: robust but moved the cost by up to 0.4 %); scaling the variables (kW,
    10 kW: 8-21 % stalled); implied bounds on x, caps as column bounds, e substituted (0.1-2.3 % still
    failed).

    Pyomo builds the model, translates it (``set_instance``) and pushes param changes; the runs, starts and
    solution read-out use the ``highspy`` object Pyomo's interface holds (``_solver_model``, as
    ``core.solver.PersistentHighs`` does).
    """

    def __init__(self, model: pyo.ConcreteModel) -> None:
        from pyomo.contrib.solver.solvers.highs import Highs

        opt = Highs()
        for flag in _AUTO_UPDATES_OFF:  # the structure never changes; params are pushed by update()
            setattr(opt.config.auto_updates, flag, False)
        opt.set_instance(model)
        h = getattr(opt, "_solver_model", None)
        var_map = getattr(opt, "_pyomo_var_to_solver_var_map", None)
        if h is None or var_map is None:
            raise RuntimeError("Pyomo's HiGHS interface lacks _solver_model / _pyomo_var_to_solver_var_map")
        self._opt, self._h, self._var_map = opt, h, var_map
        self._cols = [v for v in model.component_data_objects(pyo.Var, descend_into=True) if id(v) in var_map]
        self._cols.sort(key=lambda v: var_map[id(v)])
        for name, value in (
            ("output_flag", False),
            # the project's thread count: HiGHS's global scheduler keeps the first count it is started with
            ("threads", QP_SOLVER_OPTIONS.threads),
            ("presolve", "off"),
            ("dual_feasibility_tolerance", QP_DUAL_TOLERANCE),
            ("qp_allow_hot_start", True),
            ("qp_iteration_limit", QP_ITERATION_CAP * (h.getNumCol() + h.getNumRow())),
        ):
            h.setOptionValue(name, value)
        self._start: tuple[Any, Any] | None = None  # (solution, basis) of the last optimum
        self.x: FloatArray = np.zeros(0)  # the last solution by column (when the last status has a plan)

    def column(self, var: Any) -> int:
        return int(self._var_map[id(var)])

    def update(self, objective_only: bool) -> None:
        """Push the changed params: the objective's only (rho, centre), or all (new data: cold start)."""
        objective = getattr(self._opt, "_mutable_objective", None)
        if objective_only and objective is not None:
            objective.update()  # linear costs; the Hessian only if a quadratic coefficient changed
            return
        self._opt.update_parameters()
        if not objective_only:
            self._start = None

    def solve(self) -> tuple[SolveStatus, float]:
        """Solve (hot from the last optimum if there is one, else cold); (status, seconds in HiGHS)."""
        t0 = time.perf_counter()
        status = self._hot(t0) if self._start is not None else None
        if status is not SolveStatus.OPTIMAL:
            status = self._cold(t0)
        solution = self._h.getSolution()
        self._start = (solution, self._h.getBasis()) if status is SolveStatus.OPTIMAL else None
        if status.has_plan:
            self.x = np.asarray(solution.col_value, dtype=float)
        return status, time.perf_counter() - t0

    def load(self) -> None:
        """Write the last solution into the Pyomo variables."""
        for v, val in zip(self._cols, self.x, strict=True):
            v.set_value(float(val), skip_validation=True)

    def _run(self, t0: float) -> SolveStatus:
        h = self._h
        left = max(QP_SOLVER_OPTIONS.time_limit_s - (time.perf_counter() - t0), 1e-3)
        h.setOptionValue("time_limit", h.getRunTime() + left)  # HiGHS's run clock accumulates over runs
        h.run()
        has_solution = h.getInfo().primal_solution_status == 2  # kSolutionStatusFeasible
        return solve_status(highs_termination(h.getModelStatus()), has_solution)

    def _hot(self, t0: float) -> SolveStatus:
        assert self._start is not None
        solution, basis = self._start
        self._h.setSolution(solution)  # a changed cost or Hessian dropped HiGHS's own copy of both
        self._h.setBasis(basis)
        return self._run(t0)

    def _cold(self, t0: float) -> SolveStatus:
        h = self._h
        hessian = h.getModel().hessian_
        if hessian.dim_ == 0 or not any(hessian.value_):
            return self._run(t0)  # an LP
        h.passHessian(highspy.HighsHessian())  # dimension 0: no Hessian, the LP
        lp = self._run(t0)
        start = (h.getSolution(), h.getBasis()) if lp is SolveStatus.OPTIMAL else None
        h.passHessian(hessian)
        if lp is SolveStatus.INFEASIBLE:  # the same rows and bounds
            return lp
        if start is not None:
            h.setSolution(start[0])
            h.setBasis(start[1])
            status = self._run(t0)
            if status is SolveStatus.OPTIMAL:
                return status
        h.setOptionValue("qp_allow_hot_start", False)  # last resort: HiGHS's own start
        try:
            return self._run(t0)
        finally:
            h.setOptionValue("qp_allow_hot_start", True)


class LocalQp:
    """MG n's local ADMM QP, built once and re-solved by updating rho, the centre v and the data.

    A re-solve pushes only the objective's params (``-rho*v`` on the x columns; the Hessian when rho
    changed) and hot-starts HiGHS from the previous optimum (:class:`_QpHighs`); new data (``set_data``)
    pushes every param and starts cold. The Pyomo variables get the solution in :meth:`schedule` only.
    """

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
        self._qp = _QpHighs(m)
        self._x_cols = np.array([self._qp.column(m.mg.x[t]) for t in m.mg.T], dtype=np.int64)
        self._new_data = True
        self._loaded = True  # the Pyomo variables hold the last solution

    def set_data(self, mg: AdmmMg) -> None:
        _write_mg_data(self.model.mg, mg)
        self._new_data = True

    def solve(self, rho: float, centre: FloatArray) -> tuple[SolveStatus, FloatArray, float]:
        """Solve with penalty ``rho`` and centre v; (status, P_exch of the solution, HiGHS seconds)."""
        m = self.model
        m.rho = rho
        for t, v in enumerate(centre):
            m.v[t] = float(v)
        self._qp.update(objective_only=not self._new_data)
        self._new_data = False
        status, highs_s = self._qp.solve()
        if not status.has_plan:
            return status, np.zeros(len(centre)), highs_s
        self._loaded = False
        return status, self._qp.x[self._x_cols].copy(), highs_s

    def schedule(self, mg: AdmmMg) -> MgSchedule:
        if not self._loaded:
            self._qp.load()
            self._loaded = True
        return _schedule(self.model.mg, mg)


# ------------------------------------------------------------------------------------------------ fleet


def check_fleet(mgs: Sequence[AdmmMg]) -> int:
    """The common horizon length of a fleet (ValueError unless 2+ MGs with unique names share one)."""
    if len(mgs) < 2:
        raise ValueError("ADMM needs at least two MGs")
    n_steps = {mg.n_steps for mg in mgs}
    if len(n_steps) != 1:
        raise ValueError("all MGs must share the horizon length")
    if len({mg.name for mg in mgs}) != len(mgs):
        raise ValueError("MG names must be unique")
    return n_steps.pop()


# ---------------------------------------------------------------------------------------- centralized


def _solve_reference(m: pyo.ConcreteModel) -> SolveStatus:
    """One HiGHS solve of the reference QP (loads the solution when there is one): LP start, then the QP
    hot-started from it, dual tolerance :data:`QP_DUAL_TOLERANCE` (:class:`_QpHighs` says why)."""
    qp = _QpHighs(m)
    status, _ = qp.solve()
    if status.has_plan:
        qp.load()
    return status


def solve_centralized(mgs: Sequence[AdmmMg], dt_h: float) -> CentralResult:
    """The reference: one QP over all MGs, sum_n P_exch[n,t] = 0 for every t, the same cost terms."""
    t0 = time.perf_counter()
    n_steps = check_fleet(mgs)
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
