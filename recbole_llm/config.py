"""RecBole ``Config`` that also loads this package's YAML files.

Order of precedence, lowest first (later files override earlier ones):

1. RecBole's own defaults (``recbole/properties``), loaded by RecBole;
2. ``properties/overall.yaml``: the one benchmark protocol every model shares;
3. ``properties/dataset/<dataset>.yaml``;
4. ``properties/model/<Model>.yaml``;
5. the user's ``config_file_list`` (``--config-files``), then ``config_dict``.

2-4 are the package's internal config: like RecBole-GNN, :class:`Config` adds them to RecBole's
own internal config dict (``_load_internal_config_dict``), so everything the user passes is
RecBole's "external" config and overrides them the way it overrides RecBole's defaults.

RecBole's ``Config`` also parses ``sys.argv`` for ``--key=value``; the benchmark's own
options (``--model=A,B``) would leak into every model's config that way, so that parsing
is switched off here and the runner passes overrides explicitly.

RecBole takes any key and many values it does not understand without a word: an unknown key is
stored and never read, ``rm_dup_inter: False`` reaches pandas as ``keep=False`` (every copy of
a repeated pair dropped), an unknown ``learner`` falls back to Adam, an illegal
``user_inter_num_interval`` is skipped with a log line. :func:`check_keys` (used by the runner
on ``--key=value`` and ``--config-files``) and :func:`check_values` (run on every
:class:`Config`) turn those into one-line :class:`UserError` s.
"""

import difflib
import functools
import os
import re
from pathlib import Path

import yaml
from recbole.config import Config as RecBoleConfig

from recbole_llm.data.tuning import STRATEGIES
from recbole_llm.checks import check_config_values
from recbole_llm.errors import UserError
from recbole_llm.utils import get_model, is_llm_class

REPO_ROOT = Path(__file__).resolve().parent.parent

# Where the YAML files are, in the order :func:`properties_dir` tries them.
PROPERTIES_ENV = "RECBOLE_LLM_PROPERTIES"
CHECKOUT_PROPERTIES = REPO_ROOT / "properties"
PACKAGED_PROPERTIES = Path(__file__).resolve().parent / "properties"


def properties_dir():
    """Folder of the package's YAML files.

    1. ``$RECBOLE_LLM_PROPERTIES`` when set;
    2. ``<checkout>/properties`` next to this package: a source checkout used through
       ``PYTHONPATH`` and an editable install both read the YAML files of their own tree (a
       worktree must not read those of another tree that happens to be installed editable);
    3. ``recbole_llm/properties`` inside the installed package: a wheel ships ``properties/``
       there (setup.cfg maps the package ``recbole_llm.properties`` to ``properties/``).

    The folders are found from ``__file__``, as RecBole and RecBole-GNN find theirs, not by
    importing ``recbole_llm.properties``: under ``PYTHONPATH`` that name falls through to
    whatever editable install's finder is present (another tree), and a folder without
    ``__init__.py`` does not import from an editable install at all.
    """
    if os.environ.get(PROPERTIES_ENV):
        path = Path(os.environ[PROPERTIES_ENV])
    elif (CHECKOUT_PROPERTIES / "overall.yaml").is_file():
        path = CHECKOUT_PROPERTIES
    else:
        path = PACKAGED_PROPERTIES
    if not (path / "overall.yaml").is_file():
        raise UserError(
            f"cannot find {path / 'overall.yaml'}: reinstall recbole-llm (the wheel ships it in "
            f"recbole_llm/properties) or set {PROPERTIES_ENV} to a properties/ folder"
        )
    return path


def default_config_files(model_name, dataset, model_class=None):
    """The package's YAML files that apply to ``model_name`` on ``dataset``, in load order:
    ``overall.yaml``, the dataset's, then ``model/<Class>.yaml`` of every class of the model from
    the most basic one (``LLMSequentialRecommender.yaml``: what every LLM model's base class
    reads) to the model's own, so a new model inherits its base class's defaults."""
    root = properties_dir()
    names = [c.__name__ for c in reversed(model_class.__mro__)] if model_class is not None else [model_name]
    files = [root / "overall.yaml", root / "dataset" / f"{dataset}.yaml"] + [root / "model" / f"{n}.yaml" for n in names]
    return [str(f) for f in files if f.is_file()]


