"""Runs at scale: wall time per simulated day and peak memory against the number of MGs (N) and of EMS
processes (P), on the placed fleet of ``mvlv_fleet`` (a command, not a test; nothing asserts a timing).

    python tests/bench/bench_scale.py [--strategies rule_based,local,centralized] [--n 10,30,100]
                                      [--processes 1,2,4] [--timeout-s 1200] [--config PATH] [--set K=V]

Each case is a whole ``mmg-cosim run`` process (``--json``), as a user runs it: the command's wall time
(set-up included), the run's own ``wall_time_s`` (the mosaik world), the EMS's summed and largest solve
time, and the peak resident memory of the command and the simulator processes it waited for. P > 1 only
for strategies whose contract is partitionable (``run.processes``). A case that passes ``--timeout-s`` is
stopped and printed as such. Ratios: each case's wall time against ``rule_based`` at the same N and P = 1
(the baseline measured in the same invocation). Targets on 2 cores: 100 MGs, one day, ``rule_based``
and ``local`` <= 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ems_controllers.registry import get_strategy  # noqa: E402

CONFIG = ROOT / "scenarios" / "data" / "mvlv_fleet.toml"


@dataclass
class Case:
    strategy: str
    n: int
    p: int
    status: str = ""
    wall_s: float = float("nan")
    run_wall_s: float = float("nan")
    solve_s: float = float("nan")
    solve_max_s: float = float("nan")
    peak_mb: float = float("nan")
    total_cost: float = float("nan")
    losses_mwh: float = float("nan")
    unserved_mwh: float = float("nan")
    v_viol: float = float("nan")


def run_case(case: Case, config: Path, sets: list[str], out: Path, timeout_s: float) -> Case:
    cmd = [sys.executable, "-m", "scenarios.cli", "run", str(config), "--strategy", case.strategy, "--quiet"]
    cmd += ["--json", "--out", str(out), "--set", f"fleet.n={case.n}", "--set", f"run.processes={case.p}"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    result = out.with_suffix(".json")
    with result.open("w") as stdout:  # a file, not a pipe: a large JSON document would fill the pipe and block
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=stdout, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = t0 + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            case.status, case.wall_s = f"timeout {timeout_s:.0f} s", time.perf_counter() - t0
            return case
        time.sleep(0.2)
    case.wall_s = time.perf_counter() - t0
    case.peak_mb = usage.ru_maxrss / 1024
    text = result.read_text()
    code = os.waitstatus_to_exitcode(status)
    try:
        k = json.loads(text)
    except json.JSONDecodeError:
        case.status = f"exit {code}, no JSON"
        return case
    case.status = "ok" if code == 0 else f"exit {code}: {str(k.get('run_error', ''))[:60]}"
    for attr, key in (
        ("run_wall_s", "wall_time_s"),
        ("solve_s", "solve_time_s"),
        ("solve_max_s", "solve_time_max_s"),
        ("total_cost", "total_cost"),
        ("losses_mwh", "losses_mwh"),
        ("unserved_mwh", "unserved_mwh"),
        ("v_viol", "n_voltage_violations"),
    ):
        v = k.get(key)
        setattr(case, attr, float(v) if isinstance(v, int | float) else float("nan"))
    return case


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategies", default="rule_based,local,centralized")
    ap.add_argument("--n", default="10,30,100", help="numbers of MGs")
    ap.add_argument("--processes", default="1,2,4", help="EMS processes (partitionable strategies only)")
    ap.add_argument("--timeout-s", type=float, default=1200.0)
    ap.add_argument("--config", type=Path, default=CONFIG)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    cases = []
    for n in (int(x) for x in args.n.split(",")):
        for s in args.strategies.split(","):
            ps = [int(p) for p in args.processes.split(",")] if get_strategy(s).partitionable else [1]
            cases += [Case(s, n, p) for p in ps]
    print(
        f"{'strategy':<12} {'N':>4} {'P':>2} {'wall s':>8} {'run s':>8} {'solve s':>8} {'max solve':>9} "
        f"{'peak MB':>8} {'x base':>7} {'cost':>10} {'loss MWh':>8} {'unserved':>8} {'V viol':>6}  status"
    )
    base: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, c in enumerate(cases):
            run_case(c, args.config, args.set, Path(tmp) / f"case{i}.h5", args.timeout_s)
            if c.strategy == "rule_based" and c.p == 1 and c.status == "ok":
                base[c.n] = c.wall_s
            ratio = c.wall_s / base[c.n] if c.n in base else float("nan")
            print(
                f"{c.strategy:<12} {c.n:>4} {c.p:>2} {c.wall_s:>8.1f} {c.run_wall_s:>8.1f} {c.solve_s:>8.1f} "
                f"{c.solve_max_s:>9.2f} {c.peak_mb:>8.0f} {ratio:>7.2f} {c.total_cost:>10.0f} {c.losses_mwh:>8.2f} "
                f"{c.unserved_mwh:>8.3f} {c.v_viol:>6.0f}  {c.status}",
                flush=True,
            )


if __name__ == "__main__":
    main()
