"""A dataset's results page (comparison.md/csv/tex, cost.md, plots) is written as one unit."""

import errno

import pytest

from recbole_llm import fsutil
from recbole_llm.benchmark import page
from recbole_llm.benchmark.page import page_target, write_results_page
from recbole_llm.errors import UserError


def rec(model, seed, ndcg):
    return {
        "model": model, "label": model, "dataset": "d", "seed": seed, "budget": "full",
        "test": {"ndcg@10": ndcg, "hit@10": 2 * ndcg}, "valid": {"ndcg@10": ndcg},
        "protocol": {"split": "LS", "valid_metric": "NDCG@10", "epochs_max": 500, "stopping_step": 5},
        "epochs_run": 3, "cost": {"wall_time_s": 1.0}, "commit": "abc", "finished_at": "2026-01-01T00:00:00",
        "dataset_stats": {"users": 1, "items": 2, "interactions": 3, "train_samples": 1},
    }


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_full_disk_on_the_third_file_leaves_the_old_page_whole(tmp_path, monkeypatch):
    out = tmp_path / "d"
    write_results_page(out, "d", [rec("A", 1, 0.1), rec("B", 1, 0.2)], ("ndcg@10", "hit@10"))
    old = snapshot(out)
    assert set(old) == {"comparison.md", "comparison.csv", "comparison.tex", "cost.md", "metrics.png"}

    real, calls = fsutil._write_file, []

    def full_disk(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(fsutil, "_write_file", full_disk)
    with pytest.raises(UserError) as err:
        write_results_page(out, "d", [rec("A", 1, 0.3), rec("B", 1, 0.4)], ("ndcg@10", "hit@10"),
                     command="run_benchmark.py --dataset=d --tables-only")
    assert str(err.value) == (
        f"{out}: cannot write the results page (cost.md, metrics.png, comparison.md, comparison.csv, "
        "comparison.tex): No space left on device; the previous files are unchanged. Free disk space or fix the "
        "folder's permissions; then regenerate them: run_benchmark.py --dataset=d --tables-only")
    assert len(calls) == 3
    assert snapshot(out) == old  # every old file byte for byte, and no temporary file left behind

    monkeypatch.setattr(fsutil, "_write_file", real)
    text = write_results_page(out, "d", [rec("A", 1, 0.3), rec("B", 1, 0.4)], ("ndcg@10", "hit@10"))
    assert "0.4000" in text and (out / "comparison.md").read_text() == text  # the new values


def test_a_rename_failing_part_way_puts_the_replaced_files_back(tmp_path, monkeypatch):
    fsutil.write_file_set(tmp_path, {"a.md": "old a", "b.md": "old b", "c.md": "old c"})
    real, calls = fsutil.os.replace, []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(errno.EIO, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", failing_replace)
    with pytest.raises(OSError, match="Input/output error"):
        fsutil.write_file_set(tmp_path, {"a.md": "new a", "b.md": "new b", "c.md": "new c", "d.md": "new d"})
    monkeypatch.setattr(fsutil.os, "replace", real)
    assert snapshot(tmp_path) == {"a.md": b"old a", "b.md": b"old b", "c.md": b"old c"}


def test_page_target_is_read_back_from_the_regenerate_line(tmp_path):
    out = tmp_path / "d"
    assert page_target(out) is None  # no page yet
    records = [rec("A", 1, 0.1), rec("A (SASRec base)", 1, 0.2)]
    write_results_page(out, "d", records, ("ndcg@10", "hit@10"), target="A (SASRec base)",
                       command="python run_benchmark.py --dataset=d --tables-only --target='A (SASRec base)'")
    assert page_target(out) == "A (SASRec base)"
    write_results_page(out, "d", records, ("ndcg@10", "hit@10"), command="python run_benchmark.py --dataset=d --tables-only")
    assert page_target(out) is None
    (out / "comparison.md").write_text("Regenerate: `python run_benchmark.py --target='unclosed`\n")
    assert page_target(out) is None


def llm(label, seed, ndcg, epochs_max=50, **config):
    out = rec("IDLEAdapter", seed, ndcg)
    out.update(label=label, best_epoch=1, stop_reason="early_stopping",
               parameters={"lm": 100, "id_model_name": "A", "total": 110, "trainable": 10},
               config={"model": "IDLEAdapter", "dataset": "d", "budget": "full", "id_model": "A",
                       "lm_name": "sentence-transformers/all-MiniLM-L6-v2", **config})
    out["protocol"] = dict(out["protocol"], epochs_max=epochs_max)
    return out


def test_variants_and_short_runs_have_pages_of_their_own(tmp_path):
    """The headline holds the baselines and the LLM rows at their defaults (with their LM and ID
    base); a row that differs by an ablation goes to comparison-variants.md, linked to the variant
    page that shows it; a run under a lower epoch cap goes to comparison-history.md; the CSV holds
    every row with its page."""
    import pandas as pd

    out = tmp_path / "d"
    out.mkdir()
    (out / "t4.md").write_text("# d: T4\n\nRegenerate: `python -m recbole_llm.benchmark.variants --dataset=d "
                               "--name=t4 --title=T4 --reference=L '--row=L w/o Distribution'`\n")
    base = [dict(rec("A", seed, 0.1), best_epoch=1, stop_reason="early_stopping") for seed in (1, 2, 3)]
    # an ID model under the LLM rows' 50-epoch cap: short of the ID models' own (properties/budget/id_models/)
    old = dict(rec("A", 1, 0.09), label="A (--epochs=50)", best_epoch=1, stop_reason="early_stopping",
               protocol=dict(base[0]["protocol"], epochs_max=50))
    records = base + [llm("L", s, 0.2) for s in (1, 2, 3)] + [llm("L w/o Distribution", 1, 0.15, distribution=False),
                                                             llm("L (--epochs=3)", 1, 0.05, epochs_max=3), old]
    assert page.row_sections(records, out) == {"A": "headline", "L": "headline", "L w/o Distribution": "variants",
                                               "L (--epochs=3)": "history", "A (--epochs=50)": "history"}
    text = write_results_page(out, "d", records, ("ndcg@10", "hit@10"), target="L")
    first = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    assert first[:3] == ["Model", "A", "L"] and first[-1].startswith("Improv.% (L vs A")
    row = next(line for line in text.splitlines() if line.startswith("| L "))
    assert [c.strip() for c in row.split("|")[2:5]] == ["all-MiniLM-L6-v2", "A", "3"]  # LM, ID base, seeds
    variants = (out / "comparison-variants.md").read_text()
    assert "| L w/o Distribution |" in variants and "[t4](t4.md)" in variants and "| L (--epochs=3)" not in variants
    history = (out / "comparison-history.md").read_text()
    assert "| L (--epochs=3) †" in history and "| A (--epochs=50) †" in history and "w/o Distribution" not in history
    assert "A (--epochs=50): --epochs=50 below the full budget's 500" in history
    assert "[comparison-variants.md](comparison-variants.md) (1 row:" in text
    csv = pd.read_csv(out / "comparison.csv", index_col="model")
    assert csv["page"].to_dict() == {"A": "headline", "L": "headline", "L w/o Distribution": "variants",
                                     "L (--epochs=3)": "history", "A (--epochs=50)": "history"}
    assert csv.loc["L", "lm"] == "all-MiniLM-L6-v2" and csv.loc["L", "id_base"] == "A"
    # a page of short runs only (a smoke benchmark) keeps them in its table
    short = [dict(r, protocol=dict(r["protocol"], epochs_max=2)) for r in records[:4]]
    assert set(page.row_sections(short).values()) == {"headline"}
