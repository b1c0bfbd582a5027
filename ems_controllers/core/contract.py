"""The strategy contract: what a coordination strategy declares, so that the config, the wiring, the
recorder, the KPIs and the command line can use it without knowing it by name.

A strategy is one folder with a mosaik simulator and a ``strategy.py`` that defines one :class:`Strategy`.
It declares

- its ``name``, its ``simulator`` (``"module:Class"``, a :class:`mosaik_api_v3.Simulator`) and a one-line
  ``description``;
- its own settings (``settings``: a pydantic model whose fields live in the config's ``[ems]`` table next
  to the settings every strategy shares, validated with the config, so ``--set ems.<field>=...`` errors
  name the field; they reach the simulator as ``init`` params);
- what it needs of a scenario and what it cannot handle, as :class:`Capability` values (``requires``,
  ``cannot_handle``, and ``requires_for(settings)`` where that depends on its settings);
- what its entities output (``outputs`` of each party's ``MG`` entity; the recorder records all of them
  and the grid takes the setpoints among them: ``unserved_mw`` is shed from the party's loads,
  ``load_shift_mw`` is added to its own load) and which further entities it creates (``owner_agent``:
  one per owner load, ``system_entity``: one for the whole system, ``switch_entity``: one per cluster
  switch, whose ``closed`` drives it, ``svc_entity``: one per static var compensator, whose ``q_mvar``
  drives it); whether it operates the tie switches
  (``operates_tie_switches``: the network operator's entity outputs ``tie_closed``); whether its parties
  are agents iterating with a coordinator in a same-time loop (``agents``: :class:`AgentLoop`); whether
  its parties' ``MG`` entities are independent of each other inside its simulator (``partitionable``: a
  run may then spread them over several simulator processes, ``run.processes``);
- its duty to the privacy audit: a strategy without ``owner_agent`` gets each owner's load forecast in
  plaintext, with the ``MG`` entity's ``load_owners`` param (source entity -> owner); it must output
  what it received as ``messages`` (sender ``<MG>:<owner>``), as the shipped ones do, or declare
  ``cannot_handle`` owner loads;
- the KPIs of its own outputs (``kpis``: ``"module:function"``, a :data:`KpiHook`), computed from the
  record next to the KPIs every strategy gets, its own figures (``plots``, a :data:`PlotHook`) and what
  its protocol lets coalitions of parties learn (``audit``, an :data:`AuditHook`, for ``mmg-cosim audit``);
- whether it is the reference the others are measured against (``reference``: ``compare`` reports each
  strategy's cost gap to it).

This module imports no strategy; ``ems_controllers/registry.py`` collects the shipped ones and the
plug-ins (entry point group ``mmg_cosim.strategies``). See ``docs/writing-a-strategy.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from ems_controllers.core.entities import EntityMap


class Capability(StrEnum):
    """Something a scenario has (or is) that a strategy may need or be unable to handle."""

    NETWORK_OPERATOR = "network_operator"
    CHP = "chp"
    NESTED = "nested"
    OWNER_LOADS = "owner_loads"
    TIE_SWITCHES = "tie_switches"
    ISLANDED = "islanded"
    CLUSTERS = "clusters"
    TRANSFORMERS = "transformers"
    SUB_STEP_PHYSICS = "sub_step_physics"

    @property
    def meaning(self) -> str:
        return _MEANING[self]


GRID_TIED = frozenset({Capability.ISLANDED})
"""What a strategy that trades with an upstream grid cannot handle."""

_MEANING = {
    Capability.NETWORK_OPERATOR: "a network operator party (DN) owning the feeder's loads and its own units",
    Capability.CHP: "a CHP unit in every microgrid",
    Capability.NESTED: "microgrids nested in other microgrids",
    Capability.OWNER_LOADS: "loads of owners inside a microgrid (owners keep their data from its EMS)",
    Capability.TIE_SWITCHES: "tie switches between feeders that an EMS may operate",
    Capability.ISLANDED: "no external grid: the system runs islanded",
    Capability.CLUSTERS: "microgrids grouped in clusters with switches MG-cluster, cluster-cluster and "
    "cluster-network that an EMS may operate",
    Capability.TRANSFORMERS: "transformers in service between voltage levels (a network model of lines at one "
    "voltage cannot represent them)",
    Capability.SUB_STEP_PHYSICS: "physics steps shorter than the EMS's (scenario.step_s < ems.step_s): the EMS's "
    "outputs hold over several recorded steps, and a KPI hook that counts or sums them per recorded step "
    "would count each EMS step several times",
}


class StrategySettings(BaseModel):
    """Base class of a strategy's settings: strict, frozen; every field needs a default."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NoSettings(StrategySettings):
    """The settings of a strategy that has none of its own."""


