"""Wall time of each stage of `vaelab reproduce --profile quick` (mnist-5k, 3 seeds).

Runs the study into a temporary folder and prints the seconds spent per stage
(summed over seeds and models) and in total. Run:
``.venv/bin/python bench/reproduce_time.py``
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from vaelab.api import reproduce


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        reproduce(Path(tmp) / "study", progress=False)
        wall = time.perf_counter() - started
        timings = json.loads((Path(tmp) / "study" / "timings.json").read_text())
    stages: dict[str, float] = defaultdict(float)
    for key, seconds in timings.items():
        job, _, stage = key.partition("/")  # "vae seed 0 on mnist-5k/train", "classifier mnist-5k seed 0", ...
        model = job.split(" seed ")[0]
        if stage.startswith("measure/"):
            stages[f"  measure: {stage.split('/')[1]}"] += seconds
        elif stage in ("train", "evaluate"):
            stages[f"{stage} {model}"] += seconds
        elif job.startswith("classifier"):
            stages["classifier"] += seconds
        elif " seed " not in job:  # aggregate, figures, report (a job's own total is the sum of its stages)
            stages[job] += seconds
    import torch

    from vaelab.hardware import resolve

    _, resolved = resolve("auto", "auto")
    print(f"torch {torch.__version__}, CPU capability {resolved.cpu_capability}, {torch.get_num_threads()} threads, "
          f"precision auto -> {resolved.precision}")
    print(f"{'stage':<34}{'seconds':>9}")
    for name in sorted(stages, key=lambda n: (n.startswith("  "), -stages[n])):
        print(f"{name:<34}{stages[name]:>9.2f}")
    print(f"{'total wall time (in process)':<34}{wall:>9.2f}")


if __name__ == "__main__":
    main()
