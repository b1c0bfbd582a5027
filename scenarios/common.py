"""What every scenario shares: the mosaik sim_config, starting the profile simulator, recording outputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ems_controllers.core.contract import Strategy
from ems_controllers.registry import get_strategy
from scenarios.config import Config, ConfigError, load_profiles_path
from scenarios.strategy_fit import strategy_settings
from scenarios.supervision import Supervisor
from sims.grid import GRID_OUTPUTS

if TYPE_CHECKING:
    from mosaik import SimConfig

SIM_TARGETS = {
    "grid": ("Grid", "sims.grid:GridSim"),
    "profiles": ("Profiles", "sims.profiles:ProfileSim"),
    "recorder": ("Recorder", "sims.recorder:RecorderSim"),
}

# What the recorder keeps of each grid model (the Grid entity: everything it outputs).
GRID_RECORD = {
    "Bus": ["vm_pu"],
    "Line": ["loading_percent", "i_ka", "p_from_mw", "p_to_mw", "pl_mw"],
    "Switch": ["closed"],
    "Load": ["p_mw", "q_mvar", "shed_mw"],
    "StaticGen": ["p_mw", "p_avail_mw", "curtailed_mw", "q_mvar"],
    "Storage": ["p_mw", "soc_mwh", "clipped_mw"],
    "ExtGrid": ["p_mw", "q_mvar"],
    "Grid": list(GRID_OUTPUTS),
}
PROFILE_RECORD = {
    "Load": ["p_mw", "q_mvar", "forecast_p_mw"],
    "PV": ["p_mw", "forecast_p_mw"],
    "Wind": ["p_mw", "forecast_p_mw"],
    "Series": ["p_mw", "forecast_p_mw"],
}


def sim_config(cfg: Config, strategy: str, supervisor: Supervisor, parties: Sequence[str] = ()) -> SimConfig:
    """mosaik sim_config: in-process by default; the sims named in ``run.separate_processes`` each in a
    process of their own, started and watched by ``supervisor``; those in ``run.connect`` already running
    at the address given (``python -m <module> HOST:PORT --remote``, e.g. on another host). A strategy
    whose parties are agents (its contract's ``agents``) gets one EMS simulator per party (``EMS-<party>``)
    and its coordinator (``Coordinator``), all of them EMS simulators as far as ``separate_processes`` goes."""
    entries = run_simulators(get_strategy(strategy), parties)
    check_connect(cfg, entries)
    out: SimConfig = {}
    for key, name, target in entries:
        if name in cfg.run.connect:  # started by the user (e.g. on another host): mosaik connects to it
            out[name] = {"connect": cfg.run.connect[name]}
        elif key in cfg.run.separate_processes:
            out[name] = supervisor.starter(name, target)
        else:
            out[name] = {"python": target}
    return out


COORDINATOR = "Coordinator"


def run_simulators(strategy: Strategy, parties: Sequence[str]) -> list[tuple[str, str, str]]:
    """The simulators of a run of ``strategy``: (kind as in ``run.separate_processes``, sim_config name,
    ``module:Class``)."""
    targets = dict(SIM_TARGETS)
    if strategy.agents is None:
        targets["ems"] = ("EMS", strategy.simulator)
    entries = [(key, name, target) for key, (name, target) in targets.items()]
    if strategy.agents is not None:
        entries += [("ems", ems_sim_name(p), strategy.simulator) for p in parties]
        entries.append(("ems", COORDINATOR, strategy.agents.coordinator))
    return entries


def check_connect(cfg: Config, entries: Sequence[tuple[str, str, str]]) -> None:
    """ConfigError unless every simulator ``run.connect`` names is one of the run's."""
    unknown = sorted(set(cfg.run.connect) - {name for _, name, _ in entries})
    if unknown:
        known = ", ".join(sorted(name for _, name, _ in entries))
        raise ConfigError(f"run.connect: no simulator named {', '.join(unknown)} in this run (it has {known})")


def ems_sim_name(party: str) -> str:
    """The sim_config name of a party's own EMS simulator (strategies whose parties are agents)."""
    return f"EMS-{party}"


def start_profiles(world: Any, cfg: Config, data_dir: Path) -> Any:
    return world.start(
        "Profiles",
        step_size=cfg.scenario.step_s,
        start=cfg.scenario.start,
        forecast_every_s=cfg.scenario.step_s if cfg.ems.rolling else cfg.forecast.every_s,
        forecast_horizon_steps=cfg.forecast.horizon_steps,
        seed=cfg.scenario.seed,
        load_profiles_file=str(load_profiles_path(cfg, data_dir)),
    )


def start_ems(
    world: Any, cfg: Config, strategy: Strategy, site: dict[str, Any] | None = None, sim_name: str = "EMS"
) -> Any:
    """The EMS simulator with the scenario's tariff, the shared EMS settings and the strategy's own (a
    rule-based EMS ignores the solver settings, strategies that do not model the network ignore ``site``)."""
    e = cfg.ems
    return world.start(
        sim_name,
        step_size=cfg.scenario.step_s,
        tariff=cfg.tariff.model_dump(),
        mip_rel_gap=e.mip_rel_gap,
        time_limit_s=e.time_limit_s,
        pwl_max_error_per_h=e.pwl_max_error_per_h,
        rolling=e.rolling,
        horizon=e.horizon,
        site=site or {},
        **strategy_settings(cfg, strategy).model_dump(),
    )


def start_agents(world: Any, cfg: Config, strategy: Strategy, parties: Sequence[str]) -> tuple[dict[str, Any], Any]:
    """A strategy's agents: one EMS simulator per party and the coordinator, in one mosaik group (their
    same-time loop); (party -> its simulator, the coordinator's simulator)."""
    assert strategy.agents is not None
    with world.group():
        sims = {p: start_ems(world, cfg, strategy, sim_name=ems_sim_name(p)) for p in parties}
        coordinator = world.start(
            COORDINATOR, step_size=cfg.scenario.step_s, **strategy_settings(cfg, strategy).model_dump()
        )
    return sims, coordinator


def record_attrs(entity: Any, kind: str) -> list[str]:
    """The outputs of interest of a grid or profile entity."""
    if kind == "profile":
        return PROFILE_RECORD[entity.type]
    return GRID_RECORD.get(entity.type, [])
