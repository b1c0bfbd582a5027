"""Tests of the privacy layer: fixed-point and packed codecs, Paillier aggregation, the channel and audit.

Most tests use 512-bit keys through ``allow_insecure=True`` (fast; never allowed in a scenario); one test
uses a real 2048-bit key pair.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ems_controllers.core.channel import Channel, audit
from ems_controllers.core.crypto import (
    MIN_KEY_BITS,
    EncryptedVector,
    FixedPoint,
    KeyPair,
    PackedCodec,
    add,
    aggregate,
    ciphertext_bytes,
    decrypt_sum,
    encrypt_vector,
    generate_keypair,
    ring_aggregate,
    round_half_even,
)
from sims.record_reader import read_messages
from sims.recorder import RecorderSim

SMALL_BITS = 512


@pytest.fixture(scope="module")
def small_keys() -> KeyPair:
    return generate_keypair(SMALL_BITS, allow_insecure=True)


def random_values(rng: np.random.Generator, n: int) -> list[float]:
    """Signed values across magnitudes 1e-9 .. 1e4, with some exact zeros."""
    mags = 10.0 ** rng.uniform(-9, 4, n)
    vals = rng.choice([-1.0, 1.0], n) * mags
    vals[rng.random(n) < 0.05] = 0.0
    return [float(v) for v in vals]


# ---- encoding -------------------------------------------------------------------------------------------


def test_round_half_even_matches_exact_rational_rounding() -> None:
    rng = np.random.default_rng(1)
    for x in random_values(rng, 5000):
        for scale in (10**6, 10**3, 7):
            assert round_half_even(x, scale) == round(Fraction(x) * scale)  # Fraction rounds half to even
    # exact ties go to the even neighbour, on both signs
    assert [round_half_even(x, 4) for x in (0.125, 0.375, -0.125, -0.375, 0.625)] == [0, 2, 0, -2, 2]
    with pytest.raises(ValueError, match="cannot encode non-finite value nan"):
        round_half_even(math.nan, 10)
    with pytest.raises(ValueError, match="cannot encode non-finite value inf"):
        round_half_even(math.inf, 10)


def test_fixed_point_rounding_bound_property() -> None:
    rng = np.random.default_rng(2)
    for scale in (10**6, 10**3):
        codec = FixedPoint(scale=scale)
        bound = 0.5 / scale
        for x in random_values(rng, 20000):
            m = codec.encode(x)
            assert abs(Fraction(m, scale) - Fraction(x)) <= Fraction(1, 2 * scale)  # exact statement
            assert abs(codec.decode(m) - x) <= bound + abs(x) * 2.0**-52  # plus the float result's rounding
        assert codec.encode(-1.25) == -round(1.25 * scale) and codec.decode(codec.encode(-1.25)) == -1.25


def test_sum_decoding_bound_property() -> None:
    rng = np.random.default_rng(3)
    codec = FixedPoint(scale=10**6)
    for _ in range(500):
        k = int(rng.integers(1, 30))
        xs = random_values(rng, k)
        decoded = codec.decode_sum([sum(codec.encode(x) for x in xs)], k, 1)[0]
        exact = sum(Fraction(x) for x in xs)
        assert abs(Fraction(decoded) - exact) <= Fraction(k, 2 * 10**6) + Fraction(abs(decoded)) * Fraction(1, 2**52)
        assert abs(decoded - float(exact)) <= codec.error_bound(k) * (1 + 1e-9) + abs(decoded) * 2.0**-52


def test_invalid_codecs() -> None:
    for bad in ({"scale": 0}, {"scale": 1.5}, {"max_addends": 0}):
        with pytest.raises(ValueError, match="must be a positive int"):
            FixedPoint(**bad)
    with pytest.raises(ValueError, match="leave no room for max_addends"):
        PackedCodec(slot_bits=4, n_slots=2, max_addends=16)  # no room for the offset


# ---- keys -----------------------------------------------------------------------------------------------


def test_keys_below_2048_bits_are_refused_by_default() -> None:
    assert MIN_KEY_BITS == 2048
    for bits in (512, 1024, 2047):
        with pytest.raises(ValueError, match="2048"):
            generate_keypair(bits)
    assert generate_keypair(SMALL_BITS, allow_insecure=True).n_bits == SMALL_BITS


def test_real_2048_bit_keys_aggregate_a_day_of_loads() -> None:
    kp = generate_keypair()  # the default: 2048 bits
    assert kp.n_bits == 2048
    rng = np.random.default_rng(4)
    loads = [list(rng.uniform(-0.5, 2.0, 24)) for _ in range(3)]  # negative: a prosumer feeding in
    truth = np.sum(loads, axis=0)
    for codec in (FixedPoint(), PackedCodec.for_key(2048, max_abs=1000.0, max_addends=64)):
        enc = aggregate(encrypt_vector(kp.public_key, codec, v) for v in loads)
        got = decrypt_sum(kp.private_key, codec, enc, 3)
        assert np.max(np.abs(np.array(got) - truth)) <= codec.error_bound(3) + 1e-12
        per_ct = ciphertext_bytes(kp.public_key)
        assert per_ct == 512  # n^2 has 4096 bits
        assert enc.ciphertext_bytes == per_ct * codec.n_plaintexts(24)
    assert PackedCodec.for_key(2048, max_abs=1000.0, max_addends=64).n_plaintexts(24) == 1


# ---- packing --------------------------------------------------------------------------------------------


def test_packing_layout_and_no_overflow_at_max_addends(small_keys: KeyPair) -> None:
    codec = PackedCodec(scale=1000, slot_bits=20, n_slots=10, max_addends=8)
    cap, off = codec.capacity, codec.offset
    assert cap == (2**20 - 1) // 8 and off == cap // 2
    assert codec.min_value == -off / 1000 and codec.max_value == (cap - off) / 1000
    n = 23  # three plaintexts, the last one partly used
    pk, sk = small_keys.public_key, small_keys.private_key
    for extreme in (codec.min_value, codec.max_value):
        vecs = [[extreme] * n for _ in range(codec.max_addends)]
        enc = aggregate(encrypt_vector(pk, codec, v) for v in vecs)
        assert len(enc.ciphertexts) == 3 and enc.n_addends == 8
        assert decrypt_sum(sk, codec, enc, 8) == pytest.approx([8 * extreme] * n, abs=1e-9)
    # alternating extremes in neighbouring slots: a carry would show up in the next slot
    alt = [codec.max_value if i % 2 else codec.min_value for i in range(n)]
    enc = aggregate(encrypt_vector(pk, codec, alt) for _ in range(8))
    assert decrypt_sum(sk, codec, enc, 8) == pytest.approx([8 * a for a in alt], abs=1e-9)
    # one addend more than the headroom allows is refused before it could overflow
    with pytest.raises(ValueError, match="max_addends"):
        add(enc, encrypt_vector(pk, codec, alt))
    with pytest.raises(ValueError, match="outside the packed range"):
        encrypt_vector(pk, codec, [codec.max_value + 1.0 / 1000])


def test_packing_random_negative_values(small_keys: KeyPair) -> None:
    rng = np.random.default_rng(5)
    codec = PackedCodec.for_key(SMALL_BITS, max_abs=50.0, scale=10**6, max_addends=12)
    assert codec.slot_bits * codec.n_slots <= SMALL_BITS - 3
    for k in (1, 5, 12):
        vecs = [list(rng.uniform(-50.0, 50.0, 24)) for _ in range(k)]
        enc = aggregate(encrypt_vector(small_keys.public_key, codec, v) for v in vecs)
        got = np.array(decrypt_sum(small_keys.private_key, codec, enc, k))
        assert np.max(np.abs(got - np.sum(vecs, axis=0))) <= codec.error_bound(k) + 1e-9
        plain_enc = [codec.encode_vector(v) for v in vecs]
        slot_sums = [sum(p) for p in zip(*plain_enc, strict=True)]
        assert codec.decode_sum(slot_sums, k, 24) == pytest.approx(list(got), abs=0)


def test_packing_must_fit_the_key(small_keys: KeyPair) -> None:
    codec = PackedCodec(slot_bits=40, n_slots=13, max_addends=4)  # 520 bits > a 512-bit key
    with pytest.raises(ValueError, match="do not fit"):
        encrypt_vector(small_keys.public_key, codec, [1.0])


# ---- aggregation ----------------------------------------------------------------------------------------


def test_aggregation_equals_sum_of_owner_vectors(small_keys: KeyPair) -> None:
    rng = np.random.default_rng(6)
    codec = FixedPoint(scale=10**6, max_addends=16)
    owners = [random_values(rng, 24) for _ in range(5)]
    encs = [encrypt_vector(small_keys.public_key, codec, v) for v in owners]
    enc = aggregate(encs)
    got = decrypt_sum(small_keys.private_key, codec, enc, 5)
    exact = [sum(Fraction(v[j]) for v in owners) for j in range(24)]
    for g, e in zip(got, exact, strict=True):
        assert abs(Fraction(g) - e) <= Fraction(5, 2 * 10**6) + Fraction(abs(g)) / 2**52
    # add is commutative and counts addends; decrypting with a wrong count is refused
    assert decrypt_sum(small_keys.private_key, codec, add(encs[1], encs[0]), 2) == decrypt_sum(
        small_keys.private_key, codec, add(encs[0], encs[1]), 2
    )
    with pytest.raises(ValueError, match="addends"):
        decrypt_sum(small_keys.private_key, codec, enc, 4)
    with pytest.raises(ValueError, match="aggregate needs at least one vector"):
        aggregate([])


def test_fixed_point_sum_range_is_checked_against_the_key(small_keys: KeyPair) -> None:
    codec = FixedPoint(scale=10**6, max_addends=4)
    too_big = float(small_keys.public_key.max_int) / 10**6  # |m| > max_int // max_addends
    with pytest.raises(ValueError, match="too large"):
        encrypt_vector(small_keys.public_key, codec, [too_big])
    big = float(small_keys.public_key.max_int // 4) / 10**6 * 0.999
    enc = aggregate(encrypt_vector(small_keys.public_key, codec, [-big]) for _ in range(4))
    assert decrypt_sum(small_keys.private_key, codec, enc, 4)[0] == pytest.approx(-4 * big, rel=1e-12)


def test_mixing_keys_or_codecs_is_refused(small_keys: KeyPair) -> None:
    other = generate_keypair(SMALL_BITS, allow_insecure=True)
    a = encrypt_vector(small_keys.public_key, FixedPoint(), [1.0, 2.0])
    with pytest.raises(ValueError, match="keys"):
        add(a, encrypt_vector(other.public_key, FixedPoint(), [1.0, 2.0]))
    with pytest.raises(ValueError, match="codecs"):
        add(a, encrypt_vector(small_keys.public_key, FixedPoint(scale=1000), [1.0, 2.0]))
    with pytest.raises(ValueError, match="codecs or lengths"):
        add(a, encrypt_vector(small_keys.public_key, FixedPoint(), [1.0]))
    with pytest.raises(ValueError, match="private key"):
        decrypt_sum(other.private_key, FixedPoint(), a, 1)


# ---- channel and audit ----------------------------------------------------------------------------------


def mg_aggregation(
    channel: Channel,
    keys: KeyPair,
    codec: FixedPoint | PackedCodec,
    loads: dict[str, list[float]],
    t: float,
    leaky: bool = False,
) -> list[float]:
    """One planning instant of spec 000's owner -> EMS aggregation; ``leaky`` sends plaintext loads."""
    for owner, load in loads.items():
        if leaky:
            channel.send(t, owner, "ems", "load_forecast", values=load)
        else:
            channel.send(t, owner, "ems", "load_forecast", ciphertext=encrypt_vector(keys.public_key, codec, load))
    inbox = channel.receive("ems", "load_forecast")
    assert {e.sender for e in inbox} == set(loads)
    if leaky:
        return [sum(col) for col in zip(*(e.values for e in inbox if e.values is not None), strict=True)]
    assert all(e.values is None and e.ciphertext is not None for e in inbox)
    enc = aggregate(e.ciphertext for e in inbox if e.ciphertext is not None)
    total = decrypt_sum(keys.private_key, codec, enc, len(loads))
    channel.send(t, "ems", "outer_mg", "net_exchange", values=total)  # the protocol's one plaintext
    return total


