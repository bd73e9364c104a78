"""Atomic files are validated whole, and against the configured fields, before RecBole reads them."""

import subprocess
import sys

import pytest

from conftest import REPO
from recbole_llm.data.atomic import check_atomic_file
from recbole_llm.errors import UserError
from recbole_llm.quick_start import build_config
from recbole_llm.spec import RunSpec

HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"
ROWS = "u1\ti1\t1\nu1\ti2\t2\nu1\ti3\t3\n"


def error(path, content, **options):
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(UserError) as err:
        check_atomic_file(path, **options)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_a_well_formed_file_passes_and_gives_its_header(tmp_path):
    path = tmp_path / "d.inter"
    path.write_text(HEADER + ROWS + "\n" + "u2\ti1\t1.5e9\r\n")  # a blank line and a \r\n end are read fine
    assert check_atomic_file(path, required_numbers=("timestamp",)) == [
        ("user_id", "token"), ("item_id", "token"), ("timestamp", "float")]
    item = tmp_path / "d.item"
    item.write_text('item_id:token\ttitle:token_seq\tvec:float_seq\ni1\t"a ""quoted"" title"\t1 2.5\ni2\tplain\t\n')
    assert check_atomic_file(item) == [("item_id", "token"), ("title", "token_seq"), ("vec", "float_seq")]


def test_encoding_error_names_the_line_of_the_bad_byte(tmp_path):
    path = tmp_path / "d.inter"
    msg = error(path, HEADER.encode() + b"u1\ti1\t1\nu1\tcaf\xe9\t2\n")
    assert msg.startswith(f"{path}:3: byte 7 of the line (b'\\xe9') is not valid utf-8 (invalid continuation byte), "
                          "the encoding tried; the file looks like ")
    assert msg.endswith(" (config key 'encoding'), or save the file as utf-8") and " pass --encoding=" in msg
    path.write_bytes(HEADER.encode() + b"u1\ti1\t1\nu1\tcaf\xe9\t2\n")
    assert check_atomic_file(path, encoding="latin-1")[1] == ("item_id", "token")


def test_byte_order_mark(tmp_path):
    path = tmp_path / "d.inter"
    msg = error(path, b"\xef\xbb\xbf" + (HEADER + ROWS).encode())
    assert msg.startswith(f"{path}:1: the file starts with a UTF-8 byte-order mark (BOM), which RecBole reads as "
                          "part of the first field name; save it as UTF-8 without BOM")


@pytest.mark.parametrize("row, count", [("u1\ti4\n", 2), ("u1\ti4\t4\t5\n", 4)])
def test_every_row_has_one_value_per_column(tmp_path, row, count):
    path = tmp_path / "d.inter"
    msg = error(path, HEADER + ROWS + row)
    assert msg == (f"{path}:5: {count} value(s) for the 3 header column(s) (user_id, item_id, timestamp); give every "
                   "row one value per column, separated by '\\t'")


@pytest.mark.parametrize("title", ['"an unclosed quote', '"Heroes" Season 1'])
def test_malformed_quoting(tmp_path, title):
    path = tmp_path / "d.item"
    msg = error(path, f"item_id:token\ttitle:token_seq\ni1\tfine\ni2\t{title}\ni3\tmore\n")
    assert msg == (f'{path}:3: malformed double quotes (a quoted value must be the whole value, close on the same '
                   'line, and double every quote inside it: "a ""quoted"" title"); fix the quoting or remove the '
                   'quotes')


def test_numbers_in_float_fields_and_a_time_in_every_row(tmp_path):
    path = tmp_path / "d.inter"
    msg = error(path, HEADER + ROWS + "u1\ti4\tyesterday\n")
    assert msg == (f"{path}:5: field 'timestamp' (column 3, float) holds 'yesterday', not a number; write a number "
                   "there (or nothing) or declare the column ':token'")
    msg = error(path, HEADER + "u1\ti4\t\n", required_numbers=("timestamp",))
    assert msg == (f"{path}:2: field 'timestamp' (column 3) is empty; every row needs its time (it orders the "
                   "interactions)")
    item = tmp_path / "d.item"
    msg = error(item, "item_id:token\tvec:float_seq\ni1\t1 2,5\n")
    assert msg == (f"{item}:2: field 'vec' (column 2, float_seq) holds '2,5', not a number; write numbers separated "
                   "by ' ' or declare the column ':token_seq'")