def budget_files(budget, llm=False):
    """The YAML files of budget ``budget``, in the order they apply: ``properties/budget/<budget>.yaml``
    (every model), then, unless ``llm`` (an LLM recommender's run), the part for the ID models and
    baselines, ``properties/budget/id_models/<budget>.yaml``, when it exists. Raises
    :class:`UserError` naming the valid budgets when the first is missing."""
    from recbole_llm.utils import check_name

    check_name(budget, "--budget", hint=" (a file name under properties/budget/)")
    root = properties_dir() / "budget"
    main = root / f"{budget}.yaml"
    if not main.is_file():
        valid = sorted(f.stem for f in root.glob("*.yaml"))
        raise UserError(f"unknown --budget '{budget}'; valid: {', '.join(valid)}")
    extra = root / "id_models" / f"{budget}.yaml"
    return [main] + ([extra] if extra.is_file() and not llm else [])


def user_set_keys(config):
    """The keys the user set for this run: ``--key=value`` overrides and the keys of its YAML files
    (the budget's included), as opposed to the defaults under ``properties/`` and RecBole's."""
    return set(config.variable_config_dict or {}) | {k for f in config.user_files for k in _yaml_mapping(f)}


def _check_yaml(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist (--config-files)")
    try:
        with open(path, encoding="utf-8") as f:
            content = yaml.safe_load(f)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"config file {path}{where} is not valid YAML: {getattr(err, 'problem', err)}") from None
    if content is not None and not isinstance(content, dict):
        raise UserError(f"config file {path} must hold a mapping of config keys, not {type(content).__name__}")


def parse_overrides(extra, error):
    """``--key=value`` command-line items (argparse's unknown arguments) as a dict of strings, as
    RecBole's own command line takes them; ``error(message)`` for anything else (argparse's
    ``parser.error``, which exits with status 2)."""
    overrides = {}
    for item in extra:
        if not item.startswith("--") or "=" not in item:
            error(f"unrecognized argument {item!r}: options are --name=value (see --help)")
        key, value = item[2:].split("=", 1)
        overrides[key] = value
    return overrides


def parse_value(text):
    """One ``--key=value`` value as YAML reads it (RecBole's float rule: ``1e-4`` is a float):
    numbers, ``True``/``False``, ``~``, lists ``[5,10]`` and mappings ``{LS: valid_and_test}``.
    ``None`` (RecBole's command-line spelling) is ``None``; anything else stays the string it is.
    Nothing is evaluated: RecBole's own command line runs ``eval`` on every value."""
    if not isinstance(text, str):
        return text
    if text.strip().lower() == "none":
        return None
    try:
        value = yaml.load(text, Loader=_RecBoleLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (bool, int, float, list, dict)) or value is None else text


def parse_overrides_values(overrides):
    """``{key: parse_value(value)}`` for the runner's ``--key=value`` strings."""
    return {k: parse_value(v) for k, v in overrides.items()}


