"""The config key ``encoding`` (``--encoding=...``, RecBole's own) is honoured wherever this package
reads an atomic file, and a file that does not decode is named with its line, the encoding tried
and the ``--encoding`` that fixes it (issue 36, kind 6)."""

import subprocess
import sys

import pytest

from conftest import REPO, write_toy
from recbole_llm.data.atomic import AtomicFormat, check_atomic_file, read_header, validate_dataset
from recbole_llm.data.item_text import ItemText
from recbole_llm.data.prepare import ensure_dataset
from recbole_llm.errors import UserError
from recbole_llm.quick_start import build_config
from recbole_llm.spec import RunSpec

TITLES = {f"i{i}": f"电影 第{i}部 爱情 动作 喜剧" for i in range(1, 31)}


def gbk_dataset(data_path, name="gb"):
    """The toy dataset with an ASCII header and GBK titles in its ``.item`` file."""
    folder = write_toy(data_path, name=name)
    lines = ["item_id:token\ttitle:token_seq"] + [f"{token}\t{title}" for token, title in TITLES.items()]
    (folder / f"{name}.item").write_bytes(("\n".join(lines) + "\n").encode("gbk"))
    return folder


def build(data_path, tmp_path, name="gb", **overrides):
    overrides.setdefault("load_col", {"inter": ["user_id", "item_id", "timestamp"]})
    return build_config(RunSpec("SASRec", name, 1, (), overrides, data_path, tmp_path / "saved"))


def test_a_gbk_item_file_is_read_with_encoding_gbk_everywhere(tmp_path):
    from recbole_llm.data.dataset import create_dataset

    data = tmp_path / "data"
    folder = gbk_dataset(data)
    assert ensure_dataset("gb", data) == folder  # the ASCII header is fine before the encoding is known
    config = build(data, tmp_path, encoding="gbk", item_text_field="title", train_neg_sample_args=None,
                   show_progress=False)
    dataset = create_dataset(config)
    text = ItemText.from_dataset(dataset)
    assert text.by_token("i7") == TITLES["i7"]
    assert {text.title(i) for i in range(1, len(text))} <= set(TITLES.values())


def test_a_gbk_file_read_as_utf8_names_file_line_encoding_and_fix(tmp_path):
    data = tmp_path / "data"
    folder = gbk_dataset(data)
    with pytest.raises(UserError) as err:
        build(data, tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{folder / 'gb.item'}:2: byte 4 of the line (b'\\xb5') is not valid utf-8 (invalid "
                              "start byte), the encoding tried; the file looks like ")
    guess = message.split("pass --encoding=")[1].split(" ")[0]
    assert guess.lower().replace("-", "") in {"gb18030", "gbk", "gb2312"}
    assert message.endswith(" (config key 'encoding'), or save the file as utf-8")
    # the guess is a fix: the same file passes with it
    assert build(data, tmp_path, encoding=guess)["encoding"] == guess


@pytest.mark.parametrize("encoding, content, line", [
    ("utf-8", "user_id:token\titem_id:token\ttimestamp:float\nu1\tcafé\t1\nu2\tcrème brûlée\t2\n", 2),
    ("gbk", "user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t1\nu2\ti2\t2\nu3\t€\t3\n", 4),
])
def test_a_file_in_another_encoding_is_named_at_its_first_bad_line(tmp_path, encoding, content, line):
    path = tmp_path / "d.inter"
    path.write_bytes(content.encode("latin-1" if encoding == "utf-8" else "utf-8"))
    with pytest.raises(UserError) as err:
        check_atomic_file(path, encoding=encoding)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: byte ") and f"is not valid {encoding} (" in message
    assert "pass --encoding=" in message and message.endswith(f", or save the file as {encoding}")


def test_an_unknown_encoding_is_one_line_naming_the_option(tmp_path):
    data = tmp_path / "data"
    gbk_dataset(data)
    with pytest.raises(UserError) as err:
        build(data, tmp_path, encoding="gbk2")
    assert str(err.value) == ("encoding 'gbk2' (config key 'encoding', --encoding) is not an encoding Python knows; "
                              "pass the atomic files' encoding, e.g. --encoding=utf-8, --encoding=gbk or "
                              "--encoding=latin-1")
    with pytest.raises(UserError, match="encoding 'nope'"):
        ItemText.from_file(data / "gb" / "gb.item", "title", ["[PAD]", "i1"], file_format=AtomicFormat("nope"))


def test_only_the_header_line_is_decoded_for_the_header(tmp_path):
    path = tmp_path / "d.item"
    path.write_bytes("item_id:token\ttitle:token_seq\ni1\t爱情\n".encode("gbk"))
    assert read_header(path) == [("item_id", "token"), ("title", "token_seq")]  # rows are not its business
    path.write_bytes("item_id:token\t标题:token_seq\ni1\t爱情\n".encode("gbk"))
    assert read_header(path, "gbk") == [("item_id", "token"), ("标题", "token_seq")]
    assert read_header(path, None) is None  # encoding not known yet: left to the whole-file check
    with pytest.raises(UserError) as err:
        read_header(path)
    assert str(err.value).startswith(f"{path}:1: byte 15 of the line (b'\\xb1') is not valid utf-8")
    (tmp_path / "d.inter").write_text("user_id:token\titem_id:token\nu1\ti1\n")
    assert list(validate_dataset(tmp_path, "d", AtomicFormat(None), headers_only=True)) == ["d.inter"]


def test_item_text_names_the_line_of_a_bad_byte(tmp_path):
    path = tmp_path / "t.item"
    rows = "".join(f"i{i}\tplain title {i}\n" for i in range(1, 2000))  # past pandas' first chunk
    path.write_bytes(("item_id:token\ttitle:token_seq\n" + rows).encode() + "i2000\tcafé\n".encode("latin-1"))
    with pytest.raises(UserError) as err:
        ItemText.from_file(path, "title", ["[PAD]", "i1"])
    assert str(err.value).startswith(f"{path}:2001: byte 10 of the line (b'\\xe9') is not valid utf-8")
    latin = ItemText.from_file(path, "title", ["[PAD]", "i1"], file_format=AtomicFormat("latin-1"))
    assert latin.by_token("i2000") == "café"


def test_the_runner_exits_2_with_the_fix_for_a_gbk_file(tmp_path):
    data = tmp_path / "data"
    folder = gbk_dataset(data)
    cmd = [sys.executable, str(REPO / "run_benchmark.py"), "--model=SASRec", "--dataset=gb", f"--data-path={data}",
           f"--output={tmp_path / 'results'}", f"--saved-dir={tmp_path / 'saved'}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert "Traceback" not in out.stderr
    assert last.startswith(f"error: {folder / 'gb.item'}:2: byte 4 of the line") and "pass --encoding=" in last
    assert not (tmp_path / "results").exists()
