"""The peak-shaving strategy's contract: what mmg-cosim needs to know to configure, wire, record and
report it (see ``ems_controllers.core.contract``). Imports no mosaik and no simulator, so listing the
strategies stays cheap."""

from __future__ import annotations

from pydantic import Field

from ems_controllers.core.contract import Capability, Strategy, StrategySettings
from ems_controllers.core.outputs import SETPOINT_ATTRS

OUTPUT_ATTRS = (
    *SETPOINT_ATTRS,  # diesel_p_mw, battery_p_mw, pv_p_mw, wind_p_mw, pcc_closed: the grid takes these
    "planned_import_mw",  # shared names: the shared KPIs use them (exchange deviation, SoC drift)
    "planned_soc_mwh",
    "unserved_mw",  # listed: the wiring connects it to the party's loads' shed_mw (this rule sheds nothing)
    "ems_status",
    "peak_excess_mw",  # this strategy's own: how far the planned import stays above the threshold
)


class Settings(StrategySettings):
    """The ``[ems]`` fields of this strategy (``--set ems.peak_share=0.7``); every field has a default."""

    peak_import_mw: float | None = Field(
        default=None, ge=0, description="import threshold of every party, MW; none: from peak_share"
    )
    peak_share: float = Field(
        default=0.8, gt=0, le=1, description="threshold as a share of the party's forecast peak net load"
    )


STRATEGY = Strategy(
    name="peak_shaving",
    simulator="peak_shaving.sim:PeakShavingEMS",
    description="example plug-in: per MG the battery keeps the import under a threshold (ems.peak_import_mw, "
    "or ems.peak_share of the forecast peak), the diesel covers the rest above it",
    outputs=OUTPUT_ATTRS,
    settings=Settings,
    cannot_handle=frozenset(
        {
            Capability.ISLANDED,  # no import to shave
            Capability.NESTED,  # a parent's import includes its nested MGs', which this rule does not see
            Capability.OWNER_LOADS,  # it records no messages: owners' forecasts would reach it off the record
        }
    ),
    kpis="peak_shaving.kpis:kpis",
)
