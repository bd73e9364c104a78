"""Read, write and fetch RecBole atomic files (``.inter``, ``.user``, ``.item``, ...).

An atomic file is tab-separated text whose first line is the header ``name:type`` per column,
with ``type`` one of ``token``, ``token_seq``, ``float``, ``float_seq``. RecBole 1.2.1 parses it
with ``pandas.read_csv(delimiter='\\t', engine='python')`` and default quoting, after reading the
header with ``f.readline()[:-1]`` and ``field, ftype = column.split(':')``. Consequences that the
writers here respect:

* a field name must not contain ``:``; the header must end with ``\\n`` (a ``\\r\\n`` file makes
  the last type ``float\\r``, which RecBole rejects);
* a value that contains a double quote is written CSV-quoted (the quote doubled, the value
  enclosed in quotes): that is what ``read_csv`` un-quotes, so such titles round-trip exactly;
* values never contain tabs, newlines or NULs (the converters use :func:`normalize_text`; NumPy,
  which RecBole stores tokens in, drops trailing NULs).

Every writer is atomic: it writes into a temporary file or folder next to the target and moves
it into place with :func:`os.replace` only once everything is written, so a failure (or Ctrl-C)
leaves either the old dataset or the new one, never half of one.
"""

import codecs
import contextlib
import csv
import dataclasses
import logging
import math
import os
import shutil
import socket
import tempfile
import zipfile
from pathlib import Path

import pandas as pd

from recbole_llm.errors import UserError
from recbole_llm.fsutil import atomic_path, current_umask

logger = logging.getLogger(__name__)

VALID_TYPES = ("token", "token_seq", "float", "float_seq")
# Suffixes RecBole reads as atomic files of a dataset (``.inter`` plus the optional ones).
ATOMIC_SUFFIXES = ("inter", "user", "item", "kg", "link", "net")
_FORM = "tab-separated 'name:type' columns with type one of token, token_seq, float, float_seq"


@dataclasses.dataclass(frozen=True)
class AtomicFormat:
    """How RecBole reads a dataset's atomic files: the config keys ``encoding``,
    ``field_separator`` and ``seq_separator``, with RecBole's defaults. ``encoding`` None: not
    known yet (:func:`validate_dataset` with ``headers_only``)."""

    encoding: str | None = "utf-8"
    field_separator: str = "\t"
    seq_separator: str = " "

    @classmethod
    def of(cls, config) -> "AtomicFormat":
        """The format a RecBole ``Config`` (or a dict with the three keys) makes RecBole read; an
        unset key is RecBole's default."""
        return cls(config["encoding"] or "utf-8", config["field_separator"] or "\t", config["seq_separator"] or " ")


def normalize_text(text):
    """One-line text for an atomic file: NULs dropped, every whitespace run (tabs, newlines,
    Unicode line separators) collapsed to one space, ends stripped. ``None`` -> ``""``."""
    if text is None:
        return ""
    return " ".join(str(text).replace("\x00", " ").split())


def parse_header(line, path="<header>"):
    """Parse one header line (without its newline) into ``[(name, type), ...]``.

    Raises :class:`UserError` naming ``path``, the offending column and the expected form.
    """
    if line.endswith("\r"):
        raise UserError(f"{path}: the header ends with '\\r' (Windows line endings); RecBole needs '\\n' "
                        "line endings: convert the file, e.g. with dos2unix")
    if not line.strip():
        raise UserError(f"{path}: the first line (the header) is empty; it must be {_FORM}")
    header = []
    seen = set()
    for i, column in enumerate(line.split("\t"), 1):
        parts = column.split(":")
        if len(parts) != 2 or not parts[0] or parts[0] != parts[0].strip():
            raise UserError(f"{path}: header column {i} {column!r} is not 'name:type'; the header must be "
                            f"{_FORM} (e.g. 'user_id:token<TAB>item_id:token')")
        name, ftype = parts
        if ftype not in VALID_TYPES:
            raise UserError(f"{path}: header column {i} {column!r} has type {ftype!r}; the header must be "
                            f"{_FORM}")
        if name in seen:
            raise UserError(f"{path}: header column {i} {column!r} repeats the field {name!r}; "
                            "give every column a distinct name")
        seen.add(name)
        header.append((name, ftype))
    return header


