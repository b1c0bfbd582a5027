"""``run.processes``: the parties' EMS entities spread over several EMS simulators, each a process of its
own, give the record and the KPIs that one EMS simulator gives, and no process outlives the run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ems_controllers.core.contract import AgentLoop, EntityModel, Strategy, StrategyError
from ems_controllers.registry import get_strategy
from scenarios.child import TRACE_ENV
from scenarios.cli import main
from scenarios.common import check_connect, ems_partitions, nesting_trees, run_simulators
from scenarios.config import ConfigError, load_config
from scenarios.registry import get_scenario
from scenarios.runner import RunResult
from tests.conftest import DEFAULT_CONFIG, run_default
from tests.helpers.same_run import assert_no_child_left, assert_same_run

PARTIES = ("MG1", "MG2", "MG3", "DN")
ISLANDED_PARTIES = ("MG1", "MG2", "MG3")


def _spread_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str, n: int) -> RunResult:
    """A 1-day run with ``run.processes = n``; each EMS simulator process traces its inputs, which say
    which parties it held."""
    trace = tmp_path / "trace"
    trace.mkdir()
    monkeypatch.setenv(TRACE_ENV, str(trace))
    run = run_default(tmp_path, [f"run.processes={n}"], name=f"p{n}.h5", strategy=strategy)
    assert_no_child_left(os.getpid())
    held = {}
    for k in range(1, n + 1):
        first = json.loads((trace / f"EMS-{k}-0.jsonl").read_text().splitlines()[0])
        held[f"EMS-{k}"] = tuple(first["inputs"])
    cfg, _ = load_config(DEFAULT_CONFIG, [f"run.processes={n}"])
    assert held == ems_partitions(cfg, get_strategy(strategy), PARTIES), "each process took its share's inputs"
    return run


def test_rule_based_spread_over_three_processes_is_the_same_run(
    default_run: RunResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spread = _spread_run(tmp_path, monkeypatch, "rule_based", 3)
    assert_same_run(default_run.path, spread.path, spread.kpis)


@pytest.mark.slow
def test_local_spread_over_two_processes_is_the_same_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = run_default(tmp_path, name="p1.h5", strategy="local")
    spread = _spread_run(tmp_path, monkeypatch, "local", 2)
    assert_same_run(one.path, spread.path, spread.kpis)


def test_shares_keep_nesting_trees_whole_and_even() -> None:
    cfg, _ = load_config(DEFAULT_CONFIG, ["run.processes=3"])
    assert ems_partitions(cfg, get_strategy("rule_based"), PARTIES) == {
        "EMS-1": ("MG1", "DN"),
        "EMS-2": ("MG2",),
        "EMS-3": ("MG3",),
    }
    names = [(e.name, e.own_process) for e in run_simulators(get_strategy("local"), PARTIES).entries(cfg)]
    assert names == [("Grid", False), ("Profiles", False), ("Recorder", False)] + [
        (f"EMS-{k}", True) for k in (1, 2, 3)
    ]
    one, _ = load_config(DEFAULT_CONFIG)
    assert ems_partitions(one, get_strategy("rule_based"), PARTIES) == {"EMS": PARTIES}
    nested, _ = load_config(get_scenario("nested_campus").default_config, ["run.processes=2"])
    campus = ("campus", "faculty", "department")
    assert nesting_trees(nested, campus) == [campus]
    with pytest.raises(ConfigError, match=r"run.processes = 2: scenario nested_campus has 1 parties to spread"):
        ems_partitions(nested, get_strategy("local"), campus)


@pytest.mark.parametrize(
    ("scenario", "strategy", "sets", "words"),
    [
        ("islanded_img", "admm", ["run.processes=2"], "run.processes = 2: strategy admm cannot be spread over "
         "simulators: its parties are agents"),
        ("ieee33_3mg", "rule_based", ["run.processes=5"], "run.processes = 5: scenario ieee33_3mg has 4 parties "
         "to spread (a party and the MGs nested in it count as one: MG1; MG2; MG3; DN), so at most 4"),
        ("ieee33_3mg", "local", ["run.processes=2", "run.connect.EMS=h:1"], "run.connect: no simulator named EMS "
         "in this run (it has EMS-1, EMS-2, Grid, Profiles, Recorder)"),
        ("ieee33_3mg", "rule_based", ["run.connect.Recorder=h:1"], "run.connect.Recorder: the recorder writes "
         "the run's file"),
    ],
)  # fmt: skip
def test_what_cannot_be_placed_is_a_config_error(scenario: str, strategy: str, sets: list[str], words: str) -> None:
    """What ``check_fit`` checks before any simulator starts (the command line's exit 2)."""
    cfg, _ = load_config(get_scenario(scenario).default_config, sets)
    parties = PARTIES if scenario == "ieee33_3mg" else ISLANDED_PARTIES
    with pytest.raises(ConfigError) as info:
        check_connect(cfg, run_simulators(get_strategy(strategy), parties))
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("sets", "words"),
    [
        (["run.processes=2"], "run.processes = 2: strategy centralized cannot be spread over simulators: its "
         "contract does not declare its parties partitionable"),
        (["run.processes=0"], "run.processes"),
    ],
)  # fmt: skip
def test_the_command_line_says_what_cannot_be_spread(
    sets: list[str], words: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.h5"
    args = ["run", "ieee33_3mg", "--strategy", "centralized", "--quiet", "--out", str(out)]
    code = main([*args, *(a for s in sets for a in ("--set", s))])
    err = capfd.readouterr().err
    assert code == 2 and not out.exists(), err
    assert words in err, err


def test_a_partitionable_contract_has_no_entity_for_the_whole_system() -> None:
    rule = get_strategy("rule_based")
    assert rule.partitionable and get_strategy("local").partitionable
    assert not get_strategy("centralized").partitionable
    with pytest.raises(StrategyError, match="partitionable, but its system_entity couple"):
        Strategy("x", rule.simulator, "", rule.outputs, partitionable=True, system_entity=EntityModel("S", ()))
    loop = AgentLoop("m:C", "AU", (), ("a", "b"), ("c", "d"))
    with pytest.raises(StrategyError, match="partitionable, but its agents couple"):
        Strategy("x", rule.simulator, "", rule.outputs, partitionable=True, agents=loop)
