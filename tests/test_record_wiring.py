"""How a run's record reaches its recorder (:func:`scenarios.runner.record_wiring`): the grid's recorded
attributes through its column outputs, the rest connected one by one, the same record either way."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import scenarios.runner as runner
from scenarios.runner import RecordWiring, record_wiring
from sims.grid.spec import GRID_COLUMNS
from tests.conftest import run_default


@dataclass
class _Mock:
    output_attrs: set[str]


@dataclass
class _Entity:
    """What record_wiring reads of a mosaik entity."""

    full_id: str
    type: str
    model_mock: _Mock
    children: list[_Entity] = field(default_factory=list)


def _grid() -> _Entity:
    child = _Mock({"vm_pu", "va_degree", "p_mw", "q_mvar", "closed"})
    kids = [_Entity(f"Grid-0.Bus-{i}", "Bus", child) for i in (0, 3, 1)]
    kids += [_Entity("Grid-0.Switch-0", "Switch", child), _Entity("Grid-0.LoadGroup-x", "LoadGroup", child)]
    return _Entity("Grid-0.Grid-0", "Grid", _Mock({"losses_mw", *GRID_COLUMNS}), kids)


def test_grid_children_come_through_the_grids_columns() -> None:
    grid = _grid()
    bus0, bus3, bus1, switch, _ = grid.children
    ems = _Entity("EMS-0.MG1", "MG", _Mock({"p_mw"}))
    plan = record_wiring(
        [
            (bus3, ["vm_pu", "not_a_column"]),
            (bus0, ["vm_pu", "va_degree"]),
            (switch, ["closed"]),
            (grid, ["losses_mw"]),
            (ems, ["p_mw"]),
            (bus1, []),
        ]
    )
    assert plan.columns == {
        "Grid-0.Grid-0": {
            "Bus.vm_pu": ("vm_pu", ["Grid-0.Bus-0", "Grid-0.Bus-3", None]),  # the children's order
            "Bus.va_degree": ("va_degree", ["Grid-0.Bus-0", None, None]),
            "Switch.closed": ("closed", ["Grid-0.Switch-0"]),
        }
    }
    conns = {fid: attrs for fid, (_, attrs) in plan.connections.items()}
    assert conns == {
        "Grid-0.Grid-0": ["Bus.vm_pu", "Bus.va_degree", "Switch.closed", "losses_mw"],
        "Grid-0.Bus-3": ["not_a_column"],
        "EMS-0.MG1": ["p_mw"],
    }
    assert plan.via_columns == ["Grid-0.Bus-0", "Grid-0.Switch-0"]  # their edges in the entity graph


def test_without_the_grid_entity_or_its_columns_everything_is_connected() -> None:
    grid = _grid()
    bus0 = grid.children[0]
    assert record_wiring([(bus0, ["vm_pu"])]).connections["Grid-0.Bus-0"][1] == ["vm_pu"]
    old = _Entity("Grid-0.Grid-0", "Grid", _Mock({"losses_mw"}), grid.children)  # a grid without columns
    plan = record_wiring([(old, ["losses_mw"]), (bus0, ["vm_pu"])])
    assert not plan.columns and not plan.via_columns and plan.connections["Grid-0.Bus-0"][1] == ["vm_pu"]


def _one_by_one(to_record: list[tuple[Any, list[str]]]) -> RecordWiring:
    return RecordWiring({e.full_id: (e, list(a)) for e, a in to_record if a}, {}, [])


def _datasets(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def keep(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[()]

    with h5py.File(path, "r") as f:
        for top in ("Series", "Plans", "Relations"):
            f[top].visititems(lambda name, obj, top=top: keep(f"{top}/{name}", obj))
    return out


@pytest.mark.parametrize("record", ["all", "parties"])
def test_a_run_records_the_same_through_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record: str) -> None:
    """A day of the default scenario, the grid through its columns and every entity connected one by one:
    the same datasets, values and relations (the entity graph)."""
    sets = ["scenario.days=1", f'run.record="{record}"']
    columns = run_default(tmp_path, sets, name="columns.h5")
    monkeypatch.setattr(runner, "record_wiring", _one_by_one)
    plain = run_default(tmp_path, sets, name="plain.h5")
    got, want = _datasets(columns.path), _datasets(plain.path)
    assert set(got) == set(want)
    assert sum(k.startswith("Series/Grid-0.") and not k.startswith("Series/Grid-0.Grid-0/") for k in got) > 10
    for name, values in want.items():
        if values.dtype.kind == "f":
            np.testing.assert_array_equal(got[name], values, err_msg=name)
        else:
            assert (got[name] == values).all(), name
