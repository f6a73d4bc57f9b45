"""Hardware: which device and precision a run uses, resolved once and recorded.

``device: auto`` picks a CUDA GPU where torch sees one, else the CPU. (Apple's
``mps`` is used when asked for by name: it has no float64, which the IWAE
estimate needs, so that part runs on the CPU there.)

``precision: auto`` picks bfloat16 autocast only where the hardware runs it
natively, and float32 everywhere else:

- a CPU with AVX-512 BF16 or AMX: bf16 (about 1.5-3x faster here);
- a CPU without them (AVX2 only): fp32, because PyTorch emulates bf16 there and
  runs 5x or more *slower* (measured: a ``Linear(784, 512)`` at batch 64 took
  2.56 ms in bf16 against 0.49 ms in fp32 on a 2-core AVX2 EPYC);
- a CUDA GPU that supports bf16 natively (Ampere or newer): bf16.

What a run resolved to is written into its ``model.json`` (and a study's into
``results.json``), so that a resumed run keeps its precision wherever it resumes.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

import torch

from vaelab.errors import ConfigError, notice

PRECISIONS = ("auto", "fp32", "bf16")
DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"


def cpu_capability() -> str:
    """The SIMD level PyTorch dispatches its CPU kernels to (``DEFAULT``, ``AVX2``, ``AVX512``, ...)."""
    return str(torch.backends.cpu.get_cpu_capability())


def cpu_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX), not by emulation.

    A forced lower kernel level (``ATEN_CPU_CAPABILITY=avx2``) counts as no:
    PyTorch then takes its AVX2 kernels, which emulate bf16.
    """
    if cpu_capability() not in ("AVX512", "AVX512_BF16", "AMX"):  # ATEN level names of 2.x
        return False
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and bool(check()) for check in checks)


def cuda_native_bf16(device: torch.device) -> bool:
    """Whether a CUDA device computes bfloat16 natively (compute capability 8.0, Ampere, or newer)."""
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 autocast at full speed."""
    if device.type == "cpu":
        return cpu_native_bf16()
    if device.type == "cuda":
        return cuda_native_bf16(device)
    return False


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto`` -> ``cuda`` if torch sees a GPU, else ``cpu``; a named device is checked to exist."""
    spec = "auto" if spec is None else str(spec).strip().lower()
    if spec == "auto":
        return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if match:
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec!r} is not available: torch sees no CUDA GPU here; use --device cpu or auto")
        index = int(match.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device {spec!r} is not available: torch sees {torch.cuda.device_count()} CUDA "
                              f"device(s); use cuda:0 to cuda:{torch.cuda.device_count() - 1}")
        return torch.device("cuda", index)
    if spec == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("device 'mps' is not available: this is not an Apple-silicon Mac with MPS; "
                              "use --device cpu or auto")
        return torch.device("mps")
    raise ConfigError(f"unknown device {spec!r}: choose {DEVICE_HELP}")


def resolve_precision(spec: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` where ``device`` runs it natively, else ``fp32``; ``fp32``/``bf16`` stay."""
    if spec not in PRECISIONS:
        raise ConfigError(f"unknown precision {spec!r}: choose auto, fp32 or bf16")
    if spec != "auto":
        return spec
    return "bf16" if native_bf16(device) else "fp32"


def autocast(device: torch.device, precision: str):
    """bfloat16 autocast on ``device`` for ``bf16``; nothing for ``fp32``."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_deterministic(device: torch.device) -> None:
    """On CUDA: deterministic cuBLAS and cuDNN, so the same seed on the same GPU gives the same weights.

    CPU kernels of the ops vaelab uses are deterministic already. Ops with no
    deterministic CUDA kernel warn instead of failing (``warn_only``).
    """
    if device.type != "cuda":
        return
    # cuBLAS reads this when its first handle is created: set before any GPU matmul.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


@dataclass(frozen=True)
class Resolved:
    """What ``auto`` became for one run or study: recorded beside its results."""

    device: str
    precision: str
    cpu_capability: str
    torch: str

    def as_dict(self) -> dict[str, str]:
        """A JSON-able copy."""
        return asdict(self)


def resolve(device: str | torch.device | None = "auto", precision: str = "auto") -> tuple[torch.device, Resolved]:
    """Resolve device and precision once; the torch device and the record to store."""
    torch_device = resolve_device(device)
    chosen = resolve_precision(precision, torch_device)
    return torch_device, Resolved(str(torch_device), chosen, cpu_capability(), torch.__version__.split("+")[0])


def keep_recorded_precision(recorded: dict, resolved: Resolved, what: str, why: str) -> Resolved:
    """The precision a run or study started with wins over what this machine would choose.

    ``recorded`` is its saved ``hardware`` record (empty if none); when the two
    differ, one line says so (``what`` names the run or study, ``why`` the reason).
    """
    before = recorded.get("precision")
    if before not in ("fp32", "bf16") or before == resolved.precision:
        return resolved
    notice(f"{what} was started in {before} (CPU {recorded.get('cpu_capability', '?')}, "
           f"{recorded.get('device', '?')}); this machine would choose {resolved.precision}: "
           f"continuing in {before} {why}")
    return Resolved(resolved.device, before, resolved.cpu_capability, resolved.torch)


def info() -> dict[str, Any]:
    """What ``vaelab info`` reports: torch, devices, CPU capability, what ``auto`` resolves to, threads."""
    cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    mps = getattr(torch.backends, "mps", None)
    device, resolved = resolve("auto", "auto")
    return {
        "torch": torch.__version__,
        "cpu_capability": cpu_capability(),
        "cpu_native_bf16": cpu_native_bf16(),
        "cuda_devices": cuda,
        "mps": bool(mps is not None and mps.is_available()),
        "auto_device": str(device),
        "auto_precision": resolved.precision,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
