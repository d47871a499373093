"""Executors: where a run's cells are computed (``--executor local | ray | slurm``).

An executor takes a top-level function ``fn`` and picklable cell specs, computes
``fn(spec)`` for each (a list of record dicts) and hands every cell's result to the
driver's ``done(spec, result)`` as soon as that cell finishes; the driver writes the
records into the results store, so the store, its keys and its reuse rules are the same
whatever the executor, and a Ray or SLURM run and a local run of the same config reuse
each other's results. A cell is computed all-or-nothing; a failing cell raises in the
driver (after the cells already finished were handed over).

* ``local`` (default): in this process, one cell after another (the runner runs these
  in-process itself, with the dataset already loaded and ``--cell-timeout``).
* ``ray``: each cell is a Ray task declaring ``num_cpus`` (``--cpus-per-cell``, default the
  thread count) and ``num_gpus`` (``--gpus-per-cell``), on a local Ray instance or the cluster
  at ``--ray-address`` (e.g. ``auto``). Ray schedules at most ``cpus // cpus_per_cell`` cells at
  once, so workers x threads never exceed the CPUs given.
* ``slurm``: a ``submitit`` job array, one cell per array task (``--slurm-partition``,
  ``--slurm-time`` minutes, ``--gpus-per-cell``, ``--cpus-per-cell``); ``slurm_cluster="debug"``
  or ``"local"`` runs it with submitit's debug/local executor (tests).

Ray and submitit are optional (``pip install "avcl-bench[ray]"`` / ``[slurm]``) and imported
only when their executor runs.
"""
from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import ConfigError
from .registry import Registry

__all__ = ["EXECUTORS", "ExecutorOptions", "run_cells"]

CellFn = Callable[[Any], list[dict[str, Any]]]
Done = Callable[[Any, list[dict[str, Any]]], None]


@dataclass
class ExecutorOptions:
    """How cells are distributed (the run's ``--executor`` options); none of it is part of any key."""

    name: str = "local"
    cpus_per_cell: int | None = None
    gpus_per_cell: float = 0.0
    ray_address: str | None = None
    #: CPUs of the local Ray instance (``None``: Ray's default, the machine's cores)
    ray_num_cpus: int | None = None
    slurm_partition: str | None = None
    slurm_time: int = 60
    #: submitit cluster: ``None`` (SLURM), ``"local"`` or ``"debug"``
    slurm_cluster: str | None = None
    #: where submitit writes its job files (default: ``<out>/slurm``)
    slurm_folder: Path | None = None


def _local(fn: CellFn, specs: Sequence[Any], done: Done, opts: ExecutorOptions, threads: int) -> None:
    for spec in specs:
        done(spec, fn(spec))


def _optional(name: str, attr: str, needs: str) -> ModuleType:
    """The optional backend ``name``, imported only when its executor runs; a one-line error when it is not
    installed, or when what imports under its name lacks ``attr`` (a folder of that name in the working
    directory shadows it, e.g. Ray's own session folder ``/tmp/ray`` for a run started in ``/tmp``)."""
    try:
        module = importlib.import_module(name)
    except ImportError:
        raise ConfigError(needs) from None
    if not hasattr(module, attr):
        where = [*getattr(module, "__path__", ())] or [getattr(module, "__file__", None) or name]
        raise ConfigError(f"{needs}; 'import {name}' found {where}, which is not it "
                          "(a folder or file of that name in the working directory?)")
    return module


def _ray(fn: CellFn, specs: Sequence[Any], done: Done, opts: ExecutorOptions, threads: int) -> None:
    ray = _optional("ray", "remote", '--executor ray needs Ray: pip install "avcl-bench[ray]" (ray>=2.9)')
    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
        if opts.ray_address:
            kw["address"] = opts.ray_address
        elif opts.ray_num_cpus is not None:
            kw["num_cpus"] = opts.ray_num_cpus
        ray.init(**kw)
        started = True
    try:
        cpus = opts.cpus_per_cell if opts.cpus_per_cell is not None else threads
        remote = ray.remote(num_cpus=cpus, num_gpus=opts.gpus_per_cell, max_retries=0)(fn)
        pending = {remote.remote(spec): spec for spec in specs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                spec = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    for other in pending:
                        ray.cancel(other)
                    cause = e.as_instanceof_cause()
                    raise cause from None
                done(spec, result)
    finally:
        if started:
            ray.shutdown()


def _slurm(fn: CellFn, specs: Sequence[Any], done: Done, opts: ExecutorOptions, threads: int) -> None:
    submitit = _optional("submitit", "AutoExecutor",
                         '--executor slurm needs submitit: pip install "avcl-bench[slurm]" (submitit>=1.5)')
    folder = opts.slurm_folder or Path("slurm")
    ex = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=opts.slurm_cluster)
    params: dict[str, Any] = {"timeout_min": int(opts.slurm_time),
                              "cpus_per_task": opts.cpus_per_cell if opts.cpus_per_cell is not None else threads,
                              "gpus_per_node": int(opts.gpus_per_cell), "name": "avcl-bench"}
    if opts.slurm_partition:
        params["slurm_partition"] = opts.slurm_partition
    if opts.slurm_cluster is None or opts.slurm_cluster == "slurm":
        params["slurm_array_parallelism"] = len(specs)
    ex.update_parameters(**params)
    jobs = ex.map_array(fn, list(specs))
    # hand results over as jobs finish, in any order
    remaining = dict(zip(jobs, specs))
    while remaining:
        for job in list(remaining):
            if job.done():
                done(remaining.pop(job), job.result())
        if remaining:
            time.sleep(0.2 if opts.slurm_cluster in ("debug", "local") else 5.0)


#: executor name -> ``(fn, specs, done, options, threads)``
EXECUTORS: Registry = Registry("executor")
EXECUTORS.register("local", _local)
EXECUTORS.register("ray", _ray)
EXECUTORS.register("slurm", _slurm)


def run_cells(fn: CellFn, specs: Sequence[Any], done: Done, opts: ExecutorOptions, threads: int) -> None:
    """Compute ``fn(spec)`` for every spec on the executor ``opts.name``; ``done`` gets each result."""
    if opts.cpus_per_cell is not None and opts.cpus_per_cell < threads:
        raise ConfigError(f"--cpus-per-cell {opts.cpus_per_cell} is below --threads {threads}: "
                          "a cell's workers would oversubscribe the CPUs it declares")
    EXECUTORS.get(opts.name)(fn, specs, done, opts, threads)
