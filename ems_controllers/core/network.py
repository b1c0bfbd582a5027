r"""Linearised distribution network model (LinDistFlow) for the network operator's security constraints.

Pure math: a :class:`NetworkData` read once from a pandapower net (:func:`network_from_pandapower`), a
Pyomo block over it (:func:`add_lindistflow`) and a numpy snapshot solver of the same linear equations
(:func:`lindistflow_solve`) to compare with the AC power flow.

The linearisation (Baran & Wu's DistFlow without its loss terms), per branch ``l = (i, j)`` (a line, or
a two-winding transformer from its hv bus ``i`` to its lv bus ``j``) and step t, flows measured at the
from side ``i`` (the hv side of a transformer) and positive from ``i`` to ``j``:

.. math::
    \sum_{l \in in(j)} P_{l,t} - \sum_{l \in out(j)} P_{l,t} = -p^{inj}_{j,t}
    \qquad (\text{same for } Q)\qquad \forall j \ne root

    w_{j,t} = w_{i,t} / \tau_l^2 - 2\,(r_l P_{l,t} + x_l Q_{l,t}) / S_b

    \theta_{j,t} = \theta_{i,t} - (x_l P_{l,t} - r_l Q_{l,t}) / S_b

    w_{root,t} = v_{root}^2,\quad \theta_{root,t} = 0,\quad
    v_{min,j}^2 \le w_{j,t} \le v_{max,j}^2

with ``w = |V|^2`` in pu^2 (each bus on its own ``vn_kv``), ``theta`` the voltage angle in rad, ``P, Q``
in MW/Mvar, ``S_b = net.sn_mva`` and ``r, x`` in pu on ``S_b`` and the nominal voltage ``V_n`` of the
branch's own bus (the lv bus of a transformer): ``r_pu / S_b = r_ohm / V_n^2`` whatever ``S_b``, so on a
line the row is ``w_j = w_i - 2 (r_ohm P + x_ohm Q) / V_n^2`` and it holds at every voltage level.
``tau_l = 1`` on a line. Dropped: the losses ``r l`` and ``x l`` in the balance and ``(r^2+x^2) l`` in
the voltage drop (``l`` the squared current), line charging (``c_nf_per_km``, ``g_us_per_km``) and
switch impedances. The losses are what makes the model optimistic on a loaded feeder: LinDistFlow
voltages sit *above* the AC ones (0.0028 pu at bus 17 of case33bw at its nominal load, AC 0.9131 pu)
and a line's flow misses the losses downstream of it (0.203 MW at the substation of case33bw);
loadings come out low by the losses and by the ``1/v`` of the current (1.8 percentage points at 34 %
on the ieee33_3mg net).

Transformer (``net.trafo``, pandapower's model without its magnetising branch): an ideal transformer
of ratio ``tau : 1`` at the hv side in series with ``z = r + jx`` at the lv side, so ``V_j = V_i / tau
- z I``. ``z_k = vk_percent / 100``, ``r_k = vkr_percent / 100`` on the transformer's ``sn_mva`` at its
rated voltages, brought to ``S_b`` and the lv bus's ``vn_kv``: ``r = r_k (V_lv,rated / V_lv,bus)^2
S_b / sn_mva / parallel``, ``x = sqrt(z_k^2 - r_k^2) (...)`` alike. ``tau = (V_hv,rated / V_lv,rated) /
(V_hv,bus / V_lv,bus)`` with the tap in the rated voltage of ``tap_side``: ``V_rated |1 + d e^{j a}|``,
``d = (tap_pos - tap_neutral) tap_step_percent / 100``, ``a = (tap_pos - tap_neutral) tap_step_degree``
(a ``Ratio`` or ``Symmetrical`` tap changer; NaN tap fields, or a NaN ``tap_changer_type``: no tap,
as in pandapower 3; ``Ideal``/``Tabular`` changers, tap-dependent impedances and a second tap
changer raise). The row is the real part of ``V_i/tau - V_j = z I`` linearised around 1 pu: ``w_j =
w_i / tau^2 - 2 (r P + x Q) / S_b`` with ``P, Q`` at the hv terminal (the ideal transformer is
lossless, so that is the flow into ``z`` too). Left out: the magnetising branch, a shunt drawing
``pfe_kw`` and ``sqrt(i0_percent^2 - (0.1 pfe_kw / sn_mva)^2) / 100 * sn_mva`` Mvar at 1 pu (1.35 kW,
0.34 % of the rating, and ~0 Mvar on pandapower's "0.4 MVA 20/0.4 kV"; 0 on the CIGRE nets). Phase shift
(``shift_degree`` plus a tap's angle): left out of both rows, so ``theta`` on the lv side of a shifting
transformer is measured against that side's own shifted reference. On a radial network that changes
nothing else. On a loop it is exact as long as the shifts around the loop add up to 0 mod 360 deg (two
parallel Dyn5 transformers from the same busbar): a loop whose shifts do not cancel would carry a
circulating flow the model cannot see, and :func:`network_from_pandapower` raises for it. Rating:
``s_max_mva = sn_mva * df * parallel * max_loading_percent / 100`` (the column's value where finite,
else 100 %), the apparent power pandapower's ``loading_percent`` refers to (current at the rated
voltage).

The angle row is the imaginary part of the same linearisation (``V_i - V_j \approx z S^*`` around 1 pu,
whose real part is the voltage-drop row). On a radial feeder it changes nothing (one free angle per
bus, one row per branch); on a meshed network (tie switches closed) it is the second loop condition
that, with the voltage-drop row, makes every loop obey Kirchhoff's voltage law in P *and* Q. Without
it the flows around a loop would be underdetermined (one real equation per loop for two real loop
flows) and an optimiser could route power around a loop in ways AC would not. With it the equations
are square; with every ``tau = 1`` they equal the complex graph-Laplacian form ``Y e = conj(s_inj)``
with ``e = w/2 + j theta``, ``Y = C^T diag(S_b/z) C``, which :func:`lindistflow_solve` solves (in real
form, because ``1/tau^2`` scales ``w`` and not ``theta``).

Root: the bus of the one in-service ext_grid at its ``vm_pu``; an islanded net (no ext_grid) names its
grid-forming bus with ``network_from_pandapower(..., root_bus=b, root_vm_pu=v)`` (default 1.0 pu): the
root is a slack like the ext_grid, taking whatever the other injections leave.

Branch limit: ``|S_l| = sqrt(P^2 + Q^2) <= s_max`` is replaced by an inscribed regular K-gon (vertices
on the circle, one at ``Q = 0``): ``cos(phi_k) P + sin(phi_k) Q <= s_max cos(pi/K)``,
``phi_k = (2k+1) pi/K``. Satisfying it implies ``|S| <= s_max``; it cuts at most a fraction
``1 - cos(pi/K)`` off the limit (3.4 % for K = 12, at the facet mid-points), none at pure active flow.
A line's rating ``s_max_mva = sqrt(3) vn_kv max_i_ka`` is the apparent power at *nominal* voltage: at a
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

# Element tables that the model cannot represent (in-service rows raise).
_UNSUPPORTED = (
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

BRANCH_KINDS = ("line", "trafo")


def trafo_branch_id(trafo: int) -> int:
    """The id in the model (``Branch.line``, the Pyomo set ``line``) of pandapower trafo ``trafo``:
    ``-(1 + trafo)``, negative so that it never collides with a line index."""
    return -(1 + int(trafo))


@dataclass(frozen=True)
class Branch:
    """One modelled line or two-winding transformer; flows are positive from ``from_bus`` to ``to_bus``.

    ``line`` is the branch's id in the model (the key of the flow variables and of :class:`Snapshot`):
    the line index for a line, :func:`trafo_branch_id` ``= -(1 + trafo index)`` for a transformer.
    ``kind`` is ``"line"`` or ``"trafo"``; ``element`` the index in pandapower's ``net.line`` or
    ``net.trafo`` (defaults to ``line`` for a line).

    Line: ``r_ohm = r_ohm_per_km * length_km / parallel`` (likewise x); ``max_i_ka`` = pandapower's
    ``max_i_ka * df * parallel`` (the current its ``loading_percent`` refers to); ``s_max_mva = sqrt(3)
    vn_kv max_i_ka`` at nominal voltage. Transformer (module docstring): ``from_bus`` the hv bus,
    ``to_bus`` the lv bus, ``r_ohm``/``x_ohm`` referred to the lv bus's ``vn_kv``, ``tau`` the off-nominal
    ratio, ``shift_degree`` the phase shift (not in the rows), ``s_max_mva = sn_mva * df * parallel *
    max_loading_percent / 100`` and ``max_i_ka`` its current at the lv bus's ``vn_kv``.
    ``r_pu``, ``x_pu``: on ``NetworkData.base_mva`` and the ``vn_kv`` of the branch's (lv) bus.
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
    kind: str = "line"
    element: int = -1
    tau: float = 1.0
    shift_degree: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in BRANCH_KINDS:
            raise ValueError(f"Branch: kind {self.kind!r} is not one of {BRANCH_KINDS}")
        if self.kind == "line" and self.element == -1:
            object.__setattr__(self, "element", self.line)
        if self.kind == "trafo" and self.line != trafo_branch_id(self.element):
            raise ValueError(f"Branch: trafo {self.element} must have the id {trafo_branch_id(self.element)}")
        if not self.tau > 0:
            raise ValueError(f"Branch {self.line}: tau must be positive, got {self.tau}")

    def loss_per_mw2(self, base_mva: float) -> float:
        """The loss coefficient in MW per MW^2 (``r_pu / base_mva``): the branch's losses at 1 pu voltage
        are ``coef * (P^2 + Q^2)``; on a line ``r_ohm / vn_kv^2``."""
        return self.r_pu / base_mva


