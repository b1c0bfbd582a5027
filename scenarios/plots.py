"""PNG plots of a run: dispatch per party, SoC (measured and planned), grid exchange, voltage envelope,
line loading."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from scenarios.config import Config
from sims.recorder import read_attrs, read_plans, read_series


def _hours(n: int, step_s: int) -> np.ndarray:
    return np.arange(n) * step_s / 3600.0


def plot_run(path: Path, out_dir: Path) -> list[Path]:
    attrs = read_attrs(path)
    cfg = Config.model_validate(attrs["config"])
    emap = attrs["entity_map"]
    s = read_series(path)
    plans = read_plans(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = emap["grid"]
    n = len(s[(grid, "pf_converged")])
    t = _hours(n, cfg.scenario.step_s)
    written: list[Path] = []
    title = f"{attrs.get('scenario')} / {attrs.get('strategy')}"

    def zero() -> np.ndarray:
        return np.zeros(n)

    def total(fids: list[str], attr: str) -> np.ndarray:
        return sum((np.nan_to_num(s[(f, attr)]) for f in fids if (f, attr) in s), zero())

    parties = emap["parties"]
    fig, axes = plt.subplots(len(parties), 1, figsize=(10, 2.6 * len(parties)), sharex=True, squeeze=False)
    for ax, (name, pm) in zip(axes[:, 0], parties.items(), strict=True):
        served = total(pm["load"], "p_mw")
        ax.plot(t, served, "k-", label="load served")
        shed = total(pm["load"], "shed_mw")
        if np.any(shed > 1e-9):  # what the EMS shed: demand above what was served
            ax.plot(t, served + shed, "k:", label="load demand (shed above served)")
        ax.plot(t, total(pm["pv"], "p_mw"), color="orange", label="PV")
        ax.plot(t, total(pm["wind"], "p_mw"), color="tab:cyan", label="wind")
        if pm.get("diesel"):
            ax.plot(t, total([pm["diesel"]], "p_mw"), color="tab:red", label="diesel")
        if pm.get("storage"):
            ax.plot(t, -total([pm["storage"]], "p_mw"), color="tab:green", label="battery (+ discharge)")
        if pm.get("pcc_line"):
            ax.plot(t, -total([pm["pcc_line"]], "p_to_mw"), "b--", label="import at PCC")
        ax.set_ylabel(f"{name}\nMW")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=6, loc="upper left")
    axes[0, 0].set_title(f"Dispatch ({title})")
    axes[-1, 0].set_xlabel("hour")
    written.append(_save(fig, out_dir / "dispatch.png"))

    fig, ax = plt.subplots(figsize=(10, 4))
    for name, pm in parties.items():
        if not pm.get("storage"):
            continue
        (line,) = ax.plot(t, s[(pm["storage"], "soc_mwh")], label=f"{name} measured")
        plan = plans.get((pm["ems"], "plan_soc_mwh"))
        if plan is not None:
            planned_at = [int(k) for k in np.flatnonzero(np.isfinite(plan).any(axis=1))]
            for k in planned_at:
                row = plan[k]
                m = min(len(row), n - k)
                ax.plot(
                    t[k : k + m],
                    row[:m],
                    ls=":",
                    color=line.get_color(),
                    label=f"{name} planned" if k == planned_at[0] else None,
                )
    ax.set_ylabel("stored energy (MWh, end of step)")
    ax.set_xlabel("hour")
    ax.set_title(f"Battery state of charge ({title})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=4)
    written.append(_save(fig, out_dir / "soc.png"))

    fig, ax = plt.subplots(figsize=(10, 3.5))
    ext = total(emap["ext_grid"], "p_mw")
    ax.step(t, ext, where="post", label="import from upstream grid")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("MW")
    ax.set_xlabel("hour")
    ax.set_title(f"Exchange at the substation ({title})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    written.append(_save(fig, out_dir / "grid_exchange.png"))

    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.fill_between(t, s[(grid, "min_vm_pu")], s[(grid, "max_vm_pu")], alpha=0.4, label="bus voltage range")
    ax.axhline(cfg.grid.vm_min_pu, color="r", ls="--", lw=1, label="band")
    ax.axhline(cfg.grid.vm_max_pu, color="r", ls="--", lw=1)
    ax.set_ylabel("vm (pu)")
    ax.set_xlabel("hour")
    ax.set_title(f"Voltage envelope ({title})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    written.append(_save(fig, out_dir / "voltage.png"))

    written.append(_plan_vs_actual(s, emap, t, n, title, out_dir))

    lines = sorted({fid for (fid, a) in s if a == "loading_percent"}, key=lambda f: int(f.rsplit("-", 1)[1]))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), gridspec_kw={"height_ratios": [1, 2]}, sharex=True)
    ax1.plot(t, s[(grid, "max_loading_percent")], color="tab:purple")
    ax1.axhline(100, color="r", ls="--", lw=1)
    ax1.set_ylabel("max loading (%)")
    ax1.set_title(f"Line loading ({title})")
    ax1.grid(alpha=0.3)
    if lines:
        mat = np.vstack([s[(f, "loading_percent")] for f in lines])
        im = ax2.imshow(
            mat,
            aspect="auto",
            origin="lower",
            cmap="viridis",
            extent=(t[0], t[-1] + (t[1] - t[0] if n > 1 else 1), -0.5, len(lines) - 0.5),
        )
        ax2.set_ylabel("line index")
        fig.colorbar(im, ax=ax2, label="loading (%)")
    ax2.set_xlabel("hour")
    written.append(_save(fig, out_dir / "line_loading.png"))
    return written


def _plan_vs_actual(s: dict, emap: dict, t: np.ndarray, n: int, title: str, out_dir: Path) -> Path:
    """Per MG: planned vs measured exchange at the PCC, and the forecasts the EMS got vs the actuals."""
    mgs = {name: pm for name, pm in emap["parties"].items() if pm.get("pcc_line")}
    fig, axes = plt.subplots(len(mgs), 2, figsize=(12, 2.6 * max(len(mgs), 1)), sharex=True, squeeze=False)
    for row, (name, pm) in enumerate(mgs.items()):
        ax = axes[row, 0]
        ax.plot(t, -s[(pm["pcc_line"], "p_to_mw")], "b-", label="measured import")
        planned = s.get((pm["ems"], "planned_import_mw"))
        if planned is not None:
            ax.plot(t, planned, "b:", label="planned import")
        ax.set_ylabel(f"{name}\nMW")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax = axes[row, 1]
        profiles = pm.get("profiles", {})
        for label in ("load", "pv", "wind"):
            fids = profiles.get(label, [])
            if not fids:
                continue
            actual = sum((np.nan_to_num(s[(f, "p_mw")]) for f in fids if (f, "p_mw") in s), np.zeros(n))
            (line,) = ax.plot(t, actual, label=f"{label} actual")
            fcs = [s[(f, "forecast_p_mw")] for f in fids if (f, "forecast_p_mw") in s]
            if not fcs:
                continue
            fc = np.sum(fcs, axis=0)  # (steps, horizon)
            steps_per_day = round(24 / (t[1] - t[0])) if n > 1 else 24
            for k in range(0, n, steps_per_day):  # the forecast issued at the start of each day
                if np.isfinite(fc[k]).any():
                    m = min(fc.shape[1], n - k)
                    ax.plot(
                        t[k : k + m],
                        fc[k, :m],
                        ls=":",
                        color=line.get_color(),
                        label=f"{label} forecast" if k == 0 else None,
                    )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=3)
    axes[0, 0].set_title(f"Planned vs measured exchange ({title})")
    axes[0, 1].set_title("Forecast (issued at the start of each day) vs actual")
    axes[-1, 0].set_xlabel("hour")
    axes[-1, 1].set_xlabel("hour")
    return _save(fig, out_dir / "plan_vs_actual.png")


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
