"""MovieLens datasets as RecBole atomic files: ml-100k (bundled with RecBole) and ml-1m.

* :func:`materialize_ml100k` copies RecBole's bundled ml-100k files (no network).
* :func:`download_ml1m` fetches RecBole's processed ml-1m, like RecBole itself would, but
  without its interactive size prompt.
* :func:`convert_ml1m` builds ml-1m from GroupLens' raw ``*.dat`` files, for machines without
  network access to RecBole's server.
"""

import logging
import re
import shutil
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from recbole_llm.data.atomic import (
    download_recbole_dataset,
    install_dir,
    new_temp_dir,
    normalize_text,
    recbole_urls,
    validate_dataset,
    write_dataset,
)
from recbole_llm.errors import UserError

logger = logging.getLogger(__name__)

ML1M_RAW_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
ML1M_OFFLINE_HINT = (
    "without network, get GroupLens' raw files (" + ML1M_RAW_URL + ") on another machine, unzip them "
    "and run 'python -m recbole_llm.data ml-1m --raw-dir DIR' with DIR holding ratings.dat, movies.dat, users.dat"
)

# Articles that MovieLens moves behind the title ("Usual Suspects, The"; "Grande illusion, La").
ARTICLES = ("The", "A", "An", "L'", "La", "Le", "Les", "Il", "Lo", "Gli", "El", "Los", "Las",
            "Das", "Der", "Die", "Den", "Det", "Une", "Un", "Una")
_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:-\d{2,4})?\)\s*$")
_TRAILING_ARTICLE = re.compile(r"^(?P<body>.+),\s*(?P<article>" + "|".join(re.escape(a) for a in ARTICLES) + r")$")


def bundled_ml100k_dir():
    """RecBole's bundled ml-100k folder (``recbole/dataset_example/ml-100k``)."""
    import recbole

    return Path(recbole.__file__).resolve().parent / "dataset_example" / "ml-100k"


