"""benchmarks.one_token_budget: a forward's time split into its linear layers, its attention and
the rest, timed inside real forwards, with the model left as it was found."""

import torch

from benchmarks import one_token_budget


def test_a_forward_splits_into_linear_layers_attention_and_the_rest(target):
    model = target.model
    attention_before = model.config._attn_implementation
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    forwards_before = {layer: vars(layer).get("forward") for layer in linears}

    parts, linear_bytes = one_token_budget.measure(target, [1, 4], calls=2, prefix=16)

    for ms in parts.values():
        # Both wrappers were reached (an attention function registered but never called, or a
        # layer routed around its wrapper, would time nothing), and they time parts of the whole.
        assert ms["linear"] > 0 and ms["attention"] > 0
        assert ms["linear"] + ms["attention"] < ms["forward"]
    assert linear_bytes == sum(layer.weight.numel() * layer.weight.element_size() for layer in linears)
    # The wrappers came off: every layer has the forward it had, the attention its name.
    assert model.config._attn_implementation == attention_before
    assert {layer: vars(layer).get("forward") for layer in linears} == forwards_before
