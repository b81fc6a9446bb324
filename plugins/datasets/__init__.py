"""Built-in datasets, registered as kind ``dataset`` (used as ``--data NAME[:ARG]``)."""

from memad import hookimpl
from memad.data.images import make_digits
from memad.data.synthetic import make_synthetic
from memad.errors import DataError

from .avenue import avenue
from .scenes import scenes
from .shanghaitech import shanghaitech
from .ucsd import ucsd


def synthetic(split, image_size, channels, labels=None, mask_size=64, arg=None):
    """The embedded generated video dataset (see ``memad.data.synthetic``)."""
    if arg:
        raise DataError(f"dataset 'synthetic' takes no argument (--data synthetic), got {arg!r}")
    return make_synthetic(split, image_size, channels, mask_size)


def digits(split, image_size, channels, labels=None, mask_size=64, arg=None):
    """scikit-learn's handwritten digits, one-class: ``digits:D`` trains on digit D only (see docs/images.md)."""
    if arg is None or not arg.isdigit() or not 0 <= int(arg) <= 9:
        raise DataError(f"dataset 'digits' needs the normal digit 0-9 as its argument (e.g. digits:3), got {arg!r}")
    if labels is not None:
        raise DataError(f"dataset 'digits' has its own labels (the digits), cannot use the label file {labels}")
    return make_digits(split, int(arg), image_size, channels)


@hookimpl
def memad_register(registry):
    registry.add("dataset", "synthetic", synthetic)
    registry.add("dataset", "digits", digits)
    # Generated walkway videos whose scene differs between videos (scenes, scenes:SEED, scenes:key=value,...).
    registry.add("dataset", "scenes", scenes)
    # Benchmarks in the layout they are downloaded in (avenue:PATH, shanghaitech:PATH, ucsd:PATH).
    registry.add("dataset", "avenue", avenue)
    registry.add("dataset", "shanghaitech", shanghaitech)
    registry.add("dataset", "ucsd", ucsd)
