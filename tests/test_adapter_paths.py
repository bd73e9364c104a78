"""The device-side h~ cache and the batched per-layer work give the numbers of the code they replaced.

``Legacy*`` below are the models' step code as of commit d74d64c, kept verbatim (plus version 0.2.0's
``ids`` mask of identical prompts in RA-Rec's user-side InfoNCE, issue 14 item 6): the host-side
``dict`` cache keyed by token bytes (``.cpu()``/``.tolist()`` every step), one projection, MMD
and InfoNCE per layer in a Python loop, ``.item()`` on every loss. Old and new train side by
side from the same initial weights on the same batches; every loss and every cached state must
be bit-identical (``torch.equal``), step after step, cache misses, hits and in-batch duplicates
included.
"""

import pytest
import torch
import torch.nn.functional as F
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_llm.data.dataset import create_dataset
from recbole_llm.model.llm_base import PromptStateCache
from recbole_llm.pipeline import ensure_id_model
from recbole_llm.quick_start import build_config
from recbole_llm.spec import RunSpec


# ----------------------------------------------------------------- d74d64c's code
def _old_gaussian_kernel(x, y, bandwidth, n_kernels=1):
    dist = torch.cdist(x.float(), y.float()).pow(2)
    offsets = torch.arange(n_kernels, device=x.device, dtype=torch.float32) - (n_kernels - 1) / 2
    rhos = float(bandwidth) * torch.pow(2.0, offsets)
    return torch.exp(-dist.unsqueeze(0) / (2 * rhos.view(-1, 1, 1))).mean(0)


def _old_mmd(x, y, bandwidth=1.0, n_kernels=1):
    kxx = _old_gaussian_kernel(x, x, bandwidth, n_kernels).mean()
    kyy = _old_gaussian_kernel(y, y, bandwidth, n_kernels).mean()
    kxy = _old_gaussian_kernel(x, y, bandwidth, n_kernels).mean()
    return kxx + kyy - 2 * kxy


def _old_info_nce(anchor, positive, temperature=0.5, ids=None):
    a = F.normalize(anchor.float(), dim=-1)
    p = F.normalize(positive.float(), dim=-1)
    logits = a @ p.t() / temperature
    if ids is not None:
        same = ids.view(-1, 1) == ids.view(1, -1)
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(a.shape[0], device=a.device)
    return F.cross_entropy(logits, target)


class _LegacyCache:
    def _old_prompt_states(self, ids, mask, keys):
        cache = self.__dict__.setdefault("_legacy_cache", {})
        out = [None] * len(keys)
        missing = [i for i, k in enumerate(keys) if k not in cache]
        if missing:
            idx = torch.tensor(missing, device=ids.device)
            sub_mask = mask[idx]
            width = int(sub_mask.sum(1).max())
            with torch.no_grad(), self.autocast_context():
                _, hidden = self.lm(ids[idx, :width], sub_mask[:, :width], output_hidden_states=True)
            pooled = torch.stack([self.lm.pool(h, sub_mask[:, :width]) for h in hidden[:-1]], dim=1)
            pooled = pooled.to(torch.bfloat16).cpu()
            for j, i in enumerate(missing):
                cache[keys[i]] = pooled[j]
        for i, k in enumerate(keys):
            out[i] = cache[k]
        return torch.stack(out).to(ids.device, torch.float32)

    @staticmethod
    def _old_prompt_keys(ids, mask):
        ids = ids.cpu()
        lengths = mask.sum(1).cpu().tolist()
        return [ids[i, :n].numpy().tobytes() for i, n in enumerate(lengths)]


def _legacy_idle():
    from recbole_llm.model.sequential_recommender.idleadapter import IDLEAdapter

    class LegacyIDLEAdapter(_LegacyCache, IDLEAdapter):
        def adapted_prefix(self, u):
            out = []
            for j, projection in enumerate(self.layer_projection):
                p = projection(u)
                big_p = p.unsqueeze(1).expand(-1, self.prefix_len, -1)
                if self.refinement:
                    c = self.prefix[j].unsqueeze(0).expand_as(big_p)
                    g = torch.sigmoid(self.gate(torch.cat([c, big_p], dim=-1)))
                    d = g * c + (1 - g) * big_p
                else:
                    d = big_p
                out.append(d)
            if not self.layerwise:
                out = out * self.n_layers_lm
            return out

        def calculate_loss(self, interaction):
            u = self.user_id_representation(interaction)
            ids, mask = self.user_prompt(interaction)
            prefix = self.adapted_prefix(u)
            with self.autocast_context():
                hidden, _ = self.lm(ids, mask, prefix=prefix)
            hidden = self.lm.pool(hidden, mask).float()
            loss_p = F.cross_entropy(self.item_output(hidden), interaction[self.POS_ITEM_ID])
            if not self.distribution:
                self.last_losses = {"prediction": loss_p.item()}
                return loss_p
            states = self._old_prompt_states(ids, mask, self._old_prompt_keys(ids, mask))
            losses = [_old_mmd(d.reshape(-1, d.shape[-1]), states[:, layer], self.mmd_bandwidth, self.mmd_kernels)
                      for layer, d in enumerate(prefix)]
            loss_m = torch.stack(losses).mean()
            self.last_losses = {"prediction": loss_p.item(), "alignment": loss_m.item()}
            return loss_p + self.align_weight * loss_m

    return LegacyIDLEAdapter


