"""Training-sample selection of the efficient-tuning stage (RA-Rec Section 3.4, Table 5)."""

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from recbole.data import data_preparation
from recbole_llm.data.dataset import ExactTimeSequentialDataset
from recbole.data.interaction import Interaction

from recbole_llm.data.tuning import (
    ENGLISH_STOP_WORDS,
    Selection,
    TuningSequentialDataset,
    create_dataset,
    item_word_matrix,
    quantile_buckets,
    select,
    select_training_samples,
    tokenize,
    tuning_options,
    water_fill,
    word_overlap,
)
from recbole_llm.config import properties_dir
from recbole_llm.errors import UserError
from recbole_llm.quick_start import build_config
from recbole_llm.spec import RunSpec


def options(**keys):
    """``keys`` over the selection defaults of properties/model/LLMSequentialRecommender.yaml (their only home)."""
    with open(properties_dir() / "model" / "LLMSequentialRecommender.yaml", encoding="utf-8") as f:
        defaults = yaml.safe_load(f)
    names = ("data_strategy", "data_size", "data_seed", "denoise_stop_words", "length_buckets", "popularity_buckets")
    return {**{k: defaults[k] for k in names}, "seed": None, **keys}

# Internal item ids 0..6 (0 is padding).
TITLES = ["", "Red Running Shoes", "Blue Running Socks", "Leather Wallet", "The Wallet of the Year", "",
          "The And Of"]
# Hand-made samples: padded history (L = 3), history length, target.
HISTORY = np.array([[1, 0, 0], [1, 2, 0], [3, 0, 0], [1, 2, 3], [5, 6, 0], [2, 3, 0], [4, 0, 0], [6, 1, 0]])
LENGTHS = np.array([1, 2, 1, 3, 2, 1, 1, 2])
TARGETS = np.array([2, 3, 4, 5, 1, 3, 6, 4])
# 0: "running" shared; 1: wallet vs shoes/socks; 2: "wallet" shared; 3: target has no title;
# 4: history has only stop words / no title; 5: item 3 sits beyond the history length, so only
# "blue running socks" counts; 6: target has only stop words; 7: "the"/"of" shared, but stop words.
NOISY = [1, 5, 7]


def overlap(stop_words=ENGLISH_STOP_WORDS):
    return word_overlap(HISTORY, LENGTHS, TARGETS, item_word_matrix(TITLES, stop_words))


def test_tokenize_lowercases_splits_and_drops_stop_words():
    assert tokenize("The Wallet-of_the YEAR (1995)", ENGLISH_STOP_WORDS) == {"wallet", "year", "1995"}
    assert tokenize("Caf\u00e9 Society's") == {"caf\u00e9", "society", "s"}
    assert tokenize("") == set()


def test_denoising_drops_exactly_the_zero_overlap_samples():
    counts = overlap()
    assert counts.tolist() == [1, 0, 1, -1, -1, 0, -1, 0]
    assert np.flatnonzero(counts == 0).tolist() == NOISY
    # without stop words "the"/"of" count: 6 and 7 become relevant, and 4 (history "The And Of",
    # target "Red Running Shoes") becomes decidable and noisy
    assert np.flatnonzero(overlap(frozenset()) == 0).tolist() == [1, 4, 5]


def test_denoising_is_the_same_in_small_chunks():
    words = item_word_matrix(TITLES, ENGLISH_STOP_WORDS)
    assert word_overlap(HISTORY, LENGTHS, TARGETS, words, chunk_size=3).tolist() == overlap().tolist()


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_denoising_matches_set_intersection(data):
    """The sparse-matrix overlap equals the textbook rule written with Python sets."""
    words = st.sampled_from(["a", "b", "c", "the", "x1"])
    titles = [""] + data.draw(st.lists(st.lists(words, max_size=3).map(" ".join), min_size=1, max_size=6))
    item = st.integers(1, len(titles) - 1)
    samples = data.draw(st.lists(st.tuples(st.lists(item, min_size=1, max_size=4), item), min_size=1, max_size=20))
    history = np.zeros((len(samples), 4), dtype=np.int64)
    for row, (items, _) in enumerate(samples):
        history[row, :len(items)] = items
    lengths = np.array([len(items) for items, _ in samples])
    targets = np.array([t for _, t in samples])
    got = word_overlap(history, lengths, targets, item_word_matrix(titles, {"the"}), chunk_size=7)
    for row, (items, target) in enumerate(samples):
        target_words = tokenize(titles[target], {"the"})
        history_words = [tokenize(titles[i], {"the"}) for i in items]
        if not target_words or not set().union(*history_words):
            assert got[row] == -1
        else:
            assert got[row] == sum(len(target_words & w) for w in history_words)


