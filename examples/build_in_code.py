"""Build a detector in code, fit it, evaluate it, set a deployment threshold, save and load it.

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
    # 1. Build: a preset plus overrides (any field of docs/config.md). The scorer here keeps raw
    #    scores (normalise: none) so that the deployment threshold means the same on every video.
    det = memad.build(
        args.preset,
        data={"image_size": size},
        encoder={"widths": widths},
        scorer={"normalise": "none"},
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

    # 3. Evaluate on the test split: threshold-free metrics.
    result = det.score(args.data)
    metrics = result.metrics()
    print("frame AUROC {frame_auroc:.3f} (per video {frame_auroc_macro:.3f}), AUPR {aupr:.3f}, EER {eer:.3f}, "
          "pixel AUROC {pixel_auroc:.3f}, {fps:.0f} frames/s".format(**metrics))

    # 4. Deployment: a threshold at the 99th percentile of normal training scores, then 0/1 per frame.
    det.fit_threshold(args.data, percentile=99)
    flagged = det.predict(result)
    hits = int((flagged & result.labels).sum())
    print(f"threshold {det.threshold_:.4f}: {int(flagged.sum())} of {len(flagged)} test frames flagged, "
          f"{hits} of {int(result.labels.sum())} anomalous frames caught")

    # 5. Save and load: the checkpoint holds the config, weights, memory items and threshold.
    path = det.save(out / "final.pt")
    same = memad.load(path)
    assert same.threshold_ == det.threshold_
    assert np.allclose(same.score(args.data).scores, result.scores, atol=1e-4), "a reloaded detector scores alike"
    print(f"saved and reloaded {path}")
    return metrics


if __name__ == "__main__":
    main()
