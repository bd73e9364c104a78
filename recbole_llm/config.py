"""RecBole ``Config`` that also loads this package's YAML files.

Order of precedence, lowest first (later files override earlier ones):

1. RecBole's own defaults (``recbole/properties``), loaded by RecBole;
2. ``properties/overall.yaml``: the one benchmark protocol every model shares;
3. ``properties/dataset/<dataset>.yaml``;
4. ``properties/model/<Model>.yaml``;
5. the user's ``config_file_list`` (``--config-files``), then ``config_dict``.

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


def properties_dir():
    """Folder of the package's YAML files (``RECBOLE_LLM_PROPERTIES`` overrides)."""
    path = Path(os.environ.get("RECBOLE_LLM_PROPERTIES", REPO_ROOT / "properties"))
    if not (path / "overall.yaml").is_file():
        raise UserError(
            f"cannot find {path / 'overall.yaml'}: install recbole-llm from a clone with "
            "'pip install -e .' or set RECBOLE_LLM_PROPERTIES to the clone's properties/ folder"
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
    """RecBole ``Config`` resolving models through :func:`recbole_llm.utils.get_model`."""

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None):
        model_class = get_model(model) if isinstance(model, str) else model
        if model_class is None or dataset is None:
            raise UserError("Config needs both a model and a dataset")
        user_files = [str(f) for f in (config_file_list or [])]
        for f in user_files:
            _check_yaml(f)
        files = default_config_files(model_class.__name__, dataset) + user_files
        super().__init__(model_class, dataset, files, config_dict)

    def _load_cmd_line(self):
        return {}