def test_quantile_buckets_of_distinct_values():
    lengths = np.array([1] * 100 + list(range(1, 51)))  # many short histories do not move the edges
    bucket, edges = quantile_buckets(lengths, 4)
    assert edges.tolist() == [13.25, 25.5, 37.75]
    assert bucket[lengths == 13].tolist() == [0] and bucket[lengths == 14].tolist() == [1]
    assert bucket[lengths == 50].tolist() == [3] and set(bucket[:100]) == {0}
    bucket, edges = quantile_buckets(np.array([7, 7, 9]), 4)  # fewer distinct values than buckets
    assert len(set(bucket.tolist())) == 2


def test_water_fill_redistributes_small_buckets():
    assert water_fill([5, 0, 100, 3, 50], 40).tolist() == [5, 0, 16, 3, 16]
    assert water_fill([5, 0, 100, 3, 50], 41).tolist() == [5, 0, 17, 3, 16]
    assert water_fill([5, 0, 100, 3, 50], 1000).tolist() == [5, 0, 100, 3, 50]
    assert water_fill([10, 10, 10, 10], 6).tolist() == [1, 1, 2, 2]
    assert water_fill([0, 0], 5).tolist() == [0, 0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=20), st.integers(0, 1500))
def test_water_fill_properties(available, total):
    available = np.array(available)
    quota = water_fill(available, total)
    assert quota.sum() == min(total, available.sum())
    assert (quota >= 0).all() and (quota <= available).all()
    open_ = quota < available  # buckets that could have given more
    if open_.any():
        assert quota[open_].max() - quota[open_].min() <= 1
        # max-min fair: a full bucket never got more than an open one, but for the one extra unit
        # a tie hands out (available [1, 1], total 1 fills one bucket and leaves the other at 0)
        assert (quota[~open_] <= quota[open_].min() + 1).all()


def synthetic(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 51, n)
    popularity = rng.zipf(1.5, n).clip(max=5000)
    return lengths, popularity


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 300), st.integers(1, 400), st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_efficient_size_and_subset_properties(n, size, length_buckets, popularity_buckets, seed):
    rng = np.random.default_rng(seed)
    keep = rng.random(n) < 0.7
    lengths, popularity = rng.integers(1, 20, n), rng.integers(1, 100, n)
    indices, summary = select(n, Selection("efficient", size, seed, length_buckets, popularity_buckets), keep, lengths,
                              popularity)
    assert len(indices) == min(size, keep.sum()) == summary["selected"]
    assert keep[indices].all() and (np.diff(indices) > 0).all()
    assert all(b["selected"] <= b["available"] for b in summary["buckets"])


def test_efficient_selection_is_uniform_over_buckets():
    lengths, popularity = synthetic()
    indices, summary = select(len(lengths), Selection("efficient", 800, seed=3), lengths=lengths, popularity=popularity)
    assert len(indices) == 800 == summary["selected"] and len(np.unique(indices)) == 800
    # recount the selection per bucket from the raw values: no bucket is short of samples here
    lb, _ = quantile_buckets(lengths, 4)
    pb, _ = quantile_buckets(popularity, 4)
    per_bucket = np.bincount((lb * 4 + pb)[indices], minlength=16)
    available = np.bincount(lb * 4 + pb, minlength=16)
    assert (available >= 50).all()
    assert per_bucket.sum() == 800 and per_bucket.max() - per_bucket.min() <= 1
    assert [b["selected"] for b in summary["buckets"]] == per_bucket.tolist()
    assert [b["available"] for b in summary["buckets"]] == available.tolist()


def test_efficient_water_fills_to_exact_size():
    lengths, popularity = synthetic(3000, seed=1)
    keep = np.random.default_rng(2).random(3000) < 0.6
    indices, summary = select(3000, Selection("efficient", 1500, seed=0), keep=keep, lengths=lengths,
                              popularity=popularity)
    assert len(indices) == 1500 and keep[indices].all()
    assert summary["after_denoising"] == keep.sum()
    selected = np.array([b["selected"] for b in summary["buckets"]])
    available = np.array([b["available"] for b in summary["buckets"]])
    assert (selected < available).any() and (selected == available).any()  # some saturated, some not
    assert selected[selected < available].max() - selected[selected < available].min() <= 1


