"""Entry point of a simulator process that a run starts (``run.separate_processes``).

``python -m scenarios.child --parent PID package.module:Class HOST:PORT`` imports the named
``mosaik_api_v3.Simulator`` subclass and connects it to the mosaik world at ``HOST:PORT``. The process

* dies with its parent: on Linux the kernel sends it SIGKILL when the run's process ends, however it ends
  (``PR_SET_PDEATHSIG``); elsewhere, and as a second line, a thread ends it once its parent is gone;
* ignores Ctrl-C (a terminal sends SIGINT to the whole process group): the run's process decides how to
  stop, flushes the record and ends its children itself.

Standalone use of a simulator needs none of this: ``python -m sims.grid HOST:PORT`` works as before.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import importlib
import json
import os
import signal
import sys
import threading
import time
from typing import Any

import mosaik_api_v3

PR_SET_PDEATHSIG = 1
PARENT_POLL_S = 1.0


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent ended before the request above took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def load_simulator(target: str) -> mosaik_api_v3.Simulator:
    """An instance of ``package.module:Class``."""
    module, sep, cls = target.partition(":")
    if not sep:
        raise SystemExit(f"scenarios.child: expected package.module:Class, got {target!r}")
    sim_class = getattr(importlib.import_module(module), cls)
    sim = sim_class()
    if not isinstance(sim, mosaik_api_v3.Simulator):
        raise SystemExit(f"scenarios.child: {target} is not a mosaik_api_v3.Simulator")
    return sim


TRACE_ENV = "MMG_COSIM_TRACE_INPUTS"
"""A folder: when set, every simulator process appends each step's inputs (what reached this process) to
``<folder>/<sid>.jsonl``, one JSON line per step, for tests that check what crossed a process boundary."""


def trace_inputs(sim: mosaik_api_v3.Simulator, folder: str) -> None:
    """Wrap ``sim``'s ``init`` and ``step`` so that the inputs of every step are written to ``folder``."""
    init, step = sim.init, sim.step
    sid = {"value": f"pid{os.getpid()}"}

    def traced_init(sid_: str, *args: Any, **kwargs: Any) -> Any:
        sid["value"] = sid_
        return init(sid_, *args, **kwargs)

    def traced_step(time_: int, inputs: Any, max_advance: int) -> Any:
        with open(os.path.join(folder, f"{sid['value']}.jsonl"), "a") as f:
            f.write(json.dumps({"time": time_, "inputs": inputs}, default=str) + "\n")
        return step(time_, inputs, max_advance)

    sim.init = traced_init  # type: ignore[method-assign,assignment]
    sim.step = traced_step  # type: ignore[method-assign,assignment]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scenarios.child", description=__doc__.splitlines()[0])
    p.add_argument("--parent", type=int, required=True, help="pid of the run's process")
    p.add_argument("target", help="package.module:Class of the simulator")
    p.add_argument("addr", help="HOST:PORT of the mosaik world")
    args = p.parse_args(argv)
    _die_with_parent(args.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    sim = load_simulator(args.target)
    if os.environ.get(TRACE_ENV):
        trace_inputs(sim, os.environ[TRACE_ENV])
    host, _, port = args.addr.rpartition(":")
    asyncio.run(mosaik_api_v3.run_as_client(sim, host, int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
