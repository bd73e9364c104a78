"""A dataset's results page: the comparison table, its notes, the cost table and the plots, written as one unit."""

import re
import shlex
from pathlib import Path

from recbole_llm.benchmark import cost, notes, plots, stats, tables
from recbole_llm.benchmark.records import group_rows, is_llm
from recbole_llm.errors import UserError
from recbole_llm.fsutil import write_file_set

SIGNIFICANCE_METRIC = "ndcg@10"


def write_results_page(out_dir, dataset, records, metrics=tables.DEFAULT_METRICS, target=None, command=None):
    """Write ``comparison.{md,csv,tex}``, ``cost.md`` and the plots under ``out_dir`` as one unit
    (:func:`write_page`); return the text of ``comparison.md`` ('' and nothing written without records)."""
    summary = tables.summarize(records, metrics)
    if summary.empty:
        return ""
    pvalues, columns, sig_note = stats.significance_columns(records, SIGNIFICANCE_METRIC)
    for label, values in columns.items():
        for key, value in values.items():
            summary.loc[label, key] = value
    llm_rows = [label for label, recs in group_rows(records).items() if is_llm(recs)]
    md = tables.render(summary, metrics, target, "github", pvalues=pvalues, llm_rows=llm_rows)
    tex = tables.render(summary, metrics, target, "latex_raw", pvalues=pvalues, llm_rows=llm_rows)
    note = notes.provenance(records, dataset)
    lines = [f"# {dataset}: comparison", "", md, "", note, "", "Rows: " + "; ".join(notes.row_notes(records)) + "."]
    if notes.prompt_notes(records):
        lines += ["", notes.prompt_notes(records)]
    if sig_note:
        lines += ["", sig_note]
    files = {"cost.md": cost.cost_page(dataset, records, command), **plots.render_plots(dataset, records)}
    links = ", ".join(f"[{name}]({name})" for name in files if name.endswith(".png"))
    lines += ["", "Cost: [cost.md](cost.md)." + (f" Plots: {links}." if links else "")]
    if command:
        lines += ["", f"Regenerate: `{command}`"]
    text = "\n".join(lines) + "\n"
    files.update({"comparison.md": text, "comparison.csv": tables.to_csv(summary),
                  "comparison.tex": f"% {note}\n" + tex + "\n"})
    write_page(out_dir, files, command)
    return text


def page_target(out_dir):
    """The ``--target`` that made the page in ``out_dir`` (from the ``Regenerate:`` line of its
    ``comparison.md``), or None: no page, no target, or a line that does not parse. A runner
    command that adds records redraws the page with it, so adding a run does not drop the
    page's ``Improv.%`` row."""
    try:
        text = (Path(out_dir) / "comparison.md").read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(r"^Regenerate: `(.*)`$", text, flags=re.MULTILINE)
    try:
        words = shlex.split(found.group(1)) if found else []
    except ValueError:
        return None
    targets = [w.split("=", 1)[1] for w in words if w.startswith("--target=")]
    return targets[-1] if targets else None


def write_page(out_dir, files, command=None):
    """Write a results page's files (``{name: text or bytes}``) into ``out_dir`` as one unit: on
    any ``OSError`` (a full disk, a read-only folder) the old page stays as it was, whole, and the
    error is one :class:`~recbole_llm.errors.UserError` line saying what to do."""
    try:
        write_file_set(out_dir, files)
    except OSError as err:
        reason = err.strerror or str(err)
        again = f"; then regenerate them: {command}" if command else ""
        raise UserError(f"{out_dir}: cannot write the results page ({', '.join(files)}): {reason}; the previous "
                        f"files are unchanged. Free disk space or fix the folder's permissions{again}") from None
