"""Explanations through hybrid-serve (``POST /explain``, ``"explain": true`` on ``/recommend``) and
hybrid-recommend ``--explain`` (a ``because`` column), on the tiny two-taste model (issue 36)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from hybrid.serving.app import create_app
from hybrid.serving.batch import export, main


@pytest.fixture(scope="module")
def client(tiny_model, tmp_path_factory) -> TestClient:
    folder = tmp_path_factory.mktemp("serve") / "model"
    shutil.copytree(tiny_model[1], folder)
    return TestClient(create_app(folder), raise_server_exceptions=False)


def test_explain_answers_like_the_library(client, tiny_model) -> None:
    rec = tiny_model[0]
    body = client.post("/explain", json={"user": "u0", "item": "s9"})
    assert body.status_code == 200
    expected = rec.explain("u0", "s9")
    answer = body.json()
    assert answer["item"] == "s9" and answer["path"] == expected["path"] and answer["bucket"] == expected["bucket"]
    assert answer["score"] == pytest.approx(expected["score"], abs=1e-5)
    assert answer["score"] == pytest.approx(answer["bias"] + sum(answer["contributions"].values()), abs=1e-5)
    assert answer["because"]
    print(answer)


def test_explain_refuses_unknown_ids_and_bad_bodies(client) -> None:
    assert client.post("/explain", json={"user": "nobody", "item": "s1"}).status_code == 404
    assert client.post("/explain", json={"user": "u0", "item": "nothing"}).status_code == 404
    missing = client.post("/explain", json={"user": "u0"})
    assert missing.status_code == 422 and "item" in missing.text
    assert client.get("/health").json() == {"status": "ok"}


def test_recommend_with_explain_adds_one_explanation_per_item(client) -> None:
    plain = client.post("/recommend", json={"user": "u1", "k": 4}).json()
    assert plain["explanations"] is None
    body = client.post("/recommend", json={"user": "u1", "k": 4, "explain": True}).json()
    assert body["items"] == plain["items"] and body["explore"] == [False] * 4
    assert [e["item"] for e in body["explanations"]] == body["items"]
    for e, score in zip(body["explanations"], body["scores"], strict=True):
        assert e["bias"] + sum(e["contributions"].values()) == pytest.approx(score, abs=1e-5)
    explored = client.post("/recommend", json={"user": "u1", "k": 4, "explain": True, "explore": {"slots": 1}}).json()
    assert [e["item"] for e in explored["explanations"]] == explored["items"] and len(explored["explore"]) == 4


def test_batch_export_with_explain_writes_a_because_column(tiny_model, tmp_path) -> None:
    rec, folder = tiny_model
    out = tmp_path / "recs.parquet"
    export(folder, "all", 3, out, chunk_size=16, show_progress=False, explain=True)
    recs = pd.read_parquet(out)
    assert list(recs.columns) == ["user", "rank", "item", "score", "because"]
    assert recs["because"].str.len().min() > 0
    first = recs[recs["user"] == "u0"].sort_values("rank")
    assert first["because"].tolist() == [e["because"] for e in rec.explain_top("u0", k=3)]
    plain = tmp_path / "plain.parquet"
    main(["--model", str(folder), "--k", "3", "--out", str(plain)])
    assert "because" not in pd.read_parquet(plain).columns
    main(["--model", str(folder), "--k", "3", "--out", str(plain), "--explain"])
    assert pd.read_parquet(plain)["because"].tolist() == recs["because"].tolist()
