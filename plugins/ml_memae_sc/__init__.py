"""ML-MemAE-SC (Liu et al., ICCV 2021, the first stage of HF2-VAD): MemAE memories at three encoder
levels with skip connections carrying their reads; the ``ml_memae_sc`` presets. See
docs/models/ml_memae_sc.md."""

from pathlib import Path

from memad import hookimpl

from .models import MLMemAEDecoder, MLMemAEEncoder, MultiLevelMemAE

PRESETS = Path(__file__).parent / "presets"


#: What this family registers: (kind, name, class).
COMPONENTS = (("encoder", "ml_memae_sc", MLMemAEEncoder), ("memory", "ml_memae", MultiLevelMemAE),
              ("decoder", "ml_memae_sc", MLMemAEDecoder))


@hookimpl
def memad_register(registry):
    for kind, name, obj in COMPONENTS:
        registry.add(kind, name, obj)
    registry.add_presets(PRESETS)
