"""Plug-in proof: our profile simulator and rule-based EMS drive a third-party grid adapter.

The grid here is mosaik-pandapower-2 (``mosaik_components.pandapower:Simulator``), wired the way a
user with an existing mosaik setup would do it. What that adapter offers (version 1.1.1):

* ``Grid`` (params ``json``/``net``/``network_function``...), children ``Bus-<i>``, ``Line-<i>``,
  ``ExternalGrid-<i>`` (eids ``<Model>-<pandapower index>``).
* ``Bus`` inputs ``P_load[MW]``, ``Q_load[MVar]`` (a hidden load per bus, + = consuming) and
  ``P_gen[MW]``, ``Q_gen[MVar]`` (a hidden sgen per bus, + = generating). Several connections to one
  input are summed (its ``InputAttrSpec.aggregator`` is ``sum``), so no summing glue is needed.
* ``Bus`` outputs ``P[MW]`` (pandapower ``res_bus.p_mw``: + = net consumption), ``Vm[pu]``;
  ``ExternalGrid`` output ``P[MW]`` (+ = import from upstream).
* No storage, no switches, no sgen setpoints (``StaticGen`` has no inputs).

Wiring of the microgrid at bus ``MG_BUS`` (signs already match, no conversion):

* ``Load.p_mw``/``q_mvar`` and the EMS's ``battery_p_mw`` (+ = charging) -> ``P_load[MW]``/``Q_load[MVar]``
  (a discharging battery is a negative load);
* ``PV.p_mw``, ``Wind.p_mw`` (actual profile power) and the EMS's ``diesel_p_mw`` -> ``P_gen[MW]``;
* ``Load``/``PV``/``Wind.forecast_p_mw`` -> the EMS's ``*_forecast_p_mw``.

The EMS's renewable caps ``pv_p_mw``/``wind_p_mw`` cannot be applied (no sgen setpoints); the test
checks that the EMS curtailed nothing, so the actual profile power is what the EMS assumed.

The user's glue (``SocIntegrator`` below): mosaik-pandapower-2 has no storage model, and the EMS must
see its battery's state of charge (it keeps no estimate of its own between ``soc_mwh`` inputs, so with
``initial_data`` only it would believe the SoC stays at ``e_init_mwh``). The integrator applies the
battery's own SoC equation (``Battery.next_e_mwh``) to ``battery_p_mw`` and feeds ``soc_mwh`` back to
the EMS time-shifted by one step, with ``initial_data`` = ``e_init_mwh`` for the first step.
A ``Collector`` (any_inputs) keeps what every simulator sent for the assertions.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any, override

import mosaik
import mosaik_api_v3
import numpy as np
import pandapower as pp
import pytest
from mosaik.async_scenario import SimConfig
from mosaik_api_v3.types import CreateResult, InputData, Meta, ModelName, OutputData, OutputRequest, SimId, Time

from ems_controllers.core.types import Battery, DieselUnit, Microgrid

STEP_S = 3600
N_STEPS = 24
MG_BUS = 3
FEEDER_LOAD_BUS = 2
BALANCE_TOL_MW = 1e-6

BATTERY = Battery(e_max_mwh=1.0, e_init_mwh=0.3, p_ch_max_mw=0.4, p_dis_max_mw=0.4, eta_ch=0.95, eta_dis=0.95)
MG = Microgrid(
    name="MG1",
    diesel=DieselUnit(p_max_mw=0.6, p_min_mw=0.1, a2_per_mw2h=18.0, a1_per_mwh=20.0),
    battery=BATTERY,
    pcc_max_mw=5.0,
)
PV_PEAK_MW, WIND_RATED_MW = 1.2, 0.3
TARIFF = {"buy_price_per_mwh": [40.0] * 24, "sell_price_per_mwh": [20.0] * 24}

SIM_CONFIG: SimConfig = {
    "Grid": {"python": "mosaik_components.pandapower:Simulator"},  # the third-party grid adapter
    "Profiles": {"python": "sims.profiles:ProfileSim"},
    "EMS": {"python": "ems_controllers.rule_based.sim:RuleBasedEMS"},
    "Glue": {"python": f"{__name__}:SocIntegrator"},  # this module, however pytest imported it
    "Collector": {"python": f"{__name__}:Collector"},
}

# What the Collector received: COLLECTED[(source full id, attr)] = [value per step].
COLLECTED: dict[tuple[str, str], list[Any]] = defaultdict(list)


class SocIntegrator(mosaik_api_v3.Simulator):
    """User glue: the battery's energy, integrated from the EMS's setpoint (``Battery`` dict param)."""

    def __init__(self) -> None:
        super().__init__(
            {
                "api_version": "3.0",
                "type": "time-based",
                "models": {"Soc": {"public": True, "params": ["battery"], "attrs": ["battery_p_mw", "soc_mwh"]}},
            }
        )
        self.step_size = STEP_S
        self.units: dict[str, tuple[Battery, float]] = {}

    @override
    def init(self, sid: SimId, time_resolution: float = 1.0, step_size: int = STEP_S, **sim_params: Any) -> Meta:
        if sim_params:
            raise TypeError(f"unexpected sim params {sorted(sim_params)}")
        self.step_size = step_size
        self.dt_h = step_size * time_resolution / 3600.0
        return self.meta

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        b = Battery.from_dict(model_params["battery"])
        eid = f"Soc-{len(self.units)}"
        self.units[eid] = (b, b.e_init_mwh)
        return [{"eid": eid, "type": model}]

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time:
        for eid, (b, e) in self.units.items():
            p = sum(inputs.get(eid, {}).get("battery_p_mw", {}).values())
            self.units[eid] = (b, b.next_e_mwh(e, p, self.dt_h))  # energy at the end of this step
        return time + self.step_size

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        return {eid: {"soc_mwh": self.units[eid][1]} for eid in outputs}


class Collector(mosaik_api_v3.Simulator):
    """Keeps every input, one value per step, in the module-level ``COLLECTED``."""

    def __init__(self) -> None:
        super().__init__(
            {
                "api_version": "3.0",
                "type": "time-based",
                "models": {"Collector": {"public": True, "params": [], "attrs": [], "any_inputs": True}},
            }
        )

    @override
    def init(self, sid: SimId, time_resolution: float = 1.0, step_size: int = STEP_S, **sim_params: Any) -> Meta:
        if sim_params:
            raise TypeError(f"unexpected sim params {sorted(sim_params)}")
        self.step_size = step_size
        return self.meta

    @override
    def create(self, num: int, model: ModelName, **model_params: Any) -> list[CreateResult]:
        if model_params:
            raise TypeError(f"unexpected model params {sorted(model_params)}")
        return [{"eid": "Collector", "type": model}]

    @override
    def step(self, time: Time, inputs: InputData, max_advance: Time) -> Time:
        for attrs in inputs.values():
            for attr, by_src in attrs.items():
                for src, value in by_src.items():
                    COLLECTED[(src, attr)].append(value)
        return time + self.step_size

    @override
    def get_data(self, outputs: OutputRequest) -> OutputData:
        return {}


def _four_bus_net() -> pp.pandapowerNet:
    """A 20 kV radial feeder: slack bus 0 (external grid), then 2 km cables 0-1, 1-2, 2-3; no elements."""
    net = pp.create_empty_network()
    buses = [pp.create_bus(net, vn_kv=20.0, name=f"bus{i}") for i in range(4)]
    pp.create_ext_grid(net, buses[0], vm_pu=1.0)
    for a, b in pairwise(buses):
        pp.create_line(net, a, b, length_km=2.0, std_type="NA2XS2Y 1x185 RM/25 12/20 kV")
    return net


def test_profiles_and_ems_drive_mosaik_pandapower2(tmp_path: Path) -> None:
    COLLECTED.clear()
    net_file = tmp_path / "net.json"
    pp.to_json(_four_bus_net(), str(net_file))

    world = mosaik.World(SIM_CONFIG, skip_greetings=True, configure_logging=False)
    grid = world.start("Grid", step_size=STEP_S).Grid(json=str(net_file))
    prof = world.start("Profiles", step_size=STEP_S, start="2019-06-12 00:00:00")
    ems_sim = world.start("EMS", step_size=STEP_S, tariff=TARIFF)
    glue = world.start("Glue", step_size=STEP_S)
    col = world.start("Collector", step_size=STEP_S).Collector()

    buses = {e.eid: e for e in grid.children if e.type == "Bus"}
    ext = next(e for e in grid.children if e.type == "ExternalGrid")
    mg_bus, feeder_bus = buses[f"Bus-{MG_BUS}"], buses[f"Bus-{FEEDER_LOAD_BUS}"]

    load = prof.Load(p_peak_mw=0.9, profile="H0-A", cos_phi=0.95)
    pv = prof.PV(p_peak_mw=PV_PEAK_MW)
    wind = prof.Wind(p_rated_mw=WIND_RATED_MW)
    feeder_load = prof.Load(p_peak_mw=0.5, profile="G0-A", cos_phi=0.95)
    ems = ems_sim.MG(mg=MG.to_dict(), pv_rated_mw=PV_PEAK_MW, wind_rated_mw=WIND_RATED_MW)
    soc = glue.Soc(battery=MG.to_dict()["battery"])

    # profiles -> EMS (forecasts at planning times)
    world.connect(load, ems, ("forecast_p_mw", "load_forecast_p_mw"))
    world.connect(pv, ems, ("forecast_p_mw", "pv_forecast_p_mw"))
    world.connect(wind, ems, ("forecast_p_mw", "wind_forecast_p_mw"))
    # profiles + EMS -> mosaik-pandapower-2's Bus inputs (several sources per input are summed)
    world.connect(load, mg_bus, ("p_mw", "P_load[MW]"), ("q_mvar", "Q_load[MVar]"))
    world.connect(ems, mg_bus, ("battery_p_mw", "P_load[MW]"), ("diesel_p_mw", "P_gen[MW]"))
    world.connect(pv, mg_bus, ("p_mw", "P_gen[MW]"))
    world.connect(wind, mg_bus, ("p_mw", "P_gen[MW]"))
    world.connect(feeder_load, feeder_bus, ("p_mw", "P_load[MW]"), ("q_mvar", "Q_load[MVar]"))
    # EMS -> glue -> EMS: the SoC, one step later
    world.connect(ems, soc, "battery_p_mw")
    world.connect(soc, ems, "soc_mwh", time_shifted=True, initial_data={"soc_mwh": BATTERY.e_init_mwh})
    # everything of interest -> collector
    for unit in (load, pv, wind, feeder_load):
        world.connect(unit, col, "p_mw")
    world.connect(ems, col, "diesel_p_mw", "battery_p_mw", "pv_p_mw", "wind_p_mw", "unserved_mw", "ems_status")
    world.connect(soc, col, "soc_mwh")
    for bus in buses.values():
        world.connect(bus, col, "P[MW]", "Vm[pu]")
    world.connect(ext, col, "P[MW]")
    world.run(until=N_STEPS * STEP_S, print_progress=False)

    def series(entity: Any, attr: str) -> np.ndarray:
        values = COLLECTED[(entity.full_id, attr)]
        assert len(values) == N_STEPS, (entity.full_id, attr)
        return np.asarray(values, dtype=float)

    p_load, p_pv, p_wind = series(load, "p_mw"), series(pv, "p_mw"), series(wind, "p_mw")
    diesel, battery = series(ems, "diesel_p_mw"), series(ems, "battery_p_mw")
    assert COLLECTED[(ems.full_id, "ems_status")] == ["ok"] * N_STEPS
    assert np.all(series(ems, "unserved_mw") == 0.0)

    # The EMS curtailed nothing: its caps are the ratings, so the actual profile power is what it used.
    np.testing.assert_allclose(series(ems, "pv_p_mw"), PV_PEAK_MW)
    np.testing.assert_allclose(series(ems, "wind_p_mw"), WIND_RATED_MW)

    # The MG bus of mosaik-pandapower-2 consumes load + charging - generation - diesel, as set.
    expected_mg = p_load + battery - p_pv - p_wind - diesel
    np.testing.assert_allclose(series(mg_bus, "P[MW]"), expected_mg, atol=BALANCE_TOL_MW)
    np.testing.assert_allclose(series(feeder_bus, "P[MW]"), series(feeder_load, "p_mw"), atol=BALANCE_TOL_MW)
    np.testing.assert_allclose(series(buses["Bus-1"], "P[MW]"), 0.0, atol=BALANCE_TOL_MW)

    # The external grid supplies the feeder's net load plus (small, non-negative) line losses.
    net_load = expected_mg + series(feeder_load, "p_mw")
    losses = series(ext, "P[MW]") - net_load
    assert np.all(losses >= -BALANCE_TOL_MW)
    assert np.all(losses <= 0.01 * np.abs(series(ext, "P[MW]")) + 1e-3)
    for bus in buses.values():
        vm = series(bus, "Vm[pu]")
        assert np.all((vm > 0.95) & (vm < 1.05)), bus.eid

    # The EMS's setpoints follow the day: PV around noon, none at night; the battery charges from the
    # morning surplus and discharges in the evening; the diesel runs at night, not at noon. The MG's
    # noon export raises its bus voltage in mosaik-pandapower-2's power flow.
    assert p_pv[11:14].max() > 0.5 * PV_PEAK_MW and p_pv[2] == 0.0
    assert np.any(battery[7:12] > 0.1) and np.any(battery[17:] < -0.1)
    assert diesel[2] > 0.1 and diesel[12] == 0.0
    vm_mg = series(mg_bus, "Vm[pu]")
    assert vm_mg[11] > vm_mg[2] + 1e-3
    # The SoC fed back to the EMS is the battery equation applied to its setpoints, within limits.
    soc_e = series(soc, "soc_mwh")
    b = BATTERY
    e = b.e_init_mwh
    for t in range(N_STEPS):
        e = b.next_e_mwh(e, battery[t], 1.0)
        assert soc_e[t] == pytest.approx(e)
        assert b.e_min_mwh - 1e-9 <= soc_e[t] <= b.e_max_mwh + 1e-9
