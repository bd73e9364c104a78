"""Run identity (recbole_llm.identity): what changes a result changes the key, what cannot does not.

* a changed byte of the data retrains: the run key, the ID-model cache key and the runner's skip all
  follow the content of the atomic files, not their names or times;
* each excluded key that can run here is neutral: the same metrics with it changed;
* ``shuffle`` changes the metrics, so it is in the key;
* another model's hyperparameter on a shared command line is not in a model's key (the table's
  ComiRec row and the ComiRec an LLM run asks for are one run), a key no YAML defines stays in;
* a new ID model is one file (a class with ``id_representation``) plus its YAML.
"""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, write_toy
from recbole_llm.identity import EXCLUDED, data_fingerprint, diff, foreign, identity, run_key, sweep_key
from recbole_llm.pipeline import id_model_spec, run
from recbole_llm.quick_start import build_config
from recbole_llm.spec import RunSpec


def _spec(data_path, model="SASRec", overrides=None, saved=None, **kw):
    overrides = {"topk": [5, 10], **(overrides or {})}  # the toy data has 30 items
    return RunSpec(model, "toy", 2020, (), overrides, data_path, saved or data_path / "saved", **kw)


@pytest.fixture
def own_data(tmp_path):
    write_toy(tmp_path / "data")
    return tmp_path / "data"


