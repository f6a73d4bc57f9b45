"""The same 8-cell study under the local executor and under Ray, side by side; Ray's start-up time and memory.

8 cells = the MLP AE and VAE x 4 seeds on mnist-5k (5 epochs each, the cheap
measure groups). Each variant runs into a fresh temporary folder:

- local, all torch threads (the default: one cell at a time);
- local, 1 thread per cell (what Ray's cells get here);
- ray, 1 CPU per cell (as many cells at once as there are CPUs).

Run: ``.venv/bin/python bench/executors.py [--epochs 5]`` (needs ``pip install 'vaelab[ray]'``).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from vaelab.hardware import resolve
from vaelab.studies.spec import validate_study
from vaelab.studies.executors import ExecutorOptions
from vaelab.studies.study import run_study

STUDY = {
    "name": "bench-executors",
    "datasets": ["mnist-5k"],
    "seeds": 4,
    "train": {"epochs": 5, "batch_size": 128},
    "models": {"ae": {"preset": "ae"}, "vae": {"preset": "vae"}},
    "measures": ["separation", "knn", "probe", "clustering", "map", "health"],
    "evaluation": {"tsne_points": 600, "tsne_iterations": 300},
}


def _rss_of_ray_processes() -> float:
    """Resident memory (MiB) of every process on this machine whose command line mentions ray."""
    total_kib = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"ray" not in cmdline or int(pid) == os.getpid():
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total_kib / 1024


def _timed(spec, executor: str, cpus: int | None) -> tuple[float, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run_study(spec, Path(tmp) / "s", executor=ExecutorOptions(executor, cpus_per_cell=cpus), progress=False)
        return time.perf_counter() - started, (Path(tmp) / "s" / "results.json").read_bytes()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs per cell (longer cells hide Ray's overhead)")
    args = parser.parse_args()
    spec = validate_study({**STUDY, "train": {**STUDY["train"], "epochs": args.epochs}}, "bench study")
    _, resolved = resolve("auto", "auto")
    print(f"torch {torch.__version__}, CPU capability {resolved.cpu_capability}, {os.cpu_count()} CPUs, "
          f"precision auto -> {resolved.precision}; 8 cells (AE, VAE x 4 seeds, mnist-5k, {args.epochs} epochs)")

    import ray

    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             _node_ip_address="127.0.0.1")
    startup = time.perf_counter() - started
    memory = _rss_of_ray_processes()
    ray.shutdown()
    print(f"ray {ray.__version__}: start-up {startup:.1f} s, {memory:.0f} MiB resident in its processes when idle")

    walls = {}
    outputs = {}
    for name, executor, cpus in [("local, all threads", "local", None), ("local, 1 thread per cell", "local", 1),
                                 ("ray, 1 CPU per cell", "ray", 1)]:
        walls[name], outputs[name] = _timed(spec, executor, cpus)
    base = walls["local, all threads"]
    print(f"{'executor':<28}{'wall s':>9}{'/ local':>9}")
    for name, wall in walls.items():
        print(f"{name:<28}{wall:>9.1f}{wall / base:>9.2f}")
    same = outputs["local, 1 thread per cell"] == outputs["ray, 1 CPU per cell"]
    print(f"results.json byte-identical, local 1 thread vs ray 1 CPU per cell: {same}")


if __name__ == "__main__":
    main()
