"""The speed benchmark's tables (rows kept per label) and one end-to-end run on toy data."""

import csv
import json

import pytest

from recbole_llm.benchmark import speed


def _env(commit):
    return {"cpu": "test cpu", "cores": 2, "avx512_bf16": False, "amx_bf16": False, "gpu": None, "threads": 1,
            "torch": "x", "package": "/p", "commit": commit, "date": "d"}


def test_rows_are_kept_per_label_and_a_label_rerun_replaces_its_own(tmp_path):
    row = {"model": "SASRec", "train_samples_per_s": 100.0, "anomaly_mode": True}
    speed.write_results(tmp_path, "toy", "before", [row], _env("aaa"), "cmd before")
    speed.write_results(tmp_path, "toy", "after", [{**row, "train_samples_per_s": 150.0}], _env("bbb"), "cmd after")
    speed.write_results(tmp_path, "toy", "after", [{**row, "train_samples_per_s": 160.0}], _env("bbb"), "cmd after 2")
    data = json.loads((tmp_path / "toy.json").read_text())
    assert [r["label"] for r in data["runs"]] == ["before", "after"]
    assert data["runs"][1]["rows"][0]["train_samples_per_s"] == 160.0
    rows = list(csv.DictReader((tmp_path / "toy.csv").open()))
    assert [(r["label"], r["train_samples_per_s"], r["commit"]) for r in rows] == [
        ("before", "100.0", "aaa"), ("after", "160.0", "bbb")]
    md = (tmp_path / "toy.md").read_text()
    assert "| before | SASRec |" in md and "| after | SASRec |" in md and "cmd after 2" in md
    assert "cmd after\n" not in md and not list(tmp_path.glob(".toy*"))  # no temporary file left

    # --tables-only rewrites the .csv and .md from the .json alone, the same bytes
    written = {name: (tmp_path / name).read_bytes() for name in ("toy.csv", "toy.md")}
    for name in written:
        (tmp_path / name).unlink()
    assert speed.main(["--dataset=toy", f"--output={tmp_path}", "--tables-only"]) == 0
    assert {name: (tmp_path / name).read_bytes() for name in written} == written


def test_tables_only_without_stored_rows_is_a_one_line_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        speed.main(["--dataset=toy", f"--output={tmp_path}", "--tables-only"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"--tables-only: {tmp_path / 'toy.json'} does not exist" in err


def test_a_run_on_toy_data_writes_a_row_per_model(toy_data_path, tmp_path):
    code = speed.main(["--dataset=toy", f"--data-path={toy_data_path}", "--models=GRU4Rec", "--batches=1",
                       "--threads=1", "--label=t", f"--output={tmp_path / 'out'}", f"--saved-dir={tmp_path / 'saved'}",
                       "--no-plain", "--topk=[5,10]"])  # the toy has 30 items: top-K cut-offs below that
    assert code == 0
    run = json.loads((tmp_path / "out" / "toy.json").read_text())["runs"][0]
    (row,) = run["rows"]
    assert row["model"] == "GRU4Rec" and row["train_samples_per_s"] > 0 and row["eval_users_per_s"] > 0
    assert row["anomaly_mode"] is False  # the package switches RecBole's anomaly mode off
    assert run["environment"]["threads"] == 1 and isinstance(run["environment"]["avx512_bf16"], bool)


def test_key_value_options_set_the_config_of_every_model_and_are_recorded(toy_data_path, tmp_path):
    code = speed.main(["--dataset=toy", f"--data-path={toy_data_path}", "--models=GRU4Rec", "--batches=1",
                       "--threads=1", "--label=h16", f"--output={tmp_path / 'out'}", f"--saved-dir={tmp_path / 'saved'}",
                       "--no-plain", "--hidden_size=16", "--train_batch_size=32", "--topk=[5,10]"])
    assert code == 0
    (row,) = json.loads((tmp_path / "out" / "toy.json").read_text())["runs"][0]["rows"]
    assert row["overrides"] == "hidden_size=16 train_batch_size=32 topk=[5, 10]"
    assert row["train_batch_size"] == 32  # the value reached the model's config, converted from the string
    assert "| h16 | GRU4Rec |  | hidden_size=16 train_batch_size=32 topk=[5, 10] | 32 |" in (tmp_path / "out" / "toy.md").read_text()


def test_a_key_no_model_reads_is_a_one_line_error_before_anything_is_timed(tmp_path, capsys):
    from recbole_llm.errors import exit_status

    status = exit_status(lambda: speed.main(["--dataset=toy", "--models=GRU4Rec", f"--output={tmp_path}",
                                             "--prompt_max_tokns=128"]))
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "prompt_max_tokns" in err and "did you mean --prompt_max_tokens" in err
    assert not list(tmp_path.iterdir())  # nothing written
