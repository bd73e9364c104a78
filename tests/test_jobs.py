"""run_benchmark.py --jobs: several runs at once, ID models before the LLM runs that reuse them."""

import json
import os
import re

from recbole_llm.benchmark.jobs import dependencies, threads_per_job
from test_benchmark_cli import TINY, bench


# The default label of these tests' IDLEAdapter rows: the keys of its own YAML they change (the tiny LM, ...).
LLM_LABEL = ("IDLEAdapter (ComiRec base with train_batch_size=64 embedding_size=16 epochs=1, lm=tiny_bert0, lm_autocast=None, "
             "prompt_max_tokens=32, prompt_max_items=5)")
BASE_LABEL = "ComiRec (train_batch_size=64, embedding_size=16, epochs=1)"  # its own row, not a seed of ComiRec's

def test_llm_jobs_wait_for_the_id_model_they_reuse():
    jobs = [("ComiRec", 1), ("SASRec", 1), ("ComiRec", 2), ("IDLEAdapter", 1), ("IDLEAdapter", 2), ("RARec", 1),
            ("RARec", 3), ("IDLEAdapter", 3)]
    id_model = {"IDLEAdapter": "ComiRec", "RARec": "ComiRec"}
    assert dependencies(jobs, id_model.get) == [None, None, None, 0, 2, 0, None, 6]
    # seed 3 has no ComiRec job: the first LLM job of seed 3 trains it, the next one waits for it


def test_threads_split_the_cores_unless_given():
    cores = len(os.sched_getaffinity(0))
    assert threads_per_job(2) == max(1, cores // 2)
    assert threads_per_job(10 * cores) == 1
    assert threads_per_job(4, threads=3) == 3


def test_two_jobs_write_every_record_and_start_the_llm_run_after_its_id_model(toy_data_path, tiny_bert, tmp_path):
    shared = {"train_batch_size": 64, "embedding_size": 16, "hidden_size": 16, "inner_size": 32, "n_layers": 1,
              "n_heads": 1, "epochs": 1, "item_text_field": "title"}
    llm = [f"--lm_name={tiny_bert}", "--lm_autocast=none", "--prompt_max_tokens=32", "--prompt_max_items=5",
           "--item_text_field=title", "--measure_overhead_batches=0", "--epochs=1",
           "--id_model_config=" + json.dumps(shared).replace(" ", "")]
    tiny = [a for a in TINY if not a.startswith("--epochs=")]  # llm sets it: an option given twice is refused
    out = bench("--model=IDLEAdapter,SASRec,ComiRec", "--dataset=toy", "--jobs=2", "--budget=quick", *tiny, *llm,
                data_path=toy_data_path, tmp_path=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("[recbole-llm]")]
    started = [re.search(r"run \d+/\d+: (\w+)", line).group(1) for line in lines if "(started:" in line]
    ended = [re.search(r"done (\w+) seed", line).group(1) for line in lines if " done " in line]
    assert started[:2] == ["SASRec", "ComiRec"] and started[2] == "IDLEAdapter"  # ID models first
    assert sorted(ended) == ["ComiRec", "IDLEAdapter", "SASRec"]
    start_llm = next(k for k, line in enumerate(lines) if ": IDLEAdapter (" in line and "(started:" in line)
    done_id = next(k for k, line in enumerate(lines) if "done ComiRec" in line)
    assert done_id < start_llm
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "toy" / "runs").glob("*.json")]
    assert sorted(r["model"] for r in records) == ["ComiRec", "IDLEAdapter", "SASRec"]
    # without --label an LLM row is named for what identifies it (its LM, ...); a baseline for its model
    llm_label = LLM_LABEL
    assert sorted(r["label"] for r in records) == ["ComiRec", llm_label, "SASRec"]
    cached = list((tmp_path / "saved" / "id_models" / "toy").glob("ComiRec-*.pth"))
    assert len(cached) == 1  # the ComiRec row is IDLEAdapter's base: not trained twice
    llm_record = next(r for r in records if r["label"] == llm_label)
    assert llm_record["parameters"]["id_model_checkpoint"] == "{saved}/id_models/toy/" + cached[0].name  # portable
    comirec = next(r for r in records if r["label"] == "ComiRec")  # the base, named by its weights
    assert llm_record["id_model"]["weights_sha256"] == comirec["id_cache"]["weights_sha256"]
    assert {r["hardware"]["torch_threads"] for r in records} == {threads_per_job(2)}
    assert all(list((tmp_path / "saved" / "jobs").glob(f"{m}*-seed2020.log")) for m in ("ComiRec", "SASRec", "IDLEAdapter"))
    assert (tmp_path / "results" / "toy" / "comparison.md").is_file()
    # the same command again: every run is skipped, as with one job
    again = bench("--model=IDLEAdapter,SASRec,ComiRec", "--dataset=toy", "--jobs=2", "--budget=quick", *tiny, *llm,
                  data_path=toy_data_path, tmp_path=tmp_path)
    assert again.returncode == 0 and again.stdout.count("skipped: record") == 3, again.stdout[-2000:]


