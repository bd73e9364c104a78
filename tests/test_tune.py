"""Sweeps: the search-space syntax, a whole sweep through run_benchmark.py --tune, resume, bad input."""

import csv
import dataclasses
import json
import shutil
import os
import signal

import pytest
import torch
import yaml

from conftest import REPO
from recbole_llm.errors import UserError
from recbole_llm.tune.space import SearchSpace
from recbole_llm.spec import RunSpec

# Ray 2.6.3 imports pkg_resources (the reason for the setuptools<81 pin, recbole_llm/compat.py).
pytestmark = pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:UserWarning")

# A SASRec small enough that a trial is dominated by loading the toy dataset (~1 s).
TINY_SASREC = {
    "epochs": 3, "stopping_step": 2, "train_batch_size": 64, "eval_batch_size": 256, "show_progress": False,
    "MAX_ITEM_LIST_LENGTH": 10, "embedding_size": 8, "hidden_size": 8, "inner_size": 16, "n_layers": 1,
    "n_heads": 1, "topk": [5, 10],
}


# ----------------------------------------------------------------------------- search spaces
def test_every_domain_becomes_the_ray_domain():
    from ray import tune
    from ray.tune.search.sample import Categorical, Float, Integer

    space = SearchSpace.parse({
        "align_weight": {"grid": [0.1, 0.2, 0.5, 1.0]},
        "lm_pooling": {"choice": ["mean", "cls"]},
        "dropout_prob": {"uniform": [0.0, 0.5]},
        "learning_rate": {"loguniform": [1e-4, 1e-2]},
        "prefix_len": {"randint": [1, 4]},
    }, "mine.yaml")
    grid = space.to_ray("grid")
    assert grid["align_weight"] == tune.grid_search([0.1, 0.2, 0.5, 1.0])
    assert isinstance(grid["lm_pooling"], Categorical) and grid["lm_pooling"].categories == ["mean", "cls"]
    dropout = grid["dropout_prob"]
    assert isinstance(dropout, Float) and (dropout.lower, dropout.upper) == (0.0, 0.5)
    assert "LogUniform" in type(grid["learning_rate"].get_sampler()).__name__
    # randint is inclusive here, exclusive in Ray
    assert isinstance(grid["prefix_len"], Integer) and (grid["prefix_len"].lower, grid["prefix_len"].upper) == (1, 5)
    assert space.grid_size() == 4 and space.n_trials("grid", 3) == 12 and space.n_trials("random", 7) == 7
    # under random search the grid keys are drawn like choice
    random = space.to_ray("random")
    assert isinstance(random["align_weight"], Categorical) and random["align_weight"].categories == [0.1, 0.2, 0.5, 1.0]
    assert space["prefix_len"].describe() == "randint [1, 4]"
    assert space["align_weight"].describe() == "{0.1, 0.2, 0.5, 1.0}"


def test_yaml_floats_follow_recbole_and_params_can_be_selected(tmp_path):
    f = tmp_path / "space.yaml"
    f.write_text("learning_rate: {grid: [1e-4, 5e-4]}\nprefix_len: {grid: [1, 2]}\nalign_weight: {grid: [0.1]}\n")
    space = SearchSpace.load(f)
    assert space["learning_rate"].values == (1e-4, 5e-4)
    assert all(isinstance(v, float) for v in space["learning_rate"].values)
    assert SearchSpace.load(f, ["align_weight", "prefix_len"]).keys == ["align_weight", "prefix_len"]
    with pytest.raises(UserError, match=r"--tune-params: lambda not in search space .*space.yaml"):
        SearchSpace.load(f, ["lambda"])


@pytest.mark.parametrize("text, message", [
    ("align_weight: [0.1, 0.2]\n", "key 'align_weight' must be one domain such as {grid"),
    ("align_weight: {grdi: [0.1]}\n", "key 'align_weight': unknown domain 'grdi'"),
    ("align_weight: {grid: []}\n", "key 'align_weight': 'grid' takes a non-empty list"),
    ("align_weight: {grid: [0.1, 0.1]}\n", "key 'align_weight': 'grid' lists 0.1 twice"),
    ("align_weight: {grid: [0.1], choice: [1]}\n", "key 'align_weight' must be one domain"),
    ("learning_rate: {uniform: [0.1]}\n", "key 'learning_rate': 'uniform' takes [lo, hi]"),
    ("learning_rate: {uniform: [0.2, 0.1]}\n", "key 'learning_rate': 'uniform' needs lo < hi"),
    ("learning_rate: {loguniform: [0, 0.1]}\n", "key 'learning_rate': 'loguniform' needs 0 < lo"),
    ("learning_rate: {uniform: [a, 0.1]}\n", "key 'learning_rate': 'uniform' bounds must be numbers"),
    ("prefix_len: {randint: [1, 4.5]}\n", "key 'prefix_len': 'randint' bounds must be integers"),
    ("seed: {grid: [1, 2]}\n", "key 'seed' cannot be swept"),
    ("- a\n- b\n", "holds a list"),
    ("", "is empty"),
    ("align_weight: {grid: [0.1\n", "line"),
])
def test_bad_space_is_a_user_error_naming_file_and_key(tmp_path, text, message):
    f = tmp_path / "bad_space.yaml"
    f.write_text(text)
    with pytest.raises(UserError) as err:
        SearchSpace.load(f)
    assert "bad_space.yaml" in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


