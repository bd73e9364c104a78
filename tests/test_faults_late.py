"""Issue 36, kind 4: what can be checked without training is checked first, in seconds, with one
line naming the dataset, file or option and the fix; nothing trains before it.

(a) a dataset too small for its split; (b) a language model whose weights are missing, Git LFS
pointers, cut short or more than tensors; (c) an ``lm_name`` that can only be a path, or a hub name
while the hub cannot be reached; (d) a sliding-window LM too short for the prompt and the prefix;
(e) ``topk`` cut-offs not below the number of items.
"""

import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from recbole_llm.errors import UserError
from recbole_llm.pipeline import run
from recbole_llm.quick_start import build_config
from recbole_llm.spec import RunSpec

LFS_POINTER = (b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 90868376\n")

TINY_SASREC = {"epochs": 2, "train_batch_size": 64, "eval_batch_size": 256, "show_progress": False,
               "MAX_ITEM_LIST_LENGTH": 10, "embedding_size": 16, "hidden_size": 16, "inner_size": 32, "n_layers": 1,
               "n_heads": 1, "topk": [5, 10], "load_col": {"inter": ["user_id", "item_id", "timestamp"]}}


def _nothing_trained(saved):
    assert not (saved / "id_models").exists() and not (saved / "runs").exists()
    assert not list(Path(saved).rglob("best.pth")) and not list(Path(saved).rglob("state.pth"))


def _fails_fast(spec, limit=5.0):
    """The one-line UserError ``run(spec)`` raises, checked to come within ``limit`` seconds."""
    started = time.perf_counter()
    with pytest.raises(UserError) as err:
        run(spec)
    elapsed = time.perf_counter() - started
    message = str(err.value)
    assert len(message.splitlines()) == 1, message
    assert elapsed < limit, f"{elapsed:.1f}s: {message}"
    return message


def write_counts(data_path, counts, n_items=15, name="tiny"):
    """A dataset ``name`` whose user ``k`` has ``counts[k]`` time-ordered interactions (items cycling
    over ``n_items``), with a title per item."""
    folder = Path(data_path) / name
    folder.mkdir(parents=True, exist_ok=True)
    lines, t = ["user_id:token\titem_id:token\ttimestamp:float"], 0
    for u, n in enumerate(counts, 1):
        for k in range(n):
            t += 1
            lines.append(f"u{u}\ti{(u + k) % n_items + 1}\t{t}")
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    titles = ["item_id:token\ttitle:token_seq"] + [f"i{i}\tThing number {i}" for i in range(1, n_items + 1)]
    (folder / f"{name}.item").write_text("\n".join(titles) + "\n")
    return Path(data_path)


# ----------------------------------------------------------------- (a) a dataset too small for its split
@pytest.mark.parametrize("model, per_user, extra, expected", [
    # sequential: a user with n interactions has n - 1 samples; leave-one-out keeps one for training
    ("SASRec", 1, {}, "its train split is empty (train 0, validation 0, test 0 cases from 20 users and 20 "
                      "interactions after RecBole's filters); with a sequential model, a user has a train case only "
                      "with >= 2 interactions, and the most any user has is 1: add interactions (users with >= 2 each)"),
    ("SASRec", 2, {}, "its validation split is empty (train 20, validation 0, test 0 cases from 20 users and 40 "
                      "interactions after RecBole's filters); with a sequential model, a user has a validation case "
                      "only with >= 4 interactions, and the most any user has is 2"),
    ("SASRec", 3, {}, "its validation split is empty (train 20, validation 0, test 20 cases"),
    ("GRU4Rec", 3, {}, "a user has a validation case only with >= 4 interactions, and the most any user has is 3"),
    # a general model splits the interactions themselves
    ("BPR", 2, {}, "its validation split is empty (train 20, validation 0, test 20 cases from 20 users and 40 "
                   "interactions after RecBole's filters); a user has a validation case only with >= 3 interactions"),
])
def test_a_dataset_too_small_for_leave_one_out_is_refused_before_training(tmp_path, model, per_user, extra, expected):
    data = write_counts(tmp_path / "data", [per_user] * 20)
    saved = tmp_path / "saved"
    message = _fails_fast(RunSpec(model, "tiny", 1, (), {**TINY_SASREC, **extra}, data, saved))
    assert message.startswith("dataset 'tiny' is too small for eval_args.split {'LS': 'valid_and_test'}: ")
    assert expected in message
    assert "epochs" not in message and "eval_step" not in message  # the old, wrong blame
    _nothing_trained(saved)


def test_the_message_names_the_filters_that_made_the_dataset_too_small(tmp_path):
    """Users of 3 and of 10 interactions; a filter keeps only the first: validation is empty, and
    the fix names the filter."""
    data = write_counts(tmp_path / "data", [3] * 10 + [10] * 10)
    message = _fails_fast(RunSpec("SASRec", "tiny", 1, (), {**TINY_SASREC, "user_inter_num_interval": "[0,3]"}, data,
                                  tmp_path / "saved"))
    assert "its validation split is empty (train 10, validation 0, test 10 cases from 10 users and 30 interactions" in message
    assert message.endswith("add interactions (users with >= 4 each), or loosen the filters "
                            "(user_inter_num_interval: [0,3])")


def test_filters_that_leave_nothing_are_one_line_not_recbole_s_traceback(tmp_path):
    data = write_counts(tmp_path / "data", [4] * 20)
    message = _fails_fast(RunSpec("SASRec", "tiny", 1, (), {**TINY_SASREC, "user_inter_num_interval": "[5,inf)"},
                                  data, tmp_path / "saved"))
    assert message == ("dataset 'tiny' is too small: no row of its .inter file is left after RecBole's filters: "
                       "loosen the filters (user_inter_num_interval: [5,inf)) or add interactions")


@pytest.mark.parametrize("split, source", [
    ({"LS": "test_only"}, "{'LS': 'test_only'} (from --eval_args)"),
    ({"RS": [0.8, 0.0, 0.2]}, "{'RS': [0.8, 0.0, 0.2]} (from --eval_args)"),
])
def test_a_split_without_validation_is_a_config_error_not_a_small_dataset(tmp_path, split, source):
    data = write_counts(tmp_path / "data", [8] * 20)
    eval_args = {"split": split, "order": "TO", "group_by": "user", "mode": "full"}
    message = _fails_fast(RunSpec("SASRec", "tiny", 1, (), {**TINY_SASREC, "eval_args": eval_args}, data,
                                  tmp_path / "saved"))
    assert message.startswith(f"eval_args.split {source} makes no validation split, and training selects its best "
                              "epoch on one")


def test_a_dataset_just_large_enough_trains(tmp_path):
    """Four interactions per user give every split a case with a sequential model (three with BPR)."""
    data = write_counts(tmp_path / "data", [4] * 20)
    record = run(RunSpec("SASRec", "tiny", 1, (), {**TINY_SASREC, "epochs": 1}, data, tmp_path / "saved"))
    assert record["valid"] is not None and record["test"] is not None
    data = write_counts(tmp_path / "data3", [3] * 20)
    record = run(RunSpec("BPR", "tiny", 1, (), {**TINY_SASREC, "epochs": 1}, data, tmp_path / "saved"))
    assert record["valid"] is not None


def test_an_llm_run_on_a_dataset_too_small_stops_before_its_id_model_trains(tmp_path, llm_overrides):
    data = write_counts(tmp_path / "data", [3] * 20)
    saved = tmp_path / "saved"
    message = _fails_fast(RunSpec("IDLEAdapter", "tiny", 1, (), llm_overrides, data, saved), limit=10.0)
    assert "dataset 'tiny' is too small for eval_args.split" in message and "validation split is empty" in message
    _nothing_trained(saved)


# ----------------------------------------------------------------- (e) topk beyond the items
@pytest.mark.parametrize("topk, too_big, suggestion", [
    ([5, 10, 50], [50], "[5,10]"),
    ([5, 10, 30], [30], "[5,10]"),  # every one of the 30 items is in the top 30: HR@30 = 1
    ([100], [100], "[15]"),
])
def test_topk_not_below_the_item_count_is_refused_before_training(toy_data_path, tmp_path, tiny_overrides, topk,
                                                                   too_big, suggestion):
    saved = tmp_path / "saved"
    overrides = {**tiny_overrides, "topk": topk, "valid_metric": f"NDCG@{topk[0]}"}
    message = _fails_fast(RunSpec("SASRec", "toy", 1, (), overrides, toy_data_path, saved))
    assert message == (f"config key topk = {topk} (from --topk) has cut-offs {too_big} that are not below the 30 items "
                       f"of dataset 'toy' (after RecBole's filters): every item would be in the top K; use smaller "
                       f"cut-offs, e.g. --topk={suggestion} (and a valid_metric among them)")
    _nothing_trained(saved)


def test_topk_is_checked_against_the_items_after_filtering(tmp_path):
    from recbole_llm.data.dataset import check_topk, create_dataset

    data = write_counts(tmp_path / "data", [6] * 20, n_items=12)
    config = build_config(RunSpec("SASRec", "tiny", 1, (), {**TINY_SASREC, "topk": [5, 11], "valid_metric": "NDCG@5"}, data, tmp_path / "s"))
    check_topk(create_dataset(config))  # 11 < 12 items
    config["topk"] = [5, 12]
    with pytest.raises(UserError, match=r"has cut-offs \[12\] that are not below the 12 items of dataset 'tiny'"):
        check_topk(create_dataset(config))


def test_an_llm_run_with_topk_beyond_the_items_stops_in_its_preflight(toy_data_path, tmp_path, llm_overrides):
    saved = tmp_path / "saved"
    message = _fails_fast(RunSpec("IDLEAdapter", "toy", 1, (), {**llm_overrides, "topk": [5, 10, 50]}, toy_data_path,
                                  saved), limit=3.0)
    assert "has cut-offs [50] that are not below the 30 items of dataset 'toy'" in message
    _nothing_trained(saved)


# ----------------------------------------------------------------- (b) LM weights missing or refused
def _copy_lm(tiny_bert, folder):
    shutil.copytree(tiny_bert, folder)
    return folder


def _lfs_pointer(folder):
    (folder / "model.safetensors").write_bytes(LFS_POINTER)


def _no_weights(folder):
    (folder / "model.safetensors").unlink()


def _cut_short(folder):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def _empty(folder):
    (folder / "model.safetensors").write_bytes(b"")


def _lfs_bin(folder):
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(LFS_POINTER)


def _missing_shard(folder):
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    index = {"metadata": {}, "weight_map": {"embeddings.word_embeddings.weight": "model-00001-of-00002.safetensors",
                                            "pooler.dense.weight": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


@pytest.mark.parametrize("damage, expected", [
    (_lfs_pointer, f"model.safetensors is a Git LFS pointer ({len(LFS_POINTER)} bytes), not the weights: run 'git lfs "
                   "pull' in "),
    (_lfs_bin, f"pytorch_model.bin is a Git LFS pointer ({len(LFS_POINTER)} bytes), not the weights: run 'git lfs pull' "
               "in "),
    (_no_weights, "has no weight file (model.safetensors, pytorch_model.bin or a shard index; it holds config.json, "),
    (_cut_short, "model.safetensors is not a whole safetensors file (Error while deserializing header: incomplete "
                 "metadata, file not fully covered; "),
    (_empty, "model.safetensors is empty (0 bytes): copy it again"),
    (_missing_shard, "model-00002-of-00002.safetensors is missing (listed in the shard index)"),
])
def test_lm_weights_missing_or_damaged_stop_the_run_before_its_id_model(tmp_path, tiny_bert, toy_data_path,
                                                                        llm_overrides, damage, expected):
    folder = _copy_lm(tiny_bert, tmp_path / "lm")
    damage(folder)
    saved = tmp_path / "saved"
    message = _fails_fast(RunSpec("IDLEAdapter", "toy", 1, (), {**llm_overrides, "lm_name": str(folder)},
                                  toy_data_path, saved), limit=3.0)
    assert message.startswith(f"language model '{folder}' (lm_name): {folder}")
    assert expected in message
    _nothing_trained(saved)


class _Payload:
    """Pickles as a call to ``Path.touch`` on its marker: what a ``.bin`` may hold besides tensors."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_bin_that_pickles_more_than_tensors_is_refused_unread(tmp_path, tiny_bert):
    """transformers loads ``.bin`` with ``weights_only``, which refuses it only when the model loads
    (after the ID model trained); the preflight lists its globals without unpickling anything."""
    from safetensors.torch import load_file

    from recbole_llm.lm.backbone import inspect_lm

    folder = _copy_lm(tiny_bert, tmp_path / "lm")
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "UNPICKLED"
    torch.save({**state, "extra": _Payload(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(UserError) as err:
        inspect_lm(str(folder))
    message = str(err.value)
    assert message.startswith(f"language model '{folder}' (lm_name): {folder / 'pytorch_model.bin'} holds pickled "
                              "Python objects besides tensors (builtins.getattr, pathlib.")  # pathlib.PosixPath here
    assert message.endswith("), which transformers refuses to load and recbole-llm never unpickles: use the model's "
                            "model.safetensors")
    assert not marker.exists()
    torch.save(state, folder / "pytorch_model.bin")  # tensors only: accepted
    assert inspect_lm(str(folder)).model_type == "bert"


def test_a_gguf_file_that_is_an_lfs_pointer_is_refused(tmp_path):
    from recbole_llm.lm.backbone import check_weights
    from recbole_llm.lm.resolve import resolve_lm

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(LFS_POINTER)
    with pytest.raises(UserError, match=rf"model.gguf is a Git LFS pointer \({len(LFS_POINTER)} bytes\), not the weights"):
        check_weights(str(gguf), resolve_lm(str(gguf)))
    gguf.write_bytes(b"GGUF" + b"\0" * 60)
    check_weights(str(gguf), resolve_lm(str(gguf)))  # the magic number is there: transformers reads the rest
    gguf.write_bytes(b"<html>not found</html>")
    with pytest.raises(UserError, match="is not a GGUF file"):
        check_weights(str(gguf), resolve_lm(str(gguf)))


def test_the_weight_file_transformers_would_read_is_the_one_checked(tmp_path, tiny_bert):
    """A stale LFS pointer beside a real model.safetensors is not read by transformers: no refusal."""
    from recbole_llm.lm.backbone import inspect_lm

    folder = _copy_lm(tiny_bert, tmp_path / "lm")
    (folder / "pytorch_model.bin").write_bytes(LFS_POINTER)
    assert inspect_lm(str(folder)).model_type == "bert"


# ----------------------------------------------------------------- (c) an lm_name that is not there
@pytest.mark.parametrize("name", ["./no-such-lm", "../no-such-lm", "models/my-lm", "a/b/c", "no-such-lm.gguf",
                                  "~/no-such-lm-36"])
def test_a_path_that_does_not_exist_fails_at_once_without_asking_the_hub(name, tmp_path, monkeypatch, toy_data_path,
                                                                         llm_overrides):
    import recbole_llm.lm.resolve as resolve

    def no_probe(*args):
        raise AssertionError("the hub was probed for a name that can only be a path")

    monkeypatch.setattr(resolve, "_probe", no_probe)
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)  # models/my-lm is then a path: models/ is a local folder
    monkeypatch.chdir(work)
    saved = tmp_path / "saved"
    message = _fails_fast(RunSpec("IDLEAdapter", "toy", 1, (), {**llm_overrides, "lm_name": name}, toy_data_path,
                                  saved), limit=1.5)
    absolute = Path(name).expanduser()
    absolute = absolute if absolute.is_absolute() else work / name
    assert message.startswith(f"cannot load language model '{name}' (lm_name): {absolute} does not exist")
    assert message.endswith("set lm_name to a folder holding config.json and the weights, a .gguf file, or a hub name "
                            "'org/name'")
    _nothing_trained(saved)


def test_a_misspelt_local_folder_names_the_closest_one(tmp_path, tiny_bert, monkeypatch):
    from recbole_llm.lm.backbone import inspect_lm

    _copy_lm(tiny_bert, tmp_path / "models" / "minilm-tiny")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as err:
        inspect_lm("models/minilm-tinny")
    assert f"{tmp_path / 'models' / 'minilm-tinny'} does not exist (a relative lm_name is taken from the working " \
           f"directory {tmp_path}); {tmp_path / 'models' / 'minilm-tiny'} does;" in str(err.value)


@pytest.mark.parametrize("env, reason", [
    ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE=1"),
    ({"TRANSFORMERS_OFFLINE": "yes"}, "TRANSFORMERS_OFFLINE=yes"),
    ({"HF_ENDPOINT": "http://127.0.0.1:9"}, "no connection to 127.0.0.1:9"),  # the discard port: refused at once
    ({"HTTPS_PROXY": "http://127.0.0.1:9"}, "no connection to the proxy 127.0.0.1:9"),
])
def test_a_hub_name_while_the_hub_cannot_be_reached_looks_in_the_cache_only(env, reason, monkeypatch, tmp_path,
                                                                            toy_data_path, llm_overrides):
    from recbole_llm.lm.resolve import resolve_lm

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.chdir(tmp_path)
    resolved = resolve_lm("some-org/not-cached-lm")
    assert resolved.kwargs == {"local_files_only": True}
    assert resolved.tried[-1] == f"the local Hugging Face cache for 'some-org/not-cached-lm' (not the hub: {reason})"
    saved = tmp_path / "saved"
    message = _fails_fast(RunSpec("IDLEAdapter", "toy", 1, (), {**llm_overrides, "lm_name": "some-org/not-cached-lm"},
                                  toy_data_path, saved), limit=5.0)
    assert message.startswith("cannot load language model 'some-org/not-cached-lm' (lm_name); tried: ")
    assert f"(not the hub: {reason})" in message
    assert message.endswith("or download it where the network reaches the hub (into the cache HF_HOME names)")
    _nothing_trained(saved)


def test_a_hub_name_goes_to_the_hub_when_it_answers(monkeypatch):
    import recbole_llm.lm.resolve as resolve

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(resolve, "_probe", lambda host, port, timeout: (host, port) == ("huggingface.co", 443))
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    resolved = resolve.resolve_lm("some-org/some-lm")
    assert resolved.kwargs == {} and resolved.tried[-1] == "Hugging Face hub 'some-org/some-lm'"
    assert resolve.looks_like_path("some-org/some-lm") is False and resolve.looks_like_path("bert-base-uncased") is False


# ----------------------------------------------------------------- (d) a sliding window too short
def _sliding_lm(folder, kind, window):
    """A tiny random ``kind`` decoder whose sliding-window layers see ``window`` tokens, saved with
    the bundled MiniLM tokenizer (enough for the preflight, which loads no weight)."""
    import transformers as tf
    from transformers import AutoModel, AutoTokenizer

    from recbole_llm.lm.resolve import DEFAULT_LM, resolve_lm

    tokenizer = AutoTokenizer.from_pretrained(resolve_lm(DEFAULT_LM).path)
    common = dict(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, pad_token_id=0)
    config = {
        "mistral": lambda: tf.MistralConfig(**common, sliding_window=window),
        "gemma3_text": lambda: tf.Gemma3TextConfig(**common, head_dim=8, query_pre_attn_scalar=8, sliding_window=window,
                                                   layer_types=["sliding_attention", "full_attention"]),
        "llama": lambda: tf.LlamaConfig(**common),
    }[kind]()
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("kind", ["mistral", "gemma3_text"])
def test_a_prompt_and_prefix_beyond_the_sliding_window_stop_the_run_in_its_preflight(kind, tmp_path, toy_data_path,
                                                                                     llm_overrides):
    from recbole_llm.model.sequential_recommender.idleadapter import IDLEAdapter

    name = _sliding_lm(tmp_path / kind, kind, window=48)
    overrides = {**llm_overrides, "lm_name": name, "prompt_max_tokens": 40, "prefix_len": 10}
    saved = tmp_path / "saved"
    message = _fails_fast(RunSpec("IDLEAdapter", "toy", 1, (), overrides, toy_data_path, saved), limit=3.0)
    assert message == (f"language model '{name}' attends over a sliding window of 48 tokens in some layers: a prefix "
                       "of 10 before 40 input tokens (50) would drop out of view for the last tokens; lower "
                       "prompt_max_tokens (40) or prefix_len (10) to fit 48")
    _nothing_trained(saved)
    fits = build_config(RunSpec("IDLEAdapter", "toy", 1, (), {**overrides, "prompt_max_tokens": 38}, toy_data_path, saved))
    assert IDLEAdapter.preflight(fits)["items"] == 30  # 38 + 10 = 48: the prefix stays in view


def test_rarec_item_prompts_are_held_against_the_window_too(tmp_path, toy_data_path, llm_overrides):
    name = _sliding_lm(tmp_path / "mistral", "mistral", window=48)
    overrides = {**llm_overrides, "lm_name": name, "prompt_max_tokens": 30, "item_prompt_max_tokens": 40,
                 "prefix_len": 10}
    saved = tmp_path / "saved"
    message = _fails_fast(RunSpec("RARec", "toy", 1, (), overrides, toy_data_path, saved), limit=3.0)
    assert message.endswith("a prefix of 10 before 40 input tokens (50) would drop out of view for the last tokens; "
                            "lower item_prompt_max_tokens (40) or prefix_len (10) to fit 48")
    _nothing_trained(saved)


def test_an_lm_without_a_sliding_window_takes_any_budget(tmp_path, toy_data_path, llm_overrides):
    from recbole_llm.model.sequential_recommender.idleadapter import IDLEAdapter

    name = _sliding_lm(tmp_path / "llama", "llama", window=None)
    config = build_config(RunSpec("IDLEAdapter", "toy", 1, (), {**llm_overrides, "lm_name": name,
                                                                 "prompt_max_tokens": 200, "prefix_len": 50},
                                  toy_data_path, tmp_path / "saved"))
    assert IDLEAdapter.preflight(config)["items"] == 30


def test_a_multimodal_config_is_read_through_its_text_config():
    import transformers as tf

    from recbole_llm.lm.backbone import sliding_window

    text = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, head_dim=8, sliding_window=48, layer_types=["sliding_attention", "full_attention"])
    assert sliding_window(tf.Gemma3Config(text_config=text)) == 48
    assert sliding_window(tf.Gemma3TextConfig(**{**text, "layer_types": ["full_attention"] * 2})) is None


def test_a_model_that_needs_its_own_code_is_refused_in_the_preflight_and_its_code_never_runs(tmp_path, tiny_bert,
                                                                                             toy_data_path,
                                                                                             llm_overrides):
    """A checkpoint whose config names code of its own (``auto_map``, what ``trust_remote_code`` would
    run): refused from its config, before the ID model trains; the code is never imported."""
    folder = _copy_lm(tiny_bert, tmp_path / "lm")
    marker = tmp_path / "EXECUTED"
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="my-custom-lm", auto_map={"AutoConfig": "configuration_x.XConfig",
                                                       "AutoModel": "modeling_x.XModel"})
    (folder / "config.json").write_text(json.dumps(config))
    for module in ("configuration_x", "modeling_x"):
        (folder / f"{module}.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n")
    saved = tmp_path / "saved"
    message = _fails_fast(RunSpec("IDLEAdapter", "toy", 1, (), {**llm_overrides, "lm_name": str(folder)},
                                  toy_data_path, saved), limit=3.0)
    assert message.startswith(f"language model '{folder}' (lm_name) is a my-custom-lm model that needs code of its own "
                              f"(configuration_x.XConfig, modeling_x.XModel, auto_map in {folder / 'config.json'}), "
                              "which recbole-llm never runs; supported architectures: bert, ")
    assert not marker.exists()
    _nothing_trained(saved)
    from recbole_llm.lm.backbone import inspect_lm

    (folder / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))  # transformers' own class
    assert inspect_lm(str(folder)).model_type == "bert" and not marker.exists()
