import pytest

from recbole_llm.benchmark.page import write_results_page
from recbole_llm.benchmark.records import latest_per_seed, load_records, write_record
from recbole_llm.benchmark.tables import improvement, render, summarize


def rec(model, seed, ndcg, hit, when="2026-01-01T00:00:00"):
    """A converged run: early stopping (3 of 50 epochs), best validation epoch before the last."""
    return {
        "model": model, "label": model, "dataset": "d", "seed": seed, "budget": "full",
        "test": {"ndcg@10": ndcg, "hit@10": hit}, "valid": {"ndcg@10": ndcg},
        "protocol": {"split": "LS", "valid_metric": "NDCG@10", "epochs_max": 50, "stopping_step": 5},
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


def test_bold_best_underline_second_and_improvement():
    s = summarize(RECORDS, METRICS)
    md = render(s, METRICS, target="B")
    row_b = next(line for line in md.splitlines() if line.startswith("| B "))
    row_a = next(line for line in md.splitlines() if line.startswith("| A "))
    assert "**0.3000**" in row_b  # best NDCG@10
    assert "<u>0.1500 ± 0.0707</u>" in row_a  # second NDCG@10
    gain = improvement(s, "B", METRICS)
    assert gain["ndcg@10"] == pytest.approx(100.0)  # 0.30 vs best other 0.15
    assert gain["hit@10"] == pytest.approx(-37.5)  # 0.25 vs 0.40
    assert "+100.00%" in md and "-37.50%" in md
    tex = render(s, METRICS, target="B", fmt="latex_raw")
    assert r"\textbf{0.3000}" in tex and r"\underline{" in tex


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
    assert notes == ["A: <= 50 epochs (ran 3)", "L: <= 4 epochs (ran 3); tuned on efficient 600 of 9000 training samples"]


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
