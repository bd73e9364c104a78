"""Statistics of a results page: means over seeds, the paired tests of its comparisons, their
adjustment for the number of tests the page reports, and the sentences that state them.

A comparison of row A with row B (:func:`compare`) pairs the same seeds on both sides: each user's
value is averaged over the seeds both rows have, never over one row's first seeds against all of
the other's (an LLM row against its own ID base takes the base's runs of the LLM row's seeds,
:func:`id_base_records`). It gives, per metric, the signed difference, a two-sided paired t-test
over users (Wilcoxon signed-rank beside it) and a test that counts seeds: a bootstrap over seeds
and users (:func:`seed_bootstrap`), and a paired t-test over per-seed means from
:data:`MIN_SEEDS_T` common seeds on. Each page adjusts its p-values for the number of tests it
reports (:func:`adjust`: Holm, Benjamini-Hochberg beside it), and :func:`claim` words each
comparison by the strength those tests give: "significant" only when the Holm-adjusted p and
the seed-aware p are both below :data:`ALPHA`.

Besides NDCG@10 every comparison tests the papers' own metrics (:data:`PAPER_METRICS`) from the
same per-user ranks, and a claim says where they disagree with NDCG@10.

Why by hand: Holm is a few lines; the bootstrap resamples two levels (seeds, users) at once,
which no scipy routine does; Benjamini-Hochberg is scipy's.
"""

import dataclasses
import functools
import math
import statistics
from collections.abc import Sequence

import numpy as np

from recbole_llm.benchmark import convergence, per_user
from recbole_llm.benchmark import records as records_mod
from recbole_llm.benchmark.records import group_rows

HEADLINE = "ndcg@10"
# the metrics each paper reports: IDLE-Adapter Tables 2-4, RA-Rec Tables 3-5
PAPER_METRICS = {"IDLEAdapter": ("hit@5", "ndcg@5", "hit@10", "ndcg@10"),
                 "RARec": ("hit@10", "hit@50", "hit@100")}
ALPHA = 0.05
RESAMPLES = 10_000
BOOTSTRAP_SEED = 2020  # fixed, so a page regenerated from the same records reads the same
MIN_SEEDS_T = 5  # from this many common seeds on, a t-test over per-seed means is the seed-aware test
_CHUNK = 1000  # bootstrap resamples per matrix product (bounds memory: 1000 x users floats)


def mean_of(recs, get):
    """Mean over a row's records of ``get(record)``, skipping None; NaN when nothing is left."""
    values = [v for v in (get(r) for r in recs) if v is not None]
    return statistics.fmean(values) if values else float("nan")


def metric_mean(recs, metric):
    """Mean over a row's records of test ``metric`` (NaN without one)."""
    return mean_of(recs, lambda r: (r.get("test") or {}).get(metric))


def tested_metrics(model, metric=HEADLINE):
    """The metrics a comparison of a ``model`` row tests: ``metric`` first, then its paper's own."""
    return (metric, *[m for m in PAPER_METRICS.get(model, ()) if m != metric])


def best_baseline(records, metric=HEADLINE):
    """Label of the converged non-LLM row with the highest mean *validation* ``metric`` (None
    without one). Validation, not test: a baseline picked by its test score would be the one the
    test set flatters, and every p-value against it would lean toward the LLM rows. An unconverged
    row's number says when training stopped, not how good the model is
    (:mod:`~recbole_llm.benchmark.convergence`). Ties keep the first row in table order."""
    grouped = group_rows(records)
    flagged = convergence.unconverged(grouped)
    candidates = [(label, mean_of(recs, lambda r: (r.get("valid") or {}).get(metric)))
                  for label, recs in grouped.items() if not per_user.is_llm(recs) and label not in flagged]
    candidates = [c for c in candidates if not math.isnan(c[1])]
    return max(candidates, key=lambda c: c[1])[0] if candidates else None


def id_model_name(llm_recs):
    """The name of the frozen ID model an LLM row's runs are built on (``ComiRec``), or None."""
    rec = llm_recs[0]
    return (rec.get("parameters") or {}).get("id_model_name") or (rec.get("id_model") or {}).get("name")


