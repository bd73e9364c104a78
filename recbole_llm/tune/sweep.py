"""Run a sweep with Ray Tune, then evaluate the best configuration (and only it) on test.

Better than RecBole's two tuners on the points that decide a benchmark:

* ``run_hyper.py --tool Ray`` reports once, after training, and reports *test* metrics (no early
  stopping is possible, and the selection sees the test set); ``HyperTuning`` (hyperopt) selects
  on validation but runs trials one after another.
* Here every validation epoch is reported to Tune (:mod:`recbole_llm.tune.trainable`), ASHA stops
  weak trials early, trials run in parallel on the CPUs/GPUs Ray has, and the test split is
  evaluated for the best configuration alone, by re-running it through the benchmark's own path
  (:func:`run_best`), which writes an ordinary run record. We re-run instead of loading the
  trial's checkpoint so that every trial can drop its weights (an LLM sweep would otherwise keep
  one checkpoint per trial) and so that the re-run checks the sweep's number is reproducible.

Done once in the driver, before any trial starts: the dataset is materialised
(:func:`~recbole_llm.data.prepare.ensure_dataset`) and, for the LLM models, the pipeline's
ID-model step (:func:`recbole_llm.pipeline.ensure_id_model`) runs once with the sweep's base
config. Whatever depends on a swept key is prepared by the trials themselves.

Layout: Tune's experiment folder is ``<saved_dir>/ray/<dataset>/<name>-<key>`` where ``key``
hashes everything that defines the sweep (model, dataset, seed, space, search, scheduler,
config files, overrides). Running the same command again therefore finds the folder and
resumes it with ``Tuner.restore`` (finished trials are kept, unfinished ones continue, errored
ones are run again); a changed command starts a new sweep in a new folder. ``--max-concurrent``
is not part of the key: a resumed sweep runs with the value of the command that resumes it
(:class:`ResumableGenerator`). Each trial folder
holds the trial's RecBole log and its run record without test metrics (``trial_record.json``).

On a cluster (``--ray-address``) every node must see ``data_path`` and ``saved_dir`` at the same
path (a shared filesystem) and have this package installed: trials read the dataset and the
prepared ID models from there.
"""

import json
import logging
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recbole_llm.errors import UserError
from recbole_llm.identity import run_key, sweep_key
from recbole_llm.tune.settings import SweepSettings
from recbole_llm.tune.trainable import TRIAL_RECORD, TrialPlan, metric_key, train_trial

SWEEP_STATE = "sweep.json"
FINISHED = ("completed", "stopped (ASHA)")  # trial statuses with a validation score to select on
REPORT_MIN_S = 30  # the progress table: at most this often, when a trial's state or score changed ...
REPORT_MAX_S = 300  # ... and this often without a change (a sign of life)


_GENERATOR = []  # [ResumableGenerator], made on first use


def _generator_class():
    """:class:`ResumableGenerator`, made on first use: it subclasses a Ray class, and importing this
    module imports no Ray. Module ``__getattr__`` hands it to pickle, which finds it by name."""
    if not _GENERATOR:
        from ray.tune.search import BasicVariantGenerator

        class ResumableGenerator(BasicVariantGenerator):
            """Tune's grid/random generator whose ``max_concurrent`` survives a restore.

            Ray 2.6.3 restores a generator by overwriting its attributes with the saved ones
            (``set_state``), so a resumed sweep would keep the first session's ``max_concurrent``;
            here the value set on the restored object (:func:`_resume_max_concurrent`) is kept.
            """

            def set_state(self, state):
                max_concurrent = self.max_concurrent
                super().set_state(state)
                self.max_concurrent = max_concurrent

        ResumableGenerator.__module__ = __name__
        ResumableGenerator.__qualname__ = "ResumableGenerator"
        _GENERATOR.append(ResumableGenerator)
    return _GENERATOR[0]


_REPORTER = []  # [QuietReporter], made on first use


