"""Amazon review data (McAuley lab, 2014 and 2018 releases) -> RecBole atomic files.

Reads a category's review file and metadata file, plain or gzip-compressed:

* 2014 release: reviews are JSON lines; metadata lines are Python dict literals
  (``{'asin': '...', 'title': '...'}``), parsed with :func:`ast.literal_eval`;
* 2018 release: both are JSON lines.

The line format is detected from the first record and re-detected per line when a line does not
parse, so either release (or a mix) works. Used fields: reviews ``reviewerID``, ``asin``,
``overall``, ``unixReviewTime``; metadata ``asin``, ``title``.
"""

import ast
import gzip
import html
import json
import logging
import random
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from recbole_llm.data.atomic import normalize_text, write_dataset
from recbole_llm.errors import UserError

logger = logging.getLogger(__name__)

REVIEW_FIELDS = ("reviewerID", "asin", "overall", "unixReviewTime")


def _open_text(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass the Amazon review/metadata file (.json, .json.gz)")
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _parse_json(line):
    return json.loads(line)


def _parse_literal(line):
    return ast.literal_eval(line)


def iter_records(path, desc=None):
    """Dicts from a JSON-lines or Python-literal-lines file (plain or .gz), with a progress bar."""
    parsers = [_parse_json, _parse_literal]
    with _open_text(path) as f:
        try:
            for lineno, line in enumerate(tqdm(f, desc=desc or Path(path).name, unit=" lines", disable=None), 1):
                line = line.strip()
                if not line:
                    continue
                for i, parse in enumerate(parsers):
                    try:
                        record = parse(line)
                    except (ValueError, SyntaxError, MemoryError, RecursionError):
                        continue
                    if isinstance(record, dict):
                        if i:  # this format worked: try it first from now on
                            parsers.insert(0, parsers.pop(i))
                        break
                else:
                    raise UserError(f"{path} line {lineno} is neither a JSON object nor a Python dict literal: "
                                    f"{line[:60]!r}...; pass the unmodified Amazon review/metadata file")
                yield record
        except (OSError, EOFError, UnicodeDecodeError) as err:
            raise UserError(f"{path} cannot be read ({' '.join(str(err).split())}); pass an intact "
                            ".json or .json.gz file") from None


def clean_text(text):
    """HTML-unescape and collapse whitespace (tabs and newlines included)."""
    if text is None:
        return ""
    return normalize_text(html.unescape(str(text)))


def read_titles(meta_path):
    """``{asin: cleaned title}`` from a metadata file (the first record of an ASIN wins)."""
    titles = {}
    for rec in iter_records(meta_path, desc="metadata"):
        asin = rec.get("asin")
        if asin is None or asin in titles:
            continue
        titles[str(asin)] = clean_text(rec.get("title"))
    if not titles:
        raise UserError(f"{meta_path} has no record with an 'asin' field; pass the category's metadata file "
                        "(meta_<Category>.json[.gz]) as the metadata file")
    return titles


def read_reviews(reviews_path):
    """DataFrame (user, item, rating, timestamp) of a review file; records missing a field are skipped."""
    rows, skipped = [], 0
    for rec in iter_records(reviews_path, desc="reviews"):
        try:
            rows.append((str(rec["reviewerID"]), str(rec["asin"]), float(rec["overall"]), int(rec["unixReviewTime"])))
        except (KeyError, TypeError, ValueError):
            skipped += 1
    if not rows:
        raise UserError(f"{reviews_path} has no record with all of {', '.join(REVIEW_FIELDS)}; pass the category's "
                        "review file (<Category>.json[.gz] or reviews_<Category>.json.gz) as the review file")
    if skipped:
        logger.warning("%s: skipped %d records without %s", reviews_path, skipped, "/".join(REVIEW_FIELDS))
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


def _stats(df):
    return {"users": int(df["user"].nunique()), "items": int(df["item"].nunique()), "interactions": len(df)}


def convert_amazon(reviews_path, meta_path, data_path, name, min_user_inter=5, max_title_len=200,
                   sample_users=None, seed=2020):
    """Convert one Amazon category to ``<data_path>/<name>/<name>.{inter,item}``.

    Steps, as in the papers' preprocessing, in this order:

    1. drop interactions with items whose title (HTML-unescaped, whitespace-collapsed) is empty,
       missing from the metadata, or longer than ``max_title_len`` characters;
    2. drop users with fewer than ``min_user_inter`` remaining interactions (one pass);
    3. if ``sample_users`` is set, keep a uniform random sample of that many users, drawn with
       ``random.Random(seed)`` from the sorted user ids (deterministic).

    ``.inter``: user_id:token (reviewerID), item_id:token (ASIN), rating:float,
    timestamp:float (unixReviewTime), sorted by (user, timestamp) stably, so same-day reviews
    keep the file's order (RecBole's time-ordered split breaks ties by row order).
    ``.item``: item_id:token, title:token_seq for the items left.

    Returns ``{step: {"users", "items", "interactions"}}`` for ``raw``, ``title_filter``,
    ``user_filter`` and ``sample``; the counts are also logged.
    """
    if min_user_inter < 0 or max_title_len < 1:
        raise UserError("--min-user-inter must be >= 0 and --max-title-len >= 1")
    if sample_users is not None and sample_users < 1:
        raise UserError(f"--sample-users must be a positive number of users, got {sample_users}")
    titles = read_titles(meta_path)
    df = read_reviews(reviews_path)
    counts = {"raw": _stats(df)}

    good = {a for a, t in titles.items() if t and len(t) <= max_title_len}
    df = df[df["item"].isin(good)]
    counts["title_filter"] = _stats(df)

    n = df.groupby("user")["item"].transform("size")
    df = df[n >= min_user_inter]
    counts["user_filter"] = _stats(df)

    if sample_users is not None:
        users = sorted(df["user"].unique())
        if sample_users < len(users):
            keep = set(random.Random(seed).sample(users, sample_users))
            df = df[df["user"].isin(keep)]
    counts["sample"] = _stats(df)
    if df.empty:
        raise UserError(f"no interactions left after filtering {reviews_path} (counts: {counts}); "
                        "lower --min-user-inter or raise --max-title-len")

    df = df.sort_values(["user", "timestamp"], kind="stable")
    inter = pd.DataFrame({"user_id:token": df["user"], "item_id:token": df["item"],
                          "rating:float": df["rating"], "timestamp:float": df["timestamp"]})
    items = sorted(df["item"].unique())
    item = pd.DataFrame({"item_id:token": items, "title:token_seq": [titles[a] for a in items]})
    out = write_dataset(data_path, name, {"inter": inter, "item": item})
    for step, c in counts.items():
        logger.info("%s %-12s users %7d  items %7d  interactions %8d", name, step, c["users"], c["items"],
                    c["interactions"])
    logger.info("%s: wrote %s", name, out)
    return counts
