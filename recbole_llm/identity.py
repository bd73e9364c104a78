"""What identifies a run: its run key, its ID model's cache key and a sweep's key, in one place.

Every key is derived from the built RecBole ``Config`` and a fingerprint of the data the run reads,
never from lists of names kept by hand elsewhere:

* :func:`run_key` hashes the values of every key the run's model can read (its *own* keys:
  RecBole's and this package's YAML defaults for that model and dataset, and RecBole's documented
  argument lists), with the values in force; the content of the atomic files it loads
  (:func:`data_fingerprint`); the package version (``recbole_llm.__version__``, bumped by every
  change that alters numbers); for an LLM model only, :data:`LLM_CODE_VERSION` (bumped by a change
  that alters the LLM models' numbers alone); and, when a run is given a frozen ID model's
  checkpoint, that file's sha256 instead of its path. The only keys left out are :data:`EXCLUDED`,
  each with its reason; ``tests/test_identity.py`` shows that the ones it can run change no metric.
* A key that belongs to another model (some model's YAML defines it, this model's defaults do
  not: ``--prefix_len`` beside ``--model=IDLEAdapter,ComiRec``) is *foreign* (:func:`foreign`):
  this model cannot read it, so it is not part of its key. A key no YAML defines stays in. That is what makes the table's ComiRec row and
  the ComiRec an LLM run asks for the same run, with one key.
* :func:`id_cache_key` is the run key of the ID model's own config: the cache entry of an ID
  model *is* the benchmark run with that key.
* :func:`sweep_key` is the base config's run key plus the search settings.

Records made before this module existed (``key_scheme`` absent) hashed a hand-kept exclusion list
without the data; they stay readable, and :func:`key_scheme` says they were made under the old key.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from recbole_llm.checkpoint import to_primitive
from recbole_llm.utils import is_llm_class

# The key scheme of the records this code writes (record["key_scheme"]); absent: the old scheme.
KEY_SCHEME = 2

# Config keys that are not part of any key, each with the reason it cannot change weights or metrics.
EXCLUDED: Mapping[str, str] = {
    "data_path": "where the files lie, not what they hold: the data fingerprint covers their content",
    "data_root": "where the files lie (see data_path)",
    "checkpoint_dir": "where checkpoints are written",
    "config_files": "the files' values are in the config itself",
    "config_file": "the files' values are in the config itself",
    "show_progress": "progress bars only (tests/test_identity.py)",
    "state": "log level only (tests/test_identity.py)",
    "log_wandb": "logging only",
    "wandb_project": "logging only",
    "eval_batch_size": "full ranking scores each user on its own; the batch only groups users "
                       "(tests/test_identity.py)",
    "trust_checkpoint": "permission to unpickle a checkpoint; the weights loaded are the same",
    "resume_training": "a resumed run ends with the record of an uninterrupted one (tests/test_resume.py)",
    "save_dataset": "RecBole's cache of the same data",
    "dataset_save_path": "RecBole's cache of the same data",
    "save_dataloaders": "RecBole's cache of the same data",
    "dataloaders_save_path": "RecBole's cache of the same data",
    "gpu_id": "which device: recorded in the record (device, hardware); a run resumes on another one",
    "use_gpu": "which device (see gpu_id)",
    "device": "which device (see gpu_id)",
    "nproc": "how many processes train the run (--nproc), said in record['distributed']: taking the same steps, "
             "two processes give one's numbers to float rounding (tests/test_distributed.py); shuffled, they "
             "differ as another data order does",
    "world_size": "how many processes train the run (see nproc)",
    "local_rank": "the process's place in one distributed run, the same run in every process",
    "ip": "the rendezvous address of a distributed run",
    "port": "the rendezvous address of a distributed run",
    "offset": "the first rank of a machine's processes in a distributed run",
    "loss_decimal_place": "decimals of the logged loss",
}

# Keys of every run, whatever its model's YAML says.
ALWAYS = ("model", "dataset", "seed")

# The version of the code behind the LLM models' numbers (the frozen LM's path), in the run key of
# LLM models only (identity()["llm_code_version"]; absent from an ID model's key, so a change here
# keeps every ID model's key and its cached checkpoint, which bumping __version__ would not). Bump it
# when the LLM models' numbers change and the ID models' do not. History:
#   (absent) everything before;
#   2 (issue 39, part 3): under bf16 autocast on a CPU, for prompts up to 160 tokens with the prefix,
#     the frozen LM's attention runs through transformers' eager kernels, not SDPA's flash kernel
#     (lm_attention: auto): the same attention, other bf16 rounding, so those LLM runs differ in the
#     last bits. Holding the LM's matmul weights in the autocast dtype changes no bit, and float32 runs
#     (lm_autocast: none) keep theirs: their keys move all the same (and with the new key lm_attention),
#     a rerun gives the record it replaces.
LLM_CODE_VERSION = 2


def _argument_keys() -> frozenset:
    from recbole.utils import argument_list

    names = ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments")
    return frozenset(k for n in names for k in getattr(argument_list, n))


@functools.lru_cache(maxsize=1)
def model_owned_keys() -> frozenset:
    """Every key some model's YAML defines (this package's ``properties/model/`` and RecBole's
    ``properties/model/``): the hyperparameters that belong to one model or another."""
    import recbole

    from recbole_llm.config import _yaml_mapping, properties_dir

    folders = [properties_dir() / "model", Path(recbole.__file__).parent / "properties" / "model"]
    return frozenset(str(k) for folder in folders for f in sorted(folder.glob("*.yaml")) for k in _yaml_mapping(f))


def own_keys(config) -> frozenset:
    """The keys ``config``'s model reads: its defaults (RecBole's YAML and this package's
    ``properties/`` for that model and dataset: ``Config.internal_config_dict``) and RecBole's
    documented arguments."""
    return frozenset(config.internal_config_dict) | _argument_keys() | frozenset(ALWAYS)


def foreign(key: str, config) -> bool:
    """True when ``key`` is another model's hyperparameter (some model's YAML defines it, this
    model's defaults do not): this model cannot read it. A key that no YAML defines (a model of
    your own reading a key from its ``--config-files`` YAML) is never foreign: it stays in the key."""
    return key not in own_keys(config) and key in model_owned_keys()


def _values(config) -> dict:
    return getattr(config, "final_config_dict", config)


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, stamp: tuple) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path) -> str:
    """sha256 of a file's bytes. Cached within a process per path and stat stamp, the change time
    (``st_ctime_ns``) included: a rewrite that keeps the size and puts the modification time back
    still changes it, and nothing but the kernel sets it."""
    path = Path(path)
    stat = path.stat()
    stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    return _file_sha256(str(path.resolve()), stamp)


def tensors_sha256(state_dict: Mapping[str, Any]) -> str:
    """sha256 of a model's weights: each entry's name and value, in name order; a tensor or NumPy
    array by its dtype, shape and bytes, a nested mapping or sequence entry by entry, a number,
    string, bool or None by its type and ``repr``.

    What names a frozen ID model across machines: a checkpoint file's own sha256 also covers the
    config saved beside the weights, whose paths (``data_path``, ``checkpoint_dir``) differ between
    machines, so the same weights re-made elsewhere get another file digest but this one.
    Raises TypeError for any other value (its ``repr`` could abbreviate it).
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        digest.update(name.encode() + b"\0")
        _hash_value(digest, state_dict[name])
    return digest.hexdigest()


