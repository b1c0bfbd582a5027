"""The strategy contract: every shipped strategy declares what the rest of the package uses, the config
checks each strategy's own settings, a strategy refuses a scenario that lacks what it needs, and no code
outside a strategy's folder (and the registries) knows a strategy by name."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from ems_controllers.core.contract import Capability, NoSettings, Strategy, StrategyError, StrategySettings
from ems_controllers.registry import SHIPPED, get_strategy, strategies
from scenarios.build import build_net
from scenarios.cli import main, parse_strategy_spec
from scenarios.config import Config, ConfigError, load_config
from scenarios.layout import DN, NetLayout
from scenarios.registry import SCENARIOS
from scenarios.strategy_fit import check_fit, offered, strategy_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(strategies()))
def test_contract_matches_its_simulator(name: str) -> None:
    """The simulator's META offers every output the contract declares, and the extra entity models."""
    s = get_strategy(name)
    module, _, cls = s.simulator.partition(":")
    sim = getattr(importlib.import_module(module), cls)()
    models = sim.meta["models"]
    assert set(s.outputs) <= set(models["MG"]["attrs"])
    for extra in (s.owner_agent, s.system_entity):
        if extra is not None:
            assert set(extra.outputs) <= set(models[extra.model]["attrs"])
    assert all(not f.is_required() for f in s.settings.model_fields.values()), "every setting needs a default"


def test_shipped_strategies_are_all_registered() -> None:
    assert len(strategies()) >= len(SHIPPED)
    assert {m.split(".")[1] for m in SHIPPED} == {s.module.split(".")[1] for s in strategies().values()}


class _Two(StrategySettings):
    level: int = 1


def _strategy(**kw: object) -> Strategy:
    base: dict[str, object] = {"name": "x", "simulator": "m:C", "description": "d", "outputs": ()}
    return Strategy(**{**base, **kw})  # type: ignore[arg-type]


def test_problem_names_the_missing_and_the_unsupported_capability() -> None:
    s = _strategy(
        requires=frozenset({Capability.NETWORK_OPERATOR}),
        cannot_handle=frozenset({Capability.NESTED}),
        requires_for=lambda st: frozenset({Capability.TIE_SWITCHES}) if st.level > 1 else frozenset(),
        settings=_Two,
    )
    assert s.problem(frozenset({Capability.NETWORK_OPERATOR}), _Two()) is None
    missing = s.problem(frozenset(), _Two())
    assert missing is not None and "needs network_operator" in missing
    nested = s.problem(frozenset({Capability.NETWORK_OPERATOR, Capability.NESTED}), _Two())
    assert nested is not None and "cannot handle nested" in nested
    ties = s.problem(frozenset({Capability.NETWORK_OPERATOR}), _Two(level=2))
    assert ties is not None and "tie_switches" in ties


def test_a_contract_is_checked_when_made() -> None:
    with pytest.raises(StrategyError, match="module:Class"):
        _strategy(simulator="no_colon")
    with pytest.raises(StrategyError, match="StrategySettings"):
        _strategy(settings=dict)
    assert _strategy().settings is NoSettings


def test_unknown_strategy_and_bad_target_are_clear() -> None:
    with pytest.raises(StrategyError, match="unknown strategy 'nope'"):
        get_strategy("nope")
    with pytest.raises(StrategyError, match="cannot import"):
        get_strategy("no_such_module_xyz:Thing")
    with pytest.raises(StrategyError, match="has no 'Nothing'"):
        get_strategy("ems_controllers.core.contract:Nothing")


def _default(scenario: str, overrides: list[str] | None = None) -> tuple[object, object]:
    entry = SCENARIOS[scenario]
    cfg, _ = load_config(entry.default_config, overrides or [])
    return cfg, build_net(cfg)


