"""A third-party strategy as a plug-in: the example distribution ``examples/peak_shaving`` runs through the
command line as a user runs it, found by its entry point or given as ``package.module:NAME``.

No network and no install: a ``*.dist-info`` folder with the example's metadata and entry point in a
temporary site folder on ``PYTHONPATH`` is what ``pip install`` would leave for ``importlib.metadata``; the
code itself comes from ``examples/peak_shaving`` on ``PYTHONPATH``. The commands run side by side in
subprocesses (one module fixture), so the pytest process never sees the plug-in.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ems_controllers.core.entities import EntityMap
from ems_controllers.core.types import Battery, DieselUnit, Microgrid
from scenarios.config import Config
from sims.record_reader import read_attrs, read_series

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "peak_shaving"
CLI = [sys.executable, "-m", "scenarios.cli"]
ENTRY_POINT = "peak_shaving = peak_shaving.strategy:STRATEGY"
TARGET = "peak_shaving.strategy:STRATEGY"
FIXED_THRESHOLD_MW = 0.05
TOL_MW = 1e-3
Cli = tuple[Path, dict[str, subprocess.CompletedProcess[str]]]


def _strict_loads(text: str) -> Any:
    def refuse(token: str) -> float:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def _site_with_dist_info(tmp: Path) -> Path:
    """A site folder in which the example is 'installed': its metadata and its entry point."""
    dist = tmp / "plugin-site" / "mmg_peak_shaving-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mmg-peak-shaving\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(f"[mmg_cosim.strategies]\n{ENTRY_POINT}\n")
    return dist.parent


def _env(*paths: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in paths)}


@dataclass
class Record:
    """What the tests read of one run file: per MG its import, net load and EMS and storage series."""

    attrs: dict[str, Any]
    series: dict[tuple[str, str], np.ndarray]
    entities: EntityMap

    @classmethod
    def read(cls, path: Path) -> Record:
        attrs = read_attrs(path)
        return cls(attrs, read_series(path), EntityMap.from_dict(attrs["entity_map"]))

    def import_mw(self, mg: str) -> np.ndarray:
        line = self.entities.parties[mg].pcc_line
        assert line is not None
        return -self.series[(line, "p_to_mw")]

    def net_load_mw(self, mg: str) -> np.ndarray:
        """Measured load less PV and wind (the grid's served load and the units' output)."""
        pm = self.entities.parties[mg]
        load = sum(self.series[(f, "p_mw")] for f in pm.load)
        gen = sum((self.series[(f, "p_mw")] for f in pm.pv + pm.wind), np.zeros_like(load))
        return np.asarray(load - gen)

    def ems(self, mg: str, attr: str) -> np.ndarray:
        return self.series[(self.entities.parties[mg].ems, attr)]


pytestmark = pytest.mark.xdist_group("plugin")  # one worker runs the module fixture once


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """Every command of the tests, run side by side: ``(folder of their files, name -> finished process)``."""
    tmp = tmp_path_factory.mktemp("plugin")
    installed = _env(_site_with_dist_info(tmp), EXAMPLE, REPO)
    on_path_only = _env(EXAMPLE)
    run = ["run", "ieee33_3mg", "--days", "1", "--quiet", "--json"]
    compare = ["compare", "ieee33_3mg", "--strategies", "rule_based,peak_shaving", "--days", "1", "--json"]
    fixed = f"ems.peak_import_mw={FIXED_THRESHOLD_MW}"
    commands = {
        "list": ([*CLI, "list", "--json"], installed),
        "run": ([*CLI, *run, "--strategy", "peak_shaving", "--out", str(tmp / "ps.h5")], installed),
        "bad": ([*CLI, *run, "--strategy", "peak_shaving", "--set", "ems.peak_import_mw=-1"], installed),
        "compare": ([*CLI, *compare, "--out-dir", str(tmp / "compare")], installed),
        "target": ([*CLI, *run, "--strategy", TARGET, "--out", str(tmp / "target.h5"), "--set", fixed], on_path_only),
    }
    procs = {
        name: subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, (cmd, env) in commands.items()
    }
    done = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=600)
        done[name] = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    return tmp, done


def test_list_shows_the_plugin_with_its_settings_and_capabilities(cli: Cli) -> None:
    r = cli[1]["list"]
    assert r.returncode == 0, r.stderr[-3000:]
    info = _strict_loads(r.stdout)["strategies"]["peak_shaving"]
    assert info["simulator"] == "peak_shaving.sim:PeakShavingEMS"
    assert info["settings"] == {"peak_import_mw": None, "peak_share": 0.8}
    assert info["requires"] == [] and info["cannot_handle"] == ["islanded", "nested", "owner_loads"]
    assert "ieee33_3mg" in info["runs_on"] and "nested_campus" not in info["runs_on"]


def test_run_by_entry_point_records_its_outputs_and_kpis(cli: Cli) -> None:
    tmp, done = cli
    r = done["run"]
    assert r.returncode == 0, r.stderr[-3000:]
    kpis = _strict_loads(r.stdout)  # the whole stdout is one strict JSON document
    assert kpis["strategy"] == "peak_shaving" and kpis["n_steps"] == 24
    rec = Record.read(tmp / "ps.h5")
    cfg = Config.model_validate(rec.attrs["config"])
    assert set(kpis["peak_import_by_mg_mw"]) == {m.name for m in cfg.mgs}  # the strategy's KPI hook ran
    for mg in cfg.mgs:
        excess = rec.ems(mg.name, "peak_excess_mw")
        assert excess.shape == (24,) and np.isfinite(excess).all()
        peak = float(rec.import_mw(mg.name).max())
        assert kpis["peak_import_by_mg_mw"][mg.name] == pytest.approx(max(peak, 0.0))
        assert kpis["parties"][mg.name]["peak_import_mw"] == pytest.approx(max(peak, 0.0))
        # Perfect forecasts and a battery large enough here: the import peaks at peak_share (0.8) x the
        # peak net load, measured (a rule that did not shave would import the whole peak at night).
        assert peak == pytest.approx(0.8 * rec.net_load_mw(mg.name).max(), abs=TOL_MW)
        assert mg.battery is not None
        pm = rec.entities.parties[mg.name]
        assert pm.storage is not None
        soc = rec.series[(pm.storage, "soc_mwh")]
        assert (soc >= mg.battery.e_min_mwh - 1e-9).all() and (soc <= mg.battery.e_max_mwh + 1e-9).all()
        # the EMS kept to the battery's limits itself: the grid clipped none of its setpoints
        assert np.abs(rec.series[(pm.storage, "clipped_mw")]).max() < 1e-6
    assert kpis["ems_fallback_steps"] == 0 and kpis["unserved_mwh"] == 0.0


def test_a_bad_setting_is_bad_input_naming_the_field(cli: Cli) -> None:
    r = cli[1]["bad"]
    assert r.returncode == 2, r.stderr[-3000:]
    assert "ems.peak_import_mw: Input should be greater than or equal to 0" in r.stderr
    # --json: the one document on stdout names the field too
    assert "ems.peak_import_mw" in json.loads(r.stdout)["input_error"]


def test_compare_peak_shaving_lowers_an_mg_peak_import_below_rule_based(cli: Cli) -> None:
    tmp, done = cli
    r = done["compare"]
    assert r.returncode == 0, r.stderr[-3000:]
    doc = _strict_loads(r.stdout)
    assert set(doc) == {"rule_based", "peak_shaving"} and "peak_import_by_mg_mw" in doc["peak_shaving"]
    rb = Record.read(tmp / "compare" / "ieee33_3mg-rule_based.h5")
    ps = Record.read(tmp / "compare" / "ieee33_3mg-peak_shaving.h5")
    peaks = {mg: (rb.import_mw(mg).max(), ps.import_mw(mg).max()) for mg in rb.entities.mgs()}
    # rule_based empties the batteries in the first night hours and then imports the night's load; peak
    # shaving spreads the battery over the night (MG1 0.183 -> 0.172 MW, MG3 0.159 -> 0.134 MW on this data)
    assert any(shaved < plain - 0.01 for plain, shaved in peaks.values()), peaks


def test_module_name_form_runs_without_installing(cli: Cli) -> None:
    """``--strategy peak_shaving.strategy:STRATEGY`` with the package on PYTHONPATH and no dist-info;
    its setting ``peak_import_mw`` (a fixed threshold) reaches the simulator."""
    tmp, done = cli
    r = done["target"]
    assert r.returncode == 0, r.stderr[-3000:]
    kpis = _strict_loads(r.stdout)
    assert kpis["strategy"] == TARGET and "peak_import_by_mg_mw" in kpis
    rec = Record.read(tmp / "target.h5")
    for mg in rec.entities.mgs():
        excess = rec.ems(mg, "peak_excess_mw")
        # where the plan keeps to the threshold, so does the measured import
        assert (rec.import_mw(mg)[excess < 1e-9] <= FIXED_THRESHOLD_MW + TOL_MW).all()
    # MG3 has no diesel: once its battery is empty at night its import stays above the threshold
    assert rec.ems("MG3", "peak_excess_mw").max() > 0.05
    # MG1's diesel covers what its battery cannot
    diesel = rec.entities.parties["MG1"].diesel
    assert diesel is not None and rec.series[(diesel, "p_mw")].max() > 0.1
    assert rec.ems("MG1", "peak_excess_mw").max() < 1e-9


def test_the_rule_battery_first_then_diesel_then_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example's rule (``peak_shaving.sim.shave``, a pure function) on its own."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    shave = importlib.import_module("peak_shaving.sim").shave
    battery = Battery(e_max_mwh=1.0, e_init_mwh=0.5, p_ch_max_mw=0.5, p_dis_max_mw=0.5)
    mg = Microgrid("M", diesel=DieselUnit(p_max_mw=1.0, p_min_mw=0.2), battery=battery)
    no_diesel = Microgrid("N", battery=battery)

    def step(m: Microgrid, net_load_mw: float, e_mwh: float) -> tuple[float, float, float, float]:
        s = shave(m, net_load_mw=net_load_mw, threshold_mw=0.3, e_mwh=e_mwh, dt_h=1.0)
        return s.battery_p_mw, s.diesel_p_mw, s.import_mw, s.peak_excess_mw

    assert step(mg, 0.5, 1.0) == pytest.approx((-0.2, 0.0, 0.3, 0.0))  # the battery alone
    assert step(mg, 1.2, 1.0) == pytest.approx((-0.5, 0.4, 0.3, 0.0))  # at its power limit, the diesel helps
    assert step(mg, 0.4, 0.0) == pytest.approx((0.0, 0.2, 0.2, 0.0))  # empty: the diesel, at its minimum
    assert step(mg, -0.2, 0.9) == pytest.approx((0.1, 0.0, -0.1, 0.0))  # surplus, charging into the room left
    assert step(mg, 0.1, 0.5) == pytest.approx((0.2, 0.0, 0.3, 0.0))  # charging from the grid up to 0.3
    assert step(no_diesel, 1.2, 1.0) == pytest.approx((-0.5, 0.0, 0.7, 0.4))  # the rest stays above
