"""Checkpoints that load with ``torch.load(weights_only=True)``.

RecBole 1.2.1 saves ``{"config": Config, ...}`` with ``pickle_protocol=4``; torch >= 2.6 loads
with ``weights_only=True`` by default and rejects both the pickled ``Config`` and protocol 4's
FRAME opcode, and an allow-list cannot fix the latter. Loading such a file means running
arbitrary pickled code, so this module

* writes checkpoints of tensors and plain Python types only (the config flattened to
  primitives, torch's default pickle protocol), atomically;
* loads with ``weights_only=True``; a file that needs full unpickling (plain RecBole) is
  loaded only when the caller passes ``trust=True`` (``trust_checkpoint: True`` in the config,
  ``--trust-checkpoint`` on the command line), and otherwise is refused with a clear error;
* tells a damaged file (empty, truncated, overwritten: :class:`DamagedCheckpoint`) from one that
  holds pickled objects *before* unpickling anything. ``torch.load`` cannot: an empty file is an
  ``EOFError``, a truncated one a ``RuntimeError`` from its zip reader, and random bytes fail the
  ``weights_only`` unpickler with the same error as a plain-RecBole checkpoint. ``torch.save``
  writes a zip archive whose entries carry CRC-32 checksums, so the archive is checked first.
"""

import enum
import logging
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from recbole_llm.errors import UserError
from recbole_llm.fsutil import atomic_path

FORMAT = "recbole_llm/1"


def to_primitive(value):
    """``value`` as nested dicts/lists of str, int, float, bool and None."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_primitive(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_primitive(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def config_to_dict(config):
    """A RecBole ``Config`` as a dict of primitives (what checkpoints and run records store)."""
    source = getattr(config, "final_config_dict", config)
    return {str(k): to_primitive(v) for k, v in source.items()}


def save_checkpoint(path, **state):
    """Write ``state`` (tensors and plain types) to ``path`` atomically."""
    path = Path(path)
    state = dict(state)
    state["format"] = FORMAT
    if "config" in state:
        state["config"] = config_to_dict(state["config"])
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


class DamagedCheckpoint(UserError):
    """A checkpoint file that is empty, truncated or otherwise not a complete ``torch.save`` file."""


# torch.save's format before torch 1.6 (not a zip archive): a pickled magic number first.
_LEGACY_HEAD = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def check_checkpoint_file(path):
    """Raise :class:`DamagedCheckpoint` unless ``path`` is a complete ``torch.save`` file: a zip
    archive whose every entry matches its CRC-32 (reads the file once, unpickles nothing), or the
    pre-1.6 format, recognised by its magic number."""
    path = Path(path)
    size = path.stat().st_size
    fix = "delete it and run again (a cached ID model is retrained by itself)"
    if size == 0:
        raise DamagedCheckpoint(f"checkpoint {path} is empty (0 bytes), not a PyTorch checkpoint: {fix}")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
            bad = f"unreadable archive: {err}"
        if bad is not None:
            raise DamagedCheckpoint(f"checkpoint {path} is damaged ({bad} fails its checksum): {fix}")
        return
    with open(path, "rb") as f:
        head = f.read(len(_LEGACY_HEAD))
    if head != _LEGACY_HEAD:
        raise DamagedCheckpoint(
            f"checkpoint {path} is truncated or damaged ({size:,} bytes that are not a complete PyTorch "
            f"checkpoint): {fix}"
        )


def load_checkpoint(path, map_location="cpu", trust=False):
    """Load a checkpoint safely; unpickle in full only when ``trust`` is true.

    Raises :class:`UserError` when ``path`` is missing, :class:`DamagedCheckpoint` when it is not a
    complete PyTorch checkpoint, and a :class:`UserError` naming ``--trust-checkpoint`` when it
    holds pickled Python objects and ``trust`` is false.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    check_checkpoint_file(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (EOFError, OSError) as err:
        raise DamagedCheckpoint(f"checkpoint {path} cannot be read ({type(err).__name__}: {err}): delete it and "
                                "run again (a cached ID model is retrained by itself)") from None
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as err:
        if not trust:
            raise UserError(
                f"checkpoint {path} holds pickled Python objects (a plain-RecBole checkpoint?) and "
                "loading it could run arbitrary code; if you trust the file, pass --trust-checkpoint "
                "(config: trust_checkpoint: True)"
            ) from None
        logging.getLogger(__name__).warning(
            "unpickling %s in full because trust_checkpoint is set (%s)", path, type(err).__name__
        )
        return torch.load(path, map_location=map_location, weights_only=False)


def checkpoint_config(checkpoint):
    """The config stored in a checkpoint, as a plain dict (plain-RecBole ``Config`` included)."""
    config = checkpoint.get("config", {})
    return config_to_dict(config) if not isinstance(config, dict) else config
