"""Privacy layer: Paillier keys, fixed-point codecs and encrypted aggregation of real vectors.

Pure math on top of ``phe`` (python-paillier; it uses gmpy2 when installed). No mosaik, no file I/O.

Protocol this module serves (specs 000 and 001): every owner encrypts its vector (a load forecast, an
exchange schedule) with the decrypting party's public key; ciphertexts are combined homomorphically
(phe's ``+`` multiplies ciphertexts mod n^2, which adds plaintexts mod n); only the decrypting party
holds the private key and it only ever receives the aggregate.

Encodings (a *codec* turns a real vector into plaintext integers and a decrypted sum back):

* :class:`FixedPoint` - one value per ciphertext. ``m = round_half_even(x * scale)`` computed exactly
  (rational arithmetic, no float product), so ``|m/scale - x| <= 0.5/scale``; the float result of the
  decode adds only its own rounding (``<= |x| * 2**-53``). Negative ``m`` use phe's signed integer
  encoding: ``m mod n``, read back as negative when the decrypted residue is above ``2n/3``; residues in
  ``(n/3, 2n/3)`` raise ``OverflowError``. We keep every sum inside ``|sum| <= max_int ~ n/3`` by
  checking ``|m| <= max_int // max_addends`` at encryption and ``n_addends <= max_addends`` at every
  addition, so a sum can never wrap. The decoded sum of k encodings is off by at most ``k * 0.5/scale``.
* :class:`PackedCodec` - ``n_slots`` values per ciphertext in slots of ``slot_bits`` bits, with an offset
  making every slot non-negative and headroom for ``max_addends`` addends (proof in its docstring).
  Cuts encryptions, decryptions, additions and bytes sent by the packing factor; the decrypting party
  learns exactly the same per-element sums as with one value per ciphertext.

Key sizes: :func:`generate_keypair` refuses moduli below 2048 bits unless ``allow_insecure=True``;
that flag exists for fast tests with small keys only and must never be set in a scenario.

Ciphertext re-randomisation: phe obfuscates every fresh encryption (``r^n mod n^2``); a sum of obfuscated
ciphertexts is itself uniformly re-randomised, so sums are forwarded without a second obfuscation
(which would cost another full exponentiation per ciphertext).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import phe
from phe.paillier import EncryptedNumber, PaillierPrivateKey, PaillierPublicKey

MIN_KEY_BITS = 2048

__all__ = [
    "MIN_KEY_BITS",
    "Codec",
    "EncryptedVector",
    "FixedPoint",
    "KeyPair",
    "PackedCodec",
    "add",
    "aggregate",
    "ciphertext_bytes",
    "decrypt_sum",
    "encrypt_vector",
    "generate_keypair",
    "ring_aggregate",
    "round_half_even",
]


# --------------------------------------------------------------------------------------------------------
# keys
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    """A Paillier key pair; ``n_bits`` is the bit length of the modulus n."""

    public_key: PaillierPublicKey
    private_key: PaillierPrivateKey

    @property
    def n_bits(self) -> int:
        return int(self.public_key.n).bit_length()


def generate_keypair(n_bits: int = MIN_KEY_BITS, *, allow_insecure: bool = False) -> KeyPair:
    """A fresh Paillier key pair with an ``n_bits``-bit modulus.

    Refuses ``n_bits < 2048`` (:data:`MIN_KEY_BITS`) unless ``allow_insecure=True``; small keys are for
    fast tests only. 2048 bits take a fraction of a second to a few seconds with gmpy2, 3072 bits longer.
    """
    if n_bits < MIN_KEY_BITS and not allow_insecure:
        raise ValueError(
            f"Paillier keys need >= {MIN_KEY_BITS} bits, got {n_bits} (allow_insecure=True is for tests only)"
        )
    if n_bits < 64:
        raise ValueError(f"n_bits={n_bits} is too small even for a test key")
    public_key, private_key = phe.generate_paillier_keypair(n_length=n_bits)
    return KeyPair(public_key, private_key)


def ciphertext_bytes(public_key: PaillierPublicKey) -> int:
    """Bytes of one ciphertext as sent: an element of Z_{n^2} in fixed width, ceil(bits(n^2)/8)."""
    return (int(public_key.nsquare).bit_length() + 7) // 8


def _max_int(public_key: PaillierPublicKey) -> int:
    """phe's largest positive plaintext (about n/3); residues up to 2n/3 detect overflow."""
    return int(public_key.max_int)


# --------------------------------------------------------------------------------------------------------
# codecs
# --------------------------------------------------------------------------------------------------------


