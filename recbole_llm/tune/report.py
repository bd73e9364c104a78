"""A sweep's results folder: the trials table, the best configuration, the sensitivity plot.

``<output>/<dataset>/tune/<name>/`` holds

* ``trials.md`` / ``trials.csv``: every trial sorted by its best validation score, with each
  swept value, the epochs it ran, its wall time, the Ray node that ran it (the first 8
  characters of its node id in ``trials.md``; id and IP in ``trials.csv``) and its status;
* ``best.yaml``: the swept keys of the best trial, a file ``run_benchmark.py --config-files``
  accepts, with a comment header saying how it was chosen;
* ``sensitivity.png``: the validation metric against each swept key (the IDLE-Adapter paper's
  Fig. 3), one panel per key;
* ``README.md``: provenance, the ranges searched, the best configuration and its *test*
  metrics, which were computed for that configuration alone;
* ``sweep_record.json``: the sweep's record, everything the files above are made of except the
  best configuration's run records (under ``<output>/<dataset>/runs/``), so that
  ``run_benchmark.py --tune --tables-only`` rewrites the folder without Ray or Tune's experiment
  folder (:func:`load_sweep_record`).

Every file is written to a temporary name and renamed (:func:`recbole_llm.fsutil.atomic_path`).
"""

import io
from dataclasses import dataclass
import json
import math
import statistics
from pathlib import Path

import pandas as pd
import yaml
from tabulate import tabulate

from recbole_llm.benchmark.per_user import pretty_metric
from recbole_llm.errors import UserError
from recbole_llm.fsutil import atomic_path, atomic_write_text

SWEEP_RECORD = "sweep_record.json"
RECORD_FORMAT = 1


def _short(commit):
    return commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")


def provenance(sweep, commit, command):
    """One paragraph: how every number of the folder was made."""
    cfg = sweep.config
    s = sweep.identity
    n = len(sweep.trials)
    hours = sweep.wall_time_s / 3600
    sched = "no early stopping by Tune"
    if s["scheduler"] == "asha":
        sched = (f"ASHA on the best validation score so far (grace {s['grace_period']} evaluations, reduction "
                 f"factor {s['reduction_factor']:g}, at most {s['max_t']})")
    from recbole_llm.paths import CHECKOUT, portable_text

    # no path of this machine on a committed page; the same text whichever folders redraw it
    roots = {"checkout": CHECKOUT}
    return portable_text(
        f"Dataset `{sweep.dataset}`; split {cfg['eval_args']['split']} ordered {cfg['eval_args']['order']}, full "
        f"ranking; seed {sweep.seed}; selection on validation {cfg['valid_metric']} only (each trial's best epoch); "
        f"{s['search']} search, {n} trials; {sched}; RecBole's own early stopping after {int(cfg['stopping_step']) + 1} "
        f"evaluations without a gain (stopping_step {cfg['stopping_step']}), <= {cfg['epochs']} epochs; {sweep.cpus_per_trial:g} CPU and "
        f"{sweep.gpus_per_trial:g} GPU per trial; sweep wall time {sweep.wall_time_s:.0f}s "
        f"({n / hours if hours > 0 else float('nan'):.1f} trials/hour); commit {_short(commit)}; "
        f"command `{command}`; Tune folder `{{saved}}/ray/{sweep.dataset}/{sweep.experiment_path.name}`.", roots
    )


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def trials_table(sweep, fmt="github", limit=None):
    label = f"valid {pretty_metric(sweep.valid_metric.lower())}"
    headers = ["#", "trial", *sweep.space.keys, label, "epochs", "wall (s)", "node", "status"]
    body = []
    for i, row in sweep.trials.head(limit).iterrows():
        metric = "" if math.isnan(row["metric"]) else f"{row['metric']:.4f}"
        status = row["status"] + (f": {row['error']}" if row["error"] else "")
        if isinstance(row.get("replayed_from"), str) and row.get("replayed_from"):  # tune.reuse: not trained
            status += f" (replayed {row['replayed_from']}: not trained)"
        body.append([i + 1, row["trial"], *[_fmt(row[k]) for k in sweep.space.keys], metric, int(row["epochs"]),
                     "" if math.isnan(row["wall_time_s"]) else f"{row['wall_time_s']:.1f}",
                     row.get("node_id", "")[:8], status])
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


