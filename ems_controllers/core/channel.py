"""The one channel for messages that cross an ownership boundary, and the privacy audit over its records.

Every message between parties (load owner -> MG EMS, inner MG -> outer MG, MG -> authority, ...) goes
through :meth:`Channel.send`, which

* records a message dict in the form ``sims.recorder`` writes to ``Messages/``:
  ``{"t", "sender", "receiver", "kind", "n_values"}`` plus either ``"values"`` (plaintext, a list of
  floats, only where the protocol sends plaintext) or ``"ciphertext_bytes"`` (the size of an encrypted
  payload; the ciphertext itself is never recorded), never both;
* delivers the payload to the receiver's inbox, read with :meth:`Channel.receive`.

``t`` is the simulation time in seconds (what the recorder stores as ``time_s``). The mosaik adapter
outputs :meth:`Channel.drain` as its ``messages`` attribute. :func:`audit` answers, from those dicts (live
or read back with ``sims.record_reader.read_messages``), which plaintext each party received from whom.
Pure: no mosaik, no file I/O.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ems_controllers.core.crypto import EncryptedVector

__all__ = ["Channel", "Envelope", "audit"]


@dataclass(frozen=True)
class Envelope:
    """A delivered message: exactly one of ``values`` (plaintext) and ``ciphertext`` is set."""

    t: float
    sender: str
    receiver: str
    kind: str
    values: tuple[float, ...] | None = None
    ciphertext: EncryptedVector | None = None


class Channel:
    """Records and delivers every message between parties; see the module docstring."""

    def __init__(self) -> None:
        self._records: list[dict[str, Any]] = []
        self._inbox: dict[str, deque[Envelope]] = defaultdict(deque)

    def send(
        self,
        t: float,
        sender: str,
        receiver: str,
        kind: str,
        *,
        values: Sequence[float] | None = None,
        ciphertext: EncryptedVector | None = None,
    ) -> Envelope:
        """Record the message and put it into ``receiver``'s inbox; returns the delivered envelope."""
        if (values is None) == (ciphertext is None):
            raise ValueError(
                f"message {kind!r} {sender}->{receiver}: give exactly one of values (plaintext) and ciphertext"
            )
        if not sender or not receiver or sender == receiver:
            raise ValueError(
                f"message {kind!r}: sender and receiver must be two named parties, got {sender!r} -> {receiver!r}"
            )
        if not kind:
            raise ValueError("message kind must be a non-empty string")
        if not math.isfinite(float(t)):
            raise ValueError(f"message time must be finite, got {t!r}")
        record: dict[str, Any] = {"t": float(t), "sender": str(sender), "receiver": str(receiver), "kind": str(kind)}
        if ciphertext is not None:
            if not isinstance(ciphertext, EncryptedVector):
                raise TypeError(f"ciphertext must be an EncryptedVector, got {type(ciphertext).__name__}")
            record["ciphertext_bytes"] = ciphertext.ciphertext_bytes
            record["n_values"] = ciphertext.n_values
            env = Envelope(record["t"], record["sender"], record["receiver"], record["kind"], ciphertext=ciphertext)
        else:
            assert values is not None
            if isinstance(values, (EncryptedVector, str, bytes, Mapping)):
                raise TypeError(f"values must be a sequence of numbers, got {type(values).__name__}")
            vals = tuple(float(v) for v in values)
            record["values"] = list(vals)
            record["n_values"] = len(vals)
            env = Envelope(record["t"], record["sender"], record["receiver"], record["kind"], values=vals)
        self._records.append(record)
        self._inbox[env.receiver].append(env)
        return env

    def receive(self, receiver: str, kind: str | None = None) -> list[Envelope]:
        """Take (and remove) ``receiver``'s pending envelopes, in sending order; only ``kind`` if given."""
        box = self._inbox.get(receiver)
        if not box:
            return []
        if kind is None:
            out = list(box)
            box.clear()
            return out
        out = [e for e in box if e.kind == kind]
        rest = [e for e in box if e.kind != kind]
        box.clear()
        box.extend(rest)
        return out

    def pending(self, receiver: str) -> int:
        return len(self._inbox.get(receiver, ()))

    def drain(self) -> list[dict[str, Any]]:
        """The message dicts recorded since the last drain (then forgotten here)."""
        out, self._records = self._records, []
        return out


def audit(messages: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, set[str]]]:
    """Which plaintext kinds each party received from which other party.

    ``{receiver: {sender: {kind, ...}}}`` over the messages carrying ``values``; messages carrying only a
    ciphertext size do not count. A record carrying both is malformed and raises ``ValueError``.
    """
    out: dict[str, dict[str, set[str]]] = {}
    for msg in messages:
        has_values = msg.get("values") is not None
        if has_values and msg.get("ciphertext_bytes") is not None:
            raise ValueError(f"message carries both plaintext and a ciphertext: {dict(msg)!r}")
        if not has_values:
            continue
        out.setdefault(str(msg["receiver"]), {}).setdefault(str(msg["sender"]), set()).add(str(msg["kind"]))
    return out
