"""The norms, the MLP activation and the rotary embedding of a Llama layer, and the greedy
argmax, as one C++ call each, for bf16 on CPUs with AVX-512 BF16.

At the few tokens of a decoding step these layers cost the dispatch of their small operations,
not arithmetic: transformers' RMSNorm is nine tensor operations (to fp32, square, mean, add,
rsqrt, multiply, back to bf16, times the weight), and the MLP's activation two (SiLU,
multiply); the embedded model runs 61 norms and 30 activations a forward. On the 2-core EPYC,
in one process with rounds interleaved, its forwards of 1 / 16 tokens after 300 cached took
17.3 / 24.9 ms with these calls against 18.2 / 28.5 ms without. Each becomes one call that
computes what transformers computes, in its precision: the norm's mean of squares in fp32,
``x * rsqrt(mean + eps)`` rounded to bf16, then times the weight, rounded again; SiLU in fp32
rounded to bf16, times the up projection, rounded again. Only the order of the fp32 sums and
the exponential's last bits (a Cephes polynomial) differ from PyTorch's kernels, so outputs can
differ in the last bit, which the greedy checks classify as near-ties.

The rotary embedding (``q * cos + rotate_half(q) * sin`` and the same for k: in transformers
two products, a sum, two slices, a negation and a concatenation each) is one call a layer,
bit for bit transformers' values: each product rounded to bf16, then their sum. transformers'
Llama attention calls ``apply_rotary_pos_emb`` by its module's name, so that name gets a
function that takes our call only for the cos tensors our rotary embedding marked (the other
models in a process keep transformers' own). In one process, interleaved, it took the
embedded model's forwards of 1 / 16 tokens from 20.3 / 30.1 to 19.4 / 27.6 ms (again: 19.4 /
31.2 to 18.0 / 27.8).

The greedy argmax (``argmax``, used by ``verify.greedy_tokens`` wherever it is built: its
tokens are PyTorch's, the first of equal maxima) reads the bf16 logits in place, where PyTorch
widened a 16 x 49152 block to fp32 first (57 against 419 us on the 2-core EPYC).

Only transformers' Llama classes are rewired (``LlamaRMSNorm``, ``LlamaMLP`` with SiLU,
``LlamaRotaryEmbedding``): other architectures' norms differ (Gemma's scales by 1 + weight).
``fused_ops: auto`` times whole forwards with and without, interleaved, and keeps it where
clearly faster, cached like the other kernel choices. Built once per machine (see ``native``).
"""

from __future__ import annotations

import functools
import os
import types

import torch

from spec_bench.models import kernel_choice, native

MEASURE_SIZES = (1, 4, 16)  # tokens per timed forward: an AR step and typical verifications
CALLS = 8  # timed rounds per setting, after one warm-up each
MARGIN = 0.98  # the same arithmetic as what it replaces: any gain beyond timing noise counts
MARK = "_fused_ops"  # set on a module whose forward is ours
ROTARY_MARK = "_fused_rotary"  # set on the cos tensor of a model whose rotations are ours

