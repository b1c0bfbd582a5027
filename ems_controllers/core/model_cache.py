"""Build once, re-solve many times: the one solve-and-cache wrapper of every Pyomo model an EMS solves.

A strategy's model (the local party's MILP, the centralized system MILP, the network operator's MILP of
the security-constrained strategy, ...) keeps a :class:`ModelCache`. Each solve names the model's
*structure* by a hashable key (what fixes its variables, rows and coefficients) and passes two
callables: ``build()`` makes the Pyomo model with placeholder data, ``write(model)`` writes this solve's
data into its mutable params. The cache builds a model the first time its key is asked for, binds it to
a :class:`~ems_controllers.core.solver.PersistentHighs` for its lifetime, and re-solves it by parameter
update from then on; the least recently used model goes when more than ``size`` are held.

``keep``: an object the model depends on by identity (e.g. a network whose ``id`` is part of the key); the
entry holds it, so the id stays valid, and a cached model is reused only for the very same object.

Exceptions of ``build`` and ``write`` (bad input) reach the caller; the solve itself never raises (see
:class:`PersistentHighs`). Pure math: no mosaik.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import pyomo.environ as pyo

from ems_controllers.core.solver import PersistentHighs, RawSolve
from ems_controllers.core.types import PartyPlan, SolveResult, SolverOptions, SolveTimes


@dataclass
class _Entry:
    model: pyo.ConcreteModel
    solver: PersistentHighs
    build_s: float
    keep: object


@dataclass(frozen=True)
class ModelRun:
    """One solve of a cached model: the model (holding the solution iff ``raw.feasible``), what HiGHS
    said, and where the time went."""

    model: pyo.ConcreteModel
    raw: RawSolve
    times: SolveTimes

    def result[D](self, plans: dict[str, PartyPlan] | None, detail: D | None = None) -> SolveResult[D]:
        """This solve as a :class:`SolveResult` with the plans read from the model (None unless
        feasible): ``build_s`` = build (when rebuilt) + data, ``solve_s`` = translate/update + HiGHS."""
        raw, times = self.raw, self.times
        return SolveResult(
            raw.status,
            raw.termination,
            raw.objective if raw.feasible else None,
            plans,
            times.pyomo_build_s + times.set_data_s,
            raw.translate_s + raw.highs_s,
            raw.mip_gap,
            raw.message,
            times=times,
            detail=detail,
        )


StartValues = Callable[[pyo.ConcreteModel], Sequence[tuple[Any, float]]]
"""A model -> values of some of its variables ((VarData, value) pairs): a partial MIP start."""


class ModelCache:
    """Pyomo models by structure key, each built once and re-solved through its own PersistentHighs."""

    def __init__(self, size: int, backend: str = "contrib") -> None:
        self.size = size
        self.backend = backend
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def solve(
        self,
        key: Hashable,
        build: Callable[[], pyo.ConcreteModel],
        write: Callable[[Any], None],
        opts: SolverOptions,
        *,
        keep: object = None,
        start: StartValues | None = None,
    ) -> ModelRun:
        """Get (or build) the model of ``key``, write this solve's data into it and solve it (``start``:
        the model -> values of some of its variables, a partial MIP start HiGHS completes; see
        :meth:`PersistentHighs.solve`)."""
        entry = self._entries.get(key)
        rebuilt = entry is None or entry.keep is not keep
        if entry is not None and not rebuilt:
            self._entries.move_to_end(key)
        else:
            t0 = time.perf_counter()
            model = build()
            entry = _Entry(model, PersistentHighs(model, self.backend), time.perf_counter() - t0, keep)
            self._entries[key] = entry
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        t0 = time.perf_counter()
        write(entry.model)
        set_data_s = time.perf_counter() - t0
        raw = entry.solver.solve(opts, start(entry.model) if start is not None else None)
        times = SolveTimes(
            rebuilt, entry.build_s if rebuilt else 0.0, set_data_s, raw.translate_s, raw.highs_s, self.backend
        )
        return ModelRun(entry.model, raw, times)