def _legacy_rarec():
    from recbole_llm.model.sequential_recommender.rarec import RARec

    def old_prefix(tower, e):
        batch = e.shape[0]
        out = []
        for layer in range(tower.n_layers):
            parts = []
            if hasattr(tower, "instruction"):
                parts.append(tower.instruction[layer].unsqueeze(0).expand(batch, -1, -1))
            if tower.ablation != "no_id":
                proj = tower.projection[layer if len(tower.projection) > 1 else 0]
                p = proj(e).unsqueeze(1)
                if tower.ablation == "no_instruction":
                    p = p.expand(-1, tower.prefix_len, -1)
                parts.append(p)
            out.append(torch.cat(parts, dim=1))
        return out

    class LegacyRARec(_LegacyCache, RARec):
        def _encode(self, tower, e, ids, mask):
            prefix = old_prefix(tower, e)
            with self.autocast_context():
                hidden, _ = self.lm(ids, mask, prefix=prefix)
            return self.lm.pool(hidden, mask).float(), prefix

        def _align(self, prefix, states, ids=None):
            losses = [_old_info_nce(d.mean(1), states[:, layer], self.temperature, ids) for layer, d in enumerate(prefix)]
            return torch.stack(losses).mean()

        def calculate_loss(self, interaction):
            h_u, prefix_u, (ids, mask) = self.encode_users(interaction)
            pos, neg = interaction[self.POS_ITEM_ID], interaction[self.NEG_ITEM_ID]
            h_items, prefix_items = self.encode_items(torch.cat([pos, neg]))
            h_pos, h_neg = h_items.split(pos.shape[0])
            x_pos, x_neg = (h_u * h_pos).sum(-1), (h_u * h_neg).sum(-1)
            loss_p = -F.logsigmoid(x_pos - x_neg).mean()
            self.last_losses = {"prediction": loss_p.item()}
            if self.align_weight <= 0 or prefix_u is None or self.ablation == "no_id":
                return loss_p
            n = pos.shape[0]
            keys = self._old_prompt_keys(ids, mask)
            groups = {}
            same = torch.tensor([groups.setdefault(k, len(groups)) for k in keys], device=ids.device)
            loss_ua = self._align(prefix_u, self._old_prompt_states(ids, mask, keys), ids=same)  # 0.2.0's mask
            loss_ia = self._align([d[:n] for d in prefix_items], self.item_states(pos), ids=pos)
            self.last_losses.update({"user_alignment": loss_ua.item(), "item_alignment": loss_ia.item()})
            return loss_p + self.align_weight * (loss_ua + loss_ia)

    return LegacyRARec


# ----------------------------------------------------------------------- tests
def _pair(name, toy_data_path, llm_overrides, tmp_path, extra):
    """(train loader, new model, legacy model) built from the same seed: identical weights."""
    from recbole_llm.utils import get_model

    model_class = get_model(name)
    legacy_class = _legacy_idle() if name == "IDLEAdapter" else _legacy_rarec()
    config = build_config(RunSpec(name, "toy", 2020, (), {**llm_overrides, **extra}, toy_data_path, tmp_path / "saved"))
    config["id_model_checkpoint"] = str(ensure_id_model(config))
    init_seed(2020, True)
    train, _, _ = data_preparation(config, create_dataset(config))
    init_seed(2020, True)
    new = model_class(config, train._dataset)
    init_seed(2020, True)
    old = legacy_class(config, train._dataset)
    assert all(torch.equal(a, b) for a, b in zip(new.state_dict().values(), old.state_dict().values()))
    return train, new, old