def codec_name(encoding):
    """The codec Python uses for ``encoding`` (the config key RecBole opens atomic files with);
    :class:`UserError` when Python knows no such encoding."""
    try:
        return codecs.lookup(encoding).name
    except (LookupError, TypeError):
        raise UserError(f"encoding {encoding!r} (config key 'encoding', --encoding) is not an encoding Python knows; "
                        "pass the atomic files' encoding, e.g. --encoding=utf-8, --encoding=gbk or "
                        "--encoding=latin-1") from None


def guess_encoding(data):
    """An encoding that decodes ``data`` whole and that ``charset_normalizer`` (installed with
    ``requests``) thinks likely, or None. Only to word a fix: the error names what was tried."""
    try:
        from charset_normalizer import from_bytes
    except ImportError:
        return None
    best = from_bytes(data).best()
    if best is None:
        return None
    try:
        data.decode(best.encoding)
    except (UnicodeDecodeError, LookupError):
        return None
    return best.encoding


def decode_error(path, data, encoding, err):
    """The one-line :class:`UserError` for bytes of ``path`` that do not decode as ``encoding``:
    the line and byte of the first bad byte, the encoding tried, and the ``--encoding`` that fixes it."""
    line = data.count(b"\n", 0, err.start) + 1
    column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
    guess = guess_encoding(data)
    if guess is not None and codec_name(guess) != codec_name(encoding):
        fix = f"the file looks like {guess}: pass --encoding={guess} (config key 'encoding')"
    else:
        fix = "pass the file's encoding with --encoding=<encoding> (config key 'encoding'; e.g. gbk, latin-1)"
    return UserError(f"{path}:{line}: byte {column} of the line ({data[err.start:err.start + 1]!r}) is not valid "
                     f"{encoding} ({err.reason}), the encoding tried; {fix}, or save the file as "
                     f"{encoding}")


def read_header(path, encoding="utf-8"):
    """The validated header ``[(name, type), ...]`` of the atomic file at ``path``.

    Only the header line is decoded (with ``encoding``), so rows in another encoding are left to
    :func:`check_atomic_file`; ``encoding=None`` (not known yet) reads a header that is UTF-8
    (ASCII: every header RecBole's own datasets have) and returns None for one that is not.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"atomic file {path} does not exist; create it or fix the dataset name/data_path")
    decoder = codecs.getincrementaldecoder(codec_name(encoding or "utf-8"))()
    line, data = "", b""
    with open(path, "rb") as f:
        while "\n" not in line:
            byte = f.read(1)  # byte by byte: the decoder must not see the second line
            if not byte:
                break
            data += byte
            try:
                line += decoder.decode(byte)
            except UnicodeDecodeError as err:
                if encoding is None:
                    return None
                err.start += len(data) - len(err.object)  # the decoder saw the bytes it had buffered
                raise decode_error(path, data, encoding, err) from None
    if not data:
        raise UserError(f"{path} is empty; an atomic file starts with a header of {_FORM}")
    if line.startswith("\ufeff") and codec_name(encoding or "utf-8") == "utf-8":
        raise UserError(f"{path}:1: the file starts with a UTF-8 byte-order mark (BOM), which RecBole reads as part "
                        "of the first field name; save it as UTF-8 without BOM (e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' "
                        f"{path})")
    return parse_header(line[:-1] if line.endswith("\n") else line, path)


def _is_number(text):
    """What ``pandas.read_csv(dtype=float64, engine='python')`` accepts in a ``float`` column:
    Python's ``float`` syntax, surrounding blanks allowed."""
    try:
        float(text)
    except ValueError:
        return False
    return True


# RecBole stores float fields in float32 tensors: a larger magnitude becomes infinite there.
_FLOAT32_MAX = 3.4028234663852886e38

# What RecBole's ``read_csv`` (pandas' default ``na_values``) reads as missing in a token column.
try:
    from pandas._libs.parsers import STR_NA_VALUES as _NA_STRINGS
except ImportError:  # pandas moved it: its documented list
    _NA_STRINGS = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
                   "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}


