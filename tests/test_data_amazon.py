"""Amazon review data, 2014, 2018 and 2023 releases, plain and gzip, on tiny synthetic files."""

import gzip
import json
import os

import pandas as pd
import pytest
import yaml

from recbole_llm.data.__main__ import main as cli_main
from recbole_llm.data.amazon import AmazonImport, convert_amazon
from recbole_llm.data.atomic import read_header
from recbole_llm.errors import UserError

TITLES = {
    "A1": "Glue &amp; Tape",               # html entity -> "Glue & Tape"
    "A2": "  Safety\tGoggles \n Clear ",   # whitespace normalised
    "A3": "",                              # empty title: dropped
    "A4": "x" * 201,                       # too long: dropped
    "A5": "Lab Coat, \"Medium\"",
}
# user -> [(asin, time)]; A6 has no metadata at all
REVIEWS = {
    "U1": [("A1", 5), ("A2", 3), ("A5", 9), ("A1", 7), ("A2", 1)],   # 5 kept -> stays
    "U2": [("A1", 1), ("A3", 2), ("A4", 3), ("A6", 4), ("A2", 5)],   # 2 kept -> dropped
    "U3": [("A2", 1), ("A5", 2), ("A1", 3), ("A1", 3), ("A5", 4)],   # 5 kept (duplicate time) -> stays
    "U4": [("A5", 1), ("A2", 2), ("A1", 3), ("A2", 4), ("A5", 5), ("A4", 6)],  # 5 kept -> stays
    "U5": [("A1", 1), ("A2", 2), ("A5", 3), ("A1", 4)],                # 4 kept -> dropped (boundary)
}


def review_records():
    for user, events in REVIEWS.items():
        for asin, t in events:
            yield {"reviewerID": user, "asin": asin, "overall": 4.0, "unixReviewTime": 1400000000 + t * 86400,
                   "reviewText": "fine"}


def write_lines(path, lines, gz):
    data = "".join(line + "\n" for line in lines)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def write_release(folder, release, gz):
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".json.gz" if gz else ".json"
    reviews = write_lines(folder / f"reviews{ext}", [json.dumps(r) for r in review_records()], gz)
    meta = [{"asin": a, "title": t, "categories": [["Industrial & Scientific"]]} for a, t in TITLES.items()]
    meta.append({"asin": "A7", "description": "no title field"})
    # 2014 metadata: Python dict literals (single quotes), 2018: JSON
    lines = [repr(m) if release == 2014 else json.dumps(m) for m in meta]
    return reviews, write_lines(folder / f"meta{ext}", lines, gz)


def read_atomic(path):
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


@pytest.mark.parametrize("release, gz", [(2014, True), (2018, False), (2018, True)])
def test_convert_both_releases(tmp_path, release, gz):
    reviews, meta = write_release(tmp_path / "raw", release, gz)
    counts = convert_amazon(AmazonImport(reviews, meta, "toy-amz"), tmp_path / "data")
    assert counts == {
        "raw": {"users": 5, "items": 6, "interactions": 25},
        "title_filter": {"users": 5, "items": 3, "interactions": 21},
        "user_filter": {"users": 3, "items": 3, "interactions": 15},
        "sample": {"users": 3, "items": 3, "interactions": 15},
    }
    out = tmp_path / "data" / "toy-amz"
    assert sorted(os.listdir(out)) == ["toy-amz.inter", "toy-amz.item", "toy-amz.yaml"]
    assert read_header(out / "toy-amz.inter") == [("user_id", "token"), ("item_id", "token"), ("rating", "float"),
                                                  ("timestamp", "float")]
    assert read_header(out / "toy-amz.item") == [("item_id", "token"), ("title", "token_seq")]
    item = read_atomic(out / "toy-amz.item")
    assert dict(zip(item["item_id"], item["title"])) == {"A1": "Glue & Tape", "A2": "Safety Goggles Clear",
                                                         "A5": 'Lab Coat, "Medium"'}
    inter = read_atomic(out / "toy-amz.inter")
    u1 = inter[inter["user_id"] == "U1"]
    assert u1["item_id"].tolist() == ["A2", "A2", "A1", "A1", "A5"]  # time order
    u3 = inter[inter["user_id"] == "U3"]
    assert u3["item_id"].tolist() == ["A2", "A5", "A1", "A1", "A5"]  # ties keep file order
    assert set(inter["rating"]) == {"4.0"}


