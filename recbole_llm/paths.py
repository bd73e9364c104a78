"""Paths in run records that read the same on every machine.

A record names files (its best checkpoint, its frozen ID model, its data folder); written as they
are, those names hold the absolute paths of the machine that made it. :func:`portable` writes each
relative to one of a few named roots instead, ``{saved}/runs/...``, ``{data}/amazon-scientific``,
``{checkout}/properties/...``, and :func:`resolve_path` turns such a name back into a path under
the roots of the machine that reads it.
"""

from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def path_roots(data_root, saved_dir):
    """``{"saved": ..., "data": ..., "checkout": ...}``: the roots a record's paths are relative to
    (checkpoints and the ID-model cache; RecBole's data root; this package's tree, for its YAML)."""
    return {"saved": Path(saved_dir).resolve(), "data": Path(data_root).resolve(), "checkout": CHECKOUT}


def portable(value, roots):
    """``value`` (nested dicts, lists, strings) with every absolute path made machine-independent:
    ``{name}/relative/path`` under the first root of ``roots`` (name -> folder) that holds it,
    ``{elsewhere}/<file name>`` otherwise. Other values are returned as they are."""
    if isinstance(value, dict):
        return {k: portable(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, roots) for v in value]
    if isinstance(value, str) and value.startswith("/") and "\n" not in value and len(value) < 4096:
        path = Path(value)
        for name, root in roots.items():
            if path == root or root in path.parents:
                rel = path.relative_to(root).as_posix()
                return f"{{{name}}}" + ("" if rel == "." else f"/{rel}")
        return f"{{elsewhere}}/{path.name}"
    return value


def resolve_path(value, roots):
    """The inverse of :func:`portable` for one path: ``{saved}/x`` -> ``<saved root>/x``; a path
    without a root marker is returned as a ``Path``."""
    value = str(value)
    for name, root in roots.items():
        marker = f"{{{name}}}"
        if value == marker or value.startswith(marker + "/"):
            return Path(root) / value[len(marker):].lstrip("/")
    return Path(value)
