"""Training-sample selection for the efficient-tuning stage (RA-Rec, Section 3.4; Table 5).

RA-Rec trains its alignment module on a small, carefully built subset of the training samples
instead of all of them. The paper builds that subset in two steps:

1. denoising: a sample (history -> target) is dropped when the target's title shares no word
   with the titles of the items in the history (a target unrelated to the history teaches the
   alignment module nothing about the user);
2. diversity: the remaining samples are bucketed by history length (user diversity) and target
   popularity (item diversity), and the subset is drawn uniformly across the buckets.

Table 5 compares three ways of building the training data, which are the values of the config
key ``data_strategy``: ``efficient`` (the two steps above), ``random`` (a uniform sample of the
same size, no denoising) and ``all``.

A "training sample" is one of RecBole's augmented sequential samples (``item_id_list``,
``item_length``, target ``item_id``, ``user_id``) of the train split. Only the train split is
subsampled; the validation and test splits stay RecBole's leave-one-out split, so a model
trained on a selection is evaluated on exactly the cases of one trained on ``all``.

The arithmetic lives in pure functions over numpy arrays (:func:`word_overlap`,
:func:`quantile_buckets`, :func:`water_fill`, :func:`select` of a :class:`Selection`);
:func:`select_training_samples` applies them to a built RecBole train dataset;
:class:`TuningSequentialDataset` plugs them into RecBole's ``Dataset.build`` and
:func:`create_dataset` picks that class when a selection is asked for, so RecBole's
``data_preparation`` works unchanged.
"""

import dataclasses
import logging
import os
import re
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from recbole.utils import ModelType

from recbole_llm.data.dataset import ExactTimeSequentialDataset
from recbole_llm.data.dataset import create_dataset as exact_time_create_dataset
from recbole_llm.data.dataset import dataloaders_file, trusted
from recbole_llm.data.item_text import ItemText
from recbole_llm.errors import UserError

logger = logging.getLogger(__name__)

STRATEGIES = ("efficient", "random", "all")

# Written out here rather than taken from NLTK: NLTK's list is a separate download
# (nltk.download("stopwords")) that fails offline, and the benchmark must run without network.
# These are the common English function words (NLTK's list, lower case); contraction pieces
# ("s", "t", "ll", ...) are in it because titles are split on every non-alphanumeric character.
ENGLISH_STOP_WORDS = frozenset("""
a about above after again against ain all am an and any are aren as at be because been before being
below between both but by can couldn d did didn do does doesn doing don down during each few for from
further had hadn has hasn have haven having he her here hers herself him himself his how i if in into
is isn it its itself just ll m ma me mightn more most mustn my myself needn no nor not now o of off on
once only or other our ours ourselves out over own re s same shan she should shouldn so some such t
than that the their theirs them themselves then there these they this those through to too under
until up ve very was wasn we were weren what when where which while who whom why will with won
wouldn y you your yours yourself yourselves
""".split())

_WORD = re.compile(r"[^\W_]+")  # runs of letters or digits (any script): split on everything else


# --------------------------------------------------------------------------- denoising (3.4)

def tokenize(text, stop_words=frozenset()):
    """Set of the lower-cased words of ``text``, split on non-alphanumeric characters, less ``stop_words``."""
    return {w for w in _WORD.findall(str(text).lower()) if w not in stop_words}


def item_word_matrix(titles, stop_words=frozenset()):
    """Item x word incidence matrix (CSR, 1 where the item's title holds the word).

    ``titles[i]`` is the title of internal item id ``i`` (``ItemText.titles``: 0 is padding).
    A sparse matrix rather than a list of Python sets so that :func:`word_overlap` runs in scipy's
    C loops: Amazon-Books-sized training sets have millions of samples x up to 50 history items.
    """
    vocab, rows, cols = {}, [], []
    for item, title in enumerate(titles):
        for word in tokenize(title, stop_words):
            rows.append(item)
            cols.append(vocab.setdefault(word, len(vocab)))
    data = np.ones(len(rows), dtype=np.int32)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(titles), max(len(vocab), 1)))


