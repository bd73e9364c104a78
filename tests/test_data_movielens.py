"""MovieLens: bundled ml-100k, raw ml-1m conversion, and RecBole-style download (local server only)."""

import builtins
import contextlib
import filecmp
import functools
import http.server
import os
import shutil
import threading
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from recbole_llm.data.__main__ import main as cli_main
from recbole_llm.data.atomic import download_recbole_dataset, read_header
from recbole_llm.data.movielens import bundled_ml100k_dir, clean_title, convert_ml1m, download_ml1m, materialize_ml100k
from recbole_llm.data.prepare import ensure_dataset
from recbole_llm.errors import UserError


def read_atomic(path):
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def test_materialize_ml100k_copies_bundled_files(tmp_path):
    out = ensure_dataset("ml-100k", tmp_path)
    assert out == tmp_path / "ml-100k"
    src = bundled_ml100k_dir()
    names = sorted(f.name for f in src.glob("ml-100k.*"))
    assert sorted(os.listdir(out)) == names and "ml-100k.inter" in names
    for n in names:
        assert filecmp.cmp(src / n, out / n, shallow=False)
    assert read_header(out / "ml-100k.item")[1] == ("movie_title", "token_seq")
    # a second run replaces the folder cleanly
    assert materialize_ml100k(tmp_path) == out and sorted(os.listdir(tmp_path)) == ["ml-100k"]


@pytest.mark.parametrize("raw, title, year", [
    ("Toy Story (1995)", "Toy Story", "1995"),
    ("Shawshank Redemption, The (1994)", "The Shawshank Redemption", "1994"),
    ("Seven (Se7en) (1995)", "Seven", "1995"),
    ("Big Blue, The (Grand bleu, Le) (1988)", "The Big Blue", "1988"),
    ("City of Lost Children, The (Cit\u00e9 des enfants perdus, La) (1995)", "The City of Lost Children", "1995"),
    ("Nightmare on Elm Street 4: The Dream Master, A (1988)", "A Nightmare on Elm Street 4: The Dream Master", "1988"),
    ("\u00c2ge d'or, L' (1930)", "L'\u00c2ge d'or", "1930"),
    ("Mis\u00e9rables, Les (1995)", "Les Mis\u00e9rables", "1995"),
    ("Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb (1963)",
     "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb", "1963"),
    ("Sex,\tLies, and Videotape (1989)", "Sex, Lies, and Videotape", "1989"),
    ("No Year Here", "No Year Here", ""),
    ("(Untitled) (2000)", "(Untitled)", "2000"),
])
def test_clean_title(raw, title, year):
    assert clean_title(raw) == (title, year)


def write_raw_ml1m(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text(
        "2::1::4::978300100\n1::2::5::978300760\n1::1::3::978300700\n10::3::1::978301000\n2::3::2::978300050\n",
        encoding="latin-1")
    (folder / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "2::Mis\u00e9rables, Les (1995)::Drama|Musical\n"
        "3::Shawshank Redemption, The (1994)::Drama\n".encode("latin-1"))
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n10::M::25::12::32793\n",
                                      encoding="latin-1")


def test_convert_ml1m(tmp_path):
    raw = tmp_path / "raw"
    write_raw_ml1m(raw)
    counts = convert_ml1m(raw, tmp_path / "data")
    assert counts == {"users": 3, "items": 3, "interactions": 5}
    out = tmp_path / "data" / "ml-1m"
    assert sorted(os.listdir(out)) == ["ml-1m.inter", "ml-1m.item", "ml-1m.user"]
    assert read_header(out / "ml-1m.inter") == [("user_id", "token"), ("item_id", "token"), ("rating", "float"),
                                                ("timestamp", "float")]
    assert read_header(out / "ml-1m.item") == [("item_id", "token"), ("movie_title", "token_seq"),
                                               ("release_year", "token"), ("genre", "token_seq")]
    assert read_header(out / "ml-1m.user") == [("user_id", "token"), ("age", "token"), ("gender", "token"),
                                               ("occupation", "token"), ("zip_code", "token")]
    inter = read_atomic(out / "ml-1m.inter")
    # sorted by (numeric user, timestamp)
    assert inter[["user_id", "item_id", "timestamp"]].values.tolist() == [
        ["1", "1", "978300700"], ["1", "2", "978300760"], ["2", "3", "978300050"], ["2", "1", "978300100"],
        ["10", "3", "978301000"]]
    item = read_atomic(out / "ml-1m.item").set_index("item_id")
    assert item.loc["2", "movie_title"] == "Les Mis\u00e9rables"  # Latin-1 in, UTF-8 out
    assert (out / "ml-1m.item").read_bytes().count("Mis\u00e9rables".encode("utf-8")) == 1
    assert item.loc["3"].tolist() == ["The Shawshank Redemption", "1994", "Drama"]
    assert item.loc["1", "genre"] == "Animation Children's Comedy"
    user = read_atomic(out / "ml-1m.user").set_index("user_id")
    assert user.loc["2"].tolist() == ["56", "M", "16", "70072"]


