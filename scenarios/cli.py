"""``mmg-cosim``: list, run and report co-simulations of multi-microgrid EMS strategies.

Exit codes: 0 success, 2 bad input (config, data, unknown names, unreadable files), 1 a run that failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

from ems_controllers.registry import STRATEGIES
from scenarios.config import ConfigError, load_config
from scenarios.registry import DEFAULT_SCENARIO, DEFAULT_STRATEGY, SCENARIOS, get_scenario

logger = logging.getLogger("mmg_cosim")
RESULTS_DIR = Path("results")


def _bad_input(msg: str) -> int:
    print(f"mmg-cosim: error: {msg}", file=sys.stderr)
    return 2


def cmd_list(args: argparse.Namespace) -> int:
    print("scenarios:")
    for e in SCENARIOS.values():
        print(f"  {e.name:<14} {e.description}  (config: {e.default_config.name})")
    print("strategies:")
    for s in STRATEGIES.values():
        print(f"  {s.name:<14} {s.description}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from ems_controllers.registry import get_strategy

    try:
        entry = get_scenario(args.scenario)
        get_strategy(args.strategy).check_scenario(entry.name)
        overrides = list(args.set or [])
        if args.days is not None:
            overrides.append(f"scenario.days={args.days}")
        cfg, data_dir = load_config(args.config or entry.default_config, overrides)
        if cfg.scenario.name != entry.name:
            raise ConfigError(f"scenario.name: config is for {cfg.scenario.name!r}, not {entry.name!r}")
        # Checks that need the grid, before any simulator starts.
        entry.load().build_net(cfg)
    except (ConfigError, ValueError) as exc:
        return _bad_input(str(exc))
    out = Path(args.out) if args.out else RESULTS_DIR / f"{entry.name}-{args.strategy}.h5"
    from scenarios.runner import run_scenario

    try:
        result = run_scenario(cfg, data_dir, args.strategy, out, progress=not args.quiet)
    except Exception as exc:  # noqa: BLE001 - reported with the file that keeps the completed steps
        logger.exception("run failed")
        print(f"mmg-cosim: run failed: {type(exc).__name__}: {exc}; completed steps are in {out}",
              file=sys.stderr)
        return 1
    print(f"wrote {result.path} ({cfg.n_steps} steps of {cfg.scenario.step_s} s, "
          f"{result.wall_time_s:.1f} s wall)")
    _print_kpis(result.kpis)
    return 0


def parse_strategy_spec(spec: str) -> tuple[str, list[str]]:
    """``name`` or ``name:key=value,key=value`` -> (name, ["ems.key=value", ...]); a ``module:Class``
    (no '=' after the colon) is a user's EMS simulator."""
    name, sep, rest = spec.partition(":")
    if not sep or "=" not in rest:
        return spec, []
    return name, [f"ems.{kv.strip()}" for kv in rest.split(",") if kv.strip()]


COMPARE_COLUMNS = [
    ("total_cost", "total cost"), ("energy_bought_mwh", "bought MWh"), ("energy_sold_mwh", "sold MWh"),
    ("n_voltage_violations", "V viol"), ("min_vm_pu", "min vm"), ("max_vm_pu", "max vm"),
    ("n_line_overloads", "overloads"), ("losses_mwh", "losses MWh"), ("pf_failures", "pf fail"),
    ("internal_trade_mwh", "internal MWh"),
    ("soc_drift_mwh_max", "SoC drift"), ("exchange_deviation_mwh", "exch dev MWh"),
    ("linearisation_vm_error_max_pu", "lin V err"),
    ("ems_fallback_steps", "fallbacks"), ("solve_time_s", "solve s"), ("wall_time_s", "wall s"),
]


def cmd_compare(args: argparse.Namespace) -> int:
    from ems_controllers.registry import get_strategy
    from scenarios.runner import run_scenario

    try:
        entry = get_scenario(args.scenario)
        specs = [s.strip() for s in args.strategies.split(",") if s.strip()]
        runs = []
        for spec in specs:
            name, opts = parse_strategy_spec(spec.replace("+", ","))
            get_strategy(name).check_scenario(entry.name)
            overrides = [*(args.set or []), *opts]
            if args.days is not None:
                overrides.append(f"scenario.days={args.days}")
            cfg, data_dir = load_config(args.config or entry.default_config, overrides)
            entry.load().build_net(cfg)
            runs.append((spec, name, cfg, data_dir))
    except (ConfigError, ValueError) as exc:
        return _bad_input(str(exc))
    out_dir = Path(args.out_dir) if args.out_dir else RESULTS_DIR
    results: dict[str, dict[str, Any]] = {}
    for spec, name, cfg, data_dir in runs:
        label = spec.replace(":", "_").replace("=", "").replace("+", "_").replace(",", "_")
        out = out_dir / f"{entry.name}-{label}.h5"
        if not args.json:
            print(f"running {spec} -> {out}", file=sys.stderr)
        try:
            results[spec] = run_scenario(cfg, data_dir, name, out, progress=False).kpis
        except Exception as exc:  # noqa: BLE001 - one failed strategy does not hide the others
            logger.exception("run of %s failed", spec)
            results[spec] = {"run_error": f"{type(exc).__name__}: {exc}", "path": str(out)}
    if args.json:
        print(json.dumps(results, indent=2, default=float))
    else:
        _print_compare(results)
    return 1 if any("run_error" in k for k in results.values()) else 0


