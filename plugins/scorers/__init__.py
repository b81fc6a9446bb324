"""Built-in scorers, registered as kind ``scorer``."""

from memad import hookimpl

from .scorers import ContrastScorer, DistanceScorer, PSNRScorer, RegularityScorer, SignalsScorer, WeightedScorer


@hookimpl
def memad_register(registry):
    registry.add("scorer", "mnad", WeightedScorer)
    registry.add("scorer", "psnr", PSNRScorer)
    registry.add("scorer", "contrast", ContrastScorer)
    registry.add("scorer", "distance", DistanceScorer)
    registry.add("scorer", "regularity", RegularityScorer)
    registry.add("scorer", "signals", SignalsScorer)