def _reporter_class():
    """:class:`QuietReporter`, made on first use (a Ray class's subclass; see :func:`_generator_class`)."""
    if not _REPORTER:
        from ray.tune import CLIReporter

        class QuietReporter(CLIReporter):
            """Tune's progress table, printed when something changed (a trial started, ended or
            reported a new score) at most every :data:`REPORT_MIN_S` seconds, and otherwise every
            :data:`REPORT_MAX_S` seconds; Ray's prints the same table every 30 s whatever happened."""

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self._shown = None  # the trials' state when the table was last printed
                self._shown_at = -math.inf

            def should_report(self, trials, done=False):
                now = time.monotonic()
                state = trials_state(trials)
                due = done or (state != self._shown and now - self._shown_at >= REPORT_MIN_S) \
                    or now - self._shown_at >= REPORT_MAX_S
                if due:
                    self._shown, self._shown_at = state, now
                return due

        QuietReporter.__module__ = __name__
        QuietReporter.__qualname__ = "QuietReporter"
        _REPORTER.append(QuietReporter)
    return _REPORTER[0]


def trials_state(trials):
    """What the progress table shows of ``trials``: each trial's status and last reported result
    (its iteration and scores), without the clock."""
    state = []
    for trial in trials:
        result = getattr(trial, "last_result", None) or {}
        state.append((str(getattr(trial, "trial_id", "")), str(getattr(trial, "status", "")),
                      result.get("training_iteration"),
                      tuple(sorted((k, v) for k, v in result.items() if k.startswith("valid_")))))
    return tuple(state)


def __getattr__(name):
    if name == "ResumableGenerator":
        return _generator_class()
    if name == "QuietReporter":
        return _reporter_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _resume_max_concurrent(tuner, wanted, path):
    """Give a restored sweep the ``--max-concurrent`` of this command (0: no limit); return the
    value it will run with. Ray 2.6.3's ``Tuner.restore`` takes no search algorithm, so the
    restored one is reached through the tuner; a sweep started before :class:`ResumableGenerator`
    existed restores its own value, and that is said."""
    search_alg = getattr(getattr(getattr(tuner, "_local_tuner", None), "_tune_config", None), "search_alg", None)
    stored = getattr(search_alg, "max_concurrent", None)
    file = Path(path) / SWEEP_STATE
    sessions = json.loads(file.read_text(encoding="utf-8"))["sessions"] if file.is_file() else []
    previous = sessions[-1].get("max_concurrent", stored) if sessions else stored
    if not isinstance(search_alg, _generator_class()):
        if stored is not None and stored != wanted:
            print(f"[recbole-llm] this sweep cannot change --max-concurrent on resume (it was started by an older "
                  f"recbole-llm): it continues with {_concurrency(stored)}", file=sys.stderr, flush=True)
        return stored
    if previous != wanted:
        print(f"[recbole-llm] resuming with --max-concurrent {_concurrency(wanted)} (the last session ran with "
              f"{_concurrency(previous)})", flush=True)
    search_alg.max_concurrent = wanted
    return wanted


def _concurrency(value):
    return str(value) if value else "unlimited"


@dataclass
class Sweep:
    """What a finished (or interrupted) sweep hands to the reports and to :func:`run_best`."""

    settings: SweepSettings  # what the command asked for
    identity: dict  # the values that name the sweep's folder (sweep_key) and open its sweep.json
    config: object  # the base Config (no swept key applied)
    trials: pd.DataFrame  # one row per trial, sorted best first
    experiment_path: Path
    interrupted: bool
    wall_time_s: float  # all sessions of this sweep together
    planned: int = 0  # trials the space and --num-samples make

    model = property(lambda self: self.settings.model)
    dataset = property(lambda self: self.settings.dataset)
    space = property(lambda self: self.settings.space)
    config_files = property(lambda self: self.settings.config_files)
    overrides = property(lambda self: self.settings.overrides)
    data_path = property(lambda self: self.settings.data_path)
    saved_dir = property(lambda self: self.settings.saved_dir)
    cpus_per_trial = property(lambda self: self.settings.cpus_per_trial)
    gpus_per_trial = property(lambda self: self.settings.gpus_per_trial)

    @property
    def seed(self):
        return int(self.config["seed"])

    @property
    def valid_metric(self):
        return self.config["valid_metric"]

    @property
    def metric_key(self):
        return metric_key(self.valid_metric)

    @property
    def best(self):
        """The best finished trial's row (a Series), or None."""
        ok = self.trials[self.trials["status"].isin(FINISHED) & self.trials["metric"].notna()]
        return ok.iloc[0] if len(ok) else None

    def best_params(self):
        row = self.best
        return None if row is None else {k: _plain(row[k]) for k in self.space.keys}


