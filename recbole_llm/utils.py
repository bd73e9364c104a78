"""Model and trainer lookup: this package first, then RecBole (the RecBole-GNN pattern).

RecBole's ``get_model`` and ``get_trainer`` only search RecBole's own packages; an extension
must not patch them, so it resolves names itself and falls back to RecBole.
"""

import importlib
import importlib.util
import pkgutil

from recbole.utils import ModelType
from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_llm.errors import UserError

_OWN_SUBMODULES = ("sequential_recommender",)
_RECBOLE_SUBMODULES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
    "exlib_recommender",
)


def _own_model(name):
    for sub in _OWN_SUBMODULES:
        path = f"recbole_llm.model.{sub}.{name.lower()}"
        try:
            spec = importlib.util.find_spec(path)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            module = importlib.import_module(path)
            if hasattr(module, name):
                return getattr(module, name)
    return None


def available_models():
    """Names of every model this package or RecBole provides, sorted."""
    names = set()
    for prefix, subs in (("recbole_llm.model", _OWN_SUBMODULES), ("recbole.model", _RECBOLE_SUBMODULES)):
        for sub in subs:
            try:
                pkg = importlib.import_module(f"{prefix}.{sub}")
            except ImportError:
                continue
            for info in pkgutil.iter_modules(pkg.__path__):
                try:
                    module = importlib.import_module(f"{prefix}.{sub}.{info.name}")
                except ImportError:  # e.g. RecBole's lightgbm/xgboost wrappers without those libraries
                    continue
                for attr in dir(module):
                    obj = getattr(module, attr)
                    if (
                        isinstance(obj, type)
                        and attr.lower() == info.name
                        and hasattr(obj, "calculate_loss")
                    ):
                        names.add(attr)
    return sorted(names)


def get_model(name):
    """Model class by name: this package's models first, then RecBole's.

    Raises :class:`UserError` listing the valid names when neither has it.
    """
    cls = _own_model(name)
    if cls is not None:
        return cls
    try:
        return recbole_get_model(name)
    except (ValueError, AttributeError, ImportError):
        # RecBole's search ends in exlib_recommender, whose package imports lightgbm/xgboost.
        raise UserError(
            f"unknown model '{name}' (--model); valid models: {', '.join(available_models())}"
        ) from None


def get_trainer(model_type, model_name):
    """Trainer class: ``recbole_llm.trainer.<Model>Trainer`` if it exists, else RecBole's choice.

    The class returned always writes and reads checkpoints through
    :mod:`recbole_llm.checkpoint` (see :func:`recbole_llm.trainer.safe_trainer`).
    """
    from recbole_llm import trainer as own_trainers

    cls = getattr(own_trainers, f"{model_name}Trainer", None)
    if cls is None:
        cls = recbole_get_trainer(model_type, model_name)
    return own_trainers.safe_trainer(cls)


__all__ = ["get_model", "get_trainer", "available_models", "ModelType"]
