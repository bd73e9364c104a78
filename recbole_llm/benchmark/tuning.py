"""The tuning page of a dataset's results folder (``tuning.md``, ``tuning.csv``): was each baseline
tuned, and what did tuning change?

A baseline gets the tuning an LLM row gets, or the pages say it did not (``docs/STYLE``: Results).
This page says it, one line per ID model (the baselines and ComiRec; an LLM row is never on it) of
the comparison page's *headline* rows (:func:`~recbole_llm.benchmark.page.row_sections`: the rows
of the history page, trained under a lower epoch cap, are left out):

* a model with a *default row* (a row without ``tune``: its configured hyperparameters under the
  page's budget; the row labelled like the model where there is one) and a *tuned row* (its records
  carry ``tune``, the tag :func:`recbole_llm.tune.sweep.run_best` writes; labelled
  ``<Model>-tuned`` or anything else) gets both rows' seeds, validation and test NDCG@10, the tuned
  row against the default on test (:func:`~recbole_llm.benchmark.stats.compare`, Holm over this
  page's lines, the seed-aware p and :func:`~recbole_llm.benchmark.stats.verdict`'s word), the
  swept values that differ from the default row's config, and how many of its sweep's trials
  finished (from ``tune/<name>/sweep_record.json``); one tuned row per line, so a model swept twice
  (``--tune-name``) has two lines;
* a model with a default row and no tuned row: ``not tuned yet``;
* a model with a tuned row and no default row: ``no default row`` (nothing to say what tuning changed).

The page is drawn when the headline holds a tuned ID-model row (:func:`tuning_files`); a folder
whose tuned rows are gone loses it (:func:`remove_stale`, under the page's lock).

The sweep's record is read as JSON here, not through
:func:`~recbole_llm.tune.report.load_sweep_record`: that loads the sweep package (torch, RecBole)
to rebuild a ``Sweep``, where this page needs only its trials' statuses and ``planned``. Why by hand:
each cell sets two rows' numbers side by side, which no pandas summary of one row per label gives;
tabulate draws the table, as on the other pages.
"""

import json
import math
import statistics
from pathlib import Path, PurePosixPath

import pandas as pd
from tabulate import tabulate

from recbole_llm.benchmark import convergence, notes, stats, tables
from recbole_llm.benchmark.labels import escape_markdown
from recbole_llm.benchmark.per_user import pretty_metric
from recbole_llm.benchmark.records import group_rows, is_llm, stored_label
from recbole_llm.errors import UserError
from recbole_llm.fsutil import folder_lock

PAGE, CSV = "tuning.md", "tuning.csv"
METRIC = stats.HEADLINE
SWEEP_RECORD = "sweep_record.json"  # recbole_llm.tune.report.SWEEP_RECORD (see the module docstring)
FINISHED = ("completed", "stopped (ASHA)")  # recbole_llm.tune.sweep.FINISHED: statuses with a score
FAILED = "error"
NOT_TUNED, NO_DEFAULT = "not tuned yet", "no default row"
TITLE = "tuning of the ID models"


def _title(dataset):
    return f"# {dataset}: {TITLE}"


def sweep_records(out_dir):
    """``[(folder name, sweep record)]`` of the readable ``tune/*/sweep_record.json`` under
    ``out_dir`` (the format of :func:`recbole_llm.tune.report.write_sweep_record`); an unreadable
    one is left out, and the lines it would serve say ``n/a``."""
    root = Path(out_dir) / "tune" if out_dir is not None else None
    out = []
    for path in sorted(root.glob(f"*/{SWEEP_RECORD}")) if root is not None and root.is_dir() else []:
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and isinstance(rec.get("trials"), list):
            out.append((path.parent.name, rec))
    return out


def _experiment(sweep):
    """The Tune experiment's name, which the tuned records' ``tune.experiment`` names."""
    return PurePosixPath(str(sweep.get("experiment_path") or "")).name


def _tags(recs):
    """The ``tune`` tags of a row's records, newest first."""
    return [r["tune"] for r in sorted(recs, key=lambda r: r.get("finished_at", ""), reverse=True)
            if isinstance(r.get("tune"), dict)]