def _batches(train):
    """Batches 0, 1, 0 (all hits), 2 with duplicates of its own first rows (in-batch copies)."""
    it = iter(train)
    b0, b1, b2 = next(it), next(it), next(it)
    dup = torch.cat([torch.arange(len(b2)), torch.arange(4)])
    return [b0, b1, b0, b2[dup]]


@pytest.mark.parametrize("name,extra", [
    ("IDLEAdapter", {}),
    ("IDLEAdapter", {"layerwise": False, "mmd_kernels": 3}),
    ("IDLEAdapter", {"refinement": False}),
    ("RARec", {}),
    ("RARec", {"ablation": "no_reparam"}),
    ("RARec", {"ablation": "no_instruction", "prefix_len": 3}),
])
def test_new_step_code_gives_bit_identical_losses_and_states(name, extra, toy_data_path, llm_overrides, tmp_path):
    train, new, old = _pair(name, toy_data_path, llm_overrides, tmp_path, extra)
    opt_new = torch.optim.AdamW([p for p in new.parameters() if p.requires_grad], lr=1e-2)
    opt_old = torch.optim.AdamW([p for p in old.parameters() if p.requires_grad], lr=1e-2)
    new.train(), old.train()
    for step, batch in enumerate(_batches(train)):
        losses = []
        for model, opt in ((new, opt_new), (old, opt_old)):
            opt.zero_grad()
            loss = model.calculate_loss(batch)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        assert torch.equal(losses[0], losses[1]), (step, losses)
        assert set(new.last_losses) == set(old.last_losses) and len(new.last_losses) > 1
        assert all(float(new.last_losses[k]) == old.last_losses[k] for k in old.last_losses)
    # the device cache holds one row per distinct prompt, with the bits of the dict it replaced
    assert len(new._state_cache) == len(old._legacy_cache)
    ids, mask = new.user_prompt(batch)
    keys = old._old_prompt_keys(ids, mask)
    assert torch.equal(new.prompt_states(ids, mask), torch.stack([old._legacy_cache[k] for k in keys]).float())
    for a, b in zip(new.state_dict().values(), old.state_dict().values()):
        assert torch.equal(a, b)


def test_the_cache_is_keyed_by_real_tokens_on_the_device():
    cache = PromptStateCache()
    ids = torch.tensor([[5, 6, 7, 0], [5, 6, 0, 0], [5, 6, 7, 0], [6, 5, 7, 0]])
    mask = (ids > 0).long()
    first, second = cache.keys(ids, mask)
    assert first.dtype == torch.long and first.device == ids.device
    assert first[0] == first[2] and second[0] == second[2]  # same tokens, same key
    assert len({int(k) for k in first}) == 3  # prefix and permutation differ
    wider = torch.cat([ids, torch.zeros(4, 3, dtype=torch.long)], 1)  # padding does not change a key
    assert torch.equal(cache.keys(wider, (wider > 0).long())[0], first)
    assert torch.equal(cache.lookup(first, second), torch.full((4,), -1))
    rows = cache.insert(first[:2], second[:2], torch.arange(2 * 3, dtype=torch.bfloat16).view(2, 1, 3))
    assert rows.tolist() == [0, 1] and len(cache) == 2
    assert cache.lookup(first, second).tolist() == [0, 1, 0, -1]
    # a first key alone is not enough: the second must agree too
    assert cache.lookup(first[:1], second[:1] + 1).tolist() == [-1]
    # growth beyond the initial capacity keeps the earlier rows
    n = 3000
    many = torch.arange(1, n + 1).view(n, 1) + 100
    k1, k2 = cache.keys(many, torch.ones_like(many))
    cache.insert(k1, k2, torch.ones(n, 1, 3, dtype=torch.bfloat16))
    assert len(cache) == n + 2 and cache.lookup(first, second).tolist() == [0, 1, 0, -1]
    assert torch.equal(cache.lookup(k1, k2), torch.arange(2, n + 2))
    assert torch.equal(cache.table[1], torch.tensor([[3.0, 4.0, 5.0]], dtype=torch.bfloat16))


def test_last_losses_stay_on_the_device_and_the_trainer_records_floats(toy_data_path, llm_overrides, tmp_path):
    from recbole_llm.pipeline import run

    record = run(RunSpec("IDLEAdapter", "toy", 2020, (), {**llm_overrides, "epochs": 1}, toy_data_path, tmp_path / "saved"))
    parts = record["history"][0]["last_batch_losses"]
    assert set(parts) == {"prediction", "alignment"} and all(type(v) is float for v in parts.values())
