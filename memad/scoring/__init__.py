"""Scoring: running test videos through a detector (:mod:`.runner`), the per-frame statistics it
gathers, calibration on normal frames (:mod:`.calibration`), thresholds (:mod:`.threshold`) and
frame-by-frame streaming (:mod:`.stream`)."""
