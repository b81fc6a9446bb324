"""Compare presets on one dataset in Python: the table, the plots and the report of `memad compare`.

    python examples/compare_presets.py              # 4 presets at 64x64, 2 epochs each (minutes on CPU)
    python examples/compare_presets.py --tiny       # seconds: 2 presets, 32x32, a few steps
    python examples/compare_presets.py --presets mnad_pred unet_pred --seeds 3 --out runs/cmp

The same from the command line:

    memad compare mnad_pred mnad_recon ae unet_pred --data synthetic --set data.image_size=64 \\
        --set "encoder.widths=[16,32,64,128]" --epochs 2 --out runs/compare
"""

from __future__ import annotations

import argparse
import tempfile

import memad
from memad.reports.compare import Comparison


def main(argv: list[str] | None = None) -> "Comparison":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=None)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--out", help="output folder (default: a temporary folder)")
    parser.add_argument("--tiny", action="store_true", help="2 presets, 32x32 frames, a few steps: seconds")
    args = parser.parse_args(argv)

    if args.tiny:
        presets = args.presets or ["mnad_recon", "ae"]
        overrides = {"data.image_size": 32, "encoder.widths": [8, 16, 32, 64], "train.max_steps_per_epoch": 3,
                     "test.mode": "batched"}
        epochs = 1
    else:
        presets = args.presets or ["mnad_pred", "mnad_recon", "ae", "unet_pred"]
        overrides = {"data.image_size": 64, "encoder.widths": [16, 32, 64, 128]}
        epochs = 2
    out = args.out or tempfile.mkdtemp(prefix="memad_compare_")
    # Rerunning with the same `out` reuses finished runs and resumes an interrupted one.
    result = memad.compare(presets, args.data, seeds=args.seeds, epochs=epochs, out=out, overrides=overrides,
                           progress=not args.tiny)
    print(result.markdown())
    best = max(result.rows, key=lambda row: row["frame_auroc_mean"] or 0.0)
    print(f"best frame AUROC: {best['preset']} ({best['frame_auroc_mean']:.3f})")
    print(f"report: {result.files['report']}")
    return result


if __name__ == "__main__":
    main()
