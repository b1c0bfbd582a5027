"""Scenario-agnostic wiring: units of each party into a pandapower net, and the mosaik world around it.

A scenario module builds its net (``build_net(cfg) -> NetLayout``: the grid and where each party's units
sit) and calls :func:`wire`, which starts the grid, profile and EMS simulators, creates one profile entity
per load, PV and wind unit (a standard profile, pvlib / windpowerlib, or a series from the scenario's data
file), connects actuals to the grid, forecasts and measured state of charge to the EMS, the EMS's
setpoints, switch states and planned load shedding (``unserved_mw`` -> the loads' ``shed_mw``; a party
with several loads sheds them in proportion to their demand, see :func:`mark_shed_groups`) to the grid,
and lists what the runner records.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

import pandapower as pp

from ems_controllers.core.types import Microgrid
from ems_controllers.registry import get_strategy
from scenarios.config import Config, LoadCfg, MgCfg, PvCfg, UnitsCfg, WindCfg
from scenarios.layout import DN, NetLayout, mark_shed_groups, party_loads


@dataclass
class Built:
    """What ``build`` hands back: the entity map and ``(entity, attrs)`` pairs to record."""

    entity_map: dict[str, Any]
    to_record: list[tuple[Any, list[str]]]


def site_of(cfg: Config, layout: NetLayout) -> dict[str, Any]:
    """Where things are in the grid, for network-aware EMSs: the net (pandapower JSON, all switches in
    their initial state), each party's bus (an MG's own bus behind its PCC), the tie and PCC switches."""
    return {
        "net": pp.to_json(layout.net),
        "party_bus": {name: int(p.bus) for name, p in layout.parties.items()},
        "tie_switches": [int(s) for s in layout.tie_switches],
        "pcc_switches": {name: int(p.pcc_switch) for name, p in layout.parties.items() if p.pcc_switch is not None},
    }


def party_microgrid(cfg: Config, name: str) -> Microgrid:
    """The EMS's view of one party: its units, PCC limit and penalty prices."""
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
            "trade_buy_price_per_mwh": trade.buy_price_per_mwh if trade else None,
            "trade_sell_price_per_mwh": trade.sell_price_per_mwh if trade else None,
            "wind_curtailable": units.wind.curtailable if units.wind else True,
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


