"""The grid simulator's mosaik models, declared once: META and the outputs of each model come from here."""

from __future__ import annotations

from dataclasses import dataclass

from mosaik_api_v3.types import Meta


@dataclass(frozen=True)
class ModelSpec:
    """A mosaik model: its pandapower table, input attributes and output attributes.

    ``outputs`` are the attributes the simulator fills each step (for element models the pandapower
    result column name where one exists).
    """

    element: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


MODEL_SPECS: dict[str, ModelSpec] = {
    "Bus": ModelSpec("bus", (), ("vm_pu", "va_degree", "p_mw", "q_mvar")),
    "Line": ModelSpec("line", (), ("loading_percent", "i_ka", "p_from_mw", "q_from_mvar", "p_to_mw", "pl_mw")),
    "Switch": ModelSpec("switch", ("closed",), ("closed",)),
    "Load": ModelSpec("load", ("p_mw", "q_mvar", "shed_mw"), ("p_mw", "q_mvar", "shed_mw")),
    "StaticGen": ModelSpec("sgen", ("p_mw", "p_avail_mw", "q_mvar"), ("p_mw", "p_avail_mw", "curtailed_mw", "q_mvar")),
    "Storage": ModelSpec("storage", ("p_mw",), ("p_mw", "soc_mwh", "clipped_mw")),
    "ExtGrid": ModelSpec("ext_grid", (), ("p_mw", "q_mvar")),
}
LOAD_GROUP_MODEL = "LoadGroup"
"""A named group of loads fed by one vector per attribute (``Grid`` param ``load_groups``): its ``p_mw`` and
``q_mvar`` are lists, one value per member in the group's order (inputs: the members' demand; outputs: the
members' ``Load`` outputs). One input of 5,000 values instead of 5,000 inputs: a step's intake of a large
grid's loads costs a vector copy, not a walk through mosaik's nested dicts."""
LOAD_GROUP_ATTRS = ("p_mw", "q_mvar")
GRID_OUTPUTS = (
    "pf_converged",
    "losses_mw",
    "min_vm_pu",
    "max_vm_pu",
    "max_loading_percent",
    "n_voltage_violations",
    "n_overloads",
    "unsupplied_mw",
    "shed_mw",
)


def column_attr(model: str, attr: str) -> str:
    """The ``Grid`` entity's column output of ``model``'s ``attr`` (see :data:`GRID_COLUMNS`)."""
    return f"{model}.{attr}"


GRID_COLUMNS: dict[str, tuple[str, str]] = {
    column_attr(model, attr): (model, attr) for model, spec in MODEL_SPECS.items() for attr in spec.outputs
}
"""The ``Grid`` entity's column outputs, ``"<Model>.<attr>"`` -> (model, attribute): the attribute of every
entity of the model as one list, in the order of the ``Grid``'s children of that model (their row order).
One output of a whole column instead of one per entity: the run's recorder gets one value (a list) per
column and step through mosaik instead of one per entity (:mod:`scenarios.runner` connects it so)."""


META: Meta = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Grid": {
            "public": True,
            "params": ["net", "load_groups"],
            "attrs": [*GRID_OUTPUTS, *GRID_COLUMNS],
            "any_inputs": False,
        },
        LOAD_GROUP_MODEL: {"public": False, "params": [], "attrs": list(LOAD_GROUP_ATTRS), "any_inputs": False},
        **{
            model: {
                "public": False,
                "params": [],
                "attrs": sorted(set(spec.inputs) | set(spec.outputs)),
                "any_inputs": False,
            }
            for model, spec in MODEL_SPECS.items()
        },
    },
}
