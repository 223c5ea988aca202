"""Training-free graph filters: GF-CF and BSPM (EASE, dense, in :mod:`hybrid.models.ease`).

All three score a user by filtering the row r_u of their known items through an item-item
operator built in closed form from the training matrix R [n_users, n_items]:

    R̃ = D_U^{-1/2} R D_I^{-1/2}                     (symmetric degree normalisation)
    P = R̃ᵀ R̃                                         (linear low-pass filter, item-item)
    I = D_I^{-1/2} V Vᵀ D_I^{1/2}                      (ideal low-pass: V the top-k right
                                                        singular vectors of R̃)

    GF-CF  (Shen et al., CIKM 2021)     s_u = r_u P + α r_u I
    BSPM   (Choi et al., SIGIR 2023)    blur:    b = r_u P,  i = r_u I
                                        sharpen: dy/dt = −y P from y(0) = b + β i to T_s,
                                                 fixed-step RK4 (the paper's Gowalla setting:
                                                 one step of T_s = 2.5, β = 0.2, k = 448)
    EASE   (Steck, WWW 2019)            s_u = r_u B,  B = I − G⁻¹ diag(1 / diag(G⁻¹)),
                                        G = RᵀR + λ I (dense n_items × n_items)

Nothing is stored densely per user: ``score`` applies P as two sparse products with R̃ and I as
two thin dense ones, per batch of users, item-major ([n_items, b], so the sparse products stream
contiguous memory); a batch's binary rows enter only through sparse products. Memory: R̃ and R̃ᵀ
as CSR (2 × nnz × 12 bytes), V (n_items × k × 4 bytes), and per scored batch ~3 ×
batch × n_items × 4 bytes (GF-CF and BSPM alike). EASE holds the dense B (n_items² × 4
bytes) and refuses above ``max_items``.


These models choose nothing on validation, so by default they are fitted on the training and
validation interactions together (``fit_on: train+valid``): everything the evaluation knows
before the test period.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file
from typing_extensions import Self

from hybrid.config import from_dict
from hybrid.graph.adjacency import csr_from_parts, csr_tensor, row_block
from hybrid.graph.spectral import top_right_vectors
from hybrid.models.base import FitData, Recommender, dot_candidates, register
from hybrid.persistence import atomic_folder, check_shape, verify_folder, write_manifest

logger = logging.getLogger(__name__)

FILTER_FILE = "filter.safetensors"
FILTER_CONFIG = "config.json"
GATHER_LIMIT = 1 << 24  # entries of R̃ gathered at once when scoring candidates (~200 MB of temporaries)


@dataclass
class GFCFConfig:
    factors: int = 256  # k: singular vectors of the ideal low-pass filter (0: linear filter only)
    alpha: float = 0.3  # weight of the ideal low-pass term
    fit_on: Literal["train", "train+valid"] = "train+valid"
    svd_iterations: int = 6  # power iterations of the randomised SVD (hybrid.graph.spectral)


@dataclass
class BSPMConfig:
    factors: int = 448  # k of the ideal low-pass term
    beta: float = 0.2  # weight of the ideal low-pass term in the sharpening start
    sharpen_time: float = 2.5  # T_s
    sharpen_steps: int = 1  # RK4 steps over [0, T_s]
    blur_time: float = 1.0  # T_b of the blurring ODE dy/dt = y P − y (Euler, one step: y P at T_b = 1)
    fit_on: Literal["train", "train+valid"] = "train+valid"
    svd_iterations: int = 6


def fitting_matrix(data: FitData, fit_on: str) -> sp.csr_matrix:
    """Binary CSR [n_users, n_items] of what the filter is built from."""
    matrix = data.train.matrix()
    if fit_on == "train+valid" and data.valid is not None and len(data.valid):
        matrix = ((matrix + data.valid.matrix()) > 0).astype(np.float32).tocsr()
    elif fit_on not in ("train", "train+valid"):
        raise ValueError(f"fit_on must be 'train' or 'train+valid', got {fit_on!r}")
    return sp.csr_matrix(matrix, dtype=np.float32)


def binary(history: sp.csr_matrix) -> sp.csr_matrix:
    """float32 CSR with a 1 where ``history`` holds a positive entry."""
    return sp.csr_matrix(history > 0, dtype=np.float32)


def _inverse_sqrt(degrees: np.ndarray) -> np.ndarray:
    out = np.zeros_like(degrees, dtype=np.float64)
    np.power(degrees, -0.5, out=out, where=degrees > 0)
    return out


class NormalizedGraph:
    """R̃ = D_U^{-1/2} R D_I^{-1/2} on a device, with products by P = R̃ᵀR̃ and by the ideal filter.

    Args:
        matrix: binary CSR [n_users, n_items] training interactions.
        factors: k singular vectors for the ideal filter (0: none).
        device: where the operators live.
        svd_iterations: power iterations of the randomised SVD (:func:`~hybrid.graph.spectral.top_right_vectors`).
        seed: makes the randomised SVD repeatable.
    """

    def __init__(self, matrix: sp.csr_matrix, factors: int, device: torch.device, svd_iterations: int,
                 seed: int, vectors: torch.Tensor | None = None) -> None:
        self.matrix = matrix
        user_degree = np.asarray(matrix.sum(1)).ravel()
        item_degree = np.asarray(matrix.sum(0)).ravel()
        norm = sp.diags(_inverse_sqrt(user_degree)) @ matrix @ sp.diags(_inverse_sqrt(item_degree))
        norm = sp.csr_matrix(norm, dtype=np.float32)
        self.device = device
        self.norm = csr_tensor(norm, device)
        self.norm_t = csr_tensor(norm.T.tocsr(), device)
        self.item_inv_sqrt = _inverse_sqrt(item_degree)
        self.item_sqrt = torch.as_tensor(np.sqrt(item_degree), dtype=torch.float32, device=device)
        self.vectors = None if vectors is None or vectors.numel() == 0 else vectors.to(device)
        factors = min(factors, min(matrix.shape) - 1)
        if factors > 0 and vectors is None:
            start = time.perf_counter()
            self.vectors = top_right_vectors(norm, factors, svd_iterations, seed, device)  # [n_items, k]
            logger.info("graph filter: rank-%d SVD of a %d x %d matrix in %.1f s", factors, *norm.shape,
                        time.perf_counter() - start)

    # Every product works on item-major columns [n_items, b]: the sparse products then read and write
    # contiguous memory, and a batch's binary history enters through sparse products only.

    def linear(self, columns: torch.Tensor) -> torch.Tensor:
        """P X = R̃ᵀ (R̃ X): float [n_items, b] -> [n_items, b], two sparse products."""
        return self.norm_t @ (self.norm @ columns)

    def linear_history(self, history: sp.csr_matrix) -> torch.Tensor:
        """P rᵀ for a binary CSR batch [b, n_items] -> [n_items, b]; the first product is sparse x sparse."""
        columns = csr_tensor(binary(history).T.tocsr(), self.device)
        return self.norm_t @ (self.norm @ columns).to_dense()

    def _users_side(self, history: sp.csr_matrix) -> torch.Tensor:
        """R̃ rᵀ for a binary CSR batch [b, n_items] -> dense [n_users, b]."""
        return (self.norm @ csr_tensor(binary(history).T.tocsr(), self.device)).to_dense()

    def linear_columns(self, history: sp.csr_matrix, items: np.ndarray) -> torch.Tensor:
        """(r P)[:, items] for the same items (int64 [m]) in every row -> [b, m], from those columns
        of R̃ only: R̃[:, items]ᵀ (R̃ rᵀ)."""
        crow, _, cols, values = row_block(self.norm_t, torch.as_tensor(items, dtype=torch.int64, device=self.device))
        block = csr_from_parts(crow, cols, values, (len(items), self.norm_t.shape[1]))
        return (block @ self._users_side(history)).T

    def linear_candidates(self, history: sp.csr_matrix, candidates: np.ndarray) -> torch.Tensor:
        """(r P)[c] for each row's own candidates c (int64 [b, m]) -> [b, m], reading only the
        candidates' columns of R̃: Σ_u R̃[u, c] (R̃ rᵀ)[u], in chunks of at most ``GATHER_LIMIT`` entries."""
        x = self._users_side(history)  # [n_users, b]
        crow, col, val = self.norm_t.crow_indices(), self.norm_t.col_indices(), self.norm_t.values()
        flat = torch.as_tensor(candidates, dtype=torch.int64, device=self.device).reshape(-1)
        lengths = crow[flat + 1] - crow[flat]
        out = torch.zeros(len(flat), device=self.device)
        ends = torch.cumsum(lengths, 0)
        start = 0
        while start < len(flat):
            done = int(ends[start - 1]) if start else 0
            stop = max(start + 1, int(torch.searchsorted(ends, done + GATHER_LIMIT, right=True)))
            part = lengths[start:stop]
            owner = torch.repeat_interleave(torch.arange(start, stop, device=self.device), part)
            first = torch.repeat_interleave(crow[flat[start:stop]] - (torch.cumsum(part, 0) - part), part)
            entry = first + torch.arange(len(owner), device=self.device)
            products = val[entry] * x[col[entry], owner // candidates.shape[1]]
            out.index_add_(0, owner, products)
            start = stop
        return out.reshape(candidates.shape)

    def ideal_queries(self, history: sp.csr_matrix) -> torch.Tensor:
        """r D^{-1/2} V: float32 [b, k], the rows' side of the ideal filter."""
        rows = csr_tensor(sp.csr_matrix(binary(history) @ sp.diags(self.item_inv_sqrt), dtype=np.float32), self.device)
        return rows @ self.vectors

    def ideal_items(self) -> torch.Tensor:
        """D^{1/2} V: float32 [n_items, k], the items' side of the ideal filter."""
        return self.vectors * self.item_sqrt[:, None]

    def ideal_history(self, history: sp.csr_matrix) -> torch.Tensor:
        """(r D^{-1/2} V Vᵀ D^{1/2})ᵀ for a binary CSR batch [b, n_items] -> [n_items, b]."""
        if self.vectors is None:
            return torch.zeros(self.matrix.shape[1], history.shape[0], device=self.device)
        return (self.vectors @ self.ideal_queries(history).T).mul_(self.item_sqrt[:, None])


def dense_columns(history: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """Binary float32 [n_items, b] on ``device`` from a CSR batch [b, n_items]."""
    return csr_tensor(binary(history).T.tocsr(), device).to_dense()


class _GraphFilter(Recommender):
    """Shared fit: build the normalised graph; subclasses say how a row is filtered."""

    name: ClassVar[str]
    config_class: ClassVar[type]

    def __init__(self, config: GFCFConfig | BSPMConfig | None = None) -> None:
        self.config = config or self.config_class()

    def fit(self, data: FitData) -> Self:
        start = time.perf_counter()
        self.device_ = torch.device(data.device)
        matrix = fitting_matrix(data, self.config.fit_on)
        self.graph_ = NormalizedGraph(matrix, self.config.factors, self.device_, self.config.svd_iterations, data.seed)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        with torch.no_grad():
            return self.filter(history).T.contiguous()

    def item_factors(self) -> torch.Tensor | None:
        """The ideal low-pass term's item side, D^{1/2} V (the part of the score an index can search)."""
        return None if self.graph_.vectors is None else self.graph_.ideal_items()

    @property
    def has_factors(self) -> bool:
        return self.graph_.vectors is not None

    def user_factors(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return self.ideal_weight * self.graph_.ideal_queries(history)

    @property
    def ideal_weight(self) -> float:
        raise NotImplementedError

    def chosen(self) -> dict[str, Any]:
        """Nothing is chosen on validation; the settings in use and the graph's size, for the record."""
        return {**dataclasses.asdict(self.config), "graph_shape": list(self.graph_.matrix.shape)}

    def filter(self, history: sp.csr_matrix) -> torch.Tensor:
        """Filtered scores [n_items, b] of a binary CSR batch [b, n_items] (item-major)."""
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        """The fitting matrix (CSR) and the singular vectors, atomically; the operators are rebuilt on load."""
        with atomic_folder(path) as folder:
            self._write(folder)
            write_manifest(folder, self.name)

    def _write(self, path: Path) -> None:
        matrix, vectors = self.graph_.matrix, self.graph_.vectors
        save_file({
            "indptr": torch.as_tensor(matrix.indptr.astype(np.int64)),
            "indices": torch.as_tensor(matrix.indices.astype(np.int64)),
            "vectors": (torch.zeros(0) if vectors is None else vectors).detach().cpu().contiguous(),
        }, str(path / FILTER_FILE))
        meta = {"model": self.name, "shape": list(matrix.shape), "config": dataclasses.asdict(self.config)}
        (path / FILTER_CONFIG).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> Self:
        """Read a folder written by :meth:`save`, every file checked first (a ``ValueError`` names the bad one)."""
        path = Path(path)
        verify_folder(path, cls.name)
        meta = json.loads((path / FILTER_CONFIG).read_text())
        model = cls(from_dict(cls.config_class, meta["config"], f"{path / FILTER_CONFIG}: config"))
        tensors = load_file(str(path / FILTER_FILE))
        n_users, n_items = meta["shape"]
        check_shape("indptr", tensors["indptr"].shape, (n_users + 1,), path / FILTER_FILE)
        if tensors["vectors"].numel():
            check_shape("vectors", tensors["vectors"].shape[:1], (n_items,), path / FILTER_FILE)
        indices = tensors["indices"].numpy()
        matrix = sp.csr_matrix((np.ones(len(indices), np.float32), indices, tensors["indptr"].numpy()),
                               shape=tuple(meta["shape"]))
        model.device_ = torch.device(device)
        model.graph_ = NormalizedGraph(matrix, model.config.factors, model.device_, model.config.svd_iterations, 0,
                                       vectors=tensors["vectors"])
        return model


class GFCF(_GraphFilter):
    """GF-CF: s_u = r_u P + α r_u I (see the module docstring)."""

    name = "gf_cf"
    config_class = GFCFConfig

    @property
    def ideal_weight(self) -> float:
        return self.config.alpha

    def score_candidates(self, users: np.ndarray, history: sp.csr_matrix, candidates: np.ndarray) -> torch.Tensor:
        """Exact GF-CF scores of each row's candidates, from their columns only (no full row)."""
        with torch.no_grad():
            out = self.graph_.linear_candidates(history, candidates)
            if self.config.alpha and self.graph_.vectors is not None:
                out += dot_candidates(self.user_factors(users, history), self.graph_.ideal_items(), candidates)
            return out

    def score_columns(self, users: np.ndarray, history: sp.csr_matrix, items: np.ndarray) -> torch.Tensor:
        """Exact GF-CF scores of the same items in every row, from their columns only."""
        with torch.no_grad():
            out = self.graph_.linear_columns(history, items)
            if self.config.alpha and self.graph_.vectors is not None:
                index = torch.as_tensor(items, dtype=torch.int64, device=self.graph_.device)
                out += self.user_factors(users, history) @ self.graph_.ideal_items()[index].T
            return out

    def residual_columns(self, users: np.ndarray, history: sp.csr_matrix, items: np.ndarray) -> torch.Tensor:
        """The linear filter's part of the given columns: the score less its ideal (factor) term."""
        with torch.no_grad():
            return self.graph_.linear_columns(history, items)

    def filter(self, history: sp.csr_matrix) -> torch.Tensor:
        out = self.graph_.linear_history(history)
        if self.config.alpha:
            out.add_(self.graph_.ideal_history(history), alpha=self.config.alpha)
        return out


class BSPM(_GraphFilter):
    """BSPM: blur with P and the ideal filter, then sharpen by dy/dt = −y P with fixed-step RK4."""

    name = "bspm"
    config_class = BSPMConfig

    @property
    def ideal_weight(self) -> float:
        return self.config.beta

    def filter(self, history: sp.csr_matrix) -> torch.Tensor:
        config, graph = self.config, self.graph_
        # Blur, one Euler step of dy/dt = y P − y over [0, T_b]: y = (1 − T_b) r + T_b r P; plus β r I.
        y = graph.linear_history(history).mul_(config.blur_time)
        if config.blur_time != 1.0:
            y.add_(dense_columns(history, graph.device), alpha=1.0 - config.blur_time)
        if config.beta:
            y.add_(graph.ideal_history(history), alpha=config.beta)
        # Sharpen, dy/dt = −y P. One RK4 step of a linear ODE is exactly its 4th-order Taylor
        # polynomial, y (I − hP + (hP)²/2 − (hP)³/6 + (hP)⁴/24), evaluated here by Horner's rule:
        # four products by P and two buffers instead of RK4's five.
        h = config.sharpen_time / config.sharpen_steps
        for _ in range(config.sharpen_steps):
            acc = y
            for order in (4, 3, 2, 1):
                acc = graph.linear(acc).mul_(-h / order).add_(y)
            y = acc
        return y


def _positive(name: str, value: float, where: str) -> None:
    if not value > 0:
        raise ValueError(f"{where}.{name} must be > 0, got {value!r}")


@register("gf_cf")
def _gf_cf(params: dict[str, Any]) -> Recommender:
    config = from_dict(GFCFConfig, params, "gf_cf")
    if config.factors < 0:
        raise ValueError(f"gf_cf.factors must be >= 0, got {config.factors}")
    return GFCF(config)


@register("bspm")
def _bspm(params: dict[str, Any]) -> Recommender:
    config = from_dict(BSPMConfig, params, "bspm")
    _positive("sharpen_time", config.sharpen_time, "bspm")
    if config.sharpen_steps < 1 or config.factors < 0:
        raise ValueError(f"bspm.sharpen_steps must be >= 1 and factors >= 0, got {config.sharpen_steps}, {config.factors}")
    return BSPM(config)
