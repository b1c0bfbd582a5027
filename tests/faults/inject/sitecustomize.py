"""Fault injection for tests/faults: imported at start-up by every Python process whose PYTHONPATH puts
this folder first (the run's process and each simulator process it starts).

``MMG_FAULT=package.module:Class:KIND:AT_S`` patches ``Class.step`` so that from simulation time ``AT_S``
on it raises (KIND ``raise``), sleeps forever (``hang``) or ends its process at once (``exit``).
Without ``MMG_FAULT`` it does nothing.
"""

from __future__ import annotations

import importlib
import os
import time
from typing import Any

_spec = os.environ.get("MMG_FAULT")
if _spec:
    _module, _cls, _kind, _at = _spec.rsplit(":", 3)
    _target = getattr(importlib.import_module(_module), _cls)
    _step = _target.step
    _at_s = int(_at)

    def _faulty_step(self: Any, time_s: int, inputs: Any, max_advance: int) -> Any:
        if time_s >= _at_s:
            if _kind == "raise":
                raise RuntimeError(f"fault injected into {_cls}.step at t={time_s}")
            if _kind == "hang":
                while True:
                    time.sleep(3600)
            if _kind == "exit":
                os._exit(3)
        return _step(self, time_s, inputs, max_advance)

    _target.step = _faulty_step
