"""What a dataset's results page shows besides the comparison table: the paired significance of
each LLM row against the best baseline, the cost table, and three plots.

All of it is regenerated from the run records (``runs/*.json``), like the table; nothing here
trains or evaluates anything.
"""

import math
import statistics

import numpy as np
from tabulate import tabulate

from recbole_llm.benchmark import convergence, per_user
from recbole_llm.benchmark.records import group_rows, history_lengths


def rows(records):
    """``{label: [records of its seeds]}``, newest record per (label, seed), in table order
    (:func:`~recbole_llm.benchmark.records.group_rows`)."""
    return group_rows(records)


def _mean(recs, metric):
    return mean_of(recs, lambda r: (r.get("test") or {}).get(metric))


def best_baseline(records, metric="ndcg@10"):
    """Label of the converged non-LLM row with the highest mean test ``metric`` (None without one):
    an unconverged row's number says when training stopped, not how good the model is
    (:mod:`~recbole_llm.benchmark.convergence`)."""
    grouped = rows(records)
    flagged = convergence.unconverged(grouped)
    candidates = [(label, _mean(recs, metric)) for label, recs in grouped.items()
                  if not per_user.is_llm(recs) and label not in flagged]
    candidates = [c for c in candidates if not math.isnan(c[1])]
    return max(candidates, key=lambda c: c[1])[0] if candidates else None


def significance(records, metric="ndcg@10"):
    """``(baseline label, {LLM label: paired_test result})`` on per-user ``metric``, users paired
    by token, each user's value averaged over the row's seeds."""
    base = best_baseline(records, metric)
    if base is None:
        return None, {}
    grouped = rows(records)
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


def id_base_significance(records, metric="ndcg@10"):
    """``{LLM label: (ID base label, paired_test result)}``: each LLM row against the row of its own
    frozen ID model (the row labelled like the record's ``id_model_name``; the papers' Table 3)."""
    grouped = rows(records)
    out = {}
    for label, recs in grouped.items():
        if not per_user.is_llm(recs):
            continue
        base = recs[0].get("parameters", {}).get("id_model_name")
        if base not in grouped or per_user.is_llm(grouped[base]):
            continue
        values, base_values = per_user.user_means(recs, metric), per_user.user_means(grouped[base], metric)
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
    name = per_user_label(metric)
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
        note += (" Against each LLM row's own frozen ID model (its row in this table, the papers' Table 3 question), "
                 "the same test: " + "; ".join(f"{label} vs {b}: mean difference {t['mean_diff']:+.4f}, Wilcoxon p "
                                              f"{fmt(t['p_wilcoxon'])}" for label, (b, t) in base_tests.items()) + ".")
    return pvalues, columns, note


def _fmt(value, digits=1):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def mean_of(recs, get):
    """Mean over a row's records of ``get(record)``, skipping None; NaN when nothing is left."""
    values = [v for v in (get(r) for r in recs) if v is not None]
    return statistics.fmean(values) if values else float("nan")


def trained_on(recs):
    """What a row's LLM models tuned on: ``all <n>`` or ``<strategy> <selected>``."""
    sel = next((r.get("data_selection") for r in recs if r.get("data_selection")), None)
    if not sel or sel.get("strategy") in (None, "all"):
        n = recs[0].get("dataset_stats", {}).get("train_samples")
        return f"all {n:,}" if n else "all"
    return f"{sel['strategy']} {sel['selected']:,}"


