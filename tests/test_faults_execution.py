"""Issue 36, kind 7: nothing from a file or an option is executed, and every name that becomes a
path stays in its folder.

* RecBole unpickles ``saved/checkpoints/<dataset>-<DatasetClass>.pth`` and
  ``<dataset>-for-<model>-dataloader.pth`` whenever they are there (whatever ``save_dataset`` and
  ``save_dataloaders`` say), and ``saved/`` may be shared: they are read only under
  ``trust_checkpoint``, otherwise ignored with one warning;
* RecBole's ``Config`` runs ``eval`` on string values: a value from ``--key=value``, a
  ``--config-files`` YAML or ``id_model_config`` stays the string it is (or is refused by the
  key's own check), and a YAML tag that would build a Python object is refused;
* a dataset name that is not one plain folder name is refused before it becomes a path.

Every payload here touches a marker file when run; each test asserts the marker is not there.
"""

import logging
import pickle
from pathlib import Path

import pytest

from recbole_llm.errors import UserError
from recbole_llm.pipeline import run
from recbole_llm.quick_start import build_config
from recbole_llm.spec import RunSpec


class _Payload:
    """Unpickles as a call to ``Path.touch`` on ``marker``: any code a pickle may name."""

    def __init__(self, marker):
        self.marker = Path(marker)

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _plant(path, marker):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(_Payload(marker)))
    return path


def _eval_payload(marker):
    """What RecBole's ``Config`` would run (``eval``) if it got this string: the issue's own example."""
    return f"__import__('os').system('touch {marker}')"


@pytest.fixture
def sasrec(tiny_overrides):
    return {**tiny_overrides, "epochs": 1, "topk": [5, 10]}


@pytest.fixture
def warnings():
    """The messages ``recbole_llm.data.dataset`` logs at WARNING and above (a handler of its own: a
    run resets the root logger's handlers, caplog's among them)."""
    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler, log = Collect(logging.WARNING), logging.getLogger("recbole_llm.data.dataset")
    log.addHandler(handler)
    yield messages
    log.removeHandler(handler)


# ----------------------------------------------------------------- saved pickles are not unpickled
def test_a_normal_run_unpickles_none_of_the_files_planted_in_saved(toy_data_path, tmp_path, sasrec, warnings):
    """The quoted case: pickles at RecBole's default saved-dataset and saved-dataloader paths (ours and
    RecBole's class names), a plain run without --trust-checkpoint: it trains, nothing runs."""
    saved = tmp_path / "saved"
    marker = tmp_path / "UNPICKLED"
    planted = [_plant(saved / "checkpoints" / name, marker) for name in
               ("toy-ExactTimeSequentialDataset.pth", "toy-SequentialDataset.pth", "toy-for-SASRec-dataloader.pth")]
    record = run(RunSpec("SASRec", "toy", 1, (), sasrec, toy_data_path, saved))
    assert record["test"] is not None
    assert not marker.exists()
    assert warnings == [
        f"not reading the saved dataset {planted[0]}: unpickling a file can run any code it names; it is built again "
        "(pass --trust-checkpoint, config trust_checkpoint: True, to reuse a file you made)",
        f"not reading the saved dataloaders {planted[2]}: unpickling a file can run any code it names; it is built "
        "again (pass --trust-checkpoint, config trust_checkpoint: True, to reuse a file you made)",
    ]  # one line each; RecBole's own class name is never read by this package


@pytest.mark.parametrize("setting", [{}, {"save_dataset": True}, {"save_dataloaders": True},
                                     {"save_dataset": True, "save_dataloaders": True}])
def test_saved_pickles_are_ignored_whatever_the_save_options(toy_data_path, tmp_path, sasrec, setting):
    from recbole_llm.data.dataset import create_dataset, data_preparation

    saved = tmp_path / "saved"
    marker = tmp_path / "UNPICKLED"
    _plant(saved / "checkpoints" / "toy-ExactTimeSequentialDataset.pth", marker)
    _plant(saved / "checkpoints" / "toy-for-SASRec-dataloader.pth", marker)
    config = build_config(RunSpec("SASRec", "toy", 1, (), {**sasrec, **setting}, toy_data_path, saved))
    train, valid, test = data_preparation(config, create_dataset(config))
    assert len(train.dataset) > 0 and len(test.dataset) > 0
    assert not marker.exists()


def test_a_configured_save_path_is_no_way_around_it(toy_data_path, tmp_path, sasrec):
    from recbole_llm.data.dataset import create_dataset, data_preparation

    marker = tmp_path / "UNPICKLED"
    dataset_file = _plant(tmp_path / "shared" / "data.pth", marker)
    loaders_file = _plant(tmp_path / "shared" / "loaders.pth", marker)
    config = build_config(RunSpec("SASRec", "toy", 1, (), {**sasrec, "dataset_save_path": str(dataset_file),
                                                            "dataloaders_save_path": str(loaders_file)},
                                  toy_data_path, tmp_path / "saved"))
    data_preparation(config, create_dataset(config))
    assert not marker.exists()


