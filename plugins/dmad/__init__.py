"""DMAD (Liu et al., "Diversity-Measurable Anomaly Detection", CVPR 2023), its video variant DMAD-PDM:
the ``dmad`` encoder, the vector-quantising codebook memory ``dmad_codebook``, the prototype decoder with
the pyramid deformation module ``dmad_pdm``, the ``dmad`` scorer and the ``dmad_pred`` preset.
See docs/models/dmad.md."""

from pathlib import Path

from memad import hookimpl

from .codebook import Codebook
from .network import DMADEncoder, PDMDecoder
from .scorer import DMADScorer

PRESETS = Path(__file__).parent / "presets"

#: What this family registers: (kind, name, class).
COMPONENTS = (("encoder", "dmad", DMADEncoder), ("memory", "dmad_codebook", Codebook),
              ("decoder", "dmad_pdm", PDMDecoder), ("scorer", "dmad", DMADScorer))


@hookimpl
def memad_register(registry):
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
    registry.add_presets(PRESETS)
