"""hd-spec-bench: lossless speculative decoding measured honestly on Spec-Bench."""

from omegaconf import OmegaConf

__version__ = "0.1.0"

# Arithmetic the drafter configs need to keep their settings in one place
# (a draft is LEVEL-1 tokens: ${sub:${drafter.window.level},1}), and a list as one word
# for run names (${join:${drafter.order}} -> WSL). Registered on import, before any
# config is resolved.
for _name, _resolver in (
    ("sub", lambda a, b: int(a) - int(b)),
    ("join", lambda items: "".join(str(item) for item in items)),
):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver)
