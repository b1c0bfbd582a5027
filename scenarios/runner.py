"""Run one scenario with one strategy: a mosaik world, the HDF5 record, the KPIs at the end.

A run tells the truth about how it ended and never damages an earlier result:

* it writes to ``<name>.partial.h5`` beside the target and moves the file onto the target only when every
  step completed (a run killed outright leaves its ``.partial.h5``);
* a run that fails, or is interrupted (Ctrl-C, SIGTERM), records why in the file's ``run_error`` attribute
  and moves it to ``<name>.failed.h5``; the target, if it exists, is left as it was;
* a run counts as complete only when the record holds every step (``n_steps_completed == n_steps``) and no
  simulator process died, whatever the mosaik world returned;
* simulator processes are supervised (:mod:`scenarios.supervision`) and none outlives the run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import mosaik

from scenarios.build import build_net
from scenarios.common import sim_config
from scenarios.config import Config
from scenarios.kpis import compute_kpis
from scenarios.layout import NetLayout
from scenarios.paths import folder_problem
from scenarios.strategy_fit import check_fit, resolve, strategy_settings
from scenarios.supervision import SimulatorFailed, Supervisor
from scenarios.wiring import wire
from sims.grid.spec import column_attr
from sims.recorder import write_kpis

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    path: Path
    kpis: dict[str, Any]
    wall_time_s: float


class OutputPathError(ValueError):
    """The output file cannot be written (bad input: decided before any simulator starts)."""


class RunFailed(RuntimeError):
    """A run that did not complete; ``path`` holds its completed steps (None if it never wrote any)."""

    def __init__(self, message: str, path: Path | None, steps_completed: int) -> None:
        super().__init__(message)
        self.path = path
        self.steps_completed = steps_completed


class RunInterrupted(RunFailed):
    """A run stopped by a signal (SIGINT from Ctrl-C, SIGTERM); ``exit_code`` is 128 + the signal."""

    def __init__(self, message: str, path: Path | None, steps_completed: int, signum: int) -> None:
        super().__init__(message, path, steps_completed)
        self.signum = signum
        self.exit_code = 128 + signum


@dataclass(frozen=True)
class RunFiles:
    """Where a run writes (``partial``), where it lands when complete (``target``) or failed (``failed``)."""

    target: Path
    partial: Path
    failed: Path

    @classmethod
    def beside(cls, target: Path) -> RunFiles:
        stem, suffix = target.stem, target.suffix or ".h5"
        return cls(target, target.with_name(f"{stem}.partial{suffix}"), target.with_name(f"{stem}.failed{suffix}"))


def check_output(target: Path) -> RunFiles:
    """The files of a run to ``target``, after checking that they can be written (raises
    :class:`OutputPathError` naming the path): the target is no folder, its folder exists or can be made,
    and a file can be created there (tried, not guessed: permissions say little to root)."""
    target = Path(target)
    files = RunFiles.beside(target)
    for p in (files.target, files.partial, files.failed):
        if p.is_dir():
            raise OutputPathError(f"--out {target}: {p} is a folder")
    problem = folder_problem(target.parent)
    if problem:
        raise OutputPathError(f"--out {target}: {problem}")
    return files


def _quiet_mosaik() -> None:
    try:
        from loguru import logger as loguru_logger
    except ImportError:  # pragma: no cover - loguru is a mosaik dependency
        return
    import sys

    loguru_logger.remove()
    loguru_logger.add(sys.stderr, level="WARNING")


CANCEL_WAIT_S = 10.0
SETTLE_S = 1.0
"""After a failure: time for the supervisor to see a child's end before the error is explained."""
KEEP_TASKS = ("Reader task for", "handle remote requests for", "supervise ")
"""Tasks an interrupt leaves running: the channels to simulator processes and their supervision (the world
still needs them to stop its simulators)."""


