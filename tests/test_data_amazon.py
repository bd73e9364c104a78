"""Amazon review data, 2014 and 2018 releases, plain and gzip, on tiny synthetic files."""

import gzip
import json
import os

import pandas as pd
import pytest

from recbole_llm.data.__main__ import main as cli_main
from recbole_llm.data.amazon import convert_amazon
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
    counts = convert_amazon(reviews, meta, tmp_path / "data", "toy-amz")
    assert counts == {
        "raw": {"users": 5, "items": 6, "interactions": 25},
        "title_filter": {"users": 5, "items": 3, "interactions": 21},
        "user_filter": {"users": 3, "items": 3, "interactions": 15},
        "sample": {"users": 3, "items": 3, "interactions": 15},
    }
    out = tmp_path / "data" / "toy-amz"
    assert sorted(os.listdir(out)) == ["toy-amz.inter", "toy-amz.item"]
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
    counts = convert_amazon(reviews, meta, tmp_path / "d", "a", min_user_inter=2, max_title_len=300)
    assert counts["title_filter"]["items"] == 4 and counts["user_filter"]["users"] == 5
    picks = []
    for run in range(2):
        c = convert_amazon(reviews, meta, tmp_path / f"s{run}", "a", min_user_inter=2, sample_users=2, seed=7)
        assert c["sample"]["users"] == 2
        picks.append((tmp_path / f"s{run}" / "a" / "a.inter").read_bytes())
    assert picks[0] == picks[1]
    others = {convert_amazon(reviews, meta, tmp_path / f"t{seed}", "a", min_user_inter=2, sample_users=2,
                             seed=seed)["sample"]["interactions"] for seed in range(6)}
    assert len(others) > 1  # the seed matters


def test_errors(tmp_path):
    reviews, meta = write_release(tmp_path / "raw", 2018, False)
    with pytest.raises(UserError, match="review file"):
        convert_amazon(meta, meta, tmp_path / "d", "a")  # metadata passed as reviews
    bad = tmp_path / "bad.json"
    bad.write_text('{"reviewerID": "U1", "asin": "A1", "overall": 5, "unixReviewTime": 1}\nnot json at all\n')
    with pytest.raises(UserError) as err:
        convert_amazon(bad, meta, tmp_path / "d", "a")
    assert f"{bad} line 2" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="does not exist"):
        convert_amazon(tmp_path / "nope.json.gz", meta, tmp_path / "d", "a")
    with pytest.raises(UserError, match="no interactions left"):
        convert_amazon(reviews, meta, tmp_path / "d", "a", min_user_inter=100)
    assert not (tmp_path / "d" / "a").exists()


def test_cli_amazon(tmp_path, capsys):
    reviews, meta = write_release(tmp_path / "raw", 2014, True)
    rc = cli_main(["amazon", "--reviews", str(reviews), "--meta", str(meta), "--name", "cli-amz",
                   "--data-path", str(tmp_path / "data"), "--sample-users", "2"])
    assert rc == 0
    assert "sample" in capsys.readouterr().out
    assert len(read_atomic(tmp_path / "data" / "cli-amz" / "cli-amz.inter")["user_id"].unique()) == 2
