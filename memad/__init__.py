"""memad: memory-augmented anomaly detectors for video and images, as plugins.

>>> import memad
>>> det = memad.build("mnad_recon", data={"image_size": 32}, encoder={"widths": [8, 16, 32, 64]})
>>> sorted(det.count_parameters())
['decoder', 'encoder', 'memory', 'total']
"""

from .detector import Detector, build, load
from .errors import CheckpointError, ConfigError, DataError, MemadError, NumericalError
from .explain import explain
from .hookspecs import hookimpl
from .interfaces import (
    Decoder,
    DecoderOutput,
    Encoder,
    FrameStats,
    LevelExplanation,
    Memory,
    MemoryOutput,
    Scorer,
    UpdateRule,
)
from .network import Network, build_component
from .registry import get_registry, list_components, register, reload_plugins
from .reports.compare import compare

__version__ = "0.1.0"


def list_presets() -> list[str]:
    """Names of the registered presets."""
    return get_registry().names("preset")


__all__ = [
    "build", "load", "compare", "explain", "Detector", "Network", "build_component", "register", "list_components",
    "list_presets", "get_registry",
    "reload_plugins", "hookimpl", "Encoder", "Memory", "MemoryOutput", "LevelExplanation", "Decoder", "DecoderOutput",
    "Scorer", "UpdateRule", "FrameStats", "MemadError", "ConfigError", "DataError", "CheckpointError", "NumericalError",
]
