"""Cost of strategy ``admm`` (spec 001) per planning instant as the number of MGs grows: the co-simulated
exchange ADMM over Paillier ciphertexts against the same ADMM without crypto and without mosaik (a
command, not a test; nothing here asserts on a timing).

Run: ``python tests/bench/bench_admm.py [--mgs 10 50] [--aggregation ring masked] [--processes]
[--processes-only] [--out DIR] [--seed 7] [--set KEY=VALUE ...]``.

The system, generated for each N in ``--mgs`` (the TOML is written to ``--out``, else a temporary folder,
as ``bench_admm_<N>mg.toml``, beside each run's record): N islanded interconnected MGs on pandapower's
Kerber "Dorfnetz" (``create_kerber_dorfnetz``: a 0.4 kV village network, one 400 kVA transformer, 57
house connections), cut at its 0.4 kV busbar (bus 1; the transformer and the 10 kV bus go) with no
external grid (``grid.external_grid = false``). Placement rule: the MGs sit at the net's load buses (its
57 house connections), N of them drawn without replacement by ``numpy.random.default_rng(seed)``, in bus
order (N > 57: every load bus, then the rest drawn again, so some buses carry two MGs); each on a bus of
its own behind a PCC line copied from the house cable (NAYY 4x50, 0.141 kA, about 0.098 MVA; the net's own
line ratings are kept, so ``pcc_max_mw`` = 0.09). Units, drawn with the same generator around
islanded_img's sizes (MW, MWh, $): a load of peak U(0.04, 0.07) following one of H0-A, G0-A, G1-A, G4-A,
L0-A; PV U(0.03, 0.08) with probability 0.8 and wind U(0.01, 0.04) with probability 0.7 (at least one of
them); a diesel U(0.03, 0.06) with a2 U(300, 600), a1 U(130, 160); a battery U(0.05, 0.10) MWh, half full
at start and end, power limits half its energy, efficiencies 0.95, grid-forming (every one). Penalties,
tariff (zero) and forecasts as in islanded_img; ``[ems]`` is islanded_img's own, read from
``scenarios/data/islanded_img.toml`` when the config is generated (its tolerances for kW-sized MGs; the
strategy's defaults for the rest), with ``max_iter = 1000`` as islanded_img_6mg (from rho 10, 50 MGs of
seed 7 need about 610 iterations); ``--set`` overrides it. One day of hourly steps: only step 0 plans
(day-ahead), the other 23 are cheap.

Each N runs once per variant: in-process with each ``--aggregation`` (``ring``: the paper's ring of
ciphertexts, ``masked``: under pairwise zero-sum masks), and with ``--processes`` also with every agent and
the authority in a process of its own (``run.separate_processes=["ems"]``; ``--processes-only`` skips the
in-process runs). Figures per variant, from the record of the planning instant: iterations, convergence,
the ADMM cost against the centralized reference (the run's KPI); wall = the authority's ``admm_wall_s``
(start broadcast to final broadcast), solve = the sum of the MGs' HiGHS times (``solve_time_s``), crypto =
the sum of the MGs' ``crypto_s`` (encryption, masking, homomorphic addition, wire (de)serialisation) and the
authority's (decryption), other = wall - solve - crypto (mosaik's scheduling and messaging, the
authority's update, Pyomo's parameter updates, building the local QPs); the same per iteration; crypto per
iteration and MG; ciphertext bytes sent per iteration; the whole run's wall time; the instant's wall and
its crypto alone against a 10-minute slot (the paper's claim that the crypto delay is acceptable for
slots of 10 min or longer).

Baseline, in this process on the very same MG problems (each MG's ``admm_problem`` recorded at step 0):
``AdmmSolver(settings).solve(mgs, dt_h)`` with the run's ``[ems]`` settings, no crypto, no mosaik (its
wall includes building the local QPs, as the run's does; ``ems_controllers.admm.solver``'s where that
module imports: the agents' own iteration with exact sums; else ``ems_controllers.admm.model``'s), and
``solve_centralized`` (the reference's own compute time). Where the centralized QP in MW fails (HiGHS
1.16's "QP solver claims optimality, but with ... primal infeasibilities" on kW-sized data, seen with
the model's one-shot solve), the same QP is also solved in kW (every power x1000, costs rescaled so the
objective is unchanged) and its cost shown as "reference in kW".
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import os
import sys
import tempfile
import time
import tomllib
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ems_controllers.admm.adapter import mg_from_json
from ems_controllers.admm.model import AdmmMg, AdmmSettings, solve_centralized
from scenarios.config import DATA_DIR, Config, load_config
from scenarios.runner import RunFailed, run_scenario
from scenarios.strategy_fit import resolve, strategy_settings
from sims.record_reader import read_attrs, read_series


def _baseline_solver() -> tuple[Any, str]:
    """``AdmmSolver``: the agents' own iteration with exact sums (``ems_controllers.admm.solver``) where it
    exists, else the model's."""
    for module in ("ems_controllers.admm.solver", "ems_controllers.admm.model"):
        try:
            return importlib.import_module(module).AdmmSolver, f"{module}.AdmmSolver"
        except (ImportError, AttributeError):
            continue
    raise ImportError("no AdmmSolver in ems_controllers.admm.solver or ems_controllers.admm.model")


