"""What the LLM recommenders share: a frozen LM, a frozen ID model, hard prompts, caches.

:class:`LLMSequentialRecommender` is a RecBole ``SequentialRecommender`` that owns

* the frozen backbone (:class:`recbole_llm.lm.FrozenLM`, config ``lm_name``, ``lm_pooling``,
  ``lm_autocast``, ``lm_attention``), kept out of checkpoints: its weights are reloaded from
  ``lm_name``, so a checkpoint holds only what trains (a few MB instead of the LM's 90 MB). Under
  bf16/fp16 autocast its matmul weights are held in that dtype (no cast per call; what trains stays
  float32), and its attention kernel the fastest measured on the device for that dtype and the
  prompts' length (:func:`recbole_llm.lm.backbone.attention_implementation`);
* the frozen pretrained ID model (config ``id_model``, ``id_model_config``,
  ``id_model_checkpoint``), trained or reused through :mod:`recbole_llm.id_models` exactly
  like the benchmark's row of that model under the same budget, so the ID-model row of a
  table is the LLM model's base (IDLE-Adapter's Table 2 on ComiRec, Table 3 on other bases;
  RA-Rec's Table 3);
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
from recbole_llm.lm import FrozenLM, HardPrompt, autocast_dtype
from recbole_llm.lm.backbone import attention_implementation, check_prefix_window, inspect_lm

# Frozen submodules whose weights are not written into checkpoints.
FROZEN_PREFIXES = ("lm.",)


def trunc_normal_(tensor, limit=0.02):
    """The papers' init: a normal of std ``limit`` truncated to ``[-limit, limit]``."""
    return nn.init.trunc_normal_(tensor, mean=0.0, std=limit, a=-limit, b=limit)


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


class PromptStateCache:
    """``h~`` rows (bf16) on the model's device, keyed by a hash of the prompt's real tokens.

    The LM is frozen, so a prompt's layer states never change: they are computed once per
    distinct prompt and looked up afterwards. Everything stays on the device: the key of a
    prompt is a pair of polynomial hashes of its real tokens, computed with tensor
    operations (no ``.cpu()``/``.tolist()`` per step), found by ``searchsorted`` in a sorted
    key table, and confirmed by the second hash (124 bits in all: two prompts that collide
    would have to agree on both; with a million prompts the odds are ~1e-25). A lookup costs
    one host synchronisation (``bool`` of "any row missing"), which the prompt build already
    pays at the same point of the step.

    Written by hand because torch has no device-side hash map; a ``dict`` of byte strings
    (what this replaced) needs every key on the host, a copy and a Python loop over the
    batch every step.
    """

    # Four (prime, base) pairs below 2^31: a token times a power stays below 2^62 (int64).
    _PRIMES = (2147483629, 2147483587, 2147483563, 2147483549)
    _BASES = (1000003, 998244353, 1000000007, 911382323)

    def __init__(self):
        self.table = None  # [capacity, L, d'] bf16
        self.check = None  # [capacity] int64: the second key of each row
        self.sorted_keys = None  # [size] int64, ascending
        self.sorted_rows = None  # [size] int64: the table row of sorted_keys[i]
        self.size = 0
        self._powers = None  # [4, width] int64: base^j mod prime, on the device of the last call

    def __len__(self):
        return self.size

    def _power_table(self, width, device):
        if self._powers is None or self._powers.shape[1] < width or self._powers.device != device:
            width = max(width, 0 if self._powers is None else self._powers.shape[1])
            rows = []
            for base, prime in zip(self._BASES, self._PRIMES):
                power, row = 1, []
                for _ in range(width):
                    row.append(power)
                    power = power * base % prime
                rows.append(row)
            self._powers = torch.tensor(rows, dtype=torch.long, device=device)
            self._primes = torch.tensor(self._PRIMES, dtype=torch.long, device=device).view(4, 1)
        return self._powers[:, :width]

    def keys(self, ids, mask):
        """Two int64 keys per prompt, ``([B], [B])``, from its real tokens (padding ignored)."""
        width = ids.shape[1]
        powers = self._power_table(width, ids.device)  # [4, S]
        tokens = (ids.long() + 1) * mask.long()  # 0 where padding
        primes = self._primes
        h = ((tokens.unsqueeze(0) * powers.unsqueeze(1)) % primes.unsqueeze(2)).sum(-1) % primes  # [4, B]
        length = mask.long().sum(1)
        first = (h[0] << 31) | h[1]
        second = ((h[2] << 31) | h[3]) ^ length
        return first, second

    def lookup(self, first, second):
        """Row of each key in :attr:`table`, ``-1`` where missing, ``[B]`` int64."""
        if self.size == 0:
            return torch.full_like(first, -1)
        pos = torch.searchsorted(self.sorted_keys, first).clamp_max(self.size - 1)
        rows = self.sorted_rows[pos]
        hit = (self.sorted_keys[pos] == first) & (self.check[rows] == second)
        return torch.where(hit, rows, torch.full_like(rows, -1))

    def state_dict(self):
        """The filled rows and their keys, for a resumable run's state (CPU tensors; ``{}`` when
        empty). A row holds the bits of the batch that first computed it (the LM's kernels are
        not batch-invariant: see :meth:`LLMSequentialRecommender.prompt_states`), so a resumed run
        must read these rows, not recompute them in other batches. Size: rows x L x d' x 2 bytes
        (amazon-scientific with MiniLM: at most 10,928 x 6 x 384 x 2 = 50 MB)."""
        if self.size == 0:
            return {}
        return {"table": self.table[: self.size].cpu(), "check": self.check[: self.size].cpu(),
                "sorted_keys": self.sorted_keys.cpu(), "sorted_rows": self.sorted_rows.cpu()}

    def load_state_dict(self, state, device):
        """Restore :meth:`state_dict`'s rows on ``device`` (the same row numbers, so lookups and
        later inserts are those of the run that saved them)."""
        if not state:
            self.table = self.check = self.sorted_keys = self.sorted_rows = None
            self.size = 0
            return
        self.table, self.check = state["table"].to(device), state["check"].to(device)
        self.sorted_keys, self.sorted_rows = state["sorted_keys"].to(device), state["sorted_rows"].to(device)
        self.size = int(self.table.shape[0])

    def insert(self, first, second, states):
        """Append rows (keys must be new and distinct); returns their row indices."""
        n = first.shape[0]
        if self.table is None:
            self.table = states.new_empty((max(1024, n),) + tuple(states.shape[1:]))
            self.check = first.new_empty(self.table.shape[0])
        if self.size + n > self.table.shape[0]:
            capacity = max(2 * self.table.shape[0], self.size + n)
            table = self.table.new_empty((capacity,) + tuple(self.table.shape[1:]))
            table[: self.size] = self.table[: self.size]
            check = self.check.new_empty(capacity)
            check[: self.size] = self.check[: self.size]
            self.table, self.check = table, check
        rows = torch.arange(self.size, self.size + n, device=first.device)
        self.table[rows] = states
        self.check[rows] = second
        keys = first if self.sorted_keys is None else torch.cat([self.sorted_keys, first])
        all_rows = rows if self.sorted_rows is None else torch.cat([self.sorted_rows, rows])
        order = torch.argsort(keys, stable=True)
        self.sorted_keys, self.sorted_rows = keys[order], all_rows[order]
        self.size += n
        return rows


