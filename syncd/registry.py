"""Finds connectors and the sandbox by name through entry points, never by import.

A third CRM is a package that declares `[project.entry-points."syncd.connectors"]`; the core
does not change (ARCHITECTURE section 2).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from syncd.errors import UsageError

CONNECTORS = "syncd.connectors"
SANDBOXES = "syncd.sandbox"


def load(group: str, name: str) -> Any:
    """The object registered under `name` in the entry-point `group`."""
    found = {point.name: point for point in entry_points(group=group)}
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise UsageError(
            f'No "{name}" registered in entry points {group} (known: {known}). '
            f"Install syncd with `pip install -e .` (make install) so its entry points exist."
        )
    return found[name].load()


def names(group: str) -> list[str]:
    return sorted(point.name for point in entry_points(group=group))
