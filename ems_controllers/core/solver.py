"""The one solver wrapper: HiGHS through Pyomo's persistent interface.

Pipeline (fixed): the caller builds a Pyomo model once and writes data into its mutable params;
:meth:`PersistentHighs.solve` translates the model on the first call only (``set_instance``), pushes
changed params on later calls (``update_parameters``: coefficients, bounds and objective terms that
depend on mutable params), runs HiGHS, maps the outcome through :data:`STATUS_TABLE`, and loads the
solution into the Pyomo variables **only** when a feasible one exists. Nothing raises: a failure
becomes a :class:`RawSolve` with status ``error`` and the message.

:data:`STATUS_TABLE` is the one map from a termination to a :class:`~ems_controllers.core.types.SolveStatus`;
the terminations of the other interfaces are first translated into Pyomo's (:func:`highs_termination` for
highspy's model status, :func:`_appsi_terminations` for appsi's), as linopy maps every solver's codes
onto its own.

Two Pyomo interfaces to HiGHS are installed; both are persistent and incremental:
``"contrib"`` (``pyomo.contrib.solver.solvers.highs.Highs``, default, measured faster on first solve
and re-solve here) and ``"appsi"`` (``pyomo.contrib.appsi.solvers.Highs``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pyomo.environ as pyo
from pyomo.contrib.solver.common.results import TerminationCondition as TC

from ems_controllers.core.types import SolverOptions, SolveStatus

log = logging.getLogger(__name__)

_OPT, _FEAS, _INF, _NONE, _ERR = (
    SolveStatus.OPTIMAL,
    SolveStatus.FEASIBLE,
    SolveStatus.INFEASIBLE,
    SolveStatus.NO_SOLUTION,
    SolveStatus.ERROR,
)

# One table from the solver's termination to our status: (with an incumbent, without one).
STATUS_TABLE: dict[TC, tuple[SolveStatus, SolveStatus]] = {
    TC.convergenceCriteriaSatisfied: (_OPT, _NONE),
    TC.maxTimeLimit: (_FEAS, _NONE),
    TC.iterationLimit: (_FEAS, _NONE),
    TC.objectiveLimit: (_FEAS, _NONE),
    TC.minStepLength: (_FEAS, _NONE),
    TC.interrupted: (_FEAS, _NONE),
    TC.provenInfeasible: (_INF, _INF),
    TC.locallyInfeasible: (_INF, _INF),
    TC.infeasibleOrUnbounded: (_INF, _INF),
    TC.unbounded: (_ERR, _ERR),
    TC.licensingProblems: (_ERR, _ERR),
    TC.emptyModel: (_ERR, _ERR),
    TC.error: (_ERR, _ERR),
    TC.unknown: (_FEAS, _NONE),
}


def solve_status(term: TC, has_solution: bool) -> SolveStatus:
    """Our status of a solve that ended with ``term`` (:data:`STATUS_TABLE`; error if not listed)."""
    return STATUS_TABLE.get(term, (_ERR, _ERR))[0 if has_solution else 1]


@cache
def _highs_terminations() -> dict[Any, TC]:
    import highspy

    hms = highspy.HighsModelStatus
    table = {
        hms.kNotset: TC.unknown,
        hms.kLoadError: TC.error,
        hms.kModelError: TC.error,
        hms.kPresolveError: TC.error,
        hms.kSolveError: TC.error,
        hms.kPostsolveError: TC.error,
        hms.kModelEmpty: TC.unknown,
        hms.kOptimal: TC.convergenceCriteriaSatisfied,
        hms.kInfeasible: TC.provenInfeasible,
        hms.kUnboundedOrInfeasible: TC.infeasibleOrUnbounded,
        hms.kUnbounded: TC.unbounded,
        hms.kObjectiveBound: TC.objectiveLimit,
        hms.kObjectiveTarget: TC.objectiveLimit,
        hms.kTimeLimit: TC.maxTimeLimit,
        hms.kIterationLimit: TC.iterationLimit,
        hms.kUnknown: TC.unknown,
    }
    if hasattr(hms, "kSolutionLimit"):
        table[hms.kSolutionLimit] = TC.iterationLimit
    return table


def highs_termination(model_status: Any) -> TC:
    """highspy's ``HighsModelStatus`` as Pyomo's termination (the translation Pyomo's own HiGHS
    interface makes; anything not listed is ``unknown``)."""
    return _highs_terminations().get(model_status, TC.unknown)


@dataclass(frozen=True)
class RawSolve:
    """What a solve produced; the Pyomo variables hold the solution iff ``status`` is optimal/feasible."""

    status: SolveStatus
    termination: str
    objective: float | None
    mip_gap: float | None
    translate_s: float  # Pyomo -> HiGHS (first solve) or param update (re-solve)
    highs_s: float  # HiGHS run time
    message: str = ""

    @property
    def feasible(self) -> bool:
        return self.status.has_plan


INTEGRALITY_TOL = 1e-6
"""An LP value this close to an integer counts as integral (HiGHS's ``mip_feasibility_tolerance``)."""


def _fixed_lp(h: Any, idx: Any, z_r: float, x: Any) -> tuple[float, Any]:
    """The relaxation's solution ``x`` (objective ``z_r``) with its integer columns ``idx`` rounded
    (integral values kept, fractional ones up), fixed and the LP solved again: its objective (inf when
    not optimal) and solution. The columns' bounds are restored."""
    import highspy

    if len(idx) == 0:
        return z_r, x
    lp = h.getLp()
    lo = np.asarray(lp.col_lower_)[idx]
    hi = np.asarray(lp.col_upper_)[idx]
    xi = x[idx]
    vals = np.where(np.abs(xi - np.round(xi)) <= INTEGRALITY_TOL, np.round(xi), np.ceil(xi))
    vals = np.minimum(np.maximum(vals, lo), hi)
    h.changeColsBounds(len(idx), idx, vals, vals)
    try:
        h.run()
        ok = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        z_f = h.getInfo().objective_function_value if ok else math.inf
        x = np.asarray(h.getSolution().col_value) if ok else x
    finally:
        h.changeColsBounds(len(idx), idx, lo, hi)
    return z_f, x


def _gap(obj: float | None, bound: float | None) -> float | None:
    if obj is None or bound is None or not (math.isfinite(obj) and math.isfinite(bound)):
        return None
    return abs(obj - bound) / max(abs(obj), 1e-10)


FIXED_STRUCTURE_UPDATES = (
    "check_for_new_or_removed_constraints",
    "check_for_new_or_removed_vars",
    "check_for_new_or_removed_params",
    "check_for_new_objective",
    "update_constraints",
    "update_vars",
    "update_named_expressions",
)
"""Pyomo's persistent-solver auto updates that a model built once and re-solved by params never needs."""


class PersistentHighs:
    """HiGHS bound to one Pyomo model for its lifetime; re-solves push only changed params."""

    def __init__(self, model: pyo.ConcreteModel, backend: str = "contrib") -> None:
        if backend not in ("contrib", "appsi"):
            raise ValueError(f"unknown backend {backend!r}")
        self.model = model
        self.backend = backend
        self._opt: Any | None = None  # the Pyomo solver object (no type information), made on the first solve
        self._solved_once = False
        self._partial: Sequence[tuple[Any, float]] | None = None
        self._int_cols: npt.NDArray[np.int32] | None = None
        self._cols: list[Any] = []  # Pyomo variables by HiGHS column
        self._is_mip: bool | None = None

    @property
    def _solver(self) -> Any:
        """The solver object; it exists from the first solve on (every caller runs after ``_make``)."""
        if self._opt is None:
            raise RuntimeError("PersistentHighs: no solver before the first solve")
        return self._opt

    def _make(self) -> Any:
        if self.backend == "contrib":
            from pyomo.contrib.solver.solvers.highs import Highs

            opt = Highs()
            au = opt.config.auto_updates
        else:
            from pyomo.contrib.appsi.solvers.highs import Highs

            opt = Highs()
            au = opt.update_config
        # The model's structure never changes after the build: only params are re-read.
        for flag in FIXED_STRUCTURE_UPDATES:
            setattr(au, flag, False)
        # params are pushed explicitly (and timed) in _solve, the objective's with them
        setattr(au, "update_parameters" if self.backend == "contrib" else "update_params", False)
        au.update_objective = False
        return opt

    def _set_instance(self) -> None:
        """Translate the model (first solve only).

        For ``contrib`` two costs of Pyomo 6.10's ``Highs.set_instance`` are avoided (together about
        half of the translation time of the 10-MG model): it checks each constraint for new variables
        and passes them with one ``addVars`` + ``changeColsIntegrality`` call per constraint, even
        when there are none; and it wraps the translation in an fd-capturing tee. Here all variables
        go to HiGHS in one batch (in declaration order), empty variable batches are skipped, and the
        remaining steps are those of ``set_instance`` without the capture. If the private members
        this touches are missing (another Pyomo version), the public ``set_instance`` runs.
        """
        opt, m = self._solver, self.model
        needed = ("_reinit", "_solver_model", "_model", "_objective", "_add_variables")
        if self.backend != "contrib" or not all(hasattr(opt, a) for a in needed):
            opt.set_instance(m)
            return
        import highspy

        opt._reinit()
        add_vars = opt._add_variables
        opt._add_variables = lambda variables: add_vars(variables) if variables else None
        opt._model = m
        opt._solver_model = highspy.Highs()
        opt._solver_model.setOptionValue("output_flag", False)  # no banner/log on our stdout
        opt.add_variables(list(m.component_data_objects(pyo.Var, descend_into=True)))
        opt.add_block(m)
        if opt._objective is None:
            opt.set_objective(None)

    def solve(self, opts: SolverOptions, start: Sequence[tuple[Any, float]] | None = None) -> RawSolve:
        """Solve with the model's current params. ``start``: values of some variables (VarData, value),
        a partial MIP start that HiGHS completes by solving for the others (it ignores a start it cannot
        complete; the default ``contrib`` backend only); it takes the place of ``opts.warm_start_shift``'s,
        and is handed over after the relaxation's certificate failed (whose runs would drop it)."""
        try:
            return self._solve(opts, start)
        except Exception as exc:  # failures are values: the caller decides the fallback
            log.exception("HiGHS solve failed")
            return RawSolve(SolveStatus.ERROR, type(exc).__name__, None, None, 0.0, 0.0, str(exc))

    def _shifted_start(self, shift: int) -> list[float] | None:
        """The last solution with every time-indexed variable moved ``shift`` steps earlier (the last
        steps repeat the final value): the MIP start of a rolling re-solve. None if there is none."""
        opt, m = self._opt, self.model
        var_map = getattr(opt, "_pyomo_var_to_solver_var_map", None)
        if var_map is None or not self._solved_once:
            return None
        values = [0.0] * len(var_map)
        for comp in m.component_objects(pyo.Var, descend_into=True):
            if comp.is_indexed():
                keys = list(comp.keys())
                n = len(keys)
                for i, key in enumerate(keys):
                    src = comp[keys[min(i + shift, n - 1)]] if isinstance(key, int) else comp[key]
                    col = var_map.get(id(comp[key]))
                    if col is not None and src.value is not None:
                        values[col] = float(src.value)
            else:
                col = var_map.get(id(comp))
                if col is not None and comp.value is not None:
                    values[col] = float(comp.value)
        return values

    def _solve(self, opts: SolverOptions, partial: Sequence[tuple[Any, float]] | None = None) -> RawSolve:
        t0 = time.perf_counter()
        start = None
        if self._opt is not None and opts.warm_start_shift is not None and partial is None:
            start = self._shifted_start(opts.warm_start_shift)
        if self._opt is None:
            self._opt = self._make()
            self._set_instance()
        else:
            if self.backend == "contrib":
                self._opt.update_parameters()
            else:
                self._opt.update_params()
        if start is not None:
            import highspy

            sol = highspy.HighsSolution()
            sol.col_value = start
            sol.value_valid = True
            self._solver._solver_model.setSolution(sol)
        self._partial = partial if start is None else None  # set just before the MILP runs
        t1 = time.perf_counter()
        raw = self._run_contrib(opts, t1 - t0) if self.backend == "contrib" else self._run_appsi(opts, t1 - t0)
        self._solved_once = raw.feasible
        return raw

    def _set_partial_start(self, values: Sequence[tuple[Any, float]]) -> None:
        """Hand HiGHS the given variables' values as a sparse MIP start."""
        var_map = getattr(self._opt, "_pyomo_var_to_solver_var_map", None)
        if var_map is None:
            return
        cols = [(var_map[id(v)], float(x)) for v, x in values if id(v) in var_map]
        if cols:
            idx = np.array([c for c, _ in cols], dtype=np.int32)
            val = np.array([x for _, x in cols], dtype=np.float64)
            self._solver._solver_model.setSolution(len(cols), idx, val)

    def _time_limit(self, opts: SolverOptions, mip: bool, allowance_s: float | None = None) -> float:
        """HiGHS's ``time_limit`` for this solve. For an LP, HiGHS compares it with the run time its object
        has accumulated over all its runs, not this run's: a model re-solved for a long time (a rolling
        year) would hit an absolute limit on every solve once that much HiGHS time had passed, so the
        limit is the object's run time so far plus this solve's allowance. Its MIP solver measures the
        run's own time (measured here with highspy 1.16: a MIP given "run time so far + 8 s" ran 17 s
        after 9 s of earlier runs), so a MIP gets the allowance alone."""
        allowance = max(opts.time_limit_s if allowance_s is None else allowance_s, 0.0)
        if mip:
            return allowance
        highs = getattr(self._solver, "_solver_model", None)
        spent = float(highs.getRunTime()) if highs is not None and hasattr(highs, "getRunTime") else 0.0
        return spent + allowance

    @property
    def is_mip(self) -> bool:
        """Whether the model has integer variables (decided once)."""
        if self._is_mip is None:
            self._is_mip = any(
                v.is_integer() and not v.fixed for v in self.model.component_data_objects(pyo.Var, descend_into=True)
            )
        return self._is_mip

    def _run_contrib(self, opts: SolverOptions, translate_s: float) -> RawSolve:
        opt = self._solver
        cfg = opt.config
        cfg.load_solutions = False
        cfg.raise_exception_on_nonoptimal_result = False
        cfg.time_limit = self._time_limit(opts, self.is_mip)
        cfg.rel_gap = opts.mip_rel_gap
        cfg.threads = opts.threads
        # A rolling re-solve starts from the previous plan (a MIP start): HiGHS's primal heuristics
        # (feasibility jump, RINS, RENS) then mostly re-find what it was given; without them the
        # root node of the ieee33_3mg centralized MILP took 50-60 ms instead of 60-105 ms (same optima).
        heuristics = opts.warm_start_shift is None if opts.mip_heuristics is None else opts.mip_heuristics
        cfg.solver_options = {
            "mip_heuristic_run_feasibility_jump": heuristics,
            "mip_heuristic_run_rins": heuristics,
            "mip_heuristic_run_rens": heuristics,
        }
        t1 = time.perf_counter()
        if opts.certify_relaxation:
            raw = self._certified_relaxation(opts, translate_s, t1)
            if raw is not None:
                return raw
        if self._partial:  # after the relaxation's runs, which would drop it
            self._set_partial_start(self._partial)
        res = opt.solve(self.model)
        highs_s = time.perf_counter() - t1
        term = res.termination_condition
        has_sol = res.incumbent_objective is not None
        status = solve_status(term, has_sol)
        obj = res.incumbent_objective if has_sol else None
        if status.has_plan:
            res.solution_loader.load_vars()
        return RawSolve(
            status, term.name, obj, _gap(obj, res.objective_bound) if obj is not None else None, translate_s, highs_s
        )

    def _certified_relaxation(self, opts: SolverOptions, translate_s: float, t1: float) -> RawSolve | None:
        """Try to prove the MILP optimum from its LP relaxation; None when that fails (run the MILP).

        1. Solve the LP relaxation (objective ``z_R``, a lower bound of the MILP). Infeasible: the MILP
           is infeasible too (returned as such).
        2. Round its integer columns (integral values kept, fractional ones up: a binary that gates a
           unit or a direction then allows what the LP used), fix them, solve the LP again (``z_F``).
        3. Feasible and ``z_F - z_R <= mip_rel_gap * |z_F|``: the fixed solution is MILP-feasible and
           within the gap of the bound, i.e. as good as the MILP answer HiGHS would accept; load it.
        On the ieee33_3mg centralized re-solves this took 10-12 ms where HiGHS's MILP took 28-110 ms
        (all four dumped instances certified, objective equal to the MILP's within its gap).
        """
        opt = self._solver
        h = getattr(opt, "_solver_model", None)
        var_map = getattr(opt, "_pyomo_var_to_solver_var_map", None)
        if h is None or var_map is None:
            return None
        if self._int_cols is None:
            pairs = [
                (var_map[id(v)], v)
                for v in self.model.component_data_objects(pyo.Var, descend_into=True)
                if id(v) in var_map
            ]
            pairs.sort(key=lambda cv: cv[0])
            self._cols = [v for _, v in pairs]
            self._int_cols = np.array([c for c, v in pairs if v.is_integer()], dtype=np.int32)
        import highspy

        h.setOptionValue("solve_relaxation", True)
        h.setOptionValue("time_limit", self._time_limit(opts, False, opts.time_limit_s - (time.perf_counter() - t1)))
        h.setOptionValue("threads", opts.threads)
        try:
            h.run()
            status = h.getModelStatus()
            if status == highspy.HighsModelStatus.kInfeasible:
                return RawSolve(
                    SolveStatus.INFEASIBLE,
                    "provenInfeasible (LP relaxation)",
                    None,
                    None,
                    translate_s,
                    time.perf_counter() - t1,
                )
            if status != highspy.HighsModelStatus.kOptimal:
                return None
            z_r = h.getInfo().objective_function_value
            x = np.asarray(h.getSolution().col_value)
            z_f, x = _fixed_lp(h, self._int_cols, z_r, x)
        finally:
            h.setOptionValue("solve_relaxation", False)
        if not math.isfinite(z_f) or z_f - z_r > opts.mip_rel_gap * max(abs(z_f), 1e-9) + 1e-9:
            return None
        for col, v in enumerate(self._cols):
            if not v.fixed:
                v.set_value(float(x[col]), skip_validation=True)
        for col in self._int_cols:
            v = self._cols[col]
            if not v.fixed:
                v.set_value(float(round(v.value)), skip_validation=True)
        return RawSolve(
            SolveStatus.OPTIMAL,
            "convergenceCriteriaSatisfied (LP relaxation certified)",
            z_f,
            _gap(z_f, z_r),
            translate_s,
            time.perf_counter() - t1,
        )

    def _run_appsi(self, opts: SolverOptions, translate_s: float) -> RawSolve:
        opt = self._solver
        cfg = opt.config
        cfg.load_solution = False
        cfg.time_limit = self._time_limit(opts, self.is_mip)
        cfg.mip_gap = opts.mip_rel_gap
        opt.highs_options = {"threads": opts.threads}
        t1 = time.perf_counter()
        res = opt.solve(self.model)
        highs_s = time.perf_counter() - t1
        term = _appsi_terminations().get(res.termination_condition, TC.unknown)
        obj = res.best_feasible_objective
        has_sol = obj is not None and math.isfinite(obj)
        status = solve_status(term, has_sol)
        if status.has_plan:
            res.solution_loader.load_vars()
        else:
            obj = None
        return RawSolve(
            status,
            term.name,
            obj,
            _gap(obj, res.best_objective_bound) if obj is not None else None,
            translate_s,
            highs_s,
        )


@cache
def _appsi_terminations() -> dict[Any, TC]:
    """appsi's termination as Pyomo's (imported on first use: appsi is the optional backend)."""
    from pyomo.contrib.appsi.base import TerminationCondition as ATC

    return {
        ATC.optimal: TC.convergenceCriteriaSatisfied,
        ATC.maxTimeLimit: TC.maxTimeLimit,
        ATC.infeasible: TC.provenInfeasible,
        ATC.infeasibleOrUnbounded: TC.infeasibleOrUnbounded,
        ATC.unbounded: TC.unbounded,
        ATC.maxIterations: TC.iterationLimit,
        ATC.objectiveLimit: TC.objectiveLimit,
        ATC.error: TC.error,
        ATC.interrupted: TC.interrupted,
    }
