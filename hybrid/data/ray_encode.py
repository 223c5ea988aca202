"""Item text encoded by Ray actors into the on-disk cache the encoder reads (``FusionConfig.ray``;
Ray is an optional extra: only a fit or a caller that asks for it imports this module).

The texts the cache lacks are cut into shards; ``workers`` actors (:class:`ShardEncoder`), each
holding the encoder once, encode shards through the same :class:`~encoders.cache.CachedEncoder`,
whose shard files are written atomically and may come from any process. The caller then reads
every vector from the cache, as a later fit does: nothing is encoded twice.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import torch

from encoders import CachedEncoder
from hybrid.data.text_features import EncoderConfig, build_encoder, encode_texts
from hybrid.parallel import ray_session, run_on_actors

logger = logging.getLogger(__name__)

MAX_SHARD = 4096  # texts per actor call


class ShardEncoder:
    """A Ray actor: the cached encoder, built once (its model loaded on the first missing text)."""

    def __init__(self, config: EncoderConfig, threads: int) -> None:
        torch.set_num_threads(threads)
        self.encoder = build_encoder(config)
        self.batch_size = config.batch_size

    def __call__(self, shard: dict[str, list[str]]) -> int:
        """Encode one shard's ``texts`` into the cache; returns how many."""
        return len(self.encoder.encode(shard["texts"], batch_size=self.batch_size))


def encode_on_ray(texts: list[str], config: EncoderConfig, encoder: object, address: str,
                  workers: int | None = None, threads: int = 1) -> int:
    """Encode the ``texts`` that ``encoder``'s cache lacks on Ray (see the module docstring);
    returns how many. ``encoder``: the caller's :func:`build_encoder` of ``config``."""
    if not isinstance(encoder, CachedEncoder):
        raise ValueError("encoding on Ray writes the on-disk cache the fit reads; set encoder.cache_dir (not '')")
    missing = encoder.missing(texts)
    if not missing:
        return 0
    shared = dataclasses.replace(config, cache_dir=str(encoder.cache_dir))  # the caller's folder, not the actor's default
    with ray_session(address, workers, threads) as (ray, workers):
        size = min(MAX_SHARD, math.ceil(len(missing) / (4 * workers)))  # four each: a late actor is not waited for
        shards = [{"texts": missing[i:i + size]} for i in range(0, len(missing), size)]
        run_on_actors(ray, shards, ShardEncoder, (shared, threads), workers, threads)
    logger.info("%s: %d texts encoded by Ray actors into %s", encoder.name, len(missing), encoder.folder)
    return len(missing)


def encode_texts_on_ray(texts: list[str], config: EncoderConfig, address: str, workers: int | None = None,
                        device: str | None = None) -> np.ndarray:
    """:func:`~hybrid.data.text_features.encode_texts`, the texts the cache lacks first encoded
    into it by Ray actors at ``address`` ("local" or a cluster's), ``workers`` of them."""
    encode_on_ray([t for t in texts if t.strip()], config, build_encoder(config, device), address, workers)
    return encode_texts(texts, config, device)
