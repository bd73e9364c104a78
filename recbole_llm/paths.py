"""Paths in run records that read the same on every machine.

A record names files (its best checkpoint, its frozen ID model, its data folder); written as they
are, those names hold the absolute paths of the machine that made it. :func:`portable` writes each
relative to one of a few named roots instead, ``{saved}/runs/...``, ``{data}/amazon-scientific``,
``{checkout}/properties/...``, and :func:`resolve_path` turns such a name back into a path under
the roots of the machine that reads it.
"""

import re
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


_ABSOLUTE = re.compile(r"(?<![A-Za-z0-9_.~{}:/])/(?:[^\s'\"=,;:|`)]+/)*[^\s'\"=,;:|`)/]+")


def portable_text(text, roots, others=True):
    """``text`` (a command line, a message) with every absolute path in it made portable: a path
    under a root of ``roots`` as ``{name}/rest``, any other as ``{elsewhere}/<file name>`` (with
    ``others=False`` left as it is: in free text a ``/`` need not start a path)."""
    ordered = sorted(roots.items(), key=lambda item: -len(str(item[1])))

    def one(match):
        path = match.group(0)
        for name, root in ordered:
            root = str(root).rstrip("/")
            if path == root or path.startswith(root + "/"):
                return f"{{{name}}}" + path[len(root):]
        return "{elsewhere}/" + path.rstrip("/").rsplit("/", 1)[-1] if others else path

    return _ABSOLUTE.sub(one, text)


def record_roots(record):
    """The roots of a record made before records were portable, from its own config: the data
    root (``data_root``), the saved folder (the parent of ``checkpoint_dir``) and the checkout
    (the folder above a ``properties/`` config file)."""
    config = record.get("config") or {}
    roots = {}
    if isinstance(config.get("checkpoint_dir"), str) and config["checkpoint_dir"].startswith("/"):
        roots["saved"] = Path(config["checkpoint_dir"]).parent
    if isinstance(config.get("data_root"), str) and config["data_root"].startswith("/"):
        roots["data"] = Path(config["data_root"])
    for f in config.get("config_files") or config.get("config_file_list") or []:
        if isinstance(f, str) and "/properties/" in f and f.startswith("/"):
            roots["checkout"] = Path(f.split("/properties/")[0])
            break
    return roots


def portable_record(record, roots=None):
    """A record (or any JSON value) with no absolute path left: every value that is a path by
    :func:`portable`, the paths inside a ``command`` line by :func:`portable_text`, and in any other
    text the paths under ``roots`` (a message naming a checkpoint); ``roots`` default to
    :func:`record_roots`. Only paths change: no number, key or other text (a prompt template that
    mentions a path outside the roots keeps it: it is what the run used)."""
    roots = dict(record_roots(record) if roots is None and isinstance(record, dict) else roots or {})

    def walk(value, key=None):
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if not isinstance(value, str):
            return value
        if value.startswith("/") and "\n" not in value:  # a path
            return portable(value, roots)
        if key in ("command", "use"):  # command lines
            return portable_text(value, roots)
        return portable_text(value, roots, others=False)

    return walk(record)
