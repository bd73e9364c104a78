"""A trained run, loaded, and its recommendations: after the record, the model out.

:func:`load_run` takes what a run left (its record under ``results/<dataset>/runs/``, its folder
``saved/runs/<dataset>/<Model>-seed<seed>-<run_key>/`` or a checkpoint ``.pth``) and rebuilds what
it trained and evaluated: the config, the dataset and its three dataloaders, and the model with
its best weights, in eval mode, on a device. An LLM model's frozen ID model is found through the
record (``parameters.id_model_checkpoint``, checked against ``id_model.sha256``), wherever the
``saved/`` folder now lies. :func:`recommend` turns it into top-k item tokens, scores and titles
for the dataset's users or for raw histories of item tokens.

Why not RecBole's ``recbole.quick_start.load_data_and_model``: it unpickles the whole checkpoint
(torch >= 2.6 refuses that by default, and a checkpoint of this package holds plain values so
that it loads with ``weights_only=True``), rebuilds the data with RecBole's own ``Dataset`` (not
the exact-time one the run trained on) and finds only RecBole's models. On a checkpoint of this
package it now fails with one line naming :func:`load_run` (:mod:`recbole_llm.compat`).

How the config is rebuilt: the checkpoint stores every config value as plain data, including the
ones RecBole derives (``MODEL_TYPE``, ``device``, the normalised sampling arguments); passing
those back would be read as user settings. So a fresh ``Config`` of the model and dataset is
built, and every stored value that differs from it (the run's ``--key=value``, budget and YAML
settings) is passed as an override, except the derived and machine-specific keys
(:data:`NOT_PASSED`): the same keys as the run's, so the same :func:`~recbole_llm.identity.run_key`
where the code and data have not changed.

Masking: RecBole 1.2.1's full-ranking evaluation sets the padding item to -inf, and for *general*
models (BPR, LightGCN, ...) also the user's earlier interactions; for *sequential* models it masks
nothing else (a user may be recommended an item of their history). :func:`recommend` masks the
padding item always and, by default (``exclude_seen=True``), every item the query has seen: for a
user, all of the user's interactions in the dataset; for a raw history, its items. Recommending
next items is what a caller of a trained model usually wants, and it keeps the general models'
evaluation rule; ``exclude_seen=False`` gives the sequential evaluator's exact ranking.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from recbole_llm.checkpoint import checkpoint_config, load_checkpoint, to_primitive
from recbole_llm.config import REPO_ROOT
from recbole_llm.errors import UserError
from recbole_llm.paths import path_roots, resolve_path

# Stored config keys not passed back when a run's config is rebuilt: RecBole derives them from the
# others, or they name this machine's folders and device (load_run sets those itself).
NOT_PASSED = frozenset({
    "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type", "device", "single_spec", "local_rank", "valid_neg_sample_args",
    "test_neg_sample_args", "data_path", "data_root", "checkpoint_dir", "gpu_id", "use_gpu", "id_model_checkpoint",
    "config_files", "config_file",
})


@dataclass
class LoadedRun:
    """A trained run: ``config`` (recbole-llm's RecBole ``Config``), ``model`` (its best weights, in
    eval mode, on ``config["device"]``), ``dataset`` and ``train_data``/``valid_data``/``test_data``
    (RecBole's objects, as the run built them), ``record`` (when loaded from one) and ``checkpoint``."""

    config: object
    model: torch.nn.Module
    dataset: object
    train_data: object
    valid_data: object
    test_data: object
    checkpoint: Path
    record: Optional[dict] = None
    user_items: dict = field(default_factory=dict, repr=False)  # internal user id -> its items, as loaded
    _titles: object = field(default=None, repr=False)

    @property
    def device(self):
        return self.config["device"]

    def as_recbole(self):
        """``(config, model, dataset, train_data, valid_data, test_data)``: what RecBole's
        ``load_data_and_model`` returns."""
        return self.config, self.model, self.dataset, self.train_data, self.valid_data, self.test_data

    def titles(self):
        """The dataset's item titles (:class:`recbole_llm.data.item_text.ItemText`), or None when the
        dataset has no ``item_text_field`` or no such column."""
        if self._titles is None:
            from recbole_llm.data.item_text import ItemText

            field_name = self.config["item_text_field"]  # None where the dataset has none (RecBole's Config)
            try:
                self._titles = ItemText.from_dataset(self.dataset, field_name) if field_name else False
            except UserError:
                self._titles = False
        return self._titles or None


@contextlib.contextmanager
def _keep_visible_devices():
    """RecBole's ``Config`` sets ``CUDA_VISIBLE_DEVICES`` to its ``gpu_id``; loading a run in the
    caller's process must not narrow the caller's GPUs (the device is ``load_run``'s argument)."""
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def _locate(path, roots):
    """``(checkpoint path, record or None)`` of a record, a run folder or a checkpoint."""
    path = Path(path)
    if path.is_dir():
        best = path / "best.pth"
        if not best.is_file():
            raise UserError(f"{path} holds no best.pth: pass a run folder saved/runs/<dataset>/<Model>-seed<seed>-<key>/, "
                            "its record (.json) or a checkpoint (.pth)")
        return best, None
    if not path.is_file():
        raise UserError(f"{path} does not exist: pass a run record (.json), a run folder or a checkpoint (.pth)")
    if path.suffix == ".json":
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise UserError(f"run record {path} cannot be read ({' '.join(str(err).split())})") from None
        if not isinstance(record, dict) or not record.get("checkpoint"):
            raise UserError(f"{path} is not a run record with a checkpoint (a sweep trial's record keeps none)")
        checkpoint = resolve_path(record["checkpoint"], roots)
        if not checkpoint.is_file():
            raise UserError(f"the checkpoint of record {path}, {record['checkpoint']}, is not at {checkpoint}: pass "
                            "saved_dir (--saved-dir) the saved/ folder the run wrote")
        return checkpoint, record
    return path, None


def _id_model_checkpoint(record, stored, roots, saved_dir, trust=False):
    """The frozen ID model of an LLM run: the record's path (resolved under this machine's roots),
    then the checkpoint's own, then ``<saved>/id_models/<dataset>/`` by file name; checked against
    the record's sha256 when it has one."""
    from recbole_llm.identity import file_sha256
    from recbole_llm.id_models import weights_sha256

    candidates = []
    if record:
        for value in ((record.get("parameters") or {}).get("id_model_checkpoint"),
                      (record.get("config") or {}).get("id_model_checkpoint")):
            if value:
                candidates.append(resolve_path(value, roots))
    if stored.get("id_model_checkpoint"):
        own = Path(str(stored["id_model_checkpoint"]))
        candidates += [own, Path(saved_dir) / "id_models" / str(stored["dataset"]) / own.name]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        shown = ", ".join(dict.fromkeys(str(p) for p in candidates)) or "none named"
        raise UserError(f"the frozen ID model of this {stored.get('model')} run is not found (looked at {shown}): pass "
                        "saved_dir (--saved-dir) the saved/ folder the run wrote")
    named = (record or {}).get("id_model") or {}
    # by its weights where the record names them (the same weights re-made elsewhere pass); an older
    # record names the checkpoint file's bytes
    field, expected, digest = (("weights_sha256", named["weights_sha256"], lambda p: weights_sha256(p, trust))
                               if named.get("weights_sha256") else ("sha256", named.get("sha256"), file_sha256))
    if expected and digest(found) != expected:
        raise UserError(f"{found} is not the ID model this run was trained on (its sha256 differs from the record's "
                        f"id_model.{field} {expected[:12]}...): pass the saved/ folder the run wrote")
    return found


def rebuilt_overrides(stored, fresh):
    """The stored config values to pass back (see the module docstring): those that differ from the
    ``fresh`` Config's, without :data:`NOT_PASSED`. RecBole's normalised ``train_neg_sample_args``
    of no sampling (``distribution: none``) is passed as ``None``, the value it was made from."""
    values = getattr(fresh, "final_config_dict", fresh)
    out = {}
    for key, value in stored.items():
        if key in NOT_PASSED:
            continue
        if key in values and to_primitive(values[key]) == value:
            continue
        if key == "train_neg_sample_args" and isinstance(value, dict) and value.get("distribution") == "none":
            value = None
        out[key] = value
    return out


def load_run(path, device=None, *, saved_dir=None, data_path=None, trust=False, overrides=None) -> LoadedRun:
    """Load a trained run from its record (``results/<dataset>/runs/*.json``), its run folder or a
    checkpoint (``.pth``) written by this package; return a :class:`LoadedRun`.

    ``saved_dir``/``data_path``: the ``saved/`` and data folders a record's portable paths
    (``{saved}/...``, ``{data}/...``) resolve against, and where the data is read (default: the
    checkout's ``saved/`` and ``dataset/``). ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``
    (default: CUDA when there is a GPU). ``trust``: unpickle a checkpoint that holds Python objects
    (a model whose fitted state is no tensor; a plain-RecBole checkpoint). ``overrides``: config
    values to change (``{"lm_name": ...}`` where the LM has moved). Raises :class:`UserError` when
    a file is missing, the data changed since the run trained, or the weights do not fit.
    """
    from recbole_llm.data.dataset import create_dataset, data_preparation
    from recbole_llm.identity import data_fingerprint
    from recbole_llm.model.llm_base import LLMSequentialRecommender
    from recbole_llm.quick_start import build_config
    from recbole_llm.spec import RunSpec
    from recbole_llm.utils import get_model

    saved_dir = Path(saved_dir or REPO_ROOT / "saved").resolve()
    data_path = Path(data_path or REPO_ROOT / "dataset").resolve()
    roots = path_roots(data_path, saved_dir)
    checkpoint_path, record = _locate(path, roots)
    checkpoint = load_checkpoint(checkpoint_path, map_location="cpu", trust=trust)
    stored = checkpoint_config(checkpoint)
    if not stored.get("model") or not stored.get("dataset"):
        raise UserError(f"{checkpoint_path} holds weights without a config (a bare state dict): load_run needs a "
                        "checkpoint written by a recbole-llm run (saved/runs/.../best.pth)")
    model_class = get_model(stored["model"])
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with _keep_visible_devices():
        base = RunSpec(model_class, stored["dataset"], stored.get("seed"), (), {}, data_path, saved_dir)
        values = rebuilt_overrides(stored, build_config(base))
        if issubclass(model_class, LLMSequentialRecommender):
            values["id_model_checkpoint"] = str(_id_model_checkpoint(record, stored, roots, saved_dir, trust))
        values.update(overrides or {})
        if trust:
            values["trust_checkpoint"] = True
        config = build_config(base.replace(overrides=values))
        config["device"] = device
        expected = (record or {}).get("data_fingerprint")
        if expected and data_fingerprint(config) != expected:
            raise UserError(f"the files of dataset '{config['dataset']}' under {data_path} are not the ones this run "
                            f"was trained on (data fingerprint {data_fingerprint(config)}, the record says {expected}): "
                            "its ids would name other users and items; pass data_path (--data-path) the data it "
                            "trained on")
        from recbole.utils import init_seed

        init_seed(config["seed"], config["reproducibility"])
        if issubclass(model_class, LLMSequentialRecommender):
            from recbole_llm.data.tuning import create_dataset as create_tuning_dataset

            data = create_tuning_dataset(config)
        else:
            data = create_dataset(config)
        user_items = _items_per_user(data)  # before data_preparation: a sequential dataset augments inter_feat
        train_data, valid_data, test_data = data_preparation(config, data)
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = model_class(config, train_data._dataset).to(device)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        first = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line or "key" in line),
                     str(err).strip().splitlines()[0])
        raise UserError(f"the weights of {checkpoint_path} do not fit {model_class.__name__} built on this data "
                        f"({first}): the data or the config differs from the run's") from None
    model.load_other_parameter(checkpoint.get("other_parameter"))
    model.eval()
    return LoadedRun(config, model, data, train_data, valid_data, test_data, Path(checkpoint_path), record, user_items)


