"""hybrid-serve and hybrid-recommend on the tiny two-taste model: every endpoint, every bad input
(the server healthy after each), hot reload, the API key, and a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from hybrid.recommender import HybridRecommender
from hybrid.serving.app import ServeConfig, create_app
from hybrid.serving.batch import export


@pytest.fixture(scope="module")
def client(tiny_model, tmp_path_factory) -> TestClient:
    folder = tmp_path_factory.mktemp("serve") / "model"
    shutil.copytree(tiny_model[1], folder)
    app = create_app(folder, ServeConfig(max_k=50, max_body_bytes=4096, api_key="secret"))
    return TestClient(app, raise_server_exceptions=False)


def test_every_read_endpoint_answers_like_the_library(client, tiny_model) -> None:
    rec = tiny_model[0]
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and ready["items"] == len(rec.item_ids_)
    body = client.post("/recommend", json={"user": "u0", "k": 3}).json()
    ids, scores = rec.recommend("u0", k=3)
    assert body["items"] == list(ids) and body["scores"] == pytest.approx(scores.tolist(), rel=1e-5)
    restricted = client.post("/recommend", json={"user": "u0", "k": 2, "items": ["s9", "c9", "s1"]}).json()
    assert set(restricted["items"]) <= {"s9", "c9", "s1"} and len(restricted["items"]) == 2
    history = client.post("/recommend/history", json={"items": ["s1", "s2"], "k": 4}).json()
    assert list(history["items"]) == list(rec.recommend_for_history(["s1", "s2"], k=4)[0])
    text = client.post("/recommend/text", json={"text": "starships and aliens", "k": 3}).json()
    assert text["items"] == list(rec.recommend_for_text("starships and aliens", k=3)[0])
    similar = client.post("/similar", json={"item": "c2", "k": 3}).json()
    assert "c2" not in similar["items"] and len(similar["items"]) == 3


def test_recommend_says_which_places_explore(client, tiny_model) -> None:
    rec = tiny_model[0]
    plain = client.post("/recommend", json={"user": "u0", "k": 4}).json()
    assert plain["explore"] == [False] * 4
    body = client.post("/recommend", json={"user": "u0", "k": 4, "explore": {"slots": 2, "policy": "ucb"}}).json()
    ids, _, flags = rec.recommend("u0", k=4, explore={"slots": 2, "policy": "ucb"})
    assert body["items"] == list(ids) and body["explore"] == flags.tolist() and any(body["explore"])
    bad = client.post("/recommend", json={"user": "u0", "k": 4, "explore": {"slots": -1}})
    assert bad.status_code == 422 and "slots" in bad.text


@pytest.mark.parametrize(("path", "body", "status", "names"), [
    ("/recommend", {"user": "u0", "k": 0}, 422, "k"),
    ("/recommend", {"user": "u0", "k": 51}, 422, "k"),
    ("/recommend", {"user": "u0", "k": "10"}, 422, "k"),
    ("/recommend", {"user": "u0", "k": True}, 422, "k"),
    ("/recommend", {"k": 3}, 422, "user"),
    ("/recommend", {"user": "u0", "k": 3, "colour": "red"}, 422, "colour"),
    ("/recommend", {"user": "nobody", "k": 3}, 404, "nobody"),
    ("/recommend", {"user": "u0", "k": 3, "items": ["zz"]}, 404, "zz"),
    ("/recommend", {"user": "u0", "k": 3, "items": []}, 422, "items"),
    ("/recommend", {"user": 1.5, "k": 3}, 422, "user"),
    ("/recommend/history", {"items": [], "k": 3}, 422, "items"),
    ("/recommend/history", {"items": ["zz"], "k": 3}, 404, "zz"),
    ("/recommend/text", {"text": "", "k": 3}, 422, "text"),
    ("/recommend/text", {"text": "   ", "k": 3}, 422, "text"),
    ("/recommend/text", {"text": 5, "k": 3}, 422, "text"),
    ("/similar", {"item": "zz", "k": 3}, 404, "zz"),
    ("/similar", {"k": 3}, 422, "item"),
])
def test_bad_input_gets_a_4xx_naming_the_field_and_the_server_stays_healthy(client, path, body, status, names) -> None:
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert names in response.text
    assert client.get("/health").status_code == 200
    assert client.post("/recommend", json={"user": "u0", "k": 1}).status_code == 200


def test_bad_json_oversized_bodies_and_wrong_methods_are_refused(client) -> None:
    bad = client.post("/recommend", content=b'{"user": "u0", "k": ', headers={"content-type": "application/json"})
    assert bad.status_code == 422 and "json" in bad.text.lower()
    huge = client.post("/recommend/text", json={"text": "x" * 10_000, "k": 3})
    assert huge.status_code == 413 and "4096" in huge.text
    assert client.get("/recommend").status_code == 405
    assert client.post("/nowhere", json={}).status_code == 404
    assert client.get("/health").status_code == 200


def test_adding_items_needs_the_key_and_they_are_then_recommended_by_text(client) -> None:
    new = {"items": {"s_new": "Galactic starship battle with alien fleets in deep space"}}
    assert client.post("/items", json=new).status_code == 401
    assert client.post("/items", json=new, headers={"X-API-Key": "wrong"}).status_code == 401
    added = client.post("/items", json=new, headers={"X-API-Key": "secret"})
    assert added.status_code == 200 and added.json()["added"] == 1
    text = client.post("/recommend/text", json={"text": "alien fleets and starships", "k": 10}).json()
    assert "s_new" in text["items"]
    again = client.post("/items", json=new, headers={"X-API-Key": "secret"})
    assert again.status_code == 400 and "s_new" in again.text
    assert client.post("/admin/reload", headers={"X-API-Key": "secret"}).status_code == 200
    assert client.get("/ready").json()["items"] == 21  # the added item was saved with the folder


def test_added_items_survive_a_reload_and_a_restart(tiny_model, tmp_path) -> None:
    """POST /items writes the items into the model folder before it answers: the folder on disk,
    a reload (as SIGHUP does) and a new server over the same folder all have them."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model[1], folder)
    client = TestClient(create_app(folder), raise_server_exceptions=False)
    n_items = client.get("/ready").json()["items"]
    new = {"s_kept": "A crewed mission to Mars and its rocket launch", "c_kept": "Slow-cooked stews and soups"}
    added = client.post("/items", json={"items": new})
    assert added.status_code == 200 and added.json() == {"added": 2, "items": n_items + 2}
    assert set(new) <= set(HybridRecommender.load(folder, device="cpu").item_ids_)  # on disk before the answer
    assert client.post("/admin/reload").status_code == 200
    for server in (client, TestClient(create_app(folder), raise_server_exceptions=False)):  # reloaded, restarted
        assert server.get("/ready").json()["items"] == n_items + 2
        ranked = server.post("/recommend", json={"user": "u0", "k": 2, "items": ["s_kept", "c_kept"]})
        assert ranked.status_code == 200 and ranked.json()["items"][0] == "s_kept"  # u0 is a space fan
        assert "s_kept" in server.post("/similar", json={"item": "s1", "k": 8}).json()["items"]


