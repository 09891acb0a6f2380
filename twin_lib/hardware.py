"""What the processor can run fast, shared by training, serving and the feature encoder.

bf16 pays off on a CPU only where the cores have bf16 matrix units (AMX or AVX-512 BF16)
and torch reaches them through oneDNN; elsewhere bf16 is emulated and slower than fp32.
Every CPU inference and training run resolves its precision here, so they agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Precision = Literal["auto", "bf16", "fp32"]

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")


def cpu_bf16_flags(cpuinfo: Path = CPUINFO) -> list[str]:
    """The bf16 matrix-unit flags the CPU advertises (empty where /proc/cpuinfo is absent)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return [flag for flag in CPU_BF16_FLAGS if flag in flags]


def cpu_bf16_support(cpuinfo: Path = CPUINFO) -> tuple[bool, str]:
    """Whether bf16 is fast on this CPU, and why, in words for logs and model cards."""
    import torch

    flags = cpu_bf16_flags(cpuinfo)
    if flags and torch.backends.mkldnn.is_available():
        return True, f"CPU with bf16 matrix units ({', '.join(flags)}): bf16 autocast"
    return False, "CPU without bf16 matrix units (no amx_bf16/avx512_bf16 or no oneDNN): fp32"


def choose_precision(requested: Precision, bf16_ok: bool, why: str) -> Literal["bf16", "fp32"]:
    """``auto`` takes bf16 where it is fast; an explicit ``bf16`` where it is not is refused."""
    if requested == "fp32":
        return "fp32"
    if requested == "bf16" and not bf16_ok:
        raise ValueError(
            f"precision 'bf16' was requested but this machine cannot run it fast ({why}); "
            "set precision to 'auto' or 'fp32'"
        )
    return "bf16" if bf16_ok else "fp32"
