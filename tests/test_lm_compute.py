"""The frozen LM's compute path (issue 39, part 3) against the path it replaced.

Before: float32 weights re-cast by autocast on every call, SDPA attention. Now, under bf16
autocast: the matmul layers' weights held in bf16 once (:meth:`FrozenLM.set_compute_dtype`),
which changes no bit, and on a CPU eager attention (:func:`attention_implementation`), which
changes the last bits. In float32 (``lm_autocast: none``) nothing changes, bit for bit.

Tolerance of "the last bits" (bf16 keeps 8 significant bits: a rounding of up to 2^-8 = 4e-3 of a
value per operation): the models' loss and full-ranking scores under the new path within ``BF16``
of the old one (absolute and relative 1e-3), the gradients of what trains within ``BF16_GRAD``
(2e-2) of their largest entry. Measured on the tiny LM of these tests: loss 4e-7 (IDLE-Adapter)
and 7e-6 (RA-Rec) relative, scores 1e-6 and 1e-4 absolute, gradients 1e-4 and 5e-3 of the largest.
"""

import pytest
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_llm.data.dataset import create_dataset
from recbole_llm.errors import UserError
from recbole_llm.lm import FrozenLM
from recbole_llm.lm.backbone import _matmul_modules, attention_implementation
from recbole_llm.pipeline import ensure_id_model
from recbole_llm.quick_start import build_config
from recbole_llm.spec import RunSpec

BF16 = {"atol": 1e-3, "rtol": 1e-3}
BF16_GRAD = 2e-2


def _batch(lm, lengths=(7, 4, 2), seed=0):
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(1000, 2000, (len(lengths), width), generator=g)
    mask = (torch.arange(width)[None] < torch.tensor(lengths)[:, None]).long()
    return ids.masked_fill(mask == 0, lm.tokenizer.pad_token_id), mask


def _prefix(lm, batch, length, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, length, lm.hidden_size, generator=g).requires_grad_(True) for _ in range(lm.num_layers)]


def _run(lm, ids, mask, autocast):
    """Hidden states, pooled output and the gradients of the layer prefixes and of an input prefix
    (RA-Rec's soft-prompt variants) in one forward+backward."""
    prefix = _prefix(lm, ids.shape[0], 2)
    width = lm.model.get_input_embeddings().weight.shape[1]  # OPT-350m-like: narrower than the layers
    input_prefix = torch.randn(ids.shape[0], 3, width, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        hidden, states = lm(ids, mask, prefix=prefix, output_hidden_states=True, input_prefix=input_prefix)
        pooled = lm.pool(hidden, mask).float()
    pooled.pow(2).sum().backward()
    return [hidden, *states, pooled, input_prefix.grad, *(p.grad for p in prefix)]


class _Casts(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the dtype conversions (``aten._to_copy``) that run."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func is torch.ops.aten._to_copy.default
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_gpt2", "tiny_opt"])
def test_matmul_weights_held_in_bf16_give_autocasts_bits_without_its_casts(fixture, request):
    """Linear layers (GPT-2: ``Conv1D``) in bf16, every other parameter float32; the outputs, every
    layer's states and the prefix gradients are those of autocast over float32 weights, bit for bit,
    whether or not the caller opens the autocast region, with one cast less per matmul layer."""
    folder = str(request.getfixturevalue(fixture))
    before, after = FrozenLM(folder), FrozenLM(folder).set_compute_dtype(torch.bfloat16)
    matmul = {id(p) for m in _matmul_modules(after.model) for p in m.parameters()}
    assert matmul and {p.dtype for p in after.parameters() if id(p) in matmul} == {torch.bfloat16}
    assert {p.dtype for p in after.parameters() if id(p) not in matmul} == {torch.float32}
    ids, mask = _batch(after)
    expected = _run(before, ids, mask, autocast=True)
    for autocast in (True, False):
        got = _run(after, ids, mask, autocast)
        assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected))
    assert all(not p.requires_grad and p.grad is None for p in after.parameters())
    counts = []
    for lm in (before, after):
        with _Casts() as casts, torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            lm(ids, mask, prefix=_prefix(lm, ids.shape[0], 2))
        counts.append(casts.count)
    # before: autocast casts every matmul layer's weight and bias on every call (the key/value
    # projections once more, for the prefix); after: none of them
    assert counts[0] - counts[1] >= 2 * len(_matmul_modules(after.model)), counts
    with pytest.raises(ValueError, match="already computes in torch.bfloat16"):
        after.set_compute_dtype(torch.float16)
    assert after.set_compute_dtype(torch.bfloat16) is after  # the same dtype again: nothing to do