def test_a_changed_byte_of_the_data_changes_every_key(own_data, tiny_overrides):
    before = build_config(_spec(own_data, overrides=tiny_overrides))
    fingerprint, key, items, sweep = data_fingerprint(before), run_key(before), identity(before), sweep_key(before, {})
    inter = own_data / "toy" / "toy.inter"
    lines = inter.read_text().splitlines()
    # same size and same name: one rating changed, the time stamp put back
    stat = inter.stat()
    changed = lines[1].rsplit("\t", 2)
    changed[1] = "1" if changed[1] != "1" else "2"
    inter.write_text("\n".join([lines[0], "\t".join(changed), *lines[2:]]) + "\n")
    import os

    os.utime(inter, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = build_config(_spec(own_data, overrides=tiny_overrides))
    assert inter.stat().st_size == stat.st_size
    assert fingerprint != data_fingerprint(after) and key != run_key(after) and sweep != sweep_key(after, {})
    after_items = identity(after)
    assert {k for k in items if items[k] != after_items[k]} == {"data_fingerprint"}


def test_the_runner_retrains_after_the_data_changed_and_the_llm_run_does_not_reuse_the_old_base(
        own_data, tmp_path, llm_overrides):
    """The ID-model cache follows the data too: an LLM run after a data change trains a new base."""
    saved = tmp_path / "saved"
    overrides = {**llm_overrides, "epochs": 1, "measure_overhead_batches": 0}
    first = run(_spec(own_data, "IDLEAdapter", overrides, saved))
    inter = own_data / "toy" / "toy.inter"
    with open(inter, "a") as f:
        f.write("u1\ti3\t4\t100000\n")  # one more interaction
    second = run(_spec(own_data, "IDLEAdapter", overrides, saved))
    assert first["data_fingerprint"] != second["data_fingerprint"] and first["run_key"] != second["run_key"]
    assert first["id_model"]["weights_sha256"] != second["id_model"]["weights_sha256"]
    assert first["id_model"]["key"] != second["id_model"]["key"]
    assert len(list((saved / "id_models" / "toy").glob("ComiRec-*.pth"))) == 2
    assert second["dataset_stats"]["interactions"] == first["dataset_stats"]["interactions"] + 1


def _bench(*args, data_path, tmp_path):
    tiny = ["--train_batch_size=64", "--MAX_ITEM_LIST_LENGTH=10", "--topk=[5,10]", "--hidden_size=16",
            "--inner_size=32", "--n_layers=1", "--n_heads=1", "--epochs=1", "--no-progress", "--budget=quick"]
    cmd = [sys.executable, str(REPO / "run_benchmark.py"), f"--data-path={data_path}",
           f"--output={tmp_path / 'results'}", f"--saved-dir={tmp_path / 'saved'}", "--dataset=toy", *tiny, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_the_same_command_after_a_data_change_trains_again(own_data, tmp_path):
    first = _bench("--model=SASRec", data_path=own_data, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    same = _bench("--model=SASRec", data_path=own_data, tmp_path=tmp_path)
    assert "skipped: record" in same.stdout
    with open(own_data / "toy" / "toy.inter", "a") as f:
        f.write("u2\ti5\t3\t100000\n")
    again = _bench("--model=SASRec", data_path=own_data, tmp_path=tmp_path)
    assert again.returncode == 0 and "skipped" not in again.stdout, again.stdout[-2000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "toy" / "runs").glob("*.json")]
    assert len(records) == 2 and len({r["data_fingerprint"] for r in records}) == 2
    assert all(r["key_scheme"] == 2 for r in records)


NEUTRAL = [("show_progress", True), ("state", "WARNING"), ("eval_batch_size", 7)]


@pytest.mark.parametrize("key,value", NEUTRAL)
def test_an_excluded_key_changes_no_metric(key, value, toy_data_path, tiny_overrides, tmp_path):
    assert key in EXCLUDED
    base = {**tiny_overrides, "hidden_dropout_prob": 0.3}
    a = run(_spec(toy_data_path, overrides=base, saved=tmp_path / "a"))
    b = run(_spec(toy_data_path, overrides={**base, key: value}, saved=tmp_path / "b"))
    assert a["run_key"] == b["run_key"]
    assert a["test"] == b["test"] and a["valid"] == b["valid"]
    assert [e["valid"] for e in a["history"]] == [e["valid"] for e in b["history"]]


def test_shuffle_changes_the_metrics_and_the_key(toy_data_path, tiny_overrides, tmp_path):
    base = {**tiny_overrides, "epochs": 2}
    a = run(_spec(toy_data_path, overrides=base, saved=tmp_path / "a"))
    b = run(_spec(toy_data_path, overrides={**base, "shuffle": False}, saved=tmp_path / "b"))
    assert "shuffle" not in EXCLUDED
    assert a["run_key"] != b["run_key"]
    assert a["history"][0]["train_loss"] != b["history"][0]["train_loss"]


def test_another_models_hyperparameter_is_not_in_the_key_and_an_unknown_key_is(toy_data_path, tiny_overrides):
    base = build_config(_spec(toy_data_path, overrides=tiny_overrides))
    with_llm_key = build_config(_spec(toy_data_path, overrides={**tiny_overrides, "prefix_len": 4,
                                                                 "data_strategy": "efficient"}))
    assert foreign("prefix_len", with_llm_key) and foreign("data_strategy", with_llm_key)
    assert run_key(base) == run_key(with_llm_key)
    own = build_config(_spec(toy_data_path, overrides={**tiny_overrides, "my_own_key": 3}))
    assert not foreign("my_own_key", own) and run_key(own) != run_key(base)
    llm = build_config(_spec(toy_data_path, "IDLEAdapter", {**tiny_overrides, "prefix_len": 4}))
    assert "prefix_len" in identity(llm) and not foreign("prefix_len", llm)


def test_the_id_model_an_llm_run_asks_for_is_the_table_row_of_that_model(toy_data_path, tiny_overrides, tmp_path):
    """``--model=IDLEAdapter,ComiRec`` with one set of options: the ID model's spec (its YAML, the
    budget, the seed, the user's data settings, id_model_config) and the table's ComiRec row (every
    option, the LLM's foreign to it) build configs with one key: one run, one cache entry."""
    from recbole_llm.config import budget_files

    sizes = {"embedding_size": 16, "attn_hidden_size": 16, "train_batch_size": 64}
    options = {"MAX_ITEM_LIST_LENGTH": 7, "topk": [5, 10], "prefix_len": 3, "align_weight": 0.5,
               "id_model_config": sizes, **sizes, "show_progress": False}
    llm_spec = RunSpec("IDLEAdapter", "toy", 2020, [str(f) for f in budget_files("quick", llm=True)], options,
                       toy_data_path, tmp_path)
    id_spec = id_model_spec(build_config(llm_spec), llm_spec)
    assert id_spec.overrides["MAX_ITEM_LIST_LENGTH"] == 7 and "prefix_len" not in id_spec.overrides
    assert id_spec.overrides["show_progress"] is False  # --no-progress quiets the ID model's epochs too
    row = RunSpec("ComiRec", "toy", 2020, [str(f) for f in budget_files("quick")], options, toy_data_path, tmp_path)
    row_config, id_config = build_config(row), build_config(id_spec)
    assert run_key(row_config) == run_key(id_config), diff(row_config, id_config)
    other = build_config(row.with_overrides(learning_rate=0.01))  # an option the ID model does not get
    assert run_key(other) != run_key(id_config)


def test_the_llm_code_version_is_in_the_key_of_llm_models_only(toy_data_path, tiny_overrides, llm_overrides,
                                                              monkeypatch):
    """``LLM_CODE_VERSION`` changes the key of an LLM run and of nothing else: an ID model's key (the
    table row's, and the base an LLM run asks for, whose cache entry it names) is the key computed
    without the field, and stays so when the version is bumped."""
    from recbole_llm import identity as ident

    def without_version(config):
        return ident._hash({k: v for k, v in identity(config).items() if k != "llm_code_version"})

    id_row = build_config(_spec(toy_data_path, "ComiRec", tiny_overrides))
    llm_spec = _spec(toy_data_path, "IDLEAdapter", llm_overrides)
    llm = build_config(llm_spec)
    base = build_config(id_model_spec(llm, llm_spec))
    assert not ident.is_llm_config(id_row) and not ident.is_llm_config(base) and ident.is_llm_config(llm)
    for config in (id_row, base):
        assert "llm_code_version" not in identity(config) and run_key(config) == without_version(config)
    assert identity(llm)["llm_code_version"] == ident.LLM_CODE_VERSION
    assert run_key(llm) != without_version(llm)
    keys = {name: run_key(c) for name, c in (("id_row", id_row), ("base", base), ("llm", llm))}
    monkeypatch.setattr(ident, "LLM_CODE_VERSION", ident.LLM_CODE_VERSION + 1)
    bumped = {name: run_key(c) for name, c in (("id_row", id_row), ("base", base), ("llm", llm))}
    assert bumped["id_row"] == keys["id_row"] and bumped["base"] == keys["base"] and bumped["llm"] != keys["llm"]


NEW_ID_MODEL = '''
"""A new ID model: GRU4Rec whose user vector is its last hidden state (one file)."""
from recbole.model.sequential_recommender.gru4rec import GRU4Rec


class MyGRU(GRU4Rec):
    def id_representation(self, item_seq, item_seq_len, user=None):
        return self.forward(item_seq, item_seq_len)
'''


def test_a_new_id_model_is_one_file_plus_its_yaml(toy_data_path, llm_overrides, tmp_path, monkeypatch):
    """A file in recbole_llm/id_models/ (here: a folder added to the package's path) and its YAML make a
    model the frozen base of an LLM run: registered by its class, trained by the pipeline's ID-model
    step, loaded, and named in the LLM record."""
    import recbole_llm.id_models as id_models
    from recbole_llm.id_models import is_id_model, registered

    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "mygru.py").write_text(NEW_ID_MODEL)
    monkeypatch.setattr(id_models, "__path__", [*id_models.__path__, str(folder)])
    props = tmp_path / "properties"
    shutil.copytree(REPO / "properties", props)
    (props / "model" / "MyGRU.yaml").write_text(
        "embedding_size: 16  # (int) item embedding size\nhidden_size: 16  # (int) GRU state\n"
        "num_layers: 1  # (int) GRU layers\ndropout_prob: 0.1  # (float) dropout\nloss_type: CE\n"
        "train_neg_sample_args: ~\n")
    monkeypatch.setenv("RECBOLE_LLM_PROPERTIES", str(props))
    assert is_id_model("MyGRU") and "MyGRU" in registered()
    overrides = {**llm_overrides, "id_model": "MyGRU", "epochs": 1, "measure_overhead_batches": 0}
    record = run(RunSpec("IDLEAdapter", "toy", 2020, (), overrides, toy_data_path, tmp_path / "saved"))
    assert record["id_model"]["name"] == "MyGRU"
    assert list((tmp_path / "saved" / "id_models" / "toy").glob("MyGRU-*.pth"))
    assert 0.0 <= record["test"]["ndcg@10"] <= 1.0


def test_records_hold_no_path_of_the_machine_that_made_them(toy_data_path, tiny_overrides, tmp_path):
    """Every path in a record is relative to a named root ({saved}, {data}, {checkout}); text with
    a path in it (the command line) too; an old record is made portable by paths alone."""
    import re

    from recbole_llm.paths import portable_record, portable_text, resolve_path

    record = run(_spec(toy_data_path, overrides=tiny_overrides, saved=tmp_path / "saved"))
    text = json.dumps(record)
    assert not re.search(r"(^|[^A-Za-z0-9_.~{}:/])/(tmp|work|home|root)/", text), text[:500]
    assert record["checkpoint"].startswith("{saved}/runs/toy/SASRec-seed2020-")
    assert resolve_path(record["checkpoint"], {"saved": tmp_path / "saved"}).is_file()
    assert record["config"]["data_path"] == "{data}/toy"
    old = {"config": {"checkpoint_dir": "/m/saved/checkpoints", "data_root": "/m/data", "lr": 0.5},
           "checkpoint": "/m/saved/checkpoints/x.pth", "command": "run.py --data-path=/m/data --x=/opt/y.yaml",
           "url": "https://a.org/b", "ratio": "1/2"}
    new = portable_record(old)
    assert new == {"config": {"checkpoint_dir": "{saved}/checkpoints", "data_root": "{data}", "lr": 0.5},
                   "checkpoint": "{saved}/checkpoints/x.pth", "command": "run.py --data-path={data} --x={elsewhere}/y.yaml",
                   "url": "https://a.org/b", "ratio": "1/2"}
    assert portable_text("no path here", {}) == "no path here"


def test_building_a_config_leaves_recboles_argument_lists_as_they_were(toy_data_path):
    """RecBole extends its module-level argument lists in place when it loads a dataset YAML; the
    keys derived from them (the run key's, the ID model's protocol keys) would then depend on what
    the process built before (an LLM sweep's driver and its trials once trained two ID models)."""
    from recbole.utils import argument_list

    before = {n: list(getattr(argument_list, n)) for n in ("dataset_arguments", "evaluation_arguments")}
    build_config(_spec(toy_data_path, "IDLEAdapter", {"item_text_field": "title"}))
    build_config(RunSpec("RARec", "ml-100k", 2020, (), {}, None, None))
    assert {n: list(getattr(argument_list, n)) for n in before} == before
