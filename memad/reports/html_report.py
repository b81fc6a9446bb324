"""The report of ``memad detect``: one self-contained HTML page that works offline.

The score timeline of the video (every scored frame, the threshold, the anomalous events
shaded) is drawn by a few lines of plain JavaScript on a canvas; clicking a point of it, or
an event in the list, shows that frame with its error heatmap and, when the report has the
memory's reads (:mod:`memad.reports.memory_view`), the box of its most anomalous region, the item
read there with its exemplars, and that read's distance against the item's distances on normal
frames (each item's exemplars are in the page once, whatever the number of frames). Everything is inside the one
file: styles, script, the data as JSON and the frames as base64 JPEG thumbnails (no CDN, no
other file). Memory stays bounded on long videos: at most ``max_images`` thumbnails are kept,
frames at an even stride (the stride doubles whenever the cap is reached) plus the
highest-scoring ones; the view says which frame is shown when the clicked one has none.
"""

from __future__ import annotations

import array
import base64
import heapq
import html
import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ..fileio import write_text_atomic

__all__ = ["ReportBuilder"]


def _jpeg(image: np.ndarray, width: int) -> str:
    img = Image.fromarray(image)
    if img.width > width:
        img = img.resize((width, max(1, round(img.height * width / img.width))), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=82)
    return base64.b64encode(buf.getvalue()).decode("ascii")


