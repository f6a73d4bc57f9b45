"""The bytes that a refactoring must not change: weights of every preset, and the quick study's results.

Trains every preset for 2 epochs at seed 0 on mnist-5k (VaDE: 1 of pre-training, 1 of VaDE) and records the SHA-256 of each
``weights.safetensors``; with ``--study`` it also runs the quick thesis study (``vaelab reproduce``,
about 100 s) and records the SHA-256 of its ``results.json`` measures (everything but the study's
summary of its settings). Figures are keyed by the CPU capability, since kernels differ between them.

    python bench/fingerprints.py [--study] [--out fingerprints.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import torch

from vaelab import api
from vaelab.models.registry import PRESETS


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def preset_weights(root: Path, presets: list[str]) -> dict[str, str]:
    """SHA-256 of the weights of each preset after 2 epochs at seed 0 on mnist-5k."""
    hashes = {}
    for name in presets:
        # VaDE's stage must come after its pre-training: 1 epoch of it, then 1 of VaDE.
        staged = {"pretrain_epochs": 1} if PRESETS[name].get("pretrain_epochs") else {}
        run = api.train(name, out=root / name, epochs=2, seed=0, progress=False, **staged)
        hashes[name] = sha256(Path(run.run_dir) / "weights.safetensors")
    return hashes


def study_results(root: Path) -> dict[str, str]:
    """SHA-256 of the quick study's results.json, whole and without its settings summary."""
    api.reproduce(out=root / "study", progress=False)
    results = json.loads((root / "study" / "results.json").read_text())
    results.pop("study")
    measured = json.dumps(results, sort_keys=True).encode()
    return {"results.json": sha256(root / "study" / "results.json"),
            "results.json without study": hashlib.sha256(measured).hexdigest()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", action="store_true", help="also run the quick study (about 100 s)")
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets")
    parser.add_argument("--out", type=Path, help="write the fingerprints as JSON here")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        record = {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
                  "weights": preset_weights(Path(folder), args.presets.split(","))}
        if args.study:
            record["study"] = study_results(Path(folder))
    record["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(record, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