def find_sweep(recs, sweeps):
    """``(folder name, sweep record)`` of the sweep a tuned row's records came from, or None: the one
    whose experiment the newest record's ``tune.experiment`` names; for records without that name,
    the only sweep of their model. A folder that now holds another sweep of the model (a newer
    experiment) is not this row's."""
    experiment = next((t.get("experiment") for t in _tags(recs) if t.get("experiment")), None)
    if experiment:
        return next(((name, s) for name, s in sweeps if _experiment(s) == experiment), None)
    of_model = [(name, s) for name, s in sweeps if s.get("model") == recs[0]["model"]]
    return of_model[0] if len(of_model) == 1 else None


def trial_counts(sweep):
    """``{"planned", "finished", "failed", "best_trial", "best_params"}`` of a sweep record: its
    trials by status; the best is the first finished trial with a score in the stored order (the
    record keeps them sorted by score, as :attr:`recbole_llm.tune.sweep.Sweep.best` reads them)."""
    trials = sweep["trials"]
    keys = [p["key"] for p in sweep.get("space") or []]
    finished = [t for t in trials if t.get("status") in FINISHED]
    scored = [t for t in finished if isinstance(t.get("metric"), (int, float)) and not math.isnan(t["metric"])]
    best = scored[0] if scored else None
    return {"planned": int(sweep.get("planned") or len(trials)), "finished": len(finished),
            "failed": sum(t.get("status") == FAILED for t in trials),
            "best_trial": best.get("trial") if best else None,
            "best_params": {k: best.get(k) for k in keys} if best else None}


def _pick_default(labels, grouped, model):
    """The default row among a model's untuned rows: the one labelled like the model, else one stored
    under the model's name (``ComiRec (--epochs=50)``), else the first in table order."""
    for test in (lambda lb: lb == model, lambda lb: any(stored_label(r) == model for r in grouped[lb])):
        found = [lb for lb in labels if test(lb)]
        if found:
            return found[0]
    return labels[0] if labels else None


def pairs(records):
    """``[(model, default label or None, tuned label or None)]`` of the ID-model rows of ``records``
    (the headline's), in table order of the models: one per tuned row, or one ``(model, default,
    None)`` for a model without any."""
    grouped = group_rows(records)
    ids = {label: recs for label, recs in grouped.items() if not is_llm(recs)}
    out = []
    for model in dict.fromkeys(recs[0]["model"] for recs in ids.values()):
        mine = [label for label, recs in ids.items() if recs[0]["model"] == model]
        tuned = [label for label in mine if any(r.get("tune") for r in ids[label])]
        default = _pick_default([label for label in mine if label not in tuned], ids, model)
        out += [(model, default, label) for label in tuned] or [(model, default, None)]
    return out


def _config_value(recs, key):
    """``(found, value)`` of ``key`` in the first of ``recs`` that keeps a config."""
    for r in recs:
        config = r.get("config")
        if isinstance(config, dict):
            return (key in config), config.get(key)
    return False, None


def _value(v):
    return f"{v:g}" if isinstance(v, float) else str(v)


def changed(params, default_recs):
    """``[(key, default value or None, tuned value)]`` of the swept ``params`` whose value differs
    from the default row's config (every key, with None, when the default records keep no config)."""
    out = []
    for key, value in (params or {}).items():
        found, default = _config_value(default_recs, key)
        if not found or default != value:
            out.append((key, default if found else None, value))
    return out


def _best_point(tuned_recs, default_recs, sweep):
    """The point a tuned row was trained at, as the keys that differ from the default row: its newest
    record's ``tune.params`` (what the row ran with), else the sweep's best; with the sweep's best trial
    beside it when that is another trial (a sweep resumed or re-run after the row was made)."""
    tags = _tags(tuned_recs)
    params = next((t["params"] for t in tags if t.get("params")), None)
    counts = trial_counts(sweep[1]) if sweep else None
    if params is None and counts:
        params = counts["best_params"]
    if params is None:
        return "n/a"
    diff = changed(params, default_recs) if default_recs else [(k, None, v) for k, v in params.items()]
    text = (", ".join(f"{k} {_value(d)} → {_value(v)}" if d is not None else f"{k}={_value(v)}" for k, d, v in diff)
            or "the defaults (no swept value differs)")
    trial = next((t.get("trial") for t in tags if t.get("trial")), None)
    if counts and counts["best_trial"] and trial and counts["best_trial"] != trial:
        text += f" (trial {trial}; the sweep's best is now trial {counts['best_trial']})"
    return text


def _trials(sweep):
    """The sweep cell: finished of planned, failed trials named, the folder linked; ``n/a`` without one."""
    if sweep is None:
        return "n/a (no sweep record)"
    name, rec = sweep
    c = trial_counts(rec)
    text = f"[{name}](tune/{name}/): {c['finished']} of {c['planned']} finished"
    if c["failed"]:
        text += f"; {c['failed']} of {c['planned']} trials failed, so the best point is not the sweep's"
    return text