def word_overlap(history, lengths, targets, words, chunk_size=4096):
    """Per sample, how many (history item, word) pairs share a word with the target's title.

    ``history`` is RecBole's padded ``item_id_list`` (n x L), ``lengths`` its ``item_length``,
    ``targets`` the target ``item_id``, ``words`` an :func:`item_word_matrix`. Returns an int
    array: > 0 overlap, 0 no overlap (the paper's noisy sample), -1 undecidable because the target
    or the whole history has no words (no title, or only stop words).

    Undecidable samples are kept by the denoising step. The paper's rule measures relevance
    between two texts; when one side has no text there is no evidence of noise, only missing
    metadata, and dropping those samples would silently remove every item without a title from
    the tuning data (Amazon has many such items).
    """
    history = np.asarray(history)
    lengths = np.asarray(lengths).reshape(-1)
    targets = np.asarray(targets).reshape(-1)
    n = len(targets)
    out = np.zeros(n, dtype=np.int64)
    if n == 0:
        return out
    words = sp.csr_matrix(words)
    n_items = words.shape[0]
    has_words = np.diff(words.indptr) > 0
    positions = np.arange(history.shape[1])
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        valid = positions[None, :] < lengths[start:stop, None]
        rows, cols = np.nonzero(valid)
        items = history[start:stop][rows, cols]
        in_history = sp.csr_matrix((np.ones(len(items), dtype=np.int32), (rows, items)),
                                   shape=(stop - start, n_items))
        history_words = in_history @ words  # words of the history, with multiplicity
        shared = words[targets[start:stop]].multiply(history_words)
        counts = np.asarray(shared.sum(axis=1)).ravel()
        undecidable = ~has_words[targets[start:stop]] | (history_words.getnnz(axis=1) == 0)
        out[start:stop] = np.where(undecidable, -1, counts)
    return out


# --------------------------------------------------------------------------- diversity (3.4)

def quantile_buckets(values, n_buckets):
    """Bucket ids (0..n_buckets-1) of ``values`` and the edges, at quantiles of the distinct values.

    The edges are quantiles of the *distinct* values, not of the samples. Sample-weighted edges
    would give every bucket about the same number of samples, and equal quotas per bucket would
    then reproduce random sampling along that axis: no diversity gained. Over distinct values,
    each bucket spans as many history lengths (popularity levels) as the others, so the sparse
    ends (short histories, niche items) get the same share as the crowded middle. Duplicate edges
    (fewer distinct values than buckets) leave some buckets empty; they get no quota.
    """
    values = np.asarray(values)
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    distinct = np.unique(values)
    edges = np.unique(np.quantile(distinct, np.linspace(0.0, 1.0, int(n_buckets) + 1)[1:-1]))
    return np.searchsorted(edges, values, side="right").astype(np.int64), edges


def water_fill(available, total):
    """Equal quotas over the non-empty buckets summing to exactly ``min(total, sum(available))``.

    A bucket with fewer samples than its quota gives all it has and the shortfall is shared by
    the others (water filling), smallest buckets first. Quotas of the unsaturated buckets differ
    by at most one: the last ``total mod k`` units go to the buckets with the most samples
    (ties: higher bucket index), so the allocation needs no random draw.
    """
    available = np.asarray(available, dtype=np.int64)
    if (available < 0).any():
        raise ValueError("available counts must be >= 0")
    quota = np.zeros_like(available)
    remaining = min(int(total), int(available.sum()))
    order = np.argsort(available, kind="stable")
    order = order[available[order] > 0]
    left = len(order)
    for pos, bucket in enumerate(order):
        share = remaining // left
        if available[bucket] <= share:
            quota[bucket] = available[bucket]
            remaining -= available[bucket]
            left -= 1
            continue
        rest = order[pos:]
        quota[rest] = share
        extra = remaining - share * len(rest)
        if extra:
            quota[rest[-extra:]] += 1
        break
    return quota


# --------------------------------------------------------------------------- selection

def resolve_size(data_size, n):
    """Number of samples asked for by ``data_size`` out of ``n`` training samples.

    A float is a fraction of *all* training samples (before denoising), so ``random`` and
    ``efficient`` at the same ``data_size`` ask for the same count, as Table 5 compares them; an
    int is a count; ``None`` is everything. The result may exceed what is available.
    """
    if data_size is None:
        return int(n)
    if isinstance(data_size, Integral):
        return int(data_size)
    return max(1, int(round(float(data_size) * n)))


