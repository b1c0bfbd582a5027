"""Figures of strategy ``admm``: the convergence of each planning instant (primal and dual residual per
iteration with the tolerances, and rho)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ems_controllers.admm.strategy import STRATEGY, Settings
from ems_controllers.core.contract import RunRecord


def plots(r: RunRecord, out_dir: Path, title: str) -> list[Path]:
    au = r.entities.system
    if not au:
        return []
    primal, dual = r.get(au, "admm_primal_residual"), r.get(au, "admm_dual_residual")
    rho, price = r.get(au, "admm_rho"), r.get(au, "admm_price_per_mw")
    if primal is None or dual is None or rho is None or price is None:
        return []
    instants = [k for k in range(min(r.n, len(primal))) if np.isfinite(primal[k]).any()]
    if not instants:
        return []
    cfg = STRATEGY.make_settings(r.attrs["config"]["ems"])
    assert isinstance(cfg, Settings)
    n_mgs, n_steps = len(r.entities.parties), int(np.isfinite(price[instants[0]]).sum())
    root = math.sqrt(n_mgs * n_steps)
    fig, (ax, ax_rho) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True, height_ratios=(3, 1))
    for k in instants:
        hour = k * r.dt_h
        its = np.arange(1, int(np.isfinite(primal[k]).sum()) + 1)
        ax.semilogy(its, primal[k][: len(its)], "-", label=f"primal, t = {hour:g} h")
        ax.semilogy(its, dual[k][: len(its)], "--", label=f"dual, t = {hour:g} h")
        ax_rho.semilogy(its, rho[k][: len(its)], "-")
    part = " (absolute part; + tol_rel x norm)" if cfg.tol_rel > 0 else ""
    ax.axhline(root * cfg.tol_primal_mw, color="k", lw=0.8, ls=":", label=f"primal tolerance{part}")
    if cfg.stop == "both":
        ax.axhline(root * cfg.tol_dual, color="grey", lw=0.8, ls=":", label=f"dual tolerance{part}")
    ax.set_ylabel("residual")
    ax.set_title(f"{title}: ADMM convergence per planning instant")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    ax_rho.set_ylabel("rho")
    ax_rho.set_xlabel("iteration")
    ax_rho.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path = out_dir / "admm_convergence.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