class LLMSequentialRecommender(SequentialRecommender):
    """Base class of RARec and IDLEAdapter (see the module docstring)."""

    # The trainer of every LLM model (recbole_llm.utils.get_trainer): trainable parameters only,
    # the overhead measurement against the bare LM.
    trainer_class = "LMTrainer"

    def __init__(self, config, dataset):
        type(self).check_config(config)
        super().__init__(config, dataset)
        self.lm = FrozenLM(config["lm_name"], config["lm_pooling"])
        self.lm_dim = self.lm.hidden_size
        self.n_layers_lm = self.lm.num_layers
        self.autocast = autocast_dtype(self.device, config["lm_autocast"])
        self.lm.set_compute_dtype(self.autocast)
        # the longest attention span: a prompt's budget and the prefix (as layer keys or as input tokens)
        max_keys = max(int(config[key]) for _, key in type(self).PROMPTS) + int(config["prefix_len"] or 0)
        self.lm.set_attention(attention_implementation(self.device, config["lm_attention"], self.autocast, max_keys))
        self.init_range = float(config["init_range"])  # truncated-normal init of what trains (_init_weights)
        item_text = ItemText.from_dataset(dataset)
        self.item_text = item_text_coverage(item_text.titles, config, item_text.path)
        self.id_model = self.load_id_model(config, dataset)
        self.id_dim = self.id_model.dim
        self.prompt_texts = list(item_text.titles)
        self.prompt = hard_prompt(self.lm.tokenizer, config, self.prompt_texts, "prompt_template",
                                  "prompt_max_tokens").to(self.device)
        self._state_cache = PromptStateCache()
        self.state_cache = bool(config["state_cache"])
        self.lm.to(self.device)

    # ------------------------------------------------------------- weight init
    def _init_weights(self, module):
        """The papers' init of what trains: every ``nn.Linear`` weight from a normal truncated to
        ``[-init_range, init_range]``, biases zero (subclasses call ``self.apply(self._init_weights)``)."""
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight.data, self.init_range)
            if module.bias is not None:
                module.bias.data.zero_()

    def apply(self, fn):
        """``nn.Module.apply`` that never reaches the frozen LM (RecBole models apply their init to
        every module; the LM's pretrained weights must stay as loaded)."""
        for name, child in self.named_children():
            if name != "lm":
                child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ checks
    # (template key, token-budget key) of every hard prompt the model builds.
    PROMPTS = (("prompt_template", "prompt_max_tokens"),)

    @classmethod
    def check_config(cls, config):
        """The model's checks of its config values across keys (no data, no LM); raise
        :class:`UserError`. Each key's own range or choices are declared beside its default in
        ``properties/model/*.yaml`` and checked when the Config is built (:mod:`recbole_llm.checks`).
        Subclasses add their own and call this one."""
        from recbole_llm.id_models import is_id_model, registered

        name = cls.__name__
        if not config["id_model_checkpoint"] and not is_id_model(config["id_model"]):
            raise UserError(f"id_model '{config['id_model']}' is not supported; use one of {', '.join(registered())} "
                            f"({name})")
        if config["id_model_checkpoint"] and not Path(config["id_model_checkpoint"]).is_file():
            raise UserError(f"id_model_checkpoint {config['id_model_checkpoint']} does not exist ({name})")
        autocast_dtype("cpu", config["lm_autocast"])  # raises for an unknown setting
        attention_implementation("cpu", config["lm_attention"])  # likewise
        if not config["item_text_field"]:
            raise UserError(f"config key 'item_text_field' is not set for dataset '{config['dataset']}': set it to "
                            f"the title column of its .item file in properties/dataset/{config['dataset']}.yaml")

    @classmethod
    def layer_prefix_len(cls, config):
        """How many virtual tokens the model prepends to every layer's keys and values (``prefix_len``);
        a model that feeds its prefix as input tokens instead returns 0. What the preflight holds
        against a sliding-window LM (:func:`~recbole_llm.lm.backbone.check_prefix_window`)."""
        return int(config["prefix_len"] or 0)

    @classmethod
    def preflight(cls, config, dataset=None):
        """Everything that can fail before training, checked without training anything, so that a
        mistake costs a second and not the ID model's training: :meth:`check_config`, the LM
        (``lm_name``: its architecture, tokenizer and weight files, :func:`~recbole_llm.lm.backbone.inspect_lm`;
        no weights are loaded), every hard prompt's template and token budget, that budget plus
        the layer prefix within a sliding-window LM's window, the dataset's ``topk`` cut-offs
        against its items, and the share of items without text (:func:`item_text_coverage`;
        builds the RecBole dataset unless ``dataset`` is given). The dataset's splits are checked
        when they are made (:meth:`recbole_llm.data.dataset.ExactTimeOrder.build`), before the ID
        model trains. Returns the text coverage (``{"items", "missing", "missing_share", "field"}``)."""
        from recbole_llm.data.dataset import check_topk

        cls.check_config(config)
        lm = inspect_lm(config["lm_name"])
        prefix_len = cls.layer_prefix_len(config)
        for template_key, max_tokens_key in cls.PROMPTS:
            hard_prompt(lm.tokenizer, config, [], template_key, max_tokens_key)
            check_prefix_window(config["lm_name"], lm.sliding_window, prefix_len, int(config[max_tokens_key]),
                                fix=f"lower {max_tokens_key} ({config[max_tokens_key]}) or prefix_len ({prefix_len}) "
                                    f"to fit {lm.sliding_window}")
        if dataset is None:
            from recbole_llm.data.dataset import create_dataset

            dataset = create_dataset(config)
        check_topk(dataset)
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
    def load_id_model(self, config, dataset):
        """The frozen ID model from ``id_model_checkpoint``: the pipeline's ID-model step
        (:func:`recbole_llm.pipeline.ensure_id_model`) trains or finds it before the model is
        built, so building a model never trains another one."""
        from recbole_llm.config import Config
        from recbole_llm.id_models import id_model_request, load_id_model

        if not config["id_model_checkpoint"]:
            raise UserError(
                f"{type(self).__name__} needs its frozen ID model: set id_model_checkpoint, or run it through "
                "recbole_llm.pipeline.run (run_benchmark.py), which trains or reuses the ID model first"
            )
        name, files, extra = id_model_request(config)
        id_config = Config(name, config["dataset"], files, {**extra, "data_path": config["data_root"],
                                                             "seed": config["seed"]})
        model = load_id_model(config["id_model_checkpoint"], id_config, dataset, trust=bool(config["trust_checkpoint"]))
        return model.to(self.device)

    def id_model_report(self):
        """The frozen ID model, for the run record's ``id_model``: ``name``; ``weights_sha256``, the
        sha256 of its weights (:func:`recbole_llm.id_models.weights_sha256`: the ID run whose cache
        entry has it is this run's base); ``sha256``, that of its checkpoint file (how records made
        before named it); and, for a cache entry, the ID run it was made from (``key``, ``seed``,
        ``valid``, ``test``: :func:`recbole_llm.id_models.cache_entry_run`), which finds the base
        among records made before weights were hashed."""
        from recbole_llm.id_models import cache_entry_run, checkpoint_sha256, weights_sha256

        path, trust = self.id_model.checkpoint_path, self.id_model.trust
        return {"name": self.id_model.name, "weights_sha256": weights_sha256(path, trust),
                "sha256": checkpoint_sha256(path), **cache_entry_run(path, trust)}

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

    def layer_states(self, ids, mask):
        """Pooled inputs of every layer on the prompts alone (no prefix), ``[B, L, d']``, no grad,
        in the LM's compute dtype (bf16 under autocast)."""
        with torch.no_grad(), self.autocast_context():
            _, hidden = self.lm(ids, mask, output_hidden_states=True)
        return self.lm.pool_layers(hidden[:-1], mask)

    def prompt_keys(self, ids, mask):
        """The :class:`PromptStateCache` keys of each prompt (two int64 hashes of its real tokens,
        ``([B], [B])``, on the device): equal for identical prompts. Computed once per step and
        passed to :meth:`prompt_states` and wherever rows sharing a prompt matter."""
        return self._state_cache.keys(ids, mask)

    def prompt_states(self, ids, mask, keys=None):
        """Pooled LM states per layer input on the prompts alone, ``[B, L, d']`` (float32).

        Element l is the pooled input of layer l (``hidden_states[l]``), the space layer l's
        prefix lives in. With ``state_cache`` the rows come from :class:`PromptStateCache` on
        the model's device; prompts not seen before are computed in one no-grad forward over
        just those rows (cut to their longest prompt) and stored in bf16; every copy of a prompt
        in that batch, and every later batch, reads the same stored row (the cache is keyed by
        the prompt's tokens). The stored bits depend on the batch that first met the prompt:
        the LM's CPU kernels are not batch-invariant (MiniLM under bf16 autocast: a whole row
        differed in 2 of 39 batch compositions measured here), which is why a resumable run
        saves the cache with its state (:meth:`resume_state`).
        """
        if not self.state_cache:  # the uncached path, kept to measure what the cache saves
            return self.layer_states(ids, mask).float()
        cache = self._state_cache
        first, second = keys if keys is not None else cache.keys(ids, mask)
        rows = cache.lookup(first, second)
        missing = rows < 0
        if bool(missing.any()):  # one host sync; the prompt build has just paid one at this point
            idx = missing.nonzero().squeeze(1)
            sub_mask = mask[idx]
            width = int(sub_mask.sum(1).max())
            pooled = self.layer_states(ids[idx, :width], sub_mask[:, :width]).to(torch.bfloat16)
            # One row per distinct prompt: the last copy in the batch (what a dict assignment kept).
            pairs = torch.stack([first[idx], second[idx]], dim=1)
            _, inverse = torch.unique(pairs, dim=0, return_inverse=True)
            position = torch.arange(idx.shape[0], device=idx.device)
            last = torch.full((int(inverse.max()) + 1,), -1, dtype=torch.long, device=idx.device)
            last = last.scatter_reduce(0, inverse, position, reduce="amax")
            new_rows = cache.insert(pairs[last, 0], pairs[last, 1], pooled[last])
            rows = rows.clone()
            rows[idx] = new_rows[inverse]
        return cache.table[rows].float()

    # ------------------------------------------------------------- checkpoints
    def resume_state(self):
        """What a resumable run saves beside the trainable weights so that it continues exactly
        as an uninterrupted run: the prompt-state cache (:meth:`PromptStateCache.state_dict`).
        Not part of :meth:`state_dict`: ``best.pth`` and the ID-model cache stay small."""
        return {"prompt_states": self._state_cache.state_dict()}

    def load_resume_state(self, state):
        """Restore :meth:`resume_state`'s output (``None``: a state file written before it was saved;
        the cache then starts empty and is refilled from other batches, so the run may leave the
        uninterrupted one's trajectory in the last bits, which is logged)."""
        if state is None:
            logging.getLogger(__name__).warning(
                "the resume state predates the saved prompt-state cache: the cache is refilled from other batches, "
                "so this run may differ from an uninterrupted one in the last bits")
            return
        self._state_cache.load_state_dict(state.get("prompt_states"), self.device)

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
