"""The runner: trains each model once per (dataset, seed) and scores it on every task.

Finished results are reused from the store (keyed by the full config), so an interrupted
run resumes where it stopped and a re-run computes only what is missing. Every number is
deterministic given its key: the seed, and the intra-op thread count (``threads``, applied to
torch and, through threadpoolctl, to numpy/scipy/scikit-learn's BLAS and OpenMP pools) and the
device kind, both part of the key.

A *cell* is one (model, seed): the model is built and trained once, then scored on every task
of the run. A cell's records are written together, only after all of its tasks succeeded, so
a run that fails on its input (a NaN found lazily during the second task), a model error or
a timeout writes nothing for that cell and removes nothing finished earlier; a killed run
keeps every finished cell and resumes from there. Errors inside a model's code name the model
and the phase (``fit``, ``embed_audio``, ...) and stop the run.

A cell also keeps its trained weights and its models' split embeddings in the cache, keyed
by the cell (:mod:`benchmark.cells`): a second task on a finished cell, a rerun with other
task options or a resumed run loads them instead of retraining and re-embedding, with the
same numbers to the bit. ``cache=False`` (``--no-cache``) neither reads nor writes them.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from avcl_bench.baselines.base import seed_everything
from avcl_bench.baselines.registry import MODELS, model_info
from avcl_bench.tasks.base import EvalContext
from avcl_bench.tasks.registry import TASKS, get_task

from . import allocator, cells, codehash
from .cliargs import DEFAULT_THREADS
from .compute import count_parameters, embedding_throughput, peak_memory
from .datasets import DATASETS, load_dataset
from .datasets.manifests import dataset_identity
from .embedding import use_cache
from .errors import CellTimeout, CellTimeoutAbort, CellTimeoutError, ConfigError, ModelError, user_code
from .executors import ExecutorOptions, run_cells
from .interface import FitContext, missing_methods
from .paths import cache_dir, default_out
from .progress import CellProgress, cell_log, cell_log_path
from .progress import log as _log
from .provenance import device_kind, provenance, select_device
from .schema import ComputeStats
from .store import ResultRecord, ResultStore, config_key
from .submission import check_model_args, load_model_spec

#: characters a submitted model name may use (it is also the name of the records' folder)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
NAME_RULE = "1-64 characters: letters, digits and . _ @ -, starting with a letter or digit"

#: model methods whose calls are guarded (errors name the model and the method; watchdog phase)
GUARDED_METHODS = ("embed_audio", "embed_visual", "embed_audio_segments", "embed_visual_segments",
                   "embed_visual_spatial", "separate", "generate")
#: of those, the methods that must return a torch.Tensor
TENSOR_METHODS = GUARDED_METHODS[:5]

#: the log of cells stopped by ``--cell-timeout`` (JSON lines, in the results folder)
TIMEOUT_LOG = "cell-timeouts.jsonl"


@dataclass
class RunConfig:
    models: list[str]
    tasks: list[str]
    dataset: str = "avsynth"
    data_root: str | None = None
    dataset_options: dict[str, str] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    out: Path = field(default_factory=default_out)
    quick: bool = False
    device: str = "auto"
    model_args: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    submission: dict[str, Any] | None = None
    task_options: dict[str, Any] = field(default_factory=dict)
    #: name under which a single external model's results are stored (``submit --name``)
    model_name: str | None = None
    #: intra-op threads of torch and of the BLAS/OpenMP pools (part of every key)
    threads: int = DEFAULT_THREADS
    #: model training precision, ``fp32`` or ``bf16`` (part of the key when not ``fp32``)
    precision: str = "fp32"
    #: seconds a (model, seed) cell may take (constructor, fit and every task); ``None``: no limit
    cell_timeout: float | None = None
    #: keep trained weights and split embeddings of each cell in the cache and reuse them
    cache: bool = True
    #: where cells run (``--executor``); not part of any key
    executor: ExecutorOptions = field(default_factory=ExecutorOptions)


@dataclass
class CellSpec:
    """One cell to compute, picklable (what :func:`run_cell` gets on a Ray or SLURM worker)."""

    cfg: RunConfig
    model: str
    seed: int
    tasks: tuple[str, ...]
    keys: dict[str, tuple[str, dict]]
    cell: str
    device: str
    cache_root: str
    #: :func:`~benchmark.provenance.device_kind` on the driver, which is in ``keys``: a worker of another
    #: kind refuses the cell
    device_kind: str


@dataclass
class ModelEntry:
    """A model to run: how to build it and how it is identified in results."""

    name: str
    factory: Callable[..., Any]
    info: dict[str, Any]
    args: dict[str, Any]
    #: the code identity: a hash of its source files, or ``{"version": ...}`` a model declares
    source_hash: str | dict[str, Any]
    #: registered in the model zoo under ``name`` (not a ``file.py:Class`` / ``module:Class`` spec)
    registered: bool = False

    @property
    def builtin(self) -> bool:
        """One of the suite's own models (its exceptions are the suite's bugs, exit status 1)."""
        return self.registered and getattr(self.factory, "__module__", "").startswith("avcl_bench.")


def source_hash(obj: Any) -> str:
    """Code hash of a built-in model: the baselines package plus the engine modules it imports."""
    return codehash.builtin_model_hash(obj)


def resolve_models(names: list[str], model_args: dict[str, Any]) -> list[ModelEntry]:
    out = []
    for name in names:
        if ":" in name:  # an external model: path/to/file.py:Class or package.module:Class
            factory, info = load_model_spec(name)
            out.append(ModelEntry(info["name"], factory, info, dict(model_args), info["source_hash"]))
        else:
            factory = MODELS.get(name)
            out.append(ModelEntry(name, factory, model_info(name), dict(model_args), source_hash(factory),
                                  registered=True))
    return out


# ------------------------------------------------------------------------------ model names
def reserved_names() -> set[str]:
    """Names a submission cannot take: the registered models and the tasks' reference rows."""
    names = set(MODELS)
    for t in TASKS:
        names.update(TASKS.get(t).metadata.reference_names)
    return names


