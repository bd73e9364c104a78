"""ComiRec-SA: a case computed by hand, the output shapes, and RecBole end to end on a toy dataset."""

import math
import random
from pathlib import Path

import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_llm.errors import UserError
from recbole_llm.id_models import ComiRec

# RecBole's Trainer builds the deprecated torch.cuda.amp.GradScaler; noise, not a finding.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.cuda.amp.GradScaler:FutureWarning")

REPO = Path(__file__).resolve().parent.parent
YAML = str(REPO / "properties" / "model" / "ComiRec.yaml")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread. With two on a busy 2-core machine every op waits on the
    other thread (a 16 x 8 batch took ~130 ms forward + backward instead of ~1 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _Dataset:
    """The one thing a SequentialRecommender asks its dataset: the item count (with padding)."""

    def __init__(self, n_items):
        self.n_items = n_items

    def num(self, field):
        assert field == "item_id"
        return self.n_items


def _config(**overrides):
    config = {
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "LIST_SUFFIX": "_list",
        "ITEM_LIST_LENGTH_FIELD": "item_length",
        "NEG_PREFIX": "neg_",
        "MAX_ITEM_LIST_LENGTH": 4,
        "device": torch.device("cpu"),
        "embedding_size": 2,
        "interest_num": 2,
        "attn_hidden_size": 2,
        "add_pos": True,
        "hidden_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "loss_type": "CE",
    }
    config.update(overrides)
    return config


# ---------------------------------------------------------------------------------------------
# A case small enough to compute by hand: d = 2, K = 2, d_a = 2, items 1..4 (0 is padding), L = 4.
# ---------------------------------------------------------------------------------------------

# Item table; the padding row is deliberately nonzero: masking, not the table, must keep it out.
E = [[5.0, 5.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 2.0]]
P = [[0.0, 0.0], [0.5, 0.0], [0.0, 0.5], [1.0, 1.0]]  # position embeddings
W1 = [[2.0, -1.0], [0.0, 1.5]]  # d -> d_a, torch layout [out, in]
B1 = [0.0, -0.5]
W2 = [[3.0, 0.0], [0.0, -3.0]]  # d_a -> K
B2 = [0.3, -0.2]  # constant over positions: cancels in the softmax

SEQS = [[1, 2, 3, 0], [4, 2, 0, 0]]  # user a: 3 items + 1 pad; user b: 2 items + 2 pads
LENS = [3, 2]
TARGETS = [2, 4]
NEGS = [4, 1]


def _hand_model(**overrides):
    model = ComiRec(_config(**overrides), _Dataset(len(E)))
    with torch.no_grad():
        model.item_embedding.weight.copy_(torch.tensor(E))
        model.position_embedding.weight.copy_(torch.tensor(P))
        model.attn_hidden.weight.copy_(torch.tensor(W1))
        model.attn_hidden.bias.copy_(torch.tensor(B1))
        model.attn_heads.weight.copy_(torch.tensor(W2))
        model.attn_heads.bias.copy_(torch.tensor(B2))
    return model.eval()


def _batch(**extra):
    fields = {
        "item_id_list": torch.tensor(SEQS),
        "item_length": torch.tensor(LENS),
        "item_id": torch.tensor(TARGETS),
    }
    fields.update(extra)
    return Interaction(fields)


def _softmax(values):
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def _expected():
    """Every quantity of the hand case, step by step, in plain Python (no torch, no model code)."""
    t = math.tanh
    # user a, positions 0..2 (position 3 is padding): attention input x_t = E[item_t] + P[t]
    #   x0 = [1, 0] + [0, 0]     = [1, 0]
    #   x1 = [0, 1] + [0.5, 0]   = [0.5, 1]
    #   x2 = [1, 1] + [0, 0.5]   = [1, 1.5]
    # hidden h_t = tanh(W1 x_t + b1):  W1 x = [2 x[0] - x[1], 1.5 x[1]]
    ha = [[t(2 * 1 - 0), t(1.5 * 0 - 0.5)],
          [t(2 * 0.5 - 1), t(1.5 * 1 - 0.5)],
          [t(2 * 1 - 1.5), t(1.5 * 1.5 - 0.5)]]
    # head logits s_k,t = W2[k] . h_t + b2[k]:  head 0 = 3 h[0] + 0.3, head 1 = -3 h[1] - 0.2
    sa = [[3 * h[0] + 0.3 for h in ha], [-3 * h[1] - 0.2 for h in ha]]
    # user b, positions 0..1: x0 = [-1, 2], x1 = [0, 1] + [0.5, 0] = [0.5, 1]
    hb = [[t(2 * -1 - 2), t(1.5 * 2 - 0.5)],
          [t(2 * 0.5 - 1), t(1.5 * 1 - 0.5)]]
    sb = [[3 * h[0] + 0.3 for h in hb], [-3 * h[1] - 0.2 for h in hb]]
    # softmax over the real positions; padding gets 0
    attn = [[_softmax(sa[0]) + [0.0], _softmax(sa[1]) + [0.0]],
            [_softmax(sb[0]) + [0.0, 0.0], _softmax(sb[1]) + [0.0, 0.0]]]
    # interests v_k = sum_t A_k,t E[item_t] (item embeddings only: positions enter the attention)
    interests = []
    for u in range(2):
        interests.append([
            [sum(attn[u][k][p] * E[SEQS[u][p]][j] for p in range(LENS[u])) for j in range(2)]
            for k in range(2)
        ])

    def dot(x, y):
        return x[0] * y[0] + x[1] * y[1]

    # per-interest scores of every item, [user][k][item]
    per_k = [[[dot(interests[u][k], e) for e in E] for k in range(2)] for u in range(2)]
    full = [[max(per_k[u][0][i], per_k[u][1][i]) for i in range(len(E))] for u in range(2)]
    # selection: the interest closest (inner product) to the target's embedding
    selected = [0 if per_k[u][0][TARGETS[u]] > per_k[u][1][TARGETS[u]] else 1 for u in range(2)]
    readout = [interests[u][selected[u]] for u in range(2)]
    # CE: mean over users of -log softmax(readout . E^T)[target], over all 5 rows (RecBole: padding row included)
    ce = []
    for u in range(2):
        logits = [dot(readout[u], e) for e in E]
        ce.append(-(logits[TARGETS[u]] - math.log(sum(math.exp(z) for z in logits))))
    # BPR: -log sigmoid(<r, e_pos> - <r, e_neg>) with the readout selected by the positive
    bpr = [-math.log(1 / (1 + math.exp(-(dot(readout[u], E[TARGETS[u]]) - dot(readout[u], E[NEGS[u]])))))
           for u in range(2)]
    return {
        "attention": attn, "interests": interests, "full": full, "selected": selected,
        "ce": sum(ce) / 2, "bpr": sum(bpr) / 2,
        "predict": [full[u][TARGETS[u]] for u in range(2)],
    }


def test_hand_case_interests_and_attention():
    exp = _expected()
    # the case is chosen so the two users select different interests and ranking mixes both heads
    assert exp["selected"] == [0, 1]
    model = _hand_model()
    with torch.no_grad():
        interests, attention = model.interests(torch.tensor(SEQS), torch.tensor(LENS))
    assert interests.shape == (2, 2, 2) and attention.shape == (2, 2, 4)
    torch.testing.assert_close(attention, torch.tensor(exp["attention"]), atol=1e-6, rtol=0)
    torch.testing.assert_close(interests, torch.tensor(exp["interests"]), atol=1e-6, rtol=0)
    # padding positions get exactly zero attention, and each head sums to one over real items
    assert attention[0, :, 3].eq(0).all() and attention[1, :, 2:].eq(0).all()
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 2))
    # forward is the [B, K, d] interests for K > 1
    torch.testing.assert_close(model(torch.tensor(SEQS), torch.tensor(LENS)), interests)


