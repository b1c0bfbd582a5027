"""Scenario-agnostic wiring: the mosaik world around a scenario's net, as the strategy's contract says.

The builder makes the net and layout (:func:`scenarios.build.build_net`: the grid and where each party's
units sit); :func:`wire` starts the grid, profile and EMS simulators (the EMS: one, one per party for a
strategy of agents, or ``run.processes`` of them each holding a share of the parties), creates one
profile entity per load, PV and wind unit (a standard profile, pvlib / windpowerlib, or a series from the
scenario's data file; the network operator's feeder loads reach the grid as one load group), one ``MG``
entity per party and the strategy's extra entities (its contract's ``owner_agent``,
``system_entity``, ``switch_entity`` and ``svc_entity``), connects actuals to the grid, forecasts and measured state of
charge to the EMS, the EMS's setpoints, switch states (tie switches if the contract
``operates_tie_switches``; each cluster switch from its ``switch_entity``; each SVC's reactive power from
its ``svc_entity``), planned load shedding
(``unserved_mw`` -> the loads' ``shed_mw``, if the contract outputs it; a party with several loads sheds
them in proportion to their demand, see :func:`mark_shed_groups`) and demand response (``load_shift_mw``
-> the party's own load's ``p_mw``, added to its profile, if the contract outputs it) to the grid, and
lists what the runner records (the typed entity map, and every output the contract declares).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandapower as pp

from ems_controllers.core.contract import EntityModel, Strategy
from ems_controllers.core.entities import EntityMap, PartyEntities
from ems_controllers.core.types import Microgrid
from ems_controllers.registry import get_strategy
from scenarios.config import BatteryCfg, Config, LoadCfg, MgCfg, PvCfg, UnitsCfg, WindCfg
from scenarios.layout import DN, NetLayout, PartyUnits, mark_shed_groups, party_loads

FEEDER_GROUP = "feeders"
"""The grid's and the profile simulator's load group of the network operator's feeder loads."""


@dataclass
class Built:
    """What ``build`` hands back: the entity map and ``(entity, attrs)`` pairs to record."""

    entity_map: dict[str, Any]
    to_record: list[tuple[Any, list[str]]]


def site_of(cfg: Config, layout: NetLayout) -> dict[str, Any]:
    """Where things are in the grid, for network-aware EMSs: the net (pandapower JSON, all switches in
    their initial state), each party's bus (an MG's own bus behind its PCC), the tie and PCC switches, and
    the clusters (``clusters``: name -> bus, network_bus, line, switch, switch_name, mgs), the ties
    between them (``cluster_ties``: name, between, line, switch) and the static var compensators (``svcs``:
    name -> bus, sgen, q_min_mvar, q_max_mvar); pandapower indices throughout."""
    net = layout.net
    return {
        "net": pp.to_json(net),
        "party_bus": {name: int(p.bus) for name, p in layout.parties.items()},
        "tie_switches": [int(s) for s in layout.tie_switches],
        "pcc_switches": {name: int(p.pcc_switch) for name, p in layout.parties.items() if p.pcc_switch is not None},
        "clusters": {
            name: {
                "bus": int(c.bus),
                "network_bus": int(c.network_bus),
                "line": int(c.line),
                "switch": int(c.switch),
                "switch_name": str(net.switch.at[c.switch, "name"]),
                "mgs": list(c.mgs),
            }
            for name, c in layout.clusters.items()
        },
        "cluster_ties": [
            {"name": t.name, "between": list(t.between), "line": int(t.line), "switch": int(t.switch)}
            for t in layout.cluster_ties
        ],
        "svcs": {
            name: {
                "bus": int(net.sgen.at[idx, "bus"]),
                "sgen": int(idx),
                "q_min_mvar": float(net.sgen.at[idx, "min_q_mvar"]),
                "q_max_mvar": float(net.sgen.at[idx, "max_q_mvar"]),
            }
            for name, idx in layout.svcs.items()
        },
    }


def cluster_switches(layout: NetLayout) -> dict[str, int]:
    """Every cluster switch by name: each cluster's feeder switch, then each tie's (pandapower indices)."""
    net = layout.net
    feeders = {str(net.switch.at[c.switch, "name"]): int(c.switch) for c in layout.clusters.values()}
    return {**feeders, **{t.name: int(t.switch) for t in layout.cluster_ties}}


