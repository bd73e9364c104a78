"""A converted dataset's YAML, written into its folder together with its atomic files.

The datasets this package knows have their keys in ``properties/dataset/<name>.yaml`` (inside the
installed package). A dataset a user converts (``python -m recbole_llm.data csv`` or ``amazon``)
gets the same keys in ``<data_path>/<name>/<name>.yaml`` instead, so that nothing inside the
installed package needs editing; every run on the dataset loads it (``Config._load_data_folder_yaml``:
after ``properties/dataset/``, before the models' YAML and the user's options).

:func:`write_dataset_folder` writes the atomic files and the YAML into one temporary folder and
installs it as a unit (:func:`~recbole_llm.data.atomic.install_dir`), so a dataset folder never
holds the atomic files of one conversion and the YAML of another. :func:`write_dataset` of
``atomic`` does the same for atomic files alone.
"""

import dataclasses
import json
import shutil
from pathlib import Path

from recbole_llm.data.atomic import AtomicFormat, install_dir, new_temp_dir, validate_dataset, write_atomic

# Shown to a language model: the LLM models' hard prompt when the dataset sets none (overall.yaml).
PRODUCT_PROMPT = ("Your task is to recommend the next product the user may be interested in based on their "
                  "purchase history: {titles}.")


def yaml_path(data_path, name):
    """Where a converted dataset's YAML lies: ``<data_path>/<name>/<name>.yaml``."""
    return Path(data_path) / name / f"{name}.yaml"


def _line(key, value, comment):
    head = f"{key}: {value}" if value != "" else f"{key}:"
    return f"{head:<31} # {comment}"


@dataclasses.dataclass(frozen=True)
class DatasetKeys:
    """What a converter knows of the dataset it made, which its YAML states.

    ``source`` is the command (or a description) that made it, one line; ``rating``: whether
    ``.inter`` has a ``rating`` column; ``item_text_field``: the title column of ``.item`` (None
    when there are no titles, which only the LLM models need); ``prompt_template``: the hard
    prompt of the LLM models (None: ``overall.yaml``'s).
    """

    name: str
    source: str
    rating: bool
    item_text_field: str | None
    max_item_list_length: int = 50
    prompt_template: str | None = None


def dataset_yaml(keys: DatasetKeys, counts: dict | None = None) -> str:
    """The YAML text of the converted dataset ``keys`` describes, in the form of
    ``properties/dataset/*.yaml``.

    ``counts``: ``{step: {"users", "items", "interactions"}}``, written as comments. The converter
    did the filtering, so RecBole's own user/item filters are off (``~``) and repeated interactions
    are kept.
    """
    name = keys.name
    load = ["user_id", "item_id"] + (["rating"] if keys.rating else []) + ["timestamp"]
    lines = [f"# {name}: {' '.join(keys.source.split())}",
             f"# Every run on the dataset loads it: python run_benchmark.py --dataset={name} ..."]
    for step, c in (counts or {}).items():
        lines.append(f"#   {step:<13} users {c['users']:>8}  items {c['items']:>8}  "
                     f"interactions {c['interactions']:>9}")
    lines += [
        _line("USER_ID_FIELD", "user_id", f"(str) User id column of {name}.inter."),
        _line("ITEM_ID_FIELD", "item_id", f"(str) Item id column of {name}.inter and {name}.item."),
        _line("RATING_FIELD", "rating" if keys.rating else "~",
              "(str) Explicit rating; loaded but unused by the sequential models." if keys.rating
              else "(str) No ratings in this dataset."),
        _line("TIME_FIELD", "timestamp", "(str) Interaction time; orders each user's sequence (eval_args.order: TO)."),
        _line("load_col", "", "(dict) Only the interaction columns the models need; .item is not loaded."),
        f"  inter: [{', '.join(load)}]",
        _line("MAX_ITEM_LIST_LENGTH", int(keys.max_item_list_length),
              "(int) History length of the sequential models."),
        _line("item_text_field", keys.item_text_field or "~",
              f"(str) Title column of {name}.item, read by recbole_llm.data.ItemText." if keys.item_text_field
              else "(str) No titles: the LLM models need them (convert with a title column)."),
        _line("user_inter_num_interval", "~", "(str) No user filter: the converter filtered already."),
        _line("item_inter_num_interval", "~", "(str) No item filter: the converter filtered already."),
        _line("rm_dup_inter", "~", "(str) Keep repeated user-item interactions."),
    ]
    if keys.prompt_template:
        # JSON strings are YAML double-quoted scalars: any title wording round-trips
        lines.append(_line("prompt_template", json.dumps(keys.prompt_template, ensure_ascii=False),
                           "(str) Hard prompt; {titles} = recent titles."))
    else:
        lines.append('# prompt_template: "...{titles}."  # (str) Hard prompt of the LLM models; unset: '
                     "overall.yaml's.")
    return "\n".join(lines) + "\n"


def write_dataset_folder(data_path, name, files, yaml_text, encoding="utf-8"):
    """Write ``<data_path>/<name>/`` as one unit: the atomic ``files`` (suffix -> DataFrame with
    typed columns such as ``"user_id:token"``), checked whole with the time field required, and
    ``<name>.yaml``; then install it, replacing an existing folder of that dataset. Returns the folder."""
    data_path = Path(data_path)
    tmp = new_temp_dir(data_path, name)
    try:
        for suffix, df in files.items():
            header = [tuple(str(c).rsplit(":", 1)) for c in df.columns]
            write_atomic(tmp / f"{name}.{suffix}", header, df, encoding=encoding)
        validate_dataset(tmp, name, AtomicFormat(encoding), required_numbers=("timestamp",),
                         id_fields=("user_id", "item_id"))
        (tmp / f"{name}.yaml").write_text(yaml_text, encoding="utf-8")
        return install_dir(tmp, data_path / name, name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