_SOURCE = (
    native.VECTOR_HELPERS
    + r"""
#include <ATen/Parallel.h>
#include <cmath>

// Rounded to bf16 (to nearest even) and widened back: a bf16 tensor's value in fp32.
static inline __m512 round_bf16(__m512 x) {
  const __m256i half = (__m256i)_mm512_cvtneps_pbh(x);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
}

static inline void store_bf16(uint16_t* p, __m512 x, __mmask16 lanes) {
  _mm256_mask_storeu_epi16(p, lanes, (__m256i)_mm512_cvtneps_pbh(x));
}

// Rows of a step are few: threads only pay for themselves on long inputs.
static constexpr int64_t SERIAL_VALUES = 1 << 14;

// transformers' LlamaRMSNorm: fp32 mean of squares, x * rsqrt(mean + eps) rounded to bf16,
// times the weight rounded to bf16.
torch::Tensor rms_norm(torch::Tensor x, torch::Tensor weight, double eps) {
  TORCH_CHECK(x.scalar_type() == torch::kBFloat16 && weight.scalar_type() == torch::kBFloat16, "bf16");
  const int64_t d = x.size(-1);
  TORCH_CHECK(weight.numel() == d && weight.is_contiguous(), "one weight per feature");
  const auto flat = x.contiguous();
  auto out = torch::empty_like(flat);
  const int64_t rows = flat.numel() / d;
  const auto* xs = reinterpret_cast<const uint16_t*>(flat.data_ptr());
  const auto* ws = reinterpret_cast<const uint16_t*>(weight.data_ptr());
  auto* ys = reinterpret_cast<uint16_t*>(out.data_ptr());
  const int64_t grain = rows * d <= SERIAL_VALUES ? rows : 1;
  at::parallel_for(0, rows, grain, [&](int64_t first, int64_t last) {
    for (int64_t row = first; row < last; ++row) {
      const uint16_t* xr = xs + row * d;
      uint16_t* yr = ys + row * d;
      __m512 squares = _mm512_setzero_ps();
      for (int64_t j = 0; j < d; j += 16) {
        const __m512 v = widen(xr + j, lanes_from(d - j));
        squares = _mm512_fmadd_ps(v, v, squares);
      }
      const float mean = _mm512_reduce_add_ps(squares) / static_cast<float>(d);
      const __m512 scale = _mm512_set1_ps(1.0f / std::sqrt(mean + static_cast<float>(eps)));
      for (int64_t j = 0; j < d; j += 16) {
        const __mmask16 lanes = lanes_from(d - j);
        const __m512 normed = round_bf16(_mm512_mul_ps(widen(xr + j, lanes), scale));
        store_bf16(yr + j, _mm512_mul_ps(widen(ws + j, lanes), normed), lanes);
      }
    }
  });
  return out.view(x.sizes());
}

// transformers' Llama MLP activation: SiLU(gate) in fp32 rounded to bf16, times up, rounded.
// gate and up: [rows, n] views with contiguous rows (the halves of one fused product).
torch::Tensor silu_mul(torch::Tensor gate, torch::Tensor up) {
  TORCH_CHECK(gate.scalar_type() == torch::kBFloat16 && up.scalar_type() == torch::kBFloat16, "bf16");
  TORCH_CHECK(gate.sizes() == up.sizes() && gate.stride(-1) == 1 && up.stride(-1) == 1, "rows of one size");
  const int64_t n = gate.size(-1), rows = gate.numel() / n;
  const auto g2 = gate.reshape({rows, n}), u2 = up.reshape({rows, n});  // views where they can be
  auto out = torch::empty({rows, n}, gate.options());
  const auto* gs = reinterpret_cast<const uint16_t*>(g2.data_ptr());
  const auto* us = reinterpret_cast<const uint16_t*>(u2.data_ptr());
  auto* ys = reinterpret_cast<uint16_t*>(out.data_ptr());
  const int64_t g_row = g2.stride(0), u_row = u2.stride(0);
  const int64_t grain = rows * n <= SERIAL_VALUES ? rows : 1;
  at::parallel_for(0, rows, grain, [&](int64_t first, int64_t last) {
    for (int64_t row = first; row < last; ++row)
      for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 lanes = lanes_from(n - j);
        const __m512 g = widen(gs + row * g_row + j, lanes);
        const __m512 negated = _mm512_sub_ps(_mm512_setzero_ps(), g);
        const __m512 denominator = _mm512_add_ps(_mm512_set1_ps(1.0f), exp_ps(negated));
        const __m512 silu = round_bf16(_mm512_div_ps(g, denominator));
        store_bf16(ys + row * n + j, _mm512_mul_ps(silu, widen(us + row * u_row + j, lanes)), lanes);
      }
  });
  return out.view(gate.sizes());
}

// transformers' Llama rotary embedding of one of q or k: x * cos + rotate_half(x) * sin, each
// product rounded to bf16, then their sum (rotate_half(x) = [-x2, x1], x1 and x2 its halves).
// x [B, H, T, D] with contiguous rows (any other strides), cos and sin [B or 1, T, D] with
// contiguous rows: returns [B, H, T, D] stored as [B, T, H, D], the layout transformers' own
// elementwise result takes from its projection's view.
static torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  TORCH_CHECK(x.dim() == 4 && x.stride(3) == 1, "[B, H, T, D] with contiguous rows");
  const int64_t batch = x.size(0), heads = x.size(1), tokens = x.size(2), d = x.size(3), half = d / 2;
  TORCH_CHECK(d % 2 == 0 && cos.dim() == 3 && cos.sizes() == sin.sizes() && cos.size(1) == tokens &&
              cos.size(2) == d && (cos.size(0) == batch || cos.size(0) == 1) && cos.stride(2) == 1 &&
              sin.stride(2) == 1, "cos and sin [B, T, D] with contiguous rows");
  auto out = torch::empty({batch, tokens, heads, d}, x.options()).permute({0, 2, 1, 3});
  const auto* xs = reinterpret_cast<const uint16_t*>(x.data_ptr());
  const auto* cs = reinterpret_cast<const uint16_t*>(cos.data_ptr());
  const auto* ss = reinterpret_cast<const uint16_t*>(sin.data_ptr());
  auto* ys = reinterpret_cast<uint16_t*>(out.data_ptr());
  const int64_t cb = cos.size(0) == 1 ? 0 : cos.stride(0), sb = sin.size(0) == 1 ? 0 : sin.stride(0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < tokens; ++t) {
      const uint16_t* c = cs + b * cb + t * cos.stride(1);
      const uint16_t* s = ss + b * sb + t * sin.stride(1);
      for (int64_t h = 0; h < heads; ++h) {
        const uint16_t* xr = xs + b * x.stride(0) + h * x.stride(1) + t * x.stride(2);
        uint16_t* yr = ys + b * out.stride(0) + h * out.stride(1) + t * out.stride(2);
        for (int64_t j = 0; j < half; j += 16) {
          const __mmask16 lanes = lanes_from(half - j);
          const __m512 first = widen(xr + j, lanes), second = widen(xr + half + j, lanes);
          const __m512 minus_second = _mm512_sub_ps(_mm512_setzero_ps(), second);
          store_bf16(yr + j,
                     _mm512_add_ps(round_bf16(_mm512_mul_ps(first, widen(c + j, lanes))),
                                   round_bf16(_mm512_mul_ps(minus_second, widen(s + j, lanes)))), lanes);
          store_bf16(yr + half + j,
                     _mm512_add_ps(round_bf16(_mm512_mul_ps(second, widen(c + half + j, lanes))),
                                   round_bf16(_mm512_mul_ps(first, widen(s + half + j, lanes)))), lanes);
        }
      }
    }
  return out;
}

// Both of a layer's rotations in one call (a step's rows are few: no threads).
std::vector<torch::Tensor> rotary(torch::Tensor q, torch::Tensor k, torch::Tensor cos, torch::Tensor sin) {
  TORCH_CHECK(q.scalar_type() == torch::kBFloat16 && k.scalar_type() == torch::kBFloat16 &&
              cos.scalar_type() == torch::kBFloat16 && sin.scalar_type() == torch::kBFloat16, "bf16");
  return {rotate(q, cos, sin), rotate(k, cos, sin)};
}

// The index of each row's largest value, the first of equal ones (as torch.argmax), of bf16
// rows [..., n]: per lane the first strict maximum, then the least index among the lanes that
// hold the row's maximum. (NaNs are never picked; torch.argmax would pick one.)
torch::Tensor argmax_rows(torch::Tensor x) {
  TORCH_CHECK(x.scalar_type() == torch::kBFloat16 && x.dim() >= 1 && x.size(-1) > 0, "bf16 rows");
  const auto flat = x.contiguous();
  const int64_t n = x.size(-1), rows = flat.numel() / n;
  auto out = torch::empty({rows}, x.options().dtype(torch::kLong));
  const auto* xs = reinterpret_cast<const uint16_t*>(flat.data_ptr());
  auto* ys = out.data_ptr<int64_t>();
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const int64_t grain = rows * n <= SERIAL_VALUES ? rows : 1;
  at::parallel_for(0, rows, grain, [&](int64_t first, int64_t last) {
    for (int64_t row = first; row < last; ++row) {
      const uint16_t* xr = xs + row * n;
      __m512 best = _mm512_set1_ps(-INFINITY);
      __m512i where = _mm512_setzero_si512();
      for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 lanes = lanes_from(n - j);
        const __m512 v = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), lanes, widen(xr + j, lanes));
        const __mmask16 higher = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
        best = _mm512_mask_mov_ps(best, higher, v);
        where = _mm512_mask_mov_epi32(where, higher, _mm512_add_epi32(lane, _mm512_set1_epi32((int)j)));
      }
      const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(best));
      const __mmask16 holders = _mm512_cmp_ps_mask(best, top, _CMP_EQ_OQ);
      ys[row] = holders ? _mm512_mask_reduce_min_epi32(holders, where) : 0;  // all -inf: the first
    }
  });
  auto shape = x.sizes().vec();
  shape.pop_back();
  return out.view(shape);
}
"""
)


