"""ItemText: item id -> title for a built RecBole dataset."""

import logging
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from recbole_llm.data.atomic import write_dataset
from recbole_llm.data.item_text import ItemText
from recbole_llm.errors import UserError


def make_dataset(data_path, name="txt"):
    """Interactions over i1..i5; .item has titles for i1..i4 (i4 empty) plus i9 (never interacted)."""
    inter = pd.DataFrame({
        "user_id:token": ["u1"] * 4 + ["u2"] * 4 + ["u3"] * 4,
        "item_id:token": ["i3", "i1", "i2", "i5", "i2", "i3", "i4", "i1", "i5", "i4", "i3", "i2"],
        "timestamp:float": list(range(12)),
    })
    item = pd.DataFrame({"item_id:token": ["i1", "i2", "i3", "i4", "i9"],
                         "title:token_seq": ["Toy Story", '"Quoted" Title', "Caf\u00e9  Society", "", "Unused"]})
    return write_dataset(data_path, name, {"inter": inter, "item": item})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from recbole.config import Config
    from recbole_llm.data.dataset import create_dataset

    import recbole_llm  # noqa: F401

    data_path = tmp_path_factory.mktemp("data")
    make_dataset(data_path)
    argv, sys.argv = sys.argv, sys.argv[:1]  # RecBole's Config parses --key=value from argv
    try:
        config = Config(model="SASRec", dataset="txt", config_dict={
            "data_path": str(data_path), "item_text_field": "title", "train_neg_sample_args": None,
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "show_progress": False})
    finally:
        sys.argv = argv
    return create_dataset(config)


def test_from_dataset_maps_internal_ids(dataset, caplog):
    with caplog.at_level(logging.WARNING, logger="recbole_llm.data.item_text"):
        text = ItemText.from_dataset(dataset)
    tokens = list(dataset.field2id_token["item_id"])
    assert tokens[0] == "[PAD]" and len(text.titles) == len(tokens) == 6
    expected = {"i1": "Toy Story", "i2": '"Quoted" Title', "i3": "Caf\u00e9 Society", "i4": "", "i5": ""}
    for internal_id, token in enumerate(tokens[1:], 1):
        assert text.title(internal_id) == expected[token]
        assert text.titles[internal_id] == expected[token]
        assert text.title(np.int64(internal_id)) == expected[token]
        assert text.by_token(token) == expected[token]
    assert text.titles[0] == "" and text.title(0) == ""
    assert text.by_token("i9") == "Unused"  # in .item but not in the dataset
    with pytest.raises(KeyError):
        text.by_token("nope")
    assert "2 of 5 items have no 'title'" in caplog.text  # i4 (empty) and i5 (absent)


def fake_dataset(path, name, field, tokens=("[PAD]", "a")):
    config = {"item_text_field": field, "field_separator": "\t", "seq_separator": " ", "encoding": "utf-8"}
    return SimpleNamespace(config=config, dataset_name=name, dataset_path=str(path), iid_field="item_id",
                           field2id_token={"item_id": np.array(tokens)})


def test_missing_file_or_field_is_a_user_error(tmp_path):
    with pytest.raises(UserError) as err:
        ItemText.from_dataset(fake_dataset(tmp_path, "nofile", "title"))
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "nofile.item") in msg and "'title'" in msg
    assert "properties/dataset/nofile.yaml" in msg

    (tmp_path / "d.item").write_text("item_id:token\tmovie_title:token_seq\tyear:token\na\tX\t1999\n")
    with pytest.raises(UserError) as err:
        ItemText.from_dataset(fake_dataset(tmp_path, "d", "title"))
    msg = str(err.value)
    assert "\n" not in msg and "'title'" in msg and "columns found: item_id, movie_title, year" in msg
    assert "item_text_field" in msg and "properties/dataset/d.yaml" in msg

    with pytest.raises(UserError, match="item_text_field' is not set"):
        ItemText.from_dataset(fake_dataset(tmp_path, "d", None))
    assert ItemText.from_dataset(fake_dataset(tmp_path, "d", "movie_title")).titles == ["", "X"]


def test_ml100k_titles_from_bundled_file():
    from recbole_llm.data.movielens import bundled_ml100k_dir

    tokens = np.array(["[PAD]", "1", "64", "267"])
    text = ItemText.from_file(bundled_ml100k_dir() / "ml-100k.item", "movie_title", tokens)
    assert text.titles == ["", "Toy Story", "Shawshank Redemption, The", "unkonwn"]
