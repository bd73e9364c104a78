"""Generated READMEs (recbole_llm.benchmark.summary): the blocks are written from the records by the
code that computes the tests, the hand-written text around them is kept byte for byte, and a
stale README is found."""

import json

import numpy as np
import pytest

from recbole_llm.benchmark import page, per_user, stats, summary
from recbole_llm.errors import UserError

USERS = [str(i) for i in range(300)]
RNG = np.random.default_rng(5)
WEAK = RNG.integers(5, 40, 300)
GOOD = RNG.integers(1, 6, 300)


def record(model, label, seed, ranks, epochs_max=None, config=None, finished="2026-01-0"):
    if epochs_max is None:  # the full budget's caps: the LLM rows', and the ID models'
        epochs_max = 50 if model in ("IDLEAdapter", "RARec") else 500
    values = {m: float(per_user.metric_values(ranks, m).mean()) for m in ("hit@10", "ndcg@10")}
    rec = {
        "model": model, "label": label, "dataset": "toy", "seed": seed, "budget": "full", "test": values,
        "valid": {"ndcg@10": 0.2}, "epochs_run": 3, "commit": "abcdef0123456789",
        "protocol": {"split": "{'split': {'LS': 'valid_and_test'}, 'order': 'TO'}", "valid_metric": "NDCG@10",
                     "epochs_max": epochs_max, "stopping_step": 5},
        "history": [{"epoch": i, "valid": {"ndcg@10": v}} for i, v in enumerate((0.1, 0.2, 0.15))],
        "stop_reason": "early_stopping",
        "dataset_stats": {"users": 300, "items": 50, "interactions": 3000, "train_samples": 2000},
        "cost": {"wall_time_s": 1.0}, "parameters": {"total": 10, "trainable": 10},
        "hardware": {"cpu": "Test CPU", "cpu_count": 2}, "packages": {"torch": "2.13.0", "recbole": "1.2.1"},
        "per_user": {"split": "test", "users": USERS, "rank": [int(x) for x in ranks], "targets": [1] * 300,
                     "history_length": [5] * 300, "max_k": 100},
        "finished_at": f"{finished}{seed}",
    }
    if model in ("IDLEAdapter", "RARec"):
        rec["parameters"].update({"lm": 100, "id_model_name": "ComiRec"})
        rec["config"] = {"model": model, "dataset": "toy", "budget": "full", "id_model": "ComiRec",
                         "lm_name": "sentence-transformers/all-MiniLM-L6-v2", **(config or {})}
    return rec


def write_runs(root, name, records):
    runs = root / name / "runs"
    runs.mkdir(parents=True)
    for i, rec in enumerate(records):
        (runs / f"r{i}.json").write_text(json.dumps(rec))


RECORDS = ([record("ComiRec", "ComiRec", s, WEAK) for s in (1, 2, 3)]
           + [record("IDLEAdapter", "IDLEAdapter", s, GOOD) for s in (1, 2, 3)]
           + [record("IDLEAdapter", "IDLEAdapter w/o Distribution", 1, GOOD + 1, config={"distribution": False})]
           + [record("IDLEAdapter", "IDLEAdapter (--epochs=3)", 1, WEAK, epochs_max=3)])

HAND = "# toy: what no record holds\n\nThe data came from a test; this paragraph is kept as written.\n\n"


def test_a_readme_is_written_from_the_records_and_its_hand_text_is_kept(tmp_path):
    write_runs(tmp_path, "toy", RECORDS)
    readme = tmp_path / "toy" / "README.md"
    readme.write_text(HAND + "<!-- generated: setting -->\nold\n<!-- end generated -->\n\nMiddle, by hand.\n\n"
                      "<!-- generated: headline -->\n<!-- end generated -->\n<!-- generated: claims -->\n"
                      "<!-- end generated -->\n")
    assert summary.main([f"--output={tmp_path}", "--dataset=toy"]) == 0
    text = readme.read_text()
    assert text.startswith(HAND) and "\nMiddle, by hand.\n" in text and "\nold\n" not in text
    assert summary.outside_blocks(text) == summary.outside_blocks(
        HAND + "<!-- generated: setting -->\n<!-- end generated -->\n\nMiddle, by hand.\n\n"
        "<!-- generated: headline -->\n<!-- end generated -->\n<!-- generated: claims -->\n<!-- end generated -->\n")
    blocks = dict(summary.blocks(text))
    assert "| Dataset | `toy`: 300 users, 50 items, 3,000 interactions |" in blocks["setting"]
    assert "2 headline rows, 1 variant row, 1 short-run row" in blocks["setting"]
    assert f"Regenerate: `python -m recbole_llm.benchmark.summary --output={tmp_path} --dataset=toy`" in blocks["setting"]
    # the headline holds the default rows only, with the LLM row's LM and ID base
    headline = blocks["headline"]
    row = next(line for line in headline.splitlines() if line.startswith("| IDLEAdapter "))
    assert "| all-MiniLM-L6-v2 |" in row and "| ComiRec " in row and "w/o Distribution" not in headline
    # the claims are stats.claims' sentences of the headline records, word for word
    headline_records = [r for r in RECORDS if r["label"] in ("ComiRec", "IDLEAdapter")]
    expected = stats.claims(headline_records)
    assert expected and blocks["claims"].strip() == "\n".join(f"- {c}" for c in expected)
    assert "IDLEAdapter vs the best baseline and its own ID base ComiRec: +" in blocks["claims"]
    # a second run changes nothing; --check agrees
    assert summary.write_summaries(tmp_path, "toy") == []
    assert summary.main([f"--output={tmp_path}", "--dataset=toy", "--check"]) == 0


