"""A user's own interactions (CSV, TSV or Parquet) -> RecBole atomic files and the dataset's YAML.

``python -m recbole_llm.data csv --inter ratings.csv --user-col userId --item-col movieId
--time-col timestamp --name my-data`` reads one row per interaction and writes
``<data_path>/<name>/`` with

* ``<name>.inter``: ``user_id:token``, ``item_id:token``, [``rating:float``,] ``timestamp:float``,
  sorted by (user, time), stably;
* ``<name>.item`` (when titles or texts are given): ``item_id:token``, ``title:token_seq`` and
  one ``token_seq`` column per ``--text-cols`` column, for the items left;
* ``<name>.yaml``: the dataset's keys in the form of ``properties/dataset/*.yaml``
  (:mod:`recbole_llm.data.dataset_yaml`), which every run on the dataset loads.

Choices, each for a reason:

* The time column is required. The benchmark's split is leave-one-out in time order
  (``eval_args.order: TO``); without times the order of a user's interactions, and so which one
  is the test item, would be whatever the file happens to say.
* Times are numbers (Unix seconds, milliseconds, any monotone clock: only their order matters)
  or dates (ISO 8601 such as ``2020-01-31 12:00:00``, or ``--time-format``), which become Unix
  seconds; a date without a time zone is taken as UTC.
* Ids are text: ``007`` and ``7`` are different ids, as in RecBole's ``token`` fields.
* Filters, in this order: ``--min-rating``; ``--drop-untitled``; ``--k-core N``, which removes
  users and items with fewer than N interactions, repeated until none is left (removing an item
  can push a user below N), so every user and item left has at least N (the N-core is unique).
  Repeated (user, item) pairs are kept and count as interactions, as RecBole counts them.
* A title or text is whitespace-collapsed; per item the first row with a non-empty title wins.
"""

import dataclasses
import logging
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_llm.data.atomic import _NA_STRINGS as RECBOLE_MISSING
from recbole_llm.data.atomic import normalize_text
from recbole_llm.data.dataset_yaml import DatasetKeys, dataset_yaml, write_dataset_folder
from recbole_llm.errors import UserError

logger = logging.getLogger(__name__)

FORMATS = ("csv", "tsv", "parquet")
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSION = (".gz", ".bz2", ".xz", ".zip", ".zst")
_SEPARATORS = {"csv": ",", "tsv": "\t"}
# RecBole keeps float fields in float32 tensors: a larger magnitude becomes infinite there.
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Names the converter writes; a --text-cols column may not take one of them.
_ITEM_FIELDS = ("item_id", "title")


@dataclasses.dataclass(frozen=True)
class CsvImport:
    """Everything ``python -m recbole_llm.data csv`` was asked to do, built once from its options."""

    inter: Path
    name: str
    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: str = "timestamp"
    time_format: str = None
    rating_col: str = None
    min_rating: float = None
    items: Path = None
    item_id_col: str = None  # default: item_col
    title_col: str = None  # default: "title" with an items file
    text_cols: tuple = ()
    k_core: int = 0
    drop_untitled: bool = False
    format: str = None
    item_format: str = None
    sep: str = None
    encoding: str = "utf-8"
    max_item_list_length: int = 50

    def command(self):
        """The command line that makes this dataset, with file names only (no machine's paths)."""
        parts = ["python -m recbole_llm.data csv", "--inter", Path(self.inter).name]
        defaults = CsvImport(inter=self.inter, name=self.name)
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("inter",) or (field.name != "name" and value == getattr(defaults, field.name)):
                continue
            option = "--" + field.name.replace("_", "-")
            if field.name == "max_item_list_length":
                option = "--max-seq-len"
            if isinstance(value, bool):
                parts.append(option)
            elif field.name == "items":
                parts += [option, Path(value).name]
            elif field.name == "text_cols":
                parts += [option, ",".join(value)]
            else:
                parts += [option, str(value)]
        return " ".join(parts[:1] + [shlex.quote(p) for p in parts[1:]])


def table_format(path, fmt=None, option="--format"):
    """``csv``, ``tsv`` or ``parquet``: ``fmt`` when given, else from the file name's extension
    (a compression suffix such as ``.gz`` is looked through)."""
    if fmt:
        if fmt not in FORMATS:
            raise UserError(f"{option} {fmt!r} is not one of {', '.join(FORMATS)}")
        return fmt
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes.pop()
    ext = suffixes[-1] if suffixes else ""
    if ext not in _EXTENSIONS:
        raise UserError(f"{path}: cannot tell the format from the extension '{ext or '(none)'}'; "
                        f"pass {option} csv, tsv or parquet")
    return _EXTENSIONS[ext]


