"""Tests of ``ems_controllers.admm.privacy``: wire format, DH pair seeds, masked aggregation and the audit.

One real 2048-bit Paillier key pair per module (a module-scoped fixture); the property tests exercise the
structural audit only (no Paillier) against an independent brute-force attacker.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import gmpy2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ems_controllers.admm import privacy as pv
from ems_controllers.admm.privacy import AU
from ems_controllers.core.crypto import (
    EncryptedVector,
    FixedPoint,
    KeyPair,
    PackedCodec,
    add,
    decrypt_sum,
    encrypt_vector,
    generate_keypair,
    ring_aggregate,
)

T = 24
N_VALUES = T + 1
MAX_ABS = 100.0
MAX_PARTIES = 6
SCHEMES: tuple[pv.Scheme, ...] = ("ring", "masked")


@pytest.fixture(scope="module")
def keys() -> KeyPair:
    return generate_keypair(2048)


@pytest.fixture(scope="module")
def codec() -> PackedCodec:
    return pv.aggregation_params("masked", MAX_PARTIES, T, MAX_ABS).codec


def names(n: int) -> list[str]:
    return [f"MG{i}" for i in range(1, n + 1)]


def random_vectors(n: int, seed: int) -> list[tuple[str, list[float]]]:
    rng = np.random.default_rng(seed)
    return [(name, [float(v) for v in rng.uniform(-MAX_ABS, MAX_ABS, N_VALUES)]) for name in names(n)]


@pytest.fixture(scope="module")
def rounds(
    keys: KeyPair, codec: PackedCodec
) -> dict[tuple[pv.Scheme, int], tuple[pv.Transcript, dict[str, list[float]]]]:
    """One simulated round per (scheme, N) for N = 4, 5 (the same random vectors for both schemes)."""
    out = {}
    for n in (4, 5):
        vectors = random_vectors(n, seed=n)
        for scheme in SCHEMES:
            transcript = pv.simulate_round(keys, codec, vectors, scheme, context=f"test|N={n}".encode())
            out[(scheme, n)] = (transcript, dict(vectors))
    return out


def assert_close(values: Sequence[float] | None, truth: Sequence[float], bound: float) -> None:
    assert values is not None
    assert len(values) == len(truth)
    assert max(abs(a - b) for a, b in zip(values, truth, strict=True)) <= bound


# ---- wire format ----------------------------------------------------------------------------------------


def test_wire_round_trip_through_json(keys: KeyPair, codec: PackedCodec) -> None:
    pk = keys.public_key
    a = encrypt_vector(pk, codec, [1.5] * N_VALUES)
    b = encrypt_vector(pk, codec, [-0.25] * N_VALUES)
    for enc in (a, add(a, b)):
        wire = to_json_and_back(pv.to_wire(enc))
        assert set(wire) == {"ciphertexts", "n_values", "n_addends"}
        assert all(len(h) == 2 * 512 for h in wire["ciphertexts"])  # fixed width: ciphertexts mod n^2, 4096 bits
        back = pv.from_wire(wire, pk, codec)
        assert (back.n_values, back.n_addends) == (enc.n_values, enc.n_addends)
        assert [c.ciphertext(False) for c in back.ciphertexts] == [c.ciphertext(False) for c in enc.ciphertexts]
        assert decrypt_sum(keys.private_key, codec, back, enc.n_addends) == decrypt_sum(
            keys.private_key, codec, enc, enc.n_addends
        )
    assert decrypt_sum(keys.private_key, codec, pv.from_wire(pv.to_wire(add(a, b)), pk, codec), 2) == [1.25] * N_VALUES


def to_json_and_back(data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(data))
    return result


@pytest.mark.parametrize(
    "mutate",
    [
        lambda w: w.update(extra=1),
        lambda w: w.update(n_addends=0),
        lambda w: w.update(n_addends=MAX_PARTIES + 1),
        lambda w: w.update(n_addends=True),
        lambda w: w.update(n_values=0),
        lambda w: w.update(n_values=N_VALUES + 200),  # needs more ciphertexts than sent
        lambda w: w.update(ciphertexts=[]),
        lambda w: w.update(ciphertexts=["0x" + w["ciphertexts"][0][2:]]),
        lambda w: w.update(ciphertexts=[w["ciphertexts"][0].upper()]),
        lambda w: w.update(ciphertexts=["0" * len(w["ciphertexts"][0])]),
        lambda w: w.update(ciphertexts=["f" * len(w["ciphertexts"][0])]),  # >= n^2
        lambda w: w.update(ciphertexts=[w["ciphertexts"][0][1:]]),
        lambda w: w.update(ciphertexts=[int(w["ciphertexts"][0], 16)]),
    ],
)
def test_from_wire_rejects_malformed(keys: KeyPair, codec: PackedCodec, mutate: Any) -> None:
    wire = pv.to_wire(encrypt_vector(keys.public_key, codec, [0.0] * N_VALUES))
    pv.from_wire(dict(wire), keys.public_key, codec)  # the unmodified message parses
    mutate(wire)
    with pytest.raises(ValueError, match="from_wire"):
        pv.from_wire(wire, keys.public_key, codec)


def test_public_key_wire(keys: KeyPair) -> None:
    text = pv.public_key_to_wire(keys.public_key)
    assert pv.public_key_from_wire(text) == keys.public_key
    assert int(text, 16) == keys.public_key.n
    small = generate_keypair(512, allow_insecure=True).public_key
    with pytest.raises(ValueError, match=">= 2048"):
        pv.public_key_from_wire(pv.public_key_to_wire(small))
    assert pv.public_key_from_wire(pv.public_key_to_wire(small), allow_insecure=True) == small
    for bad in ("", "0x" + text, text.upper(), format(keys.public_key.n + 1, "x")):
        with pytest.raises(ValueError, match="public key"):
            pv.public_key_from_wire(bad)


# ---- Diffie-Hellman pair seeds ---------------------------------------------------------------------------


def test_modp_group_is_rfc3526_group_14() -> None:
    p = pv.MODP_2048_P
    with gmpy2.context(precision=2200):
        pi_bits = int(gmpy2.floor(gmpy2.const_pi() * gmpy2.mpz(2) ** 1918))
    assert p == 2**2048 - 2**1984 - 1 + 2**64 * (pi_bits + 124476)  # RFC 3526, section 3
    assert gmpy2.is_prime(p) and gmpy2.is_prime(pv.MODP_2048_Q)
    assert pow(pv.MODP_2048_G, pv.MODP_2048_Q, p) == 1  # g = 2 generates the prime-order subgroup


def test_dh_pair_seeds_agree_and_validate() -> None:
    a, b, c = pv.DhKey.generate(), pv.DhKey.generate(), pv.DhKey.generate()
    for key in (a, b, c):
        assert key.private.bit_length() == pv.DH_PRIVATE_BITS >= 256
        assert key.public == pow(2, key.private, pv.MODP_2048_P)
        assert str(key.private) not in repr(key)
    ab = pv.pair_seed(a, "MG1", b.public, "MG2")
    assert len(ab) == 32
    assert ab == pv.pair_seed(b, "MG2", a.public, "MG1") == pv.pair_seed(a.private, "MG1", b.public, "MG2")
    assert ab != pv.pair_seed(a, "MG1", c.public, "MG3")
    assert ab != pv.pair_seed(a, "MG1", b.public, "MG3")  # the names are bound into the seed
    seeds = pv.pair_seeds_by_dh(names(4))
    assert all(seeds[x][y] == seeds[y][x] for x, y in combinations(names(4), 2))
    assert len({seeds[x][y] for x, y in combinations(names(4), 2)}) == 6
    p = pv.MODP_2048_P
    for bad in (0, 1, p - 1, p, p + 5, p - 2):  # p - 2 = -2 is outside the order-q subgroup
        with pytest.raises(ValueError, match="DH public"):
            pv.pair_seed(a, "MG1", bad, "MG2")
    with pytest.raises(ValueError, match="distinct"):
        pv.pair_seed(a, "MG1", b.public, "MG1")


# ---- masks and masked aggregation --------------------------------------------------------------------------


def test_masks_cancel_and_never_repeat(keys: KeyPair) -> None:
    n, parties = keys.public_key.n, names(5)
    seeds = pv.pair_seeds_by_dh(parties)
    ctx = pv.round_context(3600, 7)
    masks = {me: pv.own_masks(me, seeds[me], ctx, 3, n) for me in parties}
    for i in range(3):
        assert sum(pm.sign * pm.values[i] for me in parties for pm in masks[me]) % n == 0
    # each pair holds the same m with opposite signs, and m spans Z_n (not a small number)
    for me in parties:
        for pm in masks[me]:
            other = next(q for q in masks[pm.peer] if q.peer == me)
            assert other.values == pm.values and other.sign == -pm.sign
            assert all(0 <= v < n for v in pm.values)
    all_values = [v for me in parties for pm in masks[me] for v in pm.values]
    assert max(all_values).bit_length() >= n.bit_length() - 8
    seed = seeds["MG1"]["MG2"]
    variants = {
        pv.pair_mask(seed, ctx, 0, n),
        pv.pair_mask(seed, ctx, 1, n),
        pv.pair_mask(seed, pv.round_context(3600, 8), 0, n),
        pv.pair_mask(seed, pv.round_context(4500, 7), 0, n),
        pv.pair_mask(seeds["MG1"]["MG3"], ctx, 0, n),
    }
    assert len(variants) == 5
    assert pv.pair_mask(seed, ctx, 0, n) == pv.pair_mask(seed, ctx, 0, n)


@pytest.mark.parametrize("n_mgs", [2, 3, 4, 5, 6])
def test_masked_sum_is_bit_identical_to_unmasked(keys: KeyPair, codec: PackedCodec, n_mgs: int) -> None:
    pk, sk = keys.public_key, keys.private_key
    vectors = random_vectors(n_mgs, seed=100 + n_mgs)
    vectors[0][1][:3] = [MAX_ABS, -MAX_ABS, 0.0]  # the codec's edges
    seeds = pv.pair_seeds_by_dh([name for name, _ in vectors])
    ctx = pv.round_context(0, n_mgs)
    plain = [encrypt_vector(pk, codec, v) for _, v in vectors]
    masked = [pv.encrypt_masked(pk, codec, v, name, seeds[name], ctx) for name, v in vectors]
    # every masked addend alone is far from its encoding
    for (_, v), enc in zip(vectors, masked, strict=True):
        assert pv.decrypt_residues(sk, enc) != codec.encode_vector(v)
    plain_sum, masked_sum = plain[0], None
    for enc in plain[1:]:
        plain_sum = pv.ring_hop(plain_sum, enc)
    for enc in masked:
        masked_sum = pv.ring_hop(masked_sum, enc)
    assert masked_sum is not None
    assert pv.decrypt_residues(sk, masked_sum) == pv.decrypt_residues(sk, plain_sum)
    expected = decrypt_sum(sk, codec, plain_sum, n_mgs)
    assert decrypt_sum(sk, codec, masked_sum, n_mgs) == expected  # crypto.decrypt_sum works as is
    assert pv.decrypt_sum_checked(sk, codec, masked_sum, n_mgs) == expected
    true_sum = [sum(v[i] for _, v in vectors) for i in range(N_VALUES)]
    assert_close(expected, true_sum, codec.error_bound(n_mgs) + 1e-12)


def test_masked_sum_without_every_party_is_rejected(keys: KeyPair, codec: PackedCodec) -> None:
    pk, sk = keys.public_key, keys.private_key
    vectors = random_vectors(4, seed=7)
    seeds = pv.pair_seeds_by_dh(names(4))
    ctx = pv.round_context(0, 0)
    masked = [pv.encrypt_masked(pk, codec, v, name, seeds[name], ctx) for name, v in vectors]
    three = add(add(masked[0], masked[1]), masked[2])
    with pytest.raises(ValueError, match="missing"):
        pv.decrypt_sum_checked(sk, codec, three, 3)
    stale = pv.encrypt_masked(pk, codec, vectors[3][1], "MG4", seeds["MG4"], pv.round_context(0, 1))
    with pytest.raises(ValueError, match="missing"):
        pv.decrypt_sum_checked(sk, codec, add(three, stale), 4)
    pv.decrypt_sum_checked(sk, codec, add(three, masked[3]), 4)  # the complete round passes


@pytest.mark.parametrize("scheme", SCHEMES)
def test_fixed_point_codec_masked_sum_and_audit(keys: KeyPair, scheme: pv.Scheme) -> None:
    """One value per ciphertext: negative encodings wrap mod n; masking and reconstruction still exact."""
    codec = FixedPoint(scale=10**6, max_addends=8)
    rng = np.random.default_rng(31)
    vectors = [(name, [float(v) for v in rng.uniform(-1e3, 1e3, 3)]) for name in names(3)]
    transcript = pv.simulate_round(keys, codec, vectors, scheme)
    plain = [encrypt_vector(keys.public_key, codec, v) for _, v in vectors]
    expected = decrypt_sum(keys.private_key, codec, add(add(plain[0], plain[1]), plain[2]), 3)
    assert pv.decrypt_sum_checked(keys.private_key, codec, transcript.au_received, 3) == expected
    assert transcript.average == tuple(s / 3 for s in expected)
    truth = dict(vectors)
    for coalition, exposed in (({"MG1", "MG2"}, ("MG3",)), ({AU, "MG2"}, ("MG1", "MG3") if scheme == "ring" else ())):
        view = pv.reconstruct(transcript, coalition, keys.private_key)
        assert view.exposed == exposed
        for mg in exposed:
            assert_close(view.exposure(mg).values, truth[mg], codec.error_bound(1))
    if scheme == "masked":
        r1, r2 = transcript.mgs[1].received, transcript.mgs[2].received
        assert r1 is not None and r2 is not None
        two = add(r2, r1)  # 3 addends (MG1 twice, MG2), the masks do not cancel
        with pytest.raises(ValueError, match="out of range"):
            pv.decrypt_sum_checked(keys.private_key, codec, two, 3)


def test_encrypt_masked_rejects_bad_input(keys: KeyPair, codec: PackedCodec) -> None:
    pk, seed = keys.public_key, bytes(32)
    values = [0.0] * N_VALUES
    with pytest.raises(ValueError, match="at least one peer"):
        pv.encrypt_masked(pk, codec, values, "MG1", {}, b"ctx")
    with pytest.raises(ValueError, match="itself"):
        pv.encrypt_masked(pk, codec, values, "MG1", {"MG1": seed, "MG2": seed}, b"ctx")
    with pytest.raises(ValueError, match="32-byte seed"):
        pv.encrypt_masked(pk, codec, values, "MG1", {"MG2": b"short"}, b"ctx")
    with pytest.raises(ValueError, match="non-empty context"):
        pv.encrypt_masked(pk, codec, values, "MG1", {"MG2": seed}, b"")
    with pytest.raises(ValueError, match="outside the packed range"):
        pv.encrypt_masked(pk, codec, [2 * MAX_ABS] * N_VALUES, "MG1", {"MG2": seed}, b"ctx")


def test_ring_hop_matches_crypto_ring_aggregate(keys: KeyPair, codec: PackedCodec) -> None:
    pk, sk = keys.public_key, keys.private_key
    vectors = [v for _, v in random_vectors(3, seed=3)]
    own = [encrypt_vector(pk, codec, v) for v in vectors]
    assert pv.ring_hop(None, own[0]) is own[0]
    running: EncryptedVector | None = None
    for enc in own:
        running = pv.ring_hop(running, enc)
    assert running is not None and running.n_addends == 3
    reference, _ = ring_aggregate(pk, codec, own)
    assert decrypt_sum(sk, codec, running, 3) == decrypt_sum(sk, codec, reference, 3)


def test_aggregation_params_and_contribution(keys: KeyPair) -> None:
    params = pv.aggregation_params("masked", 10, T, 1e4)
    assert (params.n_values, params.n_parties, params.key_bits) == (N_VALUES, 10, 2048)
    assert params.codec.max_addends >= 10 and params.codec.n_plaintexts(N_VALUES) == 1
    assert params.codec.max_value >= 1e4 and params.codec.min_value <= -1e4
    params.codec.encode_vector([1e4, -1e4])
    for bad in (
        lambda: pv.aggregation_params("plain", 4, T, 1.0),  # type: ignore[arg-type]
        lambda: pv.aggregation_params("ring", 1, T, 1.0),
        lambda: pv.aggregation_params("ring", 4, 0, 1.0),
        lambda: pv.aggregation_params("ring", 4, T, 1.0, key_bits=1024),
    ):
        with pytest.raises(ValueError, match=r"scheme|parties|horizon|key_bits"):
            bad()
    small = pv.aggregation_params("masked", 2, T, MAX_ABS)
    seeds = pv.pair_seeds_by_dh(["A", "B"])
    va, vb = [1.0] * N_VALUES, [2.0] * N_VALUES
    ea = pv.encrypt_contribution(small, keys.public_key, va, "A", seeds["A"], b"c")
    eb = pv.encrypt_contribution(small, keys.public_key, vb, "B", seeds["B"], b"c")
    assert pv.decrypt_residues(keys.private_key, ea) != small.codec.encode_vector(va)  # masked
    assert pv.decrypt_sum_checked(keys.private_key, small.codec, add(ea, eb), 2) == [3.0] * N_VALUES
    with pytest.raises(ValueError, match="pair seed"):
        pv.encrypt_contribution(small, keys.public_key, va, "A", None, b"c")
    with pytest.raises(ValueError, match="expected 25 values"):
        pv.encrypt_contribution(small, keys.public_key, va[:-1], "A", seeds["A"], b"c")
    ring = dataclasses.replace(small, scheme="ring")
    er = pv.encrypt_contribution(ring, keys.public_key, va, "A")
    assert pv.decrypt_residues(keys.private_key, er) == small.codec.encode_vector(va)  # not masked


# ---- the audit on real transcripts: claims (a) - (d) ---------------------------------------------------------


@pytest.mark.parametrize("n_mgs", [4, 5])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_au_alone_learns_only_the_sum(rounds: Any, keys: KeyPair, scheme: pv.Scheme, n_mgs: int) -> None:
    transcript, truth = rounds[(scheme, n_mgs)]
    for include_broadcast in (False, True):
        view = pv.reconstruct(transcript, {AU}, keys.private_key, include_broadcast=include_broadcast)
        assert view.decrypted == 1
        assert view.exposed == ()
        assert [e.values for e in view.exposures] == [None] * n_mgs
        assert view.learned_sums == (tuple(names(n_mgs)),)  # the sum of all, nothing finer
        true_sum = [sum(v[i] for v in truth.values()) for i in range(N_VALUES)]
        assert_close(view.total, true_sum, transcript.codec.error_bound(n_mgs) + 1e-12)


@pytest.mark.parametrize("n_mgs", [4, 5])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_b_mgs_without_au_learn_nothing_from_ciphertexts(rounds: Any, scheme: pv.Scheme, n_mgs: int) -> None:
    transcript, _ = rounds[(scheme, n_mgs)]
    for size in range(1, n_mgs):
        for coalition in combinations(names(n_mgs), size):
            hidden = pv.reconstruct(transcript, set(coalition), include_broadcast=False)
            assert (hidden.decrypted, hidden.total, hidden.exposed, hidden.learned_sums) == (0, None, (), ())
            if size < n_mgs - 1:  # with the broadcast: only the outsiders' total
                seen = pv.reconstruct(transcript, set(coalition))
                assert seen.exposed == ()
                assert seen.learned_sums == (tuple(m for m in names(n_mgs) if m not in coalition),)


@pytest.mark.parametrize("n_mgs", [4, 5])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_c_all_but_one_mg_learn_the_last_from_the_average(rounds: Any, scheme: pv.Scheme, n_mgs: int) -> None:
    transcript, truth = rounds[(scheme, n_mgs)]
    for target in names(n_mgs):
        others = set(names(n_mgs)) - {target}
        view = pv.reconstruct(transcript, others)
        assert view.exposed == (target,)
        assert_close(view.exposure(target).values, truth[target], transcript.codec.error_bound(1))
        assert pv.reconstruct(transcript, others, include_broadcast=False).exposed == ()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_c_with_two_mgs_each_learns_the_other(keys: KeyPair, codec: PackedCodec, scheme: pv.Scheme) -> None:
    vectors = random_vectors(2, seed=22)
    transcript = pv.simulate_round(keys, codec, vectors, scheme)
    truth = dict(vectors)
    for me, other in (("MG1", "MG2"), ("MG2", "MG1")):
        view = pv.reconstruct(transcript, {me})
        assert view.exposed == (other,)
        assert_close(view.exposure(other).values, truth[other], codec.error_bound(1))


def neighbours(order: Sequence[str], k: int) -> set[str]:
    """AU with MG_k's ring successor (unless MG_k is last) and predecessor (unless MG_k is first)."""
    coalition = {AU}
    if k + 1 < len(order):
        coalition.add(order[k + 1])
    if k > 0:
        coalition.add(order[k - 1])
    return coalition


