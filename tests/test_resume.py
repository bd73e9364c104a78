"""Runs that resume: an interrupted run ends with the record an uninterrupted one writes."""

import pytest
import torch

from recbole_llm.pipeline import discard_state, run
from recbole_llm.quick_start import run_dir
from recbole_llm.spec import RunSpec


class Interrupt(Exception):
    pass


def _stop_after(epoch):
    def callback(epoch_idx, valid_score):
        if epoch_idx == epoch:
            raise Interrupt(f"stopped after epoch {epoch_idx}")
    return callback


def _same_run(a, b):
    assert a["test"] == b["test"]  # exact: every RNG, the optimizer and the schedule were restored
    assert a["valid"] == b["valid"]
    assert a["best_epoch"] == b["best_epoch"] and a["epochs_run"] == b["epochs_run"]
    assert [e["train_loss"] for e in a["history"]] == [e["train_loss"] for e in b["history"]]
    assert [e.get("valid") for e in a["history"]] == [e.get("valid") for e in b["history"]]
    assert a["per_user"]["rank"] == b["per_user"]["rank"]


@pytest.mark.parametrize("model", ["SASRec", "IDLEAdapter"])
def test_interrupted_run_resumes_to_the_same_record(model, toy_data_path, tiny_overrides, llm_overrides, tmp_path):
    overrides = dict(llm_overrides if model == "IDLEAdapter" else tiny_overrides)
    overrides.update({"epochs": 4, "stopping_step": 4})
    if model == "IDLEAdapter":
        overrides["lr_schedule"] = "linear"  # the scheduler's step count must survive the interruption
    else:
        overrides.update({"hidden_dropout_prob": 0.3, "topk": [5, 10]})  # dropout draws from the RNG every step
    full = run(RunSpec(model, "toy", 2020, (), overrides, toy_data_path, tmp_path / "a"))
    assert full["resumed"] == [] and full["epochs_run"] == 4
    assert [s["from_epoch"] for s in full["segments"]] == [0]

    saved = tmp_path / "b"
    with pytest.raises(Interrupt):
        run(RunSpec(model, "toy", 2020, (), overrides, toy_data_path, saved), callback_fn=_stop_after(1))
    states = list((saved / "runs" / "toy").glob(f"{model}-seed2020-*/state.pth"))
    assert len(states) == 1
    assert torch.load(states[0], weights_only=True)["epoch"] == 1

    resumed = run(RunSpec(model, "toy", 2020, (), overrides, toy_data_path, saved))
    assert [s["from_epoch"] for s in resumed["resumed"]] == [0]  # one earlier segment, from epoch 0
    assert [s["from_epoch"] for s in resumed["segments"]] == [0, 2]  # ... and this one, from epoch 2
    assert resumed["segments"][-1]["commit"] == resumed["commit"]
    assert [s["processes"] for s in resumed["segments"]] == [1, 1]  # one process each time
    assert resumed["history"][2]["epoch"] == 2
    _same_run(full, resumed)
    assert resumed["run_key"] == full["run_key"]
    # the state stays until the record is written (discard_state): a run whose record was never
    # written (a full disk, a kill in that window) ends again from it, without training
    assert states[0].exists()
    again = run(RunSpec(model, "toy", 2020, (), overrides, toy_data_path, saved))
    _same_run(full, again)
    assert again["history"] == resumed["history"]
    discard_state(saved, again)
    assert not states[0].exists()


def test_resume_training_false_starts_over(toy_data_path, tiny_overrides, tmp_path):
    overrides = {**tiny_overrides, "epochs": 3, "stopping_step": 3, "topk": [5, 10]}
    with pytest.raises(Interrupt):
        run(RunSpec("GRU4Rec", "toy", 2020, (), overrides, toy_data_path, tmp_path), callback_fn=_stop_after(0))
    record = run(RunSpec("GRU4Rec", "toy", 2020, (), {**overrides, "resume_training": False}, toy_data_path, tmp_path))
    assert record["resumed"] == [] and record["epochs_run"] == 3


def test_damaged_resume_state_is_discarded_and_the_run_starts_over(toy_data_path, tiny_overrides, tmp_path):
    overrides = {**tiny_overrides, "epochs": 3, "stopping_step": 3, "topk": [5, 10]}
    with pytest.raises(Interrupt):
        run(RunSpec("GRU4Rec", "toy", 2020, (), overrides, toy_data_path, tmp_path), callback_fn=_stop_after(0))
    (state,) = (tmp_path / "runs" / "toy").glob("GRU4Rec-seed2020-*/state.pth")
    state.write_bytes(state.read_bytes()[:100])  # cut short
    record = run(RunSpec("GRU4Rec", "toy", 2020, (), overrides, toy_data_path, tmp_path))
    assert record["resumed"] == [] and record["epochs_run"] == 3
    assert torch.load(state, weights_only=True)["epoch"] == 2  # a new state, of this run's last epoch


