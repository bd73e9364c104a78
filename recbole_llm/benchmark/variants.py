"""Variant tables: rows of one model compared with a reference row of the same model.

The papers' ablation tables (IDLE-Adapter Table 4, RA-Rec Table 4), RA-Rec's data-construction
table (Table 5) and IDLE-Adapter's prompt-length figure (Fig. 3) each hold one model under one
training budget, varied in one thing. The comparison table answers "against the baselines"; this
one answers "against the full model": each row's mean test metrics (the paper's own), its
difference to the reference on the seeds both have, a paired test on the same users, the Holm
adjustment for the page's tests and a test that counts seeds
(:func:`~recbole_llm.benchmark.stats.compare`), and a sentence per row stating what they show
(:func:`~recbole_llm.benchmark.stats.claim`).

Usage::

    python -m recbole_llm.benchmark.variants --dataset=amazon-scientific --name=ra-rec-table4 \\
        --title="RA-Rec Table 4" --reference="RARec (efficient 3k)" \\
        --row="RARec w/o IDRepresentation (efficient 3k)" --row="RARec Inputs (efficient 3k)"

writes ``results/<dataset>/<name>.md`` and ``.csv`` from the run records, with the command
beside them. Nothing is trained. Why by hand: RecBole has no notion of a row or of a paired test.
"""

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from recbole_llm.benchmark import convergence, lm_size, stats
from recbole_llm.benchmark.cost import trained_on
from recbole_llm.benchmark.labels import escape_markdown
from recbole_llm.benchmark.notes import titles_per_prompt
from recbole_llm.benchmark.page import page_lock, write_page
from recbole_llm.benchmark.per_user import pretty_metric
from recbole_llm.benchmark.records import group_rows, load_records
from recbole_llm.benchmark.stats import mean_of
from recbole_llm.errors import UserError, exit_status

METRICS = ("hit@10", "ndcg@10", "hit@100")
# the columns of a page of each paper's model: its own metrics (stats.PAPER_METRICS), NDCG@10 among them
PAGE_METRICS = {"IDLEAdapter": ("hit@5", "ndcg@5", "hit@10", "ndcg@10"),
                "RARec": ("hit@10", "ndcg@10", "hit@50", "hit@100")}


def variant_tests(grouped, reference, labels, metric="ndcg@10"):
    """``(tests, m)``: each row against the reference on ``metric`` and the reference model's
    paper metrics (:func:`~recbole_llm.benchmark.stats.tested_metrics`), on their common seeds,
    adjusted over the ``m`` tests of the page."""
    ref_recs = grouped[reference]
    metrics = stats.tested_metrics(ref_recs[0]["model"], metric)
    tests = []
    for label in labels:
        if label != reference:
            tests += stats.compare(grouped[label], ref_recs, metrics, stats.Comparison(label, reference, "reference"))
    tests = [t for t in tests if t.why != "no per-user ranks"]
    return stats.adjust(tests)


def _check_rows(grouped, reference, labels):
    """Raise :class:`~recbole_llm.errors.UserError` when a label has no records or the rows were
    trained under different epoch caps (see :func:`variant_rows`)."""
    missing = [label for label in [reference, *labels] if label not in grouped]
    if missing:
        known = ", ".join(f"'{k}'" for k in grouped)
        raise UserError(f"no run records labelled {', '.join(repr(m) for m in missing)}; "
                        f"the labels in runs/ are: {known}")
    caps = {label: sorted({int(r["protocol"]["epochs_max"]) for r in grouped[label]}) for label in [reference, *labels]}
    if len({c for cs in caps.values() for c in cs}) > 1:
        listed = ", ".join(f"'{label}' {'/'.join(map(str, cs))}" for label, cs in caps.items())
        raise UserError(f"the rows were trained under different epoch caps (--epochs): {listed}; a variant table "
                        f"compares one training budget, so name rows of one cap (where a label holds several caps, "
                        f"the lower caps' rows are labelled '<label> (--epochs=N)')")


