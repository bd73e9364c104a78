"""Pretrained, frozen ID models: train once, cache, reuse.

The LLM models (RA-Rec, IDLE-Adapter) consume a sequential ID model trained beforehand:
``u = F'(S^u)`` (the user/sequence representation) and the item embedding table. This module

* says how the ID model of an LLM run is configured (:func:`id_model_request`: like the
  benchmark's own row of that model) and where its trained checkpoint is cached,
  ``saved/id_models/<dataset>/<Model>-<key>.pth``, where ``key`` hashes every config value
  that affects the trained weights (:func:`cache_path`, :func:`cached_checkpoint`); a finished
  benchmark run of an ID model is offered to that cache (:func:`cache_run`), so the table's row
  of the model *is* the LLM model's base. Training a missing one is the pipeline's ID-model step
  (:func:`recbole_llm.pipeline.ensure_id_model`), not this module's;
* loads a checkpoint safely (:mod:`recbole_llm.checkpoint`) and checks it belongs to the
  dataset it is used with (name, item count, embedding dimension);
* returns a :class:`PretrainedIDModel`: the frozen model plus two accessors with one meaning
  across RecBole's sequential models, whose ``forward`` signatures differ.

RecBole has no "load a trained model for reuse" API; its ``load_data_and_model`` unpickles the
whole checkpoint, which is exactly what torch >= 2.6 refuses, hence this module.
"""

import logging
from pathlib import Path

import torch

from recbole_llm.checkpoint import (
    DamagedCheckpoint, check_checkpoint_file, checkpoint_config, load_checkpoint, save_checkpoint,
)
from recbole_llm.errors import UserError
from recbole_llm.identity import file_sha256, id_cache_key, tensors_sha256
from recbole_llm.paths import path_roots, resolve_path
from recbole_llm.utils import get_model


# ---------------------------------------------------------------------------------- registry
# name -> representation(model, item_seq, item_seq_len, user) -> [B, d]: ``u = F'(S^u)`` of an ID
# model whose class cannot carry the method itself (RecBole's own models). A model of this package
# (or of yours) is an ID model by defining ``id_representation(item_seq, item_seq_len, user=None)``
# in its class, one file in ``recbole_llm/id_models/`` plus its YAML (ComiRec does).
_REPRESENTATIONS = {}


def register_id_model(name, representation):
    """Make RecBole model ``name`` usable as a frozen ID model, with ``representation(model,
    item_seq, item_seq_len, user)`` returning its ``[B, d]`` user vectors."""
    _REPRESENTATIONS[name] = representation
    return representation


def _forward(model, item_seq, item_seq_len, user):
    return model.forward(item_seq, item_seq_len)


def _bert4rec(model, item_seq, item_seq_len, user):
    seq = model.reconstruct_test_data(item_seq, item_seq_len)
    return model.gather_indexes(model.forward(seq), item_seq_len - 1)


def _caser(model, item_seq, item_seq_len, user):
    if user is None:
        raise UserError("Caser needs user ids for its representation: it is not a pure sequence model")
    return model.forward(user, item_seq)


for _name in ("SASRec", "GRU4Rec", "NARM"):
    register_id_model(_name, _forward)
register_id_model("BERT4Rec", _bert4rec)
register_id_model("Caser", _caser)


def representation_of(model_class):
    """The representation function of an ID model class, or None when it is not one."""
    if hasattr(model_class, "id_representation"):
        return lambda model, item_seq, item_seq_len, user: model.id_representation(item_seq, item_seq_len, user)
    return _REPRESENTATIONS.get(model_class.__name__)


def is_id_model(name):
    """True when model ``name`` (or class) can be the frozen ID model of an LLM run."""
    if isinstance(name, type):
        return representation_of(name) is not None
    if name in _REPRESENTATIONS:
        return True
    try:
        return representation_of(get_model(name)) is not None
    except UserError:
        return False


def registered():
    """Names of the ID models known now (RecBole's registered ones and this package's)."""
    import importlib
    import pkgutil
    import sys

    names = set(_REPRESENTATIONS)
    folders = getattr(sys.modules.get(__package__), "__path__", [str(Path(__file__).parent)])
    for info in pkgutil.iter_modules(folders):  # every module of the ID-model package
        module = importlib.import_module(f"{__package__}.{info.name}")
        names.update(n for n, obj in vars(module).items() if isinstance(obj, type) and hasattr(obj, "id_representation"))
    return sorted(names)


