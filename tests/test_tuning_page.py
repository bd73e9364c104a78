"""The tuning page (``tuning.md``/``tuning.csv``): each ID model's default row beside its tuned row."""

import json

import numpy as np
from scipy import stats as sps

from recbole_llm.benchmark import per_user, stats, tuning
from recbole_llm.benchmark.page import write_results_page

USERS = [str(i) for i in range(200)]
METRICS = ("hit@10", "ndcg@10")
_RNG = np.random.default_rng(7)
LENGTHS = _RNG.integers(1, 80, 200).tolist()
WEAK = _RNG.integers(5, 30, 200)  # SASRec at its defaults
STRONG = _RNG.integers(1, 8, 200)  # SASRec tuned: a clear gain
GRU = _RNG.integers(3, 20, 200)
GRU_TUNED = np.maximum(1, GRU + _RNG.integers(-1, 2, 200))  # about the same


def _record(model, label, seed, ranks, valid=(0.1, 0.2, 0.15), config=None, tune=None):
    """A converged run by default (early stopping after 3 epochs, best validation before the last),
    with per-user ranks so that the paired tests run (as ``tests/test_report.py``'s)."""
    values = {m: float(per_user.metric_values(ranks, m).mean()) for m in METRICS}
    rec = {
        "model": model, "label": label, "dataset": "toy", "seed": seed, "test": values, "budget": "full",
        "valid": {"ndcg@10": max(valid)}, "epochs_run": len(valid), "commit": "abc",
        "protocol": {"split": "LS", "valid_metric": "NDCG@10", "stopping_step": 2,
                     "epochs_max": 50 if model == "IDLEAdapter" else 500},
        "history": [{"epoch": i, "valid": {"ndcg@10": v}, "train_samples": 100} for i, v in enumerate(valid)],
        "dataset_stats": {"users": len(USERS), "items": 50, "interactions": 500, "train_samples": 100},
        "cost": {"wall_time_s": 1.0, "train_time_per_epoch_s": 0.5, "train_samples_per_s": 200.0,
                 "valid_time_per_epoch_s": 0.1, "test_time_s": 0.1, "peak_rss_mb": 100.0},
        "parameters": {"total": 1000, "trainable": 1000},
        "per_user": {"split": "test", "users": USERS, "rank": [int(x) for x in ranks], "targets": [1] * len(USERS),
                     "history_length": LENGTHS, "max_k": 100},
        "finished_at": f"2026-01-0{seed}",
    }
    if config is not None:
        rec["config"] = dict(config)
    if tune is not None:
        rec["tune"] = tune
    if model == "IDLEAdapter":  # an LLM row: its records count the frozen LM
        rec["parameters"].update({"lm": 5000, "id_model": 300, "id_model_name": "SASRec", "total": 6000,
                                  "trainable": 900})
    return rec


def _tag(experiment, params, trial="t_00001"):
    return {"experiment": experiment, "trial": trial, "params": params, "valid_in_sweep": 0.2,
            "valid_metric": "NDCG@10"}


SASREC_DEFAULT = {"learning_rate": 0.001, "hidden_size": 64, "hidden_dropout_prob": 0.5}
SASREC_BEST = {"learning_rate": 0.003, "hidden_size": 64}
GRU_DEFAULT = {"learning_rate": 0.001, "hidden_size": 128}
GRU_BEST = {"learning_rate": 0.001, "hidden_size": 64}


def _records(gru_valid=(0.1, 0.2, 0.15)):
    """SASRec and GRU4Rec at their defaults and tuned, FPMC at its defaults only, an LLM row; 3 seeds."""
    out = []
    for seed in (1, 2, 3):
        out += [
            _record("SASRec", "SASRec", seed, WEAK, config=SASREC_DEFAULT),
            _record("GRU4Rec", "GRU4Rec", seed, GRU, valid=gru_valid, config=GRU_DEFAULT),
            _record("FPMC", "FPMC", seed, WEAK + 1),
            _record("SASRec", "SASRec-tuned", seed, STRONG, valid=(0.1, 0.3, 0.2),
                    config={**SASREC_DEFAULT, **SASREC_BEST}, tune=_tag("SASRec-abc", SASREC_BEST)),
            _record("GRU4Rec", "GRU4Rec-tuned", seed, GRU_TUNED, config={**GRU_DEFAULT, **GRU_BEST},
                    tune=_tag("GRU4Rec-def", GRU_BEST)),
            _record("IDLEAdapter", "IDLEAdapter", seed, STRONG),
        ]
    return out


