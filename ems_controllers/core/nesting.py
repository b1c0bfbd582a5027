"""Microgrids nested inside each other: the order in which their levels are scheduled."""

from __future__ import annotations

from collections.abc import Sequence

from ems_controllers.core.types import Microgrid


def nesting_order(mgs: Sequence[Microgrid]) -> list[str]:
    """Party names, every level after all the levels nested inside it (innermost first).

    Raises ValueError for an unknown parent or a cycle."""
    by_name = {m.name: m for m in mgs}
    for m in mgs:
        if m.parent is not None and m.parent not in by_name:
            raise ValueError(f"{m.name}: parent {m.parent!r} is not a party")
    depth: dict[str, int] = {}

    def level(name: str, seen: tuple[str, ...] = ()) -> int:
        if name in seen:
            raise ValueError(f"nesting cycle: {' -> '.join((*seen, name))}")
        if name not in depth:
            parent = by_name[name].parent
            depth[name] = 0 if parent is None else level(parent, (*seen, name)) + 1
        return depth[name]

    for m in mgs:
        level(m.name)
    return sorted(by_name, key=lambda n: (-depth[n], n))
