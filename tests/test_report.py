"""Per-user ranks in run records, the paired significance test, the cost table and the plots."""

import copy
import math

import numpy as np
import pytest
from scipy import stats

from recbole_llm.benchmark import per_user, plots
from recbole_llm.benchmark.page import write_results_page
from recbole_llm.benchmark.records import group_rows
from recbole_llm.pipeline import run
from recbole_llm.spec import RunSpec


def test_metric_values_from_ranks():
    ranks = [1, 3, 0, 11, 10]
    assert per_user.metric_values(ranks, "hit@10").tolist() == [1, 1, 0, 0, 1]
    ndcg = per_user.metric_values(ranks, "ndcg@10")
    assert ndcg[0] == 1.0 and ndcg[1] == pytest.approx(1 / math.log2(4)) and ndcg[2] == 0 and ndcg[3] == 0
    assert per_user.metric_values(ranks, "mrr@5").tolist() == [1.0, pytest.approx(1 / 3), 0, 0, 0]
    with pytest.raises(ValueError, match="precision@5"):
        per_user.metric_values(ranks, "precision@5")


def test_per_user_ranks_reproduce_the_reported_test_metrics(toy_data_path, tiny_overrides, tmp_path):
    record = run(RunSpec("SASRec", "toy", 2020, (), dict(tiny_overrides, topk=[5, 10]), toy_data_path, tmp_path / "saved"))
    pu = record["per_user"]
    assert pu["split"] == "test" and pu["max_k"] == 10 and set(pu["targets"]) == {1}
    assert len(pu["users"]) == len(set(pu["users"])) == record["dataset_stats"]["users"]
    assert all(1 <= n for n in pu["history_length"])
    for metric in ("hit@5", "hit@10", "ndcg@10", "mrr@10"):
        mean = per_user.metric_values(pu["rank"], metric).mean()
        assert mean == pytest.approx(record["test"][metric], abs=6e-5)  # RecBole rounds to 4 places


def test_paired_test_is_scipys_on_the_common_users():
    rng = np.random.default_rng(0)
    a = {f"u{i}": float(v) for i, v in enumerate(rng.random(50))}
    b = {f"u{i}": float(v) for i, v in enumerate(rng.random(50) * 0.5)}
    b["only_in_b"] = 1.0
    result = per_user.paired_test(a, b)
    users = sorted(a)
    assert result["n_users"] == 50
    assert result["p_ttest"] == pytest.approx(stats.ttest_rel([a[u] for u in users], [b[u] for u in users]).pvalue)
    assert result["mean_diff"] > 0 and result["p_ttest"] < 1e-3
    same = per_user.paired_test(a, dict(a))
    assert same["p_ttest"] == 1.0 and same["mean_diff"] == 0.0


def _record(model, label, seed, ranks, users, lengths, valid=(0.1, 0.2, 0.15)):
    """A converged run by default: early stopping (3 epochs), best validation before the last."""
    values = {m: float(per_user.metric_values(ranks, m).mean()) for m in ("hit@10", "ndcg@10")}
    rec = {
        "model": model, "label": label, "dataset": "toy", "seed": seed, "test": values,
        "valid": {"ndcg@10": max(valid)}, "epochs_run": len(valid), "commit": "abc",
        "protocol": {"split": "LS", "valid_metric": "NDCG@10", "stopping_step": 2,
                     "epochs_max": 50 if model in ("IDLEAdapter", "RARec") else 500},  # the full budget's caps
        "history": [{"epoch": i, "valid": {"ndcg@10": v}, "train_samples": 100} for i, v in enumerate(valid)],
        "dataset_stats": {"users": len(users), "items": 50, "interactions": 500, "train_samples": 100},
        "cost": {"wall_time_s": 1.0, "train_time_per_epoch_s": 0.5, "train_samples_per_s": 200.0,
                 "valid_time_per_epoch_s": 0.1, "test_time_s": 0.1, "peak_rss_mb": 100.0},
        "parameters": {"total": 1000, "trainable": 1000},
        "per_user": {"split": "test", "users": users, "rank": list(ranks), "targets": [1] * len(users),
                     "history_length": lengths, "max_k": 100},
        "finished_at": f"2026-01-0{seed}",
    }
    if model in ("IDLEAdapter", "RARec"):  # LLM rows: their records count the frozen LM
        rec["parameters"].update({"lm": 5000, "id_model": 300, "id_model_name": "ComiRec", "total": 6000,
                                  "trainable": 900})
        rec["cost"].update({"train_samples_per_s_bare_lm": 250.0, "adapter_throughput_ratio": 0.8})
    return rec


