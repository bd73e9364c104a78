"""The benchmark command: train models under one protocol, write run records and comparison tables.

``python run_benchmark.py`` (the checkout's script) and ``recbole-llm run`` (the console command,
:mod:`recbole_llm.cli`) are this module's :func:`main`; it lives in the package so that an
installed wheel has it. Examples::

    python run_benchmark.py --model=SASRec,GRU4Rec,BERT4Rec --dataset=ml-100k --seeds=2020,2021,2022
    python run_benchmark.py --model=SASRec --dataset=ml-100k --budget=quick
    python run_benchmark.py --dataset=ml-100k --tables-only --target=SASRec
    python run_benchmark.py --model=SASRec --dataset=ml-100k --learning_rate=0.0005   # any config key
    python run_benchmark.py --model=IDLEAdapter --dataset=ml-100k --nproc=4   # one run, 4 GPUs (torch DDP)
    python run_benchmark.py --model=IDLE-Adapter --dataset=ml-100k --tune --tune-params=prefix_len,align_weight

Every ``--key=value`` that is not an option below is passed to the models' config, as
with RecBole's own command line; a key that no model, YAML or RecBole default knows is an
error naming the closest one. RecBole's ``--config_files`` is the same option as ``--config-files``.

``--help`` imports neither torch nor RecBole: the models it lists and the meaning of each common
config key are read from the files themselves (the models' source files, the comments of the YAML
defaults under ``properties/`` and RecBole's), so the text has one source.
"""

import argparse
import os
import re
import shlex
import sys
from pathlib import Path

PACKAGE_CHECKOUT = Path(__file__).resolve().parent.parent

# The config keys --help explains (their meaning: the comment beside their default, common_key_help).
COMMON_KEYS = ("epochs", "learning_rate", "train_batch_size", "eval_batch_size", "stopping_step", "topk",
               "MAX_ITEM_LIST_LENGTH", "gpu_id", "log_wandb", "resume_training", "id_model", "id_model_config",
               "lm_name", "prompt_max_tokens", "prefix_len", "align_weight", "temperature", "mmd_bandwidth",
               "data_strategy", "data_size")


def default_root():
    """Where results/, dataset/ and saved/ are by default: this package's checkout when it runs from
    one (``run_benchmark.py`` beside it), else the working directory (an installed wheel)."""
    return PACKAGE_CHECKOUT if (PACKAGE_CHECKOUT / "run_benchmark.py").is_file() else Path.cwd()


# ------------------------------------------------------------------------------------------- --help
def _yaml_comments(path):
    """``{key: (default as written, comment)}`` of a YAML file's top-level ``key: value  # comment``
    lines (the comment style of RecBole's and this package's defaults), read as text: fast, no YAML."""
    out = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        m = re.match(r"^([A-Za-z_]\w*):\s*(.*?)\s+#\s*(.+?)\s*$", line)
        if m:
            out.setdefault(m.group(1), (m.group(2), m.group(3)))
    return out


def _recbole_folder():
    """RecBole's installed package folder, found without importing it (its import takes seconds)."""
    import importlib.util

    spec = importlib.util.find_spec("recbole")
    return Path(spec.origin).parent if spec and spec.origin else None


def _properties_folder():
    """This package's ``properties/`` (the checkout's, else the wheel's), found as
    :func:`recbole_llm.config.properties_dir` finds it, without importing RecBole."""
    env = os.environ.get("RECBOLE_LLM_PROPERTIES")
    for folder in ([Path(env)] if env else []) + [PACKAGE_CHECKOUT / "properties", Path(__file__).parent / "properties"]:
        if (folder / "overall.yaml").is_file():
            return folder
    return None


