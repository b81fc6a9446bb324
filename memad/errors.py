"""Errors memad raises for bad input, each saying what was wrong and what was expected."""

from __future__ import annotations

import difflib
from typing import Iterable


class MemadError(Exception):
    """Base class of memad's own errors."""


class ConfigError(MemadError, ValueError):
    """A config field, value, preset or component name is not valid."""


class DataError(MemadError, ValueError):
    """A dataset folder, frame, label or mask file is missing or malformed."""


class CheckpointError(MemadError, ValueError):
    """A checkpoint file is missing, truncated, or carries more than tensors and plain data."""


class NumericalError(MemadError, FloatingPointError):
    """A loss or score became NaN or infinite."""


def unknown_name_message(what: str, name: str, valid: Iterable[str]) -> str:
    """``"unknown memory 'mnda'; did you mean 'mnad'? valid: memae, mnad, none"``."""
    valid = sorted(valid)
    close = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {name!r}{hint} valid: {', '.join(valid) if valid else '(none)'}"
