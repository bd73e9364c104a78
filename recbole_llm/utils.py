"""Model and trainer lookup: this package first, then RecBole (the RecBole-GNN pattern).

RecBole's ``get_model`` and ``get_trainer`` only search RecBole's own packages; an extension
must not patch them, so it resolves names itself and falls back to RecBole. Names are found
whatever their case and with the papers' spellings (``sasrec``, ``IDLE-Adapter``, ``RA-Rec``):
:func:`canonical_model_name`.

:func:`protocol_problem` says, before anything trains, why a RecBole model cannot run under the
benchmark's protocol (leave-one-out, full ranking, checkpoints that load with
``weights_only=True``) as configured, in one line with the fix where there is one.

Importing this module applies :func:`recbole_llm.compat.apply_recbole` (the workarounds that
touch RecBole): this is where the package first needs RecBole's models.
"""

import importlib
import importlib.util
import inspect
import pkgutil
import re
from pathlib import Path

from recbole.utils import ModelType
from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_llm import compat
from recbole_llm.errors import UserError

compat.apply_recbole()

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


def is_llm_class(model_class) -> bool:
    """Whether ``model_class`` is an LLM recommender (a subclass of ``LLMSequentialRecommender``, known
    by name: the modules before the models, config and identity among them, import none of them)."""
    return isinstance(model_class, type) and any(c.__name__ == "LLMSequentialRecommender" for c in model_class.__mro__)


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


def _exact_model(name):
    cls = _own_model(name)
    if cls is not None:
        return cls
    try:
        return recbole_get_model(name)
    except (ValueError, AttributeError, ImportError):
        # RecBole's search ends in exlib_recommender, whose package imports lightgbm/xgboost.
        return None


def normalized_name(name):
    """``name`` lower-cased without ``-``, ``_``, spaces and dots: the papers' ``IDLE-Adapter``
    and ``RA-Rec`` are ``idleadapter`` and ``rarec``, as the classes ``IDLEAdapter`` and ``RARec``."""
    return re.sub(r"[-_ .]", "", str(name)).lower()


def canonical_model_name(name):
    """The class name of model ``name`` in any case or spelling (:func:`normalized_name`):
    ``sasrec`` -> ``SASRec``, ``IDLE-Adapter`` -> ``IDLEAdapter``. Raises :class:`UserError`
    naming the closest models, then every valid one, when none matches."""
    cls = _exact_model(name)
    if cls is not None:
        return cls.__name__
    names = available_models()
    by_key = {normalized_name(n): n for n in names}
    found = by_key.get(normalized_name(name))
    if found is not None:
        return found
    import difflib

    close = difflib.get_close_matches(normalized_name(name), list(by_key), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(by_key[c] for c in close)}? " if close else ""
    raise UserError(f"unknown model '{name}' (--model); {hint}valid models (any case): {', '.join(names)}")


def get_model(name):
    """Model class by name (any case, or the papers' spelling: :func:`canonical_model_name`):
    this package's models first, then RecBole's.

    Raises :class:`UserError` listing the valid names when neither has it.
    """
    cls = _exact_model(name)
    if cls is None:
        cls = _exact_model(canonical_model_name(name))
    compat.disable_anomaly_detection()  # a RecBole model package was maybe imported just now (compat)
    return cls


def check_name(value, option, hint=""):
    """Raise :class:`UserError` unless ``value`` is one plain folder or file name (letters, digits,
    ``_ . + = -``; not ``.`` or ``..``): a dataset or sweep name becomes a folder under the results,
    data and saved folders, and ``a/b`` or ``../..`` would read or write outside them."""
    text = str(value)
    if not re.fullmatch(r"[A-Za-z0-9_+=-][A-Za-z0-9_.+=-]*", text) or text in (".", ".."):
        raise UserError(f"{option}={text!r} must be one plain name (letters, digits, _ . + = -; no '/' or '..'){hint}")
    return text


# --------------------------------------------------------------------------- the protocol
def _model_key(config, key):
    """The value of ``key`` in ``config``, or None where the config has no such key: for the keys of
    one RecBole model's own YAML (``train_stage``, ``selected_features``, ``loss_type``, ...), which
    :func:`protocol_problem` reads for any model, and whose absence is part of its answer (these
    are RecBole's models' settings, not hyperparameters of this package with a default to keep)."""
    return getattr(config, "final_config_dict", config).get(key)


def _source(obj):
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


# RecBole 1.2.1 models that import a package RecBole does not install, inside the method that needs it
# (so the model's module imports without it): model -> (module, pip name, when the run needs it).
OPTIONAL_PACKAGES = {
    "NCL": ("faiss", "faiss-cpu", lambda config: True),  # its prototype clustering, every epoch
    "NNCF": ("community", "python-louvain", lambda config: _model_key(config, "neigh_info_method") == "louvain"),
    "LDiffRec": ("kmeans_pytorch", "kmeans-pytorch", lambda config: int(_model_key(config, "n_cate") or 1) > 1),
}


