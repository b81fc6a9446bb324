"""The entry point memad loads: one pluggy hook registering the memory and a preset."""

import memad

from .memory import TopKMemory

#: A preset may be a mapping as well as a YAML file: MNAD prediction with this memory.
MNAD_PRED_TOPK = {
    "description": "MNAD prediction with a top-k prototype memory (memad-topk-memory)",
    "task": "prediction",
    "data": {"image_size": 256, "channels": 3, "frames": 4},
    "encoder": {"name": "mnad_unet", "widths": [64, 128, 256, 512]},
    "memory": {"name": "topk", "items": 10, "k": 3, "update": "mnad"},
    "decoder": {"name": "mnad_unet", "skip": True},
    "scorer": {"name": "mnad", "weight": 0.6},
    "train": {"epochs": 60, "batch_size": 4, "lr": 2.0e-4, "scheduler": "cosine"},
    "test": {"mode": "sequential", "update": True},
}


@memad.hookimpl
def memad_register(registry):
    registry.add("memory", "topk", TopKMemory)
    registry.add_preset("mnad_pred_topk", MNAD_PRED_TOPK)
