r"""The upper level of the ``clustered`` strategy (spec 004): the distribution network's view.

Input: the lower level's exchange of each cluster with the network per hour (its *request*, ``R_{c,t}``,
MW into the cluster; 0 where its feeder switch is open). With the network's own loads present, the
network operator grants ``A_{c,t}`` and trades what remains with the upstream grid at the substation
(the slack bus), never shedding load:

.. math::
    A_{c,t} = R_{c,t} + U_{c,t} - D_{c,t},\qquad U, D \ge 0,\qquad A_{c,t} = 0 \text{ where the feeder is open}

    \text{LinDistFlow on the network (} :mod:`ems_controllers.core.network` \text{), cluster c drawing }
    A_{c,t} \text{ at its network bus, SVC v injecting } Q^{svc}_{v,t} = Q^+_{v,t} - Q^-_{v,t}
    \text{ at its bus; voltage band and line ratings}

    0 \le Q^+_{v,t} \le \overline{Q}_v,\qquad 0 \le Q^-_{v,t} \le -\underline{Q}_v

    \ell_{l,t} \ge \text{PWL}(r_l (P_{l,t}^2 + Q_{l,t}^2)/V^2),\qquad
    B_t - X_t = P^{root}_t + \sum_l \ell_{l,t},\qquad B_t, X_t \ge 0

    \min\ \frac{\zeta_1 GC + \pi^{dev} \sum_{c,t} (U_{c,t} + D_{c,t})\,\Delta t
    + \pi^{svc} \sum_{v,t} (Q^+_{v,t} + Q^-_{v,t})\,\Delta t}{|GC^{ref}|}
    + \zeta_2 \frac{EC}{|EC^{ref}|} + \zeta_3 \frac{Loss}{Loss^{ref}}

with the network's GC = ``(pi^b B - pi^s X) dt``, EC = ``e^{grid} (B - X) dt`` and Loss = ``sum l dt``
over the day. The three objectives are divided by their absolute values when every request is granted
(the reference solve, deviations held at 0; where the network cannot carry the requests, the grants
closest to them, least deviation first), so ``zeta`` (the operator's choice, summing to 1) weighs
comparable numbers; the deviation cost is money, scaled like GC. A trade price of
:data:`TRADE_TIE_PER_MWH` on energy bought and sold at the substation keeps the two from both growing
where nothing else prices them. ``pi^dev`` makes a grant differ from a
request only where the network's limits need it (or where ``zeta`` values the change above ``pi^dev``); a
changed grant goes back to the lower level, whose MGs reschedule around it. An LP: the network has no
binaries here (its switches are the clusters' feeders, decided below).

The SVC term of the seed's reactive balance: the network operator's static var compensators (config
``[[svcs]]``) set their reactive power hourly within their range. Reactive power lifts (or lowers) the
voltage along the path to the root and changes the lines' reactive flows (in the PWL losses): the SVC
serves where the voltage band would otherwise cut a grant, or where it lowers losses by more than its
small use price ``pi^svc`` (which keeps an idle SVC at 0). Its setpoint reaches the grid every hour.

LinDistFlow drops the losses, so on long, loaded MV feeders it predicts voltages above the AC ones (0.02 pu
at the far end of mv_clusters' 22 km feeder): the band is narrowed by ``vm_margin_pu`` at both ends.

The cluster's feeder line itself is not in this model (its losses are the lower level's); the cluster
and MG buses are not either (islands are their grid-forming units' business). Reported per hour: the
predicted lowest and highest voltage and the highest line loading on the network, for comparison with
the AC power flow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pyomo.environ as pyo

from ems_controllers.clustered.pareto import ObjectiveValues, Zeta
from ems_controllers.clustered.system import SvcSpec
from ems_controllers.core.losses import add_pwl_loss, loss_coefficient_per_mw
from ems_controllers.core.model_cache import ModelCache
from ems_controllers.core.network import NetworkData, add_lindistflow, lindistflow_solve, predicted, set_network_loads
from ems_controllers.core.types import Horizon, SolverOptions

GRANT_TOL_MW = 1e-4
REFERENCE_TIE = 1e-3
"""In the reference solves, zeta's weights on the raw objectives, times this: a tie-break only."""
TRADE_TIE_PER_MWH = 1e-6
"""Far below the reference solves' tie-break weights: an export day must not buy a smaller trade with
inflated losses (more losses, less sold)."""


