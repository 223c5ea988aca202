"""The interaction graph: normalised adjacency and propagation (:mod:`.adjacency`), BPR triple
sampling (:mod:`.samplers`), PinSage random-walk neighbourhoods (:mod:`.walks`) and the sampled
propagation built on them (:mod:`.sampled`)."""
