"""Security-constrained hierarchical EMS (ems_controllers.security_constrained.model): each step on a
small radial feeder where the answer is known by hand, the cases against each other, the split rule.

Feeder (10 kV, 1 MVA base, root bus 0 at 1.0 pu, band 0.9-1.1 pu):

    0 --l0-- 1 --l1-- 2 --l2-- 3 (MG "A")          l0, l1, l3: 0.2 kA (3.46 MVA)
             |                 :                   l2: 0.02 kA, s_max = sqrt(3) 10 0.02 = 0.3464 MVA
             +--l3-- 4 (MGs "B", "C")   tie l4 (3-4, switch open; closed in case 3)

Feeder loads 0.3 MW + 0.1 Mvar at bus 1 and 0.2 MW + 0.05 Mvar at bus 2 (the DN's load, 0.5 MW).
MG A: 1 MW PV, no load, no storage, curtailment at 20 $/MWh: it wants to export 1 MW every step, but
line l2 carries only s_max_factor * s_max = 0.95 * 0.3464 = 0.32909 MW at Q = 0 (a vertex of the
12-gon: no polygon cut), so the DNO cuts A's grant to -0.32909 MW at a deviation of 0.67091 MW, priced
at 500 $/MWh, and A then curtails 0.67091 MW (20 $/MWh) instead of deviating (500 $/MWh).
"""

from __future__ import annotations

import math

import pandapower as pp
import pytest

from ems_controllers.core.network import network_from_pandapower
from ems_controllers.core.types import (
    Battery,
    DieselUnit,
    Forecast,
    Horizon,
    Microgrid,
    PartyProblem,
    SolverOptions,
)
from ems_controllers.local.model import LocalModel
from ems_controllers.security_constrained.model import (
    DN,
    DNO,
    MGC,
    DnSite,
    ScConfig,
    SecurityConstrainedModel,
)
from ems_controllers.security_constrained.split import shapley_shares, shapley_values

N = 6
DT = 1.0
BUY = (130.0, 140.0, 150.0, 160.0, 150.0, 140.0)
SELL = (121.0, 131.0, 141.0, 151.0, 141.0, 131.0)
HORIZON = Horizon(DT, BUY, SELL, final_step=N - 1)
OPTS = SolverOptions(mip_rel_gap=1e-6)
S_MAX_L2 = math.sqrt(3) * 10.0 * 0.02
A_LIMIT = 0.95 * S_MAX_L2  # 0.32909 MW
FEEDER_P = {1: [0.3] * N, 2: [0.2] * N}
FEEDER_Q = {1: [0.1] * N, 2: [0.05] * N}
MG_BUS = {"A": 3, "B": 4, "C": 4}


def _net():
    net = pp.create_empty_network(sn_mva=1.0)
    for _ in range(5):
        pp.create_bus(net, vn_kv=10.0, min_vm_pu=0.9, max_vm_pu=1.1)
    pp.create_ext_grid(net, 0, vm_pu=1.0)
    for f, t, i_ka in ((0, 1, 0.2), (1, 2, 0.2), (2, 3, 0.02), (1, 4, 0.2), (3, 4, 0.2)):
        pp.create_line_from_parameters(
            net, f, t, 1.0, r_ohm_per_km=0.5, x_ohm_per_km=0.5, c_nf_per_km=0.0, max_i_ka=i_ka
        )
    tie = pp.create_switch(net, 3, 4, et="l", closed=False)
    return net, tie


def _networks():
    net, tie = _net()
    return network_from_pandapower(net), network_from_pandapower(net, {tie: True})


def _mg_a() -> PartyProblem:
    mg = Microgrid("A", pcc_max_mw=2.0, res_curtailment_price_per_mwh=20.0)
    return PartyProblem(mg, Forecast((0.0,) * N, (1.0,) * N, (0.0,) * N))


