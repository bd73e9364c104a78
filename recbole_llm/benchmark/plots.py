"""The plots of a results page (``metrics.png``, ``valid_curves.png``, ``long_history.png``), as PNG bytes."""

import io
import math
import statistics

import numpy as np

from recbole_llm.benchmark import convergence, per_user
from recbole_llm.benchmark.per_user import pretty_metric
from recbole_llm.benchmark.records import group_rows, history_lengths
from recbole_llm.benchmark.stats import metric_mean


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = group_rows(records)
    written = {}

    def save(fig, name):
        buf = io.BytesIO()
        fig.savefig(buf, dpi=110, bbox_inches="tight", format="png")
        plt.close(fig)
        written[name] = buf.getvalue()

    save(_metrics_figure(plt, dataset, grouped, metrics), "metrics.png")
    fig = _valid_curves_figure(plt, dataset, grouped)
    if fig is not None:
        save(fig, "valid_curves.png")
    fig = _long_history_figure(plt, dataset, records, grouped)
    if fig is not None:
        save(fig, "long_history.png")
    return written


def _metrics_figure(plt, dataset, grouped, metrics):
    """Test ``metrics`` per row: bars of the mean over seeds, a dot per seed."""
    flagged = convergence.unconverged(grouped)
    labels = list(grouped)
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(4.5, 0.6 * len(labels)) * len(metrics), 4.2))
    axes = np.atleast_1d(axes)
    for ax, metric in zip(axes, metrics):
        means = [metric_mean(grouped[lab], metric) for lab in labels]
        colors = ["tab:orange" if per_user.is_llm(grouped[lab]) else "tab:blue" for lab in labels]
        ax.bar(range(len(labels)), means, color=colors, alpha=0.6)
        for i, lab in enumerate(labels):
            values = [r["test"][metric] for r in grouped[lab] if r.get("test")]
            ax.scatter([i] * len(values), values, color="black", s=12, zorder=3)
        ax.set_xticks(range(len(labels)), [convergence.marked(lab, lab in flagged) for lab in labels],
                      rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{dataset}: test {pretty_metric(metric)}\n(bars: mean over seeds, dots: each seed"
                     + (f"; {convergence.MARK} not converged)" if flagged else ")"), fontsize=9)
    return fig


def _valid_curves_figure(plt, dataset, grouped):
    """Validation metric per epoch: each LLM row against its ID base model's row (None without LLM rows)."""
    llm = [lab for lab in grouped if per_user.is_llm(grouped[lab])]
    if not llm:
        return None
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
    ax.set_ylabel(f"validation {pretty_metric(valid_key)}\n(mean over the seeds still training)")
    ax.set_title(f"{dataset}: LLM models against their ID base model", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def _long_history_figure(plt, dataset, records, grouped):
    """Long histories (the slicing of RA-Rec's Fig. 4, which compares RA-Rec with its bare LM; here every
    row with per-user ranks, so the figure is not the paper's comparison): test NDCG@10 per history-length bucket, one row per model, as a
    heat map with the values written in (readable with two dozen rows, unlike grouped bars); None
    without per-user ranks."""
    edges = history_edges(records)
    shown = [lab for lab in grouped if any(per_user.has_per_user(r) for r in grouped[lab])]
    if not (edges and shown):
        return None
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
    return fig


def _curve(ax, recs, key, label, style):
    by_epoch = {}
    for r in recs:
        for e in r.get("history", []):
            if key in e.get("valid", {}):
                by_epoch.setdefault(e["epoch"], []).append(e["valid"][key])
    if by_epoch:
        epochs = sorted(by_epoch)
        ax.plot(epochs, [statistics.fmean(by_epoch[e]) for e in epochs], style, marker="o", ms=3, label=label)