def own_base(llm_recs, records):
    """``(label, records)`` of the ID-model runs an LLM row's frozen models are, or ``(None, [])``.

    Each LLM record's base is found by :func:`base_run_matches`, whatever the base's label
    (``ComiRec``, ``ComiRec-tuned``). A seed with no such run is left out. With none at all: when the
    records name no ID run (a checkpoint given by hand), the model's own row stands for it
    (:func:`id_base_records`); when they do and it is not among ``records``, there is no base."""
    name = id_model_name(llm_recs)
    ids = [r for r in records if r.get("model") == name and not per_user.is_llm([r]) and per_user.has_per_user(r)]
    # oldest first, and a sweep's copy of a run (records.is_copy) before every run's own record: the
    # newest match below is a run's own record, under the row it was trained for
    ids.sort(key=lambda r: (not records_mod.is_copy(r), records_mod.stored_order(r)))
    found = []
    for rec in llm_recs:
        match = base_run_matches(rec, ids)
        if match:
            found.append(match[-1])  # the newest: the one a re-run's ID-model step reused
    if not found:
        if any((r.get("id_model") or {}).get("key") or ((r.get("id_model") or {}).get("sha256") and cache_entry_of(r))
               for r in llm_recs):
            return None, []  # built on cached ID runs that are not stored here: no row stands for them
        row = [r for r in ids if (r.get("label") or r["model"]) == name]
        if not row:
            return None, []
        found = id_base_records(llm_recs, row)
    labels = {r.get("label") or r["model"] for r in found}
    return (labels.pop() if len(labels) == 1 else " / ".join(sorted(labels))), found


def base_run_matches(rec, ids):
    """The records among ``ids`` (ID-model runs) that LLM record ``rec``'s frozen ID model is.

    In order, the first rule that finds one:

    1. the weights: ``id_model.weights_sha256`` equals the run's ``id_cache.weights_sha256``
       (:func:`recbole_llm.id_models.weights_sha256`);
    2. the checkpoint file: ``id_model.sha256`` equals the run's ``id_cache.sha256`` (the base and
       the LLM run on one machine: the file also holds the machine's paths);
    3. the run: the cache entry was made from the run of ``id_model.key`` and ``id_model.seed``,
       with the very metrics of that run's record (``valid`` and ``test``, every value): an ID run
       trained again under its key on another machine (or with no weights digest in its record),
       where it gave the same numbers (on one thread it does; under other thread counts it may not,
       and then the LLM row has no own base);
    4. a record that names its base by the file's digest alone (made before rule 3's fields) and
       found none: the run whose cache entry is the file it read (``id_cache.file`` equals its
       ``id_model_checkpoint``), of its seed;
    5. a record that names only the model (key scheme 1): that model's run of the same seed,
       budget and protocol (epoch cap, patience) made under the old key scheme too, the run its
       ID-model step reused.
    """
    from recbole_llm.identity import key_scheme

    mine = rec.get("id_model") or {}
    for field in ("weights_sha256", "sha256"):
        if mine.get(field):
            match = [b for b in ids if (b.get("id_cache") or {}).get(field) == mine[field]]
            if match:
                return match
    if mine.get("key"):
        return [b for b in ids if b.get("run_key") == mine["key"] and b["seed"] == mine.get("seed")
                and _same_values(mine.get("valid"), b.get("valid")) and _same_values(mine.get("test"), b.get("test"))]
    if mine.get("sha256"):
        entry = cache_entry_of(rec)
        return [b for b in ids if entry and (b.get("id_cache") or {}).get("file") == entry and b["seed"] == rec["seed"]]
    proto = rec.get("protocol") or {}
    return [b for b in ids if b["seed"] == rec["seed"] and key_scheme(b) == 1
            and b.get("budget", "full") == rec.get("budget", "full")
            and (b.get("protocol") or {}).get("epochs_max") == proto.get("epochs_max")
            and (b.get("protocol") or {}).get("stopping_step") == proto.get("stopping_step")]


def cache_entry_of(rec):
    """The ID-model cache entry an LLM record read, as its portable path
    (``{saved}/id_models/<dataset>/<Model>-<key>.pth``), or None for a checkpoint given by hand."""
    path = (rec.get("parameters") or {}).get("id_model_checkpoint") or (rec.get("config") or {}).get("id_model_checkpoint")
    return path if isinstance(path, str) and path.startswith("{saved}/id_models/") else None


