"""Frozen language-model backbone shared by the LLM recommenders (no recommendation logic here)."""

from recbole_llm.lm.backbone import FrozenLM, autocast_dtype, load_tokenizer
from recbole_llm.lm.prompt import HardPrompt
from recbole_llm.lm.resolve import DEFAULT_LM, resolve_lm

__all__ = ["FrozenLM", "HardPrompt", "autocast_dtype", "load_tokenizer", "resolve_lm", "DEFAULT_LM"]
