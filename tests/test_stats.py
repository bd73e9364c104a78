"""The statistics of a results page: seeds paired on both sides, the Holm and Benjamini-Hochberg
adjustments, the bootstrap over seeds and users, the papers' metrics beside NDCG@10, and the
claim sentences worded by the tests' strength."""

import time

import numpy as np
import pytest
from scipy import stats as sps

from recbole_llm.benchmark import per_user, stats

N_USERS = 600
USERS = [str(i) for i in range(N_USERS)]


def record(label, seed, ranks, *, model=None, valid=0.1, llm=False, id_model="Base"):
    """A converged run (early stopping, best validation epoch before the last) with per-user ranks."""
    ranks = np.asarray(ranks)
    rec = {
        "model": model or label, "label": label, "dataset": "d", "seed": seed, "budget": "full",
        "test": {m: float(per_user.metric_values(ranks, m).mean()) for m in ("hit@10", "ndcg@10")},
        "valid": {"ndcg@10": valid}, "epochs_run": 8, "commit": "abc", "finished_at": f"2026-01-0{seed % 10}",
        "protocol": {"split": "LS", "valid_metric": "NDCG@10", "epochs_max": 50 if llm else 500, "stopping_step": 5},
        "history": [{"epoch": i, "valid": {"ndcg@10": v}} for i, v in enumerate([0.1, 0.3] + [0.2] * 6)],
        "cost": {"wall_time_s": 1.0}, "parameters": {"total": 10, "trainable": 10},
        "dataset_stats": {"users": N_USERS, "items": 100, "interactions": 6000, "train_samples": 5000},
        "per_user": {"split": "test", "users": USERS, "rank": ranks.tolist(), "targets": [1] * N_USERS,
                     "history_length": [5] * N_USERS, "max_k": 100},
    }
    if llm:
        rec["parameters"].update({"lm": 1000, "id_model_name": id_model})
    return rec


def ranks(seed, low, high):
    return np.random.default_rng(seed).integers(low, high, N_USERS)


def test_holm_and_benjamini_hochberg_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> 0.02, 0.03, 0.06, max(0.06, 0.04); input order
    assert stats.holm(p).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: p*m/rank 0.02, 0.02, 0.04, 0.04, running minimum from the largest
    assert stats.benjamini_hochberg(p).tolist() == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert stats.holm([0.6, 0.9]).tolist() == [1.0, 1.0]  # capped at 1
    assert stats.holm([0.2, 0.9]).tolist() == pytest.approx([0.4, 0.9])


def test_a_comparison_pairs_the_same_seeds_on_both_sides():
    """Row A has seeds 1, 2; row B has 1, 2 and a far better 3. A is tested against B's seeds 1
    and 2 only; a row with no seed in common is not tested, and the cell says so."""
    same = ranks(0, 1, 30)
    a = [record("A", s, same) for s in (1, 2)]
    b = [record("B", s, same) for s in (1, 2)] + [record("B", 3, np.ones(N_USERS, dtype=int))]
    test = stats.compare(a, b, ["ndcg@10"], stats.Comparison("A", "B"))[0]
    assert test.seeds_a == test.seeds_b == (1, 2)
    assert test.diff == 0.0 and test.p_ttest == 1.0 and test.p_bootstrap == 1.0
    lonely = stats.compare([record("A", 7, same)], b, ["ndcg@10"], stats.Comparison("A", "B"))[0]
    assert lonely.why == "no common seed" and stats.cell(lonely) == "no common seed"
    assert stats.claim(lonely) == "A vs B: not tested (no common seed)."


