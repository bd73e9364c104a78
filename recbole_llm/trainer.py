"""Trainers: RecBole's, with safe checkpoints and a per-epoch history for run records.

:func:`safe_trainer` derives, from any RecBole trainer class, one that

* saves checkpoints through :mod:`recbole_llm.checkpoint` (tensors and primitives only, so
  they load with ``weights_only=True`` under torch >= 2.6);
* loads the best model for testing the same way, refusing untrusted pickles;
* records, per epoch, the training time, the loss and the validation metrics
  (``history``), which the benchmark writes into its run record.

Everything else (optimisation, early stopping, full-ranking evaluation) is RecBole's.
"""

import logging
import os
import time

import recbole.trainer.trainer as _rb_trainer
from recbole.trainer import Trainer

from recbole_llm.checkpoint import load_checkpoint, save_checkpoint


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


_rb_trainer.get_tensorboard = tensorboard_writer


class SafeCheckpointMixin:
    """Overrides the three places RecBole's ``Trainer`` pickles or unpickles."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.history = []
        self._epoch_train_time = None

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
        if load_best_model and eval_data:
            self.load_best(model_file)
        if not per_user:
            return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        with PerUserRanks(self) as ranks:
            result = super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        self.per_user = ranks.result()
        return result

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        start = time.perf_counter()
        loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        total = sum(loss) if isinstance(loss, tuple) else loss
        self.history.append(
            {
                "epoch": epoch_idx,
                "train_time_s": time.perf_counter() - start,
                "train_loss": float(total),
                "train_samples": len(train_data.dataset) if hasattr(train_data, "dataset") else None,
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


SafeTrainer = safe_trainer(Trainer)


class LMTrainer(Trainer):
    """RecBole's ``Trainer`` for the frozen-LM recommenders.

    Adds what RecBole 1.2.1's trainer lacks and the papers use:

    * only trainable parameters reach the optimizer (the frozen LM would otherwise get
      optimizer state);
    * ``lr_schedule: linear``: the learning rate decays linearly to 0 over
      ``epochs * batches`` optimizer steps (the papers' "linear decay schedule"; no warm-up is
      mentioned, so none is used), through torch's ``LambdaLR`` stepped after each optimizer step;
    * after training, the adapter's overhead: ``measure_overhead_batches`` training batches
      timed through the model's forward+backward and through the bare frozen LM's
      forward+backward on the same prompts (``model.bare_lm_step``), kept in ``extra_cost``.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        self.extra_cost = {}
        self.scheduler = None

    def _build_optimizer(self, **kwargs):
        kwargs.setdefault("params", [p for p in self.model.parameters() if p.requires_grad])
        return super()._build_optimizer(**kwargs)

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        schedule = str(self.config["lr_schedule"] or "constant").lower() if "lr_schedule" in self.config else "constant"
        if schedule not in ("linear", "constant"):
            from recbole_llm.errors import UserError

            raise UserError(f"lr_schedule must be linear or constant, not '{schedule}'")
        if schedule == "linear":
            import torch

            total = max(1, self.epochs * len(train_data))
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda step: max(0.0, 1.0 - step / total)
            )
            self.optimizer.register_step_post_hook(lambda *args: self.scheduler.step())
        result = super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        n = int(self.config["measure_overhead_batches"] or 0) if "measure_overhead_batches" in self.config else 0
        if n > 0 and hasattr(self.model, "bare_lm_step"):
            self.extra_cost.update(measure_overhead(self.model, train_data, n))
            self.logger.info("adapter overhead: %s", self.extra_cost)
        return result

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        parts = getattr(self.model, "last_losses", None)
        self.epoch_extras = {"lr_end": self.optimizer.param_groups[0]["lr"]}
        if parts:
            self.epoch_extras["last_batch_losses"] = dict(parts)
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


IDLEAdapterTrainer = LMTrainer
RARecTrainer = LMTrainer