def test_a_selection_run_ignores_a_planted_dataloader_file(toy_data_path, tmp_path, sasrec):
    """RA-Rec's data_strategy refused any saved-dataloader file; now one that is never read is no reason."""
    from recbole_llm.data.dataset import data_preparation
    from recbole_llm.data.tuning import TuningSequentialDataset, create_dataset

    marker = tmp_path / "UNPICKLED"
    saved = tmp_path / "saved"
    _plant(saved / "checkpoints" / "toy-for-SASRec-dataloader.pth", marker)
    options = {**sasrec, "data_strategy": "random", "data_size": 10, "data_seed": 0, "denoise_stop_words": "english",
               "length_buckets": 4, "popularity_buckets": 4}
    config = build_config(RunSpec("SASRec", "toy", 1, (), options, toy_data_path, saved))
    dataset = create_dataset(config)
    assert type(dataset) is TuningSequentialDataset
    train, _, _ = data_preparation(config, dataset)
    assert len(train.dataset) == 10 and not marker.exists()
    config["trust_checkpoint"] = True  # then the file would be read, and skip the selection: refused
    with pytest.raises(UserError, match="cannot be combined with RecBole's saved dataloaders"):
        create_dataset(config)


def test_files_this_package_saved_are_reused_only_under_trust_checkpoint(toy_data_path, tmp_path, sasrec, caplog):
    from recbole_llm.data.dataset import create_dataset, data_preparation

    saved = tmp_path / "saved"
    config = build_config(RunSpec("SASRec", "toy", 1, (), {**sasrec, "save_dataset": True, "save_dataloaders": True},
                                  toy_data_path, saved))
    with caplog.at_level(logging.INFO, logger="recbole_llm.data.dataset"):
        data_preparation(config, create_dataset(config))
    dataset_file = saved / "checkpoints" / "toy-ExactTimeSequentialDataset.pth"
    loaders_file = saved / "checkpoints" / "toy-for-SASRec-dataloader.pth"
    assert dataset_file.is_file() and loaders_file.is_file()
    assert (f"save_dataset writes {dataset_file}, which later runs reuse only with --trust-checkpoint (config "
            "trust_checkpoint: True)") in caplog.text
    assert f"save_dataloaders writes {loaders_file}, which later runs reuse only" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        data_preparation(config, create_dataset(config))  # without trust: built again
    assert "Load filtered dataset from" not in caplog.text and "Load split dataloaders" not in caplog.text
    config["trust_checkpoint"] = True
    caplog.clear()
    with caplog.at_level(logging.INFO):
        train, _, _ = data_preparation(config, create_dataset(config))
    assert f"unpickling the saved dataset {dataset_file} because trust_checkpoint is set" in caplog.text
    assert f"Load filtered dataset from: [{dataset_file}]" in caplog.text
    assert "Load split dataloaders from" in caplog.text and len(train.dataset) > 0


def test_trust_checkpoint_is_what_lets_a_pickle_be_read(toy_data_path, tmp_path, sasrec):
    """The gate, shown from the other side: with trust the planted file is unpickled (and, not being
    a dataset, built again)."""
    from recbole_llm.data.dataset import create_dataset

    marker = tmp_path / "UNPICKLED"
    saved = tmp_path / "saved"
    _plant(saved / "checkpoints" / "toy-ExactTimeSequentialDataset.pth", marker)
    config = build_config(RunSpec("SASRec", "toy", 1, (), sasrec, toy_data_path, saved))
    create_dataset(config)
    assert not marker.exists()
    config["trust_checkpoint"] = True
    assert create_dataset(config).inter_num > 0
    assert marker.exists()


# ----------------------------------------------------------------- config values are not evaluated
def _run_benchmark_main():
    from entry import run_benchmark_main

    return run_benchmark_main()


TINY_ARGS = ["--epochs=1", "--train_batch_size=64", "--eval_batch_size=256", "--MAX_ITEM_LIST_LENGTH=10",
             "--topk=[5,10]", "--metrics=hit@5", "--embedding_size=16", "--hidden_size=16", "--inner_size=32",
             "--n_layers=1", "--n_heads=1", "--threads=1", "--no-progress"]


def _bench(tmp_path, data_path, *args):
    """run_benchmark.py in this process; ``args`` replace the tiny settings of the same keys."""
    given = {a.split("=", 1)[0] for a in args}
    tiny = [a for a in TINY_ARGS if a.split("=", 1)[0] not in given]
    return _run_benchmark_main()(["--model=SASRec", "--dataset=toy", f"--data-path={data_path}",
                                  f"--saved-dir={tmp_path / 'saved'}", f"--output={tmp_path / 'results'}",
                                  *tiny, *args])


def test_a_command_line_value_is_a_string_not_code(toy_data_path, tmp_path, capsys):
    import json

    marker = tmp_path / "EXECUTED"
    assert _bench(tmp_path, toy_data_path, f"--prompt_template={_eval_payload(marker)}") == 0
    assert not marker.exists()
    record = json.loads(next((tmp_path / "results" / "toy" / "runs").glob("*.json")).read_text())
    assert record["config"]["prompt_template"] == _eval_payload(marker)