def write_trials(out_dir, sweep, note):
    md = [f"# {sweep.model} on {sweep.dataset}: all trials", "",
          "Sorted by the best validation score of each trial. The test split was evaluated for the best "
          "configuration only (README.md).", "", trials_table(sweep), "", note, ""]
    atomic_write_text(out_dir / "trials.md", "\n".join(md))
    columns = ["trial", *sweep.space.keys, "metric", "epochs", "wall_time_s", "node_id", "node_ip", "status", "error"]
    columns += ["replayed_from"] if "replayed_from" in sweep.trials else []  # sweeps recorded before it have none
    frame = sweep.trials[columns].rename(columns={"metric": f"valid_{sweep.valid_metric.lower()}"})
    buf = io.StringIO()
    frame.to_csv(buf, index=False)  # full precision: the table rounds, the CSV does not
    atomic_write_text(out_dir / "trials.csv", buf.getvalue())


def best_yaml_text(sweep, commit, command, use):
    best = sweep.best
    lines = [
        f"# Best configuration of the {sweep.model} sweep on {sweep.dataset} (trial {best['trial']}):",
        f"# validation {sweep.valid_metric} = {best['metric']:.6f}, seed {sweep.seed}, "
        f"{len(sweep.trials)} trials, {sweep.settings.search} search.",
        f"# dataset: {sweep.dataset}; split: {sweep.config['eval_args']['split']}; metric: {sweep.valid_metric}",
        f"# commit: {commit}",
        f"# command: {command}",
        "# searched: " + "; ".join(f"{p.key} {p.describe()}" for p in sweep.space.params),
        f"# use: {use}",
    ]
    return "\n".join(lines) + "\n" + _yaml_lines(sweep.best_params())


def _yaml_lines(params):
    """``key: value`` per line (values in flow style), in the space's order."""
    # default_flow_style=None writes {k: scalar} as a flow mapping; False writes lists as blocks
    return "".join(yaml.safe_dump({k: v}, default_flow_style=None if isinstance(v, (list, dict)) else False)
                   for k, v in params.items())


def write_best_yaml(out_dir, sweep, commit, command, use):
    path = out_dir / "best.yaml"
    atomic_write_text(path, best_yaml_text(sweep, commit, command, use))
    return path


