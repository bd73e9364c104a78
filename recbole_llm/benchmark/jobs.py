"""Several runs of one benchmark command at once (``run_benchmark.py --jobs=N``).

One LLM run uses a fraction of a large GPU (six at once kept an H200 busy, each at nearly its
solo speed), and on a many-core CPU one run rarely scales to every core. ``--jobs=N`` runs the
command's (model, seed) pairs as up to N worker processes, each started fresh (``spawn``, one
run per process, so its peak memory and logging are its own) with
``torch.set_num_threads(threads)``: ``--threads`` or ``cores // N``. Two torch processes that
each use every core are far slower than twice as slow (threads fight over cores), which is
why the count is always set. On a GPU the N runs share it.

Order: ID models first, as in the sequential runner, and an LLM run starts only when the ID
model it reuses (its ``id_model`` under the same seed) has finished, so it loads that run's
checkpoint instead of training a second copy; LLM runs that need an ID model the command
does not train wait for the first of them, which trains and caches it. A run's console output
goes to ``<saved>/jobs/<label>-seed<seed>.log``; the runner prints the progress lines and
writes the records. A failed run is reported with its log, the runs waiting for it are not
started, and the others go on.
"""

import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path


def threads_per_job(n_jobs, threads=None):
    """``threads`` if given, else this machine's cores split evenly over ``n_jobs`` (at least 1)."""
    if threads:
        return int(threads)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, n_jobs))


def dependencies(jobs, id_model_of):
    """For each job ``(model, seed)``, the index of the job it waits for, or None.

    ``id_model_of(model)`` names the ID model an LLM model reuses (None for an ID model or a
    baseline). The provider of ``(id_model, seed)`` is that ID model's own job when the command
    has one, else the first LLM job asking for it (which trains it; the others then reuse it).
    """
    index = {job: i for i, job in enumerate(jobs)}
    first_asker = {}
    out = []
    for i, (model, seed) in enumerate(jobs):
        wanted = id_model_of(model)
        if wanted is None:
            out.append(None)
        elif (wanted, seed) in index:
            out.append(index[(wanted, seed)])
        elif (wanted, seed) in first_asker:
            out.append(first_asker[(wanted, seed)])
        else:
            first_asker[(wanted, seed)] = i
            out.append(None)
    return out


def log_file(saved_dir, label, seed):
    """Where a worker's console output goes: ``<saved>/jobs/<label>-seed<seed>.log``."""
    import re

    return Path(saved_dir) / "jobs" / f"{re.sub(r'[^A-Za-z0-9_.+=-]+', '_', label)}-seed{seed}.log"


def _one_run(model, dataset, seed, config_files, overrides, data_path, saved_dir, show_progress, threads, log_path):
    """Worker: one run with its own thread count and log file; returns the run record."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the process's life)
    sys.stdout.flush(), sys.stderr.flush()
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    import torch

    torch.set_num_threads(threads)
    from recbole_llm.pipeline import run

    return run(model, dataset, seed, config_files, overrides, data_path, saved_dir, show_progress=show_progress,
               preflight=False)  # the runner checked every model before the first job


def run_parallel(todo, total, args, config_files, overrides, output, epochs_max=None):
    """Run ``todo`` (``[(number, model, seed)]``, ID models first) for ``run_benchmark.py``'s
    ``args`` on ``args.jobs`` processes; write each record and print the runner's progress lines
    as runs end (the ETA from :func:`earlier_run_times` under ``epochs_max``). Raises
    :class:`UserError` naming the failed runs once the others are done."""
    from recbole_llm.benchmark.records import earlier_run_times, eta_s, store_run
    from recbole_llm.errors import UserError
    from recbole_llm.model.llm_base import LLMSequentialRecommender
    from recbole_llm.quick_start import build_config
    from recbole_llm.utils import get_model

    jobs = [(model, seed) for _, model, seed in todo]
    numbers = [number for number, _, _ in todo]
    n_jobs = args.jobs
    threads = threads_per_job(n_jobs, args.threads)
    show_progress = False if args.no_progress else None

    def label_of(model):
        return args.label or model

    def id_model_of(model):
        if not issubclass(get_model(model), LLMSequentialRecommender):  # ID models and baselines reuse nothing
            return None
        config = build_config(model, args.dataset, jobs[0][1], config_files, overrides, args.data_path, args.saved_dir)
        return None if config["id_model_checkpoint"] else config["id_model"]

    waits_for = dependencies(jobs, id_model_of)
    pending = list(range(len(jobs)))
    done, failed, failures = set(), set(), []
    running = {}  # future -> (job index, start time)
    run_times = {}  # label -> seconds of each finished run (for the ETA)
    earlier = earlier_run_times(output, args.dataset, args.budget, epochs_max)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        while pending or running:
            for i in list(pending):
                if len(running) >= n_jobs:
                    break
                model, seed = jobs[i]
                dep = waits_for[i]
                if dep is not None and dep in failed:
                    pending.remove(i)
                    failed.add(i)
                    failures.append(f"{label_of(model)} seed {seed}: not started, the {jobs[dep][0]} run it reuses failed")
                    print(f"[recbole-llm] run {numbers[i]}/{total}: {label_of(model)} seed {seed} not started: "
                          f"the {jobs[dep][0]} run it reuses failed", flush=True)
                    continue
                if dep is not None and dep not in done:
                    continue
                pending.remove(i)
                log_path = log_file(args.saved_dir, label_of(model), seed)
                future = pool.submit(_one_run, model, args.dataset, seed, config_files, overrides, args.data_path,
                                     args.saved_dir, show_progress, threads, str(log_path))
                running[future] = (i, time.perf_counter())
                print(f"[recbole-llm] run {numbers[i]}/{total}: {label_of(model)} seed {seed} "
                      f"(started: {threads} thread(s), log {log_path})", flush=True)
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                i, run_started = running.pop(future)
                model, seed = jobs[i]
                try:
                    record = future.result()
                except Exception as err:  # noqa: BLE001 (a worker's error of any kind ends that run only)
                    failed.add(i)
                    message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                    failures.append(f"{label_of(model)} seed {seed}: {message}")
                    print(f"[recbole-llm] failed {label_of(model)} seed {seed}: {message} "
                          f"(log {log_file(args.saved_dir, label_of(model), seed)})", flush=True)
                    continue
                done.add(i)
                run_times.setdefault(label_of(model), []).append(time.perf_counter() - run_started)
                left = [label_of(jobs[j][0]) for j in [*pending, *(k for k, _ in running.values())]]
                store_run(output, record, label_of(model), args.budget, time.perf_counter() - started,
                          eta_s(run_times, left, parallel=n_jobs, earlier=earlier))
    if failures:
        raise UserError(f"{len(failures)} of {len(jobs)} run(s) failed ({'; '.join(failures)}); "
                        "the others' records are written")
