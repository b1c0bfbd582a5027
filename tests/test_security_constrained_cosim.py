"""security_constrained in the co-simulation of ieee33_3mg: the seed's shape and the AC check.

Every case runs one day with perfect forecasts and its schedule goes through the AC power flow. The
seed's shape (spec 002): DNO cost case 2 > case 1; case 3 lowers both the MGs' total and the DNO's cost
relative to case 2; cases 2 and 3 cause no AC violations, case 1 does. Costs are the co-simulation's
(what happened), not the plans'.
"""

from __future__ import annotations

import numpy as np
import pytest

from ems_controllers.security_constrained.strategy import Settings
from scenarios.runner import RunResult
from sims.record_reader import read_attrs, read_messages, read_series
from tests.conftest import SHIPPED_GROUP, run_default

MGS = ("MG1", "MG2", "MG3")


# Case 2 (the strategy's default) is the shared run of ieee33_3mg/security_constrained (tests/conftest.py's
# ``shipped_runs``): its worker makes cases 1 and 3 beside it.
pytestmark = pytest.mark.xdist_group(SHIPPED_GROUP)
DEFAULT_CASE = 2


@pytest.fixture(scope="module")
def cases(
    tmp_path_factory: pytest.TempPathFactory, shipped_runs: dict[tuple[str, str], RunResult]
) -> dict[int, RunResult]:
    d = tmp_path_factory.mktemp("sc")
    shared = shipped_runs[("ieee33_3mg", "security_constrained")]
    # the shared run sets no case: it runs the strategy's default
    assert Settings().case == DEFAULT_CASE and "case" not in read_attrs(shared.path)["config"]["ems"]
    return {
        c: shared
        if c == DEFAULT_CASE
        else run_default(d, [f"ems.case={c}"], name=f"case{c}.h5", strategy="security_constrained")
        for c in (1, 2, 3)
    }


def _mg_total(run: RunResult) -> float:
    return sum(run.kpis["cost_by_mg"][m] for m in MGS)


def test_every_case_planned_and_ran(cases: dict[int, RunResult]) -> None:
    for c, run in cases.items():
        assert run.kpis["ems_fallback_steps"] == 0, c
        assert run.kpis["pf_failures"] == 0, c
        assert set(run.kpis["cost_by_mg"]) == {*MGS, "DN"}
        assert sum(run.kpis["cost_by_mg"].values()) == pytest.approx(run.kpis["total_cost"], abs=1e-6)


def test_case_1_violates_and_cases_2_3_do_not(cases: dict[int, RunResult]) -> None:
    assert cases[1].kpis["n_voltage_violations"] + cases[1].kpis["n_line_overloads"] > 0
    for c in (2, 3):
        k = cases[c].kpis
        assert k["n_voltage_violations"] == 0 and k["n_line_overloads"] == 0, (c, k["max_vm_pu"])
        assert k["max_vm_pu"] <= 1.05 and k["min_vm_pu"] >= 0.95


def test_seed_shape_of_costs(cases: dict[int, RunResult]) -> None:
    dn = {c: r.kpis["cost_by_mg"]["DN"] for c, r in cases.items()}
    assert dn[2] > dn[1], "security constraints can only cost the DNO"
    assert dn[3] < dn[2] and _mg_total(cases[3]) < _mg_total(cases[2]), "case 3 lowers both"


def test_no_mg_pays_more_in_case_3_than_in_case_2(cases: dict[int, RunResult]) -> None:
    """The co-simulated bills (units, PCC exchange at the tariff, the split's settlement) on the shipped day:
    every MG at or below its case-2 bill. No allowance for losses: the feeder's losses are imported at the
    substation, on the DN's bill, and an MG's PCC flow follows its plan. (Before the split was settled,
    MG2 and MG3 paid 0.3 and 0.7 $ more in case 3; now each pays 86-101 $ less.)"""
    for m in MGS:
        assert cases[3].kpis["cost_by_mg"][m] <= cases[2].kpis["cost_by_mg"][m] + 0.01, m
    settled = read_series(cases[3].path)
    total = sum(float(np.nansum(v)) for (fid, attr), v in settled.items() if attr == "settlement_cost")
    assert abs(total) <= 1e-6, "the split's settlements move money between the parties only"


def test_case_3_closes_the_ties_and_splits_a_non_negative_saving(cases: dict[int, RunResult]) -> None:
    for c, run in cases.items():
        attrs = read_attrs(run.path)
        s = read_series(run.path)
        ties = [s[(fid, "closed")] for fid in attrs["entity_map"]["tie_switches"]]
        assert all((t == (1.0 if c == 3 else 0.0)).all() for t in ties), c
    shares = cases[3].kpis["aggregation_saving_share"]
    assert set(shares) == set(MGS)
    assert sum(shares.values()) >= -1e-3 * abs(_mg_total(cases[3])), "aggregation never costs the MGs"


def test_requests_and_grants_are_on_record(cases: dict[int, RunResult]) -> None:
    for c, run in cases.items():
        kinds = {(m["sender"], m["receiver"], m["kind"].split(".")[0]) for m in read_messages(run.path)}
        if c in (1, 2):
            for mg in MGS:
                assert (mg, "DNO", "request") in kinds and ("DNO", mg, "grant") in kinds
        else:
            assert any(k[0] == "MGC" and k[1] == "DNO" for k in kinds)
            assert any(k[0] == "DNO" and k[1] == "MGC" for k in kinds)
            assert any(k[0] == "MGC" and k[2] == "split" for k in kinds)


def test_linearisation_error_against_ac_is_measured(cases: dict[int, RunResult]) -> None:
    for c in (2, 3):
        k = cases[c].kpis
        # LinDistFlow drops losses; with the 0.95 current margin and the AC check above this error is
        # what the report states. Measured: about 0.002 pu, 3 loading points.
        assert 0 < k["linearisation_vm_error_max_pu"] < 0.01
        assert 0 < k["linearisation_loading_error_max_percent"] < 10
        steps = k["solve_time_by_step_s"]
        assert all(v > 0 for key, v in steps.items() if key != "split_s")


def test_grants_reach_the_grid(cases: dict[int, RunResult]) -> None:
    """What the DNO granted is what each MG exchanged at its PCC (perfect forecasts)."""
    run = cases[2]
    attrs = read_attrs(run.path)
    s = read_series(run.path)
    for mg in MGS:
        pm = attrs["entity_map"]["parties"][mg]
        np.testing.assert_allclose(-s[(pm["pcc_line"], "p_to_mw")], s[(pm["ems"], "grant_mw")], atol=1e-5)