def common_key_help(keys=COMMON_KEYS):
    """``[(key, default, meaning)]`` for ``keys``: each key's default and comment from the YAML files
    that define it, this package's first (overall, the LLM models' base, the models, the datasets),
    then RecBole's. A key two models define with different comments gets both, each named."""
    own = _properties_folder()
    recbole = _recbole_folder()
    files = []
    if own is not None:
        files += [own / "overall.yaml", own / "model" / "LLMSequentialRecommender.yaml"]
        files += sorted(p for p in (own / "model").glob("*.yaml") if p.name != "LLMSequentialRecommender.yaml")
    if recbole is not None:
        files += [recbole / "properties" / "overall.yaml", *sorted((recbole / "properties" / "dataset").glob("*.yaml"))]
    if own is not None:  # last: a dataset's file says what its own value is for
        files += sorted((own / "dataset").glob("*.yaml"))
    parsed = [(f, _yaml_comments(f)) for f in files]
    rows = []
    for key in keys:
        found = [(f, c[key]) for f, c in parsed if key in c]
        if not found:
            continue
        default, meaning = found[0][1]
        model_files = [(f, v) for f, v in found if f.parent.name == "model" and f.parent.parent == own]
        meanings = {v[1] for _, v in model_files}
        if len(meanings) > 1:  # e.g. prefix_len: IDLEAdapter's L' and RARec's instruction + ID tokens
            kinds = {re.match(r"(\(.*?\))?\s*(.*)", v[1]).groups() for _, v in model_files}
            kind = next(iter(kinds))[0] if len({k for k, _ in kinds}) == 1 else None
            parts = [re.match(r"(\(.*?\))?\s*(.*)", v[1]).group(2) if kind else v[1] for _, v in model_files]
            meaning = (f"{kind} " if kind else "") + "; ".join(
                f"{f.stem}: {part.rstrip('.')}" for (f, _), part in zip(model_files, parts)) + "."
            defaults = {v[0] for _, v in model_files}
            default = next(iter(defaults)) if len(defaults) == 1 else "|".join(v[0] for _, v in model_files)
        rows.append((key, default, meaning))
    return rows


def _classes_named_after_files(folder):
    """Class names of ``folder``'s modules whose lower-cased name is the file's (RecBole's and this
    package's rule: ``sasrec.py`` holds ``SASRec``), read from the source."""
    names = []
    for path in sorted(Path(folder).glob("*.py")) if folder and Path(folder).is_dir() else []:
        for m in re.finditer(r"^class (\w+)\(", path.read_text(encoding="utf-8"), re.M):
            if m.group(1).lower() == path.stem:
                names.append(m.group(1))
    return sorted(names, key=str.lower)


def model_catalogue():
    """``{group: [model names]}``: this package's LLM and ID models and RecBole's general and
    sequential models, from their source files (no import)."""
    here = Path(__file__).parent
    recbole = _recbole_folder()
    model_dir = recbole / "model" if recbole else None
    return {
        "LLM models (frozen LM + frozen ID model)": _classes_named_after_files(here / "model" / "sequential_recommender"),
        "ID model of this package (the LLM models' default base)": _classes_named_after_files(here / "id_models"),
        "RecBole sequential models": _classes_named_after_files(model_dir / "sequential_recommender" if model_dir else None),
        "RecBole general models": _classes_named_after_files(model_dir / "general_recommender" if model_dir else None),
    }


def help_epilog(width=100):
    """The models and the common config keys, for ``--help``."""
    import textwrap

    lines = ["models (--model; any case, and the papers' spellings: IDLE-Adapter, RA-Rec):"]
    for group, names in model_catalogue().items():
        lines += textwrap.wrap(", ".join(names), width, initial_indent=f"  {group}: ", subsequent_indent="      ")
    lines += ["  A model the protocol cannot run (a context-aware or knowledge-aware one, staged pretraining, a",
              "  missing package or setting) is refused with one line, saying why, before anything trains.", "",
              "common config keys (--key=value; any RecBole or recbole-llm key works the same way):"]
    for key, default, meaning in common_key_help():
        lines.append(f"  --{key}={default}  {meaning}")
    lines += ["", "Unknown --key=value options are passed to the models' RecBole config; every default is in "
              "properties/ (overall.yaml, budget/, dataset/, model/)."]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- the options
