"""A lightsim2grid ``LSGrid`` model of a pandapower net, updated in place, and its check against runpp.

Only values that changed are written: active powers and load q all at once in single precision
(``update_loads_p/q``, ``update_sgens_p``, ``update_storages_p``: 0.2 ms for 5,000 loads) where that is
within :data:`FLOAT32_TOL_MW` of the value, the rest one by one in double precision (``change_p_load``,
``change_q_sgen``, ...: 0.4 us a call, 2 ms for 5,000); lightsim2grid itself ignores a change smaller than
:data:`LS_EQUAL_TOL_MW`. A topology is applied only when it is not the one applied last: a line or trafo
switch opens that end with ``deactivate_powerline_side1/2`` / ``deactivate_trafo_side1/2``; unsupplied
islands are deactivated buses and elements. Newton-Raphson (KLU, tol :data:`NR_TOL`) is warm-started from the last
voltages and retried from a DC start. A model is used only when it reproduced a fresh
``pandapower.runpp`` within :data:`FAST_PATH_TOL_PU` when it was built (:func:`compare_with_runpp`).
"""

from __future__ import annotations

import copy
import logging
import warnings
from typing import Any

import numpy as np
import pandapower as pp

from sims.grid.pf_result import Injections

logger = logging.getLogger(__package__)  # one logger for the grid simulator: "sims.grid"

LS_EQUAL_TOL_MW = 1e-7
"""lightsim2grid ignores a change of an element's power smaller than this (its ``_tol_equal_float``)."""
FLOAT32_TOL_MW = 1e-10
"""Largest error of a power written in single precision: a hundredth of the Newton-Raphson's own tolerance
(:data:`NR_TOL` pu of a base of at least 1 MVA). On SimBench's MV/LV grid about 500 of 11,000 load powers
are further from their single-precision value and go one by one."""
FAST_PATH_TOL_PU = 1e-6
"""Largest bus-voltage difference to a fresh ``runpp`` for the fast path to be used."""
NR_TOL = 1e-8
"""Largest power mismatch at a bus, pu of the net's ``sn_mva``: pandapower's own default (``runpp``'s
``tolerance_mva``), which the fast path is checked against. 1e-10 took a third Newton-Raphson iteration in
more steps (11 % of the step on SimBench's MV/LV grid) and moved bus voltages by less than 5e-9 pu."""
NR_MAXIT = 30
NR_REFACTOR_EVERY = 2
"""The Newton-Raphson refactorises its Jacobian (KLU's numeric factorisation, 0.7 ms of a 1.2 ms iteration
on SimBench's MV/LV grid) in every second iteration and reuses it in between (lightsim2grid's
``RefactorPolicyType.EveryN``). Most steps then take three iterations with two factorisations instead of
two or three with as many; the solution is the same within :data:`NR_TOL`, the step 0.5 ms shorter there."""
VECTOR_MIN_ROWS = 256
"""Below this many rows a table's changed powers go one by one (0.4-0.7 us a call): the single-precision
check around a vectorised update costs about 30 us whatever the size, more than the calls it saves (on a
35-load feeder the injections took 259 us a step with it, 80 us of them the calls)."""
VM_PLAUSIBLE_MIN_PU = 0.5
"""An energised bus below this voltage is a spurious (low-voltage) Newton-Raphson solution, not a result."""
TRAFO_MODELS = ("pandapower_v2", "pandapower_v3")
"""lightsim2grid ``pp_orig_file`` options tried in turn; with pandapower 3.5 the v2 one matches runpp."""
_UNCONVERTIBLE = (
    "trafo3w",
    "impedance",
    "ward",
    "xward",
    "dcline",
    "motor",
    "asymmetric_load",
    "asymmetric_sgen",
    "svc",
    "tcsc",
    "ssc",
    "vsc",
)
_VOLTAGE_DEPENDENT = (
    "const_z_p_percent",
    "const_i_p_percent",
    "const_z_q_percent",
    "const_i_q_percent",
    "const_z_percent",
    "const_i_percent",
)