def _seeds(recs):
    return ", ".join(str(s) for s in sorted(r["seed"] for r in recs))


def _test_values(recs):
    values = [r["test"][METRIC] for r in recs if METRIC in (r.get("test") or {})]
    mean = statistics.fmean(values) if values else float("nan")
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def _valid_mean(recs):
    return stats.mean_of(recs, lambda r: (r.get("valid") or {}).get(METRIC))


def _mean_std(recs):
    mean, std = _test_values(recs)
    return "-" if math.isnan(mean) else f"{mean:.4f}" + (f" ± {std:.4f}" if len(recs) > 1 else "")


def _num(x):
    return "-" if x is None or math.isnan(x) else f"{x:.4f}"


def lines_of(records, out_dir=None):
    """``(lines, m)``: one dict per :func:`pairs` entry (the rows' records, their sweep, the test of
    the tuned row against the default, Holm-adjusted over the ``m`` tests of the page)."""
    grouped = group_rows(records)
    sweeps = sweep_records(out_dir)
    out, tests = [], []
    for model, default, tuned in pairs(records):
        line = {"model": model, "default": default, "tuned": tuned, "default_recs": grouped.get(default, []),
                "tuned_recs": grouped.get(tuned, []), "test": None, "sweep": None}
        if tuned is not None:
            line["sweep"] = find_sweep(line["tuned_recs"], sweeps)
        line["same_runs"] = _same_runs(line["tuned_recs"], line["default_recs"])
        if default is not None and tuned is not None and not line["same_runs"]:
            test = stats.compare(line["tuned_recs"], line["default_recs"], (METRIC,),
                                 stats.Comparison(tuned, default, "versus"))[0]
            line["test"] = test
            tests.append(test)
        out.append(line)
    adjusted, m = stats.adjust(tests)
    by_key = {t.key: t for t in adjusted}
    for line in out:
        if line["test"] is not None:
            line["test"] = by_key[line["test"].key]
    return out, m


SAME_RUNS = "the same runs: the sweep chose the defaults' point"


def _same_runs(tuned_recs, default_recs):
    """Whether every tuned record is a stored run of the default row written again (``same_run_as``,
    :mod:`recbole_llm.tune.reuse`): nothing to test, the two rows are one set of runs."""
    names = {Path(r["_path"]).name for r in default_recs if r.get("_path")}
    return bool(tuned_recs) and all(r.get("same_run_as") in names for r in tuned_recs)


def _row_cells(label, recs, flagged, missing, valid_change=None):
    """Label (seeds), validation and test cells of one side of a line."""
    if label is None:
        return [missing, "-", "-"]
    valid = _num(_valid_mean(recs))
    if valid_change is not None and not math.isnan(valid_change):
        valid += f" ({valid_change:+.1f}%)"
    return [f"{convergence.marked(escape_markdown(label), label in flagged)} ({_seeds(recs)})", valid, _mean_std(recs)]


def _test_cells(test, seeds):
    """Δ/p/Holm, the seed-aware p and the verdict of a line's test (``-`` without one); ``seeds``:
    both rows' seeds, so the cell names the common ones when the test used fewer."""
    if test is None:
        return ["-", "-", "-"]
    if test.why:
        return [test.why, "-", "not tested"]
    text = stats.cell(test)
    if set(test.seeds_a) != set(seeds):
        text += f"; seeds {', '.join(map(str, test.seeds_a))}"
    name, p = test.seed_test
    seed_p = "-" if math.isnan(p) else f"{stats.format_p(p)} ({name})"
    return [text, seed_p, stats.verdict(test)]


