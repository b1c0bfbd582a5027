"""Where a command may write: checked by trying, before any work starts."""

from __future__ import annotations

import os
from pathlib import Path


def folder_problem(folder: Path) -> str | None:
    """Why files cannot be written into ``folder`` (None if they can). The folder is made if missing and
    a probe file is created in it and removed: tried, not guessed (permissions say little to root, and
    nothing about a read-only mount or a full disk)."""
    if folder.exists() and not folder.is_dir():
        return f"{folder} is not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".mmg-cosim-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"cannot write in {folder}: {exc.strerror or exc}"
    return None