AdmmSolver, BASELINE = _baseline_solver()
NET = "create_kerber_dorfnetz"
SLACK_BUS = 1  # "main_busbar", the transformer's 0.4 kV side
PROFILES = ("H0-A", "G0-A", "G1-A", "G4-A", "L0-A")
SLOT_S = 600.0  # the paper's 10-minute slot
PCC_MAX_MW = 0.09
MAX_ITER = 1000


# ---------------------------------------------------------------------------------------- the system


def load_buses() -> list[int]:
    """The net's load buses (house connections), as pandapower numbers them."""
    import pandapower.networks as pn

    net = getattr(pn, NET)()
    return sorted(int(b) for b in net.load.bus.unique())


def place(n: int, buses: list[int], rng: np.random.Generator) -> list[int]:
    """N buses of ``buses`` (the placement rule of the module docstring)."""
    if n <= len(buses):
        return sorted(int(b) for b in rng.choice(buses, n, replace=False))
    extra = rng.choice(buses, n - len(buses), replace=True)
    return sorted([*buses, *(int(b) for b in extra)])


def _u(rng: np.random.Generator, lo: float, hi: float, digits: int = 3) -> float:
    return round(float(rng.uniform(lo, hi)), digits)


def mg_toml(name: str, bus: int, rng: np.random.Generator) -> str:
    load = _u(rng, 0.04, 0.07)
    profile = str(rng.choice(PROFILES))
    has_pv, has_wind = bool(rng.random() < 0.8), bool(rng.random() < 0.7)
    if not (has_pv or has_wind):
        has_pv = True
    pv, wind = _u(rng, 0.03, 0.08), _u(rng, 0.01, 0.04)
    d_max, a2, a1 = _u(rng, 0.03, 0.06), round(float(rng.uniform(300, 600))), round(float(rng.uniform(130, 160)))
    e = _u(rng, 0.05, 0.10)
    half, p = round(e / 2, 4), round(e / 2, 4)
    lines = [
        "[[mgs]]",
        f'name = "{name}"',
        f"bus = {bus}",
        f"pcc_max_mw = {PCC_MAX_MW}",
        f'load = {{ p_peak_mw = {load}, profile = "{profile}" }}',
    ]
    if has_pv:
        lines.append(f"pv = {{ p_peak_mw = {pv} }}")
    if has_wind:
        lines.append(f"wind = {{ p_rated_mw = {wind} }}")
    lines.append(f"diesel = {{ p_max_mw = {d_max}, a2_per_mw2h = {a2}.0, a1_per_mwh = {a1}.0 }}")
    lines.append(
        f"battery = {{ e_max_mwh = {e}, e_init_mwh = {half}, e_final_mwh = {half}, p_ch_max_mw = {p}, "
        f"p_dis_max_mw = {p}, eta_ch = 0.95, eta_dis = 0.95, grid_forming = true }}"
    )
    return "\n".join(lines)


def img_ems() -> str:
    """islanded_img's ``[ems]`` table as TOML lines."""
    ems = tomllib.loads((DATA_DIR / "islanded_img.toml").read_text()).get("ems", {})

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (int, float)):
            return repr(v)
        raise TypeError(f"islanded_img.toml [ems]: cannot copy {v!r}")

    return "\n".join(f"{k} = {value(v)}" for k, v in ems.items())