def test_hand_case_selection_and_ce_loss():
    exp = _expected()
    model = _hand_model()
    with torch.no_grad():
        interests, _ = model.interests(torch.tensor(SEQS), torch.tensor(LENS))
        readout = model.select_interest(interests, model.item_embedding(torch.tensor(TARGETS)))
        loss = model.calculate_loss(_batch())
    want = [exp["interests"][u][exp["selected"][u]] for u in range(2)]
    torch.testing.assert_close(readout, torch.tensor(want), atol=1e-6, rtol=0)
    assert abs(loss.item() - exp["ce"]) < 1e-6


def test_hand_case_bpr_loss():
    exp = _expected()
    model = _hand_model(loss_type="BPR")
    with torch.no_grad():
        loss = model.calculate_loss(_batch(neg_item_id=torch.tensor(NEGS)))
    assert abs(loss.item() - exp["bpr"]) < 1e-6


def test_hand_case_scores():
    exp = _expected()
    model = _hand_model()
    with torch.no_grad():
        full = model.full_sort_predict(_batch())
        single = model.predict(_batch())
    assert full.shape == (2, len(E))
    torch.testing.assert_close(full, torch.tensor(exp["full"]), atol=1e-6, rtol=0)
    torch.testing.assert_close(single, torch.tensor(exp["predict"]), atol=1e-6, rtol=0)


