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

# This package's model packages, one module per model named after it in lower case: the ID models
# (ComiRec) and the LLM recommenders.
_OWN_PACKAGES = ("recbole_llm.id_models", "recbole_llm.model.sequential_recommender")
_RECBOLE_SUBMODULES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
    "exlib_recommender",
)


def _own_model(name):
    for package in _OWN_PACKAGES:
        path = f"{package}.{name.lower()}"
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
    packages = _OWN_PACKAGES + tuple(f"recbole.model.{sub}" for sub in _RECBOLE_SUBMODULES)
    for package in packages:
        try:
            pkg = importlib.import_module(package)
        except ImportError:
            continue
        for info in pkgutil.iter_modules(pkg.__path__):
            try:
                module = importlib.import_module(f"{package}.{info.name}")
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


def get_trainer(model_type, model_name, model_class=None):
    """Trainer class: ``recbole_llm.trainer.<Model>Trainer`` if it exists; else the trainer the
    model class names in its ``trainer_class`` attribute (the LLM models: ``LMTrainer``, through
    their base class, so a new LLM model needs no trainer of its own); else RecBole's choice.
    ``model_class`` defaults to this package's model of that name.

    The class returned always writes and reads checkpoints through
    :mod:`recbole_llm.checkpoint` (see :func:`recbole_llm.trainer.safe_trainer`).
    """
    from recbole_llm import trainer as own_trainers

    model_class = model_class or _own_model(model_name)
    cls = getattr(own_trainers, f"{model_name}Trainer", None)
    if cls is None and getattr(model_class, "trainer_class", None):
        cls = getattr(own_trainers, model_class.trainer_class)
    if cls is None:
        cls = recbole_get_trainer(model_type, model_name)
    return own_trainers.safe_trainer(cls)


__all__ = ["get_model", "get_trainer", "available_models", "ModelType"]
