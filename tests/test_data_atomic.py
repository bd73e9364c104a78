"""Atomic-file headers, atomic writes, dataset validation and ensure_dataset."""

import logging
import os
import warnings

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recbole_llm.data import atomic
from recbole_llm.data.atomic import read_header, validate_dataset, write_atomic, write_dataset
from recbole_llm.data.prepare import ensure_dataset
from recbole_llm.errors import UserError


def recbole_load(path, source="item"):
    """Parse an atomic file as the toolkit's datasets do (no Config needed): RecBole 1.2.1's
    ``Dataset._load_feat``, with its fill made to work under pandas Copy-on-Write (pandas 3)."""
    from recbole.utils import FeatureSource

    from recbole_llm.data.dataset import ExactTimeDataset

    ds = object.__new__(ExactTimeDataset)
    ds.config = {"load_col": None, "unload_col": None, "field_separator": "\t", "seq_separator": " ",
                 "encoding": "utf-8", "seq_len": None}
    ds.logger = logging.getLogger("test")
    ds.field2source, ds.field2type, ds.field2seqlen, ds.field2bucketnum = {}, {}, {}, {}
    with warnings.catch_warnings():  # RecBole's own fillna(inplace=True) FutureWarning under pandas 2.x
        warnings.simplefilter("ignore", FutureWarning)
        return ds._load_feat(str(path), FeatureSource(source))


def _one_line(err):
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_read_header_valid(tmp_path):
    p = tmp_path / "d.inter"
    p.write_text("user_id:token\titem_id:token\trating:float\tvec:float_seq\ttags:token_seq\n1\t2\t3\t0.1 0.2\ta b\n")
    assert read_header(p) == [("user_id", "token"), ("item_id", "token"), ("rating", "float"),
                              ("vec", "float_seq"), ("tags", "token_seq")]


@pytest.mark.parametrize("header, needle", [
    ("user_id:token\titem_id\n", "column 2 'item_id'"),
    ("user_id:token\titem_id:int\n", "'int'"),
    ("user_id:token item_id:token\n", "column 1"),
    ("user_id:token\tuser_id:token\n", "repeats"),
    ("user_id:token\titem_id:token\r\n", "line endings"),
    ("\n", "empty"),
    ("user:id:token\n", "column 1"),
])
def test_read_header_malformed(tmp_path, header, needle):
    p = tmp_path / "bad.inter"
    p.write_bytes(header.encode())
    with pytest.raises(UserError) as err:
        read_header(p)
    msg = _one_line(err)
    assert str(p) in msg and needle in msg
    assert "token, token_seq, float, float_seq" in msg or needle in ("repeats", "line endings", "empty")


def test_read_header_missing_and_empty_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_header(tmp_path / "nope.inter")
    (tmp_path / "empty.inter").write_text("")
    with pytest.raises(UserError, match="is empty"):
        read_header(tmp_path / "empty.inter")


def test_write_atomic_round_trips_through_recbole(tmp_path):
    header = [("item_id", "token"), ("title", "token_seq"), ("price", "float")]
    rows = [("i1", '"Weird Al" Yankovic: Greatest', 1.5), ("i2", "Plain, with comma's", 2.0),
            ("i3", ["already", "tokenised"], 3.25)]
    path = write_atomic(tmp_path / "x" / "x.item", header, rows)
    assert path.read_text().splitlines()[0] == "item_id:token\ttitle:token_seq\tprice:float"
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode
    df = recbole_load(path)
    assert list(df["item_id"]) == ["i1", "i2", "i3"]
    assert [list(t) for t in df["title"]] == [['"Weird', 'Al"', "Yankovic:", "Greatest"],
                                             ["Plain,", "with", "comma's"], ["already", "tokenised"]]
    assert list(df["price"]) == [1.5, 2.0, 3.25]
    assert not [f for f in os.listdir(path.parent) if f.startswith(".")]


def test_write_atomic_rejects_tabs_and_keeps_old_file(tmp_path):
    path = tmp_path / "x.item"
    write_atomic(path, [("item_id", "token"), ("title", "token_seq")], [("1", "old")])
    before = path.read_bytes()
    with pytest.raises(ValueError, match="tab, newline or NUL"):
        write_atomic(path, [("item_id", "token"), ("title", "token_seq")], [("1", "new\tbad")])
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["x.item"]
    with pytest.raises(ValueError):
        write_atomic(path, [("item_id", "int")], [("1",)])