class _Interrupts:
    """SIGINT and SIGTERM while a run builds or steps: the first is remembered, and the world's tasks are
    cancelled, so mosaik stops at its next await. (An exception raised from a signal handler lands in
    whichever task runs at that moment, where asyncio may keep it unseen; mosaik also catches
    KeyboardInterrupt and ends the run as if it were complete.)"""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.signum: int | None = None
        self._installed: list[int] = []

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.loop.add_signal_handler(sig, self._on_signal, sig)
                self._installed.append(sig)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig in self._installed:
            self.loop.remove_signal_handler(sig)

    def _on_signal(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
            logger.warning("%s: stopping the run", signal.Signals(signum).name)
        for task in asyncio.all_tasks(self.loop):
            if not task.done() and not task.get_name().startswith(KEEP_TASKS):
                task.cancel()


def _shutdown(world: mosaik.World, supervisor: Supervisor) -> None:
    """Stop the world after a run, a failure or an interrupt: cancel what mosaik left running, stop
    watching the children (their ends are no failures now), let mosaik stop its simulators (finalize:
    the recorder writes its last rows), and kill any child still alive."""
    loop = world.loop
    try:
        if not loop.is_closed():
            keep = ("Reader task for", "handle remote requests for")
            pending = [t for t in asyncio.all_tasks(loop) if not t.done() and not t.get_name().startswith(keep)]
            for task in pending:
                task.cancel()
            if pending:
                _, stuck = loop.run_until_complete(asyncio.wait(pending, timeout=CANCEL_WAIT_S))
                for task in stuck:
                    logger.warning("task %s did not end when cancelled: %s", task.get_name(), task.get_stack(limit=3))
            loop.run_until_complete(supervisor.stop_watching())
            loop.run_until_complete(supervisor.stop_children())
        world.shutdown()
    except Exception as exc:  # noqa: BLE001 - a dead simulator may fail its stop; the children are killed below
        logger.debug("world shutdown: %s", exc)
        # What could be stopped is stopped: without this mosaik warns at exit that the world was never
        # shut down (and suggests finalize was skipped, which it was not for the simulators still alive).
        async_world = getattr(world, "_async_world", None)
        if async_world is not None:
            async_world._shutdown_performed = True
        if not loop.is_closed():
            loop.close()
    finally:
        supervisor.kill_all()


def _steps_completed(path: Path) -> int:
    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs.get("n_steps_completed", 0))
    except OSError:
        return 0


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SimulatorFailed):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _fail(files: RunFiles, message: str, signum: int | None) -> RunFailed:
    """Record ``message`` in the partial file and move it to the failed name; the error to raise."""
    path: Path | None = None
    steps = 0
    if files.partial.exists():
        steps = _steps_completed(files.partial)
        if signum is not None:
            message = f"interrupted by {signal.Signals(signum).name} at step {steps}"
        try:
            with h5py.File(files.partial, "a") as f:
                f.attrs["run_error"] = message
        except OSError as exc:
            logger.error("could not record the error in %s: %s", files.partial, exc)
        os.replace(files.partial, files.failed)
        path = files.failed
    elif signum is not None:
        message = f"interrupted by {signal.Signals(signum).name} before the first step"
    if signum is not None:
        return RunInterrupted(message, path, steps, signum)
    return RunFailed(message, path, steps)


def run_scenario(
    cfg: Config,
    data_dir: Path,
    strategy: str,
    out_path: Path,
    *,
    progress: bool = True,
    layout: NetLayout | None = None,
) -> RunResult:
    """Build the world, run ``cfg.scenario.days`` days, write KPIs into the record and return them.
    ``layout``: the scenario's net, already built and checked against the strategy (by the command line,
    before anything starts); None: built and checked here.

    Raises :class:`OutputPathError` before anything starts if ``out_path`` cannot be written,
    :class:`RunFailed` for a run that did not complete every step and :class:`RunInterrupted` for one
    stopped by SIGINT or SIGTERM (both after the record was moved to its ``.failed.h5`` name)."""
    if layout is None:
        layout = build_net(cfg, data_dir)
        check_fit(cfg, layout, resolve(strategy))
    files = check_output(Path(out_path))
    _quiet_mosaik()
    t0 = time.perf_counter()
    supervisor = Supervisor(cfg.run.step_timeout_s)
    contract = resolve(strategy)
    loops = contract.agents.loop_iterations(strategy_settings(cfg, contract)) if contract.agents else 100
    world = mosaik.World(
        sim_config(cfg, strategy, supervisor, list(layout.parties)),
        # each simulator process connects back to a socket on a port the system picks (mosaik's default,
        # 5555 for every run, lets concurrent runs, e.g. a sweep's, collide)
        mosaik_config={"start_timeout": cfg.run.start_timeout_s, "addr": ("127.0.0.1", 0)},
        max_loop_iterations=loops,
        skip_greetings=True,
        configure_logging=False,
    )
    error: BaseException | None = None
    interrupts = _Interrupts(world.loop)
    try:
        with interrupts:
            _build_and_run(world, layout, cfg, strategy, data_dir, files.partial, progress)
    except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - whatever a simulator raised ends the run
        if not world.loop.is_closed():  # a broken connection arrives before the child's exit is seen
            world.loop.run_until_complete(asyncio.sleep(SETTLE_S))
        error = supervisor.explain(exc)
    finally:
        _shutdown(world, supervisor)
    signum = interrupts.signum
    if signum is not None:
        error = error or RuntimeError("interrupted")
    if error is None:
        error = _incomplete(files.partial, cfg.n_steps, supervisor)
    if error is not None:
        failed = _fail(files, _describe(error), signum)
        logger.error("run of %s/%s failed: %s", cfg.scenario.name, strategy, failed)
        raise failed from (error if isinstance(error, Exception) else None)
    wall = time.perf_counter() - t0
    with h5py.File(files.partial, "a") as f:
        f.attrs["wall_time_s"] = wall
    try:
        kpis = compute_kpis(files.partial)
    except Exception as exc:  # a KPI (a strategy's hook too) that raises must not lose the run
        failed = _fail(files, f"every step ran, but the KPIs failed: {_describe(exc)}", None)
        logger.exception("run of %s/%s: KPIs failed", cfg.scenario.name, strategy)
        raise failed from exc
    write_kpis(files.partial, kpis)
    os.replace(files.partial, files.target)
    return RunResult(files.target, kpis, wall)


