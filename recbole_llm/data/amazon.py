"""Amazon review data (McAuley lab, 2014, 2018 and 2023 releases) -> RecBole atomic files.

Reads a category's review file and metadata file, plain or gzip-compressed (detected from the
bytes, whatever the extension: ``.json``, ``.jsonl``, ``.json.gz``, ``.jsonl.gz``):

* 2014 release: reviews are JSON lines; metadata lines are Python dict literals
  (``{'asin': '...', 'title': '...'}``), parsed with :func:`ast.literal_eval`;
* 2018 release: both are JSON lines;
* 2023 release (Amazon Reviews'23, Hou et al. 2024): both are JSON lines, with other field names
  and times in milliseconds.

The line format is detected from the first record and re-detected per line when a line does not
parse, so either line format (or a mix) works. The release is detected from the first review's
fields (or chosen with ``release``). Used fields (:data:`RELEASES`): 2014/2018 reviews
``reviewerID``, ``asin``, ``overall``, ``unixReviewTime`` (seconds), metadata ``asin``, ``title``;
2023 reviews ``user_id``, ``parent_asin``, ``rating``, ``timestamp`` (milliseconds), metadata
``parent_asin``, ``title``. In 2023 the item is the ``parent_asin``, as the release's own
benchmark files use it: the ``asin`` of a review names a variant (a size, a colour) and the
metadata are per parent.
"""

import ast
import dataclasses
import gzip
import html
import json
import logging
import random
import shlex
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from recbole_llm.data.atomic import normalize_text
from recbole_llm.data.dataset_yaml import PRODUCT_PROMPT, DatasetKeys, dataset_yaml, write_dataset_folder
from recbole_llm.errors import UserError

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Release:
    """The field names of one release's review and metadata records."""

    name: str
    user: str
    item: str
    rating: str
    time: str
    meta_item: str
    time_per_second: int  # 1: Unix seconds, 1000: milliseconds

    @property
    def review_fields(self):
        return (self.user, self.item, self.rating, self.time)


_2018 = Release("2014/2018", "reviewerID", "asin", "overall", "unixReviewTime", "asin", 1)
RELEASES = {"2014": _2018, "2018": _2018,
            "2023": Release("2023", "user_id", "parent_asin", "rating", "timestamp", "parent_asin", 1000)}
REVIEW_FIELDS = _2018.review_fields


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


def detect_release(reviews_path, records=100):
    """The :class:`Release` whose review fields one of the first ``records`` records of
    ``reviews_path`` has."""
    first = None
    reader = iter_records(reviews_path, desc="release")
    try:
        for _, record in zip(range(records), reader):
            first = first or record
            for release in (RELEASES["2018"], RELEASES["2023"]):
                if all(f in record for f in release.review_fields):
                    logger.info("%s: Amazon %s release (fields %s)", reviews_path, release.name,
                                ", ".join(release.review_fields))
                    return release
    finally:
        reader.close()
    found = ", ".join(sorted(first)[:12]) if first else "no record"
    raise UserError(f"{reviews_path}: none of the first {records} records has the 2014/2018 review fields "
                    f"({', '.join(RELEASES['2018'].review_fields)}) or the 2023 ones "
                    f"({', '.join(RELEASES['2023'].review_fields)}) (the first has: {found}); pass the category's "
                    "review file as the review file")


def _release(release, reviews_path):
    if release in (None, "auto"):
        return detect_release(reviews_path)
    if isinstance(release, Release):
        return release
    if str(release) not in RELEASES:
        raise UserError(f"--release {release!r} is not one of auto, {', '.join(RELEASES)}")
    return RELEASES[str(release)]


def read_titles(meta_path, id_field="asin"):
    """``{item id: cleaned title}`` from a metadata file, the id in ``id_field`` (``asin``; 2023:
    ``parent_asin``); the first record of an id wins."""
    titles = {}
    for rec in iter_records(meta_path, desc="metadata"):
        asin = rec.get(id_field)
        if asin is None or str(asin) in titles:
            continue
        titles[str(asin)] = clean_text(rec.get("title"))
    if not titles:
        raise UserError(f"{meta_path} has no record with the field '{id_field}'; pass the category's metadata file "
                        "(meta_<Category>.json[l][.gz]) as the metadata file, or the right --release")
    return titles


