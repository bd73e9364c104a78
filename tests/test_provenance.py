"""Provenance of a run: the commit only of the package's own checkout, the package's own version."""

import os
import shutil
import subprocess
import sys

import pytest

from recbole_llm import __version__
from recbole_llm import provenance
from recbole_llm.provenance import git_commit, package_versions
from conftest import REPO


def _git(path, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=True,
                          env=env).stdout.strip()


def _repo(path, files):
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q")
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "one")
    return _git(path, "rev-parse", "HEAD")


def test_commit_of_the_packages_own_checkout_and_dirty_only_for_code(tmp_path):
    sha = _repo(tmp_path / "own", {"recbole_llm/__init__.py": "", "results/t.md": "a\n"})
    assert git_commit(tmp_path / "own") == sha
    (tmp_path / "own" / "results" / "t.md").write_text("b\n")
    assert git_commit(tmp_path / "own") == sha  # a rewritten table is not a code change
    (tmp_path / "own" / "recbole_llm" / "__init__.py").write_text("x = 1\n")
    assert git_commit(tmp_path / "own") == sha + "-dirty"


def test_a_folder_inside_another_repository_or_none_has_no_commit(tmp_path):
    _repo(tmp_path / "other", {"README": "another project\n", "vendor/recbole_llm/__init__.py": ""})
    assert git_commit(tmp_path / "other" / "vendor") == "unknown"
    (tmp_path / "plain" / "recbole_llm").mkdir(parents=True)
    assert git_commit(tmp_path / "plain") == "unknown"


def test_a_package_copy_inside_another_repository_reports_its_version_and_no_commit(tmp_path):
    """The real package, copied into another project's git tree and imported from there."""
    other = tmp_path / "other"
    other_sha = _repo(other, {"README": "another project\n"})
    site = other / "vendor"
    shutil.copytree(REPO / "recbole_llm", site / "recbole_llm", ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import recbole_llm.provenance as p, recbole_llm.config as c; "
            "print(c.REPO_ROOT, p.git_commit(), p.package_versions()['recbole-llm'])")
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=other,
                         check=True).stdout.split()
    assert out[0] == str(site)  # the copy was imported, not this checkout
    assert out[1] == "unknown" and other_sha not in out[1]
    assert out[2] == __version__


def test_this_checkout_reports_its_commit_and_the_running_version():
    top = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if top.returncode != 0:
        pytest.skip("not run from a git checkout")
    head = _git(REPO, "rev-parse", "HEAD")
    assert git_commit().removesuffix("-dirty") == head
    assert package_versions()["recbole-llm"] == __version__


def test_the_commit_is_taken_when_the_package_is_imported(tmp_path):
    """The package in its own checkout; a commit lands after the import (a ``git pull`` under a
    running job): the process still reports the commit it imported."""
    own = tmp_path / "own"
    shutil.copytree(REPO / "recbole_llm", own / "recbole_llm", ignore=shutil.ignore_patterns("__pycache__"))
    first = _repo(own, {"README": "x\n"})
    code = ("import subprocess, sys, recbole_llm.provenance as p; "
            "subprocess.run(['git', '-C', sys.argv[1], 'commit', '-q', '--allow-empty', '-m', 'two'], check=True); "
            "print(p.loaded_commit(), p.git_commit())")
    env = {**os.environ, "PYTHONPATH": str(own), "OMP_NUM_THREADS": "1", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    loaded, now = subprocess.run([sys.executable, "-c", code, str(own)], capture_output=True, text=True,
                                 env=env, cwd=own, check=True).stdout.split()
    assert loaded == first
    assert now == _git(own, "rev-parse", "HEAD") != first


def test_hardware_says_whether_the_cpu_computes_bf16_natively(monkeypatch):
    for native in (True, False):
        monkeypatch.setattr(provenance, "cpu_has_bf16", lambda native=native: native)
        assert provenance.hardware()["cpu_bf16"] is native  # read when a record is written
