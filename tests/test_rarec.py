"""RA-Rec: towers, BPR + InfoNCE, ablations, the item-tower cache, end to end."""

import math

import pytest
import torch
import torch.nn.functional as F
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_llm.data.dataset import create_dataset
from recbole_llm.errors import UserError
from recbole_llm.model.loss import info_nce
from recbole_llm.pipeline import ensure_id_model
from recbole_llm.pipeline import run
from recbole_llm.quick_start import build_config
from recbole_llm.spec import RunSpec


@pytest.fixture
def built(toy_data_path, llm_overrides, tmp_path):
    saved = tmp_path / "saved"

    def make(**extra):
        from recbole_llm.model.sequential_recommender.rarec import RARec

        config = build_config(RunSpec("RARec", "toy", 2020, (), {**llm_overrides, **extra}, toy_data_path, saved))
        config["id_model_checkpoint"] = str(ensure_id_model(config))
        init_seed(2020, True)
        train, valid, test = data_preparation(config, create_dataset(config))
        init_seed(2020, True)
        return train, valid, RARec(config, train._dataset)

    return make


def test_info_nce_matches_a_hand_computed_3x3_case():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    p = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, -1.0]])
    tau = 0.5
    cos = [[1.0, 1 / math.sqrt(2), 0.0], [0.0, 1 / math.sqrt(2), -1.0], [1 / math.sqrt(2), 1.0, -1 / math.sqrt(2)]]
    expected = 0.0
    for k in range(3):
        row = [math.exp(c / tau) for c in cos[k]]
        expected -= math.log(row[k] / sum(row))
    assert info_nce(a, p, tau).item() == pytest.approx(expected / 3, abs=1e-6)


def test_info_nce_does_not_count_a_repeated_item_as_its_own_negative():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    tau = 0.5
    # rows 0 and 1 are the same item: each sees only itself and row 2 (cosine 0)
    own = math.exp(1 / tau)
    expected = 2 * -math.log(own / (own + 1.0)) + -math.log(own / (own + 2.0))
    ids = torch.tensor([7, 7, 3])
    assert info_nce(a, p, tau, ids).item() == pytest.approx(expected / 3, abs=1e-6)
    assert info_nce(a, p, tau).item() > info_nce(a, p, tau, ids).item()


@pytest.mark.parametrize("id_norm", ["none", "layernorm"])
def test_bpr_matches_a_hand_computed_case(built, id_norm):
    """The training loss sees the towers the scoring path sees (for id_norm too: calculate_loss
    builds its own user vectors, so it must standardise them as encode_users does)."""
    train, _, model = built(id_norm=id_norm)
    with torch.no_grad():  # projections large enough that the ID part of the prefix matters
        for tower in (model.user_tower, model.item_tower):
            for proj in tower.projection:
                proj.weight.normal_(0.0, 0.5)
    batch = next(iter(train))
    model.align_weight = 0.0
    loss = model.calculate_loss(batch)
    h_u = model.encode_users(batch)[0]
    h_p = model.encode_items(batch[model.POS_ITEM_ID])[0]
    h_n = model.encode_items(batch[model.NEG_ITEM_ID])[0]
    diff = (h_u * h_p).sum(-1) - (h_u * h_n).sum(-1)
    expected = torch.tensor([-math.log(1 / (1 + math.exp(-d))) for d in diff.tolist()]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_only_alignment_parameters_train_and_the_loss_falls(built):
    train, _, model = built()
    lm_before = {k: v.clone() for k, v in model.lm.state_dict().items()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("user_tower.", "item_tower.")) for n in trainable)
    batch = next(iter(train))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    model.train()
    losses, parts = [], []
    for _ in range(20):
        opt.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        parts.append(dict(model.last_losses))
    # A random 2-layer LM gives nearly the same vector for every prompt, so BPR moves little;
    # the total and both alignment terms must fall all the same.
    assert losses[-1] < losses[0] - 0.02, losses
    assert parts[-1]["user_alignment"] < parts[0]["user_alignment"]
    assert parts[-1]["item_alignment"] < parts[0]["item_alignment"]
    assert all(torch.equal(v, model.lm.state_dict()[k]) for k, v in lm_before.items())
    assert set(model.last_losses) == {"prediction", "user_alignment", "item_alignment"}


