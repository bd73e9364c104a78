"""``python -m recbole_llm.data csv``: a user's own CSV/TSV/Parquet -> atomic files and YAML, on tiny files."""

import csv
import dataclasses
import json
import os
import random
import shlex
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO
from recbole_llm.data.__main__ import main as cli_main
from recbole_llm.data.atomic import normalize_text, read_header
from recbole_llm.data.csv_import import RECBOLE_MISSING, CsvImport, convert_csv, k_core
from recbole_llm.errors import UserError

RATINGS = (
    "userId,movieId,rating,timestamp\n"
    "10,m1,4.0,1000\n"
    "2,m2,5.0,1300\n"
    "2,m1,3.0,1200\n"   # user 2 out of time order in the file
    "10,m3,1.5,900\n"
    "2,m3,4.5,1200\n"   # same time as the m1 row above: file order kept
    "10,007,2.0,1100\n"  # '007' stays '007'
)
MOVIES = (
    "movieId,title,genres\n"
    'm1,"Matrix, The (1999)",Action|Sci-Fi\n'
    'm2,"Am\u00e9lie ""Le fabuleux"" destin",Comedy\n'
    "m3,  Heat \t (1995) ,Crime\n"
    "m9,Never Rated,Drama\n"
    "007,,Action\n"      # no title
)


