import pytest

from recbole_llm.benchmark.page import write_results_page
from recbole_llm.benchmark.records import latest_per_seed, load_records, write_record
from recbole_llm.benchmark.tables import LATEX, improvement, render, summarize


def rec(model, seed, ndcg, hit, when="2026-01-01T00:00:00"):
    """A converged ID-model run: early stopping (3 of the budget's 500 epochs), best validation epoch before the last."""
    return {
        "model": model, "label": model, "dataset": "d", "seed": seed, "budget": "full",
        "test": {"ndcg@10": ndcg, "hit@10": hit}, "valid": {"ndcg@10": ndcg},
        "protocol": {"split": "LS", "valid_metric": "NDCG@10", "epochs_max": 500, "stopping_step": 5},
        "epochs_run": 3, "best_epoch": 1, "cost": {"wall_time_s": 1.0}, "commit": "abc", "finished_at": when,
        "dataset_stats": {"users": 1, "items": 2, "interactions": 3, "train_samples": 1},
    }


RECORDS = [rec("A", 1, 0.10, 0.20), rec("A", 2, 0.20, 0.30), rec("B", 1, 0.30, 0.25), rec("C", 1, 0.05, 0.40)]
METRICS = ("ndcg@10", "hit@10")


def test_summary_mean_and_std():
    s = summarize(RECORDS, METRICS)
    assert s.loc["A", "n_seeds"] == 2
    assert s.loc["A", "ndcg@10_mean"] == pytest.approx(0.15)
    assert s.loc["A", "ndcg@10_std"] == pytest.approx(0.0707107, rel=1e-5)
    assert s.loc["B", "ndcg@10_std"] == 0.0


def three_seeds(model, ndcg, hit, valid):
    out = [rec(model, seed, ndcg, hit) for seed in (1, 2, 3)]
    for r in out:
        r["valid"] = {"ndcg@10": valid}
    return out


def test_bold_best_underline_second_among_three_seed_rows_and_improvement():
    """Bold and underline rank the rows of at least 3 seeds (a one-seed row's 0.50 is no winner);
    Improv.% compares every column with one row: the best on validation (A), not the best on test."""
    records = (three_seeds("A", 0.15, 0.25, valid=0.30) + three_seeds("B", 0.30, 0.25, valid=0.35)
               + three_seeds("C", 0.20, 0.40, valid=0.20) + [dict(rec("D", 1, 0.50, 0.50), valid={"ndcg@10": 0.1})])
    s = summarize(records, METRICS)
    md = render(s, METRICS, target="B")
    row = {x: next(line for line in md.splitlines() if line.startswith(f"| {x} ")) for x in "ABCD"}
    assert "**0.3000 ± 0.0000**" in row["B"]  # best NDCG@10
    assert "<u>0.2000 ± 0.0000</u>" in row["C"] and "**0.4000 ± 0.0000**" in row["C"]  # second NDCG@10, best HR@10
    assert "**" not in row["D"] and "<u>" not in row["D"]  # one seed
    assert "among the rows of at least 3 seeds" in md
    base, gain = improvement(s, "B", METRICS)
    assert base == "A"  # validation 0.30 beats C's 0.20, whatever C's test HR@10
    assert gain["ndcg@10"] == pytest.approx(100.0)  # 0.30 vs A's 0.15
    assert gain["hit@10"] == pytest.approx(0.0)  # 0.25 vs A's 0.25, not C's 0.40
    assert "Improv.% (B vs A, the converged other row with the best validation NDCG@10)" in md
    assert "+100.00%" in md and "+0.00%" in md
    tex = render(s, METRICS, target="B", style=LATEX)
    assert r"\textbf{0.3000 $\pm$ 0.0000}" in tex and r"\underline{" in tex
    one_seed = render(summarize(RECORDS, METRICS), METRICS)
    assert "**" not in one_seed and "<u>" not in one_seed and "Nothing is bold or underlined: no row has 3 seeds" in one_seed


def test_rerun_keeps_newest_record_per_seed(tmp_path):
    write_record(tmp_path, rec("A", 1, 0.10, 0.2, when="2026-01-01T00:00:00"))
    write_record(tmp_path, rec("A", 1, 0.50, 0.2, when="2026-01-02T00:00:00"))
    records = load_records(tmp_path, "d")
    assert len(records) == 2
    kept = latest_per_seed(records)
    assert [r["test"]["ndcg@10"] for r in kept] == [0.50]
    text = write_results_page(tmp_path / "d", "d", records, METRICS)
    assert "0.5000" in text
    for ext in ("md", "csv", "tex"):
        assert (tmp_path / "d" / f"comparison.{ext}").is_file()


def test_row_notes_say_what_each_row_trained_on():
    from recbole_llm.benchmark.notes import row_notes

    llm = rec("L", 1, 0.2, 0.3)
    llm["protocol"] = dict(llm["protocol"], epochs_max=4)
    llm["data_selection"] = {"strategy": "efficient", "selected": 600, "train_samples": 9000}
    notes = row_notes([rec("A", 1, 0.1, 0.2), llm])
    assert notes == ["A: <= 500 epochs (ran 3)", "L: <= 4 epochs (ran 3); tuned on efficient 600 of 9000 training samples"]


