"""``run_benchmark.py --tune``: sweep, write the results folder, test the best configuration."""

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from recbole_llm.errors import UserError
from recbole_llm.tune.report import (
    SWEEP_RECORD,
    best_records,
    load_sweep_record,
    provenance,
    tables_command,
    SweepSource,
    trials_table,
    write_readme,
    write_sweep,
    write_sweep_record,
    write_trials,
)
from recbole_llm.tune.settings import SweepSettings
from recbole_llm.tune.space import SearchSpace
from recbole_llm.tune.reuse import TRIALS_DIR
from recbole_llm.tune.sweep import FINISHED, BestRuns, default_space_path, run_best, run_sweep


def _value(v):
    return json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict)) else str(v)


def _rel(path, root):
    path = Path(path).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


@dataclass(frozen=True)
class TuneRequest:
    """One ``run_benchmark.py --tune`` command: a sweep per model, then the best configuration of
    each trained and tested on every seed, its records and results folder under ``output``."""

    sweeps: list  # [SweepSettings], one per --model, in order; each validated
    seeds: list  # the first is every sweep's; the best configuration runs on each
    user_files: list  # --config-files (the budget's file comes first in each sweep's config_files)
    budget: str  # --budget, named in the records and in the results' command to reuse the best configuration
    output: Path  # results folder: <output>/<dataset>/tune/<name>/ and the best runs' records
    root: Path  # the repository: paths under it are written relative to it
    command: str  # this command line, as the results folder records it
    data_path: str  # --data-path as given (repeated in the command to reuse the best configuration)
    label: str = None  # the best runs' row label (default: <name>-tuned)
    show_progress: bool = None  # RecBole's per-epoch bars in the best runs (None: the config's show_progress)
    output_option: str = ""  # " --output=..." where output is not the budget's default folder (the pages' commands)

    @classmethod
    def from_args(cls, args, request, root, argv, output_option=""):
        """The request of ``run_benchmark.py``'s parsed options and checked ``request``
        (:class:`recbole_llm.benchmark.request.Request`); every model's search space is read and its
        settings checked here, before any sweep runs."""
        import torch

        from recbole_llm.config import budget_files
        from recbole_llm.model.llm_base import LLMSequentialRecommender
        from recbole_llm.utils import get_model

        models, seeds, user_files, overrides, output = (request.models, request.seeds, request.user_files,
                                                        request.overrides, request.output)

        if args.tune_name and len(models) > 1:
            raise UserError("--tune-name names one sweep: pass one --model with it")
        gpus = args.gpus_per_trial if args.gpus_per_trial is not None else (1.0 if torch.cuda.is_available() else 0.0)
        keys = [k.strip() for k in args.tune_params.split(",") if k.strip()]
        sweeps = [
            SweepSettings(
                model, args.dataset, _space(model, args.tune_space, keys), seed=seeds[0],
                config_files=[*budget_files(args.budget, issubclass(get_model(model), LLMSequentialRecommender)),
                              *user_files], overrides=overrides, data_path=args.data_path,
                saved_dir=args.saved_dir, search=args.search, num_samples=args.num_samples,
                scheduler=args.scheduler, grace_period=args.grace_period, reduction_factor=args.reduction_factor,
                cpus_per_trial=args.cpus_per_trial, gpus_per_trial=gpus, max_concurrent=args.max_concurrent,
                ray_address=args.ray_address, name=args.tune_name,
            ).validate()
            for model in models
        ]
        return cls(sweeps=sweeps, seeds=list(seeds), user_files=list(user_files), budget=args.budget,
                   output=Path(output), root=root, data_path=args.data_path, label=args.label,
                   command="python run_benchmark.py " + " ".join(shlex.quote(a) for a in argv),
                   show_progress=False if args.no_progress else None, output_option=output_option)


def _space(model, space_file, keys):
    """``space_file`` (default: the model's ``properties/tune/<Model>.yaml``), only ``keys`` if any."""
    path = Path(space_file) if space_file else default_space_path(model)
    if not space_file and not path.is_file():
        raise UserError(f"no search space for {model} at {path}: write one (see properties/tune/SASRec.yaml or "
                        f"properties/tune/examples/) and pass it with --tune-space")
    return SearchSpace.load(path, keys or None)


