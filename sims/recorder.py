"""HDF5 recorder for mmg-cosim runs (h5py), in the layout of mosaik-hdf5.

File layout (see docs/architecture.md, "The HDF5 record")::

    /                         root attributes: scenario, strategy, start, step_s, n_steps (planned),
                              n_steps_completed, package_version, created_utc, config JSON, ...
    Series/<sid.eid>/<attr>   one dataset per recorded attribute of a SOURCE entity, row = time // step_s
    Plans/<sid.eid>/<attr>    attributes whose name starts with ``plan_`` (same rows)
    Pareto/<sid.eid>/<attr>   attributes whose name starts with ``pareto_``: a strategy's Pareto fronts
                              (same rows; a front is a list-valued attribute at its planning instant)
    Messages/<column>         appended 1-D columns: time_s, sender, receiver, kind, n_values,
                              ciphertext_bytes, values_json
    Relations/edges           (n, 2) strings from mosaik's entity graph (when mosaik provides it)
    KPIs/                     written after the run by :func:`write_kpis`

Value kinds, decided at the first non-missing value of a series:

* numbers and bools -> float64 1-D (bools and ints are stored as float64 too; missing = NaN);
* lists / tuples / arrays -> float64 2-D (step x element), width fixed at first sight; a shorter list is
  padded with NaN, a longer one is an error;
* strings (and dicts, stored as JSON strings) -> variable-length UTF-8 strings (missing = "").

Column inputs (the param ``columns``): a list-valued input whose element j is the value of one entity's
attribute (the grid's column outputs, ``"Bus.vm_pu"``: every bus's ``vm_pu``) is recorded as if each entity
had sent its own value: ``Series/<entity>/<attr>``, numbers (float64 1-D), the same datasets and values.
The runner connects the grid so (one input per column instead of one per entity and attribute: mosaik's
data exchange and this recorder's step cost per input, not per value). Its elements share one 2-D buffer
(each entity's buffer is a row of it), so a step stores a column with one vectorised assignment.

Row k is step k (time // step_size); a series that starts late or skips steps reads as NaN / "" in the
gaps. After ``finalize`` every dataset has exactly ``n_steps_completed`` rows (the root attribute). While a
run is going (or after it was killed) datasets grow a chunk window at a time, so they may hold NaN / ""
rows past ``n_steps_completed``; the read helpers of :mod:`sims.record_reader` cut them off.

Crash safety: rows are buffered ``buffer_steps`` at a time, written as one block per dataset and the file is
flushed after every block; between blocks the recorder makes no HDF5 calls. The file uses HDF5's default
(earliest) format without SWMR: a file written with ``libver="latest"`` or in SWMR mode and killed keeps its
"open for write" consistency flag, so a plain ``h5py.File(path, "r")`` refuses it until ``h5clear`` is run.
After SIGKILL, the file opens normally and holds every step up to the last flushed block (checked by
tests/test_recorder.py, and by 25 random-time kills of a 200-series run with buffer_steps=5 when written).

This module only writes (the record during the run, :func:`write_kpis` after it); :mod:`sims.record_reader`
reads a record back and defines what writer and reader share (message columns, string dtype, link names).
"""

from __future__ import annotations

import datetime as _dt
import errno
import importlib.metadata
import json
import logging
import math
import os
import resource
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, override

import h5py
import mosaik_api_v3
import numpy as np
from mosaik_api_v3.types import CreateResult, InputData, Meta, ModelName, OutputData, OutputRequest, SimId, Time

from sims.record_reader import MESSAGE_COLUMNS, STR_DTYPE, escape

logger = logging.getLogger(__name__)

META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Recorder": {
            "public": True,
            "params": [],
            "attrs": [],
            "any_inputs": True,
        },
    },
}

MESSAGES_ATTR = "messages"
PLAN_PREFIX = "plan_"
GROUP_OF_PREFIX = {PLAN_PREFIX: "Plans", "pareto_": "Pareto"}
"""Attributes whose name starts with one of these prefixes go to that group instead of ``Series``."""


