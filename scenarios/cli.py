"""``mmg-cosim``: list, run and report co-simulations of multi-microgrid EMS strategies.

Exit codes: 0 success, 2 bad input (config, data, unknown names, unreadable files), 1 a run that failed.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ems_controllers.core.contract import Strategy
from ems_controllers.registry import strategies
from scenarios.config import ConfigError, load_config
from scenarios.paths import folder_problem
from scenarios.registry import DEFAULT_SCENARIO, DEFAULT_STRATEGY, SCENARIOS, get_scenario
from scenarios.stdio import result_stdout, write_json

if TYPE_CHECKING:
    from scenarios.runner import RunFailed

logger = logging.getLogger("mmg_cosim")
RESULTS_DIR = Path("results")


class BadInput(Exception):
    """Bad input found before anything ran (exit 2): the message names the bad field or value."""


def _bad_input(exc: BadInput, as_json: bool, out: TextIO) -> int:
    """Say what is wrong on stderr and, with ``--json``, as the one document on stdout; exit status 2."""
    print(f"mmg-cosim: error: {exc}", file=sys.stderr)
    if as_json:
        write_json(out, {"input_error": str(exc), "exit_status": 2})
    return 2


def _strategy_info(s: Strategy, fits: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "description": s.description,
        "simulator": s.simulator,
        "settings": {k: f.default for k, f in s.settings.model_fields.items()},
        "requires": sorted(s.requires),
        "cannot_handle": sorted(s.cannot_handle),
        "runs_on": fits.get(s.name, []),
        "reference": s.reference,
    }


def _fits() -> dict[str, list[str]]:
    """Which shipped scenario (default config) each known strategy can run on."""
    from scenarios.strategy_fit import offered, strategy_settings

    fits: dict[str, list[str]] = {}
    for e in SCENARIOS.values():
        cfg, _ = load_config(e.default_config)
        have = offered(cfg)
        for s in strategies().values():
            if s.problem(have, strategy_settings(cfg, s)) is None:
                fits.setdefault(s.name, []).append(e.name)
    return fits


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    fits = _fits()
    if args.json:
        write_json(
            out,
            {
                "scenarios": {
                    e.name: {"description": e.description, "config": e.default_config.name} for e in SCENARIOS.values()
                },
                "strategies": {s.name: _strategy_info(s, fits) for s in strategies().values()},
            },
        )
        return 0
    print("scenarios:", file=out)
    for e in SCENARIOS.values():
        print(f"  {e.name:<14} {e.description}  (config: {e.default_config.name})", file=out)
    print("strategies:", file=out)
    for s in strategies().values():
        mark = " [reference of compare's gap to ref]" if s.reference else ""
        print(f"  {s.name:<14} {s.description}{mark}", file=out)
        settings = ", ".join(f"ems.{k}={f.default!r}" for k, f in s.settings.model_fields.items())
        needs = ", ".join([*(f"needs {c}" for c in sorted(s.requires)), *(f"not {c}" for c in sorted(s.cannot_handle))])
        print(f"  {'':<14} runs on: {', '.join(fits.get(s.name, [])) or '-'}; {needs or 'any grid'}", file=out)
        if settings:
            print(f"  {'':<14} settings: {settings}", file=out)
    return 0


def result_file_name(scenario: str, spec: str) -> str:
    """A readable, shell-safe file name for a run of ``spec`` (a strategy with options) on ``scenario``:
    ``community_3mg-cooperative_ancillary-extended.h5`` for ``cooperative:ancillary='extended'``."""
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", spec.replace(":", "_", 1)).strip("-._") or "run"
    return f"{scenario}-{label}.h5"


def cmd_run(args: argparse.Namespace, out_stream: TextIO) -> int:
    from scenarios.build import build_net
    from scenarios.strategy_fit import check_fit, resolve

    try:
        entry = get_scenario(args.scenario)
        overrides = list(args.set or [])
        if args.days is not None:
            overrides.append(f"scenario.days={args.days}")
        cfg, data_dir = load_config(args.config or entry.default_config, overrides, [args.strategy])
        if cfg.scenario.name != entry.name:
            raise ConfigError(f"scenario.name: config is for {cfg.scenario.name!r}, not {entry.name!r}")
        # Checks that need the grid, before any simulator starts.
        layout = build_net(cfg, data_dir)
        check_fit(cfg, layout, resolve(args.strategy))
    except (ConfigError, ValueError) as exc:
        raise BadInput(str(exc)) from None
    from scenarios.runner import OutputPathError, RunFailed, run_scenario

    out = Path(args.out) if args.out else RESULTS_DIR / result_file_name(entry.name, args.strategy)
    try:  # run_scenario checks the output path before anything starts (OutputPathError)
        result = run_scenario(cfg, data_dir, args.strategy, out, progress=not args.quiet, layout=layout)
    except OutputPathError as exc:
        raise BadInput(str(exc)) from None
    except RunFailed as exc:
        return _report_failed_run(exc, args.json, out_stream)
    if args.json:
        write_json(out_stream, result.kpis)
        return 0
    print(
        f"wrote {result.path} ({cfg.n_steps} steps of {cfg.scenario.step_s} s, {result.wall_time_s:.1f} s wall)",
        file=out_stream,
    )
    _print_kpis(result.kpis, out_stream)
    return 0


def _report_failed_run(exc: RunFailed, as_json: bool, out: TextIO) -> int:
    """Say why a run failed and where its completed steps are; the exit code (1, or 128 + signal)."""
    where = f"its {exc.steps_completed} completed steps are in {exc.path}" if exc.path else "no step was recorded"
    print(f"mmg-cosim: run failed: {exc}; {where}", file=sys.stderr)
    if as_json:
        write_json(
            out,
            {
                "run_error": str(exc),
                "path": str(exc.path) if exc.path else None,
                "n_steps_completed": exc.steps_completed,
            },
        )
    return getattr(exc, "exit_code", 1)


def parse_strategy_spec(spec: str) -> tuple[str, list[str]]:
    """``name`` or ``name:key=value,key=value`` -> (name, ["ems.key=value", ...]); ``name`` may itself be
    ``package.module:NAME`` (the options follow the last colon)."""
    name, sep, rest = spec.rpartition(":")
    if not sep or "=" not in rest:
        return spec, []
    return name, [f"ems.{kv.strip()}" for kv in rest.split(",") if kv.strip()]


COMPARE_COLUMNS = [
    ("total_cost", "total cost"),
    ("gap_to_reference", "gap to ref"),
    ("stored_energy_value", "stored value"),
    ("stored_energy_change_mwh", "stored dMWh"),
    ("energy_bought_mwh", "bought MWh"),
    ("energy_sold_mwh", "sold MWh"),
    ("unserved_mwh", "unserved MWh"),
    ("pcc_excess_steps", "PCC over"),
    ("pcc_excess_mwh", "PCC over MWh"),
    ("n_voltage_violations", "V viol"),
    ("min_vm_pu", "min vm"),
    ("max_vm_pu", "max vm"),
    ("n_line_overloads", "overloads"),
    ("losses_mwh", "losses MWh"),
    ("pf_failures", "pf fail"),
    ("internal_trade_mwh", "internal MWh"),
    ("soc_drift_mwh_max", "SoC drift"),
    ("exchange_deviation_mwh", "exch dev MWh"),
    ("ems_fallback_steps", "fallbacks"),
    ("solve_time_s", "solve s"),
    ("wall_time_s", "wall s"),
]


def cmd_compare(args: argparse.Namespace, out_stream: TextIO) -> int:
    from scenarios.build import build_net
    from scenarios.runner import OutputPathError, RunFailed, RunInterrupted, check_output, run_scenario
    from scenarios.strategy_fit import check_fit, resolve

    try:
        entry = get_scenario(args.scenario)
        specs = [s.strip() for s in args.strategies.split(",") if s.strip()]
        if not specs:
            raise ValueError(f"--strategies {args.strategies!r}: no strategies given (e.g. rule_based,local)")
        runs = []
        for spec in specs:
            name, opts = parse_strategy_spec(spec.replace("+", ","))
            overrides = [*(args.set or []), *opts]
            if args.days is not None:
                overrides.append(f"scenario.days={args.days}")
            cfg, data_dir = load_config(args.config or entry.default_config, overrides, [name])
            layout = build_net(cfg, data_dir)
            check_fit(cfg, layout, resolve(name))
            runs.append((spec, name, cfg, data_dir, layout))
    except (ConfigError, ValueError) as exc:
        raise BadInput(str(exc)) from None
    out_dir = Path(args.out_dir) if args.out_dir else RESULTS_DIR
    outs = [out_dir / result_file_name(entry.name, run[0]) for run in runs]
    try:
        for out in outs:
            check_output(out)
    except OutputPathError as exc:
        raise BadInput(str(exc)) from None
    results: dict[str, dict[str, Any]] = {}
    for (spec, name, cfg, data_dir, layout), out in zip(runs, outs, strict=True):
        print(f"running {spec} -> {out}", file=sys.stderr)
        try:
            results[spec] = run_scenario(cfg, data_dir, name, out, progress=False, layout=layout).kpis
        except RunInterrupted as exc:  # the user stops the whole comparison
            return _report_failed_run(exc, args.json, out_stream)
        except RunFailed as exc:  # one failed strategy does not hide the others
            print(f"mmg-cosim: run of {spec} failed: {exc}", file=sys.stderr)
            results[spec] = {"run_error": str(exc), "path": str(exc.path) if exc.path else None}
    reference = next((run[0] for run in runs if resolve(run[1]).reference and "run_error" not in results[run[0]]), None)
    if reference is not None:
        _gap_to_reference(results, reference)
    if args.json:
        write_json(out_stream, results)
    else:
        _print_compare(results, out_stream)
        if reference is not None:
            print(
                f"gap to ref: total cost less {reference}'s (the reference: full information, network limits kept)",
                file=out_stream,
            )
    return 1 if any("run_error" in k for k in results.values()) else 0


def _gap_to_reference(results: dict[str, dict[str, Any]], reference: str) -> None:
    """Each run's ``gap_to_reference``: its total cost less the reference run's (``reference_strategy``
    names it); read it next to the runs' violations, since the reference keeps the network's limits."""
    ref_cost = results[reference].get("total_cost")
    if not isinstance(ref_cost, (int, float)):
        return
    for k in results.values():
        if "run_error" in k or not _is_number(k.get("total_cost")):
            continue
        k["gap_to_reference"] = float(k["total_cost"]) - float(ref_cost)
        k["reference_strategy"] = reference


def _print_compare(results: dict[str, dict[str, Any]], out: TextIO) -> None:
    parties = sorted({p for k in results.values() for p in k.get("cost_by_mg", {})})
    own = sorted({key for k in results.values() for key in k.get("strategy_kpis", []) if _is_number(k.get(key))})
    cols = [*COMPARE_COLUMNS, *((key, key) for key in own), *((f"cost:{p}", f"cost {p}") for p in parties)]
    cells: dict[str, list[str]] = {}
    for spec, k in results.items():
        row = []
        for key, _ in cols:
            v = k.get("cost_by_mg", {}).get(key[5:]) if key.startswith("cost:") else k.get(key)
            row.append(_fmt(v) if v is not None else "-")
        cells[spec] = row
    widths = [max(len(head), *(len(r[i]) for r in cells.values())) + 2 for i, (_, head) in enumerate(cols)]
    first = max(12, *(len(s) for s in results)) + 1
    print(
        f"{'strategy':<{first}}" + "".join(f"{head:>{w}}" for (_, head), w in zip(cols, widths, strict=True)), file=out
    )
    for spec, k in results.items():
        if "run_error" in k:
            print(f"{spec:<{first}}  run failed: {k['run_error']}", file=out)
            continue
        print(f"{spec:<{first}}" + "".join(f"{c:>{w}}" for c, w in zip(cells[spec], widths, strict=True)), file=out)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:,.3f}"
    return str(v)


def _print_kpis(k: dict[str, Any], out: TextIO) -> None:
    keys = [
        "scenario",
        "strategy",
        "n_steps",
        "total_cost",
        "stored_energy_value",
        "stored_energy_change_mwh",
        "stored_energy_price_per_mwh",
        "energy_bought_mwh",
        "energy_sold_mwh",
        "unserved_mwh",
        "shed_mwh",
        "pcc_excess_steps",
        "pcc_excess_max_mw",
        "pcc_excess_mwh",
        "losses_mwh",
        "n_voltage_violations",
        "min_vm_pu",
        "max_vm_pu",
        "n_line_overloads",
        "max_loading_percent",
        "pf_failures",
        "grid_forming_deviation_mwh",
        "grid_forming_deviation_max_mw",
        "wall_time_s",
    ]
    for key in keys:
        if key in k:
            print(f"  {key:<27} {_fmt(k[key])}", file=out)
    over = {n: p for n, p in k.get("parties", {}).items() if p.get("pcc_excess_steps")}
    for name, p in over.items():  # each MG whose measured PCC flow exceeded its limit
        print(
            f"    {name:<25} PCC limit exceeded in {p['pcc_excess_steps']} steps, by up to "
            f"{_fmt(p['pcc_excess_max_mw'])} MW, {_fmt(p['pcc_excess_mwh'])} MWh over",
            file=out,
        )
    print("  cost_by_mg:", file=out)
    for name, c in k.get("cost_by_mg", {}).items():
        print(f"    {name:<25} {_fmt(c)}", file=out)
    for key in ("solve_time_s", "soc_drift_mwh_max", "exchange_deviation_mwh", "ems_fallback_steps"):
        if key in k:
            print(f"  {key:<27} {_fmt(k[key])}", file=out)
    for key in k.get("strategy_kpis", []):  # what the strategy's own KPI hook added
        v = k.get(key)
        if isinstance(v, dict):
            tables = {n: x for n, x in v.items() if _is_table(x)}
            print(f"  {key}: " + ", ".join(f"{n} {_fmt(x)}" for n, x in v.items() if n not in tables), file=out)
            for n, rows in tables.items():
                print(f"    {n}:", file=out)
                for row in rows:
                    print("      " + ", ".join(f"{c} {_fmt(x)}" for c, x in row.items()), file=out)
        elif v is not None:
            print(f"  {key:<27} {_fmt(v)}", file=out)


def _is_table(value: Any) -> bool:
    """A list of flat dicts (rows), as a strategy's KPI hook may give (printed one row per line)."""
    return isinstance(value, list) and bool(value) and all(isinstance(row, dict) for row in value)


