"""Training throughput: vaelab's trainer against a minimal hand-written PyTorch loop.

Same model, same initial weights, same batches, same process. Prints seconds per
epoch (4,000 mnist-5k images, batch 128) and the ratio vaelab / hand loop, for
the MLP VAE and the conv VAE, in fp32 and bf16. Two vaelab figures are given:

- ``loop``: :func:`vaelab.training.trainer.train_epoch`, the training loop alone
  (the like-for-like comparison with the hand loop);
- ``fit``: :func:`vaelab.training.trainer.fit`, which also evaluates the test
  split and writes an atomic checkpoint after every epoch.

Run: ``.venv/bin/python bench/train_throughput.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vaelab.api import make_config
from vaelab.data.registry import load_dataset, to_tensor
from vaelab.models import build_model
from vaelab.training.trainer import fit, make_optimizer, train_epoch


def hand_loop_epoch(model, optimizer, images, batch_size, generator, precision):
    """The loop of pytorch/examples vae/main.py, written out by hand."""
    order = torch.randperm(len(images), generator=generator)
    for start in range(0, len(images), batch_size):
        x = images[order[start:start + batch_size]]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            mu, logvar = model.encoder(x)
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
            logits = model.decoder(z)
            bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
            kld = -0.5 * torch.sum(1 + logvar.float() - mu.float().pow(2) - logvar.float().exp()) / len(x)
            loss = bce + kld
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def time_once(kind, preset, precision, images, epochs, data):
    config = make_config(preset, epochs=epochs, precision=precision)
    model = build_model(config.model, 0)
    optimizer = make_optimizer(model, config)
    started = time.perf_counter()
    if kind == "hand":
        generator = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            hand_loop_epoch(model, optimizer, images, config.train.batch_size, generator, precision)
    elif kind == "loop":
        for epoch in range(epochs):
            train_epoch(model, optimizer, images, config, epoch, precision=precision)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            fit(config, Path(tmp) / "run", dataset=data, progress=False)
    return (time.perf_counter() - started) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    data = load_dataset("mnist-5k", seed=0)
    images = to_tensor(data.train_images)
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{torch.get_num_threads()} threads, {len(images)} images/epoch, batch 128,"
          f" median of {args.repeats}")
    print(f"{'model':<10}{'precision':<11}{'hand s/ep':>10}{'loop s/ep':>10}{'fit s/ep':>10}"
          f"{'loop/hand':>11}{'fit/hand':>10}")
    hand_fp32 = {}
    for preset, epochs in (("vae", 5), ("conv-vae", 1)):
        for precision in ("fp32", "bf16"):
            times = {"hand": [], "loop": [], "fit": []}
            time_once("hand", preset, precision, images, 1, data)  # warm-up
            for _ in range(args.repeats):  # interleaved, so drift hits all three alike
                for kind in times:
                    times[kind].append(time_once(kind, preset, precision, images, epochs, data))
            med = {k: statistics.median(v) for k, v in times.items()}
            if precision == "fp32":
                hand_fp32[preset] = med["hand"]
            print(f"{preset:<10}{precision:<11}{med['hand']:>10.3f}{med['loop']:>10.3f}{med['fit']:>10.3f}"
                  f"{med['loop'] / med['hand']:>11.3f}{med['fit'] / med['hand']:>10.3f}")
    print("bf16 speed-up of the vaelab loop over fp32 is in the rows above: compare 'loop s/ep' per model.")


if __name__ == "__main__":
    main()