def _sweep(out, name, experiment, statuses, keys=("learning_rate", "hidden_size")):
    """A ``tune/<name>/sweep_record.json`` (the fields the page reads) with one trial per status, best first."""
    trials = [{"trial": f"t_{i:05d}", "status": s, "metric": (0.2 - i / 100) if s != "error" else float("nan"),
               "error": "CUDA OOM" if s == "error" else "", **{k: 1 for k in keys}}
              for i, s in enumerate(sorted(statuses, key=lambda s: s == "error"), start=1)]
    rec = {"format": 1, "model": name, "dataset": "toy", "name": None, "planned": len(statuses),
           "experiment_path": f"{{saved}}/ray/toy/{experiment}", "config": {"seed": 1, "valid_metric": "NDCG@10"},
           "space": [{"key": k, "kind": "grid", "values": [1, 2]} for k in keys], "trials": trials}
    folder = out / "tune" / name
    folder.mkdir(parents=True)
    (folder / "sweep_record.json").write_text(json.dumps(rec), encoding="utf-8")


def _line(text, model):
    return next(line for line in text.splitlines() if line.startswith(f"| {model} "))


def _cells(text, model):
    """The cells of ``model``'s line, stripped of tabulate's padding."""
    return [c.strip() for c in _line(text, model).strip().strip("|").split("|")]


def _per_user(ranks):
    return per_user.metric_values(np.asarray(ranks), "ndcg@10")


def test_a_tuned_model_gets_its_difference_and_holm_p_beside_its_default(tmp_path):
    out = tmp_path / "toy"
    _sweep(out, "SASRec", "SASRec-abc", ["completed"] * 12 + ["stopped (ASHA)"] * 4)
    command = "python run_benchmark.py --dataset=toy --budget=full --tables-only"
    comparison = write_results_page(out, "toy", _records(), METRICS, command=command)
    text = (out / "tuning.md").read_text(encoding="utf-8")

    # the paired t-test over users of tuned against default, Holm over the page's two tests (SASRec, GRU4Rec)
    p_sas = sps.ttest_rel(_per_user(STRONG), _per_user(WEAK)).pvalue
    p_gru = sps.ttest_rel(_per_user(GRU_TUNED), _per_user(GRU)).pvalue
    low, high = sorted([p_sas, p_gru])
    holm = {low: min(1.0, 2 * low), high: min(1.0, max(2 * low, high))}
    diff = 100 * (_per_user(STRONG).mean() / _per_user(WEAK).mean() - 1)
    gru_diff = 100 * (_per_user(GRU_TUNED).mean() / _per_user(GRU).mean() - 1)
    p_text = stats.format_p(p_sas)
    assert _cells(text, "SASRec") == [
        "SASRec", "SASRec (1, 2, 3)", "0.2000", f"{_per_user(WEAK).mean():.4f} ± 0.0000",
        "SASRec-tuned (1, 2, 3)", "0.3000 (+50.0%)", f"{_per_user(STRONG).mean():.4f} ± 0.0000",
        f"+{diff:.1f}%, p{p_text if p_text.startswith('<') else '=' + p_text} (Holm {stats.format_p(holm[p_sas])})",
        "2.0e-4 (seed bootstrap)", "a significant gain",
        "learning_rate 0.001 → 0.003",  # hidden_size is the default's: not a change
        "[SASRec](tune/SASRec/): 16 of 16 finished"]
    gru = _cells(text, "GRU4Rec")
    assert gru[7:] == [f"{gru_diff:+.1f}%, p={stats.format_p(p_gru)} (Holm {stats.format_p(holm[p_gru])})", gru[8],
                       "not distinguishable", "hidden_size 128 → 64", "n/a (no sweep record)"]  # no tune/GRU4Rec
    assert gru[8].endswith(" (seed bootstrap)") and float(gru[8].split()[0]) > 0.05
    assert "Holm: p adjusted for the 2 tests of this page" in text
    assert "chosen by a sweep on validation NDCG@10 only (sweep seed 1)" in text
    assert text.rstrip().endswith(f"Regenerate: `{command}`")

    csv = (out / "tuning.csv").read_text(encoding="utf-8").splitlines()
    row = next(line for line in csv if line.startswith("SASRec,tested,SASRec,"))
    header = csv[0].split(",")
    values = dict(zip(header, row.replace('"1,2,3"', "1;2;3").split(",")))
    assert abs(float(values["p_holm"]) - holm[p_sas]) <= 1e-6 * max(holm[p_sas], 1e-300)
    assert abs(float(values["diff_pct"]) - diff) < 1e-5
    # the comparison page links it
    assert "Was each baseline tuned, and what did tuning change: [tuning.md](tuning.md)." in comparison