def _read_run[T](path: Path, reader: Callable[[Path], T]) -> T | int:
    """``reader(path)``, or exit code 2 with a message if the file is missing or not a run (the check
    is :func:`scenarios.audit.read_run_attrs`, the same for ``report`` and ``audit``)."""
    from scenarios.audit import NotARunFile, read_run_attrs

    if not path.is_file():
        raise BadInput(f"no such run file: {path}")
    try:
        read_run_attrs(path)
        return reader(path)
    except NotARunFile as exc:
        raise BadInput(str(exc)) from None
    except (OSError, KeyError, ValueError) as exc:
        raise BadInput(f"{path} is not a readable mmg-cosim run: {type(exc).__name__}: {exc}") from None


def _run_status(attrs: dict[str, Any]) -> dict[str, Any]:
    """Whether a run file holds a complete run: steps completed and planned, and why it failed if it did."""
    done = attrs.get("n_steps_completed")
    planned = attrs.get("n_steps")
    error = attrs.get("run_error")
    done = None if done is None else int(done)
    planned = None if planned is None else int(planned)
    error = None if error is None else str(error)
    partial = done is not None and planned is not None and done < planned
    return {
        "n_steps_completed": done,
        "n_steps_planned": planned,
        "complete": error is None and not partial,
        "run_error": error,
    }