def plot_sensitivity(path, sweep):
    """One panel per swept key: for discrete keys the max and the mean over the other keys at
    each value (evenly spaced, as the paper's Fig. 3), for sampled ones every trial as a point.
    Trials stopped by ASHA count with their best score before they were stopped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = sweep.trials[sweep.trials["metric"].notna()]
    metric = pretty_metric(sweep.valid_metric.lower())
    params = sweep.space.params
    fig, axes = plt.subplots(1, len(params), figsize=(3.4 * len(params) + 0.6, 3.2), squeeze=False)
    for ax, param in zip(axes[0], params):
        values = list(df[param.key])
        scores = list(df["metric"])
        if param.discrete:
            order = [v for v in param.values if v in values]
            xs = range(len(order))
            groups = [[s for v, s in zip(values, scores) if v == o] for o in order]
            ax.plot(xs, [max(g) for g in groups], "o-", label="max over others")
            ax.plot(xs, [statistics.fmean(g) for g in groups], "s--", alpha=0.8, label="mean over others")
            for x, g in zip(xs, groups):
                ax.scatter([x] * len(g), g, s=10, color="grey", alpha=0.4, zorder=0)
            ax.set_xticks(list(xs), [_fmt(o) for o in order])
        else:
            ax.scatter(values, scores, s=18)
            if param.kind == "loguniform":
                ax.set_xscale("log")
        ax.margins(x=0.12)
        ax.set_xlabel(param.key)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"valid {metric}")
    if any(p.discrete for p in params):
        axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{sweep.model} on {sweep.dataset}: validation {metric}, {len(df)} trials", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)
    return path


def _test_table(records, metrics):
    rows = []
    for rec in sorted(records, key=lambda r: r["seed"]):
        rows.append([rec["seed"], f"{rec['valid'][rec['protocol']['valid_metric'].lower()]:.4f}",
                     *[f"{rec['test'].get(m, float('nan')):.4f}" for m in metrics]])
    if len(records) > 1:
        rows.append(["mean", "", *[f"{statistics.fmean(r['test'].get(m, float('nan')) for r in records):.4f}"
                                    for m in metrics]])
    headers = ["seed", f"valid {pretty_metric(records[0]['protocol']['valid_metric'].lower())}",
               *[f"test {pretty_metric(m)}" for m in metrics]]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def trials_note(sweep):
    """How many trials the sweep ran and how a sweep's trials are capped (the sweep page says it:
    the cap is a command-line option, ``--num-samples``)."""
    s = sweep.settings
    n = len(sweep.trials)
    planned = sweep.planned or n
    if s.search == "grid":
        how = (f"grid search: every combination of the grid keys, {s.num_samples} draw(s) of the sampled keys per "
               f"grid point (--num-samples={s.num_samples})")
    else:
        how = f"random search: --num-samples={s.num_samples} configurations drawn from the space"
    return (f"Trials: {n} of the {planned} the settings make ({how}). To cap a sweep's trials, draw a fixed "
            "number from the same space with `--search=random --num-samples=N`, or sweep fewer keys with "
            "`--tune-params=a,b`; `--max-concurrent` caps the trials running at once, and ASHA (`--scheduler=asha`, "
            "the default) stops weak trials early.")


@dataclass(frozen=True)
class SweepSource:
    """How a sweep folder was made: the commit, the command, and the command that uses its best point."""

    commit: str
    command: str
    use: str


def write_readme(out_dir, sweep, records, source: SweepSource, regenerate=None, metrics=("hit@10", "ndcg@10")):
    """``README.md``: provenance, ranges, the best configuration and its test metrics (``source``: how
    the sweep was made). ``regenerate``: the command that rewrites the folder without Ray (default
    :func:`tables_command` of the full budget's results folder)."""
    commit, command, use = source.commit, source.command, source.use
    note = provenance(sweep, commit, command)
    best = sweep.best
    reproduced = [r for r in records if r["seed"] == sweep.seed]
    check = ""
    if reproduced:
        again = reproduced[0]["valid"][sweep.valid_metric.lower()]
        same = math.isclose(again, best["metric"], rel_tol=1e-6, abs_tol=1e-9)
        check = (f"Re-run with seed {sweep.seed}: validation {sweep.valid_metric} {again:.6f} "
                 f"({'the same as' if same else 'DIFFERENT from'} the trial's {best['metric']:.6f}).")
    space_rows = [[p.key, p.kind, p.describe()] for p in sweep.space.params]
    lines = [
        f"# {sweep.model} on {sweep.dataset}: hyperparameter sweep", "",
        note, "",
        "## Searched", "",
        tabulate(space_rows, headers=["key", "domain", "values"], tablefmt="github", disable_numparse=True), "",
        f"Status of the {len(sweep.trials)} trials: "
        + ", ".join(f"{n} {s}" for s, n in sweep.trials["status"].value_counts().items()) + ".", "",
        trials_note(sweep), "",
        "## Best configuration (chosen on validation)", "",
        "```yaml", _yaml_lines(sweep.best_params()).strip(), "```", "",
        f"[best.yaml](best.yaml); use it with `{use}`.", "",
        "## Test metrics: the best configuration only", "",
        _best_runs_text(records), "",
    ]
    if records:
        copied = any(r.get("same_run_as") for r in records if r["seed"] == sweep.seed)
        lines += [_test_table(records, metrics), "", "" if copied else check, ""]
    lines += [
        "## All trials", "",
        f"[trials.md](trials.md) / [trials.csv](trials.csv); the top {min(10, len(sweep.trials))}:", "",
        trials_table(sweep, limit=10), "",
        "## Sensitivity", "",
        "![validation metric against each swept key](sensitivity.png)", "",
        f"Regenerate (resumes the stored sweep; finished trials are not run again): `{command}`; or, "
        f"without Ray, from [{SWEEP_RECORD}]({SWEEP_RECORD}), the trials and the run records: "
        f"`{regenerate or tables_command(sweep)}`.", "",
    ]
    atomic_write_text(out_dir / "README.md", "\n".join(lines))


def _best_runs_text(records):
    """What the README says of the best configuration's runs: trained again and tested, or (seeds
    whose run was stored already, ``same_run_as``: :mod:`recbole_llm.tune.reuse`) stored again."""
    if not records:
        return "Not run."
    label = records[0].get("label")
    copies = sorted(r["seed"] for r in records if r.get("same_run_as"))
    trained = sorted(r["seed"] for r in records if not r.get("same_run_as"))
    parts = []
    if trained:
        parts.append(f"trained again through the benchmark's own path and tested there (seed{'s' * (len(trained) > 1)} "
                     f"{', '.join(map(str, trained))})")
    if copies:
        names = ", ".join(sorted({r["same_run_as"] for r in records if r.get("same_run_as")}))
        parts.append(f"for seed{'s' * (len(copies) > 1)} {', '.join(map(str, copies))}, a run already stored with "
                     f"the same run key (config, data and code), stored again under this label, not trained "
                     f"({names})")
    return (f"No other trial was evaluated on the test split. The best configuration was {'; '.join(parts)}: one run "
            f"record per seed in `runs/`, label `{label}`:")


def write_sweep(out_dir, sweep, *, commit, command, use):
    """Write the trials table, ``best.yaml`` and the plot (before the best configuration is
    re-run: ``best.yaml`` is its input); return the path of ``best.yaml``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    note = provenance(sweep, commit, command)
    write_trials(out_dir, sweep, note)
    plot_sensitivity(out_dir / "sensitivity.png", sweep)
    return write_best_yaml(out_dir, sweep, commit, command, use)


def tables_command(sweep, budget="full", output_option=""):
    """The ``run_benchmark.py`` command that rewrites this folder from its records: the sweep's
    ``--budget`` and ``--output`` included (``output_option``: `` --output=...`` or empty for the
    budget's default folder), since a budget other than ``full`` keeps its results, and this
    folder, under ``results/<budget>/``."""
    name = sweep.settings.name
    return (f"python run_benchmark.py --model={sweep.model} --dataset={sweep.dataset}"
            + (f" --budget={budget}" if budget and budget != "full" else "") + (output_option or "")
            + " --tune --tables-only" + (f" --tune-name={name}" if name else ""))


def write_sweep_record(out_dir, sweep, *, commit, command, use):
    """``sweep_record.json``: the settings, the base config's keys the pages name, every trial at
    full precision, and the commit, command and ``use`` line the pages print. Returns its path."""
    from recbole_llm.tune.sweep import _plain  # numpy scalars of the trials frame -> JSON

    s = sweep.settings
    cfg = sweep.config
    record = {
        "format": RECORD_FORMAT,
        "model": sweep.model,
        "dataset": sweep.dataset,
        "name": s.name,
        "space": [{"key": p.key, "kind": p.kind, "values": list(p.values)} for p in sweep.space.params],
        "space_source": sweep.space.source,
        "search": s.search,
        "num_samples": s.num_samples,
        "cpus_per_trial": s.cpus_per_trial,
        "gpus_per_trial": s.gpus_per_trial,
        "identity": sweep.identity,
        "config": {"seed": int(cfg["seed"]), "valid_metric": cfg["valid_metric"],
                   "eval_args": {"split": cfg["eval_args"]["split"], "order": cfg["eval_args"]["order"]},
                   "stopping_step": cfg["stopping_step"], "epochs": cfg["epochs"]},
        "experiment_path": str(sweep.experiment_path),
        "interrupted": sweep.interrupted,
        "wall_time_s": sweep.wall_time_s,
        "planned": sweep.planned,
        "trials": [{k: _plain(v) for k, v in row.items() if k != "trial_dir"}
                   for row in sweep.trials.to_dict(orient="records")],
        "commit": commit,
        "command": command,
        "use": use,
    }
    from recbole_llm.paths import portable_record

    # no path of this machine in a committed file (the Tune folder and the space file by their roots)
    record = portable_record(record, s.roots())
    path = Path(out_dir) / SWEEP_RECORD
    atomic_write_text(path, json.dumps(record, indent=1, default=str) + "\n")
    return path


def load_sweep_record(out_dir):
    """The :class:`~recbole_llm.tune.sweep.Sweep` stored in ``out_dir``'s ``sweep_record.json``
    and the record itself (commit, command, use). ``UserError`` when the folder has no readable record."""
    from recbole_llm.tune.settings import SweepSettings
    from recbole_llm.tune.space import Param, SearchSpace
    from recbole_llm.tune.sweep import Sweep

    path = Path(out_dir) / SWEEP_RECORD
    if not path.is_file():
        raise UserError(f"{path} does not exist: this folder was written before sweeps kept a record (or by no sweep); "
                        f"re-run the sweep's own command (its README's last line) to regenerate it")
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        if rec.get("format") != RECORD_FORMAT:
            raise ValueError(f"format {rec.get('format')!r}, this version reads {RECORD_FORMAT}")
        space = SearchSpace([Param(p["key"], p["kind"], tuple(p["values"])) for p in rec["space"]], rec["space_source"])
        settings = SweepSettings(rec["model"], rec["dataset"], space, seed=rec["config"]["seed"], search=rec["search"],
                                 num_samples=rec["num_samples"], cpus_per_trial=rec["cpus_per_trial"],
                                 gpus_per_trial=rec["gpus_per_trial"], name=rec["name"])
        trials = pd.DataFrame(rec["trials"])
        sweep = Sweep(settings=settings, identity=rec["identity"], config=rec["config"], trials=trials,
                      experiment_path=Path(rec["experiment_path"]), interrupted=rec["interrupted"],
                      wall_time_s=rec["wall_time_s"], planned=rec["planned"])
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path} is not a sweep record this version reads ({err}); re-run the sweep's own command "
                        f"to rewrite it") from None
    return sweep, rec


def best_records(records, sweep):
    """The newest run record per seed of ``sweep``'s best trial among ``records`` (a dataset's
    :func:`~recbole_llm.benchmark.records.load_records`), by seed."""
    best = sweep.best
    if best is None:
        return []
    by_seed = {}
    for rec in records:  # newest last
        tag = rec.get("tune") or {}
        if tag.get("experiment") == sweep.experiment_path.name and tag.get("trial") == best["trial"]:
            by_seed[rec["seed"]] = rec
    return [by_seed[s] for s in sorted(by_seed)]
