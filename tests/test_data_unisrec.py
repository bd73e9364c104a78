"""UniSRec downstream -> RecBole: the converted .inter must reproduce the published split exactly."""

import os
import random
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recbole_llm.data.__main__ import main as cli_main
from recbole_llm.data.atomic import read_header
from recbole_llm.data.unisrec import convert_unisrec, detect_category_marker, read_split, title_from_text
from recbole_llm.errors import UserError

REPO = Path(__file__).resolve().parent.parent
# shared/ lies beside the clone (CI clones main next to it); RECBOLE_LLM_SHARED overrides.
REAL = Path(os.environ.get("RECBOLE_LLM_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "datasets" / "amazon-scientific"


def write_unisrec(folder, seqs, prefix="X", texts=None, seed=0):
    """Write a UniSRec downstream folder for ``{user index: [item indices]}`` (train rows shuffled)."""
    folder.mkdir(parents=True, exist_ok=True)
    items = sorted({i for s in seqs.values() for i in s})
    asin = {i: f"B{i:05d}" for i in items}
    kinds = ("Strings", "Drums & Percussion", "Keyboards")
    texts = texts or {i: f"Thing {i}, size {i}. Musical Instruments {kinds[i % 3]}. Brand{i}. " for i in items}
    head = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    train, valid, test = [], [], []
    for u, s in seqs.items():
        test.append(f"{u}\t{' '.join(map(str, s[:-1]))}\t{s[-1]}\n")
        valid.append(f"{u}\t{' '.join(map(str, s[:-2]))}\t{s[-2]}\n")
        train += [f"{u}\t{' '.join(map(str, s[:t]))}\t{s[t]}\n" for t in range(1, len(s) - 2)]
    random.Random(seed).shuffle(train)
    (folder / f"{prefix}.train.inter").write_text(head + "".join(train))
    (folder / f"{prefix}.valid.inter").write_text(head + "".join(valid))
    (folder / f"{prefix}.test.inter").write_text(head + "".join(test))
    (folder / f"{prefix}.item2index").write_text("".join(f"{asin[i]}\t{i}\n" for i in reversed(items)))
    (folder / f"{prefix}.user2index").write_text("".join(f"R{u}\t{u}\n" for u in seqs))
    (folder / f"{prefix}.text").write_text("item_id:token\ttext:token_seq\n" +
                                           "".join(f"{asin[i]}\t{texts[i]}\n" for i in items if i in texts))
    return folder


SEQS = {0: [0, 1, 2, 3, 4], 1: [5, 1, 5, 1, 6, 7], 2: [2, 2, 2, 8, 9, 2], 3: [3, 4, 0, 3]}


def read_atomic(path):
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def sequences(inter):
    inter = inter.assign(timestamp=inter["timestamp"].astype(float))
    return {u: g.sort_values("timestamp")["item_id"].tolist() for u, g in inter.groupby("user_id")}


def test_convert_small(tmp_path):
    src = write_unisrec(tmp_path / "src", SEQS)
    counts = convert_unisrec(src, "X", tmp_path / "data", "toy")
    assert counts["users"] == 4 and counts["interactions"] == 21 and counts["train_rows"] == 21 - 3 * 4
    assert counts["category_marker"] == "Musical Instruments"
    out = tmp_path / "data" / "toy"
    assert read_header(out / "toy.inter") == [("user_id", "token"), ("item_id", "token"), ("timestamp", "float")]
    assert read_header(out / "toy.item") == [("item_id", "token"), ("title", "token_seq"), ("text", "token_seq")]
    inter = read_atomic(out / "toy.inter")
    assert sequences(inter) == {str(u): [str(i) for i in s] for u, s in SEQS.items()}
    item = read_atomic(out / "toy.item").set_index("item_id")
    assert item.loc["7", "title"] == "Thing 7, size 7"
    assert item.loc["7", "text"] == "Thing 7, size 7. Musical Instruments Drums & Percussion. Brand7."


@pytest.mark.parametrize("text, marker, title", [
    ("Glue, 8 oz. Industrial & Scientific Tapes. Gorilla. ", "Industrial & Scientific", "Glue, 8 oz"),
    ("Wipes 4.4 x 8.4 in. 1-ply. . Kimberly-Clark. ", "Industrial & Scientific", "Wipes 4.4 x 8.4 in. 1-ply"),
    ("Pads 2x2 in. Reusable. Medical Supplies. K.S. Choi. ", "Industrial & Scientific", "Pads 2x2 in"),
    ("Guitar strings. Musical Instruments Strings. Brand. ", "Musical Instruments", "Guitar strings"),
    ("Just a name", None, "Just a name"),
    ("Ends with a dot.", None, "Ends with a dot"),
])
def test_title_from_text(text, marker, title):
    assert title_from_text(text, marker) == title


def test_detect_category_marker_is_generic():
    sub = ("Paper", "Pens & Markers", "Desk Accessories")
    texts = [f"Item {k}. Office Products {sub[k % 3]} Sub{k}. Brand{k % 3}. " for k in range(8)] + ["Odd. . Brand. "]
    assert detect_category_marker(texts) == "Office Products"
    assert detect_category_marker(["a. b. c", "d. e. f"]) is None


def test_split_mismatch_is_a_user_error(tmp_path):
    src = write_unisrec(tmp_path / "src", SEQS)
    lines = (src / "X.valid.inter").read_text().splitlines()
    lines[2] = "1\t5 1 5 1\t7"  # target should be 6
    (src / "X.valid.inter").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError) as err:
        convert_unisrec(src, "X", tmp_path / "data", "toy")
    assert "valid history + valid target" in str(err.value) and "\n" not in str(err.value)

    src = write_unisrec(tmp_path / "src2", SEQS)
    with open(src / "X.train.inter", "a") as f:
        f.write("0\t0 1 2\t3\n")  # the valid sample must not be in train
    with pytest.raises(UserError, match="train.inter has 1 rows"):
        convert_unisrec(src, "X", tmp_path / "data", "toy")
    src = write_unisrec(tmp_path / "src3", {**SEQS, 4: [1, 2, 3]})
    with pytest.raises(UserError, match="fewer than 4 items"):
        convert_unisrec(src, "X", tmp_path / "data", "toy")
    (src / "X.text").unlink()
    with pytest.raises(UserError, match=r"X\.text not found"):
        convert_unisrec(src, "X", tmp_path / "data", "toy")
    assert not (tmp_path / "data" / "toy").exists()


def test_cli_error_exit_code(tmp_path, capsys):
    rc = cli_main(["unisrec", "--src", str(tmp_path), "--prefix", "Nope", "--name", "x", "--data-path", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Nope.text" in err[0]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seqs=st.lists(st.lists(st.integers(0, 6), min_size=4, max_size=9), min_size=1, max_size=6))
def test_property_sequences_survive_conversion(tmp_path_factory, seqs):
    """Any sequences (repeats included) come back unchanged, position by position."""
    tmp = tmp_path_factory.mktemp("prop")
    seqs = dict(enumerate(seqs))
    src = write_unisrec(tmp / "src", seqs)
    convert_unisrec(src, "X", tmp / "data", "p")
    inter = read_atomic(tmp / "data" / "p" / "p.inter")
    assert sequences(inter) == {str(u): [str(i) for i in s] for u, s in seqs.items()}
    assert [float(t) for t in inter["timestamp"]] == [float(p) for s in seqs.values() for p in range(len(s))]


# ----------------------------------------------------------------------------- through RecBole


def recbole_splits(data_path, name, monkeypatch):
    """(train, valid, test) Counters of (user token, history tokens, target token) as RecBole builds them."""
    from recbole.config import Config
    from recbole_llm.data.dataset import create_dataset

    import recbole_llm  # noqa: F401  (compat patches)

    monkeypatch.setattr(sys, "argv", sys.argv[:1])  # RecBole's Config parses --key=value from argv
    config = Config(model="SASRec", dataset=name,
                    config_file_list=[str(REPO / "properties" / "dataset" / "amazon-scientific.yaml")],
                    config_dict={"data_path": str(data_path), "train_neg_sample_args": None,
                                 "MAX_ITEM_LIST_LENGTH": 50, "show_progress": False,
                                 "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO",
                                               "group_by": "user", "mode": "full"}})
    dataset = create_dataset(config)
    out = []
    for part in dataset.build():
        f = part.inter_feat
        users = part.field2id_token["user_id"][f["user_id"].numpy()]
        items = part.field2id_token["item_id"]
        out.append(Counter(
            (u, tuple(items[h[:n]]), items[t])
            for u, h, n, t in zip(users, f["item_id_list"].numpy(), f["item_length"].numpy(), f["item_id"].numpy())))
    return out


def published(src, prefix):
    return [Counter((u, tuple(h), t) for u, h, t in read_split(src / f"{prefix}.{s}.inter"))
            for s in ("train", "valid", "test")]


def test_recbole_reproduces_split_synthetic(tmp_path, monkeypatch):
    src = write_unisrec(tmp_path / "src", SEQS)
    convert_unisrec(src, "X", tmp_path / "data", "toy")
    got = recbole_splits(tmp_path / "data", "toy", monkeypatch)
    assert got == published(src, "X")


@pytest.mark.skipif(not (REAL / "Scientific.test.inter").is_file(), reason="shared amazon-scientific not present")
def test_recbole_reproduces_published_scientific_split(tmp_path, monkeypatch):
    counts = convert_unisrec(REAL, "Scientific", tmp_path, "amazon-scientific")
    assert counts["users"] == 2928 and counts["items"] == 1585 and counts["interactions"] == 19712
    assert counts["category_marker"] == "Industrial & Scientific" and counts["titles_at_marker"] == 1541
    train, valid, test = recbole_splits(tmp_path, "amazon-scientific", monkeypatch)
    pub_train, pub_valid, pub_test = published(REAL, "Scientific")
    # one (history, target) per user in valid and test, equal to the published row
    assert sum(test.values()) == sum(pub_test.values()) == 2928
    assert test == pub_test
    assert valid == pub_valid
    assert train == pub_train  # augmented training samples, as a multiset