def ring_attack(transcript: pv.Transcript, keys: KeyPair, k: int) -> list[float]:
    """The ring attack on MG_k: decrypt what its successor received minus what MG_k received, decode."""
    n, order = keys.public_key.n, transcript.ring_order
    after_enc = transcript.au_received if k + 1 == len(order) else transcript.mgs[k + 1].received
    assert after_enc is not None
    after = pv.decrypt_residues(keys.private_key, after_enc)
    before_enc = transcript.mgs[k].received
    before = [0] * len(after) if before_enc is None else pv.decrypt_residues(keys.private_key, before_enc)
    return transcript.codec.decode_sum([(a - b) % n for a, b in zip(after, before, strict=True)], 1, N_VALUES)


@pytest.mark.parametrize("n_mgs", [4, 5])
def test_d_ring_au_with_neighbours_learns_an_mg(rounds: Any, keys: KeyPair, n_mgs: int) -> None:
    transcript, truth = rounds[("ring", n_mgs)]
    order, bound = transcript.ring_order, transcript.codec.error_bound(1)
    for k, target in enumerate(order):
        coalition = neighbours(order, k)
        view = pv.reconstruct(transcript, coalition, keys.private_key)
        assert target in view.exposed
        assert_close(view.exposure(target).values, truth[target], bound)
        assert_close(ring_attack(transcript, keys, k), truth[target], bound)
    # the first MG: its successor alone with AU suffices (it decrypts x_1 itself)
    first = pv.reconstruct(transcript, {AU, order[1]}, keys.private_key, include_broadcast=False)
    assert first.exposed == (order[0],)
    # a middle MG: AU with its successor only gets the partial sum x_1 + ... + x_k
    mid = pv.reconstruct(transcript, {AU, order[2]}, keys.private_key)
    assert order[1] not in mid.exposed and order[:2] in mid.learned_sums