class _Solve(Enum):
    HOLD = "every request granted"
    CLOSEST = "the grants closest to the requests"
    WEIGHTED = "the weighted sum"


@dataclass(frozen=True)
class UpperSettings:
    zeta: Zeta
    grid_emission_cost_per_mwh: float
    deviation_price_per_mwh: float
    loss_max_error_mw: float
    s_max_factor: float
    vm_margin_pu: float = 0.0
    svc_price_per_mvarh: float = 1.0


@dataclass(frozen=True)
class UpperOutcome:
    """The network's schedule: grants, substation exchange, losses and what LinDistFlow predicts."""

    grant_mw: dict[str, tuple[float, ...]]
    svc_q_mvar: dict[str, tuple[float, ...]]
    """Each SVC's reactive power per step (generator sign)."""
    substation_import_mw: tuple[float, ...]
    loss_mw: tuple[float, ...]
    values: ObjectiveValues
    reference: ObjectiveValues
    predicted_min_vm_pu: tuple[float, ...]
    predicted_max_vm_pu: tuple[float, ...]
    predicted_max_loading_percent: tuple[float, ...]
    solve_s: float
    status: str

    def changed(self, requests: Mapping[str, Sequence[float]]) -> bool:
        """Whether some grant differs from its request."""
        return any(
            abs(a - r) > GRANT_TOL_MW
            for c, grants in self.grant_mw.items()
            for a, r in zip(grants, requests[c], strict=True)
        )


@dataclass(frozen=True)
class _Day:
    """What one planning round hands the upper level (the same for its two solves)."""

    requests: Mapping[str, Sequence[float]]
    feeder_closed: Mapping[str, Sequence[bool]]
    load_by_bus: tuple[Mapping[int, Sequence[float]], Mapping[int, Sequence[float]]]
    horizon: Horizon
    opts: SolverOptions


class UpperLevel:
    """The network operator's LP over one network (built once per structure, re-solved)."""

    def __init__(
        self,
        network: NetworkData,
        cluster_bus: Mapping[str, int],
        settings: UpperSettings,
        svcs: Sequence[SvcSpec] = (),
    ) -> None:
        self.network = network
        self.cluster_bus = dict(cluster_bus)
        self.settings = settings
        self.svcs = tuple(svcs)
        self._models = ModelCache(1)

    def plan(
        self,
        requests: Mapping[str, Sequence[float]],
        feeder_closed: Mapping[str, Sequence[bool]],
        load_by_bus: tuple[Mapping[int, Sequence[float]], Mapping[int, Sequence[float]]],
        horizon: Horizon,
        opts: SolverOptions,
    ) -> UpperOutcome | None:
        """Reference solve (every request granted; if the network cannot carry that, the grants closest
        to the requests), then the weighted solve; None if the network cannot carry its own loads even
        with every grant free."""
        t0 = time.perf_counter()
        day = _Day(requests, feeder_closed, load_by_bus, horizon, opts)
        ref = self._solve(day, _Solve.HOLD)
        closest = self._solve(day, _Solve.CLOSEST) if ref is None else ref
        if closest is None:
            return None
        out = self._solve(day, _Solve.WEIGHTED, closest)
        if out is None:
            return None
        m = self._model
        vm, loading = predicted(m.net)
        T = list(m.T)
        buses = [j for j in m.net.bus if j != self.network.root_bus]
        return UpperOutcome(
            grant_mw={c: tuple(float(m.grant_mw[c, t].value or 0.0) for t in T) for c in self.cluster_bus},
            svc_q_mvar={v.name: tuple(float(pyo.value(m.svc_q_mvar[v.name, t])) for t in T) for v in self.svcs},
            substation_import_mw=tuple(float(m.buy_mw[t].value - m.sell_mw[t].value) for t in T),
            loss_mw=tuple(float(pyo.value(m.loss_mw[t])) for t in T),
            values=out,
            reference=closest,
            predicted_min_vm_pu=tuple(min(vm[(j, t)] for j in buses) for t in T),
            predicted_max_vm_pu=tuple(max(vm[(j, t)] for j in buses) for t in T),
            predicted_max_loading_percent=tuple(max(loading[(li, t)] for li in m.net.line) for t in T),
            solve_s=time.perf_counter() - t0,
            status="ok" if ref is not None else "requests infeasible on the network: grants changed",
        )

    def _solve(self, day: _Day, kind: _Solve, scale: ObjectiveValues | None = None) -> ObjectiveValues | None:
        """One solve of the day (its objective values; None if infeasible): a reference (every request
        held, or least deviation from them) or the weighted sum with the objectives divided by ``scale``."""
        requests, feeder_closed, load_by_bus, horizon = day.requests, day.feeder_closed, day.load_by_bus, day.horizon
        key = (horizon.n_steps, horizon.dt_h, self.settings)

        def write(m: pyo.ConcreteModel) -> None:
            set_network_loads(m.net, load_by_bus[0], load_by_bus[1])
            margin = self.settings.vm_margin_pu
            for j in m.net.nonroot_bus:
                m.net.w_min_pu2[j] = (self.network.vm_min_pu[j] + margin) ** 2
                m.net.w_max_pu2[j] = (self.network.vm_max_pu[j] - margin) ** 2
            for t, v in enumerate(fixed_losses_mw(self.network, m.fixed_lines, load_by_bus, horizon.n_steps)):
                m.fixed_loss_mw[t] = v
            for t in range(horizon.n_steps):
                m.price_buy_per_mwh[t] = horizon.buy_price_per_mwh[t]
                m.price_sell_per_mwh[t] = horizon.sell_price_per_mwh[t]
                for c in self.cluster_bus:
                    m.request_mw[c, t] = float(requests[c][t])
                    m.feeder_open[c, t] = 0.0 if feeder_closed[c][t] else 1.0
                    m.hold[c, t] = 1.0 if kind is _Solve.HOLD else 0.0
            _write_weights(m, self.settings.zeta, scale if kind is _Solve.WEIGHTED else None)

        run = self._models.solve(
            key,
            lambda: build_upper(
                self.network, self.cluster_bus, horizon.n_steps, horizon.dt_h, self.settings, self.svcs
            ),
            write,
            day.opts,
            keep=self.network,
        )
        self._model = run.model
        if not run.raw.feasible:
            return None
        m = run.model
        return ObjectiveValues(float(pyo.value(m.gc)), float(pyo.value(m.ec)), float(pyo.value(m.loss)))


