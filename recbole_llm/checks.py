"""Value checks declared beside the keys: one helper for every key's range and choices.

Each default in ``properties/`` carries its type in its comment, ``# (int) ...``; a key with a
range or a set of choices says so there too, and nowhere else::

    prefix_len: 2        # (int, >= 1) L', virtual tokens per layer
    temperature: 0.5     # (float, > 0) tau of the InfoNCE alignment
    missing_text_max_share: 0.05  # (float, in [0, 1]) ...
    lm_pooling: auto     # (str, one of: auto, mean, last) ...

:func:`declared_rules` reads those declarations from the YAML files that apply to a run, and
:func:`check_config_values` checks the values in force against them before anything is built, with
one :class:`UserError` line naming the key, its value, where it came from and the rule. Beside the
declared rules, every number must be finite and fit in 64 bits (YAML reads ``1e400`` as ``inf``
and keeps any integer: torch fails deep inside with an overflow), and a representation or batch
size (``*_size``, ``n_layers``, ``n_heads``, ``*_len``) must lie in [1, 2^20]: a larger one asks for
more memory than any machine this runs on has, and would fail after the data loaded.

Written by hand because neither RecBole (its YAML comments are free text) nor a schema library
(the rules would then live apart from the defaults they describe) reads rules beside the keys.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

from recbole_llm.errors import UserError

_DECL = re.compile(r"#\s*\((?P<type>[a-z|]+)\s*(?:,\s*(?P<rule>in\s*[\[(][^\])]*[\])]|[^)]*))?\)")
_KEY = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*:")
_COMPARE = re.compile(r"^(?P<op>>=|<=|>|<)\s*(?P<bound>[-+0-9.eE]+)$")
_INTERVAL = re.compile(r"^in\s*(?P<lo_b>[\[(])\s*(?P<lo>[-+0-9.eE]+)\s*,\s*(?P<hi>[-+0-9.eE]+|inf)\s*(?P<hi_b>[\])])$")
_ONE_OF = re.compile(r"^one of:?\s*(?P<choices>.+)$")
INT64 = 2**63 - 1
SIZE_MAX = 2**20
_SIZE_KEY = re.compile(r"(_size|_len|_length|^n_layers|^n_heads|^num_layers|^num_heads)$")
_NOT_SIZES = frozenset({"train_batch_size", "eval_batch_size"})  # sizes too, but of batches: [1, 2^24]
_NOT_A_SIZE = frozenset({"data_size"})  # a sample count or a fraction (its own rules: recbole_llm.data.tuning)


class Rule:
    """One declared rule: a comparison, an interval or a set of choices, with its text."""

    def __init__(self, text):
        self.text = " ".join(text.split())
        self.check = self._parse(self.text)

    def _parse(self, text):
        if m := _COMPARE.match(text):
            bound, op = float(m["bound"]), m["op"]
            return {">=": lambda v: v >= bound, ">": lambda v: v > bound, "<=": lambda v: v <= bound,
                    "<": lambda v: v < bound}[op]
        if m := _INTERVAL.match(text):
            lo, hi = float(m["lo"]), float(m["hi"])
            lo_ok = (lambda v: v >= lo) if m["lo_b"] == "[" else (lambda v: v > lo)
            hi_ok = (lambda v: v <= hi) if m["hi_b"] == "]" else (lambda v: v < hi)
            return lambda v: lo_ok(v) and hi_ok(v)
        if m := _ONE_OF.match(text):
            choices = {c.strip().lower() for c in m["choices"].split(",")}
            return lambda v: str("none" if v is None else v).strip().lower() in choices
        raise ValueError(f"unreadable rule '{text}'")

    def numeric(self):
        return not self.text.startswith("one of")


@functools.lru_cache(maxsize=None)
def _rules_in(path, mtime_ns):
    rules = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        key, decl = _KEY.match(line), _DECL.search(line)
        if key and decl:
            rules[key["key"]] = (decl["type"], Rule(decl["rule"]) if decl["rule"] else None)
    return rules


def declared_rules(files):
    """``{key: (type, Rule or None)}`` declared in ``files`` (later files win)."""
    out = {}
    for f in files:
        path = Path(f)
        if path.is_file():
            out.update(_rules_in(str(path.resolve()), path.stat().st_mtime_ns))
    return out


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(value):
    """Every number inside ``value`` (lists and mappings walked)."""
    if _is_number(value):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)


def problem(key, value, declared=None):
    """What is wrong with ``value`` for ``key`` (a phrase), or None. ``declared``: the key's
    ``(type, Rule or None)`` from :func:`declared_rules`."""
    for number in _numbers(value):
        if isinstance(number, float) and not math.isfinite(number):
            return "must be a finite number"
        if isinstance(number, int) and abs(number) > INT64:
            return "is beyond a 64-bit integer"
    if declared is not None and declared[1] is not None and value is not None:
        kind, rule = declared
        if rule.numeric() and not _is_number(value):
            return f"must be a number ({kind}, {rule.text})"
        if not rule.check(value):
            return f"must be {rule.text}" if rule.numeric() else f"must be {rule.text}"
    if _is_number(value) and isinstance(value, int) and _SIZE_KEY.search(key) and key not in _NOT_A_SIZE:
        top = 2**24 if key in _NOT_SIZES else SIZE_MAX
        if not 1 <= value <= top:
            return f"must be an integer in [1, {top:,}] (a size; a larger one would not fit in memory)"
    if key in _NOT_SIZES and isinstance(value, int) and not isinstance(value, bool) and not 1 <= value <= 2**24:
        return f"must be an integer in [1, {2**24:,}]"
    return None


def check_config_values(config, files, source_of):
    """Raise :class:`UserError` for the first value of ``config`` (a RecBole Config or dict) that
    breaks its declared rule in ``files`` or the generic rules (module docstring); ``source_of(key)``
    says where a value came from."""
    values = getattr(config, "final_config_dict", config)
    rules = declared_rules(files)
    for key in sorted(values):
        found = problem(key, values[key], rules.get(key))
        if found:
            raise UserError(f"config key {key} = {values[key]!r} (from {source_of(key)}) {found}")
