r"""Branch losses as a piecewise-linear function of the branch flow (HiGHS solves no MIQP).

A branch of resistance ``r`` (ohm) at nominal voltage ``V`` (kV) carrying ``P`` MW (and ``Q`` Mvar) loses
``r (P^2 + Q^2) / V^2`` MW. Inside a MILP the convex square is replaced by the maximum of tangents at
``n`` cell centres of ``[-F, F]`` (``F`` the largest flow the branch can carry):

.. math::
    \ell \ge \frac{r}{V^2} \left(2 x_k f - x_k^2\right)\quad \forall k,\qquad \ell \ge 0

An outer approximation: it never overestimates, and it underestimates ``r f^2 / V^2`` by at most
``r h^2 / (4 V^2)`` with ``h = 2F/n`` (the gap ``r (f - x_k)^2 / V^2`` peaks half-way between two tangent
points and at both ends, where ``|f - x_k| = h/2``): :func:`loss_error_bound_mw`. The number of points is
the fewest that meets a given bound (:func:`tangent_points`). A minimiser pushes ``\ell`` down onto the
tangents; where losses only appear in a bound (``Loss <= eps``), ``\ell`` may sit above them, which only
makes the bound harder to meet, never easier.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pyomo.environ as pyo


def loss_coefficient_per_mw(r_ohm: float, v_kv: float) -> float:
    """``r / V^2``: MW lost per MW^2 of flow (or per Mvar^2)."""
    if v_kv <= 0 or r_ohm < 0:
        raise ValueError(f"loss coefficient: need r_ohm >= 0 and v_kv > 0, got {r_ohm}, {v_kv}")
    return r_ohm / (v_kv * v_kv)


def loss_error_bound_mw(coef_per_mw: float, max_flow_mw: float, n_points: int) -> float:
    """The largest underestimate (MW) of ``coef f^2`` on ``[-F, F]`` by ``n_points`` cell-centre tangents."""
    if n_points < 1:
        raise ValueError("loss_error_bound_mw: n_points must be >= 1")
    h = 2.0 * max_flow_mw / n_points
    return coef_per_mw * h * h / 4.0


def tangent_points(coef_per_mw: float, max_flow_mw: float, max_error_mw: float) -> list[float]:
    """The fewest cell-centre tangent points over ``[-F, F]`` whose error bound is <= ``max_error_mw``."""
    if max_error_mw <= 0:
        raise ValueError("tangent_points: max_error_mw must be positive")
    span = 2.0 * max_flow_mw
    n = max(1, math.ceil(math.sqrt(coef_per_mw * span * span / (4.0 * max_error_mw)) - 1e-12))
    h = span / n
    return [-max_flow_mw + (k + 0.5) * h for k in range(n)]


def add_pwl_loss(
    b: pyo.Block,
    name: str,
    index: pyo.Set,
    flow: Callable[..., Any],
    coef_per_mw: Callable[..., float],
    max_flow_mw: Callable[..., float],
    max_error_mw: float,
) -> None:
    """``b.<name>[i] >= 0`` (MW): the PWL loss of the flow ``flow(*i)`` for every ``i`` in ``index``, with
    the tangents of :func:`tangent_points` (``coef_per_mw(*i)``, ``max_flow_mw(*i)``: the branch's data).
    Rows: ``b.<name>_con``. For ``P^2 + Q^2`` add one such loss per flow and sum them."""
    var = pyo.Var(index, bounds=(0.0, None))
    b.add_component(name, var)
    con = pyo.ConstraintList()
    b.add_component(f"{name}_con", con)
    for i in index:
        key = i if isinstance(i, tuple) else (i,)
        coef = coef_per_mw(*key)
        if coef <= 0.0:
            continue
        f = flow(*key)
        for x in tangent_points(coef, max(max_flow_mw(*key), 1e-6), max_error_mw):
            con.add(var[i] >= coef * (2.0 * x * f - x * x))
