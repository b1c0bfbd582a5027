"""Where a scenario's net comes from: ``grid.net`` in the config names one of

* a function of ``pandapower.networks`` (``case33bw``, ``create_cigre_network_mv``, ...), called with the
  keyword arguments in ``grid.net_args`` (e.g. ``net_args = { with_der = false }``);
* a pandapower JSON file (``*.json``, or any name with a path separator): relative to the config's
  folder, else to the embedded data (``scenarios/data``), or absolute;
* a SimBench grid code (``1-MV-rural--0-sw``), loaded by the ``simbench`` package (a dependency), without
  SimBench's own time series and load cases (``profiles``, ``loadcases``: a scenario's profiles come from
  its config); the net is read once per process (simbench parses its whole data set, several seconds) and
  copied for each caller.

:func:`load_net` returns the net as that source gives it; what a scenario changes in it is
:mod:`scenarios.build`'s business. Anything that does not give a net raises ConfigError naming ``grid.net``
(or ``grid.net_args``).
"""

from __future__ import annotations

import copy
import difflib
import functools
import importlib
import importlib.metadata
import inspect
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandapower as pp
import pandapower.networks as pn

from scenarios.config import DATA_DIR, ConfigError, GridCfg

log = logging.getLogger(__name__)

SIMBENCH_CODE = re.compile(r"^\d-[A-Z]+-[A-Za-z0-9]+-[A-Za-z0-9.]*-\d-(sw|no_sw)$")
"""A SimBench code: version-voltage levels-type-LV types-scenario-switches, e.g. ``1-MV-rural--0-sw``."""
SIMBENCH_INSTALL = "uv sync --frozen (or pip install 'simbench>=1.5'), as mmg-cosim depends on it"

SourceKind = Literal["networks", "json", "simbench"]


@dataclass(frozen=True)
class NetSource:
    """What ``grid.net`` names: a ``pandapower.networks`` function, a JSON file or a SimBench code."""

    kind: SourceKind
    ref: str  # the function's name, the file's resolved path, or the code


def net_source(grid: GridCfg, config_dir: Path | None = None) -> NetSource:
    """Which kind of source ``grid.net`` is (by its form; nothing is loaded)."""
    name = grid.net.strip()
    if name.lower().endswith(".json") or "/" in name or "\\" in name:
        return NetSource("json", str(_json_path(name, config_dir)))
    if SIMBENCH_CODE.match(name):
        return NetSource("simbench", name)
    return NetSource("networks", name)


def _json_path(file: str, config_dir: Path | None) -> Path:
    p = Path(file).expanduser()
    if p.is_absolute():
        return p
    here = (config_dir or Path.cwd()) / p
    return here if here.is_file() or not (DATA_DIR / p).is_file() else DATA_DIR / p


def load_net(grid: GridCfg, config_dir: Path | None = None) -> Any:
    """The pandapower net ``grid.net`` names (ConfigError naming ``grid.net`` if it gives none)."""
    src = net_source(grid, config_dir)
    if grid.net_args and src.kind != "networks":
        raise ConfigError(f"grid.net_args: only a pandapower.networks function takes arguments, not {grid.net!r}")
    if src.kind == "json":
        net = _from_json(Path(src.ref))
    elif src.kind == "simbench":
        net = _from_simbench(src.ref)
    else:
        net = _from_networks(src.ref, grid.net_args)
    if not isinstance(net, pp.pandapowerNet) or len(net.bus) == 0:
        raise ConfigError(f"grid.net: {grid.net!r} gives no pandapower net with buses")
    return net


def networks_functions() -> list[str]:
    """The public functions of ``pandapower.networks`` (nets and the helpers it re-exports)."""
    return sorted(n for n, f in vars(pn).items() if not n.startswith("_") and inspect.isfunction(f))


def _from_networks(name: str, args: dict[str, Any]) -> Any:
    func = getattr(pn, name, None) if name.isidentifier() else None
    if func is None or not inspect.isfunction(func):
        close = difflib.get_close_matches(name, networks_functions(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"grid.net: {name!r} is no pandapower.networks function, pandapower JSON file (*.json) or SimBench "
            f"code (e.g. 1-MV-rural--0-sw){hint}"
        )
    where = "grid.net_args" if args else "grid.net"
    try:
        inspect.signature(func).bind(**args)
    except TypeError as exc:
        given = f"the arguments {args}" if args else "no arguments"
        raise ConfigError(f"{where}: pandapower.networks.{name} cannot be called with {given}: {exc}") from None
    try:
        return func(**args)
    except Exception as exc:  # noqa: BLE001 - whatever the net's function raises is a bad grid.net / net_args
        raise ConfigError(
            f"{where}: pandapower.networks.{name}(**{args}) failed: {type(exc).__name__}: {exc}"
        ) from None


def _from_json(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"grid.net: file not found: {path}")
    try:
        return pp.from_json(str(path))
    except Exception as exc:  # noqa: BLE001 - any failure to read the file is a bad grid.net
        raise ConfigError(f"grid.net: cannot read {path} as a pandapower net: {type(exc).__name__}: {exc}") from None


def _from_simbench(code: str) -> Any:
    try:
        sb = importlib.import_module("simbench")
    except ImportError:
        raise ConfigError(
            f"grid.net: {code!r} is a SimBench code, and the simbench package is not installed; get it with "
            f"{SIMBENCH_INSTALL}"
        ) from None
    return copy.deepcopy(_simbench_net(sb, code))


SIMBENCH_EXTRAS = ("profiles", "loadcases")
"""What a SimBench net carries besides the grid (a year of 15 min series for each load and generator: 13 MB
as pandapower JSON) and no scenario uses."""


@functools.cache
def _simbench_net(sb: Any, code: str) -> Any:
    """The SimBench net ``code`` without :data:`SIMBENCH_EXTRAS`, read once per process (callers copy it)
    and kept as pandapower JSON in :func:`cache_dir` (SimBench parses its whole data set, 8-11 s for a
    5,000-bus grid here; the JSON reads in under 2 s)."""
    cached = cache_dir() / "simbench" / f"{code}-simbench{_version('simbench')}-pandapower{pp.__version__}.json"
    if cached.is_file():
        try:
            return pp.from_json(str(cached))
        except Exception as exc:  # noqa: BLE001 - a damaged cache file is read again from SimBench
            log.warning("ignoring the damaged cache file %s: %s", cached, exc)
    try:
        net = sb.get_simbench_net(code)
    except Exception as exc:  # noqa: BLE001 - simbench's own errors for an unknown code
        raise ConfigError(f"grid.net: SimBench has no grid {code!r}: {type(exc).__name__}: {exc}") from None
    for key in SIMBENCH_EXTRAS:
        net.pop(key, None)
    _write_cache(cached, pp.to_json(net))
    return net


CACHE_ENV = "MMG_COSIM_CACHE_DIR"


def cache_dir() -> Path:
    """Where read-only data derived from packages is kept between runs: ``$MMG_COSIM_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/mmg-cosim``, else ``~/.cache/mmg-cosim``. Deleting it costs only time."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mmg-cosim"


def _write_cache(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically; a cache that cannot be written is skipped (logged)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
            f.write(text)
        os.replace(f.name, path)
    except OSError as exc:
        log.info("not caching %s: %s", path, exc)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
