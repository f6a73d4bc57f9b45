"""Executors run a study's jobs: ``local`` (in this process, one after another) or ``ray`` (one Ray task each).

Both take the same :class:`~vaelab.studies.cells.Job` values and return the
same outcomes, in the order of the jobs; the study reads everything else from
the run directories, so the executor leaves no trace in ``results.json``.
"""

from __future__ import annotations

import math
import os
import re
import socket
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from vaelab.errors import ConfigError
from vaelab.studies.cells import Job, run_job

EXECUTORS = ("local", "ray")
RETRIES = 3  # times Ray runs a job again after losing its worker or node (then it is a failed job)


@dataclass(frozen=True)
class ExecutorOptions:
    """Where a study's cells run: ``name`` ``local`` (this process) or ``ray`` (a private Ray instance, or the
    cluster at ``address``), with ``cpus_per_cell`` torch threads and ``gpus_per_cell`` GPUs per cell."""

    name: str = "local"
    address: str | None = None
    cpus_per_cell: int | None = None
    gpus_per_cell: float = 0.0

    def check(self) -> None:
        """Refuse, in one line, options that do not go together or are out of range."""
        if self.name not in EXECUTORS:
            raise ConfigError(f"unknown executor {self.name!r}: choose local or ray")
        if self.cpus_per_cell is not None and self.cpus_per_cell < 1:
            raise ConfigError(f"--cpus-per-cell must be at least 1, not {self.cpus_per_cell}")
        if self.name == "local" and (self.address or self.gpus_per_cell):
            raise ConfigError("--address and --gpus-per-cell apply to the ray executor: add --executor ray")
        if not (self.gpus_per_cell >= 0 and math.isfinite(self.gpus_per_cell)):
            raise ConfigError(f"--gpus-per-cell must be at least 0, not {self.gpus_per_cell:g}")

    def cell_device(self, device: str) -> str:
        """The device a cell asks for: the study's ``device`` locally; on Ray, a GPU where cells get one."""
        if self.name == "local":
            return device
        return "cuda" if self.gpus_per_cell else "cpu"

    def defers_device(self) -> bool:
        """Whether each worker resolves ``auto`` for its own GPU (GPU cells on Ray)."""
        return self.name == "ray" and self.gpus_per_cell > 0


class Progress(Protocol):
    """What an executor tells the study's progress display."""

    def started(self, job: Job) -> None: ...

    def finished(self, job: Job, outcome: dict[str, Any]) -> None: ...

    def epoch_done(self, row: dict) -> None: ...


class LocalExecutor:
    """Jobs in this process, one at a time, with all of its torch threads (or ``cpus_per_cell``)."""

    name = "local"

    def __init__(self, cpus_per_cell: int | None = None):
        self.threads = cpus_per_cell or torch.get_num_threads()

    def run(self, jobs: list[Job], progress: Progress) -> list[dict[str, Any]]:
        """Run ``jobs`` in order; return their outcomes (this process's torch threads are restored after)."""
        threads = torch.get_num_threads()
        outcomes = []
        try:
            for job in jobs:
                progress.started(job)
                outcome = run_job(job, on_epoch=progress.epoch_done)
                progress.finished(job, outcome)
                outcomes.append(outcome)
        finally:
            torch.set_num_threads(threads)
        return outcomes

    def close(self) -> None:
        """Nothing to release."""


