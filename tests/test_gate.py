"""The hybrid's gate: the loss fit_gate reports is the loss of the gate it returns."""

from __future__ import annotations

import torch

from hybrid.fusion.gate import Gate, fit_gate


def objective(gate: Gate, feats, labels, weights, buckets, log_w, reg: float, bucket_reg: float) -> float:
    """The sampled-softmax objective written out: each positive against the weighted negatives."""
    pos_weight = labels * weights
    pos_weight = pos_weight / pos_weight.sum(1, keepdim=True).clamp_min(1e-9)
    with torch.no_grad():
        scores = gate(feats, buckets)
        neg_lse = torch.logsumexp(scores + log_w, dim=1, keepdim=True)
        loss = (torch.nn.functional.softplus(neg_lse - scores) * pos_weight).sum(1).mean()
        return float(loss + gate.penalty(reg, bucket_reg))


def test_the_reported_loss_is_the_fitted_gates_not_the_initial_one() -> None:
    generator = torch.Generator().manual_seed(0)
    users, m, n_features = 64, 30, 5
    feats = torch.randn(users, m, n_features, generator=generator)
    labels = torch.zeros(users, m, dtype=torch.bool)
    labels[torch.arange(users), feats[..., 0].argmax(1)] = True  # the positive is the best by signal 0
    weights = torch.ones(users, m)
    buckets = torch.randint(0, 5, (users, m), generator=generator)
    log_w = torch.zeros(users, m).masked_fill(labels, -torch.inf)
    gate, loss = fit_gate(feats, labels, weights, buckets, log_w, reg=1e-3, bucket_reg=0.01, steps=50)
    initial = objective(Gate(n_features), feats, labels, weights, buckets, log_w, 1e-3, 0.01)
    final = objective(gate, feats, labels, weights, buckets, log_w, 1e-3, 0.01)
    assert final < 0.5 * initial  # the fit learnt something
    assert abs(loss - final) < 1e-5 * max(1.0, final), (loss, final, initial)
