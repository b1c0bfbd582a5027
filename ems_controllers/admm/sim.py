"""mosaik adapter of strategy ``admm``: the MG agent. One ``MG`` entity per simulator, so that every MG
can run in a process (or on a host) of its own; the authority is :mod:`ems_controllers.admm.authority`.

Between planning instants the agent is the planning adapter (:mod:`ems_controllers.core.adapter`): it
takes forecasts and the measured state of charge and applies its plan step by step. At a planning
instant it runs the protocol of :mod:`ems_controllers.admm.protocol` as a mosaik same-time loop: it says
hello to the authority, then at every tier solves its local QP with the broadcast's rho and centre,
adds its encrypted contribution to the running sum from its ring predecessor and passes it on. What it
sends is only ever ciphertext (the ``Messages/`` record shows kind, receiver and size); its own EEP stays
in this process. When the authority says done, the last local solution is the plan: converged, or not
converged after ``max_iter`` iterations (then ``ems_status`` says so and the last iterate is used - an
islanded system has no grid to fall back on, its grid-forming units take the gap); if a local solve
failed anywhere, the authority stops and every agent falls back like the adapter does (previous plan,
else the rule).

Agent inputs besides the ``MG`` interface: ``ring_in`` (the running sum, read) and ``broadcast`` (from the
authority, weak; the only trigger: :func:`agent_meta`); outputs: ``ring_out``, ``hello`` (sent every step,
None when there is nothing to send) and per instant ``crypto_s``, ``sent_ciphertext_bytes``,
``admm_iterations``.
"""

from __future__ import annotations

import copy
import time as _time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, override

from ems_controllers.admm import privacy
from ems_controllers.admm.adapter import admm_mg, mg_to_json, party_plan
from ems_controllers.admm.coordinator import Broadcast, MgIterate, carry
from ems_controllers.admm.model import AdmmMg
from ems_controllers.admm.protocol import AU, DX_SCALE, AgentSettings, codec_for, first_value, message
from ems_controllers.admm.strategy import AGENT_ATTRS
from ems_controllers.core import crypto
from ems_controllers.core.adapter import PlanningEMS, run
from ems_controllers.core.mg_entity import mg_meta
from ems_controllers.core.outputs import PLANNER_OUTPUTS
from ems_controllers.core.types import Horizon, PartyProblem, SolveResult, SolveStatus

if TYPE_CHECKING:
    from mosaik_api_v3.types import CreateResult, InputData, Meta, ModelName, OutputData, OutputRequest, Time

LOOP_IN = ("ring_in", "broadcast")
LOOP_OUT = ("ring_out", "hello")


def agent_meta() -> Meta:
    """The MG model's meta: stepped (triggered) by the authority's broadcast only.

    ``ring_in`` is read, not a trigger: every MG is stepped by the same broadcast, and mosaik steps MG k+1
    of a tier only after MG k (its ``ring_in`` source), so the running sum arrives all the same. A trigger
    on ``ring_in`` (and on the authority's ``hello``) made every simulator of the loop a triggering
    ancestor of every other through the ring, and mosaik updates every simulator's progress over all its
    triggering ancestors after every step: O(N^2) per step, O(N^3) per ADMM iteration (at N = 100 more than
    the crypto). ``ring_out`` and ``hello`` are persistent (mosaik's pull over the non-trigger inputs; a
    non-persistent output into a non-trigger input is not recommended) and sent every step, None when
    there is nothing to send, so no stale value is ever read."""
    meta = copy.deepcopy(mg_meta((*PLANNER_OUTPUTS, *AGENT_ATTRS)))
    meta["type"] = "hybrid"
    model = meta["models"]["MG"]
    model["params"] = [*model["params"], "ring_prev", "ring_next"]
    model["attrs"] = [*model["attrs"], *LOOP_IN, *LOOP_OUT]
    model["trigger"] = ["broadcast"]
    model["non-persistent"] = []
    return meta


