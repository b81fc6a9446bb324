"""Export of the per-frame step (ONNX, TorchScript), checked against PyTorch before it is kept.

What is exported is one step of streamed scoring: a uint8 clip ``(1, L, C, H, W)`` and the
memory's state (its buffers: MNAD's items...) in; the per-frame signals, the error map and the
memory's state *after* its test-time write out. The state is an explicit input and output, so
the test-time update survives export: the engine hands each step's new state to the next. The
config, the calibration, the threshold and the initial state travel inside the file (ONNX
metadata, TorchScript extra files), so a deployment needs nothing else. The exported module runs
the same step function as offline scoring and streaming (:func:`memad.scoring.step.step_signals`),
and an exported model is streamed by the same :func:`memad.scoring.stream.stream`, its scorer
rebuilt from the config.

The export is refused unless its calibrated scores on a check sequence agree with PyTorch's
(largest absolute difference at most ``atol``, 1e-4); the sequence and its expected scores are
stored in the file too, and every load runs them again: a tampered or mismatched file is refused
with the difference found.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import io
import json
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from ..data import open_split
from ..errors import CheckpointError, ConfigError, DataError
from ..frames import to_float
from ..network import Network, build_scorer
from .calibration import require_calibration
from .step import TorchModel, TorchStepModel, default_map_hw, step_signals, writes_at_test
from .stream import stream

__all__ = ["export", "load_exported", "ExportedModel", "FORMATS", "ENGINES"]

FORMATS = ("onnx", "torchscript")
#: The engines that run an exported file, by name (``memad detect --engine``).
ENGINES = {"onnx": "onnxruntime", "torchscript": "torchscript"}
TAG = "memad-export"


class StepModule(nn.Module):
    """The per-frame step as a module of tensors only (see the module docstring): the same step function
    offline scoring and streaming run (:func:`memad.scoring.step.step_signals`)."""

    def __init__(self, network: Network, map_hw: tuple[int, int]):
        super().__init__()
        self.network, self.map_hw = network, map_hw
        self.state_names = [name for name, _ in network.memory.named_buffers()]
        self.signal_names: list[str] = []

    def forward(self, clip: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        memory = self.network.memory
        for name, value in zip(self.state_names, state):
            memory._buffers[name] = value  # the state comes in as an input, so tracing keeps its data flow
        out = step_signals(self.network, to_float(clip), map_hw=self.map_hw, write=writes_at_test(self.network))
        error_map = out.pop("map")
        self.signal_names = list(out)
        return (torch.stack(list(out.values()), dim=1), error_map,
                *[memory._buffers[name] for name in self.state_names])


def _npy(arr: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _from_npy(text: str) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


def _check_frames(config: dict[str, Any], data: Any, frames: int) -> np.ndarray:
    """``(N, C, H, W)`` uint8 frames to check an export on: the start of the first test video of ``data``,
    or of the generated ``synthetic`` test split."""
    videos = open_split(data if data is not None else "synthetic", "testing", config)
    return videos.frames[:min(frames, videos.lengths[0])].numpy()


class ExportedModel:
    """An exported step with what scoring needs: ``config``, ``scorer``, ``calibration_``, ``threshold_``.

    A :class:`~memad.scoring.step.StepModel`: ``stream`` and ``memad detect`` take it wherever they
    take a detector. ``step(clip)`` runs one uint8 clip and carries the memory's state on.
    """

    def __init__(self, path: Path, meta: dict[str, Any], run):
        self.path, self.meta, self._run = path, meta, run
        self.config = meta["config"]
        self.calibration_, self.threshold_ = meta["calibration"], meta["threshold"]
        self.scorer = build_scorer(self.config)
        self.clip_length, self.score_offset = meta["clip_length"], meta["score_offset"]
        self.initial = [_from_npy(s) for s in meta["state"]]
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


def _check(model: ExportedModel, frames: np.ndarray, expected: np.ndarray, atol: float, what: str) -> float:
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
        meta = json.loads(props[TAG])
        return meta, _onnx_runner(path, meta)
    files = {f"{TAG}.json": ""}
    try:
        module = torch.jit.load(str(path), _extra_files=files, map_location="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable TorchScript file ({str(exc).splitlines()[0]})") from exc
    if not files[f"{TAG}.json"]:
        raise CheckpointError(f"{path}: not a memad export (no '{TAG}.json' inside)")
    return json.loads(files[f"{TAG}.json"]), _torchscript_runner(module.eval())


def load_exported(path: str | Path) -> ExportedModel:
    """An exported model, after re-running its stored check sequence (a tampered file is refused)."""
    path = Path(path)
    meta, run = _read(path)
    model = ExportedModel(path, meta, run)
    check = meta["check"]
    _check(model, _from_npy(check["frames"]), np.asarray(check["scores"]), check["atol"], "check on load")
    return model


def export(model: TorchModel, path: str | Path, fmt: str = "onnx", *, data: Any = None, frames: int = 24,
           atol: float = 1e-4) -> dict[str, Any]:
    """Export ``model``'s per-frame step to ``path`` (``fmt``: onnx or torchscript); returns a report
    with the largest absolute score difference from PyTorch on the check sequence (the file is
    removed, and an error raised, when it exceeds ``atol``)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    cal = require_calibration(model, "an export")
    path = Path(path)
    check_frames = _check_frames(model.config, data, frames)
    if len(check_frames) <= model.clip_length:
        raise DataError(f"the check sequence has {len(check_frames)} frames; an export check needs more than one "
                        f"clip ({model.clip_length})")
    network = copy.deepcopy(model.network).cpu().eval()  # tracing rebinds the memory's buffers: never the caller's
    # The exported step computes in fp32 and the default layout: so must the PyTorch reference.
    network.config["test"].update(amp=False, channels_last=False)
    twin = TorchStepModel(network, model.scorer, cal, model.threshold_)
    reference = np.array([r.score for r in stream(twin, list(torch.from_numpy(check_frames)), device="cpu")])
    step = StepModule(network, default_map_hw(model.config))
    clip = torch.from_numpy(check_frames[:model.clip_length][None].copy())
    state = [b.detach().clone() for b in network.memory.buffers()]
    with torch.no_grad():
        step(clip, *[s.clone() for s in state])  # learns the signal names
    meta = {"format": TAG, "version": 1, "config": model.config, "calibration": cal,
            "threshold": model.threshold_, "signals": step.signal_names, "state_names": step.state_names,
            "state": [_npy(s.numpy()) for s in state], "clip_length": model.clip_length,
            "score_offset": model.score_offset,
            "check": {"frames": _npy(check_frames), "scores": reference.tolist(), "atol": atol}}
    text = json.dumps(meta, default=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    names = ["clip", *[n.replace(".", "_") for n in step.state_names]]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer chatter about constant shapes: the step has fixed ones
        if fmt == "onnx":
            import onnx

            with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress on stdout
                program = torch.onnx.export(step, (clip, *state), dynamo=True, input_names=names, verbose=False,
                                            output_names=["signals", "map", *[f"{n}_out" for n in names[1:]]])
            proto = program.model_proto
            proto.metadata_props.add(key=TAG, value=text)
            onnx.save(proto, str(tmp))
        else:
            traced = torch.jit.trace(step, (clip, *state), check_trace=False)
            torch.jit.save(traced, str(tmp), _extra_files={f"{TAG}.json": text})
    try:
        meta_read, run = _read(tmp)
        diff = _check(ExportedModel(tmp, meta_read, run), check_frames, reference, atol, "export check")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return {"path": str(path), "format": fmt, "max_abs_score_difference": diff, "check_frames": len(check_frames),
            "scores_checked": len(reference), "atol": atol}
