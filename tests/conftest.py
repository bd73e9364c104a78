"""Shared fixtures: a tiny synthetic dataset in RecBole atomic format, written per test session."""

import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOY = "toy"


def write_toy(data_path, name=TOY, n_users=40, n_items=30, seed=0):
    """Users with 6-14 time-ordered interactions and a title per item."""
    rng = random.Random(seed)
    folder = Path(data_path) / name
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    t = 0
    for u in range(1, n_users + 1):
        start = rng.randrange(1, n_items + 1)
        for k in range(rng.randint(6, 14)):
            # a mostly-sequential pattern (item i is followed by i+1) so models can learn something
            item = (start + k - 1) % n_items + 1 if rng.random() < 0.8 else rng.randrange(1, n_items + 1)
            t += 1
            lines.append(f"u{u}\ti{item}\t{rng.randint(1, 5)}\t{t}")
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    items = ["item_id:token\ttitle:token_seq"] + [f"i{i}\tThing number {i}" for i in range(1, n_items + 1)]
    (folder / f"{name}.item").write_text("\n".join(items) + "\n")
    return folder


@pytest.fixture(scope="session")
def toy_data_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data")
    write_toy(path)
    return path


@pytest.fixture
def tiny_overrides():
    """Config overrides that keep a model tiny and a run to a second or two."""
    return {
        "epochs": 2,
        "stopping_step": 2,
        "train_batch_size": 64,
        "eval_batch_size": 256,
        "show_progress": False,
        "MAX_ITEM_LIST_LENGTH": 10,
        "embedding_size": 16,
        "hidden_size": 16,
        "inner_size": 32,
        "n_layers": 1,
        "n_heads": 1,
        "attn_hidden_size": 16,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    }


def save_tiny_lm(folder, kind="bert", layers=2, hidden=32, heads=4):
    """A random-init LM of ``kind`` (bert or gpt2) saved as an HF folder, with the bundled
    MiniLM's WordPiece tokenizer (local, no download), for fast tests of the LLM models."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel, GPT2Config, GPT2Model, OPTConfig, OPTModel

    from recbole_llm.lm.resolve import DEFAULT_LM, resolve_lm

    tokenizer = AutoTokenizer.from_pretrained(resolve_lm(DEFAULT_LM).path)
    torch.manual_seed(0)
    if kind == "bert":
        config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                            num_attention_heads=heads, intermediate_size=2 * hidden, max_position_embeddings=128)
        model = BertModel(config)
    elif kind == "gpt2":
        config = GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=hidden, n_layer=layers, n_head=heads,
                            n_positions=128, pad_token_id=tokenizer.pad_token_id)
        model = GPT2Model(config)
    elif kind == "opt":  # like OPT-350m: the last hidden state is projected to a smaller width
        config = OPTConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                           num_attention_heads=heads, ffn_dim=2 * hidden, max_position_embeddings=128,
                           word_embed_proj_dim=hidden // 2, do_layer_norm_before=False,
                           pad_token_id=tokenizer.pad_token_id)
        model = OPTModel(config)
    else:
        raise ValueError(kind)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    return save_tiny_lm(tmp_path_factory.mktemp("tiny_bert"), "bert")


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    return save_tiny_lm(tmp_path_factory.mktemp("tiny_gpt2"), "gpt2")


@pytest.fixture(scope="session")
def tiny_opt(tmp_path_factory):
    return save_tiny_lm(tmp_path_factory.mktemp("tiny_opt"), "opt")


@pytest.fixture
def llm_overrides(tiny_overrides, tiny_bert):
    """IDLEAdapter/RARec on the tiny LM and a tiny ComiRec, in seconds."""
    out = dict(tiny_overrides)
    out.update({
        "lm_name": str(tiny_bert), "lm_autocast": "none", "item_text_field": "title", "prompt_max_tokens": 32, "prompt_max_items": 5,
        "id_model_config": {"embedding_size": 16, "attn_hidden_size": 16, "epochs": 1},
        "train_batch_size": 32, "eval_batch_size": 64, "topk": [5, 10], "measure_overhead_batches": 2,
    })
    return out
