"""The hybrid's gate: the loss fit_gate reports is the loss of the gate it returns, and the
hand-written gradient it follows is autograd's gradient of the written-out objective."""

from __future__ import annotations

import pytest
import torch

from hybrid.fusion.gate import Gate, GateExamples, fit_gate, positive_weights, sampled_softmax


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
    examples = GateExamples(feats, labels, torch.zeros_like(labels), buckets, log_w)
    gate, loss = fit_gate(examples, weights, reg=1e-3, bucket_reg=0.01, steps=50)
    initial = objective(Gate(n_features), feats, labels, weights, buckets, log_w, 1e-3, 0.01)
    final = objective(gate, feats, labels, weights, buckets, log_w, 1e-3, 0.01)
    assert final < 0.5 * initial  # the fit learnt something
    assert abs(loss - final) < 1e-5 * max(1.0, final), (loss, final, initial)


def problem(seed: int) -> tuple[torch.Tensor, ...]:
    """Random candidates with several positives per user, weighted negatives and padding."""
    generator = torch.Generator().manual_seed(seed)
    users, m, n_features = 40, 25, 5
    feats = torch.randn(users, m, n_features, generator=generator, dtype=torch.float64)
    labels = torch.rand(users, m, generator=generator) < 0.15
    buckets = torch.randint(0, 4, (users, m), generator=generator)  # bucket 4 stays empty
    log_w = torch.randn(users, m, generator=generator, dtype=torch.float64).masked_fill(labels, -torch.inf)
    log_w[:, -3:] = -torch.inf  # padding
    weights = torch.rand(users, m, generator=generator, dtype=torch.float64) + 0.5
    return feats, labels, buckets, log_w, weights


@pytest.mark.parametrize("seed", [0, 1])
def test_the_hand_written_gradient_is_autograds(seed: int) -> None:
    feats, labels, buckets, log_w, weights = problem(seed)
    examples = GateExamples(feats, labels, torch.zeros_like(labels), buckets, log_w)
    gate = Gate(feats.shape[-1]).double()
    with torch.no_grad():  # away from the symmetric default start
        for parameter in gate.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    weight, bias = gate.weight.detach().requires_grad_(), gate.bias.detach().requires_grad_()
    pos_weight = positive_weights(labels, weights)
    scores = bias[buckets] + (feats * weight.T[buckets]).sum(-1)  # Gate.forward, written out
    assert torch.allclose(examples.scores(weight, bias), scores)
    neg_lse = torch.logsumexp(scores + log_w, dim=1, keepdim=True)
    loss = (torch.nn.functional.softplus(neg_lse - scores) * pos_weight).sum(1).mean()
    expected_w, expected_b = torch.autograd.grad(loss, [weight, bias])
    got, grad_w, grad_b = sampled_softmax(examples, pos_weight, weight.detach(), bias.detach())
    assert torch.allclose(got, loss)
    assert torch.allclose(grad_w, expected_w) and torch.allclose(grad_b, expected_b)
    assert float(grad_w[:, 4].abs().sum()) == 0.0 and float(expected_w.abs().sum()) > 0  # the empty bucket gets none
