"""The explorer: start-up time, decode round-trip latency and what the server stack costs to install.

Trains an MLP VAE and the thesis's conv VAE on mnist-5k for one epoch (latency does not
depend on how well a model is trained), opens both in the explorer, and prints:

- start-up: loading the models, encoding the map's 1,000 test images, binding the port (in
  this process, and from a new `vaelab explore` process to its first answer);
- the decode round trip (POST /api/decode over one kept-alive HTTP connection, as a
  browser does): median and 95th percentile, beside the same decode in-process (decoder
  + PNG encoding, no HTTP) and the decoder alone; the ratios are what HTTP and the PNG add;
- 200 decodes from 20 concurrent clients: wall time and requests per second;
- the installed size of the server stack (starlette, uvicorn and what they pull in).

Run: ``.venv/bin/python bench/explore.py [--requests 300]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from vaelab import api
from vaelab.analysis.generate import decode


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def round_trips(port: int, key: str, latent: int, n: int) -> list[float]:
    """Milliseconds per POST /api/decode on one persistent connection."""
    rng = np.random.default_rng(0)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for _ in range(n):
        body = json.dumps({"key": key, "z": rng.normal(size=latent).round(4).tolist()})
        started = time.perf_counter()
        connection.request("POST", "/api/decode", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status == 200
    connection.close()
    return times


def in_process(explorer, key: str, latent: int, n: int) -> tuple[list[float], list[float]]:
    """Milliseconds per decode through the explorer (decoder + PNG) and through the decoder alone."""
    rng = np.random.default_rng(0)
    model = explorer.models[key].model
    full, bare = [], []
    for _ in range(n):
        z = rng.normal(size=latent).round(4).tolist()
        started = time.perf_counter()
        explorer.decode(key, z)
        full.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        decode(model, np.array([z], dtype=np.float32))
        bare.append((time.perf_counter() - started) * 1000)
    return full, bare


def installed_megabytes(names: list[str]) -> dict[str, float]:
    sizes = {}
    for name in names:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            continue
        sizes[name] = sum(f.locate().stat().st_size for f in files if f.locate().is_file()) / 1e6
    return sizes


def cli_startup(folders: list[Path]) -> float:
    """Seconds from starting `vaelab explore` (a new process: imports included) to its first answer."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "vaelab", "explore", *map(str, folders), "--no-browser"],
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = process.stdout.readline().split()[1]
    urllib.request.urlopen(url + "api/summary", timeout=60).read()
    elapsed = time.perf_counter() - started
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for preset in ("vae", "conv-vae"):
            run = api.train(preset, out=Path(tmp) / preset, epochs=1, precision="fp32")
            runs[preset] = (run.run_dir, run.config.model.latent)
        started = time.perf_counter()
        server = api.explore([path for path, _ in runs.values()]).start()
        startup = time.perf_counter() - started
        explorer = server.explorer
        print(f"\nstart-up (2 models, {len(explorer.index)} map images): {startup:.2f} s in this process; "
              f"{cli_startup([path for path, _ in runs.values()]):.2f} s from `vaelab explore` to its first answer")
        print(f"\n{'model':<10}{'HTTP median':>13}{'HTTP p95':>11}{'in-process':>12}{'decoder':>10}"
              f"{'HTTP/in-proc':>14}{'PNG share':>11}")
        for key, (_, latent) in runs.items():
            round_trips(server.port, key, latent, 20)  # warm-up
            http_ms = round_trips(server.port, key, latent, args.requests)
            full, bare = in_process(explorer, key, latent, args.requests)
            median, p95 = statistics.median(http_ms), percentile(http_ms, 95)
            print(f"{key:<10}{median:>10.2f} ms{p95:>8.2f} ms{statistics.median(full):>9.2f} ms"
                  f"{statistics.median(bare):>7.2f} ms{median / statistics.median(full):>13.2f}x"
                  f"{1 - statistics.median(bare) / statistics.median(full):>10.0%}")

        def client(k: int) -> None:
            key, latent = list(runs)[k % 2], list(runs.values())[k % 2][1]
            round_trips(server.port, key, latent, 10)

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=20) as pool:
            list(pool.map(client, range(20)))
        wall = time.perf_counter() - started
        print(f"\n200 decodes from 20 concurrent clients: {wall:.2f} s ({200 / wall:.0f} requests/s)")
        server.stop()
    sizes = installed_megabytes(["starlette", "uvicorn", "anyio", "h11", "idna", "sniffio"])
    print("\nserver stack installed: " + ", ".join(f"{k} {v:.2f} MB" for k, v in sizes.items())
          + f"; total {sum(sizes.values()):.1f} MB")


if __name__ == "__main__":
    main()
