"""Tables that cannot mislead: unconverged rows are marked with their causes, and the Improv.% row
and the best baseline of the paired tests use converged rows only."""

import numpy as np
import pandas as pd
import pytest

from recbole_llm.benchmark import convergence, stats
from recbole_llm.benchmark.page import write_results_page
from recbole_llm.benchmark.tables import summarize

USERS = [str(i) for i in range(60)]
RANKS = np.random.default_rng(3).integers(1, 20, 60).tolist()


def run_record(label, seed, ndcg, hit, valid, *, epochs_max=50, llm=False, **extra):
    """A run record; ``valid``: validation NDCG@10 per epoch (the history), epochs_run = len(valid)."""
    rec = {
        "model": label, "label": label, "dataset": "d", "seed": seed, "budget": "full",
        "test": {"ndcg@10": ndcg, "hit@10": hit}, "valid": {"ndcg@10": max(valid)},
        "protocol": {"split": "LS", "valid_metric": "NDCG@10", "epochs_max": epochs_max, "stopping_step": 5},
        "epochs_run": len(valid), "history": [{"epoch": i, "valid": {"ndcg@10": v}} for i, v in enumerate(valid)],
        "cost": {"wall_time_s": 1.0, "train_time_per_epoch_s": 1.0}, "commit": "abc",
        "finished_at": f"2026-01-0{seed}", "parameters": {"total": 10, "trainable": 10},
        "dataset_stats": {"users": 60, "items": 20, "interactions": 600, "train_samples": 400},
        "per_user": {"split": "test", "users": USERS, "rank": RANKS, "targets": [1] * 60,
                     "history_length": [5] * 60, "max_k": 100},
    }
    if llm:
        rec["parameters"].update({"lm": 1000, "id_model_name": "A"})
        rec["config"] = {"lr_schedule": "linear"}
    rec.update(extra)
    return rec


@pytest.fixture(autouse=True)
def one_cap_for_every_model(monkeypatch):
    """These records were made under one 50-epoch cap for every model (the full budget before its ID
    models' part, properties/budget/id_models/; tests/test_page_write.py tests that part)."""
    real = convergence.budget_epochs
    monkeypatch.setattr(convergence, "budget_epochs", lambda budget, llm=True: real(budget, llm=True))