@pytest.mark.parametrize("key, expected", [
    ("hidden_size", "error: config key hidden_size = \"{payload}\" (from --hidden_size) must be an integer"),
    ("learner", "error: config key learner = \"{payload}\" (from --learner) must be one of adam, adamw, sgd"),
    ("topk", "error: config of SASRec on toy: The topk [{payload}] must be a integer, list (RecBole)"),
    ("eval_args", "error: config of SASRec on toy: eval_args:[{payload}] should be a dict. (RecBole)"),
])
def test_a_command_line_value_a_key_cannot_take_is_refused_unevaluated(key, expected, toy_data_path, tmp_path,
                                                                       capsys):
    marker = tmp_path / "EXECUTED"
    assert _bench(tmp_path, toy_data_path, f"--{key}={_eval_payload(marker)}") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(expected.format(payload=_eval_payload(marker))), err
    assert "Traceback" not in err and not marker.exists()
    assert not list((tmp_path / "saved").rglob("*.pth"))


def test_a_config_file_value_is_a_string_not_code(toy_data_path, tmp_path, sasrec):
    marker = tmp_path / "EXECUTED"
    config_file = tmp_path / "extra.yaml"
    config_file.write_text(f'prompt_template: "{_eval_payload(marker)}"\n')
    config = build_config(RunSpec("SASRec", "toy", 1, (str(config_file),), sasrec, toy_data_path, tmp_path / "s"))
    assert config["prompt_template"] == _eval_payload(marker)
    config_file.write_text(f'hidden_size: "{_eval_payload(marker)}"\n')
    with pytest.raises(UserError, match=r"^config key hidden_size = .* \(from .*extra.yaml\)") as err:
        build_config(RunSpec("SASRec", "toy", 1, (str(config_file),), {}, toy_data_path, tmp_path / "s"))
    assert len(str(err.value).splitlines()) == 1 and not marker.exists()


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/name:os.system",
                                 "!!python/object/new:os.system"])
def test_a_config_file_yaml_tag_that_builds_python_objects_is_refused(tag, toy_data_path, tmp_path):
    marker = tmp_path / "EXECUTED"
    config_file = tmp_path / "extra.yaml"
    config_file.write_text(f'prompt_template: {tag} ["touch {marker}"]\n')
    with pytest.raises(UserError) as err:
        build_config(RunSpec("SASRec", "toy", 1, (str(config_file),), {}, toy_data_path, tmp_path / "s"))
    assert str(config_file) in str(err.value) and len(str(err.value).splitlines()) == 1
    assert not marker.exists()


def test_id_model_config_values_are_strings_not_code(toy_data_path, tmp_path, llm_overrides):
    """``id_model_config`` is a mapping inside the config; its values reach the ID model's own Config,
    which RecBole's would ``eval``."""
    from recbole_llm.pipeline import id_model_spec

    marker = tmp_path / "EXECUTED"
    config_file = tmp_path / "llm.yaml"
    config_file.write_text("id_model_config:\n  epochs: 1\n  embedding_size: 16\n  attn_hidden_size: 16\n"
                           f'  prompt_template: "{_eval_payload(marker)}"\n')
    overrides = {k: v for k, v in llm_overrides.items() if k != "id_model_config"}
    spec = RunSpec("IDLEAdapter", "toy", 1, (str(config_file),), overrides, toy_data_path, tmp_path / "s")
    id_config = build_config(id_model_spec(build_config(spec), spec))
    assert id_config["prompt_template"] == _eval_payload(marker) and not marker.exists()
    config_file.write_text(f'id_model_config:\n  embedding_size: "{_eval_payload(marker)}"\n')
    with pytest.raises(UserError, match="embedding_size") as err:
        build_config(id_model_spec(build_config(spec), spec))
    assert len(str(err.value).splitlines()) == 1 and not marker.exists()
    spec = spec.with_overrides(id_model_config={"learner": _eval_payload(marker)})  # the same as a --key mapping
    with pytest.raises(UserError, match="learner"):
        build_config(id_model_spec(build_config(spec), spec))
    assert not marker.exists()


# ----------------------------------------------------------------- names that become paths
@pytest.mark.parametrize("name", ["../toy", "toy/../toy", "/etc", "..", ".", "a\\b", "sub/toy", ""])
def test_a_dataset_name_that_is_not_one_folder_name_is_refused_before_it_becomes_a_path(name, toy_data_path,
                                                                                        tmp_path, sasrec):
    from recbole_llm.data.prepare import ensure_dataset

    data = tmp_path / "data"
    data.mkdir()
    saved = tmp_path / "saved"
    with pytest.raises(UserError) as err:
        run(RunSpec("SASRec", name, 1, (), sasrec, data, saved))
    message = str(err.value)
    assert message.startswith(f"--dataset={name!r} must be one plain name") and len(message.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"] and not list(data.iterdir())
    with pytest.raises(UserError, match="must be one plain name"):
        ensure_dataset(name, toy_data_path)
