r"""IDLE-Adapter: ID and language embeddings bridged by a layer-wise adapter.

Paper: Yu, Zhang, Zhao and Wang, "Break the ID-Language Barrier: An Adaption Framework for
Sequential Recommendation", sections 4.1-4.3 and 5.1. Equation numbers refer to it.

A frozen ID sequential model gives ``u = F'(S^u)`` (Eq. 2). Per LM layer l the adapter makes

    p^(l) = W_u^(l) u + b_u^(l)                                   (Eq. 5, d -> d')
    g^(l) = sigmoid(Concat(C^(l), P^(l)) W_g)                     (Eq. 6, one gate per token)
    D^(l) = g^(l) * C^(l) + (1 - g^(l)) * P^(l)                   (Eq. 7)

and ``D^(l)`` ([L', d']) is injected as extra keys/values of layer l's self-attention through
its frozen projections (Eq. 8-11, :class:`recbole_llm.lm.FrozenLM`). The LM reads the hard
prompt (section 4.1); its last hidden state, pooled, scores every item, ``softmax(W_y^T H)``
(Eq. 14), trained with cross-entropy on RecBole's shifted subsequences (Eq. 13), plus the
MMD alignment ``L = L_p + lambda L_m`` (Eq. 12, 15). Only the adapter and ``W_y`` train (Eq. 16).

Choices where the paper is vague, and why:

* ``C^(l)`` is written with a user index but is a learned parameter; it is shared by all
  users (a per-user parameter could not generalise to users unseen in training).
* ``W_g`` in R^{2d'} carries no layer index in Eq. 6, so one gate vector is shared by all
  layers (with ``layerwise: False`` everything is shared anyway).
* ``H_u^(L)`` (Eq. 14) is the prompt's last hidden states pooled like the backbone's sentence
  embedding: mean over real tokens for encoders (SentenceBert), last token for decoders.
  Prefix positions are never pooled.
* MMD (Eq. 12) needs a set of rows on each side. Layer l's prefix rows ``D^(l)`` of every
  user in the batch (B x L' rows) are compared with the pooled layer-l input states
  ``H~^(l)`` of the same prompts without any prefix (B rows), and the per-layer values are
  averaged. Token-level ``H~`` would have to be cached per prompt and token (tens of GB for
  ml-100k); the pooled states are cached once per distinct prompt in bf16 (the LM is frozen,
  so they never change).
* Layer l's prefix enters layer l's attention, so ``D^(l)`` lives in the space of layer l's
  input, ``hidden_states[l]``; that is the ``H~^(l)`` it is aligned with.
* Init: every adapter weight from a normal of std 0.02 truncated to [-0.02, 0.02] (the
  paper's "truncated normal in the range [-0.02, 0.02]"), biases zero.
* Ablations (Table 4): ``layerwise: False`` uses one projection/prefix for every layer;
  ``refinement: False`` injects ``P^(l)`` (L' copies of ``p^(l)``) without prefix and gate;
  ``distribution: False`` drops ``L_m``.
"""

import torch
import torch.nn.functional as F
from torch import nn

from recbole_llm.errors import UserError
from recbole_llm.model.llm_base import LLMSequentialRecommender, trunc_normal_
from recbole_llm.model.loss import mmd