def _missing_package(model_class, config):
    """The optional package (:data:`OPTIONAL_PACKAGES`) the run would import and cannot, or None."""
    entry = OPTIONAL_PACKAGES.get(model_class.__name__)
    if entry is None:
        return None
    module, pip_name, needed = entry
    if importlib.util.find_spec(module) is not None:
        return None
    if config is None:
        needed = needed({}) if model_class.__name__ == "NCL" else False  # the others: decided by the config
    else:
        needed = needed(config)
    return f"{module} (pip install {pip_name})" if needed else None


def _needs_negatives(model_class, config):
    """Whether the model's loss reads sampled negatives (RecBole's ``neg_item_id``, or the 0/1
    ``label`` RecBole makes from them), read from its ``calculate_loss``: sequential models with a
    ``loss_type`` only under ``BPR``."""
    code = _source(model_class.calculate_loss)
    if "loss_type" in code:
        return str(_model_key(config, "loss_type")).upper() == "BPR"
    return "NEG_ITEM_ID" in code or "LABEL" in code


def _keeps_python_objects(model_class):
    """Whether the model keeps fitted state that is no tensor in its checkpoint
    (``other_parameter``): the scipy/numpy matrices of RecBole's item-KNN/SLIM family, the
    feature-embedding modules of the feature-aware sequential models."""
    code = _source(inspect.getmodule(model_class))
    if "other_parameter_name" not in code:
        return False
    traditional = getattr(model_class, "type", None) == ModelType.TRADITIONAL
    return (traditional and "scipy" in code) or "EmbLayer(" in code


def protocol_problem(model_class, config=None):
    """Why ``model_class`` cannot run under the benchmark's protocol (leave-one-out split, full
    ranking over every item, checkpoints that load with ``weights_only=True``), as one line with
    the fix where there is one; None when it can. Without ``config`` only what the class alone
    says (its model type, optional packages); with it, the configured run too. Measured on
    RecBole 1.2.1's general and sequential models (tests/test_model_zoo.py)."""
    name = model_class.__name__
    kind = getattr(model_class, "type", None)
    if kind == ModelType.CONTEXT:
        return (f"{name} is a context-aware (click-through-rate) model: it learns from a label field and RecBole "
                "evaluates it on labelled user-item pairs, not by the benchmark's leave-one-out full ranking over "
                "every item (its run would fail with KeyError: 'label')")
    if kind == ModelType.KNOWLEDGE:
        return (f"{name} is a knowledge-aware model: it needs a knowledge graph (<dataset>.kg and .link files) and "
                "RecBole's knowledge-graph dataset, which the benchmark's datasets do not have")
    missing = _missing_package(model_class, config)
    if missing:
        return f"{name} needs the package {missing}, which is not installed"
    if config is None:
        return None
    stage = _model_key(config, "train_stage")
    if stage is not None:
        return (f"{name} trains in stages (train_stage: {stage}; pretraining runs save a model that a "
                "later run loads with pre_model_path), which one benchmark run per row cannot chain")
    folder = Path(str(config["data_path"]))
    for suffix in config["additional_feat_suffix"] or []:
        path = folder / f"{config['dataset']}.{suffix}"
        if not path.is_file():
            return (f"{name} reads {path.name} (additional_feat_suffix: its knowledge-graph entities), which "
                    f"dataset '{config['dataset']}' does not have")
    features = _model_key(config, "selected_features")
    if features:
        loaded = set((config["load_col"] or {}).get("item") or []) if isinstance(config["load_col"], dict) else set()
        absent = [f for f in features if f not in loaded]
        if absent:
            return (f"{name} reads the item features selected_features={list(features)}, and {absent} is not "
                    "loaded: add the column to the dataset's .item file and to load_col (item), or pick loaded "
                    "features with --selected_features")
    negatives = config["train_neg_sample_args"] or {}
    if _needs_negatives(model_class, config) and negatives.get("distribution") in (None, "none"):
        return (f"{name} trains on sampled negatives and the protocol samples none (train_neg_sample_args: ~, for "
                "the CE models): pass --train_neg_sample_args=\"{distribution: uniform, sample_num: 1}\" "
                "(RecBole's default) or set it in a --config-files YAML")
    if _keeps_python_objects(model_class) and not config["trust_checkpoint"]:
        return (f"{name} keeps fitted state that is no tensor (other_parameter: scipy/numpy matrices or modules), "
                "which a checkpoint that loads with torch.load(weights_only=True) cannot hold: pass "
                "--trust-checkpoint to let its run reload its own checkpoint in full")
    return None


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


__all__ = ["get_model", "get_trainer", "available_models", "canonical_model_name", "check_name", "normalized_name",
           "protocol_problem", "ModelType"]