# What each ID model's and baseline's grid sweeps besides learning_rate and train_batch_size: its
# representation size and, where it has one, its dropout (the fairness issue: at least 8 points each).
BASELINE_KEYS = {"BPR": ("embedding_size",), "FPMC": ("embedding_size",),
                 "GRU4Rec": ("dropout_prob", "hidden_size"), "Caser": ("dropout_prob", "embedding_size"),
                 "SASRec": ("hidden_dropout_prob", "hidden_size"), "BERT4Rec": ("hidden_dropout_prob", "hidden_size"),
                 "NARM": ("dropout_probs", "hidden_size"), "ComiRec": ("hidden_dropout_prob", "embedding_size")}


def test_baseline_grids_sweep_keys_the_models_read():
    """Every baseline's grid is lr x batch size x its dropout and size keys, at least 8 points, each
    key one its model's config has (a misspelt key would be set in the config and silently ignored by
    the model): the check the sweep itself makes, on the project's own Config."""
    from recbole_llm.config import Config

    for model, keys in BASELINE_KEYS.items():
        config = Config(model=model, dataset="ml-100k")
        space = SearchSpace.load(REPO / "properties" / "tune" / f"{model}.yaml")
        assert space.keys == ["learning_rate", "train_batch_size", *keys], model
        assert space.grid_size() >= 8, model
        for key in space.keys:
            assert key in config, (model, key)
        assert config["learning_rate"] in space["learning_rate"].values, model


def test_shipped_spaces_are_the_papers_grids():
    folder = REPO / "properties" / "tune"
    idle = SearchSpace.load(folder / "IDLEAdapter.yaml")
    assert idle.keys == ["align_weight", "prefix_len", "mmd_bandwidth", "learning_rate"]
    assert idle["align_weight"].values == (0.1, 0.2, 0.5, 1.0) and idle["prefix_len"].values == (1, 2, 3, 4)
    rarec = SearchSpace.load(folder / "RARec.yaml")
    assert rarec["temperature"].values == (0.1, 0.2, 0.5, 1.0) and rarec["align_weight"].values == (0.1, 0.2, 0.5, 1.0)
    assert {"prefix_len", "learning_rate"} <= set(rarec.keys)
    assert SearchSpace.load(folder / "examples" / "SASRec-dropout.yaml").grid_size() == 6
    for model in BASELINE_KEYS:
        assert SearchSpace.load(folder / f"{model}.yaml").grid_size() >= 8, model


