"""Which numeric precision a training run uses on the hardware it landed on.

One script serves a GPU pod and a laptop, so the choice is made at run time and recorded
with the model: on CUDA bf16 with gradient checkpointing and the fused AdamW; on a CPU bf16
autocast only where the cores have bf16 matrix units (AMX or AVX-512 BF16), because without
them bf16 is emulated and slower than fp32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")


class PrecisionPlan(BaseModel):
    """The resolved choice and why; saved in metrics.json and the model card."""

    requested: Literal["auto", "bf16", "fp32"]
    dtype: Literal["bf16", "fp32"]
    device: Literal["cuda", "cpu"]
    gradient_checkpointing: bool
    optimizer: str
    reason: str

    @property
    def bf16(self) -> bool:
        return self.dtype == "bf16"


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


def plan_precision(
    requested: Literal["auto", "bf16", "fp32"],
    *,
    cuda: bool | None = None,
    cpuinfo: Path = CPUINFO,
) -> PrecisionPlan:
    """Resolve ``requested`` against the hardware; ``bf16`` on hardware without it is refused."""
    on_cuda = torch.cuda.is_available() if cuda is None else cuda
    if on_cuda:
        bf16_ok = torch.cuda.is_bf16_supported() if cuda is None else True
        why = "CUDA device with bf16 support" if bf16_ok else "CUDA device without bf16"
        dtype = _choose(requested, bf16_ok, why)
        return PrecisionPlan(
            requested=requested,
            dtype=dtype,
            device="cuda",
            gradient_checkpointing=True,
            optimizer="adamw_torch_fused",
            reason=why,
        )
    flags = cpu_bf16_flags(cpuinfo)
    bf16_ok = bool(flags) and torch.backends.mkldnn.is_available()
    why = (
        f"CPU with bf16 matrix units ({', '.join(flags)}): bf16 autocast"
        if bf16_ok
        else "CPU without bf16 matrix units (no amx_bf16/avx512_bf16 or no oneDNN): fp32"
    )
    return PrecisionPlan(
        requested=requested,
        dtype=_choose(requested, bf16_ok, why),
        device="cpu",
        gradient_checkpointing=False,
        optimizer="adamw_torch",
        reason=why,
    )


def _choose(
    requested: Literal["auto", "bf16", "fp32"], bf16_ok: bool, why: str
) -> Literal["bf16", "fp32"]:
    if requested == "fp32":
        return "fp32"
    if requested == "bf16" and not bf16_ok:
        raise ValueError(
            f"precision 'bf16' was requested but this machine cannot run it fast ({why}); "
            "set precision to 'auto' or 'fp32'"
        )
    return "bf16" if bf16_ok else "fp32"
