"""Privacy of the ADMM average (spec 001, "Paillier protocol"): wire format, masked aggregation, audit.

Pure: no mosaik, no file I/O. Builds on :mod:`ems_controllers.core.crypto` (keys, codecs, homomorphic sums).

Protocol (one aggregation round, semi-honest parties)
-----------------------------------------------------
The authority AU holds a Paillier key pair and publishes n (:func:`public_key_to_wire`). Every round each
MG_i encodes its real vector x_i (T exchange powers plus one scalar) into plaintext integers P_i with the
shared :class:`~ems_controllers.core.crypto.PackedCodec`, encrypts them under AU's key and the ring
MG_1 -> MG_2 -> ... -> MG_N -> AU sums them homomorphically (:func:`ring_hop`): MG_i receives
R_{i-1} = E(P_1 + ... + P_{i-1}), adds its own ciphertext and forwards. AU decrypts R_N, the sum, and
broadcasts the average to every MG. Ciphertexts travel as :func:`to_wire` dicts.

Two schemes (``AggregationParams.scheme``):

* ``"ring"`` - the paper's protocol: MG_i encrypts P_i itself.
* ``"masked"`` - MG_i encrypts ``P_i + sum_j s_ij * m_ij mod n`` instead, where for every other MG_j the
  pair shares ``m_ij = PRF(seed_ij, context, index) mod n`` (SHAKE-256 expanded to bits(n) + 128 bits,
  so m_ij is within statistical distance 2**-128 of uniform on Z_n) and ``s_ij = +1`` for the pair member
  whose name sorts first, ``-1`` for the other. The masks cancel in the sum mod n, so AU decrypts exactly
  the unmasked sum (the same integer, hence the same floats to the last bit) with the unchanged
  :func:`~ems_controllers.core.crypto.decrypt_sum`. ``seed_ij`` comes from Diffie-Hellman in the RFC 3526
  2048-bit MODP group 14 (:class:`DhKey`, :func:`pair_seed`); ``context`` names the round (planning
  time, iteration: :func:`round_context`) so no mask is ever reused.

Threat analysis (what :func:`reconstruct` and :func:`coalition_audit` check)
---------------------------------------------------------------------------
(a) AU alone decrypts only what it receives, R_N = the sum: it learns the sum and nothing else.
(b) MGs without AU see only ciphertexts (semantically secure under the decisional composite residuosity
    assumption): nothing. Every sum is re-randomised because each addend is a fresh obfuscated
    encryption, so a forwarded sum cannot be linked to the incoming one either.
(c) The broadcast average is public to all MGs: N-1 colluding MGs compute x_N = N*avg - sum of their own.
    Inherent to any exact average (with N = 2 each MG learns the other's vector every iteration).
(d) Not in the paper - ring only: AU colluding with MG_k's ring successor decrypts R_k = P_1 + ... + P_k
    (for k = 1 that is P_1 alone); with MG_k's predecessor too (R_{k-2} decrypted plus its own P_{k-1}
    gives R_{k-1}) it learns P_k = R_k - R_{k-1}; for the last MG, AU and its predecessor suffice. More
    generally AU with any one MG learns partial sums finer than the total (``learned_sums``).
    The masked scheme closes this: a partial sum R_k carries the masks between MGs before and after
    position k, uniform on Z_n to anyone missing one of them. A coalition of AU and any MGs learns
    nothing beyond the total of the MGs outside it, so only all but one MG expose the last one, as (c).
Masks must never repeat: two rounds with the same context would let AU and a successor subtract the
masks away (R_k - R'_k = P_k - P'_k). Fresh DH keys per run and a context naming the planning time and
the iteration prevent it. What neither scheme protects against: active (malicious) parties, which may send
garbage or substitute keys - in particular AU relays the DH publics, so an active AU could substitute its
own and learn every mask (the masked guarantee needs a semi-honest AU or authenticated DH publics, e.g.
pinned in the configuration); and what the sequence of averages over ADMM iterations reveals about
private cost functions. A masked round needs every MG: if one drops out the masks do not cancel and
:func:`decrypt_sum_checked` rejects the sum (restart the round with the survivors and a fresh context).

The audit reconstructs what a coalition can compute. Unknowns: each outsider MG's plaintext and, in the
masked scheme, each mask of two outsiders; equations: every running sum R_k a coalition member received
(decryptable only with AU in the coalition; what a member sends is what it received plus its own
addend, so adds nothing) and, with the broadcast, R_N = N*avg. Ordered by k, every unknown occurs in a
consecutive run of equations with one sign (x_i in R_k for k > pos(i); m_ij for pos(i) < k <= pos(j)),
so the coefficient matrix is an interval matrix up to column signs: totally unimodular. Determinacy is
decided on this 0/+-1 structure with exact integer elimination, never on values, and a determined value
is a +-1 combination of observations. Values are then computed mod n from the decrypted residues
(or from the broadcast average, whose float recovers the integer sum exactly while |sum * scale| < 2**51).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import combinations
from math import gcd
from typing import Any, Literal, get_args

import gmpy2
from phe.paillier import EncryptedNumber, PaillierPrivateKey, PaillierPublicKey

from ems_controllers.core.crypto import (
    MIN_KEY_BITS,
    EncryptedVector,
    FixedPoint,
    KeyPair,
    PackedCodec,
    add,
    ciphertext_bytes,
    encrypt_vector,
)

__all__ = [
    "AU",
    "DH_PRIVATE_BITS",
    "MODP_2048_G",
    "MODP_2048_P",
    "MODP_2048_Q",
    "SCHEMES",
    "AggregationParams",
    "AuditSummary",
    "CoalitionAudit",
    "CoalitionView",
    "DhKey",
    "Exposure",
    "ExposureRow",
    "MgView",
    "PairMask",
    "Scheme",
    "Transcript",
    "aggregation_params",
    "coalition_audit",
    "decrypt_residues",
    "decrypt_sum_checked",
    "encrypt_contribution",
    "encrypt_masked",
    "from_wire",
    "mask_sign",
    "own_masks",
    "pair_mask",
    "pair_seed",
    "pair_seeds_by_dh",
    "public_key_from_wire",
    "public_key_to_wire",
    "reconstruct",
    "ring_hop",
    "round_context",
    "simulate_round",
    "to_wire",
    "worst_coalitions",
]

AU = "AU"
Scheme = Literal["ring", "masked"]
SCHEMES: tuple[str, ...] = get_args(Scheme)

_HEX = re.compile(r"[0-9a-f]+")
_SEED_DOMAIN = b"mmg-cosim/admm/pair-seed/v1"
_MASK_DOMAIN = b"mmg-cosim/admm/mask/v1"
_MASK_EXTRA_BITS = 128


def _lp(data: bytes) -> bytes:
    """Length-prefixed bytes: concatenations of these parse one way only."""
    return len(data).to_bytes(4, "big") + data


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


# --------------------------------------------------------------------------------------------------------
# wire format
# --------------------------------------------------------------------------------------------------------


def to_wire(enc: EncryptedVector) -> dict[str, Any]:
    """JSON-safe form of an encrypted vector: fixed-width lowercase hex ciphertexts and the two counts.

    The key and codec are not sent (both ends know them). Ciphertexts are sent as they are: each is a
    fresh obfuscated encryption or a sum including one, hence uniformly re-randomised already.
    """
    width = 2 * ciphertext_bytes(enc.public_key)
    cts: list[str] = []
    for c in enc.ciphertexts:
        if c.exponent != 0:
            raise ValueError("to_wire: only integer plaintexts (phe exponent 0) have a wire form")
        cts.append(format(int(c.ciphertext(be_secure=False)), f"0{width}x"))
    return {"ciphertexts": cts, "n_values": enc.n_values, "n_addends": enc.n_addends}


def from_wire(
    data: Mapping[str, Any], public_key: PaillierPublicKey, codec: FixedPoint | PackedCodec
) -> EncryptedVector:
    """Parse :func:`to_wire`'s dict; checks the keys, counts, hex form and that each ciphertext is in Z_{n^2}."""
    if set(data) != {"ciphertexts", "n_values", "n_addends"}:
        raise ValueError(f"from_wire: expected keys ciphertexts, n_values, n_addends, got {sorted(data)}")
    n_values, n_addends, raw = data["n_values"], data["n_addends"], data["ciphertexts"]
    if not _is_int(n_values) or n_values < 1:
        raise ValueError(f"from_wire: n_values must be a positive int, got {n_values!r}")
    if not _is_int(n_addends) or not 1 <= n_addends <= codec.max_addends:
        raise ValueError(f"from_wire: n_addends must be an int in 1..{codec.max_addends}, got {n_addends!r}")
    if not isinstance(raw, list | tuple) or len(raw) != codec.n_plaintexts(n_values):
        raise ValueError(f"from_wire: expected {codec.n_plaintexts(n_values)} ciphertexts for {n_values} values")
    width, nsquare = 2 * ciphertext_bytes(public_key), int(public_key.nsquare)
    cts: list[EncryptedNumber] = []
    for h in raw:
        if not isinstance(h, str) or len(h) != width or not _HEX.fullmatch(h):
            raise ValueError(f"from_wire: a ciphertext must be {width} lowercase hex digits")
        c = int(h, 16)
        if not 0 < c < nsquare:
            raise ValueError("from_wire: ciphertext outside Z_{n^2}")
        cts.append(EncryptedNumber(public_key, c, 0))
    return EncryptedVector(public_key, codec, tuple(cts), n_values, n_addends)


