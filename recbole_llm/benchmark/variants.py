"""Variant tables: rows of one model compared with a reference row of the same model.

The papers' ablation tables (IDLE-Adapter Table 4, RA-Rec Table 4), RA-Rec's data-construction
table (Table 5) and IDLE-Adapter's prompt-length figure (Fig. 3) each hold one model under one
training budget, varied in one thing. The comparison table answers "against the baselines"; this
one answers "against the full model": each row's mean test metrics, its difference to the
reference, and a paired test on the same users (:func:`~recbole_llm.benchmark.per_user.paired_test`).

Usage::

    python -m recbole_llm.benchmark.variants --dataset=amazon-scientific --name=ra-rec-table4 \\
        --title="RA-Rec Table 4" --reference="RARec (efficient 3k)" \\
        --row="RARec w/o IDRepresentation (efficient 3k)" --row="RARec Inputs (efficient 3k)"

writes ``results/<dataset>/<name>.md`` and ``.csv`` from the run records, with the command
beside them. Nothing is trained. Why by hand: RecBole has no notion of a row or of a paired test.
"""

import argparse
import shlex
import sys
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from recbole_llm.benchmark import convergence, per_user
from recbole_llm.benchmark.cost import trained_on
from recbole_llm.benchmark.notes import titles_per_prompt
from recbole_llm.benchmark.page import write_page
from recbole_llm.benchmark.per_user import pretty_metric
from recbole_llm.benchmark.records import group_rows, load_records
from recbole_llm.benchmark.stats import mean_of
from recbole_llm.errors import UserError, exit_status

METRICS = ("hit@10", "ndcg@10", "hit@100")


def variant_rows(records, reference, labels, metric="ndcg@10", metrics=METRICS):
    """One dict per row (the reference first): mean test ``metrics``, the difference in ``metric``
    to the reference (absolute and %), the paired test's p-values and users, what it trained on, the
    titles its hard prompts held, and whether it converged (``not_converged_because``: the causes).

    Raises :class:`~recbole_llm.errors.UserError` when a label has no records, or when the rows were
    trained under different epoch caps (``protocol.epochs_max``): a converged reference beside
    2-epoch variants would read as an ablation effect. That happens when a page's command names a
    label that a later run at another cap took over (:func:`~recbole_llm.benchmark.records.separate_epoch_caps`)."""
    grouped = group_rows(records)
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
    ref_recs = grouped[reference]
    ref_values = per_user.user_means(ref_recs, metric)
    ref_mean = mean_of(ref_recs, lambda r: r["test"].get(metric))
    out = []
    for label in [reference, *[x for x in labels if x != reference]]:
        recs = grouped[label]
        row = {"row": label, "seeds": ",".join(str(r["seed"]) for r in sorted(recs, key=lambda r: r["seed"]))}
        for m in metrics:
            row[m] = mean_of(recs, lambda r: r["test"].get(m))
        row[f"valid_{metric}"] = mean_of(recs, lambda r: r["valid"].get(metric))
        value = mean_of(recs, lambda r: r["test"].get(metric))
        row["diff"] = value - ref_mean
        row["diff_pct"] = 100.0 * row["diff"] / ref_mean if ref_mean else float("nan")
        test = None
        if label != reference and ref_values:
            values = per_user.user_means(recs, metric)
            test = per_user.paired_test(values, ref_values) if values else None
        row["p_ttest"] = test["p_ttest"] if test else float("nan")
        row["p_wilcoxon"] = test["p_wilcoxon"] if test else float("nan")
        row["paired_users"] = test["n_users"] if test else 0
        row["trained_on"] = trained_on(recs)
        row["epochs"] = mean_of(recs, lambda r: r.get("epochs_run"))
        row["train_s_per_epoch"] = mean_of(recs, lambda r: r.get("cost", {}).get("train_time_per_epoch_s"))
        row["titles_per_prompt"] = titles_per_prompt(recs)
        row["commits"] = ",".join(sorted({r["commit"][:12] for r in recs}))
        causes = convergence.row_causes(recs)
        row["converged"] = not causes
        row["not_converged_because"] = "; ".join(causes)
        out.append(row)
    return out


