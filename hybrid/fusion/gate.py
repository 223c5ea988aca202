"""The count-aware gate of the hybrid and how it is fitted.

    score(u, i) = b[β(n_i)] + Σ_f w_f[β(n_i)] · z_f(u, i)

β(n) is an item's training-count bucket (0 | 1–4 | 5–19 | 20–99 | 100+). The gate is fitted by a
softmax over the catalogue estimated from a stratified candidate set (each signal's top items
exactly, uniform draws for the rest), each positive against the user's negatives; the loss is
convex in the gate's parameters, so full-batch L-BFGS converges in tens of steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.data.buckets import EDGES


class Gate(torch.nn.Module):
    """score = b[β] + Σ_f w_f[β] z_f, with new items' (β = 0) weights their own and the warm
    buckets' weights a shared value plus a per-bucket offset, L2-penalised by ``bucket_reg``:
    a count range with little validation data keeps close to what the warm items share (and
    one with none keeps exactly that) instead of an untrained value.
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        n_warm = len(EDGES)
        self.cold_weight = torch.nn.Parameter(torch.full((n_features, 1), 0.1))
        self.warm_weight = torch.nn.Parameter(torch.full((n_features, 1), 0.1))
        self.warm_offset = torch.nn.Parameter(torch.zeros(n_features, n_warm))
        self.cold_bias = torch.nn.Parameter(torch.zeros(1))
        self.warm_bias = torch.nn.Parameter(torch.zeros(1))
        self.warm_bias_offset = torch.nn.Parameter(torch.zeros(n_warm))

    @property
    def weight(self) -> torch.Tensor:
        """float [F, B]: each signal's weight per count bucket."""
        return torch.cat([self.cold_weight, self.warm_weight + self.warm_offset], dim=1)

    @property
    def bias(self) -> torch.Tensor:
        """float [B]: each count bucket's offset in the one list."""
        return torch.cat([self.cold_bias, self.warm_bias + self.warm_bias_offset])

    def penalty(self, reg: float, bucket_reg: float) -> torch.Tensor:
        return reg * (self.cold_weight.square().sum() + self.warm_weight.square().sum()) + bucket_reg * (
            self.warm_offset.square().sum() + self.warm_bias_offset.square().sum())

    def forward(self, signals: torch.Tensor, buckets: torch.Tensor) -> torch.Tensor:
        """signals float [..., F], buckets int64 [...] -> scores [...].

        Every bucket's score by one matrix product, then each item's own picked out: the same
        numbers as gathering each item's weight row first, without the [..., F] gathered copy
        whose backward dominated the gate's fit (see benchmarks/results/fit_profile.json)."""
        return bucket_scores(signals, self.weight, self.bias, buckets)


def bucket_scores(signals: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, buckets: torch.Tensor) -> torch.Tensor:
    """Each item's score by its own bucket's weights: signals float [..., F], weight [F, B], bias
    [B], buckets int64 [...] -> scores [...] (see :meth:`Gate.forward`)."""
    flat = signals.reshape(-1, signals.shape[-1])
    picked = (flat @ weight).gather(1, buckets.reshape(-1, 1)).squeeze(1)
    return (picked + bias[buckets.reshape(-1)]).view(buckets.shape)