def _plain(value):
    """numpy scalars from a DataFrame back to Python types (for YAML and JSON)."""
    return value.item() if hasattr(value, "item") else value


def default_space_path(model_name):
    from recbole_llm.config import properties_dir

    return properties_dir() / "tune" / f"{model_name}.yaml"


def available_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def local_cpus(settings):
    """The CPUs a local Ray of the sweep ``settings`` gets: this machine's, or, with
    ``max_concurrent``, no more than that many trials use. The search algorithm limits the trials it
    creates, but a resumed sweep restarts its failed trials outside it (Ray's ``restart_errored``),
    and those would otherwise run as many at once as the CPUs allow."""
    cpus = available_cpus()
    if settings.max_concurrent and settings.cpus_per_trial:
        cpus = min(cpus, max(1, math.ceil(settings.max_concurrent * settings.cpus_per_trial)))
    return cpus


def init_ray(address=None, num_cpus=None):
    """Connect to ``address`` or start a quiet local Ray on ``num_cpus`` CPUs (default: this
    machine's, :func:`available_cpus`); True if started here.

    ``address="local"`` (not Ray's default lookup) so that a sweep never joins a cluster someone
    else started on the same machine; the dashboard is off and workers' output stays in their
    trial folders (RecBole logs every epoch; the progress table is what the console shows). Every
    worker of the job, on every node, first runs :func:`recbole_llm.compat.restore_numpy_aliases`
    (Ray 2.6.3 names ``np.bool8``, gone in numpy 2); a Ray the caller initialised without
    :func:`recbole_llm.compat.ray_runtime_env` is used as it is.
    """
    import ray

    from recbole_llm.compat import ray_runtime_env

    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False,
              "runtime_env": ray_runtime_env()}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=num_cpus or available_cpus(), **kwargs)
    return True


def _reporter(space, key, metric_label):
    return _reporter_class()(
        parameter_columns=space.keys,
        metric_columns={key: f"valid {metric_label}", "epoch": "epochs"},
        sort_by_metric=True, max_report_frequency=REPORT_MIN_S, max_progress_rows=30,  # metric, mode: TuneConfig's
    )


@dataclass
class _Prepared:
    """What the driver works out before Tune starts (:func:`_prepare`), for the later stages."""

    config: object  # the base Config (no swept key applied)
    valid_metric: str
    bigger: bool  # a bigger validation score is better
    key: str  # the result key Tune selects on (metric_key)
    max_t: int  # evaluations a trial makes at most
    grace: int  # ASHA's grace period, in evaluations
    llm: bool  # an LLMSequentialRecommender: its trials link to the ID model prepared here
    hashed: dict  # what sweep_key hashes (Sweep.settings, stored in sweep.json): keep it stable
    name: str  # Tune's experiment name, <name>-<key>
    path: Path  # Tune's experiment folder, <saved_dir>/ray/<dataset>/<name>-<key>
    planned: int  # trials the space and num_samples make

    @property
    def mode(self):
        return "max" if self.bigger else "min"


