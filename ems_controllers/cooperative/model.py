"""Sequentially coordinated cooperative community of CHP microgrids (spec 003): pure math.

``L >= 1`` microgrids (MGs), each with PV (used first), a CHP unit with output in
``[chp_min_kwh, chp_max_kwh]`` at ``chp_cost_per_kwh`` (symbol ``c_l``), and external trade with the
grid at the hour's prices (buy ``b`` >= sell ``s``). Energies are kWh per interval, prices per kWh.
No mosaik, no file I/O: the adapter builds :class:`ChpMg` and :class:`HourData` and records the results.

Step 1 (one uEMS per MG, :func:`step1`), with ``net_l = demand_l - pv_l``:

* ``c_l >= b``: CHP at its minimum (at ``c_l == b`` producing and buying cost the same; the uEMS buys);
* ``c_l <= s``: CHP at its maximum (at ``c_l == s`` the uEMS produces and sells);
  when ``b == s == c_l`` the first rule (minimum) applies;
* ``s < c_l < b``: CHP follows net demand, clipped to ``[min, max]``. The MG is *self-sufficient* iff
  ``s < c_l < b`` and ``min <= net_l <= max`` (both bounds inclusive): an MG whose cost equals a price is
  never self-sufficient, even if its surplus and shortage are both zero.

``surplus_l = max(chp_l - net_l, 0)``, ``shortage_l = max(net_l - chp_l, 0)``,
``cost_l = c_l chp_l + b shortage_l - s surplus_l``. The uEMS reports (:class:`Report`) only surplus,
shortage, the self-sufficient flag and, for a self-sufficient MG, its room up and down and its CHP cost.

Step 2 (central EMS, :func:`step2`, from the reports only) maximises the saving
``(b - s) main + sum_l (b - c_l) inc_l + sum_l (c_l - s) dec_l``:

1. main internal trading: ``main = min(S, D)`` with ``S``/``D`` the total surplus/shortage; senders send
   ``main s_l / S``, receivers receive ``main d_l / D`` (proportional split);
2. ancillary trading: leftover shortage ``D - main`` is covered by movable MGs raising their CHP
   (cheapest first, only if ``c_l < b``); leftover surplus ``S - main`` is absorbed by movable MGs
   lowering their CHP (most expensive first, only if ``c_l > s``); ties are broken by MG name;
   the ancillary energy is split among the MGs with leftover shortage (surplus) in proportion to their
   shortage (surplus);
3. the rest is traded externally, split in proportion to shortage (buyers) or surplus (sellers).

Movable MGs: ``mode="paper"`` the self-sufficient ones (the paper's rule, the default);
``mode="extended"`` and ``mode="merit"`` every MG with ``s < c_l < b`` (these MGs then also report room
and cost: the information boundary of both, wider than the paper's by the room and cost of the MGs between
the prices that are not self-sufficient; :attr:`Report.movable` marks a report that carries them).

``mode="merit"`` (:func:`step2`, then :func:`_trade_swaps`): steps 1 and 2 as in extended mode, then
*swaps*: while the cheapest movable CHP with room up (``c_i``) is cheaper than the dearest movable CHP with
room down (``c_j``), ``i`` raises and ``j`` lowers by ``min(up_i, down_j)`` and ``i`` sends that energy to
``j``. This is the hour's central LP (:func:`central_lp`), not a heuristic:

* The LP's CHPs outside the prices sit where step 1 put them: one with ``c_l >= b`` at its minimum (a kWh
  more saves at most ``b <= c_l``), one with ``c_l <= s`` at its maximum (a kWh more earns at least
  ``s >= c_l``). So the LP over all MGs is the LP over the movable MGs' changes ``x_l in [-down_l, up_l]``
  (their reported room around their step-1 output) with the others fixed, a single-period dispatch with
  box constraints and two prices: ``min sum_l c_l x_l + b B - s S`` with ``B - S = E - sum_l x_l``, where
  ``E = D - S`` is the community's net shortage after step 1 (the reports' totals). That LP uses only
  what the reports hold.
* Its optimality (KKT) condition: there is a price ``lambda`` with ``lambda = b`` if ``B > 0``,
  ``lambda = s`` if ``S > 0``, ``s <= lambda <= b`` otherwise, and every movable CHP at its maximum if
  ``c_l < lambda``, at its minimum if ``c_l > lambda``, anywhere between if ``c_l = lambda``.
* After merit's step 2 it holds: if a shortage is left (``B > 0``), ancillary raising stopped only
  because every movable CHP (all have ``c_l < b``) is at its maximum; if a surplus is left (``S > 0``),
  every movable CHP is at its minimum. Otherwise ``B = S = 0`` and the swaps stopped because every CHP
  with room up costs at least as much as every CHP with room down: any ``lambda`` between the dearest
  with room down and the cheapest with room up (both in ``(s, b)``) satisfies the condition. Each swap
  lowers the cost by ``(c_j - c_i) min(up_i, down_j) > 0`` and exhausts one of the two rooms, so the
  swaps end after finitely many.

A swap settles at the midpoint ``(c_i + c_j) / 2``: ``j`` pays ``i`` for the energy, both keep half the
saving ``c_j - c_i``. Swapped energy counts as ancillary internal trade (``ancillary_up/down`` and
``ancillary_send/receive`` as for a helper).

Internal prices (to settle each MG's bill; they cancel in the community's cost):

* main trades at the midpoint ``p_main = (b + s) / 2``: sender and receiver each gain ``(b - s)/2`` per kWh;
* ancillary up by helper ``h``: receivers pay ``p_up_h = (c_h + b) / 2`` per kWh: the helper gets its CHP
  cost plus half the saving ``(b - c_h)``, the receivers keep the other half;
* ancillary down by helper ``h``: the helper pays the surplus MGs ``p_down_h = (c_h + s) / 2`` per kWh
  taken: the surplus MGs get ``s`` plus half the saving ``(c_h - s)``, the helper keeps the other half
  (it saves ``c_h`` of fuel per kWh).

Hence ``bill_l = cost_step1_l - saving_share_l`` and ``sum_l bill_l = cost_step1 - saving = cost_final``.

Per-MG energy balance after step 2 (every MG, every hour; tested)::

    pv + chp_final + main_receive + ancillary_receive + ext_buy
        = demand + main_send + ancillary_send + ext_sell

with ``chp_final = chp_step1 + ancillary_up - ancillary_down``; a helper raising sends its increase
(``ancillary_send = ancillary_up``), a helper lowering receives its decrease (``ancillary_receive =
ancillary_down``).

Central LP (:func:`central_lp`): ``min sum_l c_l chp_l + b B - s S`` over ``chp_l in [min_l, max_l]``,
``B, S >= 0``, ``sum_l (chp_l + pv_l - demand_l) + B - S = 0``. Internal trades are free, so only the
community's net exchange is priced; its optimum is the merit order (:func:`merit_order_lp`, the closed
form, tested against HiGHS).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeGuard

from ems_controllers.core.types import DEFAULT_SOLVER_OPTIONS, SolveStatus

Mode = Literal["paper", "extended", "merit"]
MODES: tuple[str, ...] = ("paper", "extended", "merit")
TOL_KWH = 1e-9
CENTRAL = "central"

# What a uEMS may send (the spec's list): always the first three, the last three only for an MG the
# central EMS may move in step 2 (self-sufficient; in extended mode any MG with sell < cost < buy).
REPORT_FIELDS_ALWAYS: tuple[str, ...] = ("surplus_kwh", "shortage_kwh", "self_sufficient")
REPORT_FIELDS_MOVABLE: tuple[str, ...] = ("up_room_kwh", "down_room_kwh", "chp_cost_per_kwh")
REPORT_FIELDS: tuple[str, ...] = REPORT_FIELDS_ALWAYS + REPORT_FIELDS_MOVABLE
# What the central EMS sends each MG after step 2, in this order.
INSTRUCTION_FIELDS: tuple[str, ...] = (
    "main_send_kwh",
    "main_receive_kwh",
    "ancillary_up_kwh",
    "ancillary_down_kwh",
    "ancillary_send_kwh",
    "ancillary_receive_kwh",
    "ext_sell_kwh",
    "ext_buy_kwh",
    "internal_payment",
)


def _finite(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def is_mode(value: object) -> TypeGuard[Mode]:
    """Whether ``value`` names a step-2 mode (:data:`MODES`)."""
    return value in MODES


def _check_mode(mode: str) -> None:
    if not is_mode(mode):
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def _check_prices(buy_price_per_kwh: float, sell_price_per_kwh: float) -> None:
    _finite("buy_price_per_kwh", buy_price_per_kwh)
    _finite("sell_price_per_kwh", sell_price_per_kwh)
    if buy_price_per_kwh < sell_price_per_kwh:
        raise ValueError(
            f"buy_price_per_kwh ({buy_price_per_kwh}) must be >= sell_price_per_kwh ({sell_price_per_kwh})"
        )


# ---- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChpMg:
    """One microgrid's CHP unit: output in ``[chp_min_kwh, chp_max_kwh]`` per interval at a linear cost."""

    name: str
    chp_min_kwh: float
    chp_max_kwh: float
    chp_cost_per_kwh: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        lo = _finite("chp_min_kwh", self.chp_min_kwh)
        hi = _finite("chp_max_kwh", self.chp_max_kwh)
        _finite("chp_cost_per_kwh", self.chp_cost_per_kwh)
        if lo < 0:
            raise ValueError(f"chp_min_kwh of {self.name} must be >= 0, got {lo}")
        if lo > hi:
            raise ValueError(f"chp_min_kwh ({lo}) of {self.name} must be <= chp_max_kwh ({hi})")