def test_a_sweep_with_failed_trials_says_so_and_an_unmatched_sweep_is_na(tmp_path):
    out = tmp_path / "toy"
    _sweep(out, "GRU4Rec", "GRU4Rec-def", ["completed"] * 6 + ["stopped (ASHA)"] + ["error"] * 9)
    _sweep(out, "SASRec", "SASRec-newer", ["completed"] * 4)  # another sweep of SASRec than its tuned row's
    text = tuning.tuning_files("toy", _records(), out)[tuning.PAGE]
    assert _cells(text, "GRU4Rec")[-1] == (
        "[GRU4Rec](tune/GRU4Rec/): 7 of 16 finished; 9 of 16 trials failed, so the best point is not the sweep's")
    assert ("Sweeps with failed trials, whose best point was chosen from the trials that ran and not from the whole "
            "space: GRU4Rec-tuned (9 of 16 trials failed).") in text
    assert _cells(text, "SASRec")[-1] == "n/a (no sweep record)"
    csv = tuning.tuning_files("toy", _records(), out)[tuning.CSV]
    assert csv.splitlines()[2].endswith(",GRU4Rec,16,7,9")


def test_the_sweeps_best_trial_is_named_when_the_row_was_made_from_another(tmp_path):
    out = tmp_path / "toy"
    _sweep(out, "SASRec", "SASRec-abc", ["completed"] * 4)  # best: t_00001, the row's trial
    records = _records()
    point = _cells(tuning.tuning_files("toy", records, out)[tuning.PAGE], "SASRec")[10]
    assert point == "learning_rate 0.001 → 0.003"
    for r in records:
        if r.get("tune") and r["model"] == "SASRec":
            r["tune"] = _tag("SASRec-abc", SASREC_BEST, trial="t_00003")
    assert _cells(tuning.tuning_files("toy", records, out)[tuning.PAGE], "SASRec")[10] == (
        "learning_rate 0.001 → 0.003 (trial t_00003; the sweep's best is now trial t_00001)")


def test_a_model_without_a_tuned_row_is_not_tuned_yet_and_a_tuned_one_without_default_says_so():
    records = [r for r in _records() if r["label"] != "GRU4Rec"]
    text = tuning.tuning_files("toy", records)[tuning.PAGE]
    assert _cells(text, "FPMC") == ["FPMC", "FPMC (1, 2, 3)", "0.2000", f"{_per_user(WEAK + 1).mean():.4f} ± 0.0000",
                                    "not tuned yet", *["-"] * 7]
    assert _cells(text, "GRU4Rec")[1:5] == ["no default row", "-", "-", "GRU4Rec-tuned (1, 2, 3)"]
    assert _cells(text, "GRU4Rec")[7:10] == ["-", "-", "-"]  # nothing to test against
    assert ("2 of 3 ID models have a tuned row; not tuned yet: FPMC; tuned with no default row to compare with: "
            "GRU4Rec.") in text
    assert "Holm: p adjusted for the 1 test of this page" in text


def test_llm_rows_are_left_out():
    records = _records()
    text = tuning.tuning_files("toy", records)[tuning.PAGE]
    body = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| ID model")]
    assert [line.split("|")[1].strip() for line in body] == ["SASRec", "GRU4Rec", "FPMC"]
    assert "IDLEAdapter" not in text
    # an LLM row carrying a tune tag (a swept IDLE-Adapter) is no tuned ID row either
    llm_only = [r for r in records if r["model"] in ("IDLEAdapter", "FPMC")]
    for r in llm_only:
        if r["model"] == "IDLEAdapter":
            r["tune"] = _tag("IDLE-x", {"prefix_len": 4})
    assert tuning.tuning_files("toy", llm_only) == {}


def test_an_unconverged_row_is_marked():
    text = tuning.tuning_files("toy", _records(gru_valid=(0.1, 0.15, 0.2)))[tuning.PAGE]  # best epoch = last
    assert _cells(text, "GRU4Rec")[1] == "GRU4Rec † (1, 2, 3)" and _cells(text, "SASRec")[1] == "SASRec (1, 2, 3)"
    assert "† not converged (" in text and "GRU4Rec: best epoch = last epoch (3 of 3 seeds)" in text


def test_no_tuned_row_no_page_and_an_old_one_is_removed(tmp_path):
    out = tmp_path / "toy"
    write_results_page(out, "toy", _records(), METRICS)
    assert (out / "tuning.md").is_file() and (out / "tuning.csv").is_file()
    untuned = [r for r in _records() if not r.get("tune")]
    comparison = write_results_page(out, "toy", untuned, METRICS)
    assert not (out / "tuning.md").exists() and not (out / "tuning.csv").exists()
    assert "tuning.md" not in comparison and "comparison.md" in {p.name for p in out.iterdir()}
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no lock file or staging folder left
    (out / "tuning.md").write_text("# Notes on tuning, by hand\n", encoding="utf-8")  # not this module's page
    write_results_page(out, "toy", untuned, METRICS)
    assert (out / "tuning.md").read_text(encoding="utf-8") == "# Notes on tuning, by hand\n"
