"""One seed drives everything.

Each consumer of randomness gets its own stream, derived from the run's seed and
a name (``derive_seed(seed, "batches", epoch)``). Streams are independent of how
many numbers other consumers drew, so an AE and a VAE trained with the same seed
see the same batch order even though only the VAE draws sampling noise, and a
resumed run re-derives exactly the streams an uninterrupted run would use.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Iterator

import numpy as np
import torch


def derive_seed(seed: int, *names: object) -> int:
    """Return a 63-bit seed derived from ``seed`` and ``names``, stable across processes."""
    text = "/".join([str(int(seed)), *map(str, names)])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def torch_generator(seed: int, *names: object, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` (CPU by default) on the stream ``(seed, *names)``.

    Random numbers drawn on a GPU come from a generator on that GPU, so that no
    tensor crosses the bus per batch; the same seed on the same device gives
    the same numbers.
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, *names))
    return generator


def numpy_rng(seed: int, *names: object) -> np.random.Generator:
    """A NumPy ``Generator`` on the stream ``(seed, *names)``."""
    return np.random.default_rng(derive_seed(seed, *names))


@contextlib.contextmanager
def seeded_torch(seed: int, *names: object) -> Iterator[None]:
    """Run a block (e.g. building layers) with torch's global RNG on a derived stream.

    The global RNG state outside the block is restored afterwards, so building a
    model never changes what other code draws.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, *names))
        yield