class Config(RecBoleConfig):
    """RecBole ``Config`` resolving models through :func:`recbole_llm.utils.get_model` and
    loading the package's YAML files as internal config (see the module docstring).

    Values RecBole would misread raise :class:`UserError` (:func:`check_values`), and so do the
    ``ValueError`` s RecBole's own ``Config`` raises for a bad value, with its message.
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None):
        model_class = get_model(model) if isinstance(model, str) else model
        if model_class is None or dataset is None:
            raise UserError("Config needs both a model and a dataset")
        user_files = [str(f) for f in (config_file_list or [])]
        for f in user_files:
            _check_yaml(f)
        self.user_files = user_files
        try:
            super().__init__(model_class, dataset, user_files, config_dict)
        except (ValueError, NotImplementedError, TypeError) as err:  # RecBole's own checks (eval_args, metrics)
            message = " ".join(str(err).split()) or type(err).__name__
            raise UserError(f"config of {model_class.__name__} on {dataset}: {message} (RecBole)") from None
        check_values(self)

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        dataset_file = str(properties_dir() / "dataset" / f"{dataset}.yaml")
        data_yaml_done = False
        for file in default_config_files(model, dataset, model_class):
            if Path(file).parent.name == "model" and not data_yaml_done:  # the data folder's YAML: before models'
                self._load_data_folder_yaml(dataset)
                data_yaml_done = True
            loaded = self._update_internal_config_dict(file) or {}
            if file == dataset_file:  # as RecBole does for its own dataset files (__str__ groups them)
                self.parameters["Dataset"] += [k for k in loaded if k not in self.parameters["Dataset"]]
        if not data_yaml_done:
            self._load_data_folder_yaml(dataset)

    def _load_data_folder_yaml(self, dataset):
        """``<data_path>/<dataset>/<dataset>.yaml``, the YAML a converter writes beside a dataset of your
        own (``python -m recbole_llm.data csv``): the dataset's keys, after ``properties/dataset/``,
        before the models' YAML and anything the user passes. Read with a safe loader."""
        root = (self.external_config_dict or {}).get("data_root") or (self.external_config_dict or {}).get("data_path")
        if not root or not isinstance(root, str):
            return
        path = Path(root) / dataset / f"{dataset}.yaml"
        if path.is_file():
            _check_yaml(path)  # a !!python/... tag: one line, not PyYAML's traceback (nothing is built either way)
            loaded = _yaml_mapping(path)
            self.internal_config_dict.update(loaded)
            self.parameters["Dataset"] += [k for k in loaded if k not in self.parameters["Dataset"]]

    def _init_device(self):
        """RecBole's, except in a process of a distributed run (``local_rank`` set): RecBole's joins
        the process group with NCCL and a GPU per process, asserting on ``gpu_id``; this one joins it
        with the backend the device allows (:func:`recbole_llm.distributed.join_group`, gloo on a
        CPU) and sets the keys RecBole's data loaders and trainer read as RecBole sets them
        (``single_spec``, ``device``; quiet processes other than rank 0). A ``local_rank`` without the
        rest of what :func:`recbole_llm.pipeline.run_processes` sets (a config of the API's, where
        :func:`check_keys` does not look) is one line, not a ``KeyError`` from inside the join."""
        values = self.final_config_dict
        if "local_rank" not in values:
            return super()._init_device()
        if any(values.get(k) is None for k in ("world_size", "ip", "port")):
            raise process_key_error("local_rank", f"config key local_rank = {values['local_rank']!r} "
                                                  f"(from {self.source_of('local_rank')})")
        from recbole_llm.distributed import join_group

        gpu_id = values["gpu_id"]
        values["gpu_id"] = ",".join(map(str, gpu_id)) if isinstance(gpu_id, (tuple, list)) else str(gpu_id)
        os.environ["CUDA_VISIBLE_DEVICES"] = values["gpu_id"]  # as RecBole's: GPU <local_rank> of these
        values["device"] = join_group(values)
        values["single_spec"] = False
        if values["local_rank"] != 0:
            values["state"], values["show_progress"], values["verbose"] = "error", False, False

    def _init_parameters_category(self):
        """RecBole's categories as this Config's own lists: RecBole's are its module-level argument
        lists, and loading a dataset YAML extends them in place, so every later Config of the process,
        and every key computed from those lists (:mod:`recbole_llm.identity`, the ID model's protocol
        keys), would depend on which datasets the process loaded before."""
        super()._init_parameters_category()
        self.parameters = {name: list(keys) for name, keys in self.parameters.items()}

    def _load_cmd_line(self):
        return {}

    def _load_variable_config_dict(self, config_dict):
        """The values as given: RecBole's runs ``eval`` on every string value (its command-line
        parsing), so a string from a YAML mapping (``id_model_config``) or an option could run code.
        Command-line strings are parsed by :func:`parse_value` before they get here."""
        return dict(config_dict or {})

    def source_of(self, key):
        """Where ``key``'s value came from, for messages: ``--key``, a ``--config-files`` YAML, or
        the YAML defaults (this package's ``properties/`` and RecBole's)."""
        if key in (self.variable_config_dict or {}):
            return f"--{key}"
        for f in reversed(self.user_files):
            content = _yaml_mapping(f)
            if key in content:
                return str(f)
        return "the defaults (properties/*.yaml, RecBole's properties)"