class _OneLineParser(argparse.ArgumentParser):
    """argparse's parser, whose errors (``--nproc=abc``, an unknown choice) are one line naming the
    option and the fix, like every other bad input (:class:`recbole_llm.errors.UserError`, exit 2),
    instead of the whole usage block."""

    def error(self, message):
        from recbole_llm.errors import UserError

        raise UserError(f"{message} (see {self.prog} --help)")


def build_parser(root, prog=None):
    p = _OneLineParser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=help_epilog(),
    )
    p.add_argument("--model", default="", help="model name or comma list, any case (the models are listed below)")
    p.add_argument("--dataset", default="ml-100k", help="dataset name under --data-path (default: ml-100k)")
    p.add_argument("--seeds", default="2020", help="comma list of integer seeds (default: 2020)")
    p.add_argument("--config-files", "--config_files", default="",
                   help="extra RecBole YAML files, applied last (comma- or space-separated; RecBole spells it "
                        "--config_files)")
    p.add_argument("--budget", default="full", help="training budget from properties/budget/<name>.yaml (full, quick)")
    p.add_argument("--output", default=None, help="results folder (default: results/, or results/<budget>/ unless full)")
    p.add_argument("--data-path", default=str(root / "dataset"), help="RecBole data_path (default: ./dataset)")
    p.add_argument("--saved-dir", default=str(root / "saved"), help="checkpoints and logs (default: ./saved)")
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
                   help="run up to this many (model, seed) runs at once, as separate processes, each on its own "
                        "GPU where there are several (round-robin); ID models first, an LLM run after the ID model "
                        "it reuses (default: 1)")
    p.add_argument("--nproc", type=int, default=1,
                   help="train each run as this many processes with torch DDP, RecBole's multi-GPU path: one per GPU "
                        "(NCCL; the first N visible, or --gpu_id=0,1,...), or on a CPU machine N processes (gloo); "
                        "one record per run, by rank 0; the run's --threads are shared among them; not with --jobs "
                        "or --tune; nproc is no part of the run key, so a record made with another count is this "
                        "run (default: 1)")
    g = p.add_argument_group("hyperparameter sweeps (--tune; Ray Tune, recbole_llm/tune/)")
    g.add_argument("--tune", action="store_true",
                   help="sweep on validation (first --seeds), then train and test the best configuration "
                        "for every seed")
    g.add_argument("--tune-space", default=None, help="search-space YAML (default: properties/tune/<Model>.yaml)")
    g.add_argument("--tune-params", default="", help="comma list: sweep only these keys of the space")
    g.add_argument("--tune-name", default=None,
                   help="results in <output>/<dataset>/tune/<name>/ (default: the model name; one plain folder name)")
    g.add_argument("--search", default="grid", choices=("grid", "random"),
                   help="grid: all combinations of the 'grid' keys; random: --num-samples draws (default: grid)")
    g.add_argument("--num-samples", type=int, default=None,
                   help="random: configurations drawn (default 10; caps the sweep's trials); grid: draws of the "
                        "sampled keys per grid point (default 1)")
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
    return p


def repeated_option(parser, argv):
    """The first option ``argv`` gives twice, as ``(name, [the items])``, or None. argparse keeps the
    last of a repeated option without a word (``--model=A --model=B`` drops A), and so does a
    repeated ``--key=value``; a repeated flag (``--rerun``) means the same twice and is let be.
    Options are matched as argparse matches them (aliases, unique prefixes)."""
    long_options = {}
    for action in parser._actions:
        for string in action.option_strings:
            if string.startswith("--"):
                long_options[string] = action
    seen = {}
    items = list(argv)
    for k, item in enumerate(items):
        if item == "--":
            break
        if not item.startswith("--") or item in ("--help",):
            continue
        name = item.split("=", 1)[0]
        action = long_options.get(name)
        if action is None:
            matches = {id(a): a for s, a in long_options.items() if s.startswith(name)}
            action = next(iter(matches.values())) if len(matches) == 1 else None
        if action is not None and action.nargs == 0:  # a flag
            continue
        key = action.dest if action is not None else name
        shown = item if "=" in item or action is None or k + 1 >= len(items) else f"{item} {items[k + 1]}"
        seen.setdefault(key, []).append(shown)
        if len(seen[key]) > 1:
            return (action.option_strings[0] if action is not None else name), seen[key]
    return None