def _number_problem(text):
    """None for a value RecBole reads as a finite number; else why it does not: ``"not a number"``,
    ``"NaN"`` (pandas reads it as missing and RecBole fills in the column's mean), ``"infinite"``
    (kept as infinity), ``"range"`` (finite, but infinite in RecBole's float32 tensors)."""
    try:
        value = float(text)
    except ValueError:
        return "not a number"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "infinite"
    return "range" if abs(value) > _FLOAT32_MAX else None


_NUMBER_PROBLEMS = {
    "NaN": "NaN, which RecBole reads as a missing value and replaces with the column's mean",
    "infinite": "an infinite value, which RecBole keeps as infinity",
    "range": "a number beyond float32's range (+-3.4e38), which becomes infinite in RecBole's float32 tensors",
}


def _parse_quoted(line, separator):
    """Split one line that holds a double quote the way RecBole's ``read_csv`` does (CSV quoting,
    ``""`` inside a quoted value); None when the quoting is malformed or a quoted value does not
    close on this line (``read_csv`` would then read on into the next lines)."""
    try:
        rows = list(csv.reader([line], delimiter=separator, quotechar='"', doublequote=True, strict=True))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 else None


def check_atomic_file(path, encoding="utf-8", field_separator="\t", seq_separator=" ", required_numbers=(),
                      id_fields=()):
    """Validate a whole atomic file the way RecBole 1.2.1 will read it; return its header.

    Checked, each failure a :class:`UserError` naming ``path:line``, the field and the fix: the
    bytes decode as ``encoding`` (the line of the first bad byte is named); no UTF-8 byte-order
    mark (RecBole reads it into the first field name); a valid header (:func:`parse_header`);
    at least one row; every row has one value per header column (``read_csv`` fills a short row
    with NaN and reads a long one shifted by a column, silently); CSV quoting that closes on its
    own line (a value that holds ``"`` is quoted whole, the quote doubled); no carriage return
    inside a line (``read_csv`` splits the row there; a ``\r\n`` line end is fine); no NUL;
    a finite number within float32's range (or nothing) in every ``float`` value and every element
    of a ``float_seq`` value (``nan`` would be filled with the column's mean, ``inf`` kept, ``1e39``
    made infinite by RecBole's float32: a time among them moves the held-out items); a number,
    never empty, in the fields of ``required_numbers`` (the time field); in the ``token`` fields
    of ``id_fields`` (the user and item ids), no value that RecBole's reader takes for a missing
    one (empty, ``NA``, ``null``, ... : RecBole drops such rows silently). Blank lines are skipped,
    as ``read_csv`` skips them. The encoding is one Python knows (:func:`codec_name`).
    """
    codec_name(encoding)
    path = Path(path)
    if not path.is_file():
        raise UserError(f"atomic file {path} does not exist; create it or fix the dataset name/data_path")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, encoding, field_separator, seq_separator,
           tuple(required_numbers), tuple(id_fields))
    if key not in _CHECKED:  # a run checks its dataset once per model and ID model: read it once
        _CHECKED[key] = _check_atomic_file(path, encoding, field_separator, seq_separator, required_numbers,
                                           id_fields)
    return list(_CHECKED[key])


_CHECKED = {}  # (path, size, mtime, options) -> header of a file that passed check_atomic_file


