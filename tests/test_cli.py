"""The ``recbole-llm`` console command and the runner's options: verbs, --help, repeated options,
unsafe names, logging, threads; and the sweep pages' regenerate command, status and progress table."""

import configparser
import importlib.util
import json
import subprocess
import sys
import types

import pytest

from conftest import REPO
from test_benchmark_cli import _main

WANDB = importlib.util.find_spec("wandb") is not None


def test_setup_cfg_declares_the_console_command():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg", encoding="utf-8")
    scripts = [line.strip() for line in cfg["options.entry_points"]["console_scripts"].strip().splitlines()]
    assert scripts == ["recbole-llm = recbole_llm.cli:main"]
    from recbole_llm import cli

    assert callable(cli.main) and set(cli.HANDLERS) == set(cli.VERBS) == {
        "run", "tables", "tune", "data", "variants", "speed", "recommend"}


PROBE = """
import sys
from {module} import main
try:
    main(["--help"])
except SystemExit:
    pass
print("IMPORTED", "torch" in sys.modules, "recbole" in sys.modules, "recbole_llm.utils" in sys.modules)
"""


@pytest.mark.parametrize("module", ["recbole_llm.cli", "recbole_llm.runner"])
def test_help_lists_models_and_key_meanings_without_importing_torch(module):
    out = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "IMPORTED False False False"
    text = out.stdout
    if module == "recbole_llm.cli":
        assert "verbs:" in text and "  recommend  top-k items for users or item histories" in text
    assert "LLM models (frozen LM + frozen ID model): IDLEAdapter, RARec" in text
    assert "the papers' spellings: IDLE-Adapter, RA-Rec" in text
    assert "ComiRec" in text and "LightGCN" in text and "SASRec" in text
    # each key's meaning is the comment beside its default, read from the YAML itself
    idle = (REPO / "properties" / "model" / "IDLEAdapter.yaml").read_text()
    meaning = next(line for line in idle.splitlines() if line.startswith("prefix_len:")).split("#", 1)[1].strip()
    assert meaning.startswith("(int, >= 1) L', virtual tokens per layer")
    assert "  --prefix_len=2  (int, >= 1) IDLEAdapter: L', virtual tokens per layer (1-2 suffice" in text
    assert "  --epochs=50  (int, >= 1) Upper bound on training epochs." in text
    assert "  --temperature=0.5  (float, > 0) tau of the InfoNCE alignment (paper: 0.5)." in text
    assert "  --gpu_id='0'  (str) The id of GPU device(s)." in text  # RecBole's own comment
    for key in ("--learning_rate=", "--train_batch_size=", "--lm_name=", "--id_model=", "--align_weight="):
        assert f"\n  {key}" in text, key


def test_verbs_delegate_to_the_entry_points(monkeypatch):
    from recbole_llm import cli

    calls = []
    monkeypatch.setattr("recbole_llm.runner.main", lambda argv, prog=None: calls.append(("runner", argv, prog)) or 0)
    for module in ("recbole_llm.data.__main__", "recbole_llm.benchmark.variants", "recbole_llm.benchmark.speed"):
        monkeypatch.setattr(f"{module}.main", lambda argv, m=module: calls.append((m, argv)) or 0)
    assert cli.main(["run", "--model=SASRec"]) == 0
    assert cli.main(["tables", "--dataset=ml-100k"]) == 0
    assert cli.main(["tune", "--model=SASRec"]) == 0
    assert cli.main(["data", "csv", "--inter", "x.csv"]) == 0
    assert cli.main(["variants", "--dataset=toy"]) == 0
    assert cli.main(["speed", "--dataset=toy"]) == 0
    assert calls == [
        ("runner", ["--model=SASRec"], "recbole-llm run"),
        ("runner", ["--tables-only", "--dataset=ml-100k"], "recbole-llm tables"),
        ("runner", ["--tune", "--model=SASRec"], "recbole-llm tune"),
        ("recbole_llm.data.__main__", ["csv", "--inter", "x.csv"]),
        ("recbole_llm.benchmark.variants", ["--dataset=toy"]),
        ("recbole_llm.benchmark.speed", ["--dataset=toy"]),
    ]


