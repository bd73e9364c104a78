"""RecBole datasets whose time order is the order of the exact times in the atomic file.

RecBole 1.2.1 reads a ``float`` field as float64 (``Dataset._load_feat``) but stores it as
float32 once the DataFrame becomes an ``Interaction`` (``Dataset._change_feat_format``), and only
then sorts by time: for ``eval_args.order: TO`` in ``Dataset.build`` and, for sequential models,
by ``[user, time]`` in ``SequentialDataset.data_augmentation``. float32 keeps 24 significant
bits, so Unix times near 1.7e9 are rounded to multiples of 128 s: interactions less than about
two minutes apart get equal keys, the (stable) sort leaves them in file order, and a file stored
newest-first then yields histories in the wrong order and wrong validation/test targets.

The fix here sorts the interactions by the exact (float64) time, stably, just before RecBole's
conversion, so every later stable sort RecBole does on the rounded keys keeps that order: the
rounding is monotone, so two rows can only tie after rounding if nothing lies between them.
Rows with exactly equal times keep file order, as in RecBole. Nothing else changes; a dataset
built with ``benchmark_filename`` (pre-split files) or ``order: RO`` is left as RecBole builds it.

The same subclasses carry :class:`recbole_llm.data.fills.CopyOnWriteFills` (RecBole's missing-value
fills, made to work under pandas Copy-on-Write), and check, when RecBole builds the splits and
before anything trains, what would otherwise fail after the whole budget or inside RecBole
(:meth:`ExactTimeOrder.build`: a split left empty; :func:`data_preparation`: ``topk`` cut-offs
beyond the items).

RecBole unpickles a saved dataset (``<checkpoint_dir>/<dataset>-<class>.pth``) and saved
dataloaders (``<dataset>-for-<model>-dataloader.pth``) whenever the file is there, whatever
``save_dataset``/``save_dataloaders`` say, and unpickling runs whatever code the file names:
:func:`create_dataset` and :func:`data_preparation` read them only under ``trust_checkpoint``
(``--trust-checkpoint``), as :mod:`recbole_llm.checkpoint` does for checkpoints, and otherwise
build the data again with one warning.

Why a subclass per RecBole dataset class rather than one patch: an extension changes RecBole's
behaviour through its own classes (:func:`create_dataset` picks them as RecBole's own
``create_dataset`` picks RecBole's), and a module-level class pickles, so RecBole's
``save_dataset`` and saved dataloaders keep working.
"""

import logging
import os
import pickle

import numpy as np
import recbole.data.dataset as recbole_datasets
from recbole.utils import ModelType
from recbole.utils.argument_list import dataset_arguments

from recbole_llm.data.fills import CopyOnWriteFills
from recbole_llm.errors import UserError

logger = logging.getLogger(__name__)

PREFIX = "ExactTime"

# RecBole's filters, each with the value that filters nothing (what the fix in a message may loosen).
FILTERS = {"user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)", "val_interval": None,
           "rm_dup_inter": None}


