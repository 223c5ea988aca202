"""The count-aware gate of the hybrid and how it is fitted.

    score(u, i) = b[β(n_i)] + Σ_f w_f[β(n_i)] · z_f(u, i)

β(n) is an item's training-count bucket (0 | 1–4 | 5–19 | 20–99 | 100+). The gate is fitted by a
softmax over the catalogue estimated from a stratified candidate set (each signal's top items
exactly, uniform draws for the rest), each positive against the user's negatives; the loss is
convex in the gate's parameters, so full-batch L-BFGS converges in tens of steps.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

BUCKET_EDGES = (1, 5, 20, 100)  # β(n) = number of edges <= n


def count_buckets(counts: np.ndarray) -> np.ndarray:
    """int64 [n]: β(n_i) of each count (see BUCKET_EDGES)."""
    return np.searchsorted(np.asarray(BUCKET_EDGES), np.asarray(counts), side="right").astype(np.int64)


class Gate(torch.nn.Module):
    """score = b[β] + Σ_f w_f[β] z_f, with new items' (β = 0) weights their own and the warm
    buckets' weights a shared value plus a per-bucket offset, L2-penalised by ``bucket_reg``:
    a count range with little validation data keeps close to what the warm items share (and
    one with none keeps exactly that) instead of an untrained value.
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        n_warm = len(BUCKET_EDGES)
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
        """signals float [..., F], buckets int64 [...] -> scores [...]."""
        return self.bias[buckets] + (signals * self.weight.T[buckets]).sum(-1)


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


def fit_gate(feats: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, buckets: torch.Tensor,
             log_w: torch.Tensor, reg: float, bucket_reg: float, steps: int,
             init: Gate | None = None) -> tuple[Gate, float]:
    """A :class:`Gate` fitted on candidate tensors, and its final loss.

    Args:
        feats: float [U, m, F] the candidates' signals; labels: bool [U, m] positives;
        weights: float [U, m] each positive's weight (normalised per user: each user counts once);
        buckets: int64 [U, m] count buckets; log_w: float [U, m] each negative's log-weight
            (:func:`stratified_candidates`; −inf for positives and padding).
        init: a gate to start from (e.g. the previous weight of a grid: the loss is convex, so a
            near start only saves iterations), or None for the default start.
    """
    pos_weight = labels * weights
    pos_weight = pos_weight / pos_weight.sum(1, keepdim=True).clamp_min(1e-9)
    gate = Gate(feats.shape[-1]).to(feats.device)
    if init is not None:
        gate.load_state_dict(init.state_dict())
    optimizer = torch.optim.LBFGS(gate.parameters(), lr=1.0, max_iter=steps, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        scores = gate(feats, buckets)
        neg_lse = torch.logsumexp(scores + log_w, dim=1, keepdim=True)
        # −log σ(s_p − log Σ_neg e^s): each positive against the (estimated) full set of negatives.
        loss = (torch.nn.functional.softplus(neg_lse - scores) * pos_weight).sum(1).mean()
        loss = loss + gate.penalty(reg, bucket_reg)
        loss.backward()
        return loss

    optimizer.step(closure)  # returns the loss of its first evaluation, before any step was taken
    with torch.enable_grad():
        final = closure()  # the loss of the gate returned (its gradients are cleared by the next zero_grad)
    optimizer.zero_grad()
    return gate, float(final.detach())
