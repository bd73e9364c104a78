"""The runner's one run loop: the runs of a benchmark command, one at a time (``--jobs=1``, in this
process) or several at once (``run_benchmark.py --jobs=N``, worker processes).

One LLM run uses a fraction of a large GPU (six at once kept an H200 busy, each at nearly its
solo speed), and on a many-core CPU one run rarely scales to every core. ``--jobs=N`` runs the
command's (model, seed) pairs as up to N worker processes, each started fresh (``spawn``, one
run per process, so its peak memory and logging are its own) with
``torch.set_num_threads(threads)``: ``--threads`` or ``cores // N``. Two torch processes that
each use every core are far slower than twice as slow (threads fight over cores), which is
why the count is always set. On one GPU the N runs share it; on a machine with several, each
worker is given one (:func:`pick_gpu`: the visible GPU running the fewest of the command's runs,
the lowest first, so round-robin while runs take alike), as ``CUDA_VISIBLE_DEVICES`` in the worker
and as the run's ``gpu_id`` (RecBole's ``Config`` sets ``CUDA_VISIBLE_DEVICES`` to ``gpu_id``
itself, so the variable alone would be undone); a ``--gpu_id`` given on the command line wins.
The GPUs are read when the command starts (:func:`visible_gpus`), before any ``Config`` has
narrowed ``CUDA_VISIBLE_DEVICES`` to its ``gpu_id``.

Order: ID models first, as in the sequential runner, and an LLM run starts only when the ID
model it reuses (its ``id_model`` under the same seed) has finished, so it loads that run's
checkpoint instead of training a second copy; LLM runs that need an ID model the command
does not train wait for the first of them, which trains and caches it. A run's console output
goes to ``<saved>/jobs/<label>-seed<seed>.log``; the runner prints the progress lines and
writes the records. A failed run is reported with its log, the runs waiting for it are not
started, and the others go on.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Optional


def available_cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_job(n_jobs, threads=None):
    """``threads`` if given, else this machine's cores split evenly over ``n_jobs`` (at least 1)."""
    if threads:
        return int(threads)
    return max(1, available_cores() // max(1, n_jobs))


def visible_gpus(environ, count):
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them: its entries when it is
    set (indices, ``GPU-<uuid>`` or MIG names, passed on as they are; empty: none), else ``0`` to
    ``count - 1`` (``torch.cuda.device_count()``)."""
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is not None:
        return tuple(v.strip() for v in value.split(",") if v.strip() and v.strip() != "-1")
    return tuple(str(i) for i in range(int(count or 0)))


def pick_gpu(gpus, busy):
    """The GPU of ``gpus`` for the next worker: the one running the fewest runs (``busy``: GPU ->
    runs on it now), the first of ``gpus`` on a tie; None without GPUs."""
    if not gpus:
        return None
    return min(gpus, key=lambda g: (busy.get(g, 0), gpus.index(g)))


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


@dataclass(frozen=True)
class IdBase:
    """The frozen ID model of one LLM run: its own run (``spec``, labelled for its own row; its
    ``config`` and run ``key``, those the pipeline's ID-model step uses,
    :func:`recbole_llm.pipeline.id_model_spec`) and its stored record under any row label, or None."""

    spec: Any
    config: Any
    key: str
    record: Optional[dict]


def id_bases(specs, configs, records, budget, llm):
    """``{(LLM model, seed): IdBase}`` for each LLM run of ``specs`` that trains or reuses its ID
    model (not one given ``id_model_checkpoint``). ``configs``: ``(model, seed) -> Config`` of
    ``specs``; ``records``: the dataset's stored records (:func:`~recbole_llm.benchmark.records.load_records`);
    ``llm``: ``{model: is an LLM recommender}``. Each base's Config is built once however many LLM
    models share it. A base trained off its defaults (``id_model_config``) is its own row,
    ``ComiRec (learning_rate=0.003)``, not a seed of the default ``ComiRec`` row."""
    from recbole_llm.benchmark.labels import id_base_changes, label_from
    from recbole_llm.benchmark.records import stored_record
    from recbole_llm.identity import run_key
    from recbole_llm.pipeline import id_model_spec
    from recbole_llm.quick_start import build_config

    out, built = {}, {}
    for spec in specs:
        config = configs[(spec.model_name, spec.seed)]
        if not llm[spec.model_name] or config["id_model_checkpoint"]:
            continue  # an ID model or a baseline; or an LLM run given its ID model's checkpoint
        id_spec = id_model_spec(config, spec)
        changes = id_base_changes(config)
        if changes:
            id_spec = id_spec.replace(label=label_from(id_spec.model_name, changes))
        same = (id_spec.model_name, id_spec.seed, id_spec.config_files, repr(sorted(id_spec.overrides.items())))
        if same not in built:
            id_config = build_config(id_spec)
            key = run_key(id_config)
            record = stored_record(records, None, id_spec.seed, key, budget)
            built[same] = IdBase(id_spec, id_config, key, record)
        out[(spec.model_name, spec.seed)] = built[same]
    return out


def base_row_labels(bases):
    """``{LLM model: the row label its ID bases are stored under}`` where every seed's base has a
    record and they share one label (``ComiRec-tuned``), else None for that model: one name for the
    base in all of the LLM row's seeds (:func:`recbole_llm.benchmark.labels.default_label`)."""
    from recbole_llm.benchmark.records import stored_label

    found = {}
    for (model, _), base in bases.items():
        found.setdefault(model, set()).add(None if base.record is None else stored_label(base.record))
    return {model: labels.pop() if len(labels) == 1 else None for model, labels in found.items()}


def id_base_runs(specs, configs, bases):
    """The frozen ID models of ``bases`` (:func:`id_bases`) the command does not train itself, as
    ``[(IdBase, LLM model name)]``, one per run key. Each becomes a run of its own, before the LLM
    runs (:func:`dependencies` makes them wait for it), so that its record puts it in the table
    under its own row, the LLM row's "vs own base" beside it; the pipeline's ID-model step then
    reuses it. A base stored under any label (same run key and budget) is not run again (said); one
    cached without a record is trained again for its record, under its key. The command's own runs
    are matched by run key (``configs``: ``(model, seed) -> Config`` of ``specs``): a planned
    ``ComiRec`` at its defaults is not the base of an LLM run given ``id_model_config``."""
    from recbole_llm.identity import run_key

    planned = {run_key(configs[(spec.model_name, spec.seed)]) for spec in specs}
    out = []
    for (model, _), base in bases.items():
        if base.key in planned:
            continue  # the command's own run of that model is the base (dependencies)
        planned.add(base.key)
        if base.record is not None:
            print(f"[recbole-llm] the ID base of {model}, {base.spec.row} seed {base.spec.seed}, has its record "
                  f"{base.record['_path']} (run_key {base.key}): its row is in the table", flush=True)
            continue
        out.append((base, model))
    return out


def log_file(saved_dir, label, seed):
    """Where a worker's console output goes: ``<saved>/jobs/<label>-seed<seed>.log``."""
    import re

    return Path(saved_dir) / "jobs" / f"{re.sub(r'[^A-Za-z0-9_.+=-]+', '_', label)}-seed{seed}.log"


def _one_run(spec, threads, log_path, gpu=None):
    """Worker process: one run of ``spec`` with its own thread count, log file and GPU (``gpu``: as
    ``CUDA_VISIBLE_DEVICES`` names it; set before torch starts CUDA); returns the record."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the process's life)
    sys.stdout.flush(), sys.stderr.flush()
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    import torch

    torch.set_num_threads(threads)
    from recbole_llm.pipeline import run

    return run(spec, preflight=False)  # the runner checked every model before the first job


class _InProcess:
    """``--jobs=1``: each run in this process, with the config the runner built for its checks
    (the same interface as the process pool, so there is one loop)."""

    def __init__(self, configs):
        self.configs = configs

    def submit(self, spec):
        from recbole_llm.pipeline import run

        from recbole_llm.errors import UserError

        future = Future()
        try:
            future.set_result(run(spec, config=self.configs.pop((spec.model_name, spec.seed), None), preflight=False))
        except UserError as err:  # handed to the loop like a worker's error; anything else is a bug: raised
            future.set_exception(err)
        return future


@dataclass
class RunnerOptions:
    """How the runner runs a command's runs: ``jobs`` at once with ``threads`` each (default
    cores // jobs when jobs > 1), records to ``output`` under ``budget``; ``total``: the command's
    run count (for the ``run i/N`` lines); ``epochs_max``: label -> epoch cap (the ETA)."""

    jobs: int = 1
    threads: Optional[int] = None
    output: Path = Path("results")
    budget: str = "full"
    total: int = 0
    epochs_max: dict = field(default_factory=dict)
    gpus: tuple = ()  # the visible GPUs (visible_gpus), one per worker process; () shares whatever there is


class _Queue:
    """The runs of one ``--jobs`` command and their states: pending, running, done or failed.

    ``jobs``: ``[(model, seed)]``; ``waits_for``: from :func:`dependencies`; ``label_of(model)``:
    the row label. Prints the runner's progress lines; :meth:`finish` writes each record.
    """

    def __init__(self, jobs, numbers, total, waits_for, label_of, earlier):
        self.jobs, self.numbers, self.total, self.waits_for, self.label_of = jobs, numbers, total, waits_for, label_of
        self.pending = list(range(len(jobs)))
        self.done, self.failed, self.failures, self.errors = set(), set(), [], []
        self.running = {}  # future -> (job index, start time)
        self.run_times = {}  # label -> seconds of each finished run (for the ETA)
        self.earlier = earlier
        self.started = time.perf_counter()

    def _name(self, i):
        model, seed = self.jobs[i]
        return f"{self.label_of(model)} seed {seed}"

    def start_ready(self, n_jobs, submit):
        """Start pending runs whose ID model is done, up to ``n_jobs`` running; ``submit(model, seed)``
        returns ``(future, log_path, resources)``, the last said in the start line ("1 thread(s), GPU 0").
        A run whose ID model failed is failed without starting."""
        for i in list(self.pending):
            if len(self.running) >= n_jobs:
                break
            dep = self.waits_for[i]
            if dep is not None and dep in self.failed:
                self.pending.remove(i)
                self.failed.add(i)
                self.failures.append(f"{self._name(i)}: not started, the {self.jobs[dep][0]} run it reuses failed")
                print(f"[recbole-llm] run {self.numbers[i]}/{self.total}: {self._name(i)} not started: "
                      f"the {self.jobs[dep][0]} run it reuses failed", flush=True)
                continue
            if dep is not None and dep not in self.done:
                continue
            self.pending.remove(i)
            started = time.perf_counter()
            future, log_path, resources = submit(*self.jobs[i])
            self.running[future] = (i, started)
            if log_path is not None:  # a worker process (--jobs > 1); in-process runs print their own line
                print(f"[recbole-llm] run {self.numbers[i]}/{self.total}: {self._name(i)} "
                      f"(started: {resources}, log {log_path})", flush=True)

    def finish(self, future, n_jobs, log_path_of, store):
        """Take a finished ``future``: store its record (``store(record=, label=, elapsed=, eta=)``, the
        ETA of the runs left over ``n_jobs`` processes) or report its error."""
        from recbole_llm.benchmark.records import eta_s

        i, run_started = self.running.pop(future)
        model, seed = self.jobs[i]
        try:
            record = future.result()
        except Exception as err:  # noqa: BLE001 (a worker's error of any kind ends that run only)
            self.failed.add(i)
            self.errors.append(err)
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            self.failures.append(f"{self._name(i)}: {message}")
            log_path = log_path_of(model, seed)
            where = f" (log {log_path})" if log_path is not None else ""
            print(f"[recbole-llm] failed {self._name(i)}: {message}{where}", flush=True)
            return
        self.done.add(i)
        label = self.label_of(model)
        self.run_times.setdefault(label, []).append(time.perf_counter() - run_started)
        left = [self.label_of(self.jobs[j][0]) for j in [*self.pending, *(k for k, _ in self.running.values())]]
        store(record=record, label=label, elapsed=time.perf_counter() - self.started,
              eta=eta_s(self.run_times, left, parallel=n_jobs, earlier=self.earlier))


def run_jobs(plan, options: RunnerOptions, configs=None):
    """Run ``plan`` (``[(number, RunSpec)]``, ID models first); write each record and print the
    runner's progress lines as runs end (the ETA from :func:`earlier_run_times`). ``configs``:
    ``(model, seed) -> Config`` the runner built for its checks, reused by in-process runs and
    for the dependencies. Each record is written before its run's resume state is removed. Raises
    :class:`UserError` naming the failed runs once the others are done."""
    from recbole_llm.benchmark.records import earlier_run_times, store_run
    from recbole_llm.errors import UserError
    from recbole_llm.pipeline import discard_state

    configs = dict(configs or {})
    specs = [spec for _, spec in plan]
    jobs = [(spec.model_name, spec.seed) for spec in specs]
    label_by_model = {spec.model_name: spec.row for spec in specs}
    n_jobs = options.jobs
    threads = threads_per_job(n_jobs, options.threads) if n_jobs > 1 else None
    saved_dir = specs[0].saved_dir if specs else Path("saved")

    def label_of(model):
        return label_by_model[model]

    def id_model_of(model):
        config = next((c for (m, _), c in configs.items() if m == model), None)
        if config is None or "id_model" not in config or config["id_model_checkpoint"]:
            return None  # ID models and baselines reuse nothing
        from recbole_llm.model.llm_base import LLMSequentialRecommender
        from recbole_llm.utils import get_model

        return config["id_model"] if issubclass(get_model(model), LLMSequentialRecommender) else None

    def log_path_of(model, seed):
        return log_file(saved_dir, label_of(model), seed)

    def store(record, label, elapsed, eta):
        store_run(options.output, record, label, options.budget, elapsed, eta)
        discard_state(saved_dir, record)  # only now: a run whose record failed to write resumes, finished

    queue = _Queue(jobs, [number for number, _ in plan], options.total, dependencies(jobs, id_model_of), label_of,
                   earlier_run_times(options.output, specs[0].dataset if specs else "", options.budget,
                                     options.epochs_max))
    spec_of = {(spec.model_name, spec.seed): spec for spec in specs}
    if n_jobs == 1:
        executor = _InProcess(configs)

        def submit(model, seed):
            print(f"[recbole-llm] run {queue.numbers[jobs.index((model, seed))]}/{queue.total}: "
                  f"{label_of(model)} seed {seed}", flush=True)
            return executor.submit(spec_of[(model, seed)]), None, None

        _drain(queue, 1, submit, lambda model, seed: None, store)
    else:
        gpus = tuple(options.gpus)
        busy, gpu_of = {}, {}  # GPU -> runs on it now; future -> its GPU

        def release(future):
            gpu = gpu_of.pop(future, None)
            if gpu is not None:
                busy[gpu] -= 1

        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:

            def submit(model, seed):
                log_path = log_path_of(model, seed)
                spec = spec_of[(model, seed)]
                gpu = None if "gpu_id" in spec.overrides else pick_gpu(gpus, busy)
                if gpu is not None:
                    spec = spec.with_overrides(gpu_id=gpu)  # RecBole's Config sets CUDA_VISIBLE_DEVICES from it
                    busy[gpu] = busy.get(gpu, 0) + 1
                future = pool.submit(_one_run, spec, threads, str(log_path), gpu)
                gpu_of[future] = gpu
                return future, log_path, f"{threads} thread(s)" + (f", GPU {gpu}" if gpu is not None else "")

            _drain(queue, n_jobs, submit, log_path_of, store, release)
    if queue.failures:
        if n_jobs == 1 and len(queue.failures) == 1 and queue.errors and isinstance(queue.errors[0], UserError):
            raise queue.errors[0]  # one run, one message: as it was raised
        raise UserError(f"{len(queue.failures)} of {len(jobs)} run(s) failed ({'; '.join(queue.failures)}); "
                        "the others' records are written")


def _drain(queue, n_jobs, submit, log_path_of, store, release=None):
    """Start ready runs and take finished ones until none is left (``release(future)``: give back
    what the run held, its GPU)."""
    while queue.pending or queue.running:
        queue.start_ready(n_jobs, submit)
        if not queue.running:
            break
        finished, _ = wait(list(queue.running), return_when=FIRST_COMPLETED)
        for future in finished:
            if release is not None:
                release(future)
            queue.finish(future, n_jobs, log_path_of, store)
