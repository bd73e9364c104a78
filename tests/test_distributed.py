"""``--nproc=2``: one run trained by two processes (torch DDP, gloo on this CPU) against the same run in one.

In general a distributed run's numbers are not those of one process: RecBole's ``DistributedSampler``
deals the shuffled training samples to the processes in another order than one process's shuffle,
each process draws its own dropout masks, and the gradient is the mean of the processes' means, so
the training path differs and only the statistics agree. These tests make the two runs take the same
steps, so that a difference is a bug and not noise: ``shuffle: False`` (the sampler then deals
samples 0, 2, 4, ... to rank 0 and 1, 3, 5, ... to rank 1, so each step's two half-batches of
``train_batch_size // 2`` are exactly one process's batch), no dropout, and a training set of even
size (no padded last batch). What is left is the order in which floats are summed (two half-batch
means averaged by the all-reduce, against one mean) and, for IDLEAdapter, its MMD term, a statistic
of the batch's rows that each process estimates on its half (``align_weight`` times a small
difference): the per-epoch training loss agrees to ``LOSS_RTOL`` relative (measured: 1e-8 for
SASRec, 4e-6 for IDLEAdapter), and the validation and test metrics to ``METRIC_ATOL`` (measured:
equal). A near-tie between two items could in principle flip one user's rank under that rounding,
which would show here as a failure to look at, not to widen. Without the gradients' all-reduce the
first epoch's loss already differs in the third digit; without rank 0's whole-split evaluation
half of the users are missing.

Both runs evaluate every test user (rank 0 evaluates the whole split), write one record (rank 0's),
and the distributed one says so (``record['distributed']``) under the same run key.
"""

import json
import subprocess
import sys

import pytest

import distributed_faults
import recbole_llm.pipeline as pipeline
import recbole_llm.runner as runner
from recbole_llm.errors import UserError
from recbole_llm.pipeline import run
from recbole_llm.runner import check_nproc, parse_args, settings
from recbole_llm.spec import RunSpec
from test_benchmark_cli import _in_process

LOSS_RTOL = 1e-5  # per-epoch training loss, relative (float summation order; see the module docstring)
METRIC_ATOL = 1e-6  # every validation and test metric, absolute
N_USERS = 40  # the toy dataset's users (conftest.write_toy): each one is evaluated once