@pytest.mark.parametrize("n_mgs", [4, 5])
def test_d_masked_closes_the_ring_leak(rounds: Any, keys: KeyPair, n_mgs: int) -> None:
    transcript, truth = rounds[("masked", n_mgs)]
    order, bound = transcript.ring_order, transcript.codec.error_bound(1)
    for k, target in enumerate(order):
        coalition = neighbours(order, k)
        view = pv.reconstruct(transcript, coalition, keys.private_key)
        assert view.exposed == ()
        assert view.learned_sums == (tuple(m for m in order if m not in coalition),)
        attacked = ring_attack(transcript, keys, k)
        assert max(abs(a - b) for a, b in zip(attacked, truth[target], strict=True)) > 1000 * bound


@pytest.mark.parametrize("scheme", SCHEMES)
def test_reconstruction_matches_the_structural_audit_for_every_coalition(
    rounds: Any, keys: KeyPair, scheme: pv.Scheme
) -> None:
    transcript, truth = rounds[(scheme, 4)]
    parties = [AU, *names(4)]
    n_exposed = 0
    for size in range(1, len(parties) + 1):
        for coalition in combinations(parties, size):
            for include_broadcast in (True, False):
                view = pv.reconstruct(transcript, set(coalition), keys.private_key, include_broadcast=include_broadcast)
                audit = pv.coalition_audit(names(4), scheme, coalition, include_broadcast=include_broadcast)
                assert view.exposed == audit.exposed and view.learned_sums == audit.learned_sums
                assert view.coalition == audit.coalition
                for e in view.exposures:
                    if e.determined:
                        n_exposed += 1
                        assert_close(e.values, truth[e.mg], transcript.codec.error_bound(1))
    assert n_exposed > 0


