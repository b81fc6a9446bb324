"""Experiment tracking: what a run logs, sent to every logger named (``--logger tensorboard``).

A logger is a registered component of kind ``logger``, a subclass of :class:`Logger`; the built-in
``tensorboard`` and ``mlflow`` loggers (``plugins/loggers``) arrive through the same entry-point group
as a third-party one. :class:`Tracking` fans a run out to its loggers:

- the resolved config as parameters (flattened: ``data.image_size``, ``memory.items``...);
- per training step the loss and each of its terms, the learning rate and the clips per second
  (``train/...``), and per epoch the epoch record (``epoch/...``: the mean of each loss term, the
  learning rate, any other number the loop records) with the epoch's clips per second;
- the evaluation metrics at the end (``eval/...``; an interval as ``_low``/``_high``, per scene
  as ``eval/frame_auroc_per_scene/<scene>``);
- artifacts (plots, the history and metrics files) and the checkpoint's path (recorded, not copied).

The training loop knows nothing of this: :class:`Tracking` is one of its ``callbacks`` (an object
with ``on_step`` / ``on_epoch``, see :func:`memad.training.train`). Without loggers it does nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .errors import ConfigError
from .registry import get_registry

__all__ = ["Logger", "Tracking", "resolve_loggers", "flatten_config", "flatten_metrics", "INSTALL_HINT", "require"]

#: What a logger whose package is missing tells the user to run.
INSTALL_HINT = 'pip install "memad[tracking]"'


class Logger:
    """An experiment tracker receiving one run (a logger plugin subclasses it and registers it as kind ``logger``).

    Built with context arguments only: ``folder`` (the run's output folder, where a local store
    belongs), ``run`` (the run's name, e.g. ``mnad_pred/seed0``), ``experiment`` (the group of runs,
    e.g. the comparison) and ``tags`` (``preset``, ``seed``...). Every method but :meth:`log_metrics`
    has a default that does nothing; :meth:`check` raises a :class:`memad.ConfigError` naming the
    missing package (``pip install "memad[tracking]"``) before any training starts.
    """

    def __init__(self, folder: Path, run: str, experiment: str, tags: Mapping[str, str]):
        self.folder, self.run, self.experiment, self.tags = Path(folder), run, experiment, dict(tags)

    @classmethod
    def check(cls) -> None:
        """Raise a ConfigError when what the logger needs is not installed."""

    def log_params(self, params: Mapping[str, str | int | float | bool]) -> None:
        """The run's parameters (the flattened config), once at the start."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Scalars at ``step`` (the global training step, the epoch, or the last epoch for final metrics)."""
        raise NotImplementedError

    def log_artifact(self, path: Path) -> None:
        """A file to keep with the run (a plot, ``history.json``, ``metrics.json``)."""

    def log_reference(self, name: str, path: str) -> None:
        """Where a large file of the run lies (``checkpoint``): recorded, not copied."""

    def close(self, failed: bool = False) -> None:
        """The run is over (``failed``: it stopped on an error)."""