@dataclass(frozen=True)
class HourData:
    """One interval: prices and each MG's demand and PV (kWh), keyed by MG name."""

    buy_price_per_kwh: float
    sell_price_per_kwh: float
    demand_kwh: Mapping[str, float]
    pv_kwh: Mapping[str, float]

    def __post_init__(self) -> None:
        _check_prices(self.buy_price_per_kwh, self.sell_price_per_kwh)
        for fname in ("demand_kwh", "pv_kwh"):
            values = dict(getattr(self, fname))
            for n, v in values.items():
                if not math.isfinite(float(v)) or float(v) < 0:
                    raise ValueError(f"{fname}[{n!r}] must be finite and >= 0, got {v!r}")
            object.__setattr__(self, fname, MappingProxyType({n: float(v) for n, v in values.items()}))
        if set(self.demand_kwh) != set(self.pv_kwh):
            raise ValueError(
                f"demand_kwh and pv_kwh name different MGs: {sorted(self.demand_kwh)} vs {sorted(self.pv_kwh)}"
            )


def hours_from_rows(rows: Iterable[Mapping[str, Any]], names: Sequence[str]) -> list[HourData]:
    """HourData from table rows with columns ``buy_price``, ``sell_price``, ``demand_<name>_kwh`` and
    ``pv_<name>_kwh`` (the layout of ``community_3mg_chp.csv``; rows e.g. from ``csv.DictReader``)."""
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(
                HourData(
                    buy_price_per_kwh=float(row["buy_price"]),
                    sell_price_per_kwh=float(row["sell_price"]),
                    demand_kwh={n: float(row[f"demand_{n}_kwh"]) for n in names},
                    pv_kwh={n: float(row[f"pv_{n}_kwh"]) for n in names},
                )
            )
        except KeyError as exc:
            raise ValueError(f"row {i}: missing column {exc.args[0]!r}") from None
    return out