def _check_atomic_file(path, encoding, field_separator, seq_separator, required_numbers, id_fields):
    data = path.read_bytes()
    if not data:
        raise UserError(f"{path} is empty; an atomic file starts with a header of {_FORM}")
    if data.startswith(codecs.BOM_UTF8) and codec_name(encoding) == "utf-8":
        raise UserError(f"{path}:1: the file starts with a UTF-8 byte-order mark (BOM), which RecBole reads as part "
                        "of the first field name; save it as UTF-8 without BOM (e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' "
                        f"{path})")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        raise decode_error(path, data, encoding, err) from None
    lines = text.split("\n")
    header = parse_header(lines[0], path)
    names = [n for n, _ in header]
    required = set(required_numbers)
    floats = [(i, n) for i, (n, t) in enumerate(header) if t == "float"]
    float_seqs = [(i, n) for i, (n, t) in enumerate(header) if t == "float_seq"]
    needed = [(i, n) for i, n in enumerate(names) if n in required]
    ids = [(i, n) for i, (n, t) in enumerate(header) if t == "token" and n in set(id_fields)]
    rows = 0
    for number, line in enumerate(lines[1:], 2):
        if line.endswith("\r"):
            line = line[:-1]
        if not line:
            continue
        where = f"{path}:{number}"
        if "\r" in line:
            raise UserError(f"{where}: a carriage return (\\r) inside the line, which RecBole's reader takes for a "
                            "line break; remove it (every row is one line ending in \\n)")
        if "\x00" in line:
            raise UserError(f"{where}: a NUL character; remove it (RecBole's token arrays drop NULs)")
        values = line.split(field_separator) if '"' not in line else _parse_quoted(line, field_separator)
        if values is None:
            raise UserError(f"{where}: malformed double quotes (a quoted value must be the whole value, close on the "
                            'same line, and double every quote inside it: "a ""quoted"" title"); fix the quoting or '
                            "remove the quotes")
        if len(values) != len(header):
            raise UserError(f"{where}: {len(values)} value(s) for the {len(header)} header column(s) "
                            f"({', '.join(names)}); give every row one value per column, separated by "
                            f"{field_separator!r}")
        for i, name in floats:
            problem = values[i] and _number_problem(values[i])
            if problem == "not a number":
                raise UserError(f"{where}: field '{name}' (column {i + 1}, float) holds {values[i]!r}, not a number; "
                                "write a number there (or nothing) or declare the column ':token'")
            if problem:
                raise _non_finite(_Cell(where, name, i + 1, "float"), values[i], problem, name in required)
        for i, name in float_seqs:
            for element in values[i].split(seq_separator):
                problem = element and _number_problem(element)
                if problem == "not a number":
                    raise UserError(f"{where}: field '{name}' (column {i + 1}, float_seq) holds {element!r}, not a "
                                    f"number; write numbers separated by {seq_separator!r} or declare the column "
                                    "':token_seq'")
                if problem:
                    raise _non_finite(_Cell(where, name, i + 1, "float_seq"), element, problem)
        for i, name in needed:
            if not values[i].strip():
                raise UserError(f"{where}: field '{name}' (column {i + 1}) is empty; every row needs its time (it "
                                "orders the interactions)")
        for i, name in ids:
            value = values[i]
            if value in _NA_STRINGS:
                said = f"holds {value!r}, which RecBole's reader takes for a missing value" if value else "is empty"
                rename = f" (rename the id {value!r}, e.g. to '{value}_')" if value else ""
                raise UserError(f"{where}: field '{name}' (column {i + 1}, token) {said}, so RecBole would drop the "
                                f"row without a word; give every row its {name}{rename}")
        rows += 1
    if rows == 0:
        raise UserError(f"{path}:2: the file has a header but no rows; add the data (or remove the file if it is "
                        "not needed)")
    return header


@dataclasses.dataclass(frozen=True)
class _Cell:
    """Where a value lies, for a message: ``where`` (``path:line``), the field's name, its 1-based
    column and its type."""

    where: str
    name: str
    column: int
    ftype: str


def _non_finite(cell: _Cell, value: str, problem: str, required: bool = False) -> UserError:
    """The :class:`UserError` for a float value that is not a finite float32 number (``required``:
    the field needs a number in every row)."""
    if required:
        fix = "every row needs a finite time (it orders the interactions and picks the held-out items): write it"
    else:
        missing = "" if cell.ftype == "float_seq" else " (or nothing, for a missing value)"
        fix = "write a finite number there" + missing
    return UserError(f"{cell.where}: field '{cell.name}' (column {cell.column}, {cell.ftype}) holds {value!r}, "
                     f"{_NUMBER_PROBLEMS[problem]}; {fix}")


def format_header(header):
    """``[(name, type), ...]`` -> the header line (without newline), validating it."""
    header = [tuple(col) for col in header]
    for name, ftype in header:
        if ":" in name or "\t" in name or not name:
            raise ValueError(f"invalid field name {name!r}")
        if ftype not in VALID_TYPES:
            raise ValueError(f"field {name!r}: type {ftype!r} is not one of {VALID_TYPES}")
    line = "\t".join(f"{n}:{t}" for n, t in header)
    parse_header(line)  # duplicates
    return line


def _split_typed_columns(columns):
    header = []
    for col in columns:
        if ":" not in str(col):
            raise ValueError(f"DataFrame column {col!r} is not 'name:type'")
        name, ftype = str(col).rsplit(":", 1)
        header.append((name, ftype))
    return header