def _mg_b() -> PartyProblem:
    bat = Battery(
        e_max_mwh=0.5, e_init_mwh=0.1, p_ch_max_mw=0.25, p_dis_max_mw=0.25, eta_ch=0.95, eta_dis=0.95, e_final_mwh=0.1
    )
    mg = Microgrid("B", battery=bat, pcc_max_mw=2.0, res_curtailment_price_per_mwh=20.0)
    return PartyProblem(mg, Forecast((0.8, 0.7, 0.9, 1.0, 0.8, 0.6), (0.0, 0.1, 0.3, 0.3, 0.1, 0.0), (0.2,) * N))


def _mg_c() -> PartyProblem:
    dg = DieselUnit(p_max_mw=0.6, p_min_mw=0.1, a2_per_mw2h=20.0, a1_per_mwh=110.0, startup_cost=30.0)
    mg = Microgrid("C", diesel=dg, pcc_max_mw=2.0, res_curtailment_price_per_mwh=20.0)
    return PartyProblem(mg, Forecast((0.5, 0.6, 0.7, 0.7, 0.6, 0.5), (0.0,) * N, (0.1,) * N))


def _dn(battery: Battery | None = None) -> DnSite:
    mg = Microgrid(DN, battery=battery, pcc_max_mw=100.0, load_shed_price_per_mwh=1000.0)
    prob = PartyProblem(mg, Forecast((0.5,) * N, (0.0,) * N, (0.0,) * N))
    return DnSite(
        prob,
        unit_bus=1,
        mg_bus=MG_BUS,
        feeder_p_mw=FEEDER_P,
        feeder_q_mvar=FEEDER_Q,
        mg_q_mvar={"B": [0.05] * N, "C": [0.02] * N},
    )


@pytest.fixture(scope="module")
def model() -> SecurityConstrainedModel:
    return SecurityConstrainedModel()


@pytest.fixture(scope="module")
def results(model):
    """Cases 1, 2, 3 on MGs A and B (the congested instance), solved once for the tests below."""
    radial, meshed = _networks()
    mgs = [_mg_a(), _mg_b()]
    out = {}
    for case, net in ((1, radial), (2, radial), (3, meshed)):
        out[case] = model.solve(mgs, _dn(), net, HORIZON, OPTS, ScConfig(case=case))
    return out


# --------------------------------------------------------------------------------------------------
# Step 1
# --------------------------------------------------------------------------------------------------


def test_step1_request_is_the_mgs_own_optimum(results):
    res = results[2]
    assert res.ok, res.message
    assert res.requests_mw["A"] == pytest.approx((-1.0,) * N, abs=1e-9)
    assert res.standalone_costs["A"] == pytest.approx(-sum(SELL) * DT, abs=1e-6)
    alone = LocalModel().solve(_mg_b(), HORIZON, OPTS)
    assert alone.plans is not None
    assert res.requests_mw["B"] == pytest.approx(alone.plans["B"].import_mw, abs=1e-6)
    assert res.standalone_costs["B"] == pytest.approx(alone.objective, rel=1e-6)
    requests = [msg for msg in res.messages if msg["kind"] == "request"]
    assert [(msg["sender"], msg["receiver"]) for msg in requests] == [("A", DNO), ("B", DNO)]


# --------------------------------------------------------------------------------------------------
# Step 2
# --------------------------------------------------------------------------------------------------


def test_step2_without_network_grants_the_requests(results):
    res = results[1]
    assert res.ok, res.message
    for n in ("A", "B"):
        assert res.grants_mw[n] == pytest.approx(res.requests_mw[n], abs=1e-7)
    assert res.dn_penalties["deviation"] == pytest.approx(0.0, abs=1e-6)
    # no DN units: the substation covers the feeder load plus the MGs' net requests
    sub = [0.5 + res.requests_mw["A"][t] + res.requests_mw["B"][t] for t in range(N)]
    assert res.substation_import_mw == pytest.approx(sub, abs=1e-7)
    # case 1 still reports the LinDistFlow prediction of its (unconstrained) schedule: l2 overloaded
    assert res.loading_percent[(2, 0)] == pytest.approx(100.0 / S_MAX_L2, rel=1e-6)