def test_thresholds_and_deterministic_sample(tmp_path):
    reviews, meta = write_release(tmp_path / "raw", 2018, False)
    counts = convert_amazon(AmazonImport(reviews, meta, "a", min_user_inter=2, max_title_len=300), tmp_path / "d")
    assert counts["title_filter"]["items"] == 4 and counts["user_filter"]["users"] == 5
    picks = []
    for run in range(2):
        spec = AmazonImport(reviews, meta, "a", min_user_inter=2, sample_users=2, seed=7)
        c = convert_amazon(spec, tmp_path / f"s{run}")
        assert c["sample"]["users"] == 2
        picks.append((tmp_path / f"s{run}" / "a" / "a.inter").read_bytes())
    assert picks[0] == picks[1]
    others = {convert_amazon(AmazonImport(reviews, meta, "a", min_user_inter=2, sample_users=2, seed=seed),
                             tmp_path / f"t{seed}")["sample"]["interactions"] for seed in range(6)}
    assert len(others) > 1  # the seed matters


def test_errors(tmp_path):
    reviews, meta = write_release(tmp_path / "raw", 2018, False)
    with pytest.raises(UserError, match="review file"):
        convert_amazon(AmazonImport(meta, meta, "a"), tmp_path / "d")  # metadata passed as reviews
    bad = tmp_path / "bad.json"
    bad.write_text('{"reviewerID": "U1", "asin": "A1", "overall": 5, "unixReviewTime": 1}\nnot json at all\n')
    with pytest.raises(UserError) as err:
        convert_amazon(AmazonImport(bad, meta, "a"), tmp_path / "d")
    assert f"{bad} line 2" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="does not exist"):
        convert_amazon(AmazonImport(tmp_path / "nope.json.gz", meta, "a"), tmp_path / "d")
    with pytest.raises(UserError, match="no interactions left"):
        convert_amazon(AmazonImport(reviews, meta, "a", min_user_inter=100), tmp_path / "d")
    assert not (tmp_path / "d" / "a").exists()


def test_cli_amazon(tmp_path, capsys):
    reviews, meta = write_release(tmp_path / "raw", 2014, True)
    rc = cli_main(["amazon", "--reviews", str(reviews), "--meta", str(meta), "--name", "cli-amz",
                   "--data-path", str(tmp_path / "data"), "--sample-users", "2"])
    assert rc == 0
    assert "sample" in capsys.readouterr().out
    assert len(read_atomic(tmp_path / "data" / "cli-amz" / "cli-amz.inter")["user_id"].unique()) == 2


# ----------------------------------------------------------------------------- 2023 release
def review_records_2023(ms_offset=0):
    """The same reviews in the 2023 fields: the item is the parent ASIN; ``asin`` a variant of it."""
    for user, events in REVIEWS.items():
        for k, (asin, t) in enumerate(events):
            yield {"rating": 4.0, "title": "Review title", "text": "fine", "images": [], "asin": f"{asin}-V{k}",
                   "parent_asin": asin, "user_id": user, "timestamp": (1400000000 + t * 86400) * 1000 + ms_offset,
                   "helpful_vote": 0, "verified_purchase": True}


def write_release_2023(folder, ext, ms_offset=0):
    folder.mkdir(parents=True, exist_ok=True)
    gz = ext.endswith(".gz")
    reviews = write_lines(folder / f"Industrial_and_Scientific{ext}",
                          [json.dumps(r) for r in review_records_2023(ms_offset)], gz)
    meta = [{"main_category": "Industrial & Scientific", "title": t, "features": [], "description": [],
             "store": "Acme", "parent_asin": a} for a, t in TITLES.items()]
    meta.append({"main_category": "Industrial & Scientific", "parent_asin": "A7", "features": []})  # no title
    return reviews, write_lines(folder / f"meta_Industrial_and_Scientific{ext}", [json.dumps(m) for m in meta], gz)


@pytest.mark.parametrize("ext, release", [(".jsonl", "auto"), (".jsonl.gz", "auto"), (".json.gz", "2023")])
def test_convert_2023_release(tmp_path, ext, release):
    reviews, meta = write_release_2023(tmp_path / "raw", ext)
    counts = convert_amazon(AmazonImport(reviews, meta, "amz23", release=release), tmp_path / "data")
    assert counts["raw"] == {"users": 5, "items": 6, "interactions": 25}  # parent ASINs, not the 25 variants
    assert counts["sample"] == {"users": 3, "items": 3, "interactions": 15}
    out = tmp_path / "data" / "amz23"
    item = read_atomic(out / "amz23.item")
    assert dict(zip(item["item_id"], item["title"])) == {"A1": "Glue & Tape", "A2": "Safety Goggles Clear",
                                                         "A5": 'Lab Coat, "Medium"'}
    inter = read_atomic(out / "amz23.inter")
    u1 = inter[inter["user_id"] == "U1"]
    assert u1["item_id"].tolist() == ["A2", "A2", "A1", "A1", "A5"]
    # milliseconds -> Unix seconds, whole ones written as integers
    assert u1["timestamp"].tolist() == [str(1400000000 + t * 86400) for t in (1, 3, 5, 7, 9)]