def _same_values(a, b):
    """Both metric dicts present, with the same keys and equal values."""
    return bool(a) and bool(b) and set(a) == set(b) and all(a[k] == b[k] for k in a)


def id_base_records(llm_recs, base_recs):
    """The records of an ID-base row that an LLM row's frozen models are: those of the LLM row's
    seeds (the runner trains or reuses the ID model under the LLM run's seed). When the base row
    lacks one of those seeds (a checkpoint given by hand), all its records stand for it."""
    seeds = {r["seed"] for r in llm_recs}
    matched = [r for r in base_recs if r["seed"] in seeds]
    return matched if {r["seed"] for r in matched} == seeds else list(base_recs)


@dataclasses.dataclass(frozen=True)
class Test:
    """Row ``label`` against row ``versus`` on one metric. ``seeds_a``/``seeds_b``: the seeds
    each side averaged (equal when ``paired_seeds``); ``why``: set when nothing was tested."""

    label: str
    versus: str
    relation: str  # "best baseline", "own ID base", "reference", "versus"
    metric: str
    seeds_a: tuple = ()
    seeds_b: tuple = ()
    paired_seeds: bool = True
    n_users: int = 0
    mean_a: float = float("nan")
    mean_b: float = float("nan")
    p_ttest: float = float("nan")
    p_wilcoxon: float = float("nan")
    p_bootstrap: float = float("nan")
    p_seed_ttest: float = float("nan")
    p_holm: float = float("nan")
    p_bh: float = float("nan")
    why: str = ""
    not_converged: tuple = ()  # the labels of the two rows whose training did not converge

    @property
    def key(self):
        """What identifies the hypothesis: the same rows, seeds and metric are one test, however
        many columns show it (the best baseline can be a row's own ID base)."""
        return self.label, self.versus, self.seeds_a, self.seeds_b, self.metric

    @property
    def diff(self):
        return self.mean_a - self.mean_b

    @property
    def diff_pct(self):
        return 100.0 * self.diff / self.mean_b if self.mean_b else float("nan")

    @property
    def n_seeds(self):
        """Seeds the seed-aware test can count: the common seeds, or the fewer side's when unpaired."""
        return min(len(self.seeds_a), len(self.seeds_b))

    @property
    def seed_test(self):
        """``(name, p)`` of the seed-aware test; p is NaN with one seed (nothing to resample)."""
        if self.n_seeds >= MIN_SEEDS_T:
            return f"t-test over {self.n_seeds} seeds' means", self.p_seed_ttest
        return "seed bootstrap", self.p_bootstrap

    @property
    def state(self):
        """+1 / -1: a gain / loss significant per user after Holm; 0: not."""
        if not self.p_holm < ALPHA or self.diff == 0:
            return 0
        return 1 if self.diff > 0 else -1


