"""Pretrained ID models: accessors agree with each model's own scoring; train once, reuse; checks."""

import pytest
import torch
from recbole.data import create_dataset, data_preparation

import recbole_llm.quick_start as qs
from conftest import write_toy
from recbole_llm.checkpoint import load_checkpoint, save_checkpoint
from recbole_llm.errors import UserError
from recbole_llm.id_model import PretrainedIDModel, load_id_model, pretrained_id_model
from recbole_llm.quick_start import build_config
from recbole_llm.utils import get_model

SMALL = {
    "train_batch_size": 64, "eval_batch_size": 256, "show_progress": False, "MAX_ITEM_LIST_LENGTH": 10,
    "embedding_size": 16, "hidden_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 1,
    "attn_hidden_size": 16, "topk": [5, 10], "epochs": 1,
}


@pytest.mark.parametrize("name", ["SASRec", "GRU4Rec", "NARM", "BERT4Rec", "Caser", "ComiRec"])
def test_accessors_reproduce_full_sort_scores(name, toy_data_path, tmp_path):
    config = build_config(name, "toy", 1, (), dict(SMALL), toy_data_path, tmp_path)
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


def test_trained_once_then_reused(toy_data_path, tmp_path, monkeypatch):
    calls = []
    real_run = qs.run

    def counting_run(*args, **kwargs):
        calls.append(args[0])
        return real_run(*args, **kwargs)

    monkeypatch.setattr(qs, "run", counting_run)
    first = pretrained_id_model("ComiRec", "toy", config_dict=dict(SMALL), data_path=toy_data_path, saved_dir=tmp_path)
    second = pretrained_id_model("ComiRec", "toy", config_dict=dict(SMALL), data_path=toy_data_path, saved_dir=tmp_path)
    assert calls == ["ComiRec"]
    assert first.checkpoint_path == second.checkpoint_path
    torch.testing.assert_close(first.item_embeddings(), second.item_embeddings())
    # a config change that affects the weights is a different cache entry
    other = dict(SMALL, embedding_size=8)
    third = pretrained_id_model("ComiRec", "toy", config_dict=other, data_path=toy_data_path, saved_dir=tmp_path)
    assert calls == ["ComiRec", "ComiRec"] and third.dim == 8
    assert third.checkpoint_path != first.checkpoint_path
    with pytest.raises(UserError, match="dimension 8, but 16"):
        pretrained_id_model("ComiRec", "toy", config_dict=other, data_path=toy_data_path, saved_dir=tmp_path,
                            expected_dim=16)


def test_checkpoint_of_other_data_is_refused(toy_data_path, tmp_path):
    config = build_config("ComiRec", "toy", 1, (), dict(SMALL), toy_data_path, tmp_path)
    dataset = create_dataset(config)
    model = get_model("ComiRec")(config, dataset)
    path = save_checkpoint(tmp_path / "c.pth", config=config, state_dict=model.state_dict())
    write_toy(tmp_path / "d2", name="toy", n_items=45, seed=1)
    config2 = build_config("ComiRec", "toy", 1, (), dict(SMALL), tmp_path / "d2", tmp_path)
    with pytest.raises(UserError, match="item rows"):
        load_id_model(path, config2, create_dataset(config2))
    renamed = save_checkpoint(tmp_path / "c2.pth", config=dict(config.final_config_dict, dataset="ml-100k"),
                              state_dict=model.state_dict())
    with pytest.raises(UserError, match="trained on dataset 'ml-100k'"):
        load_id_model(renamed, config, dataset)


@pytest.mark.parametrize("damage", ["empty", "truncated", "random"])
def test_damaged_cache_entry_is_discarded_and_retrained(damage, toy_data_path, tmp_path, monkeypatch):
    calls = []
    real_run = qs.run
    monkeypatch.setattr(qs, "run", lambda *a, **k: calls.append(a[0]) or real_run(*a, **k))
    path = pretrained_id_model("ComiRec", "toy", config_dict=dict(SMALL), data_path=toy_data_path, saved_dir=tmp_path,
                               build=False)
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 3], "random": bytes(range(256)) * 8}[damage])
    model = pretrained_id_model("ComiRec", "toy", config_dict=dict(SMALL), data_path=toy_data_path, saved_dir=tmp_path)
    assert calls == ["ComiRec", "ComiRec"]  # trained, damaged, trained again
    assert model.checkpoint_path == str(path) and model.dim == 16
    assert load_checkpoint(path)["id_model"]["seed"] == 2020