def test_prefix_is_instruction_then_projected_id(built):
    _, _, model = built(prefix_len=3)
    e = torch.randn(4, model.id_dim)
    d = model.user_tower.prefix(e)
    assert len(d) == model.n_layers_lm and d[1].shape == (4, 3, model.lm_dim)
    torch.testing.assert_close(d[1][:, :2], model.user_tower.instruction[1].expand(4, -1, -1))  # c^(l)
    torch.testing.assert_close(d[1][:, 2], model.user_tower.projection[1](e))  # Eq. 3
    assert not torch.allclose(d[0][:, 2], d[1][:, 2])


def test_each_ablation_changes_what_it_names(built):
    e = None
    _, _, no_id = built(ablation="no_id")
    e = torch.randn(3, no_id.id_dim)
    d = no_id.user_tower.prefix(e)
    assert d[0].shape[1] == 2 and torch.equal(d[0][0], d[0][1])  # no ID: the same prefix for everyone
    assert not hasattr(no_id.user_tower, "projection")
    train, _, _ = built(ablation="no_id")
    no_id.calculate_loss(next(iter(train)))
    assert set(no_id.last_losses) == {"prediction"}  # plain prefix tuning: BPR alone
    _, _, shared = built(ablation="no_reparam")
    d = shared.user_tower.prefix(e)
    assert len(shared.user_tower.projection) == 1 and torch.equal(d[0][:, 1], d[1][:, 1])
    _, _, no_c = built(ablation="no_instruction")
    d = no_c.user_tower.prefix(e)
    assert d[0].shape[1] == 2 and not hasattr(no_c.user_tower, "instruction")  # same length, p repeated
    torch.testing.assert_close(d[1][:, 0], no_c.user_tower.projection[1](e))
    torch.testing.assert_close(d[1][:, 1], d[1][:, 0])
    for variant in ("inputs", "project_inputs"):
        train, _, model = built(ablation=variant)
        assert not model.user_tower.layer_prefix
        tokens = model.user_tower.input_tokens(e, model.lm.model.get_input_embeddings().weight)
        assert tokens.shape == (3, 2, model.lm_dim)
        model.calculate_loss(next(iter(train)))
        assert set(model.last_losses) == {"prediction"}
    # ProjectInputs makes convex combinations of real token embeddings
    table = model.lm.model.get_input_embeddings().weight
    assert tokens.abs().max() <= table.abs().max() + 1e-6


def test_item_tower_cache_gives_the_uncached_scores(built):
    _, valid, model = built()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    model.eval()
    batch = next(iter(valid))[0]
    with torch.no_grad():
        cached = model.full_sort_predict(batch)
        assert model._item_vectors is not None
        model.item_tower_cache = False
        uncached = model.full_sort_predict(batch)
        pairs = model.predict(_pairs(batch, model))
    torch.testing.assert_close(cached, uncached, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pairs, cached[0, 1:6], atol=1e-4, rtol=1e-4)
    model.train()
    assert model._item_vectors is None  # training invalidates the item vectors


def _pairs(batch, model):
    one = batch[torch.tensor([0] * 5)]
    one.interaction[model.ITEM_ID] = torch.arange(1, 6)
    return one


def test_bad_options_are_one_line_errors(built):
    with pytest.raises(UserError, match="ablation"):
        built(ablation="nope")
    with pytest.raises(UserError, match="prefix_len"):
        built(prefix_len=1)
    with pytest.raises(UserError, match="temperature"):
        built(temperature=0)
    with pytest.raises(UserError, match="id_norm = 'l2' .*must be one of: none, layernorm"):
        built(id_norm="l2")
    with pytest.raises(UserError, match=r"temperature = -0.5 \(from --temperature\) must be > 0"):
        built(temperature=-0.5)  # the rule declared beside the key in properties/model/RARec.yaml


