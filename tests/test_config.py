"""The project's Config: where its YAML files are found, and that they hold every default."""

import ast
import importlib
from pathlib import Path

import pytest
from recbole.model.abstract_recommender import AbstractRecommender

import recbole_llm.config as config_module
from conftest import REPO
from recbole_llm.config import Config, properties_dir
from recbole_llm.errors import UserError
from recbole_llm.utils import get_model, get_trainer

# The benchmark's models: those with a search space.
MODELS = sorted(p.stem for p in (REPO / "properties" / "tune").glob("*.yaml"))
# Keys read from a config that no YAML sets, and why.
# Modules whose code reads config keys only for the LLM models (a report on their prompts).
LLM_ONLY = {"recbole_llm.data.tuning", "recbole_llm.benchmark.prompts", "recbole_llm.benchmark.speed", "recbole_llm.benchmark.jobs",
            "recbole_llm.id_models.pretrained", "recbole_llm.pipeline"}
# Keys a module reads only from an LLM model's Config, though it reads others from every model's:
# config._check_id_model_config builds the Config of the command's LLM models only.
LLM_ONLY_KEYS = {("recbole_llm.config", "id_model"), ("recbole_llm.config", "id_model_config")}
NO_DEFAULT = {
    "data_root": "set by quick_start.build_config: the absolute data folder, before RecBole appends the dataset",
    "encoding": "RecBole's own optional key: its Dataset reads it as None too (pandas' default, utf-8)",
}


def _probe_folder(path, value):
    path.mkdir(parents=True)
    (path / "overall.yaml").write_text(f"probe: {value}\n", encoding="utf-8")
    return path


def test_a_checkout_reads_its_own_properties():
    """Under PYTHONPATH=<worktree> (or an editable install) the tree's own folder, even when
    another tree of the project is installed in the same environment."""
    assert properties_dir() == REPO / "properties"


def test_environment_variable_comes_first(tmp_path, monkeypatch):
    folder = _probe_folder(tmp_path / "props", 3)
    monkeypatch.setenv("RECBOLE_LLM_PROPERTIES", str(folder))
    assert properties_dir() == folder
    monkeypatch.setenv("RECBOLE_LLM_PROPERTIES", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match=r"nowhere/overall\.yaml.*RECBOLE_LLM_PROPERTIES"):
        properties_dir()


def test_installed_package_falls_back_to_its_packaged_folder(tmp_path, monkeypatch):
    """No checkout next to the package (a wheel in site-packages): ``recbole_llm/properties``."""
    monkeypatch.delenv("RECBOLE_LLM_PROPERTIES", raising=False)
    packaged = _probe_folder(tmp_path / "site" / "recbole_llm" / "properties", 4)
    monkeypatch.setattr(config_module, "CHECKOUT_PROPERTIES", tmp_path / "site" / "properties")
    monkeypatch.setattr(config_module, "PACKAGED_PROPERTIES", packaged)
    assert properties_dir() == packaged
    # a checkout wins over the packaged copy when both exist
    checkout = _probe_folder(tmp_path / "site" / "properties", 5)
    assert properties_dir() == checkout


def test_package_yaml_is_internal_config_and_user_files_override_it(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("learning_rate: 0.25\n", encoding="utf-8")
    config = Config("IDLEAdapter", "ml-100k", [user], {"align_weight": 0.5})
    assert config.internal_config_dict["mmd_bandwidth"] == 4.0  # properties/model/IDLEAdapter.yaml
    assert config.internal_config_dict["learning_rate"] == 0.0005
    assert config.internal_config_dict["item_text_field"] == "movie_title"  # properties/dataset/ml-100k.yaml
    assert "item_text_field" in config.parameters["Dataset"]
    assert config["learning_rate"] == 0.25 and config["align_weight"] == 0.5
    assert "mmd_bandwidth" not in config.external_config_dict


def _config_reads():
    """``(module, class, key)`` for every ``<...config>["key"]`` in the package's source."""
    reads = set()
    for path in sorted((REPO / "recbole_llm").rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        owner = []

        class Visitor(ast.NodeVisitor):
            def visit_ClassDef(self, node):
                owner.append(node.name)
                self.generic_visit(node)
                owner.pop()

            def visit_Subscript(self, node):
                target = node.value
                name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                key = node.slice
                if name.lower().endswith("config") and isinstance(key, ast.Constant) and isinstance(key.value, str):
                    reads.add((module, owner[0] if owner else None, key.value))
                self.generic_visit(node)

        Visitor().visit(ast.parse(path.read_text(encoding="utf-8")))
    return reads


def _readers(module, owner, model_classes, trainers, key=None):
    """Models whose runs execute the code at ``module.owner`` (reading ``key``): a model class or a
    trainer class reads for the models built on it, a function of a module defining model classes
    for the models built on those; any other code for every model."""
    mod = importlib.import_module(module)
    if module in LLM_ONLY or (module, key) in LLM_ONLY_KEYS:
        return [m for m, c in model_classes.items() if hasattr(c, "prompt_stats")]
    if owner is None:
        own = [c for c in vars(mod).values() if isinstance(c, type) and issubclass(c, AbstractRecommender)
               and c.__module__ == module]
        return [m for m, c in model_classes.items() if not own or any(issubclass(c, o) for o in own)]
    cls = getattr(mod, owner)
    if isinstance(cls, type) and issubclass(cls, AbstractRecommender):
        return [m for m, c in model_classes.items() if issubclass(c, cls)]
    if isinstance(cls, type) and cls.__name__.endswith("Trainer"):
        return [m for m, t in trainers.items() if issubclass(t, cls)]
    return list(model_classes)


def test_every_key_the_code_reads_has_a_yaml_default():
    """RecBole's Config answers None for a missing key, so a key without a default in YAML
    (ours or RecBole's) would silently read as None: every read key must be set for every
    benchmark model whose run reads it."""
    reads = _config_reads()
    assert ("recbole_llm.model.llm_base", "LLMSequentialRecommender", "state_cache") in reads
    assert ("recbole_llm.trainer", "LMTrainer", "measure_overhead_batches") in reads
    configs = {m: Config(m, "ml-100k") for m in MODELS}
    model_classes = {m: get_model(m) for m in MODELS}
    trainers = {m: get_trainer(configs[m]["MODEL_TYPE"], m) for m in MODELS}
    missing = sorted(
        f"{model}: {key} ({module}.{owner or '<module>'})"
        for module, owner, key in reads if key not in NO_DEFAULT
        for model in _readers(module, owner, model_classes, trainers, key) if key not in configs[model]
    )
    assert not missing, "keys read without a default in properties/ (or RecBole's):\n" + "\n".join(missing)
    assert {"SASRec", "IDLEAdapter", "RARec"} <= set(MODELS)


def test_no_python_fallback_for_config_keys():
    """Defaults live in YAML only: no ``x if "k" in config else default`` and no default tables."""
    offenders = []
    for path in sorted((REPO / "recbole_llm").rglob("*.py")):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if ("in config else" in line or "in self.config else" in line or "_DEFAULTS" in line):
                offenders.append(f"{path.relative_to(REPO)}:{lineno}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_properties_folder_is_the_repository_one():
    assert Path(config_module.CHECKOUT_PROPERTIES) == REPO / "properties"
    assert Path(config_module.PACKAGED_PROPERTIES) == REPO / "recbole_llm" / "properties"