def test_step2_cuts_the_grant_at_the_line_limit_and_prices_the_deviation(results):
    res = results[2]
    assert res.grants_mw["A"] == pytest.approx((-A_LIMIT,) * N, abs=1e-6)
    assert res.grants_mw["B"] == pytest.approx(res.requests_mw["B"], abs=1e-6)
    cut = (1.0 - A_LIMIT) * N * DT
    assert res.dn_penalties["deviation"] == pytest.approx(500.0 * cut, rel=1e-6)
    assert res.dn_cost_with_penalties == pytest.approx(res.dn_cost + 500.0 * cut, rel=1e-6)
    assert max(res.loading_percent[(2, t)] for t in range(N)) == pytest.approx(95.0, abs=1e-4)
    assert all(0.9 - 1e-9 <= v <= 1.1 + 1e-9 for v in res.vm_pu.values())
    grants = [msg for msg in res.messages if msg["kind"] == "grant"]
    assert {(msg["sender"], msg["receiver"]) for msg in grants} == {(DNO, "A"), (DNO, "B")}


def test_constraints_can_only_cost_the_dno(results):
    c1, c2 = results[1], results[2]
    assert c2.dn_cost > c1.dn_cost + 1.0  # it buys upstream what A may not export
    assert c2.dn_cost_with_penalties >= c1.dn_cost_with_penalties - 1e-6


# --------------------------------------------------------------------------------------------------
# Step 3
# --------------------------------------------------------------------------------------------------


def test_step3_follows_the_cut_grant_by_curtailing(results):
    res = results[2]
    plan = res.plans["A"]
    assert plan.import_mw == pytest.approx((-A_LIMIT,) * N, abs=1e-6)
    assert plan.res_curtailed_mw == pytest.approx((1.0 - A_LIMIT,) * N, abs=1e-6)
    expected = sum(-s * A_LIMIT + 20.0 * (1.0 - A_LIMIT) for s in SELL) * DT
    assert res.mg_costs["A"] == pytest.approx(expected, rel=1e-6)
    assert res.mg_deviation_costs["A"] == pytest.approx(0.0, abs=1e-6)
    # B got what it asked for: same cost as alone
    assert res.mg_costs["B"] == pytest.approx(res.standalone_costs["B"], rel=1e-6)
    assert set(res.plans) == {"A", "B", DN}
    assert res.step1_s > 0 and res.step2_s > 0 and res.step3_s > 0


def test_step3_prefers_deviation_to_load_shedding():
    """A grant cut below what B must import: B has no means but shedding (1000 $/MWh) or deviating
    (500 $/MWh): it deviates, and pays for it."""
    mg = Microgrid("B", pcc_max_mw=2.0, load_shed_price_per_mwh=1000.0)
    b = PartyProblem(mg, Forecast((0.8,) * N, (0.0,) * N, (0.0,) * N))
    net, _ = _net()
    net.line.loc[3, "max_i_ka"] = 0.02  # l3 to bus 4: 0.32909 MW at Q = 0 (a polygon vertex)
    data = network_from_pandapower(net)
    dn = _dn()
    dn = DnSite(dn.problem, dn.unit_bus, {"B": 4}, FEEDER_P, FEEDER_Q, {"B": [0.0] * N})
    res = SecurityConstrainedModel().solve([b], dn, data, HORIZON, OPTS, ScConfig(case=2))
    assert res.ok, res.message
    assert res.grants_mw["B"] == pytest.approx((A_LIMIT,) * N, abs=1e-6)
    assert res.plans is not None
    plan = res.plans["B"]
    assert plan.import_mw == pytest.approx((0.8,) * N, abs=1e-6)
    assert plan.load_shed_mw == pytest.approx((0.0,) * N, abs=1e-9)
    assert res.mg_deviation_costs["B"] == pytest.approx(500.0 * (0.8 - A_LIMIT) * N * DT, rel=1e-6)


