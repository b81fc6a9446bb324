"""Plots of detector results, drawn with matplotlib's Agg backend and written as PNG.

- :func:`roc_curves`: frame-level ROC curves of several detectors on one figure.
- :func:`score_timelines`: per-video anomaly-score timelines with the ground-truth
  anomalous intervals shaded.
- :func:`top_frames_grid`: the highest-scoring test frames with their error heatmaps and,
  where masks exist, the outline of the ground-truth mask.

Every function returns the matplotlib ``Figure`` and, given ``path``, also writes it there
(and closes it, so that long comparisons do not accumulate open figures).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or expected

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402

from ..errors import DataError  # noqa: E402

if TYPE_CHECKING:
    from ..data import VideoSet
    from ..scoring.runner import Scores

__all__ = ["roc_curves", "score_timelines", "top_frames_grid", "anomalous_intervals"]

DPI = 110


def _finish(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
        plt.close(fig)
    return fig


def _colours(n: int) -> list:
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def anomalous_intervals(labels: np.ndarray) -> list[tuple[int, int]]:
    """Half-open ``[start, end)`` index intervals where ``labels`` is 1.

    >>> anomalous_intervals(np.array([0, 1, 1, 0, 1]))
    [(1, 3), (4, 5)]
    """
    lab = np.asarray(labels).astype(np.int8).reshape(-1)
    edges = np.diff(np.concatenate([[0], lab, [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(s), int(e)) for s, e in zip(starts, ends)]


def roc_curves(
    runs: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray]]],
    path: str | Path | None = None,
    *,
    title: str = "Frame-level ROC",
) -> Figure:
    """ROC curves of several detectors on one axes.

    Args:
        runs: ``{detector name: [(labels, scores), ...]}``, one pair per seed. The first
            pair is drawn solid; further seeds are drawn faint in the same colour. The
            legend gives the mean pooled AUROC over the pairs.
        path: where to write the PNG (optional).
        title: the axes title.
    """
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    for colour, (name, pairs) in zip(_colours(len(runs)), runs.items()):
        aucs = [roc_auc_score(lab, s) for lab, s in pairs if len(np.unique(lab)) == 2]
        label = name if not aucs else f"{name} (AUROC {np.mean(aucs):.3f}" + (
            f", mean of {len(aucs)})" if len(aucs) > 1 else ")")
        for i, (labels, scores) in enumerate(pairs):
            labels = np.asarray(labels).astype(int)
            if len(np.unique(labels)) < 2:
                continue
            fpr, tpr, _ = roc_curve(labels, scores)
            ax.plot(fpr, tpr, color=colour, lw=1.8 if i == 0 else 0.8, alpha=1.0 if i == 0 else 0.35,
                    label=label if i == 0 else None)
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.8, label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _finish(fig, path)


def score_timelines(
    runs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    video: np.ndarray,
    labels: np.ndarray | None,
    video_names: Sequence[str],
    path: str | Path | None = None,
    *,
    columns: int = 3,
    max_videos: int = 12,
) -> Figure:
    """One panel per test video: each detector's anomaly score over the frames.

    Args:
        runs: ``{detector name: (frame, scores)}``: the split-wide index of each scored
            frame and its score. Detectors may score different frames (a prediction model
            skips each video's first frames); panels are aligned on the frame index.
        video: ``(N,)`` video index of every frame of the split.
        labels: ``(N,)`` 0/1 ground truth of every frame of the split (shaded), or None.
        video_names: names of the videos, for the panel titles.
        path: where to write the PNG (optional).
        columns: panels per row.
        max_videos: draw at most this many videos (the first ones).

    Scores are drawn as returned by each detector's scorer; with per-video min-max
    normalisation (the paper's) every video spans [0, 1].
    """
    video = np.asarray(video)
    n_videos = min(len(video_names), max_videos)
    if n_videos == 0:
        raise DataError("score_timelines: no videos to draw")
    rows = int(np.ceil(n_videos / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.3 * rows), squeeze=False)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(video, minlength=len(video_names)))[:-1]])
    colours = _colours(len(runs))
    for v in range(rows * columns):
        ax = axes[v // columns][v % columns]
        if v >= n_videos:
            ax.axis("off")
            continue
        if labels is not None:
            for j, (s, e) in enumerate(anomalous_intervals(np.asarray(labels)[video == v])):
                ax.axvspan(s - 0.5, e - 0.5, color="tab:red", alpha=0.15, lw=0,
                           label="anomalous (ground truth)" if j == 0 else None)
        for colour, (name, (idx, scores)) in zip(colours, runs.items()):
            idx, scores = np.asarray(idx), np.asarray(scores)
            sel = video[idx] == v
            ax.plot(idx[sel] - offsets[v], scores[sel], color=colour, lw=1.1, label=name if v == 0 else None)
        ax.set_title(f"video {video_names[v]}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlim(0, max(int((video == v).sum()) - 1, 1))
        if v % columns == 0:
            ax.set_ylabel("anomaly score", fontsize=8)
        if v // columns == rows - 1:
            ax.set_xlabel("frame", fontsize=8)
    handles, names = [], []
    for ax in axes.flat:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                handles.append(h)
                names.append(n)
    fig.legend(handles, names, loc="upper center", ncol=min(len(names), 6), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1.0 + 0.02 / rows))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.06 / rows))
    return _finish(fig, path)


def _frame_image(frames, index: int) -> np.ndarray:
    img = frames[index].detach().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames[index])
    img = img.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    return img[..., 0] if img.shape[-1] == 1 else img


def top_frames_grid(
    scores: "Scores",
    videos: "VideoSet",
    path: str | Path | None = None,
    *,
    k: int = 8,
    columns: int = 4,
    title: str | None = None,
    alpha: float = 0.5,
    captions: Sequence[str] | None = None,
    lowest: int = 0,
) -> Figure:
    """A grid of the ``k`` highest-scoring test frames, each with its error heatmap.

    Each cell shows the frame (the scored one: for a prediction model, the predicted
    frame) with the per-pixel error map ``scores.maps`` overlaid as a heatmap, and, when
    ``scores.masks`` exists, the outline of the ground-truth mask in cyan. The cell title
    gives the video, the frame number inside it, the score and the label when known.

    Args:
        scores: a :class:`memad.scoring.runner.Scores` from ``detector.score(data)``; its
            ``frame`` indexes ``videos.frames``.
        videos: the split that was scored, e.g. ``memad.data.open_split(data, "testing",
            detector.config)``.
        path: where to write the PNG (optional).
        k: how many frames (fewer if fewer were scored).
        columns: cells per row.
        title: a figure title.
        alpha: opacity of the heatmap.
        captions: one name per scored frame (e.g. image file and defect type), shown
            instead of "video ... frame ..." in the cell titles.
        lowest: also show this many lowest-scoring frames (the most normal-looking), from a
            new row, in rank order and on the same colour scale, for contrast.

    Returns:
        The matplotlib figure.

    Example::

        det = memad.load("runs/pred/checkpoint.pt")
        result = det.score("synthetic")
        top_frames_grid(result, open_split("synthetic", "testing", det.config), "top.png")
    """
    if k < 1 or columns < 1 or lowest < 0:
        raise ValueError(f"top_frames_grid: k and columns must be >= 1 and lowest >= 0, got k={k}, "
                         f"columns={columns}, lowest={lowest}")
    values = np.asarray(scores.scores, dtype=np.float64)
    if len(values) == 0:
        raise DataError("top_frames_grid: no scored frames")
    if captions is not None and len(captions) != len(values):
        raise DataError(f"top_frames_grid: {len(captions)} captions for {len(values)} scored frames")
    frame_idx = np.asarray(scores.frame)
    if frame_idx.max() >= len(videos):
        raise DataError(f"top_frames_grid: scores index frame {int(frame_idx.max())}, but "
                        f"{videos.source or 'the split'} holds {len(videos)} frames (pass the split that was scored)")
    ranked = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")
    order = ranked[:k]
    k = len(order)
    columns = min(columns, k)
    # The lowest-scoring frames not already shown, in rank order (lowest last), from a row of their own.
    shown = set(order.tolist())
    bottom = [int(i) for i in ranked[::-1][:lowest] if int(i) not in shown][::-1]
    cells: list[int | None] = [int(i) for i in order] + [None] * (-k % columns) + bottom
    order = np.asarray([i for i in cells if i is not None], dtype=np.int64)
    rows = int(np.ceil(len(cells) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.7 * columns, 2.9 * rows), squeeze=False)
    offsets = videos.offsets
    video_of = videos.video_index
    maps = None if scores.maps is None else scores.maps.float().numpy() if hasattr(scores.maps, "numpy") \
        else np.asarray(scores.maps, dtype=np.float32)
    # Scoring keeps the maps of a few frames only (Scores.map_frames): a frame without one shows no heatmap.
    map_at = {int(i): j for i in order if (j := _map_index(scores, int(i))) is not None} if maps is not None else {}
    if maps is not None and not map_at:
        maps = None
    masks = None if scores.masks is None else np.asarray(scores.masks.numpy() if hasattr(scores.masks, "numpy")
                                                         else scores.masks).astype(bool)
    vmax = float(np.percentile(maps[list(map_at.values())], 99.5)) if maps is not None else None
    heat = None
    for cell in range(rows * columns):
        ax = axes[cell // columns][cell % columns]
        ax.set_xticks([])
        ax.set_yticks([])
        if cell >= len(cells) or cells[cell] is None:
            ax.axis("off")
            continue
        i = int(cells[cell])
        f = int(frame_idx[i])
        img = _frame_image(videos.frames, f)
        h, w = img.shape[:2]
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, extent=(0, w, h, 0))
        if maps is not None and i in map_at:
            heat = ax.imshow(maps[map_at[i]], cmap="inferno", alpha=alpha, vmin=0, vmax=max(vmax, 1e-12),
                             extent=(0, w, h, 0), interpolation="bilinear")
        if masks is not None and i in map_at and masks[map_at[i]].any():
            m = masks[map_at[i]].astype(float)
            mh, mw = m.shape
            # Contour on cell centres scaled to the frame's pixel grid.
            xs = (np.arange(mw) + 0.5) * w / mw
            ys = (np.arange(mh) + 0.5) * h / mh
            ax.contour(xs, ys, m, levels=[0.5], colors="cyan", linewidths=1.2)
        v = int(video_of[f])
        label = "" if scores.labels is None else (" · anomalous" if scores.labels[i] else " · normal")
        where = captions[i] if captions is not None else f"video {videos.names[v]} frame {f - int(offsets[v])}"
        ax.set_title(f"{where}\nscore {values[i]:.3f}{label}", fontsize=8)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if heat is not None:
        bar = fig.colorbar(heat, ax=axes.ravel().tolist(), shrink=0.8, pad=0.02)
        bar.set_label("squared error", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    return _finish(fig, path)


def _map_index(scores: "Scores", i: int) -> int | None:
    """Where scored frame ``i``'s map is in ``scores.maps`` (a Scores of an older kind: every frame's)."""
    finder = getattr(scores, "map_index", None)
    return finder(i) if finder is not None else i