def run_sweep(settings, *, callbacks=(), verbose=1, stored=(), budget=None, keep_dir=None):
    """Run (or resume) the sweep of :class:`~recbole_llm.tune.settings.SweepSettings`; return a :class:`Sweep`.

    Three stages: :func:`_prepare` (checks, the base config, the ID model, the sweep's key),
    :func:`_trainable` and :func:`_tuner` (Tune's trainable and a new or restored ``Tuner``), and
    :func:`_collect` (the trials table and ``sweep.json``). ``callbacks`` are extra Ray Tune
    callbacks (the tests interrupt a sweep with one); Tune stores them with the sweep and a resumed
    sweep gets the stored ones back. ``verbose``: Tune's verbosity (0 silent, 1 the progress
    table). The returned sweep's ``interrupted`` is True when some trial did not finish (Ctrl+C):
    run the same call again to resume. ``stored``: the dataset's run records
    (:func:`recbole_llm.benchmark.records.load_records`) and ``budget`` the sweep's: a trial whose run
    key and seed are those of one of them replays its validations instead of training
    (:mod:`recbole_llm.tune.reuse`; empty: every trial trains). ``keep_dir``: the sweep's folder of
    kept trial records (``results/<dataset>/tune/<name>/trials``): a trial that trains to its end
    writes its record there, and a trial whose run is there replays it, as a stored run's (None:
    neither).
    """
    from recbole_llm.tune.reuse import finished_runs, kept_trials

    prepared = _prepare(settings)
    # a stored run (it has a test) wins over a kept trial of the same key: it comes later in the list
    kept = kept_trials(keep_dir) if keep_dir is not None else []
    finished = finished_runs([*kept, *stored], settings.model, int(prepared.config["seed"]), budget,
                             prepared.valid_metric)
    if finished:
        print(f"[recbole-llm] {len(finished)} stored run(s) of {settings.model} seed {int(prepared.config['seed'])} "
              f"under budget '{budget}': a trial with one's run key replays it instead of training", flush=True)
    trainable = _trainable(settings, prepared, finished, keep_dir, budget)
    started_ray = init_ray(settings.ray_address, local_cpus(settings))
    # The legacy progress table (CLIReporter): one line per trial with the swept values and the
    # metric; Ray 2.6's new output engine prints every result of every trial instead.
    # Tune's restore makes an empty <results dir>/default (~/ray_results unless this is set).
    env = _set_env({"RAY_AIR_NEW_OUTPUT": "0", "RAY_AIR_LOCAL_CACHE_DIR": str(settings.saved_dir / "ray")})
    # Tune turns the first Ctrl+C into a clean stop (state saved, resumable) but leaves its handler
    # installed; put the caller's back so Ctrl+C during the best configuration's runs behaves as usual.
    handlers = _signal_handlers()
    start = time.perf_counter()
    try:
        tuner, resumed, max_concurrent = _tuner(settings, prepared, trainable, callbacks, verbose)
        grid = tuner.fit()
    finally:
        _restore_signal_handlers(handlers)
        _set_env(env)
        if started_ray:
            import ray

            ray.shutdown()
    return _collect(settings, prepared, grid, time.perf_counter() - start, resumed, max_concurrent)


