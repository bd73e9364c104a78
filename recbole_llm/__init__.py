"""recbole-llm: LLM-based sequential recommenders on pretrained ID embeddings, built on RecBole."""

from recbole_llm import compat as _compat

_compat.apply()

__version__ = "0.3.0"

# The public API, imported on first use (PEP 562): ``import recbole_llm`` stays fast (no torch,
# no RecBole; ``recbole-llm --help``) and imports no later stage of the pipeline.
_EXPORTS = {"load_run": "recbole_llm.inference", "recommend": "recbole_llm.inference",
            "LoadedRun": "recbole_llm.inference"}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'recbole_llm' has no attribute {name!r}")


__all__ = ["LoadedRun", "__version__", "load_run", "recommend"]