# ---- step 1 -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Room:
    """The part of a :class:`Report` only a movable MG sends: its CHP's room up and down and its cost."""

    up_kwh: float
    down_kwh: float
    cost_per_kwh: float


@dataclass(frozen=True)
class Report:
    """The message a uEMS sends the central EMS after step 1, and nothing else.

    ``up_room_kwh``, ``down_room_kwh`` and ``chp_cost_per_kwh`` are set only for an MG the central EMS
    may move in step 2 (paper mode: a self-sufficient MG; extended and merit mode: any MG with
    ``sell < cost < buy``). The CHP cost is needed for the ordering of ancillary trading (cheapest raises
    first, most expensive lowers first) and for the ancillary prices; no demand, PV or limits are sent.
    """

    surplus_kwh: float
    shortage_kwh: float
    self_sufficient: bool
    up_room_kwh: float | None = None
    down_room_kwh: float | None = None
    chp_cost_per_kwh: float | None = None

    def __post_init__(self) -> None:
        movable = [self.up_room_kwh, self.down_room_kwh, self.chp_cost_per_kwh]
        if any(v is None for v in movable) and any(v is not None for v in movable):
            raise ValueError("Report: up_room_kwh, down_room_kwh and chp_cost_per_kwh go together")
        for fname in ("surplus_kwh", "shortage_kwh", "up_room_kwh", "down_room_kwh"):
            v = getattr(self, fname)
            if v is not None and (not math.isfinite(v) or v < -TOL_KWH):
                raise ValueError(f"Report: {fname} must be finite and >= 0, got {v!r}")
        if self.surplus_kwh > TOL_KWH and self.shortage_kwh > TOL_KWH:
            raise ValueError("Report: an MG has surplus or shortage, not both")

    @property
    def movable(self) -> bool:
        return self.chp_cost_per_kwh is not None

    @property
    def room(self) -> Room | None:
        """Room and cost of a movable MG; None for the others (the three fields go together)."""
        up, down, cost = self.up_room_kwh, self.down_room_kwh, self.chp_cost_per_kwh
        if up is None or down is None or cost is None:
            return None
        return Room(up, down, cost)

    def as_dict(self) -> dict[str, float | bool]:
        """The report's content: the keys of :data:`REPORT_FIELDS` that are set."""
        out: dict[str, float | bool] = {
            "surplus_kwh": self.surplus_kwh,
            "shortage_kwh": self.shortage_kwh,
            "self_sufficient": self.self_sufficient,
        }
        room = self.room
        if room is not None:
            out["up_room_kwh"] = float(room.up_kwh)
            out["down_room_kwh"] = float(room.down_kwh)
            out["chp_cost_per_kwh"] = float(room.cost_per_kwh)
        return out


@dataclass(frozen=True)
class Step1:
    """One uEMS's step-1 decision. ``regime``: "min" (cost >= buy), "max" (cost <= sell), "follow"."""

    net_kwh: float
    chp_kwh: float
    surplus_kwh: float
    shortage_kwh: float
    self_sufficient: bool
    regime: str
    cost: float
    report: Report


