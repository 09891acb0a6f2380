"""GPU check: the platform's own trainer for a few LoRA SFT (+DPO) steps in bf16 on CUDA, then
the serving generator on the GPU, side by side with the same generation on the CPU.

CI and the test suite have no GPU, so the CUDA paths (bf16 with gradient checkpointing and
the fused AdamW, NCCL, a predictor on a GPU) are only ever exercised by running this script
on a machine that has one. It uses the real code paths, not a copy: ``run_local`` (torchrun
with one process per GPU), ``twin_lib.training.train`` and the serving
``TransformersGenerator``. Inputs and outputs are local directories, so no MinIO is needed.

    python -m bench.gpu_check --base-model DIR            # ~16M-parameter offline base model
    python -m bench.gpu_check --base-model DIR --steps 60

It prints the precision plan, the trainer's record (loss before and after, tokens/s, the
precision it used) and generation tokens/s on the GPU against the CPU on the same prompts.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch

from tests.support.training_data import write_tiny_datasets
from twin_lib.domain.chat import ChatMessage
from twin_lib.serving.contracts import GenerationParams
from twin_lib.serving.generators import TransformersGenerator
from twin_lib.settings import ServingSettings, StageHyperparameters, TwinSettings
from twin_lib.training.config import TrainingConfig
from twin_lib.training.local_launch import run_local
from twin_lib.training.precision import plan_precision

PROMPTS = (
    "Tell me about rivers.",
    "Describe winter in a few sentences.",
    "What do you think about bridges?",
    "Write about letters you never sent.",
    "Say something about gardens.",
    "How do clocks keep time?",
    "Why is bread worth baking at home?",
    "Describe a lantern at night.",
)


def _train(base_model: Path, work: Path, steps: int) -> Path:
    uris = write_tiny_datasets(work / "data")
    config = TrainingConfig.model_validate(
        {
            "base_model": str(base_model),
            "sft_data": uris["sft"],
            "dpo_data": uris["dpo"],
            "dpo": StageHyperparameters(
                max_steps=max(steps // 3, 1), batch_size=8, learning_rate=5e-5, max_length=256
            ),
            "output_uri": str(work / "out"),
            "sft": StageHyperparameters(
                max_steps=steps, batch_size=16, learning_rate=2e-3, max_length=256, warmup_ratio=0
            ),
            "checkpoint_steps": steps,
            "precision": "bf16",
            "run_name": "gpu-check",
        }
    )
    nproc = max(torch.cuda.device_count(), 1)
    result = run_local(config, nproc, settings=TwinSettings(_env_file=None), timeout_s=480)
    print(f"training result: {result.model_dump_json()}")
    metrics = json.loads((work / "out" / "metrics.json").read_text())
    print(f"precision plan used by the trainer: {json.dumps(metrics['precision'])}")
    for stage in ("sft", "dpo"):
        record = metrics.get(stage)
        if record:
            print(
                f"{stage}: steps {record['steps']}  train loss {record['train_loss']}  "
                f"eval loss {record['eval_loss']}  tokens/s {record['tokens_per_s']}"
            )
    return work / "out" / "merged"


def _generation_rate(model_dir: Path, device: str, max_tokens: int) -> tuple[float, str]:
    serving = ServingSettings(device=device, max_concurrent_generations=1)
    generator = TransformersGenerator(model_dir, serving)
    params = GenerationParams(max_tokens=max_tokens, temperature=0.0)
    first = [ChatMessage(role="user", content=PROMPTS[0])]
    generator.generate(first, params)  # warm-up: kernels, caches
    tokens, started = 0, time.perf_counter()
    sample = ""
    for prompt in PROMPTS:
        generation = generator.generate([ChatMessage(role="user", content=prompt)], params)
        tokens += generation.completion_tokens
        sample = sample or generation.text
    elapsed = time.perf_counter() - started
    streamed = "".join(p for p in generator.stream(first, params) if isinstance(p, str))
    print(f"{device}: streamed {len(streamed)} characters; sample answer: {sample[:120]!r}")
    return tokens / elapsed, generator.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-model", type=Path, required=True, help="a local base model dir")
    parser.add_argument("--steps", type=int, default=40, help="SFT optimizer steps")
    parser.add_argument("--max-tokens", type=int, default=64, help="new tokens per answer")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not torch.cuda.is_available():
        print("no CUDA device: this check needs a GPU machine")
        return 2
    print(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}, "
        f"bf16 supported: {torch.cuda.is_bf16_supported()}"
    )
    print(f"precision plan (auto): {plan_precision('auto').model_dump_json()}")
    with tempfile.TemporaryDirectory(prefix="twin-gpu-check-") as scratch:
        started = time.monotonic()
        merged = _train(args.base_model, Path(scratch), args.steps)
        print(f"training wall time: {time.monotonic() - started:.1f} s")
        gpu_rate, gpu_name = _generation_rate(merged, "cuda", args.max_tokens)
        cpu_rate, cpu_name = _generation_rate(merged, "cpu", args.max_tokens)
    print(f"{'generator':<40} {'tokens/s':>10}")
    print(f"{gpu_name:<40} {gpu_rate:>10.1f}")
    print(f"{cpu_name:<40} {cpu_rate:>10.1f}")
    print(
        f"gpu check done: {args.steps} SFT steps in bf16, generation {gpu_rate:.0f} tokens/s on "
        f"the GPU vs {cpu_rate:.0f} on the CPU ({gpu_rate / cpu_rate:.1f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
