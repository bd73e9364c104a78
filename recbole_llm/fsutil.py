"""Files written whole: atomic replacement, sets of files swapped as one unit, a folder lock, and
the check that an output folder can be written before anything trains."""

import contextlib
import glob
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: folder_lock cannot lock (and says so in its docstring)
    fcntl = None

from recbole_llm.errors import UserError

LOCK_NAME = ".recbole-llm.lock"
_STAGING_PREFIX = ".recbole-llm-swap-"
_COMMIT = ".commit"  # in a staging folder: the list of its files, written after them


def current_umask():
    """The process umask (reading it means setting it, so set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600; results are meant to be shared
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_file(path, data):
    """Write ``data`` (bytes) to ``path`` and flush it to the disk (so a full disk fails here)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _sync_folder(folder):
    """Flush a folder's entries (the renames in it) to the disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_HELD = {}  # (lock file, thread) -> [fd, depth] of the locks this process holds
_HELD_GUARD = threading.Lock()
if hasattr(os, "register_at_fork"):  # a forked child holds none of its parent's locks
    os.register_at_fork(after_in_child=_HELD.clear)


@contextlib.contextmanager
def folder_lock(folder, name=LOCK_NAME):
    """Hold an exclusive lock on ``folder`` for the ``with`` block: ``fcntl.flock`` on
    ``<folder>/<name>``, waiting while another process (or thread) holds it.

    Re-entrant in one thread (a function that locks may call another that locks the same
    folder). The lock file is removed on release, so no file is left in a results folder; a
    waiter that locked the removed file sees it is gone and locks the new one (the inode is
    compared after locking). Folders made for the lock are removed again when they are still empty
    on release (a command that stops with an error leaves no empty results folder). Without
    ``fcntl`` (not POSIX) nothing is locked.
    """
    folder = Path(folder)
    path = folder / name
    key = (os.path.realpath(path), threading.get_ident())  # one key for every spelling of the folder
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None:
            held[1] += 1
    if held is not None:
        try:
            yield path
        finally:
            with _HELD_GUARD:
                held[1] -= 1
        return
    made = [p for p in [folder, *folder.parents] if not p.exists()]
    fd = None
    while True:
        folder.mkdir(parents=True, exist_ok=True)  # again on a retry: the holder may have removed it
        if fcntl is None:
            break
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            mine = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            break
        os.close(fd)  # the holder before us removed this file: lock the current one
    with _HELD_GUARD:
        _HELD[key] = [fd, 0]
    try:
        yield path
    finally:
        with _HELD_GUARD:
            del _HELD[key]
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)  # still locked: nobody can lock this file and think it current
            os.close(fd)
        for made_folder in made:  # innermost first; rmdir refuses a folder that holds anything
            try:
                made_folder.rmdir()
            except OSError:
                break


def finish_file_sets(folder, names=()):
    """Complete or discard what a killed :func:`write_file_set` left in ``folder``.

    A staging folder whose ``.commit`` list is whole was killed while renaming: its remaining files
    are moved into place (the new set completes). One without a whole list was killed while
    writing: the old set is intact, and the staging folder is garbage. Either way it is removed;
    so are the ``.<name>.*.tmp``/``.<name>.*.old`` files that the earlier version of this function
    left for the file ``names`` (only theirs: other writers use such names too). Call with the
    folder locked (:func:`folder_lock`; :func:`write_file_set` does). Returns the names completed.
    """
    folder = Path(folder)
    completed = []
    if not folder.is_dir():
        return completed
    for staging in sorted(folder.glob(_STAGING_PREFIX + "*")):
        if not staging.is_dir():
            continue
        try:
            committed = json.loads((staging / _COMMIT).read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError, TypeError):
            committed = []  # not committed: the swap had not begun
        for name in committed:
            if (staging / name).exists():
                os.replace(staging / name, folder / name)
                completed.append(name)
        if completed:
            _sync_folder(folder)
        shutil.rmtree(staging, ignore_errors=True)
    for name in names:  # the temporaries and backups of the earlier write_file_set
        for pattern in (f".{glob.escape(name)}.*.tmp", f".{glob.escape(name)}.*.old"):
            for path in folder.glob(pattern):
                if path.is_file():
                    path.unlink()
    return completed


def write_file_set(folder, files):
    """Write ``files`` (``{name: str or bytes}``) into ``folder`` as one unit: the old set or the new one.

    Every file is first written (and flushed to the disk) into a staging folder inside ``folder``;
    only when all are written is their list written there (``.commit``), and then each is renamed
    into place. If anything fails before the renames (``OSError``: a full disk, a permission), the
    staging folder is removed and the old files are left as they were; a rename that fails part
    way puts the files already replaced back (the old ones are kept as hard links until the end).
    A process killed during the renames leaves the list behind: the next write into ``folder``
    (or :func:`finish_file_sets`) completes that set before anything else, and a kill before the
    list leaves the old set whole; no temporary file outlives the next write. Writers of one folder
    take turns (:func:`folder_lock`). Text is written as UTF-8. Returns the paths written, in
    ``files`` order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder):
        finish_file_sets(folder, files)
        staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=folder))
        backups, replaced = {}, []
        try:
            (staging / ".backup").mkdir()
            for name, data in files.items():
                path = staging / name
                _write_file(path, data.encode("utf-8") if isinstance(data, str) else data)  # mode 0666 - umask
            # The list last: a whole list means every staged file is whole (each was fsync'ed).
            _write_file(staging / _COMMIT, json.dumps({"files": list(files)}).encode("utf-8"))
            for name in files:
                target = folder / name
                if target.exists():
                    backup = staging / ".backup" / name
                    try:
                        os.link(target, backup)  # no data copied: cannot fail for space
                    except OSError:
                        shutil.copy2(target, backup)  # a filesystem without hard links
                    backups[name] = backup
                os.replace(staging / name, target)
                replaced.append(name)
            _sync_folder(folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(staging / _COMMIT)  # this set is being undone: never complete it later
            for name in reversed(replaced):
                if name in backups:
                    os.replace(backups.pop(name), folder / name)
                else:
                    os.remove(folder / name)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return [folder / name for name in files]


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)


