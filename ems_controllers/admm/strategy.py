"""Spec 001: islanded interconnected MGs schedule themselves by exchange ADMM; each MG is an agent of its
own that shares only Paillier-encrypted exchange plans, summed along a ring for the authority, which
broadcasts the average (optionally under pairwise zero-sum masks)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ems_controllers.core.contract import AgentLoop, Capability, Strategy, StrategySettings
from ems_controllers.core.outputs import PLANNER_OUTPUTS

AGENT_ATTRS = ("sent_ciphertext_bytes", "crypto_s", "admm_iterations", "admm_problem")
"""An agent's outputs per planning instant besides the planner's (None at other steps); ``admm_problem``
is its local problem's data as JSON, for the record's centralized reference (the KPI hook): it goes to
the recorder, the experimenter's, never to another party."""
AU_ATTRS = (
    "admm_iterations",
    "admm_converged",
    "admm_final_gap_mw",
    "admm_primal_residual",
    "admm_dual_residual",
    "admm_rho",
    "admm_price_per_mw",
    "crypto_s",
    "admm_wall_s",
    "messages",
)
"""The authority's outputs, per planning instant (None at other steps); residual lists hold one value per
iteration, padded to ``max_iter`` (NaN in the record); ``crypto_s`` is its decryption time, ``admm_wall_s`` the
wall time from its start broadcast to its last (every local solve, encryption, hop and decryption of the
instant, and mosaik's messaging between them)."""


class Settings(StrategySettings):
    rho: float = Field(default=10.0, gt=0, description="ADMM's initial penalty, per MW^2")
    tol_primal_mw: float = Field(default=1e-4, gt=0, description="primal tolerance per MG and step")
    tol_dual: float = Field(default=1e-3, gt=0, description="dual tolerance per MG and step")
    max_iter: int = Field(default=500, ge=1, le=5000, description="ADMM iterations at most per planning instant")
    stop: Literal["both", "primal"] = Field(
        default="both", description="stop on primal and dual residuals, or on the primal only (the paper's rule)"
    )
    tol_rel: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="relative tolerance (Boyd et al. 2011, 3.3.1): adds tol_rel*||x|| to the primal and "
        "tol_rel*||y|| to the dual tolerance; 0: the absolute tolerances alone",
    )
    residual_balancing: bool = Field(default=True, description="adapt rho to balance the residuals")
    balancing: Literal["absolute", "relative"] = Field(
        default="absolute",
        description="residual balancing on the residuals as they are (Boyd 3.4.1), or each over its own "
        "tolerance with rho scaled by the square root of their ratio (normalised, Wohlberg 2017)",
    )
    balance_every_iters: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="iterations between rho adaptations (1: every iteration, Boyd 3.4.1; more: fewer restarts of "
        "the iteration's progress, no rho ping-pong)",
    )
    relaxation: float = Field(
        default=1.0, gt=0, lt=2, description="over-relaxation alpha (Boyd 3.4.3): 1 none, 1.5-1.8 usually faster"
    )
    aggregation: Literal["ring", "masked"] = Field(
        default="ring", description="the paper's ring of ciphertexts, or the ring under pairwise zero-sum masks"
    )
    key_bits: int = Field(default=2048, ge=2048, description="Paillier key size")


def _loop_iterations(settings: Any) -> int:
    """A start round, ``max_iter`` iterations and a final broadcast, with room to spare."""
    return int(settings.max_iter) + 10


AGENTS = AgentLoop(
    coordinator="ems_controllers.admm.authority:AuthoritySim",
    model="AU",
    outputs=AU_ATTRS,
    ring=("ring_out", "ring_in"),
    broadcast=("broadcast", "broadcast"),
    to_coordinator=(("hello", "hello"),),
    loop_iterations=_loop_iterations,
)
NEEDS = frozenset({Capability.ISLANDED})
NOT_WITH = frozenset(
    {Capability.NETWORK_OPERATOR, Capability.NESTED, Capability.OWNER_LOADS, Capability.SUB_STEP_PHYSICS}
)
"""Sub-step physics: its KPI hook takes each recorded step with iterations as a planning instant."""
STRATEGY = Strategy.declare(
    __name__,
    "AdmmAgentEMS",
    (*PLANNER_OUTPUTS, *AGENT_ATTRS),
    Settings,
    NEEDS,
    NOT_WITH,
    agents=AGENTS,
    kpis=f"{__package__}.kpis:kpis",
    plots=f"{__package__}.plots:plots",
    audit=f"{__package__}.audit:audit",
)
