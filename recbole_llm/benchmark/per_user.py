"""Per-user test metrics from run records, and the paired significance test between two rows.

A run record's ``per_user`` holds, for every test user (by token), the rank of the held-out item
within the top ``max_k`` (0 beyond it) and the user's full history length; it is captured from
the same hit matrix RecBole's metrics are computed from (:class:`recbole_llm.trainer.PerUserRanks`),
so the mean of :func:`metric_values` equals the record's reported metric.

Why by hand: RecBole reports only means, and the test the issue asks for is a paired test on the
same users, which needs each user's value. The test itself is scipy's.
"""

import math

import numpy as np

from recbole_llm.benchmark.records import history_lengths, is_llm  # noqa: F401  (is_llm: used as per_user.is_llm)


def metric_values(ranks, metric):
    """Per-user values of ``hit@K``, ``ndcg@K`` or ``mrr@K`` from 1-based ranks (0: not in the top max_k),
    for one held-out item per user (leave-one-out)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    name, _, k = metric.lower().partition("@")
    k = int(k)
    inside = (ranks >= 1) & (ranks <= k)
    safe = np.where(inside, ranks, 1.0)
    if name == "hit":
        return inside.astype(np.float64)
    if name == "ndcg":
        return np.where(inside, 1.0 / np.log2(safe + 1.0), 0.0)
    if name == "mrr":
        return np.where(inside, 1.0 / safe, 0.0)
    raise ValueError(f"no per-user values for metric '{metric}' (hit@K, ndcg@K, mrr@K)")


def has_per_user(record):
    pu = record.get("per_user")
    return bool(pu) and all(t == 1 for t in pu.get("targets", [1]))


def user_means(records, metric):
    """``{user token: mean over the records (seeds) of the user's metric}`` for one row's records
    that carry per-user ranks; users missing from any record are dropped."""
    recs = [r for r in records if has_per_user(r)]
    if not recs:
        return {}
    per_seed = []
    for r in recs:
        pu = r["per_user"]
        if int(metric.partition("@")[2]) > pu["max_k"]:
            raise ValueError(f"{metric} needs ranks beyond the stored top {pu['max_k']}")
        per_seed.append(dict(zip(pu["users"], metric_values(pu["rank"], metric))))
    common = set(per_seed[0]).intersection(*per_seed[1:])
    return {u: float(np.mean([s[u] for s in per_seed])) for u in common}


def paired_test(a, b):
    """Two-sided paired t-test of rows ``a`` and ``b`` (``{user: value}``) on their common users.

    Returns ``{"n_users", "mean_diff", "p_ttest", "p_wilcoxon"}`` (the Wilcoxon signed-rank
    p-value, which assumes no normality, beside it), or None with fewer than 2 common users.
    Per-user values are averaged over a row's seeds first, so a user counts once.
    """
    users = sorted(set(a) & set(b))
    if len(users) < 2:
        return None
    return paired_arrays(np.array([a[u] for u in users]), np.array([b[u] for u in users]))


def paired_arrays(x, y):
    """:func:`paired_test` on two aligned arrays of per-user values (NaN p-values below 2 users)."""
    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    diff = x - y
    out = {"n_users": len(diff), "mean_diff": float(diff.mean()) if len(diff) else float("nan"),
           "p_ttest": float("nan"), "p_wilcoxon": float("nan")}
    if len(diff) < 2:
        return out
    if np.any(diff != 0):
        out["p_ttest"] = float(stats.ttest_rel(x, y).pvalue)
        out["p_wilcoxon"] = float(stats.wilcoxon(x, y, zero_method="wilcox").pvalue)
    else:
        out["p_ttest"] = out["p_wilcoxon"] = 1.0
    return out


PRETTY = {"hit": "HR", "ndcg": "NDCG", "mrr": "MRR"}


def pretty_metric(name):
    """A metric key as the papers write it: ``ndcg@10`` -> ``NDCG@10``."""
    base, _, k = name.partition("@")
    return f"{PRETTY.get(base, base)}@{k}" if k else PRETTY.get(base, base)


def history_slices(records, metric, edges):
    """Mean ``metric`` per history-length bucket ``[edges[i], edges[i+1])`` over a row's seeds:
    ``[(label, n_users, mean)]`` (RA-Rec Fig. 4's long-sequence view); lengths as
    :func:`~recbole_llm.benchmark.records.history_lengths` corrects them."""
    recs = [r for r in records if has_per_user(r)]
    if not recs:
        return []
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        values, users = [], set()
        for r in recs:
            pu = r["per_user"]
            lengths = np.asarray(history_lengths(r))
            sel = (lengths >= lo) & (lengths < hi)
            values.extend(metric_values(np.asarray(pu["rank"])[sel], metric))
            users.update(np.asarray(pu["users"])[sel].tolist())
        label = (f"{lo}" if hi - 1 == lo else f"{lo}-{hi - 1}") if math.isfinite(hi) else f">={lo}"
        out.append((label, len(users), float(np.mean(values)) if values else float("nan")))
    return out
