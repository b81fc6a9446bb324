"""int8 for CPUs without native bf16: static quantisation of the exported step with ONNX Runtime.

For a calibrated checkpoint: export the step to ONNX (fp32, checked against PyTorch within 1e-4 as
``memad export`` does), quantise its convolutions statically (QDQ, int8 weights per channel, uint8
activations) with activation ranges calibrated on normal training clips (every ``--stride``-th clip of
the training split, the memory's state carried from clip to clip as in a stream), then score every
test video with the three engines in turn (PyTorch stream in fp32, fp32 ONNX, int8 ONNX): frames/s,
the int8 scores' difference from fp32's, the share of frames whose decision at the threshold flips,
and the calibrated AUROC and false-alarm rate (the fp32 calibration and threshold, unchanged).

The 1e-4 rule of ``memad export`` does not apply to int8 (its rounding is by design); the rule here is
the one ``--quantize int8`` would ship under: a calibrated frame AUROC within 0.5 points of fp32's.

``OMP_NUM_THREADS=1 python benchmarks/int8_onnx.py CHECKPOINT --data synthetic`` writes
``benchmarks/results/int8_onnx.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib.environment import RESULTS, environment, write_result  # noqa: E402

import memad  # noqa: E402
from memad.data import open_split  # noqa: E402
from memad.scoring.exported import ExportedModel, _read  # noqa: E402


def calibration_inputs(model: ExportedModel, data: Any, stride: int) -> list[list[np.ndarray]]:
    """Inputs (clip and state) of every ``stride``-th clip of the training split, the state carried on."""
    train = open_split(data, "training", model.config)
    frames, clip = train.frames.numpy(), model.clip_length
    inputs, state = [], list(model.initial)
    for v in range(len(train.lengths)):
        start = int(train.offsets[v])
        for t in range(0, train.lengths[v] - clip + 1, stride):
            x = frames[start + t:start + t + clip][None]
            inputs.append([x, *state])
            state = [np.asarray(s) for s in model._run(x, state)[2:]]
    return inputs


def quantise(fp32: Path, out: Path, inputs: list[list[np.ndarray]]) -> None:
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    names = [i.name for i in ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).get_inputs()]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else dict(zip(names, x))

    pre = out.with_name(out.stem + ".pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    # Convolutions only: the memory read (normalise, softmax, matmul with the items) stays fp32.
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["Conv", "ConvTranspose"], per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    pre.unlink()


def score_all(model: Any, test: Any, offset: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Calibrated scores and labels of every test video (each streamed from the trained memory), frames/s."""
    labels = np.asarray(test.labels)
    scores, ys, n = [], [], 0
    t0 = time.perf_counter()
    for v in range(len(test.lengths)):
        start, length = int(test.offsets[v]), test.lengths[v]
        frames = test.frames[start:start + length]
        s = np.array([r.score for r in model.stream(list(frames))])
        scores.append(s)
        ys.append(labels[start + offset:start + offset + len(s)])
        n += len(s)
    return np.concatenate(scores), np.concatenate(ys), n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--stride", type=int, default=6, help="every n-th training clip calibrates the ranges")
    ap.add_argument("--out", type=Path, default=RESULTS / "int8_onnx.json")
    args = ap.parse_args(argv)
    if not args.checkpoint.is_file():
        ap.error(f"no such checkpoint: {args.checkpoint}")
    det = memad.load(args.checkpoint, overrides={"test.amp": False, "test.channels_last": False})
    work = Path(tempfile.mkdtemp(prefix="memad-int8-"))
    fp32_path, int8_path = work / "fp32.onnx", work / "int8.onnx"
    report = det.export(fp32_path, "onnx", data=args.data)
    meta, run = _read(fp32_path)
    fp32 = ExportedModel(fp32_path, meta, run)
    inputs = calibration_inputs(fp32, args.data, args.stride)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantise(fp32_path, int8_path, inputs)
    meta8, run8 = _read(int8_path)  # the same metadata; its stored check is fp32's, so it is not load_exported
    int8 = ExportedModel(int8_path, meta8, run8)
    test = open_split(args.data, "testing", det.config)
    rows: dict[str, dict[str, Any]] = {}
    scores = {}
    for name, model in (("pytorch", det), ("onnx fp32", fp32), ("onnx int8", int8)):
        s, y, fps = score_all(model, test, det.score_offset)
        scores[name] = s
        rows[name] = {"fps": fps, "calibrated_frame_auroc": float(roc_auc_score(y, s)),
                      "false_alarm_rate": float((s[y == 0] >= det.threshold_).mean())}
        print(f"{name:>10}: {fps:6.1f} frames/s  calibrated AUROC {rows[name]['calibrated_frame_auroc']:.4f}  "
              f"false alarms {100 * rows[name]['false_alarm_rate']:.1f}%", flush=True)
    diff = np.abs(scores["onnx int8"] - scores["onnx fp32"])
    flips = float(((scores["onnx int8"] >= det.threshold_) != (scores["onnx fp32"] >= det.threshold_)).mean())
    change = 100 * (rows["onnx int8"]["calibrated_frame_auroc"] - rows["onnx fp32"]["calibrated_frame_auroc"])
    result = {"environment": environment(torch.device("cpu")), "command": " ".join(sys.argv),
              "checkpoint": str(args.checkpoint), "data": args.data, "export_check": report,
              "calibration_clips": len(inputs), "engines": rows, "threshold": det.threshold_,
              "int8_vs_fp32": {"max_abs_score_difference": float(diff.max()), "median_abs_difference": float(
                  np.median(diff)), "decisions_flipped": flips, "auroc_change_points": change,
                  "within_0_5_points": abs(change) <= 0.5},
              "sizes_bytes": {"fp32": fp32_path.stat().st_size, "int8": int8_path.stat().st_size}}
    print(f"int8 against fp32: largest score difference {diff.max():.3g}, decisions flipped {100 * flips:.1f}%, "
          f"AUROC change {change:+.2f} points")
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