def _prepare(settings):
    """Validate ``settings``, build the base config (materialising the dataset), check the swept
    keys against it, prepare an LLM model's ID model, and name the sweep by its key."""
    from recbole_llm.model.llm_base import LLMSequentialRecommender
    from recbole_llm.quick_start import build_config
    from recbole_llm.spec import RunSpec
    from recbole_llm.utils import get_model

    s = settings.validate()
    spec = RunSpec(s.model, s.dataset, s.seed, s.config_files, s.overrides, s.data_path, s.saved_dir)
    config = build_config(spec)  # + ensure_dataset
    unknown = [k for k in s.space.keys if k not in config]
    if unknown:
        raise UserError(f"search space {s.space.source}: key '{unknown[0]}' is not a config key of {s.model} on "
                        f"{s.dataset} (no YAML under properties/ sets it; misspelt?)")
    valid_metric = config["valid_metric"]
    max_t = max(1, int(config["epochs"]) // max(1, int(config["eval_step"])))  # reports = validations
    grace = max(1, min(max_t, int(s.grace_period or config["stopping_step"])))
    model_class = get_model(s.model)
    llm = issubclass(model_class, LLMSequentialRecommender)
    if llm:
        _prepare_id_model(s.model, model_class, config, spec)
    search = {"space": s.space.as_dict(), "search": s.search, "num_samples": s.num_samples, "scheduler": s.scheduler,
              "grace_period": grace if s.asha else None,
              "reduction_factor": s.reduction_factor if s.asha else None, "max_t": max_t}
    # what names the sweep: the base config's run key (every fixed value, the data, the version) and the search
    hashed = {"model": s.model, "dataset": s.dataset, "seed": int(config["seed"]), "valid_metric": valid_metric,
              "run_key": run_key(config), **search}
    name = f"{s.name or s.model}-{sweep_key(config, search)}"
    return _Prepared(config=config, valid_metric=valid_metric, bigger=bool(config["valid_metric_bigger"]),
                     key=metric_key(valid_metric), max_t=max_t, grace=grace, llm=llm, hashed=hashed, name=name,
                     path=s.saved_dir / "ray" / s.dataset / name, planned=s.space.n_trials(s.search, s.num_samples))


def _prepare_id_model(model, model_class, config, spec):
    """The pipeline's ID-model step, once in the driver, after the base config's checks."""
    from recbole_llm.pipeline import ensure_id_model

    model_class.preflight(config)  # the base config's checks, before the ID model trains
    started = time.perf_counter()
    print(f"[recbole-llm] {model}: its ID model, once, before the trials ...", flush=True)
    ensure_id_model(config, spec)  # the trials find it in the cache (their id_models/ links to it)
    print(f"[recbole-llm] ID model ready in {time.perf_counter() - started:.0f}s", flush=True)


def _trainable(settings, prepared, finished=None, keep_dir=None, budget=None):
    """:func:`~recbole_llm.tune.trainable.train_trial` with the sweep's fixed arguments and resources
    (``finished``: the stored runs its trials may replay; ``keep_dir``, ``budget``: where and under
    which budget a trial that trains to its end keeps its record)."""
    from ray import tune

    from recbole_llm.spec import RunSpec

    s = settings
    return tune.with_resources(
        tune.with_parameters(
            train_trial, plan=TrialPlan(
                spec=RunSpec(s.model, s.dataset, int(prepared.config["seed"]), s.config_files, s.overrides,
                             s.data_path, s.saved_dir),
                link_id_models=prepared.llm, cpus=s.cpus_per_trial, valid_metric=prepared.valid_metric,
                bigger=prepared.bigger, finished=dict(finished or {}),
                keep_dir=None if keep_dir is None else str(keep_dir), budget=budget),
        ),
        {"cpu": s.cpus_per_trial, "gpu": s.gpus_per_trial},
    )


def _tuner(settings, prepared, trainable, callbacks, verbose):
    """Tune's ``Tuner``: restored if the sweep's folder holds a sweep, else a new one; returns
    ``(tuner, resumed, max_concurrent)``, the last the limit the sweep will run with."""
    from ray import tune
    from ray.air import FailureConfig, RunConfig
    from ray.tune import Tuner
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from recbole_llm.benchmark.per_user import pretty_metric

    s, p = settings, prepared
    path = p.path
    if Tuner.can_restore(str(path)):
        print(f"[recbole-llm] resuming sweep {path} (finished trials are kept)", flush=True)
        tuner = Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=False,
                              restart_errored=True)
        return tuner, True, _resume_max_concurrent(tuner, int(s.max_concurrent or 0), path)
    print(f"[recbole-llm] sweep of {s.model} on {s.dataset}: {p.planned} trial(s), {s.search} search over "
          f"{', '.join(s.space.keys)} on validation {p.valid_metric} (<= {p.max_t} evaluations; "
          + (f"ASHA: grace {p.grace}, reduction {s.reduction_factor:g}" if s.asha else "no ASHA")
          + f"); {s.cpus_per_trial:g} CPU, {s.gpus_per_trial:g} GPU per trial; folder {path}", flush=True)
    # max_t one past the last evaluation: ASHA stops any trial that reaches max_t, and a
    # trial at its last epoch should end on its own (RecBole finishes, the record is written).
    sched = (ASHAScheduler(time_attr="training_iteration", max_t=p.max_t + 1, grace_period=p.grace,
                           reduction_factor=s.reduction_factor)
             if s.asha else FIFOScheduler())
    tuner = Tuner(
        trainable,
        param_space=s.space.to_ray(s.search),
        tune_config=tune.TuneConfig(
            metric=p.key, mode=p.mode, scheduler=sched, num_samples=s.num_samples,
            # Ray 2.6 ignores TuneConfig.max_concurrent_trials with this generator; it takes its own.
            search_alg=_generator_class()(max_concurrent=s.max_concurrent or 0,
                                          random_state=int(p.config["seed"])),
            trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
        ),
        run_config=RunConfig(
            name=p.name, storage_path=str(path.parent), callbacks=list(callbacks), verbose=verbose,
            progress_reporter=_reporter(s.space, p.key, pretty_metric(p.valid_metric.lower())),
            failure_config=FailureConfig(max_failures=0),
        ),
    )
    return tuner, False, s.max_concurrent


