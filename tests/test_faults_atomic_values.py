"""Values RecBole would read silently wrong are refused before it reads them (issue 36, kind 3):
non-finite and out-of-float32-range numbers in ``float``/``float_seq`` columns, and user/item ids
that RecBole's reader takes for missing values. One line each, naming file, line, field and column."""

import pytest

from recbole_llm.data.atomic import check_atomic_file
from recbole_llm.errors import UserError
from recbole_llm.quick_start import build_config
from recbole_llm.spec import RunSpec

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ROWS = "u1\ti1\t4\t1\nu1\ti2\t5\t2\nu2\ti1\t3\t3\n"


def refused(path, text, **options):
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as err:
        check_atomic_file(path, **options)
    message = str(err.value)
    assert "\n" not in message
    return message


NON_FINITE = [
    ("nan", "NaN, which RecBole reads as a missing value and replaces with the column's mean"),
    ("NaN", "NaN, which RecBole reads as a missing value and replaces with the column's mean"),
    ("-nan", "NaN, which RecBole reads as a missing value and replaces with the column's mean"),
    ("inf", "an infinite value, which RecBole keeps as infinity"),
    ("-inf", "an infinite value, which RecBole keeps as infinity"),
    ("+Infinity", "an infinite value, which RecBole keeps as infinity"),
    ("1e400", "an infinite value, which RecBole keeps as infinity"),  # Python's float overflows to inf
    ("3.5e38", "a number beyond float32's range (+-3.4e38), which becomes infinite in RecBole's float32 tensors"),
    ("-1e39", "a number beyond float32's range (+-3.4e38), which becomes infinite in RecBole's float32 tensors"),
]


@pytest.mark.parametrize("value, what", NON_FINITE)
def test_a_non_finite_time_is_refused_with_file_line_and_column(tmp_path, value, what):
    path = tmp_path / "d.inter"
    message = refused(path, HEADER + ROWS + f"u2\ti2\t4\t{value}\n", required_numbers=("timestamp",))
    assert message == (f"{path}:5: field 'timestamp' (column 4, float) holds {value!r}, {what}; every row needs a "
                       "finite time (it orders the interactions and picks the held-out items): write it")


@pytest.mark.parametrize("value, what", NON_FINITE)
def test_a_non_finite_optional_float_is_refused_too(tmp_path, value, what):
    path = tmp_path / "d.inter"
    message = refused(path, HEADER + f"u1\ti1\t{value}\t1\n" + ROWS)
    assert message == (f"{path}:2: field 'rating' (column 3, float) holds {value!r}, {what}; write a finite number "
                       "there (or nothing, for a missing value)")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e39"])
def test_a_non_finite_float_seq_element_is_refused(tmp_path, value):
    path = tmp_path / "d.item"
    message = refused(path, f"item_id:token\tvec:float_seq\ni1\t0.5 1\ni2\t1 {value} 2\n")
    assert message.startswith(f"{path}:3: field 'vec' (column 2, float_seq) holds {value!r}, ")
    assert message.endswith("; write a finite number there")


def test_finite_values_at_the_edges_and_empty_optional_values_pass(tmp_path):
    path = tmp_path / "d.inter"
    path.write_text(HEADER + "u1\ti1\t3.4e38\t-3.4e38\nu1\ti2\t\t1e-320\nu2\ti1\t-0\t 7 \n")
    assert check_atomic_file(path, required_numbers=("timestamp",))[3] == ("timestamp", "float")
    item = tmp_path / "d.item"
    item.write_text("item_id:token\tvec:float_seq\ni1\t\ni2\t1e38 -2\n")
    assert check_atomic_file(item)[1] == ("vec", "float_seq")


@pytest.mark.parametrize("value", ["NA", "null", "NULL", "nan", "None", "N/A", "#N/A", "<NA>"])
@pytest.mark.parametrize("column, field", [(1, "user_id"), (2, "item_id")])
def test_an_id_that_recbole_reads_as_missing_is_refused(tmp_path, value, column, field):
    path = tmp_path / "d.inter"
    row = ["u3", "i3", "4", "9"]
    row[column - 1] = value
    message = refused(path, HEADER + ROWS + "\t".join(row) + "\n", id_fields=("user_id", "item_id"))
    assert message == (f"{path}:5: field '{field}' (column {column}, token) holds {value!r}, which RecBole's reader "
                       f"takes for a missing value, so RecBole would drop the row without a word; give every row its "
                       f"{field} (rename the id {value!r}, e.g. to '{value}_')")


def test_an_empty_id_is_refused_but_other_token_columns_may_say_na(tmp_path):
    path = tmp_path / "d.inter"
    message = refused(path, HEADER + ROWS + "\ti3\t4\t9\n", id_fields=("user_id", "item_id"))
    assert message == (f"{path}:5: field 'user_id' (column 1, token) is empty, so RecBole would drop the row without "
                       "a word; give every row its user_id")
    item = tmp_path / "d.item"
    item.write_text("item_id:token\tgenre:token\ni1\tNA\ni2\t\n")  # a missing genre is a missing genre
    assert check_atomic_file(item, id_fields=("user_id", "item_id"))[1] == ("genre", "token")
    item.write_text("item_id:token\tgenre:token\ni1\tdrama\nnull\tcomedy\n")
    with pytest.raises(UserError, match=r"d.item:3: field 'item_id' \(column 1, token\) holds 'null'"):
        check_atomic_file(item, id_fields=("user_id", "item_id"))


def write_dataset(tmp_path, inter, item=None):
    folder = tmp_path / "data" / "d"
    folder.mkdir(parents=True)
    (folder / "d.inter").write_text(inter)
    if item is not None:
        (folder / "d.item").write_text(item)
    return folder


def build(tmp_path, **overrides):
    return build_config(RunSpec("SASRec", "d", 1, (), overrides, tmp_path / "data", tmp_path / "saved"))


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e39"])
def test_the_run_stops_before_recbole_reads_a_non_finite_time(tmp_path, bad):
    folder = write_dataset(tmp_path, HEADER + ROWS + f"u2\ti2\t4\t{bad}\n")
    with pytest.raises(UserError) as err:
        build(tmp_path)
    assert str(err.value).startswith(f"{folder / 'd.inter'}:5: field 'timestamp' (column 4, float) holds {bad!r}, ")
    assert not (tmp_path / "saved").exists() or not list((tmp_path / "saved").rglob("*.pth"))


def test_the_run_checks_the_configured_id_fields_in_every_file(tmp_path):
    folder = write_dataset(tmp_path, HEADER + ROWS, "item_id:token\ttitle:token_seq\ni1\ta\nNA\tb\n")
    with pytest.raises(UserError) as err:
        build(tmp_path)
    assert str(err.value).startswith(f"{folder / 'd.item'}:3: field 'item_id' (column 1, token) holds 'NA', ")
    (folder / "d.item").write_text("item_id:token\ttitle:token_seq\ni1\ta\ni2\tNA\n")  # a title may say NA
    assert build(tmp_path)["ITEM_ID_FIELD"] == "item_id"