def _hash_value(digest, value) -> None:
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        flat = value.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{flat.dtype}{tuple(value.shape)}\0".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, np.ndarray):
        flat = np.ascontiguousarray(value)
        digest.update(f"array {flat.dtype.str} {flat.shape}\0".encode())
        digest.update(flat.tobytes())
    elif isinstance(value, Mapping):
        digest.update(f"map {len(value)}\0".encode())
        for key in sorted(value, key=str):
            digest.update(f"{type(key).__name__} {key!r}\0".encode())
            _hash_value(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"seq {len(value)}\0".encode())
        for item in value:
            _hash_value(digest, item)
    elif value is None or isinstance(value, (bool, int, float, str, bytes)):
        digest.update(f"{type(value).__name__} {value!r}\0".encode())
    else:
        raise TypeError(f"cannot hash a {type(value).__name__} among a model's weights")


def dataset_files(config) -> list[Path]:
    """The dataset's files a run may read: every ``<dataset>.*`` file in its folder
    (``config['data_path']``, which RecBole has joined with the dataset name), sorted. More than a
    run loads (e.g. a ``.user`` file it does not use) is safe: a change there retrains, it does
    not keep a stale result."""
    values = _values(config)
    folder = Path(values["data_path"])
    name = str(values["dataset"])
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.startswith(name + "."))


