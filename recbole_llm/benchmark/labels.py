"""Row labels: what a run is called in the tables when ``--label`` does not name it, and how a
label is written into a Markdown or LaTeX table.

A label names a configuration: the tables average the records of one label as seeds of one row.
So a run without ``--label`` must not take its bare model name when its config differs from the
model's defaults in a way that makes it another row (another LM, ID base, tuning data, prompt,
prefix length, ablation): :func:`default_label` names exactly those differences, from the run's
config against the model's YAML defaults (``properties/``: overall, dataset, the model's classes
from its base class up, and the budget), in the words of the papers and of the labels the
results pages already use::

    IDLEAdapter                                  the defaults
    IDLEAdapter (lm=SmolLM2-135M-Instruct)       another frozen LM
    RARec (SASRec base, efficient 3k)            another ID model, RA-Rec's efficient 3,000 samples
    RARec w/o IDRepresentation (efficient 3k)    an ablation (RA-Rec Table 4), on that sample
    IDLEAdapter (prefix_len=1)                   any other key, as key=value

Keys compared (:func:`identifying_keys`): the keys of the model's own YAML files (its
hyperparameters: ``properties/model/<Class>.yaml`` of every class of the model, RecBole's
``properties/model/<Model>.yaml``) and the protocol's training keys (:data:`TRAINING_KEYS`),
minus those that name no row (:func:`not_identifying`: where the run's files lie, its budget,
logging); mapping-valued keys
(``train_neg_sample_args``, ``id_model_config``) are not compared, since RecBole fills them in
and a record holds the filled form. :func:`variant_keys` are those that make a row a *variant*
(anything but the LM and the ID base): the results pages put such rows on the variant pages, not
in the headline table.

:func:`escape_markdown` and :func:`escape_latex` write any label into a table cell: a ``|`` would
end a Markdown cell, a ``&`` a LaTeX one, and ``%`` would comment out the rest of a LaTeX line
(by hand: tabulate writes a cell as given).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

# Keys the label never names: those no run key covers (recbole_llm.identity.EXCLUDED: where files lie,
# logging, devices), the protocol's budget (a lower epoch cap is the row "<label> (--epochs=N)",
# records.separate_epoch_caps; a budget writes to its own results folder), an ID checkpoint's path
# (the ID base is named by id_model) and a measurement after training that changes no metric.
PROTOCOL_KEYS = frozenset({"epochs", "stopping_step", "budget", "id_model_checkpoint", "measure_overhead_batches"})


def not_identifying():
    """:data:`PROTOCOL_KEYS` and the keys no run key covers (:data:`recbole_llm.identity.EXCLUDED`)."""
    from recbole_llm.identity import EXCLUDED

    return PROTOCOL_KEYS | frozenset(EXCLUDED)


# The row's LM and ID base: headline rows may differ in these (the tables show them as columns).
BASE_KEYS = ("id_model", "id_model_config", "lm_name")

# The papers' ablation names (IDLE-Adapter Table 4: a switch set to False; RA-Rec Table 4: `ablation`).
SWITCH_ABLATIONS = {"layerwise": "w/o LayerWise", "refinement": "w/o Refinement", "distribution": "w/o Distribution"}
RAREC_ABLATIONS = {"no_id": "w/o IDRepresentation", "no_reparam": "w/o Reparameterization",
                   "no_instruction": "w/o ConInstruction", "inputs": "Inputs", "project_inputs": "ProjectInputs"}

# Training keys every model reads from the protocol's YAML (overall.yaml), not its own: a label names
# them too (a baseline at another learning rate is another row), where the YAML gives a default.
TRAINING_KEYS = ("learning_rate", "learner", "weight_decay", "train_batch_size")

# The order in which the label names what differs; any other key follows, in its YAML order.
ORDER = ("id_model", "id_model_config", "data_strategy", "data_size", "lm_name")


def _get(config, key, default=None):
    """A value of a built Config or of a record's config dict (a record made before a key existed
    lacks it: ``default`` then)."""
    values = getattr(config, "final_config_dict", config)
    return values.get(key, default) if isinstance(values, dict) else default


def _model_class(model):
    try:
        from recbole_llm.utils import get_model

        return get_model(model)
    except Exception:  # noqa: BLE001 (a record of a model this checkout lacks: its name alone)
        return None


def default_files(model, dataset, budget="full"):
    """``(files of the model's defaults, files of the model's own hyperparameters)``: the package's
    YAML files in load order (:func:`recbole_llm.config.default_config_files`, RecBole's YAML of
    the model, the budget's files) and, of those, the ones that define the model's own keys."""
    import recbole

    from recbole_llm.config import budget_files, default_config_files
    from recbole_llm.errors import UserError

    cls = _model_class(model)
    files = [Path(f) for f in default_config_files(model, dataset, cls)]
    recbole_yaml = Path(recbole.__file__).parent / "properties" / "model" / f"{model}.yaml"
    own = [f for f in files if f.parent.name == "model"] + ([recbole_yaml] if recbole_yaml.is_file() else [])
    llm = cls is not None and any(c.__name__ == "LLMSequentialRecommender" for c in cls.__mro__)
    try:
        budget_yamls = budget_files(str(budget or "full"), llm=llm)
    except UserError:  # a record of a budget this checkout lacks
        budget_yamls = []
    return [recbole_yaml] * recbole_yaml.is_file() + files + list(budget_yamls), own


def model_defaults(model, dataset, budget="full"):
    """``(defaults, keys)``: the values the model's YAML files give (RecBole's, the package's, the
    budget's, later files winning) and its :func:`identifying_keys` in YAML order."""
    from recbole_llm.config import _yaml_mapping

    files, own = default_files(model, dataset, budget)
    values = {}
    for f in files:
        values.update(_yaml_mapping(f))
    keys = []
    for f in own:
        keys += [str(k) for k in _yaml_mapping(f) if str(k) not in keys]
    keys += [k for k in TRAINING_KEYS if k not in keys and values.get(k) is not None]
    return values, identifying_keys(keys, values)


def identifying_keys(keys, defaults):
    """The keys among ``keys`` a label may name: not :func:`not_identifying`, not mapping-valued."""
    skip = not_identifying()
    return [k for k in keys if k not in skip and not isinstance(defaults.get(k), dict)]


def _same(a, b):
    """Config values equal as the records store them (``none``/``None``/``~`` alike; 5e-4 == 0.0005)."""
    def norm(v):
        if isinstance(v, str) and v.strip().lower() in ("none", "~", "null", ""):
            return None
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                return v
        return json.dumps(v, sort_keys=True, default=str)

    return norm(a) == norm(b)


def differing_keys(config, model=None, dataset=None, budget=None):
    """``{key: value}`` of the run's identifying keys whose value differs from the model's
    defaults, in label order (:data:`ORDER`, then YAML order). ``config``: a built
    :class:`~recbole_llm.config.Config` or a record's ``config`` mapping; ``model``,
    ``dataset``, ``budget`` default to its own. ``data_size`` counts only with a sample
    strategy (``data_strategy: all`` ignores it)."""
    model = model or _get(config, "model")
    dataset = dataset or _get(config, "dataset")
    budget = budget or _get(config, "budget", "full")
    defaults, keys = model_defaults(model, dataset, budget)
    out = {}
    for key in sorted(keys, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER)):
        if key not in config:
            continue
        value = _get(config, key)
        if isinstance(value, dict):  # RecBole fills a mapping in (train_neg_sample_args): not a label's
            continue
        if not _same(value, defaults.get(key)):
            out[key] = value
    if str(_get(config, "data_strategy", "all")) == "all":
        out.pop("data_size", None)
    elif "data_strategy" in out or "data_size" in out:  # a sample is named by both: "efficient 3k"
        out["data_strategy"] = _get(config, "data_strategy")
        out["data_size"] = _get(config, "data_size")
    tuned = id_base_changes(config, dataset, budget)
    if tuned:  # the ID base trained at another point than its defaults (a tuned base): part of the row
        out["id_model_config"] = tuned
    return {k: out[k] for k in sorted(out, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER))}


