r"""RA-Rec: ID representation alignment for LLM-based recommendation.

Paper: Yu, Zhang, Zhao, Wang and Ma, "RA-Rec: An Efficient ID Representation Alignment Framework
for LLM-based Recommendation" (arXiv:2402.04527), sections 3.1-3.4 and 4.1. Equation numbers
refer to it.

Two towers through one frozen LM. For the user, the hard prompt is the history's titles
(``prompt_template``); for an item, its title (``item_prompt_template``). The soft prompts
come from a frozen ID model: the user representation ``u`` and the item embedding ``i``.
Per layer l:

    p_u^(l) = W_u^(l) u + b_u^(l),  p_i^(l) = W_i^(l) i + b_i^(l)        (Eq. 3-4)
    d_u^(l) = [c_u^(l) || p_u^(l)],  d_i^(l) = [c_i^(l) || p_i^(l)]      (Eq. 5-6)

``d^(l)`` is injected as layer l's prefix keys/values through its frozen projections
(Eq. 7-11, :class:`recbole_llm.lm.FrozenLM`); the score is ``x_ui = h_u^(L) . h_i^(L)``
(Eq. 12), trained with BPR over RecBole's sampled negatives (Eq. 13) plus the InfoNCE
alignment of ``d^(l)`` with ``h~^(l)``, the LM's states on the hard prompt alone (Eq. 14-16).

Choices where the paper is vague, and why:

* ``prefix_len`` is the total length of ``d^(l)``: ``prefix_len - 1`` contextual-instruction
  tokens ``c`` plus the one projected ID token ``p``. The paper's "aligned prefixes of 2
  tokens" and its Table 6 count (18,432 = 12 layers x 2 towers x 768, i.e. one ``c`` token per
  layer and tower in BERT-base) both fit ``c`` of 1 token and ``d`` of 2. The ablations keep
  the length, as the paper says it did ("we kept the prefix prompt lengths consistent").
* ``h^(L)`` is the pooled last hidden state (mean for encoders, last token for decoders).
* InfoNCE (Eq. 14-15) compares a vector with a vector: ``d^(l)`` is mean-pooled over its
  tokens, ``h~^(l)`` is the pooled layer-l input on the prompt alone (layer l's prefix lives
  in that space); cosine similarity, temperature ``temperature``, in-batch negatives, mean
  over layers. As printed, Eq. 14's denominator sums ``sim(d_j, h~_j)`` (the other rows' own
  pairs, which would not depend on the anchor) and Eq. 15's runs over ``j = 1..L``; both read as
  typos of the standard in-batch InfoNCE, ``sum_j exp(sim(d_k, h~_j) / tau)``, which is what is
  computed. Items are aligned over the batch's positive items; a batch may hold one item
  several times, and its copies are not counted as each other's negatives. Users likewise:
  two rows with the same hard prompt (the same recent titles: on amazon-scientific, whose
  prompts carry about 1.4 titles, 88% of random batches of 64 hold such a pair) have the same
  ``h~`` and are not each other's negatives (before 0.2.0 they were).
* ``lambda_Theta ||Theta||^2`` of Eq. 13 is AdamW's ``weight_decay``.
* ``h~`` never changes (frozen LM): user-prompt states are cached per distinct prompt, item
  states once for all items. For full ranking the item tower (with its trainable prefix) is
  encoded once per evaluation and scored with one matrix product per batch of users.
* ``id_norm`` (a deviation, off by default): Eq. 3-4 project the ID model's vectors as they
  are, so the ID part of ``d^(l)`` starts in proportion to their norm and, under Adam (whose
  steps on ``W`` do not depend on the input's scale), moves in proportion to it too, while
  ``c^(l)`` and ``b^(l)`` do not. The ID models' norms differ a lot: on amazon-scientific the
  mean user-vector norm is 0.49, 1.13 and 1.77 for ComiRec seeds 2021, 2020, 2022 and about 10
  for SASRec, whose item embeddings are about 0.4. ``id_norm: layernorm`` standardises every ID
  vector over its dimensions (zero mean, unit variance, no learned scale) before Eq. 3-4, so
  the ID prefix no longer depends on the ID model's scale. It is a labelled variant, never the
  paper's row.
* Ablations (Table 4), ``ablation:``
  ``no_id`` (w/o IDRepresentation: ``d = c`` of ``prefix_len`` tokens, plain prefix tuning; it
  trains with BPR alone: with no ID input ``d`` is the same for every row of a batch, so the
  InfoNCE terms would have identical anchors and nothing to contrast),
  ``no_reparam`` (w/o Reparameterization: one projection shared by every layer),
  ``no_instruction`` (w/o ConInstruction: no ``c``; ``d`` is ``p`` repeated ``prefix_len`` times,
  so the prefix length stays the same),
  ``inputs`` (Inputs: the projected ID representation is fed as ``prefix_len`` input token
  embeddings, no layer prefixes), ``project_inputs`` (ProjectInputs: ``prefix_len`` queries from
  the ID representation attend over the LM's token-embedding matrix, and the attended
  embeddings are fed as input tokens). The two input variants have no layer prefix ``d^(l)``,
  so they train with BPR alone (the InfoNCE terms align ``d^(l)``).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from recbole_llm.errors import UserError
from recbole_llm.model.llm_base import LLMSequentialRecommender, hard_prompt, trunc_normal_
from recbole_llm.model.loss import info_nce

ABLATIONS = ("none", "no_id", "no_reparam", "no_instruction", "inputs", "project_inputs")
ID_NORMS = ("none", "layernorm")


class _Tower(nn.Module):
    """The alignment module of one side (users or items): Eq. 3-6, or an ablation of them."""

    def __init__(self, ablation, n_layers, id_dim, lm_dim, prefix_len):
        super().__init__()
        self.ablation, self.n_layers, self.prefix_len = ablation, n_layers, prefix_len
        # What the ablation switches, decided once (the step below only reads these flags).
        self.layer_prefix = ablation not in ("inputs", "project_inputs")  # else: soft-prompt input tokens
        self.uses_id = ablation != "no_id"
        self.repeat_id = ablation == "no_instruction"  # p repeated prefix_len times, the length kept
        self.projects_inputs = ablation == "project_inputs"
        uses_instruction = ablation in ("none", "no_reparam", "no_id")
        n_instruction = prefix_len if ablation == "no_id" else prefix_len - 1
        if uses_instruction and n_instruction > 0:
            self.instruction = nn.Parameter(torch.empty(n_layers, n_instruction, lm_dim))  # c^(l)
        if ablation in ("none", "no_instruction"):
            self.projection = nn.ModuleList(nn.Linear(id_dim, lm_dim) for _ in range(n_layers))  # Eq. 3-4
        elif ablation == "no_reparam":
            self.projection = nn.ModuleList([nn.Linear(id_dim, lm_dim)])
        elif ablation == "inputs":
            self.projection = nn.ModuleList([nn.Linear(id_dim, prefix_len * lm_dim)])
        elif ablation == "project_inputs":
            self.queries = nn.Linear(id_dim, prefix_len * lm_dim)

    def prefix(self, e):
        """``d^(l)`` for every layer: a list of ``[B, prefix_len, d']`` (empty when not a layer prefix).

        All layers at once (one batched matmul instead of a loop over the layers): the same
        bits as layer by layer, gradients included, in a handful of kernels."""
        batch = e.shape[0]
        parts = []
        if hasattr(self, "instruction"):
            parts.append(self.instruction.unsqueeze(1).expand(-1, batch, -1, -1))  # c^(l), [L, B, n_c, d']
        if self.uses_id:
            if len(self.projection) == self.n_layers:  # Eq. 3-4, all layers in one batched matmul
                weight = torch.stack([proj.weight for proj in self.projection])  # [L, d', d]
                bias = torch.stack([proj.bias for proj in self.projection])
                p = torch.baddbmm(bias.unsqueeze(1), e.unsqueeze(0).expand(self.n_layers, -1, -1),
                                  weight.transpose(1, 2))
            else:  # no_reparam: one shared projection, applied per layer (its gradient sums as before)
                p = torch.stack([self.projection[0](e) for _ in range(self.n_layers)])
            p = p.unsqueeze(2)  # [L, B, 1, d']
            if self.repeat_id:  # keep the length: p repeated prefix_len times
                p = p.expand(-1, -1, self.prefix_len, -1)
            parts.append(p)
        return list(torch.cat(parts, dim=2).unbind(0))  # Eq. 5-6: [c || p]

    def input_tokens(self, e, token_embeddings):
        """Input embeddings ``[B, prefix_len, d']`` for the Inputs / ProjectInputs variants."""
        batch = e.shape[0]
        if not self.projects_inputs:  # Inputs
            return self.projection[0](e).view(batch, self.prefix_len, -1)
        q = self.queries(e).view(batch, self.prefix_len, -1)
        table = token_embeddings.float()
        weights = torch.softmax(q @ table.t() / math.sqrt(table.shape[1]), dim=-1)
        return weights @ table


class RARec(LLMSequentialRecommender):
    """RA-Rec on a frozen LM and a frozen ID model (see the module docstring)."""

    PROMPTS = LLMSequentialRecommender.PROMPTS + (("item_prompt_template", "item_prompt_max_tokens"),)

    @classmethod
    def layer_prefix_len(cls, config):
        """Inputs/ProjectInputs feed the prefix as input tokens: no layer prefix."""
        ablation = str(config["ablation"] or "none").lower()
        return 0 if ablation in ("inputs", "project_inputs") else super().layer_prefix_len(config)

    @classmethod
    def check_config(cls, config):
        """RA-Rec's checks across keys (each key's own range is declared beside its default in
        ``properties/model/RARec.yaml``: :mod:`recbole_llm.checks`) and the base class's;
        :class:`UserError` naming the keys. Run before any training by ``preflight``."""
        super().check_config(config)
        ablation = str(config["ablation"] or "none").lower()
        if config["prefix_len"] < 2 and ablation in ("none", "no_reparam"):
            raise UserError(
                f"prefix_len={config['prefix_len']} leaves no room for the contextual instruction: use >= 2 "
                "(or ablation: no_instruction) (RARec)"
            )
        if config["loss_type"] != "BPR":
            raise UserError("RARec trains with BPR (Eq. 13): set loss_type: BPR and a uniform train_neg_sample_args")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.prefix_len = int(config["prefix_len"])
        self.align_weight = float(config["align_weight"])
        self.temperature = float(config["temperature"])
        self.ablation = str(config["ablation"]).lower()
        self.item_tower_cache = bool(config["item_tower_cache"])
        self.id_norm = str(config["id_norm"] or "none").lower()

        args = (self.ablation, self.n_layers_lm, self.id_dim, self.lm_dim, self.prefix_len)
        self.user_tower, self.item_tower = _Tower(*args), _Tower(*args)
        self.item_prompt = hard_prompt(self.lm.tokenizer, config, list(self.prompt_texts), "item_prompt_template",
                                       "item_prompt_max_tokens", max_items=1).to(self.device)
        self.apply(self._init_weights)
        for tower in (self.user_tower, self.item_tower):
            if hasattr(tower, "instruction"):
                trunc_normal_(tower.instruction, self.init_range)
        self._item_states = None  # h~_i for every item, [n_items, L, d'] (frozen LM: computed once)
        self._item_vectors = None  # h_i^(L) for every item, valid until the adapter changes
        self.last_losses = {}

    # ------------------------------------------------------------------ towers
    def id_input(self, x):
        """The ID vectors ``[B, d]`` as Eq. 3-4 take them: as the ID model gave them
        (``id_norm: none``, the paper), or standardised over ``d`` (``layernorm``; module docstring)."""
        return F.layer_norm(x, x.shape[-1:]) if self.id_norm == "layernorm" else x

    def _encode(self, tower, e, ids, mask):
        """Pooled last hidden state ``h^(L)`` and the layer prefixes used (Eq. 7, 12)."""
        prefix, input_prefix = None, None
        if tower.layer_prefix:
            prefix = tower.prefix(e)
        else:
            input_prefix = tower.input_tokens(e, self.lm.model.get_input_embeddings().weight)
        with self.autocast_context():
            hidden, _ = self.lm(ids, mask, prefix=prefix, input_prefix=input_prefix)
        return self.lm.pool(hidden, mask).float(), prefix

    def item_inputs(self, items):
        items = items.view(-1, 1)
        return self.item_prompt.build(items, torch.ones(items.shape[0], dtype=torch.long, device=items.device))

    def encode_users(self, interaction):
        u = self.id_input(self.user_id_representation(interaction))
        ids, mask = self.user_prompt(interaction)
        h, prefix = self._encode(self.user_tower, u, ids, mask)
        return h, prefix, (ids, mask)

    def encode_items(self, items):
        e = self.id_input(self.id_model.item_embeddings()[items].float())
        ids, mask = self.item_inputs(items)
        h, prefix = self._encode(self.item_tower, e, ids, mask)
        return h, prefix

    # --------------------------------------------------------------- alignment
    def item_states(self, items):
        """``h~_i``: pooled layer inputs on the item prompts alone, ``[B, L, d']``."""
        if not self.state_cache:
            return self.layer_states(*self.item_inputs(items)).float()
        if self._item_states is None:
            rows = []
            all_items = torch.arange(self.n_items, device=self.device)
            for chunk in all_items.split(256):
                rows.append(self.layer_states(*self.item_inputs(chunk)).to(torch.bfloat16))
            self._item_states = torch.cat(rows)
        return self._item_states[items].float()

    def _align(self, prefix, states, ids=None):
        """Eq. 14/15: InfoNCE per layer between mean-pooled ``d^(l)`` and ``h~^(l)``, mean over layers.
        ``ids`` ([B]): rows with equal ids (the same item, or the same prompt) are not each other's negatives."""
        losses = [info_nce(d.mean(1), states[:, layer], self.temperature, ids) for layer, d in enumerate(prefix)]
        return torch.stack(losses).mean()

    def calculate_loss(self, interaction):
        u = self.id_input(self.user_id_representation(interaction))
        ids, mask = self.user_prompt(interaction)
        aligned = self.align_weight > 0 and self.user_tower.layer_prefix and self.ablation != "no_id"
        # h~ first: the cache lookup's host sync then falls right after the prompt build's own.
        keys = self.prompt_keys(ids, mask) if aligned else None  # hashed once: the cache and the mask below
        states_u = self.prompt_states(ids, mask, keys) if aligned else None
        h_u, prefix_u = self._encode(self.user_tower, u, ids, mask)
        pos, neg = interaction[self.POS_ITEM_ID], interaction[self.NEG_ITEM_ID]
        h_items, prefix_items = self.encode_items(torch.cat([pos, neg]))
        h_pos, h_neg = h_items.split(pos.shape[0])
        x_pos, x_neg = (h_u * h_pos).sum(-1), (h_u * h_neg).sum(-1)  # Eq. 12
        loss_p = -F.logsigmoid(x_pos - x_neg).mean()  # Eq. 13
        # Detached tensors, not floats: .item() would sync the device every step (trainer: once per epoch).
        self.last_losses = {"prediction": loss_p.detach()}
        if not aligned:
            return loss_p
        n = pos.shape[0]
        same_prompt = keys[0] ^ keys[1]  # identical prompts are not each other's negatives
        loss_ua = self._align(prefix_u, states_u, ids=same_prompt)  # Eq. 14
        loss_ia = self._align([d[:n] for d in prefix_items], self.item_states(pos), ids=pos)  # Eq. 15
        self.last_losses.update({"user_alignment": loss_ua.detach(), "item_alignment": loss_ia.detach()})
        return loss_p + self.align_weight * (loss_ua + loss_ia)  # Eq. 16

    # -------------------------------------------------------------- evaluation
    def train(self, mode=True):
        if mode:
            self._item_vectors = None  # the item tower changes while training
        return super().train(mode)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        self._item_vectors = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @torch.no_grad()
    def all_item_vectors(self, batch_size=256):
        """``h_i^(L)`` of every item, ``[n_items, d']`` (row 0 is padding), one LM pass per item."""
        rows = [self.encode_items(chunk)[0] for chunk in torch.arange(self.n_items, device=self.device).split(batch_size)]
        return torch.cat(rows)

    def full_sort_predict(self, interaction):
        h_u, _, _ = self.encode_users(interaction)
        if not self.item_tower_cache:
            return h_u @ self.all_item_vectors().t()  # the uncached path: items re-encoded per user batch
        if self._item_vectors is None or self.training:
            self._item_vectors = self.all_item_vectors()
        return h_u @ self._item_vectors.t()

    def predict(self, interaction):
        h_u, _, _ = self.encode_users(interaction)
        h_i, _ = self.encode_items(interaction[self.ITEM_ID])
        return (h_u * h_i).sum(-1)

    def bare_lm_step(self, interaction):
        """The bare LM's forward+backward on the same work as a training step: the user prompts
        and the positive and negative item prompts (see the base class)."""
        super().bare_lm_step(interaction)
        items = torch.cat([interaction[self.POS_ITEM_ID], interaction[self.NEG_ITEM_ID]])
        ids, mask = self.item_inputs(items)
        embeds = self.lm.model.get_input_embeddings()(ids).detach().requires_grad_(True)
        position_ids = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0).expand_as(ids)
        with self.autocast_context():
            out = self.lm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids)
            loss = self.lm.pool(out.last_hidden_state, mask).float().pow(2).mean()
        loss.backward()