@dataclass(frozen=True)
class EntityModel:
    """A mosaik model of the strategy's simulator besides ``MG``.

    As ``owner_agent`` it is created once per owner load with ``mg=<MG name>, owner=<owner>``, gets the
    owner's ``load_forecast_p_mw`` and stands between the owner and the MG's EMS; as ``system_entity`` it is
    created once, without params; as ``switch_entity`` it is created once per cluster switch (each
    cluster's feeder switch ``"<C> feeder"`` and each tie's ``"<C1>-<C2> tie"``) with
    ``switch=<switch name>`` in the EMS simulator (a strategy of agents: in the coordinator's), and its
    output ``closed`` drives that switch in the grid; as ``svc_entity`` once per static var compensator
    (config ``[[svcs]]``) with ``svc=<name>``, and its output ``q_mvar`` (Mvar, generator sign) is the
    SVC's reactive setpoint. ``outputs`` are recorded."""

    model: str
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class AgentLoop:
    """A strategy whose parties are agents that iterate at a planning instant in a mosaik same-time loop.

    The wiring starts the strategy's ``simulator`` once per party (each with one ``MG`` entity, so each
    may run as a process of its own) and the ``coordinator`` simulator (``"module:Class"``, one entity of
    ``model``, created with ``parties``: the ring order), all inside one ``world.group()``, and connects

    - ``ring`` (out, in): party k -> party k+1 in the parties' order, the last party -> the coordinator;
    - ``to_coordinator`` (out, in) pairs: every party -> the coordinator;
    - ``broadcast`` (out, in): the coordinator -> every party, as a *weak* connection (it closes the loop);

    every party entity gets the params ``ring_prev`` and ``ring_next`` (a party's name, None for the first
    party, ``"AU"`` after the last). The run raises mosaik's ``max_loop_iterations`` to
    ``loop_iterations(settings)``. The coordinator's ``outputs`` are recorded."""

    coordinator: str
    model: str
    outputs: tuple[str, ...]
    ring: tuple[str, str]
    broadcast: tuple[str, str]
    to_coordinator: tuple[tuple[str, str], ...] = ()
    loop_iterations: Callable[[Any], int] = lambda settings: 100


class RunRecord(Protocol):
    """What a strategy's KPI hook reads of a finished run (the HDF5 record)."""

    @property
    def entities(self) -> EntityMap: ...

    @property
    def n(self) -> int: ...

    @property
    def dt_h(self) -> float:
        """The recorded (physics) step in hours."""
        ...

    @property
    def per_ems_step(self) -> int:
        """Recorded steps per EMS step (1 unless the physics steps faster than the EMS)."""
        ...

    def at_ems_steps(self, a: np.ndarray) -> np.ndarray:
        """The rows of a recorded series at which the EMS stepped (its outputs hold in between)."""
        ...

    def s(self, fid: str, attr: str) -> np.ndarray:
        """The recorded series of ``fid``'s ``attr`` (NaN where it is missing)."""
        ...

    def get(self, fid: str, attr: str) -> np.ndarray | None:
        """The recorded dataset of ``fid``'s ``attr`` as stored (2-D for list values; from ``Series/``,
        else ``Pareto/``), or None."""
        ...

    def text(self, fid: str, attr: str) -> list[str]:
        """A recorded text series (e.g. ``ems_status``), one entry per step."""
        ...

    @property
    def attrs(self) -> dict[str, Any]:
        """The record's root attributes: scenario, strategy, the config as JSON (``attrs["config"]``)..."""
        ...

    def grid_series(self, model: str, attr: str) -> tuple[list[int], np.ndarray]:
        """The pandapower indices of the grid's ``model`` entities (``Bus``, ``Line``, ...) that recorded
        ``attr``, sorted, and their series as columns (steps x elements)."""
        ...


@dataclass
class StrategyKpis:
    """What a strategy's KPI hook adds: top-level KPIs and per-party ones (merged into ``parties``)."""

    top: dict[str, Any] = field(default_factory=dict)
    by_party: dict[str, dict[str, float]] = field(default_factory=dict)


KpiHook = Callable[[RunRecord], StrategyKpis]
PlotHook = Callable[[RunRecord, Path, str], list[Path]]
"""A strategy's figures of its own outputs: (record, output folder, title) -> the PNG files written."""


@dataclass
class StrategyAudit:
    """What a strategy's protocol lets parties (and coalitions of them) learn, beyond the messages on
    record: ``text`` for people, ``data`` (JSON-safe) for programs."""

    text: str
    data: dict[str, Any] = field(default_factory=dict)


AuditHook = Callable[[RunRecord], StrategyAudit]


class StrategyError(ValueError):
    """A strategy cannot be found, loaded or run on a scenario; the message says why."""


