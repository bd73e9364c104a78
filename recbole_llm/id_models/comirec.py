# -*- coding: utf-8 -*-
"""
ComiRec
################################################

Reference:
    Yukuo Cen et al. "Controllable Multi-Interest Framework for Recommendation." in KDD 2020.

Reference code:
    https://github.com/THUDM/ComiRec (TensorFlow; ``Model_ComiRec_SA`` in ``src/model.py``)

This is the self-attentive variant, ComiRec-SA. It is the default pretrained ID model of the LLM
recommenders in this package, which use it with ``interest_num = 1`` and ``embedding_size = 64``.
"""

import torch
from torch import nn

from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.loss import BPRLoss

from recbole_llm.errors import UserError


class ComiRec(SequentialRecommender):
    r"""ComiRec-SA: K interests of a user read out of the item sequence by K attention heads.

    For a sequence with item embeddings :math:`H \in \mathbb{R}^{L \times d}` (padded positions
    zeroed) and position embeddings :math:`P` (``add_pos``)

    .. math::

        A = \mathrm{softmax}_{\text{positions}}\big(W_2 \tanh(W_1 (H + P)^\top)\big)^\top
        \in \mathbb{R}^{L \times K}, \qquad V_u = A^\top H \in \mathbb{R}^{K \times d},

    with :math:`W_1: d \to d_a` (``attn_hidden_size``, :math:`4d` in the official code) and
    :math:`W_2: d_a \to K` (``interest_num``). Padded positions are masked before the softmax and
    get exactly zero attention. As in the official code, positions only enter the attention
    weights; the interests are weighted sums of the item embeddings alone, and both dense layers
    carry a bias (:math:`W_2`'s bias shifts all positions of a head equally, so it cancels in the
    softmax).

    Training (the paper's "selection"): the interest used for a target item :math:`i` is
    :math:`v_u = V_u[\arg\max_k \langle V_u[k], e_i \rangle]` (hard readout; only the selected
    interest receives a gradient for that sample).

    NOTE:
        The official code trains with a sampled softmax (10 negatives per batch sample). Here the
        loss is RecBole's: ``loss_type: CE`` is the full softmax over all items (RecBole evaluates
        by full ranking, so the model is trained against every item), and ``loss_type: BPR``
        scores the selected interest against RecBole's negative item field (``neg_item_id``), as
        SASRec does. The BPR readout is selected by the positive item, as the official sampled
        softmax scores the positive and its negatives with the same readout.

    NOTE:
        Prediction scores item :math:`i` by :math:`\max_k \langle V_u[k], e_i \rangle`. The
        official evaluation retrieves the top-N items of each interest and merges the K lists by
        score (keeping an item's best score); the top-N of that merge is exactly the top-N by the
        max-over-interests score, so ranking metrics are the same. The controllable aggregation
        (diversity factor :math:`\lambda > 0`) is not part of this model.

    Initialization follows RecBole (SASRec): every embedding and linear weight is drawn from
    :math:`\mathcal{N}(0, \text{initializer\_range}^2)` and linear biases are zero; afterwards the
    padding row of the item table is reset to zero, its value under ``padding_idx=0`` (it is never
    updated and, being masked, never used).
    """

    def __init__(self, config, dataset):
        super(ComiRec, self).__init__(config, dataset)

        # load parameters info
        self.embedding_size = config["embedding_size"]  # d
        self.interest_num = config["interest_num"]  # K
        attn_hidden_size = config["attn_hidden_size"]  # d_a; None: 4 * d as in the official code
        self.attn_hidden_size = 4 * self.embedding_size if attn_hidden_size is None else attn_hidden_size
        self.add_pos = config["add_pos"]
        self.hidden_dropout_prob = config["hidden_dropout_prob"]
        self.initializer_range = config["initializer_range"]
        self.loss_type = config["loss_type"]

        if not isinstance(self.interest_num, int) or self.interest_num < 1:
            raise ValueError(f"ComiRec needs 'interest_num' to be an integer >= 1, got {self.interest_num!r}")
        if not isinstance(self.attn_hidden_size, int) or self.attn_hidden_size < 1:
            raise ValueError(
                f"ComiRec needs 'attn_hidden_size' to be an integer >= 1, got {self.attn_hidden_size!r}"
            )

        # define layers and loss
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        if self.add_pos:
            self.position_embedding = nn.Embedding(self.max_seq_length, self.embedding_size)
        else:
            self.position_embedding = None
        self.dropout = nn.Dropout(self.hidden_dropout_prob)
        self.attn_hidden = nn.Linear(self.embedding_size, self.attn_hidden_size)  # W1 (+ bias)
        self.attn_heads = nn.Linear(self.attn_hidden_size, self.interest_num)  # W2 (+ bias)

        if self.loss_type == "BPR":
            self.loss_fct = BPRLoss()
        elif self.loss_type == "CE":
            self.loss_fct = nn.CrossEntropyLoss()
        else:
            raise UserError(f"ComiRec supports loss_type CE or BPR, got {self.loss_type!r}: set loss_type in properties/model/ComiRec.yaml")

        # parameters initialization
        self.apply(self._init_weights)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def _init_weights(self, module):
        """Initialize the weights (RecBole style, as SASRec)."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def interests(self, item_seq, item_seq_len):
        r"""All K interests and the attention that produced them.

        Args:
            item_seq (torch.LongTensor): ``[B, L]`` item ids, left-aligned, padded with 0 at the end.
            item_seq_len (torch.LongTensor): ``[B]`` number of real items in each row.

        Returns:
            tuple: ``(interests, attention)`` of shapes ``[B, K, d]`` and ``[B, K, L]``; each row of
            ``attention`` sums to 1 over the first ``item_seq_len`` positions and is 0 elsewhere
            (a row with no items gets all-zero attention and a zero interest).
        """
        seq_len = item_seq.size(1)
        positions = torch.arange(seq_len, dtype=torch.long, device=item_seq.device)
        mask = positions.unsqueeze(0) < item_seq_len.view(-1, 1)  # [B, L]

        item_emb = self.item_embedding(item_seq) * mask.unsqueeze(-1).to(self.item_embedding.weight.dtype)
        item_emb = self.dropout(item_emb)  # [B, L, d]
        if self.position_embedding is not None:
            attn_input = item_emb + self.position_embedding(positions).unsqueeze(0)
        else:
            attn_input = item_emb

        logits = self.attn_heads(torch.tanh(self.attn_hidden(attn_input)))  # [B, L, K]
        logits = logits.transpose(1, 2)  # [B, K, L]
        mask = mask.unsqueeze(1)  # [B, 1, L]
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        attention = torch.softmax(logits, dim=-1).masked_fill(~mask, 0.0)  # [B, K, L]

        interests = torch.matmul(attention, item_emb)  # [B, K, d]
        return interests, attention

    def forward(self, item_seq, item_seq_len):
        r"""The user representation: ``[B, d]`` when ``interest_num == 1``, else ``[B, K, d]``."""
        interests, _ = self.interests(item_seq, item_seq_len)
        if self.interest_num == 1:
            return interests.squeeze(1)  # [B d]
        return interests  # [B K d]

    def user_embedding(self, item_seq, item_seq_len):
        r"""One ``[B, d]`` vector per user for any K.

        For ``interest_num == 1`` this is the single interest (what the LLM papers use, K = 1);
        for K > 1 it is the mean of the K interests, a fixed, target-free summary (the model itself
        never scores with it: it scores with the best-matching interest).
        """
        interests, _ = self.interests(item_seq, item_seq_len)
        return interests.mean(dim=1)  # [B d]

    def id_representation(self, item_seq, item_seq_len, user=None):
        """``u = F'(S^u)`` when ComiRec is an LLM model's frozen ID model (what makes it one for
        :mod:`recbole_llm.id_models.pretrained`): :meth:`user_embedding`, ``[B, d]``."""
        return self.user_embedding(item_seq, item_seq_len)

    def select_interest(self, interests, target_emb):
        r"""The interest with the largest inner product with each target: ``[B, K, d], [B, d] -> [B, d]``."""
        scores = torch.einsum("bkd,bd->bk", interests, target_emb)  # [B K]
        index = scores.argmax(dim=1)  # [B]
        return interests[torch.arange(interests.size(0), device=interests.device), index]  # [B d]

    def calculate_loss(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        interests, _ = self.interests(item_seq, item_seq_len)
        pos_items = interaction[self.POS_ITEM_ID]
        pos_items_emb = self.item_embedding(pos_items)
        seq_output = self.select_interest(interests, pos_items_emb)  # [B d]
        if self.loss_type == "BPR":
            neg_items = interaction[self.NEG_ITEM_ID]
            neg_items_emb = self.item_embedding(neg_items)
            pos_score = torch.sum(seq_output * pos_items_emb, dim=-1)  # [B]
            neg_score = torch.sum(seq_output * neg_items_emb, dim=-1)  # [B]
            return self.loss_fct(pos_score, neg_score)
        else:  # self.loss_type = 'CE'
            logits = torch.matmul(seq_output, self.item_embedding.weight.transpose(0, 1))  # [B n_items]
            return self.loss_fct(logits, pos_items)

    def predict(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        test_item = interaction[self.ITEM_ID]
        interests, _ = self.interests(item_seq, item_seq_len)
        test_item_emb = self.item_embedding(test_item)  # [B d]
        scores = torch.einsum("bkd,bd->bk", interests, test_item_emb)  # [B K]
        return scores.max(dim=1).values  # [B]

    def full_sort_predict(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        interests, _ = self.interests(item_seq, item_seq_len)
        scores = torch.matmul(interests, self.item_embedding.weight.transpose(0, 1))  # [B K n_items]
        return scores.max(dim=1).values  # [B n_items]