# --------------------------------------------------------------------------------------------------
# Case 3 and the split rule
# --------------------------------------------------------------------------------------------------


def test_case3_aggregation_saves_and_the_shares_sum_to_the_saving(model):
    """v(N) <= sum_m v({m}) up to the MIP gap (module docstring); with a gap of 1e-6 the slack is
    1e-6 |v(N)|."""
    _, meshed = _networks()
    mgs = [_mg_a(), _mg_b(), _mg_c()]
    res = model.solve(mgs, _dn(), meshed, HORIZON, OPTS, ScConfig(case=3))
    assert res.ok, res.message
    total = sum(res.standalone_costs.values())
    assert res.aggregated_cost <= total + 1e-6 * abs(res.aggregated_cost) + 1e-6
    assert res.saving == pytest.approx(total - res.aggregated_cost)
    assert res.saving > 1.0  # A's export nets against B's and C's imports: the buy-sell spread
    assert len(res.coalition_costs) == 7
    assert sum(res.shapley_shares.values()) == pytest.approx(res.saving, abs=1e-6)
    assert sum(res.mg_bills.values()) == pytest.approx(res.mg_final_cost, abs=1e-6)
    kinds = {(m["sender"], m["receiver"], m["kind"]) for m in res.messages}
    assert (MGC, DNO, "request") in kinds and (DNO, MGC, "grant") in kinds
    assert {(MGC, n, "split") for n in "ABC"} <= kinds
    for n in "ABC":  # an MG's deviation from its grant is priced at pi^dev
        dev = sum(abs(i - g) for i, g in zip(res.plans[n].import_mw, res.grants_mw[n], strict=True))
        assert res.mg_deviation_costs[n] == pytest.approx(500.0 * DT * dev, abs=1e-6)
    # the grants stay inside the import ranges the MGC reported
    for n, (lo, hi) in res.import_ranges_mw.items():
        assert all(lo[t] - 1e-9 <= res.grants_mw[n][t] <= hi[t] + 1e-9 for t in range(N))


def test_case3_vs_case2_on_the_congested_instance(results):
    """With the tie line l4 closed part of A's export flows 3 -> 4 instead of through l2: the DNO
    honours more of the aggregate, so it cuts less and pays less than in case 2."""
    c2, c3 = results[2], results[3]
    assert c3.ok, c3.message
    assert c3.dn_penalties["deviation"] < c2.dn_penalties["deviation"]
    assert c3.dn_cost_with_penalties < c2.dn_cost_with_penalties
    # the spec's shape on this instance (default redistribution price, see the model's docstring)
    assert c3.dn_cost < c2.dn_cost
    assert c3.mg_final_cost < sum(c2.mg_costs.values())


def test_case3_split_leaves_no_mg_above_its_case2_bill(model, results):
    """The split's baseline is case 2 itself (same inputs, radial network): each MG's ``case2_mg_costs``
    is its case-2 bill, and its case-3 bill is at most that (the MGs save in total: A's export nets
    against B's import and the tie line carries more of it)."""
    radial, meshed = _networks()
    res = model.solve([_mg_a(), _mg_b()], _dn(), meshed, HORIZON, OPTS, ScConfig(case=3), radial)
    assert res.ok, res.message
    c2 = results[2]
    assert res.case2_mg_costs == pytest.approx(c2.mg_costs, abs=1e-6)
    assert res.case2_dn_cost == pytest.approx(c2.dn_cost, abs=1e-6)
    assert set(res.case2_plans) == {"A", "B", DN}
    assert res.joint_saving == pytest.approx(sum(c2.mg_costs.values()) - res.mg_final_cost, abs=1e-6)
    assert res.joint_saving > 1.0 and res.split_rule == "shapley"
    for n in ("A", "B"):
        assert res.mg_bills[n] < c2.mg_costs[n] - 1e-6, n
    assert sum(res.mg_bills.values()) == pytest.approx(res.mg_final_cost, abs=1e-6)
    kinds = [m["kind"] for m in res.messages]
    assert "baseline_request" in kinds and "baseline_grant" in kinds
    split = next(m for m in res.messages if m["kind"] == "split" and m["receiver"] == "A")
    assert split["values"]["case2_bill"] == pytest.approx(c2.mg_costs["A"], abs=1e-6)


