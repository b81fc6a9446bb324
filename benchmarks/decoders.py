"""Compare the video decoders memad could use: PyAV (``av``) and torchcodec.

Encodes a test video with a known number of frames (moving content, so that inter-frame
coding and B-frames are exercised) in two containers: MPEG-4 Part 2 in ``.avi`` (as Avenue
and ShanghaiTech ship) and H.264 with B-frames in ``.mp4``. Then, per decoder and file:

- whether it loads at all on this machine (torchcodec needs FFmpeg's shared libraries
  from the system, which pip cannot install);
- frames decoded in order and their count against the count encoded;
- the frame count the container reports before decoding;
- sequential decode speed (frames/s, RGB uint8 out);
- seeking: ``--seeks`` random frame indices, each decoded alone and compared bit for bit
  with the sequential pass, and the mean time per seek.

torchcodec is run in a subprocess. ``--torchcodec-ffmpeg pyav`` lets it borrow PyAV's
bundled FFmpeg 8 (symlinks under their standard names on ``LD_LIBRARY_PATH``), which is
how its speed was measured here; it says nothing about a fresh machine, where torchcodec
fails to load without a system FFmpeg.

Run (about a minute on 2 CPU cores)::

    python benchmarks/decoders.py --frames 600 --size 640x360 --out benchmarks/results/decoders.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

CODECS = {".avi": ("mpeg4", {}), ".mp4": ("libx264", {"crf": "18", "bf": "2"})}


def make_video(path: Path, frames: int, width: int, height: int, fps: int = 25) -> None:
    """A textured background with a bright square moving across it, ``frames`` frames."""
    import av

    rng = np.random.default_rng(0)
    bg = rng.integers(40, 120, (height // 8, width // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    codec, options = CODECS[path.suffix]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 8_000_000
        for i in range(frames):
            img = bg.copy()
            x = (7 * i) % (width - 40)
            img[height // 3:height // 3 + 40, x:x + 40] = 230
            img[:8, :8] = i % 256  # a frame number the eye can check
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _installed_mb(package: str) -> float:
    from importlib import metadata

    files = metadata.distribution(package).files or []
    total = sum((Path(metadata.distribution(package).locate_file(f)).stat().st_size
                 for f in files if Path(metadata.distribution(package).locate_file(f)).is_file()), 0)
    return round(total / 2**20, 1)


# -- PyAV ------------------------------------------------------------------------------------
def pyav_sequential(path: Path) -> tuple[list[np.ndarray], float, int | None]:
    import av
    from av.video.reformatter import VideoReformatter

    t0 = time.perf_counter()
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        reported = stream.frames or None
        rgb24 = VideoReformatter()  # reused: frame.to_ndarray(format=...) builds a converter per frame
        frames = [rgb24.reformat(f, format="rgb24").to_ndarray() for f in c.decode(stream)]
    return frames, time.perf_counter() - t0, reported


def pyav_seek(path: Path, indices: list[int]) -> tuple[list[np.ndarray], float]:
    """Frame ``k`` = the k-th presentation timestamp: index the packets once (no decoding), then
    seek to the keyframe before each target and decode forward to it."""
    import av

    out = []
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        pts = sorted(p.pts if p.pts is not None else p.dts for p in c.demux(stream) if p.size)
        t0 = time.perf_counter()
        for k in indices:
            c.seek(pts[k], stream=stream, backward=True, any_frame=False)
            for f in c.decode(stream):
                if f.pts is not None and f.pts >= pts[k]:
                    out.append(f.to_ndarray(format="rgb24"))
                    break
        return out, time.perf_counter() - t0


# -- torchcodec (in a subprocess: it may not load) ---------------------------------------------
TORCHCODEC_CHILD = r"""
import json, sys, time
import numpy as np
path, indices, dump = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
from torchcodec.decoders import VideoDecoder
t0 = time.perf_counter()
dec = VideoDecoder(path, seek_mode="exact", dimension_order="NHWC")
n = len(dec)
frames = [dec.get_frames_in_range(s, min(s + 64, n)).data.numpy() for s in range(0, n, 64)]
seq = time.perf_counter() - t0
frames = np.concatenate(frames) if frames else np.zeros((0,))
t0 = time.perf_counter()
seeks = np.stack([dec[k].numpy() for k in indices])
seek = time.perf_counter() - t0
approx = VideoDecoder(path, seek_mode="approximate").metadata.num_frames
np.savez(dump, frames=frames, seeks=seeks)
print(json.dumps({"seconds": seq, "seek_seconds": seek, "reported": approx}))
"""


def ffmpeg_shim_from_pyav(folder: Path) -> str:
    """A folder of symlinks giving PyAV's bundled FFmpeg libraries their standard names."""
    import av

    libs = Path(av.__file__).resolve().parent.parent / "av.libs"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("avutil", "avcodec", "avformat", "avfilter", "avdevice", "swscale", "swresample"):
        (real,) = libs.glob(f"lib{name}-*.so.*")
        major = real.name.split(".so.")[1].split(".")[0]
        link = folder / f"lib{name}.so.{major}"
        if not link.exists():
            link.symlink_to(real)
    return f"{folder}{os.pathsep}{libs}"


