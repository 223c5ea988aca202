"""Candidate generation and two-stage ranking: an ANN index over item vectors (:mod:`.ann`) and
the union of sources ranked by the model's exact score (:mod:`.two_stage`); exact top-K with seen
items masked (:mod:`hybrid.retrieval.ranking`)."""
