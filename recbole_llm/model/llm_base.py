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

Everything that can be wrong with an LLM run without training anything (config values such as
``prefix_len``, ``lm_name`` and its tokenizer, the prompt templates, items without text) is
checked by :meth:`LLMSequentialRecommender.preflight`, which the runner and
:func:`recbole_llm.quick_start.run` call before the ID model trains (minutes to hours).
"""

import logging
from pathlib import Path

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from torch import nn

from recbole_llm.data.item_text import ItemText
from recbole_llm.errors import UserError
from recbole_llm.lm import FrozenLM, HardPrompt, autocast_dtype, load_tokenizer

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


def hard_prompt(tokenizer, config, texts, template_key, max_tokens_key, max_items=None):
    """:class:`HardPrompt` from the config keys named, its errors as :class:`UserError` naming them."""
    try:
        return HardPrompt(tokenizer, config[template_key], texts, max_tokens=config[max_tokens_key],
                          max_items=max_items if max_items is not None else config["prompt_max_items"])
    except (ValueError, TypeError) as err:
        raise UserError(f"{template_key} / {max_tokens_key}: {err}") from None


def item_text_coverage(titles, config, source=None):
    """How many of the dataset's items have no text, checked against ``missing_text_max_share``.

    ``titles``: :class:`ItemText`'s list, one per RecBole item id (index 0 is padding). The items
    counted are RecBole's (padding excluded): with ``.item`` not in ``load_col``, exactly the items
    of ``.inter``. Returns ``{"field", "items", "missing", "missing_share"}`` (share in [0, 1], the
    run record's ``item_text``). Raises :class:`UserError` when the share exceeds the key: ids of
    ``.item`` that do not match ``.inter``, or a malformed ``.item`` whose lines were merged, would
    otherwise give an LLM row that never read a title.
    """
    n_items = max(len(titles) - 1, 0)
    missing = sum(1 for t in list(titles)[1:] if not t)
    share = missing / n_items if n_items else 0.0
    limit = float(config["missing_text_max_share"] if config["missing_text_max_share"] is not None else 1.0)
    field = config["item_text_field"]
    if share > limit:
        where = source or f"the .item file of {config['dataset']}"
        raise UserError(
            f"{missing} of {n_items} items ({share:.1%}) have no '{field}' text in {where} "
            f"(missing_text_max_share: {limit:g}): make its {config['ITEM_ID_FIELD']} values those of the .inter "
            "file and check for malformed lines (an unclosed quote merges lines), or raise missing_text_max_share"
        )
    return {"field": field, "items": n_items, "missing": missing, "missing_share": share}


class LLMSequentialRecommender(SequentialRecommender):
    """Base class of RARec and IDLEAdapter (see the module docstring)."""

    # quick_start.run selects their training samples (data_strategy, data_size); not the baselines'.
    tunes_on_selected_data = True

    def __init__(self, config, dataset):
        type(self).check_config(config)
        super().__init__(config, dataset)
        self.lm = FrozenLM(config["lm_name"], config["lm_pooling"])
        self.lm_dim = self.lm.hidden_size
        self.n_layers_lm = self.lm.num_layers
        self.autocast = autocast_dtype(self.device, config["lm_autocast"])
        item_text = ItemText.from_dataset(dataset)
        self.item_text = item_text_coverage(item_text.titles, config, item_text.path)
        self.id_model = self.load_id_model(config, dataset)
        self.id_dim = self.id_model.dim
        self.prompt_texts = list(item_text.titles)
        self.prompt = hard_prompt(self.lm.tokenizer, config, self.prompt_texts, "prompt_template",
                                  "prompt_max_tokens").to(self.device)
        self._state_cache = {}
        self.state_cache = bool(config["state_cache"])
        self.lm.to(self.device)

    # ------------------------------------------------------------------ checks
    # (template key, token-budget key) of every hard prompt the model builds.
    PROMPTS = (("prompt_template", "prompt_max_tokens"),)

    @classmethod
    def check_config(cls, config):
        """The model's checks of its config values alone (no data, no LM); raise :class:`UserError`.
        Subclasses add their own (``prefix_len``, ...) and call this one."""
        from recbole_llm.id_model import SUPPORTED

        name = cls.__name__
        if not config["id_model_checkpoint"] and config["id_model"] not in SUPPORTED:
            raise UserError(f"id_model '{config['id_model']}' is not supported; use one of {', '.join(SUPPORTED)} "
                            f"({name})")
        if config["id_model_checkpoint"] and not Path(config["id_model_checkpoint"]).is_file():
            raise UserError(f"id_model_checkpoint {config['id_model_checkpoint']} does not exist ({name})")
        if str(config["lm_pooling"]).lower() not in ("auto", "mean", "last"):
            raise UserError(f"lm_pooling must be mean, last or auto, not '{config['lm_pooling']}' ({name})")
        autocast_dtype("cpu", config["lm_autocast"])  # raises for an unknown setting
        for key in ("prompt_max_tokens", "prompt_max_items") + tuple(k for _, k in cls.PROMPTS):
            value = config[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"{key} must be an integer >= 1, not {value!r} ({name})")
        share = config["missing_text_max_share"]
        if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float))
                                  or not 0 <= share <= 1):
            raise UserError(f"missing_text_max_share must be a number in [0, 1], not {share!r} ({name})")
        if not config["item_text_field"]:
            raise UserError(f"config key 'item_text_field' is not set for dataset '{config['dataset']}': set it to "
                            f"the title column of its .item file in properties/dataset/{config['dataset']}.yaml")

    @classmethod
    def preflight(cls, config, dataset=None):
        """Everything that can fail before training, checked without training anything, so that a
        mistake costs a second and not the ID model's training: :meth:`check_config`, the LM's
        tokenizer and architecture (``lm_name``; no weights are loaded), every hard prompt's
        template and token budget, and the share of items without text
        (:func:`item_text_coverage`; builds the RecBole dataset unless ``dataset`` is given).
        Returns the text coverage (``{"items", "missing", "missing_share", "field"}``)."""
        cls.check_config(config)
        tokenizer, _ = load_tokenizer(config["lm_name"])
        for template_key, max_tokens_key in cls.PROMPTS:
            hard_prompt(tokenizer, config, [], template_key, max_tokens_key)
        if dataset is None:
            from recbole_llm.data.dataset import create_dataset

            dataset = create_dataset(config)
        # ItemText warns about missing titles; here the coverage check reports them (one line).
        item_text_logger = logging.getLogger(ItemText.__module__)
        level = item_text_logger.level
        item_text_logger.setLevel(logging.ERROR)
        try:
            item_text = ItemText.from_dataset(dataset)
        finally:
            item_text_logger.setLevel(level)
        return item_text_coverage(item_text.titles, config, item_text.path)

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
    def item_text_report(self):
        """Items without text (the run record's ``item_text``; see :func:`item_text_coverage`)."""
        return dict(self.item_text)

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