def test_run_key_ignores_paths_but_not_hyperparameters(toy_data_path, tiny_overrides, tmp_path):
    from recbole_llm.identity import run_key
    from recbole_llm.quick_start import build_config

    a = build_config(RunSpec("SASRec", "toy", 2020, (), tiny_overrides, toy_data_path, tmp_path / "x"))
    b = build_config(RunSpec("SASRec", "toy", 2020, (), {**tiny_overrides, "show_progress": True}, toy_data_path, tmp_path / "y"))
    c = build_config(RunSpec("SASRec", "toy", 2020, (), {**tiny_overrides, "learning_rate": 0.01}, toy_data_path, tmp_path / "x"))
    d = build_config(RunSpec("SASRec", "toy", 2021, (), tiny_overrides, toy_data_path, tmp_path / "x"))
    assert run_key(a) == run_key(b)
    assert len({run_key(a), run_key(c), run_key(d)}) == 3
    assert run_dir(a, tmp_path).name == f"SASRec-seed2020-{run_key(a)}"


def test_anomaly_detection_is_off_after_recbole_models_are_built(toy_data_path, tiny_overrides, tmp_path):
    """RecBole's sine.py turns autograd anomaly detection on at import; compat turns it off."""
    import recbole_llm  # noqa: F401  (applies compat)
    from recbole.utils import get_model as recbole_get_model

    from recbole_llm.utils import get_model

    for name in ("SASRec", "SINE", "GRU4Rec", "ComiRec"):
        get_model(name)
        assert not torch.is_anomaly_enabled(), name
    recbole_get_model("BERT4Rec")
    assert not torch.is_anomaly_enabled()
    torch.autograd.set_detect_anomaly(True)  # as if another import had switched it on again
    try:
        run(RunSpec("GRU4Rec", "toy", 2020, (), {**tiny_overrides, "epochs": 1, "topk": [5, 10]}, toy_data_path, tmp_path))
        assert not torch.is_anomaly_enabled()  # every run switches it off before training
    finally:
        torch.autograd.set_detect_anomaly(False)


@pytest.mark.parametrize("model", ["RARec", "IDLEAdapter"])
def test_resume_keeps_the_prompt_state_cache(model, toy_data_path, llm_overrides, tmp_path, monkeypatch):
    """A cached h~ row holds the bits of the batch that first computed it: MiniLM's bf16 states
    of one prompt differ in 2 of 39 batch compositions measured on this CPU (alone against in a
    batch, a whole row). A resumed run must read the rows the uninterrupted run cached, not
    recompute them in other batches. The tiny LM is batch-invariant, so the dependence is made
    explicit here: each row is offset by the size of the batch that computed it."""
    from recbole_llm.model.llm_base import LLMSequentialRecommender

    layer_states = LLMSequentialRecommender.layer_states
    monkeypatch.setattr(LLMSequentialRecommender, "layer_states",
                        lambda self, ids, mask: layer_states(self, ids, mask) + 0.01 * ids.shape[0])
    overrides = {**llm_overrides, "epochs": 4, "stopping_step": 4, "lr_schedule": "linear"}
    full = run(RunSpec(model, "toy", 2020, (), overrides, toy_data_path, tmp_path / "a"))
    saved = tmp_path / "b"
    with pytest.raises(Interrupt):
        run(RunSpec(model, "toy", 2020, (), overrides, toy_data_path, saved), callback_fn=_stop_after(1))
    resumed = run(RunSpec(model, "toy", 2020, (), overrides, toy_data_path, saved))
    assert [s["from_epoch"] for s in resumed["segments"]] == [0, 2]
    _same_run(full, resumed)


def test_records_and_states_name_the_code_loaded_not_the_checkout_moved_since(
        toy_data_path, tiny_overrides, tmp_path, monkeypatch, capsys):
    """A queued run outlives a ``git pull`` of its checkout: the record, and every resume state's
    segment, name the commit this process imported, and the record says that the checkout moved."""
    import recbole_llm.provenance as provenance
    import recbole_llm.record as record_module

    loaded = provenance.loaded_commit()
    monkeypatch.setattr(provenance, "git_commit", lambda *a, **k: "f" * 40)  # HEAD moved meanwhile
    monkeypatch.setattr(record_module, "git_commit", lambda *a, **k: "f" * 40)
    overrides = {**tiny_overrides, "epochs": 3, "stopping_step": 3, "topk": [5, 10]}
    with pytest.raises(Interrupt):
        run(RunSpec("GRU4Rec", "toy", 2020, (), overrides, toy_data_path, tmp_path), callback_fn=_stop_after(0))
    record = run(RunSpec("GRU4Rec", "toy", 2020, (), overrides, toy_data_path, tmp_path))
    assert [s["commit"] for s in record["segments"]] == [loaded, loaded]
    assert record["commit"] == loaded
    assert f"the checkout moved from {loaded[:12]} to ffffffffffff" in capsys.readouterr().err