def test_reconstruct_rejects_bad_coalitions(rounds: Any, keys: KeyPair) -> None:
    transcript, _ = rounds[("ring", 4)]
    with pytest.raises(ValueError, match="private key"):
        pv.reconstruct(transcript, {AU, "MG2"})
    other = generate_keypair(512, allow_insecure=True)
    with pytest.raises(ValueError, match="private key"):
        pv.reconstruct(transcript, {AU}, other.private_key)
    with pytest.raises(ValueError, match="unknown parties"):
        pv.reconstruct(transcript, {"MG9"})
    with pytest.raises(ValueError, match="at least one party"):
        pv.reconstruct(transcript, set())


# ---- structural audit ------------------------------------------------------------------------------------


def test_worst_coalitions_ring() -> None:
    summary = pv.worst_coalitions(names(4), "ring")
    rows = {r.mg: (r.min_size, r.coalitions) for r in summary.rows}
    assert rows == {
        "MG1": (2, ((AU, "MG2"),)),
        "MG2": (3, ((AU, "MG1", "MG3"), ("MG1", "MG3", "MG4"))),
        "MG3": (3, ((AU, "MG2", "MG4"), ("MG1", "MG2", "MG4"))),
        "MG4": (2, ((AU, "MG3"),)),
    }
    without = {r.mg: r.coalitions for r in pv.worst_coalitions(names(4), "ring", include_broadcast=False).rows}
    assert without["MG2"] == ((AU, "MG1", "MG3"),)  # no broadcast: all-but-one MGs alone learn nothing


