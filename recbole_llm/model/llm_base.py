"""What the LLM recommenders share: a frozen LM, a frozen ID model, hard prompts, caches.

:class:`LLMSequentialRecommender` is a RecBole ``SequentialRecommender`` that owns

* the frozen backbone (:class:`recbole_llm.lm.FrozenLM`, config ``lm_name``, ``lm_pooling``,
  ``lm_autocast``), kept out of checkpoints: its weights are reloaded from ``lm_name``, so a
  checkpoint holds only what trains (a few MB instead of the LM's 90 MB);
* the frozen pretrained ID model (config ``id_model``, ``id_model_config``,
  ``id_model_checkpoint``), trained or reused through :mod:`recbole_llm.id_model` exactly
  like the benchmark's row of that model under the same budget, so the ID-model row of a
  table is the LLM model's base (the papers' Table 3 question);
* the hard prompt (config ``prompt_template``, ``prompt_max_tokens``, ``prompt_max_items``),
  tokenised once per dataset (:class:`recbole_llm.lm.HardPrompt`);
* a cache of the LM's layer states on prompts alone (no prefix): the LM is frozen, so these
  never change during training and are computed once per distinct prompt.
"""

from pathlib import Path

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from torch import nn

from recbole_llm.data.item_text import ItemText
from recbole_llm.errors import UserError
from recbole_llm.lm import FrozenLM, HardPrompt, autocast_dtype

# Keys that define the data and protocol: the ID model must see the same as the LLM model.
SHARED_DATA_KEYS = (
    "MAX_ITEM_LIST_LENGTH", "load_col", "user_inter_num_interval", "item_inter_num_interval", "rm_dup_inter",
    "eval_args", "metrics", "topk", "valid_metric",
)

# Frozen submodules whose weights are not written into checkpoints.
FROZEN_PREFIXES = ("lm.",)


def trunc_normal_(tensor, limit=0.02):
    """The papers' init: a normal of std ``limit`` truncated to ``[-limit, limit]``."""
    return nn.init.trunc_normal_(tensor, mean=0.0, std=limit, a=-limit, b=limit)


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


