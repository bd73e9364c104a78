"""Trainers: RecBole's, with safe checkpoints and a per-epoch history for run records.

:func:`safe_trainer` derives, from any RecBole trainer class, one that

* saves checkpoints through :mod:`recbole_llm.checkpoint` (tensors and primitives only, so
  they load with ``weights_only=True`` under torch >= 2.6);
* loads the best model for testing the same way, refusing untrusted pickles;
* records, per epoch, the training time, the loss and the validation metrics
  (``history``), which the benchmark writes into its run record;
* applies ``lr_schedule`` (``constant`` or ``linear`` decay to 0 over ``epochs * batches``
  optimizer steps), for every model;
* with ``resume_path`` set, saves after every validated epoch the whole state of the run
  (model, optimizer, scheduler, early-stopping state, history, every RNG the next epoch
  draws from, and the model's ``resume_state()``: the LLM models' prompt-state cache, whose
  rows carry the bits of the batches that computed them) and, when that file exists at
  ``fit``, continues from the epoch after it, so an interrupted run ends with the record an
  uninterrupted one would have written;
* in a process of a run over several processes (``--nproc``, :mod:`recbole_llm.distributed`):
  wraps the model for DDP the way the device allows, lets rank 0 evaluate the whole split for all
  of them, records the epoch's loss as the processes' mean, saves every process's random streams
  in the resume state, and writes files from rank 0 only.

Everything else (optimisation, early stopping, full-ranking evaluation) is RecBole's.
"""

import logging
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from recbole.trainer import Trainer

from recbole_llm.checkpoint import DamagedCheckpoint, check_checkpoint_file, load_checkpoint, save_checkpoint
from recbole_llm.distributed import broadcast, gather, is_distributed, is_rank0, mean_over_ranks, wrap


def tensorboard_writer(logger):
    """RecBole's ``get_tensorboard`` with an absolute folder beside the run's log file.

    RecBole writes events to ``./log_tensorboard`` relative to the working directory at the
    time of each write; runs here keep everything under ``saved/`` (``saved/log_tensorboard``).
    """
    from torch.utils.tensorboard import SummaryWriter

    for handler in logger.handlers + logging.getLogger().handlers:
        if hasattr(handler, "baseFilename"):
            log_file = os.path.abspath(handler.baseFilename)
            saved = os.path.dirname(os.path.dirname(os.path.dirname(log_file)))
            stem = os.path.basename(log_file).rsplit(".", 1)[0]
            return SummaryWriter(os.path.join(saved, "log_tensorboard", stem))
    return SummaryWriter(os.path.join(os.getcwd(), "saved", "log_tensorboard", time.strftime("model-%Y%m%d-%H%M%S")))



