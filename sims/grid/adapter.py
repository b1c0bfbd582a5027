"""The mosaik adapter of the grid simulator: :class:`GridSim` translates mosaik calls for :class:`GridModel`."""

from __future__ import annotations

import copy
from typing import Any, override

import mosaik_api_v3
import numpy as np
from mosaik_api_v3.types import CreateResult, InputData, Meta, ModelName, OutputData, OutputRequest, SimId, Time

from sims.grid.fastpath import FastPath
from sims.grid.model import GridModel
from sims.grid.netindex import Entity, entities, load_net
from sims.grid.spec import META
from sims.grid.units import UnitInputs


class GridSim(mosaik_api_v3.Simulator):
    """pandapower AC power flow with switches, static generators, storages and islands."""

    # set by create(): where step() writes the inputs it receives
    _held: UnitInputs
    _switch_closed: np.ndarray

    def __init__(self) -> None:
        super().__init__(copy.deepcopy(META))
        self.sid = ""
        self.time_resolution = 1.0
        self.step_size = 3600
        self.model: GridModel | None = None
        self._eids: dict[str, Entity] = {}

    @property
    def last_path(self) -> str:
        """Power-flow path of the last step: "fast", "runpp" or "diverged" (diagnostics, tests)."""
        return "" if self.model is None else self.model.last_path

    @property
    def _fast(self) -> FastPath | None:
        """The fast power-flow path (None: every step on runpp; tests and benchmarks set it to None)."""
        return None if self.model is None else self.model.powerflow.fast

    @_fast.setter
    def _fast(self, value: FastPath | None) -> None:
        if self.model is not None:
            self.model.powerflow.fast = value

    @override
    def init(self, sid: SimId, time_resolution: float = 1.0, **sim_params: Any) -> Meta:
        """``sim_params``: ``step_size`` (time units per step, default 3600) and nothing else."""
        step_size = sim_params.pop("step_size", 3600)
        if sim_params:
            raise ValueError(f"unknown GridSim params: {sorted(sim_params)}")
        if step_size <= 0:
            raise ValueError(f"step_size must be positive, got {step_size}")
        self.sid = sid
        self.time_resolution = float(time_resolution)
        self.step_size = int(step_size)
        return self.meta

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        if model != "Grid":
            raise ValueError(f"only Grid entities can be created, not {model!r}")
        if num != 1 or self.model is not None:
            raise ValueError("GridSim holds exactly one Grid entity")
        if set(model_params) != {"net"}:
            raise ValueError(f"Grid takes exactly the param 'net', got {sorted(model_params)}")
        dt_h = self.step_size * self.time_resolution / 3600.0
        self.model = GridModel(load_net(model_params["net"]), dt_h)
        self._held = self.model.units.inputs
        held = self._held
        # where each (model, attribute) input goes: built once (a step on a 5,000-bus grid takes ~11,000)
        self._targets = {
            ("Load", "p_mw"): held.load_p,
            ("Load", "q_mvar"): held.load_q,
            ("Load", "shed_mw"): held.load_shed,
            ("StaticGen", "p_mw"): held.sgen_set,
            ("StaticGen", "p_avail_mw"): held.sgen_avail,
            ("StaticGen", "q_mvar"): held.sgen_q,
            ("Storage", "p_mw"): held.st_set,
        }
        self._switch_closed = self.model.switch_closed
        self._eids, children = entities(self.model.net)
        return [{"eid": "Grid-0", "type": "Grid", "children": children, "rel": []}]

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time:
        grid = self._grid()
        for eid, attrs in inputs.items():
            model, pos = self._eids[eid]
            for attr, sources in attrs.items():
                values = [v for v in sources.values() if v is not None]
                if values:
                    self._set_input(model, pos, attr, values)
        grid.step(time)
        return time + self.step_size

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        out = self._grid().outputs
        data: OutputData = {}
        for eid, attrs in outputs.items():
            model, pos = self._eids[eid]
            table = out[model]
            data[eid] = {attr: table[attr][pos] for attr in attrs}
        return data

    def _grid(self) -> GridModel:
        if self.model is None:
            raise RuntimeError("GridSim: create a Grid entity first")
        return self.model

    def _set_input(self, model: str, pos: int, attr: str, values: list[Any]) -> None:
        """Several sources of one attribute are summed; a switch is closed only if all of them say so."""
        if model == "Switch":
            self._switch_closed[pos] = all(bool(v) for v in values)
            return
        target = self._targets.get((model, attr))
        if target is None:
            raise ValueError(f"{model} takes no input {attr!r}")
        target[pos] = float(values[0]) if len(values) == 1 else float(sum(values))


def main() -> None:
    """Run GridSim as a separate process: ``python -m sims.grid HOST:PORT``."""
    mosaik_api_v3.start_simulation(GridSim(), "mmg-cosim pandapower grid simulator")
