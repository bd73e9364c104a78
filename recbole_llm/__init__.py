"""recbole-llm: LLM-based sequential recommenders on pretrained ID embeddings, built on RecBole."""

from recbole_llm import compat as _compat

_compat.apply()

__version__ = "0.3.0"
