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

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and eval_data:
            self.load_best(model_file)
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

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


_CACHE = {}


def safe_trainer(cls):
    """``cls`` with :class:`SafeCheckpointMixin` mixed in (one derived class per base)."""
    if issubclass(cls, SafeCheckpointMixin):
        return cls
    if cls not in _CACHE:
        _CACHE[cls] = type(f"Safe{cls.__name__}", (SafeCheckpointMixin, cls), {"__doc__": cls.__doc__})
    return _CACHE[cls]


SafeTrainer = safe_trainer(Trainer)
