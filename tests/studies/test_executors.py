"""The executors' options and the Ray executor's refusals: every mistake ends in seconds, in one line."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from tests.conftest import make_tiny_idx, needs_ray, run_cli
from tests.studies.test_engine import _study_file
from vaelab.errors import ConfigError
from vaelab.studies import executors
from vaelab.studies.executors import ExecutorOptions, check_placeable, check_reachable



@pytest.fixture(scope="module")
def study_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("executors")
    return _study_file(folder, make_tiny_idx(folder / "tiny"), seeds=1)


def _a_closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free once the socket closes: nothing listens there


@pytest.mark.parametrize("options, message", [
    (ExecutorOptions("dask"), "unknown executor 'dask'"),
    (ExecutorOptions("local", cpus_per_cell=0), "--cpus-per-cell must be at least 1"),
    (ExecutorOptions("local", address="127.0.0.1:6379"), "add --executor ray"),
    (ExecutorOptions("local", gpus_per_cell=1), "add --executor ray"),
    (ExecutorOptions("ray", gpus_per_cell=float("nan")), "--gpus-per-cell must be at least 0, not nan"),
    (ExecutorOptions("ray", gpus_per_cell=-1), "--gpus-per-cell must be at least 0, not -1"),
])
def test_options_that_do_not_go_together_are_one_line(options, message):
    with pytest.raises(ConfigError, match=message):
        options.check()


def test_a_ray_address_where_nothing_listens_is_refused_at_once():
    port = _a_closed_port()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        started = time.monotonic()
        with pytest.raises(ConfigError, match=f"nothing answers at the Ray address {address} .*fix --address"):
            check_reachable(address)
        assert time.monotonic() - started < 5


def test_a_ray_address_with_an_impossible_port_is_named():
    with pytest.raises(ConfigError, match="the port must be between 1 and 65535"):
        check_reachable("127.0.0.1:70000")


def test_a_listening_address_and_auto_pass_the_probe():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_reachable(f"127.0.0.1:{server.getsockname()[1]}")
    check_reachable("auto")  # no port: Ray answers this form itself, at once


NODES = [{"Alive": True, "Resources": {"CPU": 2.0}},
         {"Alive": True, "Resources": {"CPU": 4.0, "GPU": 1.0}},
         {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}]  # a dead node holds no cell


@pytest.mark.parametrize("cpus, gpus, placeable", [
    (1, 0, True), (4, 0, True), (4, 1, True), (1, 0.5, True), (8, 0, False), (1, 2, False), (3, 0, True),
])
def test_a_cell_is_placeable_only_where_one_live_node_has_its_cpus_and_gpus(cpus, gpus, placeable):
    if placeable:
        check_placeable(NODES, cpus, gpus)
    else:
        with pytest.raises(ConfigError, match="the largest has 4 CPU.s. and 1 GPU.s."):
            check_placeable(NODES, cpus, gpus)


def test_ray_asked_for_without_ray_installed_says_how(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'vaelab\[ray\]'"):
        executors.make_executor(executors.ExecutorOptions("ray"))


@needs_ray
def test_study_run_against_a_ray_address_where_nothing_listens_ends_in_one_line(study_file, tmp_path):
    address = f"127.0.0.1:{_a_closed_port()}"
    started = time.monotonic()
    result = run_cli("study", "run", str(study_file), "--out", str(tmp_path / "out"), "--quiet",
                     "--executor", "ray", "--address", address)
    assert time.monotonic() - started < 30
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: nothing answers at the Ray address {address} "
                                                 "(Connection refused): start the cluster there (ray start --head) "
                                                 "or fix --address"]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # starts a private Ray instance (about 10 s): CI runs it with -m slow
@needs_ray
# one real run (Ray's start costs 13 s); --cpus-per-cell above every node's CPUs is the same check, tested above
@pytest.mark.parametrize("flag, value", [("--gpus-per-cell", "64")])
def test_a_cell_no_ray_node_can_hold_ends_in_one_line_not_a_hang(study_file, tmp_path, flag, value):
    started = time.monotonic()
    result = run_cli("study", "run", str(study_file), "--out", str(tmp_path / "out"), "--quiet",
                     "--executor", "ray", flag, value, timeout=120)
    assert time.monotonic() - started < 60
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no Ray node can run a cell of"), result.stderr
    assert not (tmp_path / "out").exists()
