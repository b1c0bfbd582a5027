"""Benchmark of the privacy layer (ems_controllers.core.crypto) per planning instant.

Run: ``python tests/bench/bench_crypto.py [--bits 2048 3072] [--repeats 5] [--keygen-repeats 3]``.

For each key size: key generation; encryption of one 24-value load forecast with one value per ciphertext
(FixedPoint, scale 1e6) and packed (PackedCodec.for_key, |x| <= 1000, up to 64 addends: all 24 values in
one ciphertext); homomorphic aggregation of 3 and 10 owners' vectors; decryption of the sum; the total
per planning instant of an MG with 3 owners, as compute summed over all parties (3 encryptions +
aggregation + decryption) and as latency when the owners encrypt in parallel (1 encryption + aggregation
+ decryption); bytes one owner sends. The baseline, measured in the same process, is the plaintext sum
of the same 3 vectors in Python, so the crypto overhead is a ratio. Times are the median of ``--repeats``
runs (key generation: mean and range of ``--keygen-repeats`` runs; it varies with the primes found).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ems_controllers.core.crypto import (
    EncryptedVector,
    FixedPoint,
    PackedCodec,
    aggregate,
    decrypt_sum,
    encrypt_vector,
    generate_keypair,
)

N_VALUES = 24


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def plaintext_sum(vectors: list[list[float]]) -> list[float]:
    return [sum(col) for col in zip(*vectors, strict=True)]


def bench_key_size(n_bits: int, repeats: int, keygen_repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    keygen = []
    kp = None
    for _ in range(keygen_repeats):
        t0 = time.perf_counter()
        kp = generate_keypair(n_bits)
        keygen.append(time.perf_counter() - t0)
    assert kp is not None
    pk, sk = kp.public_key, kp.private_key
    loads = [[float(v) for v in rng.uniform(0.0, 2.0, N_VALUES)] for _ in range(10)]
    out: dict[str, Any] = {
        "bits": n_bits,
        "keygen_s": statistics.mean(keygen),
        "keygen_min_s": min(keygen),
        "keygen_max_s": max(keygen),
    }
    codecs: dict[str, FixedPoint | PackedCodec] = {
        "unpacked": FixedPoint(scale=10**6, max_addends=64),
        "packed": PackedCodec.for_key(n_bits, max_abs=1000.0, scale=10**6, max_addends=64),
    }
    for name, codec in codecs.items():

        def enc_one(c: FixedPoint | PackedCodec = codec) -> EncryptedVector:
            return encrypt_vector(pk, c, loads[0])

        enc_t = median_time(enc_one, repeats)
        encs = [encrypt_vector(pk, codec, v) for v in loads]

        def agg_first3(e: list[EncryptedVector] = encs) -> EncryptedVector:
            return aggregate(e[:3])

        def agg_first10(e: list[EncryptedVector] = encs) -> EncryptedVector:
            return aggregate(e[:10])

        agg3 = median_time(agg_first3, repeats)
        agg10 = median_time(agg_first10, repeats)
        total3 = aggregate(encs[:3])

        def dec_total3(c: FixedPoint | PackedCodec = codec, t: EncryptedVector = total3) -> list[float]:
            return decrypt_sum(sk, c, t, 3)

        dec = median_time(dec_total3, repeats)
        got = decrypt_sum(sk, codec, total3, 3)
        err = max(abs(a - b) for a, b in zip(got, plaintext_sum(loads[:3]), strict=True))
        assert err <= codec.error_bound(3) + 1e-12, err
        out[name] = {
            "n_ciphertexts": len(encs[0].ciphertexts),
            "bytes_per_owner": encs[0].ciphertext_bytes,
            "encrypt_s": enc_t,
            "agg3_s": agg3,
            "agg10_s": agg10,
            "decrypt_s": dec,
            "instant_compute_s": 3 * enc_t + agg3 + dec,
            "instant_latency_s": enc_t + agg3 + dec,
            "max_error": err,
        }
        if name == "packed":
            assert isinstance(codec, PackedCodec)
            out["packing"] = f"{codec.n_slots} slots x {codec.slot_bits} bits"
    return out


def fmt_t(s: float) -> str:
    if s >= 1.0:
        return f"{s:8.2f} s "
    if s >= 1e-3:
        return f"{s * 1e3:8.2f} ms"
    return f"{s * 1e6:8.1f} us"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bits", type=int, nargs="+", default=[2048, 3072])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--keygen-repeats", type=int, default=3)
    args = ap.parse_args()

    rng = np.random.default_rng(1)
    vecs = [[float(v) for v in rng.uniform(0.0, 2.0, N_VALUES)] for _ in range(10)]
    base3 = median_time(lambda: plaintext_sum(vecs[:3]), 1000)
    base10 = median_time(lambda: plaintext_sum(vecs), 1000)
    try:
        import gmpy2  # noqa: F401

        backend = "gmpy2"
    except ImportError:
        backend = "pure Python (install gmpy2: ~8x faster)"
    print(f"phe backend: {backend}; vector length {N_VALUES}; median of {args.repeats} runs")
    print(f"baseline plaintext sum of 24-value vectors: 3 owners {fmt_t(base3)}, 10 owners {fmt_t(base10)}")

    results = [bench_key_size(b, args.repeats, args.keygen_repeats) for b in args.bits]
    for r in results:
        print(
            f"\n== {r['bits']}-bit key: key generation {fmt_t(r['keygen_s'])} (mean of "
            f"{args.keygen_repeats}, range {fmt_t(r['keygen_min_s']).strip()} .. "
            f"{fmt_t(r['keygen_max_s']).strip()}); packing: {r['packing']}"
        )
        u, p = r["unpacked"], r["packed"]
        print(f"{'per planning instant':<44}{'unpacked':>12}{'packed':>12}{'packed/unp.':>13}")
        rows = [
            ("ciphertexts per 24-value vector", "n_ciphertexts", None),
            ("bytes sent per owner", "bytes_per_owner", None),
            ("encrypt one 24-value forecast", "encrypt_s", fmt_t),
            ("aggregate 3 owners (2 additions/value)", "agg3_s", fmt_t),
            ("aggregate 10 owners (9 additions/value)", "agg10_s", fmt_t),
            ("decrypt the sum", "decrypt_s", fmt_t),
            ("MG with 3 owners: compute, all parties", "instant_compute_s", fmt_t),
            ("MG with 3 owners: latency, owners parallel", "instant_latency_s", fmt_t),
        ]
        for label, key, f in rows:
            a, b = u[key], p[key]
            sa, sb = (f(a), f(b)) if f else (f"{a:>9d}  ", f"{b:>9d}  ")
            print(f"{label:<44}{sa:>12}{sb:>12}{b / a:>12.3f}")
        print(
            f"{'overhead vs plaintext sum (compute, 3 own.)':<44}"
            f"{u['instant_compute_s'] / base3:>11.0f}x{p['instant_compute_s'] / base3:>11.0f}x"
        )
        print(f"{'max |decrypted - true sum| (bound 1.5e-6)':<44}{u['max_error']:>12.1e}{p['max_error']:>12.1e}")


if __name__ == "__main__":
    main()