def party_microgrid(cfg: Config, name: str) -> Microgrid:
    """The EMS's view of one party: its units, PCC limit and penalty prices (trade prices per EMS step)."""
    units: UnitsCfg | None = cfg.dn if name == DN else next(m for m in cfg.mgs if m.name == name)
    pen = cfg.penalties
    if units is None:
        return Microgrid(
            name=name,
            pcc_max_mw=1e3,
            res_curtailment_price_per_mwh=pen.res_curtailment_price_per_mwh,
            load_shed_price_per_mwh=pen.load_shed_price_per_mwh,
        )
    diesel = units.generator.model_dump(exclude_none=True) if units.generator else None
    battery = None
    if units.battery is not None:
        battery = units.battery.model_dump(exclude={"grid_forming"})
    trade_cfg_owner = units if isinstance(units, MgCfg) else None
    trade = trade_cfg_owner.trade if trade_cfg_owner else None
    trade_buy, trade_sell = trade.at_step(cfg.ems_step_s) if trade else (None, None)
    return Microgrid.from_dict(
        {
            "name": name,
            "diesel": diesel,
            "battery": battery,
            "pcc_max_mw": units.pcc_max_mw if isinstance(units, MgCfg) else 1e3,
            "res_curtailment_price_per_mwh": pen.res_curtailment_price_per_mwh,
            "load_shed_price_per_mwh": pen.load_shed_price_per_mwh,
            "pv_curtailable": units.pv.curtailable if units.pv else True,
            "parent": trade_cfg_owner.parent if trade_cfg_owner else None,
            "trade_buy_price_per_mwh": trade_buy,
            "trade_sell_price_per_mwh": trade_sell,
            "wind_curtailable": units.wind.curtailable if units.wind else True,
            "extra": {"ev": units.ev.model_dump()} if isinstance(units, MgCfg) and units.ev is not None else {},
        }
    )


def _fid(entity: Any) -> str:
    return entity.full_id


def _profile(prof: Any, unit: LoadCfg | PvCfg | WindCfg, cfg: Config, **load_kw: Any) -> Any:
    """The profile entity of one load / PV / wind unit: a series from the data file if it has one."""
    err = cfg.forecast.error_std
    if isinstance(unit, WindCfg):
        return prof.Wind(
            p_rated_mw=unit.p_rated_mw,
            turbine_type=unit.turbine_type,
            hub_height_m=unit.hub_height_m,
            forecast_error_std=err,
        )
    if unit.p_mw_per_hour is not None:
        extra = {"cos_phi": unit.cos_phi} if isinstance(unit, LoadCfg) else {}
        kind = "load" if isinstance(unit, LoadCfg) else "generation"
        return prof.Series(p_mw_per_hour=list(unit.p_mw_per_hour), kind=kind, forecast_error_std=err, **extra)
    if isinstance(unit, LoadCfg):
        return prof.Load(
            p_peak_mw=unit.p_peak_mw, profile=unit.profile, cos_phi=unit.cos_phi, forecast_error_std=err, **load_kw
        )
    return prof.PV(
        p_peak_mw=unit.p_peak_mw, tilt_deg=unit.tilt_deg, azimuth_deg=unit.azimuth_deg, forecast_error_std=err
    )