def cost_rows(records):
    """One row per label: means over seeds of what each run cost (see the header of :func:`cost_table`)."""
    out = []
    for label, recs in rows(records).items():
        def mean(get):
            return mean_of(recs, get)

        cost = lambda key: mean(lambda r: r.get("cost", {}).get(key))  # noqa: E731
        data = trained_on(recs)
        out.append({
            "model": label,
            "seeds": len(recs),
            "data": data,
            "epochs": mean(lambda r: r.get("epochs_run")),
            "train_s_per_epoch": cost("train_time_per_epoch_s"),
            "train_samples_per_s": cost("train_samples_per_s"),
            "bare_lm_samples_per_s": cost("train_samples_per_s_bare_lm"),
            "throughput_ratio": cost("adapter_throughput_ratio"),
            "valid_s": cost("valid_time_per_epoch_s"),
            "test_s": cost("test_time_s"),
            "peak_rss_mb": cost("peak_rss_mb"),
            "peak_gpu_mb": cost("peak_gpu_mb"),
            "trainable": mean(lambda r: r.get("parameters", {}).get("trainable")),
            # the model's own total includes the frozen LM (a submodule); the frozen ID model is not one
            "total": mean(lambda r: r.get("parameters", {}).get("total", 0) + r.get("parameters", {}).get("id_model", 0)),
            "device": recs[0].get("device"),
        })
    return out


def cost_table(records):
    """The cost table as Markdown (means over each row's seeds)."""
    flagged = convergence.unconverged(rows(records))
    body = []
    for c in cost_rows(records):
        body.append([
            convergence.marked(c["model"], c["model"] in flagged), c["seeds"], c["data"], _fmt(c["epochs"]), _fmt(c["train_s_per_epoch"]),
            _fmt(c["train_samples_per_s"]), _fmt(c["bare_lm_samples_per_s"]), _fmt(c["throughput_ratio"], 2),
            _fmt(c["valid_s"], 2), _fmt(c["test_s"], 2), _fmt(c["peak_rss_mb"], 0), _fmt(c["peak_gpu_mb"], 0),
            _fmt(c["trainable"], 0), _fmt(c["total"], 0), c["device"],
        ])
    headers = ["Model", "Seeds", "Trained on", "Epochs", "Train s/epoch", "Train samples/s",
               "Bare LM samples/s", "Adapter ratio", "Valid s (all users)", "Test s (all users)",
               "Peak RSS MB", "Peak GPU MB", "Trainable params", "Total params", "Device"]
    table = tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
    note = convergence.footnote(flagged, uses="an unconverged row's epochs are where it was cut off, not "
                                              "what convergence costs")
    return table + ("\n\n" + note if note else "")


def history_edges(records):
    """Bucket edges over users' full history lengths: quartiles, the 90th percentile, and above."""
    lengths = next((history_lengths(r) for r in records if per_user.has_per_user(r)), None)
    if not lengths:
        return None
    q = np.percentile(lengths, [25, 50, 75, 90])
    edges = sorted({int(min(lengths))} | {int(math.ceil(v)) for v in q})
    return edges + [math.inf]


