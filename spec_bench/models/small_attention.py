"""Our attention for the few queries of a decoding step, on CPUs with AVX-512 BF16.

PyTorch's CPU flash kernel blocks queries and keys for long prompts; for the 1 to 16 queries
of a decoding step most of its time is setup. On the 2-core EPYC, nine heads over three
key/value heads (the embedded model, head size 64) and 316 cached tokens took it 175 us for one
query and 138 us for 16, where this kernel took 7.6 and 46 us (the fastest of 20-30 rounds
of 10-20 calls, one process); in the model that was 3-6 ms of a 20-35 ms forward. Each
head's scores are fp32 sums of exact bf16 products (``vdpbf16ps``), scaled and masked, a
softmax in fp32 (a Cephes polynomial for exp); the probabilities are rounded to bf16, as
PyTorch's kernel rounds them, and weight two keys' values per ``vdpbf16ps`` (fp32 sums), then
the result is rounded once to bf16. Tested no further from the exact result than PyTorch's
kernel (on the tests' inputs the largest and the mean errors equal its own); summed in another
order, so outputs can differ in the last bit, which the greedy checks classify as near-ties.
Weighting the values in fp32 instead (widened values, fp32 probabilities) was a third
closer to the exact result on the mean but took 64 us for 16 queries. Grouped heads read their
key/value head in place (no copies).

It takes one sequence of up to ``MAX_QUERIES`` queries with an additive or boolean mask (or
one query and none), head size 64 or 128, no dropout, soft-capping or sinks; every other call
(prompts, batches) goes to the attention the model used before. ``small_attention: auto``
times whole forwards with it and without it, interleaved, and keeps it where clearly faster,
cached like the other kernel choices. Built once per machine (see ``native``).
"""

from __future__ import annotations

import functools
import os

import torch

from spec_bench.models import kernel_choice, native

MAX_QUERIES = 64  # beyond a verification's size PyTorch's blocked kernel is the better tool
HEAD_SIZES = (64, 128)
MEASURE_SIZES = (1, 4, 16)  # tokens per timed forward: an AR step and typical verifications
CALLS = 8  # timed rounds per setting, after one warm-up each
MARGIN = 0.95  # chosen only when its forwards take under 95% of the other's