def cmd_report(args: argparse.Namespace, out: TextIO) -> int:
    from scenarios.audit import read_run_attrs
    from scenarios.kpis import compute_kpis

    path = Path(args.run)
    attrs = _read_run(path, read_run_attrs)
    if isinstance(attrs, int):
        return attrs
    plots_dir = Path(args.plots) if args.plots else None
    if plots_dir is not None:
        problem = folder_problem(plots_dir)
        if problem:
            raise BadInput(f"--plots {plots_dir}: {problem}")
    kpis = _read_run(path, compute_kpis)
    if isinstance(kpis, int):
        return kpis
    status = _run_status(attrs)
    plots = []
    if plots_dir is not None:
        from scenarios.plots import plot_run

        plots = [str(p) for p in plot_run(path, plots_dir)]
    if args.json:
        write_json(out, kpis | status | ({"plots": plots} if plots_dir is not None else {}))
        return 0
    # How the run ended comes first: KPIs of a partial or failed run must not pass for a whole run's.
    if status["run_error"] is not None:
        print(f"RUN FAILED: {status['run_error']}", file=out)
    done, planned = status["n_steps_completed"], status["n_steps_planned"]
    if done is not None and planned is not None and done < planned:
        print(f"PARTIAL RUN: {done} of {planned} steps completed (the KPIs cover those steps only)", file=out)
    _print_kpis(kpis, out)
    for p in plots:
        print(f"  plot: {p}", file=out)
    return 0


