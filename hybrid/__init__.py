"""hybrid-coldstart: recommendations for users and items with little or no history."""

import os

# Idle worker threads of the OpenMP pool (torch, MKL) and of OpenBLAS (numpy, scipy) sleep instead
# of spinning, where the user has not said otherwise. On a machine whose cores are shared (a CI
# runner, a laptop doing other work) a spinning worker holds the core the thread it waits for
# needs, and every parallel product stalls for a scheduler slice. Results do not change: the thread
# counts, and so the order of every reduction, stay the same. Read once, when the libraries load:
# set before torch or numpy is imported, so only where hybrid is imported first (the CLIs).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from hybrid.data.datasets import load_dataset
from hybrid.data.interactions import Columns, Interactions, item_texts
from hybrid.fusion.config import FusionConfig
from hybrid.recommender import HybridRecommender

__all__ = ["Columns", "FusionConfig", "HybridRecommender", "Interactions", "item_texts", "load_dataset"]
__version__ = "0.1.0"
