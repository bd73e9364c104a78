"""run_benchmark.py end to end on the toy dataset, and its answers to bad input."""

import json
import subprocess
import sys

import pytest

from conftest import REPO

TINY = ["--train_batch_size=64", "--MAX_ITEM_LIST_LENGTH=10", "--topk=[5,10]", "--embedding_size=16",
        "--hidden_size=16", "--inner_size=32", "--n_layers=1", "--n_heads=1", "--epochs=2", "--no-progress"]


def bench(*args, data_path, tmp_path):
    cmd = [sys.executable, str(REPO / "run_benchmark.py"), f"--data-path={data_path}",
           f"--output={tmp_path / 'results'}", f"--saved-dir={tmp_path / 'saved'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_two_models_two_seeds_write_records_and_tables(toy_data_path, tmp_path):
    out = bench("--model=BPR,SASRec", "--dataset=toy", "--seeds=1,2", "--metrics=hit@5,ndcg@10",
                "--target=SASRec", *TINY, data_path=toy_data_path, tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    runs = sorted((tmp_path / "results" / "toy" / "runs").glob("*.json"))
    assert len(runs) == 4
    rec = json.loads(runs[0].read_text())
    for key in ("test", "valid", "config", "seed", "commit", "packages", "cost", "epochs_run", "history", "hardware"):
        assert key in rec
    assert rec["config"]["eval_args"]["split"] == {"LS": "valid_and_test"}
    assert rec["config"]["eval_args"]["order"] == "TO"
    assert rec["epochs_run"] == 2 and len(rec["history"]) == 2
    md = (tmp_path / "results" / "toy" / "comparison.md").read_text()
    assert "| SASRec" in md and "| BPR" in md and "| Improv.% (SASRec vs" in md
    csv = (tmp_path / "results" / "toy" / "comparison.csv").read_text().splitlines()
    assert csv[0].startswith("model,n_seeds,seeds,") and ",hit@5_mean,hit@5_std," in csv[0]
    assert {line.split(",")[1] for line in csv[1:]} == {"2"}
    # the record's test metric is the one RecBole reported for the best validation epoch
    assert 0.0 <= rec["test"]["ndcg@10"] <= 1.0

    # a run added later without --target keeps the page's target (and its Improv.% row) ...
    out = bench("--model=BPR,SASRec", "--dataset=toy", "--seeds=3", "--metrics=hit@5,ndcg@10", *TINY,
                data_path=toy_data_path, tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "the page keeps its --target=SASRec" in out.stdout
    md = (tmp_path / "results" / "toy" / "comparison.md").read_text()
    assert "| Improv.% (SASRec vs" in md and md.rstrip().endswith("--target=SASRec`")
    # ... while --tables-only draws the page exactly as its command says
    out = bench("--dataset=toy", "--tables-only", "--metrics=hit@5,ndcg@10", data_path=toy_data_path,
                tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    md = (tmp_path / "results" / "toy" / "comparison.md").read_text()
    assert "| Improv.%" not in md and "--target" not in md


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model=NoSuchModel", "--dataset=toy"], "unknown model 'NoSuchModel'"),
        (["--model=BPR", "--dataset=nowhere"], "nowhere"),
        (["--model=BPR", "--dataset=toy", "--seeds=a,b"], "--seeds must be a comma list of integers"),
        (["--model=BPR", "--dataset=toy", "--budget=huge"], "unknown --budget 'huge'"),
        (["--model=BPR", "--dataset=toy", "--config-files=missing.yaml"], "missing.yaml does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(toy_data_path, tmp_path, args, message):
    out = bench(*args, data_path=toy_data_path, tmp_path=tmp_path)
    assert out.returncode == 2
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], out.stderr[-1500:]
    assert not (tmp_path / "results").exists()


def test_unknown_model_lists_valid_names(toy_data_path, tmp_path):
    out = bench("--model=SASRecc", "--dataset=toy", data_path=toy_data_path, tmp_path=tmp_path)
    assert out.returncode == 2 and "did you mean SASRec," in out.stderr
    assert "SASRec" in out.stderr and "ComiRec" in out.stderr and "GRU4Rec" in out.stderr


def test_malformed_yaml_names_the_line(toy_data_path, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 2\nlearning_rate: [0.1\n")
    out = bench("--model=BPR", "--dataset=toy", f"--config-files={bad}", data_path=toy_data_path, tmp_path=tmp_path)
    assert out.returncode == 2 and "bad.yaml" in out.stderr and "line" in out.stderr


def _module():
    from entry import run_benchmark_module

    return run_benchmark_module()


def _main():
    return _module().main


def _in_process(args, data_path, tmp_path):
    return _main()([f"--data-path={data_path}", f"--output={tmp_path / 'results'}", f"--saved-dir={tmp_path / 'saved'}",
                    "--threads=1", "--no-progress", *args])


@pytest.mark.parametrize("args, line", [
    # options that would set nothing (issue 14 item 5)
    (["--learnin_rate=0.5", "--epoch=1"], "error: option --learnin_rate=0.5: 'learnin_rate' is not a config key of "
     "SASRec (no YAML under properties/, RecBole default or model reads it, so it would set nothing); did you mean "
     "--learning_rate?"),
    (["--epoch=1"], "did you mean --epochs?"),
    (["--config_files=missing.yaml"], "error: config file missing.yaml does not exist (--config-files)"),
    # values RecBole would misread (item 4)
    (["--rm_dup_inter=False"], "error: config key rm_dup_inter = False (from --rm_dup_inter) must be one of first, "
     "last, ~"),
    (["--learner=adan"], "learner = 'adan' (from --learner) must be one of adam, adamw, sgd, adagrad, rmsprop, "
     "sparse_adam (RecBole trains with Adam instead)"),
    (["--eval_args={'split': {'LS': 'valid_and_test'}, 'order': 'to'}"], "order must be RO or TO, not 'to'"),
    (["--valid_metric=NDCG@20", "--topk=[5,10]"], "valid_metric = 'NDCG@20' (from --valid_metric) must be one of the "
     "metrics"),
    (["--epochs=2.5"], "epochs = 2.5 (from --epochs) must be an integer (its default is 50)"),
    (["--seeds=-5"], "error: --seeds: -5 is out of range; seeds are integers in [0, 4294967295]"),
    (["--seeds=4294967296"], "--seeds: 4294967296 is out of range"),
    # an LLM model's bad value stops the ID model's row too (item 9)
    (["--model=SASRec,RARec", "--prefix_len=1", "--item_text_field=title"],
     "error: prefix_len=1 leaves no room for the contextual instruction"),
])
def test_options_that_mean_nothing_or_something_else_are_refused(args, line, toy_data_path, tmp_path, capsys):
    if not any(a.startswith("--model=") for a in args):
        args = ["--model=SASRec", *args]
    assert _in_process(["--dataset=toy", *args], toy_data_path, tmp_path) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and line in err[0], captured.err[-1500:]
    assert "[recbole-llm]" not in captured.out  # refused before the start-up line: nothing ran
    assert not (tmp_path / "results").exists() and not list(tmp_path.rglob("*.pth"))


def test_a_misspelt_key_in_a_config_file_names_its_line(toy_data_path, tmp_path, capsys):
    mine = tmp_path / "my.yaml"
    mine.write_text("epochs: 1\n# a comment\nlearnin_rate: 0.5\n")
    assert _in_process(["--model=SASRec", "--dataset=toy", f"--config-files={mine}"], toy_data_path, tmp_path) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: config file {mine} line 3: 'learnin_rate' is not a config key of SASRec (no YAML under properties/, "
        "RecBole default or model reads it, so it would set nothing); did you mean learning_rate?")


def test_recbole_spelling_of_config_files_and_the_budget_in_force(toy_data_path, tmp_path, capsys):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("learning_rate: 0.002\nstopping_step: 1\n")
    b.write_text("embedding_size: 8\nhidden_size: 8\ninner_size: 16\nn_layers: 1\nn_heads: 1\ntopk: [5, 10]\n")
    args = ["--model=SASRec", "--dataset=toy", "--budget=quick", "--epochs=1", "--MAX_ITEM_LIST_LENGTH=10",
            f"--config_files={a} {b}"]
    assert _in_process(args, toy_data_path, tmp_path) == 0
    out = capsys.readouterr().out
    start = next(line for line in out.splitlines() if line.startswith("[recbole-llm] 1 run(s)"))
    assert "budget 'quick': epochs=1 (--epochs; the file says 2), stopping_step=1 (a.yaml; the file says 2), " \
           "budget=quick, data_strategy=random, data_size=8000" in start
    (path,) = (tmp_path / "results" / "toy" / "runs").glob("*.json")
    config = json.loads(path.read_text())["config"]
    assert (config["epochs"], config["learning_rate"], config["hidden_size"]) == (1, 0.002, 8)


def test_llm_row_without_titles_stops_before_its_id_model_with_one_line(tmp_path):
    """A process of its own: the only line on stderr is the error (no logging warning beside it)."""
    from conftest import write_toy

    folder = write_toy(tmp_path / "data")
    lines = ["item_id:token\ttitle:token_seq"] + [f"item_{i}\tThing number {i}" for i in range(1, 31)]
    (folder / "toy.item").write_text("\n".join(lines) + "\n")  # ids that are not .inter's i1..i30
    captured = bench("--model=ComiRec,IDLEAdapter", "--dataset=toy", "--item_text_field=title", "--topk=[5,10]",
                     data_path=tmp_path / "data", tmp_path=tmp_path)
    assert captured.returncode == 2
    assert captured.stderr.strip() == (
        f"error: 30 of 30 items (100.0%) have no 'title' text in {folder / 'toy.item'} (missing_text_max_share: "
        "0.05): make its item_id values those of the .inter file and check for malformed lines (an unclosed quote "
        "merges lines), or raise missing_text_max_share")
    assert "[recbole-llm]" not in captured.stdout and not list(tmp_path.rglob("*.pth"))


def test_regenerate_line_omits_output_only_for_a_checkouts_default_folder(tmp_path):
    """A run started from a second worktree with ``--output=<main checkout>/results`` must not
    write that absolute path into the main checkout's committed page."""
    rb = _module()
    other = tmp_path / "worktree"
    other.mkdir()
    (other / "run_benchmark.py").write_text("")
    assert rb.output_option(None, "full") == ""
    assert rb.output_option(str(other / "results"), "full") == ""
    assert rb.output_option(str(other / "results" / "quick"), "quick") == ""
    # the budget's own folder only: results/ under --budget=quick is not its default
    assert rb.output_option(str(other / "results"), "quick") == f" --output={other / 'results'}"
    # a folder in no checkout is kept as given
    assert rb.output_option(str(tmp_path / "results"), "full") == f" --output={tmp_path / 'results'}"
    assert rb.output_option("my results", "full") == " --output='my results'"
