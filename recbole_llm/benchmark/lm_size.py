"""The LM behind each row of a variant page, and what its size did (IDLE-Adapter's Fig. 2 question).

IDLE-Adapter's §5.3 (Fig. 2) reports that its gain grows with the language model (BGE 33M-300M, OPT
100M-1.3B). A variant page made with ``--lm-facts`` (:mod:`recbole_llm.benchmark.variants`) puts
rows of one model that differ in their LM beside each other and adds, from the run records:

* a table of each row's LM (:func:`lm_facts`): parameters in all and outside the embedding tables,
  layers, hidden size, the hard prompt's token budget and the titles it held, train seconds per
  epoch, evaluation users per second, peak memory and the hardware the times were taken on;
* one paragraph (:func:`answer`) that states, for this data, whether the metric rose with the LM,
  at the strength of the page's tests (:func:`recbole_llm.benchmark.stats.compare`).

Records made before ``record["lm"]`` existed give their LM's total parameter count and name only
(the rest reads ``n/a``); a record with no ``cost`` (or ``"cost": null``) is left out of the means
of times and memory. Why by hand: neither RecBole nor transformers keeps such a table.
"""

from __future__ import annotations

import math

from tabulate import tabulate

from recbole_llm.benchmark import stats
from recbole_llm.benchmark.cost import cpu_shared, format_number
from recbole_llm.benchmark.labels import escape_markdown, short_lm_name
from recbole_llm.benchmark.notes import titles_per_prompt
from recbole_llm.benchmark.per_user import pretty_metric


def _mean(recs, get):
    """:func:`stats.mean_of`, with None (not NaN) where no record holds the value: :func:`lm_facts`
    promises None, and :func:`render_lm_facts` picks the GPU's memory by its truth (NaN is true)."""
    mean = stats.mean_of(recs, get)
    return None if math.isnan(mean) else mean


def _cost(key):
    """A getter of ``record["cost"][key]``; None where the record has no ``cost`` or it is null."""
    return lambda r: (r.get("cost") or {}).get(key)


def lm_facts(recs) -> dict:
    """What the records of one row say of their LM and its cost: ``lm`` (short name), ``model_type``,
    ``parameters`` and ``parameters_outside_embeddings`` (counts), ``layers``, ``hidden_size``,
    ``titles_per_prompt`` (text), ``train_s_per_epoch`` (s), ``eval_users_per_s`` (test users over
    the test pass's seconds), ``peak_rss_mb`` / ``peak_gpu_mb`` (MiB), ``hardware`` (text, with whether the
    runs shared the CPU, :func:`recbole_llm.benchmark.cost.cpu_shared`) and
    ``weights_sha256`` (the first 12 hex digits of each weight file's sha256, or ``n/a``); None
    for a value the records do not hold."""
    first = recs[0]
    lm = first.get("lm") or {}
    params = first.get("parameters") or {}
    name = lm.get("name") or params.get("lm_name") or (first.get("config") or {}).get("lm_name") or ""
    digests = lm.get("weights_sha256") or {}
    hardware = first.get("hardware") or {}
    users = (first.get("dataset_stats") or {}).get("users")
    test_time_s = _cost("test_time_s")
    return {
        "lm": short_lm_name(name),
        "model_type": lm.get("model_type"),
        "parameters": lm.get("parameters") or params.get("lm"),
        "parameters_outside_embeddings": lm.get("parameters_outside_embeddings"),
        "layers": lm.get("layers"),
        "hidden_size": lm.get("hidden_size"),
        "titles_per_prompt": titles_per_prompt(recs),
        "train_s_per_epoch": _mean(recs, _cost("train_time_per_epoch_s")),
        "eval_users_per_s": _mean(recs, lambda r: users / test_time_s(r) if users and test_time_s(r) else None),
        "peak_rss_mb": _mean(recs, _cost("peak_rss_mb")),
        "peak_gpu_mb": _mean(recs, _cost("peak_gpu_mb")),
        "hardware": (f"{hardware.get('gpu') or hardware.get('cpu', '?')}, {hardware.get('torch_threads', '?')} "
                     f"thread(s); CPU shared: {cpu_shared(recs)}") if hardware else "n/a",
        "weights_sha256": ", ".join(f"{f}: {d[:12]}" for f, d in sorted(digests.items())) or "n/a",
    }


def _num(x, digits=1):
    """The cost page's number format (:func:`recbole_llm.benchmark.cost.format_number`: ``digits`` decimals,
    thousands separated); ``n/a`` where the records do not hold the value, as in the table's text cells."""
    return "n/a" if x is None else format_number(x, digits)