def _nonzero(x: float) -> float:
    return x if abs(x) > 1e-9 else 1.0


def _write_weights(m: pyo.ConcreteModel, z: Zeta, scale: ObjectiveValues | None) -> None:
    """The weighted sum's weights (each objective divided by its absolute reference value), or for a
    reference solve (``scale`` None) the deviation alone, with zeta as a tie-break."""
    if scale is None:
        m.k_gc, m.k_ec, m.k_loss, m.k_dev = REFERENCE_TIE * z.gc, REFERENCE_TIE * z.ec, REFERENCE_TIE * z.loss, 1.0
        return
    m.k_gc = z.gc / _nonzero(abs(scale.gc_per_day))
    m.k_ec = z.ec / _nonzero(abs(scale.ec_per_day))
    m.k_loss = z.loss / _nonzero(abs(scale.loss_mwh))
    m.k_dev = 1.0 / _nonzero(abs(scale.gc_per_day))


def build_upper(
    network: NetworkData,
    cluster_bus: Mapping[str, int],
    n_steps: int,
    dt_h: float,
    s: UpperSettings,
    svcs: Sequence[SvcSpec] = (),
) -> pyo.ConcreteModel:
    """The upper-level LP with placeholder data (module docstring)."""
    m = pyo.ConcreteModel(name="clustered_upper")
    m.T = pyo.RangeSet(0, n_steps - 1)
    m.C = pyo.Set(initialize=list(cluster_bus), ordered=True)
    m.request_mw = pyo.Param(m.C, m.T, mutable=True, initialize=0.0)
    m.feeder_open = pyo.Param(m.C, m.T, mutable=True, initialize=0.0)
    m.hold = pyo.Param(m.C, m.T, mutable=True, initialize=1.0)
    m.grant_mw = pyo.Var(m.C, m.T)
    m.up_mw = pyo.Var(m.C, m.T, bounds=(0.0, None))
    m.down_mw = pyo.Var(m.C, m.T, bounds=(0.0, None))
    big = max(br.s_max_mva for br in network.branches) * 2.0
    m.grant_con = pyo.Constraint(
        m.C, m.T, rule=lambda m, c, t: m.grant_mw[c, t] == m.request_mw[c, t] + m.up_mw[c, t] - m.down_mw[c, t]
    )
    m.open_up_con = pyo.Constraint(m.C, m.T, rule=lambda m, c, t: m.grant_mw[c, t] <= big * (1.0 - m.feeder_open[c, t]))
    m.open_dn_con = pyo.Constraint(
        m.C, m.T, rule=lambda m, c, t: -m.grant_mw[c, t] <= big * (1.0 - m.feeder_open[c, t])
    )
    m.hold_up_con = pyo.Constraint(m.C, m.T, rule=lambda m, c, t: m.up_mw[c, t] <= big * (1.0 - m.hold[c, t]))
    m.hold_dn_con = pyo.Constraint(m.C, m.T, rule=lambda m, c, t: m.down_mw[c, t] <= big * (1.0 - m.hold[c, t]))
    by_bus: dict[int, list[str]] = {}
    for c, bus in cluster_bus.items():
        by_bus.setdefault(int(bus), []).append(c)
    _add_svcs(m, svcs)
    m.net = pyo.Block()
    add_lindistflow(
        m.net,
        network,
        m.T,
        p_inj_mw={bus: _draw(m, cs) for bus, cs in by_bus.items()},
        q_inj_mvar={bus: _svc_injection(m, names) for bus, names in _by_bus(svcs).items()},
        s_max_factor=s.s_max_factor,
    )
    buses = sorted({*cluster_bus.values(), *(v.bus for v in svcs)})
    _add_network_losses(m, network, buses, s.loss_max_error_mw)
    _add_upper_objective(m, dt_h, s)
    return m


