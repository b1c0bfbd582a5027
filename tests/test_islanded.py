"""An islanded system as a config (``grid.external_grid = false``): the builder removes the external grid,
the scenario offers the ``islanded`` capability, the grid simulator balances it with its grid-forming
batteries, every strategy that trades with an upstream grid refuses it with exit 2, and admm (spec 001,
islanded interconnected MGs) is the one that fits."""

from __future__ import annotations

from pathlib import Path

import pandapower as pp
import pytest

from ems_controllers.core.contract import Capability
from ems_controllers.registry import strategies
from scenarios.build import build_net
from scenarios.cli import main
from scenarios.config import DATA_DIR, ConfigError, load_config
from scenarios.strategy_fit import offered
from sims.grid import GridSim

CONFIG = DATA_DIR / "islanded_img.toml"
BIG = 10**9


def test_the_builder_islands_the_net_and_the_scenario_says_so() -> None:
    cfg, data_dir = load_config(CONFIG)
    layout = build_net(cfg, data_dir)
    assert len(layout.net.ext_grid) == 0
    assert set(layout.parties) == {"MG1", "MG2", "MG3", "MG4"}
    assert offered(cfg) == {Capability.ISLANDED}
    assert layout.net.storage["grid_forming"].all()


def test_grid_forming_batteries_balance_the_island() -> None:
    """With every setpoint at 0 the grid-forming batteries supply load less renewables plus the losses."""
    cfg, data_dir = load_config(CONFIG)
    net = build_net(cfg, data_dir).net
    sim = GridSim()
    sim.init("Grid", time_resolution=1.0, step_size=3600)
    entities = sim.create(1, "Grid", net=pp.to_json(net))
    request = {c["eid"]: sim.meta["models"][c["type"]]["attrs"] for c in entities[0]["children"]}
    request["Grid-0"] = sim.meta["models"]["Grid"]["attrs"]
    loads = {f"Load-{i}": {"p_mw": {"src": float(net.load.at[i, "p_mw"]) * 0.5}} for i in net.load.index}
    res = {
        f"StaticGen-{i}": {"p_avail_mw": {"src": 0.01}} for i in net.sgen.index if net.sgen.at[i, "type"] != "diesel"
    }
    sim.step(0, {**loads, **res}, BIG)
    data = sim.get_data(request)
    grid = data["Grid-0"]
    assert grid["pf_converged"] == 1
    assert grid["unsupplied_mw"] == pytest.approx(0.0)
    load_mw = sum(data[f"Load-{i}"]["p_mw"] for i in net.load.index)
    gen_mw = sum(data[f"StaticGen-{i}"]["p_mw"] for i in net.sgen.index)
    storage_mw = sum(data[f"Storage-{i}"]["p_mw"] for i in net.storage.index)  # + charge
    assert load_mw - gen_mw > 0.02  # the renewables do not cover the load: the batteries discharge
    assert storage_mw < 0
    assert -storage_mw == pytest.approx(load_mw - gen_mw + grid["losses_mw"], abs=1e-6)
    assert cfg.grid.vm_min_pu - 0.02 < grid["min_vm_pu"] <= grid["max_vm_pu"] < cfg.grid.vm_max_pu + 0.02


GRID_TIED_STRATEGIES = sorted(n for n, s in strategies().items() if Capability.ISLANDED in s.cannot_handle)


def test_only_admm_and_the_reference_handle_an_islanded_system() -> None:
    cfg, _ = load_config(CONFIG)
    offers = offered(cfg)
    fitting = sorted(n for n, s in strategies().items() if s.problem(offers, s.make_settings({})) is None)
    assert fitting == ["admm", "oracle"]
    assert len(GRID_TIED_STRATEGIES) == len(strategies()) - 2


@pytest.mark.parametrize("strategy", GRID_TIED_STRATEGIES)
def test_every_grid_tied_strategy_refuses_an_islanded_system(
    strategy: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", str(CONFIG), "--strategy", strategy, "--quiet", "--out", str(tmp_path / "x.h5")])
    err = capsys.readouterr().err
    assert code == 2 and "islanded" in err, err
    assert not (tmp_path / "x.h5").exists()


def test_an_island_without_a_grid_forming_unit_is_bad_input(tmp_path: Path) -> None:
    text = CONFIG.read_text()
    for kind in ("diesel", "battery"):
        text = "\n".join(line for line in text.splitlines() if not line.startswith(f"{kind} = "))
    path = tmp_path / "no_forming.toml"
    path.write_text(text + "\n")
    cfg, data_dir = load_config(path)
    with pytest.raises(ConfigError, match=r"grid.external_grid: an islanded system needs a grid-forming unit"):
        build_net(cfg, data_dir)
