"""What every scenario shares: the mosaik sim_config, starting the profile simulator, recording outputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ems_controllers.core.contract import Strategy
from ems_controllers.registry import get_strategy
from scenarios.config import DATA_DIR, Config, ConfigError, load_profiles_path
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
TRACKER = ("Tracker", "ems_controllers.core.tracking_sim:TrackingSim")
"""The batteries' real-time rule between EMS steps (``ems.intra_step = "track_import"``), an EMS simulator."""

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


@dataclass(frozen=True)
class SimEntry:
    """One simulator of a run, before mosaik starts it."""

    kind: str
    """What it is, as ``run.separate_processes`` names it: grid, profiles, ems, recorder."""
    name: str
    """Its sim_config name (the name ``run.connect`` uses; mosaik's sim id is ``<name>-0``)."""
    target: str
    """``module:Class``; ``python -m <module> HOST:PORT --remote`` starts it on another host."""
    own_process: bool = False
    """A process of its own whatever ``run.separate_processes`` says (one of ``run.processes`` > 1)."""


@dataclass(frozen=True)
class RunSimulators:
    """The simulators a run of ``strategy`` with ``parties`` needs; :meth:`entries` places them as a
    config's ``run`` table says."""

    strategy: Strategy
    parties: tuple[str, ...]

    def entries(self, cfg: Config) -> list[SimEntry]:
        """Every simulator of the run; ConfigError (naming ``run.processes``) if the EMS cannot be spread as
        asked."""
        out = [SimEntry(kind, name, target) for kind, (name, target) in SIM_TARGETS.items()]
        strategy = self.strategy
        if strategy.agents is None:
            spread = cfg.run.processes > 1
            out += [
                SimEntry("ems", name, strategy.simulator, spread)
                for name in ems_partitions(cfg, strategy, self.parties)
            ]
        else:
            ems_partitions(cfg, strategy, self.parties)  # says why run.processes > 1 does not apply
            out += [SimEntry("ems", ems_sim_name(p), strategy.simulator) for p in self.parties]
            out.append(SimEntry("ems", COORDINATOR, strategy.agents.coordinator))
        if cfg.ems.intra_step == "track_import":
            out.append(SimEntry("ems", *TRACKER))
        return out


def sim_config(cfg: Config, strategy: str, supervisor: Supervisor, parties: Sequence[str] = ()) -> SimConfig:
    """mosaik sim_config: in-process by default; the sims named in ``run.separate_processes``, and the
    EMS simulators when ``run.processes`` > 1, each in a process of its own, started and watched by
    ``supervisor``; those in ``run.connect`` already running at the address given (``python -m <module>
    HOST:PORT --remote``, e.g. on another host), reached and watched by ``supervisor``. A strategy whose
    parties are agents (its contract's ``agents``) gets one EMS simulator per party (``EMS-<party>``) and
    its coordinator (``Coordinator``), all of them EMS simulators as far as ``separate_processes`` goes."""
    sims = run_simulators(get_strategy(strategy), parties)
    check_connect(cfg, sims)
    out: SimConfig = {}
    for e in sims.entries(cfg):
        if e.name in cfg.run.connect:  # started by the user (e.g. on another host): mosaik connects to it
            out[e.name] = supervisor.connector(e.name, e.target, cfg.run.connect[e.name])
        elif e.own_process or e.kind in cfg.run.separate_processes:
            out[e.name] = supervisor.starter(e.name, e.target)
        else:
            out[e.name] = {"python": e.target}
    return out


COORDINATOR = "Coordinator"
RECORDER = SIM_TARGETS["recorder"][0]


def run_simulators(strategy: Strategy, parties: Sequence[str]) -> RunSimulators:
    """The simulators of a run of ``strategy`` (placed by a config: ``.entries(cfg)``)."""
    return RunSimulators(strategy, tuple(parties))


def check_connect(cfg: Config, sims: RunSimulators) -> None:
    """ConfigError unless the run's simulators can be placed as ``run`` says: the EMS spread over
    ``run.processes`` simulators (:func:`ems_partitions`), and every simulator ``run.connect`` names one of
    the run's, not the recorder (it writes the file the run reads back when it ends)."""
    entries = sims.entries(cfg)
    unknown = sorted(set(cfg.run.connect) - {e.name for e in entries})
    if unknown:
        known = ", ".join(sorted(e.name for e in entries))
        raise ConfigError(f"run.connect: no simulator named {', '.join(unknown)} in this run (it has {known})")
    if RECORDER in cfg.run.connect:
        raise ConfigError(
            f"run.connect.{RECORDER}: the recorder writes the run's file, which the run reads back when it "
            "ends: it runs with the run (in-process, or in run.separate_processes)"
        )


