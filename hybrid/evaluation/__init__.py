"""Evaluation: ``hybrid-eval`` (:mod:`.evaluate`), ranking metrics (:mod:`.metrics`) and the
results tables and plots (:mod:`.report`)."""
