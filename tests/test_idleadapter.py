"""IDLE-Adapter: adapter equations, frozen parts, ablations, MMD, caching, checkpoints, end to end."""

import pytest
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_llm.checkpoint import load_checkpoint, save_checkpoint
from recbole_llm.data.dataset import create_dataset
from recbole_llm.model.loss import gaussian_kernel, mmd
from recbole_llm.pipeline import ensure_id_model
from recbole_llm.pipeline import run
from recbole_llm.quick_start import build_config
from recbole_llm.spec import RunSpec


@pytest.fixture
def built(toy_data_path, llm_overrides, tmp_path):
    """(config, train_data, valid_data, factory) for IDLEAdapter on the toy data."""
    saved = tmp_path / "saved"

    def make(**extra):
        overrides = {**llm_overrides, **extra}
        config = build_config(RunSpec("IDLEAdapter", "toy", 2020, (), overrides, toy_data_path, saved))
        from recbole_llm.model.sequential_recommender.idleadapter import IDLEAdapter

        config["id_model_checkpoint"] = str(ensure_id_model(config))
        init_seed(2020, True)
        dataset = create_dataset(config)
        train, valid, _ = data_preparation(config, dataset)
        init_seed(2020, True)
        return config, train, valid, IDLEAdapter(config, train._dataset)

    return make


def _first_batch(loader):
    return next(iter(loader))


def test_only_adapter_parameters_train_and_the_lm_is_bit_identical(built):
    config, train, _, model = built()
    lm_before = {k: v.clone() for k, v in model.lm.state_dict().items()}
    id_before = {k: v.clone() for k, v in model.id_model.model.state_dict().items()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("layer_projection", "prefix", "gate", "item_output")) for n in trainable)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = _first_batch(train)
    model.train()
    loss = model.calculate_loss(batch)
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)
    opt.step()
    assert all(torch.equal(v, model.lm.state_dict()[k]) for k, v in lm_before.items())
    assert all(torch.equal(v, model.id_model.model.state_dict()[k]) for k, v in id_before.items())
    assert not model.lm.model.training


def test_the_loss_falls_on_a_batch(built):
    _, train, _, model = built()
    batch = _first_batch(train)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    model.train()
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1


def test_gate_blends_prefix_and_projection_per_token(built):
    """Eq. 5-7 recomputed by hand for layer 1."""
    _, train, _, model = built(prefix_len=3)
    u = torch.randn(4, model.id_dim)
    d = model.adapted_prefix(u)
    assert len(d) == model.n_layers_lm and d[1].shape == (4, 3, model.lm_dim)
    p = model.layer_projection[1](u).unsqueeze(1).expand(-1, 3, -1)
    c = model.prefix[1].unsqueeze(0).expand_as(p)
    g = torch.sigmoid(torch.cat([c, p], -1) @ model.gate.weight.t())
    torch.testing.assert_close(d[1], g * c + (1 - g) * p)
    assert not torch.allclose(d[0], d[1])


def test_ablations_change_what_they_name(built):
    _, train, _, full = built()
    _, _, _, shared = built(layerwise=False)
    assert len(shared.layer_projection) == 1 and shared.prefix.shape[0] == 1
    d = shared.adapted_prefix(torch.randn(2, shared.id_dim))
    assert all(torch.equal(d[0], x) for x in d)
    _, _, _, plain = built(refinement=False)
    assert not hasattr(plain, "prefix") and not hasattr(plain, "gate")
    u = torch.randn(2, plain.id_dim)
    d = plain.adapted_prefix(u)
    torch.testing.assert_close(d[0][:, 0], plain.layer_projection[0](u))
    torch.testing.assert_close(d[0][:, 1], d[0][:, 0])
    _, _, _, no_mmd = built(distribution=False)
    batch = _first_batch(train)
    no_mmd.calculate_loss(batch)
    full.calculate_loss(batch)
    assert set(no_mmd.last_losses) == {"prediction"} and set(full.last_losses) == {"prediction", "alignment"}
    assert not no_mmd._state_cache
    n_full = sum(p.numel() for p in full.parameters() if p.requires_grad)
    n_shared = sum(p.numel() for p in shared.parameters() if p.requires_grad)
    assert n_shared < n_full


