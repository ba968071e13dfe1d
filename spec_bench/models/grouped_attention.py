"""Grouped-query attention for tree verifications without copying the cached keys and values.

transformers' SDPA path passes grouped-query heads to the kernel (``enable_gqa``) only when
there is no attention mask; with one (every tree verification has one) it first repeats each
key and value head for its query heads (``repeat_kv``), copying the whole cached prefix in
every layer of every forward. PyTorch's CPU flash kernel takes grouped heads with a mask, with
results equal bit for bit (tested); on the 2-core EPYC, 16 queries over 316 cached tokens took
0.17 ms a layer against 0.22 ms with the copies (0.37 against 0.45 ms over 716). This
attention function does that for multi-token forwards with a mask and leaves every other call
(one-token steps, prompts, dropout, position biases) to transformers' own.
``grouped_query_attention: auto`` measures a 16-token verification forward with it and
without it and keeps the faster, cached per model, device, dtype and threads like the other
kernel choices.
"""

from __future__ import annotations

import functools
import os

import torch

from spec_bench.models import kernel_choice

NAME = "sdpa_grouped_kv"  # the attention implementation's name in transformers' registry
TREE_TOKENS = 16  # tokens per timed forward: a typical verification
CALLS = 8  # timed forwards per setting, after one warm-up each


def grouped_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    # One masked sequence of several queries (the engine's trees). A batch (the model-DB
    # builder's, left-padded) keeps transformers' path: equality was tested for one sequence.
    grouped = (
        getattr(module, "num_key_value_groups", 1) > 1
        and query.shape[0] == 1
        and query.shape[2] > 1
        and attention_mask is not None
        and not dropout
        and kwargs.get("position_bias") is None
        and kwargs.get("softcap") is None
    )
    if not grouped:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    output = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, scale=scaling, enable_gqa=True
    )
    return output.transpose(1, 2).contiguous(), None


@functools.cache
def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, grouped_sdpa)
    # Masks as for "sdpa": transformers builds none at all for a name it has no mask function
    # for, and a padded batch would then attend to its padding.
    AttentionMaskInterface.register(NAME, sdpa_mask)


def applicable(model: torch.nn.Module) -> bool:
    """A model on transformers' SDPA attention whose key/value heads serve several query heads."""
    config = model.config
    heads = getattr(config, "num_attention_heads", 0)
    kv_heads = getattr(config, "num_key_value_heads", heads) or heads
    return config._attn_implementation in ("sdpa", NAME) and 0 < kv_heads < heads


def use(model: torch.nn.Module, grouped: bool) -> None:
    _register()
    model.config._attn_implementation = NAME if grouped else "sdpa"


def choose(
    setting, model: torch.nn.Module, device: torch.device, cache: str | os.PathLike | None
) -> bool | None:
    """Whether tree forwards use grouped heads in the kernel (applied before returning);
    ``None`` where there is nothing to choose. ``auto`` measures (or reads the cached
    measurement); true/false force it."""
    if not applicable(model):
        return None
    if setting not in (None, "auto"):
        grouped = bool(setting)
    else:

        def measure() -> dict:
            from spec_bench.engine.cost import compare_forwards

            times = compare_forwards(
                model,
                device,
                {"copied": lambda: use(model, False), "grouped": lambda: use(model, True)},
                sizes=(TREE_TOKENS,),
                calls=CALLS,
            )
            chosen = times["grouped"] <= times["copied"]
            return {"grouped_query_attention": chosen, **times}

        grouped = kernel_choice.cached_or_measured("grouped_query_attention", cache, measure)
    use(model, grouped)
    return grouped
