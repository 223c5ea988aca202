"""Negative samplers: uniform never returns a known positive, hard takes the best candidate,
curriculum follows its schedule; positives are real; draws are seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hybrid.data.interactions import Interactions
from hybrid.graph.samplers import NegativeSampler


def dense_interactions(n_users: int = 30, n_items: int = 12, density: float = 0.7, seed: int = 0) -> Interactions:
    """Random interactions dense enough that a naive uniform draw hits positives most of the time."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[np.arange(n_users), rng.integers(0, n_items, n_users)] = True  # every user has a positive
    mask[np.arange(n_users), rng.integers(0, n_items, n_users)] = False  # ... and a negative
    users, items = np.nonzero(mask)
    frame = pd.DataFrame({"user": users, "item": items})
    return Interactions.from_frame(frame, user_ids=range(n_users), item_ids=range(n_items))


def sampler(train: Interactions, kind: str = "uniform", seed: int = 0, **kwargs: int) -> NegativeSampler:
    return NegativeSampler(train, kind, generator=torch.Generator().manual_seed(seed), **kwargs)  # type: ignore[arg-type]


def test_uniform_never_returns_a_known_positive_and_covers_every_negative() -> None:
    train = dense_interactions()
    known = train.matrix().toarray() > 0
    s = sampler(train)
    users = torch.arange(train.n_users).repeat_interleave(200)
    negatives = s.uniform_negatives(users, m=3)
    assert negatives.shape == (len(users), 3)
    assert not known[users.numpy()[:, None], negatives.numpy()].any()
    seen = np.zeros_like(known)
    seen[np.repeat(users.numpy(), 3), negatives.numpy().ravel()] = True
    np.testing.assert_array_equal(seen, ~known)  # every non-positive gets drawn


def test_is_positive_matches_the_matrix() -> None:
    train = dense_interactions()
    known = train.matrix().toarray() > 0
    s = sampler(train)
    users, items = np.meshgrid(np.arange(train.n_users), np.arange(train.n_items), indexing="ij")
    got = s.is_positive(torch.as_tensor(users.ravel()), torch.as_tensor(items.ravel())).numpy()
    np.testing.assert_array_equal(got.reshape(known.shape), known)


def test_epoch_positives_are_training_items_and_users_are_uniform() -> None:
    train = dense_interactions()
    known = train.matrix().toarray() > 0
    sample = sampler(train).sample_epoch(30_000, epoch=0)
    assert known[sample.users.numpy(), sample.positives.numpy()].all()
    assert not known[sample.users.numpy(), sample.candidates[:, 0].numpy()].any()
    share = np.bincount(sample.users.numpy(), minlength=train.n_users) / len(sample)
    np.testing.assert_allclose(share, 1 / train.n_users, atol=0.01)


def test_users_with_every_item_are_skipped_not_looped_forever() -> None:
    frame = pd.DataFrame({"user": [0, 0, 0, 1], "item": [0, 1, 2, 0]})
    train = Interactions.from_frame(frame, user_ids=[0, 1], item_ids=[0, 1, 2])
    sample = sampler(train).sample_epoch(100, epoch=0)
    assert set(sample.users.tolist()) == {1}
    assert set(sample.candidates[:, 0].tolist()) <= {1, 2}


def test_hard_takes_the_highest_scoring_candidate_and_never_a_positive() -> None:
    train = dense_interactions(density=0.4)
    known = train.matrix().toarray() > 0
    s = sampler(train, "hard", pool=5)
    sample = s.sample_epoch(2000, epoch=0)
    assert sample.candidates.shape == (2000, 5) and bool(sample.hard.all())
    scores = sample.candidates.float()  # a "model" that prefers higher item ids
    negatives = sample.candidates.gather(1, s.select(sample.hard, scores).unsqueeze(1)).squeeze(1)
    np.testing.assert_array_equal(negatives.numpy(), sample.candidates.max(1).values.numpy())
    assert not known[sample.users.numpy(), negatives.numpy()].any()


@pytest.mark.parametrize("epoch", [0, 2, 5, 9])
def test_curriculum_share_of_hard_negatives_follows_a_linear_schedule(epoch: int) -> None:
    s = sampler(dense_interactions(), "curriculum", pool=4, warmup=10)
    assert s.hard_share(epoch) == pytest.approx(epoch / 10)
    sample = s.sample_epoch(20_000, epoch=epoch)
    assert float(sample.hard.float().mean()) == pytest.approx(epoch / 10, abs=0.015)
    assert s.hard_share(10) == s.hard_share(50) == 1.0


def test_uniform_and_hard_shares_are_constant() -> None:
    train = dense_interactions()
    assert sampler(train, "uniform").hard_share(7) == 0.0
    assert sampler(train, "hard", pool=3).hard_share(0) == 1.0
    hard = torch.tensor([False, True])
    assert NegativeSampler.select(hard, torch.tensor([[0.0, 1.0], [0.0, 1.0]])).tolist() == [0, 1]


def test_seeded_draws_repeat() -> None:
    train = dense_interactions()
    a = sampler(train, "curriculum", seed=3, pool=3, warmup=2).sample_epoch(500, epoch=1)
    b = sampler(train, "curriculum", seed=3, pool=3, warmup=2).sample_epoch(500, epoch=1)
    for field in ("users", "positives", "candidates", "hard"):
        assert torch.equal(getattr(a, field), getattr(b, field))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"kind": "hardest"}, "sampler must be"), ({"kind": "hard", "pool": 1}, "hard_pool"),
     ({"kind": "curriculum", "warmup": 0}, "curriculum_warmup")],
)
def test_bad_settings_name_the_parameter(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NegativeSampler(dense_interactions(), **kwargs)
