"""memad's own commands, registered through the same ``memad_register`` hook (and entry-point
group) as a third-party plugin's: ``registry.add("command", name, setup)``."""

from __future__ import annotations

from ..hookspecs import hookimpl
from . import deploy, explain, reports, run


@hookimpl
def memad_register(registry) -> None:
    for name, setup in {**run.COMMANDS, **reports.COMMANDS, **deploy.COMMANDS, **explain.COMMANDS}.items():
        registry.add("command", name, setup)