class RayExecutor:
    """Each job one Ray task with ``cpus_per_cell`` CPUs (its torch threads) and ``gpus_per_cell`` GPUs.

    Without ``address`` a private Ray instance is started on this machine,
    bound to 127.0.0.1, and stopped at the end; with one, the study joins that
    cluster (whose workers must see the study folder on a shared file system).
    """

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_cell: int | None = None, gpus_per_cell: float = 0.0):
        ray = import_ray()
        self.threads = cpus_per_cell or 1
        self.gpus = gpus_per_cell
        if ray.is_initialized():
            self.owned = False
        else:
            options: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                                           configure_logging=True)
            if address:
                check_reachable(address)  # Ray itself retries an address where nothing listens for ever
                options["address"] = address
            else:
                # "local": a private instance even where RAY_ADDRESS names a cluster
                options.update(address="local", num_cpus=os.cpu_count() or 1, _node_ip_address="127.0.0.1")
            try:
                ray.init(**options)
            except (ConnectionError, ValueError, RuntimeError) as error:
                where = address or "a local instance"
                raise ConfigError(f"could not start or reach Ray ({where}): {error}".split("\n")[0]) from None
            self.owned = True
        self.ray = ray
        try:
            check_placeable(ray.nodes(), self.threads, self.gpus)
        except ConfigError:
            self.close()
            raise
        # a task whose worker or node is lost is run again (its cell resumes from its checkpoint); a failure
        # inside the job is an outcome, never retried
        self.remote = ray.remote(num_cpus=self.threads, num_gpus=self.gpus, max_retries=RETRIES)(run_job)

    def run(self, jobs: list[Job], progress: Progress) -> list[dict[str, Any]]:
        """Submit every job at once; Ray schedules them on free CPUs; collect them as they finish."""
        futures = {}
        for index, job in enumerate(jobs):
            futures[self.remote.remote(job)] = index
            progress.started(job)
        outcomes: list[dict[str, Any] | None] = [None] * len(jobs)
        pending = list(futures)
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            for ref in done:
                index = futures[ref]
                try:
                    outcome = self.ray.get(ref)
                except Exception as error:  # the worker died (out of memory, killed): report, go on
                    outcome = {"job": jobs[index].name, "ok": False, "timings": {}, "reused": False, "seconds": 0.0,
                               "error": f"the Ray worker failed: {type(error).__name__}: {str(error).splitlines()[0]}"}
                outcomes[index] = outcome
                progress.finished(jobs[index], outcome)
        return [outcome for outcome in outcomes if outcome is not None]

    def close(self) -> None:
        """Stop the Ray instance this executor started (not a cluster it joined)."""
        if self.owned:
            self.ray.shutdown()


def _host_and_port(address: str) -> tuple[str, int] | None:
    """The host and port of a Ray ``host:port`` or ``ray://host:port`` address; None for ``auto`` and the like."""
    match = re.fullmatch(r"(?:ray://)?\[?([^\[\]]+?)\]?:(\d+)", address.strip())
    return (match.group(1), int(match.group(2))) if match else None


def check_reachable(address: str, seconds: float = 5.0) -> None:
    """Refuse, in one line, a Ray ``host:port`` (or ``ray://host:port``) where nothing accepts a connection.

    ``auto`` and other forms without a port are left to Ray, which answers them at once.
    """
    parts = _host_and_port(address)
    if parts is None:
        return
    host, port = parts
    if not 0 < port < 65536:
        raise ConfigError(f"--address {address}: the port must be between 1 and 65535")
    try:
        socket.create_connection((host, port), timeout=seconds).close()
    except OSError as error:
        reason = f"no answer in {seconds:g} s" if isinstance(error, TimeoutError) else error.strerror or str(error)
        raise ConfigError(f"nothing answers at the Ray address {address} ({reason}): start the cluster there "
                          "(ray start --head) or fix --address") from None


def check_placeable(nodes: list[dict[str, Any]], cpus: int, gpus: float) -> None:
    """Refuse, in one line, a cell no node of the cluster can hold: Ray would keep it waiting for ever."""
    alive = [node.get("Resources", {}) for node in nodes if node.get("Alive")]
    if any(node.get("CPU", 0) >= cpus and node.get("GPU", 0) >= gpus for node in alive):
        return
    largest_cpus = max((node.get("CPU", 0) for node in alive), default=0)
    largest_gpus = max((node.get("GPU", 0) for node in alive), default=0)
    raise ConfigError(f"no Ray node can run a cell of {cpus:g} CPU(s) and {gpus:g} GPU(s): the largest has "
                      f"{largest_cpus:g} CPU(s) and {largest_gpus:g} GPU(s); lower --cpus-per-cell/--gpus-per-cell "
                      "or add a node that has them")


def import_ray():
    """Ray, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray executor needs Ray: pip install 'vaelab[ray]' (or pip install ray)") from None
    return ray


def make_executor(options: ExecutorOptions):
    """The executor ``options`` name (``local`` or ``ray``), checked first."""
    options.check()
    if options.name == "local":
        return LocalExecutor(options.cpus_per_cell)
    return RayExecutor(options.address, options.cpus_per_cell, options.gpus_per_cell)