def config_toml(n: int, seed: int) -> str:
    """The islanded system of N MGs (module docstring) as a scenario config."""
    rng = np.random.default_rng(seed)
    buses = place(n, load_buses(), rng)
    zeros = ", ".join(["0"] * 24)
    head = f"""# Generated by tests/bench/bench_admm.py (seed {seed}): {n} islanded MGs on pandapower's Kerber Dorfnetz,
# cut at its 0.4 kV busbar, no external grid; MGs at load buses drawn with the seed (see the bench's docstring).

[scenario]
name = "bench_admm_{n}mg"
start = "2019-06-12 00:00:00"
step_s = 3600
days = 1
seed = 11
load_profiles_file = "{(DATA_DIR / "load_profiles.csv").as_posix()}"

[grid]
net = "{NET}"
fuse_closed_bus_switches = true
slack_bus = {SLACK_BUS}
external_grid = false
pcc_line = {{ like = "adjacent" }}
vm_min_pu = 0.95
vm_max_pu = 1.05

[tariff]  # islanded: no utility, all zero
buy_price_per_mwh  = [{zeros}]
sell_price_per_mwh = [{zeros}]

[forecast]
error_std = 0.0
every_s = 86400
horizon_steps = 24

[ems]  # islanded_img's, and max_iter as islanded_img_6mg
{img_ems()}
max_iter = {MAX_ITER}

[penalties]
res_curtailment_price_per_mwh = 5.0
load_shed_price_per_mwh = 2000.0
stored_energy_price_per_mwh = 150.0
"""
    mgs = [mg_toml(f"MG{i + 1}", bus, rng) for i, bus in enumerate(buses)]
    return head + "\n" + "\n\n".join(mgs) + "\n"


# ------------------------------------------------------------------------------------------ the runs


@dataclass
class Variant:
    name: str
    aggregation: str
    processes: bool

    def overrides(self) -> list[str]:
        out = [f'ems.aggregation="{self.aggregation}"']
        if self.processes:
            out.append('run.separate_processes=["ems"]')
        return out


@dataclass
class Figures:
    """One run's planning instant (step 0), from its record."""

    variant: str
    n: int
    iterations: int
    converged: bool
    final_gap_mw: float
    cost: float
    central_cost: float
    gap_pct: float
    wall_s: float
    solve_s: float
    crypto_mg_s: float
    crypto_au_s: float
    sent_bytes: float
    run_wall_s: float
    run_total_s: float
    problems: list[str]
    load_avg: float = math.nan  # the machine's 1-minute load average when the run ended
    statuses: tuple[str, ...] = ()  # the MGs' distinct ems_status at the planning instant

    @property
    def crypto_s(self) -> float:
        return self.crypto_mg_s + self.crypto_au_s

    @property
    def other_s(self) -> float:
        return self.wall_s - self.solve_s - self.crypto_s


def figures(variant: str, n: int, path: Path, kpis: dict[str, Any], run_wall: float, run_total: float) -> Figures:
    s = read_series(path)
    emap = read_attrs(path)["entity_map"]
    au = str(emap["system"])
    ems = [str(p["ems"]) for p in emap["parties"].values()]
    k = 0  # day-ahead: the one planning instant
    its = int(s[(au, "admm_iterations")][k])
    mg_its = {int(s[(e, "admm_iterations")][k]) for e in ems}
    if mg_its != {its}:
        print(f"  note: {variant}: MG iteration counts {sorted(mg_its)} differ from the authority's {its}")
    admm = kpis["admm"]
    return Figures(
        variant=variant,
        n=n,
        iterations=its,
        converged=bool(s[(au, "admm_converged")][k] == 1.0),
        final_gap_mw=float(s[(au, "admm_final_gap_mw")][k]),
        cost=float(admm["cost"]),
        central_cost=float(admm["central_cost"]),
        gap_pct=float(admm["gap_to_central_pct"]),
        wall_s=float(s[(au, "admm_wall_s")][k]),
        solve_s=float(sum(s[(e, "solve_time_s")][k] for e in ems)),
        crypto_mg_s=float(sum(s[(e, "crypto_s")][k] for e in ems)),
        crypto_au_s=float(s[(au, "crypto_s")][k]),
        sent_bytes=float(sum(s[(e, "sent_ciphertext_bytes")][k] for e in ems)),
        run_wall_s=run_wall,
        run_total_s=run_total,
        problems=[str(s[(e, "admm_problem")][k]) for e in ems],
        statuses=tuple(sorted({str(s[(e, "ems_status")][k]) for e in ems})),
    )