def tune_main(request):
    """Run each sweep of ``request`` (a :class:`TuneRequest`); write its results folder; train and
    test its best configuration on every seed."""
    from recbole_llm.provenance import loaded_commit

    from recbole_llm.benchmark.records import load_records

    commit = loaded_commit()
    for settings in request.sweeps:
        out_dir = Path(request.output).resolve() / settings.dataset / "tune" / (settings.name or settings.model)
        # (absolute: a trial runs in its own folder) a trial that repeats a stored run or a kept trial (its run key and seed) replays it; one that
        # trains to its end is kept in <out_dir>/trials (recbole_llm.tune.reuse)
        sweep = run_sweep(settings, stored=load_records(request.output, settings.dataset), budget=request.budget,
                          keep_dir=out_dir / TRIALS_DIR)
        done = int(sweep.trials["status"].isin(FINISHED).sum()) if len(sweep.trials) else 0
        if sweep.interrupted:
            print(f"[recbole-llm] sweep interrupted with {done}/{sweep.planned} trials finished, kept in "
                  f"{sweep.experiment_path}; run the same command again to resume it", file=sys.stderr, flush=True)
            raise KeyboardInterrupt
        failed = sweep.trials[sweep.trials["status"] == "error"] if len(sweep.trials) else sweep.trials
        if len(failed):  # a best point from part of the space is not the sweep's: nothing is written
            first = failed.iloc[0]
            raise UserError(f"{len(failed)} of {len(sweep.trials)} trials of the {settings.model} sweep failed "
                            f"(trial {first['trial']}: {first['error'] or 'no message'}; each trial's error.txt under "
                            f"{sweep.experiment_path}); no best point is chosen from part of the space: run the same "
                            "command again to restart them (finished trials are kept), or leave a point that "
                            "fails every time out of --tune-space")
        if sweep.best is None:
            out_dir.mkdir(parents=True, exist_ok=True)
            command = _portable(request.command, settings)
            write_trials(out_dir, sweep, provenance(sweep, commit, command))
            write_sweep_record(out_dir, sweep, commit=commit, command=command, use=None)
            raise UserError(f"no trial of {settings.model} finished with a validation score "
                            f"(table: {out_dir / 'trials.md'})")
        use = _use_command(request, settings, _rel(out_dir / "best.yaml", request.root))
        command, use = _portable(request.command, settings), _portable(use, settings)
        best_yaml = write_sweep(out_dir, sweep, commit=commit, command=command, use=use)
        write_sweep_record(out_dir, sweep, commit=commit, command=command, use=use)
        print(f"\n{trials_table(sweep, limit=10)}\n", flush=True)
        print(f"[recbole-llm] {len(sweep.trials)} trials ({done} finished) in {sweep.wall_time_s:.0f}s; best "
              f"{sweep.best_params()} valid {sweep.valid_metric} {sweep.best['metric']:.4f}; {best_yaml}", flush=True)
        label = request.label or f"{settings.name or settings.model}-tuned"
        records = run_best(sweep, request.seeds, best_yaml,
                           BestRuns(label, request.budget, request.output, request.show_progress))
        write_readme(out_dir, sweep, records, SweepSource(commit, command, use),
                     regenerate=tables_command(sweep, request.budget, request.output_option))
        print(f"[recbole-llm] sweep results in {out_dir}/ (README.md, trials.md/.csv, best.yaml, sensitivity.png)",
              flush=True)


def tables_main(output, dataset, names, budget="full", output_option=""):
    """``run_benchmark.py --tune --tables-only``: rewrite the results folder of each sweep named
    in ``names`` (``--tune-name`` or ``--model``; empty: every folder under
    ``<output>/<dataset>/tune/``) from its ``sweep_record.json`` and the dataset's run records,
    exactly as the sweep's own command wrote it (commit and command are the sweep's; ``budget`` and
    ``output_option``, this command's, go into the page's command for doing this again). A named
    folder that does not exist, or has no record, is a ``UserError``; an unnamed one without a
    record is reported and skipped."""
    from recbole_llm.benchmark.records import load_records

    root = Path(output) / dataset / "tune"
    folders = [root / n for n in names] if names else sorted(p for p in root.glob("*") if p.is_dir())
    if not folders:
        raise UserError(f"no sweep folders under {root}: run a sweep first (--tune), or pass the --budget and "
                        "--output it ran with (a --budget other than full writes under results/<budget>/)")
    absent = [p for p in folders if not p.is_dir()]
    if absent:
        there = sorted(p.name for p in root.glob("*") if p.is_dir())
        raise UserError(f"no sweep folder {absent[0]}: "
                        + (f"the sweeps under {root} are {', '.join(there)}; " if there else f"{root} holds none; ")
                        + "pass the --budget and --output the sweep ran with (a --budget other than full writes under "
                          "results/<budget>/): its README's last line is the command")
    if not names:
        old = [p for p in folders if not (p / SWEEP_RECORD).is_file()]
        folders = [p for p in folders if p not in old]
        if not folders:
            raise UserError(f"no sweep folder under {root} has a {SWEEP_RECORD} ({', '.join(p.name for p in old)}: "
                            f"written before sweeps kept one); re-run a sweep's own command to regenerate it")
        for out_dir in old:
            print(f"[recbole-llm] {out_dir}: no {SWEEP_RECORD} (written before sweeps kept one); left as it is",
                  file=sys.stderr, flush=True)
    records = load_records(output, dataset)
    done = 0
    for out_dir in folders:
        sweep, rec = load_sweep_record(out_dir)
        if sweep.best is None:
            write_trials(out_dir, sweep, provenance(sweep, rec["commit"], rec["command"]))
        else:
            write_sweep(out_dir, sweep, commit=rec["commit"], command=rec["command"], use=rec["use"])
            write_readme(out_dir, sweep, best_records(records, sweep), SweepSource(rec["commit"], rec["command"], rec["use"]),
                         regenerate=tables_command(sweep, budget, output_option))
        done += 1
        print(f"[recbole-llm] sweep folder rewritten from its record: {out_dir}/", flush=True)
    return done


def _portable(text, settings):
    """``text`` (a command line) as the pages print it: every path under the data root, the saved
    folder or this checkout as ``{data}/...``, ``{saved}/...``, ``{checkout}/...``, any other as
    ``{elsewhere}/<name>`` (:func:`recbole_llm.paths.portable_text`): no machine's path on a page."""
    from recbole_llm.paths import portable_text

    return portable_text(text, settings.roots())


def _use_command(request, settings, best_rel):
    """The ``run_benchmark.py`` command that trains the best configuration (``best_rel``) as an
    ordinary run: the sweep's budget, files and fixed keys."""
    root = request.root
    paths = [f"--data-path={request.data_path}"] if Path(request.data_path).resolve() != root / "dataset" else []
    return " ".join(["python run_benchmark.py", f"--model={settings.model}", f"--dataset={settings.dataset}",
                     f"--budget={request.budget}", *paths,
                     "--config-files=" + ",".join([*(_rel(f, root) for f in request.user_files), best_rel])]
                    + [shlex.quote(f"--{k}={_value(v)}") for k, v in settings.overrides.items()])