@dataclass
class _Wiring:
    """One scenario being wired: the simulators started, the entities made so far, what to record."""

    world: Any
    cfg: Config
    layout: NetLayout
    strategy: Strategy
    grid: Any = None
    ge: dict[str, Any] = field(default_factory=dict)  # grid entities by eid
    prof: Any = None
    ems_sim: Any = None
    party_sims: dict[str, Any] = field(default_factory=dict)  # agents, run.processes > 1: each party's EMS sim
    coordinator_sim: Any = None
    tracker_sim: Any = None
    feeder_profiles: list[Any] = field(default_factory=list)
    profile_ents: list[Any] = field(default_factory=list)
    to_record: list[tuple[Any, list[str]]] = field(default_factory=list)

    def start(self, data_dir: Any) -> None:
        from scenarios.common import TRACKER, start_agents, start_profiles

        step_s = self.cfg.scenario.step_s
        if "unserved_mw" in self.strategy.outputs:
            mark_shed_groups(self.layout.net, self.layout)
        groups = {FEEDER_GROUP: [int(i) for i in self.layout.feeder_loads]} if self.layout.feeder_loads else None
        self.grid = self.world.start("Grid", step_size=step_s).Grid(net=pp.to_json(self.layout.net), load_groups=groups)
        self.ge = {e.eid: e for e in self.grid.children}
        self.prof = start_profiles(self.world, self.cfg, data_dir)
        if self.cfg.ems.intra_step == "track_import":
            self.tracker_sim = self.world.start(TRACKER[0], step_size=step_s)
        if self.strategy.agents is not None:
            self.party_sims, self.coordinator_sim = start_agents(
                self.world, self.cfg, self.strategy, list(self.layout.parties)
            )
        else:
            self.start_ems()

    def start_ems(self) -> None:
        """The EMS simulator, or with ``run.processes`` > 1 the simulators the parties are spread over
        (``party_sims``: each party's)."""
        from scenarios.common import ems_partitions, start_ems

        parts = ems_partitions(self.cfg, self.strategy, list(self.layout.parties))
        site = site_of(self.cfg, self.layout)
        sims = {name: start_ems(self.world, self.cfg, self.strategy, site=site, sim_name=name) for name in parts}
        if len(sims) == 1:
            self.ems_sim = next(iter(sims.values()))
        else:
            self.party_sims = {party: sims[name] for name, share in parts.items() for party in share}

    def feeder_loads(self) -> None:
        """The network operator's feeder loads: their nominal p/q in the net scaled by one profile.

        Each has a profile entity of its own (its forecast goes to the operator's EMS, its demand to the
        record); the grid gets their demand through one load group (a list per attribute, one input
        instead of two per load), from a profile group of the same members and sizes."""
        net, cfg = self.layout.net, self.cfg
        peaks, cos_phis = [], []
        for li in self.layout.feeder_loads:
            p_nom, q_nom = float(net.load.at[li, "p_mw"]), float(net.load.at[li, "q_mvar"])
            cos_phi = p_nom / math.hypot(p_nom, q_nom) if p_nom > 0 else 1.0
            ent = self.prof.Load(
                p_peak_mw=p_nom * cfg.grid.feeder_load_scale,
                profile=cfg.grid.feeder_load_profile,
                cos_phi=cos_phi,
                forecast_error_std=cfg.forecast.error_std,
            )
            peaks.append(p_nom * cfg.grid.feeder_load_scale)
            cos_phis.append(cos_phi)
            self.feeder_profiles.append(ent)
            self.profile_ents.append(ent)
        if peaks:
            group = self.prof.LoadGroup(p_peak_mw=peaks, profile=cfg.grid.feeder_load_profile, cos_phi=cos_phis)
            self.world.connect(group, self.ge[f"LoadGroup-{FEEDER_GROUP}"], "p_mw", "q_mvar")

    def load(self, ent: Any, li: int, ems: Any | None, pm: PartyEntities) -> None:
        """A load's profile -> the grid (actual) and, unless ``ems`` is None, -> the EMS (forecast)."""
        self.profile_ents.append(ent)
        self.world.connect(ent, self.ge[f"Load-{li}"], "p_mw", "q_mvar")
        if ems is not None:
            self.world.connect(ent, ems, ("forecast_p_mw", "load_forecast_p_mw"))
        pm.load.append(_fid(self.ge[f"Load-{li}"]))
        pm.profiles.load.append(_fid(ent))

    def party(self, name: str, party: PartyUnits) -> tuple[Any, PartyEntities]:
        """One party's EMS entity and its units: profiles, setpoints, measured SoC, PCC switch, shedding."""
        cfg, ge, world = self.cfg, self.ge, self.world
        units: UnitsCfg | None = cfg.dn if name == DN else next(m for m in cfg.mgs if m.name == name)
        owners = getattr(units, "owners", [])
        owner_profiles = {
            o.owner: self.prof.Load(
                p_peak_mw=o.p_peak_mw, profile=o.profile, cos_phi=o.cos_phi, forecast_error_std=cfg.forecast.error_std
            )
            for o in owners
        }
        agent_model = self.strategy.owner_agent
        ems_sim = self.party_sims.get(name, self.ems_sim)
        ems = ems_sim.MG(
            **self._ring_params(name),
            mg=party_microgrid(cfg, name).to_dict(),
            pv_rated_mw=units.pv.peak_mw if units is not None and units.pv else 0.0,
            wind_rated_mw=units.wind.p_rated_mw if units is not None and units.wind else 0.0,
            load_buses=self._load_buses() if name == DN and self.layout.feeder_loads else None,
            # Without owner agents an owner's forecast reaches the MG's EMS in plaintext: the EMS records
            # it as a message from the owner, so the privacy audit sees it.
            load_owners={_fid(e): o for o, e in owner_profiles.items()} if owners and agent_model is None else None,
        )
        pm = PartyEntities(ems=_fid(ems), kind="dn" if name == DN else "mg", parent=getattr(units, "parent", None))
        if name == DN:
            for ent, li in zip(self.feeder_profiles, self.layout.feeder_loads, strict=True):
                world.connect(ent, ems, ("forecast_p_mw", "load_forecast_p_mw"))
                pm.load.append(_fid(ge[f"Load-{li}"]))
                pm.profiles.load.append(_fid(ent))
        elif units is not None and units.load is not None:
            self.load(_profile(self.prof, units.load, cfg), party.load[0], ems, pm)
        for o in owners:
            ent = owner_profiles[o.owner]
            if agent_model is not None:  # the owner's own agent stands between its forecast and the EMS
                agent = getattr(ems_sim, agent_model.model)(mg=name, owner=o.owner)
                world.connect(ent, agent, ("forecast_p_mw", "load_forecast_p_mw"))
                pm.owners[o.owner] = _fid(agent)
                self.to_record.append((agent, list(agent_model.outputs)))
            self.load(ent, party.owner_loads[o.owner], ems if agent_model is None else None, pm)
        self._ev(units, party, ems, pm)
        self._renewables(units, party, ems, pm)
        self._setpoints(name, units, party, ems, pm)
        self.to_record.append((ems, list(self.strategy.outputs)))
        return ems, pm

    def _ev(self, units: UnitsCfg | None, party: PartyUnits, ems: Any, pm: PartyEntities) -> None:
        """EV charging: its uncontrolled profile is a load like any other (to the grid, and to the EMS as
        part of the party's load forecast); a strategy that outputs ``ev_shift_mw`` moves it in the grid."""
        ev = getattr(units, "ev", None)
        if ev is None or party.ev is None:
            return
        ent = self.prof.Series(
            p_mw_per_hour=ev.uncontrolled_mw(), kind="load", cos_phi=ev.cos_phi, forecast_error_std=0.0
        )
        self.load(ent, party.ev, ems, pm)
        if "ev_shift_mw" in self.strategy.outputs:
            self.world.connect(ems, self.ge[f"Load-{party.ev}"], ("ev_shift_mw", "p_mw"))

    def _ring_params(self, name: str) -> dict[str, Any]:
        """An agent's neighbours in the ring (the parties' order; after the last: the coordinator)."""
        if self.strategy.agents is None:
            return {}
        order = list(self.layout.parties)
        k = order.index(name)
        return {"ring_prev": order[k - 1] if k > 0 else None, "ring_next": order[k + 1] if k + 1 < len(order) else "AU"}

    def agent_loop(self, ems_entities: dict[str, Any], emap: EntityMap) -> None:
        """The coordinator's entity and the loop's connections (see the contract's ``AgentLoop``)."""
        loop = self.strategy.agents
        if loop is None:
            return
        order = list(self.layout.parties)
        coord = getattr(self.coordinator_sim, loop.model)(parties=order)
        emap.system = _fid(coord)
        self.to_record.append((coord, list(loop.outputs)))
        ring_out, ring_in = loop.ring
        for a, b in zip(order, [*order[1:], None], strict=True):
            self.world.connect(ems_entities[a], ems_entities[b] if b else coord, (ring_out, ring_in))
        for name in order:
            for out, inp in loop.to_coordinator:
                self.world.connect(ems_entities[name], coord, (out, inp))
            self.world.connect(coord, ems_entities[name], loop.broadcast, weak=True)

    def switches(self, emap: EntityMap) -> None:
        """The cluster switches: in the entity map, and each driven by one ``switch_entity`` of the
        strategy (created with ``switch=<name>``; its ``closed`` -> the switch's) if the contract has one."""
        targets = {name: self.ge[f"Switch-{idx}"] for name, idx in cluster_switches(self.layout).items()}
        model = self.strategy.switch_entity
        self._driven(model, "switch", "closed", targets, emap.cluster_switches, emap.switch_entities)

    def svcs(self, emap: EntityMap) -> None:
        """The static var compensators: in the entity map, and each set by one ``svc_entity`` of the
        strategy (created with ``svc=<name>``; its ``q_mvar`` -> the SVC's) if the contract has one."""
        targets = {name: self.ge[f"StaticGen-{idx}"] for name, idx in self.layout.svcs.items()}
        self._driven(self.strategy.svc_entity, "svc", "q_mvar", targets, emap.svcs, emap.svc_entities)

    def _driven(
        self,
        model: EntityModel | None,
        param: str,
        attr: str,
        targets: dict[str, Any],
        grid_map: dict[str, str],
        entity_map: dict[str, str],
    ) -> None:
        """Grid entities by name (``targets``) into ``grid_map``; with a ``model``, one strategy entity per
        target (created with ``<param>=<name>``, in the EMS simulator or the coordinator's), whose ``attr``
        drives the target's, into ``entity_map`` and recorded."""
        sim = self.ems_sim if self.ems_sim is not None else self.coordinator_sim
        for name, target in targets.items():
            grid_map[name] = _fid(target)
            if model is None:
                continue
            ent = getattr(sim, model.model)(**{param: name})
            self.world.connect(ent, target, (attr, attr))
            entity_map[name] = _fid(ent)
            self.to_record.append((ent, list(model.outputs)))

    def _load_buses(self) -> dict[str, int]:
        net = self.layout.net
        return {
            _fid(ent): int(net.load.at[li, "bus"])
            for ent, li in zip(self.feeder_profiles, self.layout.feeder_loads, strict=True)
        }

    def _renewables(self, units: UnitsCfg | None, party: PartyUnits, ems: Any, pm: PartyEntities) -> None:
        for kind, idxs in (("pv", party.pv), ("wind", party.wind)):
            for si in idxs:
                ent = _profile(self.prof, getattr(units, kind), self.cfg)
                self.profile_ents.append(ent)
                sg = self.ge[f"StaticGen-{si}"]
                self.world.connect(ent, sg, ("p_mw", "p_avail_mw"))
                self.world.connect(ent, ems, ("forecast_p_mw", f"{kind}_forecast_p_mw"))
                self.world.connect(ems, sg, (f"{kind}_p_mw", "p_mw"))
                getattr(pm, kind).append(_fid(sg))
                getattr(pm.profiles, kind).append(_fid(ent))

    def _tracked(self, ems: Any, storage: Any, pcc_line: Any, battery: BatteryCfg, pm: PartyEntities) -> None:
        """The battery driven by a tracker (``ems.intra_step = "track_import"``): the EMS's setpoint and
        planned import, the party's loads' demand and renewables' availability in, the previous physics
        step's PCC flow and applied battery power back, the tracker's setpoint to the storage."""
        world = self.world
        tracker = self.tracker_sim.Tracker(p_ch_max_mw=battery.p_ch_max_mw, p_dis_max_mw=battery.p_dis_max_mw)
        world.connect(ems, tracker, "battery_p_mw", "planned_import_mw")
        by_fid = {_fid(e): e for e in self.profile_ents}
        for fid in pm.profiles.load:
            world.connect(by_fid[fid], tracker, ("p_mw", "load_p_mw"))
        for fid in [*pm.profiles.pv, *pm.profiles.wind]:
            world.connect(by_fid[fid], tracker, ("p_mw", "renewable_p_mw"))
        world.connect(tracker, storage, ("battery_p_mw", "p_mw"))
        nan = float("nan")  # before the first measurement (mosaik takes initial data None for none given)
        world.connect(storage, tracker, ("p_mw", "applied_p_mw"), time_shifted=True, initial_data={"p_mw": nan})
        world.connect(pcc_line, tracker, ("p_to_mw", "pcc_p_to_mw"), time_shifted=True, initial_data={"p_to_mw": nan})
        self.to_record.append((tracker, ["battery_p_mw"]))

    def _setpoints(self, name: str, units: UnitsCfg | None, party: PartyUnits, ems: Any, pm: PartyEntities) -> None:
        ge, world = self.ge, self.world
        if party.diesel is not None:
            sg = ge[f"StaticGen-{party.diesel}"]
            world.connect(ems, sg, ("diesel_p_mw", "p_mw"))
            pm.diesel = _fid(sg)
        if party.storage is not None:
            st = ge[f"Storage-{party.storage}"]
            battery = units.battery if units is not None else None
            if battery is None:  # the net gets a storage only for a configured battery
                raise RuntimeError(f"{name}: a storage in the net without a battery in the config")
            if self.tracker_sim is not None and party.pcc_line is not None:
                self._tracked(ems, st, ge[f"Line-{party.pcc_line}"], battery, pm)
            else:
                world.connect(ems, st, ("battery_p_mw", "p_mw"))
            world.connect(st, ems, "soc_mwh", time_shifted=True, initial_data={"soc_mwh": battery.e_init_mwh})
            pm.storage = _fid(st)
        if party.pcc_switch is not None:
            sw = ge[f"Switch-{party.pcc_switch}"]
            world.connect(ems, sw, ("pcc_closed", "closed"))
            pm.pcc_switch = _fid(sw)
            # The MG's import is the power flowing from its PCC line into the MG bus (the line's to side).
            pm.pcc_line = _fid(ge[f"Line-{party.pcc_line}"])
        if "load_shift_mw" in self.strategy.outputs and party.load:
            # Demand response: the shift the EMS decides is added to the party's own load (the grid sums
            # every source of a load's p_mw: its profile and this).
            world.connect(ems, ge[f"Load-{party.load[0]}"], ("load_shift_mw", "p_mw"))
        loads = party_loads(party)
        if "unserved_mw" in self.strategy.outputs and loads:
            # What the EMS plans to shed is shed in the grid: asked of the party's first load, shared by
            # all its loads (their shed_group) in proportion to their demand.
            world.connect(ems, ge[f"Load-{loads[0]}"], ("unserved_mw", "shed_mw"))