def tuning_table(lines, flagged):
    """The page's table (Markdown) and its CSV frame (one row per line, full precision)."""
    name = pretty_metric(METRIC)
    headers = ["ID model", "Default row (seeds)", f"Valid {name}", f"Test {name}", "Tuned row (seeds)",
               f"Valid {name} (vs default)", f"Test {name}", f"Δ test {name}, p (Holm)", "Seed-aware p", "Verdict",
               "Best point (changed from the default row)", "Sweep trials"]
    body, rows = [], []
    for line in lines:
        d, t, test = line["default_recs"], line["tuned_recs"], line["test"]
        valid_change = None
        if d and t:
            dv, tv = _valid_mean(d), _valid_mean(t)
            valid_change = 100.0 * (tv - dv) / dv if dv else float("nan")
        if line["tuned"] is None:
            tuned_cells, point, trials = [NOT_TUNED, "-", "-"], "-", "-"
        else:
            tuned_cells = _row_cells(line["tuned"], t, flagged, NOT_TUNED, valid_change)
            point = _best_point(t, d, line["sweep"])
            trials = _trials(line["sweep"])
        body.append([escape_markdown(line["model"]), *_row_cells(line["default"], d, flagged, NO_DEFAULT),
                     *tuned_cells, *([SAME_RUNS, "-", "not tested"] if line.get("same_runs") else
                                     _test_cells(test, {r["seed"] for r in d + t})), escape_markdown(point), trials])
        rows.append(_csv_row(line, flagged, point, valid_change))
    md = tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
    return md, pd.DataFrame(rows).set_index("model")


def _csv_row(line, flagged, point, valid_change):
    d, t, test = line["default_recs"], line["tuned_recs"], line["test"]
    status = (NOT_TUNED if line["tuned"] is None else NO_DEFAULT if line["default"] is None
              else SAME_RUNS if line.get("same_runs") else "tested")
    row = {"model": line["model"], "status": status}
    for side, label, recs in (("default", line["default"], d), ("tuned", line["tuned"], t)):
        mean, std = _test_values(recs) if recs else (float("nan"), float("nan"))
        row.update({f"{side}_row": label or "", f"{side}_seeds": ",".join(map(str, sorted(r["seed"] for r in recs))),
                    f"{side}_valid_{METRIC}_mean": _valid_mean(recs) if recs else float("nan"),
                    f"{side}_test_{METRIC}_mean": mean, f"{side}_test_{METRIC}_std": std,
                    f"{side}_converged": (label not in flagged) if label else ""})
    row["valid_diff_pct"] = float("nan") if valid_change is None else valid_change
    if test is not None:
        row.update({"common_seeds": ",".join(map(str, test.seeds_a)), "paired_users": test.n_users,
                    "diff_pct": test.diff_pct, "p_ttest": test.p_ttest, "p_holm": test.p_holm, "p_bh": test.p_bh,
                    "p_seed_bootstrap": test.p_bootstrap, "p_seed_ttest": test.p_seed_ttest,
                    "verdict": "not tested" if test.why else stats.verdict(test), "untested": test.why})
    counts = trial_counts(line["sweep"][1]) if line["sweep"] else None
    row.update({"best_point": point if line["tuned"] else "", "sweep": line["sweep"][0] if line["sweep"] else ""})
    row.update({f"trials_{k}": counts[k] if counts else "" for k in ("planned", "finished", "failed")})
    return row


def _summary_sentence(lines):
    """Which models were tuned, which not yet, which lack a default row, and failed sweeps; from the lines."""
    tested = [ln["model"] for ln in lines if ln["tuned"] and ln["default"]]
    untuned = [ln["model"] for ln in lines if ln["tuned"] is None]
    alone = [ln["model"] for ln in lines if ln["tuned"] and ln["default"] is None]
    models = list(dict.fromkeys(ln["model"] for ln in lines))
    parts = [f"{len(dict.fromkeys(tested + alone))} of {len(models)} ID models have a tuned row"]
    if untuned:
        parts.append(f"not tuned yet: {', '.join(untuned)}")
    if alone:
        parts.append(f"tuned with no default row to compare with: {', '.join(dict.fromkeys(alone))}")
    failed = []
    for ln in lines:
        if ln["sweep"]:
            c = trial_counts(ln["sweep"][1])
            if c["failed"]:
                failed.append(f"{ln['tuned']} ({c['failed']} of {c['planned']} trials failed)")
    text = "; ".join(parts) + "."
    if failed:
        text += (" Sweeps with failed trials, whose best point was chosen from the trials that ran and not from the "
                 "whole space: " + "; ".join(failed) + ".")
    return escape_markdown(text)


def _method(m):
    name = pretty_metric(METRIC)
    return (f"Δ: the tuned row's test {name} against the default row's, each user's value averaged over the seeds "
            f"both rows have; p: two-sided paired t-test over users; Holm: p adjusted for the {m} "
            f"test{'s' * (m != 1)} of this page. Seed-aware p: a bootstrap over the common seeds and the users "
            f"({stats.RESAMPLES:,} resamples, RNG seed {stats.BOOTSTRAP_SEED}), or a paired t-test over per-seed means from {stats.MIN_SEEDS_T} common "
            f"seeds on; none with one seed. A difference is called significant only when Holm < {stats.ALPHA} and the "
            f"seed-aware p < {stats.ALPHA}. The p-values at full precision, Benjamini-Hochberg beside Holm, are in "
            f"[{CSV}]({CSV}).")


