"""Ray for the work that leaves one process: batch ranking, text encoding, the text-neighbour search.

Ray is an optional extra (``pip install 'hybrid-coldstart[distributed]'``); nothing on the default
path imports it. ``address`` is where the work runs: ``"local"`` starts a Ray instance of this
machine's CPUs (a laptop), anything else is passed to ``ray.init(address=...)`` (``"auto"``: the
cluster ``ray start --head`` made here). A session already started by the caller is used as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def import_ray() -> Any:
    """Ray, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise ValueError("Ray is not installed: pip install 'hybrid-coldstart[distributed]'") from error
    return ray


@contextmanager
def ray_session(address: str, workers: int | None = None, threads: int = 1) -> Iterator[tuple[Any, int]]:
    """(ray, workers) inside a Ray session: ``workers`` processes of ``threads`` CPUs each (default:
    as many as the session's CPUs hold). A session this call started is shut down after."""
    ray = import_ray()
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be positive, got {workers}")
    started = not ray.is_initialized()
    if started:
        local = address == "local"
        ray.init(address=None if local else address,
                 num_cpus=(workers or os.cpu_count() or 1) * threads if local else None,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray, workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
    finally:
        if started:
            ray.shutdown()


def run_on_actors(ray: Any, rows: list[dict[str, Any]], actor: type, args: tuple[Any, ...], workers: int,
                  threads: int = 1) -> int:
    """Each of ``rows`` to one call of one of ``workers`` actors of class ``actor`` (built with
    ``args``, once each; called with the row), a row handed to whichever actor is free: an actor still loading its model never queues work a ready
    one could do; returns how many actors ran. Ray core's actor pool, not Ray Data: on 2 cores Ray
    Data's streaming executor took CPU the workers needed (benchmarks/distributed.py)."""
    if not rows:
        return 0
    from ray.util import ActorPool

    remote = ray.remote(num_cpus=threads)(actor)
    actors = [remote.remote(*args) for _ in range(min(workers, len(rows)))]
    for _ in ActorPool(actors).map_unordered(lambda one, row: one.__call__.remote(row), rows):
        pass
    return len(actors)
