#!/usr/bin/env python
"""Train models under one protocol and write run records and comparison tables.

Examples::

    python run_benchmark.py --model=SASRec,GRU4Rec,BERT4Rec --dataset=ml-100k --seeds=2020,2021,2022
    python run_benchmark.py --model=SASRec --dataset=ml-100k --budget=quick
    python run_benchmark.py --dataset=ml-100k --tables-only --target=SASRec
    python run_benchmark.py --model=SASRec --dataset=ml-100k --learning_rate=0.0005   # any config key
    python run_benchmark.py --model=IDLEAdapter --dataset=ml-100k --tune --tune-params=prefix_len,align_weight

Every ``--key=value`` that is not an option below is passed to the models' config, as
with RecBole's own command line; a key that no model, YAML or RecBole default knows is an
error naming the closest one. RecBole's ``--config_files`` is the same option as ``--config-files``.
"""

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Unknown --key=value options are passed to the models' RecBole config.",
    )
    p.add_argument("--model", default="", help="model name or comma list (RecBole baselines and recbole-llm models)")
    p.add_argument("--dataset", default="ml-100k", help="dataset name under --data-path (default: ml-100k)")
    p.add_argument("--seeds", default="2020", help="comma list of integer seeds (default: 2020)")
    p.add_argument("--config-files", "--config_files", default="",
                   help="extra RecBole YAML files, applied last (comma- or space-separated; RecBole spells it "
                        "--config_files)")
    p.add_argument("--budget", default="full", help="training budget from properties/budget/<name>.yaml (full, quick)")
    p.add_argument("--output", default=None, help="results folder (default: results/, or results/<budget>/ unless full)")
    p.add_argument("--data-path", default=str(ROOT / "dataset"), help="RecBole data_path (default: ./dataset)")
    p.add_argument("--saved-dir", default=str(ROOT / "saved"), help="checkpoints and logs (default: ./saved)")
    p.add_argument("--label", default=None, help="row label for these runs (default: the model name)")
    p.add_argument("--target", default=None, help="model whose Improv.%% row against the best other is shown")
    p.add_argument("--metrics", default=None, help="table columns, e.g. hit@10,ndcg@10 (default: HR/NDCG@5,10, HR@50,100, MRR@10)")
    p.add_argument("--tables-only", action="store_true", help="only regenerate the tables from the stored records")
    p.add_argument("--trust-checkpoint", action="store_true", help="allow unpickling plain-RecBole checkpoints in full")
    p.add_argument("--no-progress", action="store_true", help="no per-epoch progress bars")
    p.add_argument("--rerun", action="store_true",
                   help="train again even where a record of the same config and code exists, from scratch")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads of this process (default: every core); use 1 beside another torch job; "
                        "with --jobs, of each run (default: cores // jobs)")
    p.add_argument("--jobs", type=int, default=1,
                   help="run up to this many (model, seed) runs at once, as separate processes; ID models first, "
                        "an LLM run after the ID model it reuses (default: 1)")
    g = p.add_argument_group("hyperparameter sweeps (--tune; Ray Tune, recbole_llm/tune/)")
    g.add_argument("--tune", action="store_true",
                   help="sweep on validation (first --seeds), then train and test the best configuration "
                        "for every seed")
    g.add_argument("--tune-space", default=None, help="search-space YAML (default: properties/tune/<Model>.yaml)")
    g.add_argument("--tune-params", default="", help="comma list: sweep only these keys of the space")
    g.add_argument("--tune-name", default=None,
                   help="results in <output>/<dataset>/tune/<name>/ (default: the model name)")
    g.add_argument("--search", default="grid", choices=("grid", "random"),
                   help="grid: all combinations of the 'grid' keys; random: --num-samples draws (default: grid)")
    g.add_argument("--num-samples", type=int, default=None,
                   help="random: configurations drawn (default 10); grid: draws of the sampled keys "
                        "per grid point (default 1)")
    g.add_argument("--scheduler", default="asha", choices=("asha", "none"),
                   help="stop weak trials early on the validation metric (default: asha)")
    g.add_argument("--grace-period", type=int, default=None,
                   help="ASHA: evaluations before a trial may be stopped (default: the config's stopping_step)")
    g.add_argument("--reduction-factor", type=float, default=2,
                   help="ASHA: keep 1/this of the trials at each rung (default: 2)")
    g.add_argument("--cpus-per-trial", type=float, default=1, help="CPUs reserved per trial (default: 1)")
    g.add_argument("--gpus-per-trial", type=float, default=None,
                   help="GPUs per trial, fractions allowed (default: 1 if this machine has a GPU, else 0)")
    g.add_argument("--max-concurrent", type=int, default=None,
                   help="trials at once (default: as many as the resources allow)")
    g.add_argument("--ray-address", default=None,
                   help="run the trials on an existing Ray cluster (auto or <head>:6379, from a node of it; "
                        "default: a new local Ray on this machine's CPUs)")
    args, extra = p.parse_known_args(argv)
    # recbole_llm.config.parse_overrides does the same; importing the package here (RecBole and
    # torch) would make --help take seconds, so the loop is repeated in this one place.
    overrides = {}
    for item in extra:
        if not item.startswith("--") or "=" not in item:
            p.error(f"unrecognized argument {item!r}: options are --name=value (see --help)")
        key, value = item[2:].split("=", 1)
        overrides[key] = value
    return args, overrides