# ------------------------------------------------------------------------------------ values
# RecBole 1.2.1's enumerated keys and what it does with another value (lower-cased but rm_dup_inter).
ENUMERATED = {
    "rm_dup_inter": (("first", "last", None), "first/last keeps that copy of a repeated user-item pair, ~ keeps "
                                               "them all; RecBole hands any other value to pandas' "
                                               "drop_duplicates(keep=...), where False drops every copy"),
    "learner": (("adam", "adamw", "sgd", "adagrad", "rmsprop", "sparse_adam"), "RecBole trains with Adam instead"),
    "state": (("info", "debug", "warning", "error", "critical"), "RecBole logs at INFO instead"),
    # this package's own, checked here too so that a run fails before anything trains
    "lr_schedule": (("constant", "linear"), "the learning-rate schedule: linear decays to 0"),
    "data_strategy": (STRATEGIES, "the LLM models' training samples, RA-Rec section 3.4"),
}
# eval_args sub-keys (RecBole's Dataset.build and Config._set_eval_neg_sample_args).
EVAL_ORDER = ("RO", "TO")
EVAL_GROUP_BY = ("user", "none", None)
EVAL_SPLIT = {"RS": "a list of ratios", "TS": "a list of ratios", "LS": ("valid_and_test", "valid_only", "test_only")}
SEED_MAX = 2**32 - 1  # numpy's RandomState takes seeds in [0, 2^32 - 1]
_INTERVAL = re.compile(r"^\s*[\[(]\s*([-+]?(?:inf|[0-9.eE+-]+))\s*,\s*([-+]?(?:inf|[0-9.eE+-]+))\s*[\])]\s*$")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _choices(values):
    return ", ".join("~" if v is None else str(v) for v in values)


def check_values(config):
    """Raise :class:`UserError` for a value RecBole 1.2.1 would misread or reject late.

    Checked: :data:`ENUMERATED` keys; ``eval_args`` (``split`` RS/LS/TS, ``order`` RO/TO,
    ``group_by``; RecBole's ``Config`` checks ``mode``); ``seed`` an integer in [0, 2^32-1];
    ``valid_metric`` one of ``metrics`` at one of ``topk``; ``user_inter_num_interval`` and
    ``item_inter_num_interval`` intervals such as ``[5,inf)``; and every value set by the user
    (``--key`` or a ``--config-files`` YAML) whose default is a bool, an int or a float has that
    type (``--epochs=3.5`` or ``--show_progress=no`` would be stored as they are).
    """
    d = config.final_config_dict

    def fail(key, problem):
        raise UserError(f"config key {key} = {d.get(key)!r} (from {config.source_of(key)}) {problem}")

    for key, (allowed, otherwise) in ENUMERATED.items():
        if key not in d:
            continue
        value = d[key]
        norm = value.lower() if isinstance(value, str) and key != "rm_dup_inter" else value
        if norm not in allowed:
            fail(key, f"must be one of {_choices(allowed)} ({otherwise})")
    seed = d.get("seed")
    if not _is_int(seed) or not 0 <= seed <= SEED_MAX:
        fail("seed", f"must be an integer in [0, {SEED_MAX}]")
    eval_args = d.get("eval_args") or {}
    split = eval_args.get("split")
    if not isinstance(split, dict) or len(split) != 1 or next(iter(split)) not in EVAL_SPLIT:
        fail("eval_args", f"split must be one of {{RS: [...]}}, {{TS: [...]}} or {{LS: valid_and_test}}, not {split!r}")
    mode, arg = next(iter(split.items()))
    if mode == "LS" and arg not in EVAL_SPLIT["LS"]:
        fail("eval_args", f"split LS must be one of {', '.join(EVAL_SPLIT['LS'])}, not {arg!r}")
    if mode in ("RS", "TS") and not (isinstance(arg, list) and all(isinstance(x, (int, float)) for x in arg)):
        fail("eval_args", f"split {mode} must be a list of ratios such as [0.8, 0.1, 0.1], not {arg!r}")
    if eval_args.get("order") not in EVAL_ORDER:
        fail("eval_args", f"order must be RO or TO, not {eval_args.get('order')!r}")
    group_by = eval_args.get("group_by")
    if (group_by.lower() if isinstance(group_by, str) else group_by) not in EVAL_GROUP_BY:
        fail("eval_args", f"group_by must be user or none, not {group_by!r}")
    metrics = [str(m).lower() for m in d.get("metrics") or []]
    topk = d.get("topk") or []
    valid = str(d.get("valid_metric", "")).lower()
    name, _, k = valid.partition("@")
    if name not in metrics or (k and (not k.isdigit() or int(k) not in topk)):
        fail("valid_metric", f"must be one of the metrics ({', '.join(d.get('metrics') or [])}) at one of topk "
                             f"({', '.join(map(str, topk))}), e.g. NDCG@{topk[0] if topk else 10}")
    for key in ("user_inter_num_interval", "item_inter_num_interval"):
        value = d.get(key)
        if value is not None and not all(_INTERVAL.match(part) for part in str(value).split(";")):
            fail(key, "must be ~ or intervals such as [5,inf) or (0,10] separated by ';' (RecBole skips an "
                      "illegal one without filtering)")
    defaults = _defaults(config)
    user_keys = user_set_keys(config)
    for key in sorted(user_keys):
        default, value = defaults.get(key), d.get(key)
        if key == "seed" or default is None or value is None:
            continue
        if isinstance(default, bool) and not isinstance(value, bool):
            fail(key, "must be True or False")
        if _is_int(default) and not _is_int(value):
            fail(key, f"must be an integer (its default is {default})")
        if isinstance(default, float) and not (_is_int(value) or isinstance(value, float)):
            fail(key, f"must be a number (its default is {default})")

    files = default_config_files(config["model"], config["dataset"], getattr(config, "model_class", None))
    check_config_values(config, [*files, *config.user_files], config.source_of)  # the rules beside the keys


