"""Run records count the interactions as loaded, not RecBole's augmented samples; tables correct
records made before that fix."""

import pytest

from recbole_llm.benchmark import per_user, plots
from recbole_llm.benchmark.notes import provenance
from recbole_llm.benchmark.records import dataset_stats, history_lengths
from recbole_llm.record import RECORD_VERSION
from recbole_llm.pipeline import run
from recbole_llm.spec import RunSpec

COUNTS = {"u1": 5, "u2": 7, "u3": 9}  # 21 interactions


@pytest.fixture
def data_path(tmp_path):
    folder = tmp_path / "data" / "counts"
    folder.mkdir(parents=True)
    lines, t = ["user_id:token\titem_id:token\ttimestamp:float"], 0
    for user, n in COUNTS.items():
        for k in range(n):
            t += 1
            lines.append(f"{user}\ti{k % 6}\t{t}")
    (folder / "counts.inter").write_text("\n".join(lines) + "\n")
    return tmp_path / "data"


@pytest.mark.parametrize("model", ["SASRec", "BPR"])
def test_record_counts_interactions_and_history_lengths_as_loaded(model, data_path, tiny_overrides, tmp_path):
    overrides = dict(tiny_overrides, epochs=1, topk=[5], user_inter_num_interval=None, valid_metric="NDCG@5")
    record = run(RunSpec(model, "counts", 2020, (), overrides, data_path, tmp_path / "saved"))
    assert record["record_version"] == RECORD_VERSION == 2
    assert record["dataset_stats"]["interactions"] == 21
    assert record["dataset_stats"]["users"] == 3
    pu = record["per_user"]
    assert dict(zip(pu["users"], pu["history_length"])) == {"u1": 4, "u2": 6, "u3": 8}
    assert dataset_stats(record)["interactions"] == 21 and history_lengths(record) == pu["history_length"]


def old_record(model_type, interactions, lengths, load_col=None):
    """A record as made before the fix (no record_version)."""
    return {
        "model": "M", "label": "M", "dataset": "d", "seed": 1, "commit": "abc",
        "protocol": {"split": "LS", "valid_metric": "NDCG@10", "epochs_max": 5, "stopping_step": 2},
        "config": {"MODEL_TYPE": model_type, "load_col": load_col or {"inter": ["user_id", "item_id"]}},
        "dataset_stats": {"users": 3, "items": 6, "interactions": interactions, "train_samples": 12},
        "per_user": {"split": "test", "users": ["u1", "u2", "u3"], "rank": [1, 2, 0], "targets": [1, 1, 1],
                     "history_length": lengths, "max_k": 10},
    }


def test_tables_correct_records_made_before_the_fix():
    old_seq = old_record("SEQUENTIAL", 18, [3, 5, 7])  # what the augmented inter_feat said
    assert dataset_stats(old_seq)["interactions"] == 21
    assert history_lengths(old_seq) == [4, 6, 8]
    assert old_seq["dataset_stats"]["interactions"] == 18  # the record itself is not edited
    assert provenance([old_seq], "d").startswith("Dataset `d` (3 users, 6 items, 21 interactions)")
    assert plots.history_edges([old_seq])[0] == 4
    assert [s[1] for s in per_user.history_slices([old_seq], "hit@10", [4, 6, 8, 9])] == [1, 1, 1]

    old_general = old_record("GENERAL", 21, [4, 6, 8])  # no augmentation: already right
    assert dataset_stats(old_general)["interactions"] == 21 and history_lengths(old_general) == [4, 6, 8]
    new_seq = dict(old_record("SEQUENTIAL", 21, [4, 6, 8]), record_version=2)
    assert dataset_stats(new_seq)["interactions"] == 21 and history_lengths(new_seq) == [4, 6, 8]
    # with a .user file loaded, users without interactions may exist: the stored count is kept
    with_users = old_record("SEQUENTIAL", 18, [3, 5, 7], {"inter": ["user_id", "item_id"], "user": ["user_id"]})
    assert dataset_stats(with_users)["interactions"] == 18 and history_lengths(with_users) == [4, 6, 8]