@pytest.mark.parametrize("n_mgs", [3, 4, 6])
def test_worst_coalitions_masked_need_all_other_mgs(n_mgs: int) -> None:
    order = names(n_mgs)
    for r in pv.worst_coalitions(order, "masked").rows:
        assert (r.min_size, r.coalitions) == (n_mgs - 1, (tuple(m for m in order if m != r.mg),))
    for r in pv.worst_coalitions(order, "masked", include_broadcast=False).rows:
        assert (r.min_size, r.coalitions) == (n_mgs, ((AU, *(m for m in order if m != r.mg)),))
    capped = pv.worst_coalitions(order, "masked", max_size=n_mgs - 2)
    assert all((r.min_size, r.coalitions) == (None, ()) for r in capped.rows)


def test_audit_summary_text_and_json() -> None:
    summary = pv.worst_coalitions(names(4), "ring")
    data = json.loads(json.dumps(dataclasses.asdict(summary)))
    assert data["scheme"] == "ring" and data["rows"][0] == {"mg": "MG1", "min_size": 2, "coalitions": [[AU, "MG2"]]}
    text = summary.to_text()
    assert "MG1 -> MG2 -> MG3 -> MG4 -> AU" in text
    assert any(line.startswith("MG1") and "{AU, MG2}" in line for line in text.splitlines())
    assert "use 'masked'" in text
    masked_text = pv.worst_coalitions(names(4), "masked").to_text()
    assert "use 'masked'" not in masked_text and "{MG2, MG3, MG4}" in masked_text
    audit = pv.coalition_audit(names(5), "ring", {AU, "MG3"})
    assert json.loads(json.dumps(dataclasses.asdict(audit)))["exposed"] == []
    assert audit.learned_sums == (("MG1", "MG2"), ("MG4", "MG5"))


