"""Export of the per-frame step (ONNX, TorchScript), checked against PyTorch before it is kept.

What is exported is one step of streamed scoring: a uint8 clip ``(1, L, C, H, W)`` and the
memory's state (its buffers: MNAD's items...) in; the per-frame signals, the error map and the
memory's state *after* its test-time write out. The state is an explicit input and output, so
the test-time update survives export: the engine hands each step's new state to the next. The
config, the calibration, the threshold and the initial state travel inside the file (ONNX
metadata, TorchScript extra files), so a deployment needs nothing else. The exported module runs
the same step function as offline scoring and streaming (:func:`memad.scoring.step.step_signals`),
and an exported model is streamed by the same :func:`memad.scoring.stream.stream`, its scorer
rebuilt from the config (:mod:`memad.scoring.exported`).

The export is refused unless its calibrated scores on a check sequence agree with PyTorch's
(largest absolute difference at most ``atol``, 1e-4, plus what float32 rounding of the signals can
move the scores by: :func:`rounding_tolerance`); the sequence, its expected scores and the difference
allowed are stored in the file too, and every load runs them again. Both formats capture the step with
``torch.export``, which specialises branches on shapes (fixed in a deployed step) and refuses
branches on values; a component that cannot be captured (data-dependent Python control flow,
``.item()``...) is named in one line with the method and line that stopped the export, and a
TorchScript trace that still warns it may be wrong is refused rather than kept (what makes a
component exportable: ``docs/plugins.md``).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import inspect
import io
import json
import re
import traceback
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..data import open_split
from ..errors import ConfigError, DataError
from ..frames import to_float
from ..interfaces import FrameStats, Scorer
from ..network import Network
from .baseline import align
from .calibration import calibrated_scores, require_calibration
from .export_meta import TAG, npy_text, seal
from .exported import ExportedModel, _read, check_scores
from .step import TorchModel, TorchStepModel, default_map_hw, step_signals, trained_state, writes_at_test
from .stream import FrameResult, stream

__all__ = ["export", "ExportError", "StepModule", "FORMATS", "ENGINES", "rounding_tolerance", "ROUNDING_ULPS"]

FORMATS = ("onnx", "torchscript")
#: The engines that run an exported file, by name (``memad detect --engine``).
ENGINES = {"onnx": "onnxruntime", "torchscript": "torchscript"}
#: What ``--format onnx`` needs beyond memad's own dependencies.
DEPLOY_EXTRAS = ("onnx", "onnxruntime", "onnxscript")


class ExportError(ConfigError):
    """A model's step cannot be exported to the format asked for."""


