"""GF-CF, BSPM and EASE: their closed forms checked against dense numpy, a checkerboard, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from hybrid.data.interactions import Interactions
from hybrid.models import make_model
from hybrid.models.base import FitData


def random_data(seed: int = 0, n_users: int = 30, n_items: int = 20) -> Interactions:
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < 0.25
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = True  # nobody empty
    users, items = np.nonzero(dense)
    return Interactions.from_frame(pd.DataFrame({"user": users, "item": items}))


def normalised(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    du, di = r.sum(1), r.sum(0)
    inv_u = np.where(du > 0, du, 1.0) ** -0.5 * (du > 0)
    inv_i = np.where(di > 0, di, 1.0) ** -0.5 * (di > 0)
    return inv_u[:, None] * r * inv_i[None, :], di


def test_gf_cf_is_the_linear_plus_ideal_filter() -> None:
    data = random_data()
    r = data.matrix().toarray().astype(np.float64)
    norm, degree = normalised(r)
    k, alpha = 5, 0.3
    _, _, vt = np.linalg.svd(norm)
    v = vt[:k].T
    inv = np.where(degree > 0, degree, 1.0) ** -0.5 * (degree > 0)
    expected = r @ norm.T @ norm + alpha * ((r * inv) @ v @ v.T) * np.sqrt(degree)
    model = make_model("gf_cf", {"factors": k, "alpha": alpha, "svd_iterations": 20}).fit(FitData(train=data))
    users = np.arange(data.n_users)
    got = model.score(users, data.matrix()).numpy()
    assert np.allclose(got, expected, atol=1e-4)


def test_bspm_one_rk4_step_is_the_fourth_order_taylor_polynomial() -> None:
    data = random_data(1)
    r = data.matrix().toarray().astype(np.float64)
    norm, _ = normalised(r)
    p = norm.T @ norm
    h, beta = 2.5, 0.2
    start = r @ p  # blur: one Euler step of dy/dt = yP − y over T_b = 1; no ideal term (factors 0)
    poly = np.eye(len(p)) - h * p + (h * p) @ (h * p) / 2 - np.linalg.matrix_power(h * p, 3) / 6 \
        + np.linalg.matrix_power(h * p, 4) / 24
    expected = start @ poly
    model = make_model("bspm", {"factors": 0, "beta": beta, "sharpen_time": h}).fit(FitData(train=data))
    got = model.score(np.arange(data.n_users), data.matrix()).numpy()
    assert np.allclose(got, expected, atol=1e-4)


def test_bspm_with_ideal_term_partial_blur_and_two_steps_matches_dense_rk4() -> None:
    data = random_data(2)
    r = data.matrix().toarray().astype(np.float64)
    norm, degree = normalised(r)
    p = norm.T @ norm
    k, beta, blur, h = 4, 0.3, 0.5, 1.0
    _, _, vt = np.linalg.svd(norm)
    inv = np.where(degree > 0, degree, 1.0) ** -0.5 * (degree > 0)
    y = (1 - blur) * r + blur * r @ p + beta * ((r * inv) @ vt[:k].T @ vt[:k]) * np.sqrt(degree)
    for _ in range(2):  # classic RK4 on dy/dt = −y P, two steps of h
        k1 = -y @ p
        k2 = -(y + h / 2 * k1) @ p
        k3 = -(y + h / 2 * k2) @ p
        k4 = -(y + h * k3) @ p
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    params = {"factors": k, "beta": beta, "blur_time": blur, "sharpen_time": 2 * h, "sharpen_steps": 2,
              "svd_iterations": 20}
    model = make_model("bspm", params).fit(FitData(train=data))
    got = model.score(np.arange(data.n_users), data.matrix()).numpy()
    assert np.allclose(got, y, atol=1e-4)


def test_ease_matches_the_closed_form_and_refuses_a_huge_catalogue() -> None:
    data = random_data(2)
    x = data.matrix().toarray().astype(np.float64)
    reg = 10.0
    inverse = np.linalg.inv(x.T @ x + reg * np.eye(x.shape[1]))
    weights = -inverse / np.diag(inverse)
    np.fill_diagonal(weights, 0)
    model = make_model("ease", {"reg": reg}).fit(FitData(train=data))
    assert np.allclose(model.score(np.arange(data.n_users), data.matrix()).numpy(), x @ weights, atol=1e-4)
    with pytest.raises(ValueError, match=r"ease needs a dense 20 x 20 inverse .* more than max_items=10 items: use gf_cf"):
        make_model("ease", {"max_items": 10}).fit(FitData(train=data))


@pytest.mark.parametrize("name", ["gf_cf", "bspm", "ease"])
def test_checkerboard_puts_the_held_out_item_first_and_survives_save_load(name: str, tmp_path) -> None:
    # Two blocks of 10 users x 10 items; each user misses one item of their own block.
    rows = [(u, i) for u in range(20) for i in range(10) if i != u % 10]
    frame = pd.DataFrame([(u, i + 10 * (u >= 10)) for u, i in rows], columns=["user", "item"])
    data = Interactions.from_frame(frame, item_ids=pd.Index(range(20)))
    model = make_model(name, {"factors": 4} if name != "ease" else {"reg": 1.0}).fit(FitData(train=data))
    users = np.arange(20)
    history = data.matrix()
    scores = model.score(users, history).clone()
    scores[torch.as_tensor(history.toarray() > 0)] = -torch.inf
    expected = [u % 10 + 10 * (u >= 10) for u in range(20)]
    assert scores.argmax(1).tolist() == [data.item_index([e])[0] for e in expected]
    model.save(tmp_path / name)
    loaded = type(model).load(tmp_path / name)
    assert torch.allclose(loaded.score(users, history), model.score(users, history), atol=1e-5)


def test_filters_fit_on_train_and_validation_by_default() -> None:
    data = random_data(3)
    half = np.arange(len(data)) % 2 == 0
    part = {
        name: Interactions(data.user_ids, data.item_ids, data.users[mask], data.items[mask], data.weights[mask], None)
        for name, mask in (("train", half), ("valid", ~half))
    }
    both = make_model("gf_cf", {"factors": 3}).fit(FitData(train=part["train"], valid=part["valid"]))
    only = make_model("gf_cf", {"factors": 3, "fit_on": "train"}).fit(FitData(train=part["train"], valid=part["valid"]))
    assert (both.graph_.matrix != data.matrix()).nnz == 0
    assert (only.graph_.matrix != part["train"].matrix()).nnz == 0


def test_bad_filter_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"gf_cf\.factors must be >= 0"):
        make_model("gf_cf", {"factors": -1})
    with pytest.raises(ValueError, match=r"bspm\.sharpen_time must be > 0"):
        make_model("bspm", {"sharpen_time": 0.0})
    with pytest.raises(ValueError, match=r"ease\.reg must be > 0"):
        make_model("ease", {"reg": -1.0})
    with pytest.raises(ValueError, match="unknown"):
        make_model("gf_cf", {"alpah": 0.3})
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        type(make_model("gf_cf")).load("/nonexistent/folder")


def test_an_item_with_no_interactions_scores_zero() -> None:
    data = random_data(4)
    wide = Interactions.from_frame(data.to_frame(), item_ids=data.item_ids.append(pd.Index([999])))
    model = make_model("gf_cf", {"factors": 3}).fit(FitData(train=wide))
    scores = model.score(np.arange(wide.n_users), sp.csr_matrix(wide.matrix()))
    assert torch.all(scores[:, -1] == 0)