def _separator(sep, fmt):
    if sep is None:
        return _SEPARATORS[fmt]
    return {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(sep, sep)


@dataclasses.dataclass(frozen=True)
class TableFile:
    """One input file of an import and how to read it: its ``format`` (``csv``, ``tsv`` or
    ``parquet``: :func:`table_format`), the separator (None: the format's) and text encoding of a
    CSV/TSV file, and, for the messages, what the file holds (``what``) and the option that
    passes it (``option``)."""

    path: Path
    format: str
    sep: str | None = None
    encoding: str = "utf-8"
    what: str = "interaction"
    option: str = "--inter"


def read_table(table: TableFile, wanted: dict[str, str]) -> pd.DataFrame:
    """The columns ``wanted`` (``{option: column}``) of the CSV/TSV/Parquet file ``table``.

    CSV and TSV cells are read as text (so ids keep leading zeros); Parquet columns keep their
    types. Each problem is a :class:`UserError` naming the file and the option to fix: a missing
    file, one that does not parse, a missing column (the columns found are listed).
    """
    path, fmt, encoding = Path(table.path), table.format, table.encoding
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass the {table.what} file with {table.option}")
    columns = list(dict.fromkeys(wanted.values()))
    if fmt == "parquet":
        import pyarrow
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except (OSError, ValueError, pyarrow.ArrowException) as err:
            raise UserError(f"{path} cannot be read as Parquet ({' '.join(str(err).split())}); pass an intact "
                            "Parquet file, or --format/--item-format csv or tsv if it is text") from None
        _check_columns(path, names, wanted)
        try:
            return pd.read_parquet(path, columns=columns)
        except (OSError, ValueError, pyarrow.ArrowException) as err:
            raise UserError(f"{path} cannot be read as Parquet ({' '.join(str(err).split())}); pass an intact "
                            "Parquet file") from None
    sep = _separator(table.sep, fmt)
    # utf-8-sig: a byte-order mark would otherwise become part of the first column's name
    read_as = "utf-8-sig" if codecs_name(encoding) == "utf-8" else encoding
    kwargs = {"sep": sep, "dtype": str, "keep_default_na": False, "encoding": read_as}
    if len(sep) > 1:  # pandas reads a longer separator as a regular expression, with its Python engine
        kwargs.update(sep=re.escape(sep), engine="python")
    try:
        _refuse_nul(path, read_as)
        names = list(pd.read_csv(path, nrows=0, **kwargs).columns)
        _check_columns(path, names, wanted, sep)
        df = pd.read_csv(path, usecols=columns, **kwargs)
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not valid {encoding} text ({err.reason}); pass --encoding with the file's "
                        "encoding, e.g. --encoding latin-1") from None
    except (OSError, EOFError) as err:  # e.g. a truncated or mislabelled .gz
        raise UserError(f"{path} cannot be read ({' '.join(str(err).split())}); pass an intact file") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} is empty; pass a {fmt.upper()} file whose first line names the columns") from None
    except (pd.errors.ParserError, ValueError) as err:
        raise UserError(f"{path} cannot be parsed as {fmt.upper()} with separator {sep!r} "
                        f"({' '.join(str(err).split())}); check --sep and the file's quoting") from None
    return df


_OPENERS = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}


def _refuse_nul(path, encoding, chunk=1 << 20):
    """Raise :class:`UserError` naming the line of the first NUL character of a text file.

    pandas' C parser ends a value at a NUL without a word (``"a\0b"`` is read as ``"a"``), which
    could merge two ids, so the text is scanned first (one pass, decompressed as pandas would).
    """
    import importlib

    suffix = Path(path).suffix.lower()
    if suffix in (".zip", ".zst"):
        return  # read by pandas only
    opener = importlib.import_module(_OPENERS[suffix]).open if suffix in _OPENERS else open
    line = 1
    with opener(path, "rt", encoding=encoding, newline="") as f:
        while True:
            text = f.read(chunk)
            if not text:
                return
            at = text.find("\x00")
            if at >= 0:
                line += text.count("\n", 0, at)
                raise UserError(f"{path}:{line}: a NUL character, which the CSV reader would silently cut the value "
                                "at; remove it (e.g. tr -d '\\000' < in > out)")
            line += text.count("\n")


