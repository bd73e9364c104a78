"""A dataset's results page: the comparison table, its notes, the cost table and the plots, written as one unit.

The page answers one question, how the models compare at the full protocol, so its table holds the
*headline* rows: the baselines (RecBole defaults, then ``<Model>-tuned``), then the LLM rows at
their defaults, on whichever LM and ID base (columns ``LM`` and ``ID base``). Every other row is on
a page of its own (:func:`row_sections`):

* a *variant* (its config differs from its model's defaults in an ablation, data, prompt or other
  identifying key, :func:`~recbole_llm.benchmark.labels.variant_keys`; for a record without a
  config, a ``--row`` of a variant page) goes to ``comparison-variants.md``, a table of every
  variant with the variant pages (:mod:`~recbole_llm.benchmark.variants`) that show it;
* a *short run* (trained under an epoch cap below its budget's, e.g. the ``(--epochs=N)`` rows)
  goes to ``comparison-history.md``, while the page has a row at the budget's protocol at all (a
  page of short runs only, a smoke or a test, keeps them where they are); so does an LLM row on a
  base of short runs once the same model has a row on the same ID model trained at its budget
  (:func:`_on_superseded_bases`).

Each page tests its own rows (against the best baseline and each row's own ID base, adjusted for
the tests that page reports); ``comparison.csv`` holds every row, with the page it is on.
"""

import contextlib
import dataclasses
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from recbole_llm.benchmark import convergence, cost, notes, plots, stats, tables, tuning
from recbole_llm.benchmark.labels import escape_markdown
from recbole_llm.benchmark.records import group_rows, is_llm, split_copies
from recbole_llm.errors import UserError
from recbole_llm.fsutil import finish_file_sets, folder_lock, write_file_set

SIGNIFICANCE_METRIC = "ndcg@10"
HEADLINE, VARIANTS, HISTORY = "headline", "variants", "history"
PAGE_FILES = {HEADLINE: "comparison.md", VARIANTS: "comparison-variants.md", HISTORY: "comparison-history.md"}
VARIANTS_COMMAND = "python -m recbole_llm.benchmark.variants"


@dataclasses.dataclass(frozen=True)
class PageSpec:
    """What a dataset's pages are drawn for, the same on each of them: the dataset, the metric
    columns, the row whose ``Improv.%`` row is shown (``--target``; None: none) and the command
    that regenerates them (None: no ``Regenerate:`` line)."""

    dataset: str
    metrics: Sequence[str] = tables.DEFAULT_METRICS
    target: str | None = None
    command: str | None = None