def id_base_changes(config, dataset=None, budget=None):
    """``{key: value}`` of the run's ``id_model_config`` that differ from its ID model's defaults
    (values equal to them name nothing): ``{"learning_rate": 0.003}`` for the tuned ComiRec."""
    extra = _get(config, "id_model_config") or {}
    if not isinstance(extra, dict) or not extra:
        return {}
    dataset = dataset or _get(config, "dataset")
    budget = budget or _get(config, "budget", "full")
    defaults, _ = model_defaults(str(_get(config, "id_model", "ComiRec")), dataset, budget)
    # a key the ID model has no default for is not one it reads (another model's sizes): it names nothing
    return {str(k): v for k, v in extra.items() if k in defaults and not _same(v, defaults[k])}


def variant_keys(config, model=None, dataset=None, budget=None):
    """The :func:`differing_keys` that make a row a variant of its model: every one but the LM and the ID base."""
    return {k: v for k, v in differing_keys(config, model, dataset, budget).items() if k not in BASE_KEYS}


def short_lm_name(name):
    """``sentence-transformers/all-MiniLM-L6-v2`` -> ``all-MiniLM-L6-v2``; a folder or ``.gguf``
    file -> its last part without the suffix."""
    text = str(name or "").rstrip("/\\")
    if not text:
        return ""
    last = re.split(r"[/\\]", text)[-1]
    return last[:-5] if last.lower().endswith(".gguf") else last