def test_eta_counts_each_remaining_run_at_its_own_models_time_and_is_unknown_before_one_finished():
    from recbole_llm.benchmark.records import eta_s

    times = {"ComiRec": [60.0, 80.0]}
    assert eta_s(times, ["ComiRec"]) == 70.0
    assert eta_s(times, []) == 0.0
    # the next run is an LLM row: a one-minute ID model says nothing about its hours
    assert eta_s(times, ["ComiRec", "IDLEAdapter"]) is None
    # ... unless earlier records of that row say what it costs; this command's own runs come first
    assert eta_s(times, ["IDLEAdapter"], earlier={"IDLEAdapter": [3000.0, 4000.0], "ComiRec": [1.0]}) == 3500.0
    assert eta_s(times, ["ComiRec"], earlier={"ComiRec": [1.0]}) == 70.0
    times["IDLEAdapter"] = [3600.0]
    assert eta_s(times, ["IDLEAdapter", "ComiRec", "IDLEAdapter"], parallel=2) == (3600 * 2 + 70) / 2


def test_earlier_run_times_are_the_records_of_the_budget_by_label(tmp_path):
    from recbole_llm.benchmark.records import earlier_run_times, write_record

    def record(label, seed, budget, seconds):
        return {"model": "IDLEAdapter", "dataset": "toy", "seed": seed, "label": label, "budget": budget,
                "finished_at": f"2026-01-0{seed}", "cost": {"wall_time_s": seconds}}

    for rec in (record("IDLEAdapter", 1, "full", 100.0), record("IDLEAdapter", 2, "full", 300.0),
                record("IDLEAdapter", 3, "quick", 5.0), record("IDLEAdapter (SASRec base)", 1, "full", 50.0)):
        write_record(tmp_path, rec)
    (tmp_path / "toy" / "runs" / "broken.json").write_text("{")
    assert earlier_run_times(tmp_path, "toy", "full") == {"IDLEAdapter": [100.0, 300.0],
                                                          "IDLEAdapter (SASRec base)": [50.0]}
    assert earlier_run_times(tmp_path, "nowhere", "full") == {}


def test_earlier_run_times_leave_out_records_of_another_epoch_cap(tmp_path):
    """A 3-epoch run's wall time does not stand for a converged (50-epoch cap) run's."""
    from recbole_llm.benchmark.records import earlier_run_times, write_record

    def record(seed, cap, seconds, label="IDLEAdapter"):
        return {"model": "IDLEAdapter", "dataset": "toy", "seed": seed, "label": label, "budget": "full",
                "finished_at": f"2026-01-0{seed}", "cost": {"wall_time_s": seconds},
                "protocol": {"epochs_max": cap}}

    for rec in (record(1, 3, 900.0), record(2, 50, 6000.0), record(3, 3, 1000.0), record(1, 3, 80.0, "ComiRec")):
        write_record(tmp_path, rec)
    assert earlier_run_times(tmp_path, "toy", "full", {"IDLEAdapter": 50}) == {
        "IDLEAdapter": [6000.0], "ComiRec": [80.0]}
    assert earlier_run_times(tmp_path, "toy", "full", {"IDLEAdapter": 3})["IDLEAdapter"] == [900.0, 1000.0]
    assert sorted(earlier_run_times(tmp_path, "toy", "full")["IDLEAdapter"]) == [900.0, 1000.0, 6000.0]


def test_each_worker_gets_its_own_gpu_round_robin():
    from recbole_llm.benchmark.jobs import pick_gpu, visible_gpus

    assert visible_gpus({}, 3) == ("0", "1", "2")
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}, 8) == ("2", "3")  # what the command may use, by its names
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-a1b2, GPU-c3d4"}, 0) == ("GPU-a1b2", "GPU-c3d4")
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, 4) == () and visible_gpus({}, 0) == ()
    gpus, busy, order = ("2", "3"), {}, []
    for _ in range(5):
        gpu = pick_gpu(gpus, busy)
        busy[gpu] = busy.get(gpu, 0) + 1
        order.append(gpu)
    assert order == ["2", "3", "2", "3", "2"]
    busy["3"] -= 2  # two runs on GPU 3 ended: the next two go there
    assert pick_gpu(gpus, busy) == "3"
    busy["3"] += 1
    assert pick_gpu(gpus, busy) == "3" and pick_gpu((), {}) is None