# ---- property tests: structural audit vs a brute-force attacker (no Paillier) ------------------------------

Q = 2**61 - 1  # a prime; the brute force works in Z_Q with random values


def simulate_world(
    order: Sequence[str], scheme: pv.Scheme, rng: random.Random
) -> tuple[dict[str, int], dict[Any, int]]:
    x = {m: rng.randrange(Q) for m in order}
    masks = {frozenset(p): rng.randrange(Q) for p in combinations(order, 2)} if scheme == "masked" else {}
    return x, masks


def adjusted_observations(
    order: Sequence[str], coalition: set[str], include_broadcast: bool, world: tuple[dict[str, int], dict[Any, int]]
) -> list[int]:
    """Every running sum the coalition can read, minus the members' own addends and known masks."""
    x, masks = world
    n = len(order)
    sign = {(a, b): (1 if a < b else -1) for a in order for b in order if a != b}
    y = {a: x[a] + sum(sign[(a, b)] * masks.get(frozenset((a, b)), 0) for b in order if b != a) for a in order}
    seen = set()
    if AU in coalition:
        seen = {k for k, m in enumerate(order) if k >= 1 and m in coalition} | {n}
    if include_broadcast:
        seen.add(n)
    out = []
    for k in sorted(seen):
        r_k = sum(y[a] for a in order[:k])
        known = sum(x[a] for a in order[:k] if a in coalition)
        for a in order[:k]:
            for b in order[k:]:
                if a in coalition or b in coalition:
                    known += sign[(a, b)] * masks.get(frozenset((a, b)), 0)
        out.append((r_k - known) % Q)
    return out