def _rank_matrix(recs, users):
    """Ranks of ``users`` (rows: the records) as a float array."""
    out = np.empty((len(recs), len(users)))
    for i, r in enumerate(recs):
        pu = r["per_user"]
        if pu["users"] == users:
            out[i] = pu["rank"]
        else:
            by_user = dict(zip(pu["users"], pu["rank"]))
            out[i] = [by_user[u] for u in users]
    return out


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Which row :func:`compare` tests against which: ``label`` against ``versus``, as what
    (``relation``: "best baseline", "own ID base", "reference", "versus", which a claim words),
    and whether on the seeds both rows have (``paired_seeds``) or on every record of each side."""

    label: str
    versus: str
    relation: str = "versus"
    paired_seeds: bool = True


def compare(recs_a: list[dict], recs_b: list[dict], metrics: Sequence[str], pair: Comparison) -> list[Test]:
    """:class:`Test` per metric of row ``recs_a`` (labelled ``pair.label``) against ``recs_b``
    (labelled ``pair.versus``).

    ``pair.paired_seeds``: use only the seeds both rows have, on both sides (a test with
    ``why="no common seed"`` when they share none); False: every record of each side (an LLM
    row against an ID base that lacks its seeds, :func:`id_base_records`), seeds resampled
    independently. Users: those every used record ranks; each user's value is averaged over
    the side's seeds first, so a user counts once in the t-test."""
    paired_seeds = pair.paired_seeds
    a = {r["seed"]: r for r in recs_a if per_user.has_per_user(r)}
    b = {r["seed"]: r for r in recs_b if per_user.has_per_user(r)}
    flagged = tuple(x for x, recs in ((pair.label, recs_a), (pair.versus, recs_b)) if convergence.row_causes(recs))
    blank = {"label": pair.label, "versus": pair.versus, "relation": pair.relation, "paired_seeds": paired_seeds,
             "not_converged": flagged}
    if not a or not b:
        return [Test(metric=m, **blank, why="no per-user ranks") for m in metrics]
    if paired_seeds:
        seeds_a = seeds_b = tuple(sorted(set(a) & set(b)))
        if not seeds_a:
            return [Test(metric=m, **blank, seeds_a=tuple(sorted(a)), seeds_b=tuple(sorted(b)), why="no common seed")
                    for m in metrics]
    else:
        seeds_a, seeds_b = tuple(sorted(a)), tuple(sorted(b))
    used_a, used_b = [a[s] for s in seeds_a], [b[s] for s in seeds_b]
    first = used_a[0]["per_user"]["users"]
    used = used_a + used_b
    if all(r["per_user"]["users"] == first for r in used):
        users = first
    else:
        users = sorted(set(first).intersection(*(r["per_user"]["users"] for r in used)))
    if len(users) < 2:
        return [Test(metric=m, **blank, seeds_a=seeds_a, seeds_b=seeds_b, why="fewer than 2 common users")
                for m in metrics]
    ranks_a, ranks_b = _rank_matrix(used_a, users), _rank_matrix(used_b, users)
    max_k = min(r["per_user"]["max_k"] for r in used)
    blank.update(seeds_a=seeds_a, seeds_b=seeds_b)
    tests, tested = {}, []
    for m in metrics:
        if int(m.partition("@")[2]) > max_k:
            tests[m] = Test(metric=m, **blank, why=f"ranks stored to the top {max_k} only")
            continue
        tested.append(m)
    if tested:
        va = np.stack([per_user.metric_values(ranks_a, m) for m in tested])  # (metrics, seeds, users)
        vb = np.stack([per_user.metric_values(ranks_b, m) for m in tested])
        boot = (seed_bootstrap(va, vb, paired_seeds) if min(len(seeds_a), len(seeds_b)) >= 2
                else np.full(len(tested), np.nan))
        for i, m in enumerate(tested):
            x, y = va[i].mean(axis=0), vb[i].mean(axis=0)
            t = per_user.paired_arrays(x, y)
            tests[m] = Test(metric=m, **blank, n_users=t["n_users"], mean_a=float(x.mean()), mean_b=float(y.mean()),
                            p_ttest=t["p_ttest"], p_wilcoxon=t["p_wilcoxon"], p_bootstrap=float(boot[i]),
                            p_seed_ttest=_seed_ttest(va[i].mean(axis=1), vb[i].mean(axis=1), paired_seeds))
    return [tests[m] for m in metrics]


def _seed_ttest(a, b, paired):
    """Two-sided t-test over per-seed means (paired by seed, else Welch's), from
    :data:`MIN_SEEDS_T` seeds a side on; NaN below."""
    from scipy import stats

    if min(len(a), len(b)) < MIN_SEEDS_T:
        return float("nan")
    if paired and np.all(a == b):
        return 1.0
    return float((stats.ttest_rel(a, b) if paired else stats.ttest_ind(a, b, equal_var=False)).pvalue)


@functools.lru_cache(maxsize=2)
def _user_counts(n, resamples, seed):
    """``(resamples, n)`` counts of each user in a resample of ``n`` users drawn with replacement
    (uint8: a user drawn over 255 times in one resample of n > 255 is beyond any float's care).
    Depends on ``n`` only, so every comparison of a page shares it and the order of the tests
    changes nothing."""
    rng = np.random.default_rng([seed, n])
    out = np.empty((resamples, n), dtype=np.uint8)
    for lo in range(0, resamples, _CHUNK):
        rows = min(_CHUNK, resamples - lo)
        idx = rng.integers(0, n, size=(rows, n)) + n * np.arange(rows)[:, None]
        out[lo:lo + rows] = np.bincount(idx.ravel(), minlength=rows * n).reshape(rows, n)
    out.setflags(write=False)
    return out