class ExactTimeOrder:
    """Mixin for a RecBole ``Dataset`` class: sort ``inter_feat`` by the exact time before RecBole
    turns it into float32 (see the module docstring)."""

    def _change_feat_format(self):
        self.sort_by_exact_time()
        super()._change_feat_format()

    def build(self):
        """RecBole's ``build`` (order, split), refused with one line, before any dataloader is made
        and so before anything trains, where a split the config asks for is empty
        (:func:`check_split`): RecBole fails on an empty train split when it makes the dataloader,
        and trains the whole budget on an empty validation split before it has no result to report."""
        per_user = interactions_per_user(self)  # before the split: a sequential build augments inter_feat
        built = super().build()
        check_split(self, built, per_user)
        return built

    def _reset_index(self):
        """RecBole's, with its ``ValueError`` for a table its filters left empty (a traceback from
        inside the dataset's constructor) as one line naming the file and the filters."""
        for name in self.feat_name_list:
            feat = getattr(self, name, None)
            if feat is not None and getattr(feat, "empty", False):
                suffix = {"inter_feat": "inter", "user_feat": "user", "item_feat": "item"}.get(name, name)
                filters = _active_filters(self.config)
                fix = f"loosen the filters ({filters}) or add interactions" if filters else "add interactions"
                raise UserError(f"dataset '{self.config['dataset']}' is too small: no row of its .{suffix} file is "
                                f"left after RecBole's filters: {fix}")
        super()._reset_index()

    def save(self):
        """RecBole's ``Dataset.save`` (into ``<checkpoint_dir>/<dataset>-<class>.pth``), written to a
        temporary file and renamed, so a kill or a full disk never leaves a file cut short."""
        from recbole.utils import ensure_dir

        from recbole_llm.fsutil import atomic_path

        save_dir = self.config["checkpoint_dir"]
        ensure_dir(save_dir)
        file = os.path.join(save_dir, f'{self.config["dataset"]}-{self.__class__.__name__}.pth')
        self.logger.info(f"Saving filtered dataset into [{file}]")
        with atomic_path(file) as tmp, open(tmp, "wb") as f:
            pickle.dump(self, f)

    def sort_by_exact_time(self):
        """Reorder the interactions (still a DataFrame, float64 times) by time, stably.

        Applies when RecBole will order by time: ``eval_args.order`` is ``TO`` and the data are
        not pre-split (``benchmark_filename``). Returns True when it sorted.
        """
        import pandas as pd

        feat = self.inter_feat
        if (not isinstance(feat, pd.DataFrame) or self.time_field is None or self.time_field not in feat
                or self.config["benchmark_filename"] is not None or self.config["eval_args"]["order"] != "TO"):
            return False
        self.inter_feat = feat.sort_values(by=self.time_field, kind="stable").reset_index(drop=True)
        return True


def _exact_time_class(base):
    name = PREFIX + base.__name__
    cls = type(name, (ExactTimeOrder, CopyOnWriteFills, base), {
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": f"RecBole's ``{base.__name__}`` ordered by the exact times (:class:`ExactTimeOrder`), "
                   f"with fills that work under pandas Copy-on-Write (:class:`CopyOnWriteFills`).",
    })
    globals()[name] = cls  # module-level, so that pickle finds it
    return cls


# One subclass per dataset class RecBole exports (Dataset, SequentialDataset, KnowledgeBasedDataset,
# KGSeqDataset, DecisionTreeDataset and the model-specific ones such as DIENDataset).
_CLASSES = {
    name: _exact_time_class(obj) for name, obj in vars(recbole_datasets).items()
    if isinstance(obj, type) and issubclass(obj, recbole_datasets.Dataset)
}
ExactTimeDataset = _CLASSES["Dataset"]
ExactTimeSequentialDataset = _CLASSES["SequentialDataset"]

_TYPE_TO_CLASS = {
    ModelType.GENERAL: "Dataset",
    ModelType.SEQUENTIAL: "SequentialDataset",
    ModelType.CONTEXT: "Dataset",
    ModelType.KNOWLEDGE: "KnowledgeBasedDataset",
    ModelType.TRADITIONAL: "Dataset",
    ModelType.DECISIONTREE: "Dataset",
}


def dataset_class(config):
    """The exact-time subclass of the class RecBole's ``create_dataset`` would pick: the model's
    own ``<Model>Dataset`` if RecBole has one, else by ``MODEL_TYPE``."""
    name = config["model"] + "Dataset"
    if name not in _CLASSES:
        name = _TYPE_TO_CLASS[config["MODEL_TYPE"]]
    return _CLASSES[name]


def trusted(config):
    """Whether ``config`` allows unpickling files (``trust_checkpoint``, ``--trust-checkpoint``)."""
    try:
        return bool(config["trust_checkpoint"])
    except KeyError:
        return False