def variant_rows(records, reference, labels, metric="ndcg@10", metrics=None, tests=None):
    """One dict per row (the reference first): mean test ``metrics`` (default: the reference
    model's :data:`PAGE_METRICS`), the difference in ``metric`` to the reference on their common
    seeds (absolute and %), the paired test's p-values (t-test, Holm, BH, Wilcoxon, seed-aware)
    and users, the same for the paper's other metrics, what it trained on, the titles its hard
    prompts held, and whether it converged (``not_converged_because``: the causes). ``tests``:
    :func:`variant_tests`' list (computed when not given).

    Raises :class:`~recbole_llm.errors.UserError` when a label has no records, or when the rows were
    trained under different epoch caps (``protocol.epochs_max``): a converged reference beside
    2-epoch variants would read as an ablation effect. That happens when a page's command names a
    label that a later run at another cap took over (:func:`~recbole_llm.benchmark.records.separate_epoch_caps`)."""
    grouped = group_rows(records)
    _check_rows(grouped, reference, labels)
    metrics = metrics or page_metrics(grouped[reference])
    if tests is None:
        tests, _ = variant_tests(grouped, reference, labels, metric)
    by_row = {}
    for t in tests:
        by_row.setdefault(t.label, {})[t.metric] = t
    out = []
    for label in [reference, *[x for x in labels if x != reference]]:
        recs = grouped[label]
        row = {"row": label, "seeds": ",".join(str(r["seed"]) for r in sorted(recs, key=lambda r: r["seed"]))}
        for m in metrics:
            row[m] = mean_of(recs, lambda r: r["test"].get(m))
        row[f"valid_{metric}"] = mean_of(recs, lambda r: r["valid"].get(metric))
        test = by_row.get(label, {}).get(metric)
        tested = test is not None and not test.why
        row["common_seeds"] = ",".join(map(str, test.seeds_a)) if tested else ""
        row["diff"] = test.diff if tested else (0.0 if label == reference else float("nan"))
        row["diff_pct"] = test.diff_pct if tested else (0.0 if label == reference else float("nan"))
        for key in ("p_ttest", "p_holm", "p_bh", "p_wilcoxon"):
            row[key] = getattr(test, key) if tested else float("nan")
        row["p_seeds"] = test.seed_test[1] if tested else float("nan")
        row["seed_test"] = test.seed_test[0] if tested and test.n_seeds > 1 else ""
        row["paired_users"] = test.n_users if tested else 0
        row["untested"] = test.why if test is not None else ""
        for m, other in by_row.get(label, {}).items():
            if m != metric:
                row.update({f"diff_pct_{m}": other.diff_pct, f"p_ttest_{m}": other.p_ttest,
                            f"p_holm_{m}": other.p_holm, f"p_seeds_{m}": other.seed_test[1]})
        row["trained_on"] = trained_on(recs)
        row["epochs"] = mean_of(recs, lambda r: r.get("epochs_run"))
        row["train_s_per_epoch"] = mean_of(recs, lambda r: (r.get("cost") or {}).get("train_time_per_epoch_s"))
        row["titles_per_prompt"] = titles_per_prompt(recs)
        row["commits"] = ",".join(sorted({r["commit"][:12] for r in recs}))
        causes = convergence.row_causes(recs)
        row["converged"] = not causes
        row["not_converged_because"] = "; ".join(causes)
        out.append(row)
    return out


def page_metrics(ref_recs):
    """The metric columns of a page whose reference row is ``ref_recs``: its paper's (:data:`PAGE_METRICS`)."""
    return PAGE_METRICS.get(ref_recs[0]["model"], METRICS)


def render(rows, metric="ndcg@10", metrics=METRICS):
    name = pretty_metric(metric)
    headers = (["Row", "Seeds"] + [pretty_metric(m) for m in metrics]
               + [f"Valid {name}", f"Δ {name} (%)", "p (Holm)", "p (seeds)", "Trained on", "Epochs", "s/epoch",
                  "Titles/prompt"])
    body = []
    for i, r in enumerate(rows):
        if i == 0:
            delta = p = p_seeds = "-"
        elif r["untested"]:
            delta, p, p_seeds = r["untested"], "-", "-"
        else:
            delta = f"{r['diff']:+.4f} ({r['diff_pct']:+.1f}%)"
            p = f"{stats.format_p(r['p_ttest'])} (Holm {stats.format_p(r['p_holm'])})"
            p_seeds = stats.format_p(r["p_seeds"]) if r["seed_test"] else "n/a (1 seed)"
        body.append([convergence.marked(escape_markdown(r["row"]), not r["converged"]) + (" (reference)" if i == 0 else ""), r["seeds"]]
                    + [f"{r[m]:.4f}" for m in metrics]
                    + [f"{r[f'valid_{metric}']:.4f}", delta, p, p_seeds,
                       r["trained_on"], f"{r['epochs']:.0f}", f"{r['train_s_per_epoch']:.0f}",
                       r["titles_per_prompt"]])
    table = tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
    flagged = {r["row"]: r["not_converged_because"].split("; ") for r in rows if not r["converged"]}
    note = convergence.footnote(flagged, uses="a difference between unconverged rows may say which trains faster, "
                                              "not which ends better")
    return table + ("\n\n" + note if note else "")


@dataclasses.dataclass(frozen=True)
class VariantPage:
    """What a variant page shows, as its command names it: the file stem ``name``
    (``<name>.md``, ``<name>.csv``), the ``title``, the ``reference`` row's label and the variant
    ``rows``' labels, the ``command`` that regenerates it, the ``metric`` of the differences and
    paired tests, and the ``seeds`` whose records it uses (empty: every seed; one seed: a one-seed
    ablation against the same seed of a row that has more)."""

    name: str
    title: str
    reference: str
    rows: tuple[str, ...]
    command: str
    metric: str = "ndcg@10"
    seeds: tuple[int, ...] = ()
    lm_facts: bool = False  # add each row's LM (size, prompt, cost) and the LM-size answer (benchmark.lm_size)


