"""Does the calibrated threshold hold on videos the calibration never saw? The false-alarm rate on
normal test frames at it: overall, per test video, and by distance from the nearest anomalous frame.
``--set test.KEY=VALUE`` (or ``scorer.KEY=VALUE``) recalibrates each checkpoint on the same held-out videos
with that scoring setting first (``test.warmup``, ``test.smooth``, ``test.relative``, ``test.threshold_over``,
``scorer.name=contrast``).

For each calibrated checkpoint (trained with ``train.holdout``, so calibrated on held-out training
videos) the test split of ``--data`` is scored as ``memad eval`` scores it, and at the checkpoint's
threshold the share of normal frames flagged is reported overall (against the rate asked and the
calibration's own cross-validated estimate, ``check_false_alarm_rate``), per test video (min, median,
max, and the videos with no anomaly), and by distance from the nearest anomalous frame of the same
video (1-2, 3-10, over 10 frames, none in the video). The paper's per-video min-max AUROC (of the
checkpoint's own scorer, whatever ``--set scorer.*`` asks) is given next to the calibrated one, pooled over
all test videos, pooled over the videos that hold normal frames (a video anomalous throughout has no
normal frame to set a causal baseline by, while min-max spreads it over [0, 1] from its whole length) and
as the mean per video.

    OMP_NUM_THREADS=1 python benchmarks/calibration_shift.py --data synthetic runs/q/runs/mnad_pred/seed*/checkpoint.pt

writes ``benchmarks/results/calibration_shift_<data>.json`` (and its ``.png``) and prints the table row per
checkpoint. All result files in one figure: ``python benchmarks/calibration_shift.py --plot FILES... --out F.png``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib.environment import RESULTS, environment, require_files, write_result  # noqa: E402

import memad  # noqa: E402
from memad.metrics import precision_recall_f1  # noqa: E402

#: Distance bins (frames to the nearest anomalous frame of the same video).
BINS = (("1-2", 1, 2), ("3-10", 3, 10), (">10", 11, np.inf))


def distance_to_event(labels: np.ndarray, video: np.ndarray) -> np.ndarray:
    """Per frame, the frames to the nearest anomalous frame of its video (inf when the video has none).

    >>> distance_to_event(np.array([0, 0, 1, 0, 0, 0]), np.array([0, 0, 0, 0, 1, 1])).tolist()
    [2.0, 1.0, 0.0, 1.0, inf, inf]
    """
    out = np.full(len(labels), np.inf)
    for v in np.unique(video):
        idx = np.flatnonzero(video == v)
        events = idx[labels[idx] == 1]
        if len(events):
            out[idx] = np.abs(idx[:, None] - events[None, :]).min(axis=1)
    return out


def auroc_with_normal_frames(scores: np.ndarray, labels: np.ndarray, video: np.ndarray) -> float | None:
    """The frame AUROC pooled over the videos that hold at least one normal frame (None without both classes).

    >>> auroc_with_normal_frames(np.array([.1, .9, .2, .5]), np.array([0, 1, 1, 1]), np.array([0, 0, 1, 1]))
    1.0
    """
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    keep = np.isin(video, np.unique(video[labels == 0]))
    return float(roc_auc_score(labels[keep], np.asarray(scores)[keep])) if len(np.unique(labels[keep])) == 2 else None


def shift_report(scores: Any, threshold: float) -> dict[str, Any]:
    """The false-alarm figures of calibrated ``scores`` (a :class:`memad.scoring.scores.Scores`) at ``threshold``."""
    y, s, video = np.asarray(scores.labels), np.asarray(scores.calibrated), np.asarray(scores.video)
    flagged = s >= threshold
    normal = y == 0
    per_video = {}
    for v in np.unique(video):
        sel = normal & (video == v)
        if sel.any():
            per_video[str(v)] = {"rate": float(flagged[sel].mean()), "normal_frames": int(sel.sum()),
                                 "has_anomaly": bool(y[video == v].any())}
    dist = distance_to_event(y, video)
    by_distance = {}
    for name, lo, hi in BINS:
        sel = normal & (dist >= lo) & (dist <= hi)
        by_distance[name] = {"rate": float(flagged[sel].mean()) if sel.any() else None, "frames": int(sel.sum())}
    sel = normal & np.isinf(dist)
    by_distance["no event in the video"] = {"rate": float(flagged[sel].mean()) if sel.any() else None,
                                            "frames": int(sel.sum())}
    rates = np.array([p["rate"] for p in per_video.values()])
    return {"false_alarm_rate": float(flagged[normal].mean()), "per_video": per_video,
            "per_video_min": float(rates.min()), "per_video_median": float(np.median(rates)),
            "per_video_max": float(rates.max()), "by_distance": by_distance}


def _own_videos(rows: list[dict[str, Any]]) -> str:
    """How many videos of its own camera each seed's cameras were calibrated on (``--camera-footage``)."""
    return "/".join(str(n) for n in sorted({n for r in rows for n in r["per_camera"]["calibration_videos"]}))