def _collect(settings, prepared, grid, wall, resumed, max_concurrent):
    """The :class:`Sweep` of Tune's results; this session is added to ``sweep.json``."""
    s, p = settings, prepared
    trials = trials_frame(grid, s.space, p.key, p.bigger, p.max_t)
    # Not grid.num_terminated: after a Ctrl+C, Tune's cleanup marks the running trials TERMINATED
    # in memory (the saved state, which a resume reads, still has them unfinished); and trials the
    # generator had not created yet are not in the grid at all.
    interrupted = len(trials) < p.planned or bool((trials["status"] == "unfinished").any())
    state = _update_state(p.path, p.hashed, {"wall_time_s": wall, "resumed": resumed, "trials": len(grid),
                                             "interrupted": interrupted, "max_concurrent": int(max_concurrent or 0)})
    return Sweep(settings=s, identity=p.hashed, config=p.config, trials=trials, experiment_path=p.path,
                 interrupted=interrupted, planned=p.planned,
                 wall_time_s=sum(st["wall_time_s"] for st in state["sessions"]))


def _set_env(values):
    """Set (or, for None, unset) environment variables; return their previous values."""
    old = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    return old


def _signal_handlers():
    if threading.current_thread() is not threading.main_thread():
        return {}
    sigs = [signal.SIGINT] + ([signal.SIGUSR1] if hasattr(signal, "SIGUSR1") else [])
    return {sig: signal.getsignal(sig) for sig in sigs}