def _split(text):
    return [t.strip() for t in text.split(",") if t.strip()]


def _split_files(text):
    """``--config-files``: comma-separated, or space-separated as RecBole's ``--config_files``."""
    return [t for t in text.replace(",", " ").split() if t]


SEED_MAX = 2**32 - 1  # numpy's RandomState (RecBole's init_seed) takes seeds in [0, 2^32 - 1]


def _budget_in_force(budget_file, user_files, overrides):
    """The budget file's keys with the values in force: later ``--config-files``, then ``--key=value``
    override them. Returns ``"epochs=3 (--epochs; the file says 50), stopping_step=5, ..."``."""
    import yaml

    with open(budget_file, encoding="utf-8") as f:
        budget = yaml.safe_load(f) or {}
    parts = []
    for key, value in budget.items():
        source = None
        for path in user_files:
            with open(path, encoding="utf-8") as f:
                content = yaml.safe_load(f) or {}
            if isinstance(content, dict) and key in content:
                value, source = content[key], Path(path).name
        if key in overrides:
            value, source = overrides[key], f"--{key}"
        parts.append(f"{key}={value}" + (f" ({source}; the file says {budget[key]})" if source and value != budget[key]
                                         else ""))
    return ", ".join(parts)


def settings(args, overrides):
    """Every option checked before anything runs, as a :class:`recbole_llm.benchmark.request.Request`
    (output, models, seeds, user files, parsed overrides, metrics); raises ``UserError`` naming the option."""
    from recbole_llm.benchmark.request import Request
    from recbole_llm.benchmark.tables import DEFAULT_METRICS
    from recbole_llm.config import budget_files, check_keys, parse_overrides_values
    from recbole_llm.errors import UserError
    from recbole_llm.utils import get_model

    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be a positive integer, got {args.threads}")
    if args.jobs < 1:
        raise UserError(f"--jobs must be a positive integer, got {args.jobs}")
    budget_file = budget_files(args.budget)[0]  # raises for an unknown --budget, naming the valid ones
    output = Path(args.output) if args.output else default_output(ROOT, args.budget)
    models = _split(args.model)
    if not models and not args.tables_only:
        raise UserError("--model is required (one name or a comma list), or pass --tables-only")
    for name in models:
        get_model(name)  # fails early, listing the valid names
    try:
        seeds = [int(s) for s in _split(args.seeds)]
    except ValueError:
        raise UserError(f"--seeds must be a comma list of integers, got '{args.seeds}'") from None
    if not seeds:
        raise UserError("--seeds is empty")
    bad = [s for s in seeds if not 0 <= s <= SEED_MAX]
    if bad:
        raise UserError(f"--seeds: {bad[0]} is out of range; seeds are integers in [0, {SEED_MAX}]")
    user_files = [Path(f) for f in _split_files(args.config_files)]
    if args.trust_checkpoint:
        overrides["trust_checkpoint"] = True
    overrides = parse_overrides_values(overrides)  # YAML scalars, lists and mappings; nothing is evaluated
    if models:  # a key nothing reads would set nothing: stop before anything runs
        check_keys(overrides, user_files, models, args.dataset)
    metrics = tuple(m.lower() for m in _split(args.metrics)) if args.metrics else DEFAULT_METRICS
    return Request(budget_file=budget_file, output=output, models=models, seeds=seeds, user_files=user_files,
                   overrides=overrides, metrics=metrics)


