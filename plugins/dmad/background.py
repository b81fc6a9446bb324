"""The scene's background image that DMAD-PDM's output shows wherever its warped foreground mask is off.

The official code ships one background image per dataset (made offline from the training frames),
learns it further through an MSE to the frames, and uses it detached in the output. memad's datasets
ship none and a component never sees the dataset, so the background here is estimated by the model
itself: during its first ``batches`` training batches, it is set to the per-pixel median over those
batches of each batch's per-pixel median of its input frames; from then on it learns by gradient (the
decoder's background loss). An image file given instead (``path``) starts it and skips the estimate.
The estimate's progress is a buffer, so a saved or resumed model does not estimate again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from memad import distributed


def read_background(path: str | Path, channels: int, size_hw: tuple[int, int]) -> Tensor:
    """An image file as a ``(channels, H, W)`` tensor in [-1, 1], resized (bilinear) to ``size_hw``."""
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB").resize((size_hw[1], size_hw[0]), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise ValueError(f"decoder.background: cannot read {str(path)!r} as an image ({exc})") from exc
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(arr.copy()) / 127.5 - 1.0


class Background(nn.Module):
    """A learned ``(channels, H, W)`` background (``param``), estimated from the first training batches.

    Args:
        channels: frame channels.
        size_hw: frame height and width.
        path: an image file to start from instead of the estimate.
        batches: how many training batches the estimate takes (its per-batch medians' median).
    """

    def __init__(self, channels: int, size_hw: tuple[int, int], path: str | None = None, batches: int = 8):
        super().__init__()
        if batches < 1:
            raise ValueError(f"decoder.background_batches: expected at least 1, got {batches}")
        start = read_background(path, channels, size_hw) if path else torch.zeros(channels, *size_hw)
        self.param = nn.Parameter(start)
        self.batches = batches
        self.register_buffer("seen", torch.tensor(batches if path else 0, dtype=torch.long))
        self._medians: list[Tensor] = []
        self._done = bool(path)

    def pending(self) -> bool:
        """True while the estimate still takes training batches."""
        if not self._done:
            self._done = int(self.seen) >= self.batches
        return not self._done

    @torch.no_grad()
    def observe(self, frames: Tensor) -> None:
        """In training, during the estimate: fold the per-pixel median of ``frames`` ``(B, F, C, H, W)`` in."""
        if not self.training or not self.pending():
            return
        if not self._medians and int(self.seen) > 0:  # resumed mid-estimate: what was estimated counts once
            self._medians.append(self.param.detach().clone())
        self._medians.append(frames.detach().float().flatten(0, 1).median(dim=0).values)
        estimate = torch.stack(self._medians).median(dim=0).values
        if distributed.is_distributed():  # every rank starts from rank 0's estimate
            torch.distributed.broadcast(estimate, 0)
        self.param.copy_(estimate.to(self.param.dtype))
        self.seen += 1
        if int(self.seen) >= self.batches:
            self._medians.clear()
            self._done = True

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._done, self._medians = False, []  # re-read ``seen`` on the next training batch

    def image(self, repeat: int = 1) -> Tensor:
        """``(1, channels * repeat, H, W)``: the background, repeated for a reconstruction of several frames."""
        return self.param.repeat(repeat, 1, 1)[None]


__all__ = ["Background", "read_background"]