def read_atomic(path):
    """As RecBole reads an atomic file: tab-separated, CSV quoting, every value text."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, engine="python")
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def spec(tmp_path, **kw):
    base = {"inter": tmp_path / "ratings.csv", "name": "mine", "user_col": "userId", "item_col": "movieId"}
    base.update(kw)
    return CsvImport(**base)


@pytest.fixture
def files(tmp_path):
    return write(tmp_path, "ratings.csv", RATINGS), write(tmp_path, "movies.csv", MOVIES)


def test_convert_with_items_file(tmp_path, files):
    counts = convert_csv(spec(tmp_path, rating_col="rating", items=files[1], text_cols=("genres",)), tmp_path / "d")
    assert counts == {"raw": {"users": 2, "items": 4, "interactions": 6}}
    out = tmp_path / "d" / "mine"
    assert sorted(os.listdir(out)) == ["mine.inter", "mine.item", "mine.yaml"]
    assert read_header(out / "mine.inter") == [("user_id", "token"), ("item_id", "token"), ("rating", "float"),
                                               ("timestamp", "float")]
    inter = read_atomic(out / "mine.inter")
    # numeric user ids in numeric order (2 before 10), each user's rows in time order, ties in file order
    assert inter.values.tolist() == [["2", "m1", "3.0", "1200"], ["2", "m3", "4.5", "1200"], ["2", "m2", "5.0", "1300"],
                                     ["10", "m3", "1.5", "900"], ["10", "m1", "4.0", "1000"],
                                     ["10", "007", "2.0", "1100"]]
    item = read_atomic(out / "mine.item")
    assert read_header(out / "mine.item") == [("item_id", "token"), ("title", "token_seq"), ("genres", "token_seq")]
    assert item.values.tolist() == [["007", "", "Action"], ["m1", "Matrix, The (1999)", "Action|Sci-Fi"],
                                    ["m2", 'Am\u00e9lie "Le fabuleux" destin', "Comedy"],
                                    ["m3", "Heat (1995)", "Crime"]]  # m9 never rated: not written
    keys = yaml.safe_load((out / "mine.yaml").read_text(encoding="utf-8"))
    assert keys == {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "RATING_FIELD": "rating",
                    "TIME_FIELD": "timestamp", "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
                    "MAX_ITEM_LIST_LENGTH": 50, "item_text_field": "title", "user_inter_num_interval": None,
                    "item_inter_num_interval": None, "rm_dup_inter": None}
    assert ("made by: python -m recbole_llm.data csv --inter ratings.csv --name mine --user-col userId --item-col "
            "movieId --rating-col rating --items movies.csv --text-cols genres") in (out / "mine.yaml").read_text()


FILTERED = "u,i,r,t\nA,x,5,1\nA,y,4,2\nA,z,1,3\nB,x,4,1\nB,y,5,2\nB,w,5,3\nC,x,2,1\n"
TITLED = "i,title\nx,Ex\ny,Why\nz,Zed\nw,\n"  # w has no title


def test_filters_in_order_min_rating_drop_untitled_k_core(tmp_path):
    inter, items = write(tmp_path, "f.csv", FILTERED), write(tmp_path, "items.csv", TITLED)
    s = CsvImport(inter=inter, name="f", user_col="u", item_col="i", time_col="t", rating_col="r", min_rating=3,
                  items=items, drop_untitled=True, k_core=2)
    assert convert_csv(s, tmp_path / "d") == {
        "raw": {"users": 3, "items": 4, "interactions": 7},
        "min_rating": {"users": 2, "items": 3, "interactions": 5},     # A-z (1) and C-x (2) go, and with them C
        "drop_untitled": {"users": 2, "items": 2, "interactions": 4},  # B-w: w has no title
        "k_core": {"users": 2, "items": 2, "interactions": 4},         # everyone has 2 already
    }
    assert read_atomic(tmp_path / "d" / "f" / "f.item").values.tolist() == [["x", "Ex"], ["y", "Why"]]
    with pytest.raises(UserError) as err:
        convert_csv(dataclasses.replace(s, k_core=3), tmp_path / "e")
    msg = str(err.value)
    assert msg.startswith(f"no interactions of {inter} are left after --k-core 3 (counts: ") and \
        msg.endswith("; lower --k-core")
    assert not (tmp_path / "e").exists() or os.listdir(tmp_path / "e") == []


def test_k_core_cascades():
    df = pd.DataFrame([("A", "x"), ("A", "y"), ("B", "x"), ("B", "y"), ("C", "y"), ("C", "z"), ("D", "z")],
                      columns=["user", "item"])
    core, rounds = k_core(df, 2)
    # D goes (1 row), so z has 1 row and goes, so C has 1 row and goes; y keeps A and B
    assert core.values.tolist() == [["A", "x"], ["A", "y"], ["B", "x"], ["B", "y"]] and rounds == 3
    assert k_core(df, 1)[0].equals(df) and k_core(df, 0)[1] == 0


@pytest.mark.parametrize("name, kind", [("r.csv", "csv"), ("r.tsv", "tsv"), ("r.csv.gz", "csv"),
                                        ("r.parquet", "parquet"), ("r.txt", "semicolon"), ("r.dat", "double-colon")])
def test_formats_give_the_same_files(tmp_path, files, name, kind):
    convert_csv(spec(tmp_path, rating_col="rating"), tmp_path / "ref")
    df = pd.read_csv(files[0], dtype=str, keep_default_na=False)
    path = tmp_path / name
    options = {}
    if kind == "csv":
        df.to_csv(path, index=False)
    elif kind == "tsv":
        df.to_csv(path, sep="\t", index=False)
    elif kind == "parquet":  # typed columns: int users, float ratings and times
        typed = df.assign(userId=df["userId"].astype(int), rating=df["rating"].astype(float),
                          timestamp=df["timestamp"].astype(float))
        typed.to_parquet(path, index=False)
    elif kind == "semicolon":
        df.to_csv(path, sep=";", index=False)
        options = {"format": "csv", "sep": ";"}
    else:
        path.write_text("\n".join("::".join(row) for row in [df.columns, *df.values]) + "\n")
        options = {"format": "csv", "sep": "::"}
    convert_csv(spec(tmp_path, inter=path, rating_col="rating", **options), tmp_path / "d")
    written = (tmp_path / "d" / "mine" / "mine.inter").read_bytes()
    assert written == (tmp_path / "ref" / "mine" / "mine.inter").read_bytes()


def test_times_as_dates_milliseconds_and_parquet_datetimes(tmp_path):
    iso = write(tmp_path, "iso.csv", "u,i,t\na,x,2021-01-01 00:00:01\na,y,2021-01-01T00:00:00Z\nb,x,2021-01-02\n")
    convert_csv(CsvImport(inter=iso, name="iso", user_col="u", item_col="i", time_col="t"), tmp_path / "d")
    inter = read_atomic(tmp_path / "d" / "iso" / "iso.inter")
    assert inter.values.tolist() == [["a", "y", "1609459200"], ["a", "x", "1609459201"], ["b", "x", "1609545600"]]

    eu = write(tmp_path, "eu.csv", "u,i,t\na,y,01/02/2021 09:30\na,x,02/01/2021 10:00\n")
    convert_csv(CsvImport(inter=eu, name="eu", user_col="u", item_col="i", time_col="t",
                          time_format="%d/%m/%Y %H:%M"), tmp_path / "d")
    assert read_atomic(tmp_path / "d" / "eu" / "eu.inter")["item_id"].tolist() == ["x", "y"]  # 2 Jan before 1 Feb

    ms = write(tmp_path, "ms.csv", "u,i,t\na,x,1600000000999.5\na,y,1600000000123\n")
    convert_csv(CsvImport(inter=ms, name="ms", user_col="u", item_col="i", time_col="t"), tmp_path / "d")
    assert read_atomic(tmp_path / "d" / "ms" / "ms.inter")["timestamp"].tolist() == ["1600000000123.0",
                                                                                     "1600000000999.5"]

    pq = tmp_path / "dt.parquet"
    stamps = [pd.Timestamp("2021-01-01 00:00:05"), pd.Timestamp("2021-01-01")]  # naive: taken as UTC
    pd.DataFrame({"u": [1, 1], "i": [5, 6], "t": stamps}).to_parquet(pq)
    convert_csv(CsvImport(inter=pq, name="dt", user_col="u", item_col="i", time_col="t"), tmp_path / "d")
    assert read_atomic(tmp_path / "d" / "dt" / "dt.inter").values.tolist() == [["1", "6", "1609459200"],
                                                                               ["1", "5", "1609459205"]]


def test_titles_from_the_interaction_file_and_latin1(tmp_path):
    text = "user;item;when;name\nu1;i1;5;Caf\u00e9 au lait\nu1;i2;6;\nu2;i2;7;Second   title\nu2;i1;8;ignored\n"
    path = write(tmp_path, "inter.csv", text, encoding="latin-1")
    s = CsvImport(inter=path, name="lat", user_col="user", item_col="item", time_col="when", title_col="name",
                  sep=";", encoding="latin-1")
    convert_csv(s, tmp_path / "d")
    item = read_atomic(tmp_path / "d" / "lat" / "lat.item")
    assert item.values.tolist() == [["i1", "Caf\u00e9 au lait"], ["i2", "Second title"]]  # first non-empty title
    with pytest.raises(UserError) as err:
        convert_csv(dataclasses.replace(s, encoding="utf-8"), tmp_path / "d")
    assert str(err.value).startswith(f"{path} is not valid utf-8 text (") and "--encoding latin-1" in str(err.value)


def test_no_titles_means_no_item_file_and_no_text_field(tmp_path, files):
    convert_csv(spec(tmp_path), tmp_path / "d")
    out = tmp_path / "d" / "mine"
    assert sorted(os.listdir(out)) == ["mine.inter", "mine.yaml"]
    keys = yaml.safe_load((out / "mine.yaml").read_text())
    assert keys["item_text_field"] is None and keys["RATING_FIELD"] is None
    assert keys["load_col"] == {"inter": ["user_id", "item_id", "timestamp"]}


def test_replacing_a_dataset_replaces_its_yaml(tmp_path, files):
    convert_csv(spec(tmp_path, rating_col="rating", items=files[1]), tmp_path / "d")
    (tmp_path / "d" / "mine" / "notes.txt").write_text("mine")
    convert_csv(spec(tmp_path), tmp_path / "d")
    out = tmp_path / "d" / "mine"
    assert sorted(os.listdir(out)) == ["mine.inter", "mine.yaml", "notes.txt"]  # the old .item is gone
    assert yaml.safe_load((out / "mine.yaml").read_text())["RATING_FIELD"] is None
    assert sorted(os.listdir(tmp_path / "d")) == ["mine"]  # no temporary folders left


BAD_INPUT = [
    ({"user_col": "user"}, "ratings.csv has no column 'user' (--user-col); its columns are 'userId', 'movieId', "
                           "'rating', 'timestamp'; pass --user-col with the column's name"),
    ({"time_col": "when"}, "has no column 'when' (--time-col)"),
    ({"inter": "nowhere.csv"}, "nowhere.csv does not exist; pass the interaction file with --inter"),
    ({"inter": "ratings.json"}, "cannot tell the format from the extension '.json'; pass --format csv, tsv or parquet"),
    ({"inter": "garbage.parquet"}, "garbage.parquet cannot be read as Parquet"),
    ({"sep": ";"}, "has no column 'userId' (--user-col); its columns are 'userId,movieId,rating,timestamp' (only one "
                   "column found: is the separator ';' right? pass --sep)"),
    ({"min_rating": 3.0}, "--min-rating needs --rating-col"),
    ({"rating_col": "rating", "min_rating": 9.0}, "are left after --min-rating 9 (counts: "),
    ({"k_core": 4}, "are left after --k-core 4"),
    ({"inter": "inf.csv"}, "inf.csv: data row 2: column 'timestamp' (--time-col) holds 'inf', not a finite time"),
    ({"inter": "nan.csv"}, "nan.csv: data row 1: column 'timestamp' (--time-col) holds '', not a finite time"),
    ({"inter": "words.csv"}, "words.csv: data row 1: column 'timestamp' (--time-col) holds 'yesterday', not a finite"),
    ({"inter": "mixed.csv"}, "mixed.csv: data row 2: column 'timestamp' (--time-col) holds 'soon', not a finite time"),
    ({"inter": "noid.csv"}, "noid.csv: data row 2 has no value in column 'movieId' (--item-col); fill it in"),
    ({"inter": "header.csv"}, "header.csv has no rows, only a header"),
    ({"inter": "empty.csv"}, "empty.csv is empty"),
    ({"rating_col": "rating", "inter": "badrating.csv"}, "column 'rating' (--rating-col) holds 'five', not a finite"),
    ({"inter": "huge.csv"}, "huge.csv: data row 1: column 'timestamp' (--time-col) holds '1e39', not a finite time"),
    ({"inter": "na.csv"}, "na.csv: data row 2: column 'userId' (--user-col) holds the id 'NA', which RecBole's reader "
                          "takes for a missing value and drops the row; rename that id (e.g. to 'NA_')"),
    ({"items": "movies.csv", "item_id_col": "title"}, "none of the 4 item ids of"),
    ({"items": "movies.csv", "title_col": "name"}, "movies.csv has no column 'name' (--title-col)"),
    ({"item_id_col": "movieId"}, "--item-id-col names the id column of --items; pass --items too"),
    ({"name": "ml-100k"}, "--name ml-100k is taken"),
    ({"name": "a/b"}, "--name 'a/b' is not a usable dataset name"),
    ({"text_cols": ("title",), "items": "movies.csv"}, "--text-cols column 'title' would be written as the field "
                                                       "'title', which is empty or taken"),
    ({"encoding": "klingon"}, "--encoding 'klingon' is not an encoding Python knows"),
    ({"inter": "nul.csv"}, "nul.csv:3: a NUL character, which the CSV reader would silently cut the value at"),
    ({"inter": "broken.csv.gz"}, "broken.csv.gz cannot be read ("),
]


@pytest.mark.parametrize("change, message", BAD_INPUT)
def test_bad_input_is_one_user_error_and_writes_nothing(tmp_path, files, change, message):
    head = "userId,movieId,rating,timestamp\n"
    for name, body in {"inf.csv": "1,a,1,5\n1,b,1,inf\n", "nan.csv": "1,a,1,\n", "words.csv": "1,a,1,yesterday\n",
                       "mixed.csv": "1,a,1,5\n1,b,1,soon\n", "noid.csv": "1,a,1,5\n2,,1,6\n", "header.csv": "",
                       "badrating.csv": "1,a,five,5\n", "nul.csv": "1,a,1,5\n1,b\x00c,1,6\n",
                       "huge.csv": "1,a,1,1e39\n", "na.csv": "1,a,1,5\nNA,b,1,6\n"}.items():
        write(tmp_path, name, head + body)
    write(tmp_path, "empty.csv", "")
    write(tmp_path, "garbage.parquet", "not parquet at all")
    write(tmp_path, "broken.csv.gz", "not gzip at all")
    change = {k: tmp_path / v if k in ("inter", "items") else v for k, v in change.items()}
    with pytest.raises(UserError) as err:
        convert_csv(spec(tmp_path, **change), tmp_path / "d")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "d").exists() or os.listdir(tmp_path / "d") == []


def test_cli_error_is_one_line_and_exit_2(tmp_path, files, capsys):
    rc = cli_main(["csv", "--inter", str(files[0]), "--user-col", "uid", "--name", "x", "--data-path",
                   str(tmp_path / "d")])
    assert rc == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {files[0]} has no column 'uid' (--user-col); its columns are 'userId', 'movieId', 'rating', "
        "'timestamp'; pass --user-col with the column's name")


# ----------------------------------------------------------------------------- properties
def brute_force_core(rows, k):
    """The k-core by removing one user or item at a time (any order gives the unique k-core)."""
    rows = list(rows)
    while True:
        users, items = {}, {}
        for u, i in rows:
            users[u] = users.get(u, 0) + 1
            items[i] = items.get(i, 0) + 1
        low = next((("u", u) for u, n in users.items() if n < k), None) or \
            next((("i", i) for i, n in items.items() if n < k), None)
        if low is None:
            return rows
        rows = [r for r in rows if (r[0] if low[0] == "u" else r[1]) != low[1]]


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=60), k=st.integers(1, 4))
def test_k_core_is_the_unique_maximal_core(rows, k):
    df = pd.DataFrame(rows, columns=["user", "item"], dtype=int)
    core, _ = k_core(df, k)
    assert sorted(map(tuple, core.values.tolist())) == sorted(brute_force_core(rows, k))
    if len(core):
        assert core.groupby("user").size().min() >= k and core.groupby("item").size().min() >= k
    assert len(k_core(core, k)[0]) == len(core)  # stable


ID = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8).filter(
    lambda s: normalize_text(s) not in RECBOLE_MISSING)  # "", "NA", "null", ...: refused (test_bad_input_...)
TITLE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(ID, ID, st.integers(-10**10, 10**10), TITLE), min_size=1, max_size=12))
def test_ids_and_titles_round_trip_through_csv(tmp_path_factory, rows):
    """Whatever text the ids and titles hold (quotes, commas, tabs, newlines, accents), RecBole reads
    back the ids and the whitespace-collapsed titles the CSV held."""
    folder = tmp_path_factory.mktemp("rt")
    with open(folder / "in.csv", "w", encoding="utf-8", newline="") as f:  # Python's CSV writer: quotes \r too
        csv.writer(f).writerows([("u", "i", "t", "title"), *rows])
    spec = CsvImport(inter=folder / "in.csv", name="rt", user_col="u", item_col="i", time_col="t", title_col="title")
    if any("\x00" in str(v) for row in rows for v in row):  # pandas would cut the value there: refused
        with pytest.raises(UserError, match="a NUL character"):
            convert_csv(spec, folder / "d")
        return
    convert_csv(spec, folder / "d")
    inter = read_atomic(folder / "d" / "rt" / "rt.inter")
    want = sorted((normalize_text(u), normalize_text(i), str(t)) for u, i, t, _ in rows)
    assert sorted(map(tuple, inter.values.tolist())) == want
    first = {}
    for _, i, _, title in rows:  # the first non-empty title of each item
        if normalize_text(title) and normalize_text(i) not in first:
            first[normalize_text(i)] = normalize_text(title)
    item = read_atomic(folder / "d" / "rt" / "rt.item")
    assert {i: t for i, t in item.values.tolist() if t} == first


# ----------------------------------------------------------------------------- the README's example
# The "Your own data" section of README.md shows exactly these two commands.
README_CONVERT = ("python -m recbole_llm.data csv --inter ratings.csv --items movies.csv "
                  "--user-col userId --item-col movieId --time-col timestamp --rating-col rating "
                  "--k-core 5 --name my-movies")
README_TRAIN = "python run_benchmark.py --model=SASRec --dataset=my-movies --budget=quick"  # reads dataset/my-movies/my-movies.yaml
TINY = ["--epochs=1", "--train_batch_size=64", "--eval_batch_size=256", "--MAX_ITEM_LIST_LENGTH=10", "--topk=[5,10]",
        "--metrics=hit@5,ndcg@10", "--embedding_size=16", "--hidden_size=16", "--inner_size=32", "--n_layers=1",
        "--n_heads=1"]


def write_movielens_like(folder, n_users=30, n_items=20, seed=0):
    """ratings.csv and movies.csv in the columns of MovieLens' CSV releases; two users below the 5-core."""
    rng = random.Random(seed)
    lines = ["userId,movieId,rating,timestamp"]
    for u in range(1, n_users + 3):
        t = 1500000000 + u * 1000
        for _ in range(rng.randint(6, 12) if u <= n_users else 2):
            t += rng.randint(1, 500)
            lines.append(f"{u},{rng.randint(1, n_items)},{rng.choice([2.5, 3.0, 4.0, 4.5, 5.0])},{t}")
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    movies = ["movieId,title,genres"] + [f'{m},"Film {m}, The ({1990 + m})",Drama' for m in range(1, n_items + 1)]
    (folder / "movies.csv").write_text("\n".join(movies) + "\n")