def _selection_text(lines):
    """How the tuned rows' points were selected, from their records' ``tune`` tags: on validation only."""
    metrics = sorted({str(r["tune"].get("valid_metric")) for ln in lines for r in ln["tuned_recs"]
                      if isinstance(r.get("tune"), dict) and r["tune"].get("valid_metric")})
    seeds = sorted({str(s[1]["config"]["seed"]) for s in (ln["sweep"] for ln in lines) if s
                    and isinstance(s[1].get("config"), dict) and "seed" in s[1]["config"]})
    on = f"validation {'/'.join(metrics)}" if metrics else "validation"
    return (f"Each tuned row's hyperparameters were chosen by a sweep on {on} only"
            + (f" (sweep seed {', '.join(seeds)})" if seeds else "")
            + "; the test split was evaluated for the chosen point alone, on every seed of the row. The Valid columns "
              "show what the selection saw, the Test columns what it did on the held-out items.")


def tuning_files(dataset, records, out_dir=None, command=None):
    """``{"tuning.md": text, "tuning.csv": csv}`` of the headline ``records`` (the comparison page's),
    or ``{}`` when no ID-model row of them is tuned. ``out_dir``: the results folder, whose
    ``tune/*/sweep_record.json`` give the trials; ``command``: the comparison page's ``Regenerate:``
    command, which draws this page too."""
    lines, m = lines_of(records, out_dir)
    if not any(ln["tuned"] for ln in lines):
        return {}
    on_page = [label for ln in lines for label in (ln["default"], ln["tuned"]) if label]
    grouped = group_rows(records)
    flagged = {label: causes for label, causes in convergence.unconverged(grouped).items() if label in on_page}
    md, frame = tuning_table(lines, flagged)
    page_records = [r for label in dict.fromkeys(on_page) for r in grouped[label]]
    tests = [ln["test"] for ln in lines if ln["test"] is not None]
    text = [_title(dataset), "",
            "Was each baseline tuned, and what did tuning change? One line per ID model of the headline rows of "
            "[comparison.md](comparison.md) (the baselines and ComiRec; LLM rows are not on this page): its default "
            "row (its configured hyperparameters under this budget) beside its tuned row (records carrying `tune`: "
            "the point a sweep chose), or what is missing.", "",
            _selection_text(lines), "", md, "", _summary_sentence(lines)]
    note = convergence.footnote(flagged, uses="a tuned row's gain over an unconverged default may be the epochs, "
                                              "not the hyperparameters")
    if note:
        text += ["", note]
    if tests:
        text += ["", _method(m)]
        found = stats.claims_of(tests, METRIC)
        if found:
            text += ["", "Claims: " + " ".join(found)]
    text += ["", notes.provenance(page_records, dataset)]
    if command:
        text += ["", f"Regenerate: `{command}`"]
    return {PAGE: "\n".join(text) + "\n", CSV: tables.to_csv(frame)}


def remove_stale(out_dir, dataset):
    """Remove a ``tuning.md``/``tuning.csv`` this module wrote into ``out_dir`` (its title line, its
    CSV header), under the folder's lock: called when the records hold no tuned row any more, so the
    folder does not keep a page of rows that are gone. The lock is re-entrant: the commands that
    redraw a page hold it (:func:`~recbole_llm.benchmark.page.page_lock`) from reading the records to
    here, so no other writer's tuning page is removed between their write and this. Returns the names
    removed."""
    folder = Path(out_dir)
    removed = []
    if not folder.is_dir():
        return removed
    with folder_lock(folder):
        for name, ours in ((PAGE, lambda first: first == _title(dataset)),
                           (CSV, lambda first: first.startswith("model,status,default_row,"))):
            path = folder / name
            try:
                with open(path, encoding="utf-8") as f:
                    first = f.readline().rstrip("\n")
            except OSError:
                continue
            if ours(first):
                try:
                    path.unlink()
                except OSError as err:
                    why = err.strerror or err
                    raise UserError(f"{path}: cannot remove the tuning page of rows that are gone ({why}); remove it "
                                    "by hand or fix the folder's permissions") from None
                removed.append(name)
    return removed
