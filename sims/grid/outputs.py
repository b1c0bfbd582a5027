"""Output values of a step, built on demand: only the (model, attribute) columns ``get_data`` asks for.

:meth:`StepOutputs.values` gives the values of one attribute for the entities at the given row positions
of ``model``'s table (``Grid`` has one row) as Python floats, ints and bools (``tolist``). A column is
computed from the step's unit outputs and power flow the first time it is asked for and kept for the
step. Electrical values are NaN when the power flow diverged (its result is NaN throughout) and so are the
grid aggregates but ``unsupplied_mw`` and ``shed_mw``; before the first step every value is NaN but the
switch states. The ``Grid`` entity's column outputs (``"Bus.vm_pu"``: every bus's ``vm_pu`` as one list,
:data:`~sims.grid.spec.GRID_COLUMNS`) are such columns whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from sims.grid.netindex import NetIndex
from sims.grid.pf_result import PowerFlowResult
from sims.grid.spec import GRID_COLUMNS, GRID_OUTPUTS
from sims.grid.topology import Topology
from sims.grid.units import UnitOutputs

OVERLOAD_PERCENT = 100.0

_Column = Callable[["StepOutputs"], np.ndarray]


def _load_p(o: StepOutputs) -> np.ndarray:
    d = o.units.dispatch
    return np.where(d.load_on, d.load_p, 0.0)


def _load_q(o: StepOutputs) -> np.ndarray:
    d = o.units.dispatch
    return np.where(d.load_on, d.load_q, 0.0)


_COLUMNS: dict[tuple[str, str], _Column] = {
    ("Bus", "vm_pu"): lambda o: o.pf.vm_pu,
    ("Bus", "va_degree"): lambda o: o.pf.va_degree,
    ("Bus", "p_mw"): lambda o: o.pf.bus_p_mw,
    ("Bus", "q_mvar"): lambda o: o.pf.bus_q_mvar,
    ("Line", "loading_percent"): lambda o: o.pf.loading.line_loading_percent,
    ("Line", "i_ka"): lambda o: o.pf.loading.line_i_ka,
    ("Line", "p_from_mw"): lambda o: o.pf.line.p1_mw,
    ("Line", "q_from_mvar"): lambda o: o.pf.line.q1_mvar,
    ("Line", "p_to_mw"): lambda o: o.pf.line.p2_mw,
    ("Line", "pl_mw"): lambda o: o.pf.loading.line_pl_mw,
    ("ExtGrid", "p_mw"): lambda o: o.pf.ext_grid_p_mw,
    ("ExtGrid", "q_mvar"): lambda o: o.pf.ext_grid_q_mvar,
    ("Load", "p_mw"): _load_p,
    ("Load", "q_mvar"): _load_q,
    ("Load", "shed_mw"): lambda o: o.units.dispatch.load_shed,
    ("StaticGen", "p_mw"): lambda o: o.units.sgen_p,
    ("StaticGen", "p_avail_mw"): lambda o: o.units.dispatch.sgen_avail,
    ("StaticGen", "curtailed_mw"): lambda o: o.units.curtailed,
    ("StaticGen", "q_mvar"): lambda o: o.units.dispatch.sgen_q,
    ("Storage", "p_mw"): lambda o: o.units.st_p,
    ("Storage", "soc_mwh"): lambda o: o.units.soc_mwh,
    ("Storage", "clipped_mw"): lambda o: o.units.clipped,
    ("Switch", "closed"): lambda o: o.topo.closed,
}
"""Where each output column of a step comes from (``MODEL_SPECS`` names the same attributes)."""


class StepOutputs:
    """The outputs of one step (or, with ``units``/``pf`` None, of the time before the first step)."""

    def __init__(
        self, index: NetIndex, topo: Topology, units: UnitOutputs | None = None, pf: PowerFlowResult | None = None
    ) -> None:
        self.index = index
        self.topo: Topology = topo
        self._units = units
        self._pf = pf
        self._columns: dict[tuple[str, str], np.ndarray] = {}
        self._grid: dict[str, Any] | None = None

    @property
    def units(self) -> UnitOutputs:
        assert self._units is not None
        return self._units

    @property
    def pf(self) -> PowerFlowResult:
        assert self._pf is not None
        return self._pf

    def values(self, model: str, attr: str, pos: np.ndarray | None) -> list[Any]:
        """The values of ``attr`` of ``model``'s rows ``pos`` (None: every row, in order); the ``Grid``'s
        column outputs (:data:`~sims.grid.spec.GRID_COLUMNS`) are a list each."""
        if model == "Grid":  # one row
            column = GRID_COLUMNS.get(attr)
            if column is not None:
                return [self.column(*column).tolist()]
            return [self.grid()[attr]]
        col = self.column(model, attr)
        return col.tolist() if pos is None else col[pos].tolist()

    def column(self, model: str, attr: str) -> np.ndarray:
        """The whole column of ``attr`` of ``model`` (KeyError for an attribute it does not output)."""
        key = (model, attr)
        col = self._columns.get(key)
        if col is None:
            make = _COLUMNS[key]
            if self._units is None and key != ("Switch", "closed"):
                col = np.full(self._rows(model), math.nan)
            else:
                col = make(self)
            self._columns[key] = col
        return col

    def grid(self) -> dict[str, Any]:
        """The Grid entity's outputs."""
        if self._grid is None:
            self._grid = dict.fromkeys(GRID_OUTPUTS, math.nan)
            if self._units is not None and self._pf is not None:
                d = self._units.dispatch
                self._grid["unsupplied_mw"] = d.unsupplied_mw
                self._grid["shed_mw"] = float(np.sum(d.load_shed))
                self._grid["pf_converged"] = 0
                if self._pf.converged:
                    self._grid.update(_grid_aggregates(self.index, self.topo, self._pf))
        return self._grid

    def _rows(self, model: str) -> int:
        index = self.index
        sizes = {"Bus": index.n_bus, "Line": len(index.line_from), "ExtGrid": len(index.eg_bus)}
        sizes |= {"Load": len(index.load_bus), "StaticGen": len(index.sgen_bus), "Storage": len(index.st_bus)}
        return sizes[model]


def _grid_aggregates(index: NetIndex, topo: Topology, pf: PowerFlowResult) -> dict[str, Any]:
    """Voltage band, loading and losses of a converged power flow, over the energised buses."""
    loadings = [pf.loading.line_loading_percent]
    if pf.loading.trafo_loading_percent is not None:
        loadings.append(pf.loading.trafo_loading_percent)
    all_loading = np.concatenate(loadings)
    energised = topo.energised
    vm_e = pf.vm_pu[energised]
    violations = (vm_e < index.vmin_pu[energised]) | (vm_e > index.vmax_pu[energised])
    return {
        "pf_converged": 1,
        "losses_mw": pf.losses_mw,
        "min_vm_pu": float(np.min(vm_e)) if len(vm_e) else math.nan,
        "max_vm_pu": float(np.max(vm_e)) if len(vm_e) else math.nan,
        "max_loading_percent": float(np.nanmax(all_loading)) if len(all_loading) else 0.0,
        "n_voltage_violations": int(np.sum(violations)),
        "n_overloads": int(np.sum(all_loading > OVERLOAD_PERCENT)),
    }
