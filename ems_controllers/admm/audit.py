"""The privacy audit of strategy ``admm``'s protocol for ``mmg-cosim audit``: which coalition of parties
(MGs and the authority AU) could compute an MG's exchange schedule exactly from what it saw, for the
run's ring order and aggregation (:func:`ems_controllers.admm.privacy.worst_coalitions`; the linear
algebra is exact, on the protocol's structure, so it holds for every value the MGs could have sent)."""

from __future__ import annotations

from dataclasses import asdict

from ems_controllers.admm.privacy import worst_coalitions
from ems_controllers.admm.strategy import STRATEGY, Settings
from ems_controllers.core.contract import RunRecord, StrategyAudit

EXHAUSTIVE_UP_TO = 10
"""Up to this many MGs every coalition size is searched; beyond, coalitions of up to 3 parties."""


def audit(r: RunRecord) -> StrategyAudit:
    settings = STRATEGY.make_settings(r.attrs["config"]["ems"])
    assert isinstance(settings, Settings)
    ring = list(r.entities.parties)
    max_size = None if len(ring) <= EXHAUSTIVE_UP_TO else 3
    with_avg = worst_coalitions(ring, settings.aggregation, include_broadcast=True, max_size=max_size)
    searched = "every coalition" if max_size is None else f"coalitions of up to {max_size} parties"
    text = with_avg.to_text() + f"\n(searched {searched})"
    return StrategyAudit(text, {"aggregation": settings.aggregation, "coalitions": asdict(with_avg)})
