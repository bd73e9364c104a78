"""The run record: one JSON-able dict that says how every number of a run was made.

Built from what :func:`recbole_llm.quick_start.train_and_evaluate` returns (RecBole's objects),
after the run: metrics (test and the best validation epoch's), the per-epoch history, how
training ended, the data statistics as loaded, cost, parameters, the config, and the provenance
(commit, package versions, hardware, command). Tables and plots are generated from these records
alone (:mod:`recbole_llm.benchmark.page`).
"""

import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from recbole_llm.checkpoint import config_to_dict
from recbole_llm.distributed import description, is_distributed
from recbole_llm.paths import path_roots, portable_record
from recbole_llm.provenance import git_commit, hardware, loaded_commit, package_versions

# Version of the run record's layout. 1 (records without the key): ``dataset_stats.interactions``
# and ``per_user.history_length`` were counted after RecBole's sequence augmentation, one short
# per user for sequential models (``recbole_llm.benchmark.records.dataset_stats`` and
# ``history_lengths`` correct them when tables are made). 2: counted from the interactions as loaded.
RECORD_VERSION = 2


def make_record(result, saved_dir):
    """The record of a :class:`~recbole_llm.quick_start.RunResult` (see the module docstring), its
    paths made portable (:func:`portable`: relative to ``saved_dir``, the data root or the checkout)."""
    from recbole_llm import __version__
    from recbole_llm.identity import KEY_SCHEME, data_fingerprint
    from recbole_llm.model.llm_base import LLMSequentialRecommender

    config, trainer, net, data = result.config, result.trainer, result.model, result.dataset
    history = trainer.history
    valid_key = config["valid_metric"].lower()
    # the *last* epoch at the best score: RecBole's early stopping takes a tie (metrics are rounded to
    # metric_decimal_place) as a new best, saves that epoch's model and tests it
    best_epoch = next((e["epoch"] for e in reversed(history)
                       if e.get("valid", {}).get(valid_key) == result.best_valid_score), None)
    train_times = [e["train_time_s"] for e in history]
    valid_times = [e["valid_time_s"] for e in history if "valid_time_s" in e]
    n_train = len(result.train_data.dataset)
    commit = loaded_commit()  # the code this process imported, whatever the checkout holds now
    now = git_commit()
    if now != commit:
        print(f"[recbole-llm] the checkout moved from {commit[:12]} to {now[:12]} while this run trained; "
              f"the record names {commit[:12]}, the code this process loaded", file=sys.stderr, flush=True)
    record = {
        "model": config["model"],
        "run_key": result.run_key,
        "key_scheme": KEY_SCHEME,  # recbole_llm.identity: the key covers the data (data_fingerprint) and version
        "data_fingerprint": data_fingerprint(config),
        "version": __version__,
        "dataset": config["dataset"],
        "seed": int(config["seed"]),
        "protocol": {
            "split": to_text(config["eval_args"]),
            "valid_metric": config["valid_metric"],
            "epochs_max": int(config["epochs"]),
            "stopping_step": int(config["stopping_step"]),
        },
        "test": None if result.test_result is None else {k: float(v) for k, v in result.test_result.items()},
        "valid": {k: float(v) for k, v in result.best_valid_result.items()},
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "stop_reason": "early_stopping" if trainer.stopped_early else "epoch_cap",
        "resumed": trainer.resumed,  # the earlier processes of an interrupted run: [{"from_epoch", "commit"}]
        # every process that trained the run, this one (which made the record) last: where each began
        "segments": [*trainer.resumed, trainer.segment()],
        "history": history,
        "record_version": RECORD_VERSION,
        "dataset_stats": {
            "users": int(data.user_num) - 1,
            "items": int(data.item_num) - 1,
            "interactions": result.loaded["interactions"],
            "train_samples": int(n_train),
        },
        "cost": {
            "wall_time_s": time.perf_counter() - result.started + trainer.prior_wall_time_s,
            "fit_time_s": result.fit_time_s,
            "train_time_per_epoch_s": sum(train_times) / max(len(train_times), 1),
            "train_samples_per_s": n_train * len(train_times) / max(sum(train_times), 1e-9),
            "valid_time_per_epoch_s": sum(valid_times) / max(len(valid_times), 1),
            "test_time_s": result.test_time_s,
            "peak_rss_mb": result.peak_rss_mb,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
            **cpu_sharing(history, torch.get_num_threads() * (dist.get_world_size() if is_distributed(config) else 1)),
            **trainer.extra_cost,
        },
        "parameters": count_parameters(net),
        "checkpoint": trainer.saved_model_file,
        "config": config_to_dict(config),
        "commit": commit,
        "packages": package_versions(),
        "hardware": hardware(),
        "device": str(config["device"]),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if isinstance(net, LLMSequentialRecommender):
        record["parameters"].update(net.parameter_report())
        record["lm"] = net.lm.report()  # its architecture, size and the exact weights (sha256 by file)
        record["prompt_stats"] = net.prompt_stats(result.test_data._dataset)  # titles per hard prompt
        record["item_text"] = net.item_text_report()  # items without text (missing_text_max_share)
        # the LM's compute dtype (lm_autocast resolved on this device): bf16 and fp32 runs differ in the last bits
        record["lm_compute_dtype"] = str(net.autocast).replace("torch.", "") if net.autocast else "float32"
        # the frozen ID model by its weights: the ID run whose cache entry has this sha256 is the base
        record["id_model"] = net.id_model_report()
    if is_distributed(config):  # how many processes trained it, and the global batch (recbole_llm.distributed)
        record["distributed"] = description(config, result.train_data)
    if getattr(data, "tuning_summary", None) is not None:
        record["data_selection"] = data.tuning_summary
    per_user = getattr(trainer, "per_user", None) if result.test_result is not None else None
    if per_user is not None:
        record["per_user"] = per_user_record(data, per_user, result.loaded["per_user"])
    return portable_record(record, path_roots(config["data_root"], saved_dir))  # values and text (the command)


SHARED_LOAD_MARGIN = 0.75  # runnable threads beyond the run's own before its timings count as shared


def cpu_sharing(history, threads):
    """``{"load_average", "run_threads", "cpu_shared"}`` of a run's epochs (``history``, each with the
    machine's 1-minute ``load_average`` at the end of its training, :func:`recbole_llm.trainer.load_average`):
    the mean load, the run's own torch threads (``threads``, all its processes), and whether the load
    exceeded them by more than :data:`SHARED_LOAD_MARGIN` (another job ran beside it, so its seconds
    are not a timing of this run alone). None where no epoch has a load (another system, an old segment).
    Why by hand: neither RecBole nor torch records what else ran on the machine."""
    loads = [e["load_average"] for e in history if e.get("load_average") is not None]
    if not loads:
        return {"load_average": None, "run_threads": threads, "cpu_shared": None}
    mean = sum(loads) / len(loads)
    return {"load_average": mean, "run_threads": threads, "cpu_shared": mean > threads + SHARED_LOAD_MARGIN}


def count_parameters(model):
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}


def per_user_record(data, per_user, counts):
    """Test ranks per user, keyed by the user's token (stable across models of one dataset).

    ``history_length`` is the user's number of interactions before the test item, uncapped
    (the model itself sees at most ``MAX_ITEM_LIST_LENGTH`` of them): the axis of RA-Rec's
    Fig. 4 long-sequence slice. ``counts`` holds the interactions per internal user id as
    loaded (:func:`recbole_llm.quick_start.loaded_counts`); the test item is the last of them.
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
