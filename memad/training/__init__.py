"""Training a network: the loop (:mod:`.loop`), with resumable per-epoch checkpoints."""

from .loop import CHECKPOINT_NAME, SHAPE_FIELDS, TrainResult, check_frames, shape_difference, train, write_memory

__all__ = ["train", "TrainResult", "check_frames", "write_memory", "shape_difference", "CHECKPOINT_NAME",
           "SHAPE_FIELDS"]
