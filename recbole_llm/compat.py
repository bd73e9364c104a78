"""Workarounds that let RecBole 1.2.1 and Ray 2.6.3 run on today's numpy, pandas and torch.

Each one is applied once (when: see the end of this docstring), only on the stack that needs it,
is the smallest change that restores the library's intended behaviour, and is idempotent.

Two stacks are tested (``.ci/run``; ``constraints/``): Python 3.11, torch 2.13.0 (CPU wheel),
recbole 1.2.1, ray[tune] 2.6.3, setuptools < 81, and either numpy 1.26 + pandas 2.3 + pyarrow 18
+ transformers 5.24 (the pinned stack the README installs) or numpy 2.4 + pandas 3.1 + pyarrow 26
+ transformers 5.17 (what GPU images ship). What each needs, measured on these stacks:

* ``recbole==1.2.1`` pins ``ray<=2.6.3``, and Ray 2.6.3 imports ``pkg_resources`` (removed in
  setuptools 81): hence setuptools < 81, on both stacks.
* numpy 2 removed aliases that both libraries still name: RecBole's ``Config`` assigns from
  ``np.float_``, ``np.complex_`` and ``np.unicode_`` (``compatibility_settings``), and Ray 2.6.3's
  Tune loggers name ``np.bool8`` in a class body, so ``import ray.tune`` fails, and with it
  ``recbole.quick_start`` and every Tune trial. :func:`restore_numpy_aliases` sets exactly these
  four back under numpy >= 2 (each to the type it named in numpy 1). In this process that
  happens on import; Ray's *worker* processes import ``ray.tune`` (to unpickle the trial's
  actor class) before any code of ours runs in them, so a patch in the driver does not reach
  them. :func:`ray_runtime_env` hands Ray the same function as the job's
  ``worker_process_setup_hook``, which Ray 2.6.3 runs in every worker of the job, on every node,
  before the worker loads any task or actor (``ray/_private/workers/default_worker.py``).
* Under pandas Copy-on-Write (the only mode of pandas 3; opt-in in pandas 2) RecBole's
  ``Dataset`` fills missing values in place on column views (``df[field].fillna(...,
  inplace=True)``), which then silently does nothing. That is not patched here: the dataset
  classes this package builds (:mod:`recbole_llm.data.dataset`) carry
  :class:`recbole_llm.data.fills.CopyOnWriteFills`, and RecBole's own ``Dataset`` is left as it
  is. :func:`copy_on_write` tells them when. Under pandas 2 without Copy-on-Write, the warning
  RecBole's fills raise there (pandas 3 will change them) is silenced.
* RecBole 1.2.1's ``recbole/model/sequential_recommender/sine.py`` calls
  ``torch.autograd.set_detect_anomaly(True)`` at import time, and importing any RecBole
  sequential model (``get_model("SASRec")``) imports it. From then on every autograd node of
  every model in the process records a Python stack trace: measured here, 6 SASRec batches on
  one thread took 24-25 s with it and 15-16 s without; on an H200 the SASRec-based IDLEAdapter
  spent 21 of 25 s of training formatting tracebacks. :func:`disable_anomaly_detection` imports
  RecBole's model packages once, then switches the mode back off (:func:`apply_recbole`, and
  :func:`apply` when RecBole's models were imported before this package); the model registry
  calls it after every lookup (:func:`recbole_llm.utils.get_model`) and every run before training
  (:mod:`recbole_llm.quick_start`), in case other code switched it on.
* Under torch >= 2.6, ``torch.load`` defaults to ``weights_only=True``; RecBole checkpoints
  pickle the whole ``Config`` with ``pickle_protocol=4`` and fail to load. That is not patched
  here (a global ``weights_only=False`` would be unsafe): :mod:`recbole_llm.checkpoint` writes
  checkpoints of plain types that load with ``weights_only=True`` and every trainer this package
  builds uses it (:mod:`recbole_llm.trainer`). RecBole's ``load_data_and_model`` then reads such a
  checkpoint's config as the plain dict it is and fails inside ``init_logger`` with
  ``AttributeError: 'dict' object has no attribute 'final_config_dict'``. Nothing stored in the
  file can change that: ``weights_only=True`` unpickles only plain types, so a dict subclass
  with a ``final_config_dict`` property would make ``torch.load`` itself refuse the file (and ours
  would need a global ``torch.serialization.add_safe_globals``); and RecBole's function could not
  use such a config anyway (it rebuilds the data with RecBole's own ``Dataset``, not the
  exact-time one the run trained on, and knows no model of this package).
  :func:`name_load_run_for_plain_configs` wraps RecBole's ``init_logger``, which RecBole calls
  with a ``Config`` everywhere else, so that a plain-dict config fails with one line naming
  :func:`recbole_llm.load_run` (which loads the run: config, model, dataset and dataloaders). It is
  the function RecBole's own ``load_data_and_model`` looks up at call time, so the line appears
  however that function was imported, once RecBole and this package are both imported (in either
  order: on ``import recbole_llm`` when RecBole came first, else with :mod:`recbole_llm.utils`,
  which every run and :func:`recbole_llm.load_run` import); every call with a ``Config`` goes
  through unchanged. Without this package imported, RecBole's error stays as it is.
* scipy's rewritten DOK format (1.17.1 here) has no private ``dok_matrix._update`` (an unchecked
  ``dict.update``), which RecBole 1.2.1's graph models call to build their adjacency matrix
  (LightGCN, NGCF, SpectralCF, GCMC, NCL; KGIN and MCCLK): ``AttributeError: 'dok_matrix' object
  has no attribute '_update'`` before the first epoch. :func:`restore_dok_update` puts it back where it is missing, as the
  update of the matrix's key -> value store (``_dict``) that it was.

When: what needs no third-party package beyond numpy and pandas is applied on ``import
recbole_llm`` (:func:`apply`), which therefore stays fast (no torch: ``recbole-llm --help``); what
touches RecBole or scipy is applied once by :func:`apply_recbole`, which
:mod:`recbole_llm.utils` (the model registry, where this package first needs RecBole's models)
calls when it is imported.
"""

