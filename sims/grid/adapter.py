"""The mosaik adapter of the grid simulator: :class:`GridSim` translates mosaik calls for :class:`GridModel`."""

from __future__ import annotations

import copy
from typing import Any, override

import mosaik_api_v3
from mosaik_api_v3.types import CreateResult, InputData, Meta, ModelName, OutputData, OutputRequest, SimId, Time

from sims.grid.fastpath import FastPath
from sims.grid.groups import group_children, parse_load_groups
from sims.grid.intake import InputIntake
from sims.grid.model import GridModel
from sims.grid.netindex import entities, load_net
from sims.grid.output_request import OutputPlanner
from sims.grid.spec import LOAD_GROUP_MODEL, META, MODEL_SPECS


class GridSim(mosaik_api_v3.Simulator):
    """pandapower AC power flow with switches, static generators, storages and islands."""

    # set by create(): the inputs into the model's arrays, the model's outputs into get_data's answer
    _intake: InputIntake
    _planner: OutputPlanner

    def __init__(self) -> None:
        super().__init__(copy.deepcopy(META))
        self.sid = ""
        self.time_resolution = 1.0
        self.step_size = 3600
        self.model: GridModel | None = None

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
        if "net" not in model_params or not set(model_params) <= {"net", "load_groups"}:
            raise ValueError(f"Grid takes the param 'net' and optionally 'load_groups', got {sorted(model_params)}")
        dt_h = self.step_size * self.time_resolution / 3600.0
        net = load_net(model_params["net"])
        groups = parse_load_groups(net, model_params.get("load_groups"))
        self.model = GridModel(net, dt_h)
        net = self.model.net
        eids, children = entities(net)
        eids.update({g.eid: (LOAD_GROUP_MODEL, k) for k, g in enumerate(groups)})
        children += group_children(groups)
        self._intake = InputIntake(eids, self.model.units.inputs, self.model.switch_closed, groups)
        rows = {name: len(net[spec.element]) for name, spec in MODEL_SPECS.items()}
        self._planner = OutputPlanner(eids, rows, groups)
        return [{"eid": "Grid-0", "type": "Grid", "children": children, "rel": []}]

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time:
        grid = self._grid()
        self._intake.apply(inputs)
        grid.step(time)
        return time + self.step_size

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        return self._planner.answer(outputs, self._grid().outputs)

    def _grid(self) -> GridModel:
        if self.model is None:
            raise RuntimeError("GridSim: create a Grid entity first")
        return self.model


def main() -> None:
    """Run GridSim as a separate process: ``python -m sims.grid HOST:PORT``."""
    mosaik_api_v3.start_simulation(GridSim(), "mmg-cosim pandapower grid simulator")
