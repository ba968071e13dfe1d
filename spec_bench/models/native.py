"""Our C++ kernels for CPUs with AVX-512 BF16, built once per machine.

``torch.utils.cpp_extension`` compiles each source (g++ and ninja; about half a minute) into
torch's extension cache, under a name that carries a hash of the source and flags, so an
edited kernel is built again and an unchanged one is loaded. Where there is no compiler, the
build fails or the CPU lacks the instructions, a kernel is simply not offered.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import shutil

import torch

log = logging.getLogger(__name__)

# C++ our sources share: bf16 to fp32 on 16 lanes, and exp in fp32.
VECTOR_HELPERS = r"""
#include <torch/extension.h>
#include <immintrin.h>

// Up to 16 bf16 values widened to fp32 (bf16 is the top half of an fp32).
static inline __m512 widen(const uint16_t* p, __mmask16 lanes) {
  const __m256i half = _mm256_maskz_loadu_epi16(lanes, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
}

// The lanes of a 16-lane step over a row with ``left`` values still to go.
static inline __mmask16 lanes_from(int64_t left) {
  return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

// exp(x) in fp32 (x clamped to fp32's range): Cephes' expf polynomial after reducing by ln 2,
// scaled by 2^n.
static inline __m512 exp_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), r);
  return _mm512_scalef_ps(_mm512_add_ps(y, _mm512_set1_ps(1.0f)), n);
}
"""

FLAGS = ["-O3", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512bf16", "-fopenmp"]


@functools.cache
def cpu_has_avx512_bf16() -> bool:
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(check and check())


def offered(device: torch.device, dtype: torch.dtype) -> bool:
    """Where our kernels may run at all: bf16 on a CPU with AVX-512 BF16."""
    return device.type == "cpu" and dtype == torch.bfloat16 and cpu_has_avx512_bf16()


@functools.cache
def build(name: str, source: str, functions: tuple[str, ...]):
    """The compiled extension ``name`` (None where it cannot be built)."""
    if shutil.which("c++") is None and shutil.which("g++") is None:
        return None
    try:
        from torch.utils.cpp_extension import load_inline

        digest = hashlib.sha256((source + " ".join(FLAGS)).encode()).hexdigest()[:10]
        return load_inline(
            f"spec_bench_{name}_{digest}",
            cpp_sources=source,
            functions=list(functions),
            extra_cflags=FLAGS,
            extra_ldflags=["-fopenmp"],
        )
    except Exception as error:  # a missing compiler or ninja: the kernel is not offered
        log.warning("%s: not built (%s)", name, str(error).splitlines()[0] if str(error) else error)
        return None
