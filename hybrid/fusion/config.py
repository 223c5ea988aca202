"""The hybrid's settings, checked where they are built (``hybrid-eval`` refuses a bad value
before reading data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from hybrid.data.text_features import EncoderConfig
from hybrid.fusion.halves import check_half

MIN_REHEARSAL_USERS = 1000


@dataclass
class FusionConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    # The graph half: a graph half of hybrid.fusion.halves (gf_cf, bspm, ease, lightgcn, mf, or
    # one registered there), or "auto": the half of ``auto_warm`` that ranks warm items best on
    # the rehearsal.
    warm_model: str = "auto"
    warm_params: dict[str, Any] = field(default_factory=dict)
    # The halves "auto" chooses among; None: every half marked auto (gf_cf, bspm, and EASE up to
    # EASE_MAX_ITEMS items). Two-stage retrieval needs a half with item vectors to index: gf_cf
    # and bspm have them, EASE has not.
    auto_warm: tuple[str, ...] | None = None
    neighbours: int = 50  # M: text neighbours per item
    # Validation rehearsal of the cold start (hybrid.fusion.rehearsal): by time, the last share of
    # the interactions; at random, the share of warm items made pseudo-new.
    valid_new_share: float = 0.2
    # Earlier ends of the training period (time quantiles) whose own time rehearsals add examples
    # to the item gate's fit (hybrid.fusion.rehearsal.earlier_rehearsals): more of what a
    # time-true future looks like than one cut holds; () for none, no effect without timestamps.
    earlier_cuts: tuple[float, ...] = (0.8, 0.9)
    # With a time rehearsal, the new-user gates rehearse the users it sees arrive after its cut
    # (hybrid.fusion.new_users.time_new_users) on the graph half at the cut; else, or with too few
    # of them, a random share of users held out of a refitted graph half.
    new_users_at_cut: bool = True
    # auto = by time when the training data has timestamps, else at random (the training data
    # alone decides: nothing says how the evaluation's new items arise).
    valid_new_by: Literal["auto", "time", "random"] = "auto"
    new_weight: float = 1.0  # weight of new items' validation positives (1: the one-list objective)
    # Weight of validation positives on items with 1–19 interactions; None: the smallest of
    # SPARSE_GRID that serves them on validation as well as the graph or the text profile alone.
    sparse_weight: float | None = None
    max_valid_users: int = 5000  # seeded sample of validation users the gate is fitted on
    # ... and fewer where their rows are wide: a rehearsal pass reads users × row width cells
    # (row_width: every item of a full row, or the candidate columns with their text neighbours),
    # kept to about this many, and never fewer than MIN_REHEARSAL_USERS users. A gate has a few
    # dozen weights (Last.fm's is fitted on about 1,400 users), and the rows of 5,000 users were
    # most of the fit at 20,000 items and past column_items (benchmarks/fit_scaling.py). No shared
    # data set's rehearsal is wide enough to be cut.
    rehearsal_cells: int = 2**25
    candidates: int = 100  # per signal, the top items kept as the gate's negatives
    random_negatives: int = 500  # uniform draws standing for the rest of the catalogue
    max_positives: int = 50  # per validation user (seeded sample beyond)
    # L-BFGS iterations of the gates (at most), where their rehearsal recall stops moving:
    # benchmarks/gate_steps.py (benchmarks/results/gate_steps.json).
    steps: int = 30
    reg: float = 1e-3  # L2 on the gate's weights
    bucket_reg: float = 0.01  # L2 on each warm bucket's offset from the weights all warm buckets share
    refit: bool = True  # refit the warm scorer on all training interactions after the gate is fitted
    use_user_text: bool = True  # zero-history users with profile text: their text is their profile
    # New users (never trained on, at most 4 known items) get gates of their own with the user-side
    # content path (hybrid.fusion.new_users), fitted on users removed from the rehearsal graph.
    new_users: bool = True
    # Zero-history users are ranked by popularity or trending where that beats their gate on users
    # the gate was not fitted on (hybrid.fusion.floor); False: always the gate.
    floor: bool = True
    batch_size: int = 512  # validation users scored at once
    # Past this many items the gates rehearse on each user's candidate columns, not on whole rows
    # (hybrid.fusion.columns): their cost per user then follows the candidates, not the catalogue
    # (0: always).
    column_items: int = 50_000
    # Ray for the fit's text encoding and text-neighbour search (hybrid.parallel): "local" (this
    # machine's CPUs) or a cluster address; None: in this process. ray_workers: None = every CPU.
    ray: str | None = None
    ray_workers: int | None = None

    def __post_init__(self) -> None:
        if self.auto_warm is not None:
            self.auto_warm = tuple(self.auto_warm)
        self.earlier_cuts = tuple(self.earlier_cuts)
        self.validate()  # where the config is built: hybrid-eval refuses a bad value before reading data

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first out-of-range field."""
        if not 0 < self.valid_new_share < 1:
            raise ValueError(f"valid_new_share must be in (0, 1), got {self.valid_new_share!r}")
        for end in self.earlier_cuts:
            if not 0 < end < 1:
                raise ValueError(f"earlier_cuts must be time quantiles in (0, 1), got {end!r}")
        for name in ("new_weight", "sparse_weight"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        # random_negatives >= 1: the draws stand for the rest of the catalogue (0 would leave the
        # softmax without it, and once cleared every positive through a [-0:] slice).
        for name in ("neighbours", "max_valid_users", "candidates", "max_positives", "steps", "batch_size",
                     "random_negatives", "rehearsal_cells"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.ray_workers is not None and self.ray_workers < 1:
            raise ValueError(f"ray_workers must be >= 1, got {self.ray_workers!r}")
        for name in ("reg", "bucket_reg", "column_items"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.auto_warm is not None:
            if not self.auto_warm:
                raise ValueError("auto_warm must name at least one graph half, got []")
            for name in self.auto_warm:
                check_half(name, "auto_warm")
        if self.warm_model != "auto":
            check_half(self.warm_model, "warm_model")

    def row_width(self, n_items: int) -> int:
        """Cells a rehearsal pass reads per user: every item of a full row; past ``column_items``
        the candidate columns (each signal's top, the catalogue's, the draws), each with its M text
        neighbours, which its text-graph signal gathers (hybrid.fusion.columns.graph_pairs)."""
        return n_items if n_items <= self.column_items else self.columns_per_user() * (1 + self.neighbours)

    def columns_per_user(self) -> int:
        """About how many candidate columns a column rehearsal gives each user."""
        return 5 * self.candidates + self.random_negatives

    def rehearsal_users(self, n_items: int) -> int:
        """How many users a rehearsal samples at most on a catalogue of ``n_items``."""
        return min(self.max_valid_users, max(MIN_REHEARSAL_USERS, self.rehearsal_cells // self.row_width(n_items)))

    def warm_params_of(self, name: str) -> dict[str, Any]:
        """The parameters of graph half ``name``: ``warm_params`` where it is the named half."""
        return self.warm_params if name == self.warm_model else {}
