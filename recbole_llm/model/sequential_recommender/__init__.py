"""Sequential recommenders provided by recbole-llm."""

from recbole_llm.model.sequential_recommender.comirec import ComiRec

__all__ = ["ComiRec"]
