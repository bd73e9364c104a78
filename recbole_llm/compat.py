"""Workarounds that let RecBole 1.2.1 and Ray 2.6.3 run on today's numpy, pandas and torch.

Applied once, on ``import recbole_llm``; each one is applied only on the stack that needs it,
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
  RecBole's model packages once, then switches the mode back off; every run calls it again
  before training (:mod:`recbole_llm.quick_start`), in case other code switched it on.
* Under torch >= 2.6, ``torch.load`` defaults to ``weights_only=True``; RecBole checkpoints
  pickle the whole ``Config`` with ``pickle_protocol=4`` and fail to load. That is not patched
  here (a global ``weights_only=False`` would be unsafe): :mod:`recbole_llm.checkpoint` writes
  checkpoints of plain types that load with ``weights_only=True`` and every trainer this package
  builds uses it (:mod:`recbole_llm.trainer`).
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


def apply():
    """Apply every workaround once."""
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
    disable_anomaly_detection()
    _APPLIED = True
