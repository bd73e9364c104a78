"""One benchmark run as explicit stages, each handing the next what it made.

RecBole's ``quick_start.run_recbole`` is a straight line of calls; this is the same line with
the step an LLM recommender adds (IDLE-Adapter and RA-Rec consume a frozen, pretrained ID model):

1. the config, built once from the run's :class:`~recbole_llm.spec.RunSpec`
   (:func:`recbole_llm.quick_start.build_config`: YAML defaults, the dataset checked against it),
   and the run's key (:func:`recbole_llm.identity.run_key`);
2. every check that needs no training (:meth:`LLMSequentialRecommender.preflight`: prompts,
   the LM's tokenizer, items without text), before anything trains;
3. the ID model (:func:`ensure_id_model`): reused from the cache or trained now, through this
   same pipeline, so it is exactly the benchmark's row of that model; its checkpoint goes into
   the LLM run's config (``id_model_checkpoint``), and the model only loads it;
4. training and evaluation (:func:`recbole_llm.quick_start.train_and_evaluate`, RecBole's trainer),
   in this process, or with ``nproc`` > 1 in that many processes, RecBole's DDP path
   (:func:`run_processes`, :mod:`recbole_llm.distributed`);
5. the run record (:func:`recbole_llm.record.make_record`), and, for an ID model,
   its checkpoint offered to the ID-model cache (:func:`recbole_llm.id_models.cache_run`); with
   ``nproc`` > 1 in rank 0, which hands it back: one record per run, written by the caller.

The run's resume state is removed by :func:`discard_state` once whoever keeps the record has
written it: a run whose record could not be written (a full disk, a kill) finishes on the next
try from its saved state instead of training again.

The runner (``run_benchmark.py``, any ``--jobs``) and the sweeps call :func:`run`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional

from recbole_llm.errors import UserError
from recbole_llm.id_models import (
    cache_path, cache_run, cached_checkpoint, checkpoint_sha256, id_model_request, is_id_model, weights_sha256,
)
from recbole_llm.identity import run_key
from recbole_llm.model.llm_base import LLMSequentialRecommender
from recbole_llm.paths import path_roots, portable
from recbole_llm.quick_start import build_config, run_dir, train_and_evaluate
from recbole_llm.record import make_record
from recbole_llm.spec import RunSpec
from recbole_llm.utils import get_model


# Overrides of an LLM run that its ID model's run takes too: console and log settings, which
# identity.EXCLUDED keeps out of every key (``--no-progress`` quiets the ID model's epochs as well).
CARRIED_TO_ID_MODEL = ("show_progress", "state")


def id_model_spec(config, spec: RunSpec) -> RunSpec:
    """The :class:`RunSpec` of the frozen ID model of the LLM run ``config`` (made from ``spec``):
    the ID model's YAML, the run's budget, seed and data/protocol settings, and ``id_model_config``
    (:func:`recbole_llm.id_models.id_model_request`). Raises :class:`UserError` for a model that
    is not a registered ID model."""
    name, files, extra = id_model_request(config)
    if not is_id_model(name):
        from recbole_llm.id_models import registered

        raise UserError(f"unsupported ID model '{name}' (id_model); supported: {', '.join(registered())}")
    # what the run was told about its console and log (no part of any key) holds for its ID model too
    quiet = {k: spec.overrides[k] for k in CARRIED_TO_ID_MODEL if k in spec.overrides}
    return RunSpec(name, spec.dataset, config["seed"], files, {**quiet, **extra}, spec.data_path, spec.saved_dir)


def ensure_id_model(config, spec: Optional[RunSpec] = None) -> Path:
    """Path of the frozen ID model's checkpoint for the LLM run ``config`` (made from ``spec``;
    default: the paths the config holds, its data root and the folder above its checkpoints).

    ``id_model_checkpoint`` when the config sets one; else the ID-model cache's entry for the ID
    model's own run (:func:`id_model_spec`), trained now by :func:`run` when missing or damaged.
    """
    if config["id_model_checkpoint"]:
        return Path(config["id_model_checkpoint"])
    if spec is None:
        spec = RunSpec(config["model"], config["dataset"], config["seed"], (), {}, config["data_root"],
                       Path(config["checkpoint_dir"]).parent)
    id_spec = id_model_spec(config, spec)
    id_config = build_config(id_spec)
    path = cached_checkpoint(id_config, spec.saved_dir)
    log = logging.getLogger(__name__)
    if path is not None:
        log.info("reusing ID model %s", path)
        return path
    path = cache_path(id_config, spec.saved_dir)
    log.info("training ID model %s on %s (cache miss: %s)", id_spec.model_name, spec.dataset, path)
    record = run(id_spec, config=id_config)
    discard_state(spec.saved_dir, record)  # the cache holds its weights; nobody stores this record
    if not path.is_file():
        raise UserError(f"training ID model {id_spec.model_name} did not produce {path}")
    return path


def run(spec: RunSpec, *, config=None, callback_fn: Optional[Callable] = None, evaluate_test: bool = True,
        preflight: bool = True) -> dict:
    """Train ``spec``'s model on its dataset through every stage; return the run record.

    ``config``: the Config of ``spec`` when the caller has built it already (the runner builds each
    run's config once, for its checks and its key); else it is built here. ``callback_fn(epoch_idx,
    valid_score)`` is passed to RecBole's ``fit`` (sweeps report there); ``evaluate_test=False``
    skips the test split (a sweep selects on validation only; the record's ``test`` is then
    ``None``). ``preflight=False`` skips stage 2, for a caller that has just made those checks
    itself. An interrupted run of the same key continues from its last validated epoch
    (``resume_training``); its state stays until :func:`discard_state`.
    """
    config = config if config is not None else build_config(spec)
    key = run_key(config)  # before the ID-model path is added: what the runner looks records up by
    model_class = spec.model if isinstance(spec.model, type) else get_model(config["model"])
    if issubclass(model_class, LLMSequentialRecommender):
        if preflight:
            model_class.preflight(config)  # every check that needs no training, before the ID model trains
        config["id_model_checkpoint"] = str(ensure_id_model(config, spec))
    if int(spec.overrides.get("nproc") or 1) > 1:  # --nproc (no YAML sets it: RecBole's key of its DDP path)
        if callback_fn is not None:
            raise UserError("a run over several processes (nproc) reports to no callback: a sweep trains each "
                            "trial in one process")
        if config["id_model_checkpoint"]:  # the processes build their configs from the spec: the base found here
            spec = spec.with_overrides(id_model_checkpoint=config["id_model_checkpoint"])
        return run_processes(spec, config, key, evaluate_test)
    result = train_and_evaluate(config, spec.saved_dir, key, callback_fn, evaluate_test, model_class)
    return finish_record(result, spec)


def finish_record(result, spec: RunSpec) -> dict:
    """Stage 5: the record of a finished :class:`~recbole_llm.quick_start.RunResult` of ``spec``
    and, for an ID model, its checkpoint offered to the ID-model cache."""
    config = result.config
    record = make_record(result, spec.saved_dir)
    cached = cache_run(record, config, spec.saved_dir)  # an ID model's run becomes the cached base of the LLM rows
    if cached is not None:  # what an LLM record names its base by (its record's id_model.weights_sha256)
        record["id_cache"] = {"file": portable(str(cached), path_roots(config["data_root"], spec.saved_dir)),
                              "sha256": checkpoint_sha256(cached), "weights_sha256": weights_sha256(cached)}
    return record


def run_processes(spec: RunSpec, config, key: str, evaluate_test: bool = True) -> dict:
    """Stages 4 and 5 of ``spec`` (``config``: its Config) over its ``nproc`` processes, started as RecBole's
    ``run_recboles`` starts them (``torch.multiprocessing``, spawn; ``local_rank``, ``world_size``,
    ``nproc``, ``ip``, ``port``, ``offset`` in each one's config, :mod:`recbole_llm.distributed`);
    returns rank 0's record, the one record of the run, for the caller to store as any other.

    Each process gets this process's torch threads divided among them. A :class:`UserError` in any
    process is raised here with its message, and the others are ended (RecBole's path would leave
    them waiting on the group); any other end of a process (an exception, an exit code, a signal: a
    kill, the kernel's out-of-memory killer) is a :class:`UserError` too, naming the process, how it
    ended and the run's log (:func:`_ended`), so a failed run is one line here as in one process.
    The record comes back through a queue read while the processes run
    (a record larger than a pipe's buffer would otherwise block rank 0 and the join forever).
    ``record['distributed']['launch_wall_time_s']``: the whole launch, the processes' start included.
    """
    import time

    import torch
    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import ProcessException

    from recbole_llm.distributed import backend, free_port

    nproc = int(spec.overrides["nproc"])
    gpu_id = str(config["gpu_id"])
    gpu_id = "" if gpu_id == "None" else gpu_id  # RecBole's str() of gpu_id ~: no GPU, as in one process
    if backend(gpu_id) == "nccl" and len(gpu_id.split(",")) < nproc:  # the runner says it sooner (check_nproc)
        raise UserError(f"nproc={nproc} runs one process per GPU, and gpu_id={gpu_id} names fewer")
    spec = spec.with_overrides(nproc=nproc, world_size=nproc, ip="127.0.0.1", port=free_port(), offset=0,
                               gpu_id=gpu_id)
    threads = max(1, torch.get_num_threads() // nproc)
    queue = mp.get_context("spawn").SimpleQueue()
    started, since = time.perf_counter(), time.time()
    what = f"the {nproc} processes of {config['model']} seed {spec.seed}"
    processes = mp.start_processes(_process_main, args=(spec, key, evaluate_test, threads, queue), nprocs=nproc,
                                   join=False, start_method="spawn")
    outcome = None
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")
    spawn_level = spawn_log.level
    spawn_log.setLevel(logging.ERROR)  # its "Terminating process ..." lines: the error says the others were ended
    try:
        while not processes.join(timeout=0.5):
            if outcome is None and not queue.empty():
                outcome = queue.get()
    except ProcessException as err:
        outcome = outcome or (None if queue.empty() else queue.get())
        if outcome is not None and outcome[0] == "error":
            raise UserError(outcome[1]) from None
        log = _run_log(spec.saved_dir, config, since) or _run_log_path(spec.saved_dir, config)
        raise UserError(_ended(err, what, log)) from None
    finally:
        spawn_log.setLevel(spawn_level)
        for process in processes.processes:  # after an error or an interrupt: none is left running
            if process.is_alive():
                process.terminate()
                process.join()
    outcome = outcome or (None if queue.empty() else queue.get())
    if outcome is None or outcome[0] != "record":
        log = _run_log(spec.saved_dir, config, since)
        raise UserError(f"{what} ended without a record (rank 0 made none){f'; the run log: {log}' if log else ''}")
    record = outcome[1]
    record["distributed"]["launch_wall_time_s"] = time.perf_counter() - started
    return record


def _run_log(saved_dir, config, since):
    """The log file rank 0 of a run started at ``since`` (``time.time()``) opened, or None: RecBole
    names it ``<saved>/log/<model>/<model>-<dataset>-<time>-<hash>.log`` in that process, so it is
    found here as the newest such file written since (a process killed by a signal cannot say it)."""
    folder = Path(saved_dir) / "log" / str(config["model"])
    files = [p for p in folder.glob(f"{config['model']}-{config['dataset']}-*.log") if p.stat().st_mtime >= since]
    return max(files, key=lambda p: p.stat().st_mtime, default=None)


def _run_log_path(saved_dir, config):
    """Where a run log of ``config`` is written when rank 0 opened none: RecBole's name, ``processes``
    for its hash."""
    import time

    folder = Path(saved_dir) / "log" / str(config["model"])
    return folder / f"{config['model']}-{config['dataset']}-{time.strftime('%b-%d-%Y_%H-%M-%S')}-processes.log"


def _ended(err, what, log) -> str:
    """The one line for a process of :func:`run_processes` that ended with ``err`` (torch's
    ``ProcessException``, raised by the join; ``what``: the run's processes, for the message; ``log``:
    the run's log file, or where to write one).

    An exception is named by its last line; its traceback, which the process sent to the parent and
    did not print, is appended to the run's log rather than printed, so the console keeps one line
    and the log keeps what a bug report needs."""
    from torch.multiprocessing.spawn import ProcessExitedException

    rank = f"rank {err.error_index} of {what}"  # offset 0: the process's index is its rank
    if isinstance(err, ProcessExitedException) and err.signal_name:
        how = f"was ended by signal {err.signal_name}" + (
            " (killed: from outside, or by the kernel when memory ran out)" if err.signal_name == "SIGKILL" else "")
    elif isinstance(err, ProcessExitedException):
        how = f"exited with code {err.exit_code}"
    else:
        lines = [line for line in str(err.msg).strip().splitlines() if line.strip()]
        how = f"raised {lines[-1].strip() if lines else type(err).__name__}"
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"\n{rank} {how}:\n{err.msg}\n")
    where = f"; the run log: {log}" if Path(log).is_file() else " before rank 0 opened the run log"
    return f"{rank} {how}{where}; the others were ended"


def _process_main(rank, spec: RunSpec, key: str, evaluate_test: bool, threads: int, queue) -> None:
    """One process of :func:`run_processes` (``rank``: its ``local_rank``): its device set before
    CUDA starts, its config (whose ``Config`` joins the process group), training and evaluation,
    and on rank 0 the record, put on ``queue`` as ``("record", record)``; a :class:`UserError` is
    put as ``("error", message)`` and raised, which ends the process and, from the parent, the others."""
    import os

    import torch

    from recbole_llm.distributed import is_rank0, leave_group

    os.environ["CUDA_VISIBLE_DEVICES"] = spec.overrides["gpu_id"]  # as RecBole's Config, but before CUDA starts
    torch.set_num_threads(threads)
    try:
        config = build_config(spec.with_overrides(local_rank=rank))
        model_class = spec.model if isinstance(spec.model, type) else get_model(config["model"])
        result = train_and_evaluate(config, spec.saved_dir, key, None, evaluate_test, model_class)
        if is_rank0(config):
            queue.put(("record", finish_record(result, spec)))
    except UserError as err:
        queue.put(("error", str(err)))
        raise
    finally:
        leave_group()


def state_file(saved_dir, record) -> Path:
    """The resume state of the run that made ``record``."""
    folder = Path(saved_dir) / "runs" / record["dataset"] / f"{record['model']}-seed{record['seed']}-{record['run_key']}"
    return folder / "state.pth"


def discard_state(saved_dir, record) -> None:
    """Remove the resume state of ``record``'s run: call it once the record is safely written (a
    re-run is then skipped by the runner, or with ``--rerun`` trains from scratch)."""
    path = state_file(saved_dir, record)
    if path.is_file():
        path.unlink()


__all__ = ["RunSpec", "discard_state", "ensure_id_model", "finish_record", "id_model_spec", "run", "run_dir",
           "run_processes", "state_file"]