def _size(n):
    """3000 -> 3k, 20000 -> 20k, 2500 -> 2500, 0.25 -> 25%."""
    try:
        value = float(n)
    except (TypeError, ValueError):
        return str(n)
    if 0 < value < 1:
        return f"{value:.0%}"
    value = int(value) if value == int(value) else value
    if isinstance(value, int) and value >= 1000 and value % 1000 == 0:
        return f"{value // 1000}k"
    return str(value)


def label_from(model, differing):
    """The label of ``model`` with ``differing`` (``{key: value}``, in order): ablations after the
    name, the rest in parentheses."""
    words, parts = [], []
    for key, value in differing.items():
        if key in SWITCH_ABLATIONS and _same(value, False):
            words.append(SWITCH_ABLATIONS[key])
        elif key == "ablation" and str(value) in RAREC_ABLATIONS:
            words.append(RAREC_ABLATIONS[str(value)])
        elif key == "id_model":
            parts.append(f"{value} base")
        elif key == "id_model_config":
            base = parts.pop() if parts and parts[-1].endswith(" base") else f"{differing.get('id_model', 'ComiRec')} base"
            parts.append(base + " with " + " ".join(f"{k}={v}" for k, v in value.items()))
        elif key == "data_strategy":
            size = differing.get("data_size")
            parts.append(f"{value} {_size(size)}" if size not in (None, "none", "~") else str(value))
        elif key == "data_size":
            continue  # with data_strategy
        elif key == "lm_name":
            parts.append(f"lm={short_lm_name(value)}")
        else:
            parts.append(f"{key}={value}")
    text = " ".join([str(model), *words])
    return f"{text} ({', '.join(parts)})" if parts else text


def default_label(config, base_label=None):
    """The row label of a run given no ``--label``: its model, and what of its config differs from
    the model's defaults in an identifying key (:func:`differing_keys`), e.g.
    ``IDLEAdapter (lm=SmolLM2-135M-Instruct)``, ``RARec (SASRec base, efficient 3k)``,
    ``IDLEAdapter w/o Distribution``, ``IDLEAdapter (ComiRec base with learning_rate=0.003)``.
    ``config``: the run's built Config (or a record's ``config``). ``base_label``: the row its ID
    base is stored under, where that is not the ID model's name (``ComiRec-tuned``): the base is
    then named by it, ``IDLEAdapter (ComiRec-tuned base)``."""
    model = _get(config, "model")
    differing = differing_keys(config)
    id_model = str(_get(config, "id_model", "ComiRec"))
    if base_label and base_label != id_model:
        differing.pop("id_model_config", None)
        differing = {"id_model": base_label, **{k: v for k, v in differing.items() if k != "id_model"}}
    return label_from(model, differing)


def record_config(record):
    """A record's config with its model, dataset and budget (records made before may lack them in it)."""
    config = dict(record.get("config") or {})
    config.setdefault("model", record.get("model"))
    config.setdefault("dataset", record.get("dataset"))
    config.setdefault("budget", record.get("budget", "full"))
    return config


def _llm_value(records, config_key, parameter_key):
    """The first LLM record's config ``config_key``, else its parameter count's ``parameter_key``
    (records made before the config kept it); '' for an ID model's row."""
    for r in records:
        if not (r.get("parameters") or {}).get("lm"):
            continue
        name = (r.get("config") or {}).get(config_key) or (r.get("parameters") or {}).get(parameter_key)
        if name:
            return str(name)
    return ""


def row_lm(records):
    """A row's frozen LM, short name ('' for an ID model)."""
    name = _llm_value(records, "lm_name", "lm_name")
    return short_lm_name(name) if name else ""


def row_id_base(records):
    """A row's frozen ID model ('' for an ID model)."""
    return _llm_value(records, "id_model", "id_model_name")


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape_markdown(text):
    """``text`` in a GitHub Markdown table cell: ``|`` would end the cell (GitHub reads ``\\|`` as
    the character, even inside code spans)."""
    return str(text).replace("|", r"\|")


def escape_latex(text):
    """``text`` as literal LaTeX: ``& % $ # _ { } ~ ^ \\`` escaped (``&`` ends a cell, ``%`` comments out the line)."""
    return "".join(_LATEX.get(c, c) for c in str(text))
