"""Make sure a dataset's atomic files exist (and are well-formed) before RecBole reads them."""

import difflib
import logging
from pathlib import Path

from recbole_llm.data.atomic import (
    AtomicFormat,
    _is_own_atomic_file,
    download_recbole_dataset,
    recbole_urls,
    validate_dataset,
)
from recbole_llm.errors import UserError
from recbole_llm.utils import check_name

logger = logging.getLogger(__name__)

# Datasets made by a converter from files the user must provide: the exact command to make them.
CONVERSION_COMMANDS = {
    "amazon-scientific": "python -m recbole_llm.data unisrec --src <UniSRec folder with Scientific.*> "
                         "--prefix Scientific --name amazon-scientific --data-path {data_path}",
}
GENERIC_COMMANDS = (
    "python -m recbole_llm.data csv --inter <interactions.csv> --user-col <col> --item-col <col> --time-col <col> "
    "--name {name} --data-path {data_path} (your own data), "
    "python -m recbole_llm.data amazon --reviews <reviews.jsonl.gz> --meta <meta.jsonl.gz> --name {name} "
    "--data-path {data_path}, or python -m recbole_llm.data unisrec --src <UniSRec folder> --prefix <X> "
    "--name {name} --data-path {data_path}"
)


def ensure_dataset(name, data_path, encoding=None):
    """Return ``<data_path>/<name>``, creating the dataset first when it is missing.

    * ``<data_path>/<name>/<name>.inter`` exists: check the header of every atomic file there,
      decoded with ``encoding`` (the config key; None: not known yet, and a header that is not
      UTF-8 waits for :func:`check_dataset`, which checks the whole files once the config, and so
      the encoding, is known);
    * ``ml-100k``: copy RecBole's bundled files (no network);
    * ``ml-1m`` and every other name in RecBole's ``url.yaml``: RecBole's download, without
      prompts (offline -> :class:`UserError` with the conversion command);
    * anything else (``amazon-scientific`` included): :class:`UserError` giving the path and the
      exact conversion command.
    A ``name`` that is not one plain folder name (``a/b``, ``..``) is refused first
    (:func:`recbole_llm.utils.check_name`): it becomes ``<data_path>/<name>/``,
    ``<checkpoint_dir>/<name>-*.pth`` and ``<output>/<name>/``, and each must stay in its folder.
    """
    check_name(name, "--dataset", hint=" (a folder name under --data-path: pass its parent as --data-path)")
    data_path = Path(data_path)
    folder = data_path / name
    if (folder / f"{name}.inter").is_file():
        validate_dataset(folder, name, AtomicFormat(encoding), headers_only=True)  # whole files: check_dataset
        return folder
    if name == "ml-100k":
        from recbole_llm.data.movielens import materialize_ml100k

        return materialize_ml100k(data_path)
    if name == "ml-1m":
        from recbole_llm.data.movielens import download_ml1m

        logger.info("%s is missing: downloading RecBole's ml-1m", folder / f"{name}.inter")
        return download_ml1m(data_path)
    if name in CONVERSION_COMMANDS:
        command = CONVERSION_COMMANDS[name].format(data_path=data_path)
        raise UserError(f"dataset '{name}' is missing at {folder / (name + '.inter')}; make it with: {command}")
    if name in recbole_urls():
        logger.info("%s is missing: downloading RecBole's %s", folder / f"{name}.inter", name)
        return download_recbole_dataset(name, data_path, fix_hint=(
            f"without network, download {recbole_urls()[name]} elsewhere and unzip its atomic files into {folder}"))
    command = GENERIC_COMMANDS.format(name=name, data_path=data_path)
    raise UserError(f"dataset '{name}' is missing at {folder / (name + '.inter')} and RecBole has no download for it; "
                    f"convert the raw data with: {command}")


def check_dataset(config):
    """Validate, before RecBole reads anything, the atomic files ``config`` makes it read.

    Every atomic file of ``config['dataset']`` under ``config['data_path']`` (the folder RecBole
    reads: for ``ml-100k`` its own bundled copy) is checked whole with the config's ``encoding``,
    ``field_separator`` and ``seq_separator`` (:func:`~recbole_llm.data.atomic.check_atomic_file`);
    then the configured fields: ``USER_ID_FIELD`` and ``ITEM_ID_FIELD`` are ``token`` columns of
    the ``.inter`` file, ``TIME_FIELD`` a ``float`` column with a number in every row when the
    split is time-ordered (``eval_args.order: TO``, and always for sequential models), each of
    them listed in ``load_col`` when it lists the ``.inter`` columns, and every column ``load_col``
    lists exists. Each failure is a :class:`UserError` naming ``file:1`` (the header) and the fix.
    Values are checked too: finite numbers in float fields, no id RecBole would read as missing.
    """
    from recbole.utils import ModelType

    folder, name = Path(config["data_path"]), config["dataset"]
    order = (config["eval_args"] or {}).get("order")
    time_field = config["TIME_FIELD"]
    needs_time = bool(time_field) and (order == "TO" or config["MODEL_TYPE"] == ModelType.SEQUENTIAL)
    ids = tuple(f for f in (config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]) if f)
    headers = validate_dataset(folder, name, AtomicFormat.of(config), (time_field,) if needs_time else (),
                               id_fields=ids)
    load_col = config["load_col"] if isinstance(config["load_col"], dict) else {}
    inter = folder / f"{name}.inter"
    header = dict(headers[inter.name])
    columns = ", ".join(f"{n}:{t}" for n, t in header.items())
    listed = load_col.get("inter")
    fields = [("USER_ID_FIELD", config["USER_ID_FIELD"], "token"), ("ITEM_ID_FIELD", config["ITEM_ID_FIELD"], "token")]
    if needs_time:
        fields.append(("TIME_FIELD", time_field, "float"))
    for key, field, ftype in fields:
        if field is None:
            continue
        if field not in header:
            same_type = [n for n, t in header.items() if t == ftype and n not in {f for _, f, _ in fields}]
            guess = difflib.get_close_matches(field, same_type, n=1, cutoff=0.0) if same_type else []
            if guess:
                fix = f"rename the column '{guess[0]}' to '{field}', or set {key}: {guess[0]}"
                fix += f" and list '{guess[0]}' in load_col's inter list" if listed is not None else ""
            else:
                fix = f"add a '{field}:{ftype}' column, or set {key} to the column that holds it"
            raise UserError(f"{inter}:1: {key} '{field}' is not a column of the header ({columns}); {fix}")
        if header[field] != ftype:
            raise UserError(f"{inter}:1: {key} '{field}' is declared '{field}:{header[field]}'; RecBole needs "
                            f"'{field}:{ftype}' there: change the header")
        if listed is not None and field not in listed:
            raise UserError(f"load_col lists the .inter columns {listed} without {key} '{field}', so RecBole would "
                            f"not load it; add '{field}' to load_col's inter list")
    for suffix, wanted in load_col.items():
        path = folder / f"{name}.{suffix}"
        if path.name not in headers or not _is_own_atomic_file(path.name, name):
            continue
        have = dict(headers[path.name])
        missing = [f for f in wanted or () if f not in have]
        if missing:
            raise UserError(f"{path}:1: load_col lists '{missing[0]}' for .{suffix}, which the header does not have "
                            f"({', '.join(f'{n}:{t}' for n, t in have.items())}); remove it from load_col or add the "
                            "column")
    return headers
