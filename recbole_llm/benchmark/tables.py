"""The comparison table: the run records summarized per row, rendered as Markdown, CSV and LaTeX.

Layout follows the papers' tables: one row per model, one column per metric, each cell the
mean +- std over seeds, the best value of a column in bold and the second underlined (among the
rows of at least :data:`MIN_SEEDS_RANKED` seeds: a one-seed row's lucky draw is no winner), and
an ``Improv.%`` row of a target model against one baseline, the converged row with the highest
mean validation metric (the one the p-values test against,
:func:`~recbole_llm.benchmark.stats.best_baseline`; chosen on validation so that the test set
does not pick it). Rows whose training did not converge are marked ``†`` with a footnote giving
the causes (:mod:`~recbole_llm.benchmark.convergence`). An LLM row shows its frozen LM and ID base
(columns ``LM`` and ``ID base``, from its records' config: :func:`~recbole_llm.benchmark.labels.row_lm`).
Labels are escaped for the format (:mod:`~recbole_llm.benchmark.labels`): a ``|`` or ``&`` in a
label does not split a cell, nor does ``%`` end a LaTeX line.
"""

import dataclasses
import io
import statistics
from collections.abc import Sequence

import pandas as pd
from tabulate import tabulate

from recbole_llm.benchmark import convergence
from recbole_llm.benchmark.labels import escape_latex, escape_markdown, row_id_base, row_lm
from recbole_llm.benchmark.per_user import pretty_metric
from recbole_llm.benchmark.records import group_rows

DEFAULT_METRICS = ("hit@5", "hit@10", "ndcg@5", "ndcg@10", "hit@50", "hit@100", "mrr@10")
MIN_SEEDS_RANKED = 3
SELECT_BY = "ndcg@10"  # the validation metric the Improv.% baseline is chosen by (as stats.best_baseline)


def summarize(records, metrics=DEFAULT_METRICS):
    """DataFrame indexed by label: n_seeds, seeds, the LM and ID base of an LLM row ('' otherwise),
    <metric>_mean, <metric>_std, epochs, wall time, ``converged`` and, for the rows that are not,
    ``not_converged_because`` (causes joined by '; ')."""
    groups = group_rows(records)
    rows = []
    for label, recs in groups.items():
        recs = sorted(recs, key=lambda r: r["seed"])
        row = {"model": label, "n_seeds": len(recs), "seeds": ",".join(str(r["seed"]) for r in recs),
               "lm": row_lm(recs), "id_base": row_id_base(recs)}
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


def baseline_row(summary, target, exclude=()):
    """The row ``target`` is compared with: among the converged rows other than ``target`` and
    ``exclude``, the one with the highest mean validation :data:`SELECT_BY` (else the
    summary's validation column); None when there is none."""
    column = f"valid_{SELECT_BY}_mean"
    if column not in summary.columns:
        column = next((c for c in summary.columns if c.startswith("valid_") and c.endswith("_mean")), None)
    if column is None:
        return None
    skip = {target, *exclude, *unconverged_rows(summary)}
    others = summary[[label not in skip for label in summary.index]][column].dropna()
    return others.idxmax() if not others.empty else None  # idxmax: the first row on a tie


def improvement(summary, target, metrics=DEFAULT_METRICS, exclude=()):
    """``(baseline, {metric: relative gain %})`` of ``target`` over :func:`baseline_row`, every
    column against that one row; rows in ``exclude`` are not compared against (an LLM row is
    compared with the baselines, not the other LLM rows). None when ``target`` is missing or not
    converged, or no row is left."""
    if target not in summary.index or target in unconverged_rows(summary):
        return None
    base = baseline_row(summary, target, exclude)
    if base is None:
        return None
    out = {}
    for m in metrics:
        other = summary.loc[base, f"{m}_mean"]
        out[m] = 100.0 * (summary.loc[target, f"{m}_mean"] - other) / other if other else float("nan")
    return base, out


@dataclasses.dataclass(frozen=True)
class TableStyle:
    """How :func:`render` prints a table: a tabulate format (``github`` for Markdown or
    ``latex_raw``) and the decimal places of each mean and std."""

    fmt: str = "github"
    digits: int = 4