def round_half_even(x: float, scale: int) -> int:
    """``x * scale`` rounded to the nearest integer, ties to even, computed exactly (no float product)."""
    if not math.isfinite(x):
        raise ValueError(f"cannot encode non-finite value {x!r}")
    num, den = float(x).as_integer_ratio()  # den is a power of two
    q, r = divmod(num * scale, den)  # floor division: 0 <= r < den
    twice = 2 * r
    if twice > den or (twice == den and q % 2 == 1):
        q += 1
    return q


class Codec(Protocol):
    """What :func:`encrypt_vector` / :func:`decrypt_sum` need from an encoding."""

    scale: int
    max_addends: int

    def encode_vector(self, values: Sequence[float]) -> list[int]: ...

    def decode_sum(self, plaintexts: Sequence[int], n_addends: int, n_values: int) -> list[float]: ...

    def check_fits(self, public_key: PaillierPublicKey, plaintexts: Sequence[int]) -> None: ...

    def error_bound(self, n_addends: int) -> float: ...


def _check_scale(scale: int, max_addends: int) -> None:
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    if not isinstance(max_addends, int) or max_addends < 1:
        raise ValueError(f"max_addends must be a positive int, got {max_addends!r}")


@dataclass(frozen=True)
class FixedPoint:
    """Signed fixed point, one value per plaintext: ``m = round_half_even(x * scale)``.

    Bounds: ``|decode(encode(x)) - x| <= 0.5/scale`` (plus the float rounding of the result,
    ``<= |x| * 2**-53``); a decoded sum of k encodings is within ``k * 0.5/scale`` of the true sum.
    Sign: negative integers are encrypted as ``m mod n`` (phe's signed encoding); to keep every sum of up
    to ``max_addends`` encodings inside phe's signed range ``|sum| <= max_int (~n/3)``, encryption checks
    ``|m| <= max_int // max_addends`` (for a 2048-bit key that allows |x| up to ~1e600, i.e. any float).
    """

    scale: int = 10**6
    max_addends: int = 1024

    def __post_init__(self) -> None:
        _check_scale(self.scale, self.max_addends)

    def encode(self, x: float) -> int:
        return round_half_even(x, self.scale)

    def decode(self, m: int) -> float:
        return m / self.scale  # int / int is correctly rounded in Python

    def encode_vector(self, values: Sequence[float]) -> list[int]:
        return [round_half_even(x, self.scale) for x in values]

    def decode_sum(self, plaintexts: Sequence[int], n_addends: int, n_values: int) -> list[float]:
        if len(plaintexts) != n_values:
            raise ValueError(f"expected {n_values} plaintexts, got {len(plaintexts)}")
        if not 1 <= n_addends <= self.max_addends:
            raise ValueError(f"n_addends={n_addends} outside 1..{self.max_addends}")
        return [m / self.scale for m in plaintexts]

    def addend_limit(self, public_key: PaillierPublicKey) -> int:
        """The largest |m| one encoding may have: within phe's signed range for ``max_addends`` of them,
        and the encoding of a finite float (so a sum of k encodings is at most k times this; a residue
        that is not such a sum, e.g. a masked sum missing a party, is caught by that bound with
        overwhelming probability: about ``2 k scale 1.8e308 / n``, 1e-300 for a 2048-bit key)."""
        return min(_max_int(public_key) // self.max_addends, int(sys.float_info.max) * self.scale)

    def check_fits(self, public_key: PaillierPublicKey, plaintexts: Sequence[int]) -> None:
        limit = self.addend_limit(public_key)
        worst = max((abs(m) for m in plaintexts), default=0)
        if worst > limit:
            raise ValueError(
                f"fixed-point value {worst / self.scale:g} too large for this key and "
                f"max_addends={self.max_addends} (|m| <= {limit})"
            )

    def n_plaintexts(self, n_values: int) -> int:
        return n_values

    def error_bound(self, n_addends: int) -> float:
        """Bound on |decoded sum - true sum| for ``n_addends`` encodings (exact arithmetic)."""
        return n_addends * 0.5 / self.scale


@dataclass(frozen=True)
class PackedCodec:
    """Several fixed-point values per plaintext: ``n_slots`` slots of ``slot_bits`` bits each.

    Layout. Let B = slot_bits, S = n_slots, K = max_addends and
    ``C = (2**B - 1) // K`` (largest slot value one addend may use), ``O = C // 2`` (the offset).
    A value x is encoded as ``m = round_half_even(x * scale)`` and must satisfy ``-O <= m <= C - O``
    (:attr:`min_value` .. :attr:`max_value`); its slot holds ``v = m + O`` with ``0 <= v <= C``. Element j of
    a vector goes to plaintext ``j // S``, slot ``i = j % S`` (slot 0 = least significant bits):
    ``P = sum_i v_i * 2**(B*i)``; unused slots of the last plaintext hold 0.

    No overflow between slots (claim): for any k <= K addends, the sum of the packed plaintexts decodes
    slot by slot to ``sum_j m_j``. Proof: every addend's slot value satisfies 0 <= v <= C, so a slot's sum
    satisfies ``0 <= s_i = sum_k v_ki <= k*C <= K * floor((2**B - 1)/K) <= 2**B - 1``. Hence
    ``sum_k P_k = sum_i s_i * 2**(B*i)`` with every ``0 <= s_i < 2**B``: that is the base-2**B digit
    expansion of the sum (unique), so no carry leaves a slot, and ``s_i = (P >> B*i) & (2**B - 1)``.
    The whole sum is ``<= 2**(B*S) - 1``; :meth:`check_fits` requires ``2**(B*S) - 1 <= max_int`` of the
    key (phe's positive range, ~n/3 < n), so the sum never wraps modulo n. Decoding: ``sum_k m_ki =
    s_i - k*O``, divided by ``scale``; error bound ``k * 0.5/scale`` as for :class:`FixedPoint`.
    ``B*S <= n_bits - 3`` always satisfies the key condition (n >= 2**(n_bits-1) so n/3 > 2**(n_bits-3)).
    """

    scale: int = 10**6
    slot_bits: int = 48
    n_slots: int = 42
    max_addends: int = 64

    def __post_init__(self) -> None:
        _check_scale(self.scale, self.max_addends)
        if self.slot_bits < 2 or self.n_slots < 1:
            raise ValueError("slot_bits must be >= 2 and n_slots >= 1")
        if self.offset < 1:
            raise ValueError(f"slot_bits={self.slot_bits} leave no room for max_addends={self.max_addends}")

    @classmethod
    def for_key(cls, n_bits: int, *, max_abs: float, scale: int = 10**6, max_addends: int = 64) -> PackedCodec:
        """The densest codec for an ``n_bits`` key holding values with ``|x| <= max_abs``."""
        m_abs = round_half_even(max_abs, scale) + 1  # a little slack for rounding at the edge
        # need C = (2**B - 1)//K >= 2*m_abs + 1, i.e. 2**B - 1 >= K*(2*m_abs + 1)
        slot_bits = (max_addends * (2 * m_abs + 1)).bit_length()
        n_slots = (n_bits - 3) // slot_bits
        if n_slots < 1:
            raise ValueError(f"a {n_bits}-bit key cannot hold one {slot_bits}-bit slot")
        return cls(scale=scale, slot_bits=slot_bits, n_slots=n_slots, max_addends=max_addends)

    @property
    def capacity(self) -> int:
        """C: the largest slot value one addend may use."""
        return ((1 << self.slot_bits) - 1) // self.max_addends

    @property
    def offset(self) -> int:
        return self.capacity // 2

    @property
    def min_value(self) -> float:
        return -self.offset / self.scale

    @property
    def max_value(self) -> float:
        return (self.capacity - self.offset) / self.scale

    def n_plaintexts(self, n_values: int) -> int:
        return -(-n_values // self.n_slots)

    def encode_vector(self, values: Sequence[float]) -> list[int]:
        b, s, off, cap = self.slot_bits, self.n_slots, self.offset, self.capacity
        out: list[int] = []
        for start in range(0, len(values), s):
            packed = 0
            for i, x in enumerate(values[start : start + s]):
                v = round_half_even(x, self.scale) + off
                if not 0 <= v <= cap:
                    raise ValueError(f"value {x!r} outside the packed range [{self.min_value:g}, {self.max_value:g}]")
                packed |= v << (b * i)
            out.append(packed)
        return out

    def decode_sum(self, plaintexts: Sequence[int], n_addends: int, n_values: int) -> list[float]:
        if len(plaintexts) != self.n_plaintexts(n_values):
            raise ValueError(f"expected {self.n_plaintexts(n_values)} plaintexts, got {len(plaintexts)}")
        if not 1 <= n_addends <= self.max_addends:
            raise ValueError(f"n_addends={n_addends} outside 1..{self.max_addends}")
        b, mask, shift = self.slot_bits, (1 << self.slot_bits) - 1, n_addends * self.offset
        out: list[float] = []
        for j in range(n_values):
            p = plaintexts[j // self.n_slots]
            if p < 0:
                raise OverflowError("packed sum decrypted to a negative number: the slots overflowed")
            out.append((((p >> (b * (j % self.n_slots))) & mask) - shift) / self.scale)
        return out

    def check_fits(self, public_key: PaillierPublicKey, plaintexts: Sequence[int] = ()) -> None:
        if (1 << (self.slot_bits * self.n_slots)) - 1 > _max_int(public_key):
            raise ValueError(
                f"{self.n_slots} slots of {self.slot_bits} bits do not fit a "
                f"{int(public_key.n).bit_length()}-bit key (need slot_bits*n_slots <= n_bits - 3)"
            )

    def error_bound(self, n_addends: int) -> float:
        return n_addends * 0.5 / self.scale


# --------------------------------------------------------------------------------------------------------
# encrypted vectors
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EncryptedVector:
    """Ciphertexts of a real vector (or of a sum of ``n_addends`` such vectors) under one public key.

    ``n_values`` and ``n_addends`` are public metadata (the vector length and how many parties'
    vectors it holds); ``ciphertext_bytes`` is what sending it costs on the wire.
    """

    public_key: PaillierPublicKey
    codec: FixedPoint | PackedCodec
    ciphertexts: tuple[EncryptedNumber, ...]
    n_values: int
    n_addends: int = 1

    @property
    def ciphertext_bytes(self) -> int:
        return len(self.ciphertexts) * ciphertext_bytes(self.public_key)


def encrypt_vector(
    public_key: PaillierPublicKey, codec: FixedPoint | PackedCodec, values: Sequence[float]
) -> EncryptedVector:
    """Encode ``values`` with ``codec`` and encrypt each plaintext under ``public_key``."""
    values = [float(v) for v in values]
    plaintexts = codec.encode_vector(values)
    codec.check_fits(public_key, plaintexts)
    cts = tuple(public_key.encrypt(m) for m in plaintexts)
    return EncryptedVector(public_key, codec, cts, len(values), 1)


def add(a: EncryptedVector, b: EncryptedVector) -> EncryptedVector:
    """Homomorphic sum of two encrypted vectors (same key, codec and length)."""
    if a.public_key != b.public_key:
        raise ValueError("cannot add vectors encrypted under different keys")
    if a.codec != b.codec or a.n_values != b.n_values:
        raise ValueError("cannot add vectors with different codecs or lengths")
    n = a.n_addends + b.n_addends
    if n > a.codec.max_addends:
        raise ValueError(f"{n} addends exceed the codec's max_addends={a.codec.max_addends}")
    cts = tuple(x + y for x, y in zip(a.ciphertexts, b.ciphertexts, strict=True))
    return EncryptedVector(a.public_key, a.codec, cts, a.n_values, n)


def aggregate(vectors: Iterable[EncryptedVector]) -> EncryptedVector:
    """Homomorphic sum of one or more encrypted vectors."""
    it = iter(vectors)
    try:
        total = next(it)
    except StopIteration:
        raise ValueError("aggregate needs at least one vector") from None
    for v in it:
        total = add(total, v)
    return total


def decrypt_sum(
    private_key: PaillierPrivateKey, codec: FixedPoint | PackedCodec, enc: EncryptedVector, n_addends: int
) -> list[float]:
    """Decrypt an aggregate of ``n_addends`` vectors; within ``codec.error_bound(n_addends)`` of the sum.

    ``n_addends`` is what the decrypting party expects; it must match the vector's own count (a mismatch
    means a party is missing or counted twice).
    """
    if codec != enc.codec:
        raise ValueError("decrypt_sum: codec differs from the one the vector was encrypted with")
    if n_addends != enc.n_addends:
        raise ValueError(f"decrypt_sum: expected {n_addends} addends, the vector holds {enc.n_addends}")
    if private_key.public_key != enc.public_key:
        raise ValueError("decrypt_sum: private key does not match the vector's public key")
    plaintexts = [int(private_key.decrypt(c)) for c in enc.ciphertexts]
    return codec.decode_sum(plaintexts, n_addends, enc.n_values)


def ring_aggregate(
    public_key: PaillierPublicKey,
    codec: FixedPoint | PackedCodec,
    vectors_in_ring_order: Sequence[Sequence[float] | EncryptedVector],
    on_hop: Callable[[int, EncryptedVector], None] | None = None,
) -> tuple[EncryptedVector, list[int]]:
    """Aggregate along a ring P1 -> P2 -> ... -> PN -> authority (spec 001).

    Party i encrypts its own vector (or gives it already encrypted), adds it to the running sum it got
    from party i-1 and forwards the result; hop i (0-based) goes from party i to party i+1, the last hop
    to the authority. Returns the final encrypted sum and the byte size of each of the N hops.
    ``on_hop(i, running_sum)`` is called for each hop, e.g. to send it through a channel.
    """
    if not vectors_in_ring_order:
        raise ValueError("ring_aggregate needs at least one party")
    running: EncryptedVector | None = None
    hops: list[int] = []
    for i, vec in enumerate(vectors_in_ring_order):
        own = vec if isinstance(vec, EncryptedVector) else encrypt_vector(public_key, codec, vec)
        running = own if running is None else add(running, own)
        hops.append(running.ciphertext_bytes)
        if on_hop is not None:
            on_hop(i, running)
    assert running is not None
    return running, hops
