"""Where strategies are found: the shipped ones, plug-ins registered under the entry point group
``mmg_cosim.strategies``, and a strategy given on the command line as ``"package.module:NAME"``.

A plug-in package declares, in its ``pyproject.toml``::

    [project.entry-points."mmg_cosim.strategies"]
    peak_shaving = "my_package.strategy:STRATEGY"

where ``STRATEGY`` is a :class:`~ems_controllers.core.contract.Strategy`. ``"package.module:NAME"`` names
such an object directly, or a mosaik simulator class whose module defines ``STRATEGY`` or, for a bare
simulator, ``OUTPUT_ATTRS`` (it then runs with no settings and no requirements). This is the only module
that knows the shipped strategies by name.
"""

from __future__ import annotations

import importlib
import logging
from functools import cache
from importlib.metadata import entry_points

from ems_controllers.core.contract import Strategy, StrategyError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "mmg_cosim.strategies"
SHIPPED = (
    "ems_controllers.rule_based.strategy",
    "ems_controllers.local.strategy",
    "ems_controllers.centralized.strategy",
    "ems_controllers.security_constrained.strategy",
    "ems_controllers.cooperative.strategy",
    "ems_controllers.nested.strategy",
    "ems_controllers.admm.strategy",
    "ems_controllers.clustered.strategy",
    "ems_controllers.oracle.strategy",
)


def _as_strategy(obj: object, where: str) -> Strategy:
    if not isinstance(obj, Strategy):
        raise StrategyError(f"{where} is a {type(obj).__name__}, not a Strategy (ems_controllers.core.contract)")
    return obj


@cache
def strategies() -> dict[str, Strategy]:
    """Every strategy known by name: the shipped ones, then the plug-ins (a plug-in cannot replace a
    shipped strategy; one that fails to load is logged and left out)."""
    found: dict[str, Strategy] = {}
    for module in SHIPPED:
        s = _as_strategy(importlib.import_module(module).STRATEGY, f"{module}.STRATEGY")
        found[s.name] = s
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            s = _as_strategy(ep.load(), f"entry point {ep.name} = {ep.value}")
        except Exception as exc:  # noqa: BLE001 - a broken plug-in must not break the others
            log.warning("strategy plug-in %s (%s) not loaded: %s", ep.name, ep.value, exc)
            continue
        if s.name in found:
            log.warning("strategy plug-in %s: the name %r is taken; left out", ep.value, s.name)
            continue
        if ep.name != s.name:
            log.warning("strategy plug-in %s: listed as %r, its contract says %r (used)", ep.value, ep.name, s.name)
        found[s.name] = s
    return found


def _from_target(spec: str) -> Strategy:
    module, _, attr = spec.partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise StrategyError(f"strategy {spec!r}: cannot import {module!r}: {exc}") from None
    obj = getattr(mod, attr, None)
    if obj is None:
        raise StrategyError(f"strategy {spec!r}: {module} has no {attr!r}")
    if isinstance(obj, Strategy):
        return obj
    contract = getattr(mod, "STRATEGY", None)
    if isinstance(contract, Strategy) and contract.simulator == spec:
        return contract
    outputs = getattr(mod, "OUTPUT_ATTRS", None)
    if isinstance(obj, type) and outputs is not None:
        return Strategy(spec, spec, f"user EMS simulator {spec}", outputs=tuple(outputs))
    raise StrategyError(
        f"strategy {spec!r}: {attr} is neither a Strategy nor a simulator class whose module defines "
        "STRATEGY or OUTPUT_ATTRS"
    )


def get_strategy(name: str) -> Strategy:
    """A strategy by name (shipped or plug-in), or ``"package.module:NAME"`` (see the module docstring)."""
    known = strategies()
    if name in known:
        return known[name]
    if ":" in name:
        return _from_target(name)
    raise StrategyError(f"unknown strategy {name!r}; known: {sorted(known)} or 'package.module:NAME'")