def per_camera_view(result: dict[str, Any]) -> dict[str, Any]:
    """A result's per-camera calibrations (``--camera-footage``) as a result of their own, for the figure:
    each seed's pooled rate and each test video's."""
    rows = [{"asked": r["asked"], "false_alarm_rate": r["per_camera"]["false_alarm_rate"],
             "per_video": {k: {"rate": v} for k, v in r["per_camera"]["per_video"].items()}} for r in result["rows"]]
    return {**result, "rows": rows, "label": f"{_setting(result)}\nper camera",
            "label_videos": f"{_own_videos(result['rows'])} own"}


def held_out_view(result: dict[str, Any]) -> dict[str, Any]:
    """A result's scores at the threshold of its held-out videos alone (without the trained-on videos'
    bound), as a result of its own: the same frames, another threshold (the same where the bound did not
    raise it); ``memad detect`` not run there."""
    rows = [{**r, **r.get("held_out_only", {}), "held_out_only": None} for r in result["rows"]]
    for row in rows:
        row.pop("detect", None)
    return {**result, "rows": rows, "label": f"{_setting(result)}, held-out bound only"}


def _setting(result: dict[str, Any]) -> str:
    """The scoring setting a result file measured: its ``--set`` overrides, else the checkpoints' own
    calibration, "defaults" or "former defaults" (each frame on its own, memad's defaults before ``smooth``,
    ``relative`` and ``threshold_over: videos``)."""
    if "label" in result:
        return result["label"]
    overrides = result.get("overrides") or {}
    if overrides:
        return " + ".join(f"{k.split('.')[-2 if k.endswith('.name') else -1]}={v}"  # scorer.name=X: "scorer=X"
                          for k, v in overrides.items())
    row = (result.get("rows") or [{}])[0]
    alone = (row.get("smooth") or 0) <= 1 and not row.get("relative") and row.get("threshold_over") != "videos"
    return "former defaults" if alone else "defaults"


def _calibration_videos(result: dict[str, Any]) -> str:
    """How many videos each seed was calibrated on (``-`` where the result file does not say)."""
    if "label_videos" in result:
        return result["label_videos"]
    counts = {len(r["calibration_videos"]) for r in result["rows"] if r.get("calibration_videos")}
    return "/".join(str(n) for n in sorted(counts)) or "-"