def materialize_ml100k(data_path, name="ml-100k"):
    """Copy RecBole's bundled ml-100k atomic files into ``<data_path>/<name>/`` (atomically).

    Note: RecBole's ``Config`` ignores ``data_path`` for the dataset name ``ml-100k`` and always
    reads the bundled copy; this copy makes the data folder self-contained (and identical).
    """
    src = bundled_ml100k_dir()
    files = sorted(src.glob("ml-100k.*"))
    if not any(f.name == "ml-100k.inter" for f in files):
        raise UserError(f"RecBole's bundled ml-100k is missing at {src}; reinstall recbole (pip install --force-reinstall recbole==1.2.1)")
    data_path = Path(data_path)
    tmp = new_temp_dir(data_path, name)
    try:
        for f in tqdm(files, desc="ml-100k: copying", unit="file", disable=None):
            shutil.copyfile(f, tmp / (name + f.name[len("ml-100k"):]))
        validate_dataset(tmp, name)
        out = install_dir(tmp, data_path / name, name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("ml-100k: copied %d files from %s to %s", len(files), src, out)
    return out


def download_ml1m(data_path, url=None, name="ml-1m", timeout=60.0):
    """Download RecBole's processed ml-1m into ``<data_path>/<name>/``, as RecBole would, without prompts.

    The URL is RecBole's own (``recbole/properties/dataset/url.yaml``, key ``ml-1m``) unless ``url``
    is given. No network (or a bad archive) -> :class:`UserError` saying the download failed and how
    to convert GroupLens' raw files instead (``python -m recbole_llm.data ml-1m --raw-dir DIR``).
    """
    if url is None:
        url = recbole_urls()["ml-1m"]
    return download_recbole_dataset(name, data_path, url=url, timeout=timeout, fix_hint=ML1M_OFFLINE_HINT)


def clean_title(raw):
    """Split a MovieLens title into ``(title, year)``.

    ``"Toy Story (1995)"`` -> ``("Toy Story", "1995")``. Two further rules, chosen because these
    titles are shown to language models, which know films by their ordinary names:

    * Alternate titles in parentheses before the year are dropped:
      ``"Seven (Se7en) (1995)"`` -> ``"Seven"``; ``"Big Blue, The (Grand bleu, Le) (1988)"`` ->
      ``"The Big Blue"``. In MovieLens these are original-language names or "a.k.a." titles; the
      primary (English) title is the one that identifies the film, and the alternates add
      foreign words that look like extra content to a text model.
    * A trailing article is moved to the front: ``"Shawshank Redemption, The"`` ->
      ``"The Shawshank Redemption"``, ``"Nightmare on Elm Street 4: The Dream Master, A"`` ->
      ``"A Nightmare on Elm Street 4: The Dream Master"``, ``"Âge d'or, L'"`` -> ``"L'Âge d'or"``.
      The ", The" form is a library sort key, not how the title is written in text.

    Whitespace (tabs included) is collapsed to single spaces. A title without a year keeps its
    text and gets year ``""``. Note: RecBole's bundled ml-100k keeps the raw form
    (``"Shawshank Redemption, The"``, ``"Seven (Se7en)"``); ml-100k is copied verbatim.
    """
    text = normalize_text(raw)
    year = ""
    m = _YEAR.match(text)
    if m and m.group("title"):
        text, year = m.group("title"), m.group("year")
    # drop trailing parenthesised alternate titles, innermost-last, keeping a non-empty title
    while text.endswith(")"):
        depth, start = 0, None
        for i in range(len(text) - 1, -1, -1):
            if text[i] == ")":
                depth += 1
            elif text[i] == "(":
                depth -= 1
                if depth == 0:
                    start = i
                    break
        if start is None or not text[:start].strip():
            break
        text = text[:start].rstrip()
    m = _TRAILING_ARTICLE.match(text)
    if m:
        article, body = m.group("article"), m.group("body").rstrip()
        text = f"{article}{body}" if article.endswith("'") else f"{article} {body}"
    return text, year


def _read_dat(path, n_fields, encoding, desc):
    """Rows of a GroupLens ``::``-separated file; a malformed line -> :class:`UserError`."""
    rows = []
    with open(path, encoding=encoding, newline="") as f:
        for lineno, line in enumerate(tqdm(f, desc=desc, unit=" lines", disable=None), 1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            if n_fields == 3:  # movies.dat: the title may in principle contain '::'
                first, _, rest = line.partition("::")
                title, sep, genres = rest.rpartition("::")
                parts = [first, title, genres] if sep else [line]
            else:
                parts = line.split("::")
            if len(parts) != n_fields or not parts[0]:
                raise UserError(f"{path} line {lineno} has {len(parts)} '::'-separated fields, expected {n_fields}: "
                                f"{line[:80]!r}; use the unmodified GroupLens ml-1m files")
            rows.append(parts)
    return rows


def _raw_file(raw_dir, filename):
    raw_dir = Path(raw_dir)
    for candidate in (raw_dir / filename, raw_dir / "ml-1m" / filename):
        if candidate.is_file():
            return candidate
    raise UserError(f"{raw_dir / filename} not found: --raw-dir must hold GroupLens' ml-1m files ratings.dat, "
                    f"movies.dat and users.dat (unzip {ML1M_RAW_URL} and pass its ml-1m folder)")


def convert_ml1m(raw_dir, data_path, name="ml-1m"):
    """Convert GroupLens' raw ml-1m (``ratings.dat``, ``movies.dat``, ``users.dat``) to atomic files.

    Writes ``<data_path>/<name>/<name>.{inter,item,user}`` with the headers of RecBole's own
    processed ml-1m: ``.inter`` user_id:token, item_id:token, rating:float, timestamp:float;
    ``.item`` item_id:token, movie_title:token_seq, release_year:token, genre:token_seq;
    ``.user`` user_id:token, age:token, gender:token, occupation:token, zip_code:token.
    Titles are cleaned with :func:`clean_title`. The raw files are read as ISO-8859-1 (GroupLens'
    encoding) and written as UTF-8.

    ``.inter`` rows are sorted by (user, timestamp), stably. RecBole holds float fields as float32
    tensors, so Unix timestamps (~1e9) are only resolved to 64 s and its time-ordered split breaks
    ties by row order; sorted rows make that order the true one.
    Returns ``{"users", "items", "interactions"}``.
    """
    paths = {f: _raw_file(raw_dir, f) for f in ("ratings.dat", "movies.dat", "users.dat")}
    ratings = _read_dat(paths["ratings.dat"], 4, "latin-1", "ml-1m: ratings.dat")
    movies = _read_dat(paths["movies.dat"], 3, "latin-1", "ml-1m: movies.dat")
    users = _read_dat(paths["users.dat"], 5, "latin-1", "ml-1m: users.dat")

    inter = pd.DataFrame(ratings, columns=["user_id:token", "item_id:token", "rating:float", "timestamp:float"])
    try:
        inter["rating:float"] = pd.to_numeric(inter["rating:float"])
        inter["timestamp:float"] = pd.to_numeric(inter["timestamp:float"]).astype("int64")
    except (ValueError, TypeError) as err:
        raise UserError(f"{paths['ratings.dat']}: a Rating or Timestamp is not a number ({err}); "
                        "use the unmodified GroupLens ml-1m files") from None
    inter["_uid"] = pd.to_numeric(inter["user_id:token"], errors="coerce")
    inter = inter.sort_values(["_uid", "user_id:token", "timestamp:float"], kind="stable").drop(columns="_uid")

    item_rows = []
    for mid, raw_title, genres in tqdm(movies, desc="ml-1m: titles", unit=" movies", disable=None):
        title, year = clean_title(raw_title)
        genre = " ".join(g.strip().replace(" ", "_") for g in genres.split("|") if g.strip())
        item_rows.append((mid, title, year, genre))
    item = pd.DataFrame(item_rows, columns=["item_id:token", "movie_title:token_seq", "release_year:token",
                                            "genre:token_seq"])
    # GroupLens order: UserID::Gender::Age::Occupation::Zip-code; RecBole's: age, gender, occupation, zip.
    user = pd.DataFrame([(u, a, g, o, normalize_text(z)) for u, g, a, o, z in users],
                        columns=["user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token"])
    out = write_dataset(data_path, name, {"inter": inter, "item": item, "user": user})
    counts = {"users": int(inter["user_id:token"].nunique()), "items": int(inter["item_id:token"].nunique()),
              "interactions": len(inter)}
    logger.info("ml-1m: wrote %s (%d users, %d items, %d interactions; %d movies in movies.dat)",
                out, counts["users"], counts["items"], counts["interactions"], len(item))
    return counts