def brute_force_exposed(
    order: Sequence[str], scheme: pv.Scheme, coalition: set[str], include_broadcast: bool
) -> set[str]:
    """MGs some fixed -1/0/+1 combination of the coalition's observations reveals, in two random worlds."""
    rng = random.Random(12345)
    worlds = [simulate_world(order, scheme, rng) for _ in range(2)]
    obs = [adjusted_observations(order, coalition, include_broadcast, w) for w in worlds]
    exposed = set()
    for coeffs in np.ndindex(*([3] * len(obs[0]))):
        c = [v - 1 for v in coeffs]
        values = [sum(ci * o for ci, o in zip(c, ob, strict=True)) % Q for ob in obs]
        for m in order:
            if m not in coalition and all(v == w[0][m] for v, w in zip(values, worlds, strict=True)):
                exposed.add(m)
    return exposed


@st.composite
def coalitions(draw: st.DrawFn, max_mgs: int) -> tuple[list[str], set[str]]:
    order = names(draw(st.integers(2, max_mgs)))
    members = draw(st.lists(st.booleans(), min_size=len(order) + 1, max_size=len(order) + 1))
    coalition = {p for p, keep in zip([AU, *order], members, strict=True) if keep}
    if not coalition:
        coalition = {AU}
    return order, coalition


