"""Strategy ``admm``: one exchange-ADMM iteration, split between the parties that do its parts.

No mosaik, no crypto. The same two classes run the iterations of :class:`~ems_controllers.admm.model.
AdmmSolver` (all parties in one object, exact sums) and of the mosaik agents of :mod:`ems_controllers.
admm.sim` (each MG in its own simulator, the sums over Paillier ciphertexts), so both follow one algorithm.

* :class:`MgIterate` - MG n's part: its local QP (:class:`~ems_controllers.admm.model.LocalQp`), its own
  last EEP ``x_n^k`` (private: it never leaves the MG in plaintext), and each iteration's contribution to
  the aggregate: ``x_n^{k+1}`` and ``||x_n^{k+1} - x_n^k||^2`` (:class:`Contribution`).
* :class:`Coordinator` - the authority's part: from the *sums* of the contributions alone it forms the
  average ``xbar^{k+1}``, the scaled dual ``u^{k+1} = u^k + xbar^{k+1}``, both residuals, the stopping
  decision and residual-balanced rho, and hands back a :class:`Broadcast`.

The dual residual from sums only (Boyd et al. 2011, 7.3.2): with ``dx_n = x_n^{k+1} - x_n^k`` and
``dxbar = xbar^{k+1} - xbar^k`` = mean of the ``dx_n``,
``s = rho * sqrt(sum_n ||dx_n - dxbar||^2) = rho * sqrt(sum_n ||dx_n||^2 - N*||dxbar||^2)``, so the
authority needs only ``sum_n ||dx_n||^2`` next to the sum of the EEPs (one more value in the same
encrypted vector). Over-relaxed (alpha, :class:`MgIterate`'s anchor p_n), ``dx_n = x_n^{k+1} - p_n^k``
and ``s = rho*alpha*sqrt(sum_n ||dx_n||^2 - N*||dxbar||^2)`` = ``rho*||z^{k+1} - z^k||`` (the same for
alpha = 1, bit for bit). A third value, ``sum_n ||x_n^{k+1}||^2``, gives the relative tolerance
``tol_rel*||x||`` (Boyd 3.3.1); the stop, rho's balancing and the dual update ``u += alpha*xbar`` are
the authority's (:meth:`Coordinator.update`).

Warm start between planning instants: both sides keep their part of the last instant's final state and
move it by the same rule (:func:`carry`): the authority ``xbar``, ``u`` and ``rho``, each MG its own EEP.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ems_controllers.admm.model import AdmmMg, AdmmSettings, LocalQp
from ems_controllers.core.types import SolveStatus

FloatArray = npt.NDArray[np.float64]


def carry(values: Sequence[float], steps: int, n_steps: int) -> tuple[float, ...] | None:
    """A vector of the last instant as the start of one ``steps`` steps later over ``n_steps`` steps:
    moved ``steps`` earlier (the last value repeats) when the horizons overlap, kept as it is when they do
    not (a day-ahead plan starts from the day before's); None when the lengths differ (start afresh)."""
    n = len(values)
    if n != n_steps or steps < 0:
        return None
    if steps >= n:
        return tuple(float(v) for v in values)
    return tuple(float(values[min(i + steps, n - 1)]) for i in range(n))


@dataclass(frozen=True)
class Broadcast:
    """What the authority tells every MG after an iteration (plaintext: the average is public).

    ``iteration`` counts the local solves behind this average (0: the start of an instant, no solve yet);
    ``rho`` is the penalty of the *next* local solves; ``done``: stop and keep the last local plan."""

    iteration: int
    xbar: tuple[float, ...]
    u: tuple[float, ...]
    rho: float
    done: bool = False
    converged: bool = False

    def to_list(self) -> list[float]:
        """The wire form: iteration, rho, done, converged, then xbar and u."""
        return [float(self.iteration), self.rho, float(self.done), float(self.converged), *self.xbar, *self.u]

    @classmethod
    def from_list(cls, data: Sequence[float]) -> Broadcast:
        n = (len(data) - 4) // 2
        if len(data) != 4 + 2 * n or n < 1:
            raise ValueError(f"a broadcast has 4 + 2*T values, got {len(data)}")
        return cls(
            int(data[0]),
            tuple(float(v) for v in data[4 : 4 + n]),
            tuple(float(v) for v in data[4 + n :]),
            float(data[1]),
            bool(data[2]),
            bool(data[3]),
        )


@dataclass(frozen=True)
class Contribution:
    """MG n's addend to one iteration's aggregate: its new EEP ``x_n^{k+1}``, its squared step
    ``||x_n^{k+1} - p_n^k||^2`` from its anchor (:class:`MgIterate`; its last EEP when unrelaxed) and its
    squared norm ``||x_n^{k+1}||^2`` (MW^2), for the relative tolerances."""

    x_mw: tuple[float, ...]
    dx_sq: float
    x_sq: float = 0.0

    def as_vector(self) -> list[float]:
        return [*self.x_mw, self.dx_sq, self.x_sq]


@dataclass(frozen=True)
class Trace:
    """One planning instant's iterations as the authority saw them."""

    primal: tuple[float, ...]
    dual: tuple[float, ...]
    rho: tuple[float, ...]  # the rho each iteration's local solves used
    converged: bool
    final: Broadcast

    @property
    def iterations(self) -> int:
        return len(self.primal)

    @property
    def price_per_mw(self) -> tuple[float, ...]:
        """y = rho*u, the price of exchanged power per step."""
        return tuple(self.final.rho * u for u in self.final.u)

    @property
    def gap_mw(self) -> float:
        """max_t |sum_n x_n[t]| of the final iterate, from its average."""
        return 0.0 if not self.final.xbar else max(abs(v) for v in self.final.xbar)


class MgIterate:
    """MG n's part of ADMM: its local QP, its own last EEP and its anchor (see the module docstring).

    The anchor ``p_n^k = z_n^k + xbar^k`` is the point the local solve is pulled towards before the
    average and the dual are taken off: ``centre = p_n^k - xbar^k - u^k``. Unrelaxed (``relaxation`` 1)
    it is the MG's last EEP ``x_n^k``, the spec's form; over-relaxed (Boyd et al. 2011, 3.4.3) with
    alpha it is moved when the next average arrives: ``p^{k+1} = alpha*x^{k+1} + (1 - alpha)*(p^k - xbar^k
    + xbar^{k+1})``, which is ``z^{k+1} + xbar^{k+1}`` with ``z^{k+1} = xhat - mean(xhat)``,
    ``xhat = alpha*x^{k+1} + (1 - alpha)*z^k``. Private to the MG, like its EEP."""

    def __init__(self, dt_h: float, relaxation: float = 1.0, share_norm: bool = False) -> None:
        """``share_norm``: add ``||x_n||^2`` to the contribution (only a relative tolerance needs it; else
        0 is sent, so the authority learns no more than with the spec's form)."""
        self.dt_h = dt_h
        self.relaxation = relaxation
        self.share_norm = share_norm
        self.qp: LocalQp | None = None
        self.mg: AdmmMg | None = None
        self.x: FloatArray = np.zeros(0)
        self.anchor: FloatArray = np.zeros(0)
        self._xbar: FloatArray | None = None  # the average the last solve was centred on
        self._moved = True  # the anchor is up to date with the last solve
        self.highs_s = 0.0

    def start(self, mg: AdmmMg, start_x: Sequence[float] | None) -> None:
        """A new planning instant: the MG's data, and its EEP to start from (None: zeros)."""
        if self.qp is None or self.qp.key != (mg.structure_key(), self.dt_h):
            self.qp = LocalQp(mg, self.dt_h)
        self.qp.set_data(mg)
        self.mg = mg
        self.x = np.array(start_x, dtype=float) if start_x is not None else np.zeros(mg.n_steps)
        self.anchor = self.x.copy()
        self._xbar = None
        self._moved = True
        self.highs_s = 0.0

    def iterate(self, b: Broadcast) -> tuple[SolveStatus, Contribution]:
        """The local solve with the broadcast's rho and centre ``p_n^k - xbar^k - u^k``."""
        assert self.qp is not None
        xbar = np.asarray(b.xbar, dtype=float)
        if not self._moved and self._xbar is not None:
            a = self.relaxation
            self.anchor = a * self.x + (1.0 - a) * (self.anchor - self._xbar + xbar)
        self._moved = True
        self._xbar = xbar
        centre = self.anchor - xbar - np.asarray(b.u)
        status, x_new, highs_s = self.qp.solve(b.rho, centre)
        self.highs_s += highs_s
        if not status.has_plan:
            return status, Contribution(tuple(float(v) for v in self.x), 0.0, self._norm_sq(self.x))
        dx_sq = float(np.sum((x_new - self.anchor) ** 2))
        self.x = x_new
        self._moved = False
        return status, Contribution(tuple(float(v) for v in x_new), dx_sq, self._norm_sq(x_new))

    def _norm_sq(self, x: FloatArray) -> float:
        return float(x @ x) if self.share_norm else 0.0


@dataclass
class Coordinator:
    """The authority's part of ADMM over ``n_mgs`` MGs and ``n_steps`` steps (see the module docstring)."""

    settings: AdmmSettings
    n_mgs: int
    n_steps: int
    xbar: FloatArray = field(init=False)
    u: FloatArray = field(init=False)
    rho: float = field(init=False)
    primal: list[float] = field(default_factory=list)
    dual: list[float] = field(default_factory=list)
    rhos: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.xbar = np.zeros(self.n_steps)
        self.u = np.zeros(self.n_steps)
        self.rho = self.settings.rho

    def start(self, xbar: Sequence[float] | None, u: Sequence[float] | None, rho: float | None) -> Broadcast:
        """A new planning instant from a carried state (None: afresh); the first broadcast."""
        fresh = xbar is None or u is None or rho is None
        self.xbar = np.zeros(self.n_steps) if fresh else np.array(xbar, dtype=float)
        self.u = np.zeros(self.n_steps) if fresh else np.array(u, dtype=float)
        self.rho = self.settings.rho if fresh or rho is None else float(rho)
        self.primal, self.dual, self.rhos = [], [], []
        return self._broadcast(False, False)

    def eps(self, x_sq_sum: float = 0.0) -> tuple[float, float]:
        """(eps_pri, eps_dual) of Boyd et al. 2011, 3.3.1, for the exchange form stacked over N MGs and T
        steps: ``sqrt(N*T)*tol_primal_mw + tol_rel*||x||`` and ``sqrt(N*T)*tol_dual + tol_rel*||y||``, with
        ``||x|| = sqrt(sum_n ||x_n||^2)`` (MW) and ``||y|| = sqrt(N)*rho*||u||``, every MG's price."""
        cfg = self.settings
        root = math.sqrt(self.n_mgs * self.n_steps)
        eps_pri, eps_dual = root * cfg.tol_primal_mw, root * cfg.tol_dual
        if cfg.tol_rel > 0.0:
            eps_pri += cfg.tol_rel * math.sqrt(max(x_sq_sum, 0.0))
            eps_dual += cfg.tol_rel * math.sqrt(self.n_mgs) * self.rho * float(np.linalg.norm(self.u))
        return eps_pri, eps_dual

    def update(self, x_sum: Sequence[float], dx_sq_sum: float, x_sq_sum: float = 0.0) -> Broadcast:
        """One iteration from the sums of the MGs' contributions: average, dual, residuals, stop, rho."""
        cfg, n, a = self.settings, self.n_mgs, self.settings.relaxation
        xbar_new = np.asarray(x_sum, dtype=float) / n
        dxbar = xbar_new - self.xbar
        r = math.sqrt(n) * float(np.linalg.norm(xbar_new))
        s = self.rho * a * math.sqrt(max(dx_sq_sum - n * float(dxbar @ dxbar), 0.0))
        self.primal.append(r)
        self.dual.append(s)
        self.rhos.append(self.rho)
        self.xbar, self.u = xbar_new, self.u + a * xbar_new
        eps_pri, eps_dual = self.eps(x_sq_sum)
        if r <= eps_pri and (cfg.stop == "primal" or s <= eps_dual):
            return self._broadcast(True, True)
        if len(self.primal) >= cfg.max_iter:
            return self._broadcast(True, False)
        if cfg.residual_balancing and len(self.primal) % cfg.balance_every_iters == 0:
            if cfg.balancing == "relative":
                self.rho, self.u = balance_rho_relative(self.rho, self.u, r / eps_pri, s / eps_dual, cfg)
            else:
                self.rho, self.u = balance_rho(self.rho, self.u, r, s, cfg)
        return self._broadcast(False, False)

    def abort(self) -> Broadcast:
        """Stop now (a local solve failed): not converged."""
        return self._broadcast(True, False)

    def _broadcast(self, done: bool, converged: bool) -> Broadcast:
        return Broadcast(
            len(self.primal),
            tuple(float(v) for v in self.xbar),
            tuple(float(v) for v in self.u),
            self.rho,
            done,
            converged,
        )

    def trace(self, final: Broadcast) -> Trace:
        return Trace(tuple(self.primal), tuple(self.dual), tuple(self.rhos), final.converged, final)


def balance_rho(rho: float, u: FloatArray, r: float, s: float, cfg: AdmmSettings) -> tuple[float, FloatArray]:
    """Residual balancing (Boyd 3.4.1); the scaled dual is rescaled so y = rho*u is unchanged."""
    if r > cfg.mu * s and rho * cfg.tau <= cfg.rho_max:
        return rho * cfg.tau, u / cfg.tau
    if s > cfg.mu * r and rho / cfg.tau >= cfg.rho_min:
        return rho / cfg.tau, u * cfg.tau
    return rho, u


def balance_rho_relative(
    rho: float, u: FloatArray, r_rel: float, s_rel: float, cfg: AdmmSettings
) -> tuple[float, FloatArray]:
    """Normalised residual balancing (Wohlberg 2017; OSQP's rule, Stellato et al. 2020, 5.2): each
    residual over its own tolerance, and when one is ``mu`` times the other, rho scaled by the square root
    of their ratio (at most ``tau_max``, within ``rho_min``..``rho_max``); u rescaled so y = rho*u holds."""
    ratio = _ratio(r_rel, s_rel, cfg.tau_max**2)
    if ratio > cfg.mu or ratio < 1.0 / cfg.mu:
        tau = min(max(math.sqrt(ratio), 1.0 / cfg.tau_max), cfg.tau_max)
        new = min(max(rho * tau, cfg.rho_min), cfg.rho_max)
        return new, u * (rho / new)
    return rho, u


def _ratio(a: float, b: float, big: float) -> float:
    """a/b, with ``big`` (or 1/big) where one of them is 0 and 1 where both are."""
    if a > 0.0 and b > 0.0:
        return a / b
    if a > 0.0:
        return big
    return 1.0 / big if b > 0.0 else 1.0
