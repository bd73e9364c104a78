"""``run_benchmark.py --tune``: sweep, write the results folder, test the best configuration."""

import json
import shlex
import sys
from pathlib import Path

from recbole_llm.errors import UserError
from recbole_llm.tune.report import provenance, trials_table, write_readme, write_sweep, write_trials
from recbole_llm.tune.space import SearchSpace
from recbole_llm.tune.sweep import default_space_path, run_best, run_sweep


def _value(v):
    return json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict)) else str(v)


def _rel(path, root):
    path = Path(path).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def tune_main(args, models, seeds, user_files, overrides, output, root, argv, budget_file):
    """Sweep each model of ``models``; ``user_files`` are the ``--config-files`` (after the budget's)."""
    import torch

    from recbole_llm.provenance import git_commit

    if args.tune_name and len(models) > 1:
        raise UserError("--tune-name names one sweep: pass one --model with it")
    gpus = args.gpus_per_trial if args.gpus_per_trial is not None else (1.0 if torch.cuda.is_available() else 0.0)
    keys = [k.strip() for k in args.tune_params.split(",") if k.strip()]
    command = "python run_benchmark.py " + " ".join(shlex.quote(a) for a in argv)
    commit = git_commit()
    for model in models:
        space_file = Path(args.tune_space) if args.tune_space else default_space_path(model)
        if not args.tune_space and not space_file.is_file():
            raise UserError(f"no search space for {model} at {space_file}: write one (see properties/tune/SASRec.yaml or properties/tune/examples/) "
                            f"and pass it with --tune-space")
        space = SearchSpace.load(space_file, keys or None)
        sweep = run_sweep(
            model, args.dataset, space, seed=seeds[0], config_files=[budget_file, *user_files], overrides=overrides,
            data_path=args.data_path, saved_dir=args.saved_dir, search=args.search, num_samples=args.num_samples,
            scheduler=args.scheduler, grace_period=args.grace_period, reduction_factor=args.reduction_factor,
            cpus_per_trial=args.cpus_per_trial, gpus_per_trial=gpus, max_concurrent=args.max_concurrent,
            ray_address=args.ray_address, name=args.tune_name,
        )
        done = int(sweep.trials["status"].isin(["completed", "stopped (ASHA)"]).sum()) if len(sweep.trials) else 0
        if sweep.interrupted:
            print(f"[recbole-llm] sweep interrupted with {done}/{sweep.planned} trials finished, kept in "
                  f"{sweep.experiment_path}; run the same command again to resume it", file=sys.stderr, flush=True)
            raise KeyboardInterrupt
        out_dir = Path(output) / args.dataset / "tune" / (args.tune_name or model)
        if sweep.best is None:
            out_dir.mkdir(parents=True, exist_ok=True)
            write_trials(out_dir, sweep, provenance(sweep, commit, command))
            raise UserError(f"no trial of {model} finished with a validation score (table: {out_dir / 'trials.md'})")
        best_rel = _rel(out_dir / "best.yaml", root)
        paths = [f"--data-path={args.data_path}"] if Path(args.data_path).resolve() != root / "dataset" else []
        use = " ".join(["python run_benchmark.py", f"--model={model}", f"--dataset={args.dataset}",
                        f"--budget={args.budget}", *paths,
                        "--config-files=" + ",".join([*(_rel(f, root) for f in user_files), best_rel])]
                       + [shlex.quote(f"--{k}={_value(v)}") for k, v in overrides.items()])
        best_yaml = write_sweep(out_dir, sweep, commit=commit, command=command, use=use)
        print(f"\n{trials_table(sweep, limit=10)}\n", flush=True)
        print(f"[recbole-llm] {len(sweep.trials)} trials ({done} finished) in {sweep.wall_time_s:.0f}s; best "
              f"{sweep.best_params()} valid {sweep.valid_metric} {sweep.best['metric']:.4f}; {best_yaml}", flush=True)
        label = args.label or f"{args.tune_name or model}-tuned"
        records = run_best(sweep, seeds, best_yaml, label=label, budget=args.budget, output=output,
                           show_progress=False if args.no_progress else None)
        write_readme(out_dir, sweep, records, commit=commit, command=command, use=use)
        print(f"[recbole-llm] sweep results in {out_dir}/ (README.md, trials.md/.csv, best.yaml, sensitivity.png)",
              flush=True)

