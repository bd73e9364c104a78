"""One trial: the benchmark's own run (:func:`recbole_llm.pipeline.run`), reporting every
validation to Tune and never touching the test split.

RecBole's ``run_hyper.py --tool Ray`` reports once, after training, and reports *test*
metrics; here ``fit``'s ``callback_fn`` reports each validation as it happens, so ASHA can stop
a trial early, and ``evaluate_test=False`` keeps the test split out of the selection.
"""

import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

TRIAL_RECORD = "trial_record.json"  # written when a trial's run ends on its own (not stopped by ASHA)


def metric_key(valid_metric):
    """Result key of the running best validation score, e.g. ``valid_ndcg_10`` (no ``@``: Tune's
    TensorBoard logger renames such keys, with a log line per trial and result)."""
    return "valid_" + valid_metric.lower().replace("@", "_")


@dataclass(frozen=True)
class TrialPlan:
    """What every trial of one sweep shares (passed to Tune once, with ``tune.with_parameters``)."""

    spec: Any  # the sweep's base RunSpec: a trial runs it with its swept values and its own folder
    link_id_models: bool  # an LLM model: <trial>/id_models links to the sweep's ID-model cache
    cpus: float  # the CPUs a trial reserved: its torch threads
    valid_metric: str  # RecBole's valid_metric, e.g. NDCG@10
    bigger: bool  # whether a bigger validation score is better
    # {run_key: summary} of the stored runs of the sweep's model, seed and budget
    # (recbole_llm.tune.reuse.finished_runs): a trial whose run key is there replays that run
    finished: Mapping = field(default_factory=dict)
    # the sweep's results folder for its trials' records (recbole_llm.tune.reuse.keep_trial_record):
    # a trial that trains to its end keeps its record there, under the sweep's budget; None keeps none
    keep_dir: Any = None
    budget: Any = None


def train_trial(config, *, plan: TrialPlan):
    """Ray Tune function trainable; ``config`` holds the swept keys only, ``plan`` the sweep's
    :class:`TrialPlan` (the trial runs ``plan.spec`` with the swept values and its own folder).

    A trial whose run key is in ``plan.finished`` is not trained: the stored run's validations are
    reported instead (:func:`recbole_llm.tune.reuse.replay`). A trial that trains to its end keeps
    its record in ``plan.keep_dir`` (:func:`recbole_llm.tune.reuse.keep_trial_record`).

    The trial's RecBole log and checkpoints live in the trial folder (its ``saved_dir``): parallel
    trials would otherwise share checkpoint names, which RecBole stamps to the second. Checkpoints
    are deleted when the trial ends: the test split is evaluated by re-running the best
    configuration (:func:`recbole_llm.tune.sweep.run_best`), so no trial's weights are read again.
    ``<trial>/id_models`` links to the sweep's ID-model cache: an LLM model's trials find there
    the ID model the sweep trained (or found) before them, instead of training one each.
    """
    import torch
    from ray.air import session

    from recbole_llm.pipeline import run

    # A trial uses the CPUs it reserved (and the best configuration re-runs with as many threads,
    # so that its scores can be compared digit for digit).
    spec, valid_metric, bigger = plan.spec, plan.valid_metric, plan.bigger
    torch.set_num_threads(max(1, int(plan.cpus)))
    trial_dir = Path(session.get_trial_dir())
    if plan.link_id_models:
        shared = Path(spec.saved_dir) / "id_models"
        shared.mkdir(parents=True, exist_ok=True)
        link = trial_dir / "id_models"
        if not link.is_symlink():
            os.symlink(shared, link, target_is_directory=True)

    import ray

    key = metric_key(valid_metric)
    best = -math.inf if bigger else math.inf
    # Which Ray node ran the trial (Tune's own node_ip and hostname cannot tell apart two nodes
    # of one machine); the trials table shows it.
    node_id = ray.get_runtime_context().get_node_id()

    def report(epoch_idx, valid_score):
        nonlocal best
        score = float(valid_score)
        best = max(best, score) if bigger else min(best, score)
        # Blocks until Tune has handled the result; raises SystemExit in here when ASHA stops the trial.
        session.report({key: best, f"{key}_epoch": score, "epoch": epoch_idx + 1, "node_id": node_id})

    # RecBole's Config sets CUDA_VISIBLE_DEVICES to its gpu_id ("0" by default), which would put every
    # trial on GPU 0, those that reserved none included; the trial's gpu_id is what Ray assigned it.
    trial = spec.replace(saved_dir=trial_dir).with_overrides(
        **config, gpu_id=",".join(str(i) for i in ray.get_gpu_ids()), show_progress=False)
    try:
        done = _finished(trial, plan.finished)
        if done is not None:
            from recbole_llm.tune.reuse import replay

            print(f"[recbole-llm] trial {config}: the run of key {done['run_key']} seed {done['seed']} is stored "
                  f"({done['record']}): its validations are reported, nothing is trained", flush=True)
            record = replay(done, report)
        else:
            record = run(trial, callback_fn=report, evaluate_test=False)
            record.pop("checkpoint", None)
            if plan.keep_dir is not None:  # kept beside the sweep's results: another machine replays it
                from recbole_llm.paths import path_roots
                from recbole_llm.tune.reuse import keep_trial_record

                try:
                    keep_trial_record(plan.keep_dir, record, plan.budget, config,
                                      path_roots(spec.data_path, spec.saved_dir))
                except OSError as err:  # e.g. a Ray node without the results folder: the trial still counts
                    print(f"[recbole-llm] trial {config}: its record was not kept in {plan.keep_dir} ({err}); "
                          "another machine will train it again", flush=True)
        from recbole_llm.fsutil import atomic_write_text

        atomic_write_text(trial_dir / TRIAL_RECORD, json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
    finally:
        shutil.rmtree(trial_dir / "checkpoints", ignore_errors=True)
        shutil.rmtree(trial_dir / "runs", ignore_errors=True)  # best.pth and resume state of the trial's run
        local_cache = trial_dir / "id_models"
        if local_cache.is_dir() and not local_cache.is_symlink():
            shutil.rmtree(local_cache, ignore_errors=True)  # a sweep of an ID model registers each trial there


def _finished(trial, finished):
    """The summary in ``finished`` of the stored run ``trial`` (a RunSpec) would repeat, or None.
    The run key is computed as the runner computes it (:func:`recbole_llm.pipeline.run`: on the
    built config, before the ID model's checkpoint is added)."""
    if not finished:
        return None
    from recbole_llm.identity import run_key
    from recbole_llm.quick_start import build_config

    return finished.get(run_key(build_config(trial)))