def parse_args(argv, root=None, prog=None):
    from recbole_llm.errors import UserError

    parser = build_parser(Path(root or default_root()), prog)
    repeated = repeated_option(parser, argv)
    if repeated is not None:
        name, items = repeated
        more = " (a comma list for several)" if name in ("--model", "--seeds", "--config-files") else ""
        raise UserError(f"{name} is given {len(items)} times ({', '.join(items)}): only the last would count; give it "
                        f"once{more}")
    args, extra = parser.parse_known_args(argv)
    # recbole_llm.config.parse_overrides does the same; importing it here (RecBole and torch) would make
    # --help take seconds, so the loop is repeated in this one place.
    overrides = {}
    for item in extra:
        if not item.startswith("--") or "=" not in item:
            parser.error(f"unrecognized argument {item!r}: options are --name=value")
        key, value = item[2:].split("=", 1)
        overrides[key] = value
    return args, overrides


def _split(text):
    return [t.strip() for t in text.split(",") if t.strip()]


def _split_files(text):
    """``--config-files``: comma-separated, or space-separated as RecBole's ``--config_files``."""
    return [t for t in text.replace(",", " ").split() if t]


def _unique(values, option):
    """``values`` without repeats, first occurrence kept; a repeat is said once (a seed given twice
    would train the same run twice, the second only to replace the first's record)."""
    unique = list(dict.fromkeys(values))
    if len(unique) < len(values):
        repeated = sorted({v for v in values if values.count(v) > 1}, key=values.index)
        print(f"[recbole-llm] {option}: {', '.join(map(str, repeated))} given more than once; each runs once",
              flush=True)
    return unique


SEED_MAX = 2**32 - 1  # numpy's RandomState (RecBole's init_seed) takes seeds in [0, 2^32 - 1]


def _yaml_values(paths):
    """The mappings of the user's YAML files, in order (unreadable ones are the config's to report)."""
    import yaml

    out = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                content = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(content, dict):
            out.append((Path(path), content))
    return out


def _budget_in_force(budget_file, user_files, overrides):
    """The budget file's keys with the values in force: later ``--config-files``, then ``--key=value``
    override them. Returns ``"epochs=3 (--epochs; the file says 50), stopping_step=5, ..."``."""
    import yaml

    with open(budget_file, encoding="utf-8") as f:
        budget = yaml.safe_load(f) or {}
    files = _yaml_values(user_files)
    parts = []
    for key, value in budget.items():
        source = None
        for path, content in files:
            if key in content:
                value, source = content[key], path.name
        if key in overrides:
            value, source = overrides[key], f"--{key}"
        parts.append(f"{key}={value}" + (f" ({source}; the file says {budget[key]})" if source and value != budget[key]
                                         else ""))
    return ", ".join(parts)


def check_logging(overrides, user_files):
    """``log_wandb: True`` (``--log_wandb`` or a ``--config-files`` YAML) where wandb is not installed:
    RecBole would fail at the first epoch, after the dataset and model are built."""
    import importlib.util

    from recbole_llm.errors import UserError

    value, source = overrides.get("log_wandb"), "--log_wandb"
    for path, content in _yaml_values(user_files):
        if "log_wandb" in content and "log_wandb" not in overrides:
            value, source = content["log_wandb"], f"log_wandb in {path}"
    if value is True and importlib.util.find_spec("wandb") is None:
        raise UserError(f"{source}=True logs to Weights & Biases, and the wandb package is not installed: pip install "
                        "wandb (then wandb login), or leave log_wandb off")