def fast_path_blocker(net: pp.pandapowerNet) -> str | None:
    """Why the lightsim2grid fast path cannot represent this net (None if it can)."""
    if int(net.ext_grid["in_service"].sum()) != 1 or len(net.ext_grid) != 1:
        return "the fast path needs exactly one ext_grid"
    if len(net.gen):
        return "net has gen elements"
    if len(net.switch) and not net.switch["et"].isin(["l", "t"]).all():
        return "net has bus-bus switches"
    for table in _UNCONVERTIBLE:
        if table in net and len(net[table]):
            return f"net has {table} elements"
    for column in _VOLTAGE_DEPENDENT:
        if column in net.load.columns and (net.load[column].fillna(0) != 0).any():
            return "net has voltage-dependent loads"
    for table in ("line", "trafo"):
        if "parallel" in net[table].columns and (net[table]["parallel"] != 1).any():
            return f"net has parallel {table}s"
    return None


class FastModel:
    """lightsim2grid ``LSGrid`` built once from the net and updated in place each step.

    Element positions are the row positions of the pandapower tables (out-of-service rows are
    deactivated elements); buses are mapped through ``bus_pos`` (sorted pandapower bus index).
    """

    def __init__(self, net: pp.pandapowerNet, bus_pos: dict[int, int], trafo_model: str) -> None:
        from lightsim2grid.network import init_from_pandapower

        work = copy.deepcopy(net)
        work.switch = work.switch.iloc[0:0]  # switch states are applied as line side status
        if not work.bus.index.is_monotonic_increasing:
            raise RuntimeError("fast path needs a sorted bus index")
        pp.toolbox.create_continuous_bus_index(work, start=0, store_old_index=False)
        for table in ("sgen", "gen", "storage", "load"):
            for column in ("min_p_mw", "max_p_mw", "min_q_mvar", "max_q_mvar"):
                if column in work[table].columns:
                    work[table][column] = work[table][column].fillna(0.0)
        with warnings.catch_warnings():
            # lightsim2grid warns that it adds the slack from the ext_grid: that is what we want
            warnings.simplefilter("ignore", UserWarning)
            self.model = init_from_pandapower(work, pp_orig_file=trafo_model)
        _refactor_every(self.model, NR_REFACTOR_EVERY)
        self.n_bus = len(net.bus)
        self.n_gen = len(net.gen)
        self.ext_va_deg = float(net.ext_grid["va_degree"].iloc[0])
        self.line_state = np.where(net.line["in_service"].to_numpy(dtype=bool), 3, 0)
        """Per line: bit 0 side 1 connected, bit 1 side 2 connected."""
        self.trafo_state = np.where(net.trafo["in_service"].to_numpy(dtype=bool), 3, 0)
        """Per trafo: bit 0 hv side connected, bit 1 lv side connected."""
        self.bus_active = net.bus["in_service"].to_numpy(dtype=bool).copy()
        self.load_active = net.load["in_service"].to_numpy(dtype=bool).copy()
        self.sgen_active = net.sgen["in_service"].to_numpy(dtype=bool).copy()
        self.storage_active = net.storage["in_service"].to_numpy(dtype=bool).copy()
        self.values: dict[str, np.ndarray] = {}
        self.applied: object = None
        """The topology the model was last switched to by :func:`sims.grid.fastpath.apply_topology` (None
        after any other change of its topology)."""
        self.V = np.full(self.n_bus, 1.0 + 0.0j)
        self.bus_pos = bus_pos

    def set_values(self, key: str, values: np.ndarray, setter: Any, update: Any = None) -> None:
        """Write what changed in ``values`` since the last call: through the vectorised single-precision
        ``update`` where that is exact enough (:data:`FLOAT32_TOL_MW`) and the table has at least
        :data:`VECTOR_MIN_ROWS` rows, else one by one through ``setter``."""
        old = self.values.get(key)
        changed = np.ones(len(values), dtype=bool) if old is None else old != values
        if update is not None and len(values) >= VECTOR_MIN_ROWS and changed.any():
            single = values.astype(np.float32)
            close = np.abs(single - values) <= FLOAT32_TOL_MW
            if (changed & close).any():
                update(changed & close, single)
            changed &= ~close
        for i in np.flatnonzero(changed).tolist():
            setter(i, float(values[i]))
        self.values[key] = values.copy()

    def set_injections(self, inj: Injections) -> None:
        m = self.model
        self.set_values("load_p", inj.load_p_mw, m.change_p_load, m.update_loads_p)
        self.set_values("load_q", inj.load_q_mvar, m.change_q_load, m.update_loads_q)
        self.set_values("sgen_p", inj.sgen_p_mw, m.change_p_sgen, m.update_sgens_p)
        self.set_values("sgen_q", inj.sgen_q_mvar, m.change_q_sgen)
        self.set_values("st_p", inj.st_p_mw, m.change_p_storage, m.update_storages_p)
        self.set_values("st_q", inj.st_q_mvar, m.change_q_storage)

    def set_active(self, current: np.ndarray, wanted: np.ndarray, deactivate: Any, reactivate: Any) -> None:
        for i in np.flatnonzero(current != wanted).tolist():
            (reactivate if wanted[i] else deactivate)(i)
        current[:] = wanted

    def apply_topology(
        self,
        line_state: np.ndarray,
        trafo_state: np.ndarray,
        bus_active: np.ndarray,
        load_on: np.ndarray,
        sgen_on: np.ndarray,
        storage_on: np.ndarray,
    ) -> None:
        m = self.model
        self.applied = None
        # element and line deactivation before buses, bus reactivation before elements
        self._set_units(load_on, sgen_on, storage_on)
        self._set_sides(
            self.line_state,
            line_state,
            m.deactivate_powerline,
            m.reactivate_powerline,
            m.deactivate_powerline_side1,
            m.deactivate_powerline_side2,
        )
        self._set_sides(
            self.trafo_state,
            trafo_state,
            m.deactivate_trafo,
            m.reactivate_trafo,
            m.deactivate_trafo_side1,
            m.deactivate_trafo_side2,
        )
        for i in np.flatnonzero(self.bus_active != bus_active).tolist():
            if bus_active[i]:
                m.reactivate_bus(i)
            else:
                m.deactivate_bus(i)
                self.V[i] = 1.0
        self.bus_active[:] = bus_active
        # reactivations that depend on reactivated buses
        self._set_units(load_on, sgen_on, storage_on)

    def _set_units(self, load_on: np.ndarray, sgen_on: np.ndarray, storage_on: np.ndarray) -> None:
        m = self.model
        self.set_active(self.load_active, load_on, m.deactivate_load, m.reactivate_load)
        self.set_active(self.sgen_active, sgen_on, m.deactivate_sgen, m.reactivate_sgen)
        self.set_active(self.storage_active, storage_on, m.deactivate_storage, m.reactivate_storage)

    @staticmethod
    def _set_sides(
        current: np.ndarray,
        wanted: np.ndarray,
        deactivate: Any,
        reactivate: Any,
        deactivate_side1: Any,
        deactivate_side2: Any,
    ) -> None:
        for i in np.flatnonzero(current != wanted).tolist():
            new = int(wanted[i])
            if new == 0:
                deactivate(i)
                continue
            reactivate(i)
            if new == 1:
                deactivate_side2(i)
            elif new == 2:
                deactivate_side1(i)
        current[:] = wanted

    def solve(self) -> np.ndarray | None:
        """Complex bus voltages (length n_bus), or None if the Newton-Raphson did not converge.

        Warm-started from the last solution; on failure (or phase-shifting trafos on a cold start)
        retried from a flat start, then from a DC power flow, as pandapower's ``init="auto"`` does. A
        solution with an energised bus below ``VM_PLAUSIBLE_MIN_PU`` counts as a failure: a warm start from
        another switch state (buses that were an island, at their own slack's angle, now joined to the
        grid) can lead Newton-Raphson to the low-voltage solution of the same equations (seen: 0.03 pu
        and 31 MW of losses where runpp gives 0.98 pu).
        """
        V0 = self.V.copy()
        V0[~self.bus_active] = 1.0
        V = self._plausible(self._ac_pf(V0))
        if V is None:
            V = self._plausible(self._ac_pf(np.full(self.n_bus, 1.0 + 0.0j)))
        if V is None:
            V = self._plausible(self._ac_pf(self._dc_start()))
        if V is None:
            self.V = np.full(self.n_bus, 1.0 + 0.0j)
            return None
        self.V = V
        return V

    def _plausible(self, V: np.ndarray | None) -> np.ndarray | None:
        """``V`` unless an energised bus is below ``VM_PLAUSIBLE_MIN_PU`` (then None)."""
        if V is None:
            return None
        on = np.abs(V[self.bus_active])
        return V if not len(on) or float(on.min()) >= VM_PLAUSIBLE_MIN_PU else None

    def _ac_pf(self, V0: np.ndarray | None) -> np.ndarray | None:
        if V0 is None:
            return None
        try:
            V = self.model.ac_pf(V0, NR_MAXIT, NR_TOL)
        except Exception:
            logger.debug("lightsim2grid ac_pf raised", exc_info=True)
            return None
        if len(V) == 0 or not np.all(np.isfinite(V)):
            return None
        return np.asarray(V[: self.n_bus]).copy()

    def _dc_start(self) -> np.ndarray | None:
        flat = np.full(self.n_bus, 1.0 + 0.0j)
        try:
            V = self.model.dc_pf(flat, NR_MAXIT, NR_TOL)
        except Exception:  # noqa: BLE001
            return None
        if len(V) == 0 or not np.all(np.isfinite(V)):
            return None
        return np.exp(1j * np.angle(np.asarray(V[: self.n_bus])))

    def branch_results(self, trafo: bool) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """Line (and trafo) flows as the six arrays of :class:`BranchFlows`, copies the caller may edit."""
        m = self.model
        p1, q1, _, a1 = m.get_line_res1()
        p2, q2, _, a2 = m.get_line_res2()
        line = [np.array(x) for x in (p1, q1, a1, p2, q2, a2)]
        if not trafo:
            return line, None
        tp1, tq1, _, ta1 = m.get_trafo_res1()
        tp2, tq2, _, ta2 = m.get_trafo_res2()
        return line, [np.array(x) for x in (tp1, tq1, ta1, tp2, tq2, ta2)]