def test_ems_never_receives_an_owner_plaintext(small_keys: KeyPair) -> None:
    rng = np.random.default_rng(7)
    loads = {f"owner{i}": list(rng.uniform(-0.2, 1.5, 24)) for i in range(3)}
    ch = Channel()
    packed = PackedCodec.for_key(SMALL_BITS, max_abs=10.0, max_addends=8)
    for codec in (FixedPoint(), packed):
        total = mg_aggregation(ch, small_keys, codec, loads, 3600.0)
        assert np.max(np.abs(np.array(total) - np.sum(list(loads.values()), axis=0))) <= codec.error_bound(3)
    msgs = ch.drain()
    assert ch.drain() == [] and ch.pending("ems") == 0
    owner_msgs = [m for m in msgs if m["sender"].startswith("owner")]
    assert len(owner_msgs) == 6
    for m in owner_msgs:
        assert "values" not in m and m["ciphertext_bytes"] > 0 and m["n_values"] == 24
        assert m["t"] == 3600.0 and m["receiver"] == "ems" and m["kind"] == "load_forecast"
    assert owner_msgs[0]["ciphertext_bytes"] == 24 * ciphertext_bytes(small_keys.public_key)
    assert owner_msgs[-1]["ciphertext_bytes"] == packed.n_plaintexts(24) * ciphertext_bytes(small_keys.public_key)
    assert packed.n_plaintexts(24) < 24
    assert audit(msgs) == {"outer_mg": {"ems": {"net_exchange"}}}