class _NoTensorboard:
    """The tensorboard writer of a distributed run's processes other than rank 0: it writes nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class SafeCheckpointMixin:
    """Overrides the three places RecBole's ``Trainer`` pickles or unpickles."""

    def __init__(self, config, model):
        distributed = is_distributed(config)
        # RecBole's AbstractTrainer wraps the model for DDP with GPU-only arguments: it is built as
        # one process's trainer and wrapped here the way the device allows (distributed.wrap).
        config.final_config_dict["single_spec"] = True
        try:
            super().__init__(config, model)
        finally:
            config.final_config_dict["single_spec"] = not distributed
        if distributed:
            self.model, self.distributed_model = wrap(self.model, self.device)
        # RecBole's writer resolves its relative folder at every flush (wherever the process is
        # then); ours is absolute, beside the run's log. Closed at once, RecBole's leaves only its
        # header, in that same folder (the trainer is built with saved/ as working directory).
        # The other processes of a distributed run write no file: rank 0 logs the run.
        self.tensorboard.close()
        self.tensorboard = tensorboard_writer(self.logger) if is_rank0(config) else _NoTensorboard()
        self.history = []
        self.extra_cost = {}
        self.scheduler = None
        self.resume_path = None  # set by the caller to make the run resumable
        self.resumed = []  # [{"epoch": first epoch run in this process, "commit": ...}] of earlier segments
        self.prior_wall_time_s = 0.0  # wall time of the interrupted segments before this process
        self.stopped_early = False

    # ------------------------------------------------------------------ fit
    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        """RecBole's ``fit`` with ``lr_schedule`` and, when ``resume_path`` is set, resumption."""
        self._fit_started = time.perf_counter()
        self.scheduler = self._build_lr_scheduler(train_data)
        if self.resume_path is not None and self._resumable():
            if self._restore_state(train_data):  # the run had already finished training
                return self.best_valid_score, self.best_valid_result

        def after_validation(epoch_idx, valid_score):
            if self.resume_path is not None:
                self._save_state(epoch_idx, train_data)
            if callback_fn is not None:
                callback_fn(epoch_idx, valid_score)

        result = super().fit(train_data, valid_data, verbose, saved, show_progress, after_validation)
        self.stopped_early = self.cur_step > self.stopping_step
        return result

    def segment(self):
        """This process's part of the run, as the record's ``segments`` list it: the first epoch it
        trained, the commit it loaded and how many processes trained it (``--nproc``; a run may be
        resumed with another count)."""
        from recbole_llm.provenance import loaded_commit

        processes = dist.get_world_size() if is_distributed(self.config) else 1
        return {"from_epoch": int(self.start_epoch), "commit": loaded_commit(), "processes": processes}

    def _resumable(self):
        """Whether ``resume_path`` holds a state to continue from; a damaged one is removed (only
        lost time: the run starts over). In a distributed run rank 0 looks and every process
        takes its answer, so all of them resume or none does."""
        found = False
        if is_rank0(self.config):
            path = Path(self.resume_path)
            if path.is_file():
                try:
                    check_checkpoint_file(path)
                except DamagedCheckpoint as err:
                    self.logger.warning(f"training from scratch: {err}")
                    path.unlink()
            found = path.is_file()
        return broadcast(found) if is_distributed(self.config) else found

    def _build_lr_scheduler(self, train_data):
        schedule = str(self.config["lr_schedule"]).lower()
        if schedule == "constant":
            return None
        if schedule != "linear":
            from recbole_llm.errors import UserError

            raise UserError(f"lr_schedule must be linear or constant, not '{schedule}'")
        total = max(1, self.epochs * len(train_data))
        scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: max(0.0, 1.0 - step / total))
        self.optimizer.register_step_post_hook(lambda *args: scheduler.step())
        return scheduler

    # --------------------------------------------------------------- resume
    def _save_state(self, epoch_idx, train_data):
        """Everything the next epoch depends on, after epoch ``epoch_idx`` was validated."""
        from recbole_llm.provenance import loaded_commit

        finished = self.cur_step > self.stopping_step or epoch_idx + 1 >= self.epochs
        np_state = np.random.get_state()
        py_state = random.getstate()
        # What differs between the processes of a distributed run: their random streams and the
        # model's resume state (the prompt-state cache of the batches each one saw). Rank 0 writes
        # them all (``ranks``); its own are also the top-level entries, those of a one-process run.
        own = {
            "model_resume_state": self.model.resume_state() if hasattr(self.model, "resume_state") else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                          int(np_state[3]), float(np_state[4])],
                "python": [py_state[0], list(py_state[1]), py_state[2]],
                "train_loader": train_data.generator.get_state() if hasattr(train_data, "generator") else None,
            },
        }
        ranks = gather(own) if is_distributed(self.config) else [own]
        if not is_rank0(self.config):
            return
        state = {
            "epoch": epoch_idx,
            "finished": finished,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "best_valid_result": {k: float(v) for k, v in (self.best_valid_result or {}).items()},
            "saved_model_file": str(self.saved_model_file),
            "history": self.history,
            "train_loss_dict": {str(k): float(v) for k, v in self.train_loss_dict.items()},
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "extra_cost": self.extra_cost,
            **ranks[0],
            "ranks": ranks if len(ranks) > 1 else None,
            "segments": self.resumed + [self.segment()],
            "wall_time_s": self.prior_wall_time_s + (time.perf_counter() - self._fit_started),
        }
        save_checkpoint(self.resume_path, config=self.config, **state)

    def _restore_state(self, train_data):
        """Load :meth:`_save_state`'s file; returns whether that run had finished training."""
        state = load_checkpoint(self.resume_path, map_location=self.device, trust=False)
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(state.get("other_parameter"))
        self.optimizer.load_state_dict(state["optimizer"])
        own = self._own_resume_state(state)
        if hasattr(self.model, "load_resume_state"):
            self.model.load_resume_state(own.get("model_resume_state"))
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.start_epoch = state["epoch"] + 1
        self.cur_step = state["cur_step"]
        self.best_valid_score = state["best_valid_score"]
        self.best_valid_result = state["best_valid_result"] or None
        self.saved_model_file = state["saved_model_file"]
        self.history = list(state["history"])
        self.train_loss_dict = {int(k): v for k, v in state["train_loss_dict"].items()}
        self.extra_cost = dict(state.get("extra_cost") or {})
        self.resumed = list(state["segments"])
        self.prior_wall_time_s = float(state["wall_time_s"])
        rng = own["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
        kind, keys, pos, has_gauss, gauss = rng["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        version, internal, gauss_next = rng["python"]
        random.setstate((version, tuple(internal), gauss_next))
        if rng["train_loader"] is not None and hasattr(train_data, "generator"):
            train_data.generator.set_state(rng["train_loader"].cpu())
        self.stopped_early = self.cur_step > self.stopping_step
        self.logger.info(f"Resuming from {self.resume_path}: epochs 0-{state['epoch']} done, "
                         f"{'training had finished' if state['finished'] else f'continuing at epoch {self.start_epoch}'}")
        return bool(state["finished"])

    def _own_resume_state(self, state):
        """This process's random streams and model resume state from a saved ``state``: its own
        rank's when the state was saved by as many processes, else rank 0's (the top-level
        entries), said in the log: the run then continues, but not as the uninterrupted one."""
        ranks = state.get("ranks") or [state]
        world = dist.get_world_size() if is_distributed(self.config) else 1
        if len(ranks) == world:
            return ranks[dist.get_rank()] if world > 1 else state
        self.logger.warning(f"the resume state was saved by {len(ranks)} process(es) and this run has {world}: "
                            "each continues from rank 0's random streams, so the run is not the uninterrupted one")
        return state

    @property
    def _trust(self):
        try:
            return bool(self.config["trust_checkpoint"])
        except KeyError:
            return False

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        other = self.model.other_parameter()
        save_checkpoint(
            saved_model_file,
            config=self.config,
            epoch=epoch,
            cur_step=self.cur_step,
            best_valid_score=float(self.best_valid_score),
            state_dict=self.model.state_dict(),
            other_parameter=other,
            optimizer=self.optimizer.state_dict(),
        )
        if verbose:
            self.logger.info(f"Saving current: {saved_model_file}")

    def resume_checkpoint(self, resume_file):
        checkpoint = load_checkpoint(resume_file, map_location=self.device, trust=self._trust)
        self.saved_model_file = str(resume_file)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def load_best(self, model_file=None):
        """Load the best (or the given) checkpoint's weights into the model."""
        checkpoint_file = model_file or self.saved_model_file
        checkpoint = load_checkpoint(checkpoint_file, map_location=self.device, trust=self._trust)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        return checkpoint

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False, per_user=False):
        """RecBole's evaluation; with ``per_user=True`` also keeps, in ``self.per_user``, each
        evaluated user's internal id and the rank of its target item (see :class:`PerUserRanks`)."""
        if is_distributed(self.config):  # rank 0 evaluates the whole split; the others take its result
            result = None
            if is_rank0(self.config):
                result = self._evaluate(eval_data, load_best_model, model_file, show_progress, per_user)
            return broadcast(result)
        return self._evaluate(eval_data, load_best_model, model_file, show_progress, per_user)

    def _evaluate(self, eval_data, load_best_model, model_file, show_progress, per_user):
        if load_best_model and eval_data:
            self.load_best(model_file)
        if not per_user:
            return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        with PerUserRanks(self) as ranks:
            result = super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        self.per_user = ranks.result()
        return result

    def _map_reduce(self, result, num_sample):
        """RecBole averages the processes' metrics here; rank 0 has evaluated the whole split
        alone (:meth:`evaluate`), so its result is the run's as it is."""
        return result

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        start = time.perf_counter()
        loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        if is_distributed(self.config):  # each process summed its shard's losses: the run's is their mean
            loss = mean_over_ranks(loss)
        total = sum(loss) if isinstance(loss, tuple) else loss
        self.history.append(
            {
                "epoch": epoch_idx,
                "train_time_s": time.perf_counter() - start,
                "train_loss": float(total),
                "train_samples": len(train_data.dataset) if hasattr(train_data, "dataset") else None,
                "load_average": load_average(),  # the machine's, over the last minute: was the CPU shared?
                **getattr(self, "epoch_extras", {}),
            }
        )
        return loss

    def _valid_epoch(self, valid_data, show_progress=False):
        start = time.perf_counter()
        score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        if self.history:
            self.history[-1]["valid_time_s"] = time.perf_counter() - start
            self.history[-1]["valid"] = {k: float(v) for k, v in result.items()}
        return score, result


def load_average():
    """The machine's 1-minute load average (runnable threads, this process's included), or None where
    the system does not keep one. Beside a run's own torch threads it says whether something else ran
    while the run was timed (:func:`recbole_llm.record.cpu_sharing`)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


class PerUserRanks:
    """Captures, during one full-ranking evaluation, each user's rank of the target item.

    RecBole reduces its per-user metric values to means inside ``Evaluator.evaluate`` and keeps
    nothing per user; a paired significance test and per-user slices (long histories) need
    them. This context manager wraps the trainer's ``eval_collector.eval_batch_collect`` (to
    note the users of every batch, in order) and ``evaluator.evaluate`` (to read the
    ``rec.topk`` hit matrix RecBole's own top-k metrics are computed from), so the ranks are
    exactly the ones behind the reported HR/NDCG/MRR. ``result()`` gives ``user_ids``
    (internal ids) and ``rank`` (1-based rank of the first target within the top
    ``max(topk)``, 0 when outside it) and ``targets`` (targets per user: 1 under leave-one-out).
    """

    def __init__(self, trainer):
        self.trainer = trainer
        self.users, self.topk = [], None

    def __enter__(self):
        collector, evaluator = self.trainer.eval_collector, self.trainer.evaluator
        uid = self.trainer.config["USER_ID_FIELD"]
        collect, evaluate = collector.eval_batch_collect, evaluator.evaluate

        def collect_hook(scores, interaction, positive_u, positive_i):
            self.users.append(interaction[uid].detach().cpu())
            return collect(scores, interaction, positive_u, positive_i)

        def evaluate_hook(struct):
            if "rec.topk" in struct:
                self.topk = struct.get("rec.topk").clone()
            return evaluate(struct)

        collector.eval_batch_collect, evaluator.evaluate = collect_hook, evaluate_hook
        return self

    def __exit__(self, *exc):
        # Drop the instance attributes: the class's methods are visible again.
        del self.trainer.eval_collector.eval_batch_collect
        del self.trainer.evaluator.evaluate
        return False

    def result(self):
        if self.topk is None or not self.users:
            return None
        import torch

        users = torch.cat(self.users)
        hits, targets = self.topk[:, :-1].bool(), self.topk[:, -1]
        first = hits.float().argmax(dim=1) + 1
        rank = torch.where(hits.any(dim=1), first, torch.zeros_like(first))
        return {
            "user_ids": users.tolist(),
            "rank": rank.tolist(),
            "targets": targets.tolist(),
            "max_k": int(hits.shape[1]),
        }


_CACHE = {}


def safe_trainer(cls):
    """``cls`` with :class:`SafeCheckpointMixin` mixed in (one derived class per base)."""
    if issubclass(cls, SafeCheckpointMixin):
        return cls
    if cls not in _CACHE:
        _CACHE[cls] = type(f"Safe{cls.__name__}", (SafeCheckpointMixin, cls), {"__doc__": cls.__doc__})
    return _CACHE[cls]


class LMTrainer(Trainer):
    """RecBole's ``Trainer`` for the frozen-LM recommenders.

    Adds what RecBole 1.2.1's trainer lacks and the papers use:

    * only trainable parameters reach the optimizer (the frozen LM would otherwise get
      optimizer state);
    * the papers' "linear decay schedule" is ``lr_schedule: linear`` in the models' YAML (no
      warm-up is mentioned, so none is used; :class:`SafeCheckpointMixin` applies it);
    * after training, the adapter's overhead: ``measure_overhead_batches`` training batches
      timed through the model's forward+backward and through the bare frozen LM's
      forward+backward on the same prompts (``model.bare_lm_step``), kept in ``extra_cost``.
    """

    def _build_optimizer(self, **kwargs):
        kwargs.setdefault("params", [p for p in self.model.parameters() if p.requires_grad])
        return super()._build_optimizer(**kwargs)

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        result = super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        n = int(self.config["measure_overhead_batches"])
        if n > 0 and hasattr(self.model, "bare_lm_step") and is_rank0(self.config):  # the record's process
            self.extra_cost.update(measure_overhead(self.model, train_data, n))
            self.logger.info("adapter overhead: %s", self.extra_cost)
        return result

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        parts = getattr(self.model, "last_losses", None)
        self.epoch_extras = {"lr_end": self.optimizer.param_groups[0]["lr"]}
        if parts:  # the models keep detached tensors (no sync per step): converted once per epoch
            self.epoch_extras["last_batch_losses"] = {k: float(v) for k, v in parts.items()}
        return loss


def measure_overhead(model, train_data, n_batches):
    """Samples/s of the model's training forward+backward and of the bare frozen LM's, on the
    same ``n_batches`` batches (the first one is a warm-up and not timed); no optimizer step,
    so the weights do not change. Returns ``train_samples_per_s_model``,
    ``train_samples_per_s_bare_lm`` and their ratio ``adapter_throughput_ratio``."""
    import torch

    batches = []
    for interaction in train_data:
        batches.append(interaction.to(model.device))
        if len(batches) >= n_batches + 1:
            break
    if len(batches) < 2:
        return {}
    model.train()

    def sync():
        if model.device.type == "cuda":
            torch.cuda.synchronize(model.device)  # kernels run asynchronously: time what ran

    def timed(step):
        step(batches[0])
        model.zero_grad(set_to_none=True)
        sync()
        samples, start = 0, time.perf_counter()
        for batch in batches[1:]:
            step(batch)
            samples += len(batch)
        sync()
        elapsed = time.perf_counter() - start
        model.zero_grad(set_to_none=True)
        return samples / elapsed

    model_rate = timed(lambda b: model.calculate_loss(b).backward())
    bare_rate = timed(model.bare_lm_step)
    model.eval()
    torch.set_grad_enabled(True)
    return {
        "train_samples_per_s_model": model_rate,
        "train_samples_per_s_bare_lm": bare_rate,
        "adapter_throughput_ratio": model_rate / bare_rate,
        "overhead_batches": len(batches) - 1,
    }