def step1(
    mg: ChpMg,
    demand_kwh: float,
    pv_kwh: float,
    buy_price_per_kwh: float,
    sell_price_per_kwh: float,
    mode: Mode = "paper",
) -> Step1:
    """Local optimisation of one MG for one interval (module docstring, step 1)."""
    _check_mode(mode)
    _check_prices(buy_price_per_kwh, sell_price_per_kwh)
    for fname, v in (("demand_kwh", demand_kwh), ("pv_kwh", pv_kwh)):
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{fname} of {mg.name} must be finite and >= 0, got {v!r}")
    b, s, c = buy_price_per_kwh, sell_price_per_kwh, mg.chp_cost_per_kwh
    lo, hi = mg.chp_min_kwh, mg.chp_max_kwh
    net = demand_kwh - pv_kwh
    between = s < c < b
    if c >= b:
        chp, regime = lo, "min"
    elif c <= s:
        chp, regime = hi, "max"
    else:
        chp, regime = min(max(net, lo), hi), "follow"
    self_sufficient = between and lo <= net <= hi
    surplus = max(chp - net, 0.0)
    shortage = max(net - chp, 0.0)
    cost = c * chp + b * shortage - s * surplus
    movable = self_sufficient if mode == "paper" else between
    if movable:
        report = Report(surplus, shortage, self_sufficient, hi - chp, chp - lo, c)
    else:
        report = Report(surplus, shortage, self_sufficient)
    return Step1(net, chp, surplus, shortage, self_sufficient, regime, cost, report)


# ---- step 2 -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step2Mg:
    """The central EMS's instructions to one MG (kWh) and what it settles internally.

    ``ancillary_up_kwh``/``ancillary_down_kwh``: this MG's CHP change as a helper;
    ``ancillary_send_kwh``/``ancillary_receive_kwh``: ancillary energy it sends/receives (a helper
    raising sends its increase, a helper lowering receives its decrease, shortage/surplus MGs receive/send
    their shares). ``internal_payment``: money it pays the other MGs (negative: it is paid);
    ``saving_share``: its part of the community's saving, so that its bill is step-1 cost - share.
    """

    main_send_kwh: float = 0.0
    main_receive_kwh: float = 0.0
    ancillary_up_kwh: float = 0.0
    ancillary_down_kwh: float = 0.0
    ancillary_send_kwh: float = 0.0
    ancillary_receive_kwh: float = 0.0
    ext_sell_kwh: float = 0.0
    ext_buy_kwh: float = 0.0
    internal_payment: float = 0.0
    saving_share: float = 0.0

    @property
    def chp_change_kwh(self) -> float:
        return self.ancillary_up_kwh - self.ancillary_down_kwh

    def values(self) -> list[float]:
        """The instruction as numbers, in the order of :data:`INSTRUCTION_FIELDS`."""
        return [float(getattr(self, f)) for f in INSTRUCTION_FIELDS]


@dataclass(frozen=True)
class Step2:
    """The central EMS's step-2 result for one interval."""

    mode: str
    by_mg: Mapping[str, Step2Mg]
    main_internal_kwh: float
    ancillary_internal_kwh: float
    saving: float
    main_price_per_kwh: float
    ancillary_price_per_kwh: Mapping[str, float]  # helper -> price of its ancillary energy
    swaps: tuple[Swap, ...] = ()
    """Merit mode: the swaps between movable CHPs, in the order made (their energy is part of
    ``ancillary_internal_kwh``)."""


@dataclass(frozen=True)
class Swap:
    """One swap of merit mode: ``raiser`` raises its CHP by ``kwh`` and sends it to ``lowerer``, which lowers
    its CHP by as much and pays ``price_per_kwh`` (the midpoint of their CHP costs)."""

    raiser: str
    lowerer: str
    kwh: float
    price_per_kwh: float


def _split(total: float, weights: Mapping[str, float]) -> dict[str, float]:
    """``total`` split in proportion to ``weights`` (positive weights only)."""
    w = sum(weights.values())
    if total <= 0 or w <= 0:
        return {}
    return {n: total * x / w for n, x in weights.items() if x > 0}


class _Settlement:
    """What step 2 settles, added up as it goes: each MG's :class:`Step2Mg` fields (``acc``), the
    helpers' ancillary prices and the community's saving."""

    def __init__(self, names: Iterable[str], buy_price_per_kwh: float, sell_price_per_kwh: float) -> None:
        self.b, self.s = buy_price_per_kwh, sell_price_per_kwh
        self.acc: dict[str, dict[str, float]] = {n: {} for n in names}
        self.prices: dict[str, float] = {}
        self.saving = 0.0

    def add(self, n: str, key: str, v: float) -> None:
        self.acc[n][key] = self.acc[n].get(key, 0.0) + v


def _trade_main(st: _Settlement, main: float, surplus: Mapping[str, float], shortage: Mapping[str, float]) -> None:
    """Main internal trading of ``main`` kWh at the midpoint price, in proportion to surplus and shortage."""
    b, s = st.b, st.s
    p_main = 0.5 * (b + s)
    for n, v in _split(main, surplus).items():
        st.add(n, "main_send_kwh", v)
        st.add(n, "internal_payment", -p_main * v)
        st.add(n, "saving_share", 0.5 * (b - s) * v)
    for n, v in _split(main, shortage).items():
        st.add(n, "main_receive_kwh", v)
        st.add(n, "internal_payment", p_main * v)
        st.add(n, "saving_share", 0.5 * (b - s) * v)
    st.saving = (b - s) * main