class StepModule(nn.Module):
    """The per-frame step as a module of tensors only (see the module docstring): the same step function
    offline scoring and streaming run (:func:`memad.scoring.step.step_signals`)."""

    def __init__(self, network: Network, map_hw: tuple[int, int]):
        super().__init__()
        self.network, self.map_hw = network, map_hw
        self.state_names = [name for name, _ in network.memory.named_buffers()]
        self.signal_names: list[str] = []
        # test.anchor pulls the state back to the memory as exported: constants of the graph.
        self.trained = trained_state(network) if float(network.config["test"].get("anchor", 0.0)) > 0 else None

    def forward(self, clip: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        memory = self.network.memory
        for name, value in zip(self.state_names, state):
            memory._buffers[name] = value  # the state comes in as an input, so tracing keeps its data flow
        out = step_signals(self.network, to_float(clip), map_hw=self.map_hw, write=writes_at_test(self.network),
                           trained=self.trained)
        error_map = out.pop("map")
        self.signal_names = list(out)
        return (torch.stack(list(out.values()), dim=1), error_map,
                *[memory._buffers[name] for name in self.state_names])


#: How many float32 steps a signal may differ by between two engines (sums taken in another order).
ROUNDING_ULPS = 4


def rounding_tolerance(results: Sequence[FrameResult], scorer: Scorer, calibration: Mapping[str, Any]) -> float:
    """How far float32 rounding of the signals can move the calibrated scores of the streamed ``results``:
    per signal, the largest change that moving it :data:`ROUNDING_ULPS` float32 steps up or down makes,
    summed over the signals. A signal whose calibrated range is narrow next to its value (a barely
    trained memory's distance) turns a rounding step into a visible score difference, which is not a
    different model.

    >>> from types import SimpleNamespace
    >>> cal = {"signals": {"psnr": [29.0, 31.0]}}
    >>> scorer = lambda stats: -stats.normalised("psnr")
    >>> r = [SimpleNamespace(signals={"psnr": 30.0})]
    >>> round(rounding_tolerance(r, scorer, cal) / (4 * float(np.spacing(np.float32(30.0))) / 2.0), 6)
    1.0
    """
    raw = {k: np.array([r.signals[k] for r in results], dtype=np.float64) for k in results[0].signals}
    video = np.zeros(len(results), dtype=np.int64)

    def scores(signals: Mapping[str, np.ndarray]) -> np.ndarray:
        return calibrated_scores(align(FrameStats(video, signals), calibration), scorer, calibration["signals"],
                                 calibration)

    base, total = scores(raw), 0.0
    for name, values in raw.items():
        step = ROUNDING_ULPS * np.spacing(np.abs(values).astype(np.float32)).astype(np.float64)
        total += max(float(np.max(np.abs(scores({**raw, name: values + sign * step}) - base))) for sign in (1, -1))
    return total


def _require_deploy_extras(fmt: str) -> None:
    if fmt != "onnx":
        return
    missing = [m for m in DEPLOY_EXTRAS if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"--format onnx needs {', '.join(missing)}, which are not installed: "
                          f'pip install "memad[deploy]"')


def _check_frames(config: dict[str, Any], data: Any, frames: int) -> np.ndarray:
    """``(N, C, H, W)`` uint8 frames to check an export on: the start of the first test video of ``data``,
    or of the generated ``synthetic`` test split."""
    videos = open_split(data if data is not None else "synthetic", "testing", config)
    return videos.frames[:min(frames, videos.lengths[0])].numpy()


def _parts(network: Network) -> dict[str, nn.Module]:
    return {"memory": network.memory, "decoder": network.decoder, "encoder": network.encoder}


def _where(network: Network, text: str) -> str | None:
    """The innermost ``File "...", line N, in method`` of ``text`` inside one of the network's parts, as
    ``section 'name': Class.method (file:line)``."""
    files = {}
    for section, part in _parts(network).items():
        with contextlib.suppress(TypeError, OSError):
            files[str(Path(inspect.getsourcefile(type(part))).resolve())] = (section, part)
    found = None
    for path, line, func in re.findall(r'File "([^"]+)", line (\d+), in (\w+)', text):
        with contextlib.suppress(OSError):
            key = str(Path(path).resolve())
            if key in files:
                section, part = files[key]
                found = (f"{section} {network.config[section]['name']!r}: {type(part).__name__}.{func} "
                         f"({Path(path).name}:{line})")
    return found


def _chain_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _reason(exc: BaseException) -> str:
    """The first line of what stopped the export, from the innermost exception of the chain that says."""
    while exc.__cause__ is not None and str(exc.__cause__):
        exc = exc.__cause__
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return first[:300]


def _trace_onnx(step: StepModule, args: tuple, names: list[str]) -> Any:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # the exporter prints progress
        warnings.simplefilter("ignore")  # the exporter's own chatter; failures raise
        program = torch.onnx.export(step, args, dynamo=True, input_names=names, verbose=False,
                                    output_names=["signals", "map", *[f"{n}_out" for n in names[1:]]])
    return program.model_proto


def _trace_torchscript(step: StepModule, args: tuple) -> torch.jit.ScriptModule:
    """The step captured by ``torch.export`` (which specialises shape-dependent branches and refuses
    data-dependent ones, as the ONNX exporter does), then traced into TorchScript. A tracer warning
    from outside torch's own guards would mean the trace froze a value: refused."""
    graph = torch.export.export(step, args, strict=False).module()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace's own deprecation notice
        traced = torch.jit.trace(graph, args, check_trace=False)
    torch_dir = str(Path(torch.__file__).resolve().parent)
    tracer = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)
              and not str(Path(w.filename).resolve()).startswith(torch_dir)]
    if tracer:
        w = tracer[0]
        where = _where(step.network, f'File "{w.filename}", line {w.lineno}, in {_function_at(w.filename, w.lineno)}')
        raise ExportError(f"--format torchscript: {where or Path(w.filename).name + ':' + str(w.lineno)}: the trace "
                          f"would be wrong on other inputs ({str(w.message).splitlines()[0]}); use --format onnx, or "
                          f"make the component traceable (docs/plugins.md, what makes a component exportable)")
    return traced