def public_key_to_wire(public_key: PaillierPublicKey) -> str:
    """AU's public key as published: the modulus n in lowercase hex (g = n + 1 in phe)."""
    return format(int(public_key.n), "x")


def public_key_from_wire(data: str, *, allow_insecure: bool = False) -> PaillierPublicKey:
    """Parse :func:`public_key_to_wire`; refuses moduli below 2048 bits unless ``allow_insecure`` (tests)."""
    if not isinstance(data, str) or not _HEX.fullmatch(data):
        raise ValueError("public key: expected lowercase hex digits")
    n = int(data, 16)
    if n % 2 == 0 or n < 2**63:
        raise ValueError("public key: the modulus must be odd and large")
    if n.bit_length() < MIN_KEY_BITS and not allow_insecure:
        raise ValueError(f"public key: {n.bit_length()}-bit modulus, need >= {MIN_KEY_BITS}")
    return PaillierPublicKey(n)


# --------------------------------------------------------------------------------------------------------
# Diffie-Hellman pair seeds (RFC 3526 group 14)
# --------------------------------------------------------------------------------------------------------

MODP_2048_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)
MODP_2048_G = 2
MODP_2048_Q = (MODP_2048_P - 1) // 2  # prime: P is a safe prime, and 2 generates the order-Q subgroup
DH_PRIVATE_BITS = 512  # >= 2 x the group's ~112-bit security strength (NIST SP 800-56A)


