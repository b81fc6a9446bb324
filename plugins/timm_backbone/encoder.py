"""Any timm model with ``features_only`` support as a memad encoder.

The encoder reports timm's ``feature_info`` channels and reductions, so memad's U-Net
decoder (``mnad_unet``) is sized from them; stacked input frames enter through
``in_chans``. Weights are random unless a local file is given: nothing is downloaded.
"""

from __future__ import annotations

import difflib
import pickle
from pathlib import Path

from torch import Tensor, nn

from memad import Encoder


def _unknown_model_message(name: str) -> str:
    import timm

    names = timm.list_models()
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"encoder.model: unknown timm model {name!r}{hint} (see timm.list_models())"


class TimmEncoder(Encoder):
    """A timm backbone's feature pyramid, shallowest first, the deepest map being the bottleneck.

    Args:
        in_channels: frames x channels, filled in by memad (timm's ``in_chans``).
        model: a timm model name, e.g. ``resnet18``, ``efficientnet_b0``, ``convnext_atto``.
        out_indices: which feature levels to return (timm's ``out_indices``); default all.
        weights: a local weights file of the timm model (``.safetensors``, or a ``.pth``/``.pt``
            read with ``torch.load(weights_only=True)``), e.g. ImageNet weights saved once with
            ``torch.save(timm.create_model(name, pretrained=True).state_dict(), path)``. timm
            drops the classifier and adapts the first conv to ``in_channels``. Default: random init.
        model_args: extra keyword arguments for ``timm.create_model`` (``drop_path_rate``...).

    >>> enc = TimmEncoder(in_channels=12, model="resnet18")
    >>> enc.channels, enc.reductions
    ([64, 64, 128, 256, 512], [2, 4, 8, 16, 32])
    """

    def __init__(
        self,
        in_channels: int,
        model: str = "resnet18",
        out_indices: list[int] | None = None,
        weights: str | None = None,
        model_args: dict | None = None,
    ):
        super().__init__()
        import timm  # imported here: it costs seconds, and `memad list` should not pay them

        if not timm.is_model(model):
            raise ValueError(_unknown_model_message(model))
        kwargs = dict(model_args or {})
        for reserved in ("features_only", "pretrained", "in_chans", "out_indices", "pretrained_cfg_overlay"):
            if reserved in kwargs:
                raise ValueError(f"encoder.model_args: {reserved!r} is set by the encoder itself; remove it")
        if out_indices is not None:
            kwargs["out_indices"] = tuple(out_indices)
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise ValueError(f"encoder.weights: no such file {str(path)!r}")
            # timm reads the file (safetensors, or torch.load with weights_only=True), drops the
            # classifier and adapts the first conv to in_chans; no network access is involved.
            kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        try:
            self.body: nn.Module = timm.create_model(
                model, features_only=True, pretrained=weights is not None, in_chans=in_channels, **kwargs)
        except (RuntimeError, KeyError, AssertionError, pickle.UnpicklingError) as exc:
            what = f"loading {weights!r} into " if weights is not None else ""
            raise ValueError(f"encoder: {what}timm model {model!r} (features_only) failed: {exc}") from exc
        self.model_name = model
        self.channels = list(self.body.feature_info.channels())
        self.reductions = list(self.body.feature_info.reduction())

    def forward(self, x: Tensor) -> list[Tensor]:
        return list(self.body(x))

    def extra_repr(self) -> str:
        return f"model={self.model_name!r}, channels={self.channels}, reductions={self.reductions}"
