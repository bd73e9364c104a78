"""Datasets as RecBole atomic files: converters, downloads, validation and item titles.

Command line: ``python -m recbole_llm.data {ml-100k,ml-1m,amazon,unisrec} --help``.
"""

from recbole_llm.data.amazon import AmazonImport, convert_amazon
from recbole_llm.data.atomic import read_header, validate_dataset, write_atomic, write_dataset
from recbole_llm.data.item_text import ItemText
from recbole_llm.data.movielens import convert_ml1m, download_ml1m, materialize_ml100k
from recbole_llm.data.prepare import ensure_dataset
from recbole_llm.data.tuning import TuningSequentialDataset, create_dataset, select_training_samples
from recbole_llm.data.unisrec import convert_unisrec

__all__ = [
    "AmazonImport",
    "ItemText",
    "TuningSequentialDataset",
    "convert_amazon",
    "convert_ml1m",
    "convert_unisrec",
    "create_dataset",
    "download_ml1m",
    "ensure_dataset",
    "materialize_ml100k",
    "read_header",
    "select_training_samples",
    "validate_dataset",
    "write_atomic",
    "write_dataset",
]
