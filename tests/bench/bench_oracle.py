"""Benchmark of the reference strategy's MILP (``oracle``) on the shipped scenarios: its size, the time of
its two passes (switches held closed, then free), the bound, against the same parties' system MILP without
the network (what ``centralized`` solves) as the baseline, in the same process.

Run with ``python tests/bench/bench_oracle.py [--scenarios ieee33_3mg,mv_clusters] [--switch-time-limit 60]``.
Each scenario's inputs are the co-simulation's own at hour 0 (the run is stopped at its first solve).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from unittest import mock

import pyomo.environ as pyo

from ems_controllers.core.system import SystemModel, build_system_model
from ems_controllers.oracle.model import OracleModel
from scenarios.config import load_config
from scenarios.registry import SCENARIOS
from scenarios.runner import RunFailed, run_scenario

ALL = ("ieee33_3mg", "community_3mg", "nested_campus", "islanded_img", "mv_clusters")


@dataclass(frozen=True)
class Captured:
    model: OracleModel
    args: tuple[Any, ...]  # problems, horizon, loads, opts


class _Stop(Exception):
    """Raised by the stand-in solve: the capture has what it needs, the run may end."""


def capture(scenario: str) -> Captured:
    """The oracle's inputs of the scenario's first planning instant, from a co-simulation stopped there."""
    got: dict[str, Captured] = {}

    def record(self: OracleModel, *args: Any) -> Any:
        got["c"] = Captured(self, args[:4])
        raise _Stop

    cfg, data_dir = load_config(SCENARIOS[scenario].default_config, [], ["oracle"])
    with (
        mock.patch.object(OracleModel, "solve", record),
        tempfile.TemporaryDirectory() as d,
        contextlib.suppress(RunFailed),  # the run fails by design at its first solve
    ):
        run_scenario(cfg, data_dir, "oracle", Path(d) / "capture.h5", progress=False)
    return got["c"]


def size(c: Captured) -> tuple[int, int, int]:
    """Rows, columns and binaries of the oracle's model."""
    problems, horizon, _, opts = c.args
    m = build_system_model(
        problems, horizon.n_steps, horizon.dt_h, opts.pwl_max_error_per_h, c.model.rows, c.model.site.islanded
    )
    rows = sum(1 for _ in m.component_data_objects(pyo.Constraint, active=True))
    cols = list(m.component_data_objects(pyo.Var))
    return rows, len(cols), sum(1 for v in cols if v.is_binary())


def bench(scenario: str, switch_time_limit_s: float) -> None:
    c = capture(scenario)
    problems, horizon, loads, opts = c.args
    site = c.model.site
    rows, cols, binaries = size(c)
    t0 = time.perf_counter()
    base = SystemModel(islanded=site.islanded).solve(problems, horizon, opts)
    t_base = time.perf_counter() - t0
    first = OracleModel(replace(site, switch_groups={}, pcc_group={}), c.model.cfg)
    t0 = time.perf_counter()
    one = first.solve(problems, horizon, loads, opts)
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = OracleModel(site, c.model.cfg).solve(problems, horizon, loads, opts, switch_time_limit_s)
    t_full = time.perf_counter() - t0
    net = site.network
    bound = full.detail.lower_bound if full.detail is not None else None
    print(
        f"{scenario}: {len(net.buses)} buses, {len(net.branches)} branches, {len(site.switch_groups)} switch groups; "
        f"model {rows} rows, {cols} columns, {binaries} binaries"
    )
    print(f"  network-free system MILP (baseline): {t_base:.2f} s, objective {base.objective}")
    print(f"  switches held closed:                {t_one:.2f} s ({t_one / t_base:.0f}x), objective {one.objective}")
    print(
        f"  both passes:                         {t_full:.2f} s ({t_full / t_base:.0f}x), objective {full.objective}, "
        f"bound {bound}, status {full.status} ({full.termination})"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenarios", default=",".join(ALL))
    p.add_argument("--switch-time-limit", type=float, default=60.0)
    args = p.parse_args(argv)
    for scenario in args.scenarios.split(","):
        bench(scenario.strip(), args.switch_time_limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
