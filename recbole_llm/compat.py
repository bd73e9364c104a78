"""Workarounds that let RecBole 1.2.1 run on the stack this package pins.

Applied once, on ``import recbole_llm``. Each patch is the smallest change that restores
RecBole's intended behaviour, and each is idempotent.

The stack (see ``setup.cfg``): Python 3.11, torch 2.13.0 (CPU wheel), recbole 1.2.1,
ray[tune] 2.6.3, numpy < 2, pandas < 3, pyarrow < 19, setuptools < 81.

Why these pins, measured on this stack:

* ``recbole==1.2.1`` pins ``ray<=2.6.3``. Ray 2.6.3 imports ``pkg_resources`` (removed in
  setuptools 81) and uses ``np.bool8`` (removed in numpy 2); its ``Tuner`` imports pyarrow,
  and pyarrow >= 19 refuses numpy < 2. RecBole's own ``Config`` also fails under numpy 2
  (``np.float_``). So numpy < 2, pyarrow < 19, setuptools < 81.
* Under pandas 3 (Copy-on-Write) RecBole's ``Dataset._fill_nan`` fills NaNs with
  ``feat[field].fillna(..., inplace=True)``, which silently does nothing. We pin pandas < 3
  *and* replace ``_fill_nan`` (:func:`_patch_fill_nan`) so the fill assigns the column back
  and works on either pandas. (``_load_feat`` uses the same idiom for token_seq fields; the
  pandas < 3 pin is what keeps it working.)
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

import numpy as np

_APPLIED = False


def _fill_nan(self):
    """RecBole's ``Dataset._fill_nan`` with column assignment instead of ``inplace=True``."""
    from recbole.utils import FeatureType

    for feat_name in self.feat_name_list:
        feat = getattr(self, feat_name)
        for field in feat:
            ftype = self.field2type[field]
            if ftype == FeatureType.TOKEN:
                feat[field] = feat[field].fillna(value=0)
            elif ftype == FeatureType.FLOAT:
                feat[field] = feat[field].fillna(value=feat[field].mean())
            else:
                dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float64
                feat[field] = feat[field].apply(
                    lambda x: np.array([], dtype=dtype) if isinstance(x, float) else x
                )


def _patch_fill_nan():
    from recbole.data.dataset import dataset as rb_dataset

    rb_dataset.Dataset._fill_nan = _fill_nan


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


def _check_versions():
    major = int(np.__version__.split(".")[0])
    if major >= 2:
        raise ImportError(
            f"recbole_llm needs numpy<2 (found {np.__version__}): RecBole 1.2.1 and ray 2.6.3 use "
            "aliases removed in numpy 2. Fix: pip install 'numpy<2'"
        )


def apply():
    """Apply every workaround once."""
    global _APPLIED
    if _APPLIED:
        return
    _check_versions()
    # RecBole's trainer builds torch.cuda.amp.GradScaler, deprecated since torch 2.4; the
    # warning is noise on every run and says nothing about the user's setup.
    warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp\.GradScaler.*", category=FutureWarning)
    # RecBole's _load_feat fills token_seq NaNs with the same inplace idiom; under pandas < 3
    # it works and only warns that pandas 3 will change it (hence the pin).
    warnings.filterwarnings(
        "ignore", message=r".*chained assignment using an inplace method.*", category=FutureWarning,
        module=r"recbole\..*",
    )
    _patch_fill_nan()
    disable_anomaly_detection()
    _APPLIED = True