def test_tables_show_p_values_and_the_report_writes_cost_and_plots(tmp_path):
    rng = np.random.default_rng(1)
    users = [str(i) for i in range(200)]
    lengths = rng.integers(1, 80, 200).tolist()
    good = rng.integers(1, 4, 200)  # the LLM row ranks the target near the top
    weak = rng.integers(5, 30, 200)
    records = []
    for seed in (1, 2, 3):
        records.append(_record("ComiRec", "ComiRec", seed, weak, users, lengths))
        # BPR: the best test numbers of the baselines, but the worse validation: not the best baseline
        records.append(_record("BPR", "BPR", seed, np.maximum(1, weak - 3), users, lengths, valid=(0.1, 0.15, 0.12)))
        records.append(_record("IDLEAdapter", "IDLEAdapter", seed, good, users, lengths))
    records.append(_record("RARec", "RARec", 1, good - 1 + (good == 1), users, lengths))  # better than IDLE
    text = write_results_page(tmp_path, "toy", records, metrics=("hit@10", "ndcg@10"), target="IDLEAdapter")
    assert "Δ, p (NDCG@10 vs ComiRec)" in text and "Δ, p (NDCG@10 vs own ID base)" in text
    gain = next(line for line in text.splitlines() if "Improv." in line)
    # against ComiRec (best validation), not BPR (best test) nor the better RARec row
    assert "IDLEAdapter vs ComiRec, the converged baseline with the best validation NDCG@10" in gain and "+" in gain
    llm_row = next(line for line in text.splitlines() if line.startswith("| IDLEAdapter"))
    diff = 100 * (per_user.metric_values(good, "ndcg@10").mean() / per_user.metric_values(weak, "ndcg@10").mean() - 1)
    assert llm_row.rstrip(" |").endswith(f"ComiRec: +{diff:.1f}%, p<1e-4 (Holm <1e-4)")
    assert f"| +{diff:.1f}%, p<1e-4 (Holm <1e-4) " in llm_row
    assert next(line for line in text.splitlines() if line.startswith("| BPR")).rstrip(" |").endswith("-")
    assert "Claims (comparisons over 2 or more seeds): IDLEAdapter vs the best baseline and its own ID base ComiRec: +" in text
    csv = (tmp_path / "comparison.csv").read_text()
    for column in ("p_ttest_vs_best_baseline", "p_wilcoxon_vs_best_baseline", "p_holm_vs_best_baseline",
                   "p_bh_vs_id_base", "p_seed_bootstrap_vs_best_baseline", "p_holm_hit@5_vs_id_base"):
        assert column in csv
    cost = (tmp_path / "cost.md").read_text()
    assert "| IDLEAdapter" in cost and "0.80" in cost and "6,300" in cost  # ratio; LM + adapter + ID model
    for name in ("metrics.png", "valid_curves.png", "long_history.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_cost_table_gives_the_median_epoch_beside_the_mean():
    """One epoch slowed tenfold (a paused process) moves the mean, not the median; a record without
    per-epoch times shows '-'."""
    from recbole_llm.benchmark.cost import cost_rows, cost_table

    users, lengths, ranks = ["1", "2", "3"], [1, 2, 3], [1, 2, 3]
    paused = _record("RARec", "RARec", 1, ranks, users, lengths)
    for epoch, t in zip(paused["history"], (600.0, 6000.0, 620.0)):
        epoch["train_time_s"] = t
    paused["cost"]["train_time_per_epoch_s"] = 2406.7
    other = _record("RARec", "RARec", 2, ranks, users, lengths)
    for epoch, t in zip(other["history"], (700.0, 700.0, 710.0)):
        epoch["train_time_s"] = t
    bare = _record("SASRec", "SASRec", 1, ranks, users, lengths)
    rows = {r["model"]: r for r in cost_rows([paused, other, bare])}
    assert rows["RARec"]["train_s_per_epoch_median"] == pytest.approx((620.0 + 700.0) / 2)
    assert np.isnan(rows["SASRec"]["train_s_per_epoch_median"])  # shown as '-'
    line = next(x for x in cost_table([paused, other, bare]).splitlines() if x.startswith("| RARec"))
    assert "660.0" in line


def test_no_per_user_ranks_no_p_column(tmp_path):
    rec = _record("SASRec", "SASRec", 1, [1, 2], ["a", "b"], [3, 4])
    old = copy.deepcopy(rec)
    del old["per_user"]
    text = write_results_page(tmp_path, "toy", [old], metrics=("hit@10",))
    assert "p (" not in text
    assert plots.history_edges([old]) is None


def test_rows_are_grouped_baselines_then_tuned_then_llm():
    users, lengths = ["1", "2", "3"], [1, 2, 3]
    ranks = [1, 2, 3]
    llm = _record("IDLEAdapter", "IDLEAdapter", 1, ranks, users, lengths)
    tuned = _record("SASRec", "SASRec-tuned", 2, ranks, users, lengths)
    tuned["tune"] = {"sweep": "SASRec-abc"}
    plain = _record("SASRec", "SASRec", 3, ranks, users, lengths)
    records = [llm, tuned, plain]  # finished in this order
    assert list(group_rows(records)) == ["SASRec", "SASRec-tuned", "IDLEAdapter"]
    from recbole_llm.benchmark.tables import summarize
    assert list(summarize(records, ("ndcg@10",)).index) == ["SASRec", "SASRec-tuned", "IDLEAdapter"]


def _write_runs(root, records):
    import json

    runs = root / "toy" / "runs"
    runs.mkdir(parents=True)
    for i, rec in enumerate(records):
        (runs / f"r{i}.json").write_text(json.dumps(rec, default=int))


def test_variant_table_tests_each_row_against_the_reference(tmp_path, capsys):
    from recbole_llm.benchmark import variants
    from recbole_llm.errors import UserError

    rng = np.random.default_rng(2)
    users = [str(i) for i in range(300)]
    lengths = rng.integers(1, 50, 300).tolist()
    full = rng.integers(1, 6, 300)
    same = full.copy()
    worse = full + rng.integers(3, 20, 300)
    records = [_record("RARec", "RARec", 1, full, users, lengths),
               _record("RARec", "RARec", 2, worse, users, lengths),  # a second seed of the reference
               _record("RARec", "RARec w/o X", 1, worse, users, lengths),
               _record("RARec", "RARec w/o Y", 1, same, users, lengths)]
    _write_runs(tmp_path, records)
    argv = [f"--output={tmp_path}", "--dataset=toy", "--name=t4", "--title=Table 4", "--reference=RARec",
            "--row=RARec w/o X", "--row=RARec w/o Y", "--seeds=1"]
    assert variants.main(argv) == 0
    md = (tmp_path / "toy" / "t4.md").read_text()
    assert "RARec (reference)" in md and "--seeds=1" in md and "Table 4" in md
    import pandas as pd

    csv = pd.read_csv(tmp_path / "toy" / "t4.csv", index_col="row")
    ref = float(per_user.metric_values(full, "ndcg@10").mean())  # seed 1 only: --seeds=1 drops seed 2
    assert csv.loc["RARec", "ndcg@10"] == pytest.approx(ref)
    x = per_user.metric_values(worse, "ndcg@10")
    assert csv.loc["RARec w/o X", "diff"] == pytest.approx(x.mean() - ref)
    assert csv.loc["RARec w/o X", "p_ttest"] == pytest.approx(
        stats.ttest_rel(x, per_user.metric_values(full, "ndcg@10")).pvalue)
    assert csv.loc["RARec w/o X", "p_ttest"] < 1e-4 and csv.loc["RARec w/o Y", "p_ttest"] == 1.0
    assert csv.loc["RARec w/o X", "paired_users"] == 300
    assert csv.loc["RARec w/o X", "p_holm"] == pytest.approx(min(1.0, 2 * csv.loc["RARec w/o X", "p_ttest"]))  # 2 tests
    row_x = next(line for line in md.splitlines() if line.startswith("| RARec w/o X"))
    assert f"({100 * (x.mean() / ref - 1):+.1f}%) | <1e-4 (Holm <1e-4) | n/a (1 seed) |" in row_x
    assert "Claims: RARec w/o X vs the reference RARec: -" in md and "one seed, so not tested across seeds" in md
    # without --seeds the reference's two seeds stand beside the rows' one: the test takes the seed both have
    assert variants.main(argv[:-1]) == 0
    csv = pd.read_csv(tmp_path / "toy" / "t4.csv", index_col="row")
    assert csv.loc["RARec", "ndcg@10"] != pytest.approx(ref)  # the row's mean: both seeds
    assert csv.loc["RARec w/o X", "diff"] == pytest.approx(x.mean() - ref) and csv.loc["RARec w/o X", "common_seeds"] == 1
    with pytest.raises(UserError, match="'RARec w/o Z'"):
        variants.main([*argv[:5], "--row=RARec w/o Z"])
    with pytest.raises(UserError, match="no run records"):
        variants.main([f"--output={tmp_path / 'none'}", "--dataset=toy", "--name=a", "--title=a",
                       "--reference=RARec", "--row=b"])


def test_variant_table_refuses_rows_of_different_epoch_caps(tmp_path):
    """A page naming 'RARec' as the reference keeps comparing 2-epoch rows after a converged 'RARec'
    lands: the old 'RARec' records become 'RARec (--epochs=2)', and the command must then fail, naming
    both caps, instead of drawing the converged run against 2-epoch variants."""
    from recbole_llm.benchmark import variants
    from recbole_llm.errors import UserError

    users, lengths, ranks = ["1", "2", "3"], [1, 2, 3], [1, 2, 3]
    short = [_record("RARec", "RARec", 1, ranks, users, lengths), _record("RARec", "RARec w/o X", 1, ranks, users, lengths)]
    for rec in short:
        rec["protocol"]["epochs_max"] = 2
    _write_runs(tmp_path, short)
    argv = [f"--output={tmp_path}", "--dataset=toy", "--name=t4", "--title=T", "--reference=RARec", "--row=RARec w/o X"]
    assert variants.main(argv) == 0  # one cap: fine
    converged = _record("RARec", "RARec", 1, ranks, users, lengths)
    converged["finished_at"] = "2026-02-01"
    (tmp_path / "toy" / "runs" / "r9.json").write_text(__import__("json").dumps(converged))
    with pytest.raises(UserError, match=r"'RARec' 50, 'RARec w/o X' 2"):
        variants.main(argv)
    assert variants.main([*argv[:4], "--reference=RARec (--epochs=2)", "--row=RARec w/o X"]) == 0


def test_own_id_base_is_paired_on_the_llm_rows_seeds(tmp_path):
    """An LLM row of seeds 1 and 2 is tested against its base's seed-1 and seed-2 runs (its frozen
    models), not against a base row that also averages in seed 3."""
    from recbole_llm.benchmark.stats import comparison_tests, id_base_records

    rng = np.random.default_rng(2)
    users = [str(i) for i in range(300)]
    lengths = [5] * 300
    same = rng.integers(1, 20, 300)
    records = [_record("ComiRec", "ComiRec", seed, same, users, lengths) for seed in (1, 2)]
    records.append(_record("ComiRec", "ComiRec", 3, np.full(300, 1), users, lengths))  # a far better seed 3
    records += [_record("IDLEAdapter", "IDLEAdapter", seed, same, users, lengths) for seed in (1, 2)]
    _, tests, _ = comparison_tests(records)
    test = next(t for t in tests if t.relation == "own ID base" and t.metric == "ndcg@10")
    assert test.versus == "ComiRec" and test.seeds_b == (1, 2)
    assert test.diff == 0.0 and test.p_ttest == 1.0  # equal to its own bases
    assert [r["seed"] for r in id_base_records(records[3:], records[:3])] == [1, 2]
    assert [r["seed"] for r in id_base_records(records[3:], records[2:3])] == [3]  # its seeds missing: all
    unpaired = comparison_tests(records[2:])[1]  # the base has seed 3 only: its run stands for both
    test = next(t for t in unpaired if t.relation == "own ID base" and t.metric == "ndcg@10")
    assert not test.paired_seeds and test.seeds_a == (1, 2) and test.seeds_b == (3,) and test.diff < 0


def test_own_id_base_is_the_run_whose_weights_the_llm_row_names():
    """A record of key scheme 2 names its frozen ID model by sha256: its base is that run, whatever its
    label (here the tuned row, not the default one); an older record's base is the run of its era."""
    from recbole_llm.benchmark.stats import own_base

    rng = np.random.default_rng(3)
    users, lengths = [str(i) for i in range(50)], [5] * 50
    ranks = rng.integers(1, 20, 50)
    default = [_record("ComiRec", "ComiRec", s, ranks, users, lengths) for s in (1, 2)]
    tuned = [_record("ComiRec", "ComiRec-tuned", s, ranks, users, lengths) for s in (1, 2)]
    for r in default + tuned:
        r.update(key_scheme=2, id_cache={"sha256": f"{r['label']}-{r['seed']}"})
    llm = [_record("IDLEAdapter", "IDLEAdapter", s, ranks, users, lengths) for s in (1, 2)]
    for r in llm:
        r.update(key_scheme=2, id_model={"name": "ComiRec", "sha256": f"ComiRec-tuned-{r['seed']}"})
    label, base = own_base(llm, default + tuned + llm)
    assert label == "ComiRec-tuned" and [r["seed"] for r in base] == [1, 2]
    old = [_record("ComiRec", "ComiRec (--epochs=50)", 1, ranks, users, lengths)]  # key scheme 1, cap 50
    old[0]["protocol"]["epochs_max"] = 50
    old_llm = [_record("IDLEAdapter", "IDLEAdapter", 1, ranks, users, lengths)]
    assert own_base(old_llm, default + tuned + old)[0] == "ComiRec (--epochs=50)"


def test_an_llm_rows_base_is_found_by_weights_then_by_the_run_it_was_remade_from():
    """A record that names its ID model by the digest of its weights finds the ID run whose cache entry
    has it. One whose cache entry was trained again on another machine (another file digest, since the
    file holds that machine's paths) finds the stored run of the same key and seed only when the
    re-made entry gave that run's very metrics; a base named by key that is not stored gives no base
    at all, never the model's default row."""
    from recbole_llm.benchmark.stats import base_run_matches, own_base

    rng = np.random.default_rng(6)
    users, lengths = [str(i) for i in range(50)], [5] * 50
    ranks = rng.integers(1, 20, 50)
    default = [_record("ComiRec", "ComiRec", s, ranks, users, lengths) for s in (1, 2)]
    tuned = [_record("ComiRec", "ComiRec-tuned", s, ranks, users, lengths) for s in (1, 2)]
    for r in default + tuned:  # stored before weights were hashed: the file's digest only
        r.update(key_scheme=2, run_key=f"{r['label']}-key", id_cache={"sha256": f"file-{r['label']}-{r['seed']}"},
                 valid={"ndcg@10": 0.07 + r["seed"] / 1000}, test={"ndcg@10": 0.06 + r["seed"] / 1000})

    def llm(run_seed, **named):
        rec = _record("IDLEAdapter", "IDLEAdapter (ComiRec-tuned base)", run_seed, ranks, users, lengths)
        rec.update(key_scheme=2, id_model={"name": "ComiRec", **named})
        return rec

    remade = [llm(s, weights_sha256=f"w{s}", sha256=f"file-elsewhere-{s}", key="ComiRec-tuned-key", seed=s,
                  valid={"ndcg@10": 0.07 + s / 1000}, test={"ndcg@10": 0.06 + s / 1000}) for s in (1, 2)]
    label, base = own_base(remade, default + tuned)
    assert label == "ComiRec-tuned" and [r["seed"] for r in base] == [1, 2]
    other = llm(1, weights_sha256="w1", sha256="x", key="ComiRec-tuned-key", seed=1,
                valid={"ndcg@10": 0.07 + 1 / 1000}, test={"ndcg@10": 0.5})  # trained again, other numbers
    assert base_run_matches(other, default + tuned) == []
    assert own_base([other], default + tuned) == (None, [])  # not the default row
    tuned[0]["id_cache"]["weights_sha256"] = "w1"  # a base stored with its weights' digest
    assert base_run_matches(other, default + tuned) == [tuned[0]]
    by_file = llm(2, sha256="file-ComiRec-2")  # one machine, before weights were hashed
    assert base_run_matches(by_file, default + tuned) == [default[1]]
    # a record of that time whose base was trained again elsewhere: found by the cache entry it read
    tuned[1]["id_cache"]["file"] = "{saved}/id_models/toy/ComiRec-k2.pth"
    elsewhere = llm(2, sha256="file-of-another-machine")
    elsewhere["parameters"]["id_model_checkpoint"] = "{saved}/id_models/toy/ComiRec-k2.pth"
    assert base_run_matches(elsewhere, default + tuned) == [tuned[1]]
    elsewhere["parameters"]["id_model_checkpoint"] = "{saved}/id_models/toy/ComiRec-gone.pth"
    assert own_base([elsewhere], default + tuned) == (None, [])  # a cache entry with no stored run: no base


def test_weights_sha256_names_the_weights_not_the_file_they_were_saved_in(tmp_path):
    """The same weights saved beside configs of other paths (another machine's) give one weights digest
    and two file digests; other weights give another."""
    import torch

    from recbole_llm.checkpoint import save_checkpoint
    from recbole_llm.id_models import checkpoint_sha256, weights_sha256

    state = {"item_embedding.weight": torch.arange(12, dtype=torch.float32).reshape(4, 3),
             "norm.bias": torch.zeros(3, dtype=torch.bfloat16)}
    a = save_checkpoint(tmp_path / "a.pth", config={"data_path": "/one/machine"}, epoch=3, state_dict=state)
    b = save_checkpoint(tmp_path / "b.pth", config={"data_path": "/another"}, epoch=3, state_dict=dict(state))
    assert weights_sha256(a) == weights_sha256(b) and checkpoint_sha256(a) != checkpoint_sha256(b)
    state["norm.bias"] = torch.ones(3, dtype=torch.bfloat16)
    c = save_checkpoint(tmp_path / "c.pth", config={"data_path": "/one/machine"}, epoch=3, state_dict=state)
    assert weights_sha256(c) != weights_sha256(a)


def test_an_llm_rows_own_base_stays_beside_it_under_a_lower_cap(tmp_path):
    """An LLM row made on an ID model trained under the LLM rows' 50-epoch cap (before the ID models'
    budget had its own, 500) keeps that base on the comparison page, marked, and is tested against it,
    not against the newer runs of the same model that now head the page; a short ID row that is no
    LLM row's base goes to the history page."""
    from recbole_llm.benchmark import page

    rng = np.random.default_rng(4)
    users, lengths = [str(i) for i in range(100)], [5] * 100
    weak, good = rng.integers(5, 30, 100), rng.integers(1, 4, 100)
    old = [_record("ComiRec", "ComiRec (--epochs=50)", s, weak, users, lengths) for s in (1, 2)]
    old_sas = [_record("SASRec", "SASRec (--epochs=50)", s, weak, users, lengths) for s in (1, 2)]
    new = [_record("ComiRec", "ComiRec", s, np.maximum(1, weak - 2), users, lengths) for s in (1, 2)]
    for r in old + old_sas:
        r["protocol"]["epochs_max"] = 50
    for r in new:
        r.update(key_scheme=2, id_cache={"sha256": f"new-{r['seed']}"})
    llm = [_record("IDLEAdapter", "IDLEAdapter", s, good, users, lengths) for s in (1, 2)]  # key scheme 1
    records = old + old_sas + new + llm
    assert page.row_sections(records) == {"ComiRec (--epochs=50)": "headline", "SASRec (--epochs=50)": "history",
                                          "ComiRec": "headline", "IDLEAdapter": "headline"}
    text = write_results_page(tmp_path, "toy", records, metrics=("hit@10", "ndcg@10"), target="IDLEAdapter")
    row = next(line for line in text.splitlines() if line.startswith("| IDLEAdapter"))
    diff = 100 * (per_user.metric_values(good, "ndcg@10").mean() / per_user.metric_values(weak, "ndcg@10").mean() - 1)
    assert f"ComiRec (--epochs=50): +{diff:.1f}%" in row
    assert any(line.startswith("| ComiRec (--epochs=50) †") for line in text.splitlines())


def test_an_llm_row_on_a_short_base_goes_to_history_once_its_model_has_one_on_a_base_at_the_budget(tmp_path):
    """IDLE-Adapter on a ComiRec trained under the old 50-epoch cap leaves the comparison page, with that
    base, once IDLE-Adapter has a row on a ComiRec trained at the ID models' budget (the fair
    comparison); IDLE-Adapter on SASRec stays (no row on a SASRec at the budget yet), its base beside it."""
    from recbole_llm.benchmark import page

    rng = np.random.default_rng(5)
    users, lengths = [str(i) for i in range(100)], [5] * 100
    ranks = rng.integers(1, 30, 100)

    def base(model, label, seed, cap):
        rec = _record(model, label, seed, ranks, users, lengths)
        rec["protocol"]["epochs_max"] = cap
        rec.update(key_scheme=2, id_cache={"sha256": f"{label}-{seed}"})
        return rec

    def llm(label, id_label, seed, id_model="ComiRec"):
        rec = _record("IDLEAdapter", label, seed, ranks, users, lengths)
        rec.update(key_scheme=2, id_model={"name": id_model, "sha256": f"{id_label}-{seed}"})
        rec["parameters"]["id_model_name"] = id_model
        return rec

    seeds = (1, 2)
    old = [base("ComiRec", "ComiRec (--epochs=50)", s, 50) for s in seeds]
    old_sas = [base("SASRec", "SASRec (--epochs=50)", s, 50) for s in seeds]
    tuned = [base("ComiRec", "ComiRec-tuned", s, 500) for s in seeds]
    sas = [base("SASRec", "SASRec", s, 500) for s in seeds]
    on_old = [llm("IDLEAdapter", "ComiRec (--epochs=50)", s) for s in seeds]
    on_old_sas = [llm("IDLEAdapter (SASRec base)", "SASRec (--epochs=50)", s, "SASRec") for s in seeds]
    before = old + old_sas + tuned + sas + on_old + on_old_sas
    assert page.row_sections(before)["IDLEAdapter"] == "headline"  # no fair row yet: it stays, its base beside it
    assert page.row_sections(before)["ComiRec (--epochs=50)"] == "headline"
    on_tuned = [llm("IDLEAdapter (ComiRec-tuned base)", "ComiRec-tuned", s) for s in seeds]
    sections = page.row_sections(before + on_tuned)
    assert sections == {"ComiRec (--epochs=50)": "history", "SASRec (--epochs=50)": "headline",
                        "ComiRec-tuned": "headline", "SASRec": "headline", "IDLEAdapter": "history",
                        "IDLEAdapter (SASRec base)": "headline", "IDLEAdapter (ComiRec-tuned base)": "headline"}
    write_results_page(tmp_path, "toy", before + on_tuned, metrics=("hit@10", "ndcg@10"))
    assert "| IDLEAdapter " in (tmp_path / "comparison-history.md").read_text()