def variant_pages(out_dir):
    """``{page stem: {"title", "reference", "rows", "seeds", "metric", "command"}}`` of the variant
    pages in ``out_dir``, read from their ``Regenerate:`` lines (the command that wrote each);
    a page whose line does not parse is left out."""
    out = {}
    folder = Path(out_dir) if out_dir is not None else None
    if folder is None or not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.md")):
        if path.name in PAGE_FILES.values() or path.name in ("cost.md", "README.md", "tuning.md"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        found = re.search(r"^Regenerate: `(.*)`$", text, flags=re.MULTILINE)
        if not found or not found.group(1).startswith(VARIANTS_COMMAND):
            continue
        try:
            words = shlex.split(found.group(1))[len(shlex.split(VARIANTS_COMMAND)):]
        except ValueError:
            continue
        page = {"title": path.stem, "reference": None, "rows": [], "seeds": [], "metric": SIGNIFICANCE_METRIC,
                "command": found.group(1)}
        for word in words:
            key, _, value = word.partition("=")
            if key == "--row":
                page["rows"].append(value)
            elif key == "--reference":
                page["reference"] = value
            elif key == "--title":
                page["title"] = value
            elif key == "--metric":
                page["metric"] = value.lower()
            elif key == "--seeds":
                page["seeds"] = [int(x) for x in value.split(",") if x.strip().lstrip("-").isdigit()]
        if page["reference"]:
            out[path.stem] = page
    return out


def _short(recs):
    """True when a row's runs were trained under an epoch cap below their budget's."""
    for r in recs:
        full = convergence.record_budget_epochs(r)
        cap = (r.get("protocol") or {}).get("epochs_max")
        if full is not None and cap is not None and int(cap) < full:
            return True
    return False


def _on_superseded_bases(grouped, records, short):
    """The LLM rows whose own ID base (:func:`stats.own_base`) is all short runs (``short``: trained
    under an epoch cap below the ID models' budget) where a row of the same LLM model on the same ID
    model stands on a base that is not: the fair comparison is that row's, and these go to the history
    page with their bases. Without such a row, a row on a short base stays (its base is marked †)."""
    bases = {label: _own_base_rows(recs, records) for label, recs in grouped.items() if is_llm(recs)}
    key = {label: (grouped[label][0]["model"], stats.id_model_name(grouped[label])) for label in bases}
    fair = {key[label] for label, b in bases.items() if b and not b & short and label not in short}
    return {label for label, b in bases.items() if b and b <= short and key[label] in fair}


def _variant(recs, paged):
    """True when an LLM row is a variant of its model: a record's config differs from the model's
    defaults in an identifying key other than the LM and ID base; for records without a config,
    when the row is a ``--row`` of a variant page (``paged``). A baseline's hyperparameters make
    another baseline row (``SASRec (hidden_size=128)``), not a variant; a tuned row is never one."""
    from recbole_llm.benchmark.labels import record_config, variant_keys

    if not is_llm(recs) or any(r.get("tune") for r in recs):
        return False
    with_config = [r for r in recs if r.get("config")]
    if not with_config:
        return paged
    return any(variant_keys(record_config(r)) for r in with_config)


def row_sections(records, out_dir=None):
    """``{label: HEADLINE | VARIANTS | HISTORY}`` in table order (see the module docstring). A page
    with no row at the budget's protocol, or none but variants, shows every row in its headline."""
    grouped = group_rows(records)
    paged = {row for page in variant_pages(out_dir).values() for row in page["rows"]}
    short = {label for label, recs in grouped.items() if _short(recs)}
    if len(short) == len(grouped):  # nothing at the budget's protocol: the short rows are the page
        short = set()
    short |= _on_superseded_bases(grouped, records, short)
    for label, recs in grouped.items():  # an LLM row's own ID base stays beside it, whatever its cap
        if label not in short and is_llm(recs):
            short -= _own_base_rows(recs, records)
    sections = {label: HISTORY if label in short else VARIANTS if _variant(recs, label in paged) else HEADLINE
                for label, recs in grouped.items()}
    if HEADLINE not in sections.values():
        sections = dict.fromkeys(sections, HEADLINE)
    return sections


def pages_of(out_dir):
    """``{label: [variant page stems that show it]}`` (as a row or the reference)."""
    out = {}
    for stem, page in variant_pages(out_dir).items():
        for label in [page["reference"], *page["rows"]]:
            if stem not in out.setdefault(label, []):
                out[label].append(stem)
    return out


def _section_table(records, shown, metrics, target, extra=None):
    """``(summary of the shown rows with their test columns, md, tex, significance note)`` of the
    rows ``shown``, tested against the best baseline and their own ID base among ``records``."""
    summary = tables.summarize(records, metrics)
    pvalues, columns, sig_note = stats.significance_columns(records, SIGNIFICANCE_METRIC)
    for label, values in columns.items():
        for key, value in values.items():
            summary.loc[label, key] = value
    summary = summary.loc[[label for label in summary.index if label in shown]]
    llm_rows = [label for label, recs in group_rows(records).items() if is_llm(recs)]
    pvalues = [(h, {k: v for k, v in col.items() if k in shown}) for h, col in pvalues or ()] + list(extra or ())
    pvalues = [(h, col) for h, col in pvalues if col] or None
    md = tables.render(summary, metrics, target, tables.MARKDOWN, pvalues=pvalues, llm_rows=llm_rows)
    tex = tables.render(summary, metrics, target, tables.LATEX, pvalues=pvalues, llm_rows=llm_rows)
    return summary, md, tex, sig_note


def headline_table(records, metrics=tables.DEFAULT_METRICS, target=None, shown=None):
    """``(summary, md, tex, significance note)`` of the table of ``records`` as the comparison page
    draws it (every row of ``records`` tested; :func:`row_sections` picks the records): every row
    shown, or the labels ``shown`` only, with the tests and adjustments of the whole table."""
    return _section_table(records, set(group_rows(records)) if shown is None else set(shown), metrics, target)


def answer_rows(records):
    """The rows that answer the benchmark's question, in table order: the best baseline (chosen on
    validation, :func:`~recbole_llm.benchmark.stats.best_baseline`), every LLM row, and the ID base
    of each (:func:`~recbole_llm.benchmark.stats.own_base`)."""
    grouped = group_rows(records)
    keep = {stats.best_baseline(records)}
    for label, recs in grouped.items():
        if is_llm(recs):
            keep.add(label)
            keep |= _own_base_rows(recs, records)
    return [label for label in grouped if label in keep]


def copies_note(copies, records):
    """One sentence naming each row of copies (:func:`~recbole_llm.benchmark.records.split_copies`),
    its seeds and the row whose runs they are."""
    where = {Path(r["_path"]).name: r.get("label") or r["model"] for r in records if r.get("_path")}
    rows = {}
    for rec in copies:
        rows.setdefault((rec.get("label") or rec["model"], where[rec["same_run_as"]]), []).append(rec["seed"])
    return ("Not rows of their own (a sweep's best point was a run already stored; the same runs are shown once): "
            + "; ".join(f"{escape_markdown(copy)} (seeds {', '.join(map(str, sorted(seeds)))}) is "
                        f"{escape_markdown(original)}" for (copy, original), seeds in sorted(rows.items())) + ".")


def _own_base_rows(llm_recs, records):
    """The labels of the rows whose runs an LLM row's frozen ID models are (:func:`stats.own_base`)."""
    return {b.get("label") or b["model"] for b in stats.own_base(llm_recs, records)[1]}


def write_results_page(out_dir, dataset, records, metrics=tables.DEFAULT_METRICS, target=None, command=None):
    """Write ``comparison.{md,csv,tex}`` (the headline rows), ``comparison-variants.md`` and
    ``comparison-history.md`` (when there are such rows), ``cost.md`` (every row), the plots
    (the headline rows) and ``tuning.{md,csv}`` (when a headline ID-model row is tuned, else an old
    one is removed: :mod:`~recbole_llm.benchmark.tuning`) under ``out_dir`` as one unit
    (:func:`write_page`); return the text of
    ``comparison.md`` ('' and nothing written without records). A sweep's copies of runs the page
    shows (:func:`~recbole_llm.benchmark.records.split_copies`) are no rows of their own: a line
    names them; the tuning page gets them."""
    records, copies = split_copies(records)
    grouped = group_rows(records)
    if not grouped:
        return ""
    spec = PageSpec(dataset, metrics, target, command)
    sections = row_sections(records, out_dir)
    rows = {name: [label for label, where in sections.items() if where == name] for name in PAGE_FILES}
    baselines = [label for label in rows[HEADLINE] if not is_llm(grouped[label])]
    of = {name: [r for label in rows[name] for r in grouped[label]] for name in PAGE_FILES}
    of_baselines = [r for label in baselines for r in grouped[label]]

    headline = of[HEADLINE]
    summary, md, tex, sig_note = _section_table(headline, set(rows[HEADLINE]), metrics,
                                                target if sections.get(target) == HEADLINE else None)
    note = notes.provenance(headline, dataset)
    lines = [f"# {dataset}: comparison", "", md, "", note, "", "Rows: " + "; ".join(notes.row_notes(headline)) + "."]
    if notes.prompt_notes(headline):
        lines += ["", notes.prompt_notes(headline)]
    if copies:
        lines += ["", copies_note(copies, records)]
    if sig_note:
        lines += ["", sig_note]
    others = [f"[{PAGE_FILES[name]}]({PAGE_FILES[name]}) ({len(rows[name])} row{'s' * (len(rows[name]) != 1)}: {what})"
              for name, what in ((VARIANTS, "ablations, tuning data, prompts and other variants of the models' "
                                            "defaults, each beside the variant pages that show it"),
                                 (HISTORY, "runs under an epoch cap below the budget's"))
              if rows[name]]
    if others:
        lines += ["", "Not in this table: " + "; ".join(others) + "."]
    # {} without a tuned ID-model row; a tuned row of copies is the sweep's answer "the defaults"
    tuning_files = tuning.tuning_files(dataset, headline + copies, out_dir, command)
    if tuning_files:
        lines += ["", f"Was each baseline tuned, and what did tuning change: [{tuning.PAGE}]({tuning.PAGE})."]
    files = {"cost.md": cost.cost_page(dataset, records, command), **plots.render_plots(dataset, headline)}
    links = ", ".join(f"[{name}]({name})" for name in files if name.endswith(".png"))
    lines += ["", "Cost of every row: [cost.md](cost.md)." + (f" Plots: {links}." if links else "")]
    if command:
        lines += ["", f"Regenerate: `{command}`"]
    text = "\n".join(lines) + "\n"
    frames = [summary.assign(page=HEADLINE)]
    if rows[VARIANTS]:
        paged = pages_of(out_dir)
        where = {label: ", ".join(f"[{stem}]({stem}.md)" for stem in paged[label])
                 for label in rows[VARIANTS] if paged.get(label)}
        extra = [("Variant pages", where)] if where else None
        frame, page_text = _other_page(spec, VARIANTS, of_baselines, of[VARIANTS], rows[VARIANTS], extra)
        files[PAGE_FILES[VARIANTS]] = page_text
        frames.append(frame.assign(page=VARIANTS))
    if rows[HISTORY]:
        frame, page_text = _other_page(spec, HISTORY, of_baselines, of[HISTORY], rows[HISTORY])
        files[PAGE_FILES[HISTORY]] = page_text
        frames.append(frame.assign(page=HISTORY))
    files.update({"comparison.md": text, "comparison.csv": tables.to_csv(pd.concat(frames)),
                  "comparison.tex": f"% {note}\n" + tex + "\n", **tuning_files})
    write_page(out_dir, files, command)
    if not tuning_files:  # its tuned rows are gone: no page of them stays (under the caller's page_lock)
        tuning.remove_stale(out_dir, dataset)
    return text


_INTRO = {
    VARIANTS: ("Rows whose config differs from their model's defaults in an ablation, the tuning data, the prompt or "
               "another identifying key (the LM and the ID base excepted: those rows are in "
               "[comparison.md](comparison.md)). Each variant page compares such rows with their reference row, "
               "on the seeds both have; this table sets every variant beside the best baseline and its own ID base, "
               "as the comparison table does its rows."),
    HISTORY: ("Runs trained under an epoch cap below their budget's (`--epochs=N`; where a label also has runs "
              "at the budget's cap, these are the row `<label> (--epochs=N)`): what they show is how far a model "
              "gets in that many epochs, not where it ends; and LLM rows built on such runs as their frozen ID "
              "model, where the same model has a row on that ID model trained at its budget. Kept as the history "
              "of how the rows in [comparison.md](comparison.md) were reached."),
}


def _other_page(spec: PageSpec, name: str, baseline_records: list[dict], records: list[dict], shown: list[str],
                extra: list | None = None) -> tuple[pd.DataFrame, str]:
    """``(summary, text)`` of ``comparison-variants.md`` or ``comparison-history.md`` (``name``:
    :data:`VARIANTS` or :data:`HISTORY`) of the pages ``spec``: the rows ``shown``, tested against
    the headline's baselines (``baseline_records``) and their own ID base; the ``Improv.%`` row of
    ``spec.target`` when it is one of them; ``extra``: further columns (``(header, {label: text})``)."""
    dataset, metrics, command = spec.dataset, spec.metrics, spec.command
    target = spec.target if spec.target in shown else None
    summary, md, _, sig_note = _section_table(baseline_records + records, set(shown), metrics, target, extra)
    title = {VARIANTS: "variants of the models' defaults", HISTORY: "short runs"}[name]
    lines = [f"# {dataset}: {title}", "", _INTRO[name], "", md, "", notes.provenance(records, dataset), "",
             "Rows: " + "; ".join(notes.row_notes(records)) + "."]
    if notes.prompt_notes(records):
        lines += ["", notes.prompt_notes(records)]
    if sig_note:
        lines += ["", sig_note]
    if command:
        lines += ["", f"Regenerate: `{command}`"]
    return summary, "\n".join(lines) + "\n"


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


@contextlib.contextmanager
def page_lock(out_dir):
    """Hold the lock of the results folder ``out_dir`` (:func:`~recbole_llm.fsutil.folder_lock`) for
    reading its records and redrawing its page.

    Two commands on one dataset and ``--output`` that end at once each read the records and redraw
    the page; without the lock the one that read first can write last, and its page lacks the
    other's row. Under it, the second reads after the first has written, so the page last drawn
    lists every record. On entry, a page swap that a killed process left half done is completed
    (:func:`~recbole_llm.fsutil.finish_file_sets`), so what is read is one whole page. A folder
    that cannot be locked (read-only, missing parent) is one :class:`UserError` line.
    """
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(folder_lock(out_dir))
            finish_file_sets(out_dir)
        except OSError as err:
            raise UserError(f"{out_dir}: cannot lock the results folder to redraw its page "
                            f"({err.strerror or err}); fix the folder's permissions or pass another --output") from None
        yield


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