import warnings

import pandas as pd

_APPLIED = False

# numpy 1 alias -> the numpy 2 name of the same type.
NUMPY_ALIASES = {"float_": "float64", "complex_": "complex128", "unicode_": "str_", "bool8": "bool_"}


def _major(version):
    return int(version.split(".")[0])


def _alias_restorer(aliases):
    def restore_numpy_aliases():
        """Under numpy >= 2, set the removed aliases of :data:`NUMPY_ALIASES` back; return those set.

        Under numpy 1 it does nothing: the aliases exist there (``np.bool8`` deprecated). Defined
        in a closure, with nothing of this package in its globals, so that cloudpickle sends it
        to Ray by value: as a worker's setup hook (:func:`ray_runtime_env`) it imports numpy and
        nothing else (importing ``recbole_llm`` there would cost each worker some 12 s of imports
        before its first task, measured here, where it costs about 1 s without).
        """
        import numpy

        if int(numpy.__version__.split(".")[0]) < 2:
            return []
        restored = []
        for old, new in aliases.items():
            if old not in vars(numpy):
                setattr(numpy, old, getattr(numpy, new))
                restored.append(old)
        return restored

    return restore_numpy_aliases


restore_numpy_aliases = _alias_restorer(dict(NUMPY_ALIASES))


def ray_runtime_env():
    """The ``runtime_env`` every Ray job of this package starts with (``ray.init(runtime_env=...)``).

    The hook runs in each worker process before it imports Ray Tune; it is passed whatever the
    driver's numpy, because on a cluster the workers' numpy is the nodes' own.
    """
    return {"worker_process_setup_hook": restore_numpy_aliases}


def copy_on_write():
    """Whether pandas fills on column views are lost: always in pandas 3, opt-in in pandas 2."""
    if _major(pd.__version__) >= 3:
        return True
    return getattr(pd.options.mode, "copy_on_write", False) is True  # no such option before pandas 2


def disable_anomaly_detection():
    """Import RecBole's model packages (whose ``sine.py`` turns autograd anomaly detection on at
    import), then turn anomaly detection off. Returns whether it was on."""
    import importlib

    import torch

    for package in ("general_recommender", "sequential_recommender", "context_aware_recommender",
                    "knowledge_aware_recommender"):
        importlib.import_module(f"recbole.model.{package}")
    was_on = torch.is_anomaly_enabled()
    torch.autograd.set_detect_anomaly(False)
    return was_on


