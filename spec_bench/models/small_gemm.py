"""Our own bf16 product for the few rows of a decoding step, on CPUs with AVX-512 BF16.

oneDNN's bf16 kernel streams a layer's weights at about half the rate a plain read reaches on
the 2-core EPYC, even on its prepacked weights: a one-token forward of the embedded model
spent 17-18 ms in its linear layers (15 GB/s) against 8 ms to read them (32 GB/s). A product
of 1 to 16 rows needs little arithmetic per weight, so what decides its speed is streaming
each weight once at the memory's rate. This kernel stores a layer's weights as blocks of 16
output columns by 2 inputs (one 64-byte vector: the operand of ``vdpbf16ps``), so each block
is read from memory once per forward and multiplied into up to 8 rows and 3 blocks at a time
with fp32 sums; the input pairs are broadcast, and no horizontal sums are needed.

On the 2-core EPYC, in one process with rounds interleaved, a bf16 forward of the embedded
model after 300 cached tokens took 19.2 / 30.5 ms for 1 / 16 tokens with it against 26.0 / 35.8
ms on oneDNN's packed weights (linear layers 9.1 / 15.6 against 15.1 / 19.9 ms: 29 GB/s at one
token, where a plain read ran at 35). With more than 8 rows a block is multiplied in several
passes, the first waiting on memory and the others on the multiplications, so every pass also
fetches its share of the next blocks into L2: a 16-token forward's linear layers then took 14.6
against 18.3 ms (one process, interleaved). Each output column is still one fp32 dot product of
the same bf16 values, rounded once to bf16, summed in another order than oneDNN's: outputs
differ from oneDNN's in the last bit here and there, which the greedy checks classify as
near-ties, never defects. A single row streams every weight once and multiplies little, so
each step also fetches the weights 8 KB further on into L2: the next 64 bytes alone (the first
version) kept too few reads in flight. All the embedded model's products at one row, weights
from memory, took 10.0 against 13.9 ms (26.9 against 19.4 GB/s, one process, interleaved); in
the model, one-token forwards 22.6 -> 21.4 and 23.0 -> 21.7 ms (16 tokens: unchanged within
noise), on a busier machine than the numbers above. Like the other kernel choices it is
measured (``small_gemm: auto``, against oneDNN's packed weights, whole forwards) and cached.

The C++ source is compiled once per machine (see ``native``); where that fails, or the CPU
lacks AVX-512 BF16, the choice is simply not offered.
"""

from __future__ import annotations

import functools

import torch

from spec_bench.models import native

BLOCK = 16  # output columns per 64-byte block: 16 fp32 accumulators in one vector

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <algorithm>

// [N, K] -> [N/16][K/2][16][2]: block b, input pair p holds columns 16b..16b+15 of inputs
// 2p and 2p+1, the layout vdpbf16ps multiplies against a broadcast pair of one row.
torch::Tensor pack(torch::Tensor weight) {
  TORCH_CHECK(weight.dim() == 2 && weight.scalar_type() == torch::kBFloat16, "a 2-d bf16 weight");
  const auto n = weight.size(0), k = weight.size(1);
  TORCH_CHECK(n % 16 == 0 && k % 2 == 0, "needs out_features % 16 == 0 and even in_features");
  return weight.view({n / 16, 16, k / 2, 2}).permute({0, 2, 1, 3}).contiguous();
}

