"""run_benchmark.py --jobs: several runs at once, ID models before the LLM runs that reuse them."""

import json
import os
import re

from recbole_llm.benchmark.jobs import dependencies, threads_per_job
from test_benchmark_cli import TINY, bench


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
    out = bench("--model=IDLEAdapter,SASRec,ComiRec", "--dataset=toy", "--jobs=2", "--budget=quick", *TINY, *llm,
                data_path=toy_data_path, tmp_path=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("[recbole-llm]")]
    started = [re.search(r": (\w+) seed", line).group(1) for line in lines if "(started:" in line]
    ended = [re.search(r"done (\w+) seed", line).group(1) for line in lines if " done " in line]
    assert started[:2] == ["SASRec", "ComiRec"] and started[2] == "IDLEAdapter"  # ID models first
    assert sorted(ended) == ["ComiRec", "IDLEAdapter", "SASRec"]
    start_llm = next(k for k, line in enumerate(lines) if "IDLEAdapter seed" in line and "(started:" in line)
    done_id = next(k for k, line in enumerate(lines) if "done ComiRec" in line)
    assert done_id < start_llm
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "toy" / "runs").glob("*.json")]
    assert sorted(r["label"] for r in records) == ["ComiRec", "IDLEAdapter", "SASRec"]
    cached = list((tmp_path / "saved" / "id_models" / "toy").glob("ComiRec-*.pth"))
    assert len(cached) == 1  # the ComiRec row is IDLEAdapter's base: not trained twice
    llm_record = next(r for r in records if r["label"] == "IDLEAdapter")
    assert llm_record["parameters"]["id_model_checkpoint"] == "{saved}/id_models/toy/" + cached[0].name  # portable
    comirec = next(r for r in records if r["label"] == "ComiRec")  # the base, named by its weights
    assert llm_record["id_model"]["sha256"] == comirec["id_cache"]["sha256"]
    assert {r["hardware"]["torch_threads"] for r in records} == {threads_per_job(2)}
    assert all((tmp_path / "saved" / "jobs" / f"{m}-seed2020.log").is_file() for m in ("ComiRec", "SASRec", "IDLEAdapter"))
    assert (tmp_path / "results" / "toy" / "comparison.md").is_file()
    # the same command again: every run is skipped, as with one job
    again = bench("--model=IDLEAdapter,SASRec,ComiRec", "--dataset=toy", "--jobs=2", "--budget=quick", *TINY, *llm,
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