def _incomplete(path: Path, n_steps: int, supervisor: Supervisor) -> Exception | None:
    """Why a run that mosaik ended normally is not complete (None if it is)."""
    failure = supervisor.first_failure()
    if failure is not None:
        return failure
    done = _steps_completed(path) if path.exists() else 0
    if done < n_steps:
        return RuntimeError(f"the run ended after {done} of {n_steps} steps")
    return None


@dataclass
class RecordWiring:
    """How what a run records reaches its recorder (:func:`record_wiring`)."""

    connections: dict[str, tuple[Any, list[str]]]
    """Entity full id -> (entity, the attributes to connect to the recorder)."""
    columns: dict[str, dict[str, tuple[str, list[str | None]]]]
    """The recorder's param ``columns``: grid full id -> {column attribute: (attribute, [the full id of each
    row's entity, or None: not recorded])}."""
    via_columns: list[str]
    """Full ids of the entities recorded through a column alone (no connection of their own)."""


def record_wiring(to_record: list[tuple[Any, list[str]]]) -> RecordWiring:
    """The connections of ``to_record`` (``(entity, attrs)`` pairs) to the recorder: a child's attribute
    that its recorded parent outputs as a column (``"<Model>.<attr>"``, the attribute of every child of
    that model as one list in the children's order: the grid's :data:`sims.grid.spec.GRID_COLUMNS`) comes
    through that column, the rest as asked. The same values reach the same datasets; mosaik carries one
    list per column and step instead of one value per entity and attribute (of ieee33_3mg's 581 recorded
    values a step, 466 are the grid's in 23 columns)."""
    rows_of: dict[str, tuple[Any, str, int, int]] = {}  # child full id -> (parent, model, row, rows of model)
    for grid, attrs in to_record:
        if not attrs or not grid.children:
            continue
        per_model: dict[str, list[Any]] = {}
        for child in grid.children:
            per_model.setdefault(child.type, []).append(child)
        for model, children in per_model.items():
            for row, child in enumerate(children):
                rows_of[child.full_id] = (grid, model, row, len(children))
    out = RecordWiring({}, {}, [])
    for entity, attrs in to_record:
        if not attrs:
            continue
        where = rows_of.get(entity.full_id)
        rest = []
        for attr in attrs:
            col = column_attr(where[1], attr) if where is not None else ""
            if where is None or col not in where[0].model_mock.output_attrs:
                rest.append(attr)
                continue
            grid, _, row, n = where
            _, rows = out.columns.setdefault(grid.full_id, {}).setdefault(col, (attr, [None] * n))
            rows[row] = entity.full_id
            _add(out.connections, grid, [col])
        if rest:
            _add(out.connections, entity, rest)
        elif where is not None:
            out.via_columns.append(entity.full_id)
    return out


def _add(connections: dict[str, tuple[Any, list[str]]], entity: Any, attrs: list[str]) -> None:
    _, have = connections.setdefault(entity.full_id, (entity, []))
    have.extend(a for a in attrs if a not in have)


def _build_and_run(
    world: mosaik.World, layout: NetLayout, cfg: Config, strategy: str, data_dir: Path, path: Path, progress: bool
) -> None:
    built = wire(world, cfg, layout, strategy=strategy, data_dir=data_dir)
    plan = record_wiring(built.to_record)
    rec_sim = world.start(
        "Recorder",
        step_size=cfg.scenario.step_s,
        path=str(path),
        buffer_steps=cfg.run.recorder_buffer_steps,
        n_steps=cfg.n_steps,
        attrs={
            "scenario": cfg.scenario.name,
            "strategy": strategy,
            "start": cfg.scenario.start,
            "config": json.loads(cfg.to_json()),
            "entity_map": built.entity_map,
        },
        columns=plan.columns,
    )
    recorder = rec_sim.Recorder()
    for entity, attrs in plan.connections.values():
        world.connect(entity, recorder, *attrs)
    for full_id in plan.via_columns:  # the entity graph (the record's Relations/) as if connected one by one
        world.entity_graph.add_edge(full_id, recorder.full_id)
    world.run(until=cfg.n_steps * cfg.scenario.step_s, print_progress=progress, shutdown=False)
