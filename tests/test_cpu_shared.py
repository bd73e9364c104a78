"""A run's timings say whether the CPU was its own: each epoch keeps the machine's load average, the
record whether it exceeded the run's threads, and the cost page shows it (a timing taken beside
another job is not a timing of the run)."""

import os

import pytest

from recbole_llm.benchmark.cost import cost_page, cpu_shared
from recbole_llm.pipeline import run
from recbole_llm.record import SHARED_LOAD_MARGIN, cpu_sharing
from recbole_llm.spec import RunSpec


def test_cpu_sharing_of_a_history():
    assert cpu_sharing([{"load_average": 3.0}, {"load_average": 3.2}], 1) == {
        "load_average": pytest.approx(3.1), "run_threads": 1, "cpu_shared": True}
    assert cpu_sharing([{"load_average": 1.1}, {"load_average": 0.9}], 1)["cpu_shared"] is False
    assert cpu_sharing([{"load_average": 2.0 + SHARED_LOAD_MARGIN}], 2)["cpu_shared"] is False  # at the margin
    # epochs of an older segment have no load: the others decide; none at all: unknown
    assert cpu_sharing([{}, {"load_average": 4.0}], 2)["load_average"] == 4.0
    assert cpu_sharing([{}, {"train_time_s": 1.0}], 2) == {"load_average": None, "run_threads": 2, "cpu_shared": None}


def _rec(label, seed, shared, load=3.2, threads=1):
    cost = {"wall_time_s": 1.0} if shared is None else {"wall_time_s": 1.0, "cpu_shared": shared,
                                                          "load_average": load, "run_threads": threads}
    return {"model": label, "label": label, "dataset": "d", "seed": seed, "test": {"ndcg@10": 0.1},
            "valid": {"ndcg@10": 0.1}, "protocol": {"split": "LS", "valid_metric": "NDCG@10", "epochs_max": 500,
                                                    "stopping_step": 10},
            "epochs_run": 3, "cost": cost, "commit": "abc", "finished_at": f"2026-01-0{seed}",
            "dataset_stats": {"users": 1, "items": 2, "interactions": 3, "train_samples": 1}}


def test_the_cost_page_says_which_rows_shared_the_cpu():
    assert cpu_shared([_rec("A", 1, False), _rec("A", 2, False)]) == "no"
    assert cpu_shared([_rec("B", 1, True, 3.0), _rec("B", 2, False), _rec("B", 3, True, 3.4)]) == \
        "yes (2 of 3; load 3.2 on 1 thread)"
    assert cpu_shared([_rec("C", 1, True, 5.0, 2)]) == "yes (1 of 1; load 5.0 on 2 threads)"
    assert cpu_shared([_rec("D", 1, None)]) == "n/a"  # made before records kept the load
    page = cost_page("d", [_rec("A", 1, False), _rec("B", 1, True), _rec("D", 1, None)])
    rows = {line.split("|")[1].strip(" †"): line.split("|")[-2].strip() for line in page.splitlines()
            if line.startswith("| ") and not line.startswith("| Model")}
    assert rows == {"A": "no", "B": "yes (1 of 1; load 3.2 on 1 thread)", "D": "n/a"}
    assert "CPU shared" in page


@pytest.mark.skipif(not hasattr(os, "getloadavg"), reason="no load average on this system")
def test_a_record_keeps_each_epochs_load_and_whether_the_cpu_was_shared(toy_data_path, tiny_overrides, tmp_path):
    record = run(RunSpec("SASRec", "toy", 2020, (), dict(tiny_overrides, epochs=2, topk=[5, 10]), toy_data_path, tmp_path / "s"))
    loads = [e["load_average"] for e in record["history"]]
    assert len(loads) == 2 and all(isinstance(x, float) and x >= 0 for x in loads)
    cost = record["cost"]
    assert cost["load_average"] == pytest.approx(sum(loads) / 2)
    assert cost["run_threads"] >= 1 and cost["cpu_shared"] == (cost["load_average"] > cost["run_threads"]
                                                                + SHARED_LOAD_MARGIN)