def test_id_norm_makes_the_prefix_independent_of_the_id_models_scale(built, monkeypatch):
    """``id_norm: layernorm`` standardises u and e before Eq. 3-4: an ID model whose vectors are
    100x larger gives the same towers' outputs (up to layer norm's eps); with the paper's ``none``
    it does not."""
    train, _, plain = built()
    _, _, normed = built(id_norm="layernorm")
    with torch.no_grad():  # projections large enough that the ID part of the prefix matters
        for tower in (plain.user_tower, plain.item_tower):
            for proj in tower.projection:
                proj.weight.normal_(0.0, 0.5)
    normed.load_state_dict(plain.state_dict())  # the same adapter weights
    batch = next(iter(train))
    items = batch[plain.POS_ITEM_ID][:4]
    for model in (plain, normed):
        model.eval()
    with torch.no_grad():
        before = {m: (m.encode_users(batch)[0], m.encode_items(items)[0]) for m in (plain, normed)}
        for m in (plain, normed):  # scale the frozen ID model's vectors by 100
            real = m.user_id_representation
            monkeypatch.setattr(m, "user_id_representation", lambda inter, real=real: 100 * real(inter))
            m.id_model.model.item_embedding.weight.mul_(100)
        after = {m: (m.encode_users(batch)[0], m.encode_items(items)[0]) for m in (plain, normed)}
    for side in (0, 1):  # users, items: relative change of the towers' outputs
        change = [((after[m][side] - before[m][side]).norm() / before[m][side].norm()).item() for m in (plain, normed)]
        assert change[0] > 1e-3 and change[1] < 0.05 * change[0], change
    e = torch.randn(5, normed.id_dim) * 7 + 3
    x = normed.id_input(e)
    torch.testing.assert_close(x.mean(-1), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.var(-1, unbiased=False), torch.ones(5), atol=1e-3, rtol=0)
    assert torch.equal(plain.id_input(e), e)


def test_end_to_end_run_record(toy_data_path, llm_overrides, tmp_path):
    record = run(RunSpec("RARec", "toy", 2020, (), llm_overrides, toy_data_path, tmp_path / "saved"))
    assert set(record["test"]) >= {"hit@10", "ndcg@10"}
    assert record["parameters"]["trainable"] < record["parameters"]["lm"]
    assert record["cost"]["adapter_throughput_ratio"] > 0


def test_identical_prompts_are_not_each_others_user_negatives(built):
    """Eq. 14 with a batch whose rows 0-2 have one history (one prompt, one h~): the loss is the
    InfoNCE whose negatives are the rows with another prompt, to the last digit."""
    train, _, model = built()
    batch = next(iter(train))
    seq, length = batch[model.ITEM_SEQ].clone(), batch[model.ITEM_SEQ_LEN].clone()
    seq[1:3], length[1:3] = seq[0], length[0]
    batch.interaction[model.ITEM_SEQ], batch.interaction[model.ITEM_SEQ_LEN] = seq, length
    model.calculate_loss(batch)
    masked = model.last_losses["user_alignment"]

    with torch.no_grad():
        ids, mask = model.user_prompt(batch)
        prompts = [tuple(ids[i, : int(mask[i].sum())].tolist()) for i in range(len(ids))]
        assert prompts[0] == prompts[1] == prompts[2]
        states = model.prompt_states(ids, mask)
        prefix = model.user_tower.prefix(model.user_id_representation(batch))
        per_layer = []
        for layer, d in enumerate(prefix):
            sims = F.normalize(d.mean(1), dim=-1) @ F.normalize(states[:, layer], dim=-1).t() / model.temperature
            terms = []
            for k in range(len(prompts)):
                kept = [j for j in range(len(prompts)) if j == k or prompts[j] != prompts[k]]
                terms.append(torch.logsumexp(sims[k, kept], 0) - sims[k, k])
            per_layer.append(torch.stack(terms).mean())
        expected = torch.stack(per_layer).mean().item()
        unmasked = model._align(prefix, states).item()
    assert float(masked) == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert unmasked > masked + 1e-4  # the duplicates counted as negatives: what 0.1.0 computed
