"""PNG plots of a run: dispatch per party, SoC (measured and planned), grid exchange, voltage envelope,
line loading."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ems_controllers.core.entities import EntityMap, PartyEntities
from scenarios.config import Config
from sims.record_reader import read_attrs, read_plans, read_series


def _hours(n: int, step_s: int) -> np.ndarray:
    return np.arange(n) * step_s / 3600.0


@dataclass
class _Figures:
    """One run's record, read once, and what every figure shares (time axis, title, output folder)."""

    s: dict[tuple[str, str], np.ndarray]
    plans: dict[tuple[str, str], np.ndarray]
    emap: EntityMap
    cfg: Config
    title: str
    out_dir: Path
    n: int = 0
    t: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def total(self, fids: list[str], attr: str) -> np.ndarray:
        return sum((np.nan_to_num(self.s[(f, attr)]) for f in fids if (f, attr) in self.s), np.zeros(self.n))

    def dispatch(self) -> Path:
        parties = self.emap.parties
        fig, axes = plt.subplots(len(parties), 1, figsize=(10, 2.6 * len(parties)), sharex=True, squeeze=False)
        t = self.t
        for ax, (name, pm) in zip(axes[:, 0], parties.items(), strict=True):
            served = self.total(pm.load, "p_mw")
            ax.plot(t, served, "k-", label="load served")
            shed = self.total(pm.load, "shed_mw")
            if np.any(shed > 1e-9):  # what the EMS shed: demand above what was served
                ax.plot(t, served + shed, "k:", label="load demand (shed above served)")
            ax.plot(t, self.total(pm.pv, "p_mw"), color="orange", label="PV")
            ax.plot(t, self.total(pm.wind, "p_mw"), color="tab:cyan", label="wind")
            if pm.diesel:
                ax.plot(t, self.total([pm.diesel], "p_mw"), color="tab:red", label="diesel")
            if pm.storage:
                ax.plot(t, -self.total([pm.storage], "p_mw"), color="tab:green", label="battery (+ discharge)")
            if pm.pcc_line:
                ax.plot(t, -self.total([pm.pcc_line], "p_to_mw"), "b--", label="import at PCC")
            ax.set_ylabel(f"{name}\nMW")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, ncol=6, loc="upper left")
        axes[0, 0].set_title(f"Dispatch ({self.title})")
        axes[-1, 0].set_xlabel("hour")
        return _save(fig, self.out_dir / "dispatch.png")

    def soc(self) -> Path:
        fig, ax = plt.subplots(figsize=(10, 4))
        t, n = self.t, self.n
        for name, pm in self.emap.parties.items():
            if not pm.storage:
                continue
            (line,) = ax.plot(t, self.s[(pm.storage, "soc_mwh")], label=f"{name} measured")
            plan = self.plans.get((pm.ems, "plan_soc_mwh"))
            if plan is None:
                continue
            planned_at = [int(k) for k in np.flatnonzero(np.isfinite(plan).any(axis=1))]
            for k in planned_at:
                m = min(len(plan[k]), n - k)
                label = f"{name} planned" if k == planned_at[0] else None
                ax.plot(t[k : k + m], plan[k][:m], ls=":", color=line.get_color(), label=label)
        ax.set_ylabel("stored energy (MWh, end of step)")
        ax.set_xlabel("hour")
        ax.set_title(f"Battery state of charge ({self.title})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=4)
        return _save(fig, self.out_dir / "soc.png")

    def exchange(self) -> Path:
        fig, ax = plt.subplots(figsize=(10, 3.5))
        ax.step(self.t, self.total(self.emap.ext_grid, "p_mw"), where="post", label="import from upstream grid")
        ax.axhline(0, color="k", lw=0.5)
        return self._finish(fig, ax, "MW", "Exchange at the substation", "grid_exchange.png")

    def voltage(self) -> Path:
        grid = self.emap.grid
        fig, ax = plt.subplots(figsize=(10, 3.5))
        ax.fill_between(
            self.t, self.s[(grid, "min_vm_pu")], self.s[(grid, "max_vm_pu")], alpha=0.4, label="bus voltage range"
        )
        ax.axhline(self.cfg.grid.vm_min_pu, color="r", ls="--", lw=1, label="band")
        ax.axhline(self.cfg.grid.vm_max_pu, color="r", ls="--", lw=1)
        return self._finish(fig, ax, "vm (pu)", "Voltage envelope", "voltage.png")

    def _finish(self, fig: plt.Figure, ax: Any, ylabel: str, title: str, file: str) -> Path:
        """Labels, grid and legend of a one-axis figure over the run's hours, saved as ``file``."""
        ax.set_ylabel(ylabel)
        ax.set_xlabel("hour")
        ax.set_title(f"{title} ({self.title})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return _save(fig, self.out_dir / file)

    def line_loading(self) -> Path:
        s, t, n = self.s, self.t, self.n
        lines = sorted({fid for (fid, a) in s if a == "loading_percent"}, key=lambda f: int(f.rsplit("-", 1)[1]))
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), gridspec_kw={"height_ratios": [1, 2]}, sharex=True)
        ax1.plot(t, s[(self.emap.grid, "max_loading_percent")], color="tab:purple")
        ax1.axhline(100, color="r", ls="--", lw=1)
        ax1.set_ylabel("max loading (%)")
        ax1.set_title(f"Line loading ({self.title})")
        ax1.grid(alpha=0.3)
        if lines:
            mat = np.vstack([s[(f, "loading_percent")] for f in lines])
            extent = (t[0], t[-1] + (t[1] - t[0] if n > 1 else 1), -0.5, len(lines) - 0.5)
            im = ax2.imshow(mat, aspect="auto", origin="lower", cmap="viridis", extent=extent)
            ax2.set_ylabel("line index")
            fig.colorbar(im, ax=ax2, label="loading (%)")
        ax2.set_xlabel("hour")
        return _save(fig, self.out_dir / "line_loading.png")

    def plan_vs_actual(self) -> Path:
        """Per MG: planned vs measured exchange at the PCC, and the forecasts the EMS got vs the actuals."""
        mgs = {name: pm for name, pm in self.emap.parties.items() if pm.pcc_line}
        fig, axes = plt.subplots(len(mgs), 2, figsize=(12, 2.6 * max(len(mgs), 1)), sharex=True, squeeze=False)
        for row, (name, pm) in enumerate(mgs.items()):
            ax = axes[row, 0]
            ax.plot(self.t, -self.s[(str(pm.pcc_line), "p_to_mw")], "b-", label="measured import")
            planned = self.s.get((pm.ems, "planned_import_mw"))
            if planned is not None:
                ax.plot(self.t, planned, "b:", label="planned import")
            ax.set_ylabel(f"{name}\nMW")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            self._forecasts(axes[row, 1], pm)
        axes[0, 0].set_title(f"Planned vs measured exchange ({self.title})")
        axes[0, 1].set_title("Forecast (issued at the start of each day) vs actual")
        axes[-1, 0].set_xlabel("hour")
        axes[-1, 1].set_xlabel("hour")
        return _save(fig, self.out_dir / "plan_vs_actual.png")

    def _forecasts(self, ax: Any, pm: PartyEntities) -> None:
        s, t, n = self.s, self.t, self.n
        for label in ("load", "pv", "wind"):
            fids = getattr(pm.profiles, label)
            if not fids:
                continue
            actual = sum((np.nan_to_num(s[(f, "p_mw")]) for f in fids if (f, "p_mw") in s), np.zeros(n))
            (line,) = ax.plot(t, actual, label=f"{label} actual")
            fcs = [s[(f, "forecast_p_mw")] for f in fids if (f, "forecast_p_mw") in s]
            if not fcs:
                continue
            fc = np.sum(fcs, axis=0)  # (steps, horizon): each value the mean over an EMS step
            step_h, fc_h = self.cfg.scenario.step_s / 3600, self.cfg.ems_step_s / 3600
            for k in range(0, n, round(24 / step_h)):  # the forecast issued at the start of each day
                if np.isfinite(fc[k]).any():
                    m = min(fc.shape[1], int(np.ceil((t[-1] + step_h - t[k]) / fc_h)))
                    label_k = f"{label} forecast" if k == 0 else None
                    t_fc = t[k] + np.arange(m + 1) * fc_h
                    ax.stairs(fc[k, :m], t_fc, ls=":", color=line.get_color(), label=label_k)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=3)


