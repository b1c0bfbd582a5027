"""Reading an mmg-cosim HDF5 record (the layout :mod:`sims.recorder` writes; docs/architecture.md).

:func:`open_run` -> :class:`Run` (attrs, series, plans, messages, kpis, relations), :func:`read_attrs`,
:func:`read_series`, :func:`read_plans`, :func:`read_messages`, :func:`read_kpis`, :func:`read_relations`.

Datasets of a run that is going, or was killed, may hold NaN / "" rows past the root attribute
``n_steps_completed``; the helpers cut them off. This module also defines what the writer and the reader
must agree on: the message columns, the string dtype and how ids become HDF5 link names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

STR_DTYPE = h5py.string_dtype("utf-8")
"""Variable-length UTF-8 strings: string series, message columns, relations."""
MESSAGE_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("time_s", np.float64),
    ("sender", STR_DTYPE),
    ("receiver", STR_DTYPE),
    ("kind", STR_DTYPE),
    ("n_values", np.int64),
    ("ciphertext_bytes", np.int64),
    ("values_json", STR_DTYPE),
)
"""The 1-D datasets of ``Messages/``, one row per message."""


def escape(name: str) -> str:
    """An HDF5 link name for a mosaik id or attribute ('/' is a path separator in HDF5)."""
    return name.replace("%", "%25").replace("/", "%2F")


def unescape(name: str) -> str:
    return name.replace("%2F", "/").replace("%25", "%")


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_attrs(path: str | Path) -> dict[str, Any]:
    """Root attributes; those stored as JSON (dicts/lists given to ``init``) are decoded."""
    with h5py.File(path, "r") as f:
        return _root_attrs(f)


def _root_attrs(f: h5py.File) -> dict[str, Any]:
    out = {k: _decode(v) for k, v in f.attrs.items()}
    for key in json.loads(out.pop("json_keys", "[]")):
        if key in out:
            out[key] = json.loads(out[key])
    return out


def _read_tree(f: h5py.File, top: str) -> dict[tuple[str, str], np.ndarray]:
    out: dict[tuple[str, str], np.ndarray] = {}
    if top not in f:
        return out
    n = int(f.attrs.get("n_steps_completed", 0))
    for src, grp in f[top].items():
        for attr, ds in grp.items():
            rows = min(n, ds.shape[0])  # a killed run leaves up to a window of unwritten rows
            is_text = h5py.check_string_dtype(ds.dtype) is not None
            data = ds.asstr()[:rows] if is_text else ds[:rows]
            out[(unescape(src), unescape(attr))] = data
    return out


def read_series(path: str | Path) -> dict[tuple[str, str], np.ndarray]:
    """``{(src_full_id, attr): array}`` with ``n_steps_completed`` rows each.

    Arrays are float64 (steps,), float64 (steps, width) for list-valued attributes, or str objects (steps,).
    """
    with h5py.File(path, "r") as f:
        return _read_tree(f, "Series")


def read_plans(path: str | Path) -> dict[tuple[str, str], np.ndarray]:
    """Like :func:`read_series`, for ``Plans/``."""
    with h5py.File(path, "r") as f:
        return _read_tree(f, "Plans")


def read_pareto(path: str | Path) -> dict[tuple[str, str], np.ndarray]:
    """Like :func:`read_series`, for ``Pareto/`` (empty for a record without one)."""
    with h5py.File(path, "r") as f:
        return _read_tree(f, "Pareto") if "Pareto" in f else {}


def _read_messages(f: h5py.File) -> list[dict[str, Any]]:
    if "Messages" not in f or "time_s" not in f["Messages"]:
        return []
    grp = f["Messages"]
    cols = {}
    for name, dtype in MESSAGE_COLUMNS:
        cols[name] = grp[name].asstr()[...] if dtype is STR_DTYPE else grp[name][...]
    out = []
    for i in range(len(cols["time_s"])):
        n_values = int(cols["n_values"][i])
        cbytes = int(cols["ciphertext_bytes"][i])
        msg: dict[str, Any] = {
            "t": float(cols["time_s"][i]),
            "sender": str(cols["sender"][i]),
            "receiver": str(cols["receiver"][i]),
            "kind": str(cols["kind"][i]),
        }
        if n_values >= 0:
            msg["values"] = json.loads(cols["values_json"][i])
        if cbytes >= 0:
            msg["ciphertext_bytes"] = cbytes
        out.append(msg)
    return out


def read_messages(path: str | Path) -> list[dict[str, Any]]:
    """Messages as dicts ``{t, sender, receiver, kind, values? , ciphertext_bytes?}`` in write order."""
    with h5py.File(path, "r") as f:
        return _read_messages(f)


def read_kpis(path: str | Path) -> dict[str, Any]:
    """The KPI dict given to :func:`write_kpis` (from its JSON copy); ``{}`` if none was written."""
    with h5py.File(path, "r") as f:
        if "KPIs" not in f:
            return {}
        return json.loads(_decode(f["KPIs"].attrs["json"]))


def read_relations(path: str | Path) -> list[tuple[str, str]]:
    """Edges of mosaik's entity graph as ``(full_id, full_id)`` pairs; ``[]`` if none were stored."""
    with h5py.File(path, "r") as f:
        return _read_relations(f)


def _read_relations(f: h5py.File) -> list[tuple[str, str]]:
    if "Relations" not in f or "edges" not in f["Relations"]:
        return []
    return [(str(a), str(b)) for a, b in f["Relations/edges"].asstr()[...]]


@dataclass
class Run:
    """Everything a report needs from one run file, in memory."""

    attrs: dict[str, Any]
    series: dict[tuple[str, str], np.ndarray]
    plans: dict[tuple[str, str], np.ndarray]
    messages: list[dict[str, Any]]
    kpis: dict[str, Any]
    relations: list[tuple[str, str]] = field(default_factory=list)

    @property
    def n_steps(self) -> int:
        return int(self.attrs.get("n_steps_completed", 0))

    @property
    def step_s(self) -> float:
        return float(self.attrs["step_s"])


def open_run(path: str | Path) -> Run:
    """Read a whole run file (also one left by a killed run) into a :class:`Run`."""
    with h5py.File(path, "r") as f:
        kpis = json.loads(_decode(f["KPIs"].attrs["json"])) if "KPIs" in f else {}
        return Run(
            attrs=_root_attrs(f),
            series=_read_tree(f, "Series"),
            plans=_read_tree(f, "Plans"),
            messages=_read_messages(f),
            kpis=kpis,
            relations=_read_relations(f),
        )