@dataclasses.dataclass(frozen=True)
class Selection:
    """How to build the training subset: the config keys ``data_strategy``, ``data_size``,
    ``data_seed`` (or the run's ``seed``), ``length_buckets`` and ``popularity_buckets``, validated by
    :func:`tuning_options`.

    ``data_size``: a count (int), a fraction of all training samples (float) or ``None`` for all
    (:func:`resolve_size`); ``seed`` seeds the draw; the buckets are the quantile buckets of history
    length (user diversity) and target popularity (item diversity) of ``efficient``.
    """

    strategy: str = "all"
    data_size: int | float | None = None
    seed: int | None = 0
    length_buckets: int = 4
    popularity_buckets: int = 4


def select(n: int, selection: Selection = Selection(), keep: np.ndarray | None = None,
           lengths: np.ndarray | None = None, popularity: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Indices (ascending) of the training samples to keep, and a JSON-able summary.

    ``n`` training samples, drawn as ``selection`` says; ``keep`` the denoising mask (``efficient``
    only; ``None``: keep all); ``lengths`` and ``popularity`` per sample (``efficient`` only):
    history length and the training count of the target item. The draw is a numpy ``Generator``
    seeded with ``selection.seed``, so the same inputs and seed give the same indices.
    """
    strategy, data_size, seed = selection.strategy, selection.data_size, selection.seed
    length_buckets, popularity_buckets = selection.length_buckets, selection.popularity_buckets
    n = int(n)
    check_strategy(strategy)
    check_data_size(data_size)
    rng = np.random.default_rng(seed)
    requested = resolve_size(data_size, n)
    summary = {"strategy": strategy, "seed": None if seed is None else int(seed),
               "data_size": data_size, "requested": int(requested), "train_samples": n}

    if strategy == "all":
        indices = np.arange(n, dtype=np.int64)
    elif strategy == "random":
        size = _clip(requested, n, "training samples")
        indices = np.sort(rng.choice(n, size=size, replace=False)).astype(np.int64)
    else:
        keep = np.ones(n, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
        lengths, popularity = np.asarray(lengths), np.asarray(popularity)
        if not len(keep) == len(lengths) == len(popularity) == n:
            raise ValueError("keep, lengths and popularity need one entry per training sample")
        candidates = np.flatnonzero(keep)
        summary["after_denoising"] = int(len(candidates))
        size = _clip(requested, len(candidates), "training samples after denoising")
        length_bucket, length_edges = quantile_buckets(lengths[candidates], length_buckets)
        pop_bucket, pop_edges = quantile_buckets(popularity[candidates], popularity_buckets)
        joint = length_bucket * int(popularity_buckets) + pop_bucket
        n_joint = int(length_buckets) * int(popularity_buckets)
        available = np.bincount(joint, minlength=n_joint)
        quota = water_fill(available, size)
        order = np.argsort(joint, kind="stable")
        members = np.split(candidates[order], np.cumsum(available)[:-1])
        chosen, buckets = [], []
        for b in np.flatnonzero(available):
            chosen.append(rng.choice(members[b], size=int(quota[b]), replace=False))
            in_b = members[b]
            buckets.append({
                "length_bucket": int(b // popularity_buckets),
                "popularity_bucket": int(b % popularity_buckets),
                "length_range": [int(lengths[in_b].min()), int(lengths[in_b].max())],
                "popularity_range": [int(popularity[in_b].min()), int(popularity[in_b].max())],
                "available": int(available[b]),
                "selected": int(quota[b]),
            })
        indices = np.sort(np.concatenate(chosen)).astype(np.int64) if chosen else np.zeros(0, np.int64)
        summary["length_edges"] = [float(e) for e in length_edges]
        summary["popularity_edges"] = [float(e) for e in pop_edges]
        summary["buckets"] = buckets
    summary["selected"] = int(len(indices))
    return indices, summary


def _clip(requested, available, what):
    if requested > available:
        logger.warning("data_size asks for %d samples but only %d %s are available: taking all of them",
                       requested, available, what)
    return min(requested, available)


# --------------------------------------------------------------------------- config

def check_strategy(value):
    if not isinstance(value, str) or value not in STRATEGIES:
        raise UserError(f"data_strategy must be one of {', '.join(STRATEGIES)}; got {value!r}")
    return value


def check_data_size(value):
    """``None``, an int >= 1 (a count) or a float in (0, 1] (a fraction); else a UserError."""
    valid = "a count (int >= 1), a fraction in (0, 1], or ~ for all training samples"
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise UserError(f"data_size must be {valid}; got {value!r}")
    if isinstance(value, Integral):
        if value < 1:
            raise UserError(f"data_size must be {valid}; got {value!r}")
        return int(value)
    if not 0.0 < float(value) <= 1.0:
        raise UserError(f"data_size must be {valid}; got {value!r} (a float is a fraction)")
    return float(value)


def _check_buckets(name, value):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise UserError(f"{name} must be an integer >= 1 (the number of quantile buckets); got {value!r}")
    return int(value)


def _check_stop_words(value):
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return frozenset()
    if isinstance(value, str) and value.lower() == "english":
        return ENGLISH_STOP_WORDS
    if isinstance(value, (list, tuple)) and all(isinstance(w, str) for w in value):
        return frozenset(w.lower() for w in value)
    raise UserError(f"denoise_stop_words must be 'english', 'none' or a list of words; got {value!r}")


def tuning_options(config):
    """The validated selection options of ``config`` (a RecBole ``Config`` or a dict holding
    every key; their defaults are in ``properties/overall.yaml``).

    ``data_seed: ~`` falls back to the run's ``seed`` so that one seed reproduces the whole run.
    """
    seed = config["data_seed"]
    if seed is None:
        seed = config["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0):
        raise UserError(f"data_seed must be an integer >= 0 or ~ (the run's seed); got {seed!r}")
    return {
        "strategy": check_strategy(config["data_strategy"]),
        "data_size": check_data_size(config["data_size"]),
        "seed": None if seed is None else int(seed),
        "stop_words": _check_stop_words(config["denoise_stop_words"]),
        "length_buckets": _check_buckets("length_buckets", config["length_buckets"]),
        "popularity_buckets": _check_buckets("popularity_buckets", config["popularity_buckets"]),
    }


# --------------------------------------------------------------------------- RecBole integration

def select_training_samples(train_dataset, config, item_text=None):
    """Indices into ``train_dataset.inter_feat`` to train on, and the summary (also logged).

    ``train_dataset`` is the built train split of a ``SequentialDataset``. Popularity is how often
    the item occurs among the train split's interactions, counted with RecBole's own
    ``inter_matrix`` (the targets plus each user's first item). Titles come from
    :class:`ItemText` (``item_text_field``), read only for ``efficient``.
    """
    options = tuning_options(config)
    strategy = options["strategy"]
    feat = train_dataset.inter_feat
    n = len(feat)
    keep = lengths = popularity = None
    undecidable = None
    if strategy == "efficient":
        iid = train_dataset.iid_field
        targets = feat[iid].numpy()
        history = feat[train_dataset.item_id_list_field].numpy()
        capped = feat[train_dataset.item_list_length_field].numpy()
        lengths = history_lengths(feat[train_dataset.uid_field].numpy(), capped)
        if item_text is None:
            item_text = ItemText.from_dataset(train_dataset)
        words = item_word_matrix(item_text.titles, options["stop_words"])
        overlap = word_overlap(history, capped, targets, words)
        keep = overlap != 0
        undecidable = int((overlap < 0).sum())
        counts = np.asarray(train_dataset.inter_matrix(form="csr").sum(axis=0)).ravel()
        popularity = counts[targets]
    selection = Selection(strategy, options["data_size"], options["seed"], options["length_buckets"],
                          options["popularity_buckets"])
    indices, summary = select(n, selection, keep, lengths, popularity)
    if undecidable is not None:
        summary["kept_without_text"] = undecidable
    _log(summary)
    if len(indices) == 0 and n > 0:
        raise UserError("data_strategy 'efficient' kept no training sample: no target shares a title word with "
                        "its history; check item_text_field and denoise_stop_words, or use data_strategy: random")
    return indices, summary


def history_lengths(users, capped):
    """Each sample's full history length, for the user-diversity buckets.

    ``item_length`` is capped at ``MAX_ITEM_LIST_LENGTH``, which would put every long-history
    user in one bucket (the paper's proxy is the user's sequence length; its Fig. 4 looks at 30-70
    on data capped lower). RecBole's augmentation emits a user's samples in time order, the k-th
    (0-based) with k + 1 history items, so the full length is the sample's rank within its user
    plus one. Where that disagrees with an uncapped ``item_length`` (samples not in augmentation
    order), ``item_length`` is returned unchanged.
    """
    users = np.asarray(users)
    capped = np.asarray(capped)
    if len(users) == 0:
        return capped
    order = np.argsort(users, kind="stable")
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(sorted_users[1:] != sorted_users[:-1]) + 1]
    rank = np.arange(len(users)) - np.repeat(starts, np.diff(np.r_[starts, len(users)]))
    full = np.empty_like(capped)
    full[order] = rank + 1
    uncapped = capped < capped.max()
    if not np.array_equal(full[uncapped], capped[uncapped]):
        return capped
    return full


def _log(summary):
    logger.info("training-sample selection (%s, seed %s): %d training samples",
                summary["strategy"], summary["seed"], summary["train_samples"])
    if "after_denoising" in summary:
        logger.info("denoising: %d -> %d samples (%d kept without title words to compare)",
                    summary["train_samples"], summary["after_denoising"], summary.get("kept_without_text", 0))
        for b in summary["buckets"]:
            logger.info("bucket length %s x popularity %s: %d available, %d selected",
                        b["length_range"], b["popularity_range"], b["available"], b["selected"])
    logger.info("training samples selected: %d of %d", summary["selected"], summary["train_samples"])


class TuningSequentialDataset(ExactTimeSequentialDataset):
    """RecBole's ``SequentialDataset`` (ordered by the exact times: :mod:`recbole_llm.data.dataset`)
    whose built train split holds only the selected samples.

    Selection happens in :meth:`build`, after RecBole's augmentation and leave-one-out split, so
    the validation and test splits are RecBole's own. The summary is kept as ``tuning_summary``
    on this dataset and on the train split.
    """

    tuning_summary = None

    def build(self):
        datasets = super().build()
        train = datasets[0]
        indices, summary = select_training_samples(train, self.config)
        self.tuning_summary = summary
        if len(indices) != len(train.inter_feat):
            train = train.copy(train.inter_feat[indices])
        train.tuning_summary = summary
        return [train] + list(datasets[1:])


def create_dataset(config):
    """:func:`recbole_llm.data.dataset.create_dataset`, or a :class:`TuningSequentialDataset` when a
    selection is asked for.

    A selection on a non-sequential model is refused rather than ignored: its training samples
    have no history to denoise, and a run labelled ``efficient`` must not silently train on all.
    RecBole's saved-dataloader cache is keyed without these options, so a cached file would skip
    the selection (or serve it to a later ``all`` run); saving one is refused too, and so is a file
    there under ``trust_checkpoint`` (without it, :func:`recbole_llm.data.dataset.data_preparation`
    never reads the file).
    """
    options = tuning_options(config)
    if options["strategy"] == "all":
        return exact_time_create_dataset(config)
    if config["MODEL_TYPE"] != ModelType.SEQUENTIAL:
        raise UserError(f"data_strategy '{options['strategy']}' selects sequential training samples, but "
                        f"{config['model']} is not a sequential model; set data_strategy: all")
    import recbole.data.dataset as recbole_datasets

    if hasattr(recbole_datasets, f"{config['model']}Dataset"):
        raise UserError(f"data_strategy '{options['strategy']}' does not support {config['model']}, which needs "
                        f"RecBole's {config['model']}Dataset; set data_strategy: all")
    cache = dataloaders_file(config)
    if config["save_dataloaders"] or (os.path.exists(cache) and trusted(config)):
        raise UserError(f"data_strategy '{options['strategy']}' cannot be combined with RecBole's saved dataloaders "
                        f"({cache}): set save_dataloaders: False and remove the file")
    if config["save_dataset"] or config["dataset_save_path"]:
        logger.warning("save_dataset/dataset_save_path are ignored with data_strategy '%s': the dataset is "
                       "rebuilt so that the selection follows the current config", options["strategy"])
    return TuningSequentialDataset(config)
