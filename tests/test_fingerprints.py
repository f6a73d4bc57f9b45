"""Refactoring changes no result: every preset trains to the same bytes as before the models moved.

``fingerprints.json`` holds the SHA-256 of each preset's weights after 2 epochs at seed 0 on mnist-5k,
recorded by ``bench/fingerprints.py`` with the code as it was before the move, per CPU capability
(kernels differ between capabilities, so bytes are compared on the capability that recorded them).
"""

import json
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
    assert preset_weights(tmp_path, list(recorded)) == recorded
