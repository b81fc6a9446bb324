"""The same seed on CPU gives the same scores, bit for bit: twice in one process, and in two processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import memad
from memad.data.synthetic import SyntheticSpec, make_synthetic

# A small synthetic set and a tiny MNAD prediction model whose memory is written at test time
# (the sequential path, the one with the most state).
SPEC = SyntheticSpec(train_videos=2, test_videos=2, frames_per_video=24, seed=5)
OVERRIDES = {
    "data": {"image_size": 32, "channels": 1},
    "encoder": {"widths": [8, 16, 32, 64]},
    "train": {"epochs": 2, "batch_size": 4, "max_steps_per_epoch": 4, "progress": False, "device": "cpu"},
}


def run_once(seed: int) -> np.ndarray:
    """Build, fit and score; returns the anomaly scores and the raw per-frame PSNR and distance."""
    train = make_synthetic("training", (32, 32), 1, 32, SPEC)
    test = make_synthetic("testing", (32, 32), 1, 32, SPEC)
    det = memad.build("mnad_pred", **OVERRIDES, **{"train.seed": seed})
    det.fit(train)
    result = det.score(test)
    return np.stack([result.scores, result.stats.psnr, result.stats.distance])


def test_same_seed_same_scores_in_one_process():
    first, second = run_once(seed=0), run_once(seed=0)
    assert first.shape[1] == 2 * (SPEC.frames_per_video - 4)  # every predicted frame of both videos
    assert np.std(first[0]) > 0
    np.testing.assert_array_equal(first, second)


def test_another_seed_gives_other_scores():
    """The control: the comparison above can tell two runs apart."""
    assert not np.array_equal(run_once(seed=0)[1], run_once(seed=1)[1])


def test_same_seed_same_scores_in_two_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    repo = Path(__file__).resolve().parents[1]
    procs = [subprocess.Popen([sys.executable, "-m", "tests.test_determinism", str(tmp_path / f"scores{i}.npy")],
                              cwd=repo, env=env, stderr=subprocess.PIPE) for i in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    first, second = np.load(tmp_path / "scores0.npy"), np.load(tmp_path / "scores1.npy")
    assert np.std(first[0]) > 0
    np.testing.assert_array_equal(first, second)


if __name__ == "__main__":  # one of the two processes above
    np.save(sys.argv[1], run_once(seed=0))