def _seed_counts(k, resamples, seed, stream):
    """``(resamples, k)`` counts of each seed in a resample of ``k`` seeds drawn with replacement."""
    return np.random.default_rng([seed, k, stream]).multinomial(k, np.full(k, 1.0 / k), size=resamples)


def seed_bootstrap(a, b, paired=True, resamples=RESAMPLES, seed=BOOTSTRAP_SEED):
    """Two-sided bootstrap p-values of ``mean(a) - mean(b) = 0``, resampling seeds and users.

    ``a``: ``(metrics, seeds_a, users)`` per-seed, per-user values; ``b`` likewise, users in the
    same order. Each resample draws the seeds with replacement (the same draw on both sides
    when ``paired``: seed s of A against seed s of B) and the users with replacement, and takes
    the difference of the means; p = 2 min(share <= 0, share >= 0), with the +1 correction
    (smallest p: 2 / (resamples + 1)). A difference that one seed carries, or that only some
    seeds show, is not significant here however many users agree. The mean over a resample is
    linear in the counts, so it is two matrix products, not a loop over resamples."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    m, ka, n = a.shape
    kb = b.shape[1]
    if paired and ka != kb:
        raise ValueError(f"paired seeds need as many seeds on both sides, got {ka} and {kb}")
    weights = _user_counts(n, resamples, seed)
    counts_a = _seed_counts(ka, resamples, seed, 0)
    sides = [(a - b, counts_a, ka)] if paired else [(a, counts_a, ka), (-b, _seed_counts(kb, resamples, seed, 1), kb)]
    diffs = np.zeros((m, resamples))
    for lo in range(0, resamples, _CHUNK):
        w = weights[lo:lo + _CHUNK].astype(np.float64)  # (chunk, users)
        for x, counts, k in sides:
            per_seed = (x.reshape(m * k, n) @ w.T).reshape(m, k, -1)  # (metrics, seeds, chunk)
            diffs[:, lo:lo + _CHUNK] += np.einsum("mkc,ck->mc", per_seed, counts[lo:lo + _CHUNK]) / (k * n)
    below = np.count_nonzero(diffs <= 0, axis=1)
    above = np.count_nonzero(diffs >= 0, axis=1)
    return np.minimum(1.0, 2.0 * (np.minimum(below, above) + 1) / (resamples + 1))


def holm(pvalues):
    """Holm's step-down adjusted p-values (family-wise error), in the input order."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    if not m:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def benjamini_hochberg(pvalues):
    """Benjamini-Hochberg adjusted p-values (false discovery rate; scipy's), in the input order."""
    from scipy import stats

    p = np.asarray(pvalues, dtype=np.float64)
    return stats.false_discovery_control(p, method="bh") if len(p) else p


def adjust(tests):
    """``(tests with p_holm and p_bh set, m)``: the adjustment over the ``m`` distinct hypotheses
    among ``tests`` that have a p-value (a test shown twice, :attr:`Test.key`, counts once)."""
    keys = list(dict.fromkeys(t.key for t in tests if not math.isnan(t.p_ttest)))
    raw = {t.key: t.p_ttest for t in tests}
    p = [raw[k] for k in keys]
    by_key = {k: (h, q) for k, h, q in zip(keys, holm(p), benjamini_hochberg(p))}
    out = [dataclasses.replace(t, p_holm=float(by_key[t.key][0]), p_bh=float(by_key[t.key][1])) if t.key in by_key
           else t for t in tests]
    return out, len(keys)


def comparison_tests(records, metric=HEADLINE):
    """``(best baseline label, tests, m)``: the tests a comparison page reports, adjusted.

    Each LLM row against the best baseline (:func:`best_baseline`, on common seeds) and against
    its own frozen ID models (the row labelled like its records' ``id_model_name``, the base's
    runs of the LLM row's seeds), on ``metric`` and its paper's metrics (:func:`tested_metrics`)."""
    grouped = group_rows(records)
    base = best_baseline(records, metric)
    tests = []
    for label, recs in grouped.items():
        if not per_user.is_llm(recs) or not any(per_user.has_per_user(r) for r in recs):
            continue
        metrics = tested_metrics(recs[0]["model"], metric)
        if base is not None and any(per_user.has_per_user(r) for r in grouped[base]):
            tests += compare(recs, grouped[base], metrics, Comparison(label, base, "best baseline"))
        own, base_recs = own_base(recs, records)
        if own is not None:  # the very runs its frozen ID models are (by sha256, or by era for older records)
            same = {r["seed"] for r in base_recs} == {r["seed"] for r in recs}
            tests += compare(recs, base_recs, metrics, Comparison(label, own, "own ID base", paired_seeds=same))
    tests = [t for t in tests if t.why != "no per-user ranks"]
    tests, m = adjust(tests)
    return base, tests, m