def test_a_new_record_makes_the_readme_stale_until_it_is_regenerated(tmp_path, capsys):
    write_runs(tmp_path, "toy", RECORDS)
    assert summary.main([f"--output={tmp_path}", "--dataset=toy"]) == 0  # from the template
    text = (tmp_path / "toy" / "README.md").read_text()
    assert text.startswith("# toy\n") and [s for s, _ in summary.blocks(text)] == ["setting", "headline", "claims",
                                                                                   "pages"]
    (tmp_path / "toy" / "runs" / "new.json").write_text(json.dumps(record("ComiRec", "ComiRec", 4, GOOD)))
    assert summary.main([f"--output={tmp_path}", "--dataset=toy", "--check"]) == 1
    assert "stale: " in capsys.readouterr().out
    assert summary.main([f"--output={tmp_path}", "--dataset=toy"]) == 0
    assert "| ComiRec " in (tmp_path / "toy" / "README.md").read_text()
    assert summary.write_summaries(tmp_path, "toy", check=True) == []


def test_the_index_and_a_top_readme_name_their_folder(tmp_path):
    write_runs(tmp_path / "results", "toy", RECORDS)
    (tmp_path / "results" / "README.md").write_text("# Results\n\n<!-- generated: index -->\n<!-- end generated -->\n")
    top = tmp_path / "README.md"
    top.write_text("# top\n\n<!-- generated: headline toy -->\n<!-- end generated -->\n")
    changed = summary.write_summaries(tmp_path / "results", top=top)
    assert set(changed) == {tmp_path / "results" / "toy" / "README.md", tmp_path / "results" / "README.md", top}
    index = (tmp_path / "results" / "README.md").read_text()
    assert "| [toy](toy/README.md) | full | 8 | 2 | 1 | 1 | ComiRec |" in index
    assert "[results/toy/comparison.md](results/toy/comparison.md)" in top.read_text()
    top.write_text("# top\n\n<!-- generated: headline elsewhere -->\n<!-- end generated -->\n")
    with pytest.raises(UserError, match="names no results folder with run records"):
        summary.write_summaries(tmp_path / "results", top=top)
    with pytest.raises(UserError, match="no run records in"):
        summary.write_summaries(tmp_path / "results", dataset="nothing")


def test_a_variant_page_s_claims_are_its_tests(tmp_path):
    from recbole_llm.benchmark import variants

    write_runs(tmp_path, "toy", RECORDS)
    command = "python -m recbole_llm.benchmark.variants --dataset=toy --name=t4 --title=T4 --reference=IDLEAdapter " \
              "'--row=IDLEAdapter w/o Distribution' --seeds=1"
    t4 = variants.VariantPage("t4", "T4", "IDLEAdapter", ("IDLEAdapter w/o Distribution",), command, seeds=(1,))
    variants.write_variants(tmp_path, "toy", t4)
    assert page.variant_pages(tmp_path / "toy")["t4"]["rows"] == ["IDLEAdapter w/o Distribution"]
    summary.write_summaries(tmp_path, "toy")
    pages = dict(summary.blocks((tmp_path / "toy" / "README.md").read_text()))["pages"]
    claim = next(line for line in (tmp_path / "toy" / "t4.md").read_text().splitlines() if line.startswith("Claims: "))
    assert "- [T4](t4.md): reference `IDLEAdapter`; 1 row" in pages
    assert f"  - {claim[len('Claims: '):]}" in pages.splitlines()


def test_the_top_readme_shows_the_rows_that_answer_the_question(tmp_path):
    """The top README's headline: the best baseline (on validation), each LLM row and its own ID base;
    the other baselines only on the comparison page, whose tests and adjustments the rows keep."""
    better = [record("SASRec", "SASRec", s, GOOD + 2) for s in (1, 2, 3)]
    for r in better:
        r["valid"] = {"ndcg@10": 0.3}  # the best baseline on validation
    weak = [record("BPR", "BPR", s, WEAK + 3) for s in (1, 2, 3)]
    write_runs(tmp_path, "toy", RECORDS[:6] + better + weak)
    folder = summary.Folder(tmp_path, "toy")
    full = summary.headline_block(folder)
    short = summary.headline_block(folder, answer_only=True)
    rows = lambda text: [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")][1:]
    assert rows(full) == ["ComiRec", "SASRec", "BPR", "IDLEAdapter"]
    assert rows(short) == ["ComiRec", "SASRec", "IDLEAdapter"]
    idle = lambda text: next(line for line in text.splitlines() if line.startswith("| IDLEAdapter"))
    assert idle(short) == idle(full)  # the same tests and adjustments as on the comparison page
    assert "the other 1 headline rows" in short
