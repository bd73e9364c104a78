"""Make sure a dataset's atomic files exist (and are well-formed) before RecBole reads them."""

import logging
from pathlib import Path

from recbole_llm.data.atomic import download_recbole_dataset, recbole_urls, validate_dataset
from recbole_llm.errors import UserError

logger = logging.getLogger(__name__)

# Datasets made by a converter from files the user must provide: the exact command to make them.
CONVERSION_COMMANDS = {
    "amazon-scientific": "python -m recbole_llm.data unisrec --src <UniSRec folder with Scientific.*> "
                         "--prefix Scientific --name amazon-scientific --data-path {data_path}",
}
GENERIC_COMMANDS = (
    "python -m recbole_llm.data amazon --reviews <reviews.json.gz> --meta <meta.json.gz> --name {name} "
    "--data-path {data_path}, or python -m recbole_llm.data unisrec --src <UniSRec folder> --prefix <X> "
    "--name {name} --data-path {data_path}"
)


def ensure_dataset(name, data_path):
    """Return ``<data_path>/<name>``, creating the dataset first when it is missing.

    * ``<data_path>/<name>/<name>.inter`` exists: check the header of every atomic file there;
    * ``ml-100k``: copy RecBole's bundled files (no network);
    * ``ml-1m`` and every other name in RecBole's ``url.yaml``: RecBole's download, without
      prompts (offline -> :class:`UserError` with the conversion command);
    * anything else (``amazon-scientific`` included): :class:`UserError` giving the path and the
      exact conversion command.
    """
    data_path = Path(data_path)
    folder = data_path / name
    if (folder / f"{name}.inter").is_file():
        validate_dataset(folder, name)
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
