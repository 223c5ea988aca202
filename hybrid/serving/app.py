"""The HTTP service: a fitted :class:`~hybrid.recommender.HybridRecommender` behind FastAPI.

Every request reads the model through one reference taken at its start, so a reload (``POST
/admin/reload`` or SIGHUP) or an ``/items`` update builds the new model beside the old one and
swaps the reference: no request ever sees half of each, and none fails during the swap. The
mutating endpoints take a lock among themselves and, when the server has an API key, require it
in the ``X-API-Key`` header.

``POST /items`` saves the updated model over its folder (atomically, as ``save`` does) before it
answers, so a reload, SIGHUP or a restart keeps the items; it costs one save of the model. It is
refused (409) when the folder changed on disk since this server loaded it: writing over it would
lose that save, so the caller reloads first.

Client errors are 4xx with a message naming the field: 422 for a body that is not valid JSON or
breaks the schema (FastAPI names the field's location), 400 for values the model refuses
(:class:`~hybrid.data.interactions.BadInputError`), 404 for unknown ids, 413 for a body over the
size limit, 401 for a missing or wrong key. Any other error is the server's own: 500 with a
generic message, the traceback in the log.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from hybrid.data.buckets import SPARSE_BELOW
from hybrid.data.interactions import BadInputError, UnknownIdError, coerce_ids_like
from hybrid.fusion.explore import ExploreConfig
from hybrid.persistence import folder_version
from hybrid.recommender import HybridRecommender

logger = logging.getLogger(__name__)

Id = int | str


@dataclass
class ServeConfig:
    """Limits and access of one server.

    Attributes:
        max_k: the longest list a client may ask for.
        max_body_bytes: requests with a larger body get 413 before they are parsed.
        max_text_chars: the longest ``/recommend/text`` query.
        api_key: required on ``/items`` and ``/admin/reload`` when set.
        device: where the model is loaded ("auto", "cpu", "cuda").
    """

    max_k: int = 1000
    max_body_bytes: int = 1 << 20
    max_text_chars: int = 10_000
    api_key: str | None = None
    device: str = "cpu"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "k": "10" or true is a 422, not a guess


class ExploreBody(Strict):
    """:class:`~hybrid.fusion.explore.ExploreConfig`'s fields: exploration slots for new or sparse items."""

    slots: int = Field(1, ge=0)
    policy: Literal["thompson", "ucb", "epsilon"] = "thompson"
    max_count: int = Field(SPARSE_BELOW, ge=1)
    width: float = Field(1.0, ge=0)
    seed: int = 0


class RecommendBody(Strict):
    user: Id
    k: int = Field(10, ge=1)
    items: list[Id] | None = Field(None, min_length=1)
    explore: ExploreBody | None = None
    explain: bool = False  # each listed item's explanation (hybrid.explanations) in ``explanations``


class ExplainBody(Strict):
    user: Id
    item: Id


class HistoryBody(Strict):
    items: list[Id] = Field(min_length=1)
    k: int = Field(10, ge=1)


class TextBody(Strict):
    text: str = Field(min_length=1)
    k: int = Field(10, ge=1)


class SimilarBody(Strict):
    item: Id
    k: int = Field(10, ge=1)


class ItemsBody(Strict):
    items: dict[str, str] = Field(min_length=1)


class Ranked(BaseModel):
    items: list[Id]
    scores: list[float]
    explore: list[bool] | None = None  # /recommend: which places are exploratory slots
    explanations: list[dict[str, Any]] | None = None  # /recommend with "explain": true: one per item


class FolderChangedError(RuntimeError):
    """The model folder was saved over since this server loaded it (a 409: reload first)."""


class ModelHolder:
    """The live model, the folder it came from and that folder's version when it was read; a
    reload or an update replaces the model in one assignment."""

    def __init__(self, path: Path, device: str) -> None:
        self.path, self.device = path, device
        self.lock = threading.Lock()  # serialises the mutations (reload, add items) among themselves
        # The version is read before the model: a save landing in between makes /items refuse, never clobber.
        self.version = folder_version(path)
        self.model: HybridRecommender = HybridRecommender.load(path, device=device)
        self.loaded_at = time.time()

    def reload(self) -> HybridRecommender:
        with self.lock:
            version = folder_version(self.path)
            fresh = HybridRecommender.load(self.path, device=self.device)
            self.model, self.version, self.loaded_at = fresh, version, time.time()
            logger.info("reloaded the model from %s", self.path)
            return fresh

    def add_items(self, item_text: dict[Any, str]) -> int:
        """Add the items to a copy of the live model, save it over the folder, then serve it: the
        items are on disk before the caller hears they were added. Returns the catalogue's size."""
        with self.lock:
            if folder_version(self.path) != self.version:
                raise FolderChangedError(f"{self.path} was saved over since this server loaded it; reload it "
                                         "(POST /admin/reload or SIGHUP), then add the items again")
            updated = self.model.copy()
            updated.add_items(item_text)
            updated.save(self.path)
            self.model, self.version = updated, folder_version(self.path)
            logger.info("added %d items and saved the model to %s", len(item_text), self.path)
            return len(updated.item_ids_)


def _plain(values: np.ndarray) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def _ranked(items: np.ndarray, scores: np.ndarray, explore: np.ndarray | None = None) -> Ranked:
    flags = None if explore is None else [bool(f) for f in explore]
    return Ranked(items=_plain(items), scores=[float(s) for s in scores], explore=flags)


