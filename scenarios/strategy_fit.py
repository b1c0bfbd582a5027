"""The scenario side of the strategy contract: a strategy's settings out of the config's ``[ems]`` table,
the capabilities a scenario offers, and whether a strategy fits a scenario.

Nothing here knows a strategy by name: it reads each strategy's :class:`Strategy` contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from ems_controllers.core.contract import Capability, Strategy, StrategyError, StrategySettings
from ems_controllers.registry import get_strategy, strategies
from scenarios.config import Config, ConfigError, EmsCfg
from scenarios.layout import NetLayout


def _settings(strategy: Strategy, fields: dict[str, Any]) -> StrategySettings:
    try:
        return strategy.make_settings(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"ems.{'.'.join(str(p) for p in e['loc']) or '<settings>'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"{problems} (a setting of strategy {strategy.name})") from None


def check_ems_settings(cfg: Config, chosen: Iterable[Strategy] = ()) -> None:
    """Every field of ``[ems]`` is a shared setting or a setting of a known strategy (the registered ones
    and ``chosen``), valid for each strategy that declares it; raise ConfigError naming the field."""
    fields = cfg.ems.strategy_fields
    if not fields:
        return
    known = {**strategies(), **{s.name: s for s in chosen}}
    for key in fields:
        owners = [s for s in known.values() if key in s.settings.model_fields]
        if not owners:
            own = {s.name: sorted(s.settings.model_fields) for s in known.values() if s.settings.model_fields}
            raise ConfigError(
                f"ems.{key}: not a setting; shared settings are {sorted(EmsCfg.model_fields)}, strategies' own: {own}"
            )
        for s in owners:
            _settings(s, fields)


def strategy_settings(cfg: Config, strategy: Strategy) -> StrategySettings:
    """The strategy's own settings from ``[ems]`` (its defaults where the config is silent)."""
    return _settings(strategy, cfg.ems.strategy_fields)


def offered(cfg: Config, net: Any = None) -> frozenset[Capability]:
    """The capabilities of a scenario, from its config (no net is built: ``list`` stays fast); the
    builder makes the net agree (an external grid unless ``grid.external_grid`` is false, a tie switch
    per ``grid.tie_lines`` entry, a network operator party for ``[dn]``). What only the built ``net``
    tells (transformers in service) is offered when it is given."""
    have = set()
    if net is not None and any(len(t) and t["in_service"].astype(bool).any() for t in (net.trafo, net.trafo3w)):
        have.add(Capability.TRANSFORMERS)
    if cfg.dn is not None:
        have.add(Capability.NETWORK_OPERATOR)
    if cfg.mgs and all(m.chp is not None for m in cfg.mgs):
        have.add(Capability.CHP)
    if any(m.parent is not None for m in cfg.mgs):
        have.add(Capability.NESTED)
    if any(m.owners for m in cfg.mgs):
        have.add(Capability.OWNER_LOADS)
    if cfg.grid.tie_lines:
        have.add(Capability.TIE_SWITCHES)
    if cfg.clusters:
        have.add(Capability.CLUSTERS)
    if not cfg.grid.external_grid:
        have.add(Capability.ISLANDED)
    if cfg.scenario.step_s < cfg.ems_step_s:
        have.add(Capability.SUB_STEP_PHYSICS)
    return frozenset(have)


def resolve(name: str) -> Strategy:
    """A strategy by name or ``module:NAME``; ConfigError (exit 2) if there is none."""
    try:
        return get_strategy(name)
    except StrategyError as exc:
        raise ConfigError(str(exc)) from None


def check_fit(cfg: Config, layout: NetLayout, strategy: Strategy) -> StrategySettings:
    """The strategy's settings, if it can run on this scenario; ConfigError naming what is missing or
    what it cannot handle otherwise, or a ``run.connect`` simulator the run does not have."""
    from scenarios.common import check_connect, run_simulators

    settings = strategy_settings(cfg, strategy)
    problem = strategy.problem(offered(cfg, layout.net), settings)
    if problem:
        raise ConfigError(f"strategy {strategy.name} cannot run on scenario {cfg.scenario.name}: {problem}")
    check_connect(cfg, run_simulators(strategy, list(layout.parties)))
    return settings
