"""The graph halves the hybrid can fuse with its text signals: one table, one registration.

A graph half is any registered model that scores warm items from the interaction graph (its
``score`` is the hybrid's ``graph`` signal). ``warm_model: auto`` tries every half marked
``auto`` whose size rule admits the catalogue and keeps the one that ranks the rehearsal's warm
positives best (:func:`hybrid.fusion.selection.choose_graph_half`). Adding one is one file:

    @graph_half("my_filter", auto=True)
    def _my_filter(params): return MyFilter(**params)

which registers the model (``hybrid-eval`` can run it alone) and makes it a graph half.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hybrid.models.base import ModelFactory, model_names, register

# "auto" tries EASE only up to this many items: its dense inverse costs n³ flops and n² floats
# (5,000 items: 1.25e11 flops and 100 MB; 20,000: 64x the flops and 1.6 GB), while GF-CF and BSPM
# grow with the interactions.
EASE_MAX_ITEMS = 5_000
# ... and BSPM only up to this many: it has no column form (every score is a full row through
# eight products by P), so past the gates' column rehearsal (FusionConfig.column_items, the same
# default) it would bring back the full rows that rehearsal avoids. GF-CF scores columns exactly.
BSPM_MAX_ITEMS = 50_000


@dataclass(frozen=True)
class GraphHalf:
    """A graph half: its model name, whether ``auto`` tries it, and the most items it is tried on."""

    name: str
    auto: bool = False
    max_items: int | None = None

    def admits(self, n_items: int) -> bool:
        return self.max_items is None or n_items <= self.max_items


# The built-in halves (their models register lazily in hybrid.models.base.BUILTIN_MODELS): the
# training-free filters are tried by "auto"; the trained ones, and text_gcn (the LightGCN-style
# propagation of text vectors over the graph, the TFCE peer), are there to be named.
GRAPH_HALVES: dict[str, GraphHalf] = {h.name: h for h in (
    GraphHalf("gf_cf", auto=True), GraphHalf("bspm", auto=True, max_items=BSPM_MAX_ITEMS),
    GraphHalf("ease", auto=True, max_items=EASE_MAX_ITEMS),
    GraphHalf("lightgcn"), GraphHalf("mf"), GraphHalf("text_gcn"),
)}


def graph_half(name: str, auto: bool = False, max_items: int | None = None) -> Callable[[ModelFactory], ModelFactory]:
    """Register a model factory under ``name`` and make it a graph half of the hybrid."""

    def add(factory: ModelFactory) -> ModelFactory:
        if name in GRAPH_HALVES:
            raise ValueError(f"graph half {name!r} is registered twice")
        register(name)(factory)
        GRAPH_HALVES[name] = GraphHalf(name, auto, max_items)
        return factory

    return add


def auto_names(names: tuple[str, ...] | None) -> tuple[str, ...]:
    """``names``, or where None every half marked auto, in registration order."""
    return names if names is not None else tuple(n for n, h in GRAPH_HALVES.items() if h.auto)


def auto_halves(names: tuple[str, ...] | None, n_items: int) -> list[str]:
    """The halves ``auto`` tries on a catalogue of ``n_items``: :func:`auto_names` less those
    whose size rule refuses it."""
    return [n for n in auto_names(names) if GRAPH_HALVES[n].admits(n_items)]


def check_half(name: str, field: str) -> None:
    """A ValueError naming ``field`` unless ``name`` is a registered graph half."""
    if name not in GRAPH_HALVES and name not in model_names():
        raise ValueError(f"{field}: unknown model {name!r}; the graph halves are {list(GRAPH_HALVES)}")
    if name not in GRAPH_HALVES:
        raise ValueError(f"{field} must be a graph model, one of the graph halves {list(GRAPH_HALVES)}, got {name!r}")