def _items_per_user(dataset):
    """Internal user id -> its items (internal ids) in the order loaded, from the interactions."""
    feat = dataset.inter_feat
    users = np.asarray(feat[dataset.uid_field])
    items = np.asarray(feat[dataset.iid_field])
    if dataset.time_field and dataset.time_field in feat:
        order = np.lexsort((np.asarray(feat[dataset.time_field]), users))  # by user, then time
    else:
        order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    bounds = np.flatnonzero(np.diff(users)) + 1
    return {int(group[0]): its for group, its in zip(np.split(users, bounds), np.split(items, bounds)) if len(group)}


def _user_sequence(run, uid):
    """The user's most recent items (internal ids), as the model reads a history: the test split's
    sample (the history the evaluator ranked from) plus its target, in the run's exact order."""
    test = run.test_data._dataset.inter_feat if run.test_data is not None else None
    seq_field = run.model.ITEM_SEQ
    if test is not None and seq_field in test:
        rows = (test[run.dataset.uid_field] == uid).nonzero(as_tuple=True)[0]
        if len(rows):
            row = int(rows[-1])
            length = int(test[run.model.ITEM_SEQ_LEN][row])
            return [*test[seq_field][row][:length].tolist(), int(test[run.dataset.iid_field][row])]
    return [int(i) for i in run.user_items.get(int(uid), [])]


