"""What the BPR trainer (:mod:`hybrid.models.train`) fits: :class:`BPRModel`, the base of every
embedding model, and its held-out Recall@20 / NDCG@20 (early stopping and benchmarks)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from hybrid.metrics import hit_matrix, mask_history, metrics_from_hits


class BPRModel(nn.Module):
    """An embedding model the BPR trainer can fit.

    Subclasses set ``n_users`` / ``n_items`` and implement :meth:`layer0`; graph models also
    override :meth:`propagate`. The hybrid model replaces the item half of :meth:`layer0` with a
    projection of text features plus an id embedding and inherits the rest.
    """

    n_users: int
    n_items: int

    def layer0(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-0 embeddings: users [n_users, d], items [n_items, d]."""
        raise NotImplementedError

    def propagate(self, users0: torch.Tensor, items0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings from layer-0 ones: users [n_users, d'], items [n_items, d']; identity by default."""
        return users0, items0

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings (``get_embedding`` in PyG terms): users [n_users, d'], items [n_items, d']."""
        return self.propagate(*self.layer0())

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores ŷ_ui = e_u · e_i of pairs (one propagation).

        Args:
            users: int64 [b].
            items: int64 [b] (one item per user) or [b, m] (m items per user).

        Returns:
            float, the shape of ``items``.
        """
        user_emb, item_emb = self.embeddings()
        u = user_emb[users] if items.dim() == 1 else user_emb[users].unsqueeze(1)
        return (u * item_emb[items]).sum(-1)

    def regularization(
        self,
        users0: torch.Tensor,
        items0: torch.Tensor,
        users: torch.Tensor,
        positives: torch.Tensor,
        negatives: torch.Tensor,
    ) -> torch.Tensor:
        """½ (‖e⁰_u‖² + ‖e⁰_i‖² + ‖e⁰_j‖²) summed over the batch, divided by its size [scalar].

        Computed as per-row counts times full-table squared norms: the same value and gradient
        as gathering the batch's rows, without a gather whose backward dominates a CPU step.
        """
        user_counts = torch.bincount(users, minlength=len(users0)).to(users0.dtype)
        item_counts = torch.bincount(torch.cat([positives, negatives]), minlength=len(items0)).to(items0.dtype)
        squares = (user_counts * users0.square().sum(1)).sum() + (item_counts * items0.square().sum(1)).sum()
        return 0.5 * squares / len(users)

    def batch_embeddings(
        self, users0: torch.Tensor, items0: torch.Tensor, users: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings of a batch's rows only: users [b, d'] and items [k, d'].

        What a training step needs. By default the full :meth:`propagate` then a gather; a model
        whose propagation can stop at the rows it is asked for (LightGCN) overrides this.

        Args:
            users0 / items0: :meth:`layer0` of this step.
            users: int64 [b]; items: int64 [k] (repeats allowed).
        """
        user_emb, item_emb = self.propagate(users0, items0)
        return user_emb.index_select(0, users), item_emb.index_select(0, items)  # deterministic backward

    def auxiliary_loss(
        self,
        users: torch.Tensor,
        pos_emb: torch.Tensor,
        neg_emb: torch.Tensor,
        positives: torch.Tensor,
        negatives: torch.Tensor,
    ) -> torch.Tensor | None:
        """An extra loss term of the batch, added to BPR (the hybrid trains its content path here).

        Args:
            users: [b, d'] final embeddings of the batch's users.
            pos_emb / neg_emb: [b, d'] final embeddings of the batch's positive / negative items.
            positives / negatives: int64 [b] the batch's items.

        Returns:
            a scalar, or None (the default) for no extra term.
        """
        return None

    @staticmethod
    def recommendation_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
        """Mean BPR loss −log σ(ŷ_ui − ŷ_uj) over a batch [scalar]."""
        return F.softplus(neg_scores - pos_scores).mean()


def heldout_metrics(
    model: BPRModel, known: sp.csr_matrix, heldout: sp.csr_matrix, k: int = 20, batch_size: int = 4096
) -> dict[str, float]:
    """Recall@k and NDCG@k of ``model`` on held-out items, known items masked, batched on the device.

    Every item is ranked for every user with a held-out item; the users x items score matrix is
    never built whole (``batch_size`` users at a time).

    Args:
        model: in eval mode.
        known: CSR [n_users, n_items] items to mask (training interactions).
        heldout: CSR [n_users, n_items] items to find (validation or test interactions).
        k: cut-off.
        batch_size: users scored at once.

    Returns:
        ``{"recall@k": ..., "ndcg@k": ...}`` averaged over users with a held-out item.
    """
    users = np.flatnonzero(np.diff(heldout.indptr) > 0)
    cut = min(k, heldout.shape[1])  # fewer items than k: every item is ranked
    with torch.no_grad():
        user_emb, item_emb = model.embeddings()
        hits, n_rel = [], []
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            scores = user_emb[torch.as_tensor(batch, device=user_emb.device)] @ item_emb.T
            top = torch.topk(mask_history(scores, known[batch]), cut, dim=1).indices
            hits.append(hit_matrix(top, heldout[batch]))
            n_rel.append(torch.as_tensor(np.diff(heldout[batch].indptr), device=top.device))
    out = metrics_from_hits(torch.cat(hits), torch.cat(n_rel), [cut])
    return {f"recall@{k}": out[f"recall@{cut}"], f"ndcg@{k}": out[f"ndcg@{cut}"]}


VALID_KEYS = ("valid_recall@20", "valid_ndcg@20")  # what validation_metrics returns


def validation_metrics(model: BPRModel, train: sp.csr_matrix, valid: sp.csr_matrix) -> dict[str, float]:
    """``valid_recall@20`` and ``valid_ndcg@20``: :func:`heldout_metrics` on the validation set."""
    return {f"valid_{name}": value for name, value in heldout_metrics(model, train, valid).items()}