def format_bytes(n):
    """``n`` bytes in the largest binary unit that keeps a number >= 1 (``1.5 GiB``)."""
    n = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


def check_writable(folder, need_bytes=0, option="--output"):
    """Make sure ``folder`` can take a run's files before anything trains: create it (and its
    parents) if needed, write, flush and remove a probe file in it, and check that its filesystem
    has at least ``need_bytes`` free. Each failure is a :class:`UserError` naming ``option`` (the
    command-line option that chose the folder: ``--output``, ``--saved-dir``), the folder and the
    fix. Folders it made are removed again (the run makes them when it writes), so a command that
    stops later leaves nothing behind. Returns ``folder`` as a ``Path``."""
    folder = Path(folder)
    other = f"or pass another folder with {option}=<folder>"
    made = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise UserError(f"{option}: {folder} exists and is not a folder; move it away {other}") from None
        except OSError as err:
            raise UserError(f"{option}: cannot create the folder {folder} ({err.strerror or err}); fix the permissions "
                            f"of its parent {other}") from None
        probe = None
        try:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".recbole-llm-write-probe-")
            try:
                os.write(fd, b"probe\n")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise UserError(f"{option}: cannot write into {folder} ({err.strerror or err}); make it writable (chmod "
                            f"u+w {folder}) {other}") from None
        finally:
            if probe is not None:
                with contextlib.suppress(OSError):
                    os.remove(probe)
        free = shutil.disk_usage(folder).free
        if free < need_bytes:
            raise UserError(f"{option}: {folder} has {format_bytes(free)} free, and this run needs about "
                            f"{format_bytes(need_bytes)}; free disk space {other}")
    finally:
        for made_folder in made:  # innermost first
            try:
                made_folder.rmdir()
            except OSError:
                break
    return folder
