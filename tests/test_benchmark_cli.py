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
    assert "| SASRec" in md and "| BPR" in md and "Improv.%" in md
    csv = (tmp_path / "results" / "toy" / "comparison.csv").read_text().splitlines()
    assert csv[0].startswith("model,n_seeds,seeds,hit@5_mean,hit@5_std")
    assert {line.split(",")[1] for line in csv[1:]} == {"2"}
    # the record's test metric is the one RecBole reported for the best validation epoch
    assert 0.0 <= rec["test"]["ndcg@10"] <= 1.0


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
    out = bench("--model=SASrec", "--dataset=toy", data_path=toy_data_path, tmp_path=tmp_path)
    assert "SASRec" in out.stderr and "ComiRec" in out.stderr and "GRU4Rec" in out.stderr


def test_malformed_yaml_names_the_line(toy_data_path, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 2\nlearning_rate: [0.1\n")
    out = bench("--model=BPR", "--dataset=toy", f"--config-files={bad}", data_path=toy_data_path, tmp_path=tmp_path)
    assert out.returncode == 2 and "bad.yaml" in out.stderr and "line" in out.stderr
