"""Train and evaluate one model under the benchmark protocol: the training stage.

RecBole's ``run_recbole`` resolves models through RecBole alone and returns only the
metrics; :func:`train_and_evaluate` is the same straight line (dataset -> split -> model ->
trainer -> fit -> test) with this package's model lookup, safe and resumable checkpoints and
logs under ``saved/log``, and returns RecBole's objects (:class:`RunResult`). What comes before
it (the config, the checks, the frozen ID model) and after it (the run record) is
:mod:`recbole_llm.pipeline`'s.
"""

import contextlib
import logging
import os
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from recbole.utils import init_logger, init_seed

from recbole_llm.compat import disable_anomaly_detection
from recbole_llm.config import Config
from recbole_llm.data.dataset import create_dataset, data_preparation  # saved pickles only with trust_checkpoint
from recbole_llm.data.prepare import check_dataset, ensure_dataset
from recbole_llm.distributed import is_distributed, is_rank0, shard_seed, whole_split
from recbole_llm.errors import UserError
from recbole_llm.identity import run_key
from recbole_llm.utils import get_model, get_trainer


@contextlib.contextmanager
def _cwd(path):
    """RecBole writes its log and tensorboard folders relative to the working directory."""
    old = os.getcwd()
    Path(path).mkdir(parents=True, exist_ok=True)
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@contextlib.contextmanager
def _scratch_cwd():
    """A working directory removed afterwards: a distributed run's processes other than rank 0
    build RecBole's trainer there, whose tensorboard writer makes a folder where it is built."""
    with tempfile.TemporaryDirectory(prefix="recbole-llm-rank-") as folder, _cwd(folder):
        yield


def reset_peak_rss():
    """Reset this process's peak resident set size (Linux >= 4.0: ``5`` to ``clear_refs``), so
    that each run of a multi-run invocation reports its own peak, not the process's so far."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss():
    """Peak resident memory (MB) since :func:`reset_peak_rss` (``VmHWM``), else since start."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_logging():
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


def build_config(spec):
    """The Config of :class:`~recbole_llm.spec.RunSpec` ``spec``, with absolute data/checkpoint paths;
    materialises the dataset if needed and validates it against the config
    (:func:`recbole_llm.data.prepare.check_dataset`). The one place a run's Config is built."""
    ensure_dataset(spec.dataset, spec.data_path)
    overrides = {
        "data_path": str(spec.data_path),
        "data_root": str(spec.data_path),  # RecBole turns data_path into <data_path>/<dataset>; nested runs need the root
        "checkpoint_dir": str(spec.saved_dir / "checkpoints"),
    }
    if spec.seed is not None:
        overrides["seed"] = int(spec.seed)
    overrides.update(spec.overrides)
    config = Config(spec.model, spec.dataset, list(spec.config_files), overrides)
    check_dataset(config)  # the whole files and the configured fields, before RecBole reads them
    return config


def run_dir(config, saved_dir, key=None):
    """``<saved>/runs/<dataset>/<model>-seed<seed>-<run_key>/``: the run's best checkpoint
    (``best.pth``) and, while it trains, its resume state (``state.pth``)."""
    key = key or run_key(config)
    return Path(saved_dir) / "runs" / config["dataset"] / f"{config['model']}-seed{config['seed']}-{key}"


@dataclass
class RunResult:
    """What one training and evaluation made (RecBole's objects and the timings), for the record."""

    config: object
    run_key: str
    dataset: object  # the RecBole dataset, after the split
    loaded: dict  # interactions as loaded, before augmentation (:func:`loaded_counts`)
    train_data: object
    test_data: object
    model: object
    trainer: object
    best_valid_score: float
    best_valid_result: dict
    test_result: dict  # None when the test split was not evaluated
    started: float  # time.perf_counter() at the start
    fit_time_s: float
    test_time_s: float  # None when the test split was not evaluated
    peak_rss_mb: float