def wire(world: Any, cfg: Config, layout: NetLayout, *, strategy: str, data_dir: Any) -> Built:
    """Wire the scenario into ``world``: the entity map (which mosaik entity is which unit) and the
    outputs to record (the runner connects them to its recorder)."""
    from scenarios.common import ems_output_attrs, record_attrs, start_ems, start_profiles

    to_record: list[tuple[Any, list[str]]] = []
    step_s = cfg.scenario.step_s
    net = layout.net
    sheds = "unserved_mw" in ems_output_attrs(strategy)
    if sheds:
        mark_shed_groups(net, layout)
    grid_sim = world.start("Grid", step_size=step_s)
    grid = grid_sim.Grid(net=pp.to_json(net))
    ge = {e.eid: e for e in grid.children}
    prof = start_profiles(world, cfg, data_dir)
    ems_sim = start_ems(world, cfg, strategy, site=site_of(cfg, layout))

    # Feeder loads (the network operator's): their nominal p/q in the net scaled by one profile.
    feeder_profiles = []
    profile_ents: list[Any] = []
    ems_entities: list[Any] = []
    for li in layout.feeder_loads:
        p_nom, q_nom = float(net.load.at[li, "p_mw"]), float(net.load.at[li, "q_mvar"])
        cos_phi = p_nom / math.hypot(p_nom, q_nom) if p_nom > 0 else 1.0
        ent = prof.Load(
            p_peak_mw=p_nom * cfg.grid.feeder_load_scale,
            profile=cfg.grid.feeder_load_profile,
            cos_phi=cos_phi,
            forecast_error_std=cfg.forecast.error_std,
        )
        world.connect(ent, ge[f"Load-{li}"], "p_mw", "q_mvar")
        feeder_profiles.append(ent)
        profile_ents.append(ent)

    entity_map: dict[str, Any] = {
        "grid": _fid(grid),
        "ext_grid": [_fid(ge[f"ExtGrid-{i}"]) for i in net.ext_grid.index],
        "parties": {},
        "tie_switches": [_fid(ge[f"Switch-{s}"]) for s in layout.tie_switches],
    }
    for name, party in layout.parties.items():
        units: UnitsCfg | None = cfg.dn if name == DN else next(m for m in cfg.mgs if m.name == name)
        pv_rated = units.pv.peak_mw if units is not None and units.pv else 0.0
        wind_rated = units.wind.p_rated_mw if units is not None and units.wind else 0.0
        load_buses = None
        if name == DN and layout.feeder_loads:
            load_buses = {
                _fid(ent): int(net.load.at[li, "bus"])
                for ent, li in zip(feeder_profiles, layout.feeder_loads, strict=True)
            }
        owner_model = getattr(importlib.import_module(get_strategy(strategy).module), "OWNER_ATTRS", None)
        owner_profiles = {
            o.owner: prof.Load(
                p_peak_mw=o.p_peak_mw, profile=o.profile, cos_phi=o.cos_phi, forecast_error_std=cfg.forecast.error_std
            )
            for o in getattr(units, "owners", [])
        }
        # Without owner agents an owner's forecast reaches the MG's EMS in plaintext: the EMS records it
        # as a message from the owner (load_owners), so the privacy audit sees it.
        load_owners = (
            {_fid(ent): owner for owner, ent in owner_profiles.items()}
            if owner_profiles and owner_model is None
            else None
        )
        ems = ems_sim.MG(
            mg=party_microgrid(cfg, name).to_dict(),
            pv_rated_mw=pv_rated,
            wind_rated_mw=wind_rated,
            load_buses=load_buses,
            load_owners=load_owners,
        )
        pm: dict[str, Any] = {
            "ems": _fid(ems),
            "kind": "dn" if name == DN else "mg",
            "load": [],
            "pv": [],
            "wind": [],
            "diesel": None,
            "storage": None,
            "profiles": {"load": [], "pv": [], "wind": []},
        }
        # Loads: profile -> grid (actual) and -> EMS (forecast).
        if name == DN:
            for ent, li in zip(feeder_profiles, layout.feeder_loads, strict=True):
                world.connect(ent, ems, ("forecast_p_mw", "load_forecast_p_mw"))
                pm["load"].append(_fid(ge[f"Load-{li}"]))
                pm["profiles"]["load"].append(_fid(ent))
        elif units is not None and units.load is not None:
            li = party.load[0]
            ent = _profile(prof, units.load, cfg)
            profile_ents.append(ent)
            world.connect(ent, ge[f"Load-{li}"], "p_mw", "q_mvar")
            world.connect(ent, ems, ("forecast_p_mw", "load_forecast_p_mw"))
            pm["load"].append(_fid(ge[f"Load-{li}"]))
            pm["profiles"]["load"].append(_fid(ent))
        for o in getattr(units, "owners", []):
            li = party.owner_loads[o.owner]
            ent = owner_profiles[o.owner]
            profile_ents.append(ent)
            world.connect(ent, ge[f"Load-{li}"], "p_mw", "q_mvar")  # physics: the owner's actual load
            if owner_model is not None:  # the owner's own agent encrypts its forecast for the MG's EMS
                agent = ems_sim.Owner(mg=name, owner=o.owner)
                world.connect(ent, agent, ("forecast_p_mw", "load_forecast_p_mw"))
                pm.setdefault("owners", {})[o.owner] = _fid(agent)
                to_record.append((agent, list(owner_model)))
            else:  # strategies without owner privacy get the owner's forecast in plaintext
                world.connect(ent, ems, ("forecast_p_mw", "load_forecast_p_mw"))
            pm["load"].append(_fid(ge[f"Load-{li}"]))
            pm["profiles"]["load"].append(_fid(ent))
        for kind, idxs in (("pv", party.pv), ("wind", party.wind)):
            for si in idxs:
                ent = _profile(prof, getattr(units, kind), cfg)
                profile_ents.append(ent)
                sg = ge[f"StaticGen-{si}"]
                world.connect(ent, sg, ("p_mw", "p_avail_mw"))
                world.connect(ent, ems, ("forecast_p_mw", f"{kind}_forecast_p_mw"))
                world.connect(ems, sg, (f"{kind}_p_mw", "p_mw"))
                pm[kind].append(_fid(sg))
                pm["profiles"][kind].append(_fid(ent))
        if party.diesel is not None:
            sg = ge[f"StaticGen-{party.diesel}"]
            world.connect(ems, sg, ("diesel_p_mw", "p_mw"))
            pm["diesel"] = _fid(sg)
        if party.storage is not None:
            st = ge[f"Storage-{party.storage}"]
            world.connect(ems, st, ("battery_p_mw", "p_mw"))
            battery = units.battery if units is not None else None
            if battery is None:  # the net gets a storage only for a configured battery
                raise RuntimeError(f"{name}: a storage in the net without a battery in the config")
            world.connect(st, ems, "soc_mwh", time_shifted=True, initial_data={"soc_mwh": battery.e_init_mwh})
            pm["storage"] = _fid(st)
        if party.pcc_switch is not None:
            sw = ge[f"Switch-{party.pcc_switch}"]
            world.connect(ems, sw, ("pcc_closed", "closed"))
            pm["pcc_switch"] = _fid(sw)
            # The MG's import is the power flowing from its PCC line into the MG bus (the line's to side).
            pm["pcc_line"] = _fid(ge[f"Line-{party.pcc_line}"])
        loads = party_loads(party)
        if sheds and loads:
            # What the EMS plans to shed is shed in the grid: asked of the party's first load, shared by
            # all its loads (their shed_group) in proportion to their demand.
            world.connect(ems, ge[f"Load-{loads[0]}"], ("unserved_mw", "shed_mw"))
        pm["parent"] = getattr(units, "parent", None)
        entity_map["parties"][name] = pm
        ems_entities.append(ems)
        to_record.append((ems, ems_output_attrs(strategy)))
    community_attrs = getattr(importlib.import_module(get_strategy(strategy).module), "COMMUNITY_ATTRS", None)
    if community_attrs:  # a strategy with a community-level entity (eid "community")
        community = ems_sim.Community()
        entity_map["community"] = _fid(community)
        to_record.append((community, list(community_attrs)))
    if "tie_closed" in ems_output_attrs(strategy):  # a strategy that operates the tie switches
        dn_ems = next(e for e in ems_entities if e.eid == DN)
        for sw in layout.tie_switches:
            world.connect(dn_ems, ge[f"Switch-{sw}"], ("tie_closed", "closed"))
    for ent in [*ge.values(), grid]:
        to_record.append((ent, record_attrs(ent, "grid")))
    for ent in profile_ents:
        to_record.append((ent, record_attrs(ent, "profile")))
    return Built(entity_map, to_record)