def test_only_selected_interest_gets_gradient():
    model = _hand_model()
    model.train()
    interests, _ = model.interests(torch.tensor(SEQS), torch.tensor(LENS))
    interests.retain_grad()
    readout = model.select_interest(interests, model.item_embedding(torch.tensor(TARGETS)).detach())
    readout.sum().backward()
    grad = interests.grad
    # user a selected interest 0, user b interest 1 (see the hand case)
    assert grad[0, 0].abs().sum() > 0 and grad[0, 1].abs().sum() == 0
    assert grad[1, 1].abs().sum() > 0 and grad[1, 0].abs().sum() == 0


def test_padding_ids_do_not_matter():
    model = _hand_model()
    other = torch.tensor([[1, 2, 3, 4], [4, 2, 1, 3]])  # same real items, garbage after the length
    with torch.no_grad():
        a = model.full_sort_predict(_batch())
        b = model.full_sort_predict(_batch(item_id_list=other))
    torch.testing.assert_close(a, b, atol=0, rtol=0)


# ---------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------


def _random_batch(batch=5, length=6, n_items=20, seed=0):
    gen = torch.Generator().manual_seed(seed)
    lens = torch.randint(1, length + 1, (batch,), generator=gen)
    seq = torch.randint(1, n_items, (batch, length), generator=gen)
    seq = seq * (torch.arange(length).unsqueeze(0) < lens.unsqueeze(1))
    return seq, lens


def test_k1_forward_is_user_embedding():
    torch.manual_seed(0)
    model = ComiRec(_config(interest_num=1, embedding_size=8, attn_hidden_size=None, MAX_ITEM_LIST_LENGTH=6),
                    _Dataset(20)).eval()
    assert model.attn_hidden_size == 32  # None: 4 * d, as in the official code
    seq, lens = _random_batch()
    with torch.no_grad():
        out = model(seq, lens)
        user = model.user_embedding(seq, lens)
        interests, _ = model.interests(seq, lens)
    assert out.shape == (5, 8)
    torch.testing.assert_close(out, user, atol=0, rtol=0)
    torch.testing.assert_close(out, interests[:, 0], atol=0, rtol=0)
    # with one interest, full ranking is the plain inner product with the item table
    batch = Interaction({"item_id_list": seq, "item_length": lens})
    with torch.no_grad():
        torch.testing.assert_close(model.full_sort_predict(batch), out @ model.item_embedding.weight.T)


def test_k3_forward_shape_and_mean_user_embedding():
    torch.manual_seed(0)
    model = ComiRec(_config(interest_num=3, embedding_size=8, attn_hidden_size=16, MAX_ITEM_LIST_LENGTH=6,
                            add_pos=False), _Dataset(20)).eval()
    assert model.position_embedding is None
    seq, lens = _random_batch()
    with torch.no_grad():
        out = model(seq, lens)
        user = model.user_embedding(seq, lens)
    assert out.shape == (5, 3, 8) and user.shape == (5, 8)
    torch.testing.assert_close(user, out.mean(dim=1))