def test_2023_milliseconds_keep_their_order_within_a_second(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    base = 1600000000123
    rows = [{"user_id": "U", "parent_asin": a, "rating": 5.0, "timestamp": base + dt}
            for a, dt in (("A2", 700), ("A1", 5), ("A5", 450), ("A1", 999))]  # file order is not time order
    reviews = write_lines(raw / "r.jsonl", [json.dumps(r) for r in rows], gz=False)
    meta = write_lines(raw / "m.jsonl", [json.dumps({"parent_asin": a, "title": f"T {a}"}) for a in TITLES], gz=False)
    convert_amazon(AmazonImport(reviews, meta, "ms", min_user_inter=1), tmp_path / "d")
    inter = read_atomic(tmp_path / "d" / "ms" / "ms.inter")
    assert inter["item_id"].tolist() == ["A1", "A5", "A2", "A1"]
    assert inter["timestamp"].tolist() == ["1600000000.128", "1600000000.573", "1600000000.823", "1600000001.122"]


def test_2023_errors(tmp_path):
    reviews, meta = write_release_2023(tmp_path / "raw", ".jsonl")
    with pytest.raises(UserError, match="has no record with the field 'asin'.*or the right --release"):
        convert_amazon(AmazonImport(reviews, meta, "a", release="2018"), tmp_path / "d")  # forced to the wrong one
    _, meta14 = write_release(tmp_path / "raw14", 2014, False)
    with pytest.raises(UserError, match="has no record with all of reviewerID, asin, overall, unixReviewTime"):
        convert_amazon(AmazonImport(reviews, meta14, "a", release="2014"), tmp_path / "d")
    with pytest.raises(UserError) as err:
        convert_amazon(AmazonImport(meta, meta, "a"), tmp_path / "d")  # metadata passed as reviews
    assert "user_id, parent_asin, rating, timestamp" in str(err.value) and "review file" in str(err.value)
    _, meta18 = write_release(tmp_path / "raw18", 2018, False)
    with pytest.raises(UserError, match="has no record with the field 'parent_asin'"):
        convert_amazon(AmazonImport(reviews, meta18, "a"), tmp_path / "d")  # 2018 metadata beside 2023 reviews
    assert not (tmp_path / "d" / "a").exists()


def test_dataset_yaml_is_written_beside_the_files(tmp_path):
    reviews, meta = write_release_2023(tmp_path / "raw", ".jsonl.gz")
    convert_amazon(AmazonImport(reviews, meta, "amz23"), tmp_path / "data")
    path = tmp_path / "data" / "amz23" / "amz23.yaml"
    keys = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert keys == {
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "RATING_FIELD": "rating", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]}, "MAX_ITEM_LIST_LENGTH": 20,
        "item_text_field": "title", "user_inter_num_interval": None, "item_inter_num_interval": None,
        "rm_dup_inter": None, "prompt_template": "Your task is to recommend the next product the user may be "
        "interested in based on their purchase history: {titles}.",
    }
    text = path.read_text(encoding="utf-8")
    assert "Amazon 2023 release, made by: python -m recbole_llm.data amazon --reviews Industrial_and_Scientific" \
           ".jsonl.gz --meta meta_Industrial_and_Scientific.jsonl.gz --name amz23" in text
    assert str(tmp_path) not in text  # file names only, no machine's paths


def test_cli_amazon_2023(tmp_path, capsys):
    reviews, meta = write_release_2023(tmp_path / "raw", ".jsonl")
    rc = cli_main(["amazon", "--reviews", str(reviews), "--meta", str(meta), "--name", "cli23", "--release", "2023",
                   "--data-path", str(tmp_path / "data"), "--min-user-inter", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "cli23 sample        users       5  items       3  interactions       21" in out
    assert f"config keys in {tmp_path / 'data' / 'cli23' / 'cli23.yaml'}" in out
    assert cli_main(["amazon", "--reviews", str(meta), "--meta", str(meta), "--name", "x",
                     "--data-path", str(tmp_path / "data")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: ")