def test_the_attention_kernel_by_setting_device_compute_dtype_and_span():
    assert attention_implementation("cpu", "auto", torch.bfloat16) == "eager"
    assert attention_implementation("cpu", "auto", torch.bfloat16, max_keys=66) == "eager"  # MiniLM's 64 + 2
    assert attention_implementation("cpu", "auto", torch.bfloat16, max_keys=160) == "eager"
    assert attention_implementation("cpu", "auto", torch.bfloat16, max_keys=161) == "sdpa"  # long: flash wins
    assert attention_implementation("cpu", "auto", None, max_keys=66) == "sdpa"  # float32: as before
    assert attention_implementation("cuda", "auto", torch.bfloat16, max_keys=66) == "sdpa"
    assert attention_implementation("cpu", "eager", torch.bfloat16, max_keys=1000) == "eager"
    assert attention_implementation("cpu", "SDPA", torch.bfloat16) == "sdpa"
    assert attention_implementation("cuda:0", "eager", None) == "eager"
    with pytest.raises(UserError, match="lm_attention must be auto, eager, sdpa, not 'flash'"):
        attention_implementation("cpu", "flash")


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_gpt2", "tiny_opt"])
def test_eager_and_sdpa_attention_are_the_same_attention(fixture, request):
    """In float32 the two kernels agree to rounding, prefix and padding included; the LM's report
    names the one it ran."""
    folder = str(request.getfixturevalue(fixture))
    sdpa, eager = FrozenLM(folder), FrozenLM(folder).set_attention("eager")
    assert (sdpa.report()["attention"], eager.report()["attention"]) == ("sdpa", "eager")
    ids, mask = _batch(sdpa)
    for a, b in zip(_run(sdpa, ids, mask, autocast=False), _run(eager, ids, mask, autocast=False)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ the models
@pytest.fixture
def pair(toy_data_path, llm_overrides, tmp_path):
    """``pair(model, **overrides)``: the model as built now and the same model (same weights) on the
    path it replaced: its LM reloaded in float32 with SDPA attention, autocast as configured."""

    def make(model_name, **extra):
        from recbole_llm.utils import get_model

        config = build_config(RunSpec(model_name, "toy", 2020, (), {**llm_overrides, **extra}, toy_data_path,
                                      tmp_path / "saved"))
        config["id_model_checkpoint"] = str(ensure_id_model(config))
        init_seed(2020, True)
        train, valid, _ = data_preparation(config, create_dataset(config))
        models = []
        for _ in range(2):
            init_seed(2020, True)
            models.append(get_model(model_name)(config, train._dataset))
        now, before = models
        before.lm = FrozenLM(config["lm_name"], config["lm_pooling"]).to(before.device)
        assert before.lm.compute_dtype is None and before.lm.attention == "sdpa"
        before.load_state_dict(now.state_dict())
        return now, before, next(iter(train)), next(iter(valid))[0]

    return make


def _outputs(model, batch, users):
    """The training loss, its gradients (what trains) and the full-ranking scores."""
    model.train()
    model.zero_grad(set_to_none=True)
    loss = model.calculate_loss(batch)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    model.eval()
    with torch.no_grad():
        scores = model.full_sort_predict(users)
    return loss.detach(), grads, scores


@pytest.mark.parametrize("model_name", ["IDLEAdapter", "RARec"])
def test_bf16_outputs_match_the_path_they_replaced_within_bf16_tolerance(model_name, pair):
    """Under bf16 autocast on a CPU: bf16 matmul weights and eager attention; the loss, its
    gradients and the scores within :data:`BF16` of the float32-weights SDPA path, not equal to it
    (the kernel changed), while the same weights with SDPA give the old bits exactly."""
    now, before, batch, users = pair(model_name, lm_autocast="bf16")
    assert now.lm.compute_dtype == torch.bfloat16 and now.lm.attention == "eager"
    new, old = _outputs(now, batch, users), _outputs(before, batch, users)
    torch.testing.assert_close(new[0], old[0], **BF16)
    for a, b in zip(new[1], old[1]):
        torch.testing.assert_close(a, b, atol=BF16_GRAD * b.abs().max().item(), rtol=0)
    torch.testing.assert_close(new[2], old[2], **BF16)
    assert not torch.equal(new[2], old[2])  # another kernel: the last bits move
    weights_only, before, batch, users = pair(model_name, lm_autocast="bf16", lm_attention="sdpa")
    assert weights_only.lm.compute_dtype == torch.bfloat16 and weights_only.lm.attention == "sdpa"
    same, old = _outputs(weights_only, batch, users), _outputs(before, batch, users)
    assert torch.equal(same[0], old[0]) and torch.equal(same[2], old[2])  # bf16 weights alone change no bit
    assert all(torch.equal(a, b) for a, b in zip(same[1], old[1]))


@pytest.mark.parametrize("model_name", ["IDLEAdapter", "RARec"])
def test_a_float32_run_is_bit_identical_to_the_path_before(model_name, pair):
    now, before, batch, users = pair(model_name, lm_autocast="none")
    assert now.lm.compute_dtype is None and now.lm.attention == "sdpa"
    assert {p.dtype for p in now.lm.parameters()} == {torch.float32}
    new, old = _outputs(now, batch, users), _outputs(before, batch, users)
    assert torch.equal(new[0], old[0]) and torch.equal(new[2], old[2])
    assert all(torch.equal(a, b) for a, b in zip(new[1], old[1]))


@pytest.mark.parametrize("model_name", ["IDLEAdapter", "RARec"])
def test_under_bf16_gradients_reach_the_adapter_and_never_the_lm(model_name, pair):
    now, _, batch, _ = pair(model_name, lm_autocast="bf16")
    lm_before = {k: v.clone() for k, v in now.lm.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in now.parameters() if p.requires_grad], lr=1e-2)
    assert {p.dtype for p in now.parameters() if p.requires_grad} == {torch.float32}  # what trains: float32
    now.train()
    now.calculate_loss(batch).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in now.parameters() if p.requires_grad)
    assert all(p.grad is None for p in now.lm.parameters())
    optimizer.step()
    assert all(torch.equal(v, now.lm.state_dict()[k]) for k, v in lm_before.items())


def test_the_lm_attention_key_reaches_the_lm_and_a_bad_value_is_one_line(pair, toy_data_path, llm_overrides,
                                                                         tmp_path):
    now, _, _, _ = pair("IDLEAdapter", lm_autocast="bf16", lm_attention="sdpa")
    assert now.lm.attention == "sdpa" and now.lm.compute_dtype == torch.bfloat16
    long_prompts, _, _, _ = pair("RARec", lm_autocast="bf16", prompt_max_tokens=159)  # + prefix_len 2
    assert long_prompts.lm.attention == "sdpa"
    forced, _, _, _ = pair("RARec", lm_autocast="bf16", prompt_max_tokens=159, lm_attention="eager")
    assert forced.lm.attention == "eager"
    with pytest.raises(UserError, match="lm_attention"):
        build_config(RunSpec("IDLEAdapter", "toy", 2020, (), {**llm_overrides, "lm_attention": "flash"},
                             toy_data_path, tmp_path / "saved2"))