@dataclass(frozen=True)
class Strategy:
    """One coordination strategy, as the rest of the package sees it (see the module docstring)."""

    name: str
    simulator: str
    description: str
    outputs: tuple[str, ...]
    settings: type[StrategySettings] = NoSettings
    requires: frozenset[Capability] = frozenset()
    cannot_handle: frozenset[Capability] = frozenset()
    requires_for: Callable[[Any], frozenset[Capability]] | None = None
    owner_agent: EntityModel | None = None
    system_entity: EntityModel | None = None
    switch_entity: EntityModel | None = None
    """One entity per cluster switch (each cluster's feeder switch and each tie), created with
    ``switch=<switch name>``; its output ``closed`` drives that switch; its ``outputs`` are recorded."""
    svc_entity: EntityModel | None = None
    """One entity per static var compensator, created with ``svc=<name>``; its output ``q_mvar`` is the
    SVC's reactive setpoint (without one the SVCs stay at 0 Mvar); its ``outputs`` are recorded."""
    operates_tie_switches: bool = False
    kpis: str | None = None
    plots: str | None = None
    audit: str | None = None
    agents: AgentLoop | None = None
    reference: bool = False
    """A benchmark rather than a coordination scheme (full information, the network in the model):
    ``mmg-cosim compare`` sets every other strategy's cost against it (``gap_to_reference``)."""
    partitionable: bool = False
    """Its parties' ``MG`` entities (and their owners' agents) are independent of each other inside its
    simulator, except that a party and the MGs nested in it plan together: one simulator instance holding
    any share of the parties (whole nesting trees) outputs for each what one instance holding all of them
    would (but for a round's aggregate over the parties it holds, such as a planner's ``objective``, and
    for timings). A run may then spread them over ``run.processes`` simulators, each a process of its own, whose
    solves run in parallel. Not with ``agents`` (each party is a simulator of its own already) nor with
    entities for the whole system (``system_entity``, ``switch_entity``, ``svc_entity``)."""

    def __post_init__(self) -> None:
        if ":" not in self.simulator:
            raise StrategyError(f"strategy {self.name!r}: simulator must be 'module:Class', not {self.simulator!r}")
        if not (isinstance(self.settings, type) and issubclass(self.settings, StrategySettings)):
            raise StrategyError(f"strategy {self.name!r}: settings must subclass StrategySettings")
        if self.partitionable:
            whole = [f for f in ("agents", "system_entity", "switch_entity", "svc_entity") if getattr(self, f)]
            if whole:
                raise StrategyError(
                    f"strategy {self.name!r}: partitionable, but its {', '.join(whole)} couple its parties "
                    "inside its simulator"
                )

    @classmethod
    def declare(
        cls,
        module: str,
        simulator_class: str,
        outputs: tuple[str, ...],
        settings: type[StrategySettings] = NoSettings,
        requires: frozenset[Capability] = frozenset(),
        cannot_handle: frozenset[Capability] = frozenset(),
        **fields: Any,
    ) -> Strategy:
        """The contract of a strategy whose package is ``module``'s: its name is the package's last part
        (or ``fields["name"]``), its simulator ``<package>.sim:<simulator_class>`` and its description
        ``module``'s docstring (its words, joined into one line)."""
        package = module.rsplit(".", 1)[0]
        doc = importlib.import_module(module).__doc__ or ""
        name = fields.pop("name", package.rsplit(".", 1)[-1])
        return cls(
            name=name,
            simulator=f"{package}.sim:{simulator_class}",
            description=" ".join(doc.split()),
            outputs=outputs,
            settings=settings,
            requires=requires,
            cannot_handle=cannot_handle,
            **fields,
        )

    @property
    def module(self) -> str:
        return self.simulator.split(":", 1)[0]

    def make_settings(self, values: Mapping[str, Any]) -> StrategySettings:
        """This strategy's settings from the ``[ems]`` fields it declares (the others are ignored)."""
        fields = self.settings.model_fields
        return self.settings.model_validate({k: v for k, v in values.items() if k in fields})

    def problem(self, offered: frozenset[Capability], settings: StrategySettings) -> str | None:
        """Why this strategy cannot run on a scenario with the ``offered`` capabilities (None: it can)."""
        needed = set(self.requires) | set(self.requires_for(settings) if self.requires_for else ())
        missing = sorted(needed - offered)
        if missing:
            return "; ".join(f"it needs {c.value} ({c.meaning}), which the scenario lacks" for c in missing)
        unsupported = sorted(set(self.cannot_handle) & offered)
        if unsupported:
            return "; ".join(f"it cannot handle {c.value} ({c.meaning}), which the scenario has" for c in unsupported)
        return None

    def kpi_hook(self) -> KpiHook | None:
        hook: KpiHook | None = _load(self.kpis)
        return hook

    def plot_hook(self) -> PlotHook | None:
        hook: PlotHook | None = _load(self.plots)
        return hook

    def audit_hook(self) -> AuditHook | None:
        hook: AuditHook | None = _load(self.audit)
        return hook


def _load(target: str | None) -> Any:
    """The object a ``"module:name"`` hook names (None for no hook)."""
    if target is None:
        return None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