def codecs_name(encoding):
    """Python's canonical name of ``encoding`` (``UTF8`` -> ``utf-8``); an unknown one -> :class:`UserError`."""
    import codecs

    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise UserError(f"--encoding {encoding!r} is not an encoding Python knows; e.g. utf-8, latin-1, "
                        "cp1252") from None


def _check_columns(path, names, wanted, sep=None):
    for option, column in wanted.items():
        if column not in names:
            shown = ", ".join(repr(n) for n in names[:20]) + (", ..." if len(names) > 20 else "")
            hint = (f" (only one column found: is the separator {sep!r} right? pass --sep)"
                    if sep is not None and len(names) == 1 else "")
            raise UserError(f"{path} has no column {column!r} ({option}); its columns are {shown}{hint}; pass "
                            f"{option} with the column's name")


def as_text(series):
    """Cells as one-line text ("" for a missing one); integral floats (a Parquet id column with
    gaps) without their ``.0``."""
    if pd.api.types.is_float_dtype(series.dtype):
        finite = series.dropna()
        if np.isfinite(finite).all() and (finite == finite.round()).all():
            series = series.astype("Int64")
    codes, uniques = pd.factorize(series)  # each distinct value normalised once; a missing one has code -1
    texts = np.array([normalize_text(v) for v in np.asarray(uniques, dtype=object)] + [""], dtype=object)
    return pd.Series(texts[codes], index=series.index, dtype=object)


def _first_bad(mask):
    """1-based data row of the first True in ``mask`` (a boolean Series on a RangeIndex)."""
    return int(np.flatnonzero(mask.to_numpy())[0]) + 1


