"""Memory explanations: what a trained detector's memory items hold and how test frames read them.

:func:`explain` (also ``memad.explain``) runs the passes and returns the arrays (:mod:`memad.explain.run`);
:meth:`Explanation.write` draws the atlas, usage, geometry and frame views and writes ``explain.json``
(:mod:`memad.explain.figures`). ``memad explain CKPT --data DATA --out DIR`` does both. It sits above the
estimator, like :mod:`memad.reports`; memories take part through :meth:`memad.Memory.explain`.
"""

from .run import Explanation, LevelReport, explain
from .stats import Usage, geometry, usage

__all__ = ["explain", "Explanation", "LevelReport", "Usage", "usage", "geometry"]
