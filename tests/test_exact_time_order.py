"""The time-ordered split uses the exact times, not RecBole's float32 copy of them."""

import pytest
from recbole.data import data_preparation
from recbole.data.dataset import SequentialDataset

from recbole_llm.data.dataset import ExactTimeDataset, ExactTimeSequentialDataset, create_dataset
from recbole_llm.quick_start import build_config
from recbole_llm.spec import RunSpec

T0 = 1_700_000_000  # float32 spacing here is 128 s: 20 s steps collapse into two keys


def write_newest_first(data_path, name="newest"):
    """u1: i1..i8, 20 s apart, stored newest first; u2: j1..j5, 30 s apart, newest first;
    u3: k1..k4 exactly tied at one time (file order decides, as in RecBole)."""
    rows = [("u1", f"i{k}", T0 + 20 * k) for k in range(8, 0, -1)]
    rows += [("u2", f"j{k}", T0 + 1000 + 30 * k) for k in range(5, 0, -1)]
    rows += [("u3", f"k{k}", T0 + 5000) for k in range(1, 5)]
    folder = data_path / name
    folder.mkdir(parents=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"] + [f"{u}\t{i}\t{t}" for u, i, t in rows]
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    return name


def splits(config, dataset):
    """``{split: {user: (history tokens, target token)}}`` of the built valid and test splits."""
    _, valid, test = data_preparation(config, dataset)
    out = {}
    for split, loader in (("valid", valid), ("test", test)):
        feat = loader._dataset.inter_feat
        d = loader._dataset
        out[split] = {}
        for u, t, seq, n in zip(feat["user_id"].tolist(), feat["item_id"].tolist(),
                                feat["item_id_list"].tolist(), feat["item_length"].tolist()):
            out[split][d.id2token("user_id", u)] = (list(d.id2token("item_id", seq[:n])), d.id2token("item_id", t))
    return out


@pytest.fixture
def config(tmp_path):
    name = write_newest_first(tmp_path)
    overrides = {"load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "MAX_ITEM_LIST_LENGTH": 10,
                 "user_inter_num_interval": None, "show_progress": False}
    return build_config(RunSpec("SASRec", name, 1, (), overrides, tmp_path, tmp_path / "saved"))


def test_sequential_histories_and_targets_follow_the_exact_times(config):
    dataset = create_dataset(config)
    assert type(dataset) is ExactTimeSequentialDataset
    got = splits(config, dataset)
    i = [f"i{k}" for k in range(1, 9)]
    assert got["test"]["u1"] == (i[:7], "i8")
    assert got["valid"]["u1"] == (i[:6], "i7")
    assert got["test"]["u2"] == (["j1", "j2", "j3", "j4"], "j5")
    assert got["valid"]["u2"] == (["j1", "j2", "j3"], "j4")
    assert got["test"]["u3"] == (["k1", "k2", "k3"], "k4")  # exact ties keep file order
    # RecBole alone orders by float32 keys: the toy does exercise the fault
    plain = splits(config, SequentialDataset(config))
    assert plain["test"]["u1"] == (["i3", "i2", "i1", "i8", "i7", "i6", "i5"], "i4")


def test_general_model_split_follows_the_exact_times(tmp_path):
    name = write_newest_first(tmp_path)
    overrides = {"load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "user_inter_num_interval": None,
                 "show_progress": False}
    config = build_config(RunSpec("BPR", name, 1, (), overrides, tmp_path, tmp_path / "saved"))
    dataset = create_dataset(config)
    assert type(dataset) is ExactTimeDataset
    train, valid, test = dataset.build()

    def targets(split):
        feat = split.inter_feat
        return [(split.id2token("user_id", u), split.id2token("item_id", t))
                for u, t in zip(feat["user_id"].tolist(), feat["item_id"].tolist())]

    assert [t for u, t in targets(test) if u == "u1"] == ["i8"]
    assert [t for u, t in targets(valid) if u == "u1"] == ["i7"]
    assert [t for u, t in targets(train) if u == "u1"] == [f"i{k}" for k in range(1, 7)]


def test_a_saved_dataset_is_reused_only_by_its_own_class(config):
    import os

    config["save_dataset"] = True
    first = create_dataset(config)
    saved = os.path.join(config["checkpoint_dir"], "newest-ExactTimeSequentialDataset.pth")
    assert os.path.isfile(saved)  # not RecBole's newest-SequentialDataset.pth, ordered at float32 precision
    config["save_dataset"] = False
    again = create_dataset(config)
    assert type(again) is ExactTimeSequentialDataset and again is not first
    assert splits(config, again)["test"]["u1"][1] == "i8"