def _run_benchmark_main():
    from entry import run_benchmark_main

    return run_benchmark_main()


def test_readme_example_end_to_end(tmp_path, monkeypatch):
    """The README's two commands, from a folder holding the CSVs: the converter as written (a process
    of its own), then run_benchmark.py with a tiny budget and this test's own paths."""
    started = time.perf_counter()
    write_movielens_like(tmp_path)
    argv = shlex.split(README_CONVERT)
    assert argv[:3] == ["python", "-m", "recbole_llm.data"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[1].startswith("my-movies k_core        users      30  items      20")
    assert out.stdout.splitlines()[-1].endswith("train with: python run_benchmark.py --model=SASRec --dataset=my-movies")
    folder = tmp_path / "dataset" / "my-movies"
    assert sorted(os.listdir(folder)) == ["my-movies.inter", "my-movies.item", "my-movies.yaml"]

    monkeypatch.chdir(tmp_path)  # as in the README: run from the folder that holds dataset/
    train = shlex.split(README_TRAIN)
    assert train[:2] == ["python", "run_benchmark.py"]
    rc = _run_benchmark_main()([*train[2:], f"--data-path={tmp_path / 'dataset'}", f"--output={tmp_path / 'results'}",
                                f"--saved-dir={tmp_path / 'saved'}", "--threads=1", "--no-progress", *TINY])
    assert rc == 0
    (record_path,) = (tmp_path / "results" / "my-movies" / "runs").glob("*.json")
    record = json.loads(record_path.read_text())
    assert record["dataset"] == "my-movies" and record["epochs_run"] == 1
    # the dataset's YAML was in force: its text field and its load_col (with the rating)
    assert record["config"]["item_text_field"] == "title"
    assert record["config"]["load_col"] == {"inter": ["user_id", "item_id", "rating", "timestamp"]}
    assert 0.0 <= record["test"]["ndcg@10"] <= 1.0
    print(f"README example end to end: {time.perf_counter() - started:.1f} s")


def test_readme_shows_the_tested_commands():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    if "## Your own data" not in readme:
        pytest.skip("README.md has no 'Your own data' section yet")
    section = readme.split("## Your own data", 1)[1].split("\n## ", 1)[0]
    joined = " ".join(section.replace("\\\n", " ").split())
    assert README_CONVERT in joined and README_TRAIN in joined