@dataclass
class _Instant:
    """One planning instant in progress."""

    time: int
    mg: AdmmMg
    n_mgs: int = 0
    iterations: int = 0
    crypto_s: float = 0.0
    sent_bytes: int = 0
    failed: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)


class AdmmAgentEMS(PlanningEMS[None]):
    strategy_name = "admm"

    def __init__(self) -> None:
        super().__init__()
        self.meta = agent_meta()
        self.agent = AgentSettings.parse({})[0]
        self.name = ""
        self.ring_prev: str | None = None
        self.ring_next = AU
        self.mgi: MgIterate | None = None
        self.public_key: Any = None
        self.codec: crypto.PackedCodec | None = None
        self.dh = privacy.DhKey.generate()
        self.pair_seeds: dict[str, bytes] = {}
        self.instant: _Instant | None = None
        self.carried: tuple[int, tuple[float, ...]] | None = None  # (time, own EEP) of the last instant
        self.result: SolveResult[None] | None = None
        self.loop_out: dict[str, Any] = {}
        self.extra_out: dict[str, Any] = {}
        self.final_tier = True

    @override
    def configure_strategy(self, site: dict[str, Any] | None = None, **params: Any) -> None:
        self.agent, rest = AgentSettings.parse(params)
        super().configure_strategy(site, **rest)

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        if self.parties:
            raise ValueError("an admm agent simulator holds one MG; start one simulator per MG")
        self.ring_prev = model_params.pop("ring_prev", None)
        self.ring_next = model_params.pop("ring_next", AU) or AU
        out = super().create(num, model, **model_params)
        self.name = out[0]["eid"]
        self.mgi = MgIterate(self.dt_h, self.agent.admm.relaxation, share_norm=self.agent.admm.tol_rel > 0.0)
        return out

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time | None:
        inp = inputs.get(self.name, {})
        b = first_value(inp, "broadcast")
        self.loop_out = {}
        if b is None:  # the first tier of a step
            plan_now, owner_msgs = self.read_step_inputs(time, inputs)
            if not plan_now:
                self.messages = []
                self._finish(time, {}, owner_msgs)
                return time + self.step_size
            self._begin(time)
            return None
        if b["kind"] == "start":
            self._on_start(b)
        bc = Broadcast.from_list(b["b"])
        if bc.done:
            self._end(time, bc, str(b.get("reason", "")))
            return time + self.step_size
        self._iterate(time, bc, first_value(inp, "ring_in"))
        return None

    # -- the loop ----------------------------------------------------------------------------------------
    def _begin(self, time: int) -> None:
        problems, horizon = self._problems(time)
        mg = admm_mg(problems[0], horizon)
        self.instant = _Instant(time, mg)
        hello: dict[str, Any] = {"name": self.name, "n_steps": mg.n_steps}
        if self.agent.aggregation == "masked":
            hello["dh_public"] = format(self.dh.public, "x")
        self.loop_out["hello"] = hello
        self.instant.messages.append(message(time, self.name, AU, "hello", values=[float(mg.n_steps)]))
        self.final_tier = False

    def _on_start(self, b: dict[str, Any]) -> None:
        inst = self.instant
        assert inst is not None and self.mgi is not None
        self.public_key = privacy.public_key_from_wire(b["public_key"])
        inst.n_mgs = int(b["n_mgs"])
        self.codec = codec_for(self.agent.key_bits, inst.n_mgs)
        if self.agent.aggregation == "masked":
            for peer, pub in b["dh_publics"].items():
                if peer != self.name and peer not in self.pair_seeds:
                    self.pair_seeds[peer] = privacy.pair_seed(self.dh, self.name, int(pub, 16), peer)
        start = None
        if self.carried is not None:
            steps = (inst.time - self.carried[0]) // self.step_size
            start = carry(self.carried[1], steps, inst.mg.n_steps)
        self.mgi.start(inst.mg, start)

    def _iterate(self, time: int, bc: Broadcast, ring_in: dict[str, Any] | None) -> None:
        inst, mgi = self.instant, self.mgi
        assert inst is not None and mgi is not None and self.codec is not None
        status, contrib = mgi.iterate(bc)
        if not status.has_plan and inst.failed is None:
            inst.failed = f"local QP of {self.name}: {status.value}"
        inst.iterations += 1
        t0 = _time.perf_counter()
        values = [*contrib.x_mw, contrib.dx_sq * DX_SCALE, contrib.x_sq * DX_SCALE]
        if self.agent.aggregation == "masked":
            context = f"{time}:{bc.iteration}".encode()
            own = privacy.encrypt_masked(self.public_key, self.codec, values, self.name, self.pair_seeds, context)
        else:
            own = crypto.encrypt_vector(self.public_key, self.codec, values)
        ok = inst.failed is None
        total = own
        if ring_in is not None:
            total = crypto.add(privacy.from_wire(ring_in["sum"], self.public_key, self.codec), own)
            ok = ok and bool(ring_in["ok"])
        self.loop_out["ring_out"] = {"sum": privacy.to_wire(total), "ok": ok}
        inst.crypto_s += _time.perf_counter() - t0
        inst.sent_bytes += total.ciphertext_bytes
        inst.messages.append(
            message(
                time,
                self.name,
                self.ring_next,
                "eep_partial_sum",
                n_values=len(values),
                ciphertext_bytes=total.ciphertext_bytes,
            )
        )

    def _end(self, time: int, bc: Broadcast, reason: str) -> None:
        inst, mgi = self.instant, self.mgi
        assert inst is not None and mgi is not None and mgi.qp is not None
        if inst.failed is not None or (not bc.converged and bc.iteration < self.agent.admm.max_iter):
            self.result = SolveResult.error("admm stopped", inst.failed or reason or "a local solve failed")
        else:
            sched = mgi.qp.schedule(inst.mg)
            self.carried = (time, sched.exch_mw)
            status = SolveStatus.OPTIMAL if bc.converged else SolveStatus.FEASIBLE
            self.result = SolveResult(
                status,
                "converged" if bc.converged else reason,
                sched.cost,
                {self.name: party_plan(inst.mg, sched, self.dt_h)},
                0.0,
                mgi.highs_s,
                message="" if bc.converged else reason,
            )
        self.messages = []
        rounds = self._plan(time)
        self.extra_out = {
            "crypto_s": inst.crypto_s,
            "sent_ciphertext_bytes": float(inst.sent_bytes),
            "admm_iterations": float(inst.iterations),
            "admm_problem": mg_to_json(inst.mg),
        }
        self._finish(time, rounds, inst.messages)
        self.instant = None

    def _finish(self, time: int, rounds: Any, msgs: list[dict[str, Any]]) -> None:
        if self.instant is None:
            self.extra_out = {}
        self.finish_step(time, rounds, msgs)
        self.final_tier = True

    # -- planning hooks ----------------------------------------------------------------------------------
    @override
    def solve(self, problems: list[PartyProblem], horizon: Horizon) -> SolveResult[None]:
        """The outcome of the loop that just ended (the agent plans in :meth:`step`, not here)."""
        assert self.result is not None
        return self.result

    @override
    def plan_detail(self, result: SolveResult[None]) -> str | None:
        if result.status is SolveStatus.OPTIMAL:
            return None
        return f"ADMM did not converge: {result.message}; its last iterate"

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        data: OutputData = {}
        for eid, attrs in outputs.items():
            out = self.parties[eid].out or {}
            row: dict[str, Any] = {}
            for a in attrs:
                if a in LOOP_OUT:
                    row[a] = self.loop_out.get(a)  # every step (None: nothing to send; see agent_meta)
                elif a == "messages":
                    row[a] = self._messages_of(eid) if self.final_tier else None
                elif a in AGENT_ATTRS:
                    row[a] = self.extra_out.get(a)
                else:
                    row[a] = out.get(a)
            data[eid] = row
        return data


def main() -> None:
    run(AdmmAgentEMS())


if __name__ == "__main__":
    main()
