"""Run records: one JSON file per (model, seed) run, written atomically, never edited.

Layout: ``<output>/<dataset>/runs/<label>__seed<seed>__<time>.json``. A re-run adds a file;
tables take, for each (label, seed), the newest record.
"""

import json
import re
import time
from collections import OrderedDict
from pathlib import Path

from recbole_llm.errors import UserError
from recbole_llm.fsutil import atomic_write_text, folder_lock


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.+=-]+", "_", name)


def runs_dir(output, dataset):
    return Path(output) / dataset / "runs"


def write_record(output, record):
    """Store ``record`` (needs ``dataset``, ``seed`` and ``label`` or ``model``); return its path.

    The name is chosen and written under the runs folder's lock, so two commands that store a
    record of one label and seed in the same second keep both (``...-2.json``)."""
    label = record.get("label") or record["model"]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = runs_dir(output, record["dataset"])
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    with folder_lock(folder):
        path = folder / f"{_safe(label)}__seed{record['seed']}__{stamp}.json"
        n = 1
        while path.exists():
            n += 1
            path = path.with_name(f"{_safe(label)}__seed{record['seed']}__{stamp}-{n}.json")
        return atomic_write_text(path, text)


def eta_s(run_times, remaining, parallel=1, earlier=None):
    """Seconds the ``remaining`` runs (row labels) should take: each at the mean wall time of this
    command's finished runs of the same label, else of ``earlier`` runs of it (:func:`earlier_run_times`),
    over ``parallel`` processes; None while a remaining label has neither (an LLM run costs hours
    where its ID model took a minute, so no other row's time stands for it). ``run_times`` and
    ``earlier``: label -> list of seconds."""
    total = 0.0
    for label in remaining:
        times = run_times.get(label) or (earlier or {}).get(label)
        if not times:
            return None
        total += sum(times) / len(times)
    return total / max(1, parallel)