def check_threads(jobs, threads, cores=None):
    """The warning line for ``--jobs`` x threads per job above this machine's cores (None when they fit)."""
    from recbole_llm.benchmark.jobs import available_cores, threads_per_job

    cores = cores or available_cores()
    per_job = threads_per_job(jobs, threads) if jobs > 1 else (threads or cores)
    if jobs * per_job <= cores:
        return None
    return (f"warning: --jobs={jobs} x {per_job} thread(s) = {jobs * per_job} torch threads on {cores} core(s): the "
            f"runs will slow each other down (threads fight over cores); use fewer --jobs or --threads")


def check_nproc(args, overrides, gpus):
    """``--nproc``: raises ``UserError`` for a count that cannot run; returns the ``gpu_id`` its runs
    take: ``--gpu_id`` (``""`` for ``--gpu_id=``: none, the CPU), else the first ``--nproc`` of
    ``gpus``, one process each; None on a CPU machine without ``--gpu_id`` (the config's stands).
    ``overrides``: the parsed ``--key=value`` options (:func:`settings` calls this once, on them, and
    carries the result in the request's overrides: an empty ``--gpu_id=`` is ``None`` once parsed, so
    whether it was given is ``"gpu_id" in overrides``); ``gpus``: :func:`_visible_gpus`. ``local_rank``
    and ``world_size`` are refused by :func:`recbole_llm.config.check_keys`, whatever ``--nproc``."""
    from recbole_llm.errors import UserError

    n = args.nproc
    if n < 1:
        raise UserError(f"--nproc must be a positive integer, got {n}")
    if n == 1:
        return None
    if args.jobs > 1:
        raise UserError(f"--nproc={n} trains each run as {n} processes and --jobs={args.jobs} runs several runs at "
                        "once: give one of them")
    if args.tune:
        raise UserError(f"--nproc={n} with --tune: a sweep trains each trial in one process (--gpus-per-trial sizes "
                        "them); train the best configuration with --nproc afterwards")
    given = "gpu_id" in overrides
    value = overrides.get("gpu_id")
    text = "" if value is None else ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    devices = [g.strip() for g in text.split(",") if g.strip()] if given else list(gpus)
    if given and not devices:  # --gpu_id= (none): n processes on the CPU (gloo), wherever there are GPUs
        return ""
    if not gpus:  # a CPU machine: n processes on the CPU, gloo
        return None
    if n > len(devices):
        where = "--gpu_id names" if given else "this machine has visible"
        raise UserError(f"--nproc={n} runs one process per GPU, and {where} {len(devices)} "
                        f"({','.join(devices)}): use --nproc={len(devices)} or fewer")
    return ",".join(devices[:n])