def wire(world: Any, cfg: Config, layout: NetLayout, *, strategy: str | Strategy, data_dir: Any) -> Built:
    """Wire the scenario into ``world``: the entity map (which mosaik entity is which unit) and the
    outputs to record (the runner connects them to its recorder). What the strategy's entities are and
    output comes from its contract."""
    from scenarios.common import record_attrs

    contract = strategy if isinstance(strategy, Strategy) else get_strategy(strategy)
    w = _Wiring(world, cfg, layout, contract)
    w.start(data_dir)
    w.feeder_loads()
    emap = EntityMap(
        grid=_fid(w.grid),
        ext_grid=[_fid(w.ge[f"ExtGrid-{i}"]) for i in layout.net.ext_grid.index],
        tie_switches=[_fid(w.ge[f"Switch-{s}"]) for s in layout.tie_switches],
    )
    ems_entities = {}
    for name, party in layout.parties.items():
        ems_entities[name], emap.parties[name] = w.party(name, party)
    w.agent_loop(ems_entities, emap)
    if contract.system_entity is not None:
        system = getattr(w.ems_sim, contract.system_entity.model)()
        emap.system = _fid(system)
        w.to_record.append((system, list(contract.system_entity.outputs)))
    w.switches(emap)
    w.svcs(emap)
    if contract.operates_tie_switches and DN in ems_entities:
        for sw in layout.tie_switches:
            world.connect(ems_entities[DN], w.ge[f"Switch-{sw}"], ("tie_closed", "closed"))
    everything = cfg.run.record == "all"
    named = emap.named_grid_entities()
    for ent in [*w.ge.values(), w.grid]:
        attrs = record_attrs(ent, "grid")  # none for a load group: its members are recorded one by one
        if attrs and (everything or _fid(ent) in named):
            w.to_record.append((ent, attrs))
    feeder = {_fid(e) for e in w.feeder_profiles}
    for ent in w.profile_ents:
        if everything or _fid(ent) not in feeder:
            w.to_record.append((ent, record_attrs(ent, "profile")))
    return Built(emap.to_dict(), w.to_record)