def test_mmd_is_zero_for_identical_samples_and_grows_with_a_shift():
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    assert mmd(x, x, 2.0).abs() < 1e-6
    values = [mmd(x, x + s, 2.0).item() for s in (0.1, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and values[0] > 0
    # hand-computed: one point each, distance^2 = 4, rho = 1 -> 2 - 2 exp(-2)
    a, b = torch.zeros(1, 2), torch.tensor([[2.0, 0.0]])
    assert mmd(a, b, 1.0).item() == pytest.approx(2 - 2 * torch.exp(torch.tensor(-2.0)).item(), abs=1e-6)
    # several kernels average bandwidths rho * 2^j centred on rho
    k = gaussian_kernel(a, b, 1.0, n_kernels=3).item()
    assert k == pytest.approx(sum(torch.exp(torch.tensor(-4.0 / (2 * r))).item() for r in (0.5, 1.0, 2.0)) / 3, abs=1e-6)


def test_prompt_states_are_cached_and_equal_to_a_fresh_forward(built):
    _, train, _, model = built()
    batch = _first_batch(train)
    ids, mask = model.user_prompt(batch)
    distinct = {ids[i, : int(n)].numpy().tobytes() for i, n in enumerate(mask.sum(1))}
    first = model.prompt_states(ids, mask)
    assert len(model._state_cache) == len(distinct)
    assert model._state_cache.table.device == ids.device and model._state_cache.table.dtype == torch.bfloat16
    calls = []
    handle = model.lm.model.register_forward_hook(lambda *a: calls.append(1))
    second = model.prompt_states(ids, mask)
    handle.remove()
    assert not calls and torch.equal(first, second)
    with torch.no_grad():
        _, hidden = model.lm(ids, mask, output_hidden_states=True)
    fresh = model.lm.pool(hidden[1], mask)
    torch.testing.assert_close(first[:, 1], fresh, atol=2e-2, rtol=2e-2)  # stored in bf16


def test_a_sequence_scores_the_same_alone_and_in_a_padded_batch(built):
    _, _, valid, model = built()
    model.eval()
    batch = next(iter(valid))[0]
    with torch.no_grad():
        scores = model.full_sort_predict(batch)
        one = batch[torch.tensor([1])]
        alone = model.full_sort_predict(one)
    torch.testing.assert_close(scores[1], alone[0], atol=1e-5, rtol=1e-5)


def test_checkpoint_round_trip_reproduces_scores_and_skips_the_lm(built, tmp_path):
    _, train, valid, model = built()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    state = model.state_dict()
    assert not any(k.startswith("lm.") for k in state)
    save_checkpoint(tmp_path / "m.pth", state_dict=state)
    _, _, _, other = built()
    other.load_state_dict(load_checkpoint(tmp_path / "m.pth")["state_dict"])
    batch = next(iter(valid))[0]
    model.eval(), other.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.full_sort_predict(batch), other.full_sort_predict(batch))
    with pytest.raises(Exception, match="does not fit"):
        built(prefix_len=4)[3].load_state_dict(state)


def test_decoder_backbone(built, tiny_gpt2):
    _, train, valid, model = built(lm_name=str(tiny_gpt2))
    assert model.lm.pooling == "last"
    loss = model.calculate_loss(_first_batch(train))
    loss.backward()
    assert torch.isfinite(loss)


def test_end_to_end_reuses_the_benchmark_id_model(toy_data_path, llm_overrides, tmp_path):
    """The ComiRec row of a benchmark is the ID model IDLEAdapter then uses (no second training)."""
    from recbole_llm.id_models import id_model_request

    saved = tmp_path / "saved"
    config = build_config(RunSpec("IDLEAdapter", "toy", 2020, (), llm_overrides, toy_data_path, saved))
    _, files, extra = id_model_request(config)
    row = run(RunSpec("ComiRec", "toy", 2020, files, extra, toy_data_path, saved))
    cached = list((saved / "id_models" / "toy").glob("ComiRec-*.pth"))
    assert len(cached) == 1
    record = run(RunSpec("IDLEAdapter", "toy", 2020, (), llm_overrides, toy_data_path, saved))
    assert record["parameters"]["id_model_checkpoint"] == "{saved}/id_models/toy/" + cached[0].name
    assert record["id_model"]["weights_sha256"] == row["id_cache"]["weights_sha256"]  # the base, named by its weights
    assert record["id_model"]["sha256"] == row["id_cache"]["sha256"]  # and by its file, on this machine
    assert (record["id_model"]["key"], record["id_model"]["seed"]) == (row["run_key"], row["seed"])
    assert list((saved / "id_models" / "toy").glob("*.pth")) == cached
    assert record["parameters"]["trainable"] < record["parameters"]["lm"] == record["lm"]["parameters"]
    assert record["lm"]["layers"] >= 1 and record["lm"]["weights_sha256"]  # which LM, by its weights
    assert set(record["test"]) >= {"hit@10", "ndcg@10"} and row["test"]
    cost = record["cost"]
    assert cost["train_samples_per_s_model"] > 0 and cost["adapter_throughput_ratio"] > 0
    assert record["history"][0]["lr_end"] < 5e-4  # linear decay
    assert "alignment" in record["history"][0]["last_batch_losses"]