def ems_sim_name(party: str) -> str:
    """The sim_config name of a party's own EMS simulator (strategies whose parties are agents)."""
    return f"EMS-{party}"


def ems_partitions(cfg: Config, strategy: Strategy, parties: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The EMS simulators of a strategy without agents and the parties each holds: ``{"EMS": all}``, or
    with ``run.processes = n`` > 1 ``EMS-1`` .. ``EMS-n``, whole nesting trees dealt out in the parties'
    order to the one holding the fewest parties so far. ConfigError naming ``run.processes`` if the
    strategy's contract does not declare its parties ``partitionable``, or there are fewer trees than n."""
    n = cfg.run.processes
    if n == 1:
        return {} if strategy.agents is not None else {"EMS": tuple(parties)}
    if not strategy.partitionable:
        why = (
            "its parties are agents, each a simulator of its own already (run.separate_processes = ['ems'] "
            "puts each in a process of its own)"
            if strategy.agents is not None
            else "its contract does not declare its parties partitionable: they depend on each other inside "
            "its simulator"
        )
        raise ConfigError(f"run.processes = {n}: strategy {strategy.name} cannot be spread over simulators: {why}")
    trees = nesting_trees(cfg, parties)
    if len(trees) < n:
        listed = "; ".join(", ".join(t) for t in trees)
        raise ConfigError(
            f"run.processes = {n}: scenario {cfg.scenario.name} has {len(trees)} parties to spread "
            f"(a party and the MGs nested in it count as one: {listed}), so at most {len(trees)}"
        )
    shares: list[list[str]] = [[] for _ in range(n)]
    for tree in trees:
        min(shares, key=len).extend(tree)
    return {f"EMS-{k + 1}": tuple(share) for k, share in enumerate(shares)}


def nesting_trees(cfg: Config, parties: Sequence[str]) -> list[tuple[str, ...]]:
    """The parties grouped by the outermost MG they are nested in (each tree in the parties' order)."""
    parent = {m.name: m.parent for m in cfg.mgs}
    present = set(parties)

    def root(p: str) -> str:
        seen = {p}
        while (up := parent.get(p)) in present and up not in seen:
            assert up is not None
            seen.add(up)
            p = up
        return p

    trees: dict[str, list[str]] = {}
    for p in parties:
        trees.setdefault(root(p), []).append(p)
    return [tuple(t) for t in trees.values()]


def start_profiles(world: Any, cfg: Config, data_dir: Path) -> Any:
    """The profile simulator. The embedded load profiles go by no path (the simulator reads its own
    installed copy, wherever it runs, e.g. on another host); a file of the scenario's own by its path
    here, which must hold there too."""
    profiles = load_profiles_path(cfg, data_dir)
    embedded = profiles.resolve() == (DATA_DIR / "load_profiles.csv").resolve()
    return world.start(
        "Profiles",
        step_size=cfg.scenario.step_s,
        start=cfg.scenario.start,
        forecast_every_s=cfg.ems_step_s if cfg.ems.rolling else cfg.forecast.every_s,
        forecast_step_s=cfg.ems_step_s,
        forecast_horizon_steps=cfg.forecast.horizon_steps,
        seed=cfg.scenario.seed,
        load_profiles_file=None if embedded else str(profiles),
    )


def start_ems(
    world: Any, cfg: Config, strategy: Strategy, site: dict[str, Any] | None = None, sim_name: str = "EMS"
) -> Any:
    """The EMS simulator at the EMS's step with the scenario's tariff per EMS step, the shared EMS settings
    and the strategy's own (a rule-based EMS ignores the solver settings, strategies that do not model the
    network ignore ``site``)."""
    e = cfg.ems
    return world.start(
        sim_name,
        step_size=cfg.ems_step_s,
        tariff=cfg.tariff.for_step(cfg.ems_step_s),
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
            COORDINATOR, step_size=cfg.ems_step_s, **strategy_settings(cfg, strategy).model_dump()
        )
    return sims, coordinator


def record_attrs(entity: Any, kind: str) -> list[str]:
    """The outputs of interest of a grid or profile entity."""
    if kind == "profile":
        return PROFILE_RECORD[entity.type]
    return GRID_RECORD.get(entity.type, [])
