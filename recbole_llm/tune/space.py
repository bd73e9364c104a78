"""Search spaces: one YAML syntax for any config key, read into Ray Tune's sampling domains.

A space file maps config keys to one domain each::

    align_weight: {grid: [0.1, 0.2, 0.5, 1.0]}      # every value (a grid axis)
    lm_pooling: {choice: [mean, cls]}               # sampled
    learning_rate: {loguniform: [1.0e-4, 1.0e-2]}   # sampled, log scale
    dropout_prob: {uniform: [0.0, 0.5]}             # sampled
    prefix_len: {randint: [1, 4]}                   # sampled integer, both ends included

Under ``--search=grid`` every ``grid`` key is a grid axis (the cross product is run) and the
other keys are drawn afresh for each grid point (``--num-samples`` times; Ray's semantics).
Under ``--search=random`` ``grid`` keys are drawn like ``choice`` and ``--num-samples``
configurations are drawn from the whole space. So one file serves both searches.

``randint`` includes its upper end (unlike ``tune.randint``), so ``{randint: [1, 4]}`` and
``{grid: [1, 2, 3, 4]}`` cover the same values. The file is read with RecBole's float rule, so
``1e-4`` is a number as in RecBole's own YAML files, not the string PyYAML makes of it.
"""

import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from recbole_llm.errors import UserError

KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
SEARCHES = ("grid", "random")
# Keys a sweep cannot vary: they name the run itself or where it reads and writes.
RESERVED = {
    "model": "one sweep per model (--model)",
    "dataset": "one sweep per dataset (--dataset)",
    "seed": "a sweep selects under one seed; the best configuration is re-run for every --seeds",
    "data_path": "set it with --data-path",
    "data_root": "set it with --data-path",
    "checkpoint_dir": "set it with --saved-dir",
    "gpu_id": "Ray assigns each trial its GPUs (--gpus-per-trial)",
}
EXAMPLE = "{grid: [0.1, 0.2]}, {choice: [..]}, {uniform: [lo, hi]}, {loguniform: [lo, hi]} or {randint: [lo, hi]}"


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with RecBole's float rule (``1e-4`` is a float); a subclass, so the
    resolver does not leak into every other YAML reader of the process."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Param:
    """One swept key: its domain ``kind`` and the ``values`` (grid/choice) or bounds (the rest)."""

    key: str
    kind: str
    values: tuple

    @property
    def discrete(self):
        return self.kind in ("grid", "choice")

    def to_ray(self, search):
        from ray import tune

        if self.kind == "grid":
            return tune.grid_search(list(self.values)) if search == "grid" else tune.choice(list(self.values))
        if self.kind == "choice":
            return tune.choice(list(self.values))
        lo, hi = self.values
        if self.kind == "uniform":
            return tune.uniform(lo, hi)
        if self.kind == "loguniform":
            return tune.loguniform(lo, hi)
        return tune.randint(lo, hi + 1)  # Ray's upper bound is exclusive, ours inclusive

    def describe(self):
        """The range as a reader of a results page wants it: ``{0.1, 0.2}`` or ``loguniform [a, b]``."""
        if self.discrete:
            return "{" + ", ".join(str(v) for v in self.values) + "}" + (" (sampled)" if self.kind == "choice" else "")
        return f"{self.kind} [{self.values[0]}, {self.values[1]}]"

    def as_yaml(self):
        return {self.kind: list(self.values)}


class SearchSpace:
    """The parsed space of one file, keys in file order."""

    def __init__(self, params, source="<space>"):
        self.params = list(params)
        self.source = str(source)

    # ------------------------------------------------------------------ reading
    @classmethod
    def load(cls, path, keys=None):
        """Read ``path``; with ``keys``, keep only those (``--tune-params``), in that order."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"search space {path} does not exist (--tune-space)")
        try:
            with open(path, encoding="utf-8") as f:
                content = yaml.load(f, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise UserError(f"search space {path}{where} is not valid YAML: {getattr(err, 'problem', err)}") from None
        space = cls.parse(content, path)
        return space.select(keys) if keys else space

    @classmethod
    def parse(cls, content, source="<space>"):
        """Check a mapping ``key -> {kind: args}``; every mistake is a :class:`UserError`
        naming ``source`` and the key."""
        if not isinstance(content, dict) or not content:
            what = "is empty" if not content else f"holds a {type(content).__name__}"
            raise UserError(f"search space {source} {what}; it must map config keys to a domain, e.g. "
                            f"align_weight: {{grid: [0.1, 0.2]}}")
        return cls([_parse_param(source, key, spec) for key, spec in content.items()], source)

    def select(self, keys):
        by_key = {p.key: p for p in self.params}
        missing = [k for k in keys if k not in by_key]
        if missing:
            raise UserError(f"--tune-params: {', '.join(missing)} not in search space {self.source} "
                            f"(it has: {', '.join(by_key)})")
        return SearchSpace([by_key[k] for k in dict.fromkeys(keys)], self.source)

    # ------------------------------------------------------------------ using
    @property
    def keys(self):
        return [p.key for p in self.params]

    def __getitem__(self, key):
        return next(p for p in self.params if p.key == key)

    def __len__(self):
        return len(self.params)

    def to_ray(self, search):
        """``param_space`` for ``ray.tune.Tuner``."""
        if search not in SEARCHES:
            raise UserError(f"--search must be one of {', '.join(SEARCHES)}, got '{search}'")
        return {p.key: p.to_ray(search) for p in self.params}

    def grid_size(self):
        """Grid points under ``--search=grid`` (1 when no key is a grid axis)."""
        return math.prod(len(p.values) for p in self.params if p.kind == "grid")

    def n_trials(self, search, num_samples):
        return self.grid_size() * num_samples if search == "grid" else num_samples

    def as_dict(self):
        """The space as YAML would hold it (for hashing and for the results page)."""
        return {p.key: p.as_yaml() for p in self.params}


def _parse_param(source, key, spec):
    where = f"search space {source}: key '{key}'"
    if not isinstance(key, str) or not key:
        raise UserError(f"search space {source}: keys must be config key names, got {key!r}")
    if key in RESERVED:
        raise UserError(f"{where} cannot be swept: {RESERVED[key]}")
    if not isinstance(spec, dict) or len(spec) != 1:
        raise UserError(f"{where} must be one domain such as {EXAMPLE}; got {spec!r}")
    kind, args = next(iter(spec.items()))
    if kind not in KINDS:
        raise UserError(f"{where}: unknown domain '{kind}'; use one of {', '.join(KINDS)} ({EXAMPLE})")
    if not isinstance(args, list) or not args:
        raise UserError(f"{where}: '{kind}' takes a non-empty list, got {args!r}")
    if kind in ("grid", "choice"):
        seen = []
        for v in args:
            if v in seen:
                raise UserError(f"{where}: '{kind}' lists {v!r} twice")
            seen.append(v)
        return Param(key, kind, tuple(args))
    if len(args) != 2:
        raise UserError(f"{where}: '{kind}' takes [lo, hi], got {args!r}")
    lo, hi = args
    if kind == "randint":
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in args):
            raise UserError(f"{where}: 'randint' bounds must be integers, got {args!r}")
    elif not all(_number(x) for x in args):
        raise UserError(f"{where}: '{kind}' bounds must be numbers, got {args!r}")
    if not lo < hi:
        raise UserError(f"{where}: '{kind}' needs lo < hi, got [{lo}, {hi}]")
    if kind == "loguniform" and lo <= 0:
        raise UserError(f"{where}: 'loguniform' needs 0 < lo, got {lo}")
    return Param(key, kind, (lo, hi))