def _load():
    return native.build("fused_ops", _SOURCE, ("rms_norm", "silu_mul", "rotary", "argmax_rows"))


def available(device: torch.device, dtype: torch.dtype) -> bool:
    """A CPU with AVX-512 BF16, a bf16 model, and the extension built."""
    return native.offered(device, dtype) and _load() is not None


def argmax(logits: torch.Tensor) -> torch.Tensor | None:
    """The greedy tokens of bf16 CPU ``logits`` (equal to ``logits.argmax(-1)``, the first of
    equal maxima), or None where our kernel is not available for them."""
    extension = _load() if native.offered(logits.device, logits.dtype) else None
    return None if extension is None else extension.argmax_rows(logits)


def _norm_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    if hidden_states.dtype != torch.bfloat16 or hidden_states.device.type != "cpu":
        return type(self).forward(self, hidden_states)
    return _load().rms_norm(hidden_states, self.weight, float(self.variance_epsilon))


def _mlp_forward(self, x: torch.Tensor) -> torch.Tensor:
    gate, up = self.gate_proj(x), self.up_proj(x)
    ours = gate.dtype == torch.bfloat16 and gate.device.type == "cpu"
    if not ours or gate.stride(-1) != 1 or up.stride(-1) != 1:
        return self.down_proj(self.act_fn(gate) * up)
    return self.down_proj(_load().silu_mul(gate, up))


