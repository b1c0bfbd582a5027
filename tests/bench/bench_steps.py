"""Cost of one co-simulation step outside the power flow: whole runs of a scenario (by default ieee33_3mg
with the rule-based EMS) through the project's own run entry (:func:`scenarios.runner.run_scenario`, as
``mmg-cosim run`` calls it), every simulator in this process (a command, not a test; nothing here asserts
on a timing).

Run: ``python tests/bench/bench_steps.py [--cases hourly 15min 1min] [--days 30 | --days 15min=30 ...]
[--scenario ieee33_3mg] [--strategy rule_based] [--set KEY=VALUE ...] [--progress] [--keep DIR]
[--detail]``.

Cases (``--cases``, default all three): ``hourly`` 365 days of 3600 s steps, ``15min`` 365 days of 900 s
steps, ``1min`` 7 days of 60 s steps; ``--days N`` sets the days of every case, ``--days CASE=N`` of one.
A case whose run cannot start or fails (a step the config refuses, a simulator that raises) prints
``skipped: <the error>`` and the others go on.

Each case is one run in this process, as the command line makes it: the config loaded with the
strategy's checks, the net built and checked (``build_net``, ``check_fit``), then ``run_scenario(...,
layout=layout)`` with every simulator in-process (``run.separate_processes`` emptied, ``run.processes``
= 1). What each part costs, measured by wrapping methods of the classes in this process (each wrapper
adds well under a microsecond per call):

* grid, profiles, EMS, recorder: the time inside each simulator's ``step`` and ``get_data`` (GridSim,
  ProfileSim, the strategy's EMS simulator class, RecorderSim);
* mosaik: the rest of ``World.run`` (its scheduling, gathering inputs, the data exchange, the progress
  bar when ``--progress``);
* set-up: from the call of ``run_scenario`` to the start of ``World.run`` (starting the simulators,
  creating and connecting the entities; the net's build before is shown as ``build``), close: after
  ``World.run`` up to the KPIs (the world's shutdown: the recorder's last block and close, the record's
  checks), KPIs: ``compute_kpis`` and ``write_kpis``.

Figures per case: steps, wall time of the whole run (``build`` + ``run_scenario``), ms per step of the
stepping (``World.run``), and of it ms per step of each simulator and of mosaik with their shares; the
set-up, close and KPIs in seconds. Targets of the default scenario: <= 1.5 ms per step in total, the 365
days of 15-minute steps in <= 60 s on a 2-core machine.

Measured on the 2-core VM (its speed varies by +-30 % between runs; the before/after pairs ran back to back),
ms per step of ``World.run`` (grid / profiles / EMS / recorder / mosaik): hourly 4.72 before (1.22 / 0.24
/ 0.26 / 1.19 / 1.82), 2.68-3.06 after (0.74-0.84 / 0.17-0.19 / 0.17-0.20 / 0.64-0.69 / 0.96-1.13);
15-minute 4.31 before (154 s), 2.53-3.03 after (93-110 s); 1-minute 3.60 before, 2.33-2.57 after. The grid's
step alone is 0.58-0.75 ms of it; mosaik alone, with four trivial simulators wired alike, costs about 0.6 ms
per step plus about 1.4 us per value it carries (about 280 a step are left, 117 of them the profiles' to
the recorder), and the recorder's blocks (one HDF5 chunk write per recorded series every 24 steps) about
0.3 ms per step.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from inspect import isgeneratorfunction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import mosaik

import scenarios.runner as runner
from ems_controllers.registry import get_strategy
from scenarios.build import build_net
from scenarios.config import load_config
from scenarios.registry import get_scenario
from scenarios.strategy_fit import check_fit, resolve

CASES = {"hourly": (3600, 365), "15min": (900, 365), "1min": (60, 7)}
"""Case name -> (scenario.step_s, default days)."""
PARTS = ("grid", "profiles", "ems", "recorder")


@dataclass
class Clock:
    """Seconds spent per part of a run (filled by the wrappers of :func:`instrumented`)."""

    parts: dict[str, float] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, dt: float) -> None:
        """``key``: a part (``kpis``) or ``<part>.<method>`` (``grid.step``), which counts for both."""
        self.parts[key] = self.parts.get(key, 0.0) + dt
        part, dot, _ = key.partition(".")
        if dot:
            self.parts[part] = self.parts.get(part, 0.0) + dt


def _timed(fn: Callable[..., Any], clock: Clock, part: str) -> Callable[..., Any]:
    perf = time.perf_counter

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = perf()
        try:
            return fn(*args, **kwargs)
        finally:
            clock.add(part, perf() - t0)

    return wrapper


def _class_of(target: str) -> type:
    module, _, name = target.partition(":")
    cls: type = getattr(importlib.import_module(module), name)
    return cls


@contextlib.contextmanager
def instrumented(clock: Clock, strategy: str) -> Iterator[None]:
    """Wrap the simulators' ``step``/``get_data``, ``World.run`` and the runner's KPI calls."""
    classes = {
        "grid": _class_of("sims.grid:GridSim"),
        "profiles": _class_of("sims.profiles:ProfileSim"),
        "ems": _class_of(get_strategy(strategy).simulator),
        "recorder": _class_of("sims.recorder:RecorderSim"),
    }
    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, new: Any) -> None:
        saved.append((owner, name, owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name)))
        setattr(owner, name, new)

    for part, cls in classes.items():
        for meth in ("step", "get_data"):
            fn = getattr(cls, meth)
            if isgeneratorfunction(fn):  # mosaik drives a generator: its time is not the call's
                continue
            patch(cls, meth, _timed(fn, clock, f"{part}.{meth}"))
    run = mosaik.World.run

    def timed_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        clock.marks["run_start"] = time.perf_counter()
        try:
            return run(self, *args, **kwargs)
        finally:
            clock.marks["run_end"] = time.perf_counter()

    patch(mosaik.World, "run", timed_run)
    patch(runner, "compute_kpis", _timed(runner.compute_kpis, clock, "kpis"))
    patch(runner, "write_kpis", _timed(runner.write_kpis, clock, "kpis"))
    try:
        yield
    finally:
        for owner, name, old in reversed(saved):
            if old is None:
                delattr(owner, name)
            else:
                setattr(owner, name, old)


@dataclass
class Result:
    case: str
    step_s: int
    days: int
    steps: int = 0
    wall_s: float = 0.0
    build_s: float = 0.0
    clock: Clock = field(default_factory=Clock)
    error: str | None = None

    @property
    def run_s(self) -> float:
        return self.clock.marks["run_end"] - self.clock.marks["run_start"]

    @property
    def setup_s(self) -> float:
        return self.clock.marks["run_start"] - self.clock.marks["call"]

    @property
    def close_s(self) -> float:
        return self.clock.marks["done"] - self.clock.marks["run_end"] - self.clock.parts.get("kpis", 0.0)

    @property
    def mosaik_s(self) -> float:
        return self.run_s - sum(self.clock.parts.get(p, 0.0) for p in PARTS)


def run_case(args: argparse.Namespace, case: str, days: int, out_dir: Path) -> Result:
    step_s = CASES[case][0]
    res = Result(case, step_s, days)
    overrides = [
        *args.set,
        f"scenario.days={days}",
        f"scenario.step_s={step_s}",
        "run.separate_processes=[]",
        "run.processes=1",
    ]
    try:
        entry = get_scenario(args.scenario)
        cfg, data_dir = load_config(entry.default_config, overrides, [args.strategy])
        res.steps = cfg.n_steps
        t0 = time.perf_counter()
        layout = build_net(cfg, data_dir)
        check_fit(cfg, layout, resolve(args.strategy))
        res.build_s = time.perf_counter() - t0
        with instrumented(res.clock, args.strategy):
            res.clock.marks["call"] = time.perf_counter()
            runner.run_scenario(
                cfg, data_dir, args.strategy, out_dir / f"{case}.h5", progress=args.progress, layout=layout
            )
            res.clock.marks["done"] = time.perf_counter()
        res.wall_s = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - a case that cannot run says why and the others go on
        if args.traceback:
            traceback.print_exc()
        cause = exc.__cause__ if isinstance(exc, runner.RunFailed) and exc.__cause__ else exc
        res.error = f"{type(cause).__name__}: {cause}".splitlines()[0]
    return res


def days_of(spec: list[str], cases: list[str]) -> dict[str, int]:
    days = {c: CASES[c][1] for c in cases}
    for item in spec:
        name, eq, n = item.rpartition("=")
        if not eq:
            days = dict.fromkeys(days, int(n))
        elif name in CASES:
            days[name] = int(n)
        else:
            raise SystemExit(f"--days {item}: no case named {name!r} (cases: {', '.join(CASES)})")
    return days


def report(results: list[Result], args: argparse.Namespace) -> None:
    print(f"scenario {args.scenario}, strategy {args.strategy} {' '.join(args.set)}".rstrip())
    head = f"{'case':<7} {'days':>4} {'steps':>7} {'wall s':>7} {'ms/step':>8}"
    head += "".join(f" {p:>15}" for p in (*PARTS, "mosaik"))
    head += f" {'build s':>7} {'set-up s':>8} {'close s':>7} {'KPIs s':>6}"
    print(head)
    for r in results:
        if r.error is not None:
            print(f"{r.case:<7} {r.days:>4} {r.steps or '':>7} skipped: {r.error}")
            continue
        n = r.steps
        line = f"{r.case:<7} {r.days:>4} {n:>7} {r.wall_s:>7.1f} {1e3 * r.run_s / n:>8.3f}"
        for p in (*PARTS, "mosaik"):
            t = r.mosaik_s if p == "mosaik" else r.clock.parts.get(p, 0.0)
            line += f" {1e3 * t / n:>7.3f} ({100 * t / r.run_s:>3.0f}%)"
        kpis = r.clock.parts.get("kpis", 0.0)
        line += f" {r.build_s:>7.2f} {r.setup_s:>8.2f} {r.close_s:>7.2f} {kpis:>6.2f}"
        print(line)
    print(
        "ms/step: World.run per step; per part: ms per step (share of World.run); wall: build + run_scenario "
        "(set-up, stepping, close, KPIs)"
    )
    if args.detail:
        print("\nms per step of step() / get_data() of each simulator")
        print(f"{'case':<7}" + "".join(f" {p:>17}" for p in PARTS))
        for r in results:
            if r.error is None:
                cells = [
                    f"{1e3 * r.clock.parts.get(f'{p}.step', 0.0) / r.steps:.3f} / "
                    f"{1e3 * r.clock.parts.get(f'{p}.get_data', 0.0) / r.steps:.3f}"
                    for p in PARTS
                ]
                print(f"{r.case:<7}" + "".join(f" {c:>17}" for c in cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    ap.add_argument("--days", nargs="+", default=[], metavar="N|CASE=N", help="days of every case, or of one")
    ap.add_argument("--scenario", default="ieee33_3mg")
    ap.add_argument("--strategy", default="rule_based")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--progress", action="store_true", help="with mosaik's progress bar (as `mmg-cosim run`)")
    ap.add_argument("--keep", type=Path, default=None, metavar="DIR", help="write the records here (kept)")
    ap.add_argument("--traceback", action="store_true", help="print the traceback of a skipped case")
    ap.add_argument("--detail", action="store_true", help="also the split of each simulator: step / get_data")
    args = ap.parse_args()
    days = days_of(args.days, args.cases)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.keep or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        for case in args.cases:
            results.append(run_case(args, case, days[case], out_dir))
    report(results, args)


if __name__ == "__main__":
    main()