def test_worker_processes_are_started_each_on_its_own_gpu(monkeypatch, tmp_path):
    """run_jobs with --jobs=2 on two GPUs, its process pool replaced by one that runs the workers here:
    each worker gets a GPU as CUDA_VISIBLE_DEVICES and as the run's gpu_id, and gives it back at the end."""
    from concurrent.futures import Future

    import recbole_llm.benchmark.jobs as jobs
    import recbole_llm.benchmark.records as records
    from recbole_llm.spec import RunSpec

    started = []

    class Pool:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, spec, threads, log_path, gpu):
            started.append((spec.model_name, spec.seed, gpu, spec.overrides.get("gpu_id")))
            future = Future()
            future.set_result({"model": spec.model_name, "dataset": "toy", "seed": spec.seed, "run_key": "k",
                               "test": {}, "epochs_run": 1, "cost": {"wall_time_s": 1.0}})
            return future

    stored = []
    monkeypatch.setattr(jobs, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(records, "store_run", lambda output, record, label, *a: stored.append((label, record["seed"])))
    plan = [(i, RunSpec(m, "toy", s, (), {"gpu_id": "7"} if m == "Pinned" else {}, tmp_path, tmp_path))
            for i, (m, s) in enumerate([("SASRec", 1), ("SASRec", 2), ("BPR", 1), ("Pinned", 1)], 1)]
    options = jobs.RunnerOptions(jobs=2, threads=1, output=tmp_path / "results", total=4, gpus=("0", "1"))
    jobs.run_jobs(plan, options, configs={})
    # two at once: GPUs 0 and 1; both end (the pool finishes them at once) and give their GPU back, so the next
    # goes to GPU 0 again; a --gpu_id given on the command line is kept (no GPU is assigned)
    assert started == [("SASRec", 1, "0", "0"), ("SASRec", 2, "1", "1"), ("BPR", 1, "0", "0"), ("Pinned", 1, None, "7")]
    assert sorted(stored) == [("BPR", 1), ("Pinned", 1), ("SASRec", 1), ("SASRec", 2)]


def test_an_llm_row_gets_its_id_base_in_the_table_once(toy_data_path, tiny_bert, tmp_path):
    """--model=IDLEAdapter alone: its ComiRec (trained by the command, before it) gets a record of its
    own, so the table has the base beside the LLM row; the same command again adds no record. Trained
    off ComiRec's defaults (--id_model_config), the base is a row of its own, named for what differs."""
    shared = {"train_batch_size": 64, "embedding_size": 16, "hidden_size": 16, "inner_size": 32, "n_layers": 1,
              "n_heads": 1, "epochs": 1, "item_text_field": "title"}
    llm = [f"--lm_name={tiny_bert}", "--lm_autocast=none", "--prompt_max_tokens=32", "--prompt_max_items=5",
           "--item_text_field=title", "--measure_overhead_batches=0", "--epochs=1", "--train_batch_size=64",
           "--MAX_ITEM_LIST_LENGTH=10", "--topk=[5,10]", "--no-progress", "--threads=1",
           "--id_model_config=" + json.dumps(shared).replace(" ", "")]
    out = bench("--model=IDLE-Adapter", "--dataset=toy", "--budget=quick", *llm, data_path=toy_data_path,
                tmp_path=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (f"2 run(s) on toy (1 of them the ID base of an LLM row, for its own row: {BASE_LABEL} (of IDLEAdapter))"
            in out.stdout)
    lines = [line for line in out.stdout.splitlines() if line.startswith("[recbole-llm] run ")]
    assert lines[0].startswith(f"[recbole-llm] run 1/2: {BASE_LABEL} seed 2020") and f"{LLM_LABEL} seed 2020" in lines[1]
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "toy" / "runs").glob("*.json")]
    assert sorted(r["label"] for r in records) == [BASE_LABEL, LLM_LABEL]
    base = next(r for r in records if r["label"] == BASE_LABEL)
    llm_record = next(r for r in records if r["label"] == LLM_LABEL)
    assert llm_record["id_model"]["sha256"] == base["id_cache"]["sha256"]  # the row is the LLM row's own base
    assert base["budget"] == "quick" and base["config"]["embedding_size"] == 16
    assert len(list((tmp_path / "saved" / "id_models" / "toy").glob("ComiRec-*.pth"))) == 1
    pages = "\n".join(p.read_text() for p in sorted((tmp_path / "results" / "toy").glob("comparison*.md")))
    assert f"| {BASE_LABEL}" in (tmp_path / "results" / "toy" / "comparison.md").read_text()
    (row,) = [line for line in pages.splitlines() if line.startswith("| IDLEAdapter")]
    assert f"{BASE_LABEL}: " in row  # "vs own base": the base's row is there to be tested against
    again = bench("--model=IDLEAdapter", "--dataset=toy", "--budget=quick", *llm, data_path=toy_data_path,
                  tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"the ID base of IDLEAdapter, {BASE_LABEL} seed 2020, has its record" in again.stdout
    assert "1 run(s) on toy" in again.stdout and again.stdout.count("skipped: record") == 1
    assert len(list((tmp_path / "results" / "toy" / "runs").glob("*.json"))) == 2
    # the base stored under another row's name (as `--model=ComiRec --label=ComiRec-tuned` stores the tuned
    # point an LLM row names by --id_model_config) is the same run, by its key: no second record under "ComiRec"
    base_path = next(p for p in (tmp_path / "results" / "toy" / "runs").glob("ComiRec*.json"))
    renamed = {**json.loads(base_path.read_text()), "label": "ComiRec-tuned", "stored_label": "ComiRec-tuned"}
    base_path.write_text(json.dumps(renamed))
    third = bench("--model=IDLEAdapter", "--dataset=toy", "--budget=quick", *llm, data_path=toy_data_path,
                  tmp_path=tmp_path)
    assert third.returncode == 0, third.stderr[-2000:]
    assert f"the ID base of IDLEAdapter, {BASE_LABEL} seed 2020, has its record" in third.stdout
    assert len(list((tmp_path / "results" / "toy" / "runs").glob("*.json"))) == 2


def test_an_llm_rows_base_has_one_name_in_all_its_seeds():
    """The stored row of the base names it only when every seed's base is stored under that one row:
    with ComiRec-tuned holding seed 2020 alone, seeds 2020 and 2021 of one command would otherwise
    be two rows (``(ComiRec-tuned base)`` and ``(ComiRec base with learning_rate=...)``)."""
    from recbole_llm.benchmark.jobs import IdBase, base_row_labels

    def base(label):
        return IdBase(None, None, "k", None if label is None else {"label": label, "model": "ComiRec"})

    assert base_row_labels({("IDLEAdapter", 2020): base("ComiRec-tuned"), ("IDLEAdapter", 2021): base(None),
                            ("RARec", 2020): base("ComiRec-tuned"), ("RARec", 2021): base("ComiRec-tuned")}) == {
        "IDLEAdapter": None, "RARec": "ComiRec-tuned"}
    mixed = {("IDLEAdapter", 2020): base("ComiRec-tuned"), ("IDLEAdapter", 2021): base("ComiRec")}
    assert base_row_labels(mixed) == {"IDLEAdapter": None}


def test_the_commands_own_run_is_a_base_only_when_it_is_the_same_run(monkeypatch, capsys):
    """A planned ComiRec at its defaults is not the base of an LLM run given --id_model_config (the
    two are matched by run key, not by model and seed); a base shared by two LLM models runs once;
    a stored one is said and not run."""
    import recbole_llm.identity
    from recbole_llm.benchmark.jobs import IdBase, id_base_runs
    from recbole_llm.spec import RunSpec

    monkeypatch.setattr(recbole_llm.identity, "run_key", lambda config: config["key"])
    specs = [RunSpec("ComiRec", "d", 1), RunSpec("IDLEAdapter", "d", 1), RunSpec("RARec", "d", 1),
             RunSpec("SASRec", "d", 1)]
    configs = {(s.model_name, 1): {"key": f"{s.model_name}-key"} for s in specs}
    tuned = IdBase(RunSpec("ComiRec", "d", 1, label="ComiRec (learning_rate=0.003)"), {}, "tuned-key", None)
    stored = IdBase(RunSpec("SASRec", "d", 1), {}, "sasrec-tuned-key", {"_path": "runs/SASRec-tuned.json"})
    planned = IdBase(RunSpec("ComiRec", "d", 1), {}, "ComiRec-key", None)
    runs = id_base_runs(specs, configs, {("IDLEAdapter", 1): tuned, ("RARec", 1): tuned})
    assert runs == [(tuned, "IDLEAdapter")]
    assert id_base_runs(specs, configs, {("IDLEAdapter", 1): planned, ("RARec", 1): stored}) == []
    assert "the ID base of RARec, SASRec seed 1, has its record runs/SASRec-tuned.json" in capsys.readouterr().out