def cmd_audit(args: argparse.Namespace, out: TextIO) -> int:
    from scenarios.audit import audit_run

    path = Path(args.run)
    rep = _read_run(path, audit_run)
    if isinstance(rep, int):
        return rep
    if args.json:
        write_json(
            out,
            {
                "received": rep.received,
                "findings": rep.findings,
                "n_messages": rep.n_messages,
                "n_ciphertext": rep.n_ciphertext,
                "protocol": rep.protocol.data if rep.protocol is not None else None,
            },
        )
        return 0
    print(f"{rep.n_messages} messages crossed an ownership boundary, {rep.n_ciphertext} as ciphertext only", file=out)
    print("plaintext received (receiver <- sender: kinds):", file=out)
    for receiver, senders in sorted(rep.received.items()):
        for sender, kinds in sorted(senders.items()):
            print(f"  {receiver} <- {sender}: {', '.join(sorted(kinds))}", file=out)
    if not rep.received:
        print("  (none)", file=out)
    print(
        "findings:" if rep.findings else "findings: none (no owner's data and no internal data in plaintext)", file=out
    )
    for f in rep.findings:
        print(f"  {f}", file=out)
    if rep.protocol is not None:
        print("what coalitions of parties could learn from the protocol:", file=out)
        print("\n".join(f"  {line}" for line in rep.protocol.text.splitlines()), file=out)
    return 0