def render_plots(dataset, records, metrics=("hit@10", "ndcg@10")):
    """``{name: PNG bytes}`` of ``metrics.png``, ``valid_curves.png`` and ``long_history.png``
    (the last two when there are LLM rows / per-user ranks). Rendered in memory, so that the
    caller writes the page's files as one unit (:func:`recbole_llm.fsutil.write_file_set`)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = rows(records)
    flagged = convergence.unconverged(grouped)
    written = {}

    def save(fig, name):
        buf = io.BytesIO()
        fig.savefig(buf, dpi=110, bbox_inches="tight", format="png")
        plt.close(fig)
        written[name] = buf.getvalue()

    # 1. test metrics per row, with every seed's value
    labels = list(grouped)
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(4.5, 0.6 * len(labels)) * len(metrics), 4.2))
    axes = np.atleast_1d(axes)
    for ax, metric in zip(axes, metrics):
        means = [_mean(grouped[lab], metric) for lab in labels]
        colors = ["tab:orange" if per_user.is_llm(grouped[lab]) else "tab:blue" for lab in labels]
        ax.bar(range(len(labels)), means, color=colors, alpha=0.6)
        for i, lab in enumerate(labels):
            values = [r["test"][metric] for r in grouped[lab] if r.get("test")]
            ax.scatter([i] * len(values), values, color="black", s=12, zorder=3)
        ax.set_xticks(range(len(labels)), [convergence.marked(lab, lab in flagged) for lab in labels],
                      rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{dataset}: test {per_user_label(metric)}\n(bars: mean over seeds, dots: each seed"
                     + (f"; {convergence.MARK} not converged)" if flagged else ")"), fontsize=9)
    save(fig, "metrics.png")

    # 2. validation metric per epoch: each LLM row against its ID base model's row
    llm = [lab for lab in labels if per_user.is_llm(grouped[lab])]
    if llm:
        fig, ax = plt.subplots(figsize=(10, 4.6))
        ax.set_prop_cycle(color=plt.cm.tab20.colors)  # 20 distinct colours: ablation rows add up
        valid_key = grouped[llm[0]][0]["protocol"]["valid_metric"].lower()
        bases = set()
        for lab in llm:
            _curve(ax, grouped[lab], valid_key, lab, "-")
            bases.update(r.get("parameters", {}).get("id_model_name") for r in grouped[lab])
        for base in sorted(b for b in bases if b in grouped):
            _curve(ax, grouped[base], valid_key, f"{base} (ID base)", "--")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {per_user_label(valid_key)}\n(mean over the seeds still training)")
        ax.set_title(f"{dataset}: LLM models against their ID base model", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        fig.tight_layout()
        save(fig, "valid_curves.png")

    # 3. long histories (RA-Rec Fig. 4): test NDCG@10 per history-length bucket, one row per model
    # (a heat map with the values written in: readable with two dozen rows, unlike grouped bars)
    edges = history_edges(records)
    shown = [lab for lab in labels if any(per_user.has_per_user(r) for r in grouped[lab])]
    if edges and shown:
        table = [per_user.history_slices(grouped[lab], "ndcg@10", edges) for lab in shown]
        values = np.array([[s[2] for s in row] for row in table])
        fig, ax = plt.subplots(figsize=(1.1 * values.shape[1] + 4.5, 0.32 * len(shown) + 1.6))
        image = ax.imshow(values, aspect="auto", cmap="viridis")
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                ax.text(j, i, f"{values[i, j]:.3f}", ha="center", va="center", fontsize=7,
                        color="white" if values[i, j] < np.nanmean(values) else "black")
        ax.set_xticks(range(values.shape[1]), [f"{s[0]}\n({s[1]} users)" for s in table[0]], fontsize=7)
        ax.set_yticks(range(len(shown)), shown, fontsize=7)
        ax.set_xlabel("user's history length before the test item")
        ax.set_title(f"{dataset}: test NDCG@10 by history length (mean over each row's seeds)", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.04)
        fig.tight_layout()
        save(fig, "long_history.png")
    return written


def _curve(ax, recs, key, label, style):
    by_epoch = {}
    for r in recs:
        for e in r.get("history", []):
            if key in e.get("valid", {}):
                by_epoch.setdefault(e["epoch"], []).append(e["valid"][key])
    if by_epoch:
        epochs = sorted(by_epoch)
        ax.plot(epochs, [statistics.fmean(by_epoch[e]) for e in epochs], style, marker="o", ms=3, label=label)


def per_user_label(metric):
    from recbole_llm.benchmark.per_user import pretty_metric

    return pretty_metric(metric)


def render_report(dataset, records, command=None):
    """``{name: content}`` of ``cost.md`` (text) and the plots (PNG bytes), nothing written yet."""
    text = cost_table(records)
    lines = [f"# {dataset}: cost", "",
             "Means over each row's seeds, from the run records' `cost` and `parameters`. Train samples/s is "
             "over the training epochs; for the LLM rows, *Bare LM samples/s* is the frozen LM's own "
             "forward+backward on the same batches, timed in the same run after training, and *Adapter "
             "ratio* is the model's throughput over it on those batches. Valid/Test s: one full-ranking pass over all "
             "users and items. Peak RSS is per run (reset at its start). Total params count the frozen LM and "
             "ID model for the LLM rows.", "", text]
    if command:
        lines += ["", f"Regenerate: `{command}`"]
    return {"cost.md": "\n".join(lines) + "\n", **render_plots(dataset, records)}
