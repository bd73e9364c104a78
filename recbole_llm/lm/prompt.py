"""Hard prompts tokenised once, assembled per batch with tensor operations.

A template with one ``{titles}`` slot (e.g. "Your task is to recommend the next movie the
user may be interested in based on their watch history: {titles}.") is filled with the
texts of the last ``max_items`` entries of a sequence, most recent last, joined by
``separator``, and cut to ``max_tokens`` tokens including the tokenizer's special tokens.

Why hand-written: a tokenizer call per training sample would dominate a CPU training step
and repeat identical work every epoch. Here every text and the template are tokenised once
(when the prompt is built, once per dataset); a batch's prompts are then gathered from the
token table and packed with a stable sort, on the model's device. When the texts do not
fit, the oldest are dropped first (whole texts; a single text longer than the budget is cut).
"""

import torch

TITLES = "{titles}"


class HardPrompt:
    """Prompt builder over a fixed list of texts (index = id; empty string = no text).

    Args:
        tokenizer: a transformers tokenizer.
        template: text with exactly one ``{titles}`` slot.
        texts: list of strings, ``texts[i]`` is the text of id ``i`` (id 0 is padding).
        max_tokens: token budget of a whole prompt, special tokens included.
        max_items: at most this many most recent ids are considered.
        separator: text between two titles.
    """

    def __init__(self, tokenizer, template, texts, max_tokens=64, max_items=20, separator=", "):
        if template.count(TITLES) != 1:
            raise ValueError(f"the prompt template needs exactly one {TITLES} slot: {template!r}")
        self.template = template
        self.max_tokens = int(max_tokens)
        self.max_items = int(max_items)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        head_text, tail_text = template.split(TITLES)
        special_head, special_tail = _special_tokens(tokenizer)
        self.head = special_head + _encode(tokenizer, head_text)
        self.tail = _encode(tokenizer, tail_text) + special_tail
        budget = self.max_tokens - len(self.head) - len(self.tail)
        if budget < 1:
            raise ValueError(
                f"prompt_max_tokens={self.max_tokens} leaves no room for titles: the template alone "
                f"takes {len(self.head) + len(self.tail)} tokens"
            )
        self.budget = budget
        sep = _encode(tokenizer, separator)
        encoded = [_encode(tokenizer, t)[:budget] if t else [] for t in texts]
        width = max([len(e) + len(sep) for e in encoded] + [1])
        table = torch.full((len(texts), width), self.pad_id, dtype=torch.long)
        text_len = torch.zeros(len(texts), dtype=torch.long)
        sep_len = torch.zeros(len(texts), dtype=torch.long)
        for i, ids in enumerate(encoded):
            if ids:
                row = ids + sep
                table[i, : len(row)] = torch.tensor(row, dtype=torch.long)
                text_len[i] = len(ids)
                sep_len[i] = len(sep)
        self.table, self.text_len, self.sep_len = table, text_len, sep_len
        self._head_t = torch.tensor(self.head, dtype=torch.long)
        self._tail_t = torch.tensor(self.tail, dtype=torch.long)

    def to(self, device):
        for name in ("table", "text_len", "sep_len", "_head_t", "_tail_t"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def last_items(self, item_seq, item_seq_len):
        """The last ``max_items`` ids of each right-padded sequence, right-aligned (0 = none)."""
        k = self.max_items
        offsets = torch.arange(k, device=item_seq.device) - k  # -k .. -1
        pos = item_seq_len.unsqueeze(1) + offsets.unsqueeze(0)
        valid = pos >= 0
        items = torch.gather(item_seq, 1, pos.clamp_min(0)) * valid
        return items

    def build(self, item_seq, item_seq_len):
        """Token ids and attention mask ``[B, S]`` (right padding, S <= max_tokens) for a batch."""
        items = self.last_items(item_seq, item_seq_len)  # [B, K]
        batch, k = items.shape
        lengths = self.text_len[items] + self.sep_len[items]
        lengths[:, -1] = self.text_len[items[:, -1]]  # no separator after the most recent title
        # Keep the most recent titles that fit: cumulative length from the end.
        from_end = lengths.flip(1).cumsum(1).flip(1)
        keep = from_end <= self.budget
        tokens = self.table[items]  # [B, K, W]
        width = tokens.shape[2]
        within = torch.arange(width, device=items.device).view(1, 1, width) < lengths.unsqueeze(2)
        mask = (within & keep.unsqueeze(2)).reshape(batch, k * width)
        tokens = tokens.reshape(batch, k * width)
        head = self._head_t.expand(batch, -1)
        tail = self._tail_t.expand(batch, -1)
        all_tokens = torch.cat([head, tokens, tail], dim=1)
        all_mask = torch.cat(
            [torch.ones_like(head, dtype=torch.bool), mask, torch.ones_like(tail, dtype=torch.bool)], dim=1
        )
        order = torch.sort((~all_mask).to(torch.int8), dim=1, stable=True).indices
        packed = torch.gather(all_tokens, 1, order)
        packed_mask = torch.gather(all_mask, 1, order)
        n = int(packed_mask.sum(1).max())
        packed, packed_mask = packed[:, :n], packed_mask[:, :n]
        packed = packed.masked_fill(~packed_mask, self.pad_id)
        return packed, packed_mask.long()

    def titles_in_prompts(self, item_seq, item_seq_len):
        """How many titles each sequence's prompt holds, ``[B]``: the texts :meth:`build` keeps
        (the most recent that fit the budget; ids without a text do not count)."""
        items = self.last_items(item_seq, item_seq_len)
        lengths = self.text_len[items] + self.sep_len[items]
        lengths[:, -1] = self.text_len[items[:, -1]]
        keep = lengths.flip(1).cumsum(1).flip(1) <= self.budget
        return (keep & (self.text_len[items] > 0)).sum(1)

    def stats(self, item_seq, item_seq_len, batch_size=4096):
        """``{"mean_titles", "median_titles", "max_tokens", "prompts"}`` over the given sequences."""
        counts = torch.cat([self.titles_in_prompts(item_seq[i:i + batch_size], item_seq_len[i:i + batch_size])
                            for i in range(0, len(item_seq), batch_size)]).double()
        return {"mean_titles": float(counts.mean()), "median_titles": float(counts.quantile(0.5)),
                "max_tokens": self.max_tokens, "prompts": int(counts.numel())}

    def decode(self, tokenizer, ids, mask):
        """Text of one built prompt (for logs and tests)."""
        return tokenizer.decode(ids[mask.bool()].tolist())


def _encode(tokenizer, text):
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _special_tokens(tokenizer):
    """The special tokens the tokenizer puts before and after a text (e.g. [CLS] ... [SEP])."""
    probe = "hello"
    plain = _encode(tokenizer, probe)
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start], full[start + len(plain):]
    return [], []
