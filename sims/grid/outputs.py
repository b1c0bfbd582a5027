"""Output filling: each step's values of every mosaik attribute, as lists indexed by row position.

``OutputTables[model][attr][pos]`` is what ``get_data`` returns for the entity at row ``pos`` of
``model``'s table (``Grid`` has one row). Values are Python floats, ints and bools (``tolist``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sims.grid.netindex import NetIndex
from sims.grid.pf_result import PowerFlowResult
from sims.grid.spec import GRID_OUTPUTS, MODEL_SPECS
from sims.grid.topology import Topology
from sims.grid.units import UnitOutputs

OutputTables = dict[str, dict[str, list[Any]]]
OVERLOAD_PERCENT = 100.0


def empty_outputs(index: NetIndex, sizes: dict[str, int], closed: np.ndarray) -> OutputTables:
    """Before the first step: NaN everywhere but the switch states. ``sizes``: rows per model."""
    nan = math.nan
    out: OutputTables = {
        model: {attr: [nan] * sizes[model] for attr in spec.outputs} for model, spec in MODEL_SPECS.items()
    }
    out["Switch"]["closed"] = [bool(c) for c in closed]
    out["Grid"] = {attr: [nan] for attr in GRID_OUTPUTS}
    return out


def fill_outputs(
    index: NetIndex, topo: Topology, closed: np.ndarray, units: UnitOutputs, pf: PowerFlowResult
) -> OutputTables:
    """The outputs of a step; electrical values (and grid aggregates but unsupplied and shed) NaN if
    the power flow diverged."""
    out = _unit_outputs(units, closed)
    nan = math.nan
    grid = out["Grid"] = {attr: [nan] for attr in GRID_OUTPUTS}
    grid["unsupplied_mw"] = [units.dispatch.unsupplied_mw]
    grid["shed_mw"] = [float(np.sum(units.dispatch.load_shed))]
    if not pf.converged:
        grid["pf_converged"] = [0]
        for model, n in (("Bus", index.n_bus), ("Line", len(index.line_from)), ("ExtGrid", len(index.eg_bus))):
            out[model] = {a: [nan] * n for a in MODEL_SPECS[model].outputs}
        return out
    out["Bus"] = {
        "vm_pu": pf.vm_pu.tolist(),
        "va_degree": pf.va_degree.tolist(),
        "p_mw": pf.bus_p_mw.tolist(),
        "q_mvar": pf.bus_q_mvar.tolist(),
    }
    out["Line"] = {
        "loading_percent": pf.loading.line_loading_percent.tolist(),
        "i_ka": pf.loading.line_i_ka.tolist(),
        "p_from_mw": pf.line.p1_mw.tolist(),
        "q_from_mvar": pf.line.q1_mvar.tolist(),
        "p_to_mw": pf.line.p2_mw.tolist(),
        "pl_mw": pf.loading.line_pl_mw.tolist(),
    }
    out["ExtGrid"] = {"p_mw": pf.ext_grid_p_mw.tolist(), "q_mvar": pf.ext_grid_q_mvar.tolist()}
    grid.update(_grid_aggregates(index, topo, pf))
    return out


def _unit_outputs(units: UnitOutputs, closed: np.ndarray) -> OutputTables:
    d = units.dispatch
    return {
        "Load": {
            "p_mw": np.where(d.load_on, d.load_p, 0.0).tolist(),
            "q_mvar": np.where(d.load_on, d.load_q, 0.0).tolist(),
            "shed_mw": d.load_shed.tolist(),
        },
        "StaticGen": {
            "p_mw": units.sgen_p.tolist(),
            "p_avail_mw": d.sgen_avail.tolist(),
            "curtailed_mw": units.curtailed.tolist(),
            "q_mvar": d.sgen_q.tolist(),
        },
        "Storage": {
            "p_mw": units.st_p.tolist(),
            "soc_mwh": units.soc_mwh.tolist(),
            "clipped_mw": units.clipped.tolist(),
        },
        "Switch": {"closed": [bool(c) for c in closed]},
    }


def _grid_aggregates(index: NetIndex, topo: Topology, pf: PowerFlowResult) -> dict[str, list[Any]]:
    """Voltage band, loading and losses of a converged power flow, over the energised buses."""
    loadings = [pf.loading.line_loading_percent]
    if pf.loading.trafo_loading_percent is not None:
        loadings.append(pf.loading.trafo_loading_percent)
    all_loading = np.concatenate(loadings)
    energised = topo.energised
    vm_e = pf.vm_pu[energised]
    nan = math.nan
    violations = (vm_e < index.vmin_pu[energised]) | (vm_e > index.vmax_pu[energised])
    return {
        "pf_converged": [1],
        "losses_mw": [pf.losses_mw],
        "min_vm_pu": [float(np.min(vm_e))] if len(vm_e) else [nan],
        "max_vm_pu": [float(np.max(vm_e))] if len(vm_e) else [nan],
        "max_loading_percent": [float(np.nanmax(all_loading))] if len(all_loading) else [0.0],
        "n_voltage_violations": [int(np.sum(violations))],
        "n_overloads": [int(np.sum(all_loading > OVERLOAD_PERCENT))],
    }