def render(rows, metric="ndcg@10", metrics=METRICS):
    name = pretty_metric(metric)
    headers = (["Row", "Seeds"] + [pretty_metric(m) for m in metrics]
               + [f"Valid {name}", f"Δ {name} (%)", "p (t-test)", "p (Wilcoxon)", "Trained on", "Epochs", "s/epoch",
                  "Titles/prompt"])
    body = []
    for i, r in enumerate(rows):
        body.append([convergence.marked(r["row"], not r["converged"]) + (" (reference)" if i == 0 else ""), r["seeds"]]
                    + [f"{r[m]:.4f}" for m in metrics]
                    + [f"{r[f'valid_{metric}']:.4f}",
                       "-" if i == 0 else f"{r['diff']:+.4f} ({r['diff_pct']:+.1f}%)",
                       "-" if i == 0 else per_user.format_p(r["p_ttest"]),
                       "-" if i == 0 else per_user.format_p(r["p_wilcoxon"]),
                       r["trained_on"], f"{r['epochs']:.0f}", f"{r['train_s_per_epoch']:.0f}",
                       r["titles_per_prompt"]])
    table = tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
    flagged = {r["row"]: r["not_converged_because"].split("; ") for r in rows if not r["converged"]}
    note = convergence.footnote(flagged, uses="a difference between unconverged rows may say which trains faster, "
                                              "not which ends better")
    return table + ("\n\n" + note if note else "")


def write_variants(output, dataset, name, title, reference, labels, command, metric="ndcg@10", seeds=None):
    """Write ``<output>/<dataset>/<name>.md`` and ``.csv`` (atomically); return the Markdown.
    ``seeds``: use only the records of these seeds (a one-seed ablation against the same seed of a
    row that has more)."""
    out_dir = Path(output) / dataset
    records = load_records(output, dataset)
    if not records:
        raise UserError(f"no run records in {out_dir / 'runs'}: run run_benchmark.py first, or fix --output/--dataset")
    if seeds:
        records = [r for r in records if r["seed"] in set(seeds)]
        if not records:
            raise UserError(f"no run records with --seeds={','.join(map(str, seeds))} in {out_dir / 'runs'}")
    rows = variant_rows(records, reference, labels, metric)
    first = group_rows(records)[reference][0]
    stats, split = first["dataset_stats"], first["protocol"]["split"]
    note = (f"Dataset `{dataset}` ({stats['users']} users, {stats['items']} items), split {split}, full ranking over "
            f"all items; test metrics at the best validation epoch, means over the seeds listed. Δ and p: each row "
            f"against the reference on per-user test {pretty_metric(metric)} ({rows[1]['paired_users'] if len(rows) > 1 else 0} "
            f"users paired by id, each user's value averaged over the row's seeds; two-sided paired t-test and "
            f"Wilcoxon signed-rank). With one seed per row, p says whether the two trained models rank the same "
            f"users differently, not whether the difference survives another seed. Titles/prompt: mean titles "
            f"in the test users' hard prompts (median; prompt_max_tokens), n/a for records that predate prompt_stats. "
            f"Commit(s): "
            f"{', '.join(sorted({c for r in rows for c in r['commits'].split(',')}))}.")
    text = "\n".join([f"# {dataset}: {title}", "", render(rows, metric), "", note, "",
                      f"Regenerate: `{command}`", ""])
    frame = pd.DataFrame(rows).set_index("row")
    write_page(out_dir, {f"{name}.md": text, f"{name}.csv": frame.to_csv(float_format="%.6f")}, command)
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
    text = write_variants(args.output, args.dataset, args.name, args.title, args.reference,
                          args.row, command, args.metric.lower(), seeds)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