def check_name_syntax(name: str, flag: str = "--name") -> None:
    """A model name a submission may use (:data:`NAME_RULE`), else a one-line :class:`ConfigError`."""
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise ConfigError(f"{flag}: invalid model name {name!r} ({NAME_RULE})")


def check_submission_name(name: str, flag: str = "--name") -> None:
    """A name a submission may take: valid (:data:`NAME_RULE`) and no built-in model's or reference row's."""
    check_name_syntax(name, flag)
    if name in reserved_names():
        raise ConfigError(f"{flag}: '{name}' is the name of a built-in model or reference row of the suite; "
                          "choose another name")


def _identity(rec: ResultRecord) -> tuple[str, Any]:
    """(kind, code identity) of a stored record: kind is builtin, submission or external."""
    sub = rec.get("submission") or {}
    if sub:
        return "submission", sub.get("source_hash")
    model_id = rec.config.get("model", {}) if isinstance(rec.config, dict) else {}
    ident = model_id.get("source_hash") if isinstance(model_id, dict) else None
    return ("external" if rec.model_info.model_dump().get("external") else "builtin"), ident


def guard_model_name(store: ResultStore, name: str, *, kind: str, identity: Any) -> None:
    """A model's results never share a name with another model's in the same results folder.

    ``kind`` is ``builtin`` (a registered model), ``submission`` (``submit``) or ``external``
    (``run --models file.py:Class``). A submission or external model may not take a registered
    model's name or a reference row's; a name holding a built-in's results is not reused by any
    other model (and the reverse); a submission's name is not reused by a model of another code
    identity. The same model resumes. Raises :class:`ConfigError` before any compute.
    """
    if kind != "builtin":
        check_submission_name(name, "--name" if kind == "submission" else "model name")
    for rec in store.records_of(name):
        other_kind, other = _identity(rec)
        if (other_kind == "builtin") != (kind == "builtin"):
            whose = "the built-in model" if other_kind == "builtin" else f"a {other_kind} model"
            raise ConfigError(f"'{name}' already has results in {store.root} from {whose} ({rec.source}); "
                              "choose another --name or --out")
        if "submission" in (kind, other_kind) and other != identity:
            raise ConfigError(f"'{name}' already has results in {store.root} from a different model "
                              f"(source hash {other}); choose another --name")