def run_all(args, request):
    """Train every (model, seed) of the command, ID models first, skipping those whose record of
    the same run key exists (unless ``--rerun``), through the one run loop
    (:func:`recbole_llm.benchmark.jobs.run_jobs`: in this process with ``--jobs=1``, else in
    ``--jobs`` worker processes). Each run's Config is built once, here, for its checks and its key."""
    from recbole_llm.benchmark.jobs import RunnerOptions, run_jobs
    from recbole_llm.benchmark.records import find_record
    from recbole_llm.config import budget_files
    from recbole_llm.data.prepare import ensure_dataset
    from recbole_llm.id_models import is_id_model
    from recbole_llm.identity import run_key
    from recbole_llm.model.llm_base import LLMSequentialRecommender
    from recbole_llm.quick_start import build_config
    from recbole_llm.spec import RunSpec
    from recbole_llm.utils import get_model

    ensure_dataset(args.dataset, Path(args.data_path))
    # ID models first: an LLM model asking for one of them under the same budget and seed
    # then reuses that run's checkpoint (its base is the table's row; recbole_llm.id_models).
    models = request.models
    ordered = [m for m in models if is_id_model(m)] + [m for m in models if not is_id_model(m)]
    overrides = dict(request.overrides)
    if args.no_progress:
        overrides["show_progress"] = False
    if args.rerun:
        overrides["resume_training"] = False  # from scratch: any saved state is discarded

    def spec_of(model, seed):
        llm = issubclass(get_model(model), LLMSequentialRecommender)
        files = [*budget_files(args.budget, llm=llm), *request.user_files]
        return RunSpec(model, args.dataset, seed, files, overrides, args.data_path, args.saved_dir, args.label)

    plan = [(i, spec_of(m, s)) for i, (m, s) in enumerate(((m, s) for m in ordered for s in request.seeds), 1)]
    configs = {}  # (model, seed) -> its Config, built once for the checks, the run key and the run
    for _, spec in plan:
        configs[(spec.model_name, spec.seed)] = build_config(spec)
    epochs_max = {}  # label -> the epoch cap its runs train under (the ETA compares like with like)
    for name in models:  # every check that needs no training (values, LM, titles) before anything trains
        config = configs[(name, request.seeds[0])]
        epochs_max[args.label or name] = int(config["epochs"])
        model_class = get_model(name)
        if hasattr(model_class, "preflight"):
            model_class.preflight(config)
    budget_file = budget_files(args.budget)[0]
    budget = _budget_in_force(budget_file, request.user_files, overrides)
    print(f"[recbole-llm] {len(plan)} run(s) on {args.dataset}; budget '{args.budget}': {budget} "
          f"({budget_file.relative_to(ROOT) if budget_file.is_relative_to(ROOT) else budget_file}"
          f"{'; ID models and baselines: properties/budget/id_models/' + args.budget + '.yaml' if len(budget_files(args.budget)) > 1 else ''}); "
          f"records -> {request.output / args.dataset / 'runs'}", flush=True)
    todo = []
    for i, spec in plan:
        if not args.rerun:
            key = run_key(configs[(spec.model_name, spec.seed)])
            existing = find_record(request.output, args.dataset, spec.row, spec.seed, key, args.budget)
            if existing is not None:
                print(f"[recbole-llm] run {i}/{len(plan)}: {spec.row} seed {spec.seed} skipped: record {existing} "
                      f"has the same config, data and code (run_key {key}); --rerun trains it again", flush=True)
                continue
        todo.append((i, spec))
    if todo:
        options = RunnerOptions(jobs=args.jobs, threads=args.threads, output=request.output, budget=args.budget,
                                total=len(plan), epochs_max=epochs_max)
        run_jobs(todo, options, configs)


