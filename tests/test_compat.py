"""The workarounds of recbole_llm.compat, on whichever stack runs the tests (numpy 1 or 2,
pandas 2 or 3): each restores what RecBole or Ray expects, and only where needed."""

import contextlib
import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from recbole_llm import compat


@contextlib.contextmanager
def copy_on_write():
    """pandas Copy-on-Write: always on in pandas 3, switched on here in pandas 2."""
    if int(pd.__version__.split(".")[0]) >= 3:
        yield
    else:
        with pd.option_context("mode.copy_on_write", True):
            yield


def test_numpy_aliases_recbole_and_ray_name_are_the_types_they_named():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # np.bool8 under numpy 1.26
        assert np.float_ is np.float64 and np.complex_ is np.complex128
        assert np.unicode_ is np.str_ and np.bool8 is np.bool_
    import ray.tune  # noqa: F401  (Ray 2.6.3's Tune loggers name np.bool8 at import)
    from recbole.config import Config

    Config.compatibility_settings(None)  # RecBole's Config assigns np.float = np.float_ etc.


def test_restore_numpy_aliases_sets_only_what_numpy_lacks(monkeypatch):
    if int(np.__version__.split(".")[0]) < 2:
        assert compat.restore_numpy_aliases() == []  # numpy 1 has them: nothing is touched
        return
    monkeypatch.delattr(np, "bool8")
    monkeypatch.delattr(np, "unicode_")
    assert compat.restore_numpy_aliases() == ["unicode_", "bool8"]
    assert np.bool8 is np.bool_ and np.unicode_ is np.str_
    assert compat.restore_numpy_aliases() == []  # idempotent


def test_ray_workers_get_the_aliases_before_anything_else_runs():
    """A task pickled by value imports nothing of ours: what it sees is what the setup hook did."""
    import ray

    from recbole_llm.tune.sweep import init_ray

    def probe():
        import sys

        import numpy

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return numpy.__version__, getattr(numpy, "bool8", None) is numpy.bool_, "recbole_llm" in sys.modules

    started = init_ray()
    try:
        version, has_bool8, imported_us = ray.get(ray.remote(probe).options(num_cpus=0).remote())
    finally:
        if started:
            ray.shutdown()
    assert version == np.__version__ and has_bool8
    assert not imported_us  # the hook went by value: a worker pays no import of this package for it
    assert compat.ray_runtime_env() == {"worker_process_setup_hook": compat.restore_numpy_aliases}


def test_our_dataset_classes_carry_the_fills_and_recbole_is_untouched():
    """The fills are a mixin of the classes our create_dataset builds; RecBole's Dataset keeps its own."""
    import recbole.data.dataset as recbole_datasets
    from recbole.data.dataset import Dataset

    from recbole_llm.data import dataset as ours
    from recbole_llm.data.fills import CopyOnWriteFills
    from recbole_llm.data.tuning import TuningSequentialDataset

    assert Dataset._fill_nan.__module__ == Dataset._load_feat.__module__ == "recbole.data.dataset.dataset"
    for name, base in vars(recbole_datasets).items():
        if isinstance(base, type) and issubclass(base, Dataset):
            cls = getattr(ours, ours.PREFIX + name)
            mro = cls.__mro__
            assert mro.index(CopyOnWriteFills) < mro.index(base)
            assert cls._load_feat is CopyOnWriteFills._load_feat and cls._fill_nan is CopyOnWriteFills._fill_nan
    assert issubclass(TuningSequentialDataset, CopyOnWriteFills)
    assert compat.copy_on_write() == (int(pd.__version__.split(".")[0]) >= 3)  # the tests do not opt in


