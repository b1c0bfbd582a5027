"""The KPIs of every shipped scenario x strategy (1 day, defaults) stay what ``tests/reference/kpis_1day.json``
says: refactors move no result. Tolerance: 1e-9 relative (and 1e-9 absolute for values that are 0 up to
solver noise, such as an exchange deviation of 4e-10 MWh). Regenerate with
``python -m tests.reference.shipped`` only for a change that is meant to move results."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from scenarios.runner import RunResult
from tests.conftest import SHIPPED_GROUP
from tests.reference.shipped import CASES, REFERENCE_FILE, outcome

# One worker runs the shared simulations (pytest-xdist --dist loadgroup), not each.
pytestmark = pytest.mark.xdist_group(SHIPPED_GROUP)

REL_TOL = 1e-9
ABS_TOL = 1e-9


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


@pytest.fixture(scope="module")
def references() -> dict[str, dict[str, Any]]:
    refs: dict[str, dict[str, Any]] = json.loads(REFERENCE_FILE.read_text())
    return refs


def test_every_shipped_case_has_a_reference(references: dict[str, Any]) -> None:
    assert set(references) == {f"{sc}/{st}" for sc, st in CASES}


@pytest.mark.parametrize(("scenario", "strategy"), CASES)
def test_kpis_match_the_reference(
    scenario: str, strategy: str, references: dict[str, Any], shipped_runs: dict[tuple[str, str], RunResult]
) -> None:
    expected = references[f"{scenario}/{strategy}"]
    got = outcome(shipped_runs[(scenario, strategy)].kpis)
    assert got.keys() == expected.keys()
    moved = {k: (expected[k], got[k]) for k in expected if not _same(expected[k], got[k])}
    assert not moved, f"{scenario}/{strategy}: KPIs moved (reference, now): {moved}"
