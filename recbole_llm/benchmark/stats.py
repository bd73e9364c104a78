"""Statistics of a results page: means over seeds and the paired significance tests of the LLM rows."""

import math
import statistics

from recbole_llm.benchmark import convergence, per_user
from recbole_llm.benchmark.records import group_rows


def mean_of(recs, get):
    """Mean over a row's records of ``get(record)``, skipping None; NaN when nothing is left."""
    values = [v for v in (get(r) for r in recs) if v is not None]
    return statistics.fmean(values) if values else float("nan")


def metric_mean(recs, metric):
    """Mean over a row's records of test ``metric`` (NaN without one)."""
    return mean_of(recs, lambda r: (r.get("test") or {}).get(metric))


def best_baseline(records, metric="ndcg@10"):
    """Label of the converged non-LLM row with the highest mean test ``metric`` (None without one):
    an unconverged row's number says when training stopped, not how good the model is
    (:mod:`~recbole_llm.benchmark.convergence`)."""
    grouped = group_rows(records)
    flagged = convergence.unconverged(grouped)
    candidates = [(label, metric_mean(recs, metric)) for label, recs in grouped.items()
                  if not per_user.is_llm(recs) and label not in flagged]
    candidates = [c for c in candidates if not math.isnan(c[1])]
    return max(candidates, key=lambda c: c[1])[0] if candidates else None


def significance(records, metric="ndcg@10"):
    """``(baseline label, {LLM label: paired_test result})`` on per-user ``metric``, users paired
    by token, each user's value averaged over the row's seeds."""
    base = best_baseline(records, metric)
    if base is None:
        return None, {}
    grouped = group_rows(records)
    base_values = per_user.user_means(grouped[base], metric)
    if not base_values:
        return base, {}
    out = {}
    for label, recs in grouped.items():
        if per_user.is_llm(recs):
            values = per_user.user_means(recs, metric)
            if values:
                out[label] = per_user.paired_test(values, base_values)
    return base, out


def id_base_records(llm_recs, base_recs):
    """The records of an ID-base row that an LLM row's frozen models are: those of the LLM row's
    seeds (the runner trains or reuses the ID model under the LLM run's seed). When the base row
    lacks one of those seeds (a checkpoint given by hand), all its records stand for it."""
    seeds = {r["seed"] for r in llm_recs}
    matched = [r for r in base_recs if r["seed"] in seeds]
    return matched if {r["seed"] for r in matched} == seeds else list(base_recs)


def id_base_significance(records, metric="ndcg@10"):
    """``{LLM label: (ID base label, paired_test result)}``: each LLM row against its own frozen ID
    models (the row labelled like the record's ``id_model_name``, its records of the same seeds:
    :func:`id_base_records`; the papers' Table 3)."""
    grouped = group_rows(records)
    out = {}
    for label, recs in grouped.items():
        if not per_user.is_llm(recs):
            continue
        base = recs[0].get("parameters", {}).get("id_model_name")
        if base not in grouped or per_user.is_llm(grouped[base]):
            continue
        values = per_user.user_means(recs, metric)
        base_values = per_user.user_means(id_base_records(recs, grouped[base]), metric)
        if values and base_values:
            out[label] = (base, per_user.paired_test(values, base_values))
    return out


def significance_columns(records, metric="ndcg@10"):
    """What the comparison table shows of the paired tests: ``(pvalues, columns, note)``.

    ``pvalues``: the extra table columns, ``[(header, {label: text})]`` (None without per-user
    data); ``columns``: per LLM label, the CSV values (p-values, Wilcoxon p-values, users, ID base);
    ``note``: one paragraph saying how the p-values were made, with mean differences.
    """
    fmt = per_user.format_p
    base, tests = significance(records, metric)
    tests = {label: t for label, t in tests.items() if t}
    base_tests = {label: bt for label, bt in id_base_significance(records, metric).items() if bt[1]}
    if not tests and not base_tests:
        return None, {}, ""
    name = per_user.pretty_metric(metric)
    pvalues = []
    if tests:
        pvalues.append((f"p ({name} vs {base})", {label: fmt(t["p_ttest"]) for label, t in tests.items()}))
    if base_tests:
        pvalues.append((f"p ({name} vs own ID base)",
                        {label: f"{fmt(t['p_ttest'])} ({b})" for label, (b, t) in base_tests.items()}))
    columns = {label: {"p_ttest_vs_best_baseline": t["p_ttest"], "p_wilcoxon_vs_best_baseline": t["p_wilcoxon"],
                       "paired_users": t["n_users"]} for label, t in tests.items()}
    for label, (b, t) in base_tests.items():
        columns.setdefault(label, {}).update({"id_base": b, "p_ttest_vs_id_base": t["p_ttest"], "p_wilcoxon_vs_id_base": t["p_wilcoxon"]})
    return pvalues, columns, _significance_note(base, tests, base_tests, name)


def _significance_note(base, tests, base_tests, name):
    """The paragraph under the comparison table saying how its p-values were made."""
    fmt = per_user.format_p
    if tests:
        note = (f"p: two-sided paired t-test of each LLM row against the best baseline ({base}, the converged "
                f"baseline row with the highest mean test {name}) on per-user test {name}, users paired by id, each "
                "user's value averaged over the row's seeds; Wilcoxon signed-rank p-values and the number of users "
                "are in the CSV. "
                + "; ".join(f"{label}: mean difference {t['mean_diff']:+.4f} over {t['n_users']} users, Wilcoxon p "
                            f"{fmt(t['p_wilcoxon'])}" for label, t in tests.items()) + ".")
    else:
        why = ("no baseline row is converged, so there is no best baseline to test the LLM rows against" if base is None
               else f"the best converged baseline ({base}) has no per-user ranks to test the LLM rows against")
        note = (f"p: {why}; two-sided paired t-tests on per-user test {name}, users paired by id, each user's value "
                "averaged over the row's seeds.")
    if base_tests:
        note += (" Against each LLM row's own frozen ID models (the papers' Table 3 question: its ID model's row in "
                 "this table, the runs of the LLM row's seeds), the same test: " + "; ".join(f"{label} vs {b}: mean difference {t['mean_diff']:+.4f}, Wilcoxon p "
                                              f"{fmt(t['p_wilcoxon'])}" for label, (b, t) in base_tests.items()) + ".")
    return note