# The same steps in one and in two processes (module docstring); the toy data has 270 training samples.
SAME_STEPS = {"shuffle": False, "hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}
SASREC = ["--MAX_ITEM_LIST_LENGTH=10", "--topk=[5,10]", "--hidden_size=16", "--inner_size=32", "--n_layers=1",
          "--n_heads=1", "--epochs=2", "--train_batch_size=64", "--budget=quick",
          *(f"--{k}={v}" for k, v in SAME_STEPS.items())]


def _compare(single, double):
    """The assertions every pair of runs passes (see the module docstring)."""
    assert "distributed" not in single and double["run_key"] == single["run_key"]
    assert double["dataset_stats"]["train_samples"] % 2 == 0  # no padded shard: the same steps
    assert len(double["per_user"]["users"]) == N_USERS
    assert sorted(double["per_user"]["users"]) == sorted(single["per_user"]["users"])
    assert len(double["history"]) == len(single["history"]) == 2
    for a, b in zip(single["history"], double["history"]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=LOSS_RTOL)
        assert b["valid"] == pytest.approx(a["valid"], abs=METRIC_ATOL)
    assert double["valid"] == pytest.approx(single["valid"], abs=METRIC_ATOL)
    assert double["test"] == pytest.approx(single["test"], abs=METRIC_ATOL)
    assert double["best_epoch"] == single["best_epoch"]


def test_sasrec_over_two_processes_writes_the_one_process_record(toy_data_path, tmp_path, capsys):
    """Through the command line: ``--nproc=2`` writes exactly one record, rank 0's, and one log file."""
    records, logs = {}, {}
    for nproc in (1, 2):
        folder = tmp_path / f"nproc{nproc}"
        code = _in_process(["--model=SASRec", "--dataset=toy", f"--nproc={nproc}", *SASREC], toy_data_path, folder)
        assert code == 0, capsys.readouterr().err[-3000:]
        files = list((folder / "results" / "toy" / "runs").glob("*.json"))
        assert len(files) == 1
        records[nproc] = json.loads(files[0].read_text())
        logs[nproc] = list((folder / "saved" / "log").rglob("*.log"))
        events = list((folder / "saved" / "log_tensorboard").rglob("events.*"))
        assert len({p.name.split(".")[-2] for p in events}) == 1  # one process's tensorboard events (the pid)
    assert len(logs[2]) == len(logs[1]) == 1  # rank 1 writes no log file
    _compare(records[1], records[2])
    assert records[2]["distributed"]["nproc"] == 2 and records[2]["distributed"]["backend"] == "gloo"
    # RecBole gives each process train_batch_size // world_size rows: one step sees train_batch_size in all
    assert records[2]["distributed"]["per_process_train_batch"] == 32
    assert records[2]["distributed"]["global_train_batch"] == 64


def test_idleadapter_over_two_processes_matches_one_process(toy_data_path, tmp_path, llm_overrides):
    """The LLM models: a frozen LM and a frozen ID model beside the trained adapter (DDP registers only
    what trains); the ID model is trained once, by the first run, and reused by the second."""
    overrides = {**llm_overrides, **SAME_STEPS, "epochs": 2, "measure_overhead_batches": 2}
    spec = RunSpec("IDLEAdapter", "toy", 2020, (), overrides, toy_data_path, tmp_path / "saved")
    single = run(spec)
    double = run(spec.with_overrides(nproc=2, resume_training=False))  # the same saved/: its ID model, not its state
    _compare(single, double)
    assert double["distributed"]["global_train_batch"] == llm_overrides["train_batch_size"]
    assert double["id_model"] == single["id_model"]
    assert double["cost"]["adapter_throughput_ratio"] > 0  # measured by rank 0
    assert len(list((tmp_path / "saved" / "id_models" / "toy").glob("ComiRec-*.pth"))) == 1


@pytest.mark.parametrize("argv, gpus, message", [
    (["--nproc=0"], (), "--nproc must be a positive integer, got 0"),
    (["--nproc=2", "--jobs=2"], (), "--nproc=2 trains each run as 2 processes and --jobs=2 runs several runs at once"),
    (["--nproc=2", "--tune"], (), "--nproc=2 with --tune: a sweep trains each trial in one process"),
    (["--nproc=3"], ("0", "1"), "--nproc=3 runs one process per GPU, and this machine has visible 2 (0,1)"),
    (["--nproc=2", "--gpu_id=1"], ("0", "1"), "--nproc=2 runs one process per GPU, and --gpu_id names 1 (1)"),
])
def test_a_process_count_that_cannot_run_is_refused(argv, gpus, message):
    args, overrides = parse_args(["--model=SASRec", *argv])
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_nproc(args, overrides, gpus)


def test_gpus_are_given_one_per_process_and_a_cpu_runs_any_count():
    args, overrides = parse_args(["--model=SASRec", "--nproc=2"])
    assert check_nproc(args, overrides, ("0", "1", "2")) == "0,1"  # the first two visible
    assert check_nproc(args, overrides, ()) is None  # a CPU machine: gloo
    args, overrides = parse_args(["--model=SASRec", "--nproc=2", "--gpu_id=2,3"])
    assert check_nproc(args, overrides, ("0", "1", "2", "3")) == "2,3"


def test_bad_nproc_is_one_line_and_exit_2_before_anything_runs(toy_data_path, tmp_path, capsys):
    assert _in_process(["--model=SASRec", "--dataset=toy", "--nproc=2", "--jobs=2"], toy_data_path, tmp_path) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --nproc=2 trains each run as 2 processes"), captured.err
    assert "[recbole-llm]" not in captured.out and not (tmp_path / "results").exists()


@pytest.mark.parametrize("argv, yaml_text, said", [
    (["--local_rank=0"], None, "error: option --local_rank=0: local_rank is set for each process by --nproc"),
    (["--world_size=2"], None, "error: option --world_size=2: world_size is set for each process by --nproc"),
    (["--nproc=2", "--world_size=4"], None, "error: option --world_size=4: world_size is set for each process"),
    ([], "epochs: 1\nlocal_rank: 0\n", "line 2: local_rank is set for each process by --nproc"),
])
def test_a_process_key_from_the_user_is_one_line_and_exit_2(argv, yaml_text, said, toy_data_path, tmp_path, capsys):
    """``local_rank`` and ``world_size`` are run_processes' to set: from the user, with or without
    ``--nproc`` (``--local_rank`` alone once ended in a KeyError from inside the process group's join,
    ``--world_size`` alone trained one process), one line naming the option and the fix."""
    if yaml_text is not None:
        (tmp_path / "mine.yaml").write_text(yaml_text)
        argv = [*argv, f"--config-files={tmp_path / 'mine.yaml'}"]
    assert _in_process(["--model=SASRec", "--dataset=toy", *argv], toy_data_path, tmp_path) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and said in err[0] and err[0].endswith("--nproc=N trains one run as N processes"), captured.err
    assert "[recbole-llm]" not in captured.out and not (tmp_path / "results").exists()


def test_gpu_id_of_nproc_is_computed_once_on_the_parsed_options(toy_data_path, tmp_path, monkeypatch):
    """An empty ``--gpu_id=`` asks for the CPU: parsed it is None, and it stays the CPU ("", gloo) where
    GPUs are visible, in the overrides every run takes; a second look at them finds the same."""
    gpus = ("0", "1")
    for option, gpu_id in (("--gpu_id=", ""), ("--gpu_id=1,0", "1,0"), (None, "0,1")):
        args, overrides = parse_args(["--model=SASRec", "--dataset=toy", "--nproc=2", *([option] if option else [])])
        request = settings(args, overrides, root=tmp_path, gpus=gpus)
        assert request.overrides["nproc"] == 2 and request.overrides["gpu_id"] == gpu_id
        assert check_nproc(args, request.overrides, gpus) == gpu_id
    # through the command line, with two GPUs visible: the runs get the CPU they were asked for
    taken = {}

    def take(args, request, root=None, gpus=()):
        taken.update(request.overrides, gpus=gpus)
        raise UserError("stop before training")

    monkeypatch.setattr(runner, "_visible_gpus", lambda: gpus)
    monkeypatch.setattr(runner, "run_all", take)
    assert _in_process(["--model=SASRec", "--dataset=toy", "--nproc=2", "--gpu_id="], toy_data_path, tmp_path) == 2
    assert taken["gpu_id"] == "" and taken["nproc"] == 2 and taken["gpus"] == gpus


@pytest.mark.parametrize("target, said, in_log", [
    ("exit_3", "rank 1 of the 2 processes of SASRec seed 2020 exited with code 3; the run log: {log}; the others "
               "were ended", None),
    ("raise_error", "rank 1 of the 2 processes of SASRec seed 2020 raised RuntimeError: boom in the training step; "
                    "the run log: {log}; the others were ended", "Traceback"),
    ("killed", "rank 0 of the 2 processes of SASRec seed 2020 was ended by signal SIGKILL (killed: from outside, or "
               "by the kernel when memory ran out) before rank 0 opened the run log; the others were ended", None),
    ("no_record", "the 2 processes of SASRec seed 2020 ended without a record (rank 0 made none)", None),
])
def test_a_process_that_ends_badly_is_one_user_error(target, said, in_log, tmp_path, monkeypatch):
    """Whatever ends a process (an exit code, an exception, a signal) or leaves the run without a
    record, run_processes raises one UserError naming the rank, how it ended and the run's log."""
    monkeypatch.setattr(pipeline, "_process_main", getattr(distributed_faults, target))
    spec = distributed_faults.Spec(tmp_path / "saved", {"nproc": 2})
    with pytest.raises(UserError) as err:
        pipeline.run_processes(spec, {"gpu_id": "", "model": "SASRec", "dataset": "toy"}, "key")
    log = distributed_faults.log_path(spec.saved_dir)
    assert str(err.value) == said.format(log=log)
    if in_log:
        assert in_log in log.read_text() and "boom in the training step" in log.read_text()


RESUME_SCRIPT = """
import os, sys
from pathlib import Path

from recbole_llm.trainer import SafeCheckpointMixin

save = SafeCheckpointMixin._save_state


def save_then_stop(self, epoch_idx, train_data):  # every process stops once epoch 1's state is written
    save(self, epoch_idx, train_data)
    if os.environ.get("STOP_AFTER") == str(epoch_idx):
        raise SystemExit(3)


SafeCheckpointMixin._save_state = save_then_stop  # in the spawned processes too: they import this file

if __name__ == "__main__":
    import json

    from recbole_llm.pipeline import run
    from recbole_llm.spec import RunSpec

    model, data, saved, overrides = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), json.loads(sys.argv[4])
    os.environ["STOP_AFTER"] = sys.argv[5]
    try:
        record = run(RunSpec(model, "toy", 2020, (), overrides, data, saved))
    except Exception as err:  # the processes' exit, raised by torch.multiprocessing
        record = {"interrupted": type(err).__name__}
    print("RECORD " + json.dumps(record))
"""


def _script_run(script, model, data, saved, overrides, stop_after):
    out = subprocess.run([sys.executable, str(script), model, str(data), str(saved), json.dumps(overrides),
                          str(stop_after)], capture_output=True, text=True, timeout=600)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RECORD ")), None)
    assert line is not None, out.stderr[-3000:]
    return json.loads(line[len("RECORD "):])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["SASRec", "IDLEAdapter"])