def _print_compare(results: dict[str, dict[str, Any]]) -> None:
    parties = sorted({p for k in results.values() for p in k.get("cost_by_mg", {})})
    cols = [(key, head) for key, head in COMPARE_COLUMNS] + [(f"cost:{p}", f"cost {p}") for p in parties]
    cells: dict[str, list[str]] = {}
    for spec, k in results.items():
        row = []
        for key, _ in cols:
            v = k.get("cost_by_mg", {}).get(key[5:]) if key.startswith("cost:") else k.get(key)
            row.append(_fmt(v) if v is not None else "-")
        cells[spec] = row
    widths = [max(len(head), *(len(r[i]) for r in cells.values())) + 2 for i, (_, head) in enumerate(cols)]
    first = max(12, *(len(s) for s in results)) + 1
    print(f"{'strategy':<{first}}" + "".join(f"{head:>{w}}" for (_, head), w in zip(cols, widths, strict=True)))
    for spec, k in results.items():
        if "run_error" in k:
            print(f"{spec:<{first}}  run failed: {k['run_error']}")
            continue
        print(f"{spec:<{first}}" + "".join(f"{c:>{w}}" for c, w in zip(cells[spec], widths, strict=True)))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:,.3f}"
    return str(v)


def _print_kpis(k: dict[str, Any]) -> None:
    keys = ["scenario", "strategy", "n_steps", "total_cost", "energy_bought_mwh", "energy_sold_mwh",
            "unserved_mwh", "losses_mwh", "n_voltage_violations", "min_vm_pu", "max_vm_pu",
            "n_line_overloads", "max_loading_percent", "pf_failures", "wall_time_s"]
    for key in keys:
        if key in k:
            print(f"  {key:<22} {_fmt(k[key])}")
    print("  cost_by_mg:")
    for name, c in k.get("cost_by_mg", {}).items():
        print(f"    {name:<20} {_fmt(c)}")
    for key in ("solve_time_s", "soc_drift_mwh_max", "exchange_deviation_mwh", "ems_fallback_steps",
                "linearisation_vm_error_max_pu", "linearisation_loading_error_max_percent"):
        if key in k:
            print(f"  {key:<22} {_fmt(k[key])}")
    for key in ("solve_time_by_step_s", "aggregation_saving_share"):
        if key in k:
            print(f"  {key}: " + ", ".join(f"{n} {_fmt(v)}" for n, v in k[key].items()))


def _read_run(path: Path, reader: Any) -> Any:
    """``reader(path)``, or exit code 2 with a message if the file is missing or not a run."""
    if not path.is_file():
        return _bad_input(f"no such run file: {path}")
    try:
        return reader(path)
    except (OSError, KeyError, ValueError) as exc:
        return _bad_input(f"{path} is not a readable mmg-cosim run: {type(exc).__name__}: {exc}")


def cmd_report(args: argparse.Namespace) -> int:
    import h5py

    from scenarios.kpis import compute_kpis

    path = Path(args.run)
    kpis = _read_run(path, compute_kpis)
    if isinstance(kpis, int):
        return kpis
    with h5py.File(path, "r") as f:
        err = f.attrs.get("run_error")
    if err is not None:
        kpis["run_error"] = err.decode() if isinstance(err, bytes) else str(err)
    if args.json:
        print(json.dumps(kpis, indent=2, default=float))
    else:
        _print_kpis(kpis)
    if args.plots:
        from scenarios.plots import plot_run

        for p in plot_run(path, Path(args.plots)):
            if not args.json:
                print(f"  plot: {p}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from scenarios.audit import audit_run

    path = Path(args.run)
    rep = _read_run(path, audit_run)
    if isinstance(rep, int):
        return rep
    if args.json:
        print(json.dumps({"received": {r: {s: sorted(k) for s, k in d.items()} for r, d in rep.received.items()},
                          "findings": rep.findings, "n_messages": rep.n_messages,
                          "n_ciphertext": rep.n_ciphertext}, indent=2))
        return 0
    print(f"{rep.n_messages} messages crossed an ownership boundary, {rep.n_ciphertext} as ciphertext only")
    print("plaintext received (receiver <- sender: kinds):")
    for receiver, senders in sorted(rep.received.items()):
        for sender, kinds in sorted(senders.items()):
            print(f"  {receiver} <- {sender}: {', '.join(sorted(kinds))}")
    if not rep.received:
        print("  (none)")
    print("findings:" if rep.findings else "findings: none (no owner's data and no internal data in plaintext)")
    for f in rep.findings:
        print(f"  {f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmg-cosim", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("list", help="list scenarios and strategies").set_defaults(func=cmd_list)
    r = sub.add_parser("run", help="run a scenario with one strategy")
    r.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO)
    r.add_argument("--strategy", default=DEFAULT_STRATEGY)
    r.add_argument("--days", type=int, default=None, help="days to simulate (overrides scenario.days)")
    r.add_argument("--out", help="HDF5 file (default results/<scenario>-<strategy>.h5)")
    r.add_argument("--config", help="a TOML config of the scenario's schema (default: the embedded one)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one config field, e.g. --set forecast.error_std=0.1 (repeatable)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("compare", help="run several strategies on the same scenario, one table")
    c.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO)
    c.add_argument("--strategies", required=True,
                   help="comma-separated: name, name:key=value (sets ems.key; several options joined "
                        "with '+', e.g. local,centralized:rolling=true+horizon='shrinking'), or module:Class")
    c.add_argument("--days", type=int, default=None)
    c.add_argument("--config", help="a TOML config of the scenario's schema")
    c.add_argument("--set", action="append", metavar="KEY=VALUE", help="override for every run")
    c.add_argument("--out-dir", help="where the runs' HDF5 files go (default results/)")
    c.add_argument("--json", action="store_true", help="one JSON object: strategy -> KPIs")
    c.set_defaults(func=cmd_compare)
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
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "-v", "--verbose"):
        argv = ["run", *argv]
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["run"])
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