def _powmod(base: int, exp: int, mod: int) -> int:
    return int(gmpy2.powmod(base, exp, mod))


@dataclass(frozen=True)
class DhKey:
    """An MG's Diffie-Hellman key in group 14: ``public = 2**private mod p`` (publish ``public`` only)."""

    public: int
    private: int = field(repr=False)

    @classmethod
    def generate(cls) -> DhKey:
        """A fresh key; the private exponent has exactly :data:`DH_PRIVATE_BITS` bits, from :mod:`secrets`."""
        x = secrets.randbits(DH_PRIVATE_BITS) | (1 << (DH_PRIVATE_BITS - 1))
        return cls(public=_powmod(MODP_2048_G, x, MODP_2048_P), private=x)


def validate_dh_public(y: int) -> None:
    """Full public-value check: 1 < y < p-1 and y in the prime-order subgroup (y**q = 1 mod p)."""
    if not _is_int(y) or not 1 < y < MODP_2048_P - 1:
        raise ValueError("DH public value must be an int with 1 < y < p-1")
    if _powmod(y, MODP_2048_Q, MODP_2048_P) != 1:
        raise ValueError("DH public value is not in the prime-order subgroup")


def pair_seed(my_private: DhKey | int, my_name: str, peer_public: int, peer_name: str) -> bytes:
    """The 32-byte seed a pair of MGs shares: SHA-256 over the DH secret and both names, sorted.

    Both sides get the same bytes: ``pair_seed(a, "MG1", B, "MG2") == pair_seed(b, "MG2", A, "MG1")``.
    """
    x = my_private.private if isinstance(my_private, DhKey) else my_private
    if not _is_int(x) or not 1 < x < MODP_2048_Q:
        raise ValueError("DH private exponent out of range")
    if not my_name or not peer_name or my_name == peer_name:
        raise ValueError(f"pair_seed needs two distinct non-empty names, got {my_name!r} and {peer_name!r}")
    validate_dh_public(peer_public)
    secret = _powmod(peer_public, x, MODP_2048_P)
    first, second = sorted((my_name, peer_name))
    h = hashlib.sha256(_SEED_DOMAIN)
    h.update(secret.to_bytes((MODP_2048_P.bit_length() + 7) // 8, "big"))
    h.update(_lp(first.encode()) + _lp(second.encode()))
    return h.digest()


def pair_seeds_by_dh(names: Sequence[str]) -> dict[str, dict[str, bytes]]:
    """Run the key agreement among ``names`` in process: ``seeds[me][peer]`` (for simulations and tests)."""
    keys = {name: DhKey.generate() for name in names}
    return {
        me: {peer: pair_seed(keys[me], me, keys[peer].public, peer) for peer in names if peer != me} for me in names
    }


# --------------------------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------------------------


def round_context(time_s: int, iteration: int, label: str = "admm-eep") -> bytes:
    """The bytes naming one aggregation round; masks must never be reused, so never reuse a context."""
    if not _is_int(time_s) or not _is_int(iteration) or iteration < 0:
        raise ValueError(f"round_context needs an int time and a non-negative int iteration, got {time_s}, {iteration}")
    return f"{label}|t={time_s}|k={iteration}".encode()


def mask_sign(my_name: str, peer_name: str) -> int:
    """+1 if ``my_name`` sorts before ``peer_name`` (that MG adds m), else -1 (that MG subtracts m)."""
    if my_name == peer_name:
        raise ValueError(f"an MG has no mask with itself ({my_name!r})")
    return 1 if my_name < peer_name else -1


def pair_mask(seed: bytes, context: bytes, index: int, modulus: int) -> int:
    """m = SHAKE-256(domain, seed, context, index) to bits(modulus)+128 bits, mod modulus (near uniform)."""
    if (
        not isinstance(seed, bytes)
        or len(seed) != 32
        or not isinstance(context, bytes)
        or not context
        or not _is_int(index)
        or index < 0
    ):
        raise ValueError("pair_mask needs a 32-byte seed, a non-empty context and an index >= 0")
    n_bytes = (modulus.bit_length() + _MASK_EXTRA_BITS + 7) // 8
    h = hashlib.shake_256(_MASK_DOMAIN + _lp(seed) + _lp(context) + index.to_bytes(8, "big"))
    return int.from_bytes(h.digest(n_bytes), "big") % modulus


@dataclass(frozen=True)
class PairMask:
    """The masks m (one per plaintext, in [0, n)) an MG shares with ``peer``; it adds ``sign * m``."""

    peer: str
    sign: int
    values: tuple[int, ...]


def own_masks(
    my_name: str, pair_seeds: Mapping[str, bytes], context: bytes, n_plaintexts: int, modulus: int
) -> tuple[PairMask, ...]:
    """Every mask ``my_name`` applies in the round ``context``, one :class:`PairMask` per peer."""
    if not pair_seeds:
        raise ValueError("masked aggregation needs at least one peer")
    if my_name in pair_seeds:
        raise ValueError(f"pair_seeds of {my_name!r} holds a seed with itself")
    return tuple(
        PairMask(
            peer, mask_sign(my_name, peer), tuple(pair_mask(seed, context, i, modulus) for i in range(n_plaintexts))
        )
        for peer, seed in sorted(pair_seeds.items())
    )


def _encode(codec: FixedPoint | PackedCodec, public_key: PaillierPublicKey, values: Sequence[float]) -> list[int]:
    """The codec's plaintexts of ``values`` as residues mod n (negative FixedPoint integers wrap)."""
    plaintexts = codec.encode_vector([float(v) for v in values])
    codec.check_fits(public_key, plaintexts)
    return [m % int(public_key.n) for m in plaintexts]


def _encrypt_residue(public_key: PaillierPublicKey, residue: int) -> EncryptedNumber:
    """E(residue) for any residue in [0, n) (phe's ``encrypt`` refuses ints above n/3), obfuscated."""
    ct = EncryptedNumber(public_key, public_key.raw_encrypt(residue, r_value=1), 0)
    ct.obfuscate()
    return ct


def encrypt_masked(
    public_key: PaillierPublicKey,
    codec: FixedPoint | PackedCodec,
    values: Sequence[float],
    my_name: str,
    pair_seeds: Mapping[str, bytes],
    context: bytes,
) -> EncryptedVector:
    """Encrypt ``codec``'s plaintexts of ``values`` plus this MG's zero-sum masks for ``context``, mod n.

    The sum of all N MGs' masked vectors decrypts (with :func:`~ems_controllers.core.crypto.decrypt_sum`)
    to exactly the sum of their unmasked encodings; ``pair_seeds`` must hold one seed per other MG.
    """
    n = int(public_key.n)
    plaintexts = _encode(codec, public_key, values)
    masks = own_masks(my_name, pair_seeds, context, len(plaintexts), n)
    cts = tuple(
        _encrypt_residue(public_key, (p + sum(pm.sign * pm.values[i] for pm in masks)) % n)
        for i, p in enumerate(plaintexts)
    )
    return EncryptedVector(public_key, codec, cts, len(values), 1)


# --------------------------------------------------------------------------------------------------------
# aggregation
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AggregationParams:
    """What every party of an aggregation round agrees on."""

    scheme: Scheme
    n_parties: int
    n_values: int
    key_bits: int
    codec: PackedCodec


def aggregation_params(
    scheme: Scheme,
    n_parties: int,
    horizon: int,
    max_abs: float,
    *,
    extra: int = 1,
    key_bits: int = MIN_KEY_BITS,
    scale: int = 10**6,
) -> AggregationParams:
    """Parameters for ``horizon + extra`` values per MG with ``|x| <= max_abs`` and ``max_addends = N``."""
    _check_scheme(scheme)
    if not _is_int(n_parties) or n_parties < 2:
        raise ValueError(f"aggregation needs at least 2 parties, got {n_parties!r}")
    if not _is_int(horizon) or horizon < 1 or not _is_int(extra) or extra < 0:
        raise ValueError(f"horizon must be >= 1 and extra >= 0, got {horizon!r}, {extra!r}")
    if key_bits < MIN_KEY_BITS:
        raise ValueError(f"key_bits must be >= {MIN_KEY_BITS}, got {key_bits}")
    codec = PackedCodec.for_key(key_bits, max_abs=max_abs, scale=scale, max_addends=n_parties)
    return AggregationParams(scheme, n_parties, horizon + extra, key_bits, codec)


def encrypt_contribution(
    params: AggregationParams,
    public_key: PaillierPublicKey,
    values: Sequence[float],
    my_name: str,
    pair_seeds: Mapping[str, bytes] | None = None,
    context: bytes = b"",
) -> EncryptedVector:
    """An MG's addend under ``params.scheme`` (``pair_seeds`` and ``context`` are for ``"masked"``)."""
    if len(values) != params.n_values:
        raise ValueError(f"expected {params.n_values} values, got {len(values)}")
    if int(public_key.n).bit_length() < params.key_bits:
        raise ValueError(f"public key shorter than the agreed {params.key_bits} bits")
    if params.scheme == "ring":
        return encrypt_vector(public_key, params.codec, values)
    if pair_seeds is None or len(pair_seeds) != params.n_parties - 1:
        raise ValueError(f"masked aggregation needs one pair seed per other MG ({params.n_parties - 1})")
    return encrypt_masked(public_key, params.codec, values, my_name, pair_seeds, context)


def ring_hop(incoming: EncryptedVector | None, own: EncryptedVector) -> EncryptedVector:
    """One MG's step on the ring: add its own ciphertext to the running sum (its own when it is first)."""
    return own if incoming is None else add(incoming, own)


def decrypt_residues(private_key: PaillierPrivateKey, enc: EncryptedVector) -> list[int]:
    """The raw plaintexts in [0, n) (no signed decoding): what AU sees of any ciphertext."""
    if private_key.public_key != enc.public_key:
        raise ValueError("private key does not match the vector's public key")
    return [int(private_key.raw_decrypt(c.ciphertext(be_secure=False))) for c in enc.ciphertexts]


def decrypt_sum_checked(
    private_key: PaillierPrivateKey, codec: FixedPoint | PackedCodec, enc: EncryptedVector, n_addends: int
) -> list[float]:
    """What :func:`~ems_controllers.core.crypto.decrypt_sum` returns, after checking the sum is genuine.

    A packed sum of k addends has every used slot <= k * capacity, unused slots 0 and no bits above the
    last slot (a FixedPoint sum: |m| <= k * max_int // max_addends); a masked sum missing a party (or with
    a wrong seed or context) is uniform mod n and fails this with overwhelming probability, where
    ``decrypt_sum`` may decode it to garbage. One decryption; the residues go to the codec's ``decode_sum``
    exactly as phe's signed decoding would hand them over.
    """
    if codec != enc.codec or n_addends != enc.n_addends:
        raise ValueError(f"decrypt_sum_checked: expected this codec and {n_addends} addends, the vector differs")
    residues = decrypt_residues(private_key, enc)
    if isinstance(codec, PackedCodec):
        b, s, top = codec.slot_bits, codec.n_slots, n_addends * codec.capacity
        for i, r in enumerate(residues):
            used = min(s, enc.n_values - i * s)
            slots = [(r >> (b * j)) & ((1 << b) - 1) for j in range(s)]
            if r >> (b * s) or any(v > top for v in slots[:used]) or any(slots[used:]):
                raise ValueError("decrypted sum is not a sum of packed addends (a party or a mask is missing)")
        plaintexts = residues
    else:
        n, limit = int(enc.public_key.n), n_addends * codec.addend_limit(enc.public_key)
        plaintexts = [r if r <= n // 2 else r - n for r in residues]
        if any(abs(m) > limit for m in plaintexts):
            raise ValueError("decrypted sum is out of range (a party or a mask is missing)")
    return codec.decode_sum(plaintexts, n_addends, enc.n_values)


# --------------------------------------------------------------------------------------------------------
# transcript of a round
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MgView:
    """What one MG saw and holds in a round: its private vector and masks, and the ciphertext it received."""

    name: str
    values: tuple[float, ...]
    received: EncryptedVector | None  # None for the first MG of the ring
    masks: tuple[PairMask, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """Everything exchanged in one aggregation round, plus every MG's private view (for the audit)."""

    scheme: Scheme
    ring_order: tuple[str, ...]
    codec: FixedPoint | PackedCodec
    context: bytes
    mgs: tuple[MgView, ...]  # in ring order
    au_received: EncryptedVector
    average: tuple[float, ...]  # what AU broadcast

    @property
    def public_key(self) -> PaillierPublicKey:
        return self.au_received.public_key

    @property
    def n_values(self) -> int:
        return self.au_received.n_values


def simulate_round(
    keypair: KeyPair,
    codec: FixedPoint | PackedCodec,
    vectors: Sequence[tuple[str, Sequence[float]]],
    scheme: Scheme,
    context: bytes = b"audit",
    pair_seeds: Mapping[str, Mapping[str, bytes]] | None = None,
) -> Transcript:
    """Run one round in process (ring in the order of ``vectors``; every hop through the wire format).

    In ``"masked"`` mode without ``pair_seeds`` the MGs agree on seeds by DH first (:func:`pair_seeds_by_dh`).
    """
    _check_scheme(scheme)
    names = tuple(name for name, _ in vectors)
    _check_ring(names)
    if len({len(v) for _, v in vectors}) != 1:
        raise ValueError("every MG's vector must have the same length")
    pk = keypair.public_key
    if scheme == "masked" and pair_seeds is None:
        pair_seeds = pair_seeds_by_dh(names)
    views: list[MgView] = []
    running: EncryptedVector | None = None
    for name, values in vectors:
        masks: tuple[PairMask, ...] = ()
        if scheme == "masked":
            assert pair_seeds is not None
            own = encrypt_masked(pk, codec, values, name, pair_seeds[name], context)
            masks = own_masks(name, pair_seeds[name], context, len(own.ciphertexts), int(pk.n))
        else:
            own = encrypt_vector(pk, codec, values)
        views.append(MgView(name, tuple(float(v) for v in values), running, masks))
        sent = ring_hop(running, own)
        running = from_wire(to_wire(sent), pk, codec)
    assert running is not None
    total = decrypt_sum_checked(keypair.private_key, codec, running, len(names))
    average = tuple(s / len(names) for s in total)
    return Transcript(scheme, names, codec, context, tuple(views), running, average)


# --------------------------------------------------------------------------------------------------------
# linear algebra on the 0/+-1 structure (exact, integer)
# --------------------------------------------------------------------------------------------------------

_TARGET = -1  # the pseudo-equation index of the vector being expressed


def _axpy(p: int, u: Mapping[int, int], a: int, v: Mapping[int, int]) -> dict[int, int]:
    """``p*u - a*v`` on sparse integer vectors (zeros dropped)."""
    out = {k: p * x for k, x in u.items()}
    for k, y in v.items():
        z = out.get(k, 0) - a * y
        if z:
            out[k] = z
        else:
            out.pop(k, None)
    return out


class _Basis:
    """Echelon basis of the equations' row space; each row remembers its combination of equations.

    Invariant: ``vec == sum_r comb[r] * equation_r`` (integers; the target counts as equation -1).
    """

    def __init__(self) -> None:
        self._rows: list[tuple[int, dict[int, int], dict[int, int]]] = []

    def _reduce(self, vec: dict[int, int], comb: dict[int, int]) -> tuple[dict[int, int], dict[int, int]]:
        for pivot, row, rcomb in self._rows:
            a = vec.get(pivot, 0)
            if a:
                p = row[pivot]
                vec, comb = _axpy(p, vec, a, row), _axpy(p, comb, a, rcomb)
                g = 0
                for x in (*vec.values(), *comb.values()):
                    g = gcd(g, x)
                if g > 1:
                    vec = {k: x // g for k, x in vec.items()}
                    comb = {k: x // g for k, x in comb.items()}
        return vec, comb

    def insert(self, index: int, row: Mapping[int, int]) -> None:
        vec, comb = self._reduce(dict(row), {index: 1})
        if vec:
            self._rows.append((min(vec), vec, comb))

    def express(self, target: Mapping[int, int]) -> dict[int, Fraction] | None:
        """Coefficients c with ``target == sum_r c[r] * equation_r``, or None if not in the row space."""
        vec, comb = self._reduce(dict(target), {_TARGET: 1})
        if vec:
            return None
        t = comb.pop(_TARGET)
        return {r: Fraction(-c, t) for r, c in comb.items()}


def _check_ring(ring_order: Sequence[str]) -> None:
    if len(ring_order) < 2:
        raise ValueError("the ring needs at least 2 MGs")
    if len(set(ring_order)) != len(ring_order) or AU in ring_order or not all(ring_order):
        raise ValueError(f"MG names must be distinct, non-empty and not {AU!r}: {list(ring_order)}")


def _check_coalition(ring_order: Sequence[str], coalition: Iterable[str]) -> frozenset[str]:
    members = frozenset(coalition)
    if not members:
        raise ValueError("a coalition needs at least one party")
    unknown = members - set(ring_order) - {AU}
    if unknown:
        raise ValueError(f"unknown parties in the coalition: {sorted(unknown)}")
    return members


def _mask_col(a: str, b: str) -> tuple[str, ...]:
    return ("m", *sorted((a, b)))


@dataclass
class _System:
    """A coalition's equations: ``R_k`` for each observed prefix length k, over the outsiders' unknowns."""

    ring_order: tuple[str, ...]
    scheme: str
    members: frozenset[str]
    prefixes: tuple[int, ...]
    cols: dict[tuple[str, ...], int]
    basis: _Basis

    def outsiders(self) -> tuple[str, ...]:
        return tuple(name for name in self.ring_order if name not in self.members)

    def express_sum(self, group: Iterable[str]) -> dict[int, Fraction] | None:
        return self.basis.express({self.cols[("x", name)]: 1 for name in group})


def _build_system(ring_order: Sequence[str], scheme: str, members: frozenset[str], include_broadcast: bool) -> _System:
    ring, n = tuple(ring_order), len(ring_order)
    prefixes: set[int] = set()
    if AU in members:  # AU decrypts what every member received, and the final sum
        prefixes.update(i for i, name in enumerate(ring) if i >= 1 and name in members)
        prefixes.add(n)
    if include_broadcast:
        prefixes.add(n)
    outsiders = [name for name in ring if name not in members]
    cols: dict[tuple[str, ...], int] = {("x", name): i for i, name in enumerate(outsiders)}
    if scheme == "masked":
        for a, b in combinations(outsiders, 2):
            cols[_mask_col(a, b)] = len(cols)
    system = _System(ring, scheme, members, tuple(sorted(prefixes)), cols, _Basis())
    for r, k in enumerate(system.prefixes):
        inside, outside = ring[:k], ring[k:]
        row = {cols[("x", a)]: 1 for a in inside if a not in members}
        if scheme == "masked":
            for a in inside:
                for b in outside:
                    if a not in members and b not in members:
                        row[cols[_mask_col(a, b)]] = mask_sign(a, b)
        system.basis.insert(r, row)
    return system


def _learned_sums(system: _System, max_outsiders: int) -> tuple[tuple[str, ...], ...]:
    """Inclusion-minimal groups of outsiders whose summed vector the coalition determines."""
    outsiders = system.outsiders()
    if len(outsiders) > max_outsiders:
        return ()
    found: list[frozenset[str]] = []
    for size in range(1, len(outsiders) + 1):
        for group in combinations(outsiders, size):
            g = frozenset(group)
            if any(f < g for f in found):
                continue  # a determined proper subset: g is not minimal, determined or not
            if system.express_sum(group) is not None:
                found.append(g)
    return tuple(tuple(name for name in outsiders if name in f) for f in found)


# --------------------------------------------------------------------------------------------------------
# structural audit
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoalitionAudit:
    """What a coalition learns, decided on the protocol's structure alone (no values, no keys).

    ``exposed``: outsider MGs whose whole vector the coalition determines; ``learned_sums``: the
    inclusion-minimal groups of outsiders whose summed vector it determines (empty tuple when there are
    more than ``max_outsiders`` outsiders). With the broadcast or AU the total of all outsiders is always
    determined: it is listed unless it splits into smaller determined groups.
    """

    scheme: str
    ring_order: tuple[str, ...]
    coalition: tuple[str, ...]
    include_broadcast: bool
    exposed: tuple[str, ...]
    hidden: tuple[str, ...]
    learned_sums: tuple[tuple[str, ...], ...]


def _ordered(members: Iterable[str], ring_order: Sequence[str]) -> tuple[str, ...]:
    m = set(members)
    return ((AU,) if AU in m else ()) + tuple(name for name in ring_order if name in m)


def coalition_audit(
    ring_order: Sequence[str],
    scheme: Scheme,
    coalition: Iterable[str],
    *,
    include_broadcast: bool = True,
    max_outsiders: int = 12,
) -> CoalitionAudit:
    """Which outsider MGs (and groups of them) ``coalition`` (MG names and/or ``"AU"``) learns exactly."""
    _check_scheme(scheme)
    _check_ring(ring_order)
    members = _check_coalition(ring_order, coalition)
    system = _build_system(ring_order, scheme, members, include_broadcast)
    exposed = tuple(name for name in system.outsiders() if system.express_sum((name,)) is not None)
    hidden = tuple(name for name in system.outsiders() if name not in exposed)
    return CoalitionAudit(
        scheme,
        tuple(ring_order),
        _ordered(members, ring_order),
        include_broadcast,
        exposed,
        hidden,
        _learned_sums(system, max_outsiders),
    )


@dataclass(frozen=True)
class ExposureRow:
    """The smallest coalitions that learn ``mg``'s vector (``min_size`` parties, AU counting as one)."""

    mg: str
    min_size: int | None  # None: no coalition of at most max_size parties learns it
    coalitions: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class AuditSummary:
    """:func:`worst_coalitions`' answer, one row per MG; ``dataclasses.asdict`` gives JSON-safe data."""

    scheme: str
    ring_order: tuple[str, ...]
    include_broadcast: bool
    rows: tuple[ExposureRow, ...]

    def to_text(self, max_listed: int = 6) -> str:
        ring = " -> ".join((*self.ring_order, AU))
        bc = "the average is broadcast to every MG" if self.include_broadcast else "no broadcast"
        lines = [f"Who can learn an MG's exchange schedule exactly: aggregation {self.scheme!r}, ring {ring}, {bc}."]
        width = max(len("MG"), *(len(r.mg) for r in self.rows))
        lines.append(f"{'MG':<{width}}  fewest parties  smallest coalitions that learn it")
        for r in self.rows:
            shown = "; ".join("{" + ", ".join(c) + "}" for c in r.coalitions[:max_listed])
            more = f"; ... ({len(r.coalitions)} in all)" if len(r.coalitions) > max_listed else ""
            size = "-" if r.min_size is None else str(r.min_size)
            lines.append(f"{r.mg:<{width}}  {size:<14}  {shown or 'none'}{more}")
        n = len(self.ring_order)
        if self.include_broadcast:
            lines.append(
                f"Any {n - 1} MGs together learn the remaining one from the average (inherent to an exact average)."
            )
        if any(AU in c and len(c) < n for r in self.rows for c in r.coalitions):
            lines.append("AU with fewer than all other MGs learns an MG: it decrypts partial sums (use 'masked').")
        return "\n".join(lines)


def worst_coalitions(
    ring_order: Sequence[str], scheme: Scheme, *, include_broadcast: bool = True, max_size: int | None = None
) -> AuditSummary:
    """For each MG, every smallest coalition (of MGs and AU) that learns its vector exactly.

    Enumerates coalitions by size (up to ``max_size``, default all) and stops once every MG is settled.
    """
    _check_scheme(scheme)
    _check_ring(ring_order)
    parties = (AU, *ring_order)
    limit = len(parties) - 1 if max_size is None else min(max_size, len(parties) - 1)
    min_size: dict[str, int] = {}
    found: dict[str, list[tuple[str, ...]]] = {m: [] for m in ring_order}
    for size in range(1, limit + 1):
        if len(min_size) == len(ring_order):
            break
        for coalition in combinations(parties, size):
            members = frozenset(coalition)
            targets = [m for m in ring_order if m not in members and min_size.get(m, size) == size]
            if not targets:
                continue
            system = _build_system(ring_order, scheme, members, include_broadcast)
            for m in targets:
                if system.express_sum((m,)) is not None:
                    min_size[m] = size
                    found[m].append(_ordered(members, ring_order))
    rows = tuple(ExposureRow(m, min_size.get(m), tuple(found[m])) for m in ring_order)
    return AuditSummary(scheme, tuple(ring_order), include_broadcast, rows)


# --------------------------------------------------------------------------------------------------------
# reconstruction from a transcript
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exposure:
    """One outsider MG: whether the coalition determines its vector and, if so, what it computes."""

    mg: str
    determined: bool
    values: tuple[float, ...] | None


@dataclass(frozen=True)
class CoalitionView:
    """What a coalition actually computed from a :class:`Transcript` (see :func:`reconstruct`)."""

    scheme: str
    coalition: tuple[str, ...]
    include_broadcast: bool
    decrypted: int  # ciphertexts the coalition decrypted (0 without AU)
    total: tuple[float, ...] | None  # the sum over all MGs, when the coalition knows it
    exposures: tuple[Exposure, ...]  # one per outsider MG, ring order
    learned_sums: tuple[tuple[str, ...], ...]

    @property
    def exposed(self) -> tuple[str, ...]:
        return tuple(e.mg for e in self.exposures if e.determined)

    def exposure(self, mg: str) -> Exposure:
        for e in self.exposures:
            if e.mg == mg:
                return e
        raise KeyError(f"{mg!r} is not outside the coalition")


def _broadcast_sums(codec: FixedPoint | PackedCodec, average: Sequence[float], n_parties: int) -> list[int]:
    """The integer sums of the encodings, recovered from the broadcast average.

    Exact while ``|sum * scale| < 2**51`` (the average carries a relative error of ~2**-52).
    """
    return [round(Fraction(a) * n_parties * codec.scale) for a in average]


def _pack_total(codec: FixedPoint | PackedCodec, average: Sequence[float], n_parties: int, n: int) -> list[int]:
    """The plaintext sum (packed like the codec's addends, mod n) rebuilt from the broadcast average."""
    sums = _broadcast_sums(codec, average, n_parties)
    if isinstance(codec, FixedPoint):
        return [s % n for s in sums]
    b, s, shift = codec.slot_bits, codec.n_slots, n_parties * codec.offset
    return [
        sum((v + shift) << (b * i) for i, v in enumerate(sums[start : start + s])) % n
        for start in range(0, len(sums), s)
    ]


def _known_part(transcript: Transcript, members: frozenset[str], k: int) -> list[int]:
    """What the members know of R_k: their own plaintexts among the first k MGs, and the masks of their
    pairs that straddle position k (a pair inside the first k cancels, so neither appears)."""
    pk, ring = transcript.public_key, transcript.ring_order
    n, n_pt = int(pk.n), len(transcript.au_received.ciphertexts)
    known = [0] * n_pt
    masks: dict[tuple[str, ...], tuple[int, ...]] = {}
    for i, view in enumerate(transcript.mgs):
        if view.name in members:
            if i < k:
                known = [x + p for x, p in zip(known, _encode(transcript.codec, pk, view.values), strict=True)]
            masks.update({_mask_col(view.name, pm.peer): pm.values for pm in view.masks})
    for a in ring[:k]:
        for b in ring[k:]:
            m = masks.get(_mask_col(a, b))
            if m is not None:
                known = [x + mask_sign(a, b) * v for x, v in zip(known, m, strict=True)]
    return [x % n for x in known]


def _observation(
    transcript: Transcript, members: frozenset[str], k: int, private_key: PaillierPrivateKey | None
) -> list[int]:
    """R_k minus its known part, mod n: decrypted by AU, or (k = N, no AU) rebuilt from the broadcast."""
    n, n_mgs = int(transcript.public_key.n), len(transcript.ring_order)
    if private_key is not None:
        enc = transcript.au_received if k == n_mgs else transcript.mgs[k].received
        assert enc is not None
        seen = decrypt_residues(private_key, enc)
    else:
        seen = _pack_total(transcript.codec, transcript.average, n_mgs, n)
    return [(s - c) % n for s, c in zip(seen, _known_part(transcript, members, k), strict=True)]


def _solve(transcript: Transcript, coeffs: Mapping[int, Fraction], rhs: Sequence[Sequence[int]]) -> tuple[float, ...]:
    """Apply a combination of observations mod n and decode the single addend it yields."""
    n, codec = int(transcript.public_key.n), transcript.codec
    plain = []
    for i in range(len(rhs[0]) if rhs else 0):
        acc = sum(c.numerator * pow(c.denominator, -1, n) * rhs[r][i] for r, c in coeffs.items())
        plain.append(acc % n)
    if isinstance(codec, FixedPoint):
        plain = [p if p <= n // 2 else p - n for p in plain]
    elif any(p >> (codec.slot_bits * codec.n_slots) for p in plain):
        raise ValueError("reconstruction is not a packed addend: the transcript is inconsistent")
    return tuple(codec.decode_sum(plain, 1, transcript.n_values))


def reconstruct(
    transcript: Transcript,
    coalition: Iterable[str],
    private_key: PaillierPrivateKey | None = None,
    *,
    include_broadcast: bool = True,
) -> CoalitionView:
    """Compute what ``coalition`` (MG names and/or ``"AU"``) learns from what its members saw.

    With AU (``private_key`` required) it decrypts every ciphertext a member received; members add their
    own vectors and, masked, the masks of their pairs; the broadcast average gives the sum. Each outsider
    MG whose vector is determined (decided on the structure, :func:`coalition_audit`) is computed.
    """
    members = _check_coalition(transcript.ring_order, coalition)
    key = private_key if AU in members else None
    if AU in members and (private_key is None or private_key.public_key != transcript.public_key):
        raise ValueError("a coalition with AU needs AU's private key")
    system = _build_system(transcript.ring_order, transcript.scheme, members, include_broadcast)
    rhs = [_observation(transcript, members, k, key) for k in system.prefixes]
    exposures = []
    for name in system.outsiders():
        coeffs = system.express_sum((name,))
        exposures.append(
            Exposure(name, coeffs is not None, None if coeffs is None else _solve(transcript, coeffs, rhs))
        )
    n_mgs = len(transcript.ring_order)
    total: tuple[float, ...] | None = None
    if key is not None:
        total = tuple(decrypt_sum_checked(key, transcript.codec, transcript.au_received, n_mgs))
    elif include_broadcast:
        total = tuple(s / transcript.codec.scale for s in _broadcast_sums(transcript.codec, transcript.average, n_mgs))
    return CoalitionView(
        transcript.scheme,
        _ordered(members, transcript.ring_order),
        include_broadcast,
        len(system.prefixes) if key is not None else 0,
        total,
        tuple(exposures),
        _learned_sums(system, 12),
    )
