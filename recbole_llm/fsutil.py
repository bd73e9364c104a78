"""Atomic file replacement: a reader sees the old file or the complete new one, never half of one."""

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path


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


def write_file_set(folder, files):
    """Write ``files`` (``{name: str or bytes}``) into ``folder`` as one unit: the old set or the new one.

    Every file is written to a temporary file beside its target first; only when all are written
    are they renamed into place. If anything fails (``OSError``: a full disk, a permission), the
    temporary files are removed and the old files are left as they were; a rename that fails part
    way puts the files already replaced back (the old ones are kept as hard links until the end).
    Text is written as UTF-8. Returns the paths written, in ``files`` order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    temps, backups, replaced = {}, {}, []
    try:
        for name, data in files.items():
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            os.close(fd)
            temps[name] = tmp
            os.chmod(tmp, 0o666 & ~current_umask())
            _write_file(tmp, data.encode("utf-8") if isinstance(data, str) else data)
        for name, tmp in temps.items():
            target = folder / name
            if target.exists():
                backup = folder / f".{name}.{uuid.uuid4().hex[:12]}.old"
                try:
                    os.link(target, backup)  # no data copied: cannot fail for space
                except OSError:
                    shutil.copy2(target, backup)  # a filesystem without hard links
                backups[name] = backup
            os.replace(tmp, target)
            replaced.append(name)
    except BaseException:
        for name in reversed(replaced):
            if name in backups:
                os.replace(backups.pop(name), folder / name)
            else:
                os.remove(folder / name)
        raise
    finally:
        for path in list(temps.values()) + list(backups.values()):
            if os.path.exists(path):
                os.remove(path)
    return [folder / name for name in files]


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)