@pytest.mark.xdist_group("mv_clusters")  # the worker that parses SimBench's data (seconds) once for all
def test_capabilities_of_the_shipped_scenarios() -> None:
    """What the config offers (``list`` builds no net) is what the built net has."""
    have = {}
    for name in SCENARIOS:
        cfg, layout = _default(name)
        assert isinstance(cfg, Config) and isinstance(layout, NetLayout)
        have[name] = offered(cfg)
        ext = layout.net.ext_grid
        built = {
            Capability.NETWORK_OPERATOR: DN in layout.parties,
            Capability.TIE_SWITCHES: bool(layout.tie_switches),
            Capability.CLUSTERS: bool(layout.clusters),
            Capability.ISLANDED: not (len(ext) and ext["in_service"].astype(bool).any()),
        }
        for cap, present in built.items():
            assert (cap in have[name]) == present, (name, cap)
    assert have["mv_clusters"] == {Capability.NETWORK_OPERATOR, Capability.CLUSTERS}
    assert have["ieee33_3mg"] == {Capability.NETWORK_OPERATOR, Capability.TIE_SWITCHES}
    assert Capability.CHP in have["community_3mg"] and Capability.NETWORK_OPERATOR not in have["community_3mg"]
    assert {Capability.NESTED, Capability.OWNER_LOADS} <= have["nested_campus"]


def test_case_3_without_tie_switches_is_refused() -> None:
    cfg, layout = _default("ieee33_3mg", ["grid.tie_lines=[]", "ems.case=3"])
    with pytest.raises(ConfigError, match="needs tie_switches"):
        check_fit(cfg, layout, get_strategy("security_constrained"))  # type: ignore[arg-type]
    cfg2, layout2 = _default("ieee33_3mg", ["grid.tie_lines=[]", "ems.case=2"])
    assert strategy_settings(cfg2, get_strategy("security_constrained")).model_dump()["case"] == 2  # type: ignore[arg-type]
    check_fit(cfg2, layout2, get_strategy("security_constrained"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("ems.case=7", "ems.case"),
        ("ems.key_bits=512", "ems.key_bits"),
        ("ems.no_such_setting=1", "ems.no_such_setting"),
    ],
)
def test_bad_strategy_setting_exits_2_naming_it(
    override: str, field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "ieee33_3mg", "--quiet", "--out", str(tmp_path / "x.h5"), "--set", override])
    err = capsys.readouterr().err
    assert code == 2 and f"{field}:" in err, err
    assert not (tmp_path / "x.h5").exists()


def test_cross_field_setting_rule_names_the_strategy() -> None:
    with pytest.raises(ConfigError, match=r"redistribution_price_per_mwh must be below.*security_constrained"):
        _default("ieee33_3mg", ["ems.redistribution_price_per_mwh=600"])


NAME_FREE = ["sims", "scenarios", "ems_controllers/core"]
ALLOWED = {"scenarios/registry.py"}  # the default strategy of the command line


def test_no_code_outside_a_strategy_folder_names_a_strategy() -> None:
    names = sorted(strategies())
    alternatives = "|".join(map(re.escape, names))
    quoted = re.compile(rf"""["']({alternatives})["']""")
    imports = re.compile(rf"ems_controllers\.({alternatives})\b")
    capability_values = {c.value for c in Capability}
    hits = []
    for folder in NAME_FREE:
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel in ALLOWED:
                continue
            text = path.read_text()
            hits += [f"{rel}: {m.group(0)}" for m in quoted.finditer(text) if m.group(1) not in capability_values]
            hits += [f"{rel}: {m.group(0)}" for m in imports.finditer(text)]
    assert not hits, hits


@pytest.mark.parametrize(
    ("spec", "name", "opts"),
    [
        ("local", "local", []),
        ("cooperative:ancillary='extended'", "cooperative", ["ems.ancillary='extended'"]),
        ("pkg.mod:STRATEGY", "pkg.mod:STRATEGY", []),
        ("pkg.mod:STRATEGY:a=1,b=2", "pkg.mod:STRATEGY", ["ems.a=1", "ems.b=2"]),
    ],
)
def test_strategy_spec_options_follow_the_last_colon(spec: str, name: str, opts: list[str]) -> None:
    assert parse_strategy_spec(spec) == (name, opts)
