"""hybrid-coldstart: recommendations for users and items with little or no history."""

from hybrid.data.datasets import load_dataset
from hybrid.data.interactions import Columns, Interactions, item_texts
from hybrid.fusion.config import FusionConfig
from hybrid.recommender import HybridRecommender

__all__ = ["Columns", "FusionConfig", "HybridRecommender", "Interactions", "item_texts", "load_dataset"]
__version__ = "0.1.0"