def _helpers(rooms: Mapping[str, Room], up: bool, b: float, s: float) -> list[tuple[float, str]]:
    """(CHP cost, MG) of the movable MGs that can help, in the order they are asked: raising, the
    cheapest first and only where ``c < b``; lowering, the most expensive first and only where
    ``c > s``; ties by name."""
    if up:
        return sorted((r.cost_per_kwh, n) for n, r in rooms.items() if r.cost_per_kwh < b and r.up_kwh > 0)
    by_cost = sorted((-r.cost_per_kwh, n) for n, r in rooms.items() if r.cost_per_kwh > s and r.down_kwh > 0)
    return [(-neg_c, n) for neg_c, n in by_cost]


def _trade_ancillary(
    st: _Settlement, rooms: Mapping[str, Room], up: bool, left_kwh: float, others: Mapping[str, float]
) -> tuple[float, float]:
    """Ancillary trading one way: movable CHPs raise their output to cover the leftover shortage
    (``up``; ``others``: the shortages) or lower it to absorb the leftover surplus (``others``: the
    surpluses). Each helper's energy is split among ``others`` in proportion; the helper gets (raising)
    or pays (lowering) the ancillary price, half-way between its cost and the price it displaces.
    Returns what is left over and the ancillary energy traded."""
    b, s = st.b, st.s
    change, flow, other_flow = (
        ("ancillary_up_kwh", "ancillary_send_kwh", "ancillary_receive_kwh")
        if up
        else ("ancillary_down_kwh", "ancillary_receive_kwh", "ancillary_send_kwh")
    )
    helper_pays = -1.0 if up else 1.0
    traded = 0.0
    for c, n in _helpers(rooms, up, b, s):
        amount = min(rooms[n].up_kwh if up else rooms[n].down_kwh, left_kwh)
        if amount <= 0:
            break
        left_kwh -= amount
        traded += amount
        margin = b - c if up else c - s
        st.saving += margin * amount
        price = st.prices[n] = 0.5 * (c + (b if up else s))
        st.add(n, change, amount)
        st.add(n, flow, amount)
        st.add(n, "internal_payment", helper_pays * price * amount)
        st.add(n, "saving_share", 0.5 * margin * amount)
        for m, v in _split(amount, others).items():
            st.add(m, other_flow, v)
            st.add(m, "internal_payment", -helper_pays * price * v)
            st.add(m, "saving_share", 0.5 * margin * v)
    return max(left_kwh, 0.0), traded


def step2(
    reports: Mapping[str, Report], buy_price_per_kwh: float, sell_price_per_kwh: float, mode: Mode = "paper"
) -> Step2:
    """Global coordination of one interval from the uEMS reports only (module docstring, step 2)."""
    _check_mode(mode)
    _check_prices(buy_price_per_kwh, sell_price_per_kwh)
    surplus = {n: r.surplus_kwh for n, r in reports.items() if r.surplus_kwh > 0}
    shortage = {n: r.shortage_kwh for n, r in reports.items() if r.shortage_kwh > 0}
    tot_s, tot_d = sum(surplus.values()), sum(shortage.values())
    main = min(tot_s, tot_d)
    st = _Settlement(reports, buy_price_per_kwh, sell_price_per_kwh)
    _trade_main(st, main, surplus, shortage)
    rooms: dict[str, Room] = {}  # the MGs step 2 may move, with their room and CHP cost
    for n, r in reports.items():
        room = r.room
        if room is not None and (r.self_sufficient or mode != "paper"):
            rooms[n] = room
    left_d, left_s = tot_d - main, tot_s - main
    anc_total = 0.0
    if left_d > TOL_KWH:  # raise movable CHPs
        left_d, anc_total = _trade_ancillary(st, rooms, True, left_d, shortage)
    elif left_s > TOL_KWH:  # lower movable CHPs
        left_s, anc_total = _trade_ancillary(st, rooms, False, left_s, surplus)
    else:
        left_d = left_s = 0.0
    swaps = _trade_swaps(st, rooms) if mode == "merit" else []
    anc_total += sum(x.kwh for x in swaps)
    for n, v in _split(left_d, shortage).items():
        st.add(n, "ext_buy_kwh", v)
    for n, v in _split(left_s, surplus).items():
        st.add(n, "ext_sell_kwh", v)
    by_mg = {n: Step2Mg(**st.acc[n]) for n in reports}
    p_main = 0.5 * (buy_price_per_kwh + sell_price_per_kwh)
    return Step2(
        mode, MappingProxyType(by_mg), main, anc_total, st.saving, p_main, MappingProxyType(st.prices), tuple(swaps)
    )