def settings(args, overrides, root=None, gpus=None):
    """Every option checked before anything runs, as a :class:`recbole_llm.benchmark.request.Request`
    (output, models, seeds, user files, parsed overrides, metrics); raises ``UserError`` naming the option.
    With ``--nproc`` > 1 the overrides carry ``nproc`` and the ``gpu_id`` of :func:`check_nproc`
    (``gpus``: the visible GPUs, default :func:`_visible_gpus`), computed here once for every run."""
    from recbole_llm.benchmark.request import Request
    from recbole_llm.benchmark.tables import DEFAULT_METRICS
    from recbole_llm.config import budget_files, check_keys, parse_overrides_values
    from recbole_llm.errors import UserError
    from recbole_llm.utils import canonical_model_name, check_name, get_model, protocol_problem

    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be a positive integer, got {args.threads}")
    if args.jobs < 1:
        raise UserError(f"--jobs must be a positive integer, got {args.jobs}")
    check_name(args.dataset, "--dataset", hint=" (a folder name under --data-path: pass its parent as --data-path)")
    if args.tune_name is not None:
        check_name(args.tune_name, "--tune-name", hint=" (the sweep's folder under <output>/<dataset>/tune/)")
    budget_file = budget_files(args.budget)[0]  # raises for an unknown --budget, naming the valid ones
    output = Path(args.output) if args.output else default_output(root or default_root(), args.budget)
    models = _unique([canonical_model_name(name) for name in _split(args.model)], "--model")
    if not models and not args.tables_only:
        raise UserError("--model is required (one name or a comma list), or pass --tables-only")
    if not args.tables_only:
        for name in models:  # what the class alone says (model type, packages): before any dataset is read
            problem = protocol_problem(get_model(name))
            if problem:
                raise UserError(problem)
    try:
        seeds = [int(s) for s in _split(args.seeds)]
    except ValueError:
        raise UserError(f"--seeds must be a comma list of integers, got '{args.seeds}'") from None
    if not seeds:
        raise UserError("--seeds is empty")
    bad = [s for s in seeds if not 0 <= s <= SEED_MAX]
    if bad:
        raise UserError(f"--seeds: {bad[0]} is out of range; seeds are integers in [0, {SEED_MAX}]")
    seeds = _unique(seeds, "--seeds")
    user_files = [Path(f) for f in _split_files(args.config_files)]
    if args.trust_checkpoint:
        overrides["trust_checkpoint"] = True
    overrides = parse_overrides_values(overrides)  # YAML scalars, lists and mappings; nothing is evaluated
    nproc_gpu_id = None
    if not args.tables_only:  # before any Config (check_keys builds some): RecBole's sets CUDA_VISIBLE_DEVICES
        nproc_gpu_id = check_nproc(args, overrides, _visible_gpus() if gpus is None and args.nproc > 1 else gpus)
    if models:  # a key nothing reads would set nothing: stop before anything runs
        check_keys(overrides, user_files, models, args.dataset)
    if args.nproc > 1 and not args.tables_only:  # RecBole's keys of a distributed run, in no run key
        overrides["nproc"] = args.nproc
        if nproc_gpu_id is not None:
            overrides["gpu_id"] = nproc_gpu_id
    check_logging(overrides, user_files)
    warning = check_threads(args.jobs, args.threads) if not args.tables_only else None
    if warning:
        print(warning, file=sys.stderr, flush=True)
    metrics = tuple(m.lower() for m in _split(args.metrics)) if args.metrics else DEFAULT_METRICS
    return Request(budget_file=budget_file, output=output, models=models, seeds=seeds, user_files=user_files,
                   overrides=overrides, metrics=metrics)