def with_held_out_views(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``results``, each preceded by its :func:`held_out_view` where its rows have one."""
    out = []
    for r in results:
        if any(row.get("held_out_only") for row in r["rows"]):  # a seed without one: the same threshold
            out.append(held_out_view(r))
        out.append(r)
    return out


def table(results: list[dict[str, Any]]) -> str:
    """The results as one Markdown table: a row per dataset and setting (and the held-out bound alone, where
    the trained-on videos' raised the threshold), the seeds in each cell."""
    results = with_held_out_views(results)

    def seeds(rows, get, fmt):
        return ", ".join(fmt(get(r)) for r in rows)

    lines = ["| data | setting | calibration videos | false alarms, `memad eval` | false alarms, `memad detect` | "
             "worst test video | F1 | calibrated AUROC | per-video min-max AUROC | calibrated AUROC, videos with "
             "normal frames | min-max AUROC, videos with normal frames |",
             "|---|---|---:|---|---|---:|---|---|---|---|---|"]
    pct = "{:.1f}%".format

    def auroc(r, key):
        return "-" if r.get(key) is None else f"{r[key]:.3f}"
    for result in results:
        rows = result["rows"]
        detect = (seeds(rows, lambda r: 100 * r["detect"]["false_alarm_rate"], pct)
                  if all("detect" in r for r in rows) else "-")
        lines.append(f"| {Path(result['data']).name} | {_setting(result)} | {_calibration_videos(result)} | "
                     f"{seeds(rows, lambda r: 100 * r['false_alarm_rate'], pct)} | {detect} | "
                     f"{100 * max(r['per_video_max'] for r in rows):.0f}% | "
                     f"{seeds(rows, lambda r: r['f1'], '{:.3f}'.format)} | "
                     f"{seeds(rows, lambda r: r['calibrated_frame_auroc'], '{:.3f}'.format)} | "
                     f"{seeds(rows, lambda r: r['frame_auroc_per_video_minmax'], '{:.3f}'.format)} | "
                     f"{seeds(rows, lambda r: auroc(r, 'calibrated_frame_auroc_videos_with_normal'), str)} | "
                     f"{seeds(rows, lambda r: auroc(r, 'frame_auroc_per_video_minmax_videos_with_normal'), str)} |")
    return "\n".join(lines)


def camera_table(results: list[dict[str, Any]]) -> str:
    """The per-camera calibrations of the results that have them (``--camera-footage``), one row per
    result, the seeds in each cell, next to the rates of the calibration on held-out training videos."""
    lines = ["| data | setting | calibrated on | false alarms | worst test video | F1 | calibrated AUROC |",
             "|---|---|---|---|---:|---|---|"]

    def cells(rows: list[dict[str, Any]], worst: float) -> str:
        def join(key: str, fmt: str) -> str:
            return ", ".join(fmt.format(r[key]) for r in rows)
        rates = ", ".join(f"{100 * r['false_alarm_rate']:.1f}%" for r in rows)
        return (f"{rates} | {100 * worst:.0f}% | {join('f1', '{:.3f}')} | "
                f"{join('calibrated_frame_auroc', '{:.3f}')} |")
    for result in results:
        rows = result["rows"]
        if not all("per_camera" in r for r in rows):
            continue
        cams = [r["per_camera"] for r in rows]
        name, setting = Path(result["data"]).name, _setting(result)
        own = _own_videos(rows)
        lines.append(f"| {name} | {setting} | held-out training videos ({_calibration_videos(result)}) | "
                     + cells(rows, max(r["per_video_max"] for r in rows)))
        lines.append(f"| {name} | {setting} | own camera: `{cams[0]['footage']}` ({own}) | "
                     + cells(cams, max(max(c["per_video"].values()) for c in cams)))
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], out: Path) -> None:
    """One panel per dataset, one group per setting (result file): each seed's false-alarm rate on all
    normal test frames as a bar and each test video's as a dot; the rate asked and 2 points above it.
    The y axis is cut at 30%; a dot above it is drawn on the edge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views, seen = [], set()
    for r in with_held_out_views(results):
        key = (r["data"], _setting(r), tuple(row["false_alarm_rate"] for row in r["rows"]))
        if key not in seen:  # the same checkpoints' held-out calibration in two files: drawn once
            views.append(r)
            seen.add(key)
        if all("per_camera" in row for row in r["rows"]):
            views.append(per_camera_view(r))
    results = views

    datasets = list(dict.fromkeys(Path(r["data"]).name for r in results))
    widest = max(sum(Path(r["data"]).name == name for r in results) for name in datasets)
    fig, axes = plt.subplots(len(datasets), 1, figsize=(max(8.5, 1.7 * widest), 2.6 * len(datasets)), squeeze=False)
    cap = 30.0
    for ax, name in zip(axes[:, 0], datasets):
        group = [r for r in results if Path(r["data"]).name == name]
        for g, result in enumerate(group):
            n = len(result["rows"])
            for k, row in enumerate(result["rows"]):
                x = g + (k - (n - 1) / 2) * 0.22
                ax.bar(x, min(100 * row["false_alarm_rate"], cap), width=0.2, color="#c6dbef", edgecolor="#6baed6")
                rates = np.minimum([100 * v["rate"] for v in row["per_video"].values()], cap)
                ax.scatter(np.full(len(rates), x), rates, s=8, color="#08519c", zorder=3)
        asked = 100 * group[0]["rows"][0]["asked"]
        ax.axhline(asked, color="k", ls="--", lw=1)
        ax.axhline(asked + 2, color="red", ls=":", lw=1)
        ax.set_ylim(0, cap + 1)
        labels = [textwrap.fill(_setting(r).replace(" + ", "\n+ "), 34, replace_whitespace=False)
                  + f"\n({_calibration_videos(r)} cal. videos)" for r in group]
        ax.set_xticks(range(len(group)), labels, fontsize=7)
        ax.set_title(f"{name}: bars = seeds, dots = test videos", fontsize=9)
        ax.set_ylabel("% normal frames flagged", fontsize=8)
    fig.suptitle("false alarms at the calibrated threshold for 1% asked (dashed), 2 points above (dotted)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="*", type=Path)
    ap.add_argument("--data")
    ap.add_argument("--set", action="append", default=[], metavar="test.KEY=VALUE", dest="overrides",
                    help="recalibrate on the same held-out videos with this scoring setting (test.warmup=8, "
                         "test.smooth=3, test.relative=128, test.threshold_over=videos, scorer.name=contrast; "
                         "repeatable; default: as calibrated)")
    ap.add_argument("--detect", action="store_true",
                    help="also run `memad detect` on every test video and measure the same rates from its scores.csv")
    ap.add_argument("--camera-footage", metavar="TEMPLATE",
                    help="also calibrate each test video's own camera: TEMPLATE with {k} (the test video's number "
                         "from 1) or {name} is the data whose training split holds that camera's normal footage "
                         "(scenes:seed=0,train=4,camera={k}, or /data/cameras/{name}); each test video is then "
                         "scored alone at its camera's threshold")
    ap.add_argument("--recalibrate", action="store_true",
                    help="recalibrate each checkpoint with this memad's calibration first (as --set does)")
    ap.add_argument("--label", help="the setting's name in the table and figure (default: from --set or the "
                                    "calibration)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--plot", nargs="+", type=Path, help="only draw these result files side by side into --out")
    args = ap.parse_args(argv)
    if args.plot:
        require_files(ap, args.plot, "result file")
        results = [json.loads(f.read_text()) for f in args.plot]
        plot(results, args.out or RESULTS / "calibration_shift.png")
        print(table(results))
        if any(all("per_camera" in r for r in result["rows"]) for result in results):
            print("\n" + camera_table(results))
        return 0
    if not args.checkpoints or not args.data:
        ap.error("expected --data DATA and at least one checkpoint (or --plot FILES)")
    require_files(ap, args.checkpoints)
    overrides = _overrides(ap, args.overrides)
    rows = []
    for path in args.checkpoints:
        trained = memad.load(path)
        if not overrides and not args.recalibrate:
            det = trained
        else:  # as `memad calibrate CHECKPOINT --data DATA`: the held-out videos, recognised by their frames
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # the stored calibration is dropped: the point
                det = memad.load(path, overrides=overrides)
                det.calibrate(args.data)
        if det.calibration_ is None:
            ap.error(f"{path}: not calibrated (memad calibrate CHECKPOINT --data DATA)")
        scores = det.score(args.data, keep_maps=0)
        metrics = scores.metrics(threshold=det.threshold_, resamples=50)
        row = {"checkpoint": str(path), "seed": det.config["train"]["seed"],
               **{k: det.calibration_.get(k) for k in ("warmup", "smooth", "relative", "threshold_over")},
               "asked": det.calibration_["false_alarm_rate"],
               "cross_validated_estimate": det.calibration_.get("check_false_alarm_rate"),
               "calibration_videos": det.calibration_.get("videos"), "calibration_frames": det.calibration_["frames"],
               "threshold": det.threshold_, "trained_video_threshold": det.calibration_.get("trained_video_threshold"),
               "f1": metrics.get("f1"), "frame_auroc_per_video_minmax": paper_auroc(trained, scores),
               "scorer": det.config["scorer"]["name"], "scorer_frame_auroc_per_video": metrics["frame_auroc"],
               "calibrated_frame_auroc": metrics.get("calibrated_frame_auroc"),
               **auroc_breakdown(trained, scores),
               **shift_report(scores, det.threshold_)}
        held_out = det.calibration_.get("held_out_threshold")
        if held_out is not None and held_out != det.threshold_:  # what the held-out videos alone would flag
            flagged = np.asarray(scores.calibrated) >= held_out
            row["held_out_only"] = {"threshold": held_out, "f1": precision_recall_f1(scores.labels, flagged)["f1"],
                                    **shift_report(scores, held_out)}
        if args.detect:
            row["detect"] = detect_report(det, scores, args.data)
        if args.camera_footage:
            row["per_camera"] = per_camera_report(path, overrides, args.data, args.camera_footage)
        rows.append(row)
        dist = ", ".join(f"{k} {'-' if v['rate'] is None else format(100 * v['rate'], '.1f') + '%'}"
                         for k, v in row["by_distance"].items())
        print(f"{path.parent.name}: false alarms {100 * row['false_alarm_rate']:.1f}% for "
              f"{100 * row['asked']:g}% asked (estimate {100 * (row['cross_validated_estimate'] or 0):.1f}%), "
              f"per video {100 * row['per_video_min']:.0f}-{100 * row['per_video_max']:.0f}% "
              f"(median {100 * row['per_video_median']:.1f}%); by distance {dist}; F1 {row['f1']:.3f}; "
              f"AUROC min-max {row['frame_auroc_per_video_minmax']:.3f}, "
              f"calibrated {row['calibrated_frame_auroc']:.3f} (videos with normal frames: min-max "
              f"{row['frame_auroc_per_video_minmax_videos_with_normal']:.3f}, calibrated "
              f"{row['calibrated_frame_auroc_videos_with_normal']:.3f})", flush=True)
        if args.detect:
            d = row["detect"]
            print(f"  memad detect: false alarms {100 * d['false_alarm_rate']:.1f}% of {d['normal_frames']} normal "
                  f"frames "
                  f"({100 * d['normal_frames_in_events']:.1f}% inside events); largest score difference from eval "
                  f"{d['largest_score_difference_from_eval']:.2g}", flush=True)
        if args.camera_footage:
            c = row["per_camera"]
            print(f"  calibrated per camera on {c['footage']}: false alarms {100 * c['false_alarm_rate']:.1f}%, per "
                  f"video {100 * min(c['per_video'].values()):.0f}-{100 * max(c['per_video'].values()):.0f}%; "
                  f"F1 {c['f1']:.3f}; calibrated AUROC {c['calibrated_frame_auroc']:.3f}", flush=True)
    tag = re.sub(r"[^A-Za-z0-9]+", "_", Path(args.data).name) + "".join(
        f"_{k.split('.')[-1]}{v}" for k, v in overrides.items())
    out = args.out or RESULTS / f"calibration_shift_{tag}.json"
    result = {"environment": environment(torch.device("cpu")), "command": " ".join(sys.argv), "data": args.data,
              "overrides": overrides, "rows": rows, **({"label": args.label} if args.label else {})}
    write_result(out, result)
    plot([result], out.with_suffix(".png"))
    return 0


def paper_auroc(trained: Any, scores: Any) -> float:
    """The frame AUROC of ``trained``'s own scorer, min-max per video as the paper scores, on the signals
    of ``scores`` (those of the same pass, whichever scorer ``scores`` used)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(scores.labels, trained.scorer(scores.stats)))


