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
"""

import os
from pathlib import Path

import yaml
from recbole.config import Config as RecBoleConfig

from recbole_llm.errors import UserError
from recbole_llm.utils import get_model

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


def default_config_files(model_name, dataset):
    """The package's YAML files that apply to ``model_name`` on ``dataset``, in load order."""
    root = properties_dir()
    files = [root / "overall.yaml", root / "dataset" / f"{dataset}.yaml", root / "model" / f"{model_name}.yaml"]
    return [str(f) for f in files if f.is_file()]


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


class Config(RecBoleConfig):
    """RecBole ``Config`` resolving models through :func:`recbole_llm.utils.get_model` and
    loading the package's YAML files as internal config (see the module docstring)."""

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None):
        model_class = get_model(model) if isinstance(model, str) else model
        if model_class is None or dataset is None:
            raise UserError("Config needs both a model and a dataset")
        user_files = [str(f) for f in (config_file_list or [])]
        for f in user_files:
            _check_yaml(f)
        super().__init__(model_class, dataset, user_files, config_dict)

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        dataset_file = str(properties_dir() / "dataset" / f"{dataset}.yaml")
        for file in default_config_files(model, dataset):
            loaded = self._update_internal_config_dict(file) or {}
            if file == dataset_file:  # as RecBole does for its own dataset files (__str__ groups them)
                self.parameters["Dataset"] += [k for k in loaded if k not in self.parameters["Dataset"]]

    def _load_cmd_line(self):
        return {}