def _seconds(datetimes):
    if datetimes.dt.tz is None:
        datetimes = datetimes.dt.tz_localize("UTC")
    return (datetimes - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(seconds=1)


def parse_times(series, path, column, time_format=None):
    """Times of ``column`` as float64 (numbers as they are, dates as Unix seconds); a missing,
    non-numeric or non-finite value -> :class:`UserError` naming the file, row and value."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = _seconds(series)
    elif pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.astype("float64")
    else:
        text = as_text(series)
        numbers = pd.to_numeric(text, errors="coerce")
        if time_format:
            values = _seconds(pd.to_datetime(text, format=time_format, utc=True, errors="coerce"))
        elif numbers.notna().any():
            values = numbers.astype("float64")
        else:
            kwargs = {"format": "ISO8601"} if int(pd.__version__.split(".")[0]) >= 2 else {}
            values = _seconds(pd.to_datetime(text, utc=True, errors="coerce", **kwargs))
    values = pd.Series(values, index=series.index, dtype="float64")
    bad = ~np.isfinite(values) | (values.abs() > FLOAT32_MAX)
    if bad.any():
        row = _first_bad(bad)
        raise UserError(f"{path}: data row {row}: column {column!r} (--time-col) holds {series.iloc[row - 1]!r}, not a "
                        "finite time; times are numbers (e.g. Unix seconds) or dates such as 2020-01-31 12:00:00 "
                        "(--time-format for another form): fix or remove the row")
    return values


def _ids(series, path, column, option):
    ids = as_text(series)
    empty = ids == ""
    if empty.any():
        raise UserError(f"{path}: data row {_first_bad(empty)} has no value in column {column!r} ({option}); fill it "
                        "in or remove the row")
    missing = ids.isin(RECBOLE_MISSING)
    if missing.any():
        row = _first_bad(missing)
        value = ids.iloc[row - 1]
        raise UserError(f"{path}: data row {row}: column {column!r} ({option}) holds the id {value!r}, which RecBole's "
                        f"reader takes for a missing value and drops the row; rename that id (e.g. to '{value}_')")
    return ids


def _ratings(series, path, column):
    values = pd.to_numeric(series if pd.api.types.is_numeric_dtype(series.dtype) else as_text(series),
                           errors="coerce").astype("float64")
    bad = ~np.isfinite(values) | (values.abs() > FLOAT32_MAX)
    if bad.any():
        row = _first_bad(bad)
        raise UserError(f"{path}: data row {row}: column {column!r} (--rating-col) holds {series.iloc[row - 1]!r}, not "
                        "a finite number; fix or remove the row, or leave out --rating-col")
    return values


def k_core(df, k, user="user", item="item"):
    """The largest part of ``df`` in which every user and every item has at least ``k`` rows:
    users and items below ``k`` are removed together, and again, until none is left. Returns
    ``(df, rounds)``."""
    rounds = 0
    while k > 1 and len(df):
        keep = (df.groupby(user)[item].transform("size") >= k) & (df.groupby(item)[user].transform("size") >= k)
        if keep.all():
            break
        df = df[keep]
        rounds += 1
    return df, rounds


def _stats(df):
    return {"users": int(df["user"].nunique()), "items": int(df["item"].nunique()), "interactions": len(df)}


def _field_name(column):
    """An atomic-file field name for a text column: letters, digits and ``_``."""
    name = re.sub(r"\W+", "_", str(column)).strip("_").lower()
    if not name or name in _ITEM_FIELDS:
        raise UserError(f"--text-cols column {column!r} would be written as the field '{name or '(empty)'}', which is "
                        f"empty or taken ({', '.join(_ITEM_FIELDS)}); rename the column or leave it out")
    return name


def _check_spec(spec):
    name = spec.name
    if not name or name != name.strip() or name.startswith(".") or any(c in name for c in "/\\:\t\n"):
        raise UserError(f"--name {name!r} is not a usable dataset name; use letters, digits, '-' and '_', "
                        "e.g. --name my-movies")
    if name == "ml-100k":
        raise UserError("--name ml-100k is taken: RecBole always reads its bundled ml-100k whatever data_path says; "
                        "choose another name")
    if spec.min_rating is not None and not spec.rating_col:
        raise UserError("--min-rating needs --rating-col (the column that holds the rating)")
    if spec.k_core < 0:
        raise UserError(f"--k-core must be >= 0 (0: no filter), got {spec.k_core}")
    if spec.max_item_list_length < 1:
        raise UserError(f"--max-seq-len must be >= 1, got {spec.max_item_list_length}")
    if spec.items is None and spec.item_id_col:
        raise UserError("--item-id-col names the id column of --items; pass --items too")
    if spec.drop_untitled and spec.items is None and not spec.title_col:
        raise UserError("--drop-untitled needs titles: pass --items (with --title-col) or --title-col")
    fields = [_field_name(c) for c in spec.text_cols]
    if len(set(fields)) != len(fields):
        raise UserError(f"--text-cols {','.join(spec.text_cols)} name two columns that would both be written as one "
                        "field; leave one out")


def read_interactions(spec):
    """DataFrame (user, item, [rating,] time, [title, texts...]) of the interaction file, checked."""
    fmt = table_format(spec.inter, spec.format, "--format")
    wanted = {"--user-col": spec.user_col, "--item-col": spec.item_col, "--time-col": spec.time_col}
    if spec.rating_col:
        wanted["--rating-col"] = spec.rating_col
    inline_text = spec.items is None
    if inline_text and spec.title_col:
        wanted["--title-col"] = spec.title_col
    if inline_text:
        wanted.update({f"--text-cols ({c})": c for c in spec.text_cols})
    raw = read_table(TableFile(spec.inter, fmt, spec.sep, spec.encoding), wanted).reset_index(drop=True)
    if raw.empty:
        raise UserError(f"{spec.inter} has no rows, only a header; pass the file that holds the interactions")
    path = spec.inter
    df = pd.DataFrame({"user": _ids(raw[spec.user_col], path, spec.user_col, "--user-col"),
                       "item": _ids(raw[spec.item_col], path, spec.item_col, "--item-col")})
    if spec.rating_col:
        df["rating"] = _ratings(raw[spec.rating_col], path, spec.rating_col)
    df["time"] = parse_times(raw[spec.time_col], path, spec.time_col, spec.time_format)
    texts = None
    if inline_text and (spec.title_col or spec.text_cols):
        texts = pd.DataFrame({"item": df["item"]})
        if spec.title_col:
            texts["title"] = as_text(raw[spec.title_col])
        for column in spec.text_cols:
            texts[_field_name(column)] = as_text(raw[column])
    return df, texts


def read_items(spec):
    """DataFrame (item, title, texts...) of the item file; rows without an id are skipped."""
    fmt = table_format(spec.items, spec.item_format, "--item-format")
    id_col, title_col = spec.item_id_col or spec.item_col, spec.title_col or "title"
    wanted = {"--item-id-col": id_col, "--title-col": title_col}
    wanted.update({f"--text-cols ({c})": c for c in spec.text_cols})
    raw = read_table(TableFile(spec.items, fmt, spec.sep, spec.encoding, what="item", option="--items"), wanted)
    texts = pd.DataFrame({"item": as_text(raw[id_col]).to_numpy(), "title": as_text(raw[title_col]).to_numpy()})
    for column in spec.text_cols:
        texts[_field_name(column)] = as_text(raw[column]).to_numpy()
    skipped = int((texts["item"] == "").sum())
    if skipped:
        logger.warning("%s: skipped %d rows without an id in column %r (--item-id-col)", spec.items, skipped, id_col)
    return texts[texts["item"] != ""]


def _first_titled(texts):
    """One row per item: the first with a non-empty title, else the first."""
    if "title" not in texts:
        return texts.drop_duplicates("item").set_index("item")
    order = texts.assign(_untitled=texts["title"] == "").sort_values("_untitled", kind="stable")
    return order.drop_duplicates("item").drop(columns="_untitled").set_index("item")


def convert_csv(spec, data_path):
    """Convert the files of ``spec`` (:class:`CsvImport`) to ``<data_path>/<name>/`` (atomic
    files and ``<name>.yaml``, installed as one unit). Returns ``{step: {"users", "items",
    "interactions"}}`` for ``raw`` and each filter applied (``min_rating``, ``drop_untitled``,
    ``k_core``), the last being what was written."""
    _check_spec(spec)
    df, texts = read_interactions(spec)
    counts = {"raw": _stats(df)}
    if spec.items is not None:
        texts = read_items(spec)
        known = df["item"].isin(set(texts["item"]))
        if not known.any():
            raise UserError(f"none of the {df['item'].nunique()} item ids of {spec.inter} (--item-col "
                            f"{spec.item_col!r}) is in column {(spec.item_id_col or spec.item_col)!r} of {spec.items}; "
                            "pass --item-id-col with the item file's column of the same ids")
    items = _first_titled(texts) if texts is not None else None

    def fail_if_empty(step, fix):
        if df.empty:
            raise UserError(f"no interactions of {spec.inter} are left after {step} (counts: {counts}); {fix}")

    if spec.min_rating is not None:
        df = df[df["rating"] >= spec.min_rating]
        counts["min_rating"] = _stats(df)
        fail_if_empty(f"--min-rating {spec.min_rating:g}", "lower --min-rating")
    if spec.drop_untitled:
        titled = set(items.index[items["title"] != ""]) if items is not None else set()
        df = df[df["item"].isin(titled)]
        counts["drop_untitled"] = _stats(df)
        fail_if_empty("--drop-untitled", "check --title-col, or leave out --drop-untitled")
    if spec.k_core > 1:
        df, rounds = k_core(df, spec.k_core)
        counts["k_core"] = _stats(df)
        logger.info("%s: %d-core reached after %d rounds", spec.name, spec.k_core, rounds)
        fail_if_empty(f"--k-core {spec.k_core}", "lower --k-core")

    user_number = pd.to_numeric(df["user"], errors="coerce")  # numeric ids in numeric order
    df = df.assign(_uid=user_number).sort_values(["_uid", "user", "time"], kind="stable")
    times = df["time"]
    if (times == np.floor(times)).all() and times.abs().max() < 2**63:
        times = times.astype("int64")  # "978300760", not "978300760.0"
    inter = {"user_id:token": df["user"], "item_id:token": df["item"]}
    if spec.rating_col:
        inter["rating:float"] = df["rating"]
    inter["timestamp:float"] = times
    files = {"inter": pd.DataFrame(inter)}

    text_field = None
    if items is not None:
        kept = items.loc[sorted(set(df["item"]) & set(items.index))]
        has_title = "title" in kept
        if has_title:
            untitled = int((kept["title"] == "").sum()) + (df["item"].nunique() - len(kept))
            if untitled:
                logger.warning("%s: %d of %d items have no title (the LLM models stop above missing_text_max_share, "
                               "0.05 by default); --drop-untitled drops their interactions", spec.name, untitled,
                               df["item"].nunique())
            text_field = "title" if (kept["title"] != "").any() else None
        if len(kept):
            item = pd.DataFrame({"item_id:token": kept.index})
            if has_title:
                item["title:token_seq"] = kept["title"].to_numpy()
            for column in spec.text_cols:
                item[f"{_field_name(column)}:token_seq"] = kept[_field_name(column)].to_numpy()
            files["item"] = item
        else:
            logger.warning("%s: none of the items left is in %s: no .item file", spec.name, spec.items)
    keys = DatasetKeys(spec.name, f"made by: {spec.command()}", rating=bool(spec.rating_col),
                       item_text_field=text_field, max_item_list_length=spec.max_item_list_length)
    text = dataset_yaml(keys, counts)
    out = write_dataset_folder(data_path, spec.name, files, text)
    final = counts[list(counts)[-1]]
    logger.info("%s: wrote %s (%d users, %d items, %d interactions)", spec.name, out, final["users"], final["items"],
                final["interactions"])
    return counts
