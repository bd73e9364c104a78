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
fills, made to work under pandas Copy-on-Write).

Why a subclass per RecBole dataset class rather than one patch: an extension changes RecBole's
behaviour through its own classes (:func:`create_dataset` picks them as RecBole's own
``create_dataset`` picks RecBole's), and a module-level class pickles, so RecBole's
``save_dataset`` and saved dataloaders keep working.
"""

import logging
import os
import pickle

import recbole.data.dataset as recbole_datasets
from recbole.utils import ModelType
from recbole.utils.argument_list import dataset_arguments

from recbole_llm.data.fills import CopyOnWriteFills

logger = logging.getLogger(__name__)

PREFIX = "ExactTime"


class ExactTimeOrder:
    """Mixin for a RecBole ``Dataset`` class: sort ``inter_feat`` by the exact time before RecBole
    turns it into float32 (see the module docstring)."""

    def _change_feat_format(self):
        self.sort_by_exact_time()
        super()._change_feat_format()

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


def create_dataset(config, cls=None):
    """RecBole's ``create_dataset`` with :class:`ExactTimeOrder` datasets (``cls`` overrides the
    class, e.g. a subclass of :data:`ExactTimeSequentialDataset`).

    Like RecBole's, it reuses ``dataset_save_path`` (default ``<checkpoint_dir>/<dataset>-<class>.pth``)
    when the file holds a dataset of the same class made with the same dataset arguments, and
    saves one with ``save_dataset``. The class name differs from RecBole's, so a file RecBole saved
    (ordered at float32 precision) is never reused.
    """
    cls = cls or dataset_class(config)
    default_file = os.path.join(config["checkpoint_dir"], f"{config['dataset']}-{cls.__name__}.pth")
    file = config["dataset_save_path"] or default_file
    if os.path.exists(file):
        with open(file, "rb") as f:
            dataset = pickle.load(f)
        same = all(config[a] == dataset.config[a] for a in dataset_arguments + ["seed", "repeatable"])
        if type(dataset) is cls and same:
            logger.info("Load filtered dataset from: [%s]", file)
            return dataset
    dataset = cls(config)
    if config["save_dataset"]:
        dataset.save()
    return dataset


__all__ = ["ExactTimeOrder", "ExactTimeDataset", "ExactTimeSequentialDataset", "create_dataset", "dataset_class"]
