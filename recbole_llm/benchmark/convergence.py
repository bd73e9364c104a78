"""Whether a row's numbers come from converged training, and if not, why.

A run is *converged* when early stopping ended it (not the epoch cap) and its best validation
epoch is not its last: validation had stopped improving for ``stopping_step`` evaluations. A
row (a label's newest record per seed) is converged when every seed's run is. Every table marks
the other rows with :data:`MARK` and a footnote giving the causes; comparisons that pick a
winner (the ``Improv.%`` row, the best baseline of the paired tests) use converged rows only.

Records written from the ``stop_reason`` change on carry ``stop_reason`` (``early_stopping`` or
``epoch_cap``) and per-epoch ``lr_end``; for older records both are derived from what they do
carry: ``history``, ``epochs_run``, ``best_epoch``, ``protocol`` and ``config``. RecBole stops a
run once ``cur_step > stopping_step`` evaluations passed without a gain, so a run that ended
before its cap, or whose best epoch lies more than ``stopping_step`` epochs before its last, was
stopped early.
"""

import functools

import yaml

from recbole_llm.benchmark.records import is_llm

MARK = "†"

EPOCH_CAP = "epoch cap reached"
LR_ANNEALED = "learning rate annealed to 0 while validation still rose"
BEST_IS_LAST = "best epoch = last epoch"
NO_HISTORY = "best epoch unknown (no per-epoch history)"


@functools.cache
def budget_epochs(budget, llm=True):
    """``epochs`` of budget ``budget`` for an LLM recommender's run (``llm``) or an ID model's (its
    ``properties/budget/id_models/<budget>.yaml`` applied last, as :func:`recbole_llm.config.budget_files`
    applies it), or None when there is no such budget or it sets no cap."""
    from recbole_llm.config import budget_files
    from recbole_llm.errors import UserError

    try:
        files = budget_files(budget, llm=llm)
    except UserError:
        return None
    value = None
    for path in files:
        with open(path, encoding="utf-8") as f:
            value = (yaml.safe_load(f) or {}).get("epochs", value)
    return int(value) if value is not None else None


def record_budget_epochs(record):
    """The epoch cap of the budget ``record`` was trained under, for its kind of model."""
    return budget_epochs(record.get("budget", "full"), llm=is_llm([record]))


def _valid_key(record):
    return record["protocol"]["valid_metric"].lower()


def valid_curve(record):
    """``[(epoch, validation metric)]`` from the record's per-epoch history."""
    key = _valid_key(record)
    return [(e["epoch"], e["valid"][key]) for e in record.get("history") or [] if key in e.get("valid", {})]


def last_epoch(record):
    history = record.get("history") or []
    if history:
        return history[-1]["epoch"]
    return record["epochs_run"] - 1 if record.get("epochs_run") else None


def best_epoch(record):
    """The epoch whose model was tested: the *last* epoch of the history with the best validation
    value (RecBole's ``early_stopping`` takes a value equal to the best, as rounded to
    ``metric_decimal_place``, as a new best, and saves that epoch's model). The history decides;
    the record's ``best_epoch`` only where there is none (older records stored the *first*
    such epoch, wrong on a tie)."""
    curve = valid_curve(record)
    if not curve:
        return record.get("best_epoch")
    bigger = (record.get("config") or {}).get("valid_metric_bigger", True)
    best = (max if bigger else min)(v for _, v in curve)
    return [e for e, v in curve if v == best][-1]


def stop_reason(record):
    """``early_stopping`` or ``epoch_cap``: the record's own, else derived (module docstring)."""
    if record.get("stop_reason"):
        return record["stop_reason"]
    protocol = record["protocol"]
    if record["epochs_run"] < protocol["epochs_max"]:
        return "early_stopping"
    best, last = best_epoch(record), last_epoch(record)
    if best is not None and last is not None and last - best > protocol["stopping_step"]:
        return "early_stopping"
    return "epoch_cap"


def _lr_at_end(record):
    """Learning rate at the end of the last epoch: the history's ``lr_end``, else 0 where a linear
    schedule (it decays to 0 over ``epochs``) ran to its last epoch, else None (not known)."""
    history = record.get("history") or []
    if history and history[-1].get("lr_end") is not None:
        return float(history[-1]["lr_end"])
    schedule = str((record.get("config") or {}).get("lr_schedule") or "constant").lower()
    if schedule == "linear" and record["epochs_run"] >= record["protocol"]["epochs_max"]:
        return 0.0
    return None


def run_causes(record):
    """Why one run is not converged: a list of short texts, empty when it is converged."""
    causes = []
    if stop_reason(record) != "early_stopping":
        causes.append(EPOCH_CAP)
    budget = record.get("budget", "full")
    cap, full = record["protocol"]["epochs_max"], record_budget_epochs(record)
    if full is not None and cap < full:
        causes.append(f"--epochs={cap} below the {budget} budget's {full}")
    curve = valid_curve(record)
    lr = _lr_at_end(record)
    if lr is not None and lr <= 0.0 and len(curve) >= 2 and curve[-1][1] > curve[-2][1]:
        causes.append(LR_ANNEALED)
    best, last = best_epoch(record), last_epoch(record)
    if best is None or last is None:
        causes.append(NO_HISTORY)
    elif best == last:
        causes.append(BEST_IS_LAST)
    return causes


def row_causes(records):
    """Why a row (its records, one per seed) is not converged: each cause once, with the number
    of seeds it applies to when the row has more than one; empty when every seed converged."""
    counts = {}
    for rec in records:
        for cause in run_causes(rec):
            counts[cause] = counts.get(cause, 0) + 1
    n = len(records)
    return [cause if n == 1 else f"{cause} ({k} of {n} seeds)" for cause, k in counts.items()]


def unconverged(grouped):
    """``{label: [causes]}`` of the rows of ``grouped`` (``{label: records}``) that are not converged."""
    out = {}
    for label, recs in grouped.items():
        causes = row_causes(recs)
        if causes:
            out[label] = causes
    return out


def marked(label, flag, latex=False):
    """``label`` followed by :data:`MARK` when ``flag`` (the row is not converged)."""
    if not flag:
        return label
    return f"{label}$^\\dagger$" if latex else f"{label} {MARK}"


def footnote(causes_by_label, latex=False, uses=""):
    """One paragraph naming each marked row and its causes ('' when every row is converged);
    ``uses``: what the table computes from converged rows only, said in the same sentence."""
    if not causes_by_label:
        return ""
    mark = "$^\\dagger$" if latex else MARK
    rows = "; ".join(f"{label}: {', '.join(causes)}" for label, causes in causes_by_label.items())
    text = (f"{mark} not converged (a row is converged when early stopping ended every seed's run and its best "
            f"validation epoch was not its last{'; ' + uses if uses else ''}): {rows}.")
    if latex:
        text = text.replace("%", r"\%").replace("_", r"\_")
    return text
