"""dSprites-like rendering and the disentanglement metrics: how long each takes.

Prints:
- the time to render the whole factor grid (737,280 images of 64x64, in blocks of one sprite at
  its 1,024 positions, each block bit-packed as a cache would store it), and the 20,000-image
  ``dsprites`` subset image by image;
- each metric at Locatello et al.'s sizes (its defaults), drawing from the codes of the whole grid
  (737,280 points of 10 dimensions: 5 informative, 5 noise) against dSprites' 5 factors;
- DCI with disentanglement_lib's gradient-boosted trees (the default, 100 rounds) beside the random
  forest (``estimator="forest"``) on the same codes: the ratio.

Run: ``.venv/bin/python bench/disentanglement.py``
"""

from __future__ import annotations

import time

import numpy as np
import torch

from vaelab.analysis import disentanglement as dis
from vaelab.data import dsprites


def render_grid() -> tuple[float, int]:
    renderer, started, packed = dsprites.Renderer(), time.perf_counter(), 0
    for shape in range(3):
        for scale in range(6):
            for orientation in range(40):
                packed += np.packbits(renderer.all_positions(shape, scale, orientation) > 0).nbytes
    return time.perf_counter() - started, packed


def main() -> None:
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{torch.get_num_threads()} threads")
    seconds, packed = render_grid()
    print(f"whole grid: 737,280 images in {seconds:.2f} s ({packed / 1e6:.0f} MB bit-packed)")
    started = time.perf_counter()
    dsprites.Renderer().render(dsprites.subset_factors())
    print(f"the 20,000-image subset, image by image: {time.perf_counter() - started:.2f} s")

    rng = np.random.default_rng(0)
    factors = dsprites.grid_factors()
    codes = np.concatenate([factors / (np.array(dsprites.FACTOR_SIZES) - 1) + 0.05 * rng.normal(size=factors.shape),
                            rng.normal(size=(len(factors), 5))], axis=1)
    print(f"\nmetric at Locatello et al.'s sizes, from {len(codes):,} grid codes   seconds   (score)")
    seconds = {}
    for name, metric in dis.METRICS.items():
        started = time.perf_counter()
        result = metric(codes, factors)
        seconds[name] = time.perf_counter() - started
        main_value = next(v for k, v in result.items() if "train" not in k)
        print(f"  {name:<12}{seconds[name]:>8.2f}   ({main_value:.3f})")
    started = time.perf_counter()
    dis.dci(codes, factors, estimator="forest")
    forest = time.perf_counter() - started
    print(f"\nDCI's importances: gradient-boosted trees (disentanglement_lib's, 100 rounds) {seconds['dci']:.1f} s; "
          f"random forest (estimator='forest') {forest:.1f} s; ratio {seconds['dci'] / forest:.1f}x")


if __name__ == "__main__":
    main()
