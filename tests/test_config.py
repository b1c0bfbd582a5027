"""Bad input stops before any simulator starts, with exit code 2 and a message naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ems_controllers.core.contract import Capability
from scenarios.build import build_net
from scenarios.cli import main
from scenarios.config import ConfigError, apply_overrides, load_config
from tests.conftest import DEFAULT_CONFIG


def _run_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> tuple[int, str]:
    code = main(["run", "--quiet", "--out", str(tmp_path / "x.h5"), *args])
    err = capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists(), "no simulator may start on bad input"
    return code, err


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("mgs.MG1.bus=99", "mgs[0] (MG1).bus"),
        ("mgs.MG2.battery.e_max_mwh=-1", "mgs[1] (MG2).battery.e_max_mwh"),
        ("mgs.MG1.diesel.p_max_mw=-0.5", "mgs[0] (MG1).diesel.p_max_mw"),
        ("scenario.load_profiles_file='missing.csv'", "scenario.load_profiles_file"),
        ("tariff.buy_price_per_mwh=[100.0, 110.0]", "tariff.sell_price_per_mwh"),
        ("tariff.buy_price_per_mwh=[100.0, 110.0, 120.0, 130.0, 140.0, 150.0, 160.0]", "tariff.buy_price_per_mwh"),
        ("scenario.step_s=5400", "tariff.buy_price_per_mwh"),
        ("ems.step_s=1800", "ems.step_s"),
        ("forecast.every_s=5400", "forecast.every_s"),
        ("scenario.step_s=7", "scenario.step_s"),
        ("mgs.MG1.load.profile='NOPE'", "mgs[0] (MG1).load.profile"),
        ("grid.tie_lines=[32, 99]", "grid.tie_lines"),
        ("grid.colour='red'", "grid.colour"),
        ("mgs.MG3.battery.e_init_mwh=5.0", "mgs[2] (MG3).battery"),
        ("forecast.horizon_steps=12", "forecast.horizon_steps"),
    ],
)
def test_bad_field_exits_2_naming_it(
    override: str, field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run_cli(capsys, tmp_path, "--set", override)
    assert code == 2
    assert field in err, err


def test_nan_in_profile_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = DEFAULT_CONFIG.parent / "load_profiles.csv"
    lines = src.read_text().splitlines()
    header = lines[0].split(",")
    col = header.index("H0-A")
    row = lines[100].split(",")
    row[col] = "nan"
    lines[100] = ",".join(row)
    bad = tmp_path / "profiles_nan.csv"
    bad.write_text("\n".join(lines) + "\n")
    code, err = _run_cli(capsys, tmp_path, "--set", f"scenario.load_profiles_file='{bad}'")
    assert code == 2
    assert "profile 'H0-A'" in err and "NaN" in err, err


def test_short_profile_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = DEFAULT_CONFIG.parent / "load_profiles.csv"
    bad = tmp_path / "short.csv"
    bad.write_text("\n".join(src.read_text().splitlines()[:100]) + "\n")
    code, err = _run_cli(capsys, tmp_path, "--set", f"scenario.load_profiles_file='{bad}'")
    assert code == 2 and "8760" in err, err


def test_config_file_variant_and_malformed_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[scenario\nname = 1")
    code, err = _run_cli(capsys, tmp_path, "--config", str(broken))
    assert code == 2 and "not valid TOML" in err
    code, err = _run_cli(capsys, tmp_path, "--config", str(tmp_path / "none.toml"))
    assert code == 2 and "not found" in err


def test_unknown_names_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run_cli(capsys, tmp_path, "--strategy", "nope")
    assert code == 2 and "unknown strategy 'nope'" in err
    assert main(["run", "nope_scenario", "--quiet"]) == 2
    assert main(["report", str(tmp_path / "absent.h5")]) == 2


def test_overrides_address_mgs_by_name_and_parse_toml_values() -> None:
    raw: dict[str, Any] = {"mgs": [{"name": "MG1", "bus": 3}], "forecast": {}}
    out = apply_overrides(raw, ["mgs.MG1.bus=5", "forecast.error_std=0.1", "run.separate_processes=['ems']"])
    assert out["mgs"][0]["bus"] == 5 and out["forecast"]["error_std"] == 0.1
    assert out["run"]["separate_processes"] == ["ems"]
    assert raw["mgs"][0]["bus"] == 3, "overrides must not mutate the input"
    with pytest.raises(ConfigError, match="no entry 'MG9'"):
        apply_overrides(raw, ["mgs.MG9.bus=5"])


def test_default_config_builds_the_documented_net() -> None:
    cfg, _ = load_config(DEFAULT_CONFIG)
    layout = build_net(cfg)
    net = layout.net
    assert len(net.bus) == 33 + len(cfg.mgs)
    assert (net.line.max_i_ka < 1.0).all(), "case33bw's unlimited ratings must be replaced"
    assert net.line.loc[cfg.grid.trunk_lines, "max_i_ka"].eq(cfg.grid.trunk_max_i_ka).all()
    ties = net.switch.loc[layout.tie_switches]
    assert len(ties) == 5 and not ties.closed.any()
    for mg in cfg.mgs:
        party = layout.parties[mg.name]
        assert net.switch.at[party.pcc_switch, "closed"]
        assert int(net.line.at[party.pcc_line, "from_bus"]) == mg.bus
    assert layout.parties["MG3"].diesel is None, "MG3 has no diesel (spec 002)"


@pytest.mark.parametrize(
    ("scenario", "override", "field"),
    [
        (
            "nested_campus",
            "mgs.faculty.trade.buy_price_per_mwh=[nan" + ",1.0" * 23 + "]",
            "mgs[1] (faculty).trade.buy_price_per_mwh",
        ),
        (
            "nested_campus",
            "mgs.faculty.trade.sell_price_per_mwh=[500.0" + ",500.0" * 23 + "]",
            "mgs[1] (faculty).trade",
        ),
        ("nested_campus", "mgs.department.diesel.a2_per_mw2h=inf", "mgs[2] (department).diesel.a2_per_mw2h"),
        ("nested_campus", "mgs.faculty.owners=[]", "mgs[1] (faculty)"),
        ("nested_campus", "mgs.faculty.parent='department'", "nesting cycle"),
        ("community_3mg", "mgs.A.chp.a1_per_mwh=inf", "mgs[0] (A).chp.a1_per_mwh"),
        ("community_3mg", "mgs.B.load.column='demand_Z_kwh'", "mgs[1] (B).load.column"),
        ("community_3mg", "data.file='nope.csv'", "data.file"),
        ("ieee33_3mg", "grid.line_max_i_ka=inf", "grid.line_max_i_ka"),
    ],
)
def test_bad_fields_of_every_scenario_exit_2(
    scenario: str, override: str, field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", scenario, "--quiet", "--out", str(tmp_path / "x.h5"), "--set", override])
    err = capsys.readouterr().err
    assert code == 2 and field in err, err
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize(
    ("scenario", "strategy"),
    [("community_3mg", "security_constrained"), ("ieee33_3mg", "cooperative"), ("community_3mg", "nested")],
)
def test_strategy_whose_capabilities_the_scenario_lacks_exits_2(
    scenario: str, strategy: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error names the capability that is missing (or that the strategy cannot handle)."""
    code = main(["run", scenario, "--strategy", strategy, "--quiet", "--out", str(tmp_path / "x.h5")])
    err = capsys.readouterr().err
    assert code == 2 and f"strategy {strategy} cannot run on scenario {scenario}: it " in err, err
    assert any(c.value in err for c in Capability), err
    assert not (tmp_path / "x.h5").exists()
