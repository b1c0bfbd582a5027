"""Figures of strategy ``clustered``: the Pareto front of each planning instant with its fuzzy pick, and
the switch states hour by hour (each MG's PCC, each cluster's feeder, each tie) with the clusters' levels."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ems_controllers.clustered.kpis import pareto_rows
from ems_controllers.core.contract import RunRecord


def plots(r: RunRecord, out_dir: Path, title: str) -> list[Path]:
    sys = r.entities.system
    if not sys:
        return []
    return [p for p in (_front(r, sys, out_dir, title), _switches(r, sys, out_dir, title)) if p is not None]


def _front(r: RunRecord, sys: str, out_dir: Path, title: str) -> Path | None:
    rows = pareto_rows(r, sys)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for row in rows:
        pts = [(g, e, lo) for g, e, lo in zip(row["gc_per_day"], row["ec_per_day"], row["loss_mwh"], strict=True)]
        ok = [(i, p) for i, p in enumerate(pts) if None not in p]
        if not ok:
            continue
        gc = np.array([p[0] for _, p in ok])
        ec = np.array([p[1] for _, p in ok])
        loss = np.array([p[2] for _, p in ok])
        sc = ax.scatter(gc, ec, c=loss, cmap="viridis", s=40, zorder=3)
        ax.plot(gc, ec, "-", color="grey", lw=0.8, zorder=2, label=f"front, day from step {row['step']}")
        for i, p in ok:
            ax.annotate(str(i + 1), (p[0], p[1]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        pick = pts[row["pick_point"] - 1]
        ax.scatter(
            [pick[0]],
            [pick[1]],
            s=160,
            facecolors="none",
            edgecolors="red",
            lw=1.5,
            zorder=4,
            label=f"fuzzy pick: point {row['pick_point']}",
        )
        fig.colorbar(sc, ax=ax, label="losses (MWh/day)")
    ax.set_xlabel("generation cost GC (per day)")
    ax.set_ylabel("emission cost EC (per day)")
    ax.set_title(f"{title}: eps-constraint front")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "clustered_pareto.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _switches(r: RunRecord, sys: str, out_dir: Path, title: str) -> Path | None:
    names, rows = [], []
    for name, p in r.entities.mgs().items():
        names.append(f"{name} PCC")
        rows.append(r.s(p.ems, "pcc_closed"))
    for name, fid in r.entities.switch_entities.items():
        names.append(name)
        rows.append(r.s(fid, "closed"))
    if not rows:
        return None
    levels = r.get(sys, "cluster_levels")
    fig, (ax, ax_lv) = plt.subplots(2, 1, figsize=(10, 0.3 * len(rows) + 3), height_ratios=(len(rows), 4), sharex=True)
    ax.imshow(np.vstack(rows), aspect="auto", cmap="Greens", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_title(f"{title}: switch states (green: closed)")
    if levels is not None and levels.ndim == 2:
        for j in range(levels.shape[1]):
            ax_lv.step(np.arange(r.n), levels[: r.n, j], where="mid", label=f"cluster {j + 1}")
        ax_lv.set_yticks([1, 2, 3, 4], ["island", "cluster", "clusters", "network"], fontsize=7)
        ax_lv.legend(fontsize=7, ncol=3)
    ax_lv.set_xlabel("hour")
    ax_lv.set_ylabel("level")
    fig.tight_layout()
    path = out_dir / "clustered_switches.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
