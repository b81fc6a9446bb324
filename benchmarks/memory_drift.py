"""How far test-time memory writes carry a calibrated detector away from its false-alarm rate.

Two measurements on trained checkpoints (the README's quick start, one per seed:
``memad compare mnad_pred --data synthetic --seeds 3 --epochs 8 --set data.image_size=64
--set "encoder.widths=[16,32,64,128]" --out runs/quickstart_seeds``):

1. **Protocols.** For each checkpoint and each test-time protocol (``test.reset`` never or video,
   ``test.anchor`` values, no writes at all), the detector is calibrated again under that protocol on
   its held-out training videos (false-alarm rate asked: 1%) and scored on the test split as
   ``memad eval`` does: the false-alarm rate on normal test frames, F1 and the calibrated AUROC.
2. **Soak.** The test videos played one after another, again and again, as one stream of
   ``--soak-frames`` frames through :meth:`memad.Detector.stream` (test-time writes on, never
   restored): per window of ``--window`` frames, the share of normal frames flagged and the largest
   distance of an item from the trained items, and the process's RSS. Frames whose clip spans a cut
   between two videos are left out of the rates (their input is two videos at once).

``OMP_NUM_THREADS=2 python benchmarks/memory_drift.py runs/quickstart_seeds/runs/mnad_pred/seed*/checkpoint.pt``
writes ``benchmarks/results/memory_drift.json`` and ``memory_drift.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib.environment import environment, require_files  # noqa: E402
from benchlib.rss import rss  # noqa: E402

import memad  # noqa: E402
from memad.data import open_split  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

#: Protocols compared: a name and the ``--set`` fields they change.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "never": {"test.reset": "never", "test.anchor": 0.0},
    "video": {"test.reset": "video", "test.anchor": 0.0},
    "never+anchor0.01": {"test.reset": "never", "test.anchor": 0.01},
    "never+anchor0.05": {"test.reset": "never", "test.anchor": 0.05},
    "never+anchor0.2": {"test.reset": "never", "test.anchor": 0.2},
    "video+anchor0.05": {"test.reset": "video", "test.anchor": 0.05},
    "no writes": {"test.update": False},
}


def _load(path: Path, fields: dict[str, Any]) -> memad.Detector:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "calibration dropped: calibrate again" is the point
        return memad.load(path, overrides=fields)


def protocol_row(path: Path, name: str, fields: dict[str, Any], data: str, rate: float) -> dict[str, Any]:
    det = _load(path, fields)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        det.calibrate(data, false_alarm_rate=rate)
    m = det.evaluate(data, resamples=100)
    return {"checkpoint": str(path), "protocol": name, "fields": fields, "false_alarm_rate": m["false_alarm_rate"],
            "f1": m["f1"], "calibrated_frame_auroc": m["calibrated_frame_auroc"], "frame_auroc": m["frame_auroc"]}


def _items(det: memad.Detector) -> torch.Tensor | None:
    items = getattr(det.network.memory, "items", None)
    return None if items is None else items.detach().clone()


def soak(path: Path, fields: dict[str, Any], data: str, frames: int, window: int) -> dict[str, Any]:
    """One long stream of the test videos in turn (see the module docstring)."""
    det = _load(path, fields)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        det.calibrate(data)
    test = open_split(data, "testing", det.config)
    labels = np.asarray(test.labels)
    order, lab, cut = [], [], []
    while len(order) < frames:
        for v in range(len(test.lengths)):
            start = int(test.offsets[v])
            idx = np.arange(start, start + test.lengths[v])
            order.extend(idx.tolist())
            lab.extend(labels[idx].tolist())
            cut.extend([1] + [0] * (len(idx) - 1))
    order, lab, cut = np.array(order[:frames]), np.array(lab[:frames]), np.array(cut[:frames])
    clip = det.clip_length
    # A frame is clean when no cut lies inside its clip: frames t - clip + 1 ... t come from one video.
    since_cut = np.zeros(frames, dtype=np.int64)
    for t in range(1, frames):
        since_cut[t] = 0 if cut[t] else since_cut[t - 1] + 1
    trained = _items(det)
    flagged = np.zeros(frames, dtype=bool)
    scored = np.zeros(frames, dtype=bool)
    windows: list[dict[str, Any]] = []
    drift = 0.0
    feed = (test.frames[i].permute(1, 2, 0).numpy() for i in order)
    for r in tqdm(det.stream(feed), total=frames - clip + 1, desc="soak", leave=False):
        t = r.index
        scored[t], flagged[t] = True, bool(r.anomalous)
        if trained is not None:
            drift = max(drift, float((det.network.memory.items - trained).norm(dim=1).max()))
        if (t + 1) % window == 0:
            sel = np.arange(t + 1 - window, t + 1)
            ok = sel[scored[sel] & (lab[sel] == 0) & (since_cut[sel] >= clip - 1)]
            windows.append({"end": int(t + 1), "normal_frames": int(len(ok)),
                            "flagged": float(flagged[ok].mean()) if len(ok) else None, "max_item_drift": drift,
                            "rss_mib": rss() / 2**20})
            drift = 0.0
    return {"checkpoint": str(path), "fields": fields, "frames": frames, "window": window, "windows": windows}


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    names = list(PROTOCOLS)
    for k, ck in enumerate(sorted({r["checkpoint"] for r in result["protocols"]})):
        ys = [next(100 * r["false_alarm_rate"] for r in result["protocols"]
                   if r["checkpoint"] == ck and r["protocol"] == n) for n in names]
        a.scatter(np.arange(len(names)) + 0.1 * (k - 1), ys, label=Path(ck).parent.name)
    a.axhspan(0, 100 * result["rate"] + 2, color="green", alpha=0.1, label="within 2 points")
    a.axhline(100 * result["rate"], color="k", ls="--", lw=1)
    a.set_xticks(np.arange(len(names)), names, rotation=30, ha="right", fontsize=8)
    a.set_ylabel("% normal test frames flagged")
    a.set_title(f"false alarms at the calibrated threshold ({100 * result['rate']:g}% asked)", fontsize=9)
    a.legend(fontsize=7)
    for s in result["soak"]:
        w = s["windows"]
        b.plot([x["end"] for x in w], [100 * (x["flagged"] or 0) for x in w], marker="o",
               label=f"{Path(s['checkpoint']).parent.name} {s['fields']}")
    b.axhline(100 * result["rate"], color="k", ls="--", lw=1)
    b.axhline(100 * result["rate"] + 2, color="red", ls=":", lw=1)
    b.set_xlabel("stream frame")
    b.set_ylabel(f"% normal frames flagged per {result['soak'][0]['window'] if result['soak'] else ''} frames")
    b.set_title("soak: one long stream, test-time writes on", fontsize=9)
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--rate", type=float, default=0.01)
    ap.add_argument("--protocols", nargs="*", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    ap.add_argument("--soak", default="never", choices=list(PROTOCOLS), help="the protocol the soak stream runs")
    ap.add_argument("--soak-frames", type=int, default=10_000)
    ap.add_argument("--window", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=RESULTS / "memory_drift.json")
    args = ap.parse_args(argv)
    require_files(ap, args.checkpoints)
    rows = []
    for path in args.checkpoints:
        for name in tqdm(args.protocols, desc=path.parent.name):
            rows.append(protocol_row(path, name, PROTOCOLS[name], args.data, args.rate))
            print(f"{path.parent.name} {name:>18}: FAR {100 * rows[-1]['false_alarm_rate']:.1f}%  "
                  f"F1 {rows[-1]['f1']:.3f}  cal AUROC {rows[-1]['calibrated_frame_auroc']:.3f}", flush=True)
    soaks = [soak(p, PROTOCOLS[args.soak], args.data, args.soak_frames, args.window) for p in args.checkpoints] \
        if args.soak_frames else []
    result = {"environment": environment(torch.device("cpu")), "command": " ".join(sys.argv), "rate": args.rate,
              "protocols": rows, "soak": soaks}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    plot(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
