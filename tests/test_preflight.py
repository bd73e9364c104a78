"""Checks before training: an LLM run with a bad value stops before its ID model trains."""

import time

import pytest

from conftest import write_toy
from recbole_llm.errors import UserError
from recbole_llm.pipeline import run
from recbole_llm.quick_start import build_config
from recbole_llm.spec import RunSpec


def _nothing_trained(saved):
    assert not (saved / "id_models").exists() and not (saved / "runs").exists()
    assert not list(saved.rglob("*.pth"))


@pytest.mark.parametrize("model, extra, message", [
    ("RARec", {"prefix_len": 1}, "prefix_len=1 leaves no room for the contextual instruction"),
    ("IDLEAdapter", {"prefix_len": 0}, "config key prefix_len = 0 (from --prefix_len) must be >= 1"),
    ("IDLEAdapter", {"align_weight": float("inf")}, "config key align_weight = inf (from --align_weight) must be a finite"),
    ("IDLEAdapter", {"learning_rate": -1e-3}, "config key learning_rate = -0.001 (from --learning_rate) must be > 0"),
    ("IDLEAdapter", {"hidden_size": 10**13}, "config key hidden_size = 10000000000000 (from --hidden_size) must be an "
                                             "integer in [1, 1,048,576]"),
    ("IDLEAdapter", {"epochs": 2**70}, "is beyond a 64-bit integer"),
    ("IDLEAdapter", {"lm_pooling": "max"}, "config key lm_pooling = 'max' (from --lm_pooling) must be one of: auto, mean, last"),
    ("RARec", {"lm_name": "/no/such/lm"}, "cannot load language model '/no/such/lm' (lm_name)"),
    ("IDLEAdapter", {"prompt_max_tokens": 4},
     "prompt_template / prompt_max_tokens: prompt_max_tokens=4 leaves no room"),
    ("RARec", {"item_prompt_template": "no slot"}, "item_prompt_template / item_prompt_max_tokens"),
    ("IDLEAdapter", {"id_model": "BPR"}, "id_model 'BPR' is not supported"),
])
def test_bad_value_fails_in_well_under_a_second_and_trains_nothing(model, extra, message, toy_data_path,
                                                                  llm_overrides, tmp_path):
    saved = tmp_path / "saved"
    build_config(RunSpec(model, "toy", 2020, (), llm_overrides, toy_data_path, saved))  # imports and YAML, not timed
    started = time.perf_counter()
    with pytest.raises(UserError) as err:
        run(RunSpec(model, "toy", 2020, (), {**llm_overrides, **extra}, toy_data_path, saved))
    elapsed = time.perf_counter() - started
    assert message in str(err.value) and len(str(err.value).splitlines()) == 1
    assert elapsed < 1.0, f"{elapsed:.2f}s"
    _nothing_trained(saved)


def _toy_with_titles(tmp_path, n_missing, shift_ids=False):
    """The toy dataset with the first ``n_missing`` items' titles left out of its .item file,
    or (``shift_ids``) with .item ids that are not .inter's (``item_3`` for ``i3``)."""
    folder = write_toy(tmp_path / "data")
    lines = [f"i{i}\tThing number {i}" for i in range(n_missing + 1, 31)]
    if shift_ids:
        lines = [f"item_{i}\tThing number {i}" for i in range(1, 31)]
    (folder / "toy.item").write_text("\n".join(["item_id:token\ttitle:token_seq"] + lines) + "\n")
    return tmp_path / "data"