def test_adding_items_never_overwrites_a_folder_saved_since_the_server_loaded_it(tiny_model, tmp_path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model[1], folder)
    client = TestClient(create_app(folder), raise_server_exceptions=False)
    newer = HybridRecommender.load(folder, device="cpu")
    newer.add_items({"s_elsewhere": "A starship saved by another process"})
    newer.save(folder)  # e.g. a retrained model, not yet reloaded
    refused = client.post("/items", json={"items": {"c_late": "A soup competition"}})
    assert refused.status_code == 409 and "reload" in refused.text
    on_disk = HybridRecommender.load(folder, device="cpu").item_ids_
    assert "s_elsewhere" in on_disk and "c_late" not in on_disk
    assert client.post("/admin/reload").status_code == 200
    assert client.post("/items", json={"items": {"c_late": "A soup competition"}}).status_code == 200
    assert {"s_elsewhere", "c_late"} <= set(HybridRecommender.load(folder, device="cpu").item_ids_)


def test_requests_never_fail_while_the_model_is_reloaded(client) -> None:
    failures, done = [], threading.Event()

    def hammer() -> None:
        while not done.is_set():
            response = client.post("/recommend", json={"user": "u1", "k": 5})
            if response.status_code != 200:
                failures.append(response.status_code)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(3):
        assert client.post("/admin/reload", headers={"X-API-Key": "secret"}).status_code == 200
    done.set()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_broken_folder_on_reload_keeps_the_old_model_serving(tiny_model, tmp_path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model[1], folder)
    client = TestClient(create_app(folder), raise_server_exceptions=False)
    (folder / "ids.json").write_text("{}")
    response = client.post("/admin/reload")
    assert response.status_code == 503 and "ids.json" in response.text
    assert client.post("/recommend", json={"user": "u0", "k": 2}).status_code == 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_a_real_server_on_loopback_survives_bad_input_and_reloads_on_sighup(tiny_model, tmp_path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "hybrid.serving.serve", "--model", str(tiny_model[1]), "--port", str(port),
         "--log-level", "warning"],
        env={**os.environ, "HYBRID_API_KEY": "k"}, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        loaded = httpx.get(f"{base}/ready").json()["loaded_at"]
        assert httpx.post(f"{base}/recommend", json={"user": "u0", "k": 0}).status_code == 422
        assert httpx.post(f"{base}/recommend", content=b"not json",
                          headers={"content-type": "application/json"}).status_code == 422
        assert httpx.post(f"{base}/items", json={"items": {"x": "y"}}).status_code == 401
        server.send_signal(signal.SIGHUP)
        for _ in range(100):
            if httpx.get(f"{base}/ready").json()["loaded_at"] > loaded:
                break
            time.sleep(0.1)
        assert httpx.get(f"{base}/ready").json()["loaded_at"] > loaded
        assert httpx.post(f"{base}/recommend", json={"user": "u0", "k": 3}).json()["items"]
    finally:
        server.terminate()
        server.wait(timeout=30)


