"""Training benchmark: CPU data-parallel scaling and FLOP/s against a plain matmul, side by side.

A Llama large enough to be compute-bound on a CPU (about 30M parameters; ``--quick`` uses a
small one to check the script in seconds) trains with a plain loop (autocast forward,
backward, fused AdamW) in two layouts measured in the same run:

- 1 process x 1 thread;
- 2 processes x 1 thread, data parallel with DDP over gloo (what ``torchrun`` on CPU does).

Each prints tokens/s; the ratio is the scaling (target >= 1.7x). The achieved training FLOP/s
(about 6 x parameters x tokens/s) is compared with what a plain square matmul reaches in the
same precision on the same number of threads, measured in the same run, so the fraction does
not depend on which CPU ran it. The precision is chosen as training chooses it (bf16 autocast
where the CPU has bf16 matrix units, else fp32) and printed. Tokens are random ids: the
benchmark measures throughput, not learning. Figures are only meaningful on an idle machine:
the load average is printed next to them.

    python -m bench.training            # ~30M parameters, a few minutes
    python -m bench.training --quick    # small model, seconds: checks the script
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Literal

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from pydantic import BaseModel
from transformers import LlamaForCausalLM

from twin_lib.settings import BaseModelRecipe
from twin_lib.training.base_model import llama_config
from twin_lib.training.precision import plan_precision

Precision = Literal["bf16", "fp32"]


# The shapes are base-model recipes; warmup_steps are untimed steps, max_steps the timed ones.
FULL = BaseModelRecipe(
    vocab_size=8192,
    hidden_size=512,
    num_layers=8,
    num_heads=8,
    num_kv_heads=8,
    intermediate_size=1408,
    max_position_embeddings=256,
    seq_len=256,
    batch_size=8,
    warmup_steps=2,
    max_steps=8,
)
QUICK = FULL.model_copy(
    update={
        "vocab_size": 2048,
        "hidden_size": 128,
        "num_layers": 2,
        "num_heads": 4,
        "num_kv_heads": 4,
        "intermediate_size": 352,
        "seq_len": 128,
        "batch_size": 4,
        "warmup_steps": 1,
        "max_steps": 3,
    }
)


class RankResult(BaseModel):
    rank: int
    seconds: float
    tokens: int
    parameters: int
    final_loss: float


def _train(shape: BaseModelRecipe, precision: Precision, rank: int, world: int) -> RankResult:
    """The timed loop of one process; with ``world > 1`` gradients are all-reduced by DDP."""
    torch.manual_seed(0)
    model: torch.nn.Module = LlamaForCausalLM(llama_config(shape, shape.vocab_size))
    parameters = sum(p.numel() for p in model.parameters())
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    generator = torch.Generator().manual_seed(rank)
    loss = torch.zeros(())

    def step() -> torch.Tensor:
        ids = torch.randint(
            0, shape.vocab_size, (shape.batch_size, shape.seq_len), generator=generator
        )
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(input_ids=ids, labels=ids).loss
        out.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return out.detach()

    for _ in range(shape.warmup_steps):
        step()
    if world > 1:
        dist.barrier()
    started = time.perf_counter()
    for _ in range(shape.max_steps):
        loss = step()
    if world > 1:
        dist.barrier()
    seconds = time.perf_counter() - started
    tokens = shape.max_steps * shape.batch_size * shape.seq_len
    return RankResult(
        rank=rank, seconds=seconds, tokens=tokens, parameters=parameters, final_loss=float(loss)
    )


def _worker(
    rank: int,
    world: int,
    shape: BaseModelRecipe,
    precision: Precision,
    rendezvous: str,
    results: object,
) -> None:
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group(
            "gloo",
            init_method=rendezvous,
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(minutes=10),
        )
    try:
        result = _train(shape, precision, rank, world)
    finally:
        if world > 1:
            dist.destroy_process_group()
    results.put(result.model_dump_json())  # type: ignore[attr-defined]


class LayoutResult(BaseModel):
    processes: int
    tokens_per_s: float
    parameters: int

    @property
    def flops(self) -> float:
        return 6.0 * self.parameters * self.tokens_per_s


def run_layout(shape: BaseModelRecipe, precision: Precision, processes: int) -> LayoutResult:
    """Spawn ``processes`` single-threaded ranks (even for one: the same process layout)."""
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    with tempfile.TemporaryDirectory() as tmp:
        rendezvous = f"file://{Path(tmp) / 'rendezvous'}"
        mp.start_processes(
            _worker,
            args=(processes, shape, precision, rendezvous, results),
            nprocs=processes,
            start_method="spawn",
        )
    ranks = [RankResult.model_validate_json(results.get()) for _ in range(processes)]
    slowest = max(r.seconds for r in ranks)
    return LayoutResult(
        processes=processes,
        tokens_per_s=sum(r.tokens for r in ranks) / slowest,
        parameters=ranks[0].parameters,
    )


def matmul_flops(precision: Precision, threads: int, size: int, seconds: float) -> float:
    """FLOP/s of a square matmul in ``precision`` on ``threads`` threads (best of a few runs)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(size, size, dtype=dtype)
        b = torch.randn(size, size, dtype=dtype)
        a @ b
        best = float("inf")
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous)
    return 2.0 * size**3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small model, few steps")
    parser.add_argument(
        "--precision", choices=["auto", "bf16", "fp32"], default="auto", help="as in training"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    shape = QUICK if args.quick else FULL
    plan = plan_precision(args.precision, cuda=False)
    precision: Precision = plan.dtype
    print(f"precision: {precision} ({plan.reason})")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    single = run_layout(shape, precision, 1)
    double = run_layout(shape, precision, 2)
    size = 512 if args.quick else 1024
    window = 1.0 if args.quick else 3.0
    matmul_1 = matmul_flops(precision, 1, size, window)
    matmul_2 = matmul_flops(precision, 2, size, window)

    print(
        f"model: Llama, {single.parameters / 1e6:.1f}M parameters, {shape.num_layers} layers, "
        f"hidden {shape.hidden_size}, {shape.batch_size}x{shape.seq_len} tokens per rank-step"
    )
    print(
        f"{'layout':<24}{'tokens/s':>12}{'train GFLOP/s':>16}{'matmul GFLOP/s':>16}{'fraction':>10}"
    )
    for label, layout, matmul in (
        ("1 process x 1 thread", single, matmul_1),
        ("2 processes x 1 thread", double, matmul_2),
    ):
        print(
            f"{label:<24}{layout.tokens_per_s:>12.0f}{layout.flops / 1e9:>16.1f}"
            f"{matmul / 1e9:>16.1f}{layout.flops / matmul:>10.2f}"
        )
    scaling = double.tokens_per_s / single.tokens_per_s
    verdict = "meets" if scaling >= 1.7 else "below"
    print(f"scaling 2x1 / 1x1: {scaling:.2f}x ({verdict} the 1.7x target)")
    print(f"load average after: {os.getloadavg()[0]:.2f} (figures need an idle machine)")


if __name__ == "__main__":
    main()