def test_an_interrupted_two_process_run_resumes_to_the_same_record(model, toy_data_path, tiny_overrides,
                                                                     llm_overrides, tmp_path):
    """As tests/test_resume.py for one process: every process stops after epoch 1's state is saved
    (by rank 0, with each process's random streams: SASRec's dropout; and prompt-state cache:
    IDLEAdapter's), and the run resumed over two processes ends with the uninterrupted run's record."""
    overrides = dict(llm_overrides if model == "IDLEAdapter" else tiny_overrides)
    overrides.update({"epochs": 4, "stopping_step": 4, "topk": [5, 10], "nproc": 2, "measure_overhead_batches": 0})
    if model == "SASRec":
        overrides["hidden_dropout_prob"] = 0.3
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)
    full = _script_run(script, model, toy_data_path, tmp_path / "a", overrides, -1)
    stopped = _script_run(script, model, toy_data_path, tmp_path / "b", overrides, 1)
    assert stopped == {"interrupted": "UserError"}  # the processes' exit (code 3), one line
    resumed = _script_run(script, model, toy_data_path, tmp_path / "b", overrides, -1)
    assert [s["from_epoch"] for s in resumed["segments"]] == [0, 2]
    assert [s["processes"] for s in resumed["segments"]] == [2, 2]
    assert resumed["test"] == full["test"] and resumed["valid"] == full["valid"]
    assert [e["train_loss"] for e in resumed["history"]] == [e["train_loss"] for e in full["history"]]
    assert resumed["per_user"]["rank"] == full["per_user"]["rank"]


@pytest.mark.slow
def test_rarec_over_two_processes_evaluates_every_user(toy_data_path, tmp_path, llm_overrides):
    """RA-Rec's pairwise loss draws its negatives in each process, so its numbers are not one
    process's (module docstring); the run trains, and its record covers every test user."""
    spec = RunSpec("RARec", "toy", 2020, (), {**llm_overrides, "epochs": 2, "nproc": 2}, toy_data_path,
                   tmp_path / "saved")
    record = run(spec)
    assert record["distributed"]["nproc"] == 2 and len(record["per_user"]["users"]) == N_USERS
    assert record["epochs_run"] == 2 and set(record["test"]) == {f"{m}@{k}" for m in ("hit", "ndcg", "mrr")
                                                                  for k in (5, 10)}
    assert record["cost"]["adapter_throughput_ratio"] > 0