def _to_frame(header, rows):
    names = [n for n, _ in header]
    if isinstance(rows, pd.DataFrame):
        if len(rows.columns) != len(header):
            raise ValueError(f"{len(rows.columns)} DataFrame columns for a header of {len(header)}")
        df = rows.copy()
        df.columns = names
    else:
        df = pd.DataFrame.from_records(list(rows), columns=names)
    for name, ftype in header:
        if ftype.endswith("_seq"):
            df[name] = [" ".join(map(str, v)) if isinstance(v, (list, tuple)) else v for v in df[name]]
        if df[name].dtype == object or pd.api.types.is_string_dtype(df[name].dtype):  # pandas 3: str dtype
            bad = df[name].astype(str).str.contains(r"[\t\n\r\x00]", regex=True)
            if bad.any():
                raise ValueError(f"column {name!r} has a tab, newline or NUL in row {int(bad.idxmax())}: "
                                 "normalise the text with normalize_text() before writing")
    return df


def _write_frame(path, header, df, encoding="utf-8"):
    with open(path, "w", encoding=encoding, newline="") as f:
        f.write(format_header(header) + "\n")
        df.to_csv(f, sep="\t", header=False, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")


def write_atomic(path, header, rows, encoding="utf-8"):
    """Write one atomic file: ``header`` is ``[(name, type), ...]``; ``rows`` a DataFrame or row tuples.

    ``*_seq`` cells may be lists (joined with spaces). Written to a temp file, then ``os.replace``d.
    """
    path = Path(path)
    header = [tuple(c) for c in header]
    df = _to_frame(header, rows)
    with atomic_path(path) as tmp:
        _write_frame(tmp, header, df, encoding)
    return path


def new_temp_dir(parent, name):
    """A fresh temporary folder ``<parent>/.<name>.tmp-XXXX`` (same filesystem as the target).

    ``mkdtemp`` makes it private (0700); it gets the usual permissions, as ``mkdir`` would give.
    """
    Path(parent).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent))
    os.chmod(path, 0o777 & ~current_umask())
    return path


def _is_own_atomic_file(filename, name):
    """``<name>.<suffix>`` or ``<name>.<part>.<suffix>`` with an atomic suffix (stale on replace)."""
    if not filename.startswith(name + "."):
        return False
    return filename.rsplit(".", 1)[-1] in ATOMIC_SUFFIXES


def install_dir(tmp_dir, target, name):
    """Move the finished folder ``tmp_dir`` to ``target``, replacing an existing dataset folder.

    The old folder is renamed aside first and deleted only after the new one is in place. Files in
    the old folder that are not atomic files of ``name`` (raw downloads, notes) are carried over.
    """
    tmp_dir, target = Path(tmp_dir), Path(target)
    if not target.exists():
        os.replace(tmp_dir, target)
        return target
    if not target.is_dir():
        raise UserError(f"{target} exists and is not a folder; move it away so the dataset can be written there")
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rmdir(old)
    os.replace(target, old)
    try:
        os.replace(tmp_dir, target)
    except BaseException:
        os.replace(old, target)
        raise
    for entry in old.iterdir():
        if not _is_own_atomic_file(entry.name, name) and not (target / entry.name).exists():
            os.replace(entry, target / entry.name)
    shutil.rmtree(old, ignore_errors=True)
    return target


