"""Train and evaluate one model under the benchmark protocol and describe the run.

RecBole's ``run_recbole`` resolves models through RecBole alone and returns only the
metrics; this is the same pipeline (Config -> dataset -> split -> model -> trainer ->
fit -> test) with this package's model lookup, safe checkpoints, logs under ``saved/log``,
and a run record carrying everything a table needs to say how a number was made.
"""

import contextlib
import logging
import os
import resource
import sys
import time
from pathlib import Path

import torch
from recbole.data import data_preparation
from recbole.utils import init_logger, init_seed

from recbole_llm.checkpoint import config_key, config_to_dict
from recbole_llm.compat import disable_anomaly_detection
from recbole_llm.config import REPO_ROOT, Config
from recbole_llm.data.dataset import create_dataset
from recbole_llm.data.prepare import check_dataset, ensure_dataset
from recbole_llm.errors import UserError
from recbole_llm.provenance import git_commit, hardware, package_versions
from recbole_llm.utils import get_model, get_trainer

# Version of the run record's layout. 1 (records without the key): ``dataset_stats.interactions``
# and ``per_user.history_length`` were counted after RecBole's sequence augmentation, one short
# per user for sequential models (``recbole_llm.benchmark.records.dataset_stats`` and
# ``history_lengths`` correct them when tables are made). 2: counted from the interactions as loaded.
RECORD_VERSION = 2


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


def count_parameters(model):
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}


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


def build_config(model, dataset, seed=None, config_files=(), config_dict=None, data_path=None, saved_dir=None):
    """Config for one run with absolute data/checkpoint paths; materialises the dataset if needed
    and validates it against the config (:func:`recbole_llm.data.prepare.check_dataset`)."""
    data_path = Path(data_path or REPO_ROOT / "dataset").resolve()
    saved_dir = Path(saved_dir or REPO_ROOT / "saved").resolve()
    ensure_dataset(dataset, data_path)
    overrides = {
        "data_path": str(data_path),
        "data_root": str(data_path),  # RecBole turns data_path into <data_path>/<dataset>; nested runs need the root
        "checkpoint_dir": str(saved_dir / "checkpoints"),
    }
    if seed is not None:
        overrides["seed"] = int(seed)
    overrides.update(config_dict or {})
    config = Config(model, dataset, list(config_files), overrides)
    check_dataset(config)  # the whole files and the configured fields, before RecBole reads them
    return config


def run_key(config):
    """What identifies a run for resuming and skipping: a hash of every config value that affects
    its weights or metrics (model, dataset, seed, budget, hyperparameters) and of the code version
    (``recbole_llm.__version__``; a change that alters numbers bumps it)."""
    from recbole_llm import __version__

    return config_key({**config_to_dict(config), "recbole_llm_version": __version__})


def run_dir(config, saved_dir):
    """``<saved>/runs/<dataset>/<model>-seed<seed>-<run_key>/``: the run's best checkpoint
    (``best.pth``) and, while it trains, its resume state (``state.pth``)."""
    return Path(saved_dir) / "runs" / config["dataset"] / f"{config['model']}-seed{config['seed']}-{run_key(config)}"


