"""How a number was made: the code's commit, the package versions and the hardware of a run."""

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch


PACKAGES = ("recbole-llm", "recbole", "torch", "numpy", "pandas", "ray", "transformers")


def _git(root, *args):
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


# The folder above the package: a source checkout's top when the package is used from one.
REPO_ROOT = Path(__file__).resolve().parent.parent


def git_commit(root=REPO_ROOT):
    """``<sha>`` of the checkout the package runs from, with ``-dirty`` when tracked code differs
    from it; ``"unknown"`` unless ``root`` (the folder above the ``recbole_llm`` package) is the
    top of its own git checkout.

    Installed from a wheel, or copied into another project's tree, the package sits inside some
    other repository or none: that repository's commit says nothing about this code, so none is
    recorded (the record's ``packages["recbole-llm"]`` still gives the package's version).
    Changes under ``results/`` do not count: every run rewrites the tracked tables there, so
    counting them would mark every run after the first as dirty whatever the code.
    """
    root = Path(root).resolve()
    try:
        if Path(_git(root, "rev-parse", "--show-toplevel")).resolve() != root:
            return "unknown"
        sha = _git(root, "rev-parse", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def loaded_commit():
    """The commit of the code this process runs: :func:`git_commit` as it was when this module was
    first imported (``record`` imports it, and the pipeline imports ``record`` before any run
    starts), not when a record is written.

    A run lasts hours, and the checkout may move meanwhile (a ``git pull``, a worktree switched to a
    newer commit for the next queued run); the code in memory is still what was imported, so run
    records, resume states and sweep reports name this commit. Modules a process imports later
    come from the checkout as it is then, which this cannot see.
    """
    return LOADED_COMMIT


def package_versions():
    """Installed versions of :data:`PACKAGES`; ``recbole-llm`` is the version of the code running
    (``recbole_llm.__version__``), which an installed distribution's metadata need not be (a
    checkout on ``PYTHONPATH`` beside an installed copy)."""
    from recbole_llm import __version__

    out = {}
    for name in PACKAGES:
        if name == "recbole-llm":
            out[name] = __version__
            continue
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_has_bf16():
    """True when the CPU has native bf16 dot products (AVX512-BF16 or AMX), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


def hardware():
    """CPU model, core count, native bf16 (AVX512-BF16 or AMX), torch threads and the GPU, if any."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    # cpu_bf16: whether lm_autocast: auto runs the LM under bf16 on this CPU (it does where this is True)
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "cpu_bf16": cpu_has_bf16(),
            "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# Taken once, at import: the code being loaded now is what every record of this process names.
LOADED_COMMIT = git_commit()