def format_p(p):
    """A p-value to two significant digits: ``0.066``, ``0.40``, ``0.0014``, ``2.0e-4``, ``<1e-4``
    (below that the number says only that the test is far past any threshold)."""
    if p is None or math.isnan(p):
        return "-"
    if p < 1e-4:
        return "<1e-4"
    if p < 1e-3:
        mantissa, exponent = f"{p:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{p:.{max(2, 1 - math.floor(math.log10(p)))}f}"


def _p(p, sep="="):
    """``p=0.066`` / ``p<1e-4``: ``sep`` dropped before a '<'."""
    text = format_p(p)
    return text if text.startswith("<") else f"{sep}{text}"


def _pct(test):
    if math.isnan(test.diff_pct):
        return f"{test.diff:+.4f}"
    return f"{test.diff_pct:+.1f}%"


def cell(test):
    """The table cell of a test (issue 38): signed relative difference and p in one cell,
    ``+6.0%, p=0.066 (Holm 0.40)``; or why it was not tested (``no common seed``)."""
    if test.why:
        return test.why
    return f"{_pct(test)}, p{_p(test.p_ttest)} (Holm {format_p(test.p_holm)})"


def verdict(test):
    """What a test lets a page say: a significant gain/loss only when the Holm-adjusted p and
    the seed-aware p are both below :data:`ALPHA`."""
    _, p_seeds = test.seed_test
    if not test.state:
        return "not distinguishable"
    if math.isnan(p_seeds):
        return "significant per user; one seed, so not tested across seeds"
    if p_seeds >= ALPHA:
        return "significant per user, not across seeds"
    return "a significant gain" if test.diff > 0 else "a significant loss"


def _seeds_text(test):
    if test.paired_seeds:
        n = len(test.seeds_a)
        return f"{n} seed{'s' if n > 1 else ''} ({', '.join(map(str, test.seeds_a))})"
    return (f"seeds {', '.join(map(str, test.seeds_a))} against the base's {', '.join(map(str, test.seeds_b))} "
            "(the base lacks the row's seeds)")


RELATIONS = {"best baseline": "the best baseline", "own ID base": "its own ID base", "reference": "the reference"}


def claim(test, others=(), relations=None):
    """One sentence stating ``test`` at its strength, worded by :func:`verdict`; ``others``: the
    same comparison on the papers' metrics, named where they disagree with it (a significant
    difference of the other sign, or significant per user where it is not, or the reverse).
    ``relations``: what ``test.versus`` is to the row (default: ``test.relation``)."""
    what = " and ".join(RELATIONS.get(r, "") for r in relations or [test.relation] if RELATIONS.get(r))
    versus = f"{what} {test.versus}" if what else test.versus
    if test.why:
        return f"{test.label} vs {versus}: not tested ({test.why})."
    seed_text = _seed_p(test)[2:] or "no seed-aware test (one seed)"
    text = (f"{test.label} vs {versus}: {_pct(test)} {per_user.pretty_metric(test.metric)} "
            f"({test.mean_a:.4f} vs {test.mean_b:.4f}), {_seeds_text(test)}, {test.n_users} users; paired t "
            f"p{_p(test.p_ttest, ' = ')}, Holm {format_p(test.p_holm)} (BH {format_p(test.p_bh)}), {seed_text}: "
            f"{verdict(test)}.")
    disagree = [o for o in others if not o.why and o.metric != test.metric and o.state != test.state]
    if disagree:
        text += " " + "; ".join(f"{per_user.pretty_metric(o.metric)} disagrees: {_pct(o)}, p{_p(o.p_ttest, ' = ')}, "
                                f"Holm {format_p(o.p_holm)}{_seed_p(o)}: {verdict(o)}" for o in disagree) + "."
    if test.not_converged:
        text += (f" Not converged: {', '.join(test.not_converged)}, so the difference may say which trains faster, "
                 f"not which ends better.")
    return text