# ------------------------------------------------------------------------------------------ the runs
def run_all(args, request, root=None, gpus=()):
    """Train every (model, seed) of the command, ID models first, skipping those whose record of
    the same run key exists (unless ``--rerun``), through the one run loop
    (:func:`recbole_llm.benchmark.jobs.run_jobs`: in this process with ``--jobs=1``, else in
    ``--jobs`` worker processes, one GPU each of ``gpus`` round-robin). Each run's Config is built
    once, here, for its checks and its key; an LLM run's ID base that the command does not train
    gets a run and a record of its own first (:func:`recbole_llm.benchmark.jobs.id_base_runs`)."""
    from recbole_llm.benchmark.jobs import RunnerOptions, base_row_labels, id_base_runs, id_bases, run_jobs
    from recbole_llm.benchmark.records import load_records, stored_record
    from recbole_llm.config import budget_files
    from recbole_llm.data.prepare import ensure_dataset
    from recbole_llm.errors import UserError
    from recbole_llm.id_models import is_id_model
    from recbole_llm.identity import run_key
    from recbole_llm.model.llm_base import LLMSequentialRecommender
    from recbole_llm.quick_start import build_config
    from recbole_llm.spec import RunSpec
    from recbole_llm.utils import get_model, protocol_problem

    root = Path(root or default_root())
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
    llm = {m: issubclass(get_model(m), LLMSequentialRecommender) for m in models}  # an LLM recommender?

    def spec_of(model, seed):
        files = [*budget_files(args.budget, llm=llm[model]), *request.user_files]
        return RunSpec(model, args.dataset, seed, files, overrides, args.data_path, args.saved_dir, args.label)

    if args.label and len(models) > 1:
        raise UserError(f"--label names one row, but --model gives {len(models)} models ({', '.join(models)}): "
                        "run them one command each, or leave --label out (each row is then named for its model and "
                        "what differs from its defaults)")
    specs = [spec_of(m, s) for m in ordered for s in request.seeds]
    configs = {}  # (model, seed) -> its Config, built once for the checks, the run key and the run
    for spec in specs:
        configs[(spec.model_name, spec.seed)] = build_config(spec)
    records = load_records(request.output, args.dataset)  # read once: the ID bases and the runs to skip
    bases = id_bases(specs, configs, records, args.budget, llm)  # each LLM run's frozen ID model
    if not args.label:  # an LLM row is named for what identifies it: its LM, its ID base, its data, ...
        from recbole_llm.benchmark.labels import default_label

        base_label = base_row_labels(bases)  # one name for the base in every seed of a row
        specs = [spec.replace(label=default_label(configs[(spec.model_name, spec.seed)],
                                                  base_label.get(spec.model_name)))
                 if llm[spec.model_name] else spec for spec in specs]
    epochs_max = {}  # label -> the epoch cap its runs train under (the ETA compares like with like)
    for name in models:  # every check that needs no training (values, LM, titles) before anything trains
        config = configs[(name, request.seeds[0])]
        epochs_max[next(sp.row for sp in specs if sp.model_name == name)] = int(config["epochs"])
        model_class = get_model(name)
        problem = protocol_problem(model_class, config)
        if problem:
            raise UserError(problem)
        if hasattr(model_class, "preflight"):
            model_class.preflight(config)
    bases = id_base_runs(specs, configs, bases)
    for base, _ in bases:
        configs[(base.spec.model_name, base.spec.seed)] = base.config
        epochs_max.setdefault(base.spec.row, int(base.config["epochs"]))
    plan = list(enumerate([*(b[0].spec for b in bases), *specs], 1))
    budget_file = budget_files(args.budget)[0]
    budget = _budget_in_force(budget_file, request.user_files, overrides)
    with_bases = (f" ({len(bases)} of them the ID base of an LLM row, for its own row: "
                  f"{', '.join(sorted({f'{b.spec.row} (of {model})' for b, model in bases}))})" if bases else "")
    print(f"[recbole-llm] {len(plan)} run(s) on {args.dataset}{with_bases}; budget '{args.budget}': {budget} "
          f"({budget_file.relative_to(root) if budget_file.is_relative_to(root) else budget_file}"
          f"{'; ID models and baselines: properties/budget/id_models/' + args.budget + '.yaml' if len(budget_files(args.budget)) > 1 else ''}); "
          f"records -> {request.output / args.dataset / 'runs'}", flush=True)
    todo = []
    for i, spec in plan:
        if not args.rerun:
            key = run_key(configs[(spec.model_name, spec.seed)])
            # the run key is the run: without --label, a record of it under any row name is this run
            existing = stored_record(records, spec.row if args.label else None, spec.seed, key, args.budget)
            if existing is not None:
                print(f"[recbole-llm] run {i}/{len(plan)}: {spec.row} seed {spec.seed} skipped: record {existing['_path']} "
                      f"has the same config, data and code (run_key {key}); --rerun trains it again", flush=True)
                continue
        todo.append((i, spec))
    if todo:
        options = RunnerOptions(jobs=args.jobs, threads=args.threads, output=request.output, budget=args.budget,
                                total=len(plan), epochs_max=epochs_max, gpus=tuple(gpus))
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
    """Regenerate the dataset's results page from every record of the budget; print the table. The
    records are read and the page written under the folder's lock: another command storing a
    record at the same time waits, and the page that stays lists every record."""
    from recbole_llm.benchmark.page import page_lock, page_target, write_results_page
    from recbole_llm.benchmark.records import load_records
    from recbole_llm.errors import UserError

    with page_lock(output / args.dataset):
        records = [r for r in load_records(output, args.dataset) if r.get("budget", "full") == args.budget]
        if not records:
            raise UserError(f"no run records for {args.dataset} under {output / args.dataset / 'runs'}: run some "
                            "models first")
        target = args.target
        if target is None and not args.tables_only:  # a run adds records; the page keeps the target it was drawn with
            target = page_target(output / args.dataset)
            if target is not None:
                print(f"[recbole-llm] the page keeps its --target={shlex.quote(target)} (pass --target to change it)")
        command = f"python run_benchmark.py --dataset={args.dataset} --budget={args.budget} --tables-only" + (
            output_option(args.output, args.budget)) + (f" --target={shlex.quote(target)}" if target else "")
        text = write_results_page(output / args.dataset, args.dataset, records, metrics, target, command)
        if (output / args.dataset / "README.md").is_file():  # its generated blocks follow the records
            from recbole_llm.benchmark.summary import write_summaries

            write_summaries(output, args.dataset)
    print()
    print(text)
    print(f"[recbole-llm] budget '{args.budget}': tables written to {output / args.dataset}/comparison.{{md,csv,tex}}")


