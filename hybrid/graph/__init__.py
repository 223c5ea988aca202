"""The interaction graph: normalised adjacency and propagation (:mod:`.adjacency`), BPR triple
sampling (:mod:`.samplers`)."""
