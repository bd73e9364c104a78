"""How a number was made: the code's commit, the package versions and the hardware of a run."""

import os
import platform
import subprocess
from importlib import metadata

import torch

from recbole_llm.config import REPO_ROOT

PACKAGES = ("recbole-llm", "recbole", "torch", "numpy", "pandas", "ray", "transformers")


def git_commit(root=REPO_ROOT):
    """``<sha>`` of the checkout, with ``-dirty`` when tracked code differs from it.

    Changes under ``results/`` do not count: every run rewrites the tracked tables there, so
    counting them would mark every run after the first as dirty whatever the code.
    """
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_versions():
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
