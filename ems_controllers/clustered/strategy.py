"""Spec 004: MGs in clusters plan the day in escalating sub-levels (island, cluster, other clusters,
network) with hourly switch states and demand response, an eps-constraint front of generation cost,
emission cost and losses with a fuzzy pick; the network operator then grants the clusters' exchange under
its limits (weighted sum)."""

from __future__ import annotations

from pydantic import Field, model_validator

from ems_controllers.core.contract import Capability, EntityModel, Strategy, StrategySettings
from ems_controllers.core.outputs import PLANNER_OUTPUTS

MG_ATTRS = ("load_shift_mw", "ev_shift_mw", "cluster_level")
SWITCH_ATTRS = ("closed", "planned_flow_mw")
SVC_ATTRS = ("q_mvar",)
SYSTEM_ATTRS = (
    "cluster_levels",
    "lower_loss_mw",
    "network_loss_mw",
    "substation_import_mw",
    "predicted_min_vm_pu",
    "predicted_max_vm_pu",
    "predicted_max_loading_percent",
    "islanded_mgs",
    "level_round_s",
    "payoff_s",
    "front_s",
    "pick_s",
    "upper_s",
    "reschedule_s",
    "rescheduled",
    "upper_status",
    "pareto_gc_per_day",
    "pareto_ec_per_day",
    "pareto_loss_mwh",
    "pareto_eps_gc_per_day",
    "pareto_eps_loss_mwh",
    "pareto_membership",
    "pareto_pick",
    "pareto_payoff",
)
OUTPUT_ATTRS = (*PLANNER_OUTPUTS, *MG_ATTRS)


class Settings(StrategySettings):
    mt_emission_cost_per_mwh: float = Field(
        default=25.0, ge=0, description="emission penalty of micro-turbine output (the seed's N_CO2+N_SO2+N_NOx)"
    )
    grid_emission_cost_per_mwh: float = Field(
        default=45.0, ge=0, description="emission penalty of energy bought at the substation (credited when sold)"
    )
    dr_share: float = Field(default=0.2, ge=0, lt=1, description="flexible share of each MG's load (gamma band)")
    pareto_points: int = Field(default=10, ge=2, le=50, description="points of the eps-constraint grid")
    point_time_limit_s: float = Field(
        default=20.0, gt=0, description="time limit of each payoff-table and front solve (its best incumbent serves)"
    )
    zeta_gc: float = Field(default=0.5, ge=0, le=1, description="upper level's weight of generation cost")
    zeta_ec: float = Field(default=0.3, ge=0, le=1, description="upper level's weight of emission cost")
    zeta_loss: float = Field(default=0.2, ge=0, le=1, description="upper level's weight of losses")
    deviation_price_per_mwh: float = Field(
        default=500.0, gt=0, description="what the network pays for granting a cluster other than it asked"
    )
    switch_hour_cost: float = Field(
        default=0.01, ge=0, description="tiny cost per closed switch and hour: switches close only when useful"
    )
    loss_max_error_mw: float = Field(
        default=1e-4, gt=0, description="largest underestimate of a branch's loss per hour by its PWL tangents"
    )
    network_loss_max_error_mw: float = Field(
        default=1e-3, gt=0, description="the same for the network's lines in the upper level"
    )
    vm_margin_pu: float = Field(
        default=0.02, ge=0, lt=0.1, description="the upper level narrows the voltage band by this at both ends"
    )
    s_max_factor: float = Field(default=0.95, gt=0, le=1, description="network line limit as a share of the rating")
    svc_price_per_mvarh: float = Field(
        default=1.0, ge=0, description="use price of the network's SVCs (keeps an SVC that serves nothing at 0)"
    )

    @model_validator(mode="after")
    def _zeta(self) -> Settings:
        total = self.zeta_gc + self.zeta_ec + self.zeta_loss
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"zeta_gc + zeta_ec + zeta_loss must be 1, not {total:g}")
        return self


STRATEGY = Strategy.declare(
    __name__,
    "ClusteredEMS",
    OUTPUT_ATTRS,
    Settings,
    frozenset({Capability.CLUSTERS, Capability.NETWORK_OPERATOR}),
    # sub-step physics: its KPI hook reads a planning round per recorded step
    frozenset(
        {
            Capability.ISLANDED,
            Capability.NESTED,
            Capability.OWNER_LOADS,
            Capability.TRANSFORMERS,
            Capability.SUB_STEP_PHYSICS,
        }
    ),
    system_entity=EntityModel("Clusters", SYSTEM_ATTRS),
    switch_entity=EntityModel("Switch", SWITCH_ATTRS),
    svc_entity=EntityModel("Svc", SVC_ATTRS),
    kpis=f"{__package__}.kpis:kpis",
    plots=f"{__package__}.plots:plots",
)