def test_leaky_variant_is_caught_by_audit(small_keys: KeyPair) -> None:
    loads = {"owner0": [1.0, 2.0], "owner1": [0.5, -0.5]}
    ch = Channel()
    mg_aggregation(ch, small_keys, FixedPoint(), loads, 0.0, leaky=True)
    report = audit(ch.drain())
    assert report["ems"] == {"owner0": {"load_forecast"}, "owner1": {"load_forecast"}}


def test_channel_rules() -> None:
    ch = Channel()
    kp = generate_keypair(SMALL_BITS, allow_insecure=True)
    enc = encrypt_vector(kp.public_key, FixedPoint(), [1.0])
    with pytest.raises(ValueError, match="exactly one"):
        ch.send(0.0, "a", "b", "k", values=[1.0], ciphertext=enc)
    with pytest.raises(ValueError, match="exactly one"):
        ch.send(0.0, "a", "b", "k")
    with pytest.raises(ValueError, match="two named parties"):
        ch.send(0.0, "a", "a", "k", values=[1.0])
    not_values: Any = enc  # a ciphertext passed as plaintext values: the run-time check is under test
    with pytest.raises(TypeError, match="values must be a sequence of numbers, got EncryptedVector"):
        ch.send(0.0, "a", "b", "k", values=not_values)
    ch.send(0.0, "a", "b", "price", values=[])
    ch.send(1.0, "c", "b", "bid", ciphertext=enc)
    ch.send(2.0, "a", "b", "price", values=[3.0])
    assert [e.t for e in ch.receive("b", "price")] == [0.0, 2.0]
    assert [e.kind for e in ch.receive("b")] == ["bid"] and ch.receive("b") == []
    assert audit(ch.drain()) == {"b": {"a": {"price"}}}
    with pytest.raises(ValueError, match="both"):
        audit([{"t": 0, "sender": "a", "receiver": "b", "kind": "k", "values": [1.0], "ciphertext_bytes": 8}])