def _refactor_every(model: Any, n: int) -> None:
    """Let the model's Newton-Raphson refactorise its Jacobian every ``n`` iterations (see
    :data:`NR_REFACTOR_EVERY`), its other settings kept (set through a solver object: lightsim2grid's
    ``AlgoConfig`` is a list of numbers whose positions it does not document)."""
    from lightsim2grid.algorithm import NR_SparseLU, RefactorPolicyType

    policy = NR_SparseLU()
    policy.set_config(model.get_ac_algo_config())
    policy.set_refactor_policy(RefactorPolicyType.EveryN)
    policy.set_refactor_every_n(n)
    model.set_ac_algo_config(policy.get_config())


def compare_with_runpp(probe: pp.pandapowerNet, fast: FastModel, ran: bool = False) -> str | None:
    """Solve ``fast`` and compare its bus voltages with runpp on ``probe`` (None if they agree)."""
    if not ran:
        probe = copy.deepcopy(probe)
        try:
            pp.runpp(probe, numba=False)
        except Exception as exc:  # noqa: BLE001
            return f"runpp failed ({exc}); fast path not validated"
    V = fast.solve()
    if V is None:
        return "lightsim2grid did not converge on the initial state"
    vm_pp = probe.res_bus["vm_pu"].to_numpy(dtype=float)
    vm_fast = np.where(fast.bus_active, np.abs(V), np.nan)
    both = ~np.isnan(vm_pp)
    if not np.array_equal(both, ~np.isnan(vm_fast)):
        return "energised buses differ between lightsim2grid and pandapower"
    dev = float(np.max(np.abs(vm_pp[both] - vm_fast[both]), initial=0.0))
    va_pp = probe.res_bus["va_degree"].to_numpy(dtype=float)
    va_dev = float(np.max(np.abs(va_pp[both] - np.degrees(np.angle(V[both])) - fast.ext_va_deg), initial=0.0))
    if dev > FAST_PATH_TOL_PU or va_dev > 1e-4:
        return f"lightsim2grid deviates from runpp by {dev:.2e} pu / {va_dev:.2e} deg"
    logger.debug("fast path validated: max |dvm| %.2e pu", dev)
    return None