// ROWS rows of x times BLOCKS consecutive blocks of 16 columns: each broadcast input pair
// meets BLOCKS weight vectors and each weight vector ROWS pairs, so loads stay well below
// the multiplications. CHAINS independent sums per block hide the latency of vdpbf16ps
// when there are too few rows to do it. FAR > 0: each step also fetches the weights FAR
// pairs further on into L2 (a single row streams them, and the next 64 bytes alone come too
// late to keep enough reads in flight).
template <int ROWS, int BLOCKS, int CHAINS, int FAR = 0>
static inline void block_product(const uint32_t* x, int64_t pairs, const uint16_t* w, uint16_t* y,
                                 int64_t n, const char* ahead = nullptr, int64_t ahead_lines = 0) {
  const int64_t per_step = (ahead_lines + pairs - 1) / pairs;
  const int64_t stride = pairs * 32;  // bf16 values per block
  __m512 sums[ROWS][BLOCKS][CHAINS];
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < BLOCKS; ++j)
      for (int c = 0; c < CHAINS; ++c) sums[r][j][c] = _mm512_setzero_ps();
  int64_t p = 0;
  for (; p + CHAINS <= pairs; p += CHAINS) {
    for (int c = 0; c < CHAINS; ++c) {
      for (int64_t t = 0; t < per_step; ++t) {  // spread over the pass: the next weights into L2
        const int64_t line = (p + c) * per_step + t;
        if (line < ahead_lines) _mm_prefetch(ahead + line * 64, _MM_HINT_T1);
      }
      __m512bh columns[BLOCKS];
      for (int j = 0; j < BLOCKS; ++j) {
        _mm_prefetch(reinterpret_cast<const char*>(w + j * stride + (p + c + 8) * 32), _MM_HINT_T0);
        if constexpr (FAR > 0)  // past this block: the next ones, stored after it
          _mm_prefetch(reinterpret_cast<const char*>(w + j * stride + (p + c + FAR) * 32), _MM_HINT_T1);
        columns[j] = (__m512bh)_mm512_loadu_si512(w + j * stride + (p + c) * 32);
      }
      for (int r = 0; r < ROWS; ++r) {
        const __m512bh pair = (__m512bh)_mm512_set1_epi32(x[r * pairs + p + c]);
        for (int j = 0; j < BLOCKS; ++j) sums[r][j][c] = _mm512_dpbf16_ps(sums[r][j][c], pair, columns[j]);
      }
    }
  }
  for (; p < pairs; ++p) {
    for (int j = 0; j < BLOCKS; ++j) {
      const __m512bh columns = (__m512bh)_mm512_loadu_si512(w + j * stride + p * 32);
      for (int r = 0; r < ROWS; ++r) {
        const __m512bh pair = (__m512bh)_mm512_set1_epi32(x[r * pairs + p]);
        sums[r][j][0] = _mm512_dpbf16_ps(sums[r][j][0], pair, columns);
      }
    }
  }
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < BLOCKS; ++j) {
      __m512 total = sums[r][j][0];
      for (int c = 1; c < CHAINS; ++c) total = _mm512_add_ps(total, sums[r][j][c]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + r * n + j * 16), (__m256i)_mm512_cvtneps_pbh(total));
    }
}

// All rows times BLOCKS blocks starting at block b; as few passes of up to 8 rows as there
// can be, of balanced sizes (every pass past the first re-reads the blocks from cache: 7 rows
// as passes of 4, 2 and 1 took 9.5 ms for the model's products against 8.7 in one pass, 17
// rows as 8, 8 and 1 took 13.9 against 12.1 as 6, 6 and 5). The later passes find the
// blocks in cache, so each weight leaves memory once. With several passes the
// first would wait on memory and the others on the multiplications; so every pass also
// fetches its share of the next blocks (``next``) into L2, and memory streams throughout.
template <int BLOCKS>
static void blocks_product(const uint32_t* xs, int64_t rows, int64_t pairs, const uint16_t* w,
                           uint16_t* y, int64_t n, const uint16_t* next = nullptr, int64_t next_blocks = 0) {
  const int64_t passes = (rows + 7) / 8;
  const int64_t lines = next ? next_blocks * pairs : 0;  // 64-byte lines of the next blocks
  const char* ahead = reinterpret_cast<const char*>(next);
  int64_t pass = 0;
  for (int64_t done = 0; done < rows; ++pass) {
    const auto left = rows - done;
    const auto* xr = xs + done * pairs;
    auto* yr = y + done * n;
    const int64_t first = lines * pass / passes, count = lines * (pass + 1) / passes - first;
    const char* a = ahead ? ahead + first * 64 : nullptr;
    const int64_t take = (left + passes - pass - 1) / (passes - pass);  // balanced, <= 8
    switch (take) {
      case 8: block_product<8, BLOCKS, 1>(xr, pairs, w, yr, n, a, count); break;
      case 7: block_product<7, BLOCKS, 1>(xr, pairs, w, yr, n, a, count); break;
      case 6: block_product<6, BLOCKS, 1>(xr, pairs, w, yr, n, a, count); break;
      case 5: block_product<5, BLOCKS, 1>(xr, pairs, w, yr, n, a, count); break;
      case 4: block_product<4, BLOCKS, 1>(xr, pairs, w, yr, n, a, count); break;
      case 3: block_product<3, BLOCKS, 1>(xr, pairs, w, yr, n, a, count); break;
      case 2: block_product<2, BLOCKS, 1>(xr, pairs, w, yr, n, a, count); break;
      default: block_product<1, BLOCKS, 4>(xr, pairs, w, yr, n, a, count); break;
    }
    done += take;
  }
}