def _rotary_embedding_forward(self, x: torch.Tensor, position_ids: torch.Tensor):
    cos, sin = type(self).forward(self, x, position_ids)
    if cos.dtype == torch.bfloat16 and cos.device.type == "cpu":
        setattr(cos, ROTARY_MARK, True)  # this model's layers rotate on our call
    return cos, sin


@functools.cache
def _install_rotary() -> None:
    """transformers' Llama attention calls the module's ``apply_rotary_pos_emb`` by name: in
    its place, one that takes our call for the cos tensors our rotary embedding marked, and
    transformers' own for every other model's (the bench's plain ``generate`` model included)."""
    from transformers.models.llama import modeling_llama

    original = modeling_llama.apply_rotary_pos_emb

    def apply_rotary_pos_emb(q, k, cos, sin, *args, **kwargs):
        ours = getattr(cos, ROTARY_MARK, False) and not args and kwargs.get("unsqueeze_dim", 1) == 1
        if ours and q.stride(-1) == 1 and k.stride(-1) == 1:
            return tuple(_load().rotary(q, k, cos, sin))
        return original(q, k, cos, sin, *args, **kwargs)

    modeling_llama.apply_rotary_pos_emb = apply_rotary_pos_emb


def _targets(model: torch.nn.Module) -> list[tuple[torch.nn.Module, object]]:
    """(module, our forward for it) for each Llama norm, SiLU MLP and rotary embedding of
    ``model``."""
    from transformers.activations import SiLUActivation
    from transformers.models.llama.modeling_llama import LlamaMLP, LlamaRMSNorm, LlamaRotaryEmbedding

    found = []
    for module in model.modules():
        if type(module) is LlamaRMSNorm:
            found.append((module, _norm_forward))
        elif type(module) is LlamaMLP and isinstance(module.act_fn, (SiLUActivation, torch.nn.SiLU)):
            found.append((module, _mlp_forward))
        elif type(module) is LlamaRotaryEmbedding:
            found.append((module, _rotary_embedding_forward))
    return found


def applicable(model: torch.nn.Module, device: torch.device) -> bool:
    return bool(_targets(model)) and available(device, model.dtype)


def use(model: torch.nn.Module, ours: bool) -> int:
    """Route the Llama norms and MLPs of ``model`` through our calls (or back to transformers'
    forwards); returns how many modules are on ours."""
    count = 0
    if ours:
        _install_rotary()
    for module, forward in _targets(model):
        if ours:
            module.forward = types.MethodType(forward, module)
            setattr(module, MARK, True)
            count += 1
        elif vars(module).pop(MARK, False):
            vars(module).pop("forward", None)
    return count


def choose(
    setting, model: torch.nn.Module, device: torch.device, cache: str | os.PathLike | None
) -> bool | None:
    """Whether the model's norms and MLP activations run as our calls (applied before
    returning); ``None`` where there is nothing to choose. ``auto`` measures (or reads the
    cached measurement)."""
    if not applicable(model, device):
        return None
    ours = kernel_choice.timed_switch(
        setting, "fused_ops", cache, model, device, lambda on: use(model, on), ("transformers", "fused"),
        MEASURE_SIZES, CALLS, MARGIN,
    )  # fmt: skip
    use(model, ours)
    return ours
