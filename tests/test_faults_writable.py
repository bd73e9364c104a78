"""``fsutil.check_writable``: an output folder that cannot take a run's files is refused before
anything trains, naming the option and the folder (issue 36, kind 1)."""

import errno
import os
import shutil
from collections import namedtuple

import pytest

from recbole_llm import fsutil
from recbole_llm.errors import UserError
from recbole_llm.fsutil import check_writable, format_bytes


def refused(*args, **kwargs):
    with pytest.raises(UserError) as err:
        check_writable(*args, **kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_a_missing_folder_is_probed_and_nothing_is_left(tmp_path):
    folder = tmp_path / "a" / "b" / "results"
    assert check_writable(folder, need_bytes=1) == folder
    assert list(tmp_path.iterdir()) == []  # the folders it made are gone again: the run makes them
    folder.mkdir(parents=True)
    check_writable(folder)  # an existing folder is fine too, and kept
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_a_file_where_the_folder_should_be(tmp_path):
    (tmp_path / "results").write_text("not a folder")
    assert refused(tmp_path / "results") == (f"--output: {tmp_path / 'results'} exists and is not a folder; move it "
                                             "away or pass another folder with --output=<folder>")
    message = refused(tmp_path / "results" / "sub", option="--saved-dir")
    assert message.startswith(f"--saved-dir: cannot create the folder {tmp_path / 'results' / 'sub'} (Not a directory)")
    assert message.endswith("or pass another folder with --saved-dir=<folder>")


def _writes_blocked(folder):
    """True when the permissions of ``folder`` really stop this process (not root, which writes anyway)."""
    try:
        (folder / "probe").write_text("x")
    except PermissionError:
        return True
    (folder / "probe").unlink()
    return False


def test_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if not _writes_blocked(folder):
            pytest.skip("running as root (or without permission checks): chmod does not stop writes")
        assert refused(folder, option="--output") == (
            f"--output: cannot write into {folder} (Permission denied); make it writable (chmod u+w {folder}) or pass "
            "another folder with --output=<folder>")
        assert refused(folder / "new", option="--saved-dir").startswith(
            f"--saved-dir: cannot create the folder {folder / 'new'} (Permission denied); fix the permissions of its "
            "parent")
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("code, reason", [(errno.EACCES, "Permission denied"), (errno.EROFS, "Read-only file system"),
                                          (errno.ENOSPC, "No space left on device")])
def test_a_folder_that_refuses_the_probe(tmp_path, monkeypatch, code, reason):
    """The probe's failure as root cannot cause it by chmod: simulated where the probe is made or written."""
    def refuse(*args, **kwargs):
        raise OSError(code, reason)

    where = "mkstemp" if code != errno.ENOSPC else "fsync"
    monkeypatch.setattr(fsutil.tempfile if where == "mkstemp" else fsutil.os, where, refuse)
    assert refused(tmp_path, option="--saved-dir") == (
        f"--saved-dir: cannot write into {tmp_path} ({reason}); make it writable (chmod u+w {tmp_path}) or pass "
        "another folder with --saved-dir=<folder>")
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == []  # the probe written before fsync failed is removed


def test_not_enough_free_space(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(fsutil.shutil, "disk_usage", lambda path: usage(10 * 2**30, 9 * 2**30, 3 * 2**20))
    assert refused(tmp_path, need_bytes=5 * 2**30) == (
        f"--output: {tmp_path} has 3.0 MiB free, and this run needs about 5.0 GiB; free disk space or pass another "
        "folder with --output=<folder>")
    assert check_writable(tmp_path, need_bytes=3 * 2**20) == tmp_path
    monkeypatch.undo()
    assert refused(tmp_path, need_bytes=shutil.disk_usage(tmp_path).free + 2**50).endswith(
        "; free disk space or pass another folder with --output=<folder>")


def test_format_bytes():
    assert [format_bytes(n) for n in (0, 1023, 1024, 1536 * 2**20, 2**60)] == [
        "0 bytes", "1023 bytes", "1.0 KiB", "1.5 GiB", "1024.0 PiB"]
