"""Scoring: what a model that scores a step is (:mod:`.step`), running test videos through a network
(:mod:`.runner`) into :class:`~.scores.Scores`, calibration on normal frames (:mod:`.calibration`),
thresholds (:mod:`.threshold`), frame-by-frame streaming (:mod:`.stream`) and export (:mod:`.export`)."""