def write_dataset(out_dir, name, files, encoding="utf-8"):
    """Write all atomic files of dataset ``name`` into ``<out_dir>/<name>/`` as one unit.

    ``files`` maps a suffix (``"inter"``, ``"item"``, ...) to a DataFrame whose columns are typed
    (``"user_id:token"``), or to a ``(header, rows)`` pair. Everything is written into a temporary
    folder next to the target, checked, and renamed into place only on success; an existing
    dataset of that name is replaced then (see :func:`install_dir`). Returns the dataset folder.
    """
    out_dir = Path(out_dir)
    if "inter" not in files:
        raise ValueError("a dataset needs an 'inter' file")
    tmp = new_temp_dir(out_dir, name)
    try:
        for suffix, content in files.items():
            if isinstance(content, pd.DataFrame):
                header, rows = _split_typed_columns(content.columns), content
            else:
                header, rows = content
            header = [tuple(c) for c in header]
            _write_frame(tmp / f"{name}.{suffix}", header, _to_frame(header, rows), encoding)
        validate_dataset(tmp, name, AtomicFormat(encoding))
        return install_dir(tmp, out_dir / name, name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def validate_dataset(folder: str | Path, name: str, file_format: AtomicFormat = AtomicFormat(),
                     required_numbers: tuple[str, ...] = (), headers_only: bool = False,
                     id_fields: tuple[str, ...] = ()) -> dict[str, list[tuple[str, str]]]:
    """Check every atomic file of ``name`` in ``folder`` whole (:func:`check_atomic_file`), read as
    ``file_format`` says, or only its header with ``headers_only``; return ``{filename: header}``.
    ``required_numbers`` applies to the ``.inter`` file, ``id_fields`` to every file. With
    ``headers_only`` and ``file_format.encoding`` None (not known yet), a header that is not UTF-8
    is left out (:func:`read_header`)."""
    encoding = file_format.encoding
    folder = Path(folder)
    inter = folder / f"{name}.inter"
    if not inter.is_file():
        raise UserError(f"{inter} does not exist; every RecBole dataset needs <name>.inter in <data_path>/<name>/")
    headers = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and _is_own_atomic_file(path.name, name):
            if headers_only:
                header = read_header(path, encoding)
                if header is not None:
                    headers[path.name] = header
            else:
                headers[path.name] = check_atomic_file(path, encoding, file_format.field_separator,
                                                       file_format.seq_separator,
                                                       required_numbers if path == inter else (), id_fields)
    return headers


# ----------------------------------------------------------------------------- RecBole downloads


def recbole_urls():
    """RecBole's own table ``dataset name -> URL`` (``recbole/properties/dataset/url.yaml``)."""
    import recbole
    import yaml

    path = Path(recbole.__file__).parent / "properties" / "dataset" / "url.yaml"
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


@contextlib.contextmanager
def _socket_timeout(seconds):
    """RecBole's ``download_url`` calls ``urlopen`` without a timeout: bound every socket wait."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def download_recbole_dataset(name, data_path, url=None, timeout=60.0, fix_hint=None):
    """Download RecBole's processed dataset ``name`` into ``<data_path>/<name>/`` without prompts.

    Reuses RecBole's ``download_url``/``extract_zip``/``rename_atomic_files`` (as its
    ``Dataset._download`` does) but never calls ``decide_download``, which asks on stdin for
    archives over 1 GB. Download and extraction happen in a temporary folder; the dataset folder is
    installed only when its atomic files have valid headers. Any failure raises :class:`UserError`
    saying the download failed, with ``fix_hint`` (what to do offline) appended.
    """
    from recbole.utils.url import download_url, extract_zip, rename_atomic_files

    data_path = Path(data_path)
    if url is None:
        url = recbole_urls().get(name)
        if url is None:
            raise UserError(f"RecBole has no download URL for dataset '{name}' (recbole/properties/dataset/url.yaml); "
                            "convert the raw data with 'python -m recbole_llm.data --help'")
    hint = fix_hint or "download the zip elsewhere and unzip its atomic files into " + str(data_path / name)
    tmp = new_temp_dir(data_path, name)
    try:
        try:
            with _socket_timeout(timeout):
                archive = download_url(url, str(tmp / "download"))
            extract_zip(archive, str(tmp / "extract"))
        except (OSError, RuntimeError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as err:
            # OSError covers URLError/HTTPError/timeouts; TypeError: no Content-Length header.
            reason = " ".join(str(err).split()) or type(err).__name__
            raise UserError(f"downloading dataset '{name}' from {url} failed ({reason}); {hint}") from None
        inters = sorted((tmp / "extract").rglob("*.inter"))
        if not inters:
            raise UserError(f"the archive {url} holds no .inter file, so it is not a RecBole dataset; {hint}")
        extracted = inters[0].parent
        base = Path(archive).name.rsplit(".", 1)[0]
        stem = inters[0].name[: -len(".inter")]
        if stem != name:
            rename_atomic_files(str(extracted), base if base in stem else stem, name)
        validate_dataset(extracted, name)
        out = install_dir(extracted, data_path / name, name)
        logger.info("downloaded %s into %s", url, out)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
