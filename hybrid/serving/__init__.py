"""Serving a fitted model: the HTTP service (:mod:`.app`, ``hybrid-serve``) and batch export
(:mod:`.batch`, ``hybrid-recommend``)."""