def run_variant(cfg_path: Path, v: Variant, extra: list[str], out_dir: Path, n: int) -> Figures | str:
    """One co-simulation run; its figures, or the error text of a run that failed."""
    cfg, data_dir = load_config(cfg_path, [*v.overrides(), *extra], ["admm"])
    out = out_dir / f"bench_admm_{n}mg_{v.name}.h5"
    print(f"  running N={n} {v.name} ...", flush=True)
    t0 = time.perf_counter()
    try:
        res = run_scenario(cfg, data_dir, "admm", out, progress=False)
    except RunFailed as exc:
        took = time.perf_counter() - t0
        return f"{type(exc).__name__} after {took:.1f} s: {exc}"
    except Exception as exc:  # noqa: BLE001 - a bench reports whatever stopped the run, and goes on
        took = time.perf_counter() - t0
        return f"{type(exc).__name__} after {took:.1f} s: {exc}\n{traceback.format_exc()}"
    total = time.perf_counter() - t0
    f = figures(v.name, n, res.path, res.kpis, res.wall_time_s, total)
    f.load_avg = os.getloadavg()[0]
    print(f"  ... {f.iterations} iterations, instant {f.wall_s:.1f} s, run {total:.1f} s", flush=True)
    return f


# ------------------------------------------------------------------------------------- the baseline


def in_kw(mg: AdmmMg, k: float = 1000.0) -> AdmmMg:
    """The same MG with powers in kW and energies in kWh; costs rescaled so every cost term is unchanged."""
    d = mg.diesel
    if d is not None:
        d = replace(
            d,
            p_max_mw=d.p_max_mw * k,
            p_min_mw=d.p_min_mw * k,
            a2_per_mw2h=d.a2_per_mw2h / k**2,
            a1_per_mwh=d.a1_per_mwh / k,
            ramp_up_mw_per_h=d.ramp_up_mw_per_h * k,
            ramp_down_mw_per_h=d.ramp_down_mw_per_h * k,
        )
    b = mg.battery
    if b is not None:
        b = replace(
            b,
            e_max_mwh=b.e_max_mwh * k,
            e_init_mwh=b.e_init_mwh * k,
            e_min_mwh=b.e_min_mwh * k,
            e_final_mwh=None if b.e_final_mwh is None else b.e_final_mwh * k,
            p_ch_max_mw=b.p_ch_max_mw * k,
            p_dis_max_mw=b.p_dis_max_mw * k,
            wear_a2_per_mw2h=b.wear_a2_per_mw2h / k**2,
            wear_a1_per_mwh=b.wear_a1_per_mwh / k,
        )
    return replace(
        mg,
        load_mw=tuple(v * k for v in mg.load_mw),
        pv_mw=tuple(v * k for v in mg.pv_mw),
        wind_mw=tuple(v * k for v in mg.wind_mw),
        diesel=d,
        battery=b,
        battery_cost_per_mw2h=mg.battery_cost_per_mw2h / k**2,
        battery_cost_per_mwh=mg.battery_cost_per_mwh / k,
        curtailment_price_per_mwh=mg.curtailment_price_per_mwh / k,
        load_shed_price_per_mwh=mg.load_shed_price_per_mwh / k,
        exch_max_mw=mg.exch_max_mw * k,
        e_init_mwh=None if mg.e_init_mwh is None else mg.e_init_mwh * k,
    )


@dataclass
class Baseline:
    iterations: int
    converged: bool
    message: str
    cost: float
    wall_s: float
    highs_s: float
    central_status: str
    central_cost: float
    central_s: float
    kw_status: str
    kw_cost: float
    kw_s: float
    load_avg: float


