"""Pyomo constraint blocks of a microgrid scheduling problem, written once and used by every strategy.

Each ``add_*`` function adds one block of variables, constraints and a per-step cost expression to a
Pyomo ``Block`` (or model) ``b``, over the ordered time set ``T`` (``0..n-1``) of steps of ``dt_h`` hours.
Nothing assumes ``dt_h = 1``: energies are powers times ``dt_h``, ramps are MW/h times ``dt_h``.

Built once, re-solved many times: everything a rolling-horizon EMS changes between solves (forecasts,
prices, initial state, where the day's final-energy target falls) is a *mutable* ``Param``; the unit
data (sizes, cost coefficients, ramps), ``dt_h`` and the number of steps are fixed when the block is
built. :func:`set_party_data` writes a :class:`PartyProblem` and a :class:`Horizon` into those params.

Sign conventions (as in ``core.types``): generation positive, battery charging positive
(``battery_p_mw = P_ch - P_dis``), import positive when the party buys at its point of common
coupling (PCC).

Component names on a party block (the contract the models and tests rely on):

=====================  ==============================  ==========================================
symbol                 attribute                       meaning
=====================  ==============================  ==========================================
P_t, u_t, s_t, c_t     dg_p_mw, dg_on, dg_start,       diesel output, on/off, start-up, cost rate
                       dg_cost_rate_per_h
P_-1, u_-1             dg_p_prev_mw, dg_on_prev        diesel output/state before the horizon
Pch_t, Pdis_t, y_t     bat_ch_mw, bat_dis_mw,          battery charge/discharge power, charging
                       bat_charging                    binary
E_t, E_-1, Efin_t      bat_e_mwh, bat_e0_mwh,          energy at the end of step t, initial
                       bat_e_final_req_mwh             energy, per-step lower bound for the target
PV_t, W_t              pv_mw, wind_mw                  renewable power used
PVf_t, Wf_t            pv_fc_mw, wind_fc_mw            renewable forecast
L_t, S_t               load_mw, shed_mw                load forecast, load shed
B_t, X_t, z_t          buy_mw, sell_mw, buying         exchange with the level above (add_exchange)
pi_b_t, pi_s_t         price_buy_per_mwh,              exchange prices
                       price_sell_per_mwh
M_t                    exch_cap_mw                     big-M / capacity of the exchange
R_t, D+_t, D-_t        tie_target_mw, tie_up_mw,       tied flow: target, deviations, price
pi^dev                 tie_down_mw, tie_price_per_mwh  (add_tied_exchange)
cost_t                 <block>_cost (Expression)       per-step cost of the block, in money
=====================  ==============================  ==========================================
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import pyomo.environ as pyo

from ems_controllers.core.types import (
    Battery,
    DieselUnit,
    Horizon,
    Microgrid,
    PartyPlan,
    PartyProblem,
)

log = logging.getLogger(__name__)

_E_TOL_MWH = 1e-6  # measured SoC this far outside [e_min, e_max] is clamped silently; beyond: logged


# --------------------------------------------------------------------------------------------------
# Diesel
# --------------------------------------------------------------------------------------------------


def _pwl_range(unit: DieselUnit) -> tuple[float, float]:
    lo = unit.p_min_mw if unit.p_min_mw > 0 else 0.0
    return lo, unit.p_max_mw


def pwl_error_bound(unit: DieselUnit, n_points: int) -> float:
    """Worst-case underestimate ($/h) of the diesel's cost rate by ``n_points`` tangents.

    Tangent points sit at the centres of ``n`` equal cells of ``[lo, P_max]`` (``lo = P_min`` or 0),
    spacing ``h = (P_max - lo)/n``. The gap between ``a2 P^2`` and the tangent at ``x`` is
    ``a2 (P - x)^2``; it peaks half-way between two points and at both ends of the range, where
    ``|P - x| = h/2``: bound = ``a2 h^2 / 4``, attained exactly (the bound is tight).
    """
    if n_points < 1:
        raise ValueError("pwl_error_bound: n_points must be >= 1")
    lo, hi = _pwl_range(unit)
    h = (hi - lo) / n_points
    return unit.a2_per_mw2h * h * h / 4.0


def pwl_points(unit: DieselUnit, max_error_per_h: float) -> list[float]:
    """Fewest tangent points (cell centres over ``[lo, P_max]``) with :func:`pwl_error_bound` <= max.

    ``n = ceil(sqrt(a2 (P_max - lo)^2 / (4 max_error)))``, at least 1 (one point is exact for a2 = 0).
    """
    if max_error_per_h <= 0:
        raise ValueError("pwl_points: max_error_per_h must be positive")
    lo, hi = _pwl_range(unit)
    span = hi - lo
    n = max(1, math.ceil(math.sqrt(unit.a2_per_mw2h * span * span / (4.0 * max_error_per_h)) - 1e-12))
    h = span / n
    return [lo + (k + 0.5) * h for k in range(n)]


def add_diesel(b: pyo.Block, unit: DieselUnit, T: pyo.Set, dt_h: float, *, max_error_per_h: float) -> None:
    r"""Diesel generator with on/off, start-up, ramps and a piecewise-linear cost.

    .. math::
        P_{min} u_t \le P_t \le P_{max} u_t, \qquad u_t \in \{0,1\}

        s_t \ge u_t - u_{t-1},\quad s_t \le u_t,\quad s_t \le 1 - u_{t-1},\quad 0 \le s_t \le 1

        P_t - P_{t-1} \le RU\,\Delta t\, u_{t-1} + SU (1 - u_{t-1}),\qquad SU = \max(P_{min}, RU\,\Delta t)

        P_{t-1} - P_t \le RD\,\Delta t\, u_t + SD (1 - u_t),\qquad SD = \max(P_{min}, RD\,\Delta t)

        c_t \ge a_2 (2 x_k P_t - x_k^2 u_t) + a_1 P_t + a_0 u_t \quad \forall k

        \mathrm{cost}_t = c_t \Delta t + C_{su} s_t

    ``u_{-1} = [P_{-1} > 0]`` and ``P_{-1}`` are mutable params (``dg_on_prev``, ``dg_p_prev_mw``).
    The three start-up rows make ``s_t = u_t (1 - u_{t-1})`` exactly, so ``s`` is continuous.

    Ramp rule at state changes: a unit that starts may reach at most ``SU = max(P_min, RU dt)`` in its
    first step; a unit that stops must be at most ``SD = max(P_min, RD dt)`` in its last step on. So a
    start or stop is always possible (it may jump between 0 and P_min even when ``RU dt < P_min``) but
    never faster than the ramp once above P_min. (The rule-based EMS lets a start jump to any level.)
    Ramp rows are omitted when ``ramp dt >= P_max`` (never binding).

    PWL cost: tangents of ``a2 P^2 + a1 P + a0`` at the points of :func:`pwl_points`; multiplied
    through by ``u`` so that ``c_t >= 0`` is the only bound when off. This is an outer approximation: it
    underestimates the true rate by at most :func:`pwl_error_bound` ($/h), i.e. at most that times
    ``dt_h`` per step (``max_error_per_h`` is SolverOptions.pwl_max_error_per_h).

    ==========  ===================  =====================================
    P_t         dg_p_mw              output (MW)
    u_t         dg_on                on/off binary
    s_t         dg_start             start-up indicator
    c_t         dg_cost_rate_per_h   cost rate ($/h)
    P_-1, u_-1  dg_p_prev_mw,        state before the horizon (mutable)
                dg_on_prev
    cost_t      dg_cost              per-step cost ($)
    ==========  ===================  =====================================
    """
    _add_diesel_commitment(b, unit, T)
    _add_diesel_ramps(b, unit, T, dt_h)
    _add_diesel_cost(b, unit, T, dt_h, max_error_per_h)


def _dg_on_before(b: pyo.Block, T: pyo.Set, t: Any) -> Any:
    """``u_{t-1}``: the state before the horizon at its first step."""
    return b.dg_on_prev if t == T.first() else b.dg_on[t - 1]


def _dg_p_before(b: pyo.Block, T: pyo.Set, t: Any) -> Any:
    """``P_{t-1}``: the output before the horizon at its first step."""
    return b.dg_p_prev_mw if t == T.first() else b.dg_p_mw[t - 1]


def _add_diesel_commitment(b: pyo.Block, unit: DieselUnit, T: pyo.Set) -> None:
    """Output within ``[P_min u_t, P_max u_t]`` and the start-up rows (``add_diesel``)."""
    p_max, p_min = unit.p_max_mw, unit.p_min_mw
    b.dg_p_mw = pyo.Var(T, bounds=(0.0, p_max))
    b.dg_on = pyo.Var(T, domain=pyo.Binary)
    if unit.must_run:  # a unit that never stops (e.g. a CHP): u_t = 1
        for t in T:
            b.dg_on[t].fix(1)
    b.dg_start = pyo.Var(T, bounds=(0.0, 1.0))
    b.dg_cost_rate_per_h = pyo.Var(T)
    b.dg_p_prev_mw = pyo.Param(mutable=True, initialize=0.0)
    b.dg_on_prev = pyo.Param(mutable=True, initialize=0.0)

    b.dg_p_max_con = pyo.Constraint(T, rule=lambda b, t: b.dg_p_mw[t] <= p_max * b.dg_on[t])
    if p_min > 0:
        b.dg_p_min_con = pyo.Constraint(T, rule=lambda b, t: b.dg_p_mw[t] >= p_min * b.dg_on[t])

    b.dg_start_con = pyo.Constraint(T, rule=lambda b, t: b.dg_start[t] >= b.dg_on[t] - _dg_on_before(b, T, t))
    b.dg_start_on_con = pyo.Constraint(T, rule=lambda b, t: b.dg_start[t] <= b.dg_on[t])
    b.dg_start_off_con = pyo.Constraint(T, rule=lambda b, t: b.dg_start[t] + _dg_on_before(b, T, t) <= 1)


def _add_diesel_ramps(b: pyo.Block, unit: DieselUnit, T: pyo.Set, dt_h: float) -> None:
    """The ramp rows with their start-up and shut-down allowances ``SU``, ``SD`` (``add_diesel``)."""
    p_max, p_min = unit.p_max_mw, unit.p_min_mw
    ru, rd = unit.ramp_up_mw_per_h * dt_h, unit.ramp_down_mw_per_h * dt_h
    if ru < p_max:
        su = max(p_min, ru)
        b.dg_ramp_up_con = pyo.Constraint(
            T, rule=lambda b, t: b.dg_p_mw[t] - _dg_p_before(b, T, t) + (su - ru) * _dg_on_before(b, T, t) <= su
        )
    if rd < p_max:
        sd = max(p_min, rd)
        b.dg_ramp_down_con = pyo.Constraint(
            T, rule=lambda b, t: _dg_p_before(b, T, t) - b.dg_p_mw[t] + (sd - rd) * b.dg_on[t] <= sd
        )


def _add_diesel_cost(b: pyo.Block, unit: DieselUnit, T: pyo.Set, dt_h: float, max_error_per_h: float) -> None:
    """The tangents of the cost rate and the per-step cost ``dg_cost`` (``add_diesel``)."""
    a2, a1, a0 = unit.a2_per_mw2h, unit.a1_per_mwh, unit.a0_per_h
    xs = pwl_points(unit, max_error_per_h) if a2 > 0 else [0.0]
    K = range(len(xs))
    b.dg_pwl_con = pyo.Constraint(
        K,
        T,
        rule=lambda b, k, t: (
            b.dg_cost_rate_per_h[t] >= (2 * a2 * xs[k] + a1) * b.dg_p_mw[t] + (a0 - a2 * xs[k] ** 2) * b.dg_on[t]
        ),
    )
    b.dg_pwl_zero_con = pyo.Constraint(T, rule=lambda b, t: b.dg_cost_rate_per_h[t] >= 0)
    b.dg_cost = pyo.Expression(T, rule=lambda b, t: dt_h * b.dg_cost_rate_per_h[t] + unit.startup_cost * b.dg_start[t])


# --------------------------------------------------------------------------------------------------
# Battery
# --------------------------------------------------------------------------------------------------


def add_battery(b: pyo.Block, unit: Battery, T: pyo.Set, dt_h: float) -> None:
    r"""Battery with exclusive charge/discharge and SoC dynamics.

    .. math::
        0 \le P^{ch}_t \le \bar P^{ch} y_t,\qquad 0 \le P^{dis}_t \le \bar P^{dis} (1 - y_t),\qquad y_t\in\{0,1\}

        E_t = E_{t-1} + (\eta_{ch} P^{ch}_t - P^{dis}_t/\eta_{dis})\,\Delta t,\qquad E_{-1} = E_0

        E_{min} \le E_t \le E_{max},\qquad E_t \ge E^{fin}_t

    ``E_t`` is the energy at the *end* of step t. ``E_0`` (``bat_e0_mwh``) is the measured
    ``UnitState.e_mwh`` or the battery's ``e_init_mwh``. ``E^{fin}_t`` (``bat_e_final_req_mwh``) is a
    mutable per-step lower bound: ``e_final_mwh`` at ``Horizon.final_step`` and ``E_min`` elsewhere, so
    the day's target moves with the rolling window without a rebuild. The target is a lower bound
    (``>=``): ending the day fuller is allowed. The battery adds no cost (cost_t = 0).

    ==========  ===================  ==========================
    P^ch, P^dis bat_ch_mw, bat_dis_mw  charge/discharge (MW)
    y_t         bat_charging          charging binary
    E_t         bat_e_mwh             energy (MWh)
    E_0         bat_e0_mwh            initial energy (mutable)
    E^fin_t     bat_e_final_req_mwh   target lower bound (mutable)
    ==========  ===================  ==========================
    """
    eta_ch, eta_dis = unit.eta_ch, unit.eta_dis
    b.bat_ch_mw = pyo.Var(T, bounds=(0.0, unit.p_ch_max_mw))
    b.bat_dis_mw = pyo.Var(T, bounds=(0.0, unit.p_dis_max_mw))
    b.bat_charging = pyo.Var(T, domain=pyo.Binary)
    b.bat_e_mwh = pyo.Var(T, bounds=(unit.e_min_mwh, unit.e_max_mwh))
    b.bat_e0_mwh = pyo.Param(mutable=True, initialize=unit.e_init_mwh)
    b.bat_e_final_req_mwh = pyo.Param(T, mutable=True, initialize=unit.e_min_mwh)

    b.bat_ch_con = pyo.Constraint(T, rule=lambda b, t: b.bat_ch_mw[t] <= unit.p_ch_max_mw * b.bat_charging[t])
    b.bat_dis_con = pyo.Constraint(
        T, rule=lambda b, t: b.bat_dis_mw[t] + unit.p_dis_max_mw * b.bat_charging[t] <= unit.p_dis_max_mw
    )

    def soc_rule(b, t):
        e_prev = b.bat_e0_mwh if t == T.first() else b.bat_e_mwh[t - 1]
        return b.bat_e_mwh[t] == e_prev + eta_ch * dt_h * b.bat_ch_mw[t] - dt_h / eta_dis * b.bat_dis_mw[t]

    b.bat_soc_con = pyo.Constraint(T, rule=soc_rule)
    b.bat_final_con = pyo.Constraint(T, rule=lambda b, t: b.bat_e_mwh[t] >= b.bat_e_final_req_mwh[t])


# --------------------------------------------------------------------------------------------------
# Renewables, load, exchange, balance
# --------------------------------------------------------------------------------------------------


def add_renewables(b: pyo.Block, mg: Microgrid, T: pyo.Set, dt_h: float) -> None:
    r"""PV and wind, curtailable down to zero at a penalty (or not at all: ``mg.pv_curtailable`` /
    ``mg.wind_curtailable`` False fix the used power to the forecast).

    .. math::
        0 \le PV_t \le PV^f_t,\qquad 0 \le W_t \le W^f_t

        \mathrm{curt}_t = (PV^f_t - PV_t) + (W^f_t - W_t),\qquad
        \mathrm{cost}_t = \pi^{curt}\, \mathrm{curt}_t\, \Delta t

    The forecast bounds are mutable variable bounds (``pv_fc_mw``, ``wind_fc_mw``), not rows.
    ``pi^curt`` = ``mg.res_curtailment_price_per_mwh``.

    ==========  ================  ===================
    PV_t, W_t   pv_mw, wind_mw    used power (MW)
    PVf, Wf     pv_fc_mw,         forecast (mutable)
                wind_fc_mw
    curt_t      res_curtailed_mw  curtailed (MW)
    cost_t      res_cost          penalty ($)
    ==========  ================  ===================
    """
    b.pv_fc_mw = pyo.Param(T, mutable=True, initialize=0.0)
    b.wind_fc_mw = pyo.Param(T, mutable=True, initialize=0.0)
    b.pv_mw = pyo.Var(T, bounds=lambda b, t: (0.0 if mg.pv_curtailable else b.pv_fc_mw[t], b.pv_fc_mw[t]))
    b.wind_mw = pyo.Var(T, bounds=lambda b, t: (0.0 if mg.wind_curtailable else b.wind_fc_mw[t], b.wind_fc_mw[t]))
    b.res_curtailed_mw = pyo.Expression(
        T, rule=lambda b, t: b.pv_fc_mw[t] - b.pv_mw[t] + b.wind_fc_mw[t] - b.wind_mw[t]
    )
    price = mg.res_curtailment_price_per_mwh
    b.res_cost = pyo.Expression(T, rule=lambda b, t: price * dt_h * b.res_curtailed_mw[t])


def add_load_curtailment(b: pyo.Block, mg: Microgrid, T: pyo.Set, dt_h: float) -> None:
    r"""Load forecast with shedding at a penalty.

    .. math::
        0 \le S_t \le L_t,\qquad \mathrm{cost}_t = \pi^{shed} S_t \Delta t

    ``L_t`` is the mutable ``load_mw``; ``pi^shed`` = ``mg.load_shed_price_per_mwh``. An infinite price
    disables shedding (``S_t`` fixed to 0, no cost term).

    =====  ==========  =================
    L_t    load_mw     load (mutable)
    S_t    shed_mw     load shed (MW)
    cost   shed_cost   penalty ($)
    =====  ==========  =================
    """
    b.load_mw = pyo.Param(T, mutable=True, initialize=0.0)
    price = mg.load_shed_price_per_mwh
    if math.isinf(price):
        b.shed_mw = pyo.Var(T, bounds=(0.0, 0.0))
        b.shed_cost = pyo.Expression(T, rule=lambda b, t: 0.0)
        return
    b.shed_mw = pyo.Var(T, bounds=lambda b, t: (0.0, b.load_mw[t]))
    b.shed_cost = pyo.Expression(T, rule=lambda b, t: price * dt_h * b.shed_mw[t])


def add_exchange(b: pyo.Block, pcc_max_mw: float, T: pyo.Set, dt_h: float) -> None:
    r"""Exchange with the level above, buy and sell never at once.

    .. math::
        0 \le B_t \le M_t z_t,\qquad 0 \le X_t \le M_t (1 - z_t),\qquad z_t \in \{0,1\}

        \mathrm{cost}_t = (\pi^b_t B_t - \pi^s_t X_t)\,\Delta t

    ``M_t`` (``exch_cap_mw``, mutable) is ``pcc_max_mw`` when finite; for an unlimited coupling the
    caller sets it per step to a bound the exchange can never exceed (see :func:`exchange_bound_mw`),
    so the big-M is tight. Prices ``pi^b, pi^s`` are mutable (``price_buy_per_mwh``,
    ``price_sell_per_mwh``).

    =====  ==================  ======================
    B_t    buy_mw              bought (MW)
    X_t    sell_mw             sold (MW)
    z_t    buying              buy/sell binary
    M_t    exch_cap_mw         capacity (mutable)
    cost   exch_cost           exchange cost ($)
    =====  ==================  ======================
    """
    b.exch_cap_mw = pyo.Param(T, mutable=True, initialize=pcc_max_mw if math.isfinite(pcc_max_mw) else 0.0)
    b.price_buy_per_mwh = pyo.Param(T, mutable=True, initialize=0.0)
    b.price_sell_per_mwh = pyo.Param(T, mutable=True, initialize=0.0)
    ub = pcc_max_mw if math.isfinite(pcc_max_mw) else None
    b.buy_mw = pyo.Var(T, bounds=(0.0, ub))
    b.sell_mw = pyo.Var(T, bounds=(0.0, ub))
    b.buying = pyo.Var(T, domain=pyo.Binary)
    b.buy_cap_con = pyo.Constraint(T, rule=lambda b, t: b.buy_mw[t] <= b.exch_cap_mw[t] * b.buying[t])
    b.sell_cap_con = pyo.Constraint(
        T, rule=lambda b, t: b.sell_mw[t] + b.exch_cap_mw[t] * b.buying[t] <= b.exch_cap_mw[t]
    )
    b.exch_cost = pyo.Expression(
        T, rule=lambda b, t: dt_h * (b.price_buy_per_mwh[t] * b.buy_mw[t] - b.price_sell_per_mwh[t] * b.sell_mw[t])
    )


def add_tied_exchange(
    b: pyo.Block, flow: Callable[[Any], Any], T: pyo.Set, dt_h: float, *, price_per_mwh: float
) -> None:
    r"""Tie a flow to a target, with priced deviations both ways.

    .. math::
        F_t = R_t + D^+_t - D^-_t,\qquad D^\pm_t \ge 0,\qquad
        \mathrm{cost}_t = \pi^{dev} (D^+_t + D^-_t)\,\Delta t

    ``F_t = flow(t)`` is a Pyomo expression (e.g. a party's import, a grant, or a sum of them); the
    target ``R_t`` (``tie_target_mw``) and the price ``pi^dev`` (``tie_price_per_mwh``) are mutable.
    With ``pi^dev > 0`` at most one of ``D^+, D^-`` is non-zero at an optimum, so the cost is
    ``pi^dev |F_t - R_t| dt``. Used for a grant against a request (the operator's side) and an import
    against a grant (the party's side).

    ==========  ===================  ================================
    R_t         tie_target_mw        target (mutable)
    D+_t, D-_t  tie_up_mw,           deviation above / below (MW)
                tie_down_mw
    pi^dev      tie_price_per_mwh    deviation price (mutable)
    cost_t      tie_cost             deviation cost ($)
    ==========  ===================  ================================
    """
    b.tie_target_mw = pyo.Param(T, mutable=True, initialize=0.0)
    b.tie_price_per_mwh = pyo.Param(mutable=True, initialize=price_per_mwh)
    b.tie_up_mw = pyo.Var(T, bounds=(0.0, None))
    b.tie_down_mw = pyo.Var(T, bounds=(0.0, None))
    b.tie_con = pyo.Constraint(T, rule=lambda b, t: flow(t) == b.tie_target_mw[t] + b.tie_up_mw[t] - b.tie_down_mw[t])
    b.tie_cost = pyo.Expression(T, rule=lambda b, t: b.tie_price_per_mwh * dt_h * (b.tie_up_mw[t] + b.tie_down_mw[t]))


def add_balance(b: pyo.Block, mg: Microgrid, T: pyo.Set, dt_h: float, *, import_mw: pyo.Component) -> None:
    r"""Power balance of the party at each step.

    .. math::
        P_t + PV_t + W_t + P^{dis}_t - P^{ch}_t + I_t + S_t + N_t = L_t

    ``N_t`` (``inner_mw``, mutable, default 0): the fixed net injection of microgrids nested inside this
    one (their surplus as a source, their shortage as a load; ``Forecast.inner_net_mw``).

    with the diesel and battery terms present only when the party has those units. ``import_mw`` is
    the indexed component (Var or Expression) ``I_t``: ``B_t - X_t`` for a party trading at its own
    PCC (local), a free variable for a party inside the centralized model. Balance is in MW; ``dt_h``
    is accepted for a uniform signature (powers balance per step whatever its length).
    """
    del dt_h

    def rule(b, t):
        supply = b.pv_mw[t] + b.wind_mw[t] + import_mw[t] + b.shed_mw[t] + b.inner_mw[t]
        if mg.diesel is not None:
            supply = supply + b.dg_p_mw[t]
        if mg.battery is not None:
            supply = supply + b.bat_dis_mw[t] - b.bat_ch_mw[t]
        return supply == b.load_mw[t]

    if not hasattr(b, "inner_mw"):
        b.inner_mw = pyo.Param(T, mutable=True, initialize=0.0)
    b.balance_con = pyo.Constraint(T, rule=rule)


# --------------------------------------------------------------------------------------------------
# A whole party and its data
# --------------------------------------------------------------------------------------------------


def add_party_units(b: pyo.Block, mg: Microgrid, T: pyo.Set, dt_h: float, *, max_error_per_h: float) -> None:
    """All unit blocks of one party (diesel, battery when present; renewables; load) and
    ``b.unit_cost[t]``: the sum of their per-step costs (running, start-up, penalties)."""
    if mg.diesel is not None:
        add_diesel(b, mg.diesel, T, dt_h, max_error_per_h=max_error_per_h)
    if mg.battery is not None:
        add_battery(b, mg.battery, T, dt_h)
    add_renewables(b, mg, T, dt_h)
    add_load_curtailment(b, mg, T, dt_h)

    def cost(b, t):
        c = b.res_cost[t] + b.shed_cost[t]
        if mg.diesel is not None:
            c = c + b.dg_cost[t]
        return c

    b.unit_cost = pyo.Expression(T, rule=cost)


def exchange_bound_mw(mg: Microgrid, load_mw: float, pv_mw: float, wind_mw: float) -> float:
    """A bound on |import| at one step that the balance can never exceed, capped by ``pcc_max_mw``:
    buying covers at most load + full charging; selling at most all generation + full discharge."""
    ch = mg.battery.p_ch_max_mw if mg.battery else 0.0
    dis = mg.battery.p_dis_max_mw if mg.battery else 0.0
    dg = mg.diesel.p_max_mw if mg.diesel else 0.0
    return min(mg.pcc_max_mw, max(load_mw + ch, pv_mw + wind_mw + dg + dis))


def _check_len(name: str, series: Sequence[float], n: int) -> None:
    if len(series) != n:
        raise ValueError(f"{name}: {len(series)} values for a horizon of {n} steps")


def set_party_data(b: pyo.Block, problem: PartyProblem, horizon: Horizon) -> None:
    """Write a party's forecasts and initial state (and the horizon's final step) into the mutable
    params of a block built by :func:`add_party_units` for the same Microgrid and ``n_steps``.

    Initial state: ``E_0`` = ``state.e_mwh`` or the battery's ``e_init_mwh``, clamped into
    ``[e_min, e_max]`` (a measured SoC a little outside is a measurement, not an infeasibility; a
    clamp by more than 1e-6 MWh is logged). ``P_-1`` = ``state.diesel_p_mw`` clamped into
    ``[0, P_max]``; ``u_-1 = [P_-1 > 0]``. Negative forecasts are clipped to 0.
    """
    mg, fc, st = problem.mg, problem.forecast, problem.state
    n = horizon.n_steps
    _check_len(f"{mg.name} load forecast", fc.load_p_mw, n)
    for t in range(n):
        b.load_mw[t] = max(fc.load_p_mw[t], 0.0)
        b.pv_fc_mw[t] = max(fc.pv_p_mw[t], 0.0)
        b.wind_fc_mw[t] = max(fc.wind_p_mw[t], 0.0)
        if hasattr(b, "inner_mw"):
            b.inner_mw[t] = fc.inner_net_mw[t] if fc.inner_net_mw else 0.0
    if mg.diesel is not None:
        p_prev = min(max(st.diesel_p_mw, 0.0), mg.diesel.p_max_mw)
        b.dg_p_prev_mw = p_prev
        b.dg_on_prev = 1.0 if p_prev > 1e-9 else 0.0
    bat = mg.battery
    if bat is not None:
        e0 = bat.e_init_mwh if st.e_mwh is None else st.e_mwh
        e0c = min(max(e0, bat.e_min_mwh), bat.e_max_mwh)
        if abs(e0c - e0) > _E_TOL_MWH:
            log.warning(
                "%s: initial energy %.6f MWh outside [%g, %g], clamped", mg.name, e0, bat.e_min_mwh, bat.e_max_mwh
            )
        b.bat_e0_mwh = e0c
        for t in range(n):
            b.bat_e_final_req_mwh[t] = bat.e_min_mwh
        if bat.e_final_mwh is not None and horizon.final_step is not None:
            b.bat_e_final_req_mwh[horizon.final_step] = bat.e_final_mwh


def generation_mw(b: pyo.Block, mg: Microgrid, t: Any) -> Any:
    """A party block's units' net injection at step t (MW): diesel + PV + wind + discharge - charge
    (its load and shedding are not in it)."""
    e = b.pv_mw[t] + b.wind_mw[t]
    if mg.diesel is not None:
        e = e + b.dg_p_mw[t]
    if mg.battery is not None:
        e = e + b.bat_dis_mw[t] - b.bat_ch_mw[t]
    return e


def party_key(mg: Microgrid) -> tuple:
    """What fixes a party block's structure and coefficients (the rest lives in mutable params)."""
    return (
        mg.name,
        mg.diesel,
        mg.battery,
        mg.pcc_max_mw,
        mg.res_curtailment_price_per_mwh,
        mg.load_shed_price_per_mwh,
        mg.pv_curtailable,
        mg.wind_curtailable,
    )


def party_plan(b: pyo.Block, mg: Microgrid, T: pyo.Set, *, import_mw: list[float], cost: list[float]) -> PartyPlan:
    """Read a solved party block into a :class:`PartyPlan` (call only after a feasible solve)."""
    ts = list(T)
    n = len(ts)
    zeros = (0.0,) * n

    def vals(var) -> tuple[float, ...]:
        return tuple(float(var[t].value or 0.0) for t in ts)

    if mg.diesel is not None:
        dg_p = vals(b.dg_p_mw)
        dg_on = tuple(bool(v > 0.5) for v in vals(b.dg_on))
    else:
        dg_p, dg_on = zeros, (False,) * n
    if mg.battery is not None:
        ch, dis = vals(b.bat_ch_mw), vals(b.bat_dis_mw)
        bat_p = tuple(c - d for c, d in zip(ch, dis, strict=True))
        soc = vals(b.bat_e_mwh)
    else:
        bat_p, soc = zeros, zeros
    pv, wind = vals(b.pv_mw), vals(b.wind_mw)
    curt = tuple(
        max(float(pyo.value(b.pv_fc_mw[t])) - p, 0.0) + max(float(pyo.value(b.wind_fc_mw[t])) - w, 0.0)
        for t, p, w in zip(ts, pv, wind, strict=True)
    )
    return PartyPlan(
        diesel_p_mw=dg_p,
        diesel_on=dg_on,
        battery_p_mw=bat_p,
        soc_mwh=soc,
        pv_p_mw=pv,
        wind_p_mw=wind,
        res_curtailed_mw=curt,
        load_shed_mw=vals(b.shed_mw),
        import_mw=tuple(import_mw),
        cost=tuple(cost),
    )