class LLMSequentialRecommender(SequentialRecommender):
    """Base class of RARec and IDLEAdapter (see the module docstring)."""

    # quick_start.run selects their training samples (data_strategy, data_size); not the baselines'.
    tunes_on_selected_data = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.lm = FrozenLM(config["lm_name"], config["lm_pooling"])
        self.lm_dim = self.lm.hidden_size
        self.n_layers_lm = self.lm.num_layers
        self.autocast = autocast_dtype(self.device, config["lm_autocast"])
        self.id_model = self.load_id_model(config, dataset)
        self.id_dim = self.id_model.dim
        self.prompt_texts = list(ItemText.from_dataset(dataset).titles)
        self.prompt = HardPrompt(
            self.lm.tokenizer, config["prompt_template"], self.prompt_texts,
            max_tokens=config["prompt_max_tokens"], max_items=config["prompt_max_items"],
        ).to(self.device)
        self._state_cache = {}
        self.state_cache = bool(config["state_cache"])
        self.lm.to(self.device)

    # ----------------------------------------------------------------- ID model
    @classmethod
    def prepare(cls, config):
        """Train (or find) the ID model before the run starts, so that building the model
        never trains one with its own logging; sweeps call this once before their trials."""
        if config["id_model_checkpoint"]:
            return
        from recbole_llm.id_model import pretrained_id_model

        name, files, extra = id_model_request(config)
        saved_dir = Path(config["checkpoint_dir"]).parent
        pretrained_id_model(name, config["dataset"], files, extra, config["data_root"], saved_dir,
                            seed=config["seed"], trust=config["trust_checkpoint"], build=False)

    def load_id_model(self, config, dataset):
        from recbole_llm.config import Config
        from recbole_llm.id_model import load_id_model, pretrained_id_model

        name, files, extra = id_model_request(config)
        trust = bool(config["trust_checkpoint"])
        if config["id_model_checkpoint"]:
            id_config = Config(name, config["dataset"], files, {**extra, "data_path": config["data_root"],
                                                                 "seed": config["seed"]})
            model = load_id_model(config["id_model_checkpoint"], id_config, dataset, trust=trust)
        else:
            saved_dir = Path(config["checkpoint_dir"]).parent
            model = pretrained_id_model(name, config["dataset"], files, extra, config["data_root"], saved_dir,
                                        seed=config["seed"], trust=trust, dataset=dataset)
        return model.to(self.device)

    def user_id_representation(self, interaction):
        """``u = F'(S^u)`` from the frozen ID model (IDLE-Adapter Eq. 2), ``[B, d]``."""
        user = interaction[self.USER_ID] if self.USER_ID in interaction else None
        return self.id_model.user_representation(
            interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], user
        ).float()

    # ------------------------------------------------------------------- the LM
    def autocast_context(self):
        return torch.autocast(self.device.type, dtype=self.autocast or torch.float32,
                              enabled=self.autocast is not None)

    def user_prompt(self, interaction):
        """Token ids and mask of the users' hard prompts (built from cached token tables)."""
        return self.prompt.build(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])

    def prompt_stats(self, dataset):
        """Titles per hard prompt over a split's sequences (``dataset``: e.g. the test split's
        RecBole Dataset): :meth:`recbole_llm.lm.HardPrompt.stats`, kept in the run record."""
        feat = dataset.inter_feat
        return self.prompt.stats(feat[self.ITEM_SEQ].to(self.device), feat[self.ITEM_SEQ_LEN].to(self.device))

    def prompt_states(self, ids, mask, keys):
        """Pooled LM states per layer input on the prompts alone, ``[B, L, d']``, cached by ``keys``.

        Element l is the pooled input of layer l (``hidden_states[l]``), the space layer l's
        prefix lives in. Missing rows are computed in one no-grad forward and stored in bf16.
        """
        if not self.state_cache:  # the uncached path, kept to measure what the cache saves
            with torch.no_grad(), self.autocast_context():
                _, hidden = self.lm(ids, mask, output_hidden_states=True)
            return torch.stack([self.lm.pool(h, mask) for h in hidden[:-1]], dim=1).float()
        out = [None] * len(keys)
        missing = [i for i, k in enumerate(keys) if k not in self._state_cache]
        if missing:
            idx = torch.tensor(missing, device=ids.device)
            sub_mask = mask[idx]
            width = int(sub_mask.sum(1).max())
            with torch.no_grad(), self.autocast_context():
                _, hidden = self.lm(ids[idx, :width], sub_mask[:, :width], output_hidden_states=True)
            pooled = torch.stack([self.lm.pool(h, sub_mask[:, :width]) for h in hidden[:-1]], dim=1)
            pooled = pooled.to(torch.bfloat16).cpu()
            for j, i in enumerate(missing):
                self._state_cache[keys[i]] = pooled[j]
        for i, k in enumerate(keys):
            out[i] = self._state_cache[k]
        return torch.stack(out).to(ids.device, torch.float32)

    @staticmethod
    def prompt_keys(ids, mask):
        """One hashable key per prompt (its real token ids): identical prompts share cache rows."""
        ids = ids.cpu()
        lengths = mask.sum(1).cpu().tolist()
        return [ids[i, :n].numpy().tobytes() for i, n in enumerate(lengths)]

    # ------------------------------------------------------------- checkpoints
    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        for key in [k for k in state if k.startswith(FROZEN_PREFIXES)]:
            del state[key]
        return state

    def load_state_dict(self, state_dict, strict=True, assign=False):
        try:
            result = super().load_state_dict(state_dict, strict=False, assign=assign)
        except RuntimeError as err:
            detail = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line), str(err))
            raise UserError(
                f"{type(self).__name__} checkpoint does not fit this config ({detail}): use the config it was trained with"
            ) from None
        missing = [k for k in result.missing_keys if not k.startswith(FROZEN_PREFIXES)]
        if strict and (missing or result.unexpected_keys):
            raise UserError(
                f"{type(self).__name__} checkpoint does not fit this config: missing {missing[:3]}, "
                f"unexpected {result.unexpected_keys[:3]} (use the config it was trained with)"
            )
        return result

    # ------------------------------------------------------------------ reports
    def parameter_report(self):
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {
            "trainable": trainable,
            "lm": self.lm.num_parameters(),
            "id_model": sum(p.numel() for p in self.id_model.model.parameters()),
            "lm_name": self.lm.name,
            "id_model_name": self.id_model.name,
            "id_model_checkpoint": self.id_model.checkpoint_path,
        }

    def __str__(self):
        report = self.parameter_report()
        return (
            super().__str__()
            + f"\nTrainable parameters: {report['trainable']:,} | frozen LM {report['lm_name']}: {report['lm']:,}"
            + f" | frozen ID model {report['id_model_name']}: {report['id_model']:,}"
        )

    def bare_lm_step(self, interaction):
        """One forward+backward of the bare frozen LM on this batch's prompts (no adapter):
        the reference for the adapter's overhead ratio. Gradients flow to the input
        embeddings so the backward pass crosses every layer, as the adapter's does."""
        ids, mask = self.user_prompt(interaction)
        embeds = self.lm.model.get_input_embeddings()(ids).detach().requires_grad_(True)
        batch, seq = ids.shape
        position_ids = torch.arange(seq, device=ids.device).unsqueeze(0).expand(batch, seq)
        with self.autocast_context():
            out = self.lm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids)
            loss = self.lm.pool(out.last_hidden_state, mask).float().pow(2).mean()
        loss.backward()