def id_model_request(config):
    """How the frozen ID model of an LLM run is built: ``(name, config_files, config_dict)``.

    Like the benchmark's own row of that model: its YAML, the run's budget file(s), the run's
    seed, the data and protocol settings the user changed for the run (RecBole's dataset and
    evaluation arguments set by ``--key=value`` or a ``--config-files`` YAML: the ID model must see
    the same sequences), plus ``id_model_config``. The run's other settings are meant for the LLM
    model and are not passed on.
    """
    from recbole.utils import argument_list

    from recbole_llm.config import budget_files, user_set_keys

    name = config["id_model"]
    files = [str(f) for f in budget_files(config["budget"])] if config["budget"] else []  # an ID model: both parts
    protocol = set(argument_list.dataset_arguments) | set(argument_list.evaluation_arguments)
    extra = {k: config[k] for k in sorted(user_set_keys(config) & protocol) if config[k] is not None}
    extra.update(config["id_model_config"] or {})
    return name, files, extra


class PretrainedIDModel:
    """A frozen RecBole sequential model with uniform accessors.

    * :meth:`user_representation` -- ``u = F'(S^u)``, ``[B, dim]``, for a batch of item
      sequences (RecBole's padded ``item_id_list`` and ``item_length``);
    * :meth:`item_embeddings` -- the item table ``[n_items, dim]`` (row 0 is padding),
      the vectors the model scores users against.
    """

    def __init__(self, model, dataset_name, checkpoint_path=None, trust=False):
        self.model = model.eval()
        self.trust = bool(trust)  # how its checkpoint was read (``--trust-checkpoint``): so is its digest
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.name = type(model).__name__
        self._representation = representation_of(type(model))
        if self._representation is None:
            raise UserError(f"{self.name} is not an ID model (no id_representation, not registered); "
                            f"supported: {', '.join(registered())}")
        self.dataset_name = dataset_name
        self.checkpoint_path = checkpoint_path
        self.n_items = model.n_items
        self.dim = self.item_embeddings().shape[1]

    @torch.no_grad()
    def user_representation(self, item_seq, item_seq_len, user=None):
        out = self._representation(self.model, item_seq, item_seq_len, user)
        if out.dim() != 2 or out.shape[1] != self.dim:
            raise UserError(
                f"{self.name} gave a representation of shape {tuple(out.shape)}, expected [B, {self.dim}]"
            )
        return out

    def item_embeddings(self):
        weight = self.model.item_embedding.weight.detach()
        return weight[: self.model.n_items]

    def to(self, device):
        self.model.to(device)
        return self


def _check_compatible(ckpt_config, state_dict, dataset, path):
    name = ckpt_config.get("dataset")
    if name is not None and name != dataset.dataset_name:
        raise UserError(
            f"ID-model checkpoint {path} was trained on dataset '{name}', not '{dataset.dataset_name}': "
            "train or pass a checkpoint for this dataset"
        )
    table = state_dict.get("item_embedding.weight")
    if table is not None:
        n_expected = dataset.item_num + (1 if ckpt_config.get("model") == "BERT4Rec" else 0)
        if table.shape[0] != n_expected:
            raise UserError(
                f"ID-model checkpoint {path} has {table.shape[0]} item rows but dataset "
                f"'{dataset.dataset_name}' has {dataset.item_num} items (with padding): it was trained on other data"
            )