_WARNED = set()  # (what, file) already warned about in this process: one line each, not one per call


def _warn_once(key, message, *args):
    if key not in _WARNED:
        _WARNED.add(key)
        logger.warning(message, *args)


def _untrusted_pickle(file, what, config):
    """True when ``file`` (RecBole's saved ``what``) exists and may not be unpickled: the warning
    says so once. Under ``trust_checkpoint`` an existing file is read, and the warning says that."""
    if not os.path.exists(file):
        return False
    if trusted(config):
        _warn_once(("trusted", file), "unpickling the saved %s %s because trust_checkpoint is set", what, file)
        return False
    _warn_once(("ignored", file), "not reading the saved %s %s: unpickling a file can run any code it names; it is "
               "built again (pass --trust-checkpoint, config trust_checkpoint: True, to reuse a file you made)",
               what, file)
    return True


def _warn_saving(option, file, config):
    if config[option] and not trusted(config):
        _warn_once(("saving", file), "%s writes %s, which later runs reuse only with --trust-checkpoint "
                   "(config trust_checkpoint: True)", option, file)


def create_dataset(config, cls=None):
    """RecBole's ``create_dataset`` with :class:`ExactTimeOrder` datasets (``cls`` overrides the
    class, e.g. a subclass of :data:`ExactTimeSequentialDataset`).

    Like RecBole's, it reuses ``dataset_save_path`` (default ``<checkpoint_dir>/<dataset>-<class>.pth``)
    when the file holds a dataset of the same class made with the same dataset arguments, and
    saves one with ``save_dataset``; unlike RecBole's, only under ``trust_checkpoint``: the file
    is a pickle, and ``saved/`` may be shared (a cluster's runs), so without trust it is never
    read, only built again (one warning). The class name differs from RecBole's, so a file
    RecBole saved (ordered at float32 precision) is never reused; nor is a file that does not
    unpickle (cut short by a kill or a full disk, or saved by other code), which is built again
    with a warning.
    """
    cls = cls or dataset_class(config)
    default_file = os.path.join(config["checkpoint_dir"], f"{config['dataset']}-{cls.__name__}.pth")
    file = config["dataset_save_path"] or default_file
    if not _untrusted_pickle(file, "dataset", config) and os.path.exists(file):
        try:
            with open(file, "rb") as f:
                dataset = pickle.load(f)  # noqa: S301 (trust_checkpoint: see _untrusted_pickle)
        except (pickle.UnpicklingError, EOFError, OSError, AttributeError, ImportError, IndexError, TypeError,
                ValueError) as err:  # a file cut short or of other code: a cache miss, not an error
            logger.warning("not reusing the saved dataset %s, which cannot be read (%s); building it again",
                           file, " ".join(f"{type(err).__name__}: {err}".split()))
            dataset = None
        if type(dataset) is cls and all(config[a] == dataset.config[a]
                                        for a in dataset_arguments + ["seed", "repeatable"]):
            logger.info("Load filtered dataset from: [%s]", file)
            return dataset
    dataset = cls(config)
    if config["save_dataset"]:
        _warn_saving("save_dataset", default_file, config)
        dataset.save()
    return dataset


def dataloaders_file(config):
    """Where RecBole reads and writes the split dataloaders of ``config`` (``dataloaders_save_path``,
    default ``<checkpoint_dir>/<dataset>-for-<model>-dataloader.pth``)."""
    return config["dataloaders_save_path"] or os.path.join(
        config["checkpoint_dir"], f"{config['dataset']}-for-{config['model']}-dataloader.pth")