def restore_dok_update():
    """Give scipy's ``dok_matrix`` back its ``_update`` where scipy has none, as the
    unchecked update of its key -> value store that RecBole's graph models call; return whether
    it was missing. Older scipy keeps its own."""
    from scipy.sparse import _dok

    base = getattr(_dok, "_dok_base", None)
    if base is None or hasattr(base, "_update"):
        return False

    def _update(self, data):
        """The older scipy's ``dok_matrix._update``: ``data`` ({(row, col): value}) into the matrix,
        unchecked (restored by recbole_llm.compat for RecBole 1.2.1's graph models)."""
        self._dict.update(data)

    base._update = _update
    return True


LOAD_RUN_HINT = (
    "RecBole got a plain-dict config where it needs a Config: this is a recbole-llm checkpoint (its config is "
    "stored as plain values, so that it loads with torch.load(weights_only=True)), which RecBole's "
    "load_data_and_model cannot rebuild; load it with recbole_llm.load_run(path), which returns the config, "
    "model, dataset and dataloaders"
)


def name_load_run_for_plain_configs():
    """Wrap RecBole's ``init_logger`` (``recbole.utils`` and every module that has already taken the
    name) so that a plain-dict config raises :class:`~recbole_llm.errors.UserError` with
    :data:`LOAD_RUN_HINT` instead of an ``AttributeError``; a ``Config`` goes through unchanged.
    Returns the modules whose ``init_logger`` it replaced (none the second time)."""
    import functools
    import sys

    import recbole.utils
    import recbole.utils.logger

    from recbole_llm.errors import UserError

    original = recbole.utils.logger.init_logger
    if getattr(original, "recbole_llm_wrapper", False):
        return []

    @functools.wraps(original)
    def init_logger(config):
        if isinstance(config, dict) and not hasattr(config, "final_config_dict"):
            raise UserError(LOAD_RUN_HINT)
        return original(config)

    init_logger.recbole_llm_wrapper = True
    replaced = []
    for name in ("recbole.utils.logger", "recbole.utils", "recbole.quick_start.quick_start", "recbole.quick_start"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "init_logger", None) is original:
            module.init_logger = init_logger
            replaced.append(name)
    return replaced


_RECBOLE_APPLIED = False


def apply_recbole():
    """Apply, once, the workarounds that touch RecBole or scipy (the anomaly mode, ``dok_matrix._update``,
    the line naming ``load_run``); :mod:`recbole_llm.utils` calls it when it is imported."""
    global _RECBOLE_APPLIED
    if _RECBOLE_APPLIED:
        return
    apply()
    restore_dok_update()
    disable_anomaly_detection()
    name_load_run_for_plain_configs()
    _RECBOLE_APPLIED = True


def apply():
    """Apply, once, every workaround that needs nothing beyond numpy and pandas (on ``import
    recbole_llm``; see the module docstring for the others). If RecBole's models were imported
    before this package, the anomaly mode they switched on is switched off here too."""
    global _APPLIED
    if _APPLIED:
        return
    restore_numpy_aliases()  # first: RecBole's imports below may import ray.tune
    # RecBole's trainer builds torch.cuda.amp.GradScaler, deprecated since torch 2.4; the
    # warning is noise on every run and says nothing about the user's setup.
    warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp\.GradScaler.*", category=FutureWarning)
    if not copy_on_write():
        # pandas 2 without Copy-on-Write: RecBole's inplace fills work and only warn that
        # pandas 3 will change them (recbole_llm.data.fills handles that there).
        warnings.filterwarnings(
            "ignore", message=r".*chained assignment using an inplace method.*", category=FutureWarning,
            module=r"recbole\..*",
        )
    import sys

    if "recbole.model.sequential_recommender.sine" in sys.modules:  # imported before us: switched on already
        import torch

        torch.autograd.set_detect_anomaly(False)
    if "recbole.utils.logger" in sys.modules:  # RecBole came first (``from recbole.quick_start import ...``)
        name_load_run_for_plain_configs()
    _APPLIED = True
