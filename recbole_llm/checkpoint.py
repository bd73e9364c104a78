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
import json
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
_SAFETENSORS_MAX_HEADER = 100_000_000  # the safetensors format's own limit on its JSON header

# Files that are sometimes passed for a checkpoint: their first bytes and what to call them.
_OTHER_FORMATS = (
    (b"version https://git-lfs", "a Git LFS pointer, not the file it points to: run 'git lfs pull'"),
    (b"\x1f\x8b", "a gzip-compressed file, not a PyTorch checkpoint: decompress it (gunzip) first"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (Keras/h5py), not a PyTorch checkpoint"),
    (b"\x93NUMPY", "a NumPy array file (.npy), not a PyTorch checkpoint"),
    (b"GGUF", "a GGUF model file (llama.cpp), not a PyTorch checkpoint"),
)


def _safetensors_size(path, size):
    """The size a safetensors file at ``path`` must have (8-byte little-endian header length, the
    JSON header, the tensors' bytes), or None when the file does not start like one."""
    with open(path, "rb") as f:
        head = f.read(9)
        if len(head) < 9 or head[8:9] != b"{":
            return None
        length = int.from_bytes(head[:8], "little")
        if length < 2 or length > _SAFETENSORS_MAX_HEADER:
            return None
        if 8 + length > size:
            return 8 + length  # the header itself is cut short
        try:
            header = json.loads(b"{" + f.read(length - 1))
        except ValueError:
            return None
    if not isinstance(header, dict):
        return None
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
            and isinstance(v.get("data_offsets"), list) and len(v["data_offsets"]) == 2]
    return 8 + length + max(ends, default=0)


def check_checkpoint_file(path):
    """Say what the file at ``path`` is, unpickling nothing: ``"torch"`` for a complete
    ``torch.save`` zip archive (every entry matches its CRC-32, and torch's ``data.pkl`` is there),
    ``"torch-legacy"`` for the pre-1.6 format (its magic number), ``"safetensors"`` for a complete
    safetensors file (its 8-byte little-endian header length, JSON header and tensor bytes).

    Raises :class:`DamagedCheckpoint` for an empty, truncated or overwritten one of these, and a
    :class:`UserError` saying what the file is when it is something else (a zip archive that is
    no PyTorch checkpoint, a pickle, a Git LFS pointer, ...).
    """
    path = Path(path)
    size = path.stat().st_size
    fix = "delete it and run again (a cached ID model is retrained by itself)"
    if size == 0:
        raise DamagedCheckpoint(f"checkpoint {path} is empty (0 bytes), not a PyTorch checkpoint: {fix}")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
            bad, names = f"unreadable archive: {err}", []
        if bad is not None:
            raise DamagedCheckpoint(f"checkpoint {path} is damaged ({bad} fails its checksum): {fix}")
        if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
            shown = ", ".join(names[:3]) + (f", ... ({len(names)} entries)" if len(names) > 3 else "")
            raise UserError(f"checkpoint {path} is a zip archive, not a PyTorch checkpoint (it holds "
                            f"{shown or 'nothing'}, and no data.pkl): pass the file torch.save wrote")
        return "torch"
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(_LEGACY_HEAD):
        return "torch-legacy"
    expected = _safetensors_size(path, size)
    if expected is not None:
        if size < expected:
            raise DamagedCheckpoint(f"checkpoint {path} is a truncated safetensors file ({size:,} of the {expected:,} "
                                    f"bytes its header describes): {fix}")
        return "safetensors"
    for magic, what in _OTHER_FORMATS:
        if head.startswith(magic):
            raise UserError(f"checkpoint {path} is {what}")
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") and not head.startswith(b"PK"):
        raise UserError(f"checkpoint {path} is a plain Python pickle (pickle.dump), not a PyTorch checkpoint: save the "
                        "model's weights with torch.save(model.state_dict(), path)")
    raise DamagedCheckpoint(
        f"checkpoint {path} is truncated or damaged ({size:,} bytes that are not a complete PyTorch "
        f"checkpoint): {fix}"
    )


def _is_state_dict(value):
    """True for a bare ``model.state_dict()``: a non-empty mapping of names to tensors."""
    return (isinstance(value, dict) and bool(value) and all(isinstance(k, str) for k in value)
            and all(isinstance(v, torch.Tensor) for v in value.values()))


def _as_checkpoint(value):
    """``value`` as this package's checkpoint layout: a bare state dict (``torch.save(
    model.state_dict())``) or a whole module (``torch.save(model)``, loaded with trust) becomes
    ``{"state_dict": ..., "config": {}}``; anything else is returned as it is."""
    if isinstance(value, torch.nn.Module):
        value = value.state_dict()
    if _is_state_dict(value):
        return {"state_dict": value, "config": {}}
    return value


def _load_safetensors(path, map_location):
    """A safetensors file's tensors as a state dict, on ``map_location`` (a device; else the CPU)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    device = str(map_location) if isinstance(map_location, (str, torch.device)) else "cpu"
    try:
        return load_file(path, device=device)
    except (SafetensorError, OSError, ValueError) as err:
        raise DamagedCheckpoint(f"checkpoint {path} is a safetensors file that cannot be read "
                                f"({' '.join(str(err).split())}): delete it and run again") from None


def load_checkpoint(path, map_location="cpu", trust=False):
    """Load a checkpoint safely; unpickle in full only when ``trust`` is true.

    Reads this package's checkpoints, RecBole's (with ``trust``), a bare state dict saved with
    ``torch.save(model.state_dict())`` and a safetensors file; the last two come back as
    ``{"state_dict": ..., "config": {}}`` (:func:`_as_checkpoint`), which the ID-model loader
    checks key by key and shape by shape. Raises :class:`UserError` when ``path`` is missing or is
    no checkpoint (:func:`check_checkpoint_file` says what it is), :class:`DamagedCheckpoint` when
    it is not a complete one, and a :class:`UserError` naming ``--trust-checkpoint`` when it holds
    pickled Python objects and ``trust`` is false.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    if check_checkpoint_file(path) == "safetensors":
        return {"state_dict": _load_safetensors(path, map_location), "config": {}}
    try:
        loaded = torch.load(path, map_location=map_location, weights_only=True)
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
        loaded = torch.load(path, map_location=map_location, weights_only=False)
    return _as_checkpoint(loaded)


def checkpoint_config(checkpoint):
    """The config stored in a checkpoint, as a plain dict (plain-RecBole ``Config`` included)."""
    config = checkpoint.get("config", {})
    return config_to_dict(config) if not isinstance(config, dict) else config