_SOURCE = (
    native.VECTOR_HELPERS
    + r"""
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

// exp(x) for x <= 0 (scores minus their row's maximum); below -87, where fp32 underflows,
// exactly 0.
static inline __m512 exp_nonpositive(__m512 x) {
  const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);
  return _mm512_maskz_mov_ps(live, exp_ps(x));
}

// 16 entries of an additive (float or bf16) or boolean (true = visible) mask row, as fp32
// to add to the scores; lanes outside ``lanes`` read nothing.
static inline __m512 mask_lanes(const float* row, __mmask16 lanes) {
  return _mm512_maskz_loadu_ps(lanes, row);
}
static inline __m512 mask_lanes(const uint16_t* row, __mmask16 lanes) { return widen(row, lanes); }
static inline __m512 mask_lanes(const bool* row, __mmask16 lanes) {
  const __m128i bytes = _mm_maskz_loadu_epi8(lanes, row);
  const __mmask16 visible = _mm_test_epi8_mask(bytes, bytes);
  return _mm512_mask_blend_ps(visible, _mm512_set1_ps(-INFINITY), _mm512_setzero_ps());
}

// Sixteen vectors of partial sums to one vector of their totals (lane i: the sum of v[i]):
// pairs within 128-bit lanes, then quadruples, then across the four lanes.
static inline __m512 totals16(const __m512* v) {
  __m512 pairs[8], quads[4];
  for (int i = 0; i < 8; ++i)
    pairs[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                             _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i)
    quads[i] = _mm512_add_ps(_mm512_shuffle_ps(pairs[2 * i], pairs[2 * i + 1], 0x44),
                             _mm512_shuffle_ps(pairs[2 * i], pairs[2 * i + 1], 0xEE));
  const __m512 low = _mm512_add_ps(_mm512_shuffle_f32x4(quads[0], quads[1], 0x88),
                                   _mm512_shuffle_f32x4(quads[0], quads[1], 0xDD));
  const __m512 high = _mm512_add_ps(_mm512_shuffle_f32x4(quads[2], quads[3], 0x88),
                                    _mm512_shuffle_f32x4(quads[2], quads[3], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(low, high, 0x88), _mm512_shuffle_f32x4(low, high, 0xDD));
}

// Scaled scores of ROWS query rows of one head against every key, into s. With 4 rows, 4
// keys at a time: their 16 dot products end in one vector (totals16) rather than 16
// horizontal sums.
template <int ROWS, int CHUNKS>
static void scores(const uint16_t* q, int64_t q_row, const uint16_t* k, int64_t k_row, int64_t keys,
                   float scale, float* s, int64_t s_row) {
  __m512bh query[ROWS][CHUNKS];
  for (int r = 0; r < ROWS; ++r)
    for (int c = 0; c < CHUNKS; ++c)
      query[r][c] = (__m512bh)_mm512_loadu_si512(q + r * q_row + c * 32);
  int64_t j = 0;
  if constexpr (ROWS == 4) {
    const __m512 scaled = _mm512_set1_ps(scale);
    for (; j + 4 <= keys; j += 4) {
      __m512 sums[16];  // row r, key j + t at 4r + t
      for (int i = 0; i < 16; ++i) sums[i] = _mm512_setzero_ps();
      for (int t = 0; t < 4; ++t)
        for (int c = 0; c < CHUNKS; ++c) {
          const __m512bh key = (__m512bh)_mm512_loadu_si512(k + (j + t) * k_row + c * 32);
          for (int r = 0; r < 4; ++r) sums[4 * r + t] = _mm512_dpbf16_ps(sums[4 * r + t], query[r][c], key);
        }
      alignas(64) float block[16];
      _mm512_store_ps(block, _mm512_mul_ps(totals16(sums), scaled));
      for (int r = 0; r < 4; ++r) _mm_storeu_ps(s + r * s_row + j, _mm_load_ps(block + 4 * r));
    }
  }
  for (; j < keys; ++j) {
    __m512 sums[ROWS];
    for (int r = 0; r < ROWS; ++r) sums[r] = _mm512_setzero_ps();
    for (int c = 0; c < CHUNKS; ++c) {
      const __m512bh key = (__m512bh)_mm512_loadu_si512(k + j * k_row + c * 32);
      for (int r = 0; r < ROWS; ++r) sums[r] = _mm512_dpbf16_ps(sums[r], query[r][c], key);
    }
    for (int r = 0; r < ROWS; ++r) s[r * s_row + j] = _mm512_reduce_add_ps(sums[r]) * scale;
  }
}

// One row: the mask added (when there is one), then a softmax in place; returns 1 / the sum
// of its exponentials.
template <typename M>
static float softmax_row(float* s, const M* mask, int64_t keys) {
  __m512 top = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < keys; j += 16) {
    const __mmask16 lanes = lanes_from(keys - j);
    __m512 x = _mm512_maskz_loadu_ps(lanes, s + j);
    if (mask) {
      x = _mm512_add_ps(x, mask_lanes(mask + j, lanes));
      _mm512_mask_storeu_ps(s + j, lanes, x);
    }
    top = _mm512_mask_max_ps(top, lanes, top, x);
  }
  const __m512 peak = _mm512_set1_ps(_mm512_reduce_max_ps(top));
  __m512 total = _mm512_setzero_ps();
  for (int64_t j = 0; j < keys; j += 16) {
    const __mmask16 lanes = lanes_from(keys - j);
    const __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, s + j), peak);
    const __m512 e = _mm512_maskz_mov_ps(lanes, exp_nonpositive(x));
    _mm512_mask_storeu_ps(s + j, lanes, e);
    total = _mm512_add_ps(total, e);
  }
  return 1.0f / _mm512_reduce_add_ps(total);
}

// ROWS rows of probabilities (bf16, each row padded with a zero past its last key) times the
// values, each scaled by its row's 1/sum, as bf16. Two keys at a time: their value rows
// interleaved into bf16 pairs per dimension, so one vdpbf16ps adds both keys' products for 16
// dimensions (fp32 sums of exact products; half the multiplications of widening to fp32).
template <int ROWS, int VECTORS>
static void weighted_values(const uint16_t* p, int64_t p_row, const float* inverse, const uint16_t* v,
                            int64_t v_row, int64_t keys, uint16_t* out, int64_t out_row) {
  static_assert(VECTORS % 2 == 0, "dimensions in 32s");
  __m512 sums[ROWS][VECTORS];
  for (int r = 0; r < ROWS; ++r)
    for (int c = 0; c < VECTORS; ++c) sums[r][c] = _mm512_setzero_ps();
  // Lanes 2i, 2i+1 of the first: dimension i of key j and of key j+1; the second: i + 16.
  alignas(64) static constexpr uint16_t low_order[32] = {
      0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39,
      8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  alignas(64) static constexpr uint16_t high_order[32] = {
      16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55,
      24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63};
  const __m512i low = _mm512_load_si512(low_order), high = _mm512_load_si512(high_order);
  for (int64_t j = 0; j < keys; j += 2) {
    const bool pair = j + 1 < keys;  // the last key alone meets a zero row (and a zero weight)
    __m512bh value[VECTORS];
    for (int c = 0; c < VECTORS; c += 2) {
      const __m512i first = _mm512_loadu_si512(v + j * v_row + c * 16);
      const __m512i second = pair ? _mm512_loadu_si512(v + (j + 1) * v_row + c * 16) : _mm512_setzero_si512();
      value[c] = (__m512bh)_mm512_permutex2var_epi16(first, low, second);
      value[c + 1] = (__m512bh)_mm512_permutex2var_epi16(first, high, second);
    }
    for (int r = 0; r < ROWS; ++r) {
      uint32_t weights;
      std::memcpy(&weights, p + r * p_row + j, sizeof weights);
      const __m512bh both = (__m512bh)_mm512_set1_epi32(static_cast<int>(weights));
      for (int c = 0; c < VECTORS; ++c) sums[r][c] = _mm512_dpbf16_ps(sums[r][c], both, value[c]);
    }
  }
  for (int r = 0; r < ROWS; ++r)
    for (int c = 0; c < VECTORS; ++c)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + r * out_row + c * 16),
                          (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(sums[r][c], _mm512_set1_ps(inverse[r]))));
}

// A row of fp32 probabilities as bf16 (rounded to nearest even), then a zero.
static void to_bf16(const float* s, int64_t keys, uint16_t* p) {
  for (int64_t j = 0; j < keys; j += 16) {
    const __mmask16 lanes = lanes_from(keys - j);
    _mm256_mask_storeu_epi16(p + j, lanes, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(lanes, s + j)));
  }
  p[keys] = 0;
}

template <int D, typename M>
static void heads(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const M* mask,
                  int64_t mask_row, float scale, torch::Tensor& out) {
  // Rows a pass: 4 for scores; for the weighted values as many as keep the sums in registers.
  constexpr int CHUNKS = D / 32, VECTORS = D / 16, ROWS = 4, VALUE_ROWS = D <= 64 ? 4 : 2;
  const int64_t heads = q.size(1), queries = q.size(2), keys = k.size(2);
  const int64_t group = heads / k.size(1);
  const auto* qs = reinterpret_cast<const uint16_t*>(q.data_ptr());
  const auto* ks = reinterpret_cast<const uint16_t*>(k.data_ptr());
  const auto* vs = reinterpret_cast<const uint16_t*>(v.data_ptr());
  auto* os = reinterpret_cast<uint16_t*>(out.data_ptr());
  const int64_t q_head = q.stride(1), q_row = q.stride(2), k_head = k.stride(1), k_row = k.stride(2);
  const int64_t v_head = v.stride(1), v_row = v.stride(2), out_row = heads * D;
  // Tasks of one head and up to ROWS queries, so both threads get equal shares of a step's
  // 9 heads x 16 queries (by heads alone, one thread took 5 heads and the other 4).
  const int64_t blocks = (queries + ROWS - 1) / ROWS;
  at::parallel_for(0, heads * blocks, 1, [&](int64_t first, int64_t last) {
    const int64_t p_row = keys + 2;  // room for the zero after the last key, rows 4-byte aligned
    std::vector<float> s(ROWS * keys), inverse(ROWS);
    std::vector<uint16_t> p(ROWS * p_row);
    for (int64_t task = first; task < last; ++task) {
      const int64_t h = task / blocks, i0 = (task % blocks) * ROWS;
      const int64_t rows = std::min<int64_t>(ROWS, queries - i0);
      const uint16_t* qh = qs + h * q_head + i0 * q_row;
      const uint16_t* kh = ks + (h / group) * k_head;
      const uint16_t* vh = vs + (h / group) * v_head;
      uint16_t* oh = os + i0 * out_row + h * D;
      if (rows == ROWS) {
        scores<ROWS, CHUNKS>(qh, q_row, kh, k_row, keys, scale, s.data(), keys);
      } else {
        for (int64_t i = 0; i < rows; ++i)
          scores<1, CHUNKS>(qh + i * q_row, q_row, kh, k_row, keys, scale, s.data() + i * keys, keys);
      }
      for (int64_t i = 0; i < rows; ++i) {
        inverse[i] = softmax_row<M>(s.data() + i * keys, mask ? mask + (i0 + i) * mask_row : nullptr, keys);
        to_bf16(s.data() + i * keys, keys, p.data() + i * p_row);
      }
      int64_t i = 0;
      for (; i + VALUE_ROWS <= rows; i += VALUE_ROWS)
        weighted_values<VALUE_ROWS, VECTORS>(p.data() + i * p_row, p_row, inverse.data() + i, vh, v_row, keys,
                                             oh + i * out_row, out_row);
      for (; i < rows; ++i)
        weighted_values<1, VECTORS>(p.data() + i * p_row, p_row, inverse.data() + i, vh, v_row, keys,
                                    oh + i * out_row, out_row);
    }
  });
}

template <typename M>
static void dispatch(int64_t d, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const M* mask, int64_t mask_row, float scale, torch::Tensor& out) {
  if (d == 64) heads<64, M>(q, k, v, mask, mask_row, scale, out);
  else heads<128, M>(q, k, v, mask, mask_row, scale, out);
}

// q [1, H, Q, D], k and v [1, G, S, D] (bf16, rows contiguous, any head stride), mask
// additive [.., Q, S] or undefined: returns [1, Q, H, D] bf16.
torch::Tensor attention(torch::Tensor q, torch::Tensor k, torch::Tensor v, c10::optional<torch::Tensor> mask,
                        double scale) {
  TORCH_CHECK(q.scalar_type() == torch::kBFloat16 && k.scalar_type() == torch::kBFloat16 &&
              v.scalar_type() == torch::kBFloat16, "bf16 queries, keys and values");
  TORCH_CHECK(q.dim() == 4 && q.size(0) == 1 && k.size(0) == 1 && v.size(0) == 1, "one sequence");
  TORCH_CHECK(q.stride(3) == 1 && k.stride(3) == 1 && v.stride(3) == 1, "rows contiguous");
  TORCH_CHECK(q.size(1) % k.size(1) == 0 && k.sizes() == v.sizes(), "grouped heads");
  const int64_t d = q.size(3), queries = q.size(2), keys = k.size(2);
  auto out = torch::empty({1, queries, q.size(1), d}, q.options());
  const uint16_t* mask16 = nullptr;
  const float* mask32 = nullptr;
  const bool* mask_bool = nullptr;
  int64_t mask_row = 0;
  torch::Tensor m;
  if (mask.has_value() && mask->defined()) {
    m = *mask;
    TORCH_CHECK(m.size(-1) == keys && m.size(-2) == queries && m.stride(-1) == 1 &&
                m.numel() == queries * keys, "one mask row per query over every key");
    mask_row = m.stride(-2);
    if (m.scalar_type() == torch::kBFloat16) mask16 = reinterpret_cast<const uint16_t*>(m.data_ptr());
    else if (m.scalar_type() == torch::kBool) mask_bool = m.data_ptr<bool>();
    else { m = m.to(torch::kFloat).contiguous(); mask32 = m.data_ptr<float>(); mask_row = m.stride(-2); }
  }
  const float s = static_cast<float>(scale);
  TORCH_CHECK(d == 64 || d == 128, "head size 64 or 128");
  if (mask32) dispatch<float>(d, q, k, v, mask32, mask_row, s, out);
  else if (mask_bool) dispatch<bool>(d, q, k, v, mask_bool, mask_row, s, out);
  else dispatch<uint16_t>(d, q, k, v, mask16, mask_row, s, out);
  return out;
}
"""
)