def test_inplace_fill_on_a_column_view_is_lost_under_copy_on_write():
    """The premise of the fills: RecBole's idiom does nothing under Copy-on-Write."""
    with copy_on_write(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas' ChainedAssignmentError warning
        df = pd.DataFrame({"title": ["a b", None]})
        df["title"].fillna(value="", inplace=True)
        assert df["title"].isna().sum() == 1


def _bare_dataset(config=None, cls=None):
    """A dataset object with just what ``_load_feat`` reads: ours (the default) or ``cls``."""
    if cls is None:
        from recbole_llm.data.dataset import ExactTimeDataset as cls

    ds = object.__new__(cls)
    ds.config = {"load_col": None, "unload_col": None, "field_separator": "\t", "seq_separator": " ",
                 "encoding": "utf-8", "seq_len": None, **(config or {})}
    ds.logger = logging.getLogger("test")
    ds.field2source, ds.field2type, ds.field2seqlen, ds.field2bucketnum = {}, {}, {}, {}
    return ds


ITEMS = "item_id:token\ttitle:token_seq\tvec:float_seq\tprice:float\ni1\tThing one\t0.5 1.5\t2.0\ni2\t\t\t\ni3\tThree\t1\t4.0\n"


def _check_items(df, ds):
    assert list(df["item_id"]) == ["i1", "i2", "i3"]
    assert [list(t) for t in df["title"]] == [["Thing", "one"], [], ["Three"]]
    assert [list(v) for v in df["vec"]] == [[0.5, 1.5], [], [1.0]]
    assert ds.field2seqlen["title"] == 2 and ds.field2seqlen["vec"] == 2 and ds.field2seqlen["price"] == 1


def test_load_feat_of_this_stack_reads_empty_sequence_cells(tmp_path):
    """Our dataset as this stack runs it (RecBole's method, or the fill under pandas 3): an item without a title."""
    from recbole.utils import FeatureSource

    path = tmp_path / "d.item"
    path.write_text(ITEMS)
    ds = _bare_dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # RecBole's own inplace fill under pandas 2
        _check_items(ds._load_feat(str(path), FeatureSource.ITEM), ds)


def test_our_load_feat_and_fill_nan_work_under_copy_on_write(tmp_path):
    from recbole.utils import FeatureSource, FeatureType

    path = tmp_path / "d.item"
    path.write_text(ITEMS)
    with copy_on_write():
        ds = _bare_dataset({"seq_len": {"title": 1}})
        df = ds._load_feat(str(path), FeatureSource.ITEM)
        assert [list(t) for t in df["title"]] == [["Thing"], [], ["Three"]] and ds.field2seqlen["title"] == 1

        ds = _bare_dataset()
        ds.feat_name_list = ["item_feat"]
        ds.field2type = {"item_id": FeatureType.TOKEN, "price": FeatureType.FLOAT, "tags": FeatureType.TOKEN_SEQ}
        ds.item_feat = pd.DataFrame({"item_id": [1.0, np.nan, 3.0], "price": [2.0, np.nan, 4.0],
                                     "tags": [np.array([1, 2]), np.nan, np.array([3])]})
        ds._fill_nan()
        assert ds.item_feat["item_id"].tolist() == [1.0, 0.0, 3.0]
        assert ds.item_feat["price"].tolist() == [2.0, 3.0, 4.0]  # the mean
        empty = ds.item_feat["tags"][1]
        assert isinstance(empty, np.ndarray) and empty.dtype == np.int64 and empty.size == 0


def test_recbole_load_feat_fails_on_an_empty_sequence_cell_under_copy_on_write(tmp_path):
    """Why _load_feat is overridden: RecBole 1.2.1's own method leaves the NaN and splits it."""
    from recbole.data.dataset import Dataset
    from recbole.utils import FeatureSource

    path = tmp_path / "d.item"
    path.write_text(ITEMS)
    with copy_on_write(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(AttributeError, match="split"):
            Dataset._load_feat(_bare_dataset(cls=Dataset), str(path), FeatureSource.ITEM)


def test_dok_matrix_update_is_back_for_recboles_graph_models():
    """RecBole 1.2.1's LightGCN, NGCF, SpectralCF, GCMC, NCL (and KGIN, MCCLK) fill their adjacency
    matrix with dok_matrix._update, which scipy's rewritten DOK format (1.17 here) lacks."""
    import scipy.sparse as sp

    import recbole_llm.utils  # noqa: F401  (applies compat.apply_recbole)

    matrix = sp.dok_matrix((3, 4), dtype=np.float32)
    matrix._update({(0, 1): 1, (2, 3): 1})
    assert matrix.nnz == 2 and matrix[0, 1] == 1 and matrix[2, 3] == 1 and matrix[1, 1] == 0
    assert (matrix > 0).sum(axis=1).tolist() == [[1], [0], [1]]
    assert compat.restore_dok_update() is False  # applied once; an older scipy keeps its own


def test_recboles_init_logger_names_load_run_for_a_plain_dict_and_passes_a_config_through(tmp_path, monkeypatch):
    import recbole.utils
    import recbole.utils.logger

    import recbole_llm.utils  # noqa: F401  (applies compat.apply_recbole)
    from recbole_llm.errors import UserError

    wrapper = recbole.utils.init_logger
    assert getattr(wrapper, "recbole_llm_wrapper", False) and recbole.utils.logger.init_logger is wrapper
    assert compat.name_load_run_for_plain_configs() == []  # applied once
    with pytest.raises(UserError, match=r"recbole-llm checkpoint .* load it with recbole_llm\.load_run\(path\)"):
        wrapper({"model": "SASRec", "dataset": "toy", "state": "INFO"})

    class Reached(Exception):
        pass

    class ConfigLike:  # what RecBole's own init_logger is given everywhere else: it goes through
        final_config_dict = {}

        def __getitem__(self, key):
            raise Reached(key)

    monkeypatch.chdir(tmp_path)  # RecBole's init_logger makes ./log first
    with pytest.raises(Reached, match="model"):
        wrapper(ConfigLike())


IMPORT_PROBE = """
import sys, torch
{first}
import recbole_llm
print("LIGHT", "recbole.config" in sys.modules, torch.is_anomaly_enabled())
"""


@pytest.mark.parametrize("first, expected", [
    ("", "LIGHT False False"),
    # RecBole's models imported first (sine.py switched anomaly detection on): import recbole_llm switches it off
    ("import recbole.model.sequential_recommender", "LIGHT False False"),
])
def test_import_recbole_llm_is_light_and_undoes_an_earlier_recbole_import(first, expected):
    import subprocess
    import sys

    from conftest import REPO

    out = subprocess.run([sys.executable, "-c", IMPORT_PROBE.format(first=first)], capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == expected


def test_import_recbole_llm_without_torch():
    import subprocess
    import sys

    from conftest import REPO

    probe = "import sys, recbole_llm; print('torch' in sys.modules, 'recbole' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0 and out.stdout.split() == ["False", "False"], out.stderr[-2000:]
