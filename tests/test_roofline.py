"""The roofline's measurements run on the device asked for, and its bound takes the larger cost."""

import torch

from benchmarks import roofline


def test_lower_bound_is_the_slower_of_streaming_and_computing():
    # 1 GB of weights at 1 GB/s: 1 s to stream; 1e9 parameters x 2 x 4 tokens at 4e9 flop/s: 2 s.
    assert roofline.lower_bound(1, 10**9, 10**9, 1e9, 4e9) == 1.0
    assert roofline.lower_bound(4, 10**9, 10**9, 1e9, 4e9) == 2.0


def test_measurements_on_the_cpu_are_positive_rates():
    assert roofline.read_bandwidth("cpu", repeats=1) > 1e8  # any machine reads over 100 MB/s
    assert roofline.peak_matmul(torch.float32, "cpu", size=128, repeats=1) > 1e6


def test_tied_weights_count_once():
    layer = torch.nn.Linear(8, 8, bias=False)
    model = torch.nn.ModuleDict({"a": layer, "b": torch.nn.Linear(8, 8, bias=False)})
    model["b"].weight = layer.weight
    assert roofline.model_bytes_and_parameters(model) == (64 * 4, 64)
