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


# ------------------------------------------------------------------ FLOPs and the matmul rate
def test_the_flops_of_one_linear_layer_are_the_hand_count():
    """``2 n i o`` for ``[n, i] @ [i, o]``: once forward; backward once more per gradient computed
    (the input's, the weight's); a frozen weight gets none."""
    import torch

    linear, x = torch.nn.Linear(8, 5), torch.randn(3, 8, requires_grad=True)
    one = 2 * 3 * 8 * 5
    assert speed.count_flops(linear, [x]) == one
    assert speed.count_flops(lambda b: linear(b).sum().backward(), [x]) == 3 * one
    linear.requires_grad_(False)
    assert speed.count_flops(lambda b: linear(b).sum().backward(), [x, x[:2]]) == 2 * one + 2 * (2 * 2 * 8 * 5)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_the_flops_of_a_bare_lm_step_are_the_hand_count_of_its_config(attention, tiny_bert):
    """The bare LM's forward+backward (``bare_lm_step``'s work: frozen weights, gradients to the
    input embeddings) on a tiny BERT, counted, against the count from its config: per layer and
    token the four attention projections (h x h) and the two feed-forward ones (h x i), and the
    attention's two matmuls over S keys, forward; backward the input gradients only (one matmul
    per projection) and four attention matmuls; BERT's pooler forward only (the loss does not read
    it). The same count with SDPA's CPU kernel (not in torch's table) as with eager's matmuls."""
    import torch

    from recbole_llm.lm import FrozenLM

    lm = FrozenLM(str(tiny_bert)).set_attention(attention)
    cfg = lm.model.config
    h, i, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    batch, width = 3, 7
    ids = torch.randint(1000, 2000, (batch, width))
    mask = torch.ones(batch, width, dtype=torch.long)
    mask[1, 5:] = 0

    def bare(ids):
        embeds = lm.model.get_input_embeddings()(ids).detach().requires_grad_(True)
        out = lm.model(inputs_embeds=embeds, attention_mask=mask)
        lm.pool(out.last_hidden_state, mask).pow(2).mean().backward()

    tokens = batch * width
    projections = 2 * tokens * (4 * h * h + 2 * h * i)
    attention_matmuls = 2 * 2 * batch * width * width * h
    forward = layers * (projections + attention_matmuls) + 2 * batch * h * h
    backward = layers * (projections + 2 * attention_matmuls)
    assert speed.count_flops(bare, [ids]) == forward + backward


def test_the_matmul_rate_is_positive_and_names_its_size():
    rate, n = speed.matmul_rate("cpu", sizes=(64, 128), repeats=2)
    assert rate > 0 and n in (64, 128)


def test_an_llm_row_carries_the_bare_lms_flop_rate_against_the_matmuls(toy_data_path, tmp_path):
    code = speed.main(["--dataset=toy", f"--data-path={toy_data_path}", "--models=IDLEAdapter@tiny", "--batches=1",
                       "--threads=1", "--label=t", f"--output={tmp_path / 'out'}", f"--saved-dir={tmp_path / 'saved'}",
                       "--no-plain", "--topk=[5,10]", "--item_text_field=title", "--prompt_max_tokens=32",
                       "--train_batch_size=16", "--eval_batch_size=16", "--lm_autocast=none"])
    assert code == 0
    (row,) = json.loads((tmp_path / "out" / "toy.json").read_text())["runs"][0]["rows"]
    assert row["bare_lm_gflop_per_sample"] > 0 and row["matmul_gflop_per_s"] > 0 and row["matmul_n"] in (1024, 2048)
    assert row["bare_lm_gflop_per_s"] == pytest.approx(row["bare_lm_gflop_per_sample"] * row["bare_lm_samples_per_s"])
    assert row["bare_lm_over_matmul"] == pytest.approx(row["bare_lm_gflop_per_s"] / row["matmul_gflop_per_s"])


def test_llm_rows_from_before_the_flop_columns_read_n_a(tmp_path):
    old_llm = {"model": "IDLEAdapter", "bare_lm_samples_per_s": 30.0, "adapter_throughput_ratio": 0.95}
    new_llm = {**old_llm, "bare_lm_gflop_per_s": 250.0, "matmul_gflop_per_s": 420.0, "bare_lm_over_matmul": 0.595}
    id_row = {"model": "SASRec", "train_samples_per_s": 100.0}
    speed.write_results(tmp_path, "toy", "before", [old_llm, id_row], _env("aaa"), "cmd before")
    speed.write_results(tmp_path, "toy", "after", [new_llm], _env("bbb"), "cmd after")
    rows = list(csv.DictReader((tmp_path / "toy.csv").open()))
    flops = [(r["model"], r["bare_lm_gflop_per_s"], r["matmul_gflop_per_s"], r["bare_lm_over_matmul"]) for r in rows]
    assert flops == [("IDLEAdapter", "n/a", "n/a", "n/a"), ("SASRec", "", "", ""),
                     ("IDLEAdapter", "250.0", "420.0", "0.595")]
    md = (tmp_path / "toy.md").read_text()
    assert "| 0.950 | n/a | n/a | n/a |" in md and "| 0.950 | 250 | 420 | 0.595 |" in md