MARKDOWN = TableStyle("github")
LATEX = TableStyle("latex_raw")


def render(summary: pd.DataFrame, metrics: Sequence[str] = DEFAULT_METRICS, target: str | None = None,
           style: TableStyle = MARKDOWN, pvalues: list | None = None, llm_rows: Sequence[str] = ()) -> str:
    """The table as text in the ``style`` (:data:`MARKDOWN` or :data:`LATEX`).

    ``pvalues``: a list of ``(column header, {label: text})``, last columns (the paired tests of
    each LLM row); rows without an entry show ``-``. Columns ``LM`` and ``ID base`` follow the
    label when a row has an LM (the summary's ``lm`` and ``id_base``).
    """
    fmt, digits = style.fmt, style.digits
    latex = fmt.startswith("latex")
    bold = (lambda s: rf"\textbf{{{s}}}") if latex else (lambda s: f"**{s}**")
    under = (lambda s: rf"\underline{{{s}}}") if latex else (lambda s: f"<u>{s}</u>")
    esc = escape_latex if latex else escape_markdown
    pm = r" $\pm$ " if latex else " ± "
    bases = "lm" in summary.columns and any(summary["lm"].fillna("").astype(str).str.len() > 0)
    headers = ["Model"] + (["LM", "ID base"] if bases else []) + ["Seeds"] + [pretty_metric(m) for m in metrics]
    for header, _ in pvalues or ():
        headers.append(esc(header))
    ranked = summary[summary["n_seeds"] >= MIN_SEEDS_RANKED]
    ranks = {m: _ranks(list(ranked[f"{m}_mean"])) for m in metrics}
    flagged = unconverged_rows(summary)
    body = []
    for label, row in summary.iterrows():
        cells = [convergence.marked(esc(label), label in flagged, latex)]
        if bases:
            cells += [esc(row["lm"] or "-"), esc(row["id_base"] or "-")]
        cells.append(int(row["n_seeds"]))
        for m in metrics:
            mean, std = row[f"{m}_mean"], row[f"{m}_std"]
            text = f"{mean:.{digits}f}" + (f"{pm}{std:.{digits}f}" if row["n_seeds"] > 1 else "")
            best, second = ranks[m] if row["n_seeds"] >= MIN_SEEDS_RANKED else (None, None)
            if mean == best:
                text = bold(text)
            elif mean == second:
                text = under(text)
            cells.append(text)
        for _, column in pvalues or ():
            cells.append(esc(column.get(label, "-")))
        body.append(cells)
    gain = improvement(summary, target, metrics, exclude=llm_rows) if target else None
    pct = r"\%" if latex else "%"
    kind = "baseline" if target in llm_rows else "other row"
    name = esc(target or "")
    blank = [""] * (2 if bases else 0)
    if gain is not None:
        base, values = gain
        body.append([f"Improv.{pct} ({name} vs {esc(base)}, the converged {kind} with the best validation "
                     f"{pretty_metric(SELECT_BY)})", *blank, ""] + [f"{values[m]:+.2f}{pct}" for m in metrics]
                    + [""] * len(pvalues or ()))
    elif target in flagged:
        body.append([f"Improv.{pct} ({name} vs best converged {kind}; n/a: {name} not converged)", *blank, ""]
                    + ["n/a"] * len(metrics) + [""] * len(pvalues or ()))
    table = tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)
    ranked_note = (f"Bold: the best value of a column, underlined: the second, among the rows of at least "
                   f"{MIN_SEEDS_RANKED} seeds." if len(ranked) else
                   f"Nothing is bold or underlined: no row has {MIN_SEEDS_RANKED} seeds, and a one-seed draw "
                   f"is no winner.")
    uses = f"Improv.{pct} and the best baseline of the p-values use converged rows only"
    note = convergence.footnote(flagged, latex, uses)  # escapes its own LaTeX
    return table + "\n\n" + ranked_note + ("\n\n" + note if note else "")


def to_csv(summary):
    buf = io.StringIO()
    summary.to_csv(buf, float_format="%.8g")  # significant digits: a p-value of 1e-13 is not 0.000000
    return buf.getvalue()