def test_seed_bootstrap_counts_seeds_and_is_fast_and_reproducible():
    base = ranks(1, 1, 40)
    better = np.maximum(1, base - 8)  # every user's item moves up
    # consistent across three seeds: the bootstrap's smallest p
    a = [record("A", s, better) for s in (1, 2, 3)]
    b = [record("B", s, base) for s in (1, 2, 3)]
    started = time.perf_counter()
    tests = stats.compare(a, b, ["ndcg@10", "hit@10", "ndcg@5", "hit@5"], stats.Comparison("A", "B"))
    assert time.perf_counter() - started < 1.0
    assert tests[0].p_bootstrap == pytest.approx(2 / (stats.RESAMPLES + 1))
    assert tests[0].p_ttest < 1e-10
    # carried by one seed: seed 1 far better, seed 2 a little worse. Per user the average is a
    # gain far past any threshold; over seeds, a resample of seed 2 alone reverses it.
    worse = base + 2
    mixed = [record("A", 1, better), record("A", 2, worse)]
    plain = [record("B", s, base) for s in (1, 2)]
    t = stats.compare(mixed, plain, ["ndcg@10"], stats.Comparison("A", "B"))[0]
    assert t.diff > 0 and t.p_ttest < 1e-6
    assert 0.3 < t.p_bootstrap < 0.7  # about half: the resample {2, 2} (1 in 4) is a loss
    again = stats.compare(mixed, plain, ["ndcg@10"], stats.Comparison("A", "B"))[0]
    assert again.p_bootstrap == t.p_bootstrap  # fixed RNG seed


def test_seed_bootstrap_unpaired_and_hand_checked():
    """Two users, one seed each side resampled: the p-value counts the resamples by hand."""
    a = np.array([[[1.0, 0.0]]])  # (metrics, seeds, users)
    b = np.array([[[0.0, 0.0]]])
    p = stats.seed_bootstrap(a, b, paired=True, resamples=4000)[0]
    # the difference of a resample is > 0 unless both draws are user 1: share 1/4 at <= 0
    assert p == pytest.approx(2 * (1000 + 1) / 4001, abs=0.03)
    assert stats.seed_bootstrap(a, b, paired=False, resamples=4000)[0] == pytest.approx(p, abs=0.03)
    with pytest.raises(ValueError, match="2 and 1"):
        stats.seed_bootstrap(np.zeros((1, 2, 2)), np.zeros((1, 1, 2)), paired=True)


def test_a_t_test_over_seeds_from_five_seeds():
    seeds = range(1, 6)
    base = ranks(2, 1, 40)
    a = [record("A", s, np.maximum(1, base - s)) for s in seeds]
    b = [record("B", s, base + (s % 2)) for s in seeds]
    t = stats.compare(a, b, ["ndcg@10"], stats.Comparison("A", "B"))[0]
    means_a = [per_user.metric_values(np.maximum(1, base - s), "ndcg@10").mean() for s in seeds]
    means_b = [per_user.metric_values(base + (s % 2), "ndcg@10").mean() for s in seeds]
    assert t.p_seed_ttest == pytest.approx(sps.ttest_rel(means_a, means_b).pvalue)
    assert t.seed_test == ("t-test over 5 seeds' means", t.p_seed_ttest)
    assert np.isnan(stats.compare(a[:4], b[:4], ["ndcg@10"], stats.Comparison("A", "B"))[0].p_seed_ttest)


def test_the_best_baseline_is_chosen_on_validation_not_test():
    good_test = ranks(3, 1, 5)  # the best test numbers, the worse validation
    records = [record("Flattered", 1, good_test, valid=0.05), record("Chosen", 1, ranks(3, 5, 30), valid=0.09)]
    assert stats.best_baseline(records) == "Chosen"


