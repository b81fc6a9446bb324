"""Where and with what a result was measured: device, library versions, threads, git commit."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any, Sequence

import torch

import memad

HERE = Path(__file__).resolve().parents[1]  # benchmarks/
REPO = HERE.parent
RESULTS = HERE / "results"
DOC = REPO / "docs" / "benchmarks.md"


def git_state(repo: Path = REPO) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of ``repo``; ``MEMAD_GIT_COMMIT`` when there is no .git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                             check=True, timeout=30).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                capture_output=True, text=True, check=True, timeout=30).stdout
        return {"commit": sha, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        # A copy of the working tree without .git (e.g. on a remote GPU machine): the caller may say.
        return {"commit": os.environ.get("MEMAD_GIT_COMMIT") or None, "dirty": None}


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else platform.processor(), else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def environment(device: torch.device) -> dict[str, Any]:
    """Device name, library versions, thread count and git state, recorded with every result."""
    env: dict[str, Any] = {
        "device_type": device.type,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memad": memad.__version__,
        "git": git_state(),
    }
    if device.type == "cuda":
        env["device"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    else:
        threads = env["torch_threads"]
        env["device"] = f"CPU: {env['cpu']} ({threads} thread{'s' if threads != 1 else ''} of {env['cpu_count']} cores)"
    return env


def device_slug(device: torch.device) -> str:
    """A short file-name-safe device label: ``cpu``, ``nvidia-h100-80gb-hbm3``."""
    if device.type != "cuda":
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)




def require_files(parser: Any, paths: Sequence[Path], what: str = "checkpoint") -> None:
    """``parser.error`` naming every path of ``paths`` that is not a file, before any work starts."""
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        parser.error(f"no such {what}: {', '.join(missing)}")


def write_result(path: Path, result: dict[str, Any]) -> None:
    """``result`` as indented JSON at ``path`` (folders made), and a line saying so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
