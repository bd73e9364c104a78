"""Results pages under concurrent writers and kills (issue 36, kinds 2 and 8).

Kind 2: two commands that end at once on one dataset and ``--output`` each store a record and
redraw the page; the page last drawn lists every record (``page_lock`` around reading the records
and writing the page), and records of one label and seed stored in the same second are all kept.
Kind 8: a process killed while a page's files are being swapped leaves the old page or, once the
next writer (or reader) comes, the whole new one; no temporary file outlives the next write.
"""

import multiprocessing
import os
import random
import signal
import time

import pytest

from recbole_llm import fsutil
from recbole_llm.benchmark.page import page_lock, write_results_page
from recbole_llm.benchmark.records import load_records, write_record

METRICS = ("ndcg@10", "hit@10")
FORK = multiprocessing.get_context("fork")


def rec(label, seed=1, ndcg=0.1):
    return {
        "model": "SASRec", "label": label, "dataset": "d", "seed": seed, "budget": "full",
        "test": {"ndcg@10": ndcg, "hit@10": 2 * ndcg}, "valid": {"ndcg@10": ndcg},
        "protocol": {"split": "LS", "valid_metric": "NDCG@10", "epochs_max": 500, "stopping_step": 5},
        "epochs_run": 3, "cost": {"wall_time_s": 1.0}, "commit": "abc", "finished_at": "2026-01-01T00:00:00",
        "dataset_stats": {"users": 1, "items": 2, "interactions": 3, "train_samples": 1},
    }


def run_and_redraw(output, who, runs, start):
    """One command: store a record, then redraw the page from every record, ``runs`` times.

    The two commands are timed so that, without the lock, P reads the records before Q stores its
    own and writes its page after Q's: P's page, the last one, would lack Q's row."""
    rng = random.Random(who)
    for k in range(runs):
        start.wait()
        time.sleep(0.1 if who == "Q" else 0)
        write_record(output, rec(f"{who}{k}", ndcg=rng.random()))
        with page_lock(output / "d"):
            records = load_records(output, "d")
            time.sleep(0.4 if who == "P" else 0)
            write_results_page(output / "d", "d", records, METRICS)


def run_processes(target, args_of, n=2):
    start = FORK.Barrier(n)
    procs = [FORK.Process(target=target, args=(*args_of(i), start)) for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
    assert [p.exitcode for p in procs] == [0] * n


def test_concurrent_commands_leave_a_page_with_every_record(tmp_path):
    runs = 5
    run_processes(run_and_redraw, lambda i: (tmp_path, "PQ"[i], runs))
    labels = [f"{who}{k}" for who in "PQ" for k in range(runs)]
    assert sorted(r["label"] for r in load_records(tmp_path, "d")) == sorted(labels)
    page = (tmp_path / "d" / "comparison.md").read_text()
    csv = (tmp_path / "d" / "comparison.csv").read_text()
    assert [label for label in labels if f"| {label} " not in page] == []
    assert [label for label in labels if label not in csv] == []
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "comparison.csv", "comparison.md", "comparison.tex", "cost.md", "metrics.png", "runs"]


def store_same_label(output, who, runs, start):
    start.wait()
    for _ in range(runs):
        write_record(output, rec("same", seed=1))


def test_records_of_one_label_and_seed_stored_at_once_are_all_kept(tmp_path):
    run_processes(store_same_label, lambda i: (tmp_path, i, 8))
    names = [p.name for p in (tmp_path / "d" / "runs").iterdir()]
    assert len(names) == 16 and all(n.startswith("same__seed1__") and n.endswith(".json") for n in names)


def test_the_folder_lock_excludes_another_process_and_is_reentrant(tmp_path):
    log = tmp_path / "log"

    def hold(tag, start):
        start.wait()
        with fsutil.folder_lock(tmp_path):
            with fsutil.folder_lock(tmp_path):  # re-entrant: no deadlock on itself
                with open(log, "a") as f:
                    f.write(f"{tag} in\n")
                time.sleep(0.2)
                with open(log, "a") as f:
                    f.write(f"{tag} out\n")

    run_processes(hold, lambda i: (i,), n=3)
    lines = log.read_text().split()
    pairs = [lines[i:i + 4] for i in range(0, len(lines), 4)]
    assert all(p[0] == p[2] and p[1] == "in" and p[3] == "out" for p in pairs)  # never interleaved
    assert not (tmp_path / fsutil.LOCK_NAME).exists()  # removed on release: nothing left in results/