@dataclass(frozen=True)
class NetworkData:
    """The energised part of a distribution network of lines and two-winding transformers, as
    LinDistFlow sees it.

    ``buses``: buses connected to the root by modelled branches (root first, pandapower indices).
    ``vm_min_pu`` / ``vm_max_pu``: per-bus band (the root's is not imposed: its voltage is fixed).
    ``base_mva``: ``net.sn_mva``; ``base_kv``: the root bus's ``vn_kv`` (every bus is on its own).
    ``left_out_buses`` / ``left_out_lines`` / ``left_out_trafos``: in the net but not modelled (out of
    service, open switch, or not connected to the root).
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
    left_out_trafos: tuple[int, ...] = ()

    @property
    def n_loops(self) -> int:
        """Independent loops (branches - buses + 1): 0 on a radial network."""
        return len(self.branches) - len(self.buses) + 1

    @property
    def lines(self) -> tuple[int, ...]:
        """The ids (``Branch.line``) of all branches, lines and transformers."""
        return tuple(br.line for br in self.branches)

    @property
    def trafos(self) -> tuple[int, ...]:
        """The pandapower indices of the modelled transformers."""
        return tuple(br.element for br in self.branches if br.kind == "trafo")

    @property
    def loss_per_mw2(self) -> dict[int, float]:
        """Per branch id its loss coefficient (:meth:`Branch.loss_per_mw2`), MW per MW^2."""
        return {br.line: br.loss_per_mw2(self.base_mva) for br in self.branches}


class Snapshot(NamedTuple):
    """One LinDistFlow operating point by bus and by branch id (flows at the from side, the hv side of a
    transformer, positive from -> to)."""

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
    root_bus: int | None = None,
    root_vm_pu: float | None = None,
) -> NetworkData:
    """The LinDistFlow view of a pandapower net of lines and two-winding transformers.

    Supported: buses (any nominal voltages), lines, two-winding transformers (``trafo``, module
    docstring), line and transformer switches; loads, sgens, storages and shunts are injections (see
    :func:`injections_from_pandapower`). Raises ``ValueError`` naming the element for anything else that
    is in service: ``trafo3w``, voltage-controlled ``gen``, ``impedance``, ``dcline``, ``ward``,
    ``xward``, FACTS and asymmetric elements, bus-bus (``et='b'``) switches, a line between buses of
    different ``vn_kv``, lines and transformers of zero impedance, transformer taps it does not model,
    loops whose transformer phase shifts do not cancel.

    Root: the bus of the one in-service ext_grid at its ``vm_pu`` (``root_vm_pu`` overrides the set
    point); or, for an islanded net, ``root_bus`` at ``root_vm_pu`` (default: 1.0 pu, or the ext_grid's
    set point if ``root_bus`` is the ext_grid's bus). Raises for zero in-service ext_grids without
    ``root_bus``, for more than one, and for an in-service ext_grid elsewhere than ``root_bus``.

    A line (transformer) is modelled iff it is in service, both its buses are in service and every
    switch on it is closed; ``switch_closed`` (switch index -> closed) overrides ``net.switch.closed``
    for the switches it names. Buses not connected to the root through modelled branches are left out
    (an island is its grid-forming unit's business, not the network operator's), and so are branches
    inside them. Voltage band from ``net.bus.min_vm_pu`` / ``max_vm_pu``; where a column or value is
    missing the defaults apply. Base: ``net.sn_mva`` and each bus's ``vn_kv``.
    """
    _check_supported(net)
    root, root_vm = _root(net, root_bus, root_vm_pu)
    live_buses = {int(i) for i in net.bus.index[net.bus["in_service"].astype(bool)]}
    if root not in live_buses:
        raise ValueError(f"network_from_pandapower: root bus {root} is out of service")
    vn_kv = {int(b): float(v) for b, v in net.bus["vn_kv"].items()}
    base_mva = float(net.sn_mva)
    open_lines, open_trafos = _open_branches(net, switch_closed)
    candidates = _live_lines(net, open_lines, live_buses, vn_kv, base_mva)
    candidates += _live_trafos(net, open_trafos, live_buses, vn_kv, base_mva)
    order = _reachable(root, candidates)
    seen = set(order)
    branches = tuple(br for br in candidates if br.from_bus in seen)
    _check_shifts(root, branches)
    kept = {(br.kind, br.element) for br in branches}
    left_buses = tuple(sorted(int(b) for b in net.bus.index if int(b) not in seen))
    left_lines = tuple(sorted(int(li) for li in net.line.index if ("line", int(li)) not in kept))
    left_trafos = tuple(sorted(int(t) for t in net.trafo.index if ("trafo", int(t)) not in kept))
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
        vn_kv[root],
        left_buses,
        left_lines,
        left_trafos,
    )


def _check_supported(net: Any) -> None:
    """Raise for an in-service element the model cannot represent."""
    for name in _UNSUPPORTED:
        table = getattr(net, name, None)
        if table is None or len(table) == 0:
            continue
        rows = _in_service(table)
        if len(rows):
            raise ValueError(
                f"network_from_pandapower: {name} {list(rows.index)} in service; the "
                f"LinDistFlow model covers lines and two-winding transformers only"
            )


def _root(net: Any, root_bus: int | None, root_vm_pu: float | None) -> tuple[int, float]:
    """The root bus and its voltage (pu): the one in-service ext_grid's, or ``root_bus``'s."""
    ext = _in_service(net.ext_grid)
    ext_buses = sorted({int(b) for b in ext["bus"]})
    if root_bus is not None:
        if int(root_bus) not in net.bus.index:
            raise ValueError(f"network_from_pandapower: root_bus {root_bus} is not a bus of the net")
        if ext_buses and ext_buses != [int(root_bus)]:
            raise ValueError(
                f"network_from_pandapower: root_bus {root_bus} given but ext_grid {list(ext.index)} in "
                f"service at bus {ext_buses}"
            )
        default = float(ext["vm_pu"].iloc[0]) if len(ext) == 1 else 1.0
        return int(root_bus), float(root_vm_pu) if root_vm_pu is not None else default
    if len(ext) != 1:
        hint = " (an islanded net: name its grid-forming bus with root_bus=...)" if len(ext) == 0 else ""
        raise ValueError(
            f"network_from_pandapower: needs exactly one ext_grid in service, found "
            f"{len(ext)} (ext_grid {list(ext.index)}){hint}"
        )
    vm = float(root_vm_pu) if root_vm_pu is not None else float(ext["vm_pu"].iloc[0])
    return int(ext["bus"].iloc[0]), vm


def _open_branches(net: Any, switch_closed: Mapping[int, bool] | None) -> tuple[set[int], set[int]]:
    """The lines and the transformers an open switch cuts (``switch_closed`` overrides the net's switch
    states); raises for a bus-bus (or other) switch and for a switch that the net does not have."""
    closed = {int(i): bool(c) for i, c in net.switch["closed"].items()}
    if switch_closed:
        unknown = [s for s in switch_closed if s not in closed]
        if unknown:
            raise ValueError(f"network_from_pandapower: switch_closed names switches {unknown} the net does not have")
        closed.update({int(s): bool(c) for s, c in switch_closed.items()})
    cut: dict[str, set[int]] = {"l": set(), "t": set()}
    for s, row in net.switch.iterrows():
        et = row["et"]
        if et not in cut:
            kind = "bus-bus" if et == "b" else f"et={et!r}"
            raise ValueError(
                f"network_from_pandapower: switch {s} is a {kind} switch; only line and transformer "
                f"switches are modelled"
            )
        if not closed[int(s)]:
            cut[et].add(int(row["element"]))
    return cut["l"], cut["t"]


def _live_lines(
    net: Any, open_lines: set[int], live_buses: set[int], vn_kv: Mapping[int, float], base_mva: float
) -> list[Branch]:
    """A :class:`Branch` per line in service, not cut by a switch, between two buses in service."""
    candidates: list[Branch] = []
    for li, row in net.line.iterrows():
        fb, tb = int(row["from_bus"]), int(row["to_bus"])
        if not bool(row["in_service"]) or int(li) in open_lines or fb not in live_buses or tb not in live_buses:
            continue
        if vn_kv[fb] != vn_kv[tb]:
            raise ValueError(
                f"network_from_pandapower: line {li} joins buses of {vn_kv[fb]} and {vn_kv[tb]} kV (bus {fb}, {tb})"
            )
        z_base = vn_kv[fb] ** 2 / base_mva
        par = float(row["parallel"]) if "parallel" in row.index else 1.0
        df = float(row["df"]) if "df" in row.index else 1.0
        r = float(row["r_ohm_per_km"]) * float(row["length_km"]) / par
        x = float(row["x_ohm_per_km"]) * float(row["length_km"]) / par
        if r == 0.0 and x == 0.0:
            raise ValueError(f"network_from_pandapower: line {li} has zero impedance")
        i_max = float(row["max_i_ka"]) * df * par
        candidates.append(
            Branch(int(li), fb, tb, r, x, r / z_base, x / z_base, i_max, math.sqrt(3.0) * vn_kv[fb] * i_max)
        )
    return candidates


def _live_trafos(
    net: Any, open_trafos: set[int], live_buses: set[int], vn_kv: Mapping[int, float], base_mva: float
) -> list[Branch]:
    """A :class:`Branch` per two-winding transformer in service, not cut by a switch, between two buses
    in service (module docstring)."""
    candidates: list[Branch] = []
    for t, row in net.trafo.iterrows():
        hv, lv = int(row["hv_bus"]), int(row["lv_bus"])
        if not bool(row["in_service"]) or int(t) in open_trafos or hv not in live_buses or lv not in live_buses:
            continue
        candidates.append(_trafo_branch(int(t), row, vn_kv[hv], vn_kv[lv], base_mva))
    return candidates


def _finite(row: Any, col: str, default: float = math.nan) -> float:
    """``row[col]`` as a float; ``default`` where the column is missing or the value is NaN/None."""
    v = row[col] if col in row.index else None
    try:
        f = float(v) if v is not None else math.nan
    except (TypeError, ValueError):
        return default
    return f if math.isfinite(f) else default


def _trafo_branch(t: int, row: Any, vn_hv_bus: float, vn_lv_bus: float, base_mva: float) -> Branch:
    """The branch of transformer ``t`` (``row`` of ``net.trafo``): impedance, ratio, shift, rating."""
    hv_factor, lv_factor, tap_deg = _tap(t, row)
    vn_hv = float(row["vn_hv_kv"]) * hv_factor
    vn_lv = float(row["vn_lv_kv"]) * lv_factor
    sn, par = float(row["sn_mva"]), _finite(row, "parallel", 1.0)
    z_k, r_k = float(row["vk_percent"]) / 100.0, float(row["vkr_percent"]) / 100.0
    if not (sn > 0 and z_k > 0 and 0 <= r_k <= z_k):
        raise ValueError(
            f"network_from_pandapower: trafo {t} needs sn_mva > 0 and 0 <= vkr_percent <= vk_percent, vk_percent > 0"
        )
    scale = (vn_lv / vn_lv_bus) ** 2 * base_mva / sn / par
    r_pu, x_pu = r_k * scale, math.sqrt(z_k**2 - r_k**2) * scale
    z_base = vn_lv_bus**2 / base_mva
    s_max = sn * _finite(row, "df", 1.0) * par * _finite(row, "max_loading_percent", 100.0) / 100.0
    return Branch(
        trafo_branch_id(t),
        int(row["hv_bus"]),
        int(row["lv_bus"]),
        r_pu * z_base,
        x_pu * z_base,
        r_pu,
        x_pu,
        s_max / (math.sqrt(3.0) * vn_lv_bus),
        s_max,
        kind="trafo",
        element=t,
        tau=(vn_hv / vn_lv) / (vn_hv_bus / vn_lv_bus),
        shift_degree=_finite(row, "shift_degree", 0.0) + tap_deg,
    )


def _tap(t: int, row: Any) -> tuple[float, float, float]:
    """The factors on the hv and lv rated voltages and the extra phase shift (deg) of transformer
    ``t``'s tap (pandapower's ``Ratio``/``Symmetrical`` changer: ``|1 + d e^{j a}|``, ``atan``)."""
    table = row["tap_dependency_table"] if "tap_dependency_table" in row.index else False
    if isinstance(table, (bool, np.bool_)) and table:
        raise ValueError(f"network_from_pandapower: trafo {t} has a tap-dependent impedance table; not modelled")
    if math.isfinite(_finite(row, "tap2_pos")) and _finite(row, "tap2_pos") != _finite(row, "tap2_neutral"):
        raise ValueError(f"network_from_pandapower: trafo {t} has a second tap changer off neutral; not modelled")
    steps = _finite(row, "tap_pos") - _finite(row, "tap_neutral")
    side = row["tap_side"] if "tap_side" in row.index else None
    kind = row["tap_changer_type"] if "tap_changer_type" in row.index else "Ratio"
    if not math.isfinite(steps) or steps == 0 or side not in ("hv", "lv") or not isinstance(kind, str):
        return 1.0, 1.0, 0.0
    if kind not in ("Ratio", "Symmetrical"):
        raise ValueError(f"network_from_pandapower: trafo {t} has a {kind!r} tap changer off neutral; not modelled")
    d = steps * _finite(row, "tap_step_percent", 0.0) / 100.0
    a = math.radians(steps * _finite(row, "tap_step_degree", 0.0))
    factor = math.hypot(1.0 + d * math.cos(a), d * math.sin(a))
    shift = math.degrees(math.atan(d * math.sin(a) / (1.0 + d * math.cos(a))))
    return (factor, 1.0, shift) if side == "hv" else (1.0, factor, -shift)


def _check_shifts(root: int, branches: Sequence[Branch]) -> None:
    """Raise if a loop's transformer phase shifts do not add up to 0 (mod 360 deg): the model leaves
    the shifts out, which is exact only if every bus can take one reference offset."""
    if not any(br.shift_degree % 360.0 for br in branches):
        return
    adj: dict[int, list[tuple[int, float]]] = {}
    for br in branches:
        adj.setdefault(br.from_bus, []).append((br.to_bus, -br.shift_degree))
        adj.setdefault(br.to_bus, []).append((br.from_bus, br.shift_degree))
    offset = {root: 0.0}
    queue = deque([root])
    while queue:
        i = queue.popleft()
        for j, d in adj.get(i, ()):
            if j not in offset:
                offset[j] = offset[i] + d
                queue.append(j)
    for br in branches:
        gap = (offset[br.from_bus] - br.shift_degree - offset[br.to_bus]) % 360.0
        if min(gap, 360.0 - gap) > 1e-6:
            raise ValueError(
                f"network_from_pandapower: branch {br.line} ({br.kind} {br.element}) closes a loop whose "
                f"phase shifts add up to {gap:g} deg; phase-shifting loops are not modelled"
            )


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

    Radial and meshed alike, through the graph Laplacian of the same equations: with ``u = w/2``,
    ``v = theta`` and ``y_l = S_b / z_l`` (MW per pu), a branch carries ``conj(s_l) = y_l ((u_i / tau_l^2
    - u_j) + j (v_i - v_j))`` (the voltage-drop and the angle rows solved for P and Q) and every non-root
    bus balances ``sum_out conj(s_l) - sum_in conj(s_l) = conj(s_inj)``: a real linear system in ``(u,
    v)`` (complex ``Y e = conj(s_inj)`` if every ``tau = 1``), with ``u_root = v_root^2 / 2``, ``v_root =
    0``. Injections at buses not in ``data`` raise ``ValueError``; the root's injection is ignored (the
    slack takes it). ``vm_pu = sqrt(w)`` (NaN if ``w < 0``), flows at the from (hv) side, keyed by
    branch id, ``loading_percent = 100 |S_l| / s_max_mva`` (flows at nominal voltage; inf for a zero
    rating).
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
    C = np.zeros((m, n))  # incidence: +1 at the from bus, -1 at the to bus
    Du = np.zeros((m, n))  # the same with 1/tau^2 at the from bus: the w part of the drop row
    y = np.empty(m, dtype=complex)
    for k, br in enumerate(data.branches):
        C[k, idx[br.from_bus]] = 1.0
        C[k, idx[br.to_bus]] = -1.0
        Du[k, idx[br.from_bus]] = 1.0 / br.tau**2
        Du[k, idx[br.to_bus]] = -1.0
        y[k] = data.base_mva / complex(br.r_pu, br.x_pu)
    half_w, theta = _solve_laplacian(C, Du, y, s_inj, idx[data.root_bus], data.root_vm_pu**2 / 2.0)
    s_line = np.conj(y * (Du @ half_w + 1j * (C @ theta)))
    w = 2.0 * half_w
    vm = {b: (math.sqrt(w[idx[b]]) if w[idx[b]] >= 0 else math.nan) for b in data.buses}
    p = {br.line: float(s_line[k].real) for k, br in enumerate(data.branches)}
    q = {br.line: float(s_line[k].imag) for k, br in enumerate(data.branches)}
    loading = {br.line: _loading(abs(s_line[k]), br.s_max_mva) for k, br in enumerate(data.branches)}
    return Snapshot(vm, p, q, loading)


def _solve_laplacian(
    C: np.ndarray, Du: np.ndarray, y: np.ndarray, s_inj: np.ndarray, root: int, half_w_root: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(w/2, theta)`` per bus from the balance of the non-root buses (:func:`lindistflow_solve`):
    complex ``Y e = conj(s_inj)`` if ``Du == C`` (every ``tau = 1``), else its real form."""
    n = C.shape[1]
    keep = [k for k in range(n) if k != root]
    B = C.T @ (y[:, None] * C)
    if np.array_equal(Du, C):
        e = np.full(n, half_w_root, dtype=complex)
        if keep:
            e[keep] = half_w_root + np.linalg.solve(B[np.ix_(keep, keep)], np.conj(s_inj[keep]))
        return e.real, e.imag
    A = C.T @ (y[:, None] * Du)
    M = np.block([[A.real, -B.imag], [A.imag, B.real]])
    uv = np.zeros(2 * n)
    uv[root] = half_w_root
    if keep:
        rows = keep + [n + k for k in keep]
        rhs = np.concatenate([s_inj.real, -s_inj.imag])[rows] - M[rows, root] * half_w_root
        uv[rows] = np.linalg.solve(M[np.ix_(rows, rows)], rhs)
    return uv[:n], uv[n:]


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

    Branch limit: the K-gon ``cos(phi_k) P + sin(phi_k) Q <= s_max_factor * s_max cos(pi/K)``,
    ``K = n_polygon`` (implies ``|S| <= s_max_factor * s_max``; at most ``1 - cos(pi/K)`` conservative).
    The voltage band and the ratings are mutable params (``w_min_pu2``, ``w_max_pu2``, ``s_max_mva``,
    ``w_root_pu2``), so they can change between re-solves of a persistent model.

    ===============  ===================  ==============================================
    symbol           attribute            meaning
    ===============  ===================  ==============================================
    P_l,t, Q_l,t     p_line_mw,           flow at the from (hv) side, from -> to (MW,
                     q_line_mvar          Mvar), by branch id (lines and transformers)
    w_j,t            w_pu2                squared voltage magnitude (pu^2)
    theta_j,t        theta_rad            voltage angle (rad), 0 at the root
    p^load, q^load   p_load_mw,           fixed demand per bus and step (mutable)
                     q_load_mvar
    v_root^2         w_root_pu2           root voltage squared (mutable)
    v_min^2, v_max^2 w_min_pu2, w_max_pu2 band per non-root bus (mutable)
    s_max            s_max_mva            rating per branch at nominal voltage (mutable)
    P_root, Q_root   p_root_mw,           what the root (ext_grid) supplies to the
                     q_root_mvar          network (Expression; positive = import)
    ===============  ===================  ==============================================

    Rows: ``p_balance_con``, ``q_balance_con`` [bus, t] (non-root buses), ``v_drop_con``,
    ``angle_con`` [line, t], ``v_min_con``, ``v_max_con`` [bus, t] (non-root), ``w_root_con``,
    ``theta_root_con`` [t], ``s_limit_con`` [line, k, t]. Sets: ``bus``, ``nonroot_bus``, ``line`` (the
    branch ids, ``NetworkData.lines``: a transformer's is negative), ``polygon_side``. The block is a
    pure LP; the flows are unique for given injections (radial or meshed), so the optimiser's only
    freedom is in the injections it is given as variables.
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
    """The balance rows of the non-root buses, the voltage-drop and angle rows of the branches (per unit:
    ``r_pu / base_mva`` per MW), the root's voltage and the voltage band."""
    root = data.root_bus
    br_by_line = {br.line: br for br in data.branches}
    base = data.base_mva

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
        w_from = b.w_pu2[br.from_bus, t] if br.tau == 1.0 else b.w_pu2[br.from_bus, t] / br.tau**2
        return b.w_pu2[br.to_bus, t] == w_from - 2.0 * (
            br.r_pu / base * b.p_line_mw[li, t] + br.x_pu / base * b.q_line_mvar[li, t]
        )

    def angle(b: pyo.Block, li: int, t: Any) -> Any:
        br = br_by_line[li]
        return b.theta_rad[br.to_bus, t] == b.theta_rad[br.from_bus, t] - (
            br.x_pu / base * b.p_line_mw[li, t] - br.r_pu / base * b.q_line_mvar[li, t]
        )

    b.v_drop_con = pyo.Constraint(b.line, T, rule=v_drop)
    b.angle_con = pyo.Constraint(b.line, T, rule=angle)
    b.w_root_con = pyo.Constraint(T, rule=lambda b, t: b.w_pu2[root, t] == b.w_root_pu2)
    b.theta_root_con = pyo.Constraint(T, rule=lambda b, t: b.theta_rad[root, t] == 0.0)
    b.v_min_con = pyo.Constraint(b.nonroot_bus, T, rule=lambda b, j, t: b.w_pu2[j, t] >= b.w_min_pu2[j])
    b.v_max_con = pyo.Constraint(b.nonroot_bus, T, rule=lambda b, j, t: b.w_pu2[j, t] <= b.w_max_pu2[j])


def _add_line_limit(b: pyo.Block, T: pyo.Set, n_polygon: int, s_max_factor: float) -> None:
    """The inscribed ``n_polygon``-gon of every branch's rating (``s_limit_con``)."""
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
    100 |S| / s_max_mva`` by branch id ``line`` (flows at nominal voltage, against the full rating, not
    the polygon).
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