def group_of(attr: str) -> str:
    """The top-level group an attribute's dataset lives in."""
    return next((g for p, g in GROUP_OF_PREFIX.items() if attr.startswith(p)), "Series")


def _package_version() -> str:
    try:
        return importlib.metadata.version("mmg-cosim")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=True)


def _set_attr(obj: h5py.Group | h5py.Dataset, key: str, value: Any) -> bool:
    """Store one attribute; dicts/lists become JSON strings. Returns True if JSON-encoded."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (dict, list, tuple)):
        obj.attrs[key] = _dumps(value)
        return True
    if isinstance(value, (str, bool, int, float)):
        obj.attrs[key] = value
        return False
    obj.attrs[key] = _dumps(value)
    return True


# --------------------------------------------------------------------------------------------------------
# Buffered columns
# --------------------------------------------------------------------------------------------------------


@dataclass
class _Column:
    """One recorded series: its dataset plus a buffer holding the rows of the current chunk window."""

    group: str  # "Series/<sid.eid>" or "Plans/<sid.eid>" (escaped)
    name: str  # escaped attribute name
    kind: str  # "float", "list" or "str"
    width: int
    buf: np.ndarray
    dataset: h5py.Dataset | None = None
    touched: bool = False  # a value arrived in the current window
    dirty: bool = False  # a value arrived since the last block (numbers: the window's chunk is written again)
    extent: int = -1  # rows the dataset has in the file

    def __post_init__(self) -> None:
        self.is_float = self.kind == "float"

    @property
    def label(self) -> str:
        return f"{self.group}/{self.name}"


@dataclass(eq=False)
class _Spread:
    """A column input (see the module docstring): one list per step, element j the value of entity ``srcs[j]``
    where ``sel`` (None: every element) picks the recorded elements."""

    label: str  # "<source>.<input attribute>", for messages
    attr: str  # the entities' attribute (its dataset name)
    top: str
    srcs: list[str]  # the recorded entities, full ids
    width: int  # elements per value
    sel: np.ndarray | None
    block: np.ndarray | None = None  # (len(srcs), chunk_rows): row j is the buffer of entity srcs[j]
    cols: list[_Column] = field(default_factory=list)
    touched: bool = False
    dirty: bool = False

    def values(self, value: Any) -> np.ndarray:
        """The recorded elements of one value as floats (None: NaN, bools: 0 / 1)."""
        if isinstance(value, (str, bytes, Mapping)):
            raise TypeError(f"recorder: column {self.label} holds lists of numbers but got {value!r}")
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"recorder: column {self.label} holds lists of numbers but got {value!r}") from exc
        if arr.shape != (self.width,):
            raise ValueError(f"recorder: column {self.label} has {self.width} elements, got shape {arr.shape}")
        return arr if self.sel is None else arr[self.sel]


def column_spreads(columns: Mapping[str, Mapping[str, Sequence[Any]]] | None) -> dict[str, dict[str, _Spread]]:
    """The param ``columns`` (source full id -> {input attribute: (attribute, [entity full id of each element,
    or None: not recorded])}) as input attribute -> source -> :class:`_Spread`."""
    out: dict[str, dict[str, _Spread]] = {}
    for src, by_attr in (columns or {}).items():
        for in_attr, spec in by_attr.items():
            attr, rows = spec
            picked = [j for j, r in enumerate(rows) if r is not None]
            sp = _Spread(
                label=f"{src}.{in_attr}",
                attr=str(attr),
                top=group_of(str(attr)),
                srcs=[str(rows[j]) for j in picked],
                width=len(rows),
                sel=None if len(picked) == len(rows) else np.array(picked, dtype=np.int64),
            )
            out.setdefault(str(in_attr), {})[str(src)] = sp
    return out


ROOM_RESERVE_BYTES = 256 * 1024
GROWTH_OVERHEAD = 1.5
"""Room kept free beyond twice a block (HDF5's metadata, the run's error attribute, closing)."""


class _Writer:
    """Owns the open HDF5 file, the column buffers and the message buffer.

    Rows are grouped in windows of ``chunk_rows`` rows, aligned with the datasets' chunks. A column's
    buffer holds its current window; a block write sets each dataset's extent to the rows completed so
    far and writes the whole window chunk at once (``write_direct_chunk`` for numbers: one cheap call per
    dataset and block, no partial-chunk read-back), then flushes the file.
    """

    def __init__(self, path: Path, buffer_steps: int, spreads: dict[str, dict[str, _Spread]] | None = None) -> None:
        if buffer_steps < 1:
            raise ValueError(f"buffer_steps must be >= 1, got {buffer_steps}")
        self.path = path
        self.buffer_steps = buffer_steps
        self.chunk_rows = buffer_steps * max(1, -(-256 // buffer_steps))
        path.parent.mkdir(parents=True, exist_ok=True)
        # Default (earliest) libver and no SWMR on purpose: see the module docstring.
        self.file = h5py.File(path, "w")
        for grp in ("Series", *GROUP_OF_PREFIX.values(), "Messages", "Relations"):
            self.file.create_group(grp)
        self.columns: dict[tuple[str, str, str], _Column] = {}
        self.by_attr: dict[str, dict[str, _Column]] = {}  # attr -> src -> column (an attr has one top group)
        self.spreads = spreads or {}  # input attr -> src -> column input
        self._buf_bytes = 0  # the columns' buffers
        self._extent_of_all = -1  # the extent every column's dataset has (-1: not all the same)
        self.win_start = 0  # first row of the current window (a multiple of chunk_rows)
        self.flushed = 0  # rows written to the file
        self.n_rows = 0  # rows seen (flushed + buffered)
        self.messages: list[tuple[Any, ...]] = []
        self.n_messages = 0
        self.out_of_room = False
        self._completed: h5py.h5a.AttrID | None = None
        self._create_message_datasets()

    # ---- columns ----------------------------------------------------------------------------------

    def column(self, src: str, attr: str, value: Any) -> _Column | None:
        """The column of ``src``'s ``attr``, made at its first value that is not None (None before)."""
        col = self.by_attr.get(attr, {}).get(src)
        if col is not None:
            return col
        kind, width = _kind_of(value)
        if kind is None:
            return None  # a missing value before the kind is known: nothing to record yet
        n = self.chunk_rows
        if kind == "float":
            buf = np.full(n, np.nan)
        elif kind == "list":
            buf = np.full((n, width), np.nan)
        else:
            buf = np.full(n, "", dtype=object)
        top = group_of(attr)
        col = _Column(f"{top}/{escape(src)}", escape(attr), kind, width, buf)
        self._add_column((top, src, attr), col)
        return col

    def _add_column(self, key: tuple[str, str, str], col: _Column) -> None:
        self.columns[key] = col
        self.by_attr.setdefault(key[2], {})[key[1]] = col
        self._buf_bytes += col.buf.nbytes
        self._extent_of_all = -1

    def spread(self, sp: _Spread, row: int, value: Any) -> None:
        """One value of a column input (see the module docstring; None: no value)."""
        if value is None:
            return
        arr = sp.values(value)
        if sp.block is None:
            self._open_spread(sp)
        assert sp.block is not None
        i = row - self.win_start
        if i < 0:
            for col, v in zip(sp.cols, arr.tolist(), strict=True):
                self._put_late(col, row, v)
            return
        sp.block[:, i] = arr
        sp.dirty = True
        if not sp.touched:
            sp.touched = True
            for col in sp.cols:
                col.touched = True

    def _open_spread(self, sp: _Spread) -> None:
        """The columns of a column input's entities, their buffers rows of one block."""
        block = np.full((len(sp.srcs), self.chunk_rows), np.nan)
        cols = []
        for j, src in enumerate(sp.srcs):
            col = self.by_attr.get(sp.attr, {}).get(src)
            if col is None:
                col = _Column(f"{sp.top}/{escape(src)}", escape(sp.attr), "float", 0, block[j])
                self._add_column((sp.top, src, sp.attr), col)
            elif not col.is_float:
                raise TypeError(f"recorder: {col.label} holds {col.kind} values, but column {sp.label} numbers")
            else:  # recorded one by one so far: its buffer becomes the block's row
                block[j] = col.buf
                col.buf = block[j]
            cols.append(col)
        sp.block, sp.cols = block, cols

    def put(self, col: _Column, row: int, value: Any) -> None:
        i = row - self.win_start
        if i < 0:
            self._put_late(col, row, value)
            return
        col.touched = col.dirty = True
        kind = col.kind
        if kind == "float":
            col.buf[i] = _to_float(value, col)
        elif kind == "list":
            col.buf[i] = _to_row(value, col)
        else:
            col.buf[i] = _to_str(value, col)

    def _put_late(self, col: _Column, row: int, value: Any) -> None:
        """A value for a row before the current window (time went back): write it directly."""
        logger.warning("recorder: %s got a value for step %d, already written; writing it directly", col.label, row)
        ds = self._dataset(col)
        if col.kind == "float":
            ds[row] = _to_float(value, col)
        elif col.kind == "list":
            ds[row] = _to_row(value, col)
        else:
            ds[row] = _to_str(value, col)
        self.file.flush()

    def _dataset(self, col: _Column) -> h5py.Dataset:
        if col.dataset is not None:
            return col.dataset
        grp = self.file.require_group(col.group)
        rows = self.flushed
        c = self.chunk_rows
        if col.kind == "float":
            ds = grp.create_dataset(
                col.name, shape=(rows,), maxshape=(None,), dtype=np.float64, chunks=(c,), fillvalue=np.nan
            )
        elif col.kind == "list":
            ds = grp.create_dataset(
                col.name,
                shape=(rows, col.width),
                maxshape=(None, col.width),
                dtype=np.float64,
                chunks=(c, col.width),
                fillvalue=np.nan,
            )
        else:
            ds = grp.create_dataset(col.name, shape=(rows,), maxshape=(None,), dtype=STR_DTYPE, chunks=(c,))
        col.dataset = ds
        col.extent = rows
        return ds

    # ---- messages -------------------------------------------------------------------------------

    def _create_message_datasets(self) -> None:
        grp = self.file["Messages"]
        for name, dtype in MESSAGE_COLUMNS:
            grp.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(1024,))

    def add_messages(self, src: str, value: Any, time_s: float) -> None:
        if value is None:
            return
        if isinstance(value, str):
            value = json.loads(value)
        if isinstance(value, Mapping):
            value = [value]
        for msg in value:
            if not isinstance(msg, Mapping):
                raise TypeError(f"recorder: a message from {src} is not a dict: {msg!r}")
            values = msg.get("values")
            cbytes = msg.get("ciphertext_bytes")
            t = msg.get("t", time_s)
            self.messages.append(
                (
                    float(t),
                    str(msg.get("sender", src)),
                    str(msg.get("receiver", "")),
                    str(msg.get("kind", "")),
                    -1 if values is None else len(values),
                    -1 if cbytes is None else int(cbytes),
                    "" if values is None else _dumps([float(v) for v in values]),
                )
            )

    def _write_messages(self) -> None:
        if not self.messages:
            return
        grp = self.file["Messages"]
        start, n = self.n_messages, len(self.messages)
        cols = list(zip(*self.messages, strict=True))
        for (name, dtype), data in zip(MESSAGE_COLUMNS, cols, strict=True):
            ds = grp[name]
            ds.resize((start + n,))
            ds[start : start + n] = np.array(data, dtype=object if dtype is STR_DTYPE else dtype)
        self.n_messages += n
        self.messages.clear()

    # ---- blocks ---------------------------------------------------------------------------------

    def advance(self, row: int) -> None:
        """Make ``row`` fit the window: write the buffered rows and move on when it falls past it."""
        if row >= self.win_start + self.chunk_rows:
            self.write_block(upto=row)
            self._new_window(row)

    def step_done(self, row: int) -> None:
        self.n_rows = max(self.n_rows, row + 1)
        if self.n_rows - self.flushed >= self.buffer_steps or self.n_rows >= self.win_start + self.chunk_rows:
            self.write_block(upto=self.n_rows)
            if self.n_rows >= self.win_start + self.chunk_rows:
                self._new_window(self.n_rows)

    def _new_window(self, row: int) -> None:
        self.win_start = (row // self.chunk_rows) * self.chunk_rows
        for col in self.columns.values():
            if col.touched:
                col.buf[:] = "" if col.kind == "str" else np.nan
                col.touched = False
        for by_src in self.spreads.values():
            for sp in by_src.values():
                sp.touched = False

    def write_block(self, upto: int | None = None, exact: bool = False) -> None:
        """Write rows [flushed, upto) of every column (the current window's chunk), then flush the file.

        Datasets grow a window at a time (one extent change per window instead of per block): until
        ``exact`` (at close), rows from ``n_steps_completed`` to the window's end read as NaN / "".
        """
        upto = max(self.n_rows, self.flushed) if upto is None else upto
        extent = upto if exact else max(upto, min(self.win_start + self.chunk_rows, upto + self.chunk_rows))
        self._check_room(extent)
        if upto > self.flushed or exact:
            offset_1d, offset_2d = (self.win_start,), (self.win_start, 0)
            for by_src in self.spreads.values():
                for sp in by_src.values():
                    if sp.dirty:
                        for col in sp.cols:
                            col.dirty = True
                        sp.dirty = False
            for col in self.columns.values():
                ds = col.dataset if col.dataset is not None else self._dataset(col)
                dsid = ds.id
                if col.extent != extent:
                    dsid.set_extent((extent, col.width) if col.kind == "list" else (extent,))
                    col.extent = extent
                if col.kind != "str":
                    # numbers: the window's whole chunk, again only if a value arrived since (a list's
                    # chunk of 24-value forecasts is 50 kB, and they arrive once a day)
                    if col.dirty:
                        dsid.write_direct_chunk(offset_2d if col.kind == "list" else offset_1d, col.buf.tobytes())
                        col.dirty = False
                elif col.touched:
                    lo = max(self.flushed, self.win_start)
                    hi = min(upto, self.win_start + self.chunk_rows)
                    if hi > lo:
                        ds[lo:hi] = col.buf[lo - self.win_start : hi - self.win_start]
            self._extent_of_all = extent
            self.flushed = max(self.flushed, upto)
            self.n_rows = max(self.n_rows, upto)
        self._write_messages()
        self._set_completed()
        self.file.flush()

    def _set_completed(self) -> None:
        """The root attribute ``n_steps_completed`` := the rows flushed (written in place: h5py's
        ``attrs[...] =`` deletes and creates the attribute, ten times the cost)."""
        if self._completed is None or not self._completed.valid:
            if "n_steps_completed" not in self.file.attrs:
                self.file.attrs["n_steps_completed"] = 0
            self._completed = h5py.h5a.open(self.file.id, b"n_steps_completed")
        self._completed.write(np.array(self.flushed, dtype=np.int64))

    def close(self) -> None:
        if not self.file.id.valid:
            return
        if not self.out_of_room:
            self.write_block(exact=True)
        self.file.close()

    def _check_room(self, extent: int) -> None:
        """Refuse a block the file system cannot take, before HDF5 writes anything of it.

        HDF5 does not survive a write that fails half-way (a full disk, a file-size limit): the file can
        be left inconsistent and the process may crash. A block is written only when the room left (free
        space on the file system, and the process's file-size limit) exceeds what it may add plus
        :data:`ROOM_RESERVE_BYTES`; otherwise OSError(ENOSPC) with the file intact at its last flush. A
        block rewrites its chunks in place, and a column that grows to ``extent`` adds its new rows, with
        HDF5's overhead (:data:`GROWTH_OVERHEAD`, measured: a first window of 3.8 MB of buffers grew the
        file by 5.4 MB)."""
        if self.out_of_room:
            raise OSError(errno.ENOSPC, f"recorder: {self.path}: no room left (see the first error)")
        growth = 0.0
        if extent != self._extent_of_all:  # some column's dataset grows (or is new)
            growth = sum(col.buf.nbytes * max(0, extent - col.extent) for col in self.columns.values())
        block = 512 * len(self.messages) + self._buf_bytes + GROWTH_OVERHEAD * growth / self.chunk_rows
        st = os.statvfs(self.path)
        room = st.f_bavail * st.f_frsize
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft != resource.RLIM_INFINITY:
            room = min(room, soft - self.path.stat().st_size)
        if room < block + ROOM_RESERVE_BYTES:
            self.out_of_room = True
            raise OSError(
                errno.ENOSPC,
                f"recorder: {self.path}: {room} bytes of room left for a block of about {block} bytes; "
                f"the file keeps its {self.flushed} flushed steps",
            )


def _kind_of(value: Any) -> tuple[str | None, int]:
    if value is None:
        return None, 0
    if isinstance(value, (str, Mapping)):
        return "str", 0
    if isinstance(value, (list, tuple, np.ndarray)):
        arr = np.asarray(value)
        if arr.ndim == 0:
            return "float", 0
        if arr.size == 0:
            return None, 0
        return "list", int(arr.size)
    return "float", 0


def _to_float(value: Any, col: _Column) -> float:
    t = type(value)
    if t is float or t is int or t is bool:  # the hot path: plain Python numbers
        return value
    if value is None:
        return math.nan
    if isinstance(value, (str, bytes, Mapping, list, tuple)) or np.ndim(value) != 0:
        raise TypeError(f"recorder: {col.label} holds numbers but got {type(value).__name__} {value!r}")
    return float(value)


def _to_row(value: Any, col: _Column) -> np.ndarray:
    row = np.full(col.width, np.nan)
    if value is None:
        return row
    if isinstance(value, (str, Mapping)) or np.ndim(value) == 0:
        raise TypeError(f"recorder: {col.label} holds lists but got {type(value).__name__} {value!r}")
    arr = np.array([math.nan if v is None else v for v in np.ravel(np.asarray(value, dtype=object))], dtype=np.float64)
    if arr.size > col.width:
        raise ValueError(
            f"recorder: {col.label} was first seen with {col.width} elements, now got {arr.size}; "
            "the width of a list-valued series is fixed at its first value"
        )
    row[: arr.size] = arr
    return row


def _to_str(value: Any, col: _Column) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return _dumps(value)
    raise TypeError(f"recorder: {col.label} holds strings but got {type(value).__name__} {value!r}")


# --------------------------------------------------------------------------------------------------------
# mosaik adapter
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecorderParams:
    """The sim params of :class:`RecorderSim` (``world.start("Recorder", **params)``)."""

    step_size: int = 3600
    """Time units per step (the recorder steps with the other simulators)."""
    path: str = "results/run.h5"
    """The HDF5 file to write (created or replaced)."""
    attrs: Mapping[str, Any] | None = None
    """Root attributes (scenario, strategy, config, ...); mappings and lists are stored as JSON."""
    buffer_steps: int = 24
    """Steps buffered in memory before a block is written and flushed."""
    n_steps: int | None = None
    """Steps the run is meant to have (for readers of a partial file)."""
    columns: Mapping[str, Mapping[str, Sequence[Any]]] | None = None
    """Column inputs: source full id -> {input attribute: (attribute, [the full id of the entity of each
    element, or None: not recorded])}; each element is recorded as that entity's ``attribute`` (see the
    module docstring)."""


def entity_graph(me: str, fed_by: Any, related: Any) -> dict[str, Any]:
    """The graph (``nodes``: id -> data, ``edges``: id pairs, each once) of the recorder ``me``, the
    entities that feed it (``fed_by``: id -> data) and theirs (``related``: id -> {neighbour: data}), from
    mosaik's answers to ``get_related_entities`` by entity."""
    if not isinstance(fed_by, Mapping) or not isinstance(related, Mapping):
        return {"nodes": {}, "edges": []}
    nodes: dict[str, Any] = {me: {"type": "Recorder"}, **fed_by}
    edges: dict[frozenset[str], tuple[str, str]] = {frozenset((e, me)): (e, me) for e in fed_by}
    for e, neighbours in related.items():
        for n, data in neighbours.items() if isinstance(neighbours, Mapping) else ():
            nodes.setdefault(n, data)
            edges.setdefault(frozenset((e, n)), (e, n))
    return {"nodes": nodes, "edges": sorted(edges.values())}


class RecorderSim(mosaik_api_v3.Simulator):
    """mosaik simulator writing every input it gets to one HDF5 file (one ``Recorder`` entity)."""

    def __init__(self) -> None:
        super().__init__(META)
        self.sid = ""
        self.eid: str | None = None
        self.step_size = 3600
        self.writer: _Writer | None = None
        self.path: Path | None = None

    @override
    def init(self, sid: SimId, time_resolution: float = 1.0, **sim_params: Any) -> Meta:
        """Open the file; ``sim_params`` are the fields of :class:`RecorderParams`."""
        params = RecorderParams(**sim_params)
        step_size, path, attrs = params.step_size, params.path, params.attrs
        buffer_steps, n_steps = params.buffer_steps, params.n_steps
        if step_size <= 0:
            raise ValueError(f"step_size must be > 0, got {step_size}")
        self.sid = sid
        self.time_resolution = time_resolution
        self.step_size = int(step_size)
        self.path = Path(path)
        self.writer = _Writer(self.path, int(buffer_steps), column_spreads(params.columns))
        f = self.writer.file
        json_keys = []
        for key, value in (attrs or {}).items():
            if value is None:
                continue
            if _set_attr(f, str(key), value):
                json_keys.append(str(key))
        f.attrs["json_keys"] = _dumps(json_keys)
        step_s = self.step_size * time_resolution
        f.attrs["step_s"] = step_s
        f.attrs["time_resolution"] = time_resolution
        f.attrs["package_version"] = _package_version()
        f.attrs["created_utc"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        if n_steps is not None:
            f.attrs["n_steps"] = int(n_steps)
        f.attrs["n_steps_completed"] = 0
        f["Series"].attrs["step_s"] = step_s
        for grp in GROUP_OF_PREFIX.values():
            f[grp].attrs["step_s"] = step_s
        f.flush()
        logger.info("recorder %s writes %s (buffer %d steps)", sid, self.path, buffer_steps)
        return self.meta

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        if model != "Recorder":
            raise ValueError(f"unknown model {model!r}; RecorderSim has only 'Recorder'")
        if self.eid is not None or num != 1:
            raise ValueError("RecorderSim holds exactly one Recorder entity per simulator instance")
        self.eid = "Recorder"
        return [{"eid": self.eid, "type": model}]

    @override
    def setup_done(self) -> Generator[Any, Any, None]:  # type: ignore[override]  # mosaik-api-v3 drives a generator
        """Store mosaik's entity graph in ``Relations/`` (a generator: mosaik awaits what it yields): the
        entities that feed the recorder and every entity related to one of them. Asked by entity, not as
        the whole graph, as mosaik's whole-graph answer is built by printing and parsing the graph again
        (minutes for the ~30,000 entities of a 5,000-bus grid)."""
        mosaik = getattr(self, "mosaik", None)
        if mosaik is None or self.writer is None:
            return
        me = f"{self.sid}.{self.eid}"
        try:
            fed_by = yield mosaik.get_related_entities(me)
            related = (yield mosaik.get_related_entities(sorted(fed_by))) if fed_by else {}
        except Exception:
            logger.warning("recorder: mosaik gave no entity graph; Relations/ stays empty", exc_info=True)
            return
        self._write_relations(entity_graph(me, fed_by, related))

    def _write_relations(self, graph: Any) -> None:
        assert self.writer is not None
        grp = self.writer.file["Relations"]
        try:
            nodes = graph.get("nodes", {}) if isinstance(graph, Mapping) else {}
            edges = [(str(e[0]), str(e[1])) for e in graph.get("edges", [])]
        except (AttributeError, TypeError, IndexError):
            logger.warning("recorder: unexpected entity graph %r; Relations/ stays empty", graph)
            return
        grp.create_dataset("edges", data=np.array(edges, dtype=object).reshape(-1, 2), dtype=STR_DTYPE)
        ids = sorted(nodes)
        grp.create_dataset("nodes", data=np.array(ids, dtype=object), dtype=STR_DTYPE)
        types = [str(nodes[i].get("type", "")) if isinstance(nodes[i], Mapping) else "" for i in ids]
        grp.create_dataset("node_types", data=np.array(types, dtype=object), dtype=STR_DTYPE)
        self.writer.file.flush()

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time = 0) -> Time:
        w = self.writer
        if w is None:
            raise RuntimeError("RecorderSim.step called before init")
        row = int(time) // self.step_size
        w.advance(row)
        time_s = time * self.time_resolution
        i = row - w.win_start
        in_window = i >= 0
        spreads = w.spreads
        for attrs in inputs.values():
            for attr, by_src in attrs.items():
                if attr == MESSAGES_ATTR:
                    for src, value in by_src.items():
                        w.add_messages(src, value, time_s)
                    continue
                cols = w.by_attr.get(attr)
                if cols is None:
                    cols = w.by_attr[attr] = {}
                by_spread = spreads.get(attr)
                for src, value in by_src.items():
                    if by_spread is not None and src in by_spread:
                        w.spread(by_spread[src], row, value)
                        continue
                    col = cols.get(src)
                    if col is None:
                        col = w.column(src, attr, value)
                        if col is None:
                            continue
                    t = type(value)
                    if in_window and col.is_float and (t is float or t is int or t is bool):
                        col.buf[i] = value  # the hot path, spelled out
                        col.touched = col.dirty = True
                    elif value is None and in_window and col.kind != "str":
                        continue  # no value: its row holds NaN already (a buffer is NaN where not written)
                    else:
                        w.put(col, row, value)
        w.step_done(row)
        return time + self.step_size

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        return {}

    @override
    def finalize(self) -> None:
        if self.writer is not None:
            self.writer.close()
            logger.info("recorder %s closed %s after %d steps", self.sid, self.path, self.writer.flushed)


# --------------------------------------------------------------------------------------------------------
# KPIs
# --------------------------------------------------------------------------------------------------------


def _write_kpi_group(grp: h5py.Group, kpis: Mapping[str, Any]) -> None:
    for key, value in kpis.items():
        name = escape(str(key))
        if isinstance(value, Mapping):
            _write_kpi_group(grp.create_group(name), value)
        elif value is None:
            grp.attrs[name] = math.nan
        elif isinstance(value, (list, tuple, np.ndarray)):
            arr = np.asarray(value)
            if arr.dtype.kind in "biuf":
                grp.create_dataset(name, data=arr.astype(np.float64))
            else:
                grp.attrs[name] = _dumps(value)
        else:
            _set_attr(grp, name, value)


def write_kpis(path: str | Path, kpis: Mapping[str, Any]) -> None:
    """Write ``KPIs/`` into a finished run file (replacing an earlier one).

    Scalars become attributes of ``KPIs`` (None -> NaN), nested dicts subgroups, numeric lists datasets;
    the whole dict is also stored as the JSON string attribute ``KPIs.attrs["json"]``.
    """
    with h5py.File(path, "a") as f:
        if "KPIs" in f:
            del f["KPIs"]
        grp = f.create_group("KPIs")
        _write_kpi_group(grp, kpis)
        grp.attrs["json"] = _dumps(dict(kpis))


def main() -> None:
    mosaik_api_v3.start_simulation(RecorderSim(), "mmg-cosim HDF5 recorder")


if __name__ == "__main__":
    main()