def test_cells_and_claims_carry_the_sign_and_the_strength():
    t = stats.Test("IDLEAdapter", "SASRec", "best baseline", "ndcg@10", (1, 2, 3), (1, 2, 3), mean_a=0.0792,
                   mean_b=0.0747, n_users=2928, p_ttest=0.066, p_holm=0.40, p_bh=0.08, p_bootstrap=0.09)
    assert stats.cell(t) == "+6.0%, p=0.066 (Holm 0.40)"
    assert stats.claim(t).endswith("seed bootstrap p = 0.090: not distinguishable.")
    loss = stats.Test("X", "B", "own ID base", "ndcg@10", (1, 2, 3), (1, 2, 3), mean_a=0.05, mean_b=0.1, n_users=10,
                      p_ttest=1e-9, p_holm=1e-7, p_bh=1e-8, p_bootstrap=2e-4)
    assert stats.cell(loss) == "-50.0%, p<1e-4 (Holm <1e-4)"
    sentence = stats.claim(loss)
    assert sentence.startswith("X vs its own ID base B: -50.0% NDCG@10 (0.0500 vs 0.1000), 3 seeds (1, 2, 3)")
    assert sentence.endswith("seed bootstrap p = 2.0e-4: a significant loss.")
    per_user_only = stats.Test("X", "B", "reference", "ndcg@10", (1, 2), (1, 2), mean_a=0.2, mean_b=0.1,
                               p_ttest=1e-9, p_holm=1e-7, p_bootstrap=0.3)
    assert stats.verdict(per_user_only) == "significant per user, not across seeds"
    one_seed = stats.Test("X", "B", "reference", "ndcg@10", (1,), (1,), mean_a=0.2, mean_b=0.1, p_ttest=1e-9,
                          p_holm=1e-7)
    assert stats.verdict(one_seed) == "significant per user; one seed, so not tested across seeds"
    assert "no seed-aware test (one seed)" in stats.claim(one_seed)
    raw_only = stats.Test("X", "B", "reference", "ndcg@10", (1, 2, 3), (1, 2, 3), mean_a=0.2, mean_b=0.1,
                          p_ttest=0.01, p_holm=0.2, p_bootstrap=2e-4)
    assert stats.verdict(raw_only) == "not distinguishable"  # Holm decides, not the raw p
    assert [stats.format_p(p) for p in (0.066, 0.4, 0.0014, 2.5e-4, 9.99e-4, 3e-9, 1.0)] == [
        "0.066", "0.40", "0.0014", "2.5e-4", "1.0e-3", "<1e-4", "1.00"]


def test_a_paper_metric_that_disagrees_with_ndcg_is_named():
    """RA-Rec's HR@50 moves where NDCG@10 does not: the ranks inside the top 10 are equal, and A
    brings 40 items from rank 60 to rank 30 at every seed."""
    base = ranks(4, 1, 10)
    base[:400] = 60
    lifted = base.copy()
    lifted[:400] = 30
    a = [record("RARec", s, lifted, llm=True) for s in (1, 2, 3)]
    b = [record("Base", s, base) for s in (1, 2, 3)]
    pair = stats.Comparison("RARec", "Base", "own ID base")
    tests, m = stats.adjust(stats.compare(a, b, stats.tested_metrics("RARec"), pair))
    assert [t.metric for t in tests] == ["ndcg@10", "hit@10", "hit@50", "hit@100"] and m == 4
    [sentence] = stats.claims_of(tests)
    assert "NDCG@10 (" in sentence and ": not distinguishable." in sentence
    assert "HR@50 disagrees: +" in sentence and "a significant gain" in sentence
    assert "HR@10 disagrees" not in sentence


def test_claims_of_a_datasets_records(tmp_path):
    """Without pairs: the comparison page's multi-seed comparisons, each once; with pairs: those."""
    base = ranks(5, 5, 40)
    records = [record("Base", s, base, valid=0.2) for s in (1, 2, 3)]
    records += [record("Weak", s, base + 5, valid=0.1) for s in (1, 2, 3)]
    records += [record("IDLEAdapter", s, np.maximum(1, base - 4), llm=True) for s in (1, 2, 3)]
    records += [record("IDLEAdapter x", 1, base, model="IDLEAdapter", llm=True)]  # one seed: no claim
    found = stats.claims(records)
    assert len(found) == 1  # the best baseline is its own ID base: one comparison, one sentence
    assert found[0].startswith("IDLEAdapter vs the best baseline and its own ID base Base: +")
    assert found[0].endswith("a significant gain.")
    [pair] = stats.claims(records, pairs=[("IDLEAdapter x", "Weak")], min_seeds=1)
    assert pair.startswith("IDLEAdapter x vs Weak: +") and "1 seed (1)" in pair
    with pytest.raises(KeyError, match="'Nope'"):
        stats.claims(records, pairs=[("Nope", "Weak")])
    base_name, tests, m = stats.comparison_tests(records)
    assert base_name == "Base"
    # two LLM rows x two relations x IDLE-Adapter's four metrics, the duplicates (best = own base) once
    assert len(tests) == 16 and m == 8
