"""recbole-llm as a package: what setup.cfg ships, and a wheel install run from elsewhere."""

import configparser
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

from setuptools import find_packages

from conftest import REPO, write_toy


def _options():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg", encoding="utf-8")
    return cfg


def _lines(value):
    return sorted(line.strip() for line in value.strip().splitlines() if line.strip())


def test_setup_cfg_lists_every_package_and_maps_properties():
    cfg = _options()
    code = find_packages(str(REPO), include=["recbole_llm", "recbole_llm.*"])
    assert _lines(cfg["options"]["packages"]) == sorted(code + ["recbole_llm.properties"])
    assert _lines(cfg["options"]["package_dir"]) == ["recbole_llm.properties = properties"]
    assert "**/*.yaml" in cfg["options.package_data"]["recbole_llm.properties"]


def _source_copy(dest):
    """The files a wheel is built from, copied so the build writes nothing into the checkout."""
    dest.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "recbole_llm", dest / "recbole_llm", ignore=ignore)
    shutil.copytree(REPO / "properties", dest / "properties", ignore=ignore)
    return dest


def _yaml_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.yaml"))


PROBE = textwrap.dedent("""
    import json, sys
    import recbole_llm
    from recbole_llm.config import Config, properties_dir
    from recbole_llm.pipeline import run

    data, saved = sys.argv[1], sys.argv[2]
    from recbole_llm.spec import RunSpec
    sasrec = Config("SASRec", "toy", [], {"data_path": data})
    idle = Config("IDLEAdapter", "toy", [], {"data_path": data})
    record = run(RunSpec("SASRec", "toy", 1, (), {"epochs": 1, "train_batch_size": 64, "embedding_size": 8,
                 "hidden_size": 8, "inner_size": 16, "n_layers": 1, "n_heads": 1, "MAX_ITEM_LIST_LENGTH": 10,
                 "topk": [10], "show_progress": False}, data, saved))
    print(json.dumps({
        "package": recbole_llm.__file__, "properties": str(properties_dir()),
        "overall": sasrec["packaged_probe"], "dataset": sasrec["toy_probe"], "model": idle["model_probe"],
        "valid_metric": sasrec["valid_metric"], "idle_bandwidth": idle["mmd_bandwidth"],
        "idle_budget": idle["budget"], "sasrec_has_model_probe": "model_probe" in sasrec,
        "ndcg": record["test"]["ndcg@10"],
    }))
""")


def test_wheel_install_runs_from_another_directory(tmp_path):
    """``pip install`` of the wheel (not editable) finds its YAML inside the installed package.

    The wheel is built from a copy whose YAML files carry probe keys, so the values read can
    only have come from the files shipped in the wheel, not from this checkout.
    """
    src = _source_copy(tmp_path / "src")
    with open(src / "properties" / "overall.yaml", "a", encoding="utf-8") as f:
        f.write("packaged_probe: 17\n")
    with open(src / "properties" / "model" / "IDLEAdapter.yaml", "a", encoding="utf-8") as f:
        f.write("model_probe: 23\n")
    (src / "properties" / "dataset" / "toy.yaml").write_text("toy_probe: 5\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("RECBOLE_LLM_PROPERTIES", "PYTHONPATH")}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels = tmp_path / "wheels"
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)],
                   cwd=src, env=env, check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("recbole_llm-*.whl")
    with zipfile.ZipFile(wheel) as z:
        shipped = sorted(n.removeprefix("recbole_llm/properties/") for n in z.namelist()
                         if n.startswith("recbole_llm/properties/"))
    assert shipped == _yaml_files(src / "properties")  # tune/examples/ included
    assert "tune/examples/SASRec-dropout.yaml" in shipped

    target = tmp_path / "site"
    subprocess.run(pip + ["install", "--no-deps", "--no-compile", "--target", str(target), str(wheel)],
                   env=env, check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_toy(tmp_path / "data")
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "data"), str(tmp_path / "saved")],
                         cwd=elsewhere, env={**env, "PYTHONPATH": str(target)}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    installed = target / "recbole_llm"
    assert got["package"] == str(installed / "__init__.py")
    assert got["properties"] == str(installed / "properties")
    assert (got["overall"], got["dataset"], got["model"]) == (17, 5, 23)
    assert got["valid_metric"] == "NDCG@10" and got["idle_bandwidth"] == 4.0 and got["idle_budget"] is None
    assert got["sasrec_has_model_probe"] is False  # IDLEAdapter's YAML is not loaded for SASRec
    assert 0.0 <= got["ndcg"] <= 1.0
    assert _yaml_files(installed / "properties") == _yaml_files(src / "properties")