def test_records_of_one_label_under_other_epoch_caps_are_other_rows(tmp_path):
    """A converged re-run (cap 50) beside short runs (--epochs=3) of the same label: two rows,
    never one row averaging both."""
    import json

    from recbole_llm.benchmark.records import group_rows, load_records

    runs = tmp_path / "toy" / "runs"
    runs.mkdir(parents=True)
    for i, (seed, cap, ndcg) in enumerate([(1, 3, 0.04), (2, 3, 0.05), (1, 50, 0.08)]):
        rec = {"model": "IDLEAdapter", "label": "IDLEAdapter", "seed": seed, "dataset": "toy",
               "protocol": {"epochs_max": cap}, "test": {"ndcg@10": ndcg}, "finished_at": f"2026-11-0{i + 1}"}
        (runs / f"r{i}.json").write_text(json.dumps(rec))
    rows = group_rows(load_records(tmp_path, "toy"))
    assert {label: sorted(r["test"]["ndcg@10"] for r in recs) for label, recs in rows.items()} == {
        "IDLEAdapter": [0.08], "IDLEAdapter (--epochs=3)": [0.04, 0.05]}
    assert {r["stored_label"] for r in rows["IDLEAdapter (--epochs=3)"]} == {"IDLEAdapter"}


def test_labels_with_pipe_ampersand_percent_do_not_break_the_tables():
    """A label is any text: ``|`` would split a Markdown cell, ``&`` a LaTeX one, ``%`` comment out
    the rest of a LaTeX row; every row keeps the header's number of cells."""
    import re

    labels = ["A | B", "C & D 50%", "E_f #1 {x}"]
    records = [rec(label, seed, 0.1 + 0.1 * i, 0.2) for i, label in enumerate(labels) for seed in (1, 2, 3)]
    s = summarize(records, METRICS)
    md = render(s, METRICS, target="A | B").split("\n\n")[0].splitlines()
    cells = [len(re.split(r"(?<!\\)\|", line)) for line in md]
    assert len(set(cells)) == 1 and len(md) == 2 + len(labels) + 1  # header, rule, rows, Improv.%
    assert any(line.startswith(r"| A \| B ") for line in md) and r"(A \| B vs " in md[-1]
    tex = render(s, METRICS, target="A | B", style=LATEX).split("\\end{tabular}")[0]
    rows = [line for line in tex.splitlines() if line.rstrip().endswith("\\\\")]
    assert len(rows) == 1 + len(labels) + 1
    assert {len(re.findall(r"(?<!\\)&", row)) for row in rows} == {len(METRICS) + 1}
    assert r"C \& D 50\%" in tex and r"E\_f \#1 \{x\}" in tex and not re.search(r"(?<!\\)%", tex)


def test_default_label_names_what_differs_from_the_models_defaults():
    from recbole_llm.benchmark.labels import default_label

    def config(model, **keys):
        return {"model": model, "dataset": "amazon-scientific", "budget": "full", **keys}

    assert default_label(config("IDLEAdapter")) == "IDLEAdapter"
    assert default_label(config("IDLEAdapter", lm_name="sentence-transformers/all-MiniLM-L6-v2",
                                prefix_len=2, eval_batch_size=512)) == "IDLEAdapter"  # defaults; a batch size names no row
    assert (default_label(config("IDLEAdapter", lm_name="HuggingFaceTB/SmolLM2-135M-Instruct"))
            == "IDLEAdapter (lm=SmolLM2-135M-Instruct)")
    assert (default_label(config("RARec", id_model="SASRec", data_strategy="efficient", data_size=3000))
            == "RARec (SASRec base, efficient 3k)")
    assert (default_label(config("RARec", ablation="no_id", data_strategy="efficient", data_size=3000))
            == "RARec w/o IDRepresentation (efficient 3k)")
    assert default_label(config("IDLEAdapter", distribution=False)) == "IDLEAdapter w/o Distribution"
    assert default_label(config("IDLEAdapter", prompt_max_tokens=128)) == "IDLEAdapter (prompt_max_tokens=128)"
    assert default_label(config("RARec", state_cache=False)) == "RARec (state_cache=False)"  # changes the bits
    assert default_label(config("RARec", data_strategy="all", data_size=3000)) == "RARec"  # all ignores the size
    # the quick budget's own sample is its default, not a variant
    assert default_label(config("IDLEAdapter", budget="quick", data_strategy="random", data_size=8000)) == "IDLEAdapter"
    assert default_label(config("SASRec", hidden_size=128, learning_rate=0.001)) == "SASRec (hidden_size=128)"
    assert default_label(config("SASRec", learning_rate=0.003)) == "SASRec (learning_rate=0.003)"
    # an ID base trained at another point is part of the row: by what differs from the ID model's defaults,
    # or by the row its run is stored under; two LLM rows on two bases never share a label
    tuned = {"learning_rate": 0.003, "train_batch_size": 2048, "embedding_size": 64}  # the last two: defaults
    assert (default_label(config("IDLEAdapter", id_model_config=tuned))
            == "IDLEAdapter (ComiRec base with learning_rate=0.003)")
    assert (default_label(config("RARec", id_model="SASRec", id_model_config={"hidden_dropout_prob": 0.2},
                                 data_strategy="efficient", data_size=3000))
            == "RARec (SASRec base with hidden_dropout_prob=0.2, efficient 3k)")
    assert (default_label(config("IDLEAdapter", id_model_config=tuned), base_label="ComiRec-tuned")
            == "IDLEAdapter (ComiRec-tuned base)")
    assert default_label(config("IDLEAdapter", id_model_config={"embedding_size": 64})) == "IDLEAdapter"


def test_default_label_of_a_built_config(toy_data_path):
    from recbole_llm.benchmark.labels import default_label
    from recbole_llm.config import Config

    config = Config("RARec", "toy", [], {"data_path": str(toy_data_path), "id_model": "SASRec",
                                         "data_strategy": "random", "data_size": 0.5, "id_norm": "layernorm"})
    assert default_label(config) == "RARec (SASRec base, random 50%, id_norm=layernorm)"