def stratified_candidates(signals: list[torch.Tensor], known: torch.Tensor, positives: sp.csr_matrix,
                      rng: np.random.Generator, n_top: int, n_random: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate items per user and the log-weight each stands for as a negative.

    The softmax over all items is estimated by strata: every signal's top ``n_top``
    items exactly (log-weight 0), and the rest of the catalogue by ``n_random``
    uniform draws, each standing for (items left) / draws of them. A candidate set of hard
    items plus the positives alone would be biased: positives outside every signal's top
    would look like the only items worth raising, and the gate would learn to invert the signals.

    Args:
        signals: the batch's signals, each float32 [b, n_items].
        known: bool [b, n_items] the users' known items (never candidates).
        positives: CSR [b, n_items] validation positives.

    Returns:
        items int64 [b, m] (−1: no candidate) and log-weights float32 [b, m] (−inf: none).
    """
    b, n_items = known.shape
    hard = torch.zeros_like(known)
    for signal in signals[:-1]:  # the last (popularity) is one ranking for all: no hard items of its own
        top = torch.topk(signal.masked_fill(known, -torch.inf), min(n_top, n_items), dim=1).indices
        hard.scatter_(1, top, True)
    hard &= ~known
    pos = torch.as_tensor(positives.toarray() > 0, device=known.device) & ~known
    exact = hard | pos
    rest = (~exact & ~known).sum(1, keepdim=True).float()
    draws = torch.as_tensor(rng.integers(0, n_items, (b, n_random)), device=known.device)
    drawn_ok = ~exact.gather(1, draws) & ~known.gather(1, draws)
    n_ok = drawn_ok.sum(1, keepdim=True).clamp_min(1).float()
    m_exact = int(exact.sum(1).max())
    exact_items = torch.topk(exact.float(), max(m_exact, 1), dim=1)  # the exact set, padded
    items = torch.where(exact_items.values > 0, exact_items.indices, -1)
    log_w = torch.where(exact_items.values > 0, 0.0, -torch.inf)
    random_w = torch.where(drawn_ok, torch.log(rest / n_ok), -torch.inf)
    return torch.cat([items, torch.where(drawn_ok, draws, -1)], 1), torch.cat([log_w, random_w], 1)


def fuse(signals: list[torch.Tensor], weight: torch.Tensor, bias: torch.Tensor, buckets: torch.Tensor) -> torch.Tensor:
    """The gate applied to a batch: float [b, n_items] from F signals [b, n_items], weight [F, B],
    bias [B] and each item's bucket (int64 [n_items])."""
    per_item = weight[:, buckets]  # [F, n_items]
    scores = bias[buckets].expand(signals[0].shape[0], -1).clone()
    for f, signal in enumerate(signals):
        scores += signal * per_item[f]
    return scores


@dataclass
class GateExamples:
    """The gate's training tensors (see :func:`gate_examples`): feats float [U, m, F] the
    candidates' signals, labels bool [U, m] positives, new bool [U, m] whether each is a new item,
    buckets int64 [U, m] count buckets, log_w float [U, m] each negative's log-weight (−inf for
    positives and padding)."""

    feats: torch.Tensor
    labels: torch.Tensor
    new: torch.Tensor
    buckets: torch.Tensor
    log_w: torch.Tensor

    def padded(self, width: int) -> GateExamples:
        """These examples with ``width`` candidates per user (padding: no candidate)."""
        extra = width - self.labels.shape[1]
        if extra == 0:
            return self
        pad = lambda t, value: torch.nn.functional.pad(t, (0, extra), value=value)  # noqa: E731
        return GateExamples(torch.nn.functional.pad(self.feats, (0, 0, 0, extra)), pad(self.labels, False),
                            pad(self.new, False), pad(self.buckets, 0), pad(self.log_w, -torch.inf))

    @classmethod
    def stacked(cls, parts: list[GateExamples]) -> GateExamples:
        """Every part's users in one set of examples (in order)."""
        width = max(p.labels.shape[1] for p in parts)
        parts = [p.padded(width) for p in parts]
        return cls(*(torch.cat([getattr(p, name) for p in parts]) for name in ("feats", "labels", "new", "buckets",
                                                                               "log_w")))

    @cached_property
    def by_bucket(self) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """(order, feats in that order [N, F], bucket boundaries): the flattened candidates sorted
        by bucket, so each bucket's scores and gradients are one dense product."""
        flat = self.buckets.reshape(-1)
        order = torch.argsort(flat, stable=True)
        sizes = torch.bincount(flat, minlength=len(EDGES) + 1).tolist()
        return order, self.feats.reshape(-1, self.feats.shape[-1])[order], [0, *np.cumsum(sizes).tolist()]

    def scores(self, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """float [U, m]: b[β] + Σ_f w_f[β] z_f, the same as ``Gate.forward``, bucket by bucket."""
        order, feats, bounds = self.by_bucket
        flat = torch.empty(order.shape[0], dtype=feats.dtype, device=feats.device)
        flat[order] = torch.cat([feats[lo:hi] @ weight[:, b] + bias[b]
                                 for b, (lo, hi) in enumerate(pairwise(bounds))])
        return flat.view(self.buckets.shape)

    def gradients(self, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """d loss / d weight [F, B] and d loss / d bias [B] from d loss / d scores [U, m]."""
        order, feats, bounds = self.by_bucket
        g = grad.reshape(-1)[order]
        pairs = list(pairwise(bounds))
        weight = torch.stack([feats[lo:hi].T @ g[lo:hi] for lo, hi in pairs], dim=1)
        return weight, torch.stack([g[lo:hi].sum() for lo, hi in pairs])


def gate_examples(batches: Iterable[tuple[list[torch.Tensor], torch.Tensor, sp.csr_matrix]], new_items: torch.Tensor,
                  buckets: torch.Tensor, rng: np.random.Generator, n_top: int, n_random: int,
                  max_positives: int) -> GateExamples:
    """The gate's training tensors from (signals, known items, positives) per user batch: each
    user's stratified candidates (:func:`stratified_candidates`), their signals, positive labels
    (a seeded sample of at most ``max_positives``), whether each is new (``new_items`` bool
    [n_items]), its count bucket (``buckets`` int64 [n_items]) and its log-weight as a negative."""
    parts = []
    with torch.no_grad():
        for signals, known, positives in batches:
            cand, log_w = stratified_candidates(signals, known, positives, rng, n_top, n_random)
            safe = cand.clamp_min(0)
            positive = torch.as_tensor(positives.toarray() > 0, device=known.device).gather(1, safe)
            positive &= cand >= 0
            positive[:, cand.shape[1] - n_random:] = False  # a random draw is never a positive (excluded)
            feats = torch.stack([s.gather(1, safe) for s in signals], dim=-1)
            parts.append(examples_part(feats, safe, log_w, positive, new_items, buckets, rng, max_positives))
    return GateExamples.stacked(parts)


def examples_part(feats: torch.Tensor, cand: torch.Tensor, log_w: torch.Tensor, positive: torch.Tensor,
                  new_items: torch.Tensor, buckets: torch.Tensor, rng: np.random.Generator,
                  max_positives: int) -> GateExamples:
    """One batch's examples from its candidates' signals ``feats`` [b, m, F], items ``cand``
    (int64 [b, m], ≥ 0), log-weights and positives [b, m]: at most ``max_positives`` positives
    per user (a seeded sample), the positives' log-weights cleared (they are not negatives)."""
    positive = positive.clone()
    if positive.sum(1).max() > max_positives:  # keep a seeded sample of each user's positives
        keys = torch.as_tensor(rng.random(positive.shape), device=positive.device).masked_fill(~positive, 2.0)
        positive &= keys.argsort(1).argsort(1) < max_positives
    return GateExamples(feats, positive, new_items[cand], buckets[cand], log_w.masked_fill(positive, -torch.inf))


def positive_weights(labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Each positive's weight, normalised per user (each user counts once)."""
    pos_weight = labels * weights
    return pos_weight / pos_weight.sum(1, keepdim=True).clamp_min(1e-9)


def sampled_softmax(examples: GateExamples, pos_weight: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gate's data loss and its gradients with respect to ``weight`` [F, B] and ``bias`` [B].

    Each positive p against the user's (estimated) negatives N,

        mean_u Σ_p w_p softplus(lse_u − s_p),   lse_u = log Σ_{n∈N} e^{s_n + log_w_n},

    differentiated by hand in the scores: d/ds_p = −w_p σ(lse_u − s_p) and d/ds_n = share_n ·
    Σ_p w_p σ(lse_u − s_p) with share_n the softmax of n among N; the scores are linear in the
    gate's parameters, so this keeps autograd's [U, m] intermediates out of every L-BFGS step.
    """
    with torch.no_grad():
        scores = examples.scores(weight, bias)
        logits = scores + examples.log_w
        lse = torch.logsumexp(logits, dim=1, keepdim=True)
        loss = (torch.nn.functional.softplus(lse - scores) * pos_weight).sum(1).mean()
        pull = torch.sigmoid(lse - scores) * pos_weight
        share = torch.where(examples.log_w > -torch.inf, torch.exp(logits - lse), 0.0)
        grad_w, grad_b = examples.gradients((share * pull.sum(1, keepdim=True) - pull) / scores.shape[0])
    return loss, grad_w, grad_b


def fit_gate(examples: GateExamples, weights: torch.Tensor, reg: float, bucket_reg: float, steps: int,
             init: Gate | None = None) -> tuple[Gate, float]:
    """A :class:`Gate` fitted on ``examples`` by L-BFGS on :func:`sampled_softmax` plus its
    penalty, and its final loss.

    Args:
        weights: float [U, m] each positive's weight (normalised per user: each user counts once).
        init: a gate to start from (e.g. the previous weight of a grid: the loss is convex, so a
            near start only saves iterations), or None for the default start.
    """
    pos_weight = positive_weights(examples.labels, weights)
    gate = Gate(examples.feats.shape[-1]).to(device=examples.feats.device, dtype=examples.feats.dtype)
    if init is not None:
        gate.load_state_dict(init.state_dict())
    optimizer = torch.optim.LBFGS(gate.parameters(), lr=1.0, max_iter=steps, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        weight, bias = gate.weight, gate.bias
        data_loss, grad_w, grad_b = sampled_softmax(examples, pos_weight, weight.detach(), bias.detach())
        penalty = gate.penalty(reg, bucket_reg)
        ((weight * grad_w).sum() + (bias * grad_b).sum() + penalty).backward()  # chain rule into the parameters
        return data_loss + penalty.detach()

    optimizer.step(closure)  # returns the loss of its first evaluation, before any step was taken
    with torch.enable_grad():
        final = closure()  # the loss of the gate returned (its gradients are cleared by the next zero_grad)
    optimizer.zero_grad()
    return gate, float(final.detach())