def test_same_seed_same_sample_other_seed_other_sample():
    lengths, popularity = synthetic(5000)
    run = lambda strategy, seed: select(5000, Selection(strategy, 200, seed), lengths=lengths, popularity=popularity)[0]
    for strategy in ("efficient", "random"):
        assert np.array_equal(run(strategy, 7), run(strategy, 7))
        assert not np.array_equal(run(strategy, 7), run(strategy, 8))


def test_all_and_random():
    indices, summary = select(50, Selection("all", 10, seed=0))
    assert indices.tolist() == list(range(50)) and summary["selected"] == 50
    indices, summary = select(1000, Selection("random", 100, seed=0))
    assert len(indices) == len(set(indices.tolist())) == 100 and indices.max() < 1000
    assert "after_denoising" not in summary


def test_data_size_counts_and_fractions(caplog):
    assert len(select(1000, Selection("random", 0.25, 0))[0]) == 250
    assert len(select(1000, Selection("random", 1.0, 0))[0]) == 1000
    assert len(select(1000, Selection("random", 1, 0))[0]) == 1
    assert len(select(1000, Selection("random", None, 0))[0]) == 1000
    with caplog.at_level(logging.WARNING, logger="recbole_llm.data.tuning"):
        assert len(select(1000, Selection("random", 5000, 0))[0]) == 1000
    assert "asks for 5000 samples but only 1000" in caplog.text
    # a fraction is of all training samples, before denoising: 0.5 of 1000 with 300 kept -> 300
    lengths, popularity = synthetic(1000)
    keep = np.zeros(1000, dtype=bool)
    keep[:300] = True
    indices, summary = select(1000, Selection("efficient", 0.5, 0), keep=keep, lengths=lengths, popularity=popularity)
    assert summary["requested"] == 500 and len(indices) == 300


@pytest.mark.parametrize("key, value", [
    ("data_strategy", "smart"), ("data_strategy", "Efficient"), ("data_size", 0), ("data_size", -3),
    ("data_size", 1.5), ("data_size", 0.0), ("data_size", "half"), ("data_size", True),
    ("length_buckets", 2.5), ("length_buckets", 0), ("popularity_buckets", "4"),
    ("denoise_stop_words", 3), ("denoise_stop_words", "french"), ("data_seed", -1),
])
def test_bad_values_are_user_errors_naming_the_option(key, value):
    with pytest.raises(UserError) as err:
        tuning_options(options(seed=1, **{key: value}))
    msg = str(err.value)
    assert msg.startswith(key) and "\n" not in msg and repr(value) in msg


def test_defaults_and_seed_fallback():
    chosen = tuning_options(options(seed=11))
    assert chosen["strategy"] == "all" and chosen["data_size"] is None and chosen["seed"] == 11
    assert chosen["stop_words"] is ENGLISH_STOP_WORDS and chosen["length_buckets"] == 4
    assert tuning_options(options(seed=11, data_seed=3))["seed"] == 3
    assert tuning_options(options(denoise_stop_words=["Foo", "bar"]))["stop_words"] == {"foo", "bar"}
    assert tuning_options(options(denoise_stop_words="none"))["stop_words"] == frozenset()
    # the defaults live in YAML only: a config without the keys is an error, not a silent default
    with pytest.raises(KeyError, match="data_seed"):
        tuning_options({"seed": 11})


class _Train:
    """What select_training_samples reads of a built RecBole train split."""

    iid_field, item_id_list_field, item_list_length_field = "item_id", "item_id_list", "item_length"
    uid_field = "user_id"

    def __init__(self):
        self.inter_feat = Interaction({"item_id": torch.tensor(TARGETS), "item_id_list": torch.tensor(HISTORY),
                                       "item_length": torch.tensor(LENGTHS),
                                       "user_id": torch.arange(len(TARGETS))})

    def inter_matrix(self, form="csr"):
        items = np.concatenate([TARGETS, HISTORY[LENGTHS == 1, 0]])
        return sp.csr_matrix((np.ones(len(items)), (np.zeros(len(items), int), items)), shape=(1, len(TITLES)))


