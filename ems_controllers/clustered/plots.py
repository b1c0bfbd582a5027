"""Figures of strategy ``clustered``: the Pareto front of each planning instant with its fuzzy pick, the
switch states hour by hour (each MG's PCC, each cluster's feeder, each tie) with the clusters' levels, and
the network hour by hour: the AC power flow's lowest and highest voltage next to the upper level's
LinDistFlow prediction, and each SVC's reactive power."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ems_controllers.clustered.kpis import hour_rows, pareto_rows, svc_rows
from ems_controllers.core.contract import RunRecord


def plots(r: RunRecord, out_dir: Path, title: str) -> list[Path]:
    sys = r.entities.system
    if not sys:
        return []
    made = (_front(r, sys, out_dir, title), _switches(r, sys, out_dir, title), _network(r, sys, out_dir, title))
    return [p for p in made if p is not None]


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


def _network(r: RunRecord, sys: str, out_dir: Path, title: str) -> Path | None:
    hours = hour_rows(r, sys)
    if not hours:
        return None

    def col(key: str) -> np.ndarray:
        return np.array([np.nan if h[key] is None else h[key] for h in hours], dtype=float)

    svcs = svc_rows(r)
    fig, (ax, ax_q) = plt.subplots(2, 1, figsize=(10, 6), height_ratios=(3, 2), sharex=True)
    t = np.arange(len(hours))
    for key, style, label in (
        ("ac_min_vm_pu", "-o", "AC lowest (all buses)"),
        ("predicted_min_vm_pu", "--", "LinDistFlow lowest (network)"),
        ("ac_max_vm_pu", "-s", "AC highest"),
        ("predicted_max_vm_pu", ":", "LinDistFlow highest"),
    ):
        ax.plot(t, col(key), style, ms=3, label=label)
    ax.set_ylabel("voltage (pu)")
    ax.set_title(f"{title}: network voltages, AC against the upper level's prediction")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    width = 0.8 / max(len(svcs), 1)
    for j, (name, row) in enumerate(svcs.items()):
        q = np.array([np.nan if v is None else v for v in row["q_mvar"]], dtype=float)
        ax_q.bar(t + (j - (len(svcs) - 1) / 2) * width, q, width=width, label=f"{name} (applied)")
    ax_q.axhline(0.0, color="grey", lw=0.8)
    ax_q.set_ylabel("SVC Q (Mvar, + injects)")
    ax_q.set_xlabel("hour")
    if svcs:
        ax_q.legend(fontsize=7)
    else:
        ax_q.text(0.5, 0.5, "no SVC in this scenario", ha="center", va="center", transform=ax_q.transAxes)
    fig.tight_layout()
    path = out_dir / "clustered_network.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