def test_convert_ml1m_errors(tmp_path):
    raw = tmp_path / "raw"
    write_raw_ml1m(raw)
    (raw / "users.dat").unlink()
    with pytest.raises(UserError) as err:
        convert_ml1m(raw, tmp_path / "data")
    assert str(raw / "users.dat") in str(err.value) and "\n" not in str(err.value)
    write_raw_ml1m(raw)
    (raw / "ratings.dat").write_text("1::2::5\n")
    with pytest.raises(UserError, match=r"ratings.dat line 1 has 3"):
        convert_ml1m(raw, tmp_path / "data")
    assert not (tmp_path / "data" / "ml-1m").exists()


@contextlib.contextmanager
def serve(folder):
    """A local HTTP server on 127.0.0.1 serving ``folder``, in a thread, shut down afterwards."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def make_zip(path, files):
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)


ML1M_ZIP = {
    "ml-1m.inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t1193\t5\t978300760\n",
    "ml-1m.item": "item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq\n1193\tOne Flew\t1975\tDrama\n",
    "ml-1m.user": "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n1\t1\tF\t10\t48067\n",
}


@pytest.fixture
def no_prompt(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the download asked for input")

    monkeypatch.setattr(builtins, "input", refuse)


def test_download_ml1m_from_local_server(tmp_path, no_prompt):
    site = tmp_path / "site"
    site.mkdir()
    make_zip(site / "ml-1m.zip", ML1M_ZIP)
    data = tmp_path / "data"
    with serve(site) as base:
        out = download_ml1m(data, url=f"{base}/ml-1m.zip", timeout=10)
    assert out == data / "ml-1m"
    assert sorted(os.listdir(out)) == ["ml-1m.inter", "ml-1m.item", "ml-1m.user"]
    assert (out / "ml-1m.item").read_text() == ML1M_ZIP["ml-1m.item"]
    assert sorted(os.listdir(data)) == ["ml-1m"]  # no temp/download leftovers


def test_download_renames_nested_zip_like_recbole(tmp_path, no_prompt):
    site = tmp_path / "site"
    site.mkdir()
    make_zip(site / "Amazon_Books.zip", {"Amazon_Books/Amazon_Books.inter": "user_id:token\titem_id:token\nu\ti\n",
                                         "Amazon_Books/Amazon_Books.item": "item_id:token\ttitle:token_seq\ni\tA b\n"})
    with serve(site) as base:
        out = download_recbole_dataset("amazon-books", tmp_path / "data", url=f"{base}/Amazon_Books.zip", timeout=10)
    assert sorted(os.listdir(out)) == ["amazon-books.inter", "amazon-books.item"]


def test_download_failure_says_how_to_convert(tmp_path, no_prompt):
    site = tmp_path / "site"
    site.mkdir()
    (site / "broken.zip").write_bytes(b"not a zip at all")
    data = tmp_path / "data"
    with serve(site) as base:
        for url in (f"{base}/missing.zip", f"{base}/broken.zip"):
            with pytest.raises(UserError) as err:
                download_ml1m(data, url=url, timeout=10)
            msg = str(err.value)
            assert "\n" not in msg and "failed" in msg and url in msg
            assert "python -m recbole_llm.data ml-1m --raw-dir DIR" in msg
    # a closed port: connection refused
    with pytest.raises(UserError, match="--raw-dir"):
        download_ml1m(data, url="http://127.0.0.1:9/ml-1m.zip", timeout=5)
    assert os.listdir(data) == []


def test_cli_ml1m_raw_and_error_exit(tmp_path, capsys):
    raw = tmp_path / "raw"
    write_raw_ml1m(raw)
    assert cli_main(["ml-1m", "--raw-dir", str(raw), "--data-path", str(tmp_path / "data")]) == 0
    assert (tmp_path / "data" / "ml-1m" / "ml-1m.inter").is_file()
    assert cli_main(["ml-1m", "--raw-dir", str(tmp_path / "nowhere"), "--data-path", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "ratings.dat" in err[-1]


# ----------------------------------------------------------------------------- GroupLens' real ml-1m files
# shared/ lies beside the clone (as in tests/test_data_unisrec.py); RECBOLE_LLM_SHARED overrides.
ML1M_META = Path(os.environ.get("RECBOLE_LLM_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "datasets" \
    / "ml-1m-meta"


@pytest.mark.skipif(not (ML1M_META / "movies.dat").is_file() or not (ML1M_META / "users.dat").is_file(),
                    reason=f"GroupLens' ml-1m movies.dat and users.dat are not at {ML1M_META} (shared/ beside the "
                           "checkout, or $RECBOLE_LLM_SHARED/datasets/ml-1m-meta)")
def test_convert_ml1m_real_movies_and_users_with_synthetic_ratings(tmp_path):
    """GroupLens' own movies.dat and users.dat (Latin-1) with a ratings.dat made here over their ids
    (the real ratings.dat is not available: shared/datasets/ml-1m-meta/PROVENANCE.md)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("movies.dat", "users.dat"):
        shutil.copyfile(ML1M_META / name, raw / name)
    movie_ids = [line.split(b"::", 1)[0].decode() for line in (raw / "movies.dat").read_bytes().splitlines()]
    user_ids = [line.split(b"::", 1)[0].decode() for line in (raw / "users.dat").read_bytes().splitlines()]
    assert (len(movie_ids), len(user_ids)) == (3883, 6040)
    # three ratings per user, cycling through the movies so that every movie is rated
    lines = [f"{u}::{movie_ids[(3 * k + j) % len(movie_ids)]}::{1 + (k + j) % 5}::{978300000 + 60 * (3 * k + j)}"
             for k, u in enumerate(user_ids) for j in range(3)]
    (raw / "ratings.dat").write_text("\n".join(lines) + "\n", encoding="latin-1")

    counts = convert_ml1m(raw, tmp_path / "data")
    assert counts == {"users": 6040, "items": 3883, "interactions": 18120}
    out = tmp_path / "data" / "ml-1m"
    item = read_atomic(out / "ml-1m.item").set_index("item_id")
    user = read_atomic(out / "ml-1m.user").set_index("user_id")
    assert (len(item), len(user)) == (3883, 6040)
    # Article moved to the front, year kept in its own column (release_year), not in the title
    assert item.loc["2571"].tolist() == ["The Matrix", "1999", "Action Sci-Fi Thriller"]    # "Matrix, The (1999)"
    assert item.loc["1933", "movie_title"] == "The Life of \u00c9mile Zola"                 # "Life of Émile Zola, The"
    assert item.loc["1406", "movie_title"] == "La C\u00e9r\u00e9monie"                      # "Cérémonie, La"
    assert item.loc["73", "movie_title"] == "Les Mis\u00e9rables"
    assert item.loc["2175"].tolist()[:2] == ["D\u00e9j\u00e0 Vu", "1997"]                    # Latin-1 0xE9, 0xE0
    assert item.loc["1320", "movie_title"] == "Alien\u00b3"                                  # Latin-1 0xB3
    assert item.loc["570", "movie_title"] == "The Slingshot"                 # "Slingshot, The (Kådisbellan ) (1993)"
    assert item.loc["293", "movie_title"] == "The Professional"  # "Professional, The (a.k.a. Leon: ...) (1994)"
    assert item.loc["1001"].tolist()[:2] == ["The Associate", "1982"]        # "Associate, The (L'Associe)(1982)"
    text = (out / "ml-1m.item").read_text(encoding="utf-8")  # written as UTF-8
    assert "D\u00e9j\u00e0 Vu" in text and "\ufffd" not in text
    assert not [t for t in item["movie_title"] if t.endswith((", The", ", A", ", An"))]
    assert all(len(y) == 4 and y.isdigit() for y in item["release_year"])
    assert user.loc["1"].tolist() == ["1", "F", "10", "48067"] and user.loc["6040"].tolist()[1] == "M"
    inter = read_atomic(out / "ml-1m.inter")
    assert inter["user_id"].iloc[[0, -1]].tolist() == ["1", "6040"]  # numeric user order
