"""mosaik adapter of the nested EMS (spec 000) with encrypted aggregation of the owners' loads.

Entities: one ``MG`` per microgrid (eid = its name, ``Microgrid.parent`` = the MG it is nested in) and
one ``Owner`` per load owner (eid ``<mg>:<owner>``). An owner's agent receives its own load forecast,
encrypts it with its MG's Paillier public key (>= 2048 bits; fixed-point, packed: one ciphertext for a
24-value forecast, :mod:`ems_controllers.core.crypto`) and sends the ciphertext to its MG's EMS. The MG's
EMS adds the ciphertexts and decrypts only the sum: the aggregate load it plans with. Scheduling then
runs innermost to outermost (:mod:`ems_controllers.nested.model`); each inner MG hands its parent its
planned surplus and shortage. Every message that crosses an ownership boundary goes through one
:class:`~ems_controllers.core.channel.Channel` and is output as ``messages`` (plaintext values only where
the protocol sends plaintext, ciphertexts as their size), so ``mmg-cosim audit`` can list what each party
learned. Sim params: ``key_bits`` (default 2048), ``packed`` (default True).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, override

from ems_controllers.core.adapter import OUTPUT_ATTRS, PlanningEMS, run
from ems_controllers.core.channel import Channel
from ems_controllers.core.crypto import (
    FixedPoint,
    KeyPair,
    PackedCodec,
    aggregate,
    decrypt_sum,
    encrypt_vector,
    generate_keypair,
)
from ems_controllers.core.types import Horizon, PartyProblem
from ems_controllers.nested.model import NestedModel, NestedResult, NestedRound
from ems_controllers.nested.strategy import OWNER_ATTRS

if TYPE_CHECKING:
    from mosaik_api_v3.types import CreateResult, InputData, ModelName, OutputData, OutputRequest, Time

__all__ = ["OUTPUT_ATTRS", "OWNER_ATTRS", "NestedEMS"]

LOAD_KIND = "load_forecast_p_mw"
MAX_ABS_MW = 1000.0  # packing range of an owner's forecast value (|value| <= this)


class NestedEMS(PlanningEMS[NestedRound]):
    strategy_name = "nested"
    plans_include_nested = True

    def __init__(self) -> None:
        super().__init__()
        self.meta["models"]["Owner"] = {
            "public": True,
            "params": ["mg", "owner"],
            "attrs": ["load_forecast_p_mw", *OWNER_ATTRS],
        }
        self.model = NestedModel()
        self.channel = Channel()
        self.owners: dict[str, str] = {}  # owner eid -> its MG
        self.owner_out: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, KeyPair] = {}
        self.key_bits = 2048
        self.codec: FixedPoint | PackedCodec | None = None  # set by configure_strategy (init)
        self.last_crypto_s = 0.0

    @override
    def configure_strategy(
        self, site: dict[str, Any] | None = None, key_bits: int = 2048, packed: bool = True, **params: Any
    ) -> None:
        super().configure_strategy(site=site, **params)
        self.key_bits = int(key_bits)
        if packed:
            self.codec = PackedCodec.for_key(self.key_bits, max_abs=MAX_ABS_MW, max_addends=64)
        else:
            self.codec = FixedPoint()

    @override
    def create(self, num: int, model: ModelName, **params: Any) -> list[CreateResult]:
        if model == "Owner":
            mg, owner = params.get("mg"), params.get("owner")
            if num != 1 or not mg or not owner:
                raise ValueError("create one Owner per call with its 'mg' and 'owner'")
            eid = f"{mg}:{owner}"
            if eid in self.owners:
                raise ValueError(f"owner {eid!r} created twice")
            self.owners[eid] = mg
            return [{"eid": eid, "type": model}]
        return super().create(num, model, **params)

    def _codec(self) -> FixedPoint | PackedCodec:
        if self.codec is None:
            raise RuntimeError("NestedEMS: init (which sets the codec) must run before step")
        return self.codec

    def _key(self, mg: str) -> KeyPair:
        """The MG EMS's key pair (made on first use; only the MG's EMS holds the private key)."""
        if mg not in self.keys:
            self.keys[mg] = generate_keypair(self.key_bits)
        return self.keys[mg]

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time | None:
        # 1. owners: encrypt their own new forecasts for their MG's EMS
        for eid, mg in self.owners.items():
            self.owner_out[eid] = {"sent_ciphertext_bytes": 0}
            values = [v for v in inputs.get(eid, {}).get("load_forecast_p_mw", {}).values() if v is not None]
            if not values:
                continue
            forecast = [sum(col) for col in zip(*values, strict=True)]
            enc = encrypt_vector(self._key(mg).public_key, self._codec(), forecast)
            self.channel.send(time, eid, mg, LOAD_KIND, ciphertext=enc)
            self.owner_out[eid]["sent_ciphertext_bytes"] = enc.ciphertext_bytes
        # 2. each MG's EMS: add the ciphertexts, decrypt only the sum
        for mg in self.parties:
            envelopes = self.channel.receive(mg, LOAD_KIND)
            if envelopes:
                ciphertexts = []
                for e in envelopes:
                    if e.ciphertext is None:  # owners send their forecasts only encrypted
                        raise ValueError(f"{LOAD_KIND} from {e.sender} to {mg} is not encrypted")
                    ciphertexts.append(e.ciphertext)
                total = aggregate(ciphertexts)
                load = decrypt_sum(self._key(mg).private_key, self._codec(), total, len(envelopes))
                own = self.forecasts[mg].get(LOAD_KIND)
                if own is not None and own[0] == time:  # a load of the MG's own, given in plaintext
                    load = [a + b for a, b in zip(load, own[1], strict=True)]
                self.forecasts[mg][LOAD_KIND] = (time, [max(x, 0.0) for x in load])
                self.force_plan = True  # a new aggregate forecast: plan
        next_t = super().step(time, inputs, max_advance)
        self.messages = self.channel.drain()
        return next_t

    @override
    def solve(self, problems: list[PartyProblem], horizon: Horizon) -> NestedResult:
        return self.model.solve(problems, horizon, self.solve_opts)

    @override
    def boundary_messages(self, problems: list[PartyProblem], result: NestedResult, time: int) -> list[dict[str, Any]]:
        for m in result.detail.messages if result.detail is not None else ():
            self.channel.send(time, m["sender"], m["receiver"], m["kind"], values=m["values"])
        return []

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        data = super().get_data({e: a for e, a in outputs.items() if e not in self.owners})
        for eid, attrs in outputs.items():
            if eid in self.owners:
                data[eid] = {a: self.owner_out.get(eid, {}).get(a) for a in attrs}
        return data


def main() -> None:
    run(NestedEMS())


if __name__ == "__main__":
    main()
