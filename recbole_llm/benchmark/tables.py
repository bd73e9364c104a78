"""Comparison tables (Markdown, CSV, LaTeX) regenerated from run records.

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
from recbole_llm.benchmark.records import dataset_stats, group_rows, latest_per_seed

SIGNIFICANCE_METRIC = "ndcg@10"
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


def provenance(records, dataset):
    """One paragraph: how every number in the table was made."""
    recs = latest_per_seed(records)
    proto = recs[0]["protocol"]
    commits = sorted({r["commit"][:12] for r in recs})
    budgets = sorted({f"epochs<= {r['protocol']['epochs_max']}, early stop after {r['protocol']['stopping_step']}" for r in recs})
    stats = dataset_stats(recs[0])
    return (
        f"Dataset `{dataset}` ({stats['users']} users, {stats['items']} items, {stats['interactions']} interactions); "
        f"split {proto['split']}; full ranking over all items; test metrics at the epoch with the best validation "
        f"{proto['valid_metric']}; mean ± std over the seeds listed per row; budget: {'; '.join(budgets)}; "
        f"commit(s) {', '.join(commits)}; generated from {len(recs)} run records in `runs/`."
    )


def row_notes(records):
    """Per row, what it trained on when that differs between rows: epochs, training samples and, for
    an LLM row, the share of items without text (its prompts' titles)."""
    notes = []
    by_label = {}
    for r in latest_per_seed(records):
        by_label.setdefault(r.get("label", r["model"]), []).append(r)
    for label, recs in by_label.items():
        parts = {f"<= {r['protocol']['epochs_max']} epochs (ran {r['epochs_run']})" for r in recs}
        sel = [r.get("data_selection") for r in recs if r.get("data_selection")]
        text = f"{label}: " + ", ".join(sorted(parts))
        if sel and sel[0].get("strategy") not in (None, "all"):
            s = sel[0]
            text += f"; tuned on {s['strategy']} {s['selected']} of {s['train_samples']} training samples"
        texts = [r["item_text"] for r in recs if r.get("item_text")]  # LLM rows (missing_text_max_share)
        if texts:
            worst = max(texts, key=lambda t: t["missing_share"])
            text += f"; items without text: {worst['missing']} of {worst['items']} ({worst['missing_share']:.1%})"
        notes.append(text)
    return notes


def titles_per_prompt(recs):
    """What a row's hard prompts held: "1.42 (median 1; 64 tokens)" from the records'
    ``prompt_stats`` (the test users' prompts), "n/a" for records made before they carried it."""
    stats = [r["prompt_stats"] for r in recs if r.get("prompt_stats")]
    if not stats:
        return "n/a"
    mean = statistics.fmean(p["mean_titles"] for p in stats)
    medians = sorted({f"{p['median_titles']:g}" for p in stats})
    tokens = sorted({str(p["max_tokens"]) for p in stats})
    return f"{mean:.2f} (median {'/'.join(medians)}; {'/'.join(tokens)} tokens)"


def prompt_notes(records):
    """One sentence: titles per hard prompt of each LLM row ('' without LLM rows)."""
    from recbole_llm.benchmark.per_user import is_llm

    parts = [f"{label}: {titles_per_prompt(recs)}" for label, recs in group_rows(records).items() if is_llm(recs)]
    if not parts:
        return ""
    return ("Titles per hard prompt (mean over the test users' prompts; median; prompt_max_tokens), from the "
            "records' prompt_stats, n/a where a record predates them: " + "; ".join(parts) + ".")


def write_tables(out_dir, dataset, records, metrics=DEFAULT_METRICS, target=None, command=None):
    """Write ``comparison.{md,csv,tex}`` under ``out_dir``; return the Markdown text."""
    from recbole_llm.benchmark import report
    from recbole_llm.benchmark.per_user import is_llm as per_user_is_llm

    summary = summarize(records, metrics)
    if summary.empty:
        return ""
    pvalues, columns, sig_note = report.significance_columns(records, SIGNIFICANCE_METRIC)
    for label, values in columns.items():
        for key, value in values.items():
            summary.loc[label, key] = value
    llm_rows = [label for label, recs in report.rows(records).items() if per_user_is_llm(recs)]
    md = render(summary, metrics, target, "github", pvalues=pvalues, llm_rows=llm_rows)
    tex = render(summary, metrics, target, "latex_raw", pvalues=pvalues, llm_rows=llm_rows)
    note = provenance(records, dataset)
    lines = [f"# {dataset}: comparison", "", md, "", note, "", "Rows: " + "; ".join(row_notes(records)) + "."]
    if prompt_notes(records):
        lines += ["", prompt_notes(records)]
    if sig_note:
        lines += ["", sig_note]
    files = report.render_report(dataset, records, command)  # cost.md and the plots, in memory
    plots = ", ".join(f"[{name}]({name})" for name in files if name.endswith(".png"))
    lines += ["", "Cost: [cost.md](cost.md)." + (f" Plots: {plots}." if plots else "")]
    if command:
        lines += ["", f"Regenerate: `{command}`"]
    text = "\n".join(lines) + "\n"
    files.update({"comparison.md": text, "comparison.csv": to_csv(summary),
                  "comparison.tex": f"% {note}\n" + tex + "\n"})
    write_page(out_dir, files, command)
    return text


def write_page(out_dir, files, command=None):
    """Write a results page's files (``{name: text or bytes}``) into ``out_dir`` as one unit: on
    any ``OSError`` (a full disk, a read-only folder) the old page stays as it was, whole, and the
    error is one :class:`~recbole_llm.errors.UserError` line saying what to do."""
    from recbole_llm.errors import UserError
    from recbole_llm.fsutil import write_file_set

    try:
        write_file_set(out_dir, files)
    except OSError as err:
        reason = err.strerror or str(err)
        again = f"; then regenerate them: {command}" if command else ""
        raise UserError(f"{out_dir}: cannot write the results page ({', '.join(files)}): {reason}; the previous "
                        f"files are unchanged. Free disk space or fix the folder's permissions{again}") from None