# early stopping after the best epoch (1) was not beaten for 6 epochs: converged
STOPPED = [0.1, 0.3, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
RISING = [0.01 * i for i in range(50)]  # ran to the cap, best = last
CAPPED = RISING[:45] + [0.40] * 5  # ran to the cap, best epoch 44 is 5 epochs before the last: no early stop


def records():
    return [
        run_record("A", 1, 0.20, 0.30, STOPPED),  # converged baseline, 2 seeds
        run_record("A", 2, 0.22, 0.34, STOPPED),
        run_record("B", 1, 0.30, 0.50, RISING),  # better baseline, but cut at the epoch cap while still rising
        run_record("C", 1, 0.10, 0.60, CAPPED),  # best HR@10, cut at the epoch cap
        run_record("L", 1, 0.25, 0.40, [0.1, 0.3, 0.25, 0.2, 0.2, 0.2, 0.2], llm=True,
                   stop_reason="early_stopping", prompt_stats={"mean_titles": 1.25, "median_titles": 1.0,
                                                               "max_tokens": 64}),
        # an old-style LLM record (no stop_reason): --epochs=3, linear schedule, validation still rising;
        # seed 1 records lr_end, seed 2 predates it (derived from the schedule)
        run_record("M", 1, 0.40, 0.45, [0.1, 0.2, 0.3], epochs_max=3, llm=True, best_epoch=2),
        run_record("M", 2, 0.42, 0.47, [0.1, 0.2, 0.3], epochs_max=3, llm=True),
    ]


def _with_lr_end(recs):
    recs[5]["history"][-1]["lr_end"] = 0.0
    return recs


def test_stop_reason_is_derived_for_records_that_lack_it():
    assert convergence.stop_reason(run_record("x", 1, 0, 0, STOPPED)) == "early_stopping"  # 8 < 50 epochs
    assert convergence.stop_reason(run_record("x", 1, 0, 0, RISING)) == "epoch_cap"
    assert convergence.stop_reason(run_record("x", 1, 0, 0, CAPPED)) == "epoch_cap"
    # ran 50 of 50 epochs, but its best epoch (43) is 6 before the last: RecBole's early stopping fired at the cap
    late = RISING[:44] + [0.40] * 6
    assert convergence.stop_reason(run_record("x", 1, 0, 0, late)) == "early_stopping"
    assert convergence.run_causes(run_record("x", 1, 0, 0, late)) == []
    # a record's own stop_reason wins
    assert convergence.stop_reason(run_record("x", 1, 0, 0, late, stop_reason="epoch_cap")) == "epoch_cap"
    # no history and no best epoch: not shown converged
    bare = run_record("x", 1, 0, 0, STOPPED)
    del bare["history"]
    assert convergence.run_causes(bare) == ["best epoch unknown (no per-epoch history)"]


def test_each_cause_of_a_run():
    assert convergence.run_causes(run_record("x", 1, 0, 0, STOPPED)) == []
    assert convergence.run_causes(run_record("x", 1, 0, 0, RISING)) == ["epoch cap reached", "best epoch = last epoch"]
    assert convergence.run_causes(run_record("x", 1, 0, 0, CAPPED)) == ["epoch cap reached"]
    old = run_record("M", 1, 0, 0, [0.1, 0.2, 0.3], epochs_max=3, llm=True)
    assert convergence.run_causes(old) == [
        "epoch cap reached", "--epochs=3 below the full budget's 50",
        "learning rate annealed to 0 while validation still rose", "best epoch = last epoch"]
    # validation fell at the last epoch: the learning rate reached 0, but not while it still rose
    fell = run_record("R", 1, 0, 0, [0.0473, 0.0462], epochs_max=2, llm=True)
    assert convergence.run_causes(fell) == ["epoch cap reached", "--epochs=2 below the full budget's 50"]
    # a constant learning rate never anneals; a recorded lr_end above 0 neither
    constant = run_record("M", 1, 0, 0, [0.1, 0.2, 0.3], epochs_max=3, llm=True, config={"lr_schedule": "constant"})
    assert "learning rate annealed to 0 while validation still rose" not in convergence.run_causes(constant)
    kept = run_record("M", 1, 0, 0, [0.1, 0.2, 0.3], epochs_max=3, llm=True)
    kept["history"][-1]["lr_end"] = 1e-4
    assert "learning rate annealed to 0 while validation still rose" not in convergence.run_causes(kept)
    # the quick budget's own 2 epochs are not "lowered"
    quick = run_record("Q", 1, 0, 0, [0.2, 0.1], epochs_max=2, budget="quick")
    assert convergence.run_causes(quick) == ["epoch cap reached"]


def test_tables_mark_unconverged_rows_and_compare_converged_rows_only(tmp_path):
    recs = _with_lr_end(records())
    assert stats.best_baseline(recs) == "A"  # not B (higher NDCG@10, unconverged)
    text = write_results_page(tmp_path, "d", recs, metrics=("ndcg@10", "hit@10"), target="L")
    lines = text.splitlines()
    first_cell = {line.split("|")[1].strip() for line in lines if line.startswith("| ")}
    assert {"A", "B †", "C †", "L"} <= first_cell and "M †" not in first_cell
    # M ran under --epochs=3 below the full budget's 50: a short run, on the history page
    history = (tmp_path / "comparison-history.md").read_text().splitlines()
    assert "M †" in {line.split("|")[1].strip() for line in history if line.startswith("| ")}
    assert "Not in this table: [comparison-history.md](comparison-history.md) (1 row:" in text
    assert "Δ, p (NDCG@10 vs A)" in text  # the paired tests' best baseline is the converged A
    gain = next(line for line in lines if line.startswith("| Improv."))
    cells = [c.strip() for c in gain.split("|")[1:-1]]
    # L (0.25, 0.40) against the converged baseline A (0.21, 0.32): not against B's NDCG@10 or C's HR@10
    assert cells[:4] == ["Improv.% (L vs A, the converged baseline with the best validation NDCG@10)", "",
                         "+19.05%", "+25.00%"]
    assert convergence.footnote({}) == ""
    note = next(line for line in lines if line.startswith("† not converged"))
    assert note.endswith("): B: epoch cap reached, best epoch = last epoch; C: epoch cap reached.")
    note = next(line for line in history if line.startswith("† not converged"))
    assert note.endswith(
        "): M: epoch cap reached (2 of 2 seeds), --epochs=3 below the full budget's 50 (2 of 2 seeds), "
        "learning rate annealed to 0 while validation still rose (2 of 2 seeds), "
        "best epoch = last epoch (2 of 2 seeds).")
    assert "Titles per hard prompt" in text and "L: 1.25 (median 1; 64 tokens)." in text
    assert "M: n/a." in "\n".join(history)
    csv = pd.read_csv(tmp_path / "comparison.csv", index_col="model")
    assert csv["converged"].to_dict() == {"A": True, "B": False, "C": False, "L": True, "M": False}
    assert csv.loc["C", "not_converged_because"] == "epoch cap reached"
    assert csv.loc["L", "titles_per_prompt_mean"] == 1.25
    tex = (tmp_path / "comparison.tex").read_text()
    assert r"B$^\dagger$" in tex and r"+19.05\%" in tex and r"$^\dagger$ not converged" in tex
    cost = (tmp_path / "cost.md").read_text()
    assert "| M †" in cost and "| L " in cost and "M: epoch cap reached (2 of 2 seeds)" in cost


def test_an_unconverged_target_gets_no_improvement_and_no_converged_baseline_no_best_baseline(tmp_path):
    recs = _with_lr_end(records())
    text = write_results_page(tmp_path, "d", recs, metrics=("ndcg@10", "hit@10"), target="M")
    assert "| Improv." not in text  # M, a short run, is on the history page, and its Improv.% row with it
    history = (tmp_path / "comparison-history.md").read_text()
    gain = next(line for line in history.splitlines() if line.startswith("| Improv."))
    cells = [c.strip() for c in gain.split("|")[1:-1]]
    assert cells[:4] == ["Improv.% (M vs best converged baseline; n/a: M not converged)", "", "n/a", "n/a"]
    without_a = [r for r in recs if r["label"] != "A"]
    for r in without_a:
        if "lm" in r["parameters"]:
            r["parameters"]["id_model_name"] = "B"  # the own-ID-base test needs no converged baseline
    assert stats.best_baseline(without_a) is None
    pvalues, _, note = stats.significance_columns(without_a)
    assert [header for header, _ in pvalues] == ["Δ, p (NDCG@10 vs own ID base)"]
    assert note.startswith("Δ, p: no baseline row is converged")


def test_variant_tables_mark_rows_and_show_titles_per_prompt(tmp_path):
    import json

    from recbole_llm.benchmark import variants

    runs = tmp_path / "d" / "runs"
    runs.mkdir(parents=True)
    recs = records()
    for rec in recs[5:7]:  # M at L's cap (a variant table compares one cap): ran all 50 epochs, still rising
        rec["protocol"]["epochs_max"], rec["history"] = 50, [{"epoch": i, "valid": {"ndcg@10": v}} for i, v in enumerate(RISING)]
        rec["epochs_run"], rec["best_epoch"] = 50, 49
    for i, rec in enumerate(_with_lr_end(recs)):
        (runs / f"r{i}.json").write_text(json.dumps(rec))
    text = variants.write_variants(tmp_path, "d", variants.VariantPage("t", "T", "L", ("M",), "cmd"))
    row_l = next(line for line in text.splitlines() if line.startswith("| L (reference)"))
    row_m = next(line for line in text.splitlines() if line.startswith("| M † "))
    assert row_l.rstrip(" |").endswith("1.25 (median 1; 64 tokens)") and row_m.rstrip(" |").endswith("n/a")
    assert "M: epoch cap reached (2 of 2 seeds)" in text
    csv = pd.read_csv(tmp_path / "d" / "t.csv", index_col="row")
    assert csv["converged"].to_dict() == {"L": True, "M": False}


def test_summary_keeps_converged_and_causes_per_row():
    s = summarize(_with_lr_end(records()), ("ndcg@10",))
    assert s.loc["A", "converged"] and s.loc["A", "not_converged_because"] == ""
    assert s.loc["B", "not_converged_because"] == "epoch cap reached; best epoch = last epoch"
    assert s.loc["A", "ndcg@10_mean"] == pytest.approx(0.21)


def test_a_tie_with_the_best_validation_is_the_best_epoch_as_recbole_tests_it():
    # 0.3 at epochs 1 and 3: RecBole's early stopping takes the tie as a new best and tests epoch 3's
    # model; older records stored the first such epoch (best_epoch=1); the history decides
    rec = run_record("T", 1, 0.2, 0.3, [0.1, 0.3, 0.2, 0.3, 0.2], best_epoch=1, stop_reason="early_stopping")
    assert convergence.best_epoch(rec) == 3
    tie_last = run_record("T", 1, 0.2, 0.3, [0.1, 0.3, 0.2, 0.3], best_epoch=1, stop_reason="early_stopping")
    assert convergence.BEST_IS_LAST in convergence.run_causes(tie_last)
    lower = run_record("T", 1, 0.2, 0.3, [0.5, 0.3, 0.3, 0.4], config={"valid_metric_bigger": False})
    assert convergence.best_epoch(lower) == 2
    assert convergence.best_epoch({**rec, "history": []}) == 1  # no history: the stored value