def _defaults(config):
    """Each key's value before the user's: RecBole's YAML files, then this package's."""
    out = dict(config.internal_config_dict)
    for f in default_config_files(config["model"], config["dataset"]):
        out.update(_yaml_mapping(f))
    return out


@functools.lru_cache(maxsize=None)
def _yaml_cached(path, mtime):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_RecBoleLoader) or {}  # noqa: S506 (a SafeLoader subclass)


def _yaml_mapping(path):
    """A YAML file's mapping, read with RecBole's float rule (cached per file version)."""
    path = Path(path)
    content = _yaml_cached(str(path.resolve()), path.stat().st_mtime_ns)
    return content if isinstance(content, dict) else {}


class _RecBoleLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with RecBole's float rule (``1e-4`` is a float)."""


_RecBoleLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


# -------------------------------------------------------------------------------------- keys
# Keys RecBole 1.2.1 reads when they are set but defaults in none of its YAML files: a user may set them.
RECBOLE_OPTIONAL_KEYS = {
    "encoding": "the atomic files' text encoding (RecBole's Dataset; utf-8 when unset)",
    "tail_ratio": "the share of items counted as the tail (RecBole's TailPercentage metric)",
}
# Keys of RecBole's multi-process path that recbole_llm.pipeline.run_processes sets in each process's
# config (with ip, port and offset, which no YAML knows either): from the user they are refused
# (check_keys). local_rank alone would make the Config join a process group nobody started;
# world_size alone sets nothing (one process trains).
PROCESS_KEYS = {
    "world_size": "processes of a distributed run (RecBole's DDP)",
    "local_rank": "this process's rank in a distributed run (RecBole's DDP)",
}


def known_keys(model_names, dataset):
    """Every config key a run of ``model_names`` on ``dataset`` can mean, from the loaded YAML and
    RecBole's own defaults, not from source text: the keys of each model's :class:`Config` without
    user input (RecBole's overall, dataset, model and quick-start YAML, this package's
    ``properties/``), of every YAML under ``properties/`` (budgets, other datasets and models) and
    RecBole's ``properties/`` (its other models' keys included), RecBole's documented argument lists,
    and :data:`RECBOLE_OPTIONAL_KEYS`. Every key this package reads has a YAML default
    (tests/test_config.py), so nothing it reads is missing here.
    """
    import recbole
    from recbole.utils import argument_list

    keys = set(RECBOLE_OPTIONAL_KEYS)
    for attr in ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments"):
        keys.update(getattr(argument_list, attr))
    root = properties_dir()
    yamls = [f for f in root.rglob("*.yaml") if "tune" not in f.relative_to(root).parts]
    yamls += sorted((Path(recbole.__file__).parent / "properties").rglob("*.yaml"))
    for f in yamls:
        keys.update(str(k) for k in _yaml_mapping(f))
    for name in model_names:
        keys.update(Config(get_model(name), dataset).final_config_dict)
    return keys