def _trade_swaps(st: _Settlement, rooms: Mapping[str, Room]) -> list[Swap]:
    """Merit mode's swaps (module docstring) after ancillary trading: the cheapest movable CHP with room up
    raises and sends to the dearest with room down while it is cheaper; ties by name."""
    up = {
        n: r.up_kwh - st.acc[n].get("ancillary_up_kwh", 0.0) + st.acc[n].get("ancillary_down_kwh", 0.0)
        for n, r in rooms.items()
    }
    down = {n: r.up_kwh + r.down_kwh - up[n] for n, r in rooms.items()}
    swaps: list[Swap] = []
    while True:
        raisers = sorted((rooms[n].cost_per_kwh, n) for n, v in up.items() if v > TOL_KWH)
        lowerers = sorted((-rooms[n].cost_per_kwh, n) for n, v in down.items() if v > TOL_KWH)
        if not raisers or not lowerers:
            return swaps
        (c_i, i), (neg_c_j, j) = raisers[0], lowerers[0]
        c_j = -neg_c_j
        if c_i >= c_j:  # every CHP with room up costs at least what any with room down saves
            return swaps
        kwh = min(up[i], down[j])
        price = 0.5 * (c_i + c_j)
        up[i], down[i], up[j], down[j] = up[i] - kwh, down[i] + kwh, up[j] + kwh, down[j] - kwh
        st.saving += (c_j - c_i) * kwh
        for n, change, flow, pays in (
            (i, "ancillary_up_kwh", "ancillary_send_kwh", -price),
            (j, "ancillary_down_kwh", "ancillary_receive_kwh", price),
        ):
            st.add(n, change, kwh)
            st.add(n, flow, kwh)
            st.add(n, "internal_payment", pays * kwh)
            st.add(n, "saving_share", 0.5 * (c_j - c_i) * kwh)
        swaps.append(Swap(i, j, kwh, price))


# ---- central LP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LpResult:
    """The central LP of one interval. Values are None unless ``ok``.

    ``internal_kwh``: energy traded between MGs, ``min(sum of MG exports, sum of MG imports)`` of the net
    positions ``mg_net_export_kwh = chp + pv - demand``; the LP prices only the community's net exchange,
    so any pairwise routing of these positions is optimal.
    """

    status: SolveStatus  # HiGHS's model status through core.solver's one map
    termination: str
    cost: float | None
    chp_kwh: Mapping[str, float] | None
    ext_buy_kwh: float | None
    ext_sell_kwh: float | None
    internal_kwh: float | None
    mg_net_export_kwh: Mapping[str, float] | None
    solve_s: float = 0.0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status is SolveStatus.OPTIMAL and self.cost is not None


def _check_names(mgs: Sequence[ChpMg], hour: HourData) -> None:
    if not mgs:
        raise ValueError("mgs must hold at least one MG")
    names = [m.name for m in mgs]
    if len(set(names)) != len(names):
        raise ValueError(f"mgs: duplicate names {names}")
    missing = set(names) - set(hour.demand_kwh)
    if missing:
        raise ValueError(f"hour.demand_kwh / pv_kwh: no data for MG(s) {sorted(missing)}")


def _lp_result(
    mgs: Sequence[ChpMg],
    hour: HourData,
    chp: Sequence[float],
    buy: float,
    sell: float,
    status: SolveStatus,
    termination: str,
    solve_s: float,
) -> LpResult:
    chp_map = {m.name: float(x) for m, x in zip(mgs, chp, strict=True)}
    pos = {m.name: chp_map[m.name] + hour.pv_kwh[m.name] - hour.demand_kwh[m.name] for m in mgs}
    exp = sum(v for v in pos.values() if v > 0)
    imp = -sum(v for v in pos.values() if v < 0)
    cost = (
        sum(m.chp_cost_per_kwh * chp_map[m.name] for m in mgs)
        + hour.buy_price_per_kwh * buy
        - hour.sell_price_per_kwh * sell
    )
    return LpResult(
        status, termination, cost, MappingProxyType(chp_map), buy, sell, min(exp, imp), MappingProxyType(pos), solve_s
    )


def central_lp(mgs: Sequence[ChpMg], hour: HourData) -> LpResult:
    """Solve the community's LP of one interval with HiGHS (module docstring). Never raises on a solver
    failure: the status says what happened (the LP is always feasible and bounded for valid inputs)."""
    _check_names(mgs, hour)
    t0 = time.perf_counter()
    try:
        import highspy

        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        # HiGHS sizes one thread pool per process at its first solve; a later solve asking for another
        # size fails ("unknown"). Every solve here uses the same count as the Pyomo-built models.
        h.setOptionValue("threads", DEFAULT_SOLVER_OPTIONS.threads)
        inf = highspy.kHighsInf
        n = len(mgs)
        costs = [m.chp_cost_per_kwh for m in mgs] + [hour.buy_price_per_kwh, -hour.sell_price_per_kwh]
        lower = [m.chp_min_kwh for m in mgs] + [0.0, 0.0]
        upper = [m.chp_max_kwh for m in mgs] + [inf, inf]
        h.addCols(n + 2, costs, lower, upper, 0, [], [], [])
        rhs = sum(hour.demand_kwh[m.name] - hour.pv_kwh[m.name] for m in mgs)
        h.addRow(rhs, rhs, n + 2, list(range(n + 2)), [1.0] * n + [1.0, -1.0])
        h.run()
        ms = h.getModelStatus()
        term = h.modelStatusToString(ms)
        solve_s = time.perf_counter() - t0
        if ms != highspy.HighsModelStatus.kOptimal:
            from ems_controllers.core.solver import highs_termination, solve_status

            status = solve_status(highs_termination(ms), has_solution=False)
            return LpResult(status, term, None, None, None, None, None, None, solve_s)
        x = list(h.getSolution().col_value)
        return _lp_result(mgs, hour, x[:n], max(x[n], 0.0), max(x[n + 1], 0.0), SolveStatus.OPTIMAL, term, solve_s)
    except Exception as exc:  # noqa: BLE001 - never raises (see docstring): any solver failure is an "error" result
        return LpResult(
            SolveStatus.ERROR,
            type(exc).__name__,
            None,
            None,
            None,
            None,
            None,
            None,
            time.perf_counter() - t0,
            str(exc),
        )