def _load():
    return native.build("small_attention", _SOURCE, ("attention",))


def available(device: torch.device, dtype: torch.dtype) -> bool:
    """A CPU with AVX-512 BF16, a bf16 model, and the extension built."""
    return native.offered(device, dtype) and _load() is not None


def takes(query, key, attention_mask, dropout, kwargs) -> bool:
    """Whether this call is one our kernel computes exactly as asked."""
    queries = query.shape[2]
    return (
        query.device.type == "cpu"
        and query.dtype == key.dtype == torch.bfloat16
        and query.shape[0] == 1
        and 0 < queries <= MAX_QUERIES
        and query.shape[-1] in HEAD_SIZES
        and query.shape[1] % key.shape[1] == 0
        and (attention_mask is not None or queries == 1)
        and (attention_mask is None or attention_mask.shape[-2:] == (queries, key.shape[2]))
        and not dropout
        and all(kwargs.get(name) is None for name in ("position_bias", "softcap", "s_aux", "sinks"))
    )


def attention(
    module, query, key, value, attention_mask, dropout=0.0, scaling=None, *, fallback: str, **kwargs
):
    """transformers' attention-function signature: ``query`` (1, heads, queries, size), ``key``
    and ``value`` (1, key heads, keys, size); returns (1, queries, heads, size) and no weights."""
    if not takes(query, key, attention_mask, dropout, kwargs):
        from transformers import AttentionInterface

        return AttentionInterface()[fallback](
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    return _load().attention(query, key, value, attention_mask, float(scale)), None


def name_over(fallback: str) -> str:
    return f"small_attention_over_{fallback}"


@functools.cache
def _register(fallback: str) -> str:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    name = name_over(fallback)
    AttentionInterface.register(name, functools.partial(attention, fallback=fallback))
    # The masks of the fallback (SDPA's, additive or boolean): transformers builds none for a
    # name it has no mask function for.
    AttentionMaskInterface.register(name, AttentionMaskInterface().get(fallback, sdpa_mask))
    return name


def applicable(model: torch.nn.Module, device: torch.device) -> bool:
    """A bf16 model on an SDPA attention (transformers' or ours with grouped heads) whose head
    size our kernel takes, on a CPU where it is built."""
    config = model.config
    heads = getattr(config, "num_attention_heads", 0)
    size = getattr(config, "head_dim", None) or (config.hidden_size // heads if heads else 0)
    implementation = str(config._attn_implementation)
    return (
        size in HEAD_SIZES
        and (implementation.startswith("sdpa") or implementation.startswith("small_attention_over_"))
        and available(device, model.dtype)
    )


def use(model: torch.nn.Module, ours: bool) -> None:
    """Put the model on our attention (over the one it used) or back on that one."""
    current = str(model.config._attn_implementation)
    fallback = current.removeprefix("small_attention_over_")
    model.config._attn_implementation = _register(fallback) if ours else fallback


def choose(
    setting, model: torch.nn.Module, device: torch.device, cache: str | os.PathLike | None
) -> bool | None:
    """Whether the model's forwards use our attention (applied before returning); ``None``
    where there is nothing to choose. ``auto`` measures (or reads the cached measurement)."""
    if not applicable(model, device):
        return None
    ours = kernel_choice.timed_switch(
        setting, "small_attention", cache, model, device, lambda on: use(model, on),
        ("sdpa", "small_attention"), MEASURE_SIZES, CALLS, MARGIN,
    )  # fmt: skip
    use(model, ours)
    return ours