def _item_ids(model: HybridRecommender, ids: list[Id]) -> list[Any]:
    """JSON ids as the model's ids: "42" finds item 42 when the model's ids are integers, 42 finds "42"."""
    return coerce_ids_like(pd.Index(ids, dtype=object), model.item_ids_).tolist()


def _user_id(model: HybridRecommender, user: Id) -> Any:
    return coerce_ids_like(pd.Index([user], dtype=object), model.user_ids_).tolist()[0]


def create_app(model_dir: str | Path, config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI application serving the model saved in ``model_dir`` (loaded now)."""
    config = config or ServeConfig()
    holder = ModelHolder(Path(model_dir), config.device)
    app = FastAPI(title="hybrid-coldstart", version="0.1.0")
    app.state.holder = holder
    _guard(app, config)
    _read_routes(app, holder, config)
    _write_routes(app, holder, config)
    return app


def _guard(app: FastAPI, config: ServeConfig) -> None:
    """The body-size limit and the error handlers (4xx for the caller's mistakes, 500 for ours)."""

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > config.max_body_bytes):
            return JSONResponse({"detail": f"body larger than {config.max_body_bytes} bytes"}, status_code=413)
        if length is None and request.method == "POST":
            body = await request.body()  # chunked upload: measured once read, still bounded by the check
            if len(body) > config.max_body_bytes:
                return JSONResponse({"detail": f"body larger than {config.max_body_bytes} bytes"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(UnknownIdError)
    async def unknown(_: Request, error: UnknownIdError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(BadInputError)
    async def refused(_: Request, error: BadInputError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.exception_handler(ValueError)
    async def fault(request: Request, error: ValueError) -> JSONResponse:
        # Not a value the caller sent (those are BadInputError): the model's or the server's fault.
        logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)


def _read_routes(app: FastAPI, holder: ModelHolder, config: ServeConfig) -> None:
    """The endpoints that read the live model: health, readiness, the four rankings and explanations."""

    def check_k(k: int) -> None:
        if k > config.max_k:
            raise HTTPException(422, f"k: must be at most {config.max_k}, got {k}")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/ready")
    def ready() -> dict[str, Any]:
        model = holder.model
        return {"status": "ready", "users": len(model.user_ids_), "items": len(model.item_ids_),
                "loaded_at": holder.loaded_at}

    @app.post("/recommend")
    def recommend(body: RecommendBody) -> Ranked:
        check_k(body.k)
        model = holder.model
        items = None if body.items is None else _item_ids(model, body.items)
        explore = ExploreConfig(**body.explore.model_dump()) if body.explore is not None else None
        ranked = model.recommend(_user_id(model, body.user), k=body.k, items=items, explore=explore,
                                 explain=body.explain)
        parts = ranked[:-1] if body.explain else ranked
        out = _ranked(*parts) if explore is not None else _ranked(*parts, np.zeros(len(parts[0]), bool))
        out.explanations = ranked[-1] if body.explain else None
        return out

    @app.post("/explain")
    def explain(body: ExplainBody) -> dict[str, Any]:
        model = holder.model
        return model.explain(_user_id(model, body.user), _item_ids(model, [body.item])[0])

    @app.post("/recommend/history")
    def recommend_history(body: HistoryBody) -> Ranked:
        check_k(body.k)
        model = holder.model
        return _ranked(*model.recommend_for_history(_item_ids(model, body.items), k=body.k))

    @app.post("/recommend/text")
    def recommend_text(body: TextBody) -> Ranked:
        check_k(body.k)
        if len(body.text) > config.max_text_chars:
            raise HTTPException(422, f"text: at most {config.max_text_chars} characters, got {len(body.text)}")
        if not body.text.strip():
            raise HTTPException(422, "text: must not be blank")
        return _ranked(*holder.model.recommend_for_text(body.text, k=body.k))

    @app.post("/similar")
    def similar(body: SimilarBody) -> Ranked:
        check_k(body.k)
        model = holder.model
        return _ranked(*model.similar_items(_item_ids(model, [body.item])[0], k=body.k))


def _write_routes(app: FastAPI, holder: ModelHolder, config: ServeConfig) -> None:
    """The endpoints that change the live model (new items, reload), behind the API key when set."""

    def require_key(x_api_key: str | None = Header(None)) -> None:
        if config.api_key is not None and not hmac.compare_digest(x_api_key or "", config.api_key):
            raise HTTPException(401, "missing or wrong X-API-Key header")

    @app.post("/items", dependencies=[Depends(require_key)])
    def add_items(body: ItemsBody) -> dict[str, Any]:
        try:
            total = holder.add_items(body.items)  # the model spells the JSON ids as its own
        except FolderChangedError as error:
            raise HTTPException(409, str(error)) from error
        except OSError as error:
            raise HTTPException(503, f"the items were not added: saving the model failed: {error}") from error
        return {"added": len(body.items), "items": total}

    @app.post("/admin/reload", dependencies=[Depends(require_key)])
    def reload() -> dict[str, Any]:
        try:
            model = holder.reload()
        except (OSError, ValueError) as error:
            raise HTTPException(503, f"reload failed, the previous model is still serving: {error}") from error
        return {"status": "reloaded", "users": len(model.user_ids_), "items": len(model.item_ids_)}
