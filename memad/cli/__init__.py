"""The ``memad`` command line.

Every subcommand, memad's own included, is a registered ``command``: a function that adds
its arguments to an argparse parser and returns the handler (see :mod:`memad.cli.builtin`).
A plugin adds one the same way, ``registry.add("command", "mycmd", setup)`` in its
``memad_register`` hook. Errors that are the user's (bad config, missing data) print one
clear line and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from ..errors import MemadError
from ..registry import get_registry


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line naming the option (and where the help is), not the
    usage text before it."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``memad`` parser with every registered command."""
    from .. import __version__

    parser = Parser(prog="memad", description="Memory-augmented anomaly detection.")
    parser.add_argument("--version", action="version", version=f"memad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    reg = get_registry()
    for name in reg.names("command"):
        setup = reg.get("command", name).obj
        sp = sub.add_parser(name, help=(setup.__doc__ or "").strip().split("\n")[0])
        sp.set_defaults(func=setup(sp))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's own exits: --help (0), a bad option or value (2, its one line printed)
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except MemadError as exc:
        print(f"memad: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("memad: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`memad list --json | head`): stop quietly, as Unix tools do.
        # stdout is pointed at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


__all__ = ["main", "build_parser"]
