"""A sweep does not train again a run it already has: a trial, or a run of the best configuration,
whose run key and seed are those of a finished run's record.

A sweep of an LLM model's lambda over {0.1, 0.2, 0.5, 1.0} holds the default point (0.1), and the
benchmark's three-seed row at the defaults is that very run: on a CPU one such run is 2-10 hours.
The run key (:func:`recbole_llm.identity.run_key`) is the benchmark's definition of "the same run"
(the runner skips a run whose record has it, whatever row it was stored under), and it holds every
value the run reads, the data and the code version; the sweep uses it the same way:

* a trial whose key and seed have a stored record (any row label, the sweep's budget; the whole
  validation history, one process) is not trained: :func:`replay` reports that run's validation
  scores, epoch by epoch, as the trial's; its ``trial_record.json`` says which record it replayed
  (``replayed_from``) and holds no test metric. ASHA sees the same scores, but all at once: a
  replayed trial that reaches a rung before any other trial is not stopped there (ASHA stops a
  trial only against the trials already at that rung), and it sets the bar for those after it;
* a trial that trained to its end keeps its record (validation only) in the sweep's results folder,
  ``results/<dataset>/tune/<name>/trials/`` (:func:`keep_trial_record`): the sweep's Tune folder
  lives on the machine that ran it, and a sweep resumed on another one (a session's machine is not
  always kept; CI's never is) replays these records (:func:`kept_trials`) instead of training their
  trials again. A trial that ASHA stopped keeps nothing: it trains again;
* a best-configuration run whose key and seed have a stored record is stored under the sweep's row
  label as a copy of that record (:func:`same_run_record`, ``same_run_as`` naming the original),
  with the sweep's ``tune`` entry; the selection never saw its test metrics (the trials report
  validation only).

Nothing here is RecBole's or Ray's: Tune restores a sweep's own trials, not runs made outside it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Mapping, Optional

from recbole_llm.identity import KEY_SCHEME

TRIALS_DIR = "trials"  # under a sweep's results folder: the records of its trials that trained to their end


def finished_runs(records, model: str, seed: int, budget: str, valid_metric: str) -> dict:
    """``{run_key: summary}`` of ``records`` (:func:`recbole_llm.benchmark.records.load_records` of
    the sweep's dataset) of ``model`` and ``seed`` under ``budget``, made under the current key
    scheme, whose history holds ``valid_metric`` at every validation; the newest per key. A summary
    is small (it travels to every trial): the record's file name, its epochs, its best epoch and
    ``valid``, the list ``[(epoch, score)]`` of its validations."""
    metric = valid_metric.lower()
    out = {}
    for rec in records:  # newest last: a later record of a key replaces an earlier one
        if (rec.get("model") != model or rec.get("seed") != seed or rec.get("budget", "full") != budget
                or rec.get("key_scheme", 1) != KEY_SCHEME or not rec.get("run_key")):
            continue
        scores = [(int(h["epoch"]), float(h["valid"][metric])) for h in rec.get("history") or ()
                  if isinstance(h.get("valid"), Mapping) and metric in h["valid"]]
        best = (rec.get("valid") or {}).get(metric)
        # the whole history (its best is the record's best) of a run in one process (several shuffle
        # the data otherwise: the run key does not tell them apart, a trial's numbers would)
        if not scores or best is None or max(s for _, s in scores) != float(best) or _processes(rec) > 1:
            continue
        out[rec["run_key"]] = {"record": Path(rec["_path"]).name, "run_key": rec["run_key"], "seed": seed,
                               "epochs_run": int(rec["epochs_run"]), "best_epoch": rec.get("best_epoch"),
                               "valid": rec.get("valid"), "scores": scores}
    return out


def keep_trial_record(folder, record: Mapping, budget: Optional[str], params: Mapping, roots=None) -> Path:
    """Write the record of a trial that trained to its end (:func:`recbole_llm.pipeline.run` with
    ``evaluate_test=False``: no test metric) to ``<folder>/trial-<run_key>-seed<seed>.json``,
    atomically, with the sweep's ``budget`` and the trial's swept ``params`` (``tune_trial``), every
    path made portable under ``roots`` (:func:`recbole_llm.paths.portable_record`). Dropped: its
    checkpoint (trial checkpoints are deleted) and its ``command``, a Ray worker's (node address,
    ports, session: nothing a reader can run; the sweep's command is in its ``sweep_record.json``).
    Returns the path. Raises OSError when the folder cannot be written."""
    import json

    from recbole_llm.fsutil import atomic_write_text
    from recbole_llm.paths import portable_record

    kept = {k: v for k, v in record.items() if k not in ("checkpoint", "command")}
    kept["tune_trial"] = {"params": dict(params)}
    if budget is not None:
        kept["budget"] = budget
    kept = portable_record(kept, roots)
    path = Path(folder) / f"trial-{record['run_key']}-seed{record['seed']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(kept, indent=1, sort_keys=True, default=str) + "\n")
    return path


def kept_trials(folder) -> list:
    """The trial records :func:`keep_trial_record` wrote in ``folder`` (each with ``_path`` set, as
    :func:`recbole_llm.benchmark.records.load_records` sets it), oldest first; ``[]`` when there is
    none. A file that is not a JSON object is skipped with a warning."""
    import json
    import logging

    out = []
    for path in sorted(Path(folder).glob("trial-*.json")) if Path(folder).is_dir() else ():
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            logging.getLogger(__name__).warning("skipping kept trial record %s: %s", path, err)
            continue
        if isinstance(rec, dict):
            rec["_path"] = str(path)
            out.append(rec)
    out.sort(key=lambda r: str(r.get("finished_at") or ""))
    return out


def _processes(record) -> int:
    """How many processes trained ``record``'s run (``distributed``, ``--nproc``; 1 without)."""
    return int((record.get("distributed") or {}).get("world_size") or 1)


def replay(summary: Mapping, report: Callable[[int, float], None]) -> dict:
    """Report each validation of ``summary`` (one of :func:`finished_runs`) through ``report(epoch_idx,
    score)`` (the trial's, which raises ``SystemExit`` where ASHA stops the trial, as in a live
    run); return the trial record: the finished run's epochs and best validation, ``replayed_from``."""
    for epoch, score in summary["scores"]:
        report(epoch, score)
    return {"replayed_from": summary["record"], "run_key": summary["run_key"], "seed": summary["seed"],
            "epochs_run": summary["epochs_run"], "best_epoch": summary["best_epoch"], "valid": summary["valid"],
            "test": None}


def same_run_record(source: Mapping, label: str, budget: Optional[str], tune: Mapping) -> dict:
    """The record of a best-configuration run that is the stored run ``source`` (a loaded record: its
    ``_path`` set): a copy stored under ``label`` with the sweep's ``tune`` entry and
    ``same_run_as``, the file name of ``source`` (of the record it copies, if it is a copy);
    loading's additions (``_path``, ``stored_label``) are dropped. ``stored_at`` (now) orders it
    among the records (:func:`recbole_llm.benchmark.records.stored_order`): ``finished_at`` stays
    the run's."""
    record = {k: v for k, v in source.items() if not k.startswith("_") and k != "stored_label"}
    record.update(label=label, tune=dict(tune), same_run_as=source.get("same_run_as") or Path(source["_path"]).name,
                  stored_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    if budget is not None:
        record["budget"] = budget
    return record
