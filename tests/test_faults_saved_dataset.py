"""A saved dataset (``save_dataset``) is written whole, and one that does not unpickle (cut short by
a kill or a full disk, or of other code) is built again with a warning, not a traceback. A saved
dataset is read at all only under ``trust_checkpoint`` (tests/test_faults_execution.py)."""

import logging
import pickle

import pytest

from recbole_llm.data.dataset import create_dataset
from recbole_llm.quick_start import build_config
from recbole_llm.spec import RunSpec


@pytest.mark.parametrize("damage, unreadable", [
    (lambda data: data[: len(data) // 2], True),
    (lambda data: b"", True),
    (lambda data: b"not a pickle at all", True),
    (lambda data: pickle.dumps({"a": "dict, not a dataset"}), False),  # read, but not a dataset: not reused
])
def test_a_damaged_saved_dataset_is_built_again(toy_data_path, tmp_path, caplog, damage, unreadable):
    overrides = {"save_dataset": True, "show_progress": False, "trust_checkpoint": True}
    config = build_config(RunSpec("SASRec", "toy", 1, (), overrides, toy_data_path, tmp_path / "saved"))
    first = create_dataset(config)
    saved = tmp_path / "saved" / "checkpoints" / f"toy-{type(first).__name__}.pth"
    whole = saved.read_bytes()
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temporary file beside it
    saved.write_bytes(damage(whole))
    with caplog.at_level(logging.WARNING, logger="recbole_llm.data.dataset"):
        again = create_dataset(config)
    assert again.inter_num == first.inter_num and type(again) is type(first)
    assert (f"not reusing the saved dataset {saved}, which cannot be read" in caplog.text) == unreadable
    assert pickle.loads(saved.read_bytes()).inter_num == first.inter_num  # saved whole again