def unknown_key_error(key, known, where, models):
    """The :class:`UserError` for ``key``, naming the closest known key (``difflib``)."""
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "check its spelling"
    return UserError(f"{where}: '{key}' is not a config key of {', '.join(models)} (no YAML under properties/, "
                     f"RecBole default or model reads it, so it would set nothing); {hint}")


def process_key_error(key, where):
    """The :class:`UserError` for a key of :data:`PROCESS_KEYS` set by the user (``where``: the option or
    the file and line)."""
    return UserError(f"{where}: {key} is set for each process by --nproc (recbole_llm.pipeline.run_processes): "
                     "leave it out; --nproc=N trains one run as N processes")


def _check_id_model_config(overrides, config_files, model_names, dataset):
    """``id_model_config``: a mapping whose every key the ID model's run reads (a misspelt key
    would set nothing, and the LLM row would stand on the default base while its label says otherwise).

    Checked on the Config of each LLM model of ``model_names`` built from ``config_files`` and
    ``overrides``, so that ``id_model`` and ``id_model_config`` are the values in force from every
    source (``--key=value``, a ``--config-files`` YAML, the defaults), as the run will read them;
    built only when the user sets ``id_model_config`` (the defaults set none)."""
    if "id_model_config" not in overrides and not any("id_model_config" in _yaml_mapping(f) for f in config_files):
        return
    for model in model_names:
        model_class = get_model(model)
        if not is_llm_class(model_class):
            continue
        config = Config(model_class, dataset, config_files, parse_overrides_values(overrides))
        value, source = config["id_model_config"], config.source_of("id_model_config")
        if value in (None, {}):
            continue
        given = "option --id_model_config" if source.startswith("--") else f"config file {source}, id_model_config"
        if not isinstance(value, dict):
            shown = f"{given}={value}" if source.startswith("--") else f"{given}: {value!r}"
            raise UserError(f"{shown}: give a mapping of the ID model's keys, e.g. "
                            "--id_model_config='{learning_rate: 0.003}'")
        name = str(config["id_model"])
        known = known_keys([name], dataset)
        for key in value:
            if str(key) not in known:
                raise unknown_key_error(str(key), known, f"{given}, key {key}", [name])


def check_keys(overrides, config_files, model_names, dataset):
    """Raise :class:`UserError` for a ``--key=value`` or a key of a ``config_files`` YAML that no
    run of ``model_names`` on ``dataset`` reads (:func:`known_keys`), naming the closest known key
    and, for a YAML, its line; for a key of :data:`PROCESS_KEYS`, which only
    :func:`recbole_llm.pipeline.run_processes` sets (it builds its processes' configs without this
    check); and for ``id_model_config`` keys its ID model does not read (:func:`_check_id_model_config`)."""
    if not overrides and not config_files:
        return
    known = known_keys(model_names, dataset)
    for key, value in overrides.items():
        if key in PROCESS_KEYS:
            raise process_key_error(key, f"option --{key}={value}")
        if key not in known:
            err = unknown_key_error(key, known, f"option --{key}={value}", model_names)
            raise UserError(str(err).replace("did you mean ", "did you mean --"))
    for f in config_files:
        _check_yaml(f)
        with open(f, encoding="utf-8") as fh:
            node = yaml.compose(fh)
        for key_node, _ in (node.value if isinstance(node, yaml.MappingNode) else []):
            where = f"config file {f} line {key_node.start_mark.line + 1}"
            if str(key_node.value) in PROCESS_KEYS:
                raise process_key_error(str(key_node.value), where)
            if str(key_node.value) not in known:
                raise unknown_key_error(str(key_node.value), known, where, model_names)
    _check_id_model_config(overrides, config_files, model_names, dataset)
