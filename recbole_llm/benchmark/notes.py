"""The text beside the comparison table: how its numbers were made and what each row trained on."""

import statistics

from recbole_llm.benchmark.records import dataset_stats, group_rows, is_llm, latest_per_seed


def provenance(records, dataset):
    """One paragraph: how every number in the table was made."""
    recs = latest_per_seed(records)
    proto = recs[0]["protocol"]
    commits = sorted({r["commit"][:12] for r in recs})
    # RecBole stops once cur_step > stopping_step: after stopping_step + 1 evaluations without a gain
    budgets = sorted({f"epochs<= {r['protocol']['epochs_max']}, early stop after {r['protocol']['stopping_step'] + 1} "
                      f"evaluations without a gain (stopping_step {r['protocol']['stopping_step']})" for r in recs})
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
    parts = [f"{label}: {titles_per_prompt(recs)}" for label, recs in group_rows(records).items() if is_llm(recs)]
    if not parts:
        return ""
    return ("Titles per hard prompt (mean over the test users' prompts; median; prompt_max_tokens), from the "
            "records' prompt_stats, n/a where a record predates them: " + "; ".join(parts) + ".")
