"""A dataset's results page (comparison.md/csv/tex, cost.md, plots) is written as one unit."""

import errno

import pytest

from recbole_llm import fsutil
from recbole_llm.benchmark.page import page_target, write_results_page
from recbole_llm.errors import UserError


def rec(model, seed, ndcg):
    return {
        "model": model, "label": model, "dataset": "d", "seed": seed, "budget": "full",
        "test": {"ndcg@10": ndcg, "hit@10": 2 * ndcg}, "valid": {"ndcg@10": ndcg},
        "protocol": {"split": "LS", "valid_metric": "NDCG@10", "epochs_max": 50, "stopping_step": 5},
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
    assert "**0.4000**" in text and (out / "comparison.md").read_text() == text


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
