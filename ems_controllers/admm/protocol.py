"""Strategy ``admm``: what the MG agents and the authority agree on - settings, codec, wire messages.

One planning instant, as mosaik same-time loop tiers (see ``docs/interfaces.md``)::

    tier 0     every MG -> AU   hello        {name, n_steps, dh_public}   (dh_public only for "masked")
    tier 0     AU -> every MG   broadcast    {kind: "start", public_key, dh_publics, b}
    tier k>=1  MG1 -> MG2 -> ... -> MGN -> AU  ring  {ciphertext of the running sum, ok}
    tier k     AU -> every MG   broadcast    {kind: "iterate", b}  (b.done: stop, keep the last plan)

``b`` is a :class:`~ems_controllers.admm.coordinator.Broadcast` as a list. Each MG's addend is the vector
``[x_n[0..T-1], dx_sq * DX_SCALE, x_sq * DX_SCALE]`` (:class:`~ems_controllers.admm.coordinator.
Contribution`: its EEP, its squared step for the dual residual and its squared norm for the relative
tolerance), encoded with one packed fixed-point codec (:func:`codec_for`): scale 1e9 (1 mW; the sum of N
addends is exact to ``N * 0.5e-9`` MW) and room for |values| up to 1e12, so the squares carry a resolution
of 1e-15 MW^2 and still fit; for up to 151 MGs 26 values fit one 2048-bit plaintext (T = 24: one
ciphertext per MG and iteration; more values take more ciphertexts). Under
``aggregation = "masked"`` each MG adds pairwise zero-sum masks to its plaintexts before encryption
(:mod:`ems_controllers.admm.privacy`); the decrypted sum is the same to the last bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ems_controllers.admm.model import AdmmSettings
from ems_controllers.core.crypto import PackedCodec

AU = "AU"
DX_SCALE = 1e6
CODEC_SCALE = 10**9
CODEC_MAX_ABS = 1e12


@dataclass(frozen=True)
class AgentSettings:
    """What an agent or the authority is started with: ADMM's settings and the privacy layer's."""

    admm: AdmmSettings
    aggregation: Literal["ring", "masked"]
    key_bits: int

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> tuple[AgentSettings, dict[str, Any]]:
        """The strategy's settings out of a simulator's params; the rest handed back."""
        rest = dict(params)
        admm_fields = (
            "rho",
            "tol_primal_mw",
            "tol_dual",
            "tol_rel",
            "max_iter",
            "stop",
            "residual_balancing",
            "balancing",
            "balance_every_iters",
            "relaxation",
        )
        admm = AdmmSettings(**{k: rest.pop(k) for k in admm_fields if k in rest})
        aggregation = rest.pop("aggregation", "ring")
        if aggregation not in ("ring", "masked"):
            raise ValueError(f"aggregation must be 'ring' or 'masked', got {aggregation!r}")
        key_bits = int(rest.pop("key_bits", 2048))
        return cls(admm, aggregation, key_bits), rest


def codec_for(key_bits: int, n_mgs: int) -> PackedCodec:
    """The packed codec of every addend (see the module docstring)."""
    return PackedCodec.for_key(key_bits, max_abs=CODEC_MAX_ABS, scale=CODEC_SCALE, max_addends=max(n_mgs, 2))


def message(t: int, sender: str, receiver: str, kind: str, **payload: Any) -> dict[str, Any]:
    """A ``Messages/`` record: ``values`` (plaintext) or ``ciphertext_bytes`` with ``n_values``."""
    return {"t": t, "sender": sender, "receiver": receiver, "kind": kind, **payload}


def first_value(inputs: Mapping[str, Any], attr: str) -> Any:
    """The one value of an input attribute with a single source (None when none arrived)."""
    values = [v for v in inputs.get(attr, {}).values() if v is not None]
    if len(values) > 1:
        raise ValueError(f"{attr}: expected one source, got {len(values)}")
    return values[0] if values else None
