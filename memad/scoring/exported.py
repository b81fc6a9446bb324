"""Exported models read back: an ONNX or TorchScript file written by :mod:`memad.scoring.export`, run by
its own engine (onnxruntime, TorchScript) as a :class:`~memad.scoring.step.StepModel`.

:func:`load_exported` re-runs the check sequence stored in the file before it returns the model:
a tampered or mismatched file is refused with the difference found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor

from ..errors import CheckpointError, ConfigError, MemadError
from ..network import build_scorer
from .export_meta import TAG, from_npy_text, read_meta
from .stream import stream

__all__ = ["ExportedModel", "load_exported", "TAG", "check_scores"]


class ExportedModel:
    """An exported step with what scoring needs: ``config``, ``scorer``, ``calibration_``, ``threshold_``.

    A :class:`~memad.scoring.step.StepModel`: ``stream`` and ``memad detect`` take it wherever they
    take a detector. ``step(clip)`` runs one uint8 clip and carries the memory's state on.
    """

    def __init__(self, path: Path, meta: dict[str, Any], run):
        self.path, self.meta, self._run = path, meta, run
        self.config = meta["config"]
        self.calibration_, self.threshold_ = meta["calibration"], meta["threshold"]
        try:
            self.scorer = build_scorer(self.config)
        except (MemadError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path}: the export's config does not build its scorer ({exc}); refused") from exc
        self.clip_length, self.score_offset = meta["clip_length"], meta["score_offset"]
        self.initial = [from_npy_text(s, f"{path}: state {name!r}") for s, name in zip(meta["state"],
                                                                                         meta["state_names"])]
        self.state = list(self.initial)

    def reset(self) -> None:
        self.state = list(self.initial)

    def step(self, clip: np.ndarray | Tensor) -> dict[str, np.ndarray]:
        """One uint8 clip ``(1, L, C, H, W)`` -> ``{signal: (1,)}`` and ``map``; the state moves on."""
        clip = clip.numpy() if isinstance(clip, Tensor) else np.asarray(clip)
        outs = self._run(clip.astype(np.uint8), self.state)
        signals, error_map, self.state = np.asarray(outs[0]), np.asarray(outs[1]), [np.asarray(o) for o in outs[2:]]
        return {**{n: signals[:, i] for i, n in enumerate(self.meta["signals"])}, "map": error_map}

    def make_step(self, maps: bool, device: torch.device | None = None) -> "_ExportedStep":
        """The per-clip step :func:`memad.scoring.stream.stream` calls (the state restarts with each stream;
        the engine runs where it was loaded, whatever ``device`` says)."""
        self.reset()
        return _ExportedStep(self)

    def stream(self, frames: Iterable[Any], **options: Any) -> Iterator[Any]:
        return stream(self, frames, **options)

    def scores(self, frames: np.ndarray) -> np.ndarray:
        """Calibrated scores of ``frames`` ``(N, C, H, W)`` uint8, streamed from the initial state."""
        return np.array([r.score for r in self.stream(list(torch.from_numpy(np.asarray(frames))))])


class _ExportedStep:
    def __init__(self, model: ExportedModel):
        self.model = model

    def __call__(self, clip: Tensor) -> dict[str, np.ndarray]:
        return self.model.step(clip)

    def close(self) -> None:
        self.model.reset()


def check_scores(model: ExportedModel, frames: np.ndarray, expected: np.ndarray, atol: float, what: str) -> float:
    """The largest absolute difference between ``model``'s scores of ``frames`` and ``expected``; an error
    when it exceeds ``atol``."""
    got = model.scores(frames)
    if got.shape != expected.shape:
        raise CheckpointError(f"{model.path}: {what}: {got.shape[0]} scores for the check sequence, expected "
                              f"{expected.shape[0]}; refused")
    diff = float(np.max(np.abs(got - expected))) if len(got) else 0.0
    if not diff <= atol:  # NaN fails too
        raise CheckpointError(f"{model.path}: {what}: the largest absolute score difference from PyTorch on the "
                              f"check sequence is {diff:.3g}, above the {atol:g} allowed; refused")
    return diff


def _onnx_runner(path: Path, meta: dict[str, Any]):
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ConfigError("the onnxruntime engine needs onnxruntime: pip install 'memad[deploy]'") from exc
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(clip: np.ndarray, state: list[np.ndarray]) -> list[np.ndarray]:
        return session.run(None, dict(zip(names, [clip, *state])))

    return run


def _torchscript_runner(module):
    def run(clip: np.ndarray, state: list[np.ndarray]) -> list[Tensor]:
        with torch.no_grad():
            return [o.numpy() for o in module(torch.from_numpy(clip), *[torch.from_numpy(s) for s in state])]

    return run


def _read(path: Path) -> tuple[dict[str, Any], Any]:
    if not path.is_file():
        raise CheckpointError(f"exported model {path} does not exist")
    if path.suffix == ".onnx":
        try:
            import onnx
        except ImportError as exc:
            raise ConfigError("reading an ONNX export needs onnx: pip install 'memad[deploy]'") from exc
        try:
            proto = onnx.load(str(path))
        except Exception as exc:
            raise CheckpointError(f"{path}: not a readable ONNX file ({exc})") from exc
        props = {p.key: p.value for p in proto.metadata_props}
        if TAG not in props:
            raise CheckpointError(f"{path}: not a memad export (no '{TAG}' metadata)")
        meta = read_meta(path, props[TAG])
        return meta, _onnx_runner(path, meta)
    files = {f"{TAG}.json": ""}
    try:
        module = torch.jit.load(str(path), _extra_files=files, map_location="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable TorchScript file ({str(exc).splitlines()[0]})") from exc
    if not files[f"{TAG}.json"]:
        raise CheckpointError(f"{path}: not a memad export (no '{TAG}.json' inside)")
    text = files[f"{TAG}.json"]
    return read_meta(path, text.decode() if isinstance(text, bytes) else text), _torchscript_runner(module.eval())


def load_exported(path: str | Path) -> ExportedModel:
    """An exported model, after re-running its stored check sequence (a tampered file is refused)."""
    path = Path(path)
    meta, run = _read(path)
    model = ExportedModel(path, meta, run)
    check = meta["check"]
    if not isinstance(check, dict) or not {"frames", "scores", "atol"} <= set(check):
        raise CheckpointError(f"{path}: the export's check entry must hold frames, scores and atol; refused")
    frames = from_npy_text(check["frames"], f"{path}: check frames")
    try:
        check_scores(model, frames, np.asarray(check["scores"], dtype=np.float64), float(check["atol"]),
                     "check on load")
    except CheckpointError:
        raise
    except Exception as exc:  # the engine refusing the stored frames: another shape, dtype...
        raise CheckpointError(f"{path}: the check sequence does not run ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); refused") from exc
    return model


