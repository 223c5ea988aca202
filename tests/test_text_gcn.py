"""text_gcn: text vectors propagated over the graph, by hand on a tiny graph, and new items by text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from hybrid.data.interactions import Interactions
from hybrid.models.base import FitData, make_model
from hybrid.models.text_gcn import propagate_text


def test_propagation_matches_the_rule_by_hand() -> None:
    graph = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 0]], np.float32))  # item 2 has no edge
    text = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    x0 = text / np.linalg.norm(text, axis=1, keepdims=True)
    r = graph.toarray()
    norm = r / np.sqrt(r.sum(1, keepdims=True)) / np.sqrt(np.maximum(r.sum(0, keepdims=True), 1))
    u0 = (r / r.sum(1, keepdims=True)) @ x0
    x1, u1 = norm.T @ u0, norm @ x0
    x2 = norm.T @ u1
    expected = (x0 + x1 + x2) / 3
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(propagate_text(text, graph, 2), expected, atol=1e-6)
    assert np.allclose(propagate_text(text, graph, 2)[2], x0[2])  # a new item keeps its text vector
    assert np.allclose(propagate_text(text, graph, 0), x0)


def test_a_new_item_is_found_by_its_text() -> None:
    texts = ["space rockets and planets", "galaxy stars astronaut", "pasta cooking recipe",
             "italian kitchen sauce", "a new telescope for watching planets and stars"]
    frame = pd.DataFrame({"user": [0, 0, 1, 1, 2, 3], "item": [0, 1, 2, 3, 0, 2]})
    train = Interactions.from_frame(frame, user_ids=range(4), item_ids=range(5))
    model = make_model("text_gcn").fit(FitData(train=train, item_text=texts))
    scores = model.score(np.array([2, 3]), sp.csr_matrix(train.matrix()[[2, 3]])).numpy()
    assert scores[0, 4] > scores[0, 2] and scores[0, 4] > scores[0, 3]  # the space fan gets the telescope
    assert scores[1, 4] < scores[1, 3]
    with pytest.raises(ValueError, match="layers"):
        make_model("text_gcn", {"layers": -1})
