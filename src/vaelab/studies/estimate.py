"""How long a study's training will take here, from speeds measured now on this machine.

Each distinct model of the plan trains a few batches of its own batch size on
random images of the data set's shape (one warm-up batch, then timed ones);
seconds per image times images per epoch times epochs gives the estimate. It
covers training only: evaluation depends on the measures' settings.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from vaelab.config import RunConfig
from vaelab.hardware import resolve
from vaelab.models.latent import build_model
from vaelab.training.trainer import make_optimizer, prepare_targets, train_step

TIMED_BATCHES = 3


def seconds_per_image(config: RunConfig, image_shape: tuple[int, int, int], device: str = "auto") -> float:
    """Measured training time per image of one model at its batch size and the resolved precision."""
    torch_device, resolved = resolve(device, config.train.precision)
    model = build_model(config.model, 0, image_shape).to(torch_device)
    optimizer = make_optimizer(model, config)
    batch = config.train.batch_size
    images = torch.rand((batch, *image_shape), generator=torch.Generator().manual_seed(0)).to(torch_device)
    noise = torch.Generator(device=torch_device).manual_seed(0)
    # class 0 for every image: a conditional model (the CVAE) needs labels, and their values do not change its time
    labels = torch.zeros(batch, dtype=torch.long, device=torch_device)
    model.train()

    def step():
        train_step(model, optimizer, prepare_targets(images, config, noise), noise, labels, resolved.precision)

    step()  # warm-up: first-call allocations and kernel selection
    started = time.perf_counter()
    for _ in range(TIMED_BATCHES):
        step()
    if torch_device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / (TIMED_BATCHES * batch)


def training_estimate(configs: list[RunConfig], n_train: int, image_shape: tuple[int, int, int],
                      device: str = "auto") -> dict[str, Any]:
    """Estimated training seconds for cells with these configs on a data set of ``n_train`` images."""
    speeds: dict[str, float] = {}
    total = 0.0
    for config in configs:
        key = config.model.model_dump_json() + str(config.train.batch_size) + config.train.precision
        if key not in speeds:
            speeds[key] = seconds_per_image(config, image_shape, device)
        total += speeds[key] * n_train * config.train.epochs
    return {"seconds": total, "measured_models": len(speeds)}