def test_carriage_return_inside_a_line(tmp_path):
    path = tmp_path / "d.inter"
    msg = error(path, HEADER + "u1\ti1\r\t1\n")
    assert msg.startswith(f"{path}:2: a carriage return (\\r) inside the line")


def test_header_only_file(tmp_path):
    path = tmp_path / "d.inter"
    assert error(path, HEADER) == (f"{path}:2: the file has a header but no rows; add the data (or remove the file "
                                   "if it is not needed)")


def dataset(tmp_path, header, rows=ROWS):
    folder = tmp_path / "data" / "d"
    folder.mkdir(parents=True)
    (folder / "d.inter").write_text(header + rows)
    return folder / "d.inter"


def test_configured_time_field_missing(tmp_path):
    path = dataset(tmp_path, "user_id:token\titem_id:token\ttime:float\n")
    with pytest.raises(UserError) as err:
        build_config(RunSpec("SASRec", "d", 1, (), {"load_col": {"inter": ["user_id", "item_id", "timestamp"]}}, tmp_path / "data", tmp_path / "saved"))
    assert str(err.value) == (f"{path}:1: TIME_FIELD 'timestamp' is not a column of the header (user_id:token, "
                              "item_id:token, time:float); rename the column 'time' to 'timestamp', or set "
                              "TIME_FIELD: time and list 'time' in load_col's inter list")


def test_configured_fields_types_and_load_col(tmp_path):
    path = dataset(tmp_path, "user_id:token\titem_id:token\ttimestamp:token\n")
    with pytest.raises(UserError) as err:
        build_config(RunSpec("SASRec", "d", 1, (), {}, tmp_path / "data", tmp_path / "saved"))
    assert str(err.value) == (f"{path}:1: TIME_FIELD 'timestamp' is declared 'timestamp:token'; RecBole needs "
                              "'timestamp:float' there: change the header")
    path.write_text(HEADER + ROWS)
    with pytest.raises(UserError) as err:
        build_config(RunSpec("SASRec", "d", 1, (), {"load_col": {"inter": ["user_id", "item_id"]}}, tmp_path / "data", tmp_path / "saved"))
    assert str(err.value) == ("load_col lists the .inter columns ['user_id', 'item_id'] without TIME_FIELD "
                              "'timestamp', so RecBole would not load it; add 'timestamp' to load_col's inter list")
    with pytest.raises(UserError) as err:
        build_config(RunSpec("SASRec", "d", 1, (), {"load_col": {"inter": ["user_id", "item_id", "timestamp", "rating"]}}, tmp_path / "data", tmp_path / "saved"))
    assert str(err.value) == (f"{path}:1: load_col lists 'rating' for .inter, which the header does not have "
                              "(user_id:token, item_id:token, timestamp:float); remove it from load_col or add the "
                              "column")
    with pytest.raises(UserError, match=r"d.inter:1: USER_ID_FIELD 'uid' is not a column of the header .*; rename "
                                        "the column 'user_id' to 'uid', or set USER_ID_FIELD: user_id"):
        build_config(RunSpec("SASRec", "d", 1, (), {"USER_ID_FIELD": "uid", "load_col": None}, tmp_path / "data", tmp_path / "saved"))


def test_runner_stops_with_one_line_and_trains_nothing(tmp_path):
    path = dataset(tmp_path, HEADER, ROWS + "u1\ti4\t4\t5\n")
    cmd = [sys.executable, str(REPO / "run_benchmark.py"), "--model=SASRec", "--dataset=d",
           f"--data-path={tmp_path / 'data'}", f"--output={tmp_path / 'results'}", f"--saved-dir={tmp_path / 'saved'}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].endswith(
        f"{path}:5: 4 value(s) for the 3 header column(s) (user_id, item_id, timestamp); give every row one value "
        "per column, separated by '\\t'")
    assert not (tmp_path / "results").exists() and not list((tmp_path / "saved").rglob("*.pth"))
