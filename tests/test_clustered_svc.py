"""The SVC term of the ``clustered`` upper level (spec 004's reactive balance): a static var compensator on
the network lets the network operator grant a cluster what the voltage band would otherwise cut, the AC
power flow (pandapower) at the planned grant and reactive power keeps the band, and an SVC with nothing to
do stays at 0 Mvar.

The net: a 20 kV radial chain of three 6 km overhead lines (0.3 + j0.35 ohm/km), a network load at its
middle bus (1.0 + j0.4 MVA in hour 0, 1.0 MW at unity power factor in hour 1) and one cluster at its far
end, which asks for 3.5 MW in hour 0 (more than the band allows without reactive support) and 0.3 MW in
hour 1 (no trouble).
"""

from __future__ import annotations

import copy
import itertools

import pandapower as pp
import pytest

from ems_controllers.clustered.pareto import Zeta
from ems_controllers.clustered.system import SvcSpec
from ems_controllers.clustered.upper import UpperLevel, UpperOutcome, UpperSettings
from ems_controllers.core.network import network_from_pandapower
from ems_controllers.core.types import Horizon, SolverOptions

VM_MIN_PU = 0.95
MARGIN_PU = 0.01  # LinDistFlow drops the losses: the band is narrowed by this (UpperSettings.vm_margin_pu)
REQUEST_MW = (3.5, 0.3)
LOAD = ({2: (1.0, 1.0)}, {2: (0.4, 0.0)})
SVC = SvcSpec("S", 3, -1.0, 1.0)
HORIZON = Horizon(1.0, (100.0, 100.0), (60.0, 60.0))
SETTINGS = UpperSettings(Zeta(0.5, 0.3, 0.2), 45.0, 500.0, 1e-4, 0.95, MARGIN_PU, svc_price_per_mvarh=1.0)


def chain() -> pp.pandapowerNet:
    net = pp.create_empty_network()
    buses = [pp.create_bus(net, 20.0, min_vm_pu=VM_MIN_PU, max_vm_pu=1.05) for _ in range(4)]
    pp.create_ext_grid(net, buses[0], vm_pu=1.0)
    for a, b in itertools.pairwise(buses):
        pp.create_line_from_parameters(net, a, b, 6.0, 0.3, 0.35, 0.0, 0.4)
    return net


def plan(svcs: tuple[SvcSpec, ...]) -> UpperOutcome:
    up = UpperLevel(network_from_pandapower(chain()), {"C1": 3}, SETTINGS, svcs)
    out = up.plan({"C1": REQUEST_MW}, {"C1": (True, True)}, LOAD, HORIZON, SolverOptions())
    assert out is not None
    return out


def ac_min_vm_pu(out: UpperOutcome, k: int) -> float:
    """The lowest bus voltage of pandapower's AC power flow at the plan's grant and SVC setpoint of step k."""
    net = copy.deepcopy(chain())
    pp.create_load(net, 2, p_mw=LOAD[0][2][k], q_mvar=LOAD[1][2][k])
    pp.create_load(net, 3, p_mw=out.grant_mw["C1"][k])
    for name, q in out.svc_q_mvar.items():
        pp.create_sgen(net, SVC.bus, p_mw=0.0, q_mvar=q[k], name=name)
    pp.runpp(net, numba=False)
    return float(net.res_bus.vm_pu.min())


@pytest.fixture(scope="module")
def without_svc() -> UpperOutcome:
    return plan(())


@pytest.fixture(scope="module")
def with_svc() -> UpperOutcome:
    return plan((SVC,))


def test_the_voltage_band_cuts_the_grant_without_an_svc(without_svc: UpperOutcome) -> None:
    grant = without_svc.grant_mw["C1"]
    assert grant[0] < REQUEST_MW[0] - 0.5  # the band binds: a real cut, not rounding
    assert grant[1] == pytest.approx(REQUEST_MW[1], abs=1e-6)
    assert without_svc.predicted_min_vm_pu[0] == pytest.approx(VM_MIN_PU + MARGIN_PU, abs=1e-6)
    assert without_svc.svc_q_mvar == {}


def test_an_svc_injects_and_the_network_grants_more(without_svc: UpperOutcome, with_svc: UpperOutcome) -> None:
    """Reactive power at the far end lifts the voltage along the feeder: the grant rises by what the
    SVC's lift buys (here it runs at its limit and the request is still cut, less)."""
    q = with_svc.svc_q_mvar["S"]
    assert q[0] > 0.5 and q[0] <= SVC.q_max_mvar + 1e-9
    assert with_svc.grant_mw["C1"][0] > without_svc.grant_mw["C1"][0] + 0.5
    assert with_svc.grant_mw["C1"][0] <= REQUEST_MW[0] + 1e-6
    assert with_svc.predicted_min_vm_pu[0] >= VM_MIN_PU + MARGIN_PU - 1e-6


def test_an_svc_with_nothing_to_do_stays_at_zero(with_svc: UpperOutcome) -> None:
    """In the light hour no limit binds and nothing draws reactive power: any Mvar would only add losses
    (and its use price), so 0 Mvar."""
    assert with_svc.svc_q_mvar["S"][1] == pytest.approx(0.0, abs=1e-6)
    assert with_svc.grant_mw["C1"][1] == pytest.approx(REQUEST_MW[1], abs=1e-6)


@pytest.mark.parametrize("svcs", [(), (SVC,)], ids=["no-svc", "svc"])
def test_the_ac_power_flow_at_the_plan_keeps_the_band(svcs: tuple[SvcSpec, ...]) -> None:
    """The judge: pandapower at the granted power and the planned reactive power stays in the band (the
    margin covers what LinDistFlow's lossless voltages overestimate)."""
    out = plan(svcs)
    for k in range(2):
        assert ac_min_vm_pu(out, k) >= VM_MIN_PU