def train_and_evaluate(config, saved_dir, key=None, callback_fn=None, evaluate_test=True, model_class=None):
    """Train ``config['model']`` and evaluate it on the test split; return a :class:`RunResult`.

    ``key``: the run's identity (:func:`run_key`, computed by the caller before it completed the
    config, e.g. with the ID-model checkpoint). The best checkpoint is ``run_dir/best.pth``; with
    ``resume_training`` (the default) an interrupted run of the same key continues from its last
    validated epoch (``run_dir/state.pth``, :class:`recbole_llm.trainer.SafeCheckpointMixin`).
    ``callback_fn(epoch_idx, valid_score)`` is passed to RecBole's ``fit`` (sweeps report there);
    ``evaluate_test=False`` skips the test split (a sweep selects on validation only).
    ``model_class``: the model's class when it is not one of this package's or RecBole's (a model
    of your own, passed as a class as RecBole's ``Config`` allows); default: by ``config['model']``.
    """
    from recbole_llm.model.llm_base import LLMSequentialRecommender

    start = time.perf_counter()
    reset_peak_rss()
    saved_dir = Path(saved_dir).resolve()
    key = key or run_key(config)
    model_class = model_class or get_model(config["model"])

    _reset_logging()
    if is_rank0(config):
        with _cwd(saved_dir):
            init_logger(config)
    else:  # another process of a distributed run: errors on the console, no log file (rank 0 logs the run)
        logging.basicConfig(level=logging.ERROR)
    logger = logging.getLogger()
    init_seed(config["seed"], config["reproducibility"])
    logger.info(config)

    if issubclass(model_class, LLMSequentialRecommender):
        from recbole_llm.data.tuning import create_dataset as create_tuning_dataset

        data = create_tuning_dataset(config)  # data_strategy / data_size (RA-Rec section 3.4)
    else:
        data = create_dataset(config)
    logger.info(data)
    loaded = loaded_counts(data)  # before data_preparation: a sequential dataset's build() augments inter_feat
    train_data, valid_data, test_data = data_preparation(config, data)
    if is_distributed(config):  # recbole_llm.distributed: the run's seed orders the shards; rank 0 evaluates
        shard_seed(train_data, config["seed"])
        if is_rank0(config):
            valid_data, test_data = whole_split(valid_data, config), whole_split(test_data, config)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    net = model_class(config, train_data._dataset).to(config["device"])
    logger.info(net)
    with _cwd(saved_dir) if is_rank0(config) else _scratch_cwd():  # RecBole's trainer writes where it is built
        trainer = get_trainer(config["MODEL_TYPE"], config["model"], model_class)(config, net)
    folder = run_dir(config, saved_dir, key)
    trainer.saved_model_file = str(folder / "best.pth")
    state_file = folder / "state.pth"
    if config["resume_training"]:
        trainer.resume_path = state_file
    elif state_file.is_file() and is_rank0(config):
        state_file.unlink()
    disable_anomaly_detection()  # RecBole's sine.py switches it on when imported (compat)

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    fit_start = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=True, show_progress=config["show_progress"], callback_fn=callback_fn
    )
    fit_time = time.perf_counter() - fit_start
    if best_valid_result is None:
        raise UserError(f"{config['model']} produced no validation result: check epochs/eval_step in the config")
    test_start = time.perf_counter()
    test_result = None
    if evaluate_test:
        test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=config["show_progress"],
                                       per_user=True)
    test_time = time.perf_counter() - test_start if evaluate_test else None
    return RunResult(config, key, data, loaded, train_data, test_data, net, trainer, best_valid_score,
                     best_valid_result, test_result, start, fit_time, test_time, peak_rss())


def loaded_counts(data):
    """The interactions as loaded (after RecBole's filtering, before any sequence augmentation):
    ``{"interactions": n, "per_user": array of interactions per internal user id}``.

    Call it before ``data_preparation``: ``SequentialDataset.build`` replaces ``inter_feat`` by
    its augmented samples, one fewer than the interactions for every user.
    """
    import numpy as np

    feat = data.inter_feat
    users = feat[data.uid_field]
    users = users.numpy() if hasattr(users, "numpy") else np.asarray(users)
    return {"interactions": int(len(users)), "per_user": np.bincount(users.astype(np.int64), minlength=data.user_num)}