def write_variants(output: str | Path, dataset: str, page: VariantPage) -> str:
    """Write ``<output>/<dataset>/<page.name>.md`` and ``.csv`` (atomically); return the Markdown."""
    out_dir = Path(output) / dataset
    with page_lock(out_dir):  # read the records and write the page as one step (another command may store)
        return _write_variants(output, dataset, page)


def _write_variants(output, dataset, page):
    name, title, reference, labels = page.name, page.title, page.reference, list(page.rows)
    command, metric, seeds = page.command, page.metric, page.seeds
    out_dir = Path(output) / dataset
    records = load_records(output, dataset)
    if not records:
        raise UserError(f"no run records in {out_dir / 'runs'}: run run_benchmark.py first, or fix --output/--dataset")
    if seeds:
        records = [r for r in records if r["seed"] in set(seeds)]
        if not records:
            raise UserError(f"no run records with --seeds={','.join(map(str, seeds))} in {out_dir / 'runs'}")
    grouped = group_rows(records)
    _check_rows(grouped, reference, labels)
    tests, m = variant_tests(grouped, reference, labels, metric)
    rows = variant_rows(records, reference, labels, metric, tests=tests)
    metrics = page_metrics(grouped[reference])
    first = grouped[reference][0]
    dstats, split = first["dataset_stats"], first["protocol"]["split"]
    users = sorted({r["paired_users"] for r in rows[1:] if r["paired_users"]})
    note = (f"Dataset `{dataset}` ({dstats['users']} users, {dstats['items']} items), split {split}, full ranking over "
            f"all items; test metrics at the best validation epoch, means over the seeds listed. Δ and p: each row "
            f"against the reference on per-user test {pretty_metric(metric)} "
            f"({'/'.join(map(str, users)) or 0} users). " + stats.method_text(m, metric) + " p (seeds): the "
            f"seed-aware p. Titles/prompt: mean titles in the test users' hard prompts (median; prompt_max_tokens), "
            f"n/a for records that predate prompt_stats. Commit(s): "
            f"{', '.join(sorted({c for r in rows for c in r['commits'].split(',')}))}.")
    found = stats.claims_of(tests, metric)
    lms = []
    if page.lm_facts:
        facts = {r["row"]: lm_size.lm_facts(grouped[r["row"]]) for r in rows}
        said = lm_size.answer(rows, facts, metric)
        lms = ["The LMs (from the records: `lm`, `parameters`, `prompt_stats`, `cost`; times are each run's own, on "
               "the hardware named, and runs that shared a machine with another job are slower than alone):", "",
               lm_size.render_lm_facts([(r["row"], facts[r["row"]]) for r in rows]), ""] + ([said, ""] if said else [])
    text = "\n".join([f"# {dataset}: {title}", "", render(rows, metric, metrics), "", *lms, note, ""]
                     + (["Claims: " + " ".join(found), ""] if found else [])
                     + [f"Regenerate: `{command}`", ""])
    frame = pd.DataFrame(rows).set_index("row")
    write_page(out_dir, {f"{name}.md": text, f"{name}.csv": frame.to_csv(float_format="%.8g")}, command)
    return text


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m recbole_llm.benchmark.variants",
                                description="Compare rows of one model with a reference row (ablations, data "
                                            "strategies, prompt lengths) from the run records.")
    p.add_argument("--dataset", required=True, help="dataset whose results/<dataset>/runs/ to read")
    p.add_argument("--name", required=True, help="output file stem: results/<dataset>/<name>.md and .csv")
    p.add_argument("--title", required=True, help="the table's title")
    p.add_argument("--reference", required=True, help="label of the reference row (the full model)")
    p.add_argument("--row", action="append", default=[], help="label of a variant row (repeat for more)")
    p.add_argument("--seeds", default="", help="comma list: use only these seeds' records (default: all)")
    p.add_argument("--metric", default="ndcg@10", help="metric of the difference and the paired test")
    p.add_argument("--output", default="results", help="results folder (default: results/)")
    p.add_argument("--lm-facts", action="store_true",
                   help="rows that differ in their LM: add each row's LM (parameters, layers, prompt, cost) and "
                        "whether the metric rose with its size (IDLE-Adapter's Fig. 2 question)")
    args = p.parse_args(argv)
    if not args.row:
        p.error("give at least one --row")
    if any(c in args.name for c in "/\\") or args.name in ("comparison", "cost"):
        raise UserError(f"--name={args.name!r} must be a plain file stem other than 'comparison' and 'cost'")
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--seeds must be a comma list of integers; got {args.seeds!r}") from None
    command = "python -m recbole_llm.benchmark.variants " + " ".join(shlex.quote(a) for a in argv)
    page = VariantPage(args.name, args.title, args.reference, tuple(args.row), command, args.metric.lower(),
                       tuple(seeds), args.lm_facts)
    text = write_variants(args.output, args.dataset, page)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