def test_a_lock_on_a_new_folder_that_stays_empty_leaves_no_folder(tmp_path):
    from recbole_llm.errors import UserError

    with pytest.raises(UserError):
        with page_lock(tmp_path / "results" / "typo"):
            assert (tmp_path / "results" / "typo").is_dir()
            raise UserError("no run records for typo")  # what the runner says before writing anything
    assert list(tmp_path.iterdir()) == []
    with page_lock(tmp_path / "results" / "d"):
        with fsutil.folder_lock(tmp_path / "results" / ".." / "results" / "d"):  # another spelling: re-entrant
            write_results_page(tmp_path / "results" / "d", "d", [rec("A")], METRICS)
    assert sorted(p.name for p in (tmp_path / "results" / "d").iterdir())[0] == "comparison.csv"


# ------------------------------------------------------------------------------------- kills

OLD = {"a.md": "old a", "b.md": "old b", "c.md": "old c"}
NEW = {"a.md": "new a", "b.md": "new b", "c.md": "new c", "d.md": "new d"}


def snapshot(folder):
    """The folder's files and their text (the lock file, there while locked, left out)."""
    return {p.name: p.read_bytes().decode() for p in sorted(folder.iterdir()) if p.name != fsutil.LOCK_NAME}


def killed_writer(folder, patch, after):
    """Write NEW into ``folder``, SIGKILLed at call ``after`` of ``fsutil.<patch>``."""
    real, calls = getattr(fsutil.os if patch == "replace" else fsutil, patch), []

    def dying(*args):
        calls.append(args)
        if len(calls) == after:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args)

    if patch == "replace":
        fsutil.os.replace = dying
    else:
        setattr(fsutil, patch, dying)
    fsutil.write_file_set(folder, NEW)


def kill_during(folder, patch, after):
    proc = FORK.Process(target=killed_writer, args=(folder, patch, after))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL


@pytest.mark.parametrize("after", [1, 2, 3, 4])
def test_a_kill_inside_the_rename_loop_is_completed_by_the_next_writer(tmp_path, after):
    fsutil.write_file_set(tmp_path, OLD)
    kill_during(tmp_path, "replace", after)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert any(name.startswith(".recbole-llm-swap-") for name in left)  # the kill left its staging folder
    with page_lock(tmp_path):  # a reader under the lock sees one whole page: the new one
        assert snapshot(tmp_path) == NEW
    fsutil.write_file_set(tmp_path, {"a.md": "newer a"})
    assert snapshot(tmp_path) == {**NEW, "a.md": "newer a"}


@pytest.mark.parametrize("after", [1, 3, 5])
def test_a_kill_while_writing_leaves_the_old_page_and_no_leftover_after_the_next_write(tmp_path, after):
    fsutil.write_file_set(tmp_path, OLD)
    kill_during(tmp_path, "_write_file", after)  # 4 files, then the list of them (call 5)
    assert {p.name: p.read_text() for p in tmp_path.iterdir() if p.is_file() and p.name != fsutil.LOCK_NAME} == OLD
    fsutil.write_file_set(tmp_path, {"a.md": "newer a"})
    assert snapshot(tmp_path) == {**OLD, "a.md": "newer a"}  # the killed set was not completed


def test_leftovers_of_the_earlier_writer_are_cleaned_for_the_files_written(tmp_path):
    fsutil.write_file_set(tmp_path, OLD)
    leftovers = [".a.md.k2j4h5g6.tmp", ".a.md.0123456789ab.old", ".b.md.zzzzzzzz.tmp"]
    for name in leftovers + [".notes.md.abcdefgh.tmp"]:
        (tmp_path / name).write_text("junk")
    fsutil.write_file_set(tmp_path, {"a.md": "x", "b.md": "y"})
    assert snapshot(tmp_path) == {".notes.md.abcdefgh.tmp": "junk", "a.md": "x", "b.md": "y", "c.md": "old c"}


def test_a_killed_page_write_then_a_full_page(tmp_path):
    """End to end: a page write killed half-way through its renames, then the next run's page."""
    out = tmp_path / "d"
    write_results_page(out, "d", [rec("A"), rec("B")], METRICS)

    def killed_page():
        real, calls = os.replace, []

        def dying(src, dst):
            calls.append(dst)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst)

        fsutil.os.replace = dying
        write_results_page(out, "d", [rec("A"), rec("B"), rec("C")], METRICS)

    proc = FORK.Process(target=killed_page)
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    with page_lock(out):
        page = (out / "comparison.md").read_text()
        assert "| C " in page and "| C " in (out / "comparison.md").read_text()  # completed, not half
        assert "C" in (out / "comparison.csv").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["comparison.csv", "comparison.md", "comparison.tex", "cost.md",
                                                     "metrics.png"]
