"""Bad input on the command line: exit code 2, a message naming the field, file or folder, decided before
any simulator starts (no HDF5 file is written). Issue 10, rows 5, 7, 8 and 10."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from scenarios.cli import main
from scenarios.registry import get_scenario
from scenarios.runner import RunResult
from sims import profiles
from tests.conftest import DEFAULT_CONFIG

COMMUNITY_CONFIG = get_scenario("community_3mg").default_config


def assert_bad_input_stdout(out: str, as_json: bool, says: str) -> None:
    """Bad input's stdout: nothing, or with ``--json`` the one document naming the problem."""
    if not as_json:
        assert out == ""
        return
    import json

    doc = json.loads(out)
    assert doc["exit_status"] == 2 and says in doc["input_error"], doc


def _run_bad(capfd: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """``mmg-cosim run ... --out tmp_path/out/x.h5``: the exit code, stdout and stderr; asserts that nothing
    was written (no simulator started)."""
    out_dir = tmp_path / "out"
    code = main(["run", *args, "--quiet", "--out", str(out_dir / "x.h5")])
    captured = capfd.readouterr()
    written = sorted(p.name for p in out_dir.iterdir()) if out_dir.exists() else []
    assert written == [], f"no simulator may start on bad input, found {written}"
    return code, captured.out, captured.err


# --- row 5/7: values checked against their library or range before the start ---------------------------
def test_unknown_turbine_type_exits_2_naming_the_field(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run_bad(capfd, tmp_path, "--set", "mgs.MG1.wind.turbine_type='nosuch'")
    assert code == 2, err
    assert "mgs[0] (MG1).wind.turbine_type" in err and "'nosuch'" in err, err
    assert "get_turbine_types(print_out=False)" in err, "the message says how to find the valid types"
    assert "E-82/2350" in err, "the message lists the valid types"
    assert out == ""


def test_misspelt_turbine_type_gets_a_suggestion(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run_bad(capfd, tmp_path, "--set", "mgs.MG2.wind.turbine_type='E-82/235'")
    assert code == 2 and "mgs[1] (MG2).wind.turbine_type" in err, err
    assert "did you mean E-82/2350" in err, err


@pytest.mark.parametrize(
    ("hub_height_m", "says"),
    [("30.0", "half the rotor diameter"), ("8.0", "wind measurement height")],
)
def test_hub_height_invalid_for_the_turbine_exits_2(
    hub_height_m: str, says: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run_bad(capfd, tmp_path, "--set", f"mgs.MG3.wind.hub_height_m={hub_height_m}")
    assert code == 2 and "mgs[2] (MG3).wind.hub_height_m" in err and says in err, err


def test_a_valid_other_turbine_passes_validation() -> None:
    from scenarios.config import load_config

    cfg, _ = load_config(DEFAULT_CONFIG, ["mgs.MG1.wind.turbine_type='V90/2000'", "mgs.MG1.wind.hub_height_m=105.0"])
    wind = cfg.mgs[0].wind
    assert wind is not None and wind.turbine_type == "V90/2000"


def _community_copy(tmp_path: Path, column: str, row: int, value: str) -> Path:
    """The community config and its data file in ``tmp_path``, ``column`` at data row ``row`` set to ``value``."""
    data = COMMUNITY_CONFIG.parent / "community_3mg_chp.csv"
    lines = data.read_text().splitlines()
    header_at = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    col = lines[header_at].split(",").index(column)
    cells = lines[header_at + 1 + row].split(",")
    cells[col] = value
    lines[header_at + 1 + row] = ",".join(cells)
    (tmp_path / "community_3mg_chp.csv").write_text("\n".join(lines) + "\n")
    config = tmp_path / "community_3mg.toml"
    config.write_text(COMMUNITY_CONFIG.read_text())
    return config


@pytest.mark.parametrize(
    ("column", "value", "field", "says"),
    [
        ("demand_B_kwh", "-5", "mgs[1] (B).load.column", "negative"),
        ("pv_A_kwh", "-1", "mgs[0] (A).pv.column", "negative"),
        ("demand_C_kwh", "inf", "mgs[2] (C).load.column", "infinite"),
        ("buy_price", "inf", "tariff.buy_column", "infinite"),
    ],
)
def test_bad_value_in_community_data_file_exits_2_naming_file_and_column(
    column: str, value: str, field: str, says: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config = _community_copy(tmp_path, column, 3, value)
    code, _, err = _run_bad(capfd, tmp_path, "community_3mg", "--config", str(config))
    assert code == 2, err
    assert field in err and f"'{column}'" in err and "community_3mg_chp.csv" in err and says in err, err
    assert "row 3" in err, err


def test_negative_load_given_in_the_config_exits_2(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run_bad(capfd, tmp_path, "--set", "mgs.MG2.load.p_mw_per_hour=[0.1, -0.1]")
    assert code == 2 and "mgs[1] (MG2).load.p_mw_per_hour" in err and "index 1" in err and ">= 0" in err, err


def _profiles_copy(tmp_path: Path, column: str, row: int, value: str) -> Path:
    src = DEFAULT_CONFIG.parent / "load_profiles.csv"
    lines = src.read_text().splitlines()
    col = lines[0].split(",").index(column)
    cells = lines[1 + row].split(",")
    cells[col] = value
    lines[1 + row] = ",".join(cells)
    bad = tmp_path / f"profiles_{column}_{row}.csv"
    bad.write_text("\n".join(lines) + "\n")
    return bad


def test_negative_value_in_a_used_load_profile_exits_2(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    bad = _profiles_copy(tmp_path, "H0-A", 100, "-0.5")
    code, _, err = _run_bad(capfd, tmp_path, "--set", f"scenario.load_profiles_file='{bad}'")
    assert code == 2, err
    assert "mgs[0] (MG1).load.profile" in err and "'H0-A'" in err and bad.name in err, err
    assert "negative" in err and "row 100" in err, err


def test_negative_value_in_an_unused_load_profile_exits_2(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The profile simulator rejects the whole file, so the config check does too, before the start."""
    bad = _profiles_copy(tmp_path, "L0-A", 7, "-1.0")
    code, _, err = _run_bad(capfd, tmp_path, "--set", f"scenario.load_profiles_file='{bad}'")
    assert code == 2, err
    assert "scenario.load_profiles_file" in err and "'L0-A'" in err and bad.name in err and "negative" in err, err


def test_profile_simulator_rejects_negative_profiles_naming_file_and_column(tmp_path: Path) -> None:
    bad = _profiles_copy(tmp_path, "G4-A", 5, "-0.25")
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(bad))}: column 'G4-A' holds negative values \(first at row 5"
    ):
        profiles.load_profiles(str(bad))


# --- row 8: files that are not runs ------------------------------------------------------------------
def _empty_h5(path: Path) -> None:
    with h5py.File(path, "w"):
        pass


def _unrelated_h5(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f["measurements"] = np.arange(10.0)
        f.create_group("Series")
        f.attrs["scenario"] = "something else"


@pytest.mark.parametrize("command", ["audit", "report"])
@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize(
    ("make", "missing"),
    [(_empty_h5, "no scenario, strategy, config, entity_map attributes"), (_unrelated_h5, "no strategy, config")],
)
def test_hdf5_file_that_is_no_run_exits_2(
    command: str,
    as_json: bool,
    make: object,
    missing: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "X.h5"
    assert callable(make)
    make(path)
    code = main([command, str(path), *(["--json"] if as_json else [])])
    captured = capfd.readouterr()
    assert code == 2, captured.err
    assert f"{path} is not an mmg-cosim run file ({missing}" in captured.err, captured.err
    assert_bad_input_stdout(captured.out, as_json, f"{path} is not an mmg-cosim run file")


@pytest.mark.parametrize("command", ["audit", "report"])
def test_file_that_is_not_hdf5_exits_2(command: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "X.h5"
    path.write_text("hour,p\n1,2\n")
    assert main([command, str(path)]) == 2
    assert f"{path} is not an mmg-cosim run file (not a readable HDF5 file" in capfd.readouterr().err


# --- row 10: malformed arguments ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("scenario.days.x=1", "--set scenario.days.x: scenario.days is a value (1), not a table"),
        ("scenario.days.x.y=1", "--set scenario.days.x.y: scenario.days is a value (1), not a table"),
        ("mgs.MG1.bus.x=2", "--set mgs.MG1.bus.x: mgs.MG1.bus is a value (17), not a table"),
        ("mgs.MG1..bus=2", "empty part in the dotted key"),
    ],
)
def test_dotted_key_into_a_value_exits_2_naming_the_key(
    override: str, says: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run_bad(capfd, tmp_path, "--set", override)
    assert code == 2 and says in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("strategies", [",", "", " , ,"])
@pytest.mark.parametrize("as_json", [False, True])
def test_compare_without_strategies_exits_2(
    strategies: str, as_json: bool, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "runs"
    args = ["compare", "--strategies", strategies, "--out-dir", str(out_dir), *(["--json"] if as_json else [])]
    code = main(args)
    captured = capfd.readouterr()
    assert code == 2, captured.err
    assert "--strategies" in captured.err and "no strategies given" in captured.err, captured.err
    assert_bad_input_stdout(captured.out, as_json, "no strategies given")
    assert not out_dir.exists() or not any(out_dir.iterdir())


def _plots_target_is_a_file(tmp_path: Path) -> Path:
    target = tmp_path / "plots"
    target.write_text("a file, not a folder")
    return target


def _plots_target_under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "blocker").write_text("a file")
    return tmp_path / "blocker" / "plots"  # mkdir fails, even for root


@pytest.mark.parametrize("target", [_plots_target_is_a_file, _plots_target_under_a_file])
@pytest.mark.parametrize("as_json", [False, True])
def test_report_plots_into_an_unwritable_dir_exits_2_before_plotting(
    target: object, as_json: bool, default_run: RunResult, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert callable(target)
    plots = target(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code = main(["report", str(default_run.path), "--plots", str(plots), *(["--json"] if as_json else [])])
    captured = capfd.readouterr()
    assert code == 2, captured.err
    assert f"--plots {plots}:" in captured.err, captured.err
    assert_bad_input_stdout(captured.out, as_json, f"--plots {plots}:")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "nothing may be plotted"


# --- --json on bad input: the one document on stdout says what is wrong --------------------------------
def test_bad_input_with_json_prints_one_document_naming_the_field(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import json

    code, out, err = _run_bad(capfd, tmp_path, "--set", "mgs.MG1.wind.turbine_type='nosuch'", "--json")
    assert code == 2, err
    doc = json.loads(out)
    assert doc["exit_status"] == 2
    assert "mgs[0] (MG1).wind.turbine_type" in doc["input_error"]
    assert "mgs[0] (MG1).wind.turbine_type" in err, "the message goes to stderr too"


# --- a strategy whose network model cannot represent the grid is refused before the start ---------------
def test_a_strategy_without_transformers_is_refused_on_a_grid_with_them(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    fleet = Path(__file__).resolve().parents[1] / "scenarios" / "data" / "mvlv_fleet.toml"
    code, _, err = _run_bad(capfd, tmp_path, str(fleet), "--strategy", "security_constrained", "--set", "fleet.n=2")
    assert code == 2, err
    assert "cannot handle transformers" in err and "security_constrained" in err, err
