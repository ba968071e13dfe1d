"""The GPU attention kernel is chosen by measurement at fresh shapes; CPUs have nothing to choose."""

from __future__ import annotations

import json

import pytest
import torch

from spec_bench.models import attention_kernel, kernel_choice


def test_a_cpu_has_no_cudnn_attention_to_choose(target, tmp_path):
    cache = tmp_path / "attention.json"
    for setting in ("auto", True, False):
        assert attention_kernel.choose(setting, target.model, torch.device("cpu"), cache) is None
    assert not cache.exists()
    if target.device.type == "cpu":
        assert "no-cudnn-attention" not in target.kernels


def test_the_cached_choice_is_read_back_and_a_broken_cache_is_measured_again(tmp_path):
    cache = tmp_path / "attention.json"
    measured = []

    def measure() -> dict:
        measured.append(1)
        return {"cudnn_attention": False, "with_cudnn_s": 0.06, "without_s": 0.02}

    assert kernel_choice.cached_or_measured("cudnn_attention", cache, measure) is False
    assert kernel_choice.cached_or_measured("cudnn_attention", cache, measure) is False
    assert len(measured) == 1 and json.loads(cache.read_text())["without_s"] == 0.02
    cache.write_text("{not json")
    assert kernel_choice.cached_or_measured("cudnn_attention", cache, measure) is False
    assert len(measured) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="cuDNN attention needs a CUDA GPU")
def test_on_a_gpu_both_settings_are_timed_and_the_choice_is_applied(tmp_path):
    from spec_bench.commands import compose_config
    from spec_bench.models import load_target

    cfg = compose_config([f"cache_dir={tmp_path}", "model.device=cuda"])
    target = load_target(cfg.model, cfg.cache_dir)
    with_cudnn, without = attention_kernel.time_fresh_shapes(target.model, target.device)
    assert with_cudnn > 0 and without > 0
    (cache,) = (tmp_path / "kernels").glob("*-attention.json")
    chosen = json.loads(cache.read_text())["cudnn_attention"]
    assert torch.backends.cuda.cudnn_sdp_enabled() == chosen
    assert ("no-cudnn-attention" in target.kernels) == (not chosen)