def main(argv=None, root=None, prog=None):
    """The command line (``argv``: default ``sys.argv[1:]``); returns the exit status. ``root``: where
    dataset/, saved/ and results/ are by default (:func:`default_root`)."""
    from recbole_llm.errors import UserError

    argv = sys.argv[1:] if argv is None else list(argv)
    root = Path(root or default_root())
    try:
        args, overrides = parse_args(argv, root, prog)
        gpus = _visible_gpus()  # before any Config: RecBole's sets CUDA_VISIBLE_DEVICES to its gpu_id
        request = settings(args, overrides, root, gpus)  # --nproc checked there, on the parsed overrides
        output, metrics = request.output, request.metrics
        if not args.tables_only:  # finished work must have somewhere to go: checked before anything trains
            from recbole_llm.fsutil import check_writable

            check_writable(output / args.dataset, option="--output")
            check_writable(Path(args.saved_dir), need_bytes=64 * 2**20, option="--saved-dir")
        import torch

        torch.set_num_threads(args.threads or os.cpu_count() or 1)
        if args.tune and not args.tables_only:
            from recbole_llm.tune.cli import TuneRequest, tune_main

            tune_main(TuneRequest.from_args(args, request, root, argv, output_option(args.output, args.budget)))
        elif args.tune:
            from recbole_llm.tune.cli import tables_main

            tables_main(output, args.dataset, [args.tune_name] if args.tune_name else request.models,
                        budget=args.budget, output_option=output_option(args.output, args.budget))
            return 0  # the sweep folders only; the dataset's page has its own --tables-only
        elif not args.tables_only:
            run_all(args, request, root, gpus)
        tables(args, output, metrics)
        return 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept as records, and an unfinished run continues from its last "
              "completed epoch: re-run the same command to continue", file=sys.stderr)
        return 130


def _visible_gpus():
    """The GPUs this process may use (:func:`recbole_llm.benchmark.jobs.visible_gpus`); none without
    CUDA, whatever ``CUDA_VISIBLE_DEVICES`` says (RecBole's ``Config`` sets it on any machine)."""
    from recbole_llm.benchmark.jobs import visible_gpus

    import torch

    if not torch.cuda.is_available():
        return ()
    return visible_gpus(os.environ, torch.cuda.device_count())