class Interrupted(Exception):
    """Stands for a kill or a crash mid-export."""


def test_batch_export_writes_every_list_and_resumes_after_an_interruption(tiny_model, tmp_path, monkeypatch) -> None:
    rec, folder = tiny_model
    out = tmp_path / "recs.parquet"
    import hybrid.serving.batch as batch

    calls, armed = [], [True]
    original = batch.HybridRecommender.recommend

    def interrupted(self, users, **kwargs):
        calls.append(len(users))
        if len(calls) == 3 and armed and armed.pop():
            raise Interrupted
        return original(self, users, **kwargs)

    monkeypatch.setattr(batch.HybridRecommender, "recommend", interrupted)
    with pytest.raises(Interrupted):
        export(folder, "all", 5, out, chunk_size=7, show_progress=False)
    assert not out.exists() and len(list((tmp_path / "recs.parquet.parts").glob("chunk_*.parquet"))) == 2
    calls.clear()
    summary = export(folder, "all", 5, out, chunk_size=7, show_progress=False)
    assert summary["resumed_chunks"] == 2 and len(calls) == 4  # 40 users in 6 chunks of 7: 2 kept, 4 ranked
    recs = pd.read_parquet(out)
    assert len(recs) == 40 * 5 and not (tmp_path / "recs.parquet.parts").exists()
    first = recs[recs["user"] == "u0"].sort_values("rank")
    assert first["item"].tolist() == list(rec.recommend("u0", k=5)[0])


def test_batch_export_refuses_parts_of_another_job_and_unknown_users(tiny_model, tmp_path) -> None:
    folder = tiny_model[1]
    out = tmp_path / "recs.parquet"
    (tmp_path / "recs.parquet.parts").mkdir()
    (tmp_path / "recs.parquet.parts" / "job.json").write_text('{"key": "other"}')
    with pytest.raises(ValueError, match="another job"):
        export(folder, "all", 5, out, show_progress=False)
    users = tmp_path / "users.txt"
    users.write_text("u0\nnobody\n")
    with pytest.raises(KeyError, match="nobody"):
        export(folder, str(users), 5, tmp_path / "other.parquet", show_progress=False)
    result = subprocess.run([sys.executable, "-m", "hybrid.serving.batch", "--model", str(folder), "--users",
                             str(tmp_path / "missing.txt"), "--out", str(out)], capture_output=True, text=True)
    assert result.returncode != 0 and "missing.txt" in result.stderr and "Traceback" not in result.stderr
    assert Path(out).exists() is False


def test_a_fault_of_the_server_is_a_500_and_a_refused_value_a_400(client, monkeypatch) -> None:
    """A ValueError the model raises about itself (not about the request) is the server's fault:
    500 with a generic message, logged; a value the caller sent that the model refuses stays 400."""
    model = client.app.state.holder.model

    def broken(*args, **kwargs):
        raise ValueError("the model returned non-finite scores; refusing to recommend from them")

    monkeypatch.setattr(model, "recommend", broken)
    response = client.post("/recommend", json={"user": "u0", "k": 3})
    assert response.status_code == 500, response.text
    assert "non-finite" not in response.text  # internals stay in the log
    monkeypatch.undo()
    row = model.user_ids_.get_loc("u0")
    seen = model.item_ids_[model.history_[row].indices].tolist()
    refused = client.post("/recommend", json={"user": "u0", "k": 3, "items": seen})
    assert refused.status_code == 400 and "seen every item" in refused.text
    assert client.post("/recommend", json={"user": "u0", "k": 1}).status_code == 200
