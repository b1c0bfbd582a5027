"""The spread of a sweep (:mod:`scenarios.sweep`): per strategy, over its completed runs, the total cost,
the limits broken (voltage violations and line overloads) and the unserved energy, as box plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from scenarios.sweep import RunOutcome

PANELS = (
    ("total cost", lambda k: k.get("total_cost")),
    ("limits broken (voltage + loading)", lambda k: _sum(k.get("n_voltage_violations"), k.get("n_line_overloads"))),
    ("unserved energy (MWh)", lambda k: k.get("unserved_mwh")),
)


def _sum(*values: object) -> float | None:
    nums = [float(v) for v in values if isinstance(v, int | float)]
    return sum(nums) if nums else None


def plot_spread(outcomes: Sequence[RunOutcome], path: Path) -> Path | None:
    """``path`` (PNG) with one box plot per panel and strategy; None if no run completed."""
    done = [o for o in outcomes if o.status in ("ok", "resumed")]
    if not done:
        return None
    strategies = list(dict.fromkeys(o.run.strategy for o in done))
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 4.2))
    for ax, (title, value) in zip(axes, PANELS, strict=True):
        data = [[v for o in done if o.run.strategy == s and (v := value(o.kpis)) is not None] for s in strategies]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(strategies) + 1), strategies, rotation=20, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    n = {s: sum(o.run.strategy == s for o in done) for s in strategies}
    fig.suptitle("sweep: " + ", ".join(f"{s} ({k} runs)" for s, k in n.items()), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