def earlier_run_times(output, dataset, budget, epochs_max=None):
    """label -> wall times (s) of the stored records of ``dataset`` under ``budget``: what the
    runner's ETA assumes for a row before this command has finished a run of it.

    ``epochs_max``: label -> the epoch cap this command trains that label under; a record of the
    label made under another cap is left out (a 3-epoch run says nothing of a converged one's
    cost). Labels not in it, and records without a ``protocol``, are all counted.
    """
    caps = epochs_max or {}
    times = {}
    folder = runs_dir(output, dataset)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            if rec.get("budget", "full") != budget:
                continue
            label = rec.get("label") or rec["model"]
            if label in caps and "protocol" in rec and int(rec["protocol"]["epochs_max"]) != int(caps[label]):
                continue
            times.setdefault(label, []).append(float(rec["cost"]["wall_time_s"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a record the tables would report; the ETA only skips it
    return times


def store_run(output, record, label, budget, elapsed, eta):
    """Write a finished run's record under ``label`` and ``budget`` and print the runner's line for
    it (test NDCG@10/HR@10, epochs, wall time, the record, elapsed and ETA in seconds, from
    :func:`eta_s`; None: not known); return the record's path. One place for the sequential
    runner and ``--jobs``."""
    record["label"] = label
    record["budget"] = budget
    path = write_record(output, record)
    test = record["test"]
    print(f"[recbole-llm] done {record['model']} seed {record['seed']}: test NDCG@10 "
          f"{test.get('ndcg@10', float('nan')):.4f} HR@10 {test.get('hit@10', float('nan')):.4f} | "
          f"{record['epochs_run']} epochs, {record['cost']['wall_time_s']:.0f}s | record {path} | "
          f"elapsed {elapsed:.0f}s, " + ("ETA unknown (a row still to run has no finished run)" if eta is None
                                        else f"ETA {eta:.0f}s"), flush=True)
    return path


def load_records(output, dataset):
    """All records of ``dataset``, newest last; unreadable files are reported, not skipped silently."""
    records = []
    folder = runs_dir(output, dataset)
    for path in sorted(folder.glob("*.json")):
        try:
            with open(path, encoding="utf-8") as f:
                rec = json.load(f)
        except (OSError, ValueError) as err:
            raise UserError(f"run record {path} cannot be read ({' '.join(str(err).split())}); move it out of "
                            f"{folder} (or delete it and run that model and seed again)") from None
        if not isinstance(rec, dict):
            raise UserError(f"run record {path} holds a JSON {type(rec).__name__}, not a run record; move it out of "
                            f"{folder}")
        rec["_path"] = str(path)
        records.append(rec)
    records.sort(key=stored_order)
    return separate_epoch_caps(records)


def stored_order(record):
    """Sort key of records, oldest first: when a record was stored (``stored_at``: a sweep's copy of a
    stored run, :func:`recbole_llm.tune.reuse.same_run_record`; else ``finished_at``), then its path."""
    return (record.get("stored_at") or record.get("finished_at", ""), record.get("_path", ""))


def is_copy(record):
    """Whether ``record`` is a stored run written again under another row (``same_run_as``)."""
    return bool(record.get("same_run_as"))


def split_copies(records):
    """``(records, copies)``: the records a comparison shows, and apart from them each sweep's copy of a
    run whose own record is among ``records`` (:func:`is_copy`): one set of runs is one row, tested
    once (a row of copies beside its original would repeat its numbers and its tests)."""
    names = {Path(r["_path"]).name for r in records if r.get("_path")}
    copies = [r for r in records if is_copy(r) and r["same_run_as"] in names]
    ids = {id(r) for r in copies}
    return [r for r in records if id(r) not in ids], copies


def separate_epoch_caps(records):
    """Records of one label made under different epoch caps are different rows, not seeds of one.

    A label (``--label``, default the model) names a configuration; a re-run under the same cap
    replaces a seed's record, but one under another cap (``--epochs=3`` beside the budget's 50)
    would otherwise be averaged with it. Where a label holds several caps, the records of every
    cap but the largest are shown as ``<label> (--epochs=<cap>)`` (records are not edited: the
    row label is given when they are loaded; ``stored_label`` keeps the stored one).
    """
    caps = {}
    for rec in records:
        caps.setdefault(rec.get("label") or rec["model"], set()).add(int(rec["protocol"]["epochs_max"]))
    for rec in records:
        label = rec.get("label") or rec["model"]
        cap = int(rec["protocol"]["epochs_max"])
        if len(caps[label]) > 1 and cap != max(caps[label]):
            rec["stored_label"] = label
            rec["label"] = f"{label} (--epochs={cap})"
    return records


def find_record(output, dataset, label, seed, run_key, budget):
    """Path of a stored record of ``label`` and ``seed`` made with ``run_key`` under ``budget``
    (the run a re-run would repeat), or None; the dataset's records are read (:func:`stored_record`
    searches records already loaded)."""
    rec = stored_record(load_records(output, dataset), label, seed, run_key, budget)
    return None if rec is None else rec["_path"]


def stored_record(records, label, seed, run_key, budget):
    """The newest of ``records`` (:func:`load_records`) of ``label`` and ``seed`` made with ``run_key``
    under ``budget`` (its ``_path`` set), or None. ``label=None`` matches a record of any label: an
    LLM run's ID base is the run of that key, whatever row it was stored under (``ComiRec-tuned``);
    the run's own record before a sweep's copy of it (:func:`is_copy`), so that its row name holds."""
    found = [rec for rec in records
             if ((label is None or stored_label(rec) == label) and rec["seed"] == seed
                 and rec.get("run_key") == run_key and rec.get("budget", "full") == budget)]
    if label is None:
        found = [rec for rec in found if not is_copy(rec)] or found
    return found[-1] if found else None


def stored_label(record):
    """The row label a record was stored under (a loaded record's ``label`` may have been given
    ``(--epochs=N)`` by :func:`separate_epoch_caps`)."""
    return record.get("stored_label") or record.get("label") or record["model"]


def _counted_after_augmentation(record):
    """True for a record whose interaction counts came from RecBole's augmented ``inter_feat``:
    made before ``record_version`` 2 (:data:`recbole_llm.record.RECORD_VERSION`) by a
    sequential model, whose dataset holds one sample per interaction but each user's first."""
    return record.get("record_version", 1) < 2 and record.get("config", {}).get("MODEL_TYPE") == "SEQUENTIAL"


def dataset_stats(record):
    """The record's ``dataset_stats`` with ``interactions`` counted as loaded (before augmentation).

    A record made before the fix (:func:`_counted_after_augmentation`) says ``interactions - users``;
    the users are added back. That is exact when every user has an interaction, which holds when
    no ``.user`` file is loaded (``load_col`` without ``user``: every shipped dataset config), since
    RecBole then knows only users from the ``.inter`` file; otherwise the stored value is kept.
    """
    stats = dict(record["dataset_stats"])
    load_col = record.get("config", {}).get("load_col")
    if _counted_after_augmentation(record) and not (isinstance(load_col, dict) and "user" in load_col):
        stats["interactions"] += stats["users"]
    return stats


def history_lengths(record):
    """Per test user (in ``per_user`` order), the number of interactions before the test item.

    Records made before the fix (:func:`_counted_after_augmentation`) stored one fewer for every
    user (the augmented samples were counted); one is added back.
    """
    lengths = record["per_user"]["history_length"]
    return [n + 1 for n in lengths] if _counted_after_augmentation(record) else list(lengths)


def latest_per_seed(records):
    """Keep, for each (label, seed), the newest record."""
    chosen = {}
    for rec in records:
        chosen[(rec.get("label") or rec["model"], rec["seed"])] = rec
    return list(chosen.values())


def is_llm(records):
    """True for a row of a frozen-LM recommender: its records count the LM's parameters
    (``LLMSequentialRecommender.parameter_report``), whatever the model is called."""
    return any(r.get("parameters", {}).get("lm") for r in records)


def row_group(records):
    """Where a row goes in a table: 0 an ID model at its configured hyperparameters, 1 an ID model
    whose hyperparameters a sweep chose (its records carry ``tune``), 2 a frozen-LM model (its
    records count the LM's parameters)."""
    if is_llm(records):
        return 2
    return 1 if any(r.get("tune") for r in records) else 0


def group_rows(records):
    """``{label: [records of its seeds]}``, the newest record per (label, seed); rows ordered by
    :func:`row_group` (baselines, tuned baselines, LLM rows), first-seen order within a group."""
    grouped = OrderedDict()
    for rec in latest_per_seed(records):
        grouped.setdefault(rec.get("label") or rec["model"], []).append(rec)
    order = sorted(grouped, key=lambda label: row_group(grouped[label]))  # sorted() is stable
    return OrderedDict((label, grouped[label]) for label in order)
