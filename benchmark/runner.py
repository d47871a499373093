"""The runner: trains each model once per (dataset, seed) and scores it on every task.

Finished results are reused from the store (keyed by the full config), so an interrupted
run resumes where it stopped and a re-run computes only what is missing. Every number is
deterministic given the seed.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avcl_bench.baselines.base import seed_everything
from avcl_bench.baselines.registry import MODELS, model_info
from avcl_bench.tasks.base import EvalContext
from avcl_bench.tasks.registry import get_task

from . import codehash
from .datasets import DATASETS, load_dataset
from .errors import ConfigError, ModelError, user_code
from .interface import FitContext, missing_methods
from .paths import default_out
from .provenance import provenance, select_device
from .store import ResultRecord, ResultStore, config_key
from .submission import check_model_args, load_model_spec


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


@dataclass
class ModelEntry:
    """A model to run: how to build it and how it is identified in results."""

    name: str
    factory: Callable[..., Any]
    info: dict[str, Any]
    args: dict[str, Any]
    #: the code identity: a hash of its source files, or ``{"version": ...}`` a model declares
    source_hash: str | dict[str, Any]


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
            out.append(ModelEntry(name, factory, model_info(name), dict(model_args), source_hash(factory)))
    return out


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(cfg: RunConfig) -> list[ResultRecord]:
    """Run every (model, seed, task) of ``cfg`` on one dataset; returns the records (new and reused)."""
    device = select_device(cfg.device)
    tasks = [get_task(t) for t in cfg.tasks]
    models = resolve_models(cfg.models, cfg.model_args)
    if cfg.model_name is not None:
        if len(models) != 1:
            raise ConfigError("a model name can only be given for a single model")
        models[0].name = cfg.model_name
        models[0].info = {**models[0].info, "name": cfg.model_name}
    store = ResultStore(cfg.out)
    dataset = load_dataset(cfg.dataset, data_root=cfg.data_root, options=cfg.dataset_options, quick=cfg.quick)
    spec = dataset.spec
    test = dataset.split("test")
    data_cfg = {"name": spec.name, "fingerprint": dataset.fingerprint(), "options": cfg.dataset_options,
                "quick": cfg.quick}
    records: list[ResultRecord] = []

    def key_for(model_id: dict[str, Any], task: Any, seed: int, task_cfg: dict[str, Any]) -> tuple[str, dict]:
        # the code that computes the number is part of the key: the task adapter's package, the
        # shared engine modules and the dataset loader (hashed once per process), not a version
        config = {"model": model_id,
                  "task": {"name": task.name, "code": codehash.task_code_hash(task), "options": cfg.task_options,
                           **task_cfg},
                  "dataset": {**data_cfg, "code": codehash.dataset_code_hash(DATASETS.get(cfg.dataset))}, "seed": seed}
        return config_key(config), config

    for seed in cfg.seeds:
        ctx = EvalContext(seed=seed, device=device, quick=cfg.quick, progress=cfg.progress,
                          options=dict(cfg.task_options))
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
            for ref_name, metrics in refs.items():
                rec = ResultRecord(model=ref_name, task=task.name, dataset=spec.name, seed=seed, metrics=metrics,
                                   config=config, provenance=provenance(device, time.perf_counter() - t0),
                                   key=f"{key}-{ref_name}", protocol="reference", task_meta=task.metadata,
                                   model_info={"name": ref_name, "reference": True, "encoder": [], "objective": [],
                                               "learning": "", "papers": []})
                store.put(rec)
                records.append(rec)

        for entry in models:
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
                continue
            seed_everything(seed)
            check_model_args(entry.name, entry.factory, spec, entry.args)
            with user_code(entry.name, "the constructor"):
                model = entry.factory(spec, **entry.args)
            missing = missing_methods(model)
            if missing:
                raise ModelError(f"model '{entry.name}' lacks required method(s): {', '.join(missing)}")
            t0 = time.perf_counter()
            if getattr(model, "trainable", True):
                if entry.info.get("learning") == "supervised" and (np.asarray(dataset.split("train").labels) < 0).any():
                    raise ConfigError(f"model '{entry.name}' is supervised but the train split of '{spec.name}' "
                                      "has unlabelled clips (label -1); pick a semi-supervised model or a labelled "
                                      "train option of the dataset")
                _log(f"[train] {entry.name} on {spec.name} (seed {seed}, {device})")
                with user_code(entry.name, "fit"):
                    model.fit(dataset.split("train"), dataset.split("val"),
                              FitContext(seed=seed, device=device, quick=cfg.quick, progress=cfg.progress))
            fit_s = time.perf_counter() - t0
            with user_code(entry.name, "config"):
                model_cfg = model.config()
            for task in todo:
                why = task.supports(model, spec, test)
                if why is not None:
                    _log(f"[skip] {entry.name} / {task.name}: {why}")
                    continue
                seed_everything(seed)
                t1 = time.perf_counter()
                with user_code(entry.name):  # the phase is the model method that raised (embed_audio, ...)
                    result = task.evaluate(model, dataset, ctx)
                key, config = keys[task.name]
                config = {**config, "model_config": model_cfg, "task_config": result.config, "device": device}
                rec = ResultRecord(
                    model=entry.name, task=task.name, dataset=spec.name, seed=seed, metrics=result.metrics,
                    config=config, provenance=provenance(device, fit_s + time.perf_counter() - t1), key=key,
                    protocol=result.protocol, task_meta=task.metadata,
                    model_info=entry.info, item_metrics=result.item_metrics, submission=cfg.submission,
                )
                store.put(rec)
                records.append(rec)
                _log(f"[done] {entry.name} / {task.name} / seed {seed}: "
                     + ", ".join(f"{k}={v:.4g}" for k, v in list(result.metrics.items())[:4]))
    return records