def admm_settings(cfg: Config) -> AdmmSettings:
    st = strategy_settings(cfg, resolve("admm"))
    return AdmmSettings(
        rho=st.rho,  # type: ignore[attr-defined]
        tol_primal_mw=st.tol_primal_mw,  # type: ignore[attr-defined]
        tol_dual=st.tol_dual,  # type: ignore[attr-defined]
        max_iter=st.max_iter,  # type: ignore[attr-defined]
        stop=st.stop,  # type: ignore[attr-defined]
        residual_balancing=st.residual_balancing,  # type: ignore[attr-defined]
        tol_rel=st.tol_rel,  # type: ignore[attr-defined]
        balancing=st.balancing,  # type: ignore[attr-defined]
        balance_every_iters=st.balance_every_iters,  # type: ignore[attr-defined]
        relaxation=st.relaxation,  # type: ignore[attr-defined]
    )


def baseline(problems: list[str], cfg: Config) -> Baseline:
    mgs = [mg_from_json(p) for p in problems]
    dt_h = cfg.dt_h
    load = os.getloadavg()[0]
    # the reference first: after a long ADMM in the same process it was seen once to end "feasible" at HiGHS's
    # 30 s time limit where it solves to optimality in 2-4 s first
    t0 = time.perf_counter()
    ref = solve_centralized(mgs, dt_h)
    central_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = AdmmSolver(admm_settings(cfg)).solve(mgs, dt_h)
    wall = time.perf_counter() - t0
    kw_status, kw_cost, kw_s = "-", math.nan, math.nan
    if ref.total_cost is None:
        t0 = time.perf_counter()
        kw = solve_centralized([in_kw(m) for m in mgs], dt_h)
        kw_s = time.perf_counter() - t0
        kw_status, kw_cost = kw.status.value, kw.total_cost if kw.total_cost is not None else math.nan
    return Baseline(
        iterations=res.iterations,
        converged=res.converged,
        message=res.message,
        cost=res.total_cost,
        wall_s=wall,
        highs_s=res.highs_s,
        central_status=ref.status.value,
        central_cost=ref.total_cost if ref.total_cost is not None else math.nan,
        central_s=central_s,
        kw_status=kw_status,
        kw_cost=kw_cost,
        kw_s=kw_s,
        load_avg=load,
    )


# ------------------------------------------------------------------------------------------- printing


def fmt_t(s: float) -> str:
    if not math.isfinite(s):
        return "n/a"
    if abs(s) >= 1.0:
        return f"{s:.2f} s"
    return f"{s * 1e3:.1f} ms"


def fmt_b(b: float) -> str:
    if not math.isfinite(b):
        return "n/a"
    return f"{b / 1024:.1f} KiB" if b >= 1024 else f"{b:.0f} B"