def test_write_dataset_replaces_only_on_success(tmp_path):
    inter = pd.DataFrame({"user_id:token": ["u1", "u2"], "item_id:token": ["i1", "i2"], "timestamp:float": [1, 2]})
    folder = write_dataset(tmp_path, "d", {"inter": inter, "user": pd.DataFrame({"user_id:token": ["u1"]})})
    assert sorted(os.listdir(folder)) == ["d.inter", "d.user"]
    (folder / "NOTES.txt").write_text("mine")
    before = (folder / "d.inter").read_bytes()

    bad_item = pd.DataFrame({"item_id:token": ["i1"], "title:token_seq": ["a\nb"]})
    with pytest.raises(ValueError):
        write_dataset(tmp_path, "d", {"inter": inter.iloc[:1], "item": bad_item})
    assert (folder / "d.inter").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["d"]  # no temp folder left behind

    write_dataset(tmp_path, "d", {"inter": inter.iloc[:1]})
    assert sorted(os.listdir(folder)) == ["NOTES.txt", "d.inter"]  # stale d.user gone, foreign file kept
    assert (folder / "d.inter").read_text().count("\n") == 2
    assert sorted(os.listdir(tmp_path)) == ["d"]
    assert validate_dataset(folder, "d") == {"d.inter": [("user_id", "token"), ("item_id", "token"),
                                                         ("timestamp", "float")]}


def test_write_dataset_interrupted_keeps_old(tmp_path, monkeypatch):
    inter = pd.DataFrame({"user_id:token": ["u1"], "item_id:token": ["i1"]})
    folder = write_dataset(tmp_path, "d", {"inter": inter})
    before = (folder / "d.inter").read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic, "validate_dataset", boom)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(tmp_path, "d", {"inter": pd.DataFrame({"user_id:token": ["x"], "item_id:token": ["y"]})})
    assert (folder / "d.inter").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["d"]


def test_validate_dataset_names_bad_file(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "d.inter").write_text("user_id:token\titem_id:token\nu1\ti1\n")
    (folder / "d.item").write_text("item_id:token\ttitle:text\n")
    (folder / "README").write_text("not atomic")
    with pytest.raises(UserError) as err:
        validate_dataset(folder, "d")
    assert "d.item" in _one_line(err) and "'text'" in str(err.value)


def test_ensure_dataset_validates_existing_and_explains_missing(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "toy.inter").write_text("user_id:token\titem_id:tok\n")
    with pytest.raises(UserError, match="toy.inter"):
        ensure_dataset("toy", tmp_path)
    (folder / "toy.inter").write_text("user_id:token\titem_id:token\n")
    assert ensure_dataset("toy", tmp_path) == folder

    with pytest.raises(UserError) as err:
        ensure_dataset("amazon-scientific", tmp_path)
    msg = _one_line(err)
    assert str(tmp_path / "amazon-scientific" / "amazon-scientific.inter") in msg
    assert "python -m recbole_llm.data unisrec --src" in msg and "--prefix Scientific --name amazon-scientific" in msg
    with pytest.raises(UserError, match="python -m recbole_llm.data amazon"):
        ensure_dataset("my-own-data", tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["toy"]


# RecBole's reader turns these cells into NaN (pandas' default NA strings), i.e. an empty title.
_PANDAS_NA = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
              "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r\x00"), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(titles=st.lists(_TEXT, min_size=1, max_size=5))
def test_property_titles_round_trip_through_recbole(tmp_path, titles):
    """Any title without tab/newline that write_atomic accepts reads back identically in RecBole."""
    path = write_atomic(tmp_path / "p.item", [("item_id", "token"), ("title", "token_seq")],
                        [(f"i{k}", t) for k, t in enumerate(titles)])
    df = recbole_load(path)
    assert list(df["item_id"]) == [f"i{k}" for k in range(len(titles))]
    for t, tokens in zip(titles, df["title"]):
        expected = [] if t in _PANDAS_NA else [w for w in t.split(" ") if w]
        assert list(tokens) == expected