def plot_run(path: Path, out_dir: Path) -> list[Path]:
    attrs = read_attrs(path)
    cfg = Config.model_validate(attrs["config"])
    emap = EntityMap.from_dict(attrs["entity_map"])
    out_dir.mkdir(parents=True, exist_ok=True)
    f = _Figures(
        read_series(path), read_plans(path), emap, cfg, f"{attrs.get('scenario')} / {attrs.get('strategy')}", out_dir
    )
    f.n = len(f.s[(emap.grid, "pf_converged")])
    f.t = _hours(f.n, cfg.scenario.step_s)
    figures = [f.dispatch(), f.soc(), f.exchange(), f.voltage(), f.plan_vs_actual(), f.line_loading()]
    return figures + _strategy_plots(path, str(attrs.get("strategy", "")), out_dir, f.title)


def _strategy_plots(path: Path, strategy: str, out_dir: Path, title: str) -> list[Path]:
    """The run's strategy's own figures (its contract's ``plots`` hook), if it has any."""
    from ems_controllers.core.contract import StrategyError
    from ems_controllers.registry import get_strategy
    from scenarios.kpis import RunFile

    try:
        hook = get_strategy(strategy).plot_hook()
    except (StrategyError, ImportError, AttributeError):
        return []
    return [] if hook is None else hook(RunFile(path), out_dir, title)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