def run(model, dataset, seed=None, config_files=(), config_dict=None, data_path=None, saved_dir=None,
        show_progress=None, callback_fn=None, evaluate_test=True):
    """Train ``model`` on ``dataset`` with ``seed``; return the run record (a JSON-able dict).

    ``callback_fn(epoch_idx, valid_score)`` is passed to RecBole's ``fit`` (sweeps report there).
    ``evaluate_test=False`` skips the test split (a sweep selects on validation only); the
    record's ``test`` is then ``None``. With ``resume_training`` (the default), an interrupted run
    of the same config and code continues from its last validated epoch (:func:`run_dir`).
    """
    start = time.perf_counter()
    reset_peak_rss()
    saved_dir = Path(saved_dir or REPO_ROOT / "saved").resolve()
    config = build_config(model, dataset, seed, config_files, config_dict, data_path, saved_dir)
    if show_progress is not None:
        config["show_progress"] = bool(show_progress)
    model_class = get_model(config["model"])
    if hasattr(model_class, "preflight"):
        model_class.preflight(config)  # every check that needs no training, before the ID model trains
    if hasattr(model_class, "prepare"):
        model_class.prepare(config)  # e.g. train the LLM model's ID model, with its own logs, first

    _reset_logging()
    with _cwd(saved_dir):
        init_logger(config)
    logger = logging.getLogger()
    init_seed(config["seed"], config["reproducibility"])
    logger.info(config)

    if getattr(model_class, "tunes_on_selected_data", False):
        from recbole_llm.data.tuning import create_dataset as create_tuning_dataset

        data = create_tuning_dataset(config)  # data_strategy / data_size (RA-Rec section 3.4)
    else:
        data = create_dataset(config)
    logger.info(data)
    loaded = loaded_counts(data)  # before data_preparation: a sequential dataset's build() augments inter_feat
    train_data, valid_data, test_data = data_preparation(config, data)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    net = model_class(config, train_data._dataset).to(config["device"])
    logger.info(net)
    with _cwd(saved_dir):
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    folder = run_dir(config, saved_dir)
    trainer.saved_model_file = str(folder / "best.pth")
    state_file = folder / "state.pth"
    if config["resume_training"]:
        trainer.resume_path = state_file
    elif state_file.is_file():
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
    test_time = time.perf_counter() - test_start

    epochs_run = len(trainer.history)
    best_epoch = None
    for entry in trainer.history:
        if entry.get("valid", {}).get(config["valid_metric"].lower()) == best_valid_score:
            best_epoch = entry["epoch"]
            break
    train_times = [e["train_time_s"] for e in trainer.history]
    valid_times = [e["valid_time_s"] for e in trainer.history if "valid_time_s" in e]
    n_train = len(train_data.dataset)
    peak_rss_mb = peak_rss()
    record = {
        "model": config["model"],
        "run_key": run_key(config),
        "version": _version(),
        "dataset": config["dataset"],
        "seed": int(config["seed"]),
        "protocol": {
            "split": to_text(config["eval_args"]),
            "valid_metric": config["valid_metric"],
            "epochs_max": int(config["epochs"]),
            "stopping_step": int(config["stopping_step"]),
        },
        "test": None if test_result is None else {k: float(v) for k, v in test_result.items()},
        "valid": {k: float(v) for k, v in best_valid_result.items()},
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
        "stop_reason": "early_stopping" if trainer.stopped_early else "epoch_cap",
        "resumed": trainer.resumed,
        "history": trainer.history,
        "record_version": RECORD_VERSION,
        "dataset_stats": {
            "users": int(data.user_num) - 1,
            "items": int(data.item_num) - 1,
            "interactions": loaded["interactions"],
            "train_samples": int(n_train),
        },
        "cost": {
            "wall_time_s": None,  # filled below
            "fit_time_s": fit_time,
            "train_time_per_epoch_s": sum(train_times) / max(len(train_times), 1),
            "train_samples_per_s": n_train * len(train_times) / max(sum(train_times), 1e-9),
            "valid_time_per_epoch_s": sum(valid_times) / max(len(valid_times), 1),
            "test_time_s": test_time if evaluate_test else None,
            "peak_rss_mb": peak_rss_mb,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        },
        "parameters": count_parameters(net),
        "checkpoint": trainer.saved_model_file,
        "config": config_to_dict(config),
        "commit": git_commit(),
        "packages": package_versions(),
        "hardware": hardware(),
        "device": str(config["device"]),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    record["cost"].update(getattr(trainer, "extra_cost", {}))
    if hasattr(net, "parameter_report"):
        record["parameters"].update(net.parameter_report())
    if hasattr(net, "prompt_stats"):  # titles per hard prompt of the test users (LLM models)
        record["prompt_stats"] = net.prompt_stats(test_data._dataset)
    if hasattr(net, "item_text_report"):
        record["item_text"] = net.item_text_report()  # items without text (missing_text_max_share)
    if getattr(data, "tuning_summary", None) is not None:
        record["data_selection"] = data.tuning_summary
    per_user = getattr(trainer, "per_user", None) if evaluate_test else None
    if per_user is not None:
        record["per_user"] = per_user_record(data, per_user, loaded["per_user"])
    record["cost"]["wall_time_s"] = time.perf_counter() - start + trainer.prior_wall_time_s
    if trainer.resume_path is not None and state_file.is_file():
        state_file.unlink()  # the record is made: a re-run is skipped by the runner or retrains from scratch
    from recbole_llm.id_model import register_run

    register_run(record, config, saved_dir)
    return record


def _version():
    from recbole_llm import __version__

    return __version__


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


def per_user_record(data, per_user, counts):
    """Test ranks per user, keyed by the user's token (stable across models of one dataset).

    ``history_length`` is the user's number of interactions before the test item, uncapped
    (the model itself sees at most ``MAX_ITEM_LIST_LENGTH`` of them): the axis of RA-Rec's
    Fig. 4 long-sequence slice. ``counts`` holds the interactions per internal user id as
    loaded (:func:`loaded_counts`); the test item is the last of them (leave-one-out).
    """
    uid = data.uid_field
    ids = per_user["user_ids"]
    return {
        "split": "test",
        "users": [str(t) for t in data.id2token(uid, ids)],
        "history_length": [int(counts[i]) - 1 for i in ids],
        "rank": per_user["rank"],
        "targets": per_user["targets"],
        "max_k": per_user["max_k"],
    }


def to_text(value):
    return value if isinstance(value, str) else repr(value)
