"""mosaik simulator of strategy ``admm``'s authority (AU): it holds the Paillier key pair, decrypts only
the ring's sum, runs the coordinator's update (:class:`~ems_controllers.admm.coordinator.Coordinator`) and
broadcasts the average, the scaled dual and the next rho (protocol: :mod:`ems_controllers.admm.protocol`).

A hybrid simulator with one ``AU`` entity (param ``parties``: the MGs in ring order), stepped at every
step (it reads the agents' hellos then; they are not a trigger, see :func:`~ems_controllers.admm.sim.
agent_meta`) and by the ring's last hop, its only trigger (a step in which that hop carries nothing keeps
the record and sends no broadcast); at the end of an instant it
outputs the instant's record: iterations, residuals per iteration (lists padded to ``max_iter``), rho,
the exchange price, the final gap, its decryption time and the messages it sent (the broadcast average is
plaintext: every MG receives it, and the privacy audit sees it).
"""

from __future__ import annotations

import math
import time as _time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, override

import mosaik_api_v3

from ems_controllers.admm import privacy
from ems_controllers.admm.coordinator import Broadcast, Coordinator, Trace, carry
from ems_controllers.admm.protocol import AU, DX_SCALE, AgentSettings, codec_for, first_value, message
from ems_controllers.admm.strategy import AU_ATTRS
from ems_controllers.core import crypto

if TYPE_CHECKING:
    from mosaik_api_v3.types import CreateResult, InputData, Meta, ModelName, OutputData, OutputRequest, SimId, Time

META: Meta = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {
        "AU": {
            "public": True,
            "params": ["parties"],
            "attrs": ["hello", "ring_in", "broadcast", *AU_ATTRS],
            "trigger": ["ring_in"],
            "non-persistent": ["broadcast"],
        }
    },
}


@dataclass
class _Round:
    time: int
    coordinator: Coordinator
    started: float = field(default_factory=_time.perf_counter)  # when the start broadcast went out
    decrypt_s: float = 0.0
    messages: list[dict[str, Any]] = field(default_factory=list)


class AuthoritySim(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.agent = AgentSettings.parse({})[0]
        self.step_size = 3600
        self.parties: list[str] = []
        self.keys: crypto.KeyPair | None = None
        self.round: _Round | None = None
        self.carried: tuple[int, Broadcast] | None = None
        self.out: dict[str, Any] = {}
        self.out_time: int | None = None

    @override
    def init(self, sid: SimId, time_resolution: float = 1.0, step_size: int = 3600, **params: Any) -> Meta:
        self.agent, rest = AgentSettings.parse(params)
        if rest:
            raise ValueError(f"AuthoritySim: unknown sim params {sorted(rest)}")
        self.step_size = int(step_size)
        self.keys = crypto.generate_keypair(self.agent.key_bits)
        return self.meta

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        parties = list(model_params.get("parties") or [])
        if num != 1 or self.parties or len(parties) < 2:
            raise ValueError("create one AU entity with 'parties': two or more MG names in ring order")
        self.parties = parties
        return [{"eid": AU, "type": model}]

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time | None:
        inp = inputs.get(AU, {})
        if time != self.out_time:  # a new step: the last instant's record goes
            self.out, self.out_time = dict.fromkeys(AU_ATTRS), time
        self.out.pop("broadcast", None)  # sent once; a step without news (the last MG's ring_out is None) sends none
        hellos = {h["name"]: h for h in inp.get("hello", {}).values() if h is not None}
        ring = first_value(inp, "ring_in")
        if hellos:
            self._start(time, hellos)
        elif ring is not None:
            self._update(time, ring)
        # stepped once per step besides: its record of the last instant is cleared at the next step
        return (time // self.step_size + 1) * self.step_size

    def _start(self, time: int, hellos: dict[str, dict[str, Any]]) -> None:
        assert self.keys is not None
        if sorted(hellos) != sorted(self.parties):
            raise RuntimeError(f"AU at t={time}: hellos from {sorted(hellos)}, expected {sorted(self.parties)}")
        n_steps = {int(h["n_steps"]) for h in hellos.values()}
        if len(n_steps) != 1:
            raise RuntimeError(f"AU at t={time}: the MGs plan over different horizons {sorted(n_steps)}")
        t_n = n_steps.pop()
        coord = Coordinator(self.agent.admm, len(self.parties), t_n)
        start = None
        if self.carried is not None:
            steps = (time - self.carried[0]) // self.step_size
            prev = self.carried[1]
            xbar, u = carry(prev.xbar, steps, t_n), carry(prev.u, steps, t_n)
            start = (xbar, u, prev.rho) if xbar is not None and u is not None else None
        b = coord.start(*(start or (None, None, None)))
        self.round = _Round(time, coord)
        payload = {
            "kind": "start",
            "public_key": privacy.public_key_to_wire(self.keys.public_key),
            "n_mgs": len(self.parties),
            "dh_publics": {n: h.get("dh_public") for n, h in hellos.items()},
            "b": b.to_list(),
        }
        self._send(time, payload, b)

    def _update(self, time: int, ring: dict[str, Any]) -> None:
        rnd, keys = self.round, self.keys
        assert rnd is not None and keys is not None
        coord = rnd.coordinator
        reason = ""
        if not ring["ok"]:
            b, reason = coord.abort(), "a local QP failed"
        else:
            t0 = _time.perf_counter()
            codec = codec_for(self.agent.key_bits, len(self.parties))
            enc = privacy.from_wire(ring["sum"], keys.public_key, codec)
            sums = privacy.decrypt_sum_checked(keys.private_key, codec, enc, len(self.parties))
            rnd.decrypt_s += _time.perf_counter() - t0
            b = coord.update(sums[:-2], sums[-2] / DX_SCALE, sums[-1] / DX_SCALE)
            if b.done and not b.converged:
                reason = f"not converged after {b.iteration} iterations (primal residual {coord.primal[-1]:.3g})"
        self._send(time, {"kind": "iterate", "b": b.to_list(), "reason": reason}, b)
        if b.done:
            self._close(coord.trace(b), rnd)

    def _send(self, time: int, payload: dict[str, Any], b: Broadcast) -> None:
        """The broadcast to every MG, on record as plaintext (the average and the dual are public)."""
        self.out["broadcast"] = payload
        self.out["messages"] = None  # the instant's messages go out once, at its end
        assert self.round is not None
        for name in self.parties:
            self.round.messages.append(message(time, AU, name, "eep_average", values=[*b.xbar, *b.u, b.rho]))

    def _close(self, trace: Trace, rnd: _Round) -> None:
        width = self.agent.admm.max_iter

        def padded(values: tuple[float, ...]) -> list[float]:
            return [*values, *([math.nan] * (width - len(values)))]

        self.carried = (rnd.time, trace.final)
        self.out.update(
            admm_iterations=float(trace.iterations),
            admm_converged=float(trace.converged),
            admm_final_gap_mw=len(self.parties) * trace.gap_mw,
            admm_primal_residual=padded(trace.primal),
            admm_dual_residual=padded(trace.dual),
            admm_rho=padded(trace.rho),
            admm_price_per_mw=list(trace.price_per_mw),
            crypto_s=rnd.decrypt_s,
            admm_wall_s=_time.perf_counter() - rnd.started,
            messages=rnd.messages,
        )
        self.round = None

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        return {eid: {a: self.out[a] for a in attrs if a in self.out} for eid, attrs in outputs.items()}


def main() -> None:
    mosaik_api_v3.start_simulation(AuthoritySim())


if __name__ == "__main__":
    main()