# ------------------------------------------------------------------------------ threads, device
_INTEROP_SET = False


@contextmanager
def thread_limits(threads: int) -> Iterator[None]:
    """Use ``threads`` intra-op threads in torch and in numpy/scipy/sklearn's BLAS and OpenMP pools.

    The environment (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, the core count) no longer
    decides them, so a result depends only on its key. torch's inter-op pool is set once per
    process (it cannot change later); it does not change numbers.
    """
    global _INTEROP_SET
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ConfigError(f"--threads: expected a positive integer, got {threads!r}")
    if not _INTEROP_SET:
        _INTEROP_SET = True
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # inter-op work already ran in this process
            pass
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------ watchdog
class _Phase:
    """What a cell is doing now (the watchdog's report): a model method or the suite's own code."""

    def __init__(self) -> None:
        self.what = "setup"


class Watchdog:
    """``--cell-timeout``: SIGALRM in the main thread raises :class:`CellTimeout` inside the running call.

    POSIX only, and only in the main thread (signal handlers run there); code in a C extension
    (a long torch op) is interrupted when it returns to Python. The alarm repeats every second
    after it first fires, then raising :class:`CellTimeoutAbort` (a ``BaseException``), so a
    model that swallows the first one with ``except Exception`` is stopped too.
    """

    def __init__(self, limit: float | None):
        if limit is not None:
            if not limit > 0:
                raise ConfigError(f"--cell-timeout: expected a positive number of seconds, got {limit!r}")
            if not hasattr(signal, "setitimer"):
                raise ConfigError("--cell-timeout needs a POSIX system (signal.setitimer)")
            if threading.current_thread() is not threading.main_thread():
                raise ConfigError("--cell-timeout works only when the run is started in the main thread")
        self.limit = limit
        self.fired = False
        self.phase = _Phase()

    def _fire(self, signum: int, frame: Any) -> None:
        msg = f"cell time limit of {self.limit:g} s reached in {self.phase.what}"
        if self.fired:  # the first one was swallowed: one that `except Exception` does not catch
            raise CellTimeoutAbort(msg)
        self.fired = True
        raise CellTimeout(msg)

    @contextmanager
    def cell(self) -> Iterator[_Phase]:
        self.fired = False
        self.phase = _Phase()
        if self.limit is None:
            yield self.phase
            return
        old = signal.signal(signal.SIGALRM, self._fire)
        signal.setitimer(signal.ITIMER_REAL, self.limit, 1.0)
        try:
            yield self.phase
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


