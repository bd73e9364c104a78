"""Hyperparameter sweeps with Ray Tune (``run_benchmark.py --tune``).

* :mod:`~recbole_llm.tune.space` -- the search-space YAML (``properties/tune/<Model>.yaml``);
* :mod:`~recbole_llm.tune.settings` -- :class:`SweepSettings`, what defines one sweep, and its checks;
* :mod:`~recbole_llm.tune.trainable` -- one trial: a benchmark run reporting each validation;
* :mod:`~recbole_llm.tune.sweep` -- the driver: the ID model once, Tune (ASHA, resume), best re-run;
* :mod:`~recbole_llm.tune.report` -- the results folder: trials table, ``best.yaml``, plot;
* :mod:`~recbole_llm.tune.cli` -- the ``--tune`` options of ``run_benchmark.py``.

Ray is imported only when a sweep runs.
"""

from recbole_llm.tune.settings import SweepSettings
from recbole_llm.tune.space import SearchSpace
from recbole_llm.tune.sweep import Sweep, run_best, run_sweep

__all__ = ["SearchSpace", "SweepSettings", "Sweep", "run_sweep", "run_best"]
