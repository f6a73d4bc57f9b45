"""Precision and layout: fp32 against ``auto`` for each study model, side by side in one process.

For each of the thesis study's models, at the quick profile's batch size, it
times training steps in fp32 and in what ``precision: auto`` resolves to on this
machine (bf16 autocast only with native bf16: AVX-512 BF16 or AMX on a CPU,
Ampere or newer on a GPU), and prints the ratio. ``auto`` must never be slower
than fp32 by more than noise: where the hardware would emulate bf16 it *is*
fp32. A second table times the conv models with and without channels_last.

Run: ``.venv/bin/python bench/precision.py [--images 1024] [--repeats 3]``.
To see what an AVX2-only CPU does on a bigger one:
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python bench/precision.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vaelab.studies.spec import load_study
from vaelab.hardware import autocast, info, resolve
from vaelab.models import build_model
from vaelab.training.trainer import make_optimizer


def seconds_per_image(config, precision: str, images: torch.Tensor, channels_last: bool = True) -> float:
    """Seconds per training image over ``images`` (one pass, after one warm-up batch)."""
    model = build_model(config.model, 0)
    if not channels_last:
        model.to(memory_format=torch.contiguous_format)
    optimizer = make_optimizer(model, config)
    generator = torch.Generator().manual_seed(0)
    batch_size, device = config.train.batch_size, torch.device("cpu")

    def step(x):
        with autocast(device, precision):
            loss = model.objective(model, x, x, generator)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(images[:batch_size])  # warm-up: oneDNN picks its kernels on the first call
    started = time.perf_counter()
    for start in range(0, len(images), batch_size):
        step(images[start:start + batch_size])
    return (time.perf_counter() - started) / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024, help="training images per conv measurement (16x for MLPs)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per cell (median shown)")
    args = parser.parse_args()
    facts = info()
    _, resolved = resolve("cpu", "auto")
    print(f"torch {facts['torch']}, CPU capability {facts['cpu_capability']}, native bf16 "
          f"{'yes' if facts['cpu_native_bf16'] else 'no'}, {facts['threads']} threads; "
          f"precision auto -> {resolved.precision}")
    # MLP steps are 70x cheaper than conv steps: give them 16x the images, so that every
    # measurement lasts long enough (about half a second) to rise above timer noise.
    images = torch.rand(16 * args.images, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    spec = load_study("thesis")
    models = {key: spec.run_config(key, spec.datasets[0], 0) for key in spec.models}
    print(f"{'model':<13}{'batch':>6}{'fp32 ms/img':>13}{'auto ms/img':>13}{'auto/fp32':>11}")
    for key, config in models.items():
        times = {"fp32": [], "auto": []}
        some = images if "conv" not in (config.model.encoder, config.model.decoder) else images[:args.images]
        for _ in range(args.repeats):  # interleaved, so drift hits both alike
            times["fp32"].append(seconds_per_image(config, "fp32", some))
            times["auto"].append(seconds_per_image(config, resolved.precision, some))
        fp32, auto = statistics.median(times["fp32"]), statistics.median(times["auto"])
        print(f"{key:<13}{config.train.batch_size:>6}{fp32 * 1e3:>13.3f}{auto * 1e3:>13.3f}{auto / fp32:>11.3f}")
    print(f"\nchannels_last for the conv models ({resolved.precision}):")
    print(f"{'model':<13}{'batch':>6}{'NCHW ms/img':>13}{'NHWC ms/img':>13}{'NHWC/NCHW':>11}")
    for key in ("conv-vae", "convenc-vae"):
        config = models[key]
        nchw, nhwc = [], []
        for _ in range(args.repeats):
            nchw.append(seconds_per_image(config, resolved.precision, images[:args.images], channels_last=False))
            nhwc.append(seconds_per_image(config, resolved.precision, images[:args.images], channels_last=True))
        a, b = statistics.median(nchw), statistics.median(nhwc)
        print(f"{key:<13}{config.train.batch_size:>6}{a * 1e3:>13.3f}{b * 1e3:>13.3f}{b / a:>11.3f}")


if __name__ == "__main__":
    main()