class ReportBuilder:
    """Collects a video's scored frames (and some thumbnails), then writes the page.

    Args:
        title: the page's heading.
        threshold: the calibrated threshold, drawn on the timeline.
        fps: frames per second, to show times.
        max_images: most thumbnails kept (half at an even stride, half the highest scores).
        width: thumbnail width in pixels.
        memory: the memory section (:meth:`memad.reports.memory_view.MemoryView.payload`), or None.
        memory_note: why there is no memory section, shown instead.
        caveat: a sentence on the calibration shown under the heading (its videos disagree), or None.
    """

    def __init__(self, title: str, *, threshold: float, fps: float = 25.0, max_images: int = 400, width: int = 480,
                 memory: dict[str, Any] | None = None, memory_note: str | None = None, caveat: str | None = None):
        self.title, self.threshold, self.fps, self.width = title, float(threshold), float(fps), int(width)
        self.memory, self.memory_note, self.caveat = memory, memory_note, caveat
        self.regions: list[list[list[float]] | None] = []
        self.frame, self.score, self.smoothed = array.array("l"), array.array("d"), array.array("d")
        self.decision = array.array("b")
        self.stride, self.cap = 1, max(2, max_images // 2)
        self.strided: dict[int, str] = {}
        self.top: list[tuple[float, int, str]] = []  # a min-heap of the highest-scoring frames

    def add(self, index: int, score: float, smoothed: float, decision: int, image: np.ndarray | None,
            regions: list[list[float]] | None = None) -> None:
        """One scored frame; ``image`` is the frame with its heatmap (uint8 ``(H, W, 3)``), or None; ``regions``
        per memory level ``[item, distance, top, left, height, width]`` of its most anomalous region."""
        self.frame.append(int(index))
        self.regions.append(regions)
        self.score.append(float(score))
        self.smoothed.append(float(smoothed))
        self.decision.append(int(decision))
        if image is None:
            return
        n = len(self.frame) - 1
        if n % self.stride == 0:
            self.strided[int(index)] = _jpeg(image, self.width)
            if len(self.strided) > self.cap:  # keep every other one: the stride doubles
                self.stride *= 2
                kept = sorted(self.strided)[::2]
                self.strided = {k: self.strided[k] for k in kept}
        if len(self.top) < self.cap or score > self.top[0][0]:
            item = (float(score), int(index), _jpeg(image, self.width))
            if len(self.top) < self.cap:
                heapq.heappush(self.top, item)
            else:
                heapq.heapreplace(self.top, item)

    def images(self) -> dict[int, str]:
        return {**self.strided, **{i: img for _, i, img in self.top}}

    def _memory_shown(self) -> dict[str, Any] | None:
        """The memory section with the exemplars of the items some frame read (once each), the others left out."""
        if not self.memory:
            return None
        used: list[set[int]] = [set() for _ in self.memory["levels"]]
        for regions in self.regions:
            for level, region in enumerate(regions or []):
                used[level].add(int(region[0]))
        return {**self.memory, "levels": [{**lv, "exemplars": [e if m in used[n] else None
                                                                for m, e in enumerate(lv["exemplars"])]}
                                          for n, lv in enumerate(self.memory["levels"])]}

    def write(self, path: str | Path, events: Sequence[dict[str, Any]], meta: dict[str, Any] | None = None) -> Path:
        """Write the page to ``path`` (atomically)."""
        data = {"frame": list(self.frame), "score": [round(v, 5) for v in self.score],
                "smoothed": [round(v, 5) for v in self.smoothed], "decision": list(self.decision),
                "threshold": self.threshold, "fps": self.fps, "events": list(events),
                "images": {str(k): v for k, v in sorted(self.images().items())},
                "memory": self._memory_shown(), "regions": self.regions if self.memory else None,
                "memory_note": self.memory_note, "caveat": self.caveat}
        page = (_PAGE.replace("__TITLE__", html.escape(self.title))
                .replace("__META__", json.dumps(meta or {}, default=str).replace("</", "<\\/"))
                .replace("__DATA__", json.dumps(data).replace("</", "<\\/")))
        return write_text_atomic(path, page)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#16181d;color:#e8e8e8}
header{padding:14px 22px;background:#20232a;border-bottom:1px solid #333}
h1{font-size:19px;margin:0 0 4px}
#summary{color:#aab;font-size:13px}
#caveat{color:#ffb74d;font-size:13px;margin-top:4px}
main{display:grid;grid-template-columns:minmax(0,3fr) minmax(280px,2fr);gap:18px;padding:18px 22px}
#timeline{width:100%;height:260px;background:#1d2026;border:1px solid #333;border-radius:6px;cursor:crosshair}
#view{background:#1d2026;border:1px solid #333;border-radius:6px;padding:10px}
#view #frame{width:100%;border-radius:4px;display:block;background:#000;min-height:60px}
#caption{font-size:13px;margin-top:8px;color:#ccd}
table{border-collapse:collapse;width:100%;font-size:13px;margin-top:14px}
td,th{padding:4px 8px;border-bottom:1px solid #2c2f36;text-align:left}
tr.ev{cursor:pointer} tr.ev:hover{background:#2a2e37}
.legend span{display:inline-block;margin-right:14px;font-size:12px;color:#aab}
.sw{display:inline-block;width:12px;height:3px;vertical-align:middle;margin-right:5px}
#wrap{position:relative}
#region{position:absolute;box-sizing:border-box;border:2px solid #fff;box-shadow:0 0 0 1px #000;
  pointer-events:none;display:none}
#memory{font-size:13px;margin-top:10px;color:#ccd}
.lvl{border-top:1px solid #333;padding-top:8px;margin-top:8px}
.ex{height:56px;image-rendering:pixelated;display:block;margin:6px 0;border-radius:3px;max-width:100%}
.chip{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;margin-right:6px}
.muted{color:#889}
</style></head><body>
<header><h1>__TITLE__</h1><div id="summary"></div><div id="caveat"></div></header>
<main>
<section>
<canvas id="timeline"></canvas>
<div class="legend"><span><i class="sw" style="background:#4fc3f7"></i>score</span>
<span><i class="sw" style="background:#aed581"></i>smoothed</span>
<span><i class="sw" style="background:#ff8a65"></i>threshold</span>
<span><i class="sw" style="background:rgba(244,67,54,.5);height:10px"></i>event</span>
<span>click the timeline to see a frame</span></div>
<table id="events"><thead><tr><th>event</th><th>frames</th><th>time (s)</th><th>peak score</th><th>peak frame</th></tr></thead><tbody></tbody></table>
</section>
<section id="view"><div id="wrap"><img id="frame" alt="frame with its error heatmap">
<div id="region"></div></div><div id="caption">no frame selected</div><div id="memory"></div></section>
</main>
<script id="meta" type="application/json">__META__</script>
<script id="data" type="application/json">__DATA__</script>
<script>
const D = JSON.parse(document.getElementById('data').textContent);
const frameImg = document.getElementById('frame');
frameImg.addEventListener('load', () => {  // at most 380 px tall, so the memory panel stays in view
  document.getElementById('wrap').style.maxWidth = `${380 * frameImg.naturalWidth / frameImg.naturalHeight}px`;
});
const canvas = document.getElementById('timeline'), ctx = canvas.getContext('2d');
const stored = Object.keys(D.images).map(Number).sort((a, b) => a - b);
const n = D.frame.length, first = n ? D.frame[0] : 0, last = n ? D.frame[n - 1] : 1;
let lo = Math.min(D.threshold, ...D.score), hi = Math.max(D.threshold, ...D.score);
const pad = (hi - lo) * 0.08 || 1; lo -= pad; hi += pad;
let selected = null;
document.getElementById('summary').textContent =
  `${n} scored frames, ${D.events.length} anomalous event(s), threshold ${D.threshold.toFixed(4)}, ` +
  `${stored.length} frames stored for viewing`;
document.getElementById('caveat').textContent = D.caveat ? D.caveat[0].toUpperCase() + D.caveat.slice(1) + '.' : '';
function xOf(f, w) { return 40 + (f - first) / Math.max(last - first, 1) * (w - 50); }
function yOf(v, h) { return 10 + (hi - v) / (hi - lo) * (h - 30); }
function draw() {
  const w = canvas.width = canvas.clientWidth * devicePixelRatio, h = canvas.height = canvas.clientHeight * devicePixelRatio;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = 'rgba(244,67,54,0.28)';
  for (const e of D.events) ctx.fillRect(xOf(e.start, w), 0, Math.max(xOf(e.end, w) - xOf(e.start, w), 2), h - 20);
  ctx.strokeStyle = '#ff8a65'; ctx.setLineDash([6, 4]); ctx.beginPath();
  ctx.moveTo(40, yOf(D.threshold, h)); ctx.lineTo(w - 10, yOf(D.threshold, h)); ctx.stroke(); ctx.setLineDash([]);
  for (const [key, colour] of [['score', '#4fc3f7'], ['smoothed', '#aed581']]) {
    ctx.strokeStyle = colour; ctx.lineWidth = devicePixelRatio; ctx.beginPath();
    D[key].forEach((v, i) => { const x = xOf(D.frame[i], w), y = yOf(v, h); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
    ctx.stroke();
  }
  ctx.fillStyle = '#aab'; ctx.font = `${11 * devicePixelRatio}px sans-serif`;
  ctx.fillText(String(first), 40, h - 4); ctx.fillText(String(last), w - 60, h - 4);
  ctx.fillText(hi.toFixed(2), 2, 18); ctx.fillText(lo.toFixed(2), 2, h - 24);
  if (selected !== null) {
    ctx.strokeStyle = '#fff'; ctx.beginPath(); ctx.moveTo(xOf(selected, w), 0); ctx.lineTo(xOf(selected, w), h - 20); ctx.stroke();
  }
}
function nearestStored(f) {
  let best = null;
  for (const s of stored) if (best === null || Math.abs(s - f) < Math.abs(best - f)) best = s;
  return best;
}
function show(f) {
  const s = nearestStored(f); if (s === null) return;
  selected = s; const i = D.frame.indexOf(s);
  document.getElementById('frame').src = 'data:image/jpeg;base64,' + D.images[String(s)];
  const t = (s / D.fps).toFixed(2);
  document.getElementById('caption').textContent =
    `frame ${s} (${t} s): score ${D.score[i].toFixed(4)}, ${D.decision[i] ? 'ANOMALOUS' : 'normal'}` +
    (s !== f ? ` (nearest stored frame to the clicked frame ${f})` : '');
  document.getElementById('frame').dataset.frame = String(s);
  showMemory(i);
  draw();
}
function verdict(d, q) {
  if (!q) return 'no normal read of this item to compare with';
  const [q50, q90, q99] = q;
  return d > q99 ? `above the 99th percentile of its normal reads (${(d / q99).toPrecision(2)}x it)`
       : d > q90 ? 'between the 90th and 99th percentile' : d > q50 ? 'between the median and the 90th percentile'
       : 'below the median of its normal reads';
}
function bar(d, q) {  // a log scale: a far read and the normal quantiles both stay readable
  if (!q || !(d > 0) || !(q[0] > 0)) return '';
  const lo = Math.log(Math.min(d, q[0]) / 2), hi = Math.log(Math.max(d, q[2]) * 1.5);
  const X = v => 4 + (Math.log(v) - lo) / (hi - lo) * 252;
  let ticks = '';
  q.forEach((v, k) => {
    ticks += `<line x1="${X(v).toFixed(1)}" x2="${X(v).toFixed(1)}" y1="6" y2="22" stroke="#aab"/>`;
    const crowded = k === 1 && Math.min(X(v) - X(q[0]), X(q[2]) - X(v)) < 22;  // the 90% label only where it fits
    if (!crowded && !(k === 2 && X(v) - X(q[0]) < 22)) {
      ticks += `<text x="${X(v).toFixed(1)}" y="33" fill="#889" font-size="9" text-anchor="middle">` +
               `${['50', '90', '99'][k]}%</text>`;
    }
  });
  return '<svg id="dbar" width="260" height="36">' +
    `<rect x="4" y="10" width="${(X(q[2]) - 4).toFixed(1)}" height="8" fill="#2e4d3a"/>${ticks}` +
    `<circle cx="${X(d).toFixed(1)}" cy="14" r="5" fill="${d > q[2] ? '#f44336' : '#aed581'}"/></svg>`;
}
function level(r, l, box) {
  const L = D.memory.levels[l], [item, d, top, left, h, w] = r, q = L.distance[item], ex = L.exemplars[item];
  const colour = L.colours[item];
  if (l === 0) Object.assign(box.style, {display: 'block', top: `${100 * top}%`, left: `${100 * left}%`,
                                         width: `${100 * w}%`, height: `${100 * h}%`, borderColor: colour});
  const shots = ex ? `<img class="ex" alt="item ${item} exemplars" src="data:image/png;base64,${ex}">` +
                     '<span class="muted">its nearest crops on normal frames</span>'
                   : '<div class="muted">no exemplar</div>';
  const normal = q ? ` <span class="muted">(median ${q[0].toPrecision(3)}, 99% ${q[2].toPrecision(3)})</span>` : '';
  return `<div class="lvl" data-level="${l}" data-item="${item}">` +
    `<span class="chip" style="background:${colour}"></span><b>${L.name}: item ${item}</b> ` +
    `<span class="muted">(${(100 * L.share[item]).toFixed(1)}% of normal reads)</span>${shots}` +
    `<div>distance <b class="dist">${d.toPrecision(3)}</b>: ${verdict(d, q)}${normal}</div>${bar(d, q)}</div>`;
}
function showMemory(i) {
  const panel = document.getElementById('memory'), box = document.getElementById('region');
  box.style.display = 'none';
  if (!D.memory) { panel.textContent = D.memory_note ? `memory: ${D.memory_note}` : ''; return; }
  const regs = D.regions[i];
  if (!regs) { panel.textContent = 'memory: no read recorded for this frame'; return; }
  const rows = regs.map((r, l) => level(r, l, box)).join('');
  const note = '<span class="muted">(the memory cell of largest error, boxed)</span>';
  panel.innerHTML = `<b>Most anomalous region</b> ${note}${rows}`;
}
canvas.addEventListener('click', ev => {
  const r = canvas.getBoundingClientRect(), w = canvas.width, x = (ev.clientX - r.left) * devicePixelRatio;
  const f = Math.round(first + (x - 40) / (w - 50) * Math.max(last - first, 1));
  show(Math.min(Math.max(f, first), last));
});
const body = document.querySelector('#events tbody');
D.events.forEach(e => {
  const tr = document.createElement('tr'); tr.className = 'ev';
  tr.innerHTML = `<td>${e.event}</td><td>${e.start}–${e.end}</td><td>${(e.start / D.fps).toFixed(1)}–${(e.end / D.fps).toFixed(1)}</td>` +
                 `<td>${e.peak_score.toFixed(4)}</td><td>${e.peak_frame}</td>`;
  tr.addEventListener('click', () => show(e.peak_frame)); body.appendChild(tr);
});
window.addEventListener('resize', draw);
draw();
if (n) show(D.events.length ? D.events[0].peak_frame : D.frame[0]);
</script></body></html>
"""
