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
