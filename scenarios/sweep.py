"""Ensembles: a grid of runs (strategies x seeds x forecast errors x ``--vary`` override values) as
independent mosaik worlds scheduled on Dask (``distributed``).

Each run is one ``mmg-cosim run ... --json`` process started by a Dask task: its own mosaik world, its own
simulator processes (their sockets on ports the operating system picks), its own HDF5 file
``<out_dir>/runs/<run id>.h5``. Dask only schedules: a :class:`distributed.LocalCluster` of ``workers``
single-threaded workers in this process by default (a run is a process of its own, so a worker only
starts and waits for it: worker processes would add start-up, not parallelism), or the cluster at
``scheduler``: the user's, which the sweep only connects to (it never stops it); its workers must see
``out_dir`` and have this mmg-cosim installed. A
worker has a working folder of its own (another host's, perhaps), so every path a run gets is absolute
(:func:`sweep_task`). A run that fails (exit 1) or is refused (exit 2) is recorded with its reason and the
others go on. A sweep resumes: a run whose final file exists completed earlier (only a complete run gets
that name) and is read back, not run again.

The sweep writes the summary (one row per run: its parameters, status, wall time, the Dask worker that ran
it and the KPIs every strategy shares) after every finished run, as ``summary.csv`` and, typed, as
``summary.parquet`` (same rows and columns), and ``spread.png`` (cost, limits broken and unserved energy
per strategy over the runs).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

SUMMARY_KPIS = (
    "total_cost",
    "losses_mwh",
    "unserved_mwh",
    "stored_energy_change_mwh",
    "n_voltage_violations",
    "n_line_overloads",
    "min_vm_pu",
    "max_vm_pu",
    "max_loading_percent",
    "pf_failures",
    "ems_fallback_steps",
    "solve_time_s",
)
"""What the summary keeps of each run's KPIs: what every strategy's run reports, counted the same way."""
SUMMARY_INTS = ("seed",)
SUMMARY_FLOATS = ("error_std", "wall_s", *SUMMARY_KPIS)
"""The summary's numeric columns: int64 and float64 (NaN where summary.csv has ""); the others are strings."""
EXIT_STATUS = {0: "ok", 1: "failed", 2: "bad_input", 130: "interrupted", 143: "interrupted"}


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: the strategy, the seed, the forecast error and the override values."""

    strategy: str
    seed: int
    error_std: float | None
    overrides: tuple[str, ...] = ()

    @property
    def run_id(self) -> str:
        """A file-safe name that only these parameters give."""
        err = "" if self.error_std is None else f"-err{self.error_std:g}"
        base = f"{self.strategy}-seed{self.seed}{err}".replace(":", "_").replace("/", "_")
        if not self.overrides:
            return base
        digest = hashlib.sha256("\n".join(self.overrides).encode()).hexdigest()[:10]
        return f"{base}-{digest}"

    def settings(self) -> list[str]:
        """The ``--set`` values of this run."""
        fixed = [f"scenario.seed={self.seed}"]
        if self.error_std is not None:
            fixed.append(f"forecast.error_std={self.error_std:g}")
        return [*fixed, *self.overrides]


@dataclass
class RunOutcome:
    """What became of one run."""

    run: SweepRun
    status: str
    path: str | None
    wall_s: float
    error: str | None = None
    kpis: dict[str, Any] = field(default_factory=dict)
    worker: str = ""
    """The address of the Dask worker that ran (or read back) the run; "" outside Dask."""

    def row(self) -> dict[str, Any]:
        r = self.run
        row: dict[str, Any] = {
            "run_id": r.run_id,
            "strategy": r.strategy,
            "seed": r.seed,
            "error_std": "" if r.error_std is None else r.error_std,
            "overrides": " ".join(r.overrides),
            "status": self.status,
            "wall_s": round(self.wall_s, 3) if math.isfinite(self.wall_s) else "",
            "worker": self.worker,
            "path": self.path or "",
            "error": self.error or "",
        }
        for key in SUMMARY_KPIS:
            v = self.kpis.get(key)
            row[key] = "" if not isinstance(v, int | float) or not math.isfinite(v) else v
        return row


def parse_vary(items: Sequence[str]) -> list[list[str]]:
    """``KEY=V1,V2`` axes (ValueError naming a malformed one) as lists of ``KEY=V`` overrides."""
    axes = []
    for item in items:
        key, sep, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not vals:
            raise ValueError(f"--vary {item!r}: expected KEY=V1,V2,... (e.g. grid.feeder_load_scale=0.8,1.2)")
        axes.append([f"{key.strip()}={v}" for v in vals])
    return axes


def plan_runs(
    strategies: Sequence[str],
    seeds: Sequence[int],
    error_stds: Sequence[float | None],
    vary: Sequence[Sequence[str]] = (),
    fixed: Sequence[str] = (),
) -> list[SweepRun]:
    """Every combination, in a stable order (ValueError if two runs would share a file)."""
    variants = [tuple(fixed) + combo for combo in itertools.product(*vary)] if vary else [tuple(fixed)]
    runs = [
        SweepRun(s, seed, e, v)
        for s, seed, e, v in itertools.product(strategies, seeds, error_stds or [None], variants)
    ]
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise ValueError("the sweep names some run twice (repeated strategies, seeds or values?)")
    return runs


def sweep_task(scenario: str, config: str | None, out_dir: Path, days: int | None) -> Callable[[SweepRun], RunOutcome]:
    """:func:`run_one` for every run of a sweep, its paths made absolute here, in the sweep's working folder
    (a worker runs in its own): the out-dir, the config and a scenario given as the path of a TOML file (a
    shipped scenario's name passes as it is)."""
    from scenarios.registry import SCENARIOS

    scen = scenario if scenario in SCENARIOS else str(Path(scenario).resolve())
    conf = str(Path(config).resolve()) if config else None
    return partial(run_one, scenario=scen, config=conf, out_dir=str(out_dir.resolve()), days=days)


def run_one(run: SweepRun, scenario: str, config: str | None, out_dir: str, days: int | None) -> RunOutcome:
    """One run as its own ``mmg-cosim run`` process (a Dask task; also callable directly). Paths must be
    absolute (ValueError): a worker's working folder is not the sweep's."""
    if not Path(out_dir).is_absolute() or (config and not Path(config).is_absolute()):
        raise ValueError(f"run_one needs absolute paths, got out_dir={out_dir!r}, config={config!r}")
    worker = _worker_address()
    out = Path(out_dir) / "runs" / f"{run.run_id}.h5"
    if out.exists():
        return _resumed(run, out, worker)
    cmd = [sys.executable, "-m", "scenarios.cli", "run", scenario, "--strategy", run.strategy]
    cmd += ["--out", str(out), "--json", "--quiet"]
    if config:
        cmd += ["--config", config]
    if days is not None:
        cmd += ["--days", str(days)]
    for s in run.settings():
        cmd += ["--set", s]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    status = EXIT_STATUS.get(proc.returncode, "failed")
    try:
        doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        doc = {}
    if status == "ok":
        return RunOutcome(run, status, str(out), wall, kpis=doc, worker=worker)
    error = doc.get("error") or doc.get("run_error") or _last_line(proc.stderr) or f"exit {proc.returncode}"
    path = doc.get("path") if isinstance(doc.get("path"), str) else None
    return RunOutcome(run, status, path, wall, error=str(error), worker=worker)


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # not in a Dask worker: a direct call
        return ""


def _resumed(run: SweepRun, out: Path, worker: str) -> RunOutcome:
    from sims.record_reader import read_attrs, read_kpis

    kpis = read_kpis(out)
    wall = float(read_attrs(out).get("wall_time_s", math.nan))
    return RunOutcome(run, "resumed", str(out), wall, kpis=kpis, worker=worker)


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def summary_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The summary's rows as a typed table: :data:`SUMMARY_INTS` int64, :data:`SUMMARY_FLOATS` float64 (NaN
    for ""), every other column strings."""
    import pandas as pd

    columns: dict[str, pd.Series] = {}
    for col in rows[0] if rows else []:
        values = [r[col] for r in rows]
        if col in SUMMARY_INTS:
            columns[col] = pd.Series(values, dtype="int64")
        elif col in SUMMARY_FLOATS:
            columns[col] = pd.Series([math.nan if v == "" else float(v) for v in values], dtype="float64")
        else:
            columns[col] = pd.Series([str(v) for v in values], dtype=str)
    return pd.DataFrame(columns)


def write_summary(outcomes: Iterable[RunOutcome], path: Path) -> None:
    """``summary.csv`` at ``path`` and the same rows typed as ``summary.parquet`` beside it (each written to a
    temporary name, then moved: a reader never sees half a table)."""
    rows = [o.row() for o in outcomes]
    if not rows:
        return
    parquet = path.with_suffix(".parquet")
    tmp_parquet = parquet.with_suffix(".parquet.tmp")
    summary_frame(rows).to_parquet(tmp_parquet, index=False)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tmp_parquet.replace(parquet)
    tmp.replace(path)


def run_sweep(
    runs: Sequence[SweepRun],
    task: Callable[[SweepRun], RunOutcome],
    out_dir: Path,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    on_done: Callable[[RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Every run of ``runs`` as a Dask task of ``task`` (a local cluster of ``workers`` processes, or the
    cluster at ``scheduler``); the summary is rewritten after each finished run. Outcomes in run order."""
    import logging

    from distributed import Client, LocalCluster, as_completed

    logging.getLogger("distributed").setLevel(logging.WARNING)  # Dask's INFO lines would drown the progress

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "runs").mkdir(exist_ok=True)
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=False,  # each run is a process already (see the module's docstring)
            protocol="tcp",
            dashboard_address=None,
            silence_logs=40,
        )
    done: dict[str, RunOutcome] = {}
    # a key is the scheduler's name for a task, shared by its clients: the out-dir's hash keeps another sweep
    # of the same runs on the same cluster (to another folder) from being handed this one's results
    tag = hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:8]
    try:
        with Client(scheduler if scheduler is not None else cluster) as client:  # closes the client, not the cluster
            futures = {client.submit(task, r, key=f"run-{r.run_id}-{tag}", pure=False): r for r in runs}
            for fut in as_completed(futures):
                run = futures[fut]
                try:
                    outcome = fut.result()
                except Exception as exc:  # noqa: BLE001 - a task that broke (a dead worker) is recorded, the rest go on
                    outcome = RunOutcome(run, "failed", None, math.nan, error=f"{type(exc).__name__}: {exc}")
                done[run.run_id] = outcome
                write_summary([done[r.run_id] for r in runs if r.run_id in done], out_dir / "summary.csv")
                if on_done is not None:
                    on_done(outcome)
    finally:
        if cluster is not None:
            cluster.close()
    return [done[r.run_id] for r in runs]


def outcome_dict(o: RunOutcome) -> dict[str, Any]:
    """A run's outcome as JSON-safe data (its summary row and the run's parameters)."""
    return {**o.row(), "run": asdict(o.run)}
