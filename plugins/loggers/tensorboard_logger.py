"""``--logger tensorboard``: TensorBoard event files in ``FOLDER/tensorboard/RUN`` (view them with
``tensorboard --logdir FOLDER/tensorboard``).

Scalars as logged (``train/loss``, ``epoch/lr``, ``eval/frame_auroc``...); the config as the HParams
plugin's session (so the HParams tab lines runs up with their final ``eval/`` metrics) and as a text
table; images (``.png``/``.jpg``) as images and text files as text; the checkpoint's path as text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from memad.tracking import Logger, require

TEXT_SUFFIXES = (".json", ".yaml", ".yml", ".md", ".txt", ".csv")
#: Text artifacts longer than this are cut (TensorBoard shows text, not files).
MAX_TEXT = 100_000


class TensorBoardLogger(Logger):
    """TensorBoard event files in FOLDER/tensorboard/RUN (scalars, the config as hparams, plots as images)."""

    def __init__(self, folder: Path, run: str, experiment: str, tags: Mapping[str, str]):
        super().__init__(folder, run, experiment, tags)
        self.check()
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = self.folder / "tensorboard" / run
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self._params: dict[str, Any] = {}
        self._final: dict[str, float] = {}
        if self.tags:
            self.writer.add_text("tags", _table(self.tags))

    @classmethod
    def check(cls) -> None:
        require("tensorboard", "tensorboard")

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._params.update(params)
        self.writer.add_text("config", _table(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
            if key.startswith("eval/"):
                self._final[key] = value

    def log_artifact(self, path: Path) -> None:
        path = Path(path)
        if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            import numpy as np
            from PIL import Image

            with Image.open(path) as img:
                self.writer.add_image(f"artifacts/{path.stem}", np.asarray(img.convert("RGB")), dataformats="HWC")
        elif path.suffix.lower() in TEXT_SUFFIXES:
            text = path.read_text(errors="replace")[:MAX_TEXT]
            self.writer.add_text(f"artifacts/{path.name}", "    " + text.replace("\n", "\n    "))
        else:
            self.writer.add_text(f"artifacts/{path.name}", str(path))

    def log_reference(self, name: str, path: str) -> None:
        self.writer.add_text(name, str(path))

    def close(self, failed: bool = False) -> None:
        if self._params:  # the HParams session: the config and the final metrics' tags
            from torch.utils.tensorboard.summary import hparams

            exp, start, end = hparams(self._params, self._final)
            writer = self.writer._get_file_writer()
            for summary in (exp, start, end):
                writer.add_summary(summary)
        self.writer.flush()
        self.writer.close()


def _table(values: Mapping[str, Any]) -> str:
    """A Markdown table of ``values`` (TensorBoard renders text summaries as Markdown)."""
    rows = "\n".join(f"| {k} | {str(v).replace('|', '/')} |" for k, v in values.items())
    return "| key | value |\n|---|---|\n" + rows