def _count(n):
    """A parameter count in millions: ``268.1M``."""
    return "n/a" if n is None else _num(n / 1e6) + "M"


def _eq(p):
    """`` = 0.04`` or `` <1e-4`` after a "p"."""
    return f" {p}" if p.startswith("<") else f" = {p}"


def render_lm_facts(facts_by_row) -> str:
    """The LM table: one line per ``(label, facts)`` of :func:`lm_facts`."""
    headers = ["Row", "LM", "Parameters", "outside embeddings", "Layers", "Hidden", "Titles/prompt", "s/epoch",
               "eval users/s", "peak memory (MiB)", "measured on", "weights (sha256)"]
    body = []
    for label, f in facts_by_row:
        memory = f["peak_gpu_mb"] if f["peak_gpu_mb"] else f["peak_rss_mb"]
        body.append([escape_markdown(label), f"{f['lm']} ({f['model_type'] or 'n/a'})", _count(f["parameters"]),
                     _count(f["parameters_outside_embeddings"]), _num(f["layers"], 0), _num(f["hidden_size"], 0),
                     f["titles_per_prompt"], _num(f["train_s_per_epoch"], 0), _num(f["eval_users_per_s"], 0),
                     _num(memory, 0) + (" (GPU)" if f["peak_gpu_mb"] else ""), f["hardware"],
                     f["weights_sha256"]])
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def answer(rows, facts, metric="ndcg@10") -> str:
    """One paragraph: did ``metric`` rise with the LM? ``rows``: the variant page's rows
    (:func:`recbole_llm.benchmark.variants.variant_rows`, the reference first), ``facts``:
    ``{label: lm_facts}``. The rows are ordered by LM size; a rise (or fall) is stated only when
    the metric moves one way with size and the difference to the reference of the largest LM
    other than the reference is significant by the page's rule (Holm and the seed-aware p below
    :data:`stats.ALPHA`); with one seed that cannot hold, and the paragraph says what the
    single-seed test does show. The paragraph names that row: when the reference is itself the
    largest LM, the row tested is the next largest, not the largest."""
    name = pretty_metric(metric)
    sized = [r for r in rows if facts[r["row"]]["parameters"]]
    if len(sized) < 2:
        return ""
    sized.sort(key=lambda r: facts[r["row"]]["parameters"])
    reference = rows[0]
    steps = []
    for r in sized:
        f = facts[r["row"]]
        text = f"{r[metric]:.4f} with {f['lm']} ({_count(f['parameters'])})"
        if r is not reference and not r["untested"]:
            text += (f", {r['diff_pct']:+.1f}% vs {facts[reference['row']]['lm']} "
                     f"(p{_eq(stats.format_p(r['p_ttest']))}, Holm {stats.format_p(r['p_holm'])}"
                     + (f", seeds {stats.format_p(r['p_seeds'])})" if r["seed_test"] else ", one seed)"))
        steps.append(text)
    values = [r[metric] for r in sized]
    rising = all(b > a for a, b in zip(values, values[1:]))
    falling = all(b < a for a, b in zip(values, values[1:]))
    tested = [r for r in sized if r is not reference][-1]  # the largest LM besides the reference
    significant = (not tested["untested"] and tested["p_holm"] < stats.ALPHA and bool(tested["seed_test"])
                   and tested["p_seeds"] < stats.ALPHA)
    which = "the largest LM" if tested is sized[-1] else "the largest LM besides the reference"
    difference = (f"the difference of {facts[tested['row']]['lm']} ({which}) to the reference "
                  f"{facts[reference['row']]['lm']}")
    model = reference["row"].split(" ")[0]
    if (rising or falling) and significant:
        verdict = (f"{name} {'rises' if rising else 'falls'} with the LM's size on this data, and {difference} "
                   f"is significant (Holm and seed-aware p < {stats.ALPHA}).")
    elif rising or falling:
        verdict = (f"{name} {'rises' if rising else 'falls'} with the LM's size here, but not at the page's strength: "
                   + ("one seed per row, so no test says the order survives another seed."
                      if not tested["seed_test"] else f"{difference} is not significant."))
    else:
        verdict = f"{name} does not move one way with the LM's size on this data."
    seeds = sorted({s for r in sized for s in r["seeds"].split(",")})
    return (f"Does {model} gain with a larger LM (IDLE-Adapter's Fig. 2 question)? Test {name}, seeds "
            f"{', '.join(seeds)}: " + "; ".join(steps) + ". " + verdict)