@settings(max_examples=150, deadline=None)
@given(coalitions(5), st.sampled_from(SCHEMES), st.booleans())
def test_structural_audit_agrees_with_brute_force(case: Any, scheme: pv.Scheme, include_broadcast: bool) -> None:
    order, coalition = case
    audit = pv.coalition_audit(order, scheme, coalition, include_broadcast=include_broadcast)
    assert set(audit.exposed) == brute_force_exposed(order, scheme, coalition, include_broadcast)
    assert set(audit.exposed) | set(audit.hidden) == set(order) - coalition


@settings(max_examples=200, deadline=None)
@given(coalitions(7), st.booleans())
def test_masked_only_all_but_one_mg_learn_an_mg(case: Any, include_broadcast: bool) -> None:
    order, coalition = case
    audit = pv.coalition_audit(order, "masked", coalition, include_broadcast=include_broadcast)
    outsiders = tuple(m for m in order if m not in coalition)
    mgs_in = len(order) - len(outsiders)
    knows_sum = include_broadcast or AU in coalition
    if mgs_in < len(order) - 1:
        assert audit.exposed == ()
    elif outsiders:
        assert audit.exposed == (outsiders if knows_sum else ())
    # nothing beyond the total of the outsiders, in any case
    assert audit.learned_sums == ((outsiders,) if knows_sum and outsiders else ())
