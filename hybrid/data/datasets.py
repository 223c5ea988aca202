"""The data set registry: every named data set, where it lives under a data root, and its loader.

Every loader returns a :class:`~hybrid.data.bundle.DataBundle` whose ``interactions`` frame goes
straight into :meth:`hybrid.data.interactions.Interactions.from_frame` and whose text series feed the
encoders and the LLM prompts. The real data sets (MovieLens, Gowalla, Amazon, Last.fm) may not be
redistributed, so they are read in place from a data root (``--data-root`` or ``HYBRID_DATA_ROOT``)
or from ``data.path``; only Online Retail (CC BY 4.0) ships with the package. The loaders live in one
module per family (:mod:`.online_retail`, :mod:`.movielens`, :mod:`.lightgcn_format`, :mod:`.amazon`,
:mod:`.lastfm`), a config's own files in :mod:`.own_files`; their names are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from hybrid.data.amazon import load_amazon_magazine, load_amazon_scientific
from hybrid.data.bundle import DATA_ROOT_ENV, DataBundle, logged
from hybrid.data.lastfm import load_lastfm
from hybrid.data.lightgcn_format import load_lightgcn
from hybrid.data.movielens import load_ml1m, load_ml100k, load_ml_latest_small
from hybrid.data.online_retail import load_online_retail
from hybrid.data.own_files import load_files

__all__ = ["DATASET_NAMES", "DATA_ROOT_ENV", "DataBundle", "load_amazon_magazine", "load_amazon_scientific",
           "load_dataset", "load_files", "load_lastfm", "load_lightgcn", "load_ml1m", "load_ml100k",
           "load_ml_latest_small", "load_online_retail"]

# ---------------------------------------------------------------------------- registry
# name -> (folder under the data root, loader); None marks the bundled set, or a set in
# _NEEDS_PATH that has no usual folder and is read from data.path only.
_REGISTRY: dict[str, tuple[str | None, Callable[..., DataBundle]]] = {
    "online_retail": (None, load_online_retail),
    "ml-100k": ("ml-100k", load_ml100k),
    "ml-latest-small": ("ml-latest-small", load_ml_latest_small),
    "ml-1m": ("ml-1m", load_ml1m),
    "ml-1m-predefined": ("ml-1m", partial(load_ml1m, predefined=True, name="ml-1m-predefined")),
    "gowalla": ("lightgcn-gowalla", partial(load_lightgcn, name="gowalla")),
    "amazon-scientific": ("amazon-scientific-unisrec", load_amazon_scientific),
    "lastfm": ("hetrec-lastfm-2k", load_lastfm),
    "amazon-magazine": ("amazon2018-magazine-subscriptions", load_amazon_magazine),
    "lightgcn_format": (None, partial(load_lightgcn, name="lightgcn_format")),
}
_NEEDS_PATH = frozenset({"lightgcn_format"})
DATASET_NAMES = tuple(_REGISTRY)


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def load_dataset(name: str, data_root: str | Path | None = None, path: str | Path | None = None) -> DataBundle:
    """Load a data set by registry name (see ``DATASET_NAMES``).

    Args:
        name: "online_retail" (bundled), "ml-100k", "ml-latest-small", "ml-1m",
            "ml-1m-predefined", "gowalla", "amazon-scientific", "lastfm", "amazon-magazine" or
            "lightgcn_format";
            case, "-" and "_" do not matter.
        data_root: folder holding the real data sets (``<root>/ml-100k`` etc.); defaults to
            the ``HYBRID_DATA_ROOT`` environment variable. Not needed for the bundled set.
        path: the data set's own folder (or file), overriding ``data_root``; required for
            "lightgcn_format" (a folder with train.txt/test.txt, or a zip holding them).
    """
    matches = [key for key in _REGISTRY if _canonical(key) == _canonical(name)]
    if not matches:
        raise ValueError(f"name: unknown data set {name!r}; choose one of {list(DATASET_NAMES)}")
    folder, loader = _REGISTRY[matches[0]]
    if path is not None:
        return logged(loader(Path(path).expanduser()))
    if matches[0] in _NEEDS_PATH:
        raise ValueError(
            f"data.path: data set {matches[0]!r} has no usual folder; set data.path (path=) to a folder "
            "with train.txt/test.txt or a zip holding them"
        )
    if folder is None:
        return logged(loader(None))
    root = data_root if data_root is not None else os.environ.get(DATA_ROOT_ENV)
    if not root:
        raise FileNotFoundError(
            f"data set {matches[0]!r} is read from a folder {folder!r} under a data root, and none was "
            f"given: pass --data-root (data_root=) or set {DATA_ROOT_ENV}"
        )
    location = Path(root).expanduser() / folder
    if not location.exists():
        raise FileNotFoundError(
            f"data folder {location} not found for data set {matches[0]!r}: pass --data-root "
            f"(data_root=) pointing at the folder that holds {folder!r}, or set {DATA_ROOT_ENV}"
        )
    return logged(loader(location))