def _restore_signal_handlers(handlers):
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def _update_state(path, settings, session):
    """``sweep.json`` beside Tune's state: the settings, and each session's ``session`` (its wall
    time, whether it resumed, its trials, whether it was interrupted, its concurrency limit, 0: none)."""
    from recbole_llm.fsutil import atomic_write_text

    file = Path(path) / SWEEP_STATE
    state = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {"settings": settings, "sessions": []}
    state["sessions"].append({"finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **session})
    atomic_write_text(file, json.dumps(state, indent=1, sort_keys=True, default=str) + "\n")
    return state


def _status(result, record, max_t=None):
    """A trial's status: ``completed`` when it ran to its end (its record was written: the last epoch
    or RecBole's own early stopping; or it reported its last evaluation, ``max_t``, before ASHA's
    decision on that result ended it: nothing was left to stop), ``stopped (ASHA)`` when ASHA ended
    it earlier, ``error``, or ``unfinished`` (interrupted)."""
    if result.error is not None:
        return "error"
    if record is not None:
        return "completed"  # ran to its last epoch or RecBole's own early stopping
    metrics = result.metrics or {}
    if metrics.get("done"):
        if max_t is not None and int(metrics.get("training_iteration") or 0) >= int(max_t):
            return "completed"
        return "stopped (ASHA)"
    return "unfinished"


def trials_frame(grid, space, key, bigger, max_t=None):
    """One row per trial: the swept values, the best validation score, epochs, wall time, the Ray
    node that ran it (id and IP; empty for a trial that never reported), status (``max_t``: the
    evaluations a trial makes at most, :func:`_status`)."""
    rows = []
    for result in grid:
        trial_dir = Path(result.path)
        record_file = trial_dir / TRIAL_RECORD
        record = json.loads(record_file.read_text(encoding="utf-8")) if record_file.is_file() else None
        metrics = result.metrics or {}
        config = result.config or metrics.get("config", {})
        value = metrics.get(key)
        row = {"trial": metrics.get("trial_id") or trial_dir.name.removeprefix("trial_")}
        row.update({k: config.get(k) for k in space.keys})
        row["metric"] = float(value) if value is not None else math.nan
        row["epochs"] = record["epochs_run"] if record else int(metrics.get("epoch", 0) or 0)
        row["wall_time_s"] = float(metrics.get("time_total_s", math.nan) or math.nan)
        row["node_id"] = metrics.get("node_id") or ""
        row["node_ip"] = metrics.get("node_ip") or ""
        row["status"] = _status(result, record, max_t)
        row["error"] = str(result.error).strip().splitlines()[-1][:200] if result.error is not None else ""
        row["replayed_from"] = (record or {}).get("replayed_from") or ""  # a stored run's record (tune.reuse)
        row["trial_dir"] = str(trial_dir)
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    # Best first; unscored trials last; ties keep trial order.
    df["_missing"] = df["metric"].isna()
    df = df.sort_values(["_missing", "metric", "trial"], ascending=[True, not bigger, True], kind="stable")
    return df.drop(columns="_missing").reset_index(drop=True)


@dataclass(frozen=True)
class BestRuns:
    """Where the best configuration's runs go: their row ``label``, the ``budget`` their records name,
    the results folder ``output`` (None: records are not written) and ``show_progress``."""

    label: str
    budget: str = None
    output: Path = None
    show_progress: bool = False


def run_best(sweep, seeds, best_yaml, target: BestRuns):
    """Train and test the best configuration for each seed through the benchmark's path.

    ``best_yaml`` (written by :func:`recbole_llm.tune.report.write_best_yaml`) is passed as the
    last config file, exactly as ``run_benchmark.py --config-files`` would. Each run writes an
    ordinary run record (with a ``tune`` entry naming the sweep) under ``target.output``; a seed that
    already has a record of this sweep's best trial, or of its run under ``target.label`` (the sweep
    resumed on another machine: other trial ids), is not run again, and one whose run (run key,
    seed, budget) is stored under another row, e.g. the defaults' row when the best point is the
    default, is stored again under ``target.label`` (:func:`recbole_llm.tune.reuse.same_run_record`),
    not trained. Returns the records.
    """
    import torch

    from recbole_llm.benchmark.records import load_records, stored_record, write_record
    from recbole_llm.pipeline import discard_state, run
    from recbole_llm.quick_start import build_config
    from recbole_llm.spec import RunSpec
    from recbole_llm.tune.reuse import same_run_record

    best = sweep.best
    if best is None:
        raise UserError(f"no trial of sweep {sweep.experiment_path} finished with a validation score; "
                        f"see the error column of its table")
    tag = {"experiment": sweep.experiment_path.name, "trial": best["trial"], "params": sweep.best_params(),
           "valid_in_sweep": float(best["metric"]), "valid_metric": sweep.valid_metric}
    label, budget, output, show_progress = target.label, target.budget, target.output, target.show_progress
    existing = {}
    stored = load_records(output, sweep.dataset) if output is not None else []
    if output is not None:
        for rec in stored:
            t = rec.get("tune") or {}
            if t.get("experiment") == tag["experiment"] and t.get("trial") == tag["trial"]:
                existing[rec["seed"]] = rec
    records = []
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(sweep.cpus_per_trial)))  # as in the trials (see train_trial)
    try:
        for seed in seeds:
            if seed in existing:
                print(f"[recbole-llm] best configuration, seed {seed}: record exists ({existing[seed]['_path']})",
                      flush=True)
                records.append(existing[seed])
                continue
            spec = RunSpec(sweep.model, sweep.dataset, seed, [*sweep.config_files, str(best_yaml)],
                           {**sweep.overrides, **({} if show_progress is None else {"show_progress": show_progress})},
                           sweep.data_path, sweep.saved_dir, label)
            config = build_config(spec)
            own = stored_record(stored, label, seed, run_key(config), budget) if budget is not None else None
            if own is not None:  # this row's run (or copy), stored by an earlier sitting of the sweep
                print(f"[recbole-llm] best configuration, seed {seed}: record exists ({own['_path']})", flush=True)
                records.append(own)
                continue
            same = stored_record(stored, None, seed, run_key(config), budget) if budget is not None else None
            if same is not None:
                print(f"[recbole-llm] best configuration, seed {seed}: the same run (run_key {same['run_key']}) is "
                      f"stored as {same['_path']}: stored again under '{label}', not trained", flush=True)
                record = same_run_record(same, label, budget, tag)
            else:
                print(f"[recbole-llm] best configuration, seed {seed}: training and testing "
                      f"({', '.join(f'{k}={v}' for k, v in tag['params'].items())})", flush=True)
                record = run(spec, config=config, evaluate_test=True)
                record["label"] = label
                if budget is not None:
                    record["budget"] = budget
                record["tune"] = tag
            if output is not None:
                record["_path"] = str(write_record(output, record))
            if same is None:  # once its record is written (a copy's run left no state here)
                discard_state(sweep.saved_dir, record)
            records.append(record)
    finally:
        torch.set_num_threads(threads)
    return records