def test_items_without_text_are_counted_against_missing_text_max_share(tmp_path, llm_overrides):
    from recbole_llm.model.sequential_recommender.rarec import RARec

    data = _toy_with_titles(tmp_path, n_missing=1)
    coverage = RARec.preflight(build_config(RunSpec("RARec", "toy", 2020, (), llm_overrides, data, tmp_path / "s")))
    assert coverage == {"field": "title", "items": 30, "missing": 1, "missing_share": pytest.approx(1 / 30)}
    data = _toy_with_titles(tmp_path / "two", n_missing=2)  # 2 of 30 = 6.7% > 5%
    config = build_config(RunSpec("RARec", "toy", 2020, (), llm_overrides, data, tmp_path / "s"))
    with pytest.raises(UserError, match=r"^2 of 30 items \(6.7%\) have no 'title' text in .*toy.item "
                                        r"\(missing_text_max_share: 0.05\)"):
        RARec.preflight(config)
    config["missing_text_max_share"] = 0.1
    assert RARec.preflight(config)["missing"] == 2


def test_item_ids_that_do_not_match_stop_the_run_before_its_id_model(tmp_path, llm_overrides):
    data = _toy_with_titles(tmp_path, n_missing=0, shift_ids=True)
    saved = tmp_path / "saved"
    with pytest.raises(UserError, match=r"30 of 30 items \(100.0%\) have no 'title' text"):
        run(RunSpec("IDLEAdapter", "toy", 2020, (), llm_overrides, data, saved))
    _nothing_trained(saved)


def test_record_keeps_the_share_of_items_without_text(tmp_path, llm_overrides):
    data = _toy_with_titles(tmp_path, n_missing=1)
    record = run(RunSpec("IDLEAdapter", "toy", 2020, (), {**llm_overrides, "epochs": 1}, data, tmp_path / "saved"))
    assert record["item_text"] == {"field": "title", "items": 30, "missing": 1, "missing_share": pytest.approx(1 / 30)}


def test_results_page_shows_the_share_of_items_without_text_per_llm_row():
    from recbole_llm.benchmark.notes import row_notes

    def record(label, seed, item_text=None):
        r = {"model": label, "label": label, "seed": seed, "finished_at": "2026-01-01T00:00:00",
             "protocol": {"epochs_max": 50}, "epochs_run": 3}
        return {**r, "item_text": item_text} if item_text else r

    notes = row_notes([record("SASRec", 1),
                       record("RARec", 1, {"field": "title", "items": 1682, "missing": 0, "missing_share": 0.0}),
                       record("RARec", 2, {"field": "title", "items": 1682, "missing": 3, "missing_share": 3 / 1682})])
    assert notes == ["SASRec: <= 50 epochs (ran 3)",
                     "RARec: <= 50 epochs (ran 3); items without text: 3 of 1682 (0.2%)"]


def test_the_runner_makes_the_checks_once_per_model_not_again_per_run(tmp_path, llm_overrides, monkeypatch):
    """run_benchmark.py checks every model of the command before the first run; the run itself
    (pipeline.run(..., preflight=False)) does not build the dataset again for the same checks."""
    from recbole_llm.model.sequential_recommender.idleadapter import IDLEAdapter

    data = _toy_with_titles(tmp_path, n_missing=0)
    checked = []
    original = IDLEAdapter.preflight.__func__

    def counting(cls, config, dataset=None):
        checked.append(config["seed"])
        return original(cls, config, dataset)

    monkeypatch.setattr(IDLEAdapter, "preflight", classmethod(counting))
    from entry import run_benchmark_module

    module = run_benchmark_module()
    sasrec_only = ("hidden_size", "inner_size", "n_layers", "n_heads")  # the command line refuses keys that set nothing
    options = [f"--{k}={v!r}" if isinstance(v, (dict, list)) else f"--{k}={v}"
               for k, v in {**llm_overrides, "epochs": 1}.items() if k not in sasrec_only]
    status = module.main([f"--data-path={data}", f"--output={tmp_path / 'results'}", f"--saved-dir={tmp_path / 'saved'}",
                          "--threads=1", "--no-progress", "--model=IDLEAdapter", "--dataset=toy", "--seeds=1,2",
                          *options])
    assert status == 0
    assert checked == [1]  # once, for the command (seeds[0]); it was [1, 1, 2] when each run checked again
    assert len(list((tmp_path / "results" / "toy" / "runs").glob("IDLEAdapter*.json"))) == 2