def _seed_p(test):
    name, p = test.seed_test
    return "" if math.isnan(p) else f", {name} p{_p(p, ' = ')}"


def claims_of(tests, metric=HEADLINE, min_seeds=1, untested=True):
    """Claim sentences of the ``metric`` tests among ``tests`` (adjusted) whose comparison counts
    at least ``min_seeds`` seeds, each comparison once, the papers' metrics folded into it;
    ``untested``: also the comparisons that could not be tested (no common seed)."""
    by_comparison = {}
    for t in tests:
        by_comparison.setdefault(t.key[:4], []).append(t)
    out = []
    for group in by_comparison.values():
        main = next((t for t in group if t.metric == metric), None)
        if main is None or main.why == "no per-user ranks" or (main.why and not untested):
            continue
        if not main.why and main.n_seeds < min_seeds:
            continue
        relations = list(dict.fromkeys(t.relation for t in group))
        others = {t.metric: t for t in group if t.metric != metric}.values()
        out.append(claim(main, list(others), relations))
    return out


def claims(records, pairs=None, metric=HEADLINE, min_seeds=2):
    """The claim sentences of a dataset's records, for generated READMEs.

    Without ``pairs``: the comparison page's tests (:func:`comparison_tests`, adjusted over all
    of them, as the page shows them) of the comparisons that count at least ``min_seeds`` common
    seeds. With ``pairs`` (``[(label A, label B)]``): A against B on their common seeds, on
    ``metric`` and A's paper's metrics, adjusted over these tests only."""
    if pairs is None:
        _, tests, _ = comparison_tests(records, metric)
    else:
        grouped = group_rows(records)
        missing = sorted({x for pair in pairs for x in pair if x not in grouped})
        if missing:
            raise KeyError(f"no rows labelled {', '.join(map(repr, missing))}")
        tests = []
        for a, b in pairs:
            tests += compare(grouped[a], grouped[b], tested_metrics(grouped[a][0]["model"], metric), Comparison(a, b))
        tests, _ = adjust(tests)
    return claims_of(tests, metric, min_seeds)


def _csv_values(test, suffix, headline):
    """CSV columns of one test; the headline metric keeps the page's older names."""
    tag = "" if test.metric == headline else f"_{test.metric}"
    out = {f"diff_pct{tag}_{suffix}": test.diff_pct, f"p_ttest{tag}_{suffix}": test.p_ttest,
           f"p_holm{tag}_{suffix}": test.p_holm, f"p_bh{tag}_{suffix}": test.p_bh,
           f"p_seed_bootstrap{tag}_{suffix}": test.p_bootstrap, f"p_seed_ttest{tag}_{suffix}": test.p_seed_ttest}
    if not tag:
        out.update({f"p_wilcoxon_{suffix}": test.p_wilcoxon, f"seeds_{suffix}": ",".join(map(str, test.seeds_a)),
                    f"base_seeds_{suffix}": ",".join(map(str, test.seeds_b)), f"untested_{suffix}": test.why})
    return out


def significance_columns(records, metric=HEADLINE):
    """What the comparison table shows of the paired tests: ``(pvalues, columns, note)``.

    ``pvalues``: the extra table columns, ``[(header, {label: cell})]`` (None without per-user
    data), each cell :func:`cell`; ``columns``: per LLM label, the CSV values (differences, p,
    Holm, BH, seed-aware p on ``metric`` and the papers' metrics; users; ID base); ``note``: how
    the p-values were made, then the claims (:func:`claims_of`)."""
    base, tests, m = comparison_tests(records, metric)
    headline = [t for t in tests if t.metric == metric]
    vs_best = {t.label: t for t in headline if t.relation == "best baseline"}
    vs_own = {t.label: t for t in headline if t.relation == "own ID base"}
    if not vs_best and not vs_own:
        return None, {}, ""
    name = per_user.pretty_metric(metric)
    pvalues = []
    if vs_best:
        pvalues.append((f"Δ, p ({name} vs {base})", {label: cell(t) for label, t in vs_best.items()}))
    if vs_own:
        pvalues.append((f"Δ, p ({name} vs own ID base)",
                        {label: f"{t.versus}: {cell(t)}" for label, t in vs_own.items()}))
    columns = {}
    for t in tests:
        suffix = "vs_best_baseline" if t.relation == "best baseline" else "vs_id_base"
        row = columns.setdefault(t.label, {})
        if t.metric == metric:
            row["paired_users" if suffix == "vs_best_baseline" else "paired_users_vs_id_base"] = t.n_users
            if suffix == "vs_id_base":
                row["id_base"] = t.versus
        row.update(_csv_values(t, suffix, metric))
    return pvalues, columns, _significance_note(base, tests, m, metric, bool(vs_best))