def _function_at(filename: str, lineno: int) -> str:
    """The name of the function defined around ``lineno`` of ``filename`` (for a warning's location)."""
    try:
        lines = Path(filename).read_text().splitlines()[:lineno]
    except OSError:
        return "?"
    for line in reversed(lines):
        m = re.match(r"\s*def (\w+)\(", line)
        if m:
            return m.group(1)
    return "?"


def export(model: TorchModel, path: str | Path, fmt: str = "onnx", *, data: Any = None, frames: int = 24,
           atol: float = 1e-4) -> dict[str, Any]:
    """Export ``model``'s per-frame step to ``path`` (``fmt``: onnx or torchscript); returns a report
    with the largest absolute score difference from PyTorch on the check sequence (the file is
    removed, and an error raised, when it exceeds ``atol`` plus :func:`rounding_tolerance`)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    _require_deploy_extras(fmt)
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
    results = list(stream(twin, list(torch.from_numpy(check_frames)), device="cpu"))
    reference = np.array([r.score for r in results])
    rounding = rounding_tolerance(results, model.scorer, cal)
    allowed = atol + rounding
    step = StepModule(network, default_map_hw(model.config))
    clip = torch.from_numpy(check_frames[:model.clip_length][None].copy())
    state = [b.detach().clone() for b in network.memory.buffers()]
    with torch.no_grad():
        step(clip, *[s.clone() for s in state])  # learns the signal names
    meta = seal({"config": model.config, "calibration": cal, "threshold": model.threshold_,
                 "signals": step.signal_names, "state_names": step.state_names,
                 "state": [npy_text(s.numpy()) for s in state], "clip_length": model.clip_length,
                 "score_offset": model.score_offset,
                 "check": {"frames": npy_text(check_frames), "scores": reference.tolist(), "atol": allowed}})
    text = json.dumps(meta, default=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    names = ["clip", *[n.replace(".", "_") for n in step.state_names]]
    with torch.no_grad():
        try:
            if fmt == "onnx":
                import onnx

                proto = _trace_onnx(step, (clip, *state), names)
                proto.metadata_props.add(key=TAG, value=text)
                onnx.save(proto, str(tmp))
            else:
                torch.jit.save(_trace_torchscript(step, (clip, *state)), str(tmp), _extra_files={f"{TAG}.json": text})
        except ExportError:
            raise
        except Exception as exc:
            where = _where(network, _chain_text(exc)) or "the model's step"
            raise ExportError(f"--format {fmt}: {where} cannot be exported: {_reason(exc)} (docs/plugins.md, what "
                              f"makes a component exportable)") from exc
    try:
        meta_read, run = _read(tmp)
        diff = check_scores(ExportedModel(tmp, meta_read, run), check_frames, reference, allowed, "export check")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return {"path": str(path), "format": fmt, "max_abs_score_difference": diff, "check_frames": len(check_frames),
            "scores_checked": len(reference), "atol": allowed, "rounding_tolerance": rounding}