def print_table(n: int, rows: list[Figures], base: Baseline) -> None:
    ref = base.central_cost if math.isfinite(base.central_cost) else base.kw_cost
    label_w, col_w = 50, 16
    print(f"\n== N = {n} MGs: the planning instant (step 0, 24 hourly steps), co-simulated")
    print(f"{'':<{label_w}}" + "".join(f"{r.variant:>{col_w}}" for r in rows))

    def line(label: str, values: list[str]) -> None:
        print(f"{label:<{label_w}}" + "".join(f"{v:>{col_w}}" for v in values))

    def per(x: float, r: Figures, by_mg: bool = False) -> float:
        d = r.iterations * (r.n if by_mg else 1)
        return x / d if d else math.nan

    def gap_to(r: Figures, c: float) -> str:
        return f"{100 * (r.cost - c) / abs(c):.3f} %" if math.isfinite(c) and c else "n/a"

    line("iterations", [str(r.iterations) for r in rows])
    line("converged", ["yes" if r.converged else "NO" for r in rows])
    line("final gap max_t |sum_n P_exch| (MW)", [f"{r.final_gap_mw:.2e}" for r in rows])
    line("ADMM cost ($)", [f"{r.cost:.4f}" for r in rows])
    line("centralized cost, run KPI ($)", [f"{r.central_cost:.4f}" for r in rows])
    line("gap to centralized, run KPI", [f"{r.gap_pct:.3f} %" if math.isfinite(r.gap_pct) else "n/a" for r in rows])
    if not math.isfinite(base.central_cost):
        line("gap to the reference in kW", [gap_to(r, base.kw_cost) for r in rows])
    line("per instant: wall (AU admm_wall_s)", [fmt_t(r.wall_s) for r in rows])
    line("  solve (sum of the MGs' HiGHS time)", [fmt_t(r.solve_s) for r in rows])
    line("  crypto (MGs + AU)", [fmt_t(r.crypto_s) for r in rows])
    line("    of which MGs (encrypt, mask, add, wire)", [fmt_t(r.crypto_mg_s) for r in rows])
    line("    of which AU (decrypt)", [fmt_t(r.crypto_au_s) for r in rows])
    line("  messaging/other (wall - solve - crypto)", [fmt_t(r.other_s) for r in rows])
    line("    of which outside HiGHS in plain ADMM", [fmt_t(base.wall_s - base.highs_s) for _ in rows])
    line("shares solve / crypto / other", [share(r) for r in rows])
    line("per iteration: wall", [fmt_t(per(r.wall_s, r)) for r in rows])
    line("  solve", [fmt_t(per(r.solve_s, r)) for r in rows])
    line("  crypto", [fmt_t(per(r.crypto_s, r)) for r in rows])
    line("  messaging/other", [fmt_t(per(r.other_s, r)) for r in rows])
    line("crypto per iteration per MG (MG side)", [fmt_t(per(r.crypto_mg_s, r, True)) for r in rows])
    line("ciphertext bytes sent per iteration (all MGs)", [fmt_b(per(r.sent_bytes, r)) for r in rows])
    line("  per MG", [fmt_b(per(r.sent_bytes, r, True)) for r in rows])
    line("whole run wall (runner, 24 steps)", [fmt_t(r.run_wall_s) for r in rows])
    line("  with KPIs and writing the record", [fmt_t(r.run_total_s) for r in rows])
    line("instant wall / 600 s slot", [f"{r.wall_s / SLOT_S:.3f}" for r in rows])
    line("crypto alone / 600 s slot", [f"{r.crypto_s / SLOT_S:.3f}" for r in rows])
    line("machine load average (1 min) at the run's end", [f"{r.load_avg:.2f}" for r in rows])
    line("instant wall / plain ADMM wall", [f"{r.wall_s / base.wall_s:.1f}x" for r in rows])
    line("crypto per instant / plain ADMM wall", [f"{r.crypto_s / base.wall_s:.2f}x" for r in rows])
    for r in rows:
        if r.statuses != ("ok",):
            print(f"{r.variant}: the MGs' ems_status at the planning instant: {' | '.join(r.statuses)}")
    print(f"\n-- N = {n}: baseline in this process on the same {n} MG problems (no crypto, no mosaik)")
    print(f"({BASELINE})")
    print(f"{'plain AdmmSolver.solve: iterations':<{label_w}}{base.iterations:>{col_w}}")
    print(f"{'  converged':<{label_w}}{'yes' if base.converged else 'NO':>{col_w}}")
    if base.message:
        print(f"  stopped: {base.message}")
    print(f"{'  cost ($)':<{label_w}}{base.cost:>{col_w}.4f}")
    gap = f"{100 * (base.cost - ref) / abs(ref):.3f} %" if math.isfinite(ref) and ref else "n/a"
    print(f"{'  gap to centralized':<{label_w}}{gap:>{col_w}}")
    print(f"{'  wall (incl. building the local QPs)':<{label_w}}{fmt_t(base.wall_s):>{col_w}}")
    print(f"{'  HiGHS time':<{label_w}}{fmt_t(base.highs_s):>{col_w}}")
    print(f"{'  wall per iteration':<{label_w}}{fmt_t(base.wall_s / max(base.iterations, 1)):>{col_w}}")
    print(f"{'  machine load average (1 min) before':<{label_w}}{base.load_avg:>{col_w}.2f}")
    print(f"{'solve_centralized: status':<{label_w}}{base.central_status:>{col_w}}")
    print(f"{'  cost ($)':<{label_w}}{base.central_cost:>{col_w}.4f}")
    print(f"{'  time':<{label_w}}{fmt_t(base.central_s):>{col_w}}")
    if not math.isfinite(base.central_cost):
        print(f"{'same QP in kW: status':<{label_w}}{base.kw_status:>{col_w}}")
        print(f"{'  cost ($)':<{label_w}}{base.kw_cost:>{col_w}.4f}")
        print(f"{'  time':<{label_w}}{fmt_t(base.kw_s):>{col_w}}")


