"""Refactoring changes no result: every preset trains to the same bytes as before the models moved.

``fingerprints.json`` holds the SHA-256 of each preset's weights after 2 epochs at seed 0 on mnist-5k,
recorded by ``bench/fingerprints.py`` with the code as it was before the move, per CPU capability
(kernels differ between capabilities, so bytes are compared on the capability that recorded them).
They were recorded at torch's default thread count, one per core, and convolutions sum in another order
with fewer threads: the test trains with one thread per core even where pytest-xdist gives each worker fewer.
"""

import json
import os
from pathlib import Path

import pytest
import torch

from bench.fingerprints import preset_weights

RECORDED = json.loads((Path(__file__).parent / "fingerprints.json").read_text())["weights"]
CAPABILITY = torch.backends.cpu.get_cpu_capability()


@pytest.mark.slow
@pytest.mark.skipif(CAPABILITY not in RECORDED, reason=f"no fingerprints recorded on a {CAPABILITY} CPU "
                                                         f"(recorded: {', '.join(RECORDED)})")
def test_every_preset_trains_to_the_recorded_bytes(tmp_path):
    recorded = RECORDED[CAPABILITY]
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        assert preset_weights(tmp_path, list(recorded)) == recorded
    finally:
        torch.set_num_threads(threads)
