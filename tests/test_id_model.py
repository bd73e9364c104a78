"""Pretrained ID models: accessors agree with each model's own scoring; train once, reuse; checks."""

import pytest
import torch
from recbole.data import data_preparation

import recbole_llm.pipeline as pipeline
from conftest import write_toy
from recbole_llm.checkpoint import load_checkpoint, save_checkpoint
from recbole_llm.data.dataset import create_dataset
from recbole_llm.errors import UserError
from recbole_llm.id_models import PretrainedIDModel, id_model_request, load_id_model
from recbole_llm.pipeline import ensure_id_model
from recbole_llm.quick_start import build_config
from recbole_llm.utils import get_model
from recbole_llm.spec import RunSpec

SMALL = {
    "train_batch_size": 64, "eval_batch_size": 256, "show_progress": False, "MAX_ITEM_LIST_LENGTH": 10,
    "embedding_size": 16, "hidden_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 1,
    "attn_hidden_size": 16, "topk": [5, 10], "epochs": 1,
}


@pytest.mark.parametrize("name", ["SASRec", "GRU4Rec", "NARM", "BERT4Rec", "Caser", "ComiRec"])
def test_accessors_reproduce_full_sort_scores(name, toy_data_path, tmp_path):
    config = build_config(RunSpec(name, "toy", 1, (), dict(SMALL), toy_data_path, tmp_path))
    dataset = create_dataset(config)
    _, _, test_data = data_preparation(config, dataset)
    torch.manual_seed(0)
    model = get_model(name)(config, dataset).eval()
    interaction = next(iter(test_data))[0]
    with torch.no_grad():
        expected = model.full_sort_predict(interaction)
    wrapped = PretrainedIDModel(model, "toy")
    u = wrapped.user_representation(
        interaction["item_id_list"], interaction["item_length"], user=interaction["user_id"]
    )
    scores = u @ wrapped.item_embeddings().T
    if name == "BERT4Rec":
        scores = scores + model.output_bias
    assert u.shape == (len(interaction), wrapped.dim) and wrapped.dim == 16
    assert wrapped.item_embeddings().shape[0] == dataset.item_num
    torch.testing.assert_close(scores, expected.view_as(scores), atol=1e-5, rtol=1e-5)
    assert not any(p.requires_grad for p in wrapped.model.parameters())


def _llm_config(toy_data_path, saved, **id_config):
    """An IDLEAdapter config whose ID model is a small ComiRec (what ensure_id_model reads)."""
    small = {**SMALL, **id_config}
    return build_config(RunSpec("IDLEAdapter", "toy", 2020, (), {"MAX_ITEM_LIST_LENGTH": 10, "topk": [5, 10],
                                                         "id_model_config": small}, toy_data_path, saved))


def _load(config, path, **kwargs):
    name, files, extra = id_model_request(config)
    id_config = build_config(RunSpec(name, "toy", config["seed"], files, extra, config["data_root"]))
    return load_id_model(path, id_config, create_dataset(id_config), **kwargs)


def _count_runs(monkeypatch):
    calls = []
    real_run = pipeline.run
    monkeypatch.setattr(pipeline, "run", lambda *a, **k: calls.append(a[0].model_name) or real_run(*a, **k))
    return calls


def test_trained_once_then_reused(toy_data_path, tmp_path, monkeypatch):
    """The pipeline's ID-model step trains the ID model on a cache miss only."""
    calls = _count_runs(monkeypatch)
    config = _llm_config(toy_data_path, tmp_path)
    first = pipeline.ensure_id_model(config)
    second = pipeline.ensure_id_model(_llm_config(toy_data_path, tmp_path))
    assert calls == ["ComiRec"]
    assert first == second and first.parent == tmp_path.resolve() / "id_models" / "toy"
    torch.testing.assert_close(_load(config, first).item_embeddings(), _load(config, second).item_embeddings())
    # a config change that affects the weights is a different cache entry
    other = _llm_config(toy_data_path, tmp_path, embedding_size=8)
    third = pipeline.ensure_id_model(other)
    assert calls == ["ComiRec", "ComiRec"] and _load(other, third).dim == 8
    assert third != first
    with pytest.raises(UserError, match="dimension 8, but 16"):
        _load(other, third, expected_dim=16)
    # an explicit checkpoint is used as it is, nothing trained
    config["id_model_checkpoint"] = str(first)
    assert pipeline.ensure_id_model(config) == first and calls == ["ComiRec", "ComiRec"]


def test_checkpoint_of_other_data_is_refused(toy_data_path, tmp_path):
    config = build_config(RunSpec("ComiRec", "toy", 1, (), dict(SMALL), toy_data_path, tmp_path))
    dataset = create_dataset(config)
    model = get_model("ComiRec")(config, dataset)
    path = save_checkpoint(tmp_path / "c.pth", config=config, state_dict=model.state_dict())
    write_toy(tmp_path / "d2", name="toy", n_items=45, seed=1)
    config2 = build_config(RunSpec("ComiRec", "toy", 1, (), dict(SMALL), tmp_path / "d2", tmp_path))
    with pytest.raises(UserError, match="item rows"):
        load_id_model(path, config2, create_dataset(config2))
    renamed = save_checkpoint(tmp_path / "c2.pth", config=dict(config.final_config_dict, dataset="ml-100k"),
                              state_dict=model.state_dict())
    with pytest.raises(UserError, match="trained on dataset 'ml-100k'"):
        load_id_model(renamed, config, dataset)


@pytest.mark.parametrize("damage", ["empty", "truncated", "random"])
def test_damaged_cache_entry_is_discarded_and_retrained(damage, toy_data_path, tmp_path, monkeypatch):
    calls = _count_runs(monkeypatch)
    config = _llm_config(toy_data_path, tmp_path)
    path = pipeline.ensure_id_model(config)
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 3], "random": bytes(range(256)) * 8}[damage])
    assert pipeline.ensure_id_model(config) == path
    assert calls == ["ComiRec", "ComiRec"]  # trained, damaged, trained again
    model = _load(config, path)
    assert model.checkpoint_path == str(path) and model.dim == 16
    assert load_checkpoint(path)["id_model"]["seed"] == 2020


def test_a_bert4rec_run_is_the_cache_entry_an_llm_run_asks_for(toy_data_path, tmp_path, monkeypatch):
    """The benchmark's BERT4Rec row is offered to the ID-model cache under its run key (BERT4Rec changes
    its config while it trains: the finished config's key named an entry no request found), so an LLM
    run on BERT4Rec reuses it instead of training another."""
    saved = tmp_path / "saved"
    config = _llm_config(toy_data_path, saved)
    config["id_model"] = "BERT4Rec"
    name, files, extra = id_model_request(config)
    assert name == "BERT4Rec"
    record = pipeline.run(RunSpec(name, "toy", 2020, files, extra, toy_data_path, saved))
    assert record["id_cache"]["file"].endswith(f"BERT4Rec-{record['run_key']}.pth")
    calls = _count_runs(monkeypatch)
    path = pipeline.ensure_id_model(config)
    assert calls == [] and path.name == f"BERT4Rec-{record['run_key']}.pth"