def _by_bus(svcs: Sequence[SvcSpec]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for v in svcs:
        out.setdefault(v.bus, []).append(v.name)
    return out


def _add_svcs(m: pyo.ConcreteModel, svcs: Sequence[SvcSpec]) -> None:
    """Each SVC's injection ``svc_inj_mvar`` and absorption ``svc_abs_mvar`` within its range, and their
    difference ``svc_q_mvar``."""
    spec = {v.name: v for v in svcs}
    m.V = pyo.Set(initialize=list(spec), ordered=True)
    m.svc_inj_mvar = pyo.Var(m.V, m.T, bounds=lambda m, v, t: (0.0, spec[v].q_max_mvar))
    m.svc_abs_mvar = pyo.Var(m.V, m.T, bounds=lambda m, v, t: (0.0, -spec[v].q_min_mvar))
    m.svc_q_mvar = pyo.Expression(m.V, m.T, rule=lambda m, v, t: m.svc_inj_mvar[v, t] - m.svc_abs_mvar[v, t])


def _svc_injection(m: pyo.ConcreteModel, names: list[str]) -> Callable[[Any], Any]:
    """The reactive injection at a network bus: what the SVCs there inject."""
    return lambda t: pyo.quicksum(m.svc_q_mvar[v, t] for v in names)


def _draw(m: pyo.ConcreteModel, clusters: list[str]) -> Callable[[Any], Any]:
    """The injection at a network bus: minus what the clusters there are granted."""
    return lambda t: -pyo.quicksum(m.grant_mw[c, t] for c in clusters)


def variable_lines(network: NetworkData, buses: Sequence[int]) -> list[int]:
    """The lines whose flow the grants (and SVCs) can change: on a radial network those between the root
    and one of ``buses`` (every other line carries the loads below it, fixed); on a meshed one, all."""
    if network.n_loops > 0:
        return list(network.lines)
    parent: dict[int, tuple[int, int]] = {}  # bus -> (line, the bus towards the root)
    adj: dict[int, list[tuple[int, int]]] = {}
    for br in network.branches:
        adj.setdefault(br.from_bus, []).append((br.line, br.to_bus))
        adj.setdefault(br.to_bus, []).append((br.line, br.from_bus))
    stack = [network.root_bus]
    while stack:
        i = stack.pop()
        for li, j in adj.get(i, []):
            if j != network.root_bus and j not in parent:
                parent[j] = (li, i)
                stack.append(j)
    out: set[int] = set()
    for b in buses:
        while b in parent:
            li, b = parent[b]
            out.add(li)
    return [li for li in network.lines if li in out]


def fixed_losses_mw(
    network: NetworkData,
    lines: Sequence[int],
    load: tuple[Mapping[int, Sequence[float]], Mapping[int, Sequence[float]]],
    n: int,
) -> list[float]:
    """Per step the losses ``r (P^2 + Q^2) / V^2`` of ``lines`` (fixed-flow lines) at the LinDistFlow
    flows of the network's loads alone."""
    coef = {br.line: loss_coefficient_per_mw(br.r_ohm, network.base_kv) for br in network.branches}
    out = []
    for t in range(n):
        snap = lindistflow_solve(
            network, {b: -float(v[t]) for b, v in load[0].items()}, {b: -float(v[t]) for b, v in load[1].items()}
        )
        out.append(sum(coef[li] * (snap.p_mw[li] ** 2 + snap.q_mvar[li] ** 2) for li in lines))
    return out


def _add_network_losses(m: pyo.ConcreteModel, network: NetworkData, buses: Sequence[int], max_error_mw: float) -> None:
    """PWL losses (P and Q) on the lines the grants can change; the others' exact losses at their
    fixed flows are a param per step (``fixed_loss_mw``, written with the loads)."""
    br = {b.line: b for b in network.branches}
    coef = {li: loss_coefficient_per_mw(b.r_ohm, network.base_kv) for li, b in br.items()}
    cap = {li: b.s_max_mva for li, b in br.items()}
    m.var_line = pyo.Set(initialize=variable_lines(network, buses), ordered=True)
    m.fixed_lines = [li for li in network.lines if li not in set(m.var_line)]
    m.fixed_loss_mw = pyo.Param(m.T, mutable=True, initialize=0.0)
    for name, flow in (("loss_p_mw", m.net.p_line_mw), ("loss_q_mw", m.net.q_line_mvar)):
        add_pwl_loss(
            m,
            name,
            m.var_line * m.T,
            lambda li, t, f=flow: f[li, t],
            lambda li, t: coef[li],
            lambda li, t: cap[li],
            max_error_mw / 2,
        )
    m.loss_mw = pyo.Expression(
        m.T,
        rule=lambda m, t: (
            m.fixed_loss_mw[t] + pyo.quicksum(m.loss_p_mw[li, t] + m.loss_q_mw[li, t] for li in m.var_line)
        ),
    )


def _add_upper_objective(m: pyo.ConcreteModel, dt_h: float, s: UpperSettings) -> None:
    T = m.T
    m.buy_mw = pyo.Var(T, bounds=(0.0, None))
    m.sell_mw = pyo.Var(T, bounds=(0.0, None))
    m.sub_con = pyo.Constraint(T, rule=lambda m, t: m.buy_mw[t] - m.sell_mw[t] == m.net.p_root_mw[t] + m.loss_mw[t])
    m.price_buy_per_mwh = pyo.Param(T, mutable=True, initialize=0.0)
    m.price_sell_per_mwh = pyo.Param(T, mutable=True, initialize=0.0)
    m.gc = pyo.Expression(
        expr=dt_h
        * pyo.quicksum(m.price_buy_per_mwh[t] * m.buy_mw[t] - m.price_sell_per_mwh[t] * m.sell_mw[t] for t in T)
    )
    m.ec = pyo.Expression(
        expr=dt_h * s.grid_emission_cost_per_mwh * pyo.quicksum(m.buy_mw[t] - m.sell_mw[t] for t in T)
    )
    m.loss = pyo.Expression(expr=dt_h * pyo.quicksum(m.loss_mw[t] for t in T))
    m.k_gc = pyo.Param(mutable=True, initialize=1.0)
    m.k_ec = pyo.Param(mutable=True, initialize=0.0)
    m.k_loss = pyo.Param(mutable=True, initialize=0.0)
    m.k_dev = pyo.Param(mutable=True, initialize=1.0)
    dev = (
        m.k_dev
        * dt_h
        * s.deviation_price_per_mwh
        * pyo.quicksum(m.up_mw[c, t] + m.down_mw[c, t] for c in m.C for t in T)
    )
    svc_use = (
        m.k_dev
        * dt_h
        * s.svc_price_per_mvarh
        * pyo.quicksum(m.svc_inj_mvar[v, t] + m.svc_abs_mvar[v, t] for v in m.V for t in T)
    )
    trade_tie = m.k_dev * dt_h * TRADE_TIE_PER_MWH * pyo.quicksum(m.buy_mw[t] + m.sell_mw[t] for t in T)
    m.obj = pyo.Objective(
        expr=m.k_gc * m.gc + m.k_ec * m.ec + m.k_loss * m.loss + dev + svc_use + trade_tie, sense=pyo.minimize
    )