def _sweep_plan(args: argparse.Namespace) -> list[Any]:
    """The sweep's runs, each combination's config checked (ConfigError/ValueError
    naming the bad field) before anything runs; the net is built once per ``--vary`` combination."""
    from scenarios.build import build_net
    from scenarios.strategy_fit import check_fit, resolve
    from scenarios.sweep import parse_vary, plan_runs

    entry = get_scenario(args.scenario)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    errors = [float(e) for e in args.error_std.split(",") if e.strip()] if args.error_std else [None]
    if not strategies or not seeds:
        raise ValueError("--strategies and --seeds need at least one value each")
    runs = plan_runs(strategies, seeds, errors, parse_vary(args.vary or []), args.set or [])
    days = [f"scenario.days={args.days}"] if args.days is not None else []
    layouts: dict[tuple[str, ...], Any] = {}
    for run in runs:
        cfg, data_dir = load_config(args.config or entry.default_config, [*run.settings(), *days], [run.strategy])
        if run.overrides not in layouts:
            layouts[run.overrides] = build_net(cfg, data_dir)
        check_fit(cfg, layouts[run.overrides], resolve(run.strategy))
    return runs


def cmd_sweep(args: argparse.Namespace, out: TextIO) -> int:
    from scenarios.paths import folder_problem
    from scenarios.sweep import outcome_dict, run_sweep, sweep_task
    from scenarios.sweep_plots import plot_spread

    try:
        runs = _sweep_plan(args)
    except (ConfigError, ValueError) as exc:
        raise BadInput(str(exc)) from None
    out_dir = Path(args.out_dir).resolve()  # workers (possibly on other hosts) get absolute paths
    task = sweep_task(args.scenario, args.config, out_dir, args.days)
    print(f"sweep of {len(runs)} runs -> {out_dir}", file=sys.stderr)

    def progress(o: Any) -> None:
        print(f"  {o.run.run_id}: {o.status} ({o.wall_s:.1f} s){' ' + o.error if o.error else ''}", file=sys.stderr)

    problem = folder_problem(out_dir)
    if problem:
        raise BadInput(f"--out-dir {args.out_dir}: {problem}")
    outcomes = run_sweep(runs, task, out_dir, workers=args.workers, scheduler=args.scheduler, on_done=progress)
    plot = plot_spread(outcomes, out_dir / "spread.png")
    failed = [o for o in outcomes if o.status not in ("ok", "resumed")]
    if args.json:
        write_json(
            out,
            {
                "summary": str(out_dir / "summary.csv"),
                "plot": str(plot) if plot else None,
                "runs": [outcome_dict(o) for o in outcomes],
            },
        )
    else:
        for o in outcomes:
            cost = o.kpis.get("total_cost")
            print(f"{o.run.run_id:<40} {o.status:<10} {cost if cost is not None else '-'}", file=out)
        print(f"summary: {out_dir / 'summary.csv'}; {len(failed)} of {len(outcomes)} runs failed", file=out)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmg-cosim", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command")
    ls = sub.add_parser("list", help="list scenarios and strategies")
    ls.add_argument("--json", action="store_true", help="one JSON object: scenarios and strategies")
    ls.set_defaults(func=cmd_list)
    r = sub.add_parser("run", help="run a scenario with one strategy")
    r.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO)
    r.add_argument("--strategy", default=DEFAULT_STRATEGY)
    r.add_argument("--days", type=int, default=None, help="days to simulate (overrides scenario.days)")
    r.add_argument("--out", help="HDF5 file (default results/<scenario>-<strategy>.h5)")
    r.add_argument("--config", help="a TOML config of the scenario's schema (default: the embedded one)")
    r.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override one config field, e.g. --set forecast.error_std=0.1 (repeatable)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--json", action="store_true", help="print the run's KPIs as one JSON object")
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("compare", help="run several strategies on the same scenario, one table")
    c.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO)
    c.add_argument(
        "--strategies",
        required=True,
        help="comma-separated: name, name:key=value (sets ems.key; several options joined "
        "with '+', e.g. local,centralized:rolling=true+horizon='shrinking'), or module:Class",
    )
    c.add_argument("--days", type=int, default=None)
    c.add_argument("--config", help="a TOML config of the scenario's schema")
    c.add_argument("--set", action="append", metavar="KEY=VALUE", help="override for every run")
    c.add_argument("--out-dir", help="where the runs' HDF5 files go (default results/)")
    c.add_argument("--json", action="store_true", help="one JSON object: strategy -> KPIs")
    c.set_defaults(func=cmd_compare)
    sw = sub.add_parser("sweep", help="a grid of runs (strategies x seeds x forecast errors x values) on Dask")
    sw.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO, help="a shipped scenario or a TOML config")
    sw.add_argument("--strategies", required=True, help="comma-separated strategy names (or module:NAME)")
    sw.add_argument("--seeds", default="1", help="comma-separated scenario seeds (default 1)")
    sw.add_argument("--error-std", help="comma-separated forecast error std values (default: the config's)")
    sw.add_argument(
        "--vary", action="append", metavar="KEY=V1,V2", help="an axis of values, e.g. grid.feeder_load_scale=0.8,1.2"
    )
    sw.add_argument("--set", action="append", metavar="KEY=VALUE", help="override for every run")
    sw.add_argument("--days", type=int, default=None)
    sw.add_argument("--config", help="a TOML config of the scenario's schema")
    sw.add_argument("--out-dir", required=True, help="runs/<run id>.h5, summary.csv and spread.png go here")
    sw.add_argument("--workers", type=int, default=2, help="local Dask worker processes (default 2)")
    sw.add_argument("--scheduler", help="address of a running Dask scheduler (default: a local cluster)")
    sw.add_argument("--json", action="store_true", help="one JSON object: the runs and where the summary is")
    sw.set_defaults(func=cmd_sweep)
    au = sub.add_parser("audit", help="who received whose data in plaintext (privacy audit of a run)")
    au.add_argument("run", help="an HDF5 file written by `mmg-cosim run`")
    au.add_argument("--json", action="store_true")
    au.set_defaults(func=cmd_audit)
    rp = sub.add_parser("report", help="KPIs and plots of a run file")
    rp.add_argument("run", help="an HDF5 file written by `mmg-cosim run`")
    rp.add_argument("--json", action="store_true", help="print the KPIs as one JSON object")
    rp.add_argument("--plots", metavar="DIR", help="write PNG plots into DIR")
    rp.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "-v", "--verbose")):
        argv = ["run", *argv]
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["run"])
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    # Whatever the work prints (solvers, libraries, simulator processes) goes to stderr; the result
    # alone reaches stdout.
    with result_stdout() as out:
        try:
            return int(args.func(args, out))
        except BadInput as exc:
            return _bad_input(exc, bool(getattr(args, "json", False)), out)


if __name__ == "__main__":
    sys.exit(main())
