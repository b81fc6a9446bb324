"""Build a detector in code, fit it, calibrate it, evaluate it, decide per frame, save and load it.

    python examples/build_in_code.py              # 64x64, 4 epochs on the synthetic videos (minutes on CPU)
    python examples/build_in_code.py --tiny       # seconds: 32x32, a few steps
    python examples/build_in_code.py --data ../shared/data/ped2 --out runs/ped2_example
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import memad


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="synthetic", help="a dataset root or 'synthetic' (default)")
    parser.add_argument("--preset", default="mnad_recon")
    parser.add_argument("--out", help="folder for checkpoints (default: a temporary folder)")
    parser.add_argument("--tiny", action="store_true", help="32x32 frames and a few steps: finishes in seconds")
    args = parser.parse_args(argv)

    size, widths, epochs, steps = (32, [8, 16, 32, 64], 1, 5) if args.tiny else (64, [16, 32, 64, 128], 4, 0)
    # 1. Build: a preset plus overrides (any field of docs/config.md).
    det = memad.build(
        args.preset,
        data={"image_size": size},
        encoder={"widths": widths},
        train={"epochs": epochs, "max_steps_per_epoch": steps, "progress": not args.tiny},
        # --tiny scores many frames per pass; the presets' own test.mode is kept otherwise.
        **({"test.mode": "batched"} if args.tiny else {}),
    )
    print(f"{args.preset}: {det.count_parameters()['total']:,} parameters")

    out = Path(args.out or tempfile.mkdtemp(prefix="memad_example_"))
    # 2. Fit on the normal training videos; a checkpoint is written after every epoch, and a
    #    rerun with the same `out` resumes from it.
    det.fit(args.data, out=out)
    print(f"trained {len(det.history_)} epochs, last loss {det.history_[-1]['loss']:.4f}")

    # 3. Calibrate on the normal videos that training kept out (train.holdout): each signal's normal
    #    range, and a threshold that lets 1% of normal frames through (cross-validated by video).
    det.calibrate(args.data, false_alarm_rate=0.01)
    cal = det.calibration_
    print(f"calibrated on videos {', '.join(cal['videos'])}: threshold {det.threshold_:.4f}; cross-validated "
          f"false alarms {cal['check_false_alarm_rate'] or 0:.1%}")

    # 4. Evaluate on the test split: the paper's per-video scores and the calibrated ones.
    result = det.score(args.data)
    metrics = result.metrics(threshold=det.threshold_)
    print("frame AUROC {frame_auroc:.3f} (per video {frame_auroc_macro:.3f}), calibrated {calibrated_frame_auroc:.3f}, "
          "AUPR {aupr:.3f}, EER {eer:.3f}, pixel AUROC {pixel_auroc:.3f}, {fps:.0f} frames/s".format(**metrics))

    # 5. Deployment: 0/1 per frame at the calibrated threshold.
    flagged = det.predict(result)
    hits = int((flagged & result.labels).sum())
    print(f"{int(flagged.sum())} of {len(flagged)} test frames flagged, {hits} of {int(result.labels.sum())} "
          f"anomalous frames caught (precision {metrics['precision']:.2f}, recall {metrics['recall']:.2f})")

    # 6. Save and load: the checkpoint holds the config, weights, memory items, calibration and threshold.
    path = det.save(out / "final.pt")
    same = memad.load(path)
    assert same.threshold_ == det.threshold_ and same.calibration_ == det.calibration_
    assert np.allclose(same.score(args.data).calibrated, result.calibrated, atol=1e-4), "reloaded, it scores alike"
    print(f"saved and reloaded {path}")
    return metrics


if __name__ == "__main__":
    main()