def default_output(checkout, budget):
    """The results folder a run writes to without ``--output``: ``<checkout>/results``, or
    ``<checkout>/results/<budget>`` for a budget other than ``full``."""
    return Path(checkout) / "results" / ("" if budget == "full" else budget)


def output_option(output, budget):
    """The ``--output`` part of a page's Regenerate command: empty when ``output`` is the default
    results folder of a recbole-llm checkout (any checkout, not only this one: a run started from a
    second worktree may write into the main checkout's ``results/``), since the command is meant to
    be run from the root of the checkout that holds the page; `` --output=<as given>`` otherwise."""
    if not output:
        return ""
    resolved = Path(output).resolve()
    for checkout in resolved.parents[:2]:
        if (checkout / "run_benchmark.py").is_file() and default_output(checkout, budget) == resolved:
            return ""
    return f" --output={shlex.quote(str(output))}"


def tables(args, output, metrics):
    """Regenerate the dataset's results page from every record of the budget; print the table."""
    from recbole_llm.benchmark.page import page_target, write_results_page
    from recbole_llm.benchmark.records import load_records
    from recbole_llm.errors import UserError

    records = [r for r in load_records(output, args.dataset) if r.get("budget", "full") == args.budget]
    if not records:
        raise UserError(f"no run records for {args.dataset} under {output / args.dataset / 'runs'}: run some models first")
    target = args.target
    if target is None and not args.tables_only:  # a run adds records; the page keeps the target it was drawn with
        target = page_target(output / args.dataset)
        if target is not None:
            print(f"[recbole-llm] the page keeps its --target={shlex.quote(target)} (pass --target to change it)")
    command = f"python run_benchmark.py --dataset={args.dataset} --budget={args.budget} --tables-only" + (
        output_option(args.output, args.budget)) + (f" --target={shlex.quote(target)}" if target else "")
    text = write_results_page(output / args.dataset, args.dataset, records, metrics, target, command)
    print()
    print(text)
    print(f"[recbole-llm] budget '{args.budget}': tables written to {output / args.dataset}/comparison.{{md,csv,tex}}")


def main(argv=None):
    args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    # Imported after argument parsing so that --help is instant.
    from recbole_llm.errors import UserError

    try:
        request = settings(args, overrides)
        output, models, seeds, metrics = request.output, request.models, request.seeds, request.metrics
        import torch

        torch.set_num_threads(args.threads or os.cpu_count() or 1)
        if args.tune and not args.tables_only:
            from recbole_llm.tune.cli import TuneRequest, tune_main

            tune_main(TuneRequest.from_args(args, request, ROOT, sys.argv[1:] if argv is None else argv))
        elif args.tune:
            from recbole_llm.tune.cli import tables_main

            tables_main(output, args.dataset, [args.tune_name] if args.tune_name else models)
            return 0  # the sweep folders only; the dataset's page has its own --tables-only
        elif not args.tables_only:
            run_all(args, request)
        tables(args, output, metrics)
        return 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept as records, and an unfinished run continues from its last "
              "completed epoch: re-run the same command to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
