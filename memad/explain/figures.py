"""The figures of a memory explanation, drawn with matplotlib's Agg backend as PNG:

- ``atlas.png`` (``atlas_l<level>.png`` per level): an item per row, its colour, usage share and median
  distance, then its ``k`` nearest training crops, nearest first;
- ``usage.png``: each item's share of the training reads (dead items crossed, rare ones hatched, the
  equal share dashed) and its share in each test video;
- ``usage_timeline.png``: per test frame, the shares of the most used items, under the score and the
  anomalous frames;
- ``geometry.png``: the items' pairwise L2 distances, each item's distance to its nearest other item,
  and the queries' margins ``|q - p_2| - |q - p_1|`` against the triplet margin;
- ``frames/<video>_<index>.png``: a test frame, its error heatmap, the map of the items read (colours as
  in the atlas) and the distance map;
- ``explain.json`` (:mod:`memad.explain.summary`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from ..fileio import write_json_atomic  # noqa: E402
from ..overlay import overlay_heatmap, to_rgb  # noqa: E402
from .regions import grid_slot, item_colours, strongest_region, to_frame  # noqa: E402

# An Explanation / LevelReport of memad.explain.run (not imported: run imports this module to write).
Explanation = LevelReport = Any

__all__ = ["write_all", "atlas", "usage_chart", "usage_timeline", "geometry_chart", "frame_view"]

DPI = 110
#: Most items drawn in the atlas and timeline (the most used ones, when there are more).
MAX_ROWS = 40
TIMELINE_ITEMS = 12


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _suffix(expl: Explanation, lv: LevelReport) -> str:
    return "" if len(expl.levels) == 1 else ("_unit" if lv.level is None else f"_l{lv.level}")


def _shown_items(lv: LevelReport, most: int) -> np.ndarray:
    if lv.num_items <= most:
        return np.arange(lv.num_items)
    return np.sort(np.argsort(-lv.train.counts, kind="stable")[:most])


def atlas(lv: LevelReport, path: Path, title: str) -> Path:
    """The item atlas of one level (see the module docstring)."""
    items = _shown_items(lv, MAX_ROWS)
    m, k, c, h, w = lv.exemplars.shape
    scale = max(1, int(np.ceil(40 / max(h, w))))  # small crops enlarged (nearest) to ~40 px
    ph, pw, gap = h * scale, w * scale, 3
    canvas = np.full((len(items) * (ph + gap), k * (pw + gap), 3), 255, np.uint8)
    for r, it in enumerate(items):
        for n in range(k):
            if not np.isfinite(lv.exemplar_distance[it, n]):
                continue
            patch = to_rgb(lv.exemplars[it, n].transpose(1, 2, 0))
            big = patch.repeat(scale, 0).repeat(scale, 1)
            canvas[r * (ph + gap):r * (ph + gap) + ph, n * (pw + gap):n * (pw + gap) + pw] = big
    colours = item_colours(lv.num_items)
    height = max(2.0, len(items) * (ph + gap) / 60)
    fig, ax = plt.subplots(figsize=(2.6 + k * (pw + gap) / 60, height))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    for r, it in enumerate(items):
        y = r * (ph + gap) + ph / 2
        share = lv.train.share[it]
        med = lv.distance_quantiles[it]
        flag = " dead" if it in lv.train.dead else " rare" if it in lv.train.rare else ""
        label = f"item {it}  {100 * share:.1f}%{flag}" + (f"\nmedian d {med[0]:.3g}" if med else "")
        ax.text(-8, y, label, ha="right", va="center", fontsize=8)
        ax.add_patch(plt.Rectangle((-6, y - ph / 2), 4, ph, color=colours[it], clip_on=False))
    more = "" if len(items) == m else f" ({len(items)} most used of {m})"
    ax.set_title(f"{title}: {m} items{more}, effective {lv.train.effective:.1f}; {k} nearest training crops each "
                 f"(cell {lv.cell[0]}x{lv.cell[1]} px)", fontsize=9)
    return _save(fig, path)


def usage_chart(expl: Explanation, path: Path) -> Path:
    """Training share per item (bars) and per test video (a heatmap), for every level."""
    fig, axes = plt.subplots(2 * len(expl.levels), 1, figsize=(10, 5.2 * len(expl.levels)), squeeze=False,
                             gridspec_kw={"height_ratios": [2, 1.3] * len(expl.levels)})
    for n, lv in enumerate(expl.levels):
        ax, hm = axes[2 * n, 0], axes[2 * n + 1, 0]
        x = np.arange(lv.num_items)
        colours = item_colours(lv.num_items)
        bars = ax.bar(x, 100 * lv.train.share, color=colours, width=0.85)
        for it in lv.train.rare:
            bars[it].set_hatch("///")
        ax.scatter(lv.train.dead, np.zeros(len(lv.train.dead)), marker="x", color="red", zorder=3,
                   label=f"dead ({len(lv.train.dead)})")
        ax.axhline(100 / lv.num_items, ls="--", color="grey", lw=1, label="equal share")
        ax.set_ylabel("% of training reads")
        ax.set_title(f"{lv.name}: {lv.num_items} items, effective number {lv.train.effective:.2f} (training); "
                     f"{len(lv.train.dead)} dead, {len(lv.train.rare)} rare", fontsize=10)
        ax.legend(fontsize=8, loc="upper right")
        ax.set_xlim(-0.6, lv.num_items - 0.4)
        names = list(lv.test_usage)
        matrix = np.array([lv.test_usage[v].share for v in names]) * 100 if names else np.zeros((1, lv.num_items))
        im = hm.imshow(matrix, aspect="auto", cmap="viridis", interpolation="nearest",
                       extent=(-0.5, lv.num_items - 0.5, len(names) - 0.5, -0.5))
        hm.set_yticks(range(len(names)))
        hm.set_yticklabels([f"{v} (eff {lv.test_usage[v].effective:.1f})" for v in names], fontsize=7)
        hm.set_xlabel("item")
        fig.colorbar(im, ax=hm, label="% of the video's reads", pad=0.01)
    fig.tight_layout()
    return _save(fig, path)


def usage_timeline(expl: Explanation, path: Path) -> Path:
    """Per test frame: the shares of the most used items (stacked), the score and the anomalous frames."""
    scores = expl.scores
    fig, axes = plt.subplots(len(expl.levels) + 1, 1, figsize=(12, 2.6 * (len(expl.levels) + 1)), sharex=True,
                             squeeze=False)
    t = np.arange(len(scores.frame))
    for n, lv in enumerate(expl.levels):
        ax = axes[n, 0]
        flat = lv.test_assignment.reshape(len(t), -1)
        per_frame = np.stack([np.bincount(row, minlength=lv.num_items) for row in flat]) / flat.shape[1]
        top = np.sort(np.argsort(-per_frame.sum(0))[:TIMELINE_ITEMS])
        colours = item_colours(lv.num_items)
        stack = [per_frame[:, i] for i in top]
        other = 1 - np.sum(stack, axis=0)
        ax.stackplot(t, *stack, other, colors=[*colours[top], (0.85, 0.85, 0.85)], linewidth=0)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"{lv.name}\nshare of reads", fontsize=8)
        ax.legend([Patch(color=colours[i]) for i in top] + [Patch(color=(0.85, 0.85, 0.85))],
                  [f"item {i}" for i in top] + ["other"], fontsize=7, ncol=min(len(top) + 1, 7), loc="upper left",
                  bbox_to_anchor=(0, 1.32), frameon=False)
    ax = axes[-1, 0]
    ax.plot(t, scores.scores, color="#1f77b4", lw=1)
    if scores.labels is not None:
        ax.fill_between(t, 0, 1, where=scores.labels > 0, color="red", alpha=0.18, step="mid",
                        transform=ax.get_xaxis_transform(), label="anomalous")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_ylabel("anomaly score", fontsize=8)
    ax.set_xlabel("scored test frame (all videos in order; lines: video starts)")
    for a in axes[:, 0]:
        for start in np.flatnonzero(np.diff(scores.video, prepend=-1)):
            a.axvline(start, color="black", lw=0.6, alpha=0.5)
    fig.tight_layout()
    return _save(fig, path)


def geometry_chart(expl: Explanation, path: Path) -> Path:
    """Pairwise item distances, nearest-other-item distances and query margins, for every level."""
    fig, axes = plt.subplots(len(expl.levels), 3, figsize=(15, 4.2 * len(expl.levels)), squeeze=False)
    for n, lv in enumerate(expl.levels):
        g = lv.geometry
        a, b, c = axes[n]
        if "pairwise" in g and lv.num_items <= 200:
            im = a.imshow(g["pairwise"], cmap="magma", interpolation="nearest")
            fig.colorbar(im, ax=a, label="L2 distance")
            a.set_title(f"{lv.name}: pairwise item distances (mean {g['mean_pairwise_distance']:.3g})", fontsize=9)
            a.set_xlabel("item")
            a.set_ylabel("item")
        else:
            a.axis("off")
            a.text(0.5, 0.5, "items are made per input" if lv.per_input else "too many items to draw",
                   ha="center", va="center")
        if "nearest_distance" in g:
            b.bar(np.arange(lv.num_items), g["nearest_distance"], color=item_colours(lv.num_items))
            b.set_title(f"distance to the nearest other item (min {g['min_nearest_distance']:.3g}, "
                        f"mean {g['mean_nearest_distance']:.3g})", fontsize=9)
            b.set_xlabel("item")
        else:
            b.axis("off")
        qm = g.get("query_margin")
        if qm is not None and lv.margins is not None:
            c.hist(lv.margins, bins=60, color="#4c72b0")
            alpha = qm.get("alpha")
            below = ""
            if alpha is not None:
                c.axvline(alpha, color="red", ls="--", lw=1, label=f"triplet margin {alpha:g}")
                c.legend(fontsize=8)
                below = f"; {100 * qm['share_below_alpha']:.1f}% below {alpha:g}"
            c.set_title(f"query margin |q-p2| - |q-p1| (training; median {qm['quantiles']['0.5']:.3g}{below})",
                        fontsize=9)
            c.set_xlabel("L2 margin")
        else:
            c.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def frame_view(expl: Explanation, pos: int, path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """One test frame: the frame, its error heatmap, the items read and the distance map, per level."""
    scores, test = expl.scores, expl.test
    frame = to_rgb(test.frames[int(scores.frame[pos])].permute(1, 2, 0).numpy())
    hw = frame.shape[:2]
    j = scores.map_index(pos)  # scoring keeps the maps of the top and the asked-for frames only
    err = scores.maps[j].float().numpy() if j is not None else None
    vmax = float(np.quantile(scores.maps.float().numpy(), 0.999)) if scores.maps is not None else 1.0
    fig, axes = plt.subplots(len(expl.levels), 4, figsize=(13, 3.5 * len(expl.levels)), squeeze=False)
    regions = []
    for n, lv in enumerate(expl.levels):
        assign = grid_slot(lv.test_assignment[pos], expl.score_offset, expl.frames)
        dist = grid_slot(lv.test_distance[pos].astype(np.float32), expl.score_offset, expl.frames)
        region = strongest_region(assign, dist, err, lv.cell, hw)
        regions.append({"level": lv.level, **region})
        colours = item_colours(lv.num_items)
        a, b, c, d = axes[n]
        a.imshow(frame)
        a.set_title(f"{expl.frame_label(pos)}  score {scores.scores[pos]:.3f}"
                    + ("" if scores.labels is None else (" (anomalous)" if scores.labels[pos] else " (normal)")),
                    fontsize=9)
        b.imshow(overlay_heatmap(frame, err, vmax=vmax))
        b.set_title("error heatmap" if err is not None else "error map not kept", fontsize=9)
        c.imshow(colours[to_frame(assign, lv.cell, hw)], interpolation="nearest")
        present = np.unique(assign)
        counts = np.array([(assign == i).sum() for i in present])
        shown = present[np.argsort(-counts, kind="stable")][:10]
        c.legend([Patch(color=colours[i]) for i in shown], [f"item {i}" for i in shown], fontsize=6,
                 loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        c.set_title(f"{lv.name}: items read ({len(present)} distinct)", fontsize=9)
        im = d.imshow(to_frame(dist, lv.cell, hw), cmap="viridis", interpolation="nearest")
        fig.colorbar(im, ax=d, fraction=0.046, pad=0.02)
        d.set_title("distance to the item read", fontsize=9)
        top, left, h, w = region["box"]
        for ax in (a, b, c, d):
            ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), w, h, fill=False, ec="white", lw=1.5))
            ax.set_xticks([])
            ax.set_yticks([])
        d.set_xlabel(f"box: largest-error cell, item {region['item']}, distance {region['distance']:.3g}", fontsize=8)
    fig.tight_layout()
    return _save(fig, path), regions


def write_all(expl: Explanation, out: Any) -> dict[str, Any]:
    """Every figure and ``explain.json`` into ``out``; returns ``{name: path}`` (frames: a list)."""
    from .summary import summary

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    for lv in expl.levels:
        name = f"atlas{_suffix(expl, lv)}"
        files[name] = str(atlas(lv, out / f"{name}.png", f"{expl.detector_name}, {lv.name}"))
    files["usage"] = str(usage_chart(expl, out / "usage.png"))
    files["usage_timeline"] = str(usage_timeline(expl, out / "usage_timeline.png"))
    files["geometry"] = str(geometry_chart(expl, out / "geometry.png"))
    frames, regions = [], {}
    for pos in expl.chosen:
        label = expl.frame_label(pos)
        path, regions[label] = frame_view(expl, pos, out / "frames" / f"{label.replace(':', '_')}.png")
        frames.append(str(path))
    files["frames"] = frames
    files["json"] = str(write_json_atomic(out / "explain.json", summary(expl, regions, files)))
    return files