def test_an_unknown_verb_is_one_line(capsys):
    from recbole_llm.cli import main

    assert main(["tabels"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: unknown verb 'tabels': did you mean 'tables'? the verbs are run, tables, tune, data, "
                   "variants, speed, recommend (recbole-llm --help)"]


def test_model_names_in_any_case_and_the_papers_spellings():
    from recbole_llm.errors import UserError
    from recbole_llm.utils import canonical_model_name, get_model

    assert [canonical_model_name(n) for n in ("sasrec", "IDLE-Adapter", "idle_adapter", "RA-Rec", "rarec",
                                              "comirec", "LIGHTGCN")] == [
        "SASRec", "IDLEAdapter", "IDLEAdapter", "RARec", "RARec", "ComiRec", "LightGCN"]
    assert get_model("ra-rec").__name__ == "RARec"
    with pytest.raises(UserError, match=r"unknown model 'IDLE-Adaptor' \(--model\); did you mean IDLEAdapter\?"):
        canonical_model_name("IDLE-Adaptor")


def test_repeated_options_are_found_as_argparse_reads_them():
    from recbole_llm.runner import build_parser, repeated_option

    parser = build_parser(REPO)
    assert repeated_option(parser, ["--model=A", "--dataset=x", "--model=B"]) == ("--model", ["--model=A", "--model=B"])
    assert repeated_option(parser, ["--config-files=a.yaml", "--config_files=b.yaml"])[0] == "--config-files"
    assert repeated_option(parser, ["--mod=A", "--model", "B"]) == ("--model", ["--mod=A", "--model B"])  # a prefix
    assert repeated_option(parser, ["--epochs=1", "--model=A", "--epochs=2"]) == ("--epochs", ["--epochs=1", "--epochs=2"])
    assert repeated_option(parser, ["--rerun", "--rerun", "--model=A"]) is None  # a flag twice means the same
    assert repeated_option(parser, ["--model=A", "--epochs=1", "--seeds=1,2"]) is None


@pytest.mark.parametrize("args, line", [
    (["--model=SASRec", "--model=BPR"], "error: --model is given 2 times (--model=SASRec, --model=BPR): only the last "
                                        "would count; give it once (a comma list for several)"),
    (["--model=SASRec", "--epochs=1", "--epochs=2"], "error: --epochs is given 2 times (--epochs=1, --epochs=2)"),
    (["--model=SASRec", "--tune", "--tune-name=../../.."], "error: --tune-name='../../..' must be one plain name"),
    (["--model=SASRec", "--tune", "--tables-only", "--tune-name=a/b"], "error: --tune-name='a/b' must be one plain name"),
    (["--model=SASRec", "--dataset=shared/toy"], "error: --dataset='shared/toy' must be one plain name (letters, "
                                                 "digits, _ . + = -; no '/' or '..') (a folder name under --data-path"),
    pytest.param(["--model=SASRec", "--log_wandb=True"], "error: --log_wandb=True logs to Weights & Biases, and the "
                 "wandb package is not installed: pip install wandb",
                 marks=pytest.mark.skipif(WANDB, reason="wandb is installed here")),
])
def test_options_that_would_do_something_else_are_one_line(args, line, toy_data_path, tmp_path, capsys):
    argv = [f"--data-path={toy_data_path}", f"--output={tmp_path / 'results'}", f"--saved-dir={tmp_path / 'saved'}",
            "--threads=1", *([] if any(a.startswith("--dataset") for a in args) else ["--dataset=toy"]), *args]
    assert _main()(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(line), captured.err[-1500:]
    assert "[recbole-llm]" not in captured.out
    assert not (tmp_path / "results").exists() and not (tmp_path / "saved").exists()


@pytest.mark.skipif(WANDB, reason="wandb is installed here")
def test_log_wandb_in_a_config_file_is_checked_too(tmp_path):
    from recbole_llm.errors import UserError
    from recbole_llm.runner import check_logging

    mine = tmp_path / "my.yaml"
    mine.write_text("log_wandb: True\n")
    with pytest.raises(UserError, match="log_wandb in .*my.yaml=True logs to Weights & Biases"):
        check_logging({}, [mine])
    check_logging({"log_wandb": False}, [mine])  # the command line wins


def test_jobs_times_threads_above_the_cores_is_a_warning():
    from recbole_llm.runner import check_threads

    assert check_threads(1, None, cores=2) is None and check_threads(2, 1, cores=2) is None
    assert check_threads(2, None, cores=8) is None  # 4 threads each
    assert check_threads(4, 2, cores=2) == ("warning: --jobs=4 x 2 thread(s) = 8 torch threads on 2 core(s): the runs "
                                            "will slow each other down (threads fight over cores); use fewer --jobs "
                                            "or --threads")
    assert "--jobs=3 x 1 thread(s) = 3 torch threads on 2 core(s)" in check_threads(3, None, cores=2)
    assert "--jobs=1 x 4 thread(s)" in check_threads(1, 4, cores=2)


def test_repeats_in_a_list_run_once_and_are_said(capsys):
    from recbole_llm.runner import _unique

    assert _unique([1, 2, 1, 3, 2], "--seeds") == [1, 2, 3]
    assert capsys.readouterr().out == "[recbole-llm] --seeds: 1, 2 given more than once; each runs once\n"
    assert _unique(["SASRec"], "--model") == ["SASRec"] and capsys.readouterr().out == ""


# ------------------------------------------------------------------------------------------- sweeps
def _sweep_record(folder, name=None, statuses=("completed", "stopped (ASHA)")):
    folder.mkdir(parents=True)
    trials = [{"trial": f"t{i}", "learning_rate": lr, "metric": 0.1 + i / 10, "epochs": 2, "wall_time_s": 1.0,
               "node_id": "abc", "node_ip": "1.2.3.4", "status": status, "error": ""}
              for i, (lr, status) in enumerate(zip((0.001, 0.01), statuses))]
    trials.sort(key=lambda t: -t["metric"])
    record = {"format": 1, "model": "SASRec", "dataset": "toy", "name": name,
              "space": [{"key": "learning_rate", "kind": "grid", "values": [0.001, 0.01]}], "space_source": "space.yaml",
              "search": "grid", "num_samples": 1, "cpus_per_trial": 1, "gpus_per_trial": 0,
              "identity": {"search": "grid", "scheduler": "asha", "grace_period": 1, "reduction_factor": 2, "max_t": 2},
              "config": {"seed": 7, "valid_metric": "NDCG@10", "eval_args": {"split": {"LS": "valid_and_test"},
                                                                             "order": "TO"},
                         "stopping_step": 2, "epochs": 2},
              "experiment_path": "/somewhere/ray/toy/SASRec-abc", "interrupted": False, "wall_time_s": 10.0,
              "planned": 2, "trials": trials, "commit": "0" * 40, "command": "python run_benchmark.py --tune",
              "use": "python run_benchmark.py --model=SASRec"}
    (folder / "sweep_record.json").write_text(json.dumps(record))


def test_the_sweep_page_regenerates_with_its_budget_and_says_how_to_cap_trials(tmp_path, capsys):
    out = tmp_path / "results" / "quick"
    _sweep_record(out / "toy" / "tune" / "SASRec")
    argv = ["--model=SASRec", "--dataset=toy", "--budget=quick", "--tune", "--tables-only", f"--output={out}"]
    assert _main()(argv) == 0
    readme = (out / "toy" / "tune" / "SASRec" / "README.md").read_text()
    assert (f"`python run_benchmark.py --model=SASRec --dataset=toy --budget=quick --output={out} --tune --tables-only`"
            in readme)
    assert "Trials: 2 of the 2 the settings make (grid search" in readme
    assert "To cap a sweep's trials, draw a fixed number from the same space with `--search=random --num-samples=N`" \
        in readme
    # without its --budget the folder is not where the command looks: the error says so, not "too old"
    assert _main()(["--model=SASRec", "--dataset=toy", "--tune", "--tables-only",
                    f"--output={tmp_path / 'results'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: no sweep folder {tmp_path / 'results' / 'toy' / 'tune' / 'SASRec'}")
    assert "pass the --budget and --output the sweep ran with" in err[0] and "written before" not in err[0]


def _result(iteration, done, error=None):
    return types.SimpleNamespace(error=error, metrics={"training_iteration": iteration, "done": done})


def test_a_trial_that_reported_its_last_evaluation_is_completed_not_stopped():
    from recbole_llm.tune.sweep import _status

    assert _status(_result(1, True), None, max_t=1) == "completed"  # its only epoch: nothing left to stop
    assert _status(_result(3, True), None, max_t=3) == "completed"
    assert _status(_result(1, True), None, max_t=3) == "stopped (ASHA)"
    assert _status(_result(1, False), None, max_t=1) == "unfinished"
    assert _status(_result(1, True), {"epochs_run": 1}, max_t=3) == "completed"
    assert _status(_result(1, True, error=RuntimeError("x")), None, max_t=1) == "error"


def test_the_progress_table_is_printed_on_change_or_every_five_minutes(monkeypatch):
    import recbole_llm.tune.sweep as sweep

    clock = [1000.0]
    monkeypatch.setattr(sweep.time, "monotonic", lambda: clock[0])
    reporter = sweep._reporter(types.SimpleNamespace(keys=["learning_rate"]), "valid_ndcg_10", "NDCG@10")
    assert type(reporter).__name__ == "QuietReporter" and sweep.QuietReporter is type(reporter)

    def trial(status, iteration=None, score=None):
        result = {} if iteration is None else {"training_iteration": iteration, "valid_ndcg_10": score,
                                               "time_total_s": clock[0]}
        return types.SimpleNamespace(trial_id="t1", status=status, last_result=result)

    shown = []
    for step, (dt, t) in enumerate([(0, trial("RUNNING")), (31, trial("RUNNING")), (31, trial("RUNNING", 1, 0.1)),
                                    (10, trial("RUNNING", 2, 0.2)), (25, trial("RUNNING", 2, 0.2)),
                                    (240, trial("RUNNING", 2, 0.2)), (60, trial("RUNNING", 2, 0.2))]):
        clock[0] += dt
        if reporter.should_report([t]):
            shown.append(step)
    # first table; no change for 31 s: quiet; a new score: shown; another within 30 s: held until 30 s
    # have passed; then nothing changes: shown again only once 300 s have passed since the last one
    assert shown == [0, 2, 4, 6]
    assert reporter.should_report([trial("TERMINATED", 2, 0.2)], done=True)
