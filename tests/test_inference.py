"""recbole_llm.load_run / recommend: a trained run loaded back, and its top-k against the evaluator's."""

import json
import shutil

import pytest
import torch

from recbole_llm import load_run, recommend
from recbole_llm.errors import UserError


@pytest.fixture(scope="module")
def sasrec_run(toy_data_path, tmp_path_factory):
    """A SASRec run on the toy data, its record written as the runner writes it."""
    from recbole_llm.benchmark.records import write_record
    from recbole_llm.pipeline import run
    from recbole_llm.spec import RunSpec

    root = tmp_path_factory.mktemp("sasrec_run")
    overrides = {"epochs": 2, "stopping_step": 2, "train_batch_size": 64, "show_progress": False,
                 "MAX_ITEM_LIST_LENGTH": 10, "embedding_size": 16, "hidden_size": 16, "inner_size": 32, "n_layers": 1,
                 "n_heads": 1, "topk": [5, 10], "item_text_field": "title"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        record = run(RunSpec("SASRec", "toy", 3, (), overrides, toy_data_path, root / "saved"))
    finally:
        torch.set_num_threads(threads)
    path = write_record(root / "results", {**record, "label": "SASRec", "budget": "full"})
    return {"record": record, "path": path, "saved": root / "saved", "data": toy_data_path, "root": root}


@pytest.fixture(scope="module")
def sasrec_loaded(sasrec_run):
    return load_run(sasrec_run["path"], "cpu", saved_dir=sasrec_run["saved"], data_path=sasrec_run["data"])


def _test_histories(run):
    """Each test user's token, the history the evaluator ranked from (item tokens) and the held-out item."""
    feat = run.test_data._dataset.inter_feat
    users = run.dataset.id2token("user_id", feat["user_id"].tolist())
    targets = run.dataset.id2token("item_id", feat["item_id"].tolist())
    histories = [list(run.dataset.id2token("item_id", feat["item_id_list"][i][:int(feat["item_length"][i])].tolist()))
                 for i in range(len(feat))]
    return list(users), histories, list(targets)


def test_a_record_loads_the_run_it_describes(sasrec_run, sasrec_loaded):
    from recbole_llm.identity import run_key

    run = sasrec_loaded
    assert not run.model.training and run.device == torch.device("cpu")
    assert run_key(run.config) == sasrec_run["record"]["run_key"]  # the same config, rebuilt from the checkpoint
    assert run.record["run_key"] == sasrec_run["record"]["run_key"]
    assert run.checkpoint.name == "best.pth" and run.checkpoint.parent.parent.parent == sasrec_run["saved"] / "runs"
    config, model, dataset, train_data, valid_data, test_data = run.as_recbole()
    assert (config["model"], config["epochs"], config["hidden_size"]) == ("SASRec", 2, 16)
    assert dataset.item_num == 31 and len(test_data._dataset) == 40
    # the run folder and the checkpoint itself load the same weights
    for path in (run.checkpoint.parent, run.checkpoint):
        other = load_run(path, "cpu", saved_dir=sasrec_run["saved"], data_path=sasrec_run["data"])
        assert run_key(other.config) == run_key(run.config) and other.record is None
        for (name, a), (_, b) in zip(run.model.state_dict().items(), other.model.state_dict().items()):
            assert torch.equal(a, b), name


def test_recommend_ranks_the_held_out_items_as_the_evaluator_did(sasrec_run, sasrec_loaded):
    """Without the seen items left out, recommend scores exactly as RecBole's full-ranking evaluation
    of a sequential model (which masks only the padding item): every test user's held-out item has
    the rank the record keeps (per_user: 1-based within the top 10, 0 beyond)."""
    run = sasrec_loaded
    users, histories, targets = _test_histories(run)
    got = recommend(run, histories=histories, k=10, exclude_seen=False)
    stored = dict(zip(sasrec_run["record"]["per_user"]["users"], sasrec_run["record"]["per_user"]["rank"]))
    ranks = [(r["items"].index(t) + 1 if t in r["items"] else 0) for r, t in zip(got, targets)]
    assert ranks == [stored[u] for u in users]
    assert any(ranks)  # some held-out item is in a top 10: the comparison is not vacuous
    # and the top-10 lists are full_sort_predict's on the evaluator's own test batch
    feat = run.test_data._dataset.inter_feat
    with torch.no_grad():
        scores = run.model.full_sort_predict(feat)
    scores[:, 0] = -torch.inf
    top = torch.topk(scores, 10, dim=1).indices
    assert [r["items"] for r in got] == [list(run.dataset.id2token("item_id", row.tolist())) for row in top]


def test_a_users_history_is_every_interaction_and_seen_items_are_left_out(sasrec_loaded):
    run = sasrec_loaded
    users, histories, targets = _test_histories(run)
    full = [h + [t] for h, t in zip(histories, targets)]  # what the user has done: the test item included
    by_user = recommend(run, users=users[:5], k=8, exclude_seen=False)
    by_history = recommend(run, histories=full[:5], k=8, exclude_seen=False)
    assert [r["items"] for r in by_user] == [r["items"] for r in by_history]
    assert [r["user"] for r in by_user] == users[:5] and by_history[0]["user"] is None
    # by default the items a user has interacted with are left out; the others keep their order
    everything = recommend(run, users=users[:5], k=30, exclude_seen=False)
    new = recommend(run, users=users[:5], k=30)
    for user, all_items, fresh in zip(users[:5], everything, new):
        seen = set(run.dataset.id2token("item_id", run.user_items[int(run.dataset.token2id("user_id", user))]))
        assert seen and not seen & set(fresh["items"])
        assert fresh["items"] == [i for i in all_items["items"] if i not in seen]
        assert len(fresh["items"]) == 30 - len(seen)
        assert fresh["scores"] == sorted(fresh["scores"], reverse=True)
    # titles come from the dataset's item_text_field
    assert new[0]["titles"] == [f"Thing number {item[1:]}" for item in new[0]["items"]]


def test_bad_queries_are_one_line_errors(sasrec_loaded):
    with pytest.raises(UserError, match="unknown user 'nobody'"):
        recommend(sasrec_loaded, users=["u1", "nobody"])
    with pytest.raises(UserError, match="unknown item 'i999'"):
        recommend(sasrec_loaded, histories=[["i1", "i999"]])
    with pytest.raises(UserError, match="pass users .* or histories"):
        recommend(sasrec_loaded)


def test_changed_data_or_a_missing_checkpoint_is_refused(sasrec_run, tmp_path):
    changed = tmp_path / "data"
    shutil.copytree(sasrec_run["data"], changed)
    inter = changed / "toy" / "toy.inter"
    inter.write_text(inter.read_text() + "u1\ti2\t5\t99999\n")  # one more interaction
    with pytest.raises(UserError, match="not the ones this run was trained on"):
        load_run(sasrec_run["path"], "cpu", saved_dir=sasrec_run["saved"], data_path=changed)
    with pytest.raises(UserError, match="pass saved_dir"):
        load_run(sasrec_run["path"], "cpu", saved_dir=tmp_path / "elsewhere", data_path=sasrec_run["data"])


def test_recbole_load_data_and_model_names_load_run(sasrec_loaded):
    """RecBole's own loader reads the checkpoint's config as the plain dict it is; compat makes that
    one line naming recbole_llm.load_run instead of AttributeError: 'dict' ... 'final_config_dict'."""
    from recbole.quick_start import load_data_and_model

    with pytest.raises(UserError, match=r"recbole-llm checkpoint .* load it with recbole_llm\.load_run\(path\)") as err:
        load_data_and_model(str(sasrec_loaded.checkpoint))
    assert "\n" not in str(err.value)


def test_the_recommend_verb_prints_what_recommend_returns(sasrec_run, sasrec_loaded, capsys):
    from recbole_llm.cli import main

    args = ["recommend", f"--record={sasrec_run['path']}", "--users=u1,u2", "--k=3", "--device=cpu",
            f"--saved-dir={sasrec_run['saved']}", f"--data-path={sasrec_run['data']}"]
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == recommend(sasrec_loaded, users=["u1", "u2"], k=3)
    assert main(args) == 0
    table = capsys.readouterr().out
    first = recommend(sasrec_loaded, users=["u1"], k=1)[0]
    assert any(line.startswith("| u1 ") and f"| {first['items'][0]} " in line and first["titles"][0] in line
               for line in table.splitlines())
    assert main(["recommend", f"--record={sasrec_run['path']}", "--users=zz", f"--saved-dir={sasrec_run['saved']}",
                 f"--data-path={sasrec_run['data']}"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: unknown user 'zz'")


def test_an_llm_run_loads_with_its_frozen_id_model_found_through_the_record(toy_data_path, llm_overrides, tmp_path):
    """IDLEAdapter on the tiny LM: its saved/ folder moved after training (another machine), the
    record's portable ID-model path and sha256 find the ComiRec it was built on."""
    from recbole_llm.benchmark.records import write_record
    from recbole_llm.pipeline import run
    from recbole_llm.spec import RunSpec

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        record = run(RunSpec("IDLEAdapter", "toy", 5, (), {**llm_overrides, "epochs": 1, "measure_overhead_batches": 0},
                             toy_data_path, tmp_path / "saved"))
    finally:
        torch.set_num_threads(threads)
    path = write_record(tmp_path / "results", {**record, "label": "IDLEAdapter", "budget": "full"})
    assert record["parameters"]["id_model_checkpoint"].startswith("{saved}/id_models/toy/ComiRec-")
    shutil.move(tmp_path / "saved", tmp_path / "moved")
    loaded = load_run(path, "cpu", saved_dir=tmp_path / "moved", data_path=toy_data_path)
    assert type(loaded.model).__name__ == "IDLEAdapter" and not loaded.model.training
    assert loaded.model.id_model.name == "ComiRec"
    assert loaded.config["id_model_checkpoint"].startswith(str(tmp_path / "moved" / "id_models" / "toy"))
    users, histories, targets = _test_histories(loaded)
    got = recommend(loaded, histories=histories, k=10, exclude_seen=False)
    stored = dict(zip(record["per_user"]["users"], record["per_user"]["rank"]))
    ranks = [(r["items"].index(t) + 1 if t in r["items"] else 0) for r, t in zip(got, targets)]
    assert ranks == [stored[u] for u in users]
    # another ID model in its place is refused by the sha256 of its weights
    from recbole_llm.checkpoint import load_checkpoint, save_checkpoint

    (cached,) = (tmp_path / "moved" / "id_models" / "toy").glob("ComiRec-*.pth")
    entry = load_checkpoint(cached, trust=False)
    # the same weights saved with another machine's paths (another file digest) are the same ID model
    save_checkpoint(cached, **{k: v for k, v in entry.items() if k not in ("format", "config")},
                    config={**entry["config"], "data_path": "/another/machine/toy"})
    load_run(path, "cpu", saved_dir=tmp_path / "moved", data_path=toy_data_path)
    name = sorted(entry["state_dict"])[0]
    entry["state_dict"][name] = entry["state_dict"][name] + 1
    save_checkpoint(cached, **{k: v for k, v in entry.items() if k != "format"})
    with pytest.raises(UserError, match="not the ID model this run was trained on"):
        load_run(path, "cpu", saved_dir=tmp_path / "moved", data_path=toy_data_path)


def test_a_general_model_recommends_for_users_by_id(toy_data_path, tmp_path):
    """BPR scores users by id: its recommendations are full_sort_predict's for the user, the user's
    interactions left out by default (RecBole's evaluation of a general model leaves out the earlier
    ones); a raw history is refused."""
    from recbole.data.interaction import Interaction

    from recbole_llm.pipeline import run
    from recbole_llm.spec import RunSpec

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run(RunSpec("BPR", "toy", 2, (), {"epochs": 1, "train_batch_size": 64, "show_progress": False, "topk": [5, 10],
                                          "embedding_size": 8}, toy_data_path, tmp_path / "saved"))
    finally:
        torch.set_num_threads(threads)
    (folder,) = (tmp_path / "saved" / "runs" / "toy").glob("BPR-seed2-*")
    loaded = load_run(folder, "cpu", saved_dir=tmp_path / "saved", data_path=toy_data_path)
    users = ["u3", "u7"]
    uids = loaded.dataset.token2id("user_id", users)
    with torch.no_grad():
        scores = loaded.model.full_sort_predict(Interaction({"user_id": torch.tensor(uids)})).view(2, -1)
    scores[:, 0] = -torch.inf
    top = torch.topk(scores, 5, dim=1).indices
    got = recommend(loaded, users=users, k=5, exclude_seen=False)
    assert [r["items"] for r in got] == [list(loaded.dataset.id2token("item_id", row.tolist())) for row in top]
    for uid, entry in zip(uids, recommend(loaded, users=users, k=30)):
        seen = set(loaded.dataset.id2token("item_id", loaded.user_items[int(uid)]))
        assert len(entry["items"]) == 30 - len(seen) and not seen & set(entry["items"])
    with pytest.raises(UserError, match="BPR is a general model: it scores users by id"):
        recommend(loaded, histories=[["i1"]])
