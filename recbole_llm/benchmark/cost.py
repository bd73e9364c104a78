"""The cost table of a results page (``cost.md``): what each row's runs cost, means over seeds."""

import math
import statistics

from tabulate import tabulate

from recbole_llm.benchmark import convergence
from recbole_llm.benchmark.labels import escape_markdown
from recbole_llm.benchmark.records import group_rows
from recbole_llm.benchmark.stats import mean_of


def format_number(value, digits=1):
    """``value`` with thousands separators and ``digits`` decimals; ``-`` for a missing one (None, NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def trained_on(recs):
    """What a row's LLM models tuned on: ``all <n>`` or ``<strategy> <selected>``."""
    sel = next((r.get("data_selection") for r in recs if r.get("data_selection")), None)
    if not sel or sel.get("strategy") in (None, "all"):
        n = recs[0].get("dataset_stats", {}).get("train_samples")
        return f"all {n:,}" if n else "all"
    return f"{sel['strategy']} {sel['selected']:,}"


def median_epoch_s(record, key="train_time_s"):
    """Median over a record's epochs of ``history[].<key>`` (seconds), or None where the history
    lacks it. Unlike the record's mean, it is not moved by a few epochs slowed by a paused process
    or by other work on the machine, so it is the cost of an epoch a reader can plan with."""
    times = [e[key] for e in record.get("history") or [] if isinstance(e.get(key), (int, float)) and not isinstance(e.get(key), bool)]
    return statistics.median(times) if times else None


def cpu_shared(recs):
    """Whether a row's runs shared the CPU with other work while they were timed (each record's
    ``cost.cpu_shared``, :func:`recbole_llm.record.cpu_sharing`): ``no``, ``yes (k of n; load L on T
    threads)`` with the mean load and the runs' own threads, or ``n/a`` for runs made before records
    kept it. A shared run's seconds are not a timing of it alone."""
    known = [r["cost"] for r in recs if (r.get("cost") or {}).get("cpu_shared") is not None]
    if not known:
        return "n/a"
    shared = [c for c in known if c["cpu_shared"]]
    if not shared:
        return "no"
    load = sum(c["load_average"] for c in shared) / len(shared)
    threads = sorted({c["run_threads"] for c in shared})
    return (f"yes ({len(shared)} of {len(recs)}; load {load:.1f} on {'/'.join(map(str, threads))} "
            f"thread{'s' * (threads != [1])})")


def cost_rows(records):
    """One row per label: means over seeds of what each run cost (see the header of :func:`cost_table`)."""
    out = []
    for label, recs in group_rows(records).items():
        def mean(get):
            return mean_of(recs, get)

        cost = lambda key: mean(lambda r: (r.get("cost") or {}).get(key))  # noqa: E731
        data = trained_on(recs)
        out.append({
            "model": label,
            "seeds": len(recs),
            "data": data,
            "epochs": mean(lambda r: r.get("epochs_run")),
            "train_s_per_epoch": cost("train_time_per_epoch_s"),
            "train_s_per_epoch_median": mean(median_epoch_s),
            "train_samples_per_s": cost("train_samples_per_s"),
            "bare_lm_samples_per_s": cost("train_samples_per_s_bare_lm"),
            "throughput_ratio": cost("adapter_throughput_ratio"),
            "valid_s": cost("valid_time_per_epoch_s"),
            "test_s": cost("test_time_s"),
            "peak_rss_mb": cost("peak_rss_mb"),
            "peak_gpu_mb": cost("peak_gpu_mb"),
            "trainable": mean(lambda r: r.get("parameters", {}).get("trainable")),
            # the model's own total includes the frozen LM (a submodule); the frozen ID model is not one
            "total": mean(lambda r: r.get("parameters", {}).get("total", 0) + r.get("parameters", {}).get("id_model", 0)),
            "device": recs[0].get("device"),
            "cpu_shared": cpu_shared(recs),
        })
    return out


def cost_table(records):
    """The cost table as Markdown (means over each row's seeds)."""
    flagged = convergence.unconverged(group_rows(records))
    body, f = [], format_number
    for c in cost_rows(records):
        body.append([
            convergence.marked(escape_markdown(c["model"]), c["model"] in flagged), c["seeds"], c["data"],
            f(c["epochs"]), f(c["train_s_per_epoch"]), f(c["train_s_per_epoch_median"]), f(c["train_samples_per_s"]),
            f(c["bare_lm_samples_per_s"]), f(c["throughput_ratio"], 2), f(c["valid_s"], 2), f(c["test_s"], 2),
            f(c["peak_rss_mb"], 0), f(c["peak_gpu_mb"], 0), f(c["trainable"], 0), f(c["total"], 0), c["device"],
            c["cpu_shared"],
        ])
    headers = ["Model", "Seeds", "Trained on", "Epochs", "Train s/epoch", "Median train s/epoch", "Train samples/s",
               "Bare LM samples/s", "Adapter ratio", "Valid s (all users)", "Test s (all users)",
               "Peak RSS MB", "Peak GPU MB", "Trainable params", "Total params", "Device", "CPU shared"]
    table = tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
    note = convergence.footnote(flagged, uses="an unconverged row's epochs are where it was cut off, not "
                                              "what convergence costs")
    return table + ("\n\n" + note if note else "")


def cost_page(dataset, records, command=None):
    """The text of ``cost.md``: the cost table under a paragraph saying what each column measures."""
    lines = [f"# {dataset}: cost", "",
             "Means over each row's seeds, from the run records' `cost` and `parameters`. Train samples/s is "
             "over the training epochs. *Median train s/epoch* is each run's median epoch (its `history`): "
             "unlike the mean, it is not moved by epochs slowed by a paused process or other work on the "
             "machine; for the LLM rows, *Bare LM samples/s* is the frozen LM's own "
             "forward+backward on the same batches, timed in the same run after training, and *Adapter "
             "ratio* is the model's throughput over it on those batches. Valid/Test s: one full-ranking pass over all "
             "users and items. Peak RSS is per run (reset at its start). Total params count the frozen LM and "
             "ID model for the LLM rows. *CPU shared*: whether the machine's load average, sampled after each "
             "training epoch, exceeded the run's own threads (other work ran beside it: its seconds are not a "
             "timing of it alone; n/a for runs made before records kept the load).", "", cost_table(records)]
    if command:
        lines += ["", f"Regenerate: `{command}`"]
    return "\n".join(lines) + "\n"
