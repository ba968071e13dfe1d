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