def test_init_is_recbole_style():
    torch.manual_seed(0)
    model = ComiRec(_config(embedding_size=64, attn_hidden_size=256, MAX_ITEM_LIST_LENGTH=50), _Dataset(500))
    assert model.item_embedding.weight[0].eq(0).all()
    assert model.attn_hidden.bias.eq(0).all() and model.attn_heads.bias.eq(0).all()
    assert abs(model.item_embedding.weight[1:].std().item() - 0.02) < 2e-3
    assert abs(model.attn_hidden.weight.std().item() - 0.02) < 2e-3


def test_bad_config_is_refused():
    with pytest.raises(UserError):
        ComiRec(_config(loss_type="BCE"), _Dataset(5))
    with pytest.raises(ValueError, match="interest_num"):
        ComiRec(_config(interest_num=0), _Dataset(5))


# ---------------------------------------------------------------------------------------------
# RecBole end to end
# ---------------------------------------------------------------------------------------------


def _write_toy(root, n_users=30, n_items=20, seed=0):
    rng = random.Random(seed)
    folder = Path(root) / "toy"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    t = 0
    for u in range(1, n_users + 1):
        start = rng.randrange(1, n_items + 1)
        for k in range(rng.randint(6, 10)):
            # mostly "item i is followed by item i + 1", so there is something to learn
            item = (start + k - 1) % n_items + 1 if rng.random() < 0.8 else rng.randrange(1, n_items + 1)
            t += 1
            lines.append(f"u{u}\ti{item}\t{t}")
    (folder / "toy.inter").write_text("\n".join(lines) + "\n")


def _recbole(tmp_path, monkeypatch, **overrides):
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    monkeypatch.chdir(tmp_path)  # RecBole's Trainer creates log_tensorboard/ in the working directory
    _write_toy(tmp_path)
    config_dict = {
        "data_path": str(tmp_path),
        "checkpoint_dir": str(tmp_path / "saved"),
        "use_gpu": False,
        "seed": 2020,
        "reproducibility": True,
        "epochs": 1,
        "train_batch_size": 64,
        "eval_batch_size": 64,
        "MAX_ITEM_LIST_LENGTH": 8,
        "embedding_size": 16,
        "attn_hidden_size": 32,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "train_neg_sample_args": None,
        "metrics": ["Hit", "NDCG", "MRR"],
        "topk": [5, 10],
        "valid_metric": "NDCG@10",
        "show_progress": False,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    }
    config_dict.update(overrides)
    config = Config(model=ComiRec, dataset="toy", config_file_list=[YAML], config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = ComiRec(config, train_data.dataset).to(config["device"])
    return config, model, train_data, valid_data, test_data


@pytest.mark.parametrize("overrides", [
    {},  # the YAML as shipped: K = 1, CE
    {"interest_num": 2, "loss_type": "BPR", "hidden_dropout_prob": 0.1,
     "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False,
                               "candidate_num": 0}},
], ids=["K1-CE", "K2-BPR"])
def test_one_epoch_through_recbole(tmp_path, monkeypatch, overrides):
    from recbole.trainer import Trainer

    config, model, train_data, valid_data, test_data = _recbole(tmp_path, monkeypatch, **overrides)
    assert model.interest_num == config["interest_num"] and model.loss_type == config["loss_type"]
    trainer = Trainer(config, model)
    best_valid, valid_result = trainer.fit(train_data, valid_data, saved=False, show_progress=False)
    test_result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    assert set(test_result) == {f"{m}@{k}" for m in ("hit", "ndcg", "mrr") for k in (5, 10)}
    for value in list(test_result.values()) + list(valid_result.values()) + [best_valid]:
        assert math.isfinite(value) and 0.0 <= value <= 1.0


def test_training_loss_decreases(tmp_path, monkeypatch):
    from recbole.trainer import Trainer

    config, model, train_data, _, _ = _recbole(tmp_path, monkeypatch, epochs=10, learning_rate=0.01,
                                               train_batch_size=16)

    def mean_train_loss():
        model.eval()
        with torch.no_grad():
            losses = [model.calculate_loss(batch.to(config["device"])).item() for batch in train_data]
        return sum(losses) / len(losses)

    before = mean_train_loss()
    assert abs(before - math.log(model.n_items)) < 0.05  # near-uniform scores at init
    trainer = Trainer(config, model)
    trainer.fit(train_data, None, saved=False, show_progress=False)
    after = mean_train_loss()
    assert after < 0.8 * before
