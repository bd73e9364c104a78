"""The comparison table: the run records summarized per row, rendered as Markdown, CSV and LaTeX.

Layout follows the papers' tables: one row per model, one column per metric, each cell the
mean +- std over seeds, the best value of a column in bold and the second underlined, and
an ``Improv.%`` row of a target model against the best other model of each column. Rows whose
training did not converge are marked ``†`` with a footnote giving the causes
(:mod:`~recbole_llm.benchmark.convergence`); the ``Improv.%`` row compares converged rows only.
"""

import io
import statistics

import pandas as pd
from tabulate import tabulate

from recbole_llm.benchmark import convergence
from recbole_llm.benchmark.per_user import pretty_metric
from recbole_llm.benchmark.records import group_rows

DEFAULT_METRICS = ("hit@5", "hit@10", "ndcg@5", "ndcg@10", "hit@50", "hit@100", "mrr@10")


def summarize(records, metrics=DEFAULT_METRICS):
    """DataFrame indexed by label: n_seeds, seeds, <metric>_mean, <metric>_std, epochs, wall time,
    ``converged`` and, for the rows that are not, ``not_converged_because`` (causes joined by '; ')."""
    groups = group_rows(records)
    rows = []
    for label, recs in groups.items():
        recs = sorted(recs, key=lambda r: r["seed"])
        row = {"model": label, "n_seeds": len(recs), "seeds": ",".join(str(r["seed"]) for r in recs)}
        for m in metrics:
            values = [r["test"][m] for r in recs if m in r["test"]]
            row[f"{m}_mean"] = statistics.fmean(values) if values else float("nan")
            row[f"{m}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        valid_key = recs[0]["protocol"]["valid_metric"].lower()
        row[f"valid_{valid_key}_mean"] = statistics.fmean(r["valid"][valid_key] for r in recs)
        row["epochs_mean"] = statistics.fmean(r["epochs_run"] for r in recs)
        row["wall_time_s_mean"] = statistics.fmean(r["cost"]["wall_time_s"] for r in recs)
        row["commits"] = ",".join(sorted({r["commit"][:12] for r in recs}))
        stats = [r["prompt_stats"] for r in recs if r.get("prompt_stats")]
        row["titles_per_prompt_mean"] = statistics.fmean(p["mean_titles"] for p in stats) if stats else float("nan")
        causes = convergence.row_causes(recs)
        row["converged"] = not causes
        row["not_converged_because"] = "; ".join(causes)
        rows.append(row)
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def _ranks(values):
    """Positions of the best and second-best distinct values (larger is better)."""
    distinct = sorted({v for v in values if v == v}, reverse=True)
    best = distinct[0] if distinct else None
    second = distinct[1] if len(distinct) > 1 else None
    return best, second


def unconverged_rows(summary):
    """``{label: [causes]}`` of the summary's rows that are not converged (none without the column)."""
    if "converged" not in summary.columns:
        return {}
    return {label: [c for c in str(row["not_converged_because"]).split("; ") if c]
            for label, row in summary.iterrows() if not row["converged"]}


def improvement(summary, target, metrics=DEFAULT_METRICS, exclude=()):
    """Relative gain (%) of ``target`` over the best other row, per metric; rows in ``exclude``
    are not compared against (an LLM row is compared with the baselines, not the other LLM rows),
    nor are unconverged rows. None when ``target`` is missing or not converged, or nothing is left."""
    if target not in summary.index or len(summary) < 2:
        return None
    if target in unconverged_rows(summary):
        return None
    out = {}
    skip = set(exclude) | set(unconverged_rows(summary))
    others = summary.drop(index=[target] + [x for x in skip if x in summary.index and x != target])
    if others.empty:
        return None
    for m in metrics:
        best_other = others[f"{m}_mean"].max()
        out[m] = 100.0 * (summary.loc[target, f"{m}_mean"] - best_other) / best_other if best_other else float("nan")
    return out


def render(summary, metrics=DEFAULT_METRICS, target=None, fmt="github", digits=4, pvalues=None, llm_rows=()):
    """The table as text in a tabulate format (``github`` or ``latex_raw``).

    ``pvalues``: a list of ``(column header, {label: text})``, last columns (the paired tests of
    each LLM row); rows without an entry show ``-``.
    """
    latex = fmt.startswith("latex")
    bold = (lambda s: rf"\textbf{{{s}}}") if latex else (lambda s: f"**{s}**")
    under = (lambda s: rf"\underline{{{s}}}") if latex else (lambda s: f"<u>{s}</u>")
    pm = r" $\pm$ " if latex else " ± "
    headers = ["Model", "Seeds"] + [pretty_metric(m) for m in metrics]
    for header, _ in pvalues or ():
        headers.append(header)
    ranks = {m: _ranks(list(summary[f"{m}_mean"])) for m in metrics}
    flagged = unconverged_rows(summary)
    body = []
    for label, row in summary.iterrows():
        name = label.replace("_", r"\_") if latex else label
        cells = [convergence.marked(name, label in flagged, latex), int(row["n_seeds"])]
        for m in metrics:
            mean, std = row[f"{m}_mean"], row[f"{m}_std"]
            text = f"{mean:.{digits}f}" + (f"{pm}{std:.{digits}f}" if row["n_seeds"] > 1 else "")
            best, second = ranks[m]
            if mean == best:
                text = bold(text)
            elif mean == second:
                text = under(text)
            cells.append(text)
        for _, column in pvalues or ():
            cells.append(column.get(label, "-"))
        body.append(cells)
    gain = improvement(summary, target, metrics, exclude=llm_rows) if target else None
    pct = r"\%" if latex else "%"
    versus = "best converged baseline" if target in llm_rows else "best converged other"
    name = (target or "").replace("_", r"\_") if latex else target
    if gain is not None:
        body.append([f"Improv.{pct} ({name} vs {versus})", ""] + [f"{gain[m]:+.2f}{pct}" for m in metrics]
                    + [""] * len(pvalues or ()))
    elif target in flagged:
        body.append([f"Improv.{pct} ({name} vs {versus}; n/a: {name} not converged)", ""] + ["n/a"] * len(metrics)
                    + [""] * len(pvalues or ()))
    table = tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)
    uses = f"Improv.{pct} and the best baseline of the p-values use converged rows only"
    note = convergence.footnote(flagged, latex, uses)
    return table + ("\n\n" + note if note else "")


def to_csv(summary):
    buf = io.StringIO()
    summary.to_csv(buf, float_format="%.6f")
    return buf.getvalue()
