"""hybrid-coldstart: recommendations for users and items with little or no history."""

from hybrid.data import Columns, Interactions, item_texts

__all__ = ["Columns", "Interactions", "item_texts"]
__version__ = "0.1.0"