def merit_order_lp(mgs: Sequence[ChpMg], hour: HourData) -> LpResult:
    """The central LP's closed form.

    Proof sketch: the LP's only coupling is the balance row; with ``B, S >= 0`` and ``b >= s`` the value
    of one more kWh of CHP is ``b`` while the community imports and ``s`` while it exports. So a CHP with
    ``c_l >= b`` stays at its minimum, one with ``c_l <= s`` runs at its maximum, and the others (``s < c_l
    < b``) start at their minimum and are raised cheapest first while the community still imports
    (``net = sum(demand - pv) - sum chp > 0``); the remainder is bought, or a negative remainder sold.
    Ties between equal costs are broken by name (the optimum's cost is unique, the dispatch may not be).
    """
    _check_names(mgs, hour)
    b, s = hour.buy_price_per_kwh, hour.sell_price_per_kwh
    chp = {}
    for m in mgs:
        chp[m.name] = m.chp_max_kwh if m.chp_cost_per_kwh <= s and m.chp_cost_per_kwh < b else m.chp_min_kwh
    residual = sum(hour.demand_kwh[m.name] - hour.pv_kwh[m.name] - chp[m.name] for m in mgs)
    between = sorted((m for m in mgs if s < m.chp_cost_per_kwh < b), key=lambda m: (m.chp_cost_per_kwh, m.name))
    for m in between:
        if residual <= 0:
            break
        inc = min(m.chp_max_kwh - m.chp_min_kwh, residual)
        chp[m.name] += inc
        residual -= inc
    return _lp_result(
        mgs,
        hour,
        [chp[m.name] for m in mgs],
        max(residual, 0.0),
        max(-residual, 0.0),
        SolveStatus.OPTIMAL,
        "closed form",
        0.0,
    )


# ---- one hour -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MgHour:
    """What one MG did in one interval (step 1, step 2, final CHP, bill)."""

    chp_step1_kwh: float
    chp_kwh: float
    surplus_kwh: float
    shortage_kwh: float
    self_sufficient: bool
    main_send_kwh: float
    main_receive_kwh: float
    ancillary_up_kwh: float
    ancillary_down_kwh: float
    ancillary_send_kwh: float
    ancillary_receive_kwh: float
    ext_sell_kwh: float
    ext_buy_kwh: float
    cost_step1: float
    internal_payment: float
    bill: float  # cost_step1 - saving_share == c chp + b ext_buy - s ext_sell + internal_payment


@dataclass(frozen=True)
class HourResult:
    mode: str
    step1: Mapping[str, Step1]
    step2: Step2
    mgs: Mapping[str, MgHour]
    cost_step1: float
    cost_final: float
    lp: LpResult
    gap: float | None  # cost_final - lp.cost (None if the LP failed); >= 0 up to rounding
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def main_internal_kwh(self) -> float:
        return self.step2.main_internal_kwh

    @property
    def ancillary_internal_kwh(self) -> float:
        return self.step2.ancillary_internal_kwh


def report_message(sender: str, report: Report) -> dict[str, Any]:
    """A uEMS -> central message; ``values`` are floats in the order of ``fields`` (bool as 0/1)."""
    d = report.as_dict()
    return {
        "sender": sender,
        "receiver": CENTRAL,
        "kind": "report",
        "fields": list(d),
        "values": [float(v) for v in d.values()],
    }


def run_hour(mgs: Sequence[ChpMg], hour: HourData, mode: Mode = "paper") -> HourResult:
    """Steps 1 and 2, the central LP and the gap for one interval, with the messages exchanged."""
    _check_mode(mode)
    _check_names(mgs, hour)
    b, s = hour.buy_price_per_kwh, hour.sell_price_per_kwh
    s1 = {m.name: step1(m, hour.demand_kwh[m.name], hour.pv_kwh[m.name], b, s, mode) for m in mgs}
    s2 = step2({n: r.report for n, r in s1.items()}, b, s, mode)
    msgs = [report_message(n, r.report) for n, r in s1.items()]
    per: dict[str, MgHour] = {}
    for m in mgs:
        a, z = s1[m.name], s2.by_mg[m.name]
        chp = a.chp_kwh + z.chp_change_kwh
        per[m.name] = MgHour(
            chp_step1_kwh=a.chp_kwh,
            chp_kwh=chp,
            surplus_kwh=a.surplus_kwh,
            shortage_kwh=a.shortage_kwh,
            self_sufficient=a.self_sufficient,
            main_send_kwh=z.main_send_kwh,
            main_receive_kwh=z.main_receive_kwh,
            ancillary_up_kwh=z.ancillary_up_kwh,
            ancillary_down_kwh=z.ancillary_down_kwh,
            ancillary_send_kwh=z.ancillary_send_kwh,
            ancillary_receive_kwh=z.ancillary_receive_kwh,
            ext_sell_kwh=z.ext_sell_kwh,
            ext_buy_kwh=z.ext_buy_kwh,
            cost_step1=a.cost,
            internal_payment=z.internal_payment,
            bill=a.cost - z.saving_share,
        )
        msgs.append(
            {
                "sender": CENTRAL,
                "receiver": m.name,
                "kind": "instruction",
                "fields": list(INSTRUCTION_FIELDS),
                "values": z.values(),
            }
        )
    cost_step1 = sum(a.cost for a in s1.values())
    cost_final = cost_step1 - s2.saving
    lp = central_lp(mgs, hour)
    gap = cost_final - lp.cost if lp.ok and lp.cost is not None else None  # ok implies a cost
    return HourResult(mode, MappingProxyType(s1), s2, MappingProxyType(per), cost_step1, cost_final, lp, gap, msgs)