def run_torchcodec(path: Path, indices: list[int], shim: str | None, workdir: Path) -> dict:
    env = dict(os.environ)
    if shim:
        env["LD_LIBRARY_PATH"] = shim + os.pathsep + env.get("LD_LIBRARY_PATH", "")
    dump = workdir / f"tc_{path.suffix[1:]}.npz"
    done = subprocess.run([sys.executable, "-c", TORCHCODEC_CHILD, str(path), json.dumps(indices), str(dump)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        # The useful line: which FFmpeg library the dynamic loader could not find.
        missing = sorted({line.split(":")[1].strip() for line in done.stderr.splitlines()
                          if "cannot open shared object file" in line})
        return {"loads": False, "error": f"missing shared libraries: {', '.join(missing)}" if missing
                else done.stderr.strip().splitlines()[-1]}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    data = np.load(dump)
    out.update(loads=True, frames=list(data["frames"]), seek_frames=list(data["seeks"]))
    return out


def compare(path: Path, encoded: int, args, workdir: Path, shim: str | None) -> dict:
    rng = np.random.default_rng(1)
    indices = sorted(rng.choice(encoded, size=min(args.seeks, encoded), replace=False).tolist())
    rows = {}
    frames, seconds, reported = pyav_sequential(path)
    seek_frames, seek_seconds = pyav_seek(path, indices)
    reference = frames
    results = {"pyav": dict(loads=True, frames=frames, seconds=seconds, reported=reported, seek_frames=seek_frames,
                            seek_seconds=seek_seconds)}
    results["torchcodec"] = run_torchcodec(path, indices, shim, workdir)
    for name, r in results.items():
        if not r["loads"]:
            rows[name] = {"loads": False, "error": r["error"]}
            continue
        got = r["frames"]
        same_as_pyav = len(got) == len(reference) and all(np.array_equal(a, b) for a, b in zip(got, reference))
        seek_exact = all(np.array_equal(s, got[k]) for s, k in zip(r["seek_frames"], indices) if k < len(got))
        rows[name] = {"loads": True, "decoded": len(got), "encoded": encoded, "exact_count": len(got) == encoded,
                      "reported_before_decoding": r["reported"], "fps": round(len(got) / r["seconds"], 1),
                      "seek_ms": round(1000 * r["seek_seconds"] / len(indices), 2), "seeks_exact": seek_exact,
                      "frames_equal_pyav": same_as_pyav}
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT (even numbers)")
    parser.add_argument("--seeks", type=int, default=30)
    parser.add_argument("--torchcodec-ffmpeg", choices=("system", "pyav"), default="pyav",
                        help="where torchcodec finds FFmpeg: the system's, or PyAV's bundled copy (see the docstring)")
    parser.add_argument("--out", type=Path, default=None, help="write the results here as JSON")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    import av

    libavcodec = ".".join(map(str, av.library_versions["libavcodec"]))
    report: dict = {"pyav_version": av.__version__, "ffmpeg_in_pyav": libavcodec,
                    "frames": args.frames, "size": [width, height], "threads": os.cpu_count()}
    try:
        from importlib import metadata

        report["torchcodec_version"] = metadata.version("torchcodec")
        report["installed_mb"] = {"av": _installed_mb("av"), "torchcodec": _installed_mb("torchcodec")}
    except Exception as exc:  # torchcodec not installed: still compare what loads
        report["torchcodec_version"] = f"not installed ({exc})"
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # First: can torchcodec load with only what pip installed?
        probe = workdir / "probe.avi"
        make_video(probe, 10, 64, 48)
        report["torchcodec_without_system_ffmpeg"] = run_torchcodec(probe, [0], None, workdir).get("error", "loads")
        shim = ffmpeg_shim_from_pyav(workdir / "ffmpeg_shim") if args.torchcodec_ffmpeg == "pyav" else None
        report["torchcodec_ffmpeg"] = args.torchcodec_ffmpeg
        for suffix in CODECS:
            path = workdir / f"test{suffix}"
            make_video(path, args.frames, width, height)
            report[f"{suffix[1:]} ({CODECS[suffix][0]})"] = compare(path, args.frames, args, workdir, shim)
    text = json.dumps(report, indent=1, default=lambda o: float(o) if isinstance(o, Fraction) else str(o))
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
