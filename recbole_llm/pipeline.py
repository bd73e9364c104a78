"""One benchmark run as explicit stages, each handing the next what it made.

RecBole's ``quick_start.run_recbole`` is a straight line of calls; this is the same line with
the step an LLM recommender adds (IDLE-Adapter and RA-Rec consume a frozen, pretrained ID model):

1. the config (:func:`recbole_llm.quick_start.build_config`: YAML defaults, the dataset
   checked against it);
2. every check that needs no training (:meth:`LLMSequentialRecommender.preflight`: prompts,
   the LM's tokenizer, items without text), before anything trains;
3. the ID model (:func:`ensure_id_model`): reused from the cache or trained now, through this
   same pipeline, so it is exactly the benchmark's row of that model; its checkpoint goes into
   the LLM run's config (``id_model_checkpoint``), and the model only loads it;
4. training and evaluation (:func:`recbole_llm.quick_start.train_and_evaluate`, RecBole's trainer);
5. the run record (:func:`recbole_llm.record.make_record`), and, for an ID model,
   its checkpoint offered to the ID-model cache (:func:`recbole_llm.id_models.cache_run`).

The runner (``run_benchmark.py``, ``--jobs``) and the sweeps call :func:`run`.
"""

import logging
from pathlib import Path

from recbole_llm.config import REPO_ROOT
from recbole_llm.errors import UserError
from recbole_llm.id_models import SUPPORTED, cache_path, cache_run, cached_checkpoint, id_model_request
from recbole_llm.model.llm_base import LLMSequentialRecommender
from recbole_llm.quick_start import build_config, finish, run_key, train_and_evaluate
from recbole_llm.record import make_record
from recbole_llm.utils import get_model


def ensure_id_model(config, saved_dir=None):
    """Path of the frozen ID model's checkpoint for the LLM run ``config``.

    ``id_model_checkpoint`` when the config sets one; else the ID-model cache's entry for the ID
    model's own config (:func:`recbole_llm.id_models.id_model_request`: its YAML, the run's budget,
    seed and data keys), trained now by :func:`run` when missing or damaged. Raises
    :class:`UserError` for an unsupported ``id_model``.
    """
    if config["id_model_checkpoint"]:
        return Path(config["id_model_checkpoint"])
    name, files, extra = id_model_request(config)
    if name not in SUPPORTED:
        raise UserError(f"unsupported ID model '{name}' (id_model); supported: {', '.join(SUPPORTED)}")
    saved_dir = Path(saved_dir or Path(config["checkpoint_dir"]).parent).resolve()
    id_config = build_config(name, config["dataset"], config["seed"], files, extra, config["data_root"], saved_dir)
    path = cached_checkpoint(id_config, saved_dir)
    log = logging.getLogger(__name__)
    if path is not None:
        log.info("reusing ID model %s", path)
        return path
    path, _ = cache_path(id_config, saved_dir)
    log.info("training ID model %s on %s (cache miss: %s)", name, config["dataset"], path)
    run(name, config["dataset"], config["seed"], files, extra, config["data_root"], saved_dir)
    if not path.is_file():
        raise UserError(f"training ID model {name} did not produce {path}")
    return path


def run(model, dataset, seed=None, config_files=(), config_dict=None, data_path=None, saved_dir=None,
        show_progress=None, callback_fn=None, evaluate_test=True, preflight=True):
    """Train ``model`` (a name, or a model class of your own) on ``dataset`` with ``seed`` through
    every stage; return the run record.

    ``callback_fn(epoch_idx, valid_score)`` is passed to RecBole's ``fit`` (sweeps report there);
    ``evaluate_test=False`` skips the test split (a sweep selects on validation only; the
    record's ``test`` is then ``None``). ``preflight=False`` skips stage 2, for a caller that has
    just made those checks itself (the runner checks every model of a command before the first
    run). An interrupted run of the same config and code continues from its last validated epoch
    (``resume_training``).
    """
    saved_dir = Path(saved_dir or REPO_ROOT / "saved").resolve()
    config = build_config(model, dataset, seed, config_files, config_dict, data_path, saved_dir)
    if show_progress is not None:
        config["show_progress"] = bool(show_progress)
    key = run_key(config)  # what the runner checks for an existing record: before the ID-model path is added
    model_class = model if isinstance(model, type) else get_model(config["model"])
    if issubclass(model_class, LLMSequentialRecommender):
        if preflight:
            model_class.preflight(config)  # every check that needs no training, before the ID model trains
        config["id_model_checkpoint"] = str(ensure_id_model(config, saved_dir))
    result = train_and_evaluate(config, saved_dir, key, callback_fn, evaluate_test, model_class)
    record = make_record(result)
    finish(result)
    cache_run(record, config, saved_dir)  # an ID model's run becomes the cached base of the LLM rows
    return record
