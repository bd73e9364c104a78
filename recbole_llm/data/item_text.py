"""The one place that answers "item id -> title text" for any RecBole dataset.

Models and prompts that need item text use :class:`ItemText`; nothing else in the package reads
``.item`` files for titles. The title column is named by the config key ``item_text_field``
(``properties/dataset/<name>.yaml``: ``movie_title`` for MovieLens, ``title`` for Amazon).

The ``.item`` file is read here with pandas, the same way RecBole parses atomic files (tab
separator, CSV quoting), so it works whether or not ``load_col`` makes RecBole load ``.item``.
"""

import logging
from pathlib import Path

import pandas as pd

from recbole_llm.data.atomic import AtomicFormat, codec_name, decode_error
from recbole_llm.errors import UserError

logger = logging.getLogger(__name__)


class ItemText:
    """Titles of a dataset's items, indexed by RecBole's internal item id (0 = padding -> "")."""

    def __init__(self, titles, token_to_id, file_titles=None, path=None, field=None):
        self.titles = list(titles)
        self._token_to_id = dict(token_to_id)
        self._file_titles = dict(file_titles or {})
        self.path = path
        self.field = field

    def __len__(self):
        return len(self.titles)

    def title(self, internal_id):
        """Title of the item with RecBole internal id ``internal_id`` ("" for padding or no title)."""
        return self.titles[int(internal_id)]

    def by_token(self, raw_token):
        """Title of the item whose raw id (as in the atomic files) is ``raw_token``.

        Items of the ``.item`` file that RecBole dropped (e.g. never interacted) are answered too;
        an id found in neither raises ``KeyError``.
        """
        token = str(raw_token)
        if token in self._token_to_id:
            return self.titles[self._token_to_id[token]]
        if token in self._file_titles:
            return self._file_titles[token]
        raise KeyError(f"item {token!r} is neither in the dataset nor in {self.path}")

    @classmethod
    def from_dataset(cls, dataset, field=None):
        """Titles for a built RecBole ``Dataset``, read from ``<dataset.dataset_path>/<name>.item``.

        ``dataset.dataset_path`` is RecBole's ``config['data_path']``, which already ends with the
        dataset's folder (and, for ``ml-100k``, is RecBole's bundled copy). ``field`` defaults to
        the config key ``item_text_field``.
        """
        config = dataset.config
        name = dataset.dataset_name
        field = field or config["item_text_field"]
        path = Path(dataset.dataset_path) / f"{name}.item"
        if not field:
            raise UserError(f"config key 'item_text_field' is not set for dataset '{name}'; set it to the title "
                            f"column of {path} in properties/dataset/{name}.yaml")
        iid_field = dataset.iid_field
        id_tokens = dataset.field2id_token[iid_field]
        return cls.from_file(path, field, id_tokens, iid_field=iid_field, file_format=AtomicFormat.of(config),
                             dataset_name=name)

    @classmethod
    def from_file(cls, path: str | Path, field: str, id_tokens, iid_field: str = "item_id",
                  file_format: AtomicFormat = AtomicFormat(), dataset_name: str | None = None) -> "ItemText":
        """Titles from the ``.item`` file at ``path``, read as ``file_format`` says, for the
        internal-id order ``id_tokens`` (RecBole's ``field2id_token[ITEM_ID_FIELD]``: index 0 is
        ``[PAD]``)."""
        encoding = file_format.encoding
        sep, seq_sep = file_format.field_separator, file_format.seq_separator
        path = Path(path)
        name = dataset_name or path.stem
        fix = f"set item_text_field in properties/dataset/{name}.yaml to one of its title columns"
        if not path.is_file():
            raise UserError(f"{path} does not exist, so item field '{field}' (item_text_field) has no source; "
                            f"create the .item file (python -m recbole_llm.data --help) or {fix}")
        codec_name(encoding)
        try:
            df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding=encoding)
        except UnicodeDecodeError:
            data = path.read_bytes()
            try:
                data.decode(encoding)
            except UnicodeDecodeError as err:  # where in the file: pandas' error counts from its chunk
                raise decode_error(path, data, encoding, err) from None
            raise
        except (ValueError, pd.errors.ParserError) as err:
            raise UserError(f"{path} cannot be parsed as a RecBole atomic file ({' '.join(str(err).split())}); "
                            "fix the file (tab-separated, header 'name:type')") from None
        columns = {str(c).split(":", 1)[0]: c for c in df.columns}
        if field not in columns:
            raise UserError(f"{path} has no field '{field}' (item_text_field); columns found: "
                            f"{', '.join(columns) or 'none'}; {fix}")
        if iid_field not in columns:
            raise UserError(f"{path} has no item id field '{iid_field}' (ITEM_ID_FIELD); columns found: "
                            f"{', '.join(columns) or 'none'}; set ITEM_ID_FIELD in properties/dataset/{name}.yaml")
        file_titles = {}
        for token, text in zip(df[columns[iid_field]], df[columns[field]]):
            if seq_sep != " ":
                text = " ".join(t for t in text.split(seq_sep) if t)
            file_titles.setdefault(str(token), " ".join(text.split()))

        tokens = [str(t) for t in id_tokens]
        titles = [""]
        missing = 0
        for token in tokens[1:]:
            text = file_titles.get(token, "")
            missing += not text
            titles.append(text)
        if missing:
            logger.warning("%s: %d of %d items have no '%s' text (using \"\")", path, missing, len(tokens) - 1, field)
        token_to_id = {t: i for i, t in enumerate(tokens) if i > 0}
        return cls(titles, token_to_id, file_titles, path=path, field=field)
