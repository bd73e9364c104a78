"""What defines one sweep: :class:`SweepSettings`, checked before anything is built or run.

The checks here need neither RecBole's config nor Ray; those that need the config (a swept key
no config knows) are made by :func:`recbole_llm.tune.sweep.run_sweep` once it has built it.
"""

from dataclasses import KW_ONLY, dataclass
from pathlib import Path

from recbole_llm.config import REPO_ROOT
from recbole_llm.errors import UserError
from recbole_llm.tune.space import SEARCHES, SearchSpace

SCHEDULERS = ("asha", "none")


@dataclass(frozen=True)
class SweepSettings:
    """One sweep of ``space`` for ``model`` on ``dataset``, as ``run_benchmark.py --tune`` spells it.

    ``__post_init__`` normalises (absolute paths, a fresh ``overrides`` dict, ``num_samples``'s
    default); :meth:`validate` checks the values and raises the ``UserError`` the command line
    shows. Tune's experiment folder, under ``saved_dir``, is named by ``name`` and a hash of the
    other values (:func:`recbole_llm.tune.sweep.sweep_key`; ``config_files`` by file name and
    content) except ``data_path``, ``cpus_per_trial``, ``gpus_per_trial``, ``max_concurrent`` and
    ``ray_address``: a command that changes only those resumes the same sweep.
    """

    model: str  # a recbole-llm or RecBole model name
    dataset: str  # a dataset name under data_path
    space: SearchSpace  # the keys swept and their domains
    _: KW_ONLY
    seed: int = 2020  # the seed every trial runs with (the best configuration is re-run per seed)
    config_files: list = ()  # RecBole YAML files, applied in order; stored as absolute paths (str)
    overrides: dict = None  # config keys fixed for every trial (--key=value); none may be swept
    data_path: Path = None  # RecBole's data_path (default: <repo>/dataset); stored absolute
    saved_dir: Path = None  # checkpoints, logs, ID models and Tune's folders under ray/ (default: <repo>/saved)
    search: str = "grid"  # grid: every combination of the 'grid' keys; random: num_samples draws
    # random: configurations drawn (default 10); grid: draws of the sampled keys per grid point (default 1)
    num_samples: int = None
    scheduler: str = "asha"  # asha: stop weak trials early on the validation metric; none: run all to the end
    grace_period: int = None  # ASHA: evaluations before a trial may be stopped (default: config's stopping_step)
    reduction_factor: float = 2  # ASHA: keep 1/this of the trials at each rung
    cpus_per_trial: float = 1.0  # CPUs Ray reserves per trial (fractions allowed); also its torch threads
    gpus_per_trial: float = 0.0  # GPUs Ray reserves per trial (fractions allowed)
    max_concurrent: int = None  # trials at once (None or 0: as many as the resources allow)
    ray_address: str = None  # an existing Ray cluster (auto or <head>:6379); None: a local Ray on this machine
    name: str = None  # experiment name, before its key (default: the model name)

    def roots(self):
        """The roots a sweep's pages and record name paths by (:func:`recbole_llm.paths.path_roots`)."""
        from recbole_llm.paths import path_roots

        return path_roots(self.data_path, self.saved_dir)

    def __post_init__(self):
        normal = {
            "data_path": Path(self.data_path or REPO_ROOT / "dataset").resolve(),
            "saved_dir": Path(self.saved_dir or REPO_ROOT / "saved").resolve(),
            "overrides": dict(self.overrides or {}),
            "config_files": [str(Path(f).resolve()) for f in self.config_files],
            "num_samples": int(self.num_samples or (1 if self.search == "grid" else 10)),
        }
        for key, value in normal.items():
            object.__setattr__(self, key, value)  # frozen: the one place the fields are set

    def validate(self):
        """Raise ``UserError`` for a value no sweep can run with; return the settings."""
        if self.search not in SEARCHES:
            raise UserError(f"--search must be grid or random, got '{self.search}'")
        if self.scheduler not in SCHEDULERS:
            raise UserError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, got '{self.scheduler}'")
        if self.num_samples < 1:
            raise UserError(f"--num-samples must be >= 1, got {self.num_samples}")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise UserError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
        if self.name is not None:  # a folder under <output>/<dataset>/tune/ and <saved>/ray/<dataset>/
            from recbole_llm.utils import check_name

            check_name(self.name, "--tune-name", hint=" (the sweep's folder under <output>/<dataset>/tune/)")
        fixed = sorted(set(self.space.keys) & set(self.overrides))
        if fixed:
            raise UserError(f"{', '.join('--' + k for k in fixed)} fixed on the command line but swept in "
                            f"{self.space.source}: drop one of the two")
        return self

    @property
    def asha(self):
        return self.scheduler == "asha"
