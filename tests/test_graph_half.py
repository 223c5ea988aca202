"""A new graph half is one file and one registration (issue 25): a toy co-occurrence scorer,
written to a file here, imported, and fused by the hybrid as a named and as an ``auto`` half."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_fusion_hybrid import planted

from hybrid.fusion.config import FusionConfig
from hybrid.fusion.halves import GRAPH_HALVES, auto_halves
from hybrid.models import make_model
from hybrid.models.base import MODELS

TOY = '''
"""A toy graph half: an item's score is how often it co-occurs with the user's items."""

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.fusion.halves import graph_half
from hybrid.models.base import Recommender


class CoOccurrence(Recommender):
    def fit(self, data):
        binary = (data.train.matrix() > 0).astype(np.float32)
        self.cooc_ = (binary.T @ binary).tocsr()
        self.cooc_.setdiag(0)
        self.device_ = data.device
        return self

    def score(self, users, history):
        rows = (history > 0).astype(np.float32) @ self.cooc_
        return torch.as_tensor(rows.toarray(), device=self.device_)

    def chosen(self):
        return {"pairs": int(self.cooc_.nnz)}


@graph_half("toy_cooc", auto=True)
def _toy(params):
    return CoOccurrence()
'''


@pytest.fixture
def toy_half(tmp_path: Path) -> Iterator[str]:
    """The toy file written and imported (its decorator registers it); unregistered afterwards."""
    path = tmp_path / "toy_half.py"
    path.write_text(textwrap.dedent(TOY))
    spec = importlib.util.spec_from_file_location("toy_half", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["toy_half"] = module
    spec.loader.exec_module(module)
    yield "toy_cooc"
    MODELS.pop("toy_cooc", None)
    GRAPH_HALVES.pop("toy_cooc", None)
    sys.modules.pop("toy_half", None)


def test_an_unregistered_half_is_refused_by_the_config() -> None:
    with pytest.raises(ValueError, match="warm_model: unknown model 'toy_cooc'"):
        FusionConfig(warm_model="toy_cooc")


def test_a_registered_toy_half_is_fused_named_and_chosen_by_auto(toy_half: str) -> None:
    data, items = planted()
    named = make_model("hybrid", {"neighbours": 5, "warm_model": toy_half}).fit(data)
    assert named.chosen()["warm_model"] == toy_half
    assert named.chosen()["warm"]["pairs"] > 0  # the toy's own record reaches chosen()
    users = np.arange(2, 20)
    history = data.train.matrix()[users]
    graph = named.warm_.score(users, history)
    assert float(graph.abs().sum()) > 0 and named.score(users, history).isfinite().all()

    auto = make_model("hybrid", {"neighbours": 5, "auto_warm": ["gf_cf", toy_half]}).fit(data)
    tried = auto.chosen()["warm_only valid_recall@20 by warm model"]
    assert set(tried) == {"gf_cf", toy_half}  # both fitted and measured on the rehearsal
    assert auto.chosen()["warm_model"] == max(tried, key=tried.get)
    default = FusionConfig()  # auto_warm None: every half marked auto, the toy included
    assert toy_half in auto_halves(default.auto_warm, n_items=len(items))


def test_text_propagated_over_the_graph_is_a_named_half() -> None:
    """text_gcn (text vectors propagated LightGCN-style over the graph) is the graph signal when named."""
    data, _ = planted()
    model = make_model("hybrid", {"neighbours": 5, "warm_model": "text_gcn"}).fit(data)
    assert model.chosen()["warm_model"] == "text_gcn"
    assert "text_gcn" not in auto_halves(None, n_items=100)  # named only: auto keeps to the filters
    # past the column rehearsal's threshold auto keeps to the halves with a column form
    assert auto_halves(None, n_items=100) == ["gf_cf", "bspm", "ease"]
    assert auto_halves(None, n_items=60_000) == ["gf_cf"]
    users = np.arange(2, 20)
    history = data.train.matrix()[users]
    assert model.score(users, history).isfinite().all()
