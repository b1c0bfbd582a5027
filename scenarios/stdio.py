"""Standard output carries a command's result and nothing else.

Solvers, numba, pandapower, mosaik and simulator child processes may print at the C or Python level
(highspy >= 1.16 prints its banner on file descriptor 1 when the first ``Highs`` object is created,
before any option can switch it off). :func:`result_stdout` therefore points file descriptor 1 at
standard error for the whole of a command, so that everything printed while it works, by this process
or by the children it starts, lands there, and hands the command a stream on the real standard output
for its result: a table for a person, or exactly one strict JSON document (:func:`write_json`).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stdout, suppress
from typing import Any, TextIO

import numpy as np


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed or broken stream: nothing to keep
            stream.flush()


@contextmanager
def result_stdout() -> Iterator[TextIO]:
    """File descriptor 1 -> standard error while the block runs; yields a stream on the real stdout."""
    _flush_std()
    saved = os.dup(1)
    out = os.fdopen(os.dup(saved), "w", encoding="utf-8", closefd=True)
    os.dup2(2, 1)
    try:
        with redirect_stdout(sys.stderr):  # also where sys.stdout is not descriptor 1 (embedding, tests)
            yield out
    finally:
        _flush_std()
        os.dup2(saved, 1)
        os.close(saved)
        try:
            out.flush()
        finally:
            out.close()


def strict(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None`` and numpy scalars and arrays as Python values."""
    if isinstance(value, Mapping):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [strict(v) for v in items]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if value is None or isinstance(value, str):
        return value
    return str(value)


def write_json(out: TextIO, document: Any) -> None:
    """Write ``document`` as one strict JSON document (RFC 8259: no NaN, no Infinity) and a newline."""
    out.write(json.dumps(strict(document), indent=2, allow_nan=False))
    out.write("\n")