torch::Tensor linear(torch::Tensor x, torch::Tensor packed) {
  TORCH_CHECK(x.scalar_type() == torch::kBFloat16 && packed.dim() == 4, "bf16 input, packed weight");
  const auto k = x.size(-1), n = packed.size(0) * 16, pairs = k / 2;
  TORCH_CHECK(packed.size(1) * 2 == k, "input width does not match the weight");
  const auto rows = x.numel() / k;
  const auto flat = x.reshape({rows, k}).contiguous();
  auto shape = x.sizes().vec();
  shape.back() = n;
  auto y = torch::empty({rows, n}, x.options());
  const auto* xs = reinterpret_cast<const uint32_t*>(flat.data_ptr());
  const auto* ws = reinterpret_cast<const uint16_t*>(packed.data_ptr());
  auto* ys = reinterpret_cast<uint16_t*>(y.data_ptr());
  const int64_t blocks = n / 16;
  if (rows == 1) {  // one row streams the weights: one block at a time
    at::parallel_for(0, blocks, 8, [&](int64_t first, int64_t last) {
      for (int64_t b = first; b < last; ++b)
        block_product<1, 1, 4, 128>(xs, pairs, ws + b * k * 16, ys + b * 16, n);
    });
    return y.view(shape);
  }
  constexpr int GROUP = 3;  // blocks a pass: 8 rows x 3 blocks = 24 of the 32 vector registers
  const int64_t groups = (blocks + GROUP - 1) / GROUP;
  at::parallel_for(0, groups, 4, [&](int64_t first, int64_t last) {
    for (int64_t g = first; g < last; ++g) {
      const int64_t b = g * GROUP;
      if (b + GROUP <= blocks) {
        // The next blocks of this thread's share: the share after it is the other thread's,
        // which fetches its own first blocks.
        const int64_t following = g + 1 < last ? std::min<int64_t>(GROUP, blocks - b - GROUP) : 0;
        blocks_product<GROUP>(xs, rows, pairs, ws + b * k * 16, ys + b * 16, n,
                              following > 0 ? ws + (b + GROUP) * k * 16 : nullptr, following);
      } else {
        for (int64_t j = b; j < blocks; ++j)
          blocks_product<1>(xs, rows, pairs, ws + j * k * 16, ys + j * 16, n);
      }
    }
  });
  return y.view(shape);
}
"""


def _load():
    return native.build("small_gemm", _SOURCE, ("pack", "linear"))


def available(device: torch.device, dtype: torch.dtype) -> bool:
    """A CPU with AVX-512 BF16, a bf16 model, and the extension built."""
    return native.offered(device, dtype) and _load() is not None


def fits(weight: torch.Tensor) -> bool:
    return (
        weight.dim() == 2
        and weight.dtype == torch.bfloat16
        and weight.shape[0] % BLOCK == 0
        and weight.shape[1] % 2 == 0
    )


def pack(weight: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return _load().pack(weight.detach().contiguous())


def product(x: torch.Tensor, packed_weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    y = _load().linear(x, packed_weight)
    return y if bias is None else y + bias


MARGIN = 0.95  # chosen only when its forwards take under 95% of oneDNN's: a clear win


@functools.cache
def kernel():
    """This kernel as a ``packed_linear.Kernel`` (one instance: packing compares by identity)."""
    from spec_bench.models.packed_linear import Kernel

    return Kernel("small-gemm", pack, product, fits)


def wanted(setting, model: torch.nn.Module, device: torch.device, cache=None) -> bool:
    """Whether ``model``'s packed linear layers should run on this kernel rather than oneDNN's:
    ``auto`` times whole forwards (1, 4 and 16 tokens) with each, interleaved, and keeps this
    one where it is clearly faster (read from ``cache`` when it holds a choice, else written
    there); true uses it wherever it is available, false never. Measuring leaves the model on
    oneDNN's packed weights."""
    from spec_bench.models import kernel_choice, packed_linear

    if setting is not None and setting != "auto":
        return bool(setting) and available(device, model.dtype)
    if not available(device, model.dtype):
        return False

    def put(ours: bool) -> None:
        packed_linear.use_packed_linear(model, kernel() if ours else packed_linear.ONEDNN)

    return kernel_choice.timed_switch(
        "auto", "small_gemm", cache, model, device, put, ("onednn", "small_gemm"),
        packed_linear.MEASURE_SIZES, packed_linear.CALLS, MARGIN,
    )  # fmt: skip