def data_preparation(config, dataset):
    """RecBole's ``data_preparation`` (split, samplers, dataloaders), reading saved dataloaders only
    under ``trust_checkpoint``, after :func:`check_topk` (the dataloaders are made to be evaluated
    at those cut-offs).

    RecBole's unpickles :func:`dataloaders_file` whenever it exists, before it looks at anything
    else, and has no switch to skip that; so without trust the dataloaders are made here by the
    same calls RecBole's makes when no file is there (written out rather than calling RecBole's:
    its load cannot be turned off), and saved, with ``save_dataloaders``, by RecBole's own
    ``save_split_dataloaders``."""
    from recbole.data import data_preparation as recbole_data_preparation
    from recbole.data.utils import create_samplers, get_dataloader, save_split_dataloaders
    from recbole.sampler import KGSampler

    check_topk(dataset)
    file = dataloaders_file(config)
    default_file = os.path.join(config["checkpoint_dir"], f"{config['dataset']}-for-{config['model']}-dataloader.pth")
    if config["save_dataloaders"]:
        _warn_saving("save_dataloaders", default_file, config)
    if not _untrusted_pickle(file, "dataloaders", config):
        return recbole_data_preparation(config, dataset)
    built = dataset.build()
    train_sampler, valid_sampler, test_sampler = create_samplers(config, dataset, built)
    if config["MODEL_TYPE"] != ModelType.KNOWLEDGE:
        train_data = get_dataloader(config, "train")(config, built[0], train_sampler, shuffle=config["shuffle"])
    else:
        kg_sampler = KGSampler(dataset, config["train_neg_sample_args"]["distribution"],
                               config["train_neg_sample_args"]["alpha"])
        train_data = get_dataloader(config, "train")(config, built[0], train_sampler, kg_sampler, shuffle=True)
    valid_data = get_dataloader(config, "valid")(config, built[1], valid_sampler, shuffle=False)
    test_data = get_dataloader(config, "test")(config, built[2], test_sampler, shuffle=False)
    if config["save_dataloaders"]:
        save_split_dataloaders(config, dataloaders=(train_data, valid_data, test_data))
    return train_data, valid_data, test_data


# --------------------------------------------------------------------------- checks when built

def interactions_per_user(dataset):
    """Interactions per internal user id of ``dataset`` as loaded (after RecBole's filters, before a
    sequential build augments them): an int array, 0 for ids with none (padding, filtered out)."""
    if dataset.uid_field is None or dataset.inter_feat is None:
        return np.zeros(0, dtype=np.int64)
    users = dataset.inter_feat[dataset.uid_field]
    users = users.to_numpy() if hasattr(users, "to_numpy") else users.numpy()
    return np.bincount(np.asarray(users, dtype=np.int64), minlength=dataset.user_num)


def _source(config, key):
    source_of = getattr(config, "source_of", None)
    return f" (from {source_of(key)})" if source_of is not None else ""