def read_reviews(reviews_path, release=None):
    """DataFrame (user, item, rating, timestamp) of a review file of ``release`` (a
    :class:`Release`; default 2014/2018); records missing a field are skipped. ``timestamp`` is in
    Unix seconds: 2023's milliseconds are divided by 1000 (an integer when every time is whole
    seconds)."""
    release = release or RELEASES["2018"]
    fields = release.review_fields
    rows, skipped = [], 0
    for rec in iter_records(reviews_path, desc="reviews"):
        try:
            rows.append((str(rec[release.user]), str(rec[release.item]), float(rec[release.rating]),
                         int(rec[release.time])))
        except (KeyError, TypeError, ValueError):
            skipped += 1
    if not rows:
        raise UserError(f"{reviews_path} has no record with all of {', '.join(fields)}; pass the category's "
                        "review file (<Category>.json[l][.gz] or reviews_<Category>.json.gz) as the review file, or "
                        "the right --release")
    if skipped:
        logger.warning("%s: skipped %d records without %s", reviews_path, skipped, "/".join(fields))
    df = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    if release.time_per_second != 1:
        ticks = df["timestamp"]
        whole = (ticks % release.time_per_second == 0).all()
        df["timestamp"] = ticks // release.time_per_second if whole else ticks / release.time_per_second
    return df


def _stats(df):
    return {"users": int(df["user"].nunique()), "items": int(df["item"].nunique()), "interactions": len(df)}


@dataclasses.dataclass(frozen=True)
class AmazonImport:
    """Everything ``python -m recbole_llm.data amazon`` was asked to do, built once from its options:
    the category's review and metadata files, the dataset's name, the release whose fields to read
    (``auto``: from the first review's fields; ``2014``, ``2018``, ``2023`` or a :class:`Release`)
    and the filters of :func:`convert_amazon`."""

    reviews: str | Path
    meta: str | Path
    name: str
    release: str | Release = "auto"
    min_user_inter: int = 5
    max_title_len: int = 200
    sample_users: int | None = None
    seed: int = 2020  # of sample_users

    def command(self) -> str:
        """The command line that makes this dataset, with file names only (no machine's paths)."""
        options = [("--min-user-inter", self.min_user_inter, 5), ("--max-title-len", self.max_title_len, 200),
                   ("--sample-users", self.sample_users, None),
                   ("--seed", self.seed if self.sample_users is not None else 2020, 2020)]
        return " ".join(["python -m recbole_llm.data amazon --reviews", shlex.quote(Path(self.reviews).name),
                         "--meta", shlex.quote(Path(self.meta).name), "--name", shlex.quote(self.name)]
                        + [f"{o} {v}" for o, v, default in options if v != default])


def convert_amazon(spec: AmazonImport, data_path: str | Path) -> dict:
    """Convert the Amazon category of ``spec`` (:class:`AmazonImport`) to
    ``<data_path>/<name>/<name>.{inter,item,yaml}``.

    Steps, as in the papers' preprocessing, in this order:

    1. drop interactions with items whose title (HTML-unescaped, whitespace-collapsed) is empty,
       missing from the metadata, or longer than ``max_title_len`` characters;
    2. drop users with fewer than ``min_user_inter`` remaining interactions (one pass);
    3. if ``sample_users`` is set, keep a uniform random sample of that many users, drawn with
       ``random.Random(seed)`` from the sorted user ids (deterministic).

    ``.inter``: user_id:token (reviewerID; 2023: user_id), item_id:token (asin; 2023:
    parent_asin), rating:float, timestamp:float (Unix seconds), sorted by (user, timestamp)
    stably, so same-day reviews keep the file's order (RecBole's time-ordered split breaks ties by
    row order). ``.item``: item_id:token, title:token_seq for the items left. ``<name>.yaml``: the
    dataset's config keys (:mod:`recbole_llm.data.dataset_yaml`; ``MAX_ITEM_LIST_LENGTH`` 20 and
    the product prompt of ``properties/dataset/amazon-scientific.yaml``).

    Returns ``{step: {"users", "items", "interactions"}}`` for ``raw``, ``title_filter``,
    ``user_filter`` and ``sample``; the counts are also logged.
    """
    reviews_path, name = spec.reviews, spec.name
    min_user_inter, max_title_len, sample_users = spec.min_user_inter, spec.max_title_len, spec.sample_users
    if min_user_inter < 0 or max_title_len < 1:
        raise UserError("--min-user-inter must be >= 0 and --max-title-len >= 1")
    if sample_users is not None and sample_users < 1:
        raise UserError(f"--sample-users must be a positive number of users, got {sample_users}")
    release = _release(spec.release, reviews_path)
    titles = read_titles(spec.meta, release.meta_item)
    df = read_reviews(reviews_path, release)
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
            keep = set(random.Random(spec.seed).sample(users, sample_users))
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
    keys = DatasetKeys(name, f"Amazon {release.name} release, made by: {spec.command()}", rating=True,
                       item_text_field="title", max_item_list_length=20, prompt_template=PRODUCT_PROMPT)
    text = dataset_yaml(keys, counts)
    out = write_dataset_folder(data_path, name, {"inter": inter, "item": item}, text)
    for step, c in counts.items():
        logger.info("%s %-12s users %7d  items %7d  interactions %8d", name, step, c["users"], c["items"],
                    c["interactions"])
    logger.info("%s: wrote %s", name, out)
    return counts
