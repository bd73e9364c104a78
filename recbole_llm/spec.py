"""One run, as asked for: the values that travel together from the command line (or a sweep trial)
through every stage, built once at the edge and passed whole (peft's ``PeftConfig`` is the model).

What identifies the run is not here: it is derived from the Config this spec builds
(:mod:`recbole_llm.identity`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from recbole_llm.config import REPO_ROOT


@dataclass(frozen=True)
class RunSpec:
    """A run of ``model`` on ``dataset`` with ``seed``.

    ``model``: a model name (this package's or RecBole's) or a model class of your own;
    ``config_files``: YAML files applied after the defaults, in order (the budget first);
    ``overrides``: ``--key=value`` settings, applied last; ``data_path``: RecBole's data root
    (default ``<checkout>/dataset``); ``saved_dir``: checkpoints, logs and resume state (default
    ``<checkout>/saved``); ``label``: the row the run's record goes to (default: the model name).
    Paths are made absolute once, here.
    """

    model: Union[str, type]
    dataset: str
    seed: Optional[int] = None
    config_files: tuple = ()
    overrides: Mapping[str, Any] = field(default_factory=dict)
    data_path: Path = REPO_ROOT / "dataset"
    saved_dir: Path = REPO_ROOT / "saved"
    label: Optional[str] = None

    def __post_init__(self):
        set_ = object.__setattr__  # a frozen dataclass normalises its own fields once
        set_(self, "config_files", tuple(str(f) for f in self.config_files))
        set_(self, "overrides", dict(self.overrides or {}))  # a copy: the caller's dict may change
        set_(self, "data_path", Path(self.data_path or REPO_ROOT / "dataset").resolve())
        set_(self, "saved_dir", Path(self.saved_dir or REPO_ROOT / "saved").resolve())
        if self.seed is not None:
            set_(self, "seed", int(self.seed))

    @property
    def model_name(self) -> str:
        return self.model if isinstance(self.model, str) else self.model.__name__

    @property
    def row(self) -> str:
        """The table row of the run's record: ``label``, else the model's name."""
        return self.label or self.model_name

    def replace(self, **changes) -> "RunSpec":
        """A copy with ``changes`` (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def with_overrides(self, **values) -> "RunSpec":
        """A copy whose overrides also hold ``values``."""
        return self.replace(overrides={**self.overrides, **values})