class GuardedModel:
    """A model seen through the suite's checks: what the tasks get instead of the model itself.

    Calls of :data:`GUARDED_METHODS` name the model and the method when they raise
    (:func:`~benchmark.errors.user_code`), report the method to the watchdog, and the
    ``embed_*`` methods must return a ``torch.Tensor`` (a numpy array is a :class:`ModelError`).
    Every other attribute is the model's own.
    """

    def __init__(self, model: Any, name: str, builtin: bool, phase: _Phase):
        object.__setattr__(self, "_guarded", (model, name, builtin, phase))

    def __getattr__(self, attr: str) -> Any:
        model, name, builtin, phase = object.__getattribute__(self, "_guarded")
        value = getattr(model, attr)
        if attr not in GUARDED_METHODS or not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            before, phase.what = phase.what, f"{attr}"
            try:
                with user_code(name, attr, builtin=builtin):
                    out = value(*args, **kwargs)
            finally:
                phase.what = before
            if attr in TENSOR_METHODS and not isinstance(out, torch.Tensor):
                kind = type(out).__module__.split(".")[0] + "." + type(out).__name__
                raise ModelError(f"model '{name}': {attr}() must return a torch.Tensor, got {kind} "
                                 "(wrap it with torch.from_numpy or avcl_bench.to_float_tensor)")
            return out

        return call

    def __setattr__(self, attr: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_guarded")[0], attr, value)


def _log_timeout(out: Path, entry: ModelEntry, seed: int, limit: float, phase: str) -> None:
    line = json.dumps({"model": entry.name, "seed": seed, "phase": phase, "cell_timeout_s": limit,
                       "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}, sort_keys=True)
    try:
        with open(out / TIMEOUT_LOG, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:  # the error message says it all
        pass


# ------------------------------------------------------------------------------ the run
def run(cfg: RunConfig) -> list[ResultRecord]:
    """Run every (model, seed, task) of ``cfg`` on one dataset; returns the records (new and reused).

    Before any compute: the results folder must be writable (stale temporary files of a killed
    run are removed), the model names must not collide with other models' results, and the
    options are checked. See the module docstring for when records are written.
    """
    device = select_device(cfg.device)
    watchdog = Watchdog(cfg.cell_timeout)
    tasks = [get_task(t) for t in cfg.tasks]
    models = resolve_models(cfg.models, cfg.model_args)
    if cfg.model_name is not None:
        if len(models) != 1:
            raise ConfigError("a model name can only be given for a single model")
        models[0].name = cfg.model_name
        models[0].info = {**models[0].info, "name": cfg.model_name}
        models[0].registered = False
    store = ResultStore(cfg.out)
    store.check_writable()
    for entry in models:
        kind = "submission" if cfg.submission is not None else ("builtin" if entry.registered else "external")
        guard_model_name(store, entry.name, kind=kind, identity=entry.source_hash)
        check_model_args(entry.name, entry.factory, None, entry.args)  # before any compute (again per cell)
    allocator.tune()
    with thread_limits(cfg.threads):
        return _run(cfg, device, tasks, models, store, watchdog)


def _run(cfg: RunConfig, device: str, tasks: list[Any], models: list[ModelEntry], store: ResultStore,
         watchdog: Watchdog) -> list[ResultRecord]:
    dataset = load_dataset(cfg.dataset, data_root=cfg.data_root, options=cfg.dataset_options, quick=cfg.quick)
    spec = dataset.spec
    test = dataset.split("test")
    data_cfg = {"name": spec.name, "fingerprint": dataset.fingerprint(), "options": cfg.dataset_options,
                "quick": cfg.quick}
    data_code = codehash.dataset_code_hash(DATASETS.get(cfg.dataset))
    # is the data verifiably the surveyed dataset it is named after (reports' direct/reference)
    identity = dataset_identity(dataset)
    # what the numbers depend on besides code, data and seed: part of every key
    runtime: dict[str, Any] = {"threads": cfg.threads, "device": device_kind(device)}
    if cfg.precision != "fp32":  # fp32 keys stay those of records written before --precision existed
        runtime["precision"] = cfg.precision
    records: list[ResultRecord] = []

    def key_for(model_id: dict[str, Any], task: Any, seed: int, task_cfg: dict[str, Any]) -> tuple[str, dict]:
        # the code that computes the number is part of the key: the task adapter's package, the
        # shared engine modules and the dataset loader (hashed once per process), not a version
        config = {"model": model_id,
                  "task": {"name": task.name, "code": codehash.task_code_hash(task), "options": cfg.task_options,
                           **task_cfg},
                  "dataset": {**data_cfg, "code": data_code, "identity": identity}, "seed": seed,
                  "runtime": runtime}
        return config_key(config), config

    remote: list[CellSpec] = []
    progress = CellProgress(len(cfg.seeds) * len(models))
    for seed in cfg.seeds:
        ctx = EvalContext(seed=seed, device=device, quick=cfg.quick, progress=cfg.progress,
                          options=dict(cfg.task_options), precision=cfg.precision)
        # --- reference rows of the tasks (oracles, lower bounds): computed once per seed
        for task in tasks:
            if not task.metadata.reference_names or task.supports(None, spec, test) is not None:
                continue
            ref_id = {"reference_of": task.name}
            key, config = key_for(ref_id, task, seed, {})
            done = [store.get(n, task.name, spec.name, seed, f"{key}-{n}") for n in task.metadata.reference_names]
            if all(r is not None for r in done):
                records += done
                continue
            t0 = time.perf_counter()
            refs = task.references(dataset, ctx)
            new = [ResultRecord(model=ref_name, task=task.name, dataset=spec.name, seed=seed, metrics=metrics,
                                config=config, provenance=provenance(device, time.perf_counter() - t0),
                                key=f"{key}-{ref_name}", protocol="reference", task_meta=task.metadata,
                                model_info={"name": ref_name, "reference": True, "encoder": [], "objective": [],
                                            "learning": "", "papers": []})
                   for ref_name, metrics in refs.items()]
            for rec in new:  # all references of a task, once all are computed
                store.put(rec)
            records += new

        for spec_name, entry in zip(cfg.models, models):
            model_id = {"name": entry.name, "args": entry.args, "source_hash": entry.source_hash}
            todo, keys = [], {}
            for task in tasks:
                key, config = key_for(model_id, task, seed, {})
                keys[task.name] = (key, config)
                done = store.get(entry.name, task.name, spec.name, seed, key)
                if done is not None:
                    records.append(done)
                    _log(f"[reuse] {entry.name} / {task.name} / seed {seed}")
                else:
                    todo.append(task)
            if not todo:
                progress.reused()
                continue
            cell = cells.cell_key(model_id, {**data_cfg, "code": data_code}, seed, runtime)
            # a warm cell (nothing to train) is cheaper here than on a worker of a remote executor
            if cfg.executor.name != "local" and not (cfg.cache and cells.is_warm(cell)):
                remote.append(CellSpec(cfg, spec_name, seed, tuple(t.name for t in todo), keys, cell, device,
                                       str(cache_dir()), runtime["device"]))
                continue
            with cell_log(cell_log_path(cfg.out, spec.name, entry.name, seed, cell)):
                progress.starting(f"{entry.name} / seed {seed}: {', '.join(t.name for t in todo)}")
                t_cell = time.perf_counter()
                try:
                    with watchdog.cell() as phase:
                        new = _run_cell(cfg, entry, seed, todo, keys, dataset, test, ctx, device, phase, cell)
                except BaseException as e:
                    if not watchdog.fired:
                        raise
                    what = watchdog.phase.what
                    _log_timeout(cfg.out, entry, seed, float(cfg.cell_timeout or 0), what)
                    raise CellTimeoutError(
                        f"model '{entry.name}' (seed {seed}) exceeded --cell-timeout {cfg.cell_timeout:g} s in "
                        f"{what}; nothing of this cell was written (logged in {cfg.out / TIMEOUT_LOG})") from e
                # the cell's records, together, once all of its tasks succeeded
                for rec in new:
                    store.put(rec)
                records += new
                progress.finished(time.perf_counter() - t_cell)
                for rec in new:
                    _log_done(rec)
    if remote:
        last = [time.perf_counter()]

        def done(spec: CellSpec, result: list[dict[str, Any]]) -> None:
            new = [ResultRecord.model_validate(d) for d in result]
            for rec in new:
                store.put(rec)
            records.extend(new)
            now = time.perf_counter()
            progress.finished(now - last[0])  # wall time between completions: the grid's throughput
            last[0] = now
            for rec in new:
                _log_done(rec)
            if progress.done < progress.total:
                progress.starting(f"waiting for {progress.total - progress.done} cell(s) on {cfg.executor.name}")

        _log(f"[executor] {len(remote)} cell(s) on {cfg.executor.name}; per-cell logs in {cfg.out / 'logs'}")
        run_cells(run_cell, remote, done, cfg.executor, cfg.threads)
    return records


def _log_done(rec: ResultRecord) -> None:
    _log(f"[done] {rec.model} / {rec.task} / seed {rec.seed}: "
         + ", ".join(f"{k}={v:.4g}" for k, v in list(rec.metrics.items())[:4]))


def run_cell(spec: CellSpec) -> list[dict[str, Any]]:
    """Compute one cell from scratch in this process (a Ray task, a SLURM array task): its records as dicts.

    The worker resolves the model, loads the dataset (from the shared cache) and pins its
    threads to ``--threads`` exactly as a local run does, so the numbers are the same.
    """
    os.environ["AVCL_CACHE"] = spec.cache_root
    cfg = spec.cfg
    entry = resolve_models([spec.model], cfg.model_args)[0]
    if cfg.model_name is not None:
        entry.name, entry.info, entry.registered = cfg.model_name, {**entry.info, "name": cfg.model_name}, False
    here = device_kind(spec.device)
    if here != spec.device_kind:
        raise ConfigError(f"cell {entry.name} / seed {spec.seed}: this worker ({platform.node()}) is a '{here}', the "
                          f"driver keyed the run for '{spec.device_kind}' (the device kind is part of every key, "
                          "another kind gives other numbers): run on workers of the driver's kind")
    on_main = threading.current_thread() is threading.main_thread()
    watchdog = Watchdog(cfg.cell_timeout if on_main else None)
    allocator.tune()
    with thread_limits(cfg.threads):
        dataset = load_dataset(cfg.dataset, data_root=cfg.data_root, options=cfg.dataset_options, quick=cfg.quick)
        ctx = EvalContext(seed=spec.seed, device=spec.device, quick=cfg.quick, progress=cfg.progress,
                          options=dict(cfg.task_options), precision=cfg.precision)
        tasks = [get_task(t) for t in spec.tasks]
        log_file = cell_log_path(cfg.out, dataset.spec.name, entry.name, spec.seed, spec.cell)
        with watchdog.cell() as phase, cell_log(log_file):
            _log(f"[cell] {entry.name} / seed {spec.seed} on {platform.node()}")
            new = _run_cell(cfg, entry, spec.seed, tasks, spec.keys, dataset, dataset.split("test"), ctx,
                            spec.device, phase, spec.cell)
            for rec in new:
                _log_done(rec)
    return [rec.model_dump() for rec in new]


@dataclass
class _Fitted:
    """A cell's model after construction and ``fit`` (or its checkpoint)."""

    model: Any
    config: Any
    fit_stats: dict[str, Any]
    #: its trained state is kept in the cell's checkpoint
    checkpoint: bool
    #: seconds of construction, fit or checkpoint load and ``config``
    seconds: float


def _fitted_model(cfg: RunConfig, entry: ModelEntry, seed: int, dataset: Any, device: str, phase: _Phase,
                  cell: str) -> _Fitted:
    """Build ``entry``'s model for ``dataset`` under ``seed`` and train it on its train / val splits,
    or load the checkpoint of ``cell``; a new checkpoint is saved."""
    spec = dataset.spec
    t0 = time.perf_counter()
    seed_everything(seed)
    check_model_args(entry.name, entry.factory, spec, entry.args)
    phase.what = "the constructor"
    with user_code(entry.name, "the constructor", builtin=entry.builtin):
        model = entry.factory(spec, **entry.args)
    missing = missing_methods(model)
    if missing:
        raise ModelError(f"model '{entry.name}' lacks required method(s): {', '.join(missing)}")
    checkpoint, loaded = False, None
    fit_stats: dict[str, Any] = {"train_seconds": 0.0}  # a model that is not trained costs no training
    if getattr(model, "trainable", True):
        if entry.info.get("learning") == "supervised" and (np.asarray(dataset.split("train").labels) < 0).any():
            raise ConfigError(f"model '{entry.name}' is supervised but the train split of '{spec.name}' "
                              "has unlabelled clips (label -1); pick a semi-supervised model or a labelled "
                              "train option of the dataset")
        checkpoint = cfg.cache and cells.can_checkpoint(model)
        loaded = cells.load_checkpoint(cell, model, device) if checkpoint else None
        if loaded is not None:
            _log(f"[cache] loaded checkpoint {entry.name} on {spec.name} (seed {seed}): "
                 f"{cells.checkpoint_path(cell)}")
            if hasattr(model, "fit_report"):
                model.fit_report = loaded["fit_report"]
            fit_stats = loaded.get("compute") or {"train_seconds": None}
        else:
            _log(f"[train] {entry.name} on {spec.name} (seed {seed}, {device}, {cfg.threads} thread(s))")
            phase.what = "fit"
            t_fit = time.perf_counter()
            with peak_memory(device) as mem, user_code(entry.name, "fit", builtin=entry.builtin):
                model.fit(dataset.split("train"), dataset.split("val"),
                          FitContext(seed=seed, device=device, quick=cfg.quick, progress=cfg.progress,
                                     precision=cfg.precision))
            fit_stats = {"train_seconds": time.perf_counter() - t_fit, "peak_memory_mb": mem.mb,
                         "memory_measure": mem.measure}
    phase.what = "config"
    with user_code(entry.name, "config", builtin=entry.builtin):
        model_cfg = model.config()
    if checkpoint and loaded is None:
        phase.what = "saving the checkpoint (suite code)"
        cells.save_checkpoint(cell, model, getattr(model, "fit_report", {}), model_cfg, compute=fit_stats)
    return _Fitted(model, model_cfg, fit_stats, checkpoint, time.perf_counter() - t0)


def _fold_refitter(cfg: RunConfig, entry: ModelEntry, seed: int, device: str, phase: _Phase,
                   cell: str) -> Callable[[Any], Any]:
    """``ctx.fit_model_on`` of a cell: the cell's model fitted anew on another dataset (a fold of a
    cross-validation, e.g. ESC-50 ``fold=all``), under the cell's seed, with its own checkpoint
    (keyed by the cell and the fold's fingerprint). Its embeddings are not cached: the cell's
    embedding cache serves only the cell's own model."""

    def fit_model_on(other: Any) -> Any:
        fold_cell = config_key({"cell": cell, "fold_fingerprint": other.fingerprint()})
        fitted = _fitted_model(cfg, entry, seed, other, device, phase, fold_cell)
        return GuardedModel(fitted.model, entry.name, entry.builtin, phase)

    return fit_model_on


def _run_cell(cfg: RunConfig, entry: ModelEntry, seed: int, todo: list[Any], keys: dict[str, tuple[str, dict]],
              dataset: Any, test: Any, ctx: EvalContext, device: str, phase: _Phase,
              cell: str) -> list[ResultRecord]:
    """Build, train (or load the cell's checkpoint) and score one (model, seed) on the tasks ``todo``:
    its records, not yet written."""
    spec = dataset.spec
    fitted = _fitted_model(cfg, entry, seed, dataset, device, phase, cell)
    model, model_cfg, fit_stats, checkpoint, fit_s = (fitted.model, fitted.config, fitted.fit_stats,
                                                      fitted.checkpoint, fitted.seconds)
    guarded = GuardedModel(model, entry.name, entry.builtin, phase)
    phase.what = "embedding (throughput)"
    # measured once per cell: a rerun reports the first run's value instead of embedding again
    throughput = (cells.cell_throughput(cell) if cfg.cache else None) or embedding_throughput(guarded, test, device)
    compute = ComputeStats(parameters=count_parameters(model), device=device_kind(device),
                           embed_items_per_s=throughput, **fit_stats)
    caching = cfg.cache and bool(getattr(model, "cache_embeddings", True))
    splits = {}
    for name in ("train", "val", "test"):
        try:
            splits[name] = dataset.split(name)
        except Exception:  # noqa: BLE001 - a dataset without this split
            continue
    embeddings = cells.EmbeddingCache(cache_dir() / "embeddings" / cell if caching else None, guarded, splits,
                                      label=entry.name)
    ctx = dataclasses.replace(ctx, embeddings=embeddings,
                              fit_model_on=_fold_refitter(cfg, entry, seed, device, phase, cell))
    new = []
    for task in todo:
        why = task.supports(guarded, spec, test)
        if why is not None:
            _log(f"[skip] {entry.name} / {task.name}: {why}")
            continue
        seed_everything(seed)
        t1 = time.perf_counter()
        phase.what = f"the {task.name} task (suite code)"
        with use_cache(embeddings):
            result = task.evaluate(guarded, dataset, ctx)
        key, config = keys[task.name]
        config = {**config, "model_config": model_cfg, "task_config": result.config, "device": device}
        new.append(ResultRecord(
            model=entry.name, task=task.name, dataset=spec.name, seed=seed, metrics=result.metrics,
            config=config, provenance=provenance(device, fit_s + time.perf_counter() - t1), key=key,
            protocol=result.protocol, task_meta=task.metadata,
            model_info=entry.info, item_metrics=result.item_metrics, submission=cfg.submission, compute=compute,
        ))
    if cfg.cache:
        cells.mark_cell(cell, needs_fit=bool(getattr(model, "trainable", True)) and not checkpoint,
                        embed_items_per_s=throughput)
    return new
