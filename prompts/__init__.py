"""Prompt templates for the LLM reranker, kept as Jinja2 files so they can be read and edited
without touching code.

Templates are rendered with :class:`jinja2.StrictUndefined`: a variable the caller forgot is
an error, not a silently empty string. A prompt with a hole in it still produces fluent text
and plausible-looking scores, which is exactly the failure that would go unnoticed.

Templates (``render(name, ...)`` variables):
    profile: ``text`` (onboarding answers), ``side_info`` (e.g. "age 25, female, engineer"),
        ``liked_titles`` (list of str). Each may be empty, none may be missing.
    listwise: ``profile`` (a rendered profile block), ``candidates`` (list of titles, shown
        numbered from 1).
    likelihood: ``profile``. The candidate title is scored as the answer to this prompt, so
        it does not list the candidates.
"""

from __future__ import annotations

import functools
from importlib.resources import files

import jinja2

__all__ = ["TEMPLATES", "render"]

TEMPLATES = ("likelihood", "listwise", "profile")


def _load(name: str) -> str:
    return files(__name__).joinpath(f"{name}.j2").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    # autoescape is off on purpose: this is plain text for a language model, not HTML.
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def render(name: str, **variables: object) -> str:
    """Render the template ``prompts/<name>.j2`` with ``variables``.

    Args:
        name: one of :data:`TEMPLATES`.
        **variables: the template's variables; see the module docstring.

    Returns:
        The rendered text, stripped of leading and trailing whitespace.

    Raises:
        ValueError: ``name`` is not a known template.
        jinja2.UndefinedError: the template uses a variable that was not passed.
    """
    if name not in TEMPLATES:
        raise ValueError(f"name must be one of {TEMPLATES}, got {name!r}")
    return _environment().get_template(name).render(**variables).strip()