def _ids(run, field, tokens, what):
    try:
        return [int(i) for i in run.dataset.token2id(field, [str(t) for t in tokens])]
    except ValueError:
        known = set(run.dataset.field2token_id[field])
        unknown = [str(t) for t in tokens if str(t) not in known]
        raise UserError(f"unknown {what} {', '.join(map(repr, unknown[:5]))} in dataset '{run.config['dataset']}' "
                        f"(the {what}s are its {field} tokens, e.g. {', '.join(list(known)[1:4])})") from None


def _scores(run, interaction):
    """Full-ranking scores ``[B, n_items]`` as RecBole's evaluator computes them (``full_sort_predict``,
    else ``predict`` over every item)."""
    model = run.model
    n_items = run.dataset.item_num
    with torch.no_grad():
        try:
            scores = model.full_sort_predict(interaction)
        except NotImplementedError:
            from recbole.data.interaction import Interaction

            batch = len(interaction)
            repeated = interaction.repeat_interleave(n_items)
            repeated.update(Interaction({run.dataset.iid_field: torch.arange(n_items, device=run.device).repeat(batch)}))
            scores = model.predict(repeated)
    return scores.view(-1, n_items).float()


def recommend(run: LoadedRun, users: Optional[Sequence] = None, histories: Optional[Sequence[Sequence]] = None,
              k: int = 10, exclude_seen: bool = True, batch_size: int = 256) -> list:
    """Top-``k`` items for each of ``users`` (the dataset's user tokens) or each of ``histories``
    (lists of item tokens, oldest first), from a :func:`load_run` run.

    A user's history is the dataset's: the items the model reads for the user's next item (all of
    the user's interactions, the most recent ``MAX_ITEM_LIST_LENGTH`` for a sequential model). A
    raw history is scored as it is (a model that embeds the user id, e.g. Caser, reads it as the
    padding user); a general model (BPR, LightGCN, ...) scores users by id only and takes no
    histories. ``exclude_seen``: leave out the items the query has seen (see the module docstring);
    the padding item is always left out, and so is any item scored ``-inf``.

    Returns one dict per query: ``user`` (token, or None for a history), ``items`` (tokens, best
    first), ``scores`` (the model's scores) and, where the dataset has an ``item_text_field``,
    ``titles``.
    """
    from recbole.data.interaction import Interaction
    from recbole.utils import ModelType

    if (users is None) == (histories is None):
        raise UserError("recommend: pass users (user tokens) or histories (lists of item tokens), one of the two")
    if int(k) < 1:
        raise UserError(f"recommend: k must be >= 1, got {k}")
    dataset, model, config = run.dataset, run.model, run.config
    uid_field, iid_field = dataset.uid_field, dataset.iid_field
    sequential = config["MODEL_TYPE"] == ModelType.SEQUENTIAL
    if histories is not None and not sequential:
        raise UserError(f"{config['model']} is a general model: it scores users by id, not item histories; pass users")
    queries = []  # (user token or None, internal uid, [item ids the model reads], seen item ids)
    if users is not None:
        for token, uid in zip(users, _ids(run, uid_field, list(users), "user")):
            sequence = _user_sequence(run, uid) if sequential else []
            queries.append((str(token), uid, sequence, run.user_items.get(uid, np.array([], dtype=np.int64))))
    else:
        for history in histories:
            items = _ids(run, iid_field, list(history), "item")
            if not items:
                raise UserError("recommend: an empty history; give at least one item token")
            queries.append((None, 0, items, np.array(items, dtype=np.int64)))
    titles = run.titles()
    max_len = int(config["MAX_ITEM_LIST_LENGTH"]) if sequential else 0
    out = []
    for start in range(0, len(queries), batch_size):
        chunk = queries[start:start + batch_size]
        values = {uid_field: torch.tensor([q[1] for q in chunk], dtype=torch.long)}
        if sequential:
            seq = torch.zeros(len(chunk), max_len, dtype=torch.long)
            lengths = torch.zeros(len(chunk), dtype=torch.long)
            for row, (_, _, items, _) in enumerate(chunk):
                recent = items[-max_len:]
                seq[row, :len(recent)] = torch.tensor(recent, dtype=torch.long)
                lengths[row] = len(recent)
            values[model.ITEM_SEQ], values[model.ITEM_SEQ_LEN] = seq, lengths
        scores = _scores(run, Interaction(values).to(run.device))
        scores[:, 0] = -torch.inf
        if exclude_seen:
            for row, (_, _, _, seen) in enumerate(chunk):
                if len(seen):
                    scores[row, torch.as_tensor(seen, dtype=torch.long, device=scores.device)] = -torch.inf
        top_scores, top_items = torch.topk(scores, min(int(k), scores.shape[1]), dim=1)
        for row, (token, _, _, _) in enumerate(chunk):
            keep = torch.isfinite(top_scores[row])
            ids = top_items[row][keep].tolist()
            entry = {"user": token, "items": [str(t) for t in dataset.id2token(iid_field, ids)] if ids else [],
                     "scores": [float(s) for s in top_scores[row][keep].tolist()]}
            if titles is not None:
                entry["titles"] = [titles.title(i) for i in ids]
            out.append(entry)
    return out


__all__ = ["LoadedRun", "NOT_PASSED", "load_run", "rebuilt_overrides", "recommend"]
