r"""Linearised distribution network model (LinDistFlow) for the network operator's security constraints.

Pure math: a :class:`NetworkData` read once from a pandapower net (:func:`network_from_pandapower`), a
Pyomo block over it (:func:`add_lindistflow`) and a numpy snapshot solver of the same linear equations
(:func:`lindistflow_solve`) to compare with the AC power flow.

The linearisation (Baran & Wu's DistFlow without its loss terms), per branch ``l = (i, j)`` and step t,
flows measured at the from side ``i`` and positive from ``i`` to ``j``:

.. math::
    \sum_{l \in in(j)} P_{l,t} - \sum_{l \in out(j)} P_{l,t} = -p^{inj}_{j,t}
    \qquad (\text{same for } Q)\qquad \forall j \ne root

    w_{j,t} = w_{i,t} - 2\,(r_l P_{l,t} + x_l Q_{l,t}) / V_b^2

    \theta_{j,t} = \theta_{i,t} - (x_l P_{l,t} - r_l Q_{l,t}) / V_b^2

    w_{root,t} = v_{root}^2,\quad \theta_{root,t} = 0,\quad
    v_{min,j}^2 \le w_{j,t} \le v_{max,j}^2

with ``w = |V|^2`` in pu^2, ``theta`` the voltage angle in rad, ``r, x`` in ohm, ``P, Q`` in MW/Mvar and
``V_b`` the nominal voltage in kV (so ``r P / V_b^2 = r_pu P_pu`` on any MVA base: the base cancels).
Dropped: the losses ``r l`` and ``x l`` in the balance and ``(r^2+x^2) l`` in the voltage drop (``l``
the squared current), line charging (``c_nf_per_km``, ``g_us_per_km``) and switch impedances. The
losses are what makes the model optimistic on a loaded feeder: LinDistFlow voltages sit *above* the AC
ones (0.0028 pu at bus 17 of case33bw at its nominal load, AC 0.9131 pu) and a line's flow misses the
losses downstream of it (0.203 MW at the substation of case33bw); loadings come out low by the
losses and by the ``1/v`` of the current (1.8 percentage points at 34 % on the ieee33_3mg net).

The angle row is the imaginary part of the same linearisation (``V_i - V_j \approx z S^*`` around 1 pu,
whose real part is the voltage-drop row). On a radial feeder it changes nothing (one free angle per
bus, one row per branch); on a meshed network (tie switches closed) it is the second loop condition
that, with the voltage-drop row, makes every loop obey Kirchhoff's voltage law in P *and* Q. Without
it the flows around a loop would be underdetermined (one real equation per loop for two real loop
flows) and an optimiser could route power around a loop in ways AC would not. With it the equations
are square and equal the complex graph-Laplacian form ``V_b^2 Y e = conj(s_inj)`` with
``e = w/2 + j theta``, ``Y = C^T diag(1/z) C``, which :func:`lindistflow_solve` uses.

Line limit: ``|S_l| = sqrt(P^2 + Q^2) <= s_max`` is replaced by an inscribed regular K-gon (vertices
on the circle, one at ``Q = 0``): ``cos(phi_k) P + sin(phi_k) Q <= s_max cos(pi/K)``,
``phi_k = (2k+1) pi/K``. Satisfying it implies ``|S| <= s_max``; it cuts at most a fraction
``1 - cos(pi/K)`` off the limit (3.4 % for K = 12, at the facet mid-points), none at pure active flow.
The rating ``s_max_mva = sqrt(3) vn_kv max_i_ka`` is the apparent power at *nominal* voltage: at a
real voltage of ``v`` pu the same current carries ``v`` times that, so below 1 pu an S limit at the
nominal rating lets the current exceed ``max_i_ka`` by up to ``1/v`` (pass ``s_max_factor = v_min`` to
:func:`add_lindistflow` for a current limit that holds for every voltage in the band).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pyomo.environ as pyo

log = logging.getLogger(__name__)

Injection = Callable[[Any], Any]  # t -> Pyomo expression or number (MW or Mvar, generation positive)

DEFAULT_VM_MIN_PU = 0.9
DEFAULT_VM_MAX_PU = 1.1

# Element tables that the line-only model cannot represent (in-service rows raise).
_UNSUPPORTED = (
    "trafo",
    "trafo3w",
    "gen",
    "impedance",
    "dcline",
    "ward",
    "xward",
    "svc",
    "tcsc",
    "ssc",
    "vsc",
    "asymmetric_load",
    "asymmetric_sgen",
)


@dataclass(frozen=True)
class Branch:
    """One modelled line; flows are positive from ``from_bus`` to ``to_bus``.

    ``r_ohm = r_ohm_per_km * length_km / parallel`` (likewise x); pu on ``NetworkData.base_mva`` and
    ``base_kv`` (``z_base = base_kv^2 / base_mva``). ``max_i_ka`` = pandapower's ``max_i_ka * df *
    parallel`` (the current its ``loading_percent`` refers to); ``s_max_mva = sqrt(3) vn_kv max_i_ka``
    at nominal voltage.
    """

    line: int
    from_bus: int
    to_bus: int
    r_ohm: float
    x_ohm: float
    r_pu: float
    x_pu: float
    max_i_ka: float
    s_max_mva: float


@dataclass(frozen=True)
class NetworkData:
    """The energised part of a line-only distribution network, as LinDistFlow sees it.

    ``buses``: buses connected to the root by modelled lines (root first, pandapower indices).
    ``vm_min_pu`` / ``vm_max_pu``: per-bus band (the root's is not imposed: its voltage is fixed).
    ``left_out_buses`` / ``left_out_lines``: in the net but not modelled (out of service, open switch,
    or not connected to the root).
    """

    buses: tuple[int, ...]
    root_bus: int
    root_vm_pu: float
    branches: tuple[Branch, ...]
    vm_min_pu: Mapping[int, float]
    vm_max_pu: Mapping[int, float]
    base_mva: float
    base_kv: float
    left_out_buses: tuple[int, ...] = ()
    left_out_lines: tuple[int, ...] = ()

    @property
    def n_loops(self) -> int:
        """Independent loops (branches - buses + 1): 0 on a radial network."""
        return len(self.branches) - len(self.buses) + 1

    @property
    def lines(self) -> tuple[int, ...]:
        return tuple(br.line for br in self.branches)


class Snapshot(NamedTuple):
    """One LinDistFlow operating point (flows at the from side, positive from -> to)."""

    vm_pu: dict[int, float]
    p_mw: dict[int, float]
    q_mvar: dict[int, float]
    loading_percent: dict[int, float]


# --------------------------------------------------------------------------------------------------
# From pandapower
# --------------------------------------------------------------------------------------------------


def _in_service(table: Any) -> Any:
    if "in_service" in table.columns:
        return table[table["in_service"].astype(bool)]
    return table


def network_from_pandapower(
    net: Any,
    switch_closed: Mapping[int, bool] | None = None,
    *,
    default_vm_min_pu: float = DEFAULT_VM_MIN_PU,
    default_vm_max_pu: float = DEFAULT_VM_MAX_PU,
) -> NetworkData:
    """The LinDistFlow view of a pandapower net made of lines only.

    Supported: buses (one nominal voltage), lines, line switches, one in-service ext_grid (the root);
    loads, sgens, storages and shunts are injections (see :func:`injections_from_pandapower`).
    Raises ``ValueError`` naming the element for anything else that is in service: transformers
    (``trafo``, ``trafo3w``), voltage-controlled ``gen``, ``impedance``, ``dcline``, ``ward``, ``xward``,
    FACTS and asymmetric elements, bus-bus (``et='b'``) and transformer switches, zero or more than one
    ext_grid, buses of different ``vn_kv``, lines with ``r = x = 0``.

    A line is modelled iff it is in service, both its buses are in service and every line switch on
    it is closed; ``switch_closed`` (switch index -> closed) overrides ``net.switch.closed`` for the
    switches it names. Buses not connected to the root through modelled lines are left out (an island
    is its grid-forming unit's business, not the network operator's), and so are lines inside them.
    Voltage band from ``net.bus.min_vm_pu`` / ``max_vm_pu``; where a column or value is missing the
    defaults apply. Base: ``net.sn_mva`` and the buses' ``vn_kv``.
    """
    _check_supported(net)
    root, root_vm = _root(net)
    live_buses = {int(i) for i in net.bus.index[net.bus["in_service"].astype(bool)]}
    if root not in live_buses:
        raise ValueError(f"network_from_pandapower: ext_grid bus {root} is out of service")
    vn = {float(v) for v in net.bus.loc[sorted(live_buses), "vn_kv"]}
    if len(vn) != 1:
        raise ValueError(
            f"network_from_pandapower: buses of several nominal voltages {sorted(vn)} kV "
            f"(a transformer's job; not modelled)"
        )
    base_kv = vn.pop()
    base_mva = float(net.sn_mva)
    candidates = _live_lines(net, _open_lines(net, switch_closed), live_buses, base_kv, base_mva)
    order = _reachable(root, candidates)
    seen = set(order)
    branches = tuple(br for br in candidates if br.from_bus in seen)
    kept = {br.line for br in branches}
    left_buses = tuple(sorted(int(b) for b in net.bus.index if int(b) not in seen))
    left_lines = tuple(sorted(int(li) for li in net.line.index if int(li) not in kept))
    if left_buses:
        log.debug("network_from_pandapower: buses %s not connected to root bus %d are left out", left_buses, root)
    return NetworkData(
        tuple(order),
        root,
        root_vm,
        branches,
        _band(net, order, "min_vm_pu", default_vm_min_pu),
        _band(net, order, "max_vm_pu", default_vm_max_pu),
        base_mva,
        base_kv,
        left_buses,
        left_lines,
    )


def _check_supported(net: Any) -> None:
    """Raise for an in-service element the line-only model cannot represent."""
    for name in _UNSUPPORTED:
        table = getattr(net, name, None)
        if table is None or len(table) == 0:
            continue
        rows = _in_service(table)
        if len(rows):
            raise ValueError(
                f"network_from_pandapower: {name} {list(rows.index)} in service; the "
                f"LinDistFlow model covers lines only"
            )


def _root(net: Any) -> tuple[int, float]:
    """The bus and the voltage set point (pu) of the one in-service ext_grid."""
    ext = _in_service(net.ext_grid)
    if len(ext) != 1:
        raise ValueError(
            f"network_from_pandapower: needs exactly one ext_grid in service, found "
            f"{len(ext)} (ext_grid {list(ext.index)})"
        )
    return int(ext["bus"].iloc[0]), float(ext["vm_pu"].iloc[0])


def _open_lines(net: Any, switch_closed: Mapping[int, bool] | None) -> set[int]:
    """The lines an open line switch cuts (``switch_closed`` overrides the net's switch states);
    raises for a switch that is not a line switch or that the net does not have."""
    closed = {int(i): bool(c) for i, c in net.switch["closed"].items()}
    if switch_closed:
        unknown = [s for s in switch_closed if s not in closed]
        if unknown:
            raise ValueError(f"network_from_pandapower: switch_closed names switches {unknown} the net does not have")
        closed.update({int(s): bool(c) for s, c in switch_closed.items()})
    open_lines: set[int] = set()
    for s, row in net.switch.iterrows():
        et = row["et"]
        if et == "l":
            if not closed[int(s)]:
                open_lines.add(int(row["element"]))
        else:
            kind = "bus-bus" if et == "b" else f"et={et!r}"
            raise ValueError(f"network_from_pandapower: switch {s} is a {kind} switch; only line switches are modelled")
    return open_lines


def _live_lines(net: Any, open_lines: set[int], live_buses: set[int], base_kv: float, base_mva: float) -> list[Branch]:
    """A :class:`Branch` per line in service, not cut by a switch, between two buses in service."""
    candidates: list[Branch] = []
    z_base = base_kv**2 / base_mva
    for li, row in net.line.iterrows():
        fb, tb = int(row["from_bus"]), int(row["to_bus"])
        if not bool(row["in_service"]) or int(li) in open_lines or fb not in live_buses or tb not in live_buses:
            continue
        par = float(row["parallel"]) if "parallel" in row.index else 1.0
        df = float(row["df"]) if "df" in row.index else 1.0
        r = float(row["r_ohm_per_km"]) * float(row["length_km"]) / par
        x = float(row["x_ohm_per_km"]) * float(row["length_km"]) / par
        if r == 0.0 and x == 0.0:
            raise ValueError(f"network_from_pandapower: line {li} has zero impedance")
        i_max = float(row["max_i_ka"]) * df * par
        candidates.append(
            Branch(int(li), fb, tb, r, x, r / z_base, x / z_base, i_max, math.sqrt(3.0) * base_kv * i_max)
        )
    return candidates


def _reachable(root: int, branches: Sequence[Branch]) -> list[int]:
    """The buses connected to ``root`` through ``branches``, in breadth-first order (root first)."""
    adj: dict[int, list[int]] = {}
    for br in branches:
        adj.setdefault(br.from_bus, []).append(br.to_bus)
        adj.setdefault(br.to_bus, []).append(br.from_bus)
    seen = {root}
    order = [root]
    queue = deque([root])
    while queue:
        i = queue.popleft()
        for j in adj.get(i, ()):
            if j not in seen:
                seen.add(j)
                order.append(j)
                queue.append(j)
    return order


def _band(net: Any, buses: Sequence[int], col: str, default: float) -> dict[int, float]:
    """Per bus the value of the bus table's column ``col`` (a voltage limit), ``default`` where the
    column or the value is missing."""
    out = {}
    for b in buses:
        v = net.bus.at[b, col] if col in net.bus.columns else None
        out[b] = float(v) if v is not None and np.isfinite(float(v)) else default
    return out


def injections_from_pandapower(net: Any) -> tuple[dict[int, float], dict[int, float]]:
    """Net injections by bus (MW, Mvar; generation positive) of the in-service loads, sgens, storages
    and shunts of ``net`` at their set points (``p * scaling``; storage charging and loads consume;
    shunts at 1 pu: ``-p * step``, ``-q * step``). Buses without elements are absent."""
    p: dict[int, float] = {}
    q: dict[int, float] = {}

    def add(bus: int, dp: float, dq: float) -> None:
        p[bus] = p.get(bus, 0.0) + dp
        q[bus] = q.get(bus, 0.0) + dq

    for table, sign in (("load", -1.0), ("sgen", 1.0), ("storage", -1.0)):
        for _, row in _in_service(getattr(net, table)).iterrows():
            k = float(row["scaling"]) if "scaling" in row.index else 1.0
            add(int(row["bus"]), sign * k * float(row["p_mw"]), sign * k * float(row["q_mvar"]))
    for _, row in _in_service(net.shunt).iterrows():
        step = float(row["step"]) if "step" in row.index else 1.0
        add(int(row["bus"]), -step * float(row["p_mw"]), -step * float(row["q_mvar"]))
    return p, q


def load_q_ratio(net: Any) -> dict[int, float]:
    """Per bus with loads: their Q over their P (the net's nominal values; 0 where P is 0)."""
    out: dict[int, float] = {}
    for bus, grp in net.load.groupby("bus"):
        p, q = float(grp.p_mw.sum()), float(grp.q_mvar.sum())
        out[int(bus)] = q / p if p > 0 else 0.0
    return out


# --------------------------------------------------------------------------------------------------
# Snapshot solve (numpy)
# --------------------------------------------------------------------------------------------------


def lindistflow_solve(data: NetworkData, p_inj_mw: Mapping[int, float], q_inj_mvar: Mapping[int, float]) -> Snapshot:
    """Solve the LinDistFlow equations (module docstring) for one set of fixed injections, no optimiser.

    Radial and meshed alike, through the complex graph Laplacian of the same equations:
    ``e = w/2 + j theta``, ``V_b^2 (C^T diag(1/z) C) e = conj(s_inj)`` on the non-root buses with
    ``e_root = v_root^2 / 2``, then ``conj(s_l) = V_b^2 (e_from - e_to) / z_l``. Injections at buses
    not in ``data`` raise ``ValueError``; the root's injection is ignored (the slack takes it).
    ``vm_pu = sqrt(w)`` (NaN if ``w < 0``), ``loading_percent = 100 |S_l| / s_max_mva`` (flows at
    nominal voltage; inf for a zero rating).
    """
    idx = {b: k for k, b in enumerate(data.buses)}
    for name, inj in (("p_inj_mw", p_inj_mw), ("q_inj_mvar", q_inj_mvar)):
        bad = [int(b) for b in inj if int(b) not in idx]
        if bad:
            raise ValueError(f"lindistflow_solve: {name} names buses {bad} that are not in the network")
    n = len(data.buses)
    s_inj = np.zeros(n, dtype=complex)
    for b, v in p_inj_mw.items():
        s_inj[idx[int(b)]] += float(v)
    for b, v in q_inj_mvar.items():
        s_inj[idx[int(b)]] += 1j * float(v)
    m = len(data.branches)
    C = np.zeros((m, n))
    y = np.empty(m, dtype=complex)
    for k, br in enumerate(data.branches):
        C[k, idx[br.from_bus]] = 1.0
        C[k, idx[br.to_bus]] = -1.0
        y[k] = 1.0 / complex(br.r_ohm, br.x_ohm)
    vb2 = data.base_kv**2
    Y = C.T @ (y[:, None] * C)
    r = idx[data.root_bus]
    keep = [k for k in range(n) if k != r]
    e0 = data.root_vm_pu**2 / 2.0
    e = np.full(n, e0, dtype=complex)
    if keep:
        e[keep] = e0 + np.linalg.solve(Y[np.ix_(keep, keep)], np.conj(s_inj[keep]) / vb2)
    s_line = np.conj(vb2 * y * (C @ e))
    w = 2.0 * e.real
    vm = {b: (math.sqrt(w[idx[b]]) if w[idx[b]] >= 0 else math.nan) for b in data.buses}
    p = {br.line: float(s_line[k].real) for k, br in enumerate(data.branches)}
    q = {br.line: float(s_line[k].imag) for k, br in enumerate(data.branches)}
    loading = {br.line: _loading(abs(s_line[k]), br.s_max_mva) for k, br in enumerate(data.branches)}
    return Snapshot(vm, p, q, loading)


def _loading(s_mva: float, s_max_mva: float) -> float:
    if s_max_mva > 0:
        return 100.0 * float(s_mva) / s_max_mva
    return math.inf if s_mva > 0 else 0.0


# --------------------------------------------------------------------------------------------------
# Pyomo block
# --------------------------------------------------------------------------------------------------


def add_lindistflow(
    b: pyo.Block,
    data: NetworkData,
    T: pyo.Set,
    *,
    p_inj_mw: Mapping[int, Injection] | None = None,
    q_inj_mvar: Mapping[int, Injection] | None = None,
    n_polygon: int = 12,
    s_max_factor: float = 1.0,
) -> None:
    r"""LinDistFlow rows (module docstring) over the steps ``T`` on block ``b``.

    Injection at bus j, step t (generation positive):
    ``p^{inj}_{j,t} = p_inj_mw[j](t) - p_load_mw[j,t]`` (the callable term only where ``j`` is in the
    mapping; same for Q). ``p_inj_mw[j](t)`` returns a Pyomo expression (e.g. an MG's export
    ``-import_mw[t]``) or a number; ``p_load_mw`` is a mutable fixed demand, 0 until
    :func:`set_network_loads` writes it. Mapping a bus that is not in ``data`` raises ``ValueError``
    (e.g. an MG left out because its PCC switch is open: build the data and the mapping from the
    same switch states).

    Line limit: the K-gon ``cos(phi_k) P + sin(phi_k) Q <= s_max_factor * s_max cos(pi/K)``,
    ``K = n_polygon`` (implies ``|S| <= s_max_factor * s_max``; at most ``1 - cos(pi/K)`` conservative).
    The voltage band and the ratings are mutable params (``w_min_pu2``, ``w_max_pu2``, ``s_max_mva``,
    ``w_root_pu2``), so they can change between re-solves of a persistent model.

    ===============  ===================  ==============================================
    symbol           attribute            meaning
    ===============  ===================  ==============================================
    P_l,t, Q_l,t     p_line_mw,           flow at the from side, from -> to (MW, Mvar)
                     q_line_mvar
    w_j,t            w_pu2                squared voltage magnitude (pu^2)
    theta_j,t        theta_rad            voltage angle (rad), 0 at the root
    p^load, q^load   p_load_mw,           fixed demand per bus and step (mutable)
                     q_load_mvar
    v_root^2         w_root_pu2           root voltage squared (mutable)
    v_min^2, v_max^2 w_min_pu2, w_max_pu2 band per non-root bus (mutable)
    s_max            s_max_mva            rating per line at nominal voltage (mutable)
    P_root, Q_root   p_root_mw,           what the root (ext_grid) supplies to the
                     q_root_mvar          network (Expression; positive = import)
    ===============  ===================  ==============================================

    Rows: ``p_balance_con``, ``q_balance_con`` [bus, t] (non-root buses), ``v_drop_con``,
    ``angle_con`` [line, t], ``v_min_con``, ``v_max_con`` [bus, t] (non-root), ``w_root_con``,
    ``theta_root_con`` [t], ``s_limit_con`` [line, k, t]. Sets: ``bus``, ``nonroot_bus``, ``line``,
    ``polygon_side``. The block is a pure LP; the flows are unique for given injections (radial or
    meshed), so the optimiser's only freedom is in the injections it is given as variables.
    """
    if n_polygon < 3:
        raise ValueError("add_lindistflow: n_polygon must be >= 3")
    if not s_max_factor > 0:
        raise ValueError("add_lindistflow: s_max_factor must be positive")
    p_inj = _injection_table(data, "p_inj_mw", p_inj_mw)
    q_inj = _injection_table(data, "q_inj_mvar", q_inj_mvar)
    topo = _Topology.of(data)
    _add_network_components(b, data, T, n_polygon)
    _add_flow_rows(b, data, T, topo, p_inj, q_inj)
    _add_line_limit(b, T, n_polygon, s_max_factor)
    root = data.root_bus
    b.p_root_mw = pyo.Expression(T, rule=lambda b, t: _root_supply(b.p_line_mw, b.p_load_mw, p_inj, topo, root, t))
    b.q_root_mvar = pyo.Expression(
        T, rule=lambda b, t: _root_supply(b.q_line_mvar, b.q_load_mvar, q_inj, topo, root, t)
    )


@dataclass(frozen=True)
class _Topology:
    """The lines that leave (``out_of``) and enter (``into``) each bus, in the order of the branches."""

    out_of: dict[int, list[int]]
    into: dict[int, list[int]]

    @classmethod
    def of(cls, data: NetworkData) -> _Topology:
        out_of: dict[int, list[int]] = {j: [] for j in data.buses}
        into: dict[int, list[int]] = {j: [] for j in data.buses}
        for br in data.branches:
            out_of[br.from_bus].append(br.line)
            into[br.to_bus].append(br.line)
        return cls(out_of, into)


def _injection_table(data: NetworkData, name: str, table: Mapping[int, Injection] | None) -> dict[int, Injection]:
    """The injections by bus; raises for a bus that is not in the network."""
    out = {int(j): f for j, f in (table or {}).items()}
    bus_set = set(data.buses)
    bad = [j for j in out if j not in bus_set]
    if bad:
        raise ValueError(
            f"add_lindistflow: {name} names buses {bad} that are not in the network "
            f"(left out: {list(data.left_out_buses)})"
        )
    return out


def _injection(table: dict[int, Injection], j: int, t: Any) -> Any:
    f = table.get(j)
    return f(t) if f is not None else 0.0


def _root_supply(flow: Any, load: Any, table: dict[int, Injection], topo: _Topology, root: int, t: Any) -> Any:
    """What the root supplies to the network at step t: the flow leaving it, plus its own demand less
    its injection (``p_root_mw`` with the P quantities, ``q_root_mvar`` with the Q ones)."""
    return (
        sum(flow[li, t] for li in topo.out_of[root])
        - sum(flow[li, t] for li in topo.into[root])
        + load[root, t]
        - _injection(table, root, t)
    )


def _add_network_components(b: pyo.Block, data: NetworkData, T: pyo.Set, n_polygon: int) -> None:
    """The sets, the mutable params (demand, voltage band, ratings) and the variables of the block."""
    br_by_line = {br.line: br for br in data.branches}
    b.lindistflow_data = data  # plain attributes (not components): what set_network_loads/predicted need
    b.lindistflow_steps = tuple(T)
    b.bus = pyo.Set(initialize=list(data.buses), ordered=True)
    b.nonroot_bus = pyo.Set(initialize=[j for j in data.buses if j != data.root_bus], ordered=True)
    b.line = pyo.Set(initialize=list(data.lines), ordered=True)
    b.polygon_side = pyo.RangeSet(0, n_polygon - 1)

    b.p_load_mw = pyo.Param(b.bus, T, mutable=True, initialize=0.0)
    b.q_load_mvar = pyo.Param(b.bus, T, mutable=True, initialize=0.0)
    b.w_root_pu2 = pyo.Param(mutable=True, initialize=data.root_vm_pu**2)
    b.w_min_pu2 = pyo.Param(b.nonroot_bus, mutable=True, initialize=lambda b, j: data.vm_min_pu[j] ** 2)
    b.w_max_pu2 = pyo.Param(b.nonroot_bus, mutable=True, initialize=lambda b, j: data.vm_max_pu[j] ** 2)
    b.s_max_mva = pyo.Param(b.line, mutable=True, initialize=lambda b, li: br_by_line[li].s_max_mva)

    b.p_line_mw = pyo.Var(b.line, T)
    b.q_line_mvar = pyo.Var(b.line, T)
    b.w_pu2 = pyo.Var(b.bus, T, bounds=(0.0, None))
    b.theta_rad = pyo.Var(b.bus, T)


def _add_flow_rows(
    b: pyo.Block,
    data: NetworkData,
    T: pyo.Set,
    topo: _Topology,
    p_inj: dict[int, Injection],
    q_inj: dict[int, Injection],
) -> None:
    """The balance rows of the non-root buses, the voltage-drop and angle rows of the lines, the
    root's voltage and the voltage band."""
    root = data.root_bus
    br_by_line = {br.line: br for br in data.branches}
    vb2 = data.base_kv**2

    def inflow(flow: Any, j: int, t: Any) -> Any:
        return sum(flow[li, t] for li in topo.into[j]) - sum(flow[li, t] for li in topo.out_of[j])

    b.p_balance_con = pyo.Constraint(
        b.nonroot_bus, T, rule=lambda b, j, t: inflow(b.p_line_mw, j, t) == b.p_load_mw[j, t] - _injection(p_inj, j, t)
    )
    b.q_balance_con = pyo.Constraint(
        b.nonroot_bus,
        T,
        rule=lambda b, j, t: inflow(b.q_line_mvar, j, t) == b.q_load_mvar[j, t] - _injection(q_inj, j, t),
    )

    def v_drop(b: pyo.Block, li: int, t: Any) -> Any:
        br = br_by_line[li]
        return (
            b.w_pu2[br.to_bus, t]
            == b.w_pu2[br.from_bus, t] - 2.0 * (br.r_ohm * b.p_line_mw[li, t] + br.x_ohm * b.q_line_mvar[li, t]) / vb2
        )

    def angle(b: pyo.Block, li: int, t: Any) -> Any:
        br = br_by_line[li]
        return (
            b.theta_rad[br.to_bus, t]
            == b.theta_rad[br.from_bus, t] - (br.x_ohm * b.p_line_mw[li, t] - br.r_ohm * b.q_line_mvar[li, t]) / vb2
        )

    b.v_drop_con = pyo.Constraint(b.line, T, rule=v_drop)
    b.angle_con = pyo.Constraint(b.line, T, rule=angle)
    b.w_root_con = pyo.Constraint(T, rule=lambda b, t: b.w_pu2[root, t] == b.w_root_pu2)
    b.theta_root_con = pyo.Constraint(T, rule=lambda b, t: b.theta_rad[root, t] == 0.0)
    b.v_min_con = pyo.Constraint(b.nonroot_bus, T, rule=lambda b, j, t: b.w_pu2[j, t] >= b.w_min_pu2[j])
    b.v_max_con = pyo.Constraint(b.nonroot_bus, T, rule=lambda b, j, t: b.w_pu2[j, t] <= b.w_max_pu2[j])


def _add_line_limit(b: pyo.Block, T: pyo.Set, n_polygon: int, s_max_factor: float) -> None:
    """The inscribed ``n_polygon``-gon of every line's rating (``s_limit_con``)."""
    half = math.pi / n_polygon
    side = [(math.cos((2 * k + 1) * half), math.sin((2 * k + 1) * half)) for k in range(n_polygon)]
    shrink = s_max_factor * math.cos(half)
    b.s_limit_con = pyo.Constraint(
        b.line,
        b.polygon_side,
        T,
        rule=lambda b, li, k, t: (
            side[k][0] * b.p_line_mw[li, t] + side[k][1] * b.q_line_mvar[li, t] <= shrink * b.s_max_mva[li]
        ),
    )


def set_network_loads(
    b: pyo.Block, p_load_mw: Mapping[int, Sequence[float]], q_load_mvar: Mapping[int, Sequence[float]] | None = None
) -> None:
    """Write the fixed demand (MW, Mvar; consumption positive) per bus and step into a LinDistFlow
    block. Replaces the whole table: buses not named get 0. Each sequence has one value per step."""
    T = b.lindistflow_steps
    p_load_mw = {int(j): seq for j, seq in p_load_mw.items()}
    q_load_mvar = {int(j): seq for j, seq in (q_load_mvar or {}).items()}
    for name, table in (("p_load_mw", p_load_mw), ("q_load_mvar", q_load_mvar)):
        for j, seq in table.items():
            if j not in b.bus:
                raise ValueError(f"set_network_loads: {name} names bus {j}, not in the network")
            if len(seq) != len(T):
                raise ValueError(f"set_network_loads: {name}[{j}] has {len(seq)} values for {len(T)} steps")
    for j in b.bus:
        p_seq = p_load_mw.get(j)
        q_seq = q_load_mvar.get(j)
        for k, t in enumerate(T):
            b.p_load_mw[j, t] = float(p_seq[k]) if p_seq is not None else 0.0
            b.q_load_mvar[j, t] = float(q_seq[k]) if q_seq is not None else 0.0


def predicted(b: pyo.Block) -> tuple[dict[tuple[int, Any], float], dict[tuple[int, Any], float]]:
    """After a solve: ``vm_pu[(bus, t)] = sqrt(w)`` and ``loading_percent[(line, t)] =
    100 |S| / s_max_mva`` (flows at nominal voltage, against the full rating, not the polygon).
    Raises ``ValueError`` if the block holds no solution."""
    vm: dict[tuple[int, Any], float] = {}
    loading: dict[tuple[int, Any], float] = {}
    for (j, t), var in b.w_pu2.items():
        if var.value is None:
            raise ValueError("predicted: the LinDistFlow block holds no solution")
        vm[(j, t)] = math.sqrt(max(var.value, 0.0))
    for (li, t), p in b.p_line_mw.items():
        q = b.q_line_mvar[li, t].value
        if p.value is None or q is None:
            raise ValueError("predicted: the LinDistFlow block holds no solution")
        loading[(li, t)] = _loading(math.hypot(p.value, q), pyo.value(b.s_max_mva[li]))
    return vm, loading