def auroc_breakdown(trained: Any, scores: Any) -> dict[str, float | None]:
    """The calibrated and the per-video min-max frame AUROC (``trained``'s scorer) pooled over the videos of
    ``scores`` that hold normal frames, and as the mean per video (videos with both classes)."""
    from memad.metrics.frame import frame_auroc_macro

    y, video = np.asarray(scores.labels), np.asarray(scores.video)
    minmax = trained.scorer(scores.stats)
    return {"calibrated_frame_auroc_videos_with_normal": auroc_with_normal_frames(scores.calibrated, y, video),
            "frame_auroc_per_video_minmax_videos_with_normal": auroc_with_normal_frames(minmax, y, video),
            "calibrated_frame_auroc_macro": frame_auroc_macro(scores.calibrated, y, video, single_class="skip"),
            "frame_auroc_macro": frame_auroc_macro(minmax, y, video, single_class="skip")}


def per_camera_report(path: Path, overrides: dict[str, Any], data: str, template: str) -> dict[str, Any]:
    """The deployment path: each test video of ``data`` scored alone (a fresh memory, as ``memad detect``
    starts a stream) at a threshold calibrated on all videos of its own camera's normal footage (the
    training split of ``template`` filled with the video's number ``{k}`` and ``{name}``); the false alarms
    on its normal frames, pooled and per video, and F1 and the calibrated AUROC over the videos pooled."""
    from sklearn.metrics import roc_auc_score

    from memad.data import open_split

    test = open_split(data, "testing", memad.load(path).config)
    flagged, calibrated, labels, per_video, n_videos = [], [], [], {}, set()
    for k, name in enumerate(test.names):
        det = memad.load(path, overrides=overrides or None)  # each camera calibrates its own copy
        own = open_split(template.format(k=k + 1, name=name), "training", det.config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the stored calibration is replaced: the point
            det.calibrate(own, videos=list(own.names))
        scores = det.score(test.video(k), keep_maps=0)
        y, c = np.asarray(scores.labels), np.asarray(scores.calibrated)
        flags = c >= det.threshold_
        if (y == 0).any():
            per_video[name] = float(flags[y == 0].mean())
        flagged.append(flags), calibrated.append(c), labels.append(y)
        n_videos.add(len(own.names))
    y, f, c = np.concatenate(labels), np.concatenate(flagged), np.concatenate(calibrated)
    return {"footage": template, "calibration_videos": sorted(n_videos), "false_alarm_rate": float(f[y == 0].mean()),
            "per_video": per_video, "f1": precision_recall_f1(y, f)["f1"],
            "calibrated_frame_auroc": float(roc_auc_score(y, c))}


def detect_report(det: Any, scores: Any, data: str) -> dict[str, Any]:
    """The false alarms of ``memad detect`` run on each test video of ``data`` (its frame folders or files;
    generated videos are written out as PNG frames first), at the checkpoint's threshold, next to those
    of ``memad eval``'s scores: the per-frame decision (``score >= threshold``) and the frames inside events."""
    import csv
    import tempfile

    from PIL import Image

    from memad.cli import main as memad_main
    from memad.data import open_split

    videos = open_split(data, "testing", det.config)
    by_frame = {(int(v), int(f)): (float(c), int(y)) for v, f, c, y in
                zip(scores.video, scores.frame - videos.offsets[scores.video], scores.calibrated, scores.labels)}
    flagged, in_event, gap = [], [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = det.save(Path(tmp) / "checkpoint.pt")
        for i, name in enumerate(videos.names):
            source = videos.video_paths[i] if videos.video_paths else None
            if source is None or not Path(source).exists():  # a generated video: its frames as PNG files
                source = Path(tmp) / "frames" / name
                source.mkdir(parents=True)
                start = int(videos.offsets[i])
                for k in range(videos.lengths[i]):
                    frame = videos.frames[start + k].permute(1, 2, 0).numpy()
                    Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame).save(source / f"{k:04d}.png")
            out = Path(tmp) / "detect" / name
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                code = memad_main(["detect", str(ckpt), str(source), "--out", str(out), "--no-video", "--no-html"])
            if code != 0:
                raise RuntimeError(f"memad detect on {source} exited with {code}")
            with open(out / "scores.csv") as fh:
                for r in csv.DictReader(fh):
                    offline, label = by_frame[(i, int(r["frame"]))]
                    gap = max(gap, abs(float(r["score"]) - offline))
                    if label == 0:
                        flagged.append(float(r["score"]) >= det.threshold_)
                        in_event.append(r["anomalous"] == "1")
    return {"false_alarm_rate": float(np.mean(flagged)), "normal_frames": len(flagged),
            "normal_frames_in_events": float(np.mean(in_event)), "largest_score_difference_from_eval": gap}


def _overrides(ap: argparse.ArgumentParser, pairs: list[str]) -> dict[str, Any]:
    """``--set test.KEY=VALUE`` / ``scorer.KEY=VALUE`` pairs as overrides (values parsed as YAML); only scoring
    settings."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.startswith(("test.", "scorer.")):
            ap.error(f"--set {pair!r}: expected test.KEY=VALUE or scorer.KEY=VALUE (a scoring setting, such as "
                     f"test.relative=128 or scorer.name=contrast)")
        out[key] = yaml.safe_load(value)
    return out


if __name__ == "__main__":
    sys.exit(main())