def test_select_training_samples_on_a_train_split(caplog):
    text = SimpleNamespace(titles=TITLES)
    config = options(seed=0, data_strategy="efficient", length_buckets=2, popularity_buckets=2)
    with caplog.at_level(logging.INFO, logger="recbole_llm.data.tuning"):
        indices, summary = select_training_samples(_Train(), config, item_text=text)
    assert indices.tolist() == [0, 2, 3, 4, 6]
    assert summary["after_denoising"] == 5 and summary["kept_without_text"] == 3
    assert sum(b["available"] for b in summary["buckets"]) == 5
    assert "denoising: 8 -> 5 samples" in caplog.text and "selected: 5 of 8" in caplog.text
    # random does no denoising (and reads no titles): at full size the noisy samples are in
    config = options(seed=0, data_strategy="random", data_size=8)
    assert select_training_samples(_Train(), config)[0].tolist() == list(range(8))


@pytest.fixture(scope="module")
def toy_splits(toy_data_path, tmp_path_factory):
    """(train, valid, test) loaders of SASRec on the toy data, for all and for an efficient selection."""
    saved = tmp_path_factory.mktemp("saved")
    overrides = {
        "train_batch_size": 64, "eval_batch_size": 256, "show_progress": False, "MAX_ITEM_LIST_LENGTH": 10,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "item_text_field": "title",
        "train_neg_sample_args": None,
    }
    out = {}
    for strategy, size in (("all", None), ("efficient", 100)):
        # SASRec as the vehicle: the selection keys are the LLM models' (LLMSequentialRecommender.yaml), so
        # a SASRec config holds only those given here
        selection = options(data_strategy=strategy, data_size=size)
        selection.pop("seed")
        config = build_config(RunSpec("SASRec", "toy", 5, (), {**overrides, **selection}, toy_data_path, saved))
        dataset = create_dataset(config)
        out[strategy] = dataset, data_preparation(config, dataset)
    return out


def test_end_to_end_on_toy_data(toy_splits):
    full, (full_train, full_valid, full_test) = toy_splits["all"]
    dataset, (train, valid, test) = toy_splits["efficient"]
    assert type(full) is ExactTimeSequentialDataset and isinstance(dataset, TuningSequentialDataset)
    n_all = len(full_train._dataset.inter_feat)
    assert n_all > 100
    assert len(train.dataset) == len(train._dataset.inter_feat) == 100
    assert dataset.tuning_summary["selected"] == 100 and train._dataset.tuning_summary["train_samples"] == n_all
    assert dataset.tuning_summary["after_denoising"] == n_all  # every toy title says "thing number"

    def rows(loader):
        feat = loader._dataset.inter_feat
        return sorted(zip(feat["user_id"].tolist(), feat["item_id"].tolist(), feat["item_length"].tolist(),
                          map(tuple, feat["item_id_list"].tolist())))

    assert set(rows(train)) <= set(rows(full_train))
    assert rows(valid) == rows(full_valid) and rows(test) == rows(full_test)
    batch = next(iter(train))
    assert batch["item_id_list"].shape[1] == 10


def test_non_sequential_model_or_dataloader_cache_is_refused(toy_data_path, tmp_path):
    selection = options(data_strategy="random", data_size=10)
    selection.pop("seed")  # the LLM models' keys, given to a baseline by hand here
    config = build_config(RunSpec("BPR", "toy", 1, (), selection, toy_data_path, tmp_path))
    with pytest.raises(UserError, match="BPR is not a sequential model"):
        create_dataset(config)
    config = build_config(RunSpec("SASRec", "toy", 1, (), {**selection, "data_size": None, "save_dataloaders": True},
                                  toy_data_path, tmp_path))
    with pytest.raises(UserError, match="save_dataloaders"):
        create_dataset(config)


def test_history_lengths_are_uncapped_ranks_within_each_user():
    from recbole_llm.data.tuning import history_lengths

    users = np.array([1, 1, 1, 1, 2, 2, 3])
    capped = np.array([1, 2, 3, 3, 1, 2, 1])  # MAX_ITEM_LIST_LENGTH = 3
    assert history_lengths(users, capped).tolist() == [1, 2, 3, 4, 1, 2, 1]
    # not in augmentation order: the capped lengths are kept as they are
    shuffled = np.array([2, 1, 3, 3, 1, 2, 1])
    assert history_lengths(users, shuffled).tolist() == shuffled.tolist()
