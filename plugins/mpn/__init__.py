"""MPN (Lv et al., CVPR 2021): the dynamic prototype unit, prototypes computed per input from its own
features, after MNAD's U-Net decoder; the ``mpn`` preset. See docs/models/mpn.md."""

from pathlib import Path

from memad import hookimpl

from .models import MPNDecoder, PrototypeUnitMemory

PRESETS = Path(__file__).parent / "presets"


@hookimpl
def memad_register(registry):
    registry.add("decoder", "mpn", MPNDecoder)
    registry.add("memory", "dpu", PrototypeUnitMemory)
    registry.add_presets(PRESETS)