def load_id_model(path, config, dataset, trust=False, expected_dim=None):
    """Build ``config['model']`` on ``dataset`` and load the weights from checkpoint ``path``."""
    ckpt = load_checkpoint(path, map_location=config["device"], trust=trust)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        found = ", ".join(map(str, list(ckpt)[:5])) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UserError(f"ID-model checkpoint {path} holds no model weights ({found}): pass a RecBole/recbole-llm "
                        "checkpoint, a torch.save(model.state_dict()) file or a safetensors file")
    ckpt_config = checkpoint_config(ckpt)
    _check_compatible(ckpt_config, ckpt["state_dict"], dataset, path)
    model_name = ckpt_config.get("model", config["model"])
    if model_name != config["model"]:
        raise UserError(f"ID-model checkpoint {path} holds a {model_name}, but the config asks for {config['model']}")
    model = get_model(model_name)(config, dataset).to(config["device"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        detail = next((line.strip() for line in first
                       if line.strip().startswith(("size mismatch", "Missing key", "Unexpected key"))),
                      first[0] if first else "")
        raise UserError(
            f"ID-model checkpoint {path} does not fit {model_name} with this config ({detail}): "
            "use the hyperparameters it was trained with"
        ) from None
    wrapped = PretrainedIDModel(model, dataset.dataset_name, str(path), trust=trust)
    if expected_dim is not None and wrapped.dim != int(expected_dim):
        raise UserError(
            f"ID-model checkpoint {path} has dimension {wrapped.dim}, but {expected_dim} was configured"
        )
    return wrapped


def cache_path(config, saved_dir):
    """Where the ID-model cache keeps the run of ID model ``config``:
    ``<saved>/id_models/<dataset>/<Model>-<run_key>.pth`` (:func:`recbole_llm.identity.id_cache_key`)."""
    return Path(saved_dir) / "id_models" / config["dataset"] / f"{config['model']}-{id_cache_key(config)}.pth"


def cached_checkpoint(config, saved_dir):
    """The cache entry for an ID model trained with ``config``: its path when it exists and is
    intact, else None. A damaged entry (empty, truncated: a copy cut short) is deleted, so the
    pipeline trains the model again."""
    path = cache_path(config, saved_dir)
    if not path.is_file():
        return None
    try:
        check_checkpoint_file(path)
    except DamagedCheckpoint as err:
        logging.getLogger(__name__).warning("discarding the cached ID model: %s", err)
        path.unlink()
        return None
    return path


def cache_run(record, config, saved_dir):
    """Offer a finished benchmark run of an ID model to the cache.

    The key is the run's own key, so an LLM model asking for this ID model under the same budget,
    seed and data reuses exactly the weights of the table's row for it. Returns the path, or None
    when the model is not an ID model, the run kept no checkpoint, or the entry exists.
    """
    if not is_id_model(config["model"]) or not record.get("checkpoint"):
        return None
    # the run's key, computed on its config before training: the key an LLM run's request computes
    # (:func:`cache_path` of a fresh config); a model may change its config while it trains (BERT4Rec
    # does), so the finished config's key would name an entry that no request finds
    path = Path(saved_dir) / "id_models" / config["dataset"] / f"{config['model']}-{record['run_key']}.pth"
    if path.is_file():
        return path
    best = load_checkpoint(resolve_path(record["checkpoint"], path_roots(config["data_root"], saved_dir)), trust=False)
    save_checkpoint(
        path,
        config=best["config"],
        epoch=best["epoch"],
        state_dict=best["state_dict"],
        id_model={"key": record["run_key"], "valid": record["valid"], "test": record["test"], "seed": record["seed"]},
    )
    logging.getLogger(__name__).info("ID model %s cached at %s", config["model"], path)
    return path


def weights_sha256(path, trust=False):
    """sha256 of the weights in ID-model checkpoint ``path`` (:func:`recbole_llm.identity.tensors_sha256`):
    how an LLM record names its frozen ID model, equal for the same weights saved on any machine.
    ``trust``: read a plain RecBole checkpoint in full, as the run that used it did
    (:func:`recbole_llm.checkpoint.load_checkpoint`)."""
    return tensors_sha256(load_checkpoint(path, trust=trust)["state_dict"])


def checkpoint_sha256(path):
    """sha256 of ID-model checkpoint file ``path``'s bytes (they hold its config's machine paths
    too): the name records made before :func:`weights_sha256` gave their base (``sha256``)."""
    return file_sha256(path)


def cache_entry_run(path, trust=False):
    """The ID run a cache entry was made from, as :func:`cache_run` wrote it beside the weights:
    ``{"key", "seed", "valid", "test"}`` (its run key, seed and metrics); ``{}`` for a checkpoint
    that is not a cache entry (one given by hand). ``trust``: as for :func:`weights_sha256`."""
    entry = load_checkpoint(path, trust=trust).get("id_model") or {}
    return {k: entry[k] for k in ("key", "seed", "valid", "test") if k in entry}
