"""The test run's own set-up: ``make test`` runs on all cores with ``--dist loadgroup`` so that the tests
sharing an expensive fixture (``xdist_group``) run on one worker, which builds it once. If a pytest or
pytest-xdist upgrade silently stops the grouping (pytest-xdist#1386 with pytest 9.2), the suite still
passes but does its costliest work once per worker; this test says so instead."""

from __future__ import annotations

import pytest


@pytest.mark.xdist_group("grouping_check")
def test_xdist_groups_take_effect(request: pytest.FixtureRequest) -> None:
    if not getattr(request.config.option, "loadgroup", False):  # set on xdist workers of a loadgroup run
        pytest.skip("not run with --dist loadgroup")
    assert request.node.nodeid.endswith("@grouping_check"), request.node.nodeid
