"""Frozen language-model backbone shared by the LLM recommenders (no recommendation logic here)."""

from recbole_llm.lm.backbone import ARCHITECTURES, FrozenLM, autocast_dtype, check_architecture, load_tokenizer
from recbole_llm.lm.prompt import HardPrompt
from recbole_llm.lm.resolve import DEFAULT_LM, ResolvedLM, resolve_lm

__all__ = ["ARCHITECTURES", "FrozenLM", "HardPrompt", "ResolvedLM", "autocast_dtype", "check_architecture",
           "load_tokenizer", "resolve_lm", "DEFAULT_LM"]
