"""Wall time of whole co-simulation runs of ieee33_3mg with the rule-based EMS (a command, not a test).

    python tests/bench/bench_runs.py [--days 1 365] [--strategy centralized --set ems.rolling=true]

Prints, per run length, the wall time, the time per simulated step and the share of start-up, and the
ratio against the 1-day run measured in the same process. Targets: 365 days with the rule-based EMS
<= 60 s; 365 days of rolling re-planning with the centralized EMS <= 10 min (`make bench-rolling`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from scenarios.config import load_config
from scenarios.registry import get_scenario
from scenarios.runner import run_scenario


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, nargs="+", default=[1, 365])
    ap.add_argument("--strategy", default="rule_based")
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. --set ems.rolling=true"
    )
    args = ap.parse_args()
    entry = get_scenario("ieee33_3mg")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for days in args.days:
            cfg, data_dir = load_config(entry.default_config, [*args.set, f"scenario.days={days}"])
            t0 = time.perf_counter()
            res = run_scenario(cfg, data_dir, args.strategy, Path(tmp) / f"run{days}.h5", progress=False)
            wall = time.perf_counter() - t0
            size_mb = res.path.stat().st_size / 1e6
            rows.append((days, cfg.n_steps, wall, res.kpis.get("solve_time_s", 0.0), size_mb))
    base = rows[0][2]
    print(f"strategy {args.strategy} {' '.join(args.set)}")
    print(f"{'days':>5} {'steps':>6} {'wall s':>8} {'ms/step':>8} {'vs first':>9} {'solve s':>8} {'file MB':>8}")
    for days, n, wall, solve_s, size_mb in rows:
        print(
            f"{days:>5} {n:>6} {wall:>8.2f} {1000 * wall / n:>8.2f} {wall / base:>8.1f}x {solve_s:>8.1f} "
            f"{size_mb:>8.1f}"
        )


if __name__ == "__main__":
    main()
