"""A study on a Ray cluster that loses a node: Ray's own multi-node test cluster, two nodes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import needs_ray
from tests.studies.test_engine import local_study, tiny  # noqa: F401 (fixtures: the local run to compare with)


# Ray turns 127.0.0.1 in an address into the machine's LAN address, where a loopback-only cluster does not
# listen; single-machine mode keeps every node, and the study's driver, on 127.0.0.1.
LOOPBACK_RAY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def lose_a_node(out: str, study_file: str, report: str) -> None:
    """Run in a child process (so that LOOPBACK_RAY applies before Ray is imported): a head and a worker node of
    one CPU each; the study runs with one cell per CPU; when both nodes hold a cell, the worker node is killed
    (no graceful stop). Writes what happened, and when, to ``report`` (JSON)."""
    import ray
    from ray.cluster_utils import Cluster

    # The control plane checks each node every 0.5 s and marks it dead after 3 missed checks (Ray's defaults, 3 s and
    # 5, took ~13 s to notice the loss: a sixth of the test's time, spent waiting)
    cluster = Cluster(initialize_head=True, connect=True, head_node_args=dict(
        num_cpus=1, node_ip_address="127.0.0.1", include_dashboard=False,
        _system_config={"health_check_period_ms": 500, "health_check_failure_threshold": 3}))
    worker = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    try:
        started = time.monotonic()
        study = subprocess.Popen([sys.executable, "-m", "vaelab", "study", "run", study_file, "--out", out, "--quiet",
                                  "--executor", "ray", "--address", cluster.address, "--cpus-per-cell", "1"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        in_progress: list[str] = []
        while len(in_progress) < 2 and time.monotonic() - started < 300:  # a cell on each node: kill now
            in_progress = sorted(p.parent.name for p in Path(out).glob("runs/*/*/model.json")
                                 if not (p.parent / "measures.json").exists())
        killed = time.monotonic()
        cluster.remove_node(worker, allow_graceful=False)
        done: dict[str, float] = {}  # when each cell in progress at the kill finished (the lost one: redone)
        noticed = None  # when Ray's control plane marked the node dead
        while study.poll() is None:
            for cell in in_progress:
                if cell not in done and next(Path(out).glob(f"runs/*/{cell}/measures.json"), None):
                    done[cell] = time.monotonic() - killed
            if noticed is None and not any(n["Alive"] for n in ray.nodes() if n["NodeID"] == worker.node_id):
                noticed = time.monotonic() - killed
            time.sleep(0.02)
        stdout, stderr = study.communicate()
        Path(report).write_text(json.dumps({
            "returncode": study.returncode, "stdout": stdout, "stderr": stderr, "in_progress": in_progress,
            "finished_after_kill": done, "seconds_to_notice": noticed,
            "seconds_after_kill": time.monotonic() - killed, "seconds_in_all": time.monotonic() - started}))
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow  # a two-node Ray cluster and a whole study (about 40 s): CI runs it with -m slow
@needs_ray
def test_a_study_survives_losing_a_ray_node_with_byte_identical_results(local_study, tmp_path):  # noqa: F811
    out, study_file = local_study
    target, report = tmp_path / "survived", tmp_path / "report.json"
    code = (f"from tests.studies.test_ray_faults import lose_a_node; "
            f"lose_a_node({str(target)!r}, {str(study_file)!r}, {str(report)!r})")
    scenario = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                              env={**os.environ, **LOOPBACK_RAY})
    assert scenario.returncode == 0, scenario.stderr[-3000:]
    happened = json.loads(report.read_text())
    print(f"node lost with {happened['in_progress']} in progress; seconds after the loss until each finished: "
          f"{happened['finished_after_kill']}; the node marked dead after {happened['seconds_to_notice']} s; the study "
          f"ended {happened['seconds_after_kill']:.1f} s after the loss ({happened['seconds_in_all']:.1f} s in all)")
    assert happened["returncode"] == 0, happened["stderr"][-3000:]
    assert len(happened["in_progress"]) == 2  # the node was lost with a cell on it, mid-way
    assert (target / "results.json").read_bytes() == (out / "results.json").read_bytes()
    assert not list(target.rglob("*.tmp"))  # the killed worker left no half-written file
    assert "failed" not in happened["stderr"]
    assert set(happened["finished_after_kill"]) == set(happened["in_progress"])  # the lost cell was redone
