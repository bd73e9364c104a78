"""What a benchmark command asks for, checked (``run_benchmark.py``'s :func:`settings`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Request:
    """A checked command: its budget's main file, the results folder, the models and seeds, the
    user's ``--config-files``, the ``--key=value`` overrides (parsed, never evaluated) and the
    table columns."""

    budget_file: Path
    output: Path
    models: list = field(default_factory=list)
    seeds: list = field(default_factory=list)
    user_files: list = field(default_factory=list)
    overrides: dict = field(default_factory=dict)
    metrics: tuple = ()
