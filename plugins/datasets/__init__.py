"""Built-in datasets, registered as kind ``dataset`` (used as ``--data NAME[:ARG]``)."""

from memad import hookimpl
from memad.data.synthetic import make_synthetic


def synthetic(split, image_size, channels, labels=None, mask_size=64, arg=None):
    """The embedded generated video dataset (see ``memad.data.synthetic``)."""
    if arg:
        raise ValueError(f"dataset 'synthetic' takes no argument, got {arg!r}")
    return make_synthetic(split, image_size, channels, mask_size)


@hookimpl
def memad_register(registry):
    registry.add("dataset", "synthetic", synthetic)