# ---- gap analysis -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GapRow:
    hour: int
    cost_step1: float
    cost_final: float
    lp_cost: float | None
    gap: float | None
    reason: str  # "" when the gap is zero (|gap| <= gap_tol)


def explain_gap(mgs: Sequence[ChpMg], hour: HourData, res: HourResult, tol_kwh: float = 1e-6) -> str:
    """Why the two-step dispatch differs from the LP's: one clause per MG whose final CHP differs.

    The LP's dispatch is the merit order (:func:`merit_order_lp`); it is used here so that the reason does
    not depend on how HiGHS breaks ties between equal costs.
    """
    if res.gap is None:
        return f"central LP failed: {res.lp.status} ({res.lp.termination}) {res.lp.message}".strip()
    b, s = hour.buy_price_per_kwh, hour.sell_price_per_kwh
    ref = merit_order_lp(mgs, hour)
    assert ref.chp_kwh is not None and ref.ext_buy_kwh is not None and ref.ext_sell_kwh is not None
    ext_buy = sum(x.ext_buy_kwh for x in res.mgs.values())
    ext_sell = sum(x.ext_sell_kwh for x in res.mgs.values())
    clauses = []
    raised, lowered, unmovable = False, False, False
    for m in mgs:
        x = res.mgs[m.name]
        d = ref.chp_kwh[m.name] - x.chp_kwh
        if abs(d) <= tol_kwh:
            continue
        raised, lowered = raised or d > 0, lowered or d < 0
        c = m.chp_cost_per_kwh
        between = s < c < b
        unmovable = unmovable or (between and not res.step1[m.name].report.movable)
        where = "between prices" if between else ("at or above buy" if c >= b else "at or below sell")
        state = (
            "self-sufficient"
            if x.self_sufficient
            else (
                "not self-sufficient, step 1 at its "
                + (
                    "minimum with surplus"
                    if x.surplus_kwh > 0
                    else "maximum with shortage"
                    if x.shortage_kwh > 0
                    else "bound"
                )
            )
        )
        moved = "moved in step 2" if abs(x.chp_kwh - x.chp_step1_kwh) > tol_kwh else "not moved in step 2"
        verb = f"raise it by {d:g} kWh" if d > 0 else f"lower it by {-d:g} kWh"
        clauses.append(f"MG {m.name}'s CHP (cost {c:g}, {where}; {state}; {moved}) should {verb}")
    what = []
    if ext_buy - ref.ext_buy_kwh > tol_kwh:
        what.append(f"displacing {ext_buy - ref.ext_buy_kwh:g} kWh of external purchase at {b:g}")
    if ref.ext_sell_kwh - ext_sell > tol_kwh:
        what.append(f"adding {ref.ext_sell_kwh - ext_sell:g} kWh of external sale at {s:g}")
    if ext_sell - ref.ext_sell_kwh > tol_kwh:
        what.append(f"cutting {ext_sell - ref.ext_sell_kwh:g} kWh of external sale at {s:g}")
    if ref.ext_buy_kwh - ext_buy > tol_kwh:
        what.append(f"buying {ref.ext_buy_kwh - ext_buy:g} kWh more at {b:g}")
    whys = []
    if unmovable:
        whys.append("paper's step 2 moves only self-sufficient MGs")
    if raised and lowered:
        what.append("cheaper CHP output replacing dearer CHP output")
        whys.append(
            "step 2 never swaps output between MGs (it only covers what is left after main "
            "trading, and nothing when surplus and shortage match)"
        )
    if not whys:
        whys.append("step 2 stops short of the merit order")
    why = "; ".join(whys)
    return "; ".join(clauses) + " (" + ", ".join(what) + "): " + why


def gap_analysis(
    mgs: Sequence[ChpMg], hours: Sequence[HourData], mode: Mode = "paper", first_hour: int = 1, gap_tol: float = 1e-6
) -> list[GapRow]:
    """Per interval: step-1 cost, two-step cost, LP cost, gap and, where ``gap > gap_tol``, why."""
    rows = []
    for k, hour in enumerate(hours):
        res = run_hour(mgs, hour, mode)
        reason = ""
        if res.gap is None or res.gap > gap_tol:
            reason = explain_gap(mgs, hour, res)
        rows.append(GapRow(first_hour + k, res.cost_step1, res.cost_final, res.lp.cost, res.gap, reason))
    return rows
