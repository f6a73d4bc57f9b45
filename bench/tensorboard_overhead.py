"""What ``--log tensorboard`` costs: the quick thesis study's VAE (mnist-5k, 15 epochs, batch 256, lr 3e-3)
trained without and with the log, alternately three times each, side by side (medians) with the ratio; then
the log's size on disk.

Run: ``.venv/bin/python bench/tensorboard_overhead.py``
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from vaelab import api


def timed(out: Path, log: str) -> float:
    started = time.perf_counter()
    api.train("vae", out=out, dataset="mnist-5k", epochs=15, batch_size=256, lr=3e-3, latent=16, log=log)
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        timed(root / "warm-up", "none")  # the first run pays for imports and the data's first load
        times: dict[str, list[float]] = {"none": [], "tensorboard": []}
        for repeat in range(3):  # alternated, so that a busy spell of the machine hits both
            for log in times:
                times[log].append(timed(root / f"{log}-{repeat}", log))
        plain, logged = (sorted(values)[1] for values in times.values())
        size = sum(f.stat().st_size for f in (root / "tensorboard-0" / "tensorboard").rglob("*") if f.is_file())
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads")
    print(f"{'run':28} {'seconds':>8}")
    print(f"{'VAE, 15 epochs, no log':28} {plain:8.1f}  (runs: {', '.join(f'{t:.1f}' for t in times['none'])})")
    print(f"{'VAE, 15 epochs, tensorboard':28} {logged:8.1f}  (runs: "
          f"{', '.join(f'{t:.1f}' for t in times['tensorboard'])})")
    print(f"ratio logged / plain: {logged / plain:.3f}; the log: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
