"""recbole-llm: LLM-based sequential recommenders on pretrained ID embeddings, built on RecBole."""

from recbole_llm import compat as _compat

_compat.apply()

__version__ = "0.2.0"

from recbole_llm.provenance import loaded_commit as _loaded_commit  # noqa: E402

_loaded_commit()  # the commit of the code being loaded now, named by every record this process writes
