"""RecBole's model zoo under the benchmark's protocol: a model runs, or is refused with one line
(saying why, and the fix where there is one) before anything trains (recbole_llm.utils.protocol_problem).

The default suite runs a representative few (LightGCN, which needs recbole_llm.compat's
``dok_matrix._update``; a general and a sequential model; DeepFM's refusal); the slow test runs
every general and sequential RecBole model for one epoch."""

import json
import re
from pathlib import Path

import pytest
import torch

from recbole_llm.utils import get_model, protocol_problem
from test_benchmark_cli import _main

NEGATIVES = '--train_neg_sample_args={distribution: uniform, sample_num: 1}'
# keys every model reads (a key a model does not read is refused): the models keep their own sizes
TINY = ["--epochs=1", "--train_batch_size=64", "--MAX_ITEM_LIST_LENGTH=10", "--topk=[5,10]"]


def _in_process(args, data_path, tmp_path):
    return _main()([f"--data-path={data_path}", f"--output={tmp_path / 'results'}", f"--saved-dir={tmp_path / 'saved'}",
                    "--threads=1", "--no-progress", "--dataset=toy", *args])


def _records(tmp_path):
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "results" / "toy" / "runs").glob("*.json"))]


def test_lightgcn_runs_with_negatives_and_a_repeated_seed_runs_once(toy_data_path, tmp_path, capsys):
    """LightGCN builds its graph with dok_matrix._update, which scipy 1.17 lacks (compat restores it)."""
    assert _in_process(["--model=lightgcn", "--seeds=4,4", NEGATIVES, *TINY], toy_data_path, tmp_path) == 0
    out = capsys.readouterr().out
    assert "[recbole-llm] --seeds: 4 given more than once; each runs once" in out
    (record,) = _records(tmp_path)
    assert record["model"] == "LightGCN" and record["label"] == "LightGCN" and record["epochs_run"] == 1
    assert 0.0 <= record["test"]["ndcg@10"] <= 1.0


@pytest.mark.parametrize("model, line", [
    ("LightGCN", "LightGCN trains on sampled negatives and the protocol samples none (train_neg_sample_args: ~, for "
                 "the CE models): pass --train_neg_sample_args=\"{distribution: uniform, sample_num: 1}\""),
    ("DeepFM", "DeepFM is a context-aware (click-through-rate) model: it learns from a label field and RecBole "
               "evaluates it on labelled user-item pairs, not by the benchmark's leave-one-out full ranking"),
    ("KGAT", "KGAT is a knowledge-aware model: it needs a knowledge graph"),
])
def test_a_model_the_protocol_cannot_run_is_one_line_before_training(model, line, toy_data_path, tmp_path, capsys):
    assert _in_process([f"--model={model}", *TINY[:1]], toy_data_path, tmp_path) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {line}"), captured.err[-1500:]
    assert "run 1/1" not in captured.out and not (tmp_path / "results").exists()


@pytest.mark.parametrize("model", ["MultiVAE", "NARM"])
def test_a_general_and_a_sequential_model_run_under_the_protocol(model, toy_data_path, tmp_path):
    assert _in_process([f"--model={model}", *TINY], toy_data_path, tmp_path) == 0
    (record,) = _records(tmp_path)
    assert record["model"] == model and record["config"]["eval_args"]["split"] == {"LS": "valid_and_test"}
    assert 0.0 <= record["test"]["hit@10"] <= 1.0


def _config(model, toy_data_path, tmp_path, **overrides):
    from recbole_llm.quick_start import build_config
    from recbole_llm.spec import RunSpec

    return build_config(RunSpec(model, "toy", 1, (), {"topk": [5, 10], **overrides}, toy_data_path, tmp_path))


@pytest.mark.parametrize("model, overrides, expected", [
    ("SASRec", {}, None),
    ("SASRec", {"loss_type": "BPR"}, "SASRec trains on sampled negatives"),  # its BPR branch reads neg_item_id
    ("SASRec", {"loss_type": "BPR", "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}}, None),
    ("BPR", {}, None),  # properties/model/BPR.yaml samples its negatives
    ("DMF", {}, "DMF trains on sampled negatives"),  # a pointwise model: RecBole makes its label from negatives
    ("ItemKNN", {}, "ItemKNN keeps fitted state that is no tensor"),
    ("ItemKNN", {"trust_checkpoint": True}, None),
    ("DIN", {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}}, "DIN keeps fitted state"),
    ("FDSA", {}, "FDSA reads the item features selected_features=['class'], and ['class'] is not loaded"),
    ("KSR", {}, "KSR reads toy.ent (additional_feat_suffix"),
    ("RaCT", {}, "RaCT trains in stages (train_stage: actor_pretrain"),
    ("S3Rec", {}, "S3Rec trains in stages (train_stage: pretrain"),
])
def test_protocol_problems_are_read_from_the_model_and_its_config(model, overrides, expected, toy_data_path, tmp_path):
    problem = protocol_problem(get_model(model), _config(model, toy_data_path, tmp_path, **overrides))
    assert (problem is None) if expected is None else problem.startswith(expected), problem


def test_an_optional_package_a_model_imports_is_named_when_the_run_needs_it(monkeypatch, toy_data_path, tmp_path):
    import importlib.util

    louvain = _config("NNCF", toy_data_path, tmp_path, neigh_info_method="louvain",
                      train_neg_sample_args={"distribution": "uniform", "sample_num": 1})
    random = _config("NNCF", toy_data_path, tmp_path, train_neg_sample_args={"distribution": "uniform", "sample_num": 1})
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("faiss", "community") else real(name, *a))
    assert protocol_problem(get_model("NCL")) == "NCL needs the package faiss (pip install faiss-cpu), which is not installed"
    assert protocol_problem(get_model("NNCF")) is None  # depends on neigh_info_method: decided with the config
    assert protocol_problem(get_model("NNCF"), louvain) == ("NNCF needs the package community (pip install "
                                                            "python-louvain), which is not installed")
    assert protocol_problem(get_model("NNCF"), random) is None


def _zoo():
    import recbole

    base = Path(recbole.__file__).parent / "model"
    for folder in ("general_recommender", "sequential_recommender"):
        for path in sorted((base / folder).glob("*.py")):
            for m in re.finditer(r"^class (\w+)\(", path.read_text(), re.M):
                if m.group(1).lower() == path.stem:
                    yield m.group(1)


@pytest.mark.slow
@pytest.mark.parametrize("model", list(_zoo()))
def test_every_general_and_sequential_recbole_model_runs_or_is_refused_with_one_line(model, toy_data_path, tmp_path,
                                                                                      capsys):
    """One epoch on the toy data under the benchmark's protocol, with the models' own sizes (the
    CPR models with fewer reranker candidates than the toy's 30 items)."""
    extra = {"SASRecCPR": ["--reranker_CAN_NUM=20"], "GRU4RecCPR": ["--reranker_CAN_NUM=20"]}.get(model, [])
    code = _in_process([f"--model={model}", *TINY, *extra], toy_data_path, tmp_path)
    captured = capsys.readouterr()
    if code == 2:
        err = captured.err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {model} "), captured.err[-1500:]
        assert not (tmp_path / "results").exists()
    else:
        assert code == 0, captured.err[-2000:]
        (record,) = _records(tmp_path)
        assert 0.0 <= record["test"]["ndcg@10"] <= 1.0 and torch.isfinite(torch.tensor(record["test"]["ndcg@10"]))
