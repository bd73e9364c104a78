"""The benchmark's script as the README runs it: ``run_benchmark.py`` loaded from the checkout
(not the package's ``runner``), so that tests exercise the file a user calls."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_benchmark_module():
    """``run_benchmark.py`` of this checkout, loaded as a module (its ``main(argv)`` returns the exit status)."""
    spec = importlib.util.spec_from_file_location("run_benchmark", REPO / "run_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_benchmark_main():
    """``run_benchmark.main``: ``main(argv) -> exit status``."""
    return run_benchmark_module().main