def check_topk(dataset):
    """Raise :class:`UserError` when a ``topk`` cut-off is not below the number of items of the
    built ``dataset``: RecBole ranks every item (padding included) and fails inside its evaluator
    (``selected index k out of range``) on a cut-off above them, and a cut-off equal to the
    number of items puts every item in the top K (HR@K = 1 for any model)."""
    config = dataset.config
    topk = config["topk"]
    cutoffs = [topk] if isinstance(topk, int) else list(topk or [])
    n_items = dataset.item_num - 1  # RecBole's item ids count the padding id 0
    too_big = [k for k in cutoffs if isinstance(k, int) and k >= n_items]
    if too_big:
        kept = [k for k in cutoffs if k not in too_big] or [max(1, n_items // 2)]
        raise UserError(
            f"config key topk = {cutoffs}{_source(config, 'topk')} has cut-offs {too_big} that are not below the "
            f"{n_items} items of dataset '{config['dataset']}' (after RecBole's filters): every item would be in the "
            f"top K; use smaller cut-offs, e.g. --topk=[{','.join(map(str, kept))}] (and a valid_metric among them)"
        )


def _split_plan(config, sequential):
    """Per split (train, validation, test): whether ``eval_args.split`` gives it a share, and, for a
    leave-one-out split (``LS``), how many interactions a user needs to have a case in it (else
    None). RecBole leaves a user's last case out only while one stays for training, so with
    ``valid_and_test`` the test case comes before the validation case."""
    if config["benchmark_filename"] is not None:
        return (True, None), (True, None), (True, None)
    split = (config["eval_args"] or {}).get("split") or {}
    offset = 1 if sequential else 0  # a sequential dataset has one sample fewer than interactions per user
    if "LS" in split:
        mode = split["LS"]
        if mode == "valid_only":
            return (True, 1 + offset), (True, 2 + offset), (False, None)
        if mode == "test_only":
            return (True, 1 + offset), (False, None), (True, 2 + offset)
        return (True, 1 + offset), (True, 3 + offset), (True, 2 + offset)
    ratios = next(iter(split.values()), None) if split else None
    ratios = list(ratios) if isinstance(ratios, (list, tuple)) else [1, 1, 1]
    ratios += [0] * (3 - len(ratios))
    return tuple((bool(r), None) for r in ratios[:3])


def _active_filters(config):
    """RecBole's filters that ``config`` sets to filter something, as ``key: value`` text."""
    return "; ".join(f"{key}: {config[key]}" for key, off in FILTERS.items() if config[key] not in (off, None))


def check_split(dataset, built, per_user):
    """Raise :class:`UserError` when the train or the validation split (every run selects its best
    epoch on validation), or a test split ``eval_args.split`` gives a share, is empty after RecBole's
    ``build`` (``built``: train, validation, test); the message names the dataset, the counts and
    the fix. ``per_user``: :func:`interactions_per_user` before the build. RecBole itself fails on an
    empty train split with a sampler error, and on an empty validation split trains the whole
    budget and reports nothing (which was then blamed on epochs/eval_step)."""
    if len(built) != 3:
        return
    config = dataset.config
    sequential = isinstance(dataset, recbole_datasets.SequentialDataset)
    sizes = [len(d.inter_feat) if d.inter_feat is not None else 0 for d in built]
    names = ("train", "validation", "test")
    plan = _split_plan(config, sequential)
    empty = next((i for i in range(3) if sizes[i] == 0 and (plan[i][0] or i < 2)), None)
    if empty is None:
        return
    split = config["eval_args"]["split"] if config["benchmark_filename"] is None else None
    if not plan[empty][0]:  # the config gives it no share: no amount of data helps
        raise UserError(f"eval_args.split {split}{_source(config, 'eval_args')} makes no {names[empty]} split, and "
                        "training selects its best epoch on one: use {'LS': 'valid_and_test'} or give validation a "
                        "share")
    users = int((per_user > 0).sum())
    counts = (f"train {sizes[0]:,}, validation {sizes[1]:,}, test {sizes[2]:,} cases from {users:,} users and "
              f"{int(per_user.sum()):,} interactions after RecBole's filters")
    head = f"dataset '{config['dataset']}' is too small for "
    head += f"eval_args.split {split}" if split else f"its benchmark files {config['benchmark_filename']}"
    need = plan[empty][1]
    reason = ""
    if need is not None:
        most = int(per_user.max()) if per_user.size else 0
        model = "with a sequential model, " if sequential else ""
        reason = (f"; {model}a user has a {names[empty]} case only with >= {need} interactions, and the most any "
                  f"user has is {most}")
    if config["benchmark_filename"] is not None:
        fix = f"put interactions in its {names[empty]} file"
    elif need is not None:
        fix = f"add interactions (users with >= {need} each)"
    else:
        fix = f"add interactions, or give the {names[empty]} split a larger share of eval_args.split"
    if _active_filters(config):
        fix += f", or loosen the filters ({_active_filters(config)})"
    raise UserError(f"{head}: its {names[empty]} split is empty ({counts}){reason}: {fix}")


__all__ = ["ExactTimeOrder", "ExactTimeDataset", "ExactTimeSequentialDataset", "check_split", "check_topk",
           "create_dataset", "data_preparation", "dataloaders_file", "dataset_class", "trusted"]