def _papers_metrics_text():
    return "; ".join(f"{model}: {', '.join(per_user.pretty_metric(x) for x in metrics)}"
                     for model, metrics in PAPER_METRICS.items())


def method_text(m, metric=HEADLINE):
    """The sentences saying how a page's p-values were made (shared by the comparison and variant pages)."""
    name = per_user.pretty_metric(metric)
    return (f"Each row's users are paired by id, each user's value averaged over the seeds both rows have (a row is "
            f"cut to the common seeds, never paired with other seeds); Δ: the signed difference of those means, "
            f"relative to the second row; p: two-sided paired t-test over users. Holm: p adjusted for the {m} tests "
            f"this page reports ({name} and each paper's own metrics, {_papers_metrics_text()}), Benjamini-Hochberg "
            f"(BH) beside it. Seed-aware test: a bootstrap over the common seeds and the users ({RESAMPLES:,} "
            f"resamples, seeds and users drawn with replacement, the same seed on both sides, RNG seed "
            f"{BOOTSTRAP_SEED}; its smallest p is {format_p(2 / (RESAMPLES + 1))}), or a paired t-test over per-seed means from {MIN_SEEDS_T} common seeds on; none "
            f"with one seed, where p says whether the two trained models rank the same users differently, not "
            f"whether the difference survives another seed. A difference is called significant only when Holm < "
            f"{ALPHA} and the seed-aware p < {ALPHA}. The papers' metrics, Wilcoxon signed-rank p, BH and the "
            f"seed-aware p are in the CSV.")


# where each paper asks "does the LLM model beat its own ID base?": IDLE-Adapter on ComiRec is its
# overall comparison (Table 2), on SASRec and MLP4Rec its Table 3; RA-Rec's is its Table 3 (ID bases)
OWN_BASE_QUESTION = ("IDLE-Adapter's Table 2 on ComiRec and Table 3 on other ID bases, RA-Rec's Table 3")


def _significance_note(base, tests, m, metric, has_base):
    """The paragraphs under the comparison table: how its tests were made, then what they say."""
    name = per_user.pretty_metric(metric)
    if has_base:
        head = (f"Δ, p: each LLM row against the best baseline ({base}: the converged baseline row with the highest "
                f"mean validation {name}) and against its own frozen ID models ({OWN_BASE_QUESTION}: its "
                f"ID model's row, the runs of the LLM row's seeds), on per-user test {name}. ")
    else:
        why = ("no baseline row is converged, so there is no best baseline to test the LLM rows against" if base is None
               else f"the best converged baseline ({base}) has no per-user ranks to test the LLM rows against")
        head = (f"Δ, p: {why}; each LLM row against its own frozen ID models ({OWN_BASE_QUESTION}: its ID "
                f"model's row, the runs of the LLM row's seeds), on per-user test {name}. ")
    note = head + method_text(m, metric)
    multi = claims_of(tests, metric, min_seeds=2, untested=False)
    if multi:
        note += "\n\nClaims (comparisons over 2 or more seeds): " + " ".join(multi)
    single = [c for c in claims_of(tests, metric, min_seeds=1) if c not in multi and " disagrees: " in c]
    untested = [c for c in claims_of(tests, metric, min_seeds=1) if c.endswith("(no common seed).")]
    if single:
        note += ("\n\nOne seed, where the papers' metrics disagree with " + name + ": " + " ".join(single))
    if untested:
        note += "\n\nNot tested: " + " ".join(untested)
    return note