def data_fingerprint(config) -> str:
    """16 hex digits of sha256 over the names and contents of :func:`dataset_files`: a changed
    byte in any of them changes every key of runs on that dataset (sizes and times are not enough:
    a regenerated file of the same size would keep a stale result)."""
    digest = hashlib.sha256()
    for path in dataset_files(config):
        digest.update(path.name.encode("utf-8") + b"\0" + file_sha256(path).encode("ascii") + b"\0")
    return digest.hexdigest()[:16]


def identity(config) -> dict:
    """Everything :func:`run_key` hashes, as a dict (to show why two keys differ)."""
    from recbole_llm import __version__

    values = _values(config)
    own, owned = own_keys(config), model_owned_keys()
    items = {}
    for key, value in values.items():
        if key in EXCLUDED or (key not in own and key in owned):  # excluded, or foreign()
            continue
        if key == "id_model_checkpoint" and value:
            value = "sha256:" + file_sha256(value)  # the weights, wherever the file lies
        if key == "single_spec":  # RecBole's "not one process of a distributed run" (nproc): each of them
            value = True  # is keyed as the run, and every key made before nproc holds True
        items[key] = to_primitive(value)
    items["data_fingerprint"] = data_fingerprint(config)
    items["recbole_llm_version"] = __version__
    if is_llm_config(config):
        items["llm_code_version"] = LLM_CODE_VERSION
    return items


def is_llm_config(config) -> bool:
    """Whether ``config``'s model is an LLM recommender (:func:`recbole_llm.utils.is_llm_class`)."""
    return is_llm_class(getattr(config, "model_class", None))


def _hash(items: Mapping[str, Any], digits: int = 12) -> str:
    blob = json.dumps(items, sort_keys=True, default=repr)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:digits]


def run_key(config) -> str:
    """12 hex digits identifying the run of ``config``: the runner skips a run whose record has it,
    and an interrupted run resumes from the state saved under it."""
    return _hash(identity(config))


def id_cache_key(config) -> str:
    """The ID-model cache key of an ID model's ``config``: its :func:`run_key`, so that the cache
    entry of an ID model and the benchmark's run of it are one run."""
    return run_key(config)


def sweep_key(config, search: Mapping[str, Any]) -> str:
    """10 hex digits naming a sweep: the base config's :func:`run_key` (so the data, the version
    and every fixed value) and the search settings (space, search, scheduler, ...)."""
    return _hash({"base": run_key(config), "search": to_primitive(dict(search))}, digits=10)


def diff(a, b) -> dict:
    """``{key: (value in a, value in b)}`` for the identity items that differ between two configs."""
    ia, ib = identity(a), identity(b)
    return {k: (ia.get(k), ib.get(k)) for k in sorted(set(ia) | set(ib)) if ia.get(k) != ib.get(k)}


def key_scheme(record: Mapping[str, Any]) -> int:
    """The key scheme a record was made under: :data:`KEY_SCHEME`, or 1 for records made before
    the run key covered the data (their ``run_key`` can no longer match a new run's)."""
    return int(record.get("key_scheme", 1))
