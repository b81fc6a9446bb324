"""The model: a detector wired from registered parts (:mod:`.detector`), its training loop
(:mod:`.training`) and its checkpoints (:mod:`.checkpoint`)."""