TUNE = REPO / "properties" / "tune"
SPACES = sorted(TUNE.glob("*.yaml")) + sorted((TUNE / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def shared_saved(tmp_path_factory):
    return tmp_path_factory.mktemp("saved")  # one tiny ID model for every LLM space


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_every_shipped_space_builds_its_model_at_every_corner_of_its_grid(path, toy_data_path, tiny_overrides,
                                                                           llm_overrides, shared_saved):
    """Each space under properties/tune/ (examples too) at every corner (each key at its lowest or
    highest value): the model passes its checks, is built on the toy data and computes a loss."""
    import itertools

    from recbole.data import data_preparation

    from recbole_llm.data.dataset import create_dataset

    from recbole_llm.pipeline import ensure_id_model
    from recbole_llm.quick_start import build_config
    from recbole_llm.utils import get_model

    model = path.stem.split("-")[0]
    model_class = get_model(model)
    space = SearchSpace.load(path)
    llm = hasattr(model_class, "preflight")  # an LLMSequentialRecommender
    base = {k: v for k, v in (llm_overrides if llm else tiny_overrides).items() if k not in space.keys}

    def ends(param):
        values = sorted(param.values) if all(isinstance(v, (int, float)) for v in param.values) else param.values
        return [values[0]] if values[0] == values[-1] else [values[0], values[-1]]  # values may be lists

    corners = list(itertools.product(*(ends(p) for p in space.params)))
    assert len(corners) == 2 ** len(space.keys)
    for corner in corners:
        config = build_config(RunSpec(model, "toy", 2020, (), {**base, **dict(zip(space.keys, corner))}, toy_data_path, shared_saved))
        if llm:
            model_class.preflight(config)
            config["id_model_checkpoint"] = str(ensure_id_model(config))
        train, _, _ = data_preparation(config, create_dataset(config))
        net = model_class(config, train._dataset)
        loss = net.calculate_loss(next(iter(train)))
        assert loss.dim() == 0 and torch.isfinite(loss), (path.name, corner)


# ----------------------------------------------------------------------------- sweep settings
SPACE = SearchSpace.parse({"learning_rate": {"grid": [0.001, 0.01]}}, "lr.yaml")


@pytest.mark.parametrize("kwargs, message", [
    ({"search": "bayes"}, "--search must be grid or random, got 'bayes'"),
    ({"scheduler": "hyperband"}, "--scheduler must be one of asha, none, got 'hyperband'"),
    ({"num_samples": -2}, "--num-samples must be >= 1, got -2"),
    ({"cpus_per_trial": 0}, "--cpus-per-trial must be > 0 and --gpus-per-trial >= 0"),
    ({"gpus_per_trial": -1}, "--cpus-per-trial must be > 0 and --gpus-per-trial >= 0"),
    ({"overrides": {"learning_rate": 0.1, "epochs": 2}},
     "--learning_rate fixed on the command line but swept in lr.yaml: drop one of the two"),
])
def test_sweep_settings_validate_names_the_bad_option(kwargs, message):
    from recbole_llm.tune import SweepSettings

    settings = SweepSettings("SASRec", "toy", SPACE, **kwargs)
    with pytest.raises(UserError) as err:
        settings.validate()
    assert str(err.value) == message


def test_sweep_settings_normalise_paths_overrides_and_samples(tmp_path, monkeypatch):
    from recbole_llm.config import REPO_ROOT
    from recbole_llm.tune import SweepSettings

    monkeypatch.chdir(tmp_path)
    overrides = {"epochs": 2}
    grid = SweepSettings("SASRec", "toy", SPACE, config_files=["a.yaml"], overrides=overrides, data_path="data")
    assert grid.validate() is grid
    assert grid.config_files == [str(tmp_path / "a.yaml")] and grid.data_path == tmp_path / "data"
    assert grid.saved_dir == (REPO_ROOT / "saved").resolve() and grid.num_samples == 1
    assert grid.overrides == overrides and grid.overrides is not overrides  # the caller's dict is not shared
    assert SweepSettings("SASRec", "toy", SPACE, search="random").num_samples == 10
    with pytest.raises(dataclasses.FrozenInstanceError):
        grid.seed = 1


def test_a_sweeps_key_is_its_base_run_key_and_its_search(toy_data_path, tmp_path):
    """A sweep is named by the run key of its base config (every fixed value, the data, the version:
    recbole_llm.identity) and its search settings: a fixed value or the data changes the key, the
    folder the sweep resumes from follows it."""
    from recbole_llm.identity import run_key
    from recbole_llm.tune import SweepSettings
    from recbole_llm.tune.sweep import _prepare

    space = SearchSpace.parse({"learning_rate": {"grid": [0.001, 0.01]},
                               "hidden_dropout_prob": {"uniform": [0.1, 0.5]}}, "s.yaml")

    def prepare(**overrides):
        return _prepare(SweepSettings("SASRec", "toy", space, seed=3, overrides={"epochs": 4, **overrides},
                                      data_path=toy_data_path, saved_dir=tmp_path, search="random", num_samples=3,
                                      scheduler="none", reduction_factor=3.0, grace_period=1, cpus_per_trial=0.5,
                                      name="x"))

    prepared = prepare()
    assert prepared.hashed == {
        "model": "SASRec", "dataset": "toy", "seed": 3, "space": space.as_dict(), "search": "random",
        "num_samples": 3, "scheduler": "none", "grace_period": None, "reduction_factor": None, "max_t": 4,
        "valid_metric": "NDCG@10", "run_key": run_key(prepared.config),
    }
    assert prepared.name.startswith("x-") and prepared.path == tmp_path / "ray" / "toy" / prepared.name
    assert prepare().name == prepared.name  # stable: a sweep resumes from its folder
    assert prepare(hidden_size=32).name != prepared.name  # a fixed value is part of it
    assert prepare(show_progress=True).name == prepared.name  # an excluded key is not


# ----------------------------------------------------------------------------- sweeps (Ray)
@pytest.fixture(scope="module")
def local_ray():
    """One quiet local Ray for the module's sweeps (run_sweep reuses a running one)."""
    import ray

    from recbole_llm.tune.sweep import init_ray

    started = init_ray()
    yield
    if started:
        ray.shutdown()


def _run_benchmark_main():
    from entry import run_benchmark_main

    return run_benchmark_main()


def test_sweep_writes_table_best_config_and_plot_and_best_reruns_same(local_ray, toy_data_path, tmp_path,
                                                                      monkeypatch):
    import torch

    from recbole_llm.pipeline import run

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {grid: [0.001, 0.01]}\nhidden_dropout_prob: {grid: [0.2, 0.5]}\n")
    out, saved = tmp_path / "results", tmp_path / "saved"
    argv = ["--model=SASRec", "--dataset=toy", "--seeds=7", "--budget=quick", "--tune", f"--tune-space={space}",
            f"--data-path={toy_data_path}", f"--output={out}", f"--saved-dir={saved}", "--no-progress",
            "--metrics=hit@10,ndcg@10"] + [f"--{k}={json.dumps(v) if isinstance(v, list) else v}"
                                            for k, v in TINY_SASREC.items()]
    assert _run_benchmark_main()(argv) == 0

    folder = out / "toy" / "tune" / "SASRec"
    rows = list(csv.DictReader((folder / "trials.csv").open()))
    assert len(rows) == 4
    scores = [float(r["valid_ndcg@10"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert {(float(r["learning_rate"]), float(r["hidden_dropout_prob"])) for r in rows} == {
        (a, b) for a in (0.001, 0.01) for b in (0.2, 0.5)}
    assert {r["status"] for r in rows} <= {"completed", "stopped (ASHA)"}
    assert all(1 <= int(r["epochs"]) <= 3 for r in rows)
    md = (folder / "trials.md").read_text()
    assert "evaluated for the best configuration only" in md and "| valid NDCG@10" in md
    assert (folder / "sensitivity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    best_text = (folder / "best.yaml").read_text()
    best = yaml.safe_load(best_text)
    assert best == {"learning_rate": float(rows[0]["learning_rate"]),
                    "hidden_dropout_prob": float(rows[0]["hidden_dropout_prob"])}
    header = [line for line in best_text.splitlines() if line.startswith("#")]
    assert any("dataset: toy" in h for h in header) and any(h.startswith("# commit: ") for h in header)
    assert any("seed 7" in h and "NDCG@10" in h for h in header) and any("--tune" in h for h in header)

    # test metrics exist for the best configuration only: one record, from the re-run
    runs = sorted((out / "toy" / "runs").glob("*.json"))
    assert len(runs) == 1
    record = json.loads(runs[0].read_text())
    assert record["label"] == "SASRec-tuned" and record["tune"]["params"] == best and record["test"]
    assert record["valid"]["ndcg@10"] == pytest.approx(scores[0], abs=1e-12)
    readme = (folder / "README.md").read_text()
    assert "No other trial was evaluated on the test split" in readme and "the same as the trial's" in readme
    # no path of this machine on the pages: the data and saved folders by their roots (an --output given
    # on the command line is named as given: the page's Regenerate line must write where it was written)
    for text in (readme, best_text, (folder / "sweep_record.json").read_text()):
        text = text.replace(f"--output={out}", "--output=<out>")
        assert str(tmp_path) not in text and "--data-path={data}" in text and "{saved}" in text
    assert "SASRec-tuned" in (out / "toy" / "comparison.md").read_text()
    # the YAML is a config file run() accepts, and it reproduces the trial's validation score
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the trial (1 CPU)
    try:
        again = run(RunSpec("SASRec", "toy", 7, [REPO / "properties" / "budget" / "quick.yaml", folder / "best.yaml"], TINY_SASREC, toy_data_path, tmp_path / "saved_again"), evaluate_test=False)
    finally:
        torch.set_num_threads(threads)
    assert again["config"]["learning_rate"] == best["learning_rate"]
    assert again["valid"]["ndcg@10"] == pytest.approx(scores[0], abs=1e-12)
    # nothing was written into the working directory (RecBole's ./log, Ray's results)
    assert list(cwd.iterdir()) == []

    # the folder is rewritten from its record alone, as the sweep wrote it: no Ray, no Tune folder
    import shutil

    written = {name: (folder / name).read_bytes() for name in ("README.md", "trials.md", "trials.csv", "best.yaml")}
    shutil.rmtree(saved)
    for name in [*written, "sensitivity.png"]:
        (folder / name).unlink()
    assert "--tune --tables-only" in written["README.md"].decode()
    assert _run_benchmark_main()(["--model=SASRec", "--dataset=toy", "--budget=quick", "--tune", "--tables-only",
                                  f"--output={out}"]) == 0
    assert {name: (folder / name).read_bytes() for name in written} == written
    assert (folder / "sensitivity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def interrupt_after_first_trial():
    """A Tune callback that presses Ctrl+C once, when the first trial has finished. Armed through
    the environment: Tune stores callbacks with the sweep (by value) and hands them back on resume."""
    from ray.tune import Callback

    class Interrupt(Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            if os.environ.pop("RECBOLE_LLM_TEST_INTERRUPT", None):
                os.kill(os.getpid(), signal.SIGINT)

    os.environ["RECBOLE_LLM_TEST_INTERRUPT"] = "1"
    return Interrupt()


def most_trials_running():
    """A Tune callback that keeps, in the file named by ``RECBOLE_LLM_TEST_RUNNING`` (read at every
    step, so that a resumed sweep, which gets the stored callback back, writes where the test
    says), the most trials it saw running at once."""
    from pathlib import Path

    from ray.tune import Callback

    class MostRunning(Callback):
        def on_step_end(self, iteration, trials, **info):
            path = os.environ.get("RECBOLE_LLM_TEST_RUNNING")
            if path:
                running = sum(t.status == "RUNNING" for t in trials)
                if running > (int(Path(path).read_text()) if os.path.exists(path) else 0):
                    Path(path).write_text(str(running))

    return MostRunning()


def test_interrupted_sweep_resumes_without_rerunning_finished_trials_and_with_the_new_max_concurrent(
        local_ray, toy_data_path, tmp_path, monkeypatch, capsys):
    from recbole_llm.tune import SweepSettings, run_sweep

    saved = tmp_path / "saved"
    space = SearchSpace.parse({"learning_rate": {"grid": [0.002, 0.01, 0.02]}}, "resume.yaml")
    overrides = {**TINY_SASREC, "epochs": 2}
    # half a CPU per trial: two trials fit at once even on a 1-CPU machine; only max_concurrent limits them
    kwargs = dict(seed=3, overrides=overrides, data_path=toy_data_path, saved_dir=saved, cpus_per_trial=0.5,
                  scheduler="none")

    monkeypatch.setenv("RECBOLE_LLM_TEST_RUNNING", str(tmp_path / "running-1"))
    first = run_sweep(SweepSettings("GRU4Rec", "toy", space, max_concurrent=1, **kwargs),
                      callbacks=[interrupt_after_first_trial(), most_trials_running()], verbose=0)
    assert first.interrupted
    assert (tmp_path / "running-1").read_text() == "1"
    done = first.trials[first.trials["status"] == "completed"]
    assert len(done) == 1

    # resumed with --max-concurrent 2: the two trials left run at once
    capsys.readouterr()
    monkeypatch.setenv("RECBOLE_LLM_TEST_RUNNING", str(tmp_path / "running-2"))
    second = run_sweep(SweepSettings("GRU4Rec", "toy", space, max_concurrent=2, **kwargs), verbose=0)
    assert "resuming with --max-concurrent 2 (the last session ran with 1)" in capsys.readouterr().out
    assert (tmp_path / "running-2").read_text() == "2"
    assert not second.interrupted and second.experiment_path == first.experiment_path
    assert sorted(second.trials["status"]) == ["completed"] * 3
    assert sorted(second.trials["learning_rate"]) == [0.002, 0.01, 0.02]
    kept = second.trials.set_index("trial").loc[done["trial"].iloc[0]]
    assert kept["metric"] == done["metric"].iloc[0]
    # one RecBole log per execution of a trial: the finished trial did not run again
    logs = {d.name: len(list((d / "log").rglob("*.log"))) for d in second.experiment_path.glob("trial_*")}
    assert logs[f"trial_{done['trial'].iloc[0]}"] == 1
    assert sum(logs.values()) <= 4 and len(logs) == 3
    # trials keep no checkpoints
    assert not list(second.experiment_path.glob("trial_*/checkpoints"))
    assert not list(second.experiment_path.glob("trial_*/runs"))
    state = json.loads((second.experiment_path / "sweep.json").read_text())
    assert [s["resumed"] for s in state["sessions"]] == [False, True]
    assert [s["max_concurrent"] for s in state["sessions"]] == [1, 2]


def test_a_sweep_replays_a_stored_run_and_stores_it_again_as_the_best_instead_of_training(
        local_ray, toy_data_path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out, saved, runs = tmp_path / "results", tmp_path / "saved", tmp_path / "results" / "toy" / "runs"
    common = ["--dataset=toy", "--budget=quick", f"--data-path={toy_data_path}", f"--output={out}",
              f"--saved-dir={saved}", "--no-progress", "--metrics=hit@10,ndcg@10", "--threads=1"] + [
        f"--{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in TINY_SASREC.items()]
    # the defaults' row, two seeds, at one thread as a trial runs
    assert _run_benchmark_main()(["--model=SASRec", "--seeds=7,8", *common]) == 0
    stored = {r["seed"]: (p, r) for p, r in ((p, json.loads(p.read_text())) for p in runs.glob("*.json"))}
    assert sorted(stored) == [7, 8]
    lr = stored[7][1]["config"]["learning_rate"]
    best_valid = max(h["valid"]["ndcg@10"] for h in stored[7][1]["history"])

    # a sweep over the default learning rate and another: the default's trial replays seed 7's run
    space = tmp_path / "two.yaml"
    space.write_text(f"learning_rate: {{grid: [{lr}, 0.01]}}\n")
    capsys.readouterr()
    assert _run_benchmark_main()(["--model=SASRec", "--seeds=7", "--tune", f"--tune-space={space}",
                                  "--scheduler=none", *common]) == 0
    assert "1 stored run(s) of SASRec seed 7 under budget 'quick'" in capsys.readouterr().out
    trial_dirs = sorted(saved.glob("ray/toy/SASRec-*/trial_*"))
    assert len(trial_dirs) == 2
    by_lr = {json.loads((d / "params.json").read_text())["learning_rate"]: d for d in trial_dirs}
    replayed = json.loads((by_lr[lr] / "trial_record.json").read_text())
    assert replayed["replayed_from"] == stored[7][0].name and replayed["test"] is None
    assert not list((by_lr[lr] / "log").rglob("*.log"))  # RecBole never ran in it
    trained = json.loads((by_lr[0.01] / "trial_record.json").read_text())
    assert "replayed_from" not in trained and list((by_lr[0.01] / "log").rglob("*.log"))
    rows = {float(r["learning_rate"]): r for r in csv.DictReader((out / "toy" / "tune" / "SASRec" / "trials.csv").open())}
    assert float(rows[lr]["valid_ndcg@10"]) == best_valid and rows[lr]["status"] == "completed"
    # every validation of the stored run was reported to Tune, in order, as the running best
    reported = [json.loads(line) for line in (by_lr[lr] / "result.json").read_text().splitlines() if line.strip()]
    scores = [h["valid"]["ndcg@10"] for h in stored[7][1]["history"]]
    assert [r["valid_ndcg_10_epoch"] for r in reported] == scores
    assert [r["valid_ndcg_10"] for r in reported] == [max(scores[:i + 1]) for i in range(len(scores))]
    assert "replayed" in rows[lr]["replayed_from"] or rows[lr]["replayed_from"] == stored[7][0].name

    # the trained trial kept its record beside the sweep's results; on a new machine (no Tune folder, no
    # saved runs) the same sweep trains nothing: both trials replay, and the best runs' records exist
    kept = json.loads((out / "toy" / "tune" / "SASRec" / "trials" / f"trial-{trained['run_key']}-seed7.json").read_text())
    assert kept["tune_trial"] == {"params": {"learning_rate": 0.01}} and kept["budget"] == "quick"
    assert [h["valid"] for h in kept["history"]] == [h["valid"] for h in trained["history"]] and kept["test"] is None
    shutil.rmtree(saved)
    capsys.readouterr()
    assert _run_benchmark_main()(["--model=SASRec", "--seeds=7", "--tune", f"--tune-space={space}",
                                  "--scheduler=none", *common]) == 0
    printed = capsys.readouterr().out
    assert "2 stored run(s) of SASRec seed 7" in printed and "training and testing" not in printed
    assert "stored again" not in printed and "record exists" in printed  # not copied twice under its own row
    assert len(list(runs.glob("SASRec-tuned__seed7__*.json"))) == 1
    assert "command" not in kept and "/" not in json.dumps(kept.get("tune_trial"))
    again = sorted(saved.glob("ray/toy/SASRec-*/trial_*"))
    assert len(again) == 2 and not [d for d in again if list((d / "log").rglob("*.log"))]  # RecBole ran in none
    rows_again = {float(r["learning_rate"]): r for r in
                  csv.DictReader((out / "toy" / "tune" / "SASRec" / "trials.csv").open())}
    assert {k: r["valid_ndcg@10"] for k, r in rows_again.items()} == {k: r["valid_ndcg@10"] for k, r in rows.items()}
    # from its kept record, or from the best point's run record when 0.01 won (a run record, with its test, wins)
    best_runs = [p.name for p in runs.glob("SASRec-tuned__seed7__*.json") if json.loads(p.read_text())["run_key"] == trained["run_key"]]
    assert rows_again[0.01]["replayed_from"] == (best_runs or [f"trial-{trained['run_key']}-seed7.json"])[0]

    # a sweep whose best point is the defaults': its best runs are the stored runs, stored again, not trained
    one = tmp_path / "one.yaml"
    one.write_text(f"learning_rate: {{grid: [{lr}]}}\n")
    capsys.readouterr()
    assert _run_benchmark_main()(["--model=SASRec", "--seeds=7,8", "--tune", f"--tune-space={one}",
                                  "--tune-name=SASRec-one", "--scheduler=none", *common]) == 0
    printed = capsys.readouterr().out
    assert printed.count("stored again under 'SASRec-one-tuned', not trained") == 2 and "training and testing" not in printed
    copies = {r["seed"]: r for r in (json.loads(p.read_text()) for p in runs.glob("SASRec-one-tuned__*.json"))}
    assert sorted(copies) == [7, 8]
    for seed, (path, original) in stored.items():
        copy = copies[seed]
        assert copy["same_run_as"] == path.name and copy["label"] == "SASRec-one-tuned"
        assert copy["tune"]["params"] == {"learning_rate": lr} and copy["tune"]["valid_in_sweep"] == best_valid
        assert copy["stored_at"] >= original["finished_at"][:10]
        assert ({k: v for k, v in copy.items() if k not in ("label", "tune", "same_run_as", "stored_at")}
                == {k: v for k, v in original.items() if k != "label"})
    # one set of runs, one row: the comparison page names the copies instead of testing them twice; a lookup
    # of the run under any label finds its own record
    from recbole_llm.benchmark import tuning
    from recbole_llm.benchmark.records import load_records, stored_record

    page = (out / "toy" / "comparison.md").read_text()
    assert "| SASRec-one-tuned" not in page and "SASRec-one-tuned (seeds 7, 8) is SASRec" in page
    loaded = load_records(out, "toy")
    originals = [r for r in loaded if r.get("label") == "SASRec"]
    copied = [r for r in loaded if r.get("label") == "SASRec-one-tuned"]
    assert tuning._same_runs(copied, originals) and not tuning._same_runs(originals, originals)
    assert stored_record(loaded, None, 7, stored[7][1]["run_key"], "quick")["_path"] == str(stored[7][0])

    # the same command again finds them as this sweep's records
    capsys.readouterr()
    assert _run_benchmark_main()(["--model=SASRec", "--seeds=7,8", "--tune", f"--tune-space={one}",
                                  "--tune-name=SASRec-one", "--scheduler=none", *common]) == 0
    assert capsys.readouterr().out.count("record exists") == 2
    assert len(list(runs.glob("SASRec-one-tuned__*.json"))) == 2


@pytest.mark.slow
def test_llm_sweep_trains_its_id_model_once_before_the_trials(local_ray, toy_data_path, tmp_path, llm_overrides):
    from recbole_llm.tune import SweepSettings, run_sweep

    space = SearchSpace.parse({"prefix_len": {"grid": [1, 2]}, "align_weight": {"grid": [0.1, 1.0]}}, "idle.yaml")
    saved = tmp_path / "saved"
    sweep = run_sweep(SweepSettings("IDLEAdapter", "toy", space, seed=1, overrides=llm_overrides,
                                    data_path=toy_data_path, saved_dir=saved), verbose=0)
    assert sorted(sweep.trials["status"]) == ["completed"] * 4
    assert len(list((saved / "id_models").rglob("*.pth"))) == 1  # trained by the ID-model step, in the driver
    for trial in sweep.experiment_path.glob("trial_*"):
        logs = sorted(p.parent.name for p in (trial / "log").rglob("*.log"))
        assert logs == ["IDLEAdapter"]  # no trial trained an ID model of its own


@pytest.mark.parametrize("args, message", [
    (["--model=Pop"], "no search space for Pop at"),  # a RecBole model the benchmark does not sweep
    (["--model=SASRec", "--tune-params=nope"], "--tune-params: nope not in search space"),
    (["--model=SASRec", "--learning_rate=0.1"], "--learning_rate fixed on the command line but swept in"),
    (["--model=SASRec", "--tune-space={bad}"], "key 'learning_rat' is not a config key"),
])
def test_bad_sweep_options_are_one_line_errors(toy_data_path, tmp_path, capsys, args, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rat: {grid: [0.1, 0.2]}\n")
    argv = ["--dataset=toy", "--tune", f"--data-path={toy_data_path}", f"--output={tmp_path / 'results'}",
            f"--saved-dir={tmp_path / 'saved'}"] + [a.format(bad=bad) for a in args]
    assert _run_benchmark_main()(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "results").exists() and not (tmp_path / "saved" / "ray").exists()


@pytest.mark.parametrize("setup, args, message", [
    (None, [], "no sweep folders under"),
    ("folder", [], "has a sweep_record.json (SASRec: written before sweeps kept one)"),
    ("folder", ["--model=SASRec"], "sweep_record.json does not exist: this folder was written before"),
    ('{"format": 1, "model": "SASRec"}', ["--model=SASRec"], "is not a sweep record this version reads ('space')"),
    ("{not json", ["--model=SASRec"], "is not a sweep record this version reads"),
])
def test_sweep_tables_only_without_a_readable_record_is_a_one_line_error(tmp_path, capsys, setup, args, message):
    folder = tmp_path / "results" / "toy" / "tune" / "SASRec"
    if setup is not None:
        folder.mkdir(parents=True)
        if setup != "folder":
            (folder / "sweep_record.json").write_text(setup)
    argv = ["--dataset=toy", "--tune", "--tables-only", f"--output={tmp_path / 'results'}", *args]
    assert _run_benchmark_main()(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_a_sweep_with_failed_trials_chooses_no_best_point_and_writes_nothing(toy_data_path, tmp_path, capsys,
                                                                               monkeypatch):
    """Trials that failed (a Ray error, a killed worker) leave part of the space unsearched: the command
    names them and how to restart them, writes no results folder and trains no seed, instead of
    choosing the best of the trials that finished."""
    import pandas as pd

    import recbole_llm.tune.cli as tune_cli
    from recbole_llm.tune.sweep import Sweep

    def fake_sweep(settings, **_):
        trials = pd.DataFrame([
            {"trial": "a", "learning_rate": 0.001, "metric": 0.2, "epochs": 3, "status": "completed", "error": ""},
            {"trial": "b", "learning_rate": 0.01, "metric": float("nan"), "epochs": 1, "status": "error",
             "error": "ray.exceptions.ObjectFetchTimedOutError: Failed to retrieve object"}])
        return Sweep(settings, {}, {"seed": 1, "valid_metric": "NDCG@10"}, trials, tmp_path / "ray" / "x",
                     interrupted=False, wall_time_s=1.0, planned=2)

    monkeypatch.setattr(tune_cli, "run_sweep", fake_sweep)
    monkeypatch.setattr(tune_cli, "run_best", lambda *a, **k: pytest.fail("a seed was trained"))
    argv = ["--dataset=toy", "--model=SASRec", "--tune", f"--data-path={toy_data_path}",
            f"--output={tmp_path / 'results'}", f"--saved-dir={tmp_path / 'saved'}"]
    assert _run_benchmark_main()(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: 1 of 2 trials of the SASRec sweep failed (trial b: "), err
    assert "run the same command again to restart them" in err[0]
    assert not (tmp_path / "results" / "toy" / "tune").exists()


def test_a_local_ray_gets_no_more_cpus_than_max_concurrent_trials_use(monkeypatch):
    """Failed trials that a resumed sweep restarts are outside the search algorithm's limit: only the
    CPUs Ray is given keep them to --max-concurrent (seen: two GRU4Rec trials at once under
    --max-concurrent=1 --cpus-per-trial=1 on a 2-CPU machine)."""
    from types import SimpleNamespace

    import recbole_llm.tune.sweep as sweep

    monkeypatch.setattr(sweep, "available_cpus", lambda: 16)
    for max_concurrent, cpus_per_trial, cpus in [(1, 1, 1), (2, 0.5, 1), (3, 2, 6), (None, 1, 16), (0, 1, 16),
                                                 (32, 1, 16)]:
        settings = SimpleNamespace(max_concurrent=max_concurrent, cpus_per_trial=cpus_per_trial)
        assert sweep.local_cpus(settings) == cpus, (max_concurrent, cpus_per_trial)


def test_a_kept_trial_record_is_replayed_and_a_stored_run_of_its_key_wins_over_it(tmp_path):
    """keep_trial_record writes a trained trial's record (no checkpoint, the sweep's budget, its swept
    values) where kept_trials finds it; finished_runs offers it for replay, unless a stored run record
    of the same key and seed comes after it."""
    from recbole_llm.identity import KEY_SCHEME
    from recbole_llm.tune.reuse import finished_runs, keep_trial_record, kept_trials

    history = [{"epoch": i, "valid": {"ndcg@10": v}} for i, v in enumerate((0.1, 0.3, 0.2))]
    trial = {"model": "SASRec", "seed": 7, "run_key": "abc123", "key_scheme": KEY_SCHEME, "history": history,
             "valid": {"ndcg@10": 0.3}, "epochs_run": 3, "best_epoch": 1, "test": None, "checkpoint": "x.pth",
             "finished_at": "2026-12-07T20:00:00+0000"}
    path = keep_trial_record(tmp_path / "trials", trial, "quick", {"learning_rate": 0.01})
    (tmp_path / "trials" / "trial-broken-seed7.json").write_text("{not json")
    kept = kept_trials(tmp_path / "trials")
    assert [r["_path"] for r in kept] == [str(path)] and "checkpoint" not in kept[0]
    assert kept[0]["budget"] == "quick" and kept[0]["tune_trial"] == {"params": {"learning_rate": 0.01}}
    found = finished_runs(kept, "SASRec", 7, "quick", "NDCG@10")
    assert found["abc123"]["record"] == path.name and found["abc123"]["scores"] == [(0, 0.1), (1, 0.3), (2, 0.2)]
    assert finished_runs(kept, "SASRec", 7, "full", "NDCG@10") == {}  # another budget's trial is not this run
    run = {**trial, "_path": str(tmp_path / "SASRec__seed7.json"), "budget": "quick", "test": {"ndcg@10": 0.2}}
    assert finished_runs([*kept, run], "SASRec", 7, "quick", "NDCG@10")["abc123"]["record"] == "SASRec__seed7.json"
    assert kept_trials(tmp_path / "none") == []