class IDLEAdapter(LLMSequentialRecommender):
    """IDLE-Adapter on a frozen LM and a frozen ID model (see the module docstring)."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.prefix_len = int(config["prefix_len"])
        self.align_weight = float(config["align_weight"])
        self.mmd_bandwidth = float(config["mmd_bandwidth"])
        self.mmd_kernels = int(config["mmd_kernels"])
        self.layerwise = bool(config["layerwise"])
        self.refinement = bool(config["refinement"])
        self.distribution = bool(config["distribution"]) and self.align_weight > 0

        n_adapters = self.n_layers_lm if self.layerwise else 1
        d_id, d_lm = self.id_dim, self.lm_dim
        # Eq. 5: one projection d -> d' per layer.
        self.layer_projection = nn.ModuleList(nn.Linear(d_id, d_lm) for _ in range(n_adapters))
        if self.refinement:
            # Eq. 6-7: learned prefixes C^(l) and the token-level gate W_g.
            self.prefix = nn.Parameter(torch.empty(n_adapters, self.prefix_len, d_lm))
            self.gate = nn.Linear(2 * d_lm, 1, bias=False)
        # Eq. 14: W_y, the item output layer over all items.
        self.item_output = nn.Linear(self.lm.output_size, self.n_items, bias=False)
        self.apply(self._init_weights)
        if self.refinement:
            trunc_normal_(self.prefix, self.init_range)
        self.last_losses = {}

    # ------------------------------------------------------------------ adapter
    def adapted_prefix(self, u):
        """``D^(l)`` for every layer: a list of ``num_layers`` tensors ``[B, L', d']`` (Eq. 5-7).

        Eq. 5 for all layers in one batched matmul (the same bits as one ``Linear`` per layer,
        gradients included). The gate stays one call per layer: ``W_g`` is shared by the
        layers, and one call over all layers sums its gradient in another order (equal to
        ~1e-8, not to the bit), which would change every trained number."""
        weight = torch.stack([projection.weight for projection in self.layer_projection])  # [n, d', d]
        bias = torch.stack([projection.bias for projection in self.layer_projection])  # [n, d']
        n = weight.shape[0]
        projected = torch.baddbmm(bias.unsqueeze(1), u.unsqueeze(0).expand(n, -1, -1), weight.transpose(1, 2))  # Eq. 5
        out = []
        for j in range(n):
            big_p = projected[j].unsqueeze(1).expand(-1, self.prefix_len, -1)  # P^(l): p repeated L' times
            if self.refinement:
                c = self.prefix[j].unsqueeze(0).expand_as(big_p)
                g = torch.sigmoid(self.gate(torch.cat([c, big_p], dim=-1)))  # Eq. 6, [B, L', 1]
                d = g * c + (1 - g) * big_p  # Eq. 7
            else:
                d = big_p
            out.append(d)
        if not self.layerwise:
            out = out * self.n_layers_lm
        return out

    def encode(self, u, ids, mask):
        """Pooled last hidden state ``H_u^(L)`` [B, d'] of the prompts with the adapted prefixes."""
        prefix = self.adapted_prefix(u)
        with self.autocast_context():
            hidden, _ = self.lm(ids, mask, prefix=prefix)
        return self.lm.pool(hidden, mask).float(), prefix

    def forward(self, interaction):
        """Pooled last hidden state ``H_u^(L)`` [B, d'] and the prefixes used to get it."""
        u = self.user_id_representation(interaction)
        ids, mask = self.user_prompt(interaction)
        hidden, prefix = self.encode(u, ids, mask)
        return hidden, prefix, (ids, mask)

    # ------------------------------------------------------------------- losses
    def alignment_loss(self, prefix, states):
        """``L_m`` (Eq. 12): per-layer MMD between prefix rows and prompt-only layer states
        ``states`` [B, L, d'], averaged over the layers. One MMD per layer: a batched MMD gives
        the same losses but sums the prefix gradients in another order (not the same bits)."""
        losses = []
        for layer, d in enumerate(prefix):
            losses.append(mmd(d.reshape(-1, d.shape[-1]), states[:, layer], self.mmd_bandwidth, self.mmd_kernels))
        return torch.stack(losses).mean()

    def calculate_loss(self, interaction):
        u = self.user_id_representation(interaction)
        ids, mask = self.user_prompt(interaction)
        # h~ first: the cache lookup's host sync then falls right after the prompt build's own.
        states = self.prompt_states(ids, mask) if self.distribution else None
        hidden, prefix = self.encode(u, ids, mask)
        logits = self.item_output(hidden)
        loss_p = F.cross_entropy(logits, interaction[self.POS_ITEM_ID])  # Eq. 13-14
        # Detached tensors, not floats: .item() here would sync the device every step; the
        # trainer converts the last batch's once per epoch.
        if not self.distribution:
            self.last_losses = {"prediction": loss_p.detach()}
            return loss_p
        loss_m = self.alignment_loss(prefix, states)
        self.last_losses = {"prediction": loss_p.detach(), "alignment": loss_m.detach()}
        return loss_p + self.align_weight * loss_m  # Eq. 15

    # --------------------------------------------------------------- evaluation
    def full_sort_predict(self, interaction):
        hidden, _, _ = self.forward(interaction)
        return self.item_output(hidden)

    def predict(self, interaction):
        hidden, _, _ = self.forward(interaction)
        weight = self.item_output.weight[interaction[self.ITEM_ID]]
        return (hidden * weight).sum(-1)
