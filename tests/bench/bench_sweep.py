"""A sweep on a 2-worker local Dask cluster against the same runs one after another (a command, not a
test; nothing here asserts on a timing).

Run: ``python tests/bench/bench_sweep.py [--scenario ieee33_3mg] [--strategies rule_based,local]
[--seeds 1,2,3,4] [--error-std 0.1] [--workers 2] [--days 1]``.

Both variants run every run of the grid as its own ``mmg-cosim run`` process (:func:`scenarios.sweep.run_one`),
into separate folders: first serially in this process, then through :func:`scenarios.sweep.run_sweep` on a
local cluster of ``--workers`` processes. Printed: each variant's wall time, the per-run wall times, the
speed-up (serial / sweep) and whether both gave the same KPIs run by run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from scenarios.sweep import plan_runs, run_one, run_sweep, sweep_task


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="ieee33_3mg")
    p.add_argument("--strategies", default="rule_based,local")
    p.add_argument("--seeds", default="1,2,3,4")
    p.add_argument("--error-std", default="0.1")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--days", type=int, default=1)
    a = p.parse_args()
    runs = plan_runs(
        a.strategies.split(","), [int(s) for s in a.seeds.split(",")], [float(e) for e in a.error_std.split(",")]
    )
    with tempfile.TemporaryDirectory() as tmp:
        serial_dir, sweep_dir = Path(tmp) / "serial", Path(tmp) / "sweep"
        t0 = time.perf_counter()
        serial = [run_one(r, a.scenario, None, str(serial_dir), a.days) for r in runs]
        t_serial = time.perf_counter() - t0
        task = sweep_task(a.scenario, None, sweep_dir, a.days)
        t1 = time.perf_counter()
        swept = run_sweep(runs, task, sweep_dir, workers=a.workers)
        t_sweep = time.perf_counter() - t1
    same = all(
        s.status == w.status == "ok" and s.kpis.get("total_cost") == w.kpis.get("total_cost")
        for s, w in zip(serial, swept, strict=True)
    )
    print(f"{len(runs)} runs of {a.scenario}, {a.days} day(s) each, {a.workers} workers")
    print(f"  serial: {t_serial:7.1f} s  (runs {', '.join(f'{o.wall_s:.1f}' for o in serial)} s)")
    print(f"  sweep:  {t_sweep:7.1f} s  (runs {', '.join(f'{o.wall_s:.1f}' for o in swept)} s)")
    print(f"  speed-up serial/sweep: {t_serial / t_sweep:.2f}x; same KPIs run by run: {same}")


if __name__ == "__main__":
    main()
