"""Benchmark of sims.recorder: 200 scalar series x 8760 hourly steps through RecorderSim.step.

Run: ``python tests/bench/bench_recorder.py [--series 200] [--steps 8760] [--baseline-steps 200]``.

The baseline appends one value per step to each resizable dataset (resize + write + flush per step),
the naive way (measured at 15 ms per step on these machines). It runs on ``--baseline-steps`` steps only
and is scaled linearly to the full step count (stated in the output).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sims.record_reader import read_series
from sims.recorder import RecorderSim


def bench_recorder(path: Path, n_series: int, n_steps: int, step_s: int = 3600) -> float:
    """Seconds spent in RecorderSim (init, create, step, finalize); building the inputs is not counted."""
    rng = np.random.default_rng(0)
    values = rng.random((n_steps, n_series)).tolist()
    srcs = [f"Grid-0.Bus-{i}" for i in range(n_series)]
    sim = RecorderSim()
    t0 = time.perf_counter()
    sim.init("Rec", step_size=step_s, path=str(path), attrs={"scenario": "bench"}, n_steps=n_steps)
    sim.create(1, "Recorder")
    elapsed = time.perf_counter() - t0
    for k in range(n_steps):
        row = values[k]
        inputs = {"Recorder": {"vm_pu": {src: row[i] for i, src in enumerate(srcs)}}}
        t0 = time.perf_counter()
        sim.step(k * step_s, inputs, 0)
        elapsed += time.perf_counter() - t0
    t0 = time.perf_counter()
    sim.finalize()
    elapsed += time.perf_counter() - t0
    got = read_series(path)
    assert len(got) == n_series and got[(srcs[-1], "vm_pu")].shape == (n_steps,)
    assert got[(srcs[-1], "vm_pu")][-1] == values[-1][-1]
    return elapsed


def bench_baseline(path: Path, n_series: int, n_steps: int) -> float:
    t0 = time.perf_counter()
    with h5py.File(path, "w") as f:
        dss = [
            f.create_dataset(f"s{i}", shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,)) for i in range(n_series)
        ]
        for k in range(n_steps):
            for ds in dss:
                ds.resize((k + 1,))
                ds[k] = 1.0
            f.flush()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--steps", type=int, default=8760)
    ap.add_argument("--baseline-steps", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t_rec = bench_recorder(Path(tmp) / "rec.h5", args.series, args.steps)
        t_base = bench_baseline(Path(tmp) / "base.h5", args.series, args.baseline_steps)
    t_base_scaled = t_base * args.steps / args.baseline_steps
    print(
        f"RecorderSim (buffer 24 steps, time inside the simulator): {args.series} series x {args.steps} steps: "
        f"{t_rec:.3f} s total, {1e3 * t_rec / args.steps:.3f} ms per step"
    )
    print(
        f"baseline (append + flush per step): {t_base:.3f} s for {args.baseline_steps} steps, "
        f"{1e3 * t_base / args.baseline_steps:.3f} ms per step, scaled to {args.steps} steps: "
        f"{t_base_scaled:.1f} s"
    )
    print(f"ratio baseline / recorder: {t_base_scaled / t_rec:.0f}x")


if __name__ == "__main__":
    main()