def test_infeasible_dn_is_a_typed_failure_of_step2(model):
    """The DN's battery cannot reach its final energy (0.01 MW x 6 h < 1 MWh): step 2 is infeasible."""
    radial, _ = _networks()
    bat = Battery(e_max_mwh=2.0, e_init_mwh=0.0, p_ch_max_mw=0.01, p_dis_max_mw=0.01, e_final_mwh=1.0)
    res = model.solve([_mg_a(), _mg_b()], _dn(bat), radial, HORIZON, OPTS, ScConfig(case=2))
    assert not res.ok
    assert res.status == "infeasible" and res.failed_step == "step2"
    assert "step2" in res.message and "DNO" in res.message
    assert res.plans is None
    assert res.requests_mw["A"] == pytest.approx((-1.0,) * N, abs=1e-9)  # step 1 is kept


def test_bad_input_is_a_value(model):
    res = model.solve([_mg_a()], _dn(), None, HORIZON, OPTS, ScConfig(case=2))
    assert not res.ok and res.failed_step == "input" and res.status == "error"
    radial, _ = _networks()
    dn = _dn()
    dn = DnSite(dn.problem, 1, MG_BUS, {1: [0.3] * N}, FEEDER_Q)  # 0.3 MW per bus vs 0.5 MW total
    res = model.solve([_mg_a()], dn, radial, HORIZON, OPTS, ScConfig(case=2))
    assert not res.ok and res.failed_step == "step2" and "differs" in res.message
    with pytest.raises(ValueError, match="case"):
        ScConfig(case=4)


# --------------------------------------------------------------------------------------------------
# shapley_shares by hand
# --------------------------------------------------------------------------------------------------


def _game(**v: float) -> dict[frozenset[str], float]:
    return {frozenset(k): x for k, x in v.items()}


def test_shapley_by_hand():
    """v(A)=10, v(B)=20, v(C)=30, v(AB)=25, v(AC)=40, v(BC)=50, v(ABC)=54; weights 1/3, 1/6, 1/3:
    phi_A = 10/3 + (25-20)/6 + (40-30)/6 + (54-50)/3 = 43/6,  phi_B = 20/3 + 15/6 + 20/6 + 14/3 = 103/6,
    phi_C = 30/3 + 30/6 + 30/6 + 29/3 = 89/3; shares v({i}) - phi_i = 17/6, 17/6, 1/3 (sum 6 = 60 - 54)."""
    g = _game(A=10, B=20, C=30, AB=25, AC=40, BC=50, ABC=54)
    assert shapley_values(g) == pytest.approx({"A": 43 / 6, "B": 103 / 6, "C": 89 / 3})
    assert shapley_shares(g) == pytest.approx({"A": 17 / 6, "B": 17 / 6, "C": 1 / 3})


def test_shapley_efficiency_symmetry_dummy():
    # two players: the saving is halved
    assert shapley_shares(_game(A=10, B=20, AB=24)) == pytest.approx({"A": 3.0, "B": 3.0})
    # symmetry: A and B alike
    s = shapley_shares(_game(A=10, B=10, C=5, AB=15, AC=14, BC=14, ABC=20))
    assert s["A"] == pytest.approx(s["B"])
    assert sum(s.values()) == pytest.approx(25 - 20)
    # dummy: D adds exactly v(D) = 7 to every coalition -> no share; A, B split their 5 in halves
    s = shapley_shares(_game(A=10, B=20, D=7, AB=25, AD=17, BD=27, ABD=32))
    assert s == pytest.approx({"A": 2.5, "B": 2.5, "D": 0.0})


def test_shapley_needs_every_coalition():
    with pytest.raises(ValueError, match="missing"):
        shapley_shares(_game(A=10, B=20, C=30, AB=25, ABC=54))
