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

from twin_lib.hardware import CPUINFO, Precision, choose_precision, cpu_bf16_support


class PrecisionPlan(BaseModel):
    """The resolved choice and why; saved in metrics.json and the model card."""

    requested: Precision
    dtype: Literal["bf16", "fp32"]
    device: Literal["cuda", "cpu"]
    gradient_checkpointing: bool
    optimizer: str
    reason: str

    @property
    def bf16(self) -> bool:
        return self.dtype == "bf16"


def plan_precision(
    requested: Precision,
    *,
    cuda: bool | None = None,
    cpuinfo: Path = CPUINFO,
) -> PrecisionPlan:
    """Resolve ``requested`` against the hardware; ``bf16`` on hardware without it is refused."""
    on_cuda = torch.cuda.is_available() if cuda is None else cuda
    if on_cuda:
        bf16_ok = torch.cuda.is_bf16_supported() if cuda is None else True
        why = "CUDA device with bf16 support" if bf16_ok else "CUDA device without bf16"
        dtype = choose_precision(requested, bf16_ok, why)
        return PrecisionPlan(
            requested=requested,
            dtype=dtype,
            device="cuda",
            gradient_checkpointing=True,
            optimizer="adamw_torch_fused",
            reason=why,
        )
    bf16_ok, why = cpu_bf16_support(cpuinfo)
    return PrecisionPlan(
        requested=requested,
        dtype=choose_precision(requested, bf16_ok, why),
        device="cpu",
        gradient_checkpointing=False,
        optimizer="adamw_torch",
        reason=why,
    )