def resolve_loggers(names: Iterable[str] | None) -> list[str]:
    """Logger names from ``--logger`` values (repeatable, comma-separated), checked against the registry
    and for their packages, in order, without repeats."""
    out: list[str] = []
    for item in names or []:
        for name in str(item).split(","):
            name = name.strip()
            if name and name not in out:
                out.append(name)
    reg = get_registry()
    for name in out:
        reg.get("logger", name).obj.check()  # an unknown name lists the registered loggers
    return out


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, str | int | float | bool]:
    """``{"data.image_size": 64, "encoder.widths": "[16, 32, 64, 128]", ...}``: nested sections dotted,
    lists and None as JSON text.

    >>> flatten_config({"data": {"image_size": 64, "size": [64, 96]}, "name": "ae"})
    {'data.image_size': 64, 'data.size': '[64, 96]', 'name': 'ae'}
    """
    out: dict[str, str | int | float | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_config(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = json.dumps(value, default=str)
    return out


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of ``metrics``: an interval ``[low, high]`` as ``<key>_low`` / ``<key>_high``,
    a mapping as ``<key>/<name>``; text, None and lists of other lengths left out.

    >>> flatten_metrics({"auroc": 0.9, "ci": [0.8, 0.95], "per_scene": {"01": 0.7, "02": None}, "mode": "batched"})
    {'auroc': 0.9, 'ci_low': 0.8, 'ci_high': 0.95, 'per_scene/01': 0.7}
    """
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_metrics(value, f"{name}/"))
        elif isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            out.update(flatten_metrics({f"{key}_low": value[0], f"{key}_high": value[1]}, prefix))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out


class Tracking:
    """One run sent to the loggers ``names`` (see the module docstring); a training-loop callback."""

    def __init__(self, names: Sequence[str], folder: str | Path, run: str, *, experiment: str | None = None,
                 tags: Mapping[str, Any] | None = None):
        folder = Path(folder)
        reg = get_registry()
        tags = {k: str(v) for k, v in (tags or {}).items()}
        self.loggers: list[Logger] = []
        try:
            for name in resolve_loggers(names):
                self.loggers.append(reg.get("logger", name).obj(folder=folder, run=run,
                                                                experiment=experiment or folder.name, tags=tags))
        except Exception:
            self.close(failed=True)
            raise
        self._clips = 0  # clips since the last epoch record
        self._last_step_seconds: float | None = None
        self._last_epoch_seconds = 0.0
        self.last_epoch = 0

    def __bool__(self) -> bool:
        return bool(self.loggers)

    def _each(self, method: str, *args: Any) -> None:
        for logger in self.loggers:
            getattr(logger, method)(*args)

    def log_config(self, config: Mapping[str, Any]) -> None:
        """The resolved config, as parameters."""
        self._each("log_params", flatten_config(config))

    # -- the training loop's callbacks ------------------------------------------------------
    def on_step(self, record: Mapping[str, Any]) -> None:
        """A step record: ``epoch``, ``step`` (global), ``loss`` and its terms, ``lr``, ``clips``, ``seconds``."""
        values = {f"train/{k}": v for k, v in flatten_metrics(record).items()
                  if k not in ("epoch", "step", "clips", "seconds")}
        clips, seconds = int(record.get("clips", 0)), record.get("seconds")
        self._clips += clips
        if seconds is not None and self._last_step_seconds is not None and seconds > self._last_step_seconds:
            values["train/clips_per_second"] = clips / (seconds - self._last_step_seconds)
        self._last_step_seconds = seconds
        self._each("log_metrics", values, int(record["step"]))

    def on_epoch(self, record: Mapping[str, Any]) -> None:
        """An epoch record (``epoch``, the mean loss terms, ``lr``, ``seconds`` since training started...)."""
        values = {f"epoch/{k}": v for k, v in flatten_metrics(record).items() if k not in ("epoch", "seconds")}
        seconds = float(record.get("seconds", 0.0))
        if self._clips and seconds > self._last_epoch_seconds:
            values["epoch/clips_per_second"] = self._clips / (seconds - self._last_epoch_seconds)
        self._clips, self._last_epoch_seconds = 0, seconds
        self.last_epoch = int(record["epoch"])
        self._each("log_metrics", values, self.last_epoch)

    # -- the end of a run ---------------------------------------------------------------------
    def log_final(self, metrics: Mapping[str, Any]) -> None:
        """The evaluation metrics, as ``eval/<key>`` at the last epoch."""
        self._each("log_metrics", {f"eval/{k}": v for k, v in flatten_metrics(metrics).items()}, self.last_epoch)

    def log_artifacts(self, paths: Iterable[str | Path]) -> None:
        """Files to keep with the run (those that exist)."""
        for path in paths:
            if Path(path).is_file():
                self._each("log_artifact", Path(path))

    def log_reference(self, name: str, path: str | Path) -> None:
        self._each("log_reference", name, str(path))

    def close(self, failed: bool = False) -> None:
        """Close every logger (each one even if another raises; the first error is raised after)."""
        error: BaseException | None = None
        for logger in self.loggers:
            try:
                logger.close(failed)
            except Exception as exc:  # the others must still be closed
                error = error or exc
        self.loggers = []
        if error is not None:
            raise error

    def __enter__(self) -> "Tracking":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        self.close(failed=exc is not None)


def require(module: str, logger: str) -> Any:
    """``import module``, or a ConfigError naming the logger and the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"--logger {logger} needs the {module.split('.')[0]} package ({exc}): "
                          f"{INSTALL_HINT}") from None


