"""Run one scenario with one strategy: a mosaik world, the HDF5 record, the KPIs at the end."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import mosaik

from ems_controllers.registry import get_strategy
from scenarios.common import sim_config
from scenarios.config import Config
from scenarios.kpis import compute_kpis
from scenarios.registry import get_scenario
from sims.recorder import write_kpis

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    path: Path
    kpis: dict[str, Any]
    wall_time_s: float


def _quiet_mosaik() -> None:
    try:
        from loguru import logger as loguru_logger
    except ImportError:  # pragma: no cover - loguru is a mosaik dependency
        return
    import sys

    loguru_logger.remove()
    loguru_logger.add(sys.stderr, level="WARNING")


def run_scenario(cfg: Config, data_dir: Path, strategy: str, out_path: Path, *, progress: bool = True) -> RunResult:
    """Build the world, run ``cfg.scenario.days`` days, write KPIs into the record and return them."""
    get_strategy(strategy).check_scenario(cfg.scenario.name)
    scenario = get_scenario(cfg.scenario.name).load()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _quiet_mosaik()
    t0 = time.perf_counter()
    world = mosaik.World(sim_config(cfg, strategy), skip_greetings=True, configure_logging=False)
    try:
        built = scenario.build(world, cfg, strategy=strategy, data_dir=data_dir)
        rec_sim = world.start(
            "Recorder",
            step_size=cfg.scenario.step_s,
            path=str(out_path),
            buffer_steps=cfg.run.recorder_buffer_steps,
            n_steps=cfg.n_steps,
            attrs={
                "scenario": cfg.scenario.name,
                "strategy": strategy,
                "start": cfg.scenario.start,
                "config": json.loads(cfg.to_json()),
                "entity_map": built.entity_map,
            },
        )
        recorder = rec_sim.Recorder()
        for entity, attrs in built.to_record:
            if attrs:
                world.connect(entity, recorder, *attrs)
        world.run(until=cfg.n_steps * cfg.scenario.step_s, print_progress=progress)
    except Exception as exc:
        logger.error("run of %s/%s failed: %s", cfg.scenario.name, strategy, exc)
        if out_path.exists():
            try:
                with h5py.File(out_path, "a") as f:
                    f.attrs["run_error"] = f"{type(exc).__name__}: {exc}"
            except OSError:
                pass
        raise
    finally:
        try:
            world.shutdown()
        except Exception as exc:  # noqa: BLE001 - already shut down, or a dead simulator
            logger.debug("world shutdown: %s", exc)
    wall = time.perf_counter() - t0
    with h5py.File(out_path, "a") as f:
        f.attrs["wall_time_s"] = wall
    kpis = compute_kpis(out_path)
    write_kpis(out_path, kpis)
    return RunResult(out_path, kpis, wall)
