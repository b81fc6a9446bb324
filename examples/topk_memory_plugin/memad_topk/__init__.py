"""memad-topk-memory: a memad memory reading only the k most similar items."""

from .memory import TopKMemory

__all__ = ["TopKMemory"]
