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
    DamagedCheckpoint, check_checkpoint_file, checkpoint_config, config_key, config_to_dict, load_checkpoint,
    save_checkpoint,
)
from recbole_llm.errors import UserError
from recbole_llm.utils import get_model

SUPPORTED = ("SASRec", "GRU4Rec", "BERT4Rec", "Caser", "NARM", "ComiRec")

# Keys of the LLM models that reach the ID model's config but do not affect it.
_LLM_PREFIXES = ("id_model", "lm_", "prompt_", "prefix_", "align_", "mmd_", "temperature", "layerwise", "refinement",
                 "distribution", "ablation", "measure_")


def cache_key(config_dict):
    """Stable hash of the config values that affect an ID model's weights."""
    return config_key(config_dict, exclude_prefixes=_LLM_PREFIXES)


# Keys that define the data and protocol: the ID model must see the same as the LLM model.
SHARED_DATA_KEYS = (
    "MAX_ITEM_LIST_LENGTH", "load_col", "user_inter_num_interval", "item_inter_num_interval", "rm_dup_inter",
    "eval_args", "metrics", "topk", "valid_metric",
)

def id_model_request(config):
    """How the frozen ID model of an LLM run is built: ``(name, config_files, config_dict)``.

    Like the benchmark's own row of that model: its YAML, the run's budget file, the run's
    seed, the run's data and protocol keys (:data:`SHARED_DATA_KEYS`: the ID model must see
    the same sequences), plus ``id_model_config``. The run's other overrides (``--key=value``,
    ``--config-files``) are meant for the LLM model and are not passed on.
    """
    from recbole_llm.config import properties_dir

    name = config["id_model"]
    files = []
    budget = config["budget"]
    if budget:
        path = properties_dir() / "budget" / f"{budget}.yaml"
        if not path.is_file():
            raise UserError(f"budget '{budget}' has no file {path}")
        files.append(str(path))
    extra = {k: config[k] for k in SHARED_DATA_KEYS if k in config and config[k] is not None}
    extra.update(config["id_model_config"] or {})
    return name, files, extra


class PretrainedIDModel:
    """A frozen RecBole sequential model with uniform accessors.

    * :meth:`user_representation` -- ``u = F'(S^u)``, ``[B, dim]``, for a batch of item
      sequences (RecBole's padded ``item_id_list`` and ``item_length``);
    * :meth:`item_embeddings` -- the item table ``[n_items, dim]`` (row 0 is padding),
      the vectors the model scores users against.
    """

    def __init__(self, model, dataset_name, checkpoint_path=None):
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.name = type(model).__name__
        self.dataset_name = dataset_name
        self.checkpoint_path = checkpoint_path
        self.n_items = model.n_items
        self.dim = self.item_embeddings().shape[1]

    @torch.no_grad()
    def user_representation(self, item_seq, item_seq_len, user=None):
        m = self.model
        if self.name == "ComiRec":
            out = m.user_embedding(item_seq, item_seq_len)
        elif self.name == "BERT4Rec":
            seq = m.reconstruct_test_data(item_seq, item_seq_len)
            out = m.gather_indexes(m.forward(seq), item_seq_len - 1)
        elif self.name == "Caser":
            if user is None:
                raise UserError("Caser needs user ids for its representation: it is not a pure sequence model")
            out = m.forward(user, item_seq)
        else:
            out = m.forward(item_seq, item_seq_len)
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
        detail = next((line.strip() for line in first if "size mismatch" in line), first[0] if first else "")
        raise UserError(
            f"ID-model checkpoint {path} does not fit {model_name} with this config ({detail}): "
            "use the hyperparameters it was trained with"
        ) from None
    wrapped = PretrainedIDModel(model, dataset.dataset_name, str(path))
    if expected_dim is not None and wrapped.dim != int(expected_dim):
        raise UserError(
            f"ID-model checkpoint {path} has dimension {wrapped.dim}, but {expected_dim} was configured"
        )
    return wrapped


def cache_path(config, saved_dir):
    """Where the ID-model cache keeps a model trained with ``config``."""
    key = cache_key(config_to_dict(config))
    return Path(saved_dir) / "id_models" / config["dataset"] / f"{config['model']}-{key}.pth", key


def cached_checkpoint(config, saved_dir):
    """The cache entry for an ID model trained with ``config``: its path when it exists and is
    intact, else None. A damaged entry (empty, truncated: a copy cut short) is deleted, so the
    pipeline trains the model again."""
    path, _ = cache_path(config, saved_dir)
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
    """Offer a finished benchmark run of a supported ID model to the cache.

    The key is the run's own config, so an LLM model asking for this ID model under the same
    budget and seed reuses exactly the weights of the table's row for it. Returns the path,
    or None when the model is not an ID model or the entry exists.
    """
    if config["model"] not in SUPPORTED or not record.get("checkpoint"):
        return None
    path, key = cache_path(config, saved_dir)
    if path.is_file():
        return None
    best = load_checkpoint(record["checkpoint"], trust=False)
    save_checkpoint(
        path,
        config=best["config"],
        epoch=best["epoch"],
        state_dict=best["state_dict"],
        id_model={"key": key, "valid": record["valid"], "test": record["test"], "seed": record["seed"]},
    )
    logging.getLogger(__name__).info("ID model %s cached at %s", config["model"], path)
    return path
