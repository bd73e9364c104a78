"""RecBole's missing-value fills made to work under pandas Copy-on-Write.

Under Copy-on-Write (the only mode of pandas 3; opt-in in pandas 2) RecBole 1.2.1's ``Dataset``
fills missing values in place on column views (``df[field].fillna(..., inplace=True)``), which
then silently does nothing: in ``_fill_nan`` token and float fields keep their NaNs, and in
``_load_feat`` an empty token_seq or float_seq cell (an item without a title) stays NaN and
RecBole's ``.split`` on it fails. :class:`CopyOnWriteFills` holds RecBole 1.2.1's two methods
with the fill assigned back to the column; every dataset class this package builds
(:mod:`recbole_llm.data.dataset`) has it before RecBole's class, and RecBole's own ``Dataset`` is
not touched. Where pandas has no Copy-on-Write the methods are RecBole's, unchanged. (RecBole's
other ``inplace=True`` calls are on whole frames, which Copy-on-Write leaves working.)

Written by hand because the fix is inside RecBole's methods: no RecBole hook or pandas option
restores the in-place fills.
"""

import numpy as np
import pandas as pd

from recbole_llm.compat import copy_on_write


class CopyOnWriteFills:
    """Mixin for a RecBole ``Dataset`` class: ``_fill_nan`` and ``_load_feat`` that fill missing
    values under pandas Copy-on-Write (see the module docstring)."""

    def _fill_nan(self):
        """RecBole's ``Dataset._fill_nan`` with column assignment instead of ``inplace=True``
        (RecBole's own method where pandas has no Copy-on-Write)."""
        if not copy_on_write():
            return super()._fill_nan()
        from recbole.utils import FeatureType

        for feat_name in self.feat_name_list:
            feat = getattr(self, feat_name)
            for field in feat:
                ftype = self.field2type[field]
                if ftype == FeatureType.TOKEN:
                    feat[field] = feat[field].fillna(value=0)
                elif ftype == FeatureType.FLOAT:
                    feat[field] = feat[field].fillna(value=feat[field].mean())
                else:
                    dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float64
                    feat[field] = feat[field].apply(
                        lambda x: np.array([], dtype=dtype) if isinstance(x, float) else x
                    )

    def _load_feat(self, filepath, source):
        """RecBole 1.2.1's ``Dataset._load_feat``, line for line, except that sequence fields' NaNs
        are filled by assigning the column back (``df[field] = df[field].fillna("")``) instead of
        ``df[field].fillna("", inplace=True)``, which Copy-on-Write turns into a no-op. Copied whole
        because the fill sits between the read and the split, with no hook in between. RecBole's
        own method where pandas has no Copy-on-Write."""
        if not copy_on_write():
            return super()._load_feat(filepath, source)
        from recbole.utils import FeatureSource, FeatureType, set_color

        self.logger.debug(set_color(f"Loading feature from [{filepath}] (source: [{source}]).", "green"))

        load_col, unload_col = self._get_load_and_unload_col(source)
        if load_col == set():
            return None

        field_separator = self.config["field_separator"]
        columns = []
        usecols = []
        dtype = {}
        encoding = self.config["encoding"]
        with open(filepath, "r", encoding=encoding) as f:
            head = f.readline()[:-1]
        for field_type in head.split(field_separator):
            field, ftype = field_type.split(":")
            try:
                ftype = FeatureType(ftype)
            except ValueError:
                raise ValueError(f"Type {ftype} from field {field} is not supported.")
            if load_col is not None and field not in load_col:
                continue
            if unload_col is not None and field in unload_col:
                continue
            if isinstance(source, FeatureSource) or source != "link":
                self.field2source[field] = source
                self.field2type[field] = ftype
                if not ftype.value.endswith("seq"):
                    self.field2seqlen[field] = 1
                if "float" in ftype.value:
                    self.field2bucketnum[field] = 2
            columns.append(field)
            usecols.append(field_type)
            dtype[field_type] = np.float64 if ftype == FeatureType.FLOAT else str

        if len(columns) == 0:
            self.logger.warning(f"No columns has been loaded from [{source}]")
            return None

        df = pd.read_csv(filepath, delimiter=field_separator, usecols=usecols, dtype=dtype, encoding=encoding,
                         engine="python")
        df.columns = columns

        seq_separator = self.config["seq_separator"]
        for field in columns:
            ftype = self.field2type[field]
            if not ftype.value.endswith("seq"):
                continue
            df[field] = df[field].fillna(value="")  # the one change
            if ftype == FeatureType.TOKEN_SEQ:
                df[field] = [np.array(list(filter(None, _.split(seq_separator)))) for _ in df[field].values]
            elif ftype == FeatureType.FLOAT_SEQ:
                df[field] = [np.array(list(map(float, filter(None, _.split(seq_separator))))) for _ in df[field].values]
            max_seq_len = max(map(len, df[field].values))
            if self.config["seq_len"] and field in self.config["seq_len"]:
                seq_len = self.config["seq_len"][field]
                df[field] = [seq[:seq_len] if len(seq) > seq_len else seq for seq in df[field].values]
                self.field2seqlen[field] = min(seq_len, max_seq_len)
            else:
                self.field2seqlen[field] = max_seq_len

        return df