def test_ring_aggregation_through_the_channel(small_keys: KeyPair) -> None:
    rng = np.random.default_rng(8)
    mgs = [f"mg{i}" for i in range(1, 5)]
    eeps = [list(rng.uniform(-3, 3, 24)) for _ in mgs]
    codec = PackedCodec.for_key(SMALL_BITS, max_abs=100.0, max_addends=16)
    ch = Channel()

    def hop(i: int, running: EncryptedVector) -> None:
        ch.send(60.0, mgs[i], mgs[i + 1] if i + 1 < len(mgs) else "au", "eep_partial_sum", ciphertext=running)

    enc, hops = ring_aggregate(small_keys.public_key, codec, eeps, on_hop=hop)
    assert hops == [ciphertext_bytes(small_keys.public_key) * codec.n_plaintexts(24)] * 4
    [arrived] = ch.receive("au")
    assert arrived.ciphertext is not None
    total = decrypt_sum(small_keys.private_key, codec, arrived.ciphertext, 4)
    assert np.max(np.abs(np.array(total) - np.sum(eeps, axis=0))) <= codec.error_bound(4)
    msgs = ch.drain()
    assert [(m["sender"], m["receiver"]) for m in msgs] == [
        ("mg1", "mg2"),
        ("mg2", "mg3"),
        ("mg3", "mg4"),
        ("mg4", "au"),
    ]
    assert audit(msgs) == {} and enc.n_addends == 4


def test_message_dicts_round_trip_through_the_recorder(tmp_path: Path, small_keys: KeyPair) -> None:
    ch = Channel()
    mg_aggregation(ch, small_keys, FixedPoint(), {"owner0": [1.0, -2.0], "owner1": [0.25, 0.5]}, 0.0)
    first = ch.drain()
    mg_aggregation(ch, small_keys, FixedPoint(), {"owner0": [1.0, 2.0], "owner1": [0.5, -0.5]}, 3600.0, leaky=True)
    second = ch.drain()
    sim = RecorderSim()
    sim.init("Rec", step_size=3600, path=str(tmp_path / "run.h5"))
    sim.create(1, "Recorder")
    sim.step(0, {"Recorder": {"messages": {"Nested-0.ems": first}}}, 0)
    sim.step(3600, {"Recorder": {"messages": {"Nested-0.ems": second}}}, 0)
    sim.finalize()
    back = read_messages(tmp_path / "run.h5")
    sent = first + second
    assert len(back) == len(sent)
    for got, want in zip(back, sent, strict=True):
        expected = {k: v for k, v in want.items() if k != "n_values"}
        assert got == expected
    assert (
        audit(back)
        == audit(sent)
        == {"outer_mg": {"ems": {"net_exchange"}}, "ems": {"owner0": {"load_forecast"}, "owner1": {"load_forecast"}}}
    )
