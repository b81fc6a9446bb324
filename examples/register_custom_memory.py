"""Register a memory in code and use it by name: no package, no entry point.

The memory below is a vector-quantising memory (as in VQ-VAE): each query is replaced by
its nearest item, the items learn by gradient through a codebook loss, the encoder is
kept close to them by a commitment loss, and gradients pass the quantisation straight
through. Once registered, ``memory="nearest_item"`` works in any preset.

    python examples/register_custom_memory.py            # 64x64, 3 epochs (a few minutes on CPU)
    python examples/register_custom_memory.py --tiny     # seconds: 32x32, a few steps
    python examples/register_custom_memory.py --plot scores.png
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import memad


@memad.register("memory", "nearest_item")
class NearestItemMemory(memad.Memory):
    """Each query reads its nearest item (straight-through), with VQ-VAE's codebook and commitment losses.

    Args:
        in_channels: query dimension, filled in by memad.
        items: number of items.
        commitment: weight of the commitment loss (beta in VQ-VAE).
    """

    def __init__(self, in_channels: int, items: int = 32, commitment: float = 0.25):
        super().__init__()
        if items < 1:
            raise ValueError(f"memory.items: expected at least 1, got {items}")
        self.commitment = commitment
        self.items = nn.Parameter(torch.randn(items, in_channels) * 0.1)

    def out_channels(self, in_channels: int) -> int:
        return in_channels

    def forward(self, features: Tensor) -> memad.MemoryOutput:
        b, c, h, w = features.shape
        q = features.float().permute(0, 2, 3, 1).reshape(-1, c)
        nearest = torch.cdist(q, self.items).argmin(dim=1)
        chosen = self.items[nearest]
        codebook = F.mse_loss(chosen, q.detach())
        commit = F.mse_loss(q, chosen.detach())
        read = q + (chosen - q).detach()  # straight-through: the decoder's gradient reaches the encoder
        per_sample = (q - chosen).pow(2).reshape(b, -1).mean(dim=1)
        return memad.MemoryOutput(
            read=read.view(b, h, w, c).permute(0, 3, 1, 2).to(features.dtype),
            loss=codebook + self.commitment * commit,
            distance=per_sample.detach(),  # lets the `mnad` and `distance` scorers use it
            logs={"codebook": codebook.detach(), "commit": commit.detach()},
        )


def plot_scores(scores, path: str) -> None:
    """Anomaly score per frame, video by video, over the ground-truth anomalous frames."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    videos = np.unique(scores.video)
    fig, axes = plt.subplots(len(videos), 1, figsize=(8, 1.4 * len(videos)), sharex=True, squeeze=False)
    for ax, v in zip(axes[:, 0], videos):
        sel = scores.video == v
        x = np.arange(sel.sum())
        ax.fill_between(x, 0, scores.labels[sel], color="tab:red", alpha=0.2, step="mid", label="anomalous")
        ax.plot(x, scores.scores[sel], color="tab:blue", lw=1, label="score")
        ax.set_ylabel(scores.video_names[v], rotation=0, labelpad=15)
        ax.set_ylim(0, 1.05)
    axes[0, 0].legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("scored frame")
    fig.suptitle("nearest_item memory on synthetic: per-video anomaly scores")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="32x32 frames and a few steps: finishes in seconds")
    parser.add_argument("--preset", default="mnad_recon", help="any preset; its memory is replaced")
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--plot", help="save a per-video score plot to this PNG")
    args = parser.parse_args()

    if args.tiny:
        size, widths, epochs, steps = 32, [8, 16, 32, 64], 1, 4
    else:
        size, widths, epochs, steps = 64, [16, 32, 64, 128], 3, 100
    det = memad.build(
        args.preset,
        memory={"name": "nearest_item", "items": 32},
        data={"image_size": size},
        encoder={"widths": widths},
        train={"epochs": epochs, "max_steps_per_epoch": steps, "device": "cpu", "progress": not args.tiny},
        test={"mode": "batched"},
    )
    print(f"memory 'nearest_item' from {memad.list_components('memory')['nearest_item']}: {det.memory}")
    det.fit(args.data)
    scores = det.score(args.data)
    metrics = scores.metrics()
    for key in ("frame_auroc", "frame_auroc_macro", "aupr", "eer", "pixel_auroc"):
        value = metrics[key]
        print(f"{key:>18}: {'n/a' if value is None else f'{value:.4f}'}")
    if args.plot:
        plot_scores(scores, args.plot)


if __name__ == "__main__":
    main()