def share(r: Figures) -> str:
    if r.wall_s <= 0:
        return "n/a"
    return "/".join(f"{100 * x / r.wall_s:.0f}" for x in (r.solve_s, r.crypto_s, r.other_s)) + " %"


def code_hash() -> str:
    """A short hash of the strategy's code (ems_controllers/admm/*.py), to tell which version was measured."""
    h = hashlib.sha256()
    for f in sorted((Path(__file__).resolve().parents[2] / "ems_controllers" / "admm").glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mgs", type=int, nargs="+", default=[10, 50], help="numbers of MGs")
    ap.add_argument("--aggregation", nargs="+", choices=["ring", "masked"], default=["ring", "masked"])
    ap.add_argument("--processes", action="store_true", help="also every agent and the AU in a process of its own")
    ap.add_argument("--processes-only", action="store_true", help="only the runs in processes of their own")
    ap.add_argument("--out", type=Path, default=None, help="folder for the configs and records (default: temporary)")
    ap.add_argument("--seed", type=int, default=7, help="placement and unit sizes")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every run")
    args = ap.parse_args()
    if any(n < 2 for n in args.mgs):
        ap.error("--mgs: ADMM needs at least two MGs")

    variants = []
    if not args.processes_only:
        variants += [Variant(f"{a} in-proc", a, False) for a in args.aggregation]
    if args.processes or args.processes_only:
        variants += [Variant(f"{a} procs", a, True) for a in args.aggregation]

    tmp = None
    if args.out is None:
        tmp = tempfile.TemporaryDirectory()
        out_dir = Path(tmp.name)
    else:
        out_dir = args.out
        out_dir.mkdir(parents=True, exist_ok=True)
    try:
        import gmpy2  # noqa: F401

        backend = "gmpy2"
    except ImportError:
        backend = "pure Python"
    print(
        f"strategy admm on {NET} (islanded, slack bus {SLACK_BUS}), seed {args.seed}; phe backend {backend}; "
        f"variants: {', '.join(v.name for v in variants)}; overrides: {' '.join(args.set) or 'none'}; "
        f"records in {out_dir}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"ems_controllers/admm sha256 {code_hash()}"
    )
    try:
        for n in args.mgs:
            cfg_path = out_dir / f"bench_admm_{n}mg.toml"
            cfg_path.write_text(config_toml(n, args.seed))
            cfg, _ = load_config(cfg_path, args.set, ["admm"])
            st = admm_settings(cfg)
            print(
                f"\nN = {n}: {cfg_path} ({len(cfg.mgs)} MGs at buses "
                f"{sorted({int(m.bus or 0) for m in cfg.mgs})}); ADMM rho {st.rho}, tol_primal_mw "
                f"{st.tol_primal_mw}, tol_dual {st.tol_dual}, max_iter {st.max_iter}, stop {st.stop}, "
                f"residual_balancing {st.residual_balancing}",
                flush=True,
            )
            rows: list[Figures] = []
            failures: list[tuple[str, str]] = []
            for v in variants:
                got = run_variant(cfg_path, v, args.set, out_dir, n)
                if isinstance(got, str):
                    print(f"  {v.name} FAILED: {got}", flush=True)
                    failures.append((v.name, got))
                else:
                    rows.append(got)
            if not rows:
                print(f"\n== N = {n}: every run failed")
                continue
            problems = rows[0].problems
            for r in rows[1:]:
                if r.problems != problems:
                    print(f"  note: {r.variant}'s recorded MG problems differ from {rows[0].variant}'s")
            base = baseline(problems, cfg)
            print_table(n, rows, base)
            for name, err in failures:
                print(f"{name}: FAILED: {err}")
            print(f"(ems_controllers/admm sha256 {code_hash()} at the end of N = {n})")
            sys.stdout.flush()
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
