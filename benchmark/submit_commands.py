"""Submitting models: ``validate-model``, ``submit`` (a Python model or a folder of outputs), ``export``.

A Python model is given as ``path/to/file.py:ClassName`` or ``package.module:ClassName``
(called as ``ClassName(data_spec, **model_args)``, following :class:`benchmark.interface.AVModel`).
Models that cannot run inside Python get the test inputs with ``export`` and hand back one
``<task>.npz`` per task in the ``score`` formats, scored by ``submit --pred DIR``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from avcl_bench._version import __version__
from avcl_bench.baselines.base import seed_everything
from avcl_bench.tasks.base import EvalContext  # noqa: F401  (import check of the task layer)
from avcl_bench.tasks.registry import TASKS

from .arrays import load_npz
from .cliargs import add_runtime_options, parse_csv, parse_kv, parse_seeds
from .datasets import DATASETS, load_dataset
from .datasets.base import audio_batch, visual_batch
from .datasets.manifests import dataset_identity
from .embedding import BATCH_SIZE as EMBED_BATCH_SIZE
from .errors import AVCLError, ConfigError, InputError, UserCodeError, is_user_exception
from .interface import FitContext, missing_methods
from .provenance import provenance
from .reporting.tables import console_table
from .runner import RunConfig, check_submission_name, guard_model_name, run
from .staging import Staging, commit, recover
from .store import ResultRecord, ResultStore, check_writable_folder, config_key
from .submission import check_model_args, load_model_spec
from .surveyed import load_table1_long

#: validate-model checks the embedding methods on this many batches of the tasks' batch size
VALIDATE_BATCHES = 2
VALIDATE_OPTIONS = {"n_train": "40", "n_val": "20", "n_test": str(VALIDATE_BATCHES * EMBED_BATCH_SIZE)}


def _print_err(msg: str) -> None:
    print(msg, file=sys.stderr)


# ------------------------------------------------------------------------------ validate-model
def _user_problem(what: str, e: BaseException) -> str:
    """A problem line for an exception of the model's code, followed by the user's frames if any."""
    line = f"{what}: {e.__class__.__name__}: {e}"
    if isinstance(e, SystemExit):
        line = f"{what}: SystemExit({e.code!r}) (a model must not exit the process)"
    if isinstance(e, AVCLError) or not is_user_exception(e):
        return line
    return UserCodeError(line, e).render()


def validate_model(spec: str, model_args: dict[str, Any], datasets: list[str] | None, data_root: str | None,
                   fit: bool = True) -> tuple[list[str], dict[str, list[str]]]:
    """Problems found (one line each) and, per dataset, the tasks the model supports."""
    factory, info = load_model_spec(spec)
    problems: list[str] = []
    supported: dict[str, list[str]] = {}
    names = datasets or list(getattr(factory, "datasets", ["avsynth"]))
    for ds_name in names:
        DATASETS.get(ds_name)
        opts = VALIDATE_OPTIONS if ds_name == "avsynth" else {}
        ds = load_dataset(ds_name, data_root=data_root, options=opts, quick=True)
        where = f"{info['name']} on {ds_name}"
        seed_everything(0)
        check_model_args(info["name"], factory, ds.spec, model_args)
        try:
            model = factory(ds.spec, **model_args)
        except (Exception, SystemExit) as e:  # the user's constructor failed
            problems.append(_user_problem(f"{where}: constructor failed", e))
            continue
        for m in missing_methods(model):
            problems.append(f"{where}: missing method {m}() required by the interface/capabilities")
        dim = getattr(model, "dim", None)
        if not isinstance(dim, int) or dim <= 0:
            problems.append(f"{where}: attribute dim must be a positive int, got {dim!r}")
        if problems:
            continue
        try:
            if fit and getattr(model, "trainable", True):
                model.fit(ds.split("train"), ds.split("val"), FitContext(seed=0, quick=True, progress=False))
        except (Exception, SystemExit) as e:
            problems.append(_user_problem(f"{where}: fit() failed", e))
            continue
        test = ds.split("test")
        problems += _check_embeddings(model, test, ds.spec.segments, dim, where)
        tasks = []
        for tname in TASKS:
            if tname in DATASETS.meta(ds_name)["tasks"] and TASKS.get(tname).supports(model, ds.spec, test) is None:
                tasks.append(tname)
        supported[ds_name] = tasks
    return problems, supported


def _check_output(out: Any, name: str, shape: tuple[int, ...] | None, dim: int, batch: int,
                  where: str) -> str | None:
    """The problem of one batch's output of embedding method ``name`` (``shape`` ``None``: a spatial
    map ``(B, D, h, w)``), or ``None``."""
    import torch

    if not isinstance(out, torch.Tensor):
        return f"{where}: {name}() must return a torch.Tensor, got {type(out).__name__}"
    if not out.is_floating_point():
        return f"{where}: {name}() must return floats, got {out.dtype}"
    if shape is not None and tuple(out.shape) != shape:
        return f"{where}: {name}() returned shape {tuple(out.shape)}, expected {shape}"
    if shape is None and (out.ndim != 4 or tuple(out.shape[:2]) != (batch, dim)):
        return f"{where}: {name}() returned shape {tuple(out.shape)}, expected (B, {dim}, h, w)"
    if not torch.isfinite(out).all():
        return f"{where}: {name}() returned NaN or inf on a batch of {len(out)}"
    if not bool(out.any()):
        return f"{where}: {name}() returned all-zero embeddings on a batch of {len(out)}"
    if len(out) > 1 and torch.equal(out, out[:1].expand_as(out)):
        return f"{where}: {name}() returned the same embedding for all {len(out)} items of a batch (constant)"
    return None


def _check_embeddings(model: Any, test: Any, segments: int, dim: int, where: str) -> list[str]:
    """Every embedding method on :data:`VALIDATE_BATCHES` batches of the tasks' batch size: type,
    dtype, shape, NaN/inf, all-zero or constant outputs, and determinism (the first batch twice)."""
    import torch

    methods: list[tuple[str, str, Any]] = [("embed_audio", "audio", lambda b: (b, dim)),
                                           ("embed_visual", "visual", lambda b: (b, dim))]
    caps = set(getattr(model, "capabilities", ()))
    if "segments" in caps:
        methods += [("embed_audio_segments", "audio", lambda b: (b, segments, dim)),
                    ("embed_visual_segments", "visual", lambda b: (b, segments, dim))]
    if "spatial" in caps:
        methods.append(("embed_visual_spatial", "visual", lambda b: None))
    batches = [idx for k, idx in enumerate(test.batches(EMBED_BATCH_SIZE)) if k < VALIDATE_BATCHES]
    inputs = {"audio": [audio_batch(test, idx) for idx in batches], "visual": [visual_batch(test, idx) for idx in batches]}
    problems: list[str] = []
    for name, kind, shape in methods:
        method = getattr(model, name)
        for k, x in enumerate(inputs[kind]):
            try:
                out = method(x)
                again = method(x) if k == 0 else None
            except (Exception, SystemExit) as e:
                problems.append(_user_problem(f"{where}: {name}() failed on a batch of {len(x)}", e))
                break
            problem = _check_output(out, name, shape(len(x)), dim, len(x), where)
            if problem is None and again is not None and not (isinstance(again, torch.Tensor) and torch.equal(out, again)):
                problem = f"{where}: {name}() is not deterministic (two calls on the same batch differ)"
            if problem is not None:
                problems.append(problem)
                break
    return problems


def cmd_validate(args: argparse.Namespace) -> int:
    problems, supported = validate_model(args.spec, parse_kv(args.model_args, "--model-args"),
                                         parse_csv(args.dataset) or None, args.data_root, fit=not args.no_fit)
    for p in problems:
        _print_err(p)
    if problems:  # nothing on stdout: what it supports is only known once it is valid
        return 1
    for ds, tasks in supported.items():
        print(f"{ds}: supports {', '.join(tasks) if tasks else 'no task'}")
    print("model OK")
    return 0


# ------------------------------------------------------------------------------ export
#: the split whose predictions a submission returns (exported without its answers)
PREDICT_SPLIT = "test"
#: the splits a model trains and early-stops on (exported with the labels the suite's heads use)
TRAIN_SPLITS = ("train", "val")
#: fields of a training split every task's heads may use, besides the inputs
_TRAIN_FIELDS = ("labels",)


def _task_fields(task: Any) -> tuple[str, ...]:
    """The split fields a task trains or scores on: those it needs and those it reads where present."""
    return (*task.metadata.needs, *task.metadata.reads)


def _split_arrays(data: Any, fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``audio``, ``visual``, ``ids`` and those of ``fields`` the split has, as plain arrays."""
    arrays = {"audio": np.asarray(data.audio), "visual": np.asarray(data.visual)}
    for f in fields:
        if data.has(f):
            arrays[f] = np.asarray(getattr(data, f))
    if data.ids is not None:
        arrays["ids"] = np.asarray([str(i) for i in data.ids])
    return arrays


def export_dataset(dataset: Any, split: str, out: Path) -> dict[str, Any]:
    """Write the splits a model outside Python needs and a ``manifest.json`` of what each task reads.

    ``split="all"`` (the default of ``export``) writes ``train.npz`` and ``val.npz`` (inputs, ``ids``
    and every label the suite's heads train on: ``labels`` and the fields the tasks need, such
    as ``segment_labels``, ``sources``, ``frames``) and the test inputs ``inputs.npz`` (``audio``,
    ``visual``, ``ids``: never the test labels) plus each task's own test inputs
    (``<task>_inputs.npz``). ``split`` = ``train``/``val``/``test`` writes only that split.
    The manifest lists every file's arrays and shapes and, per task, the files and keys it trains
    on, the file it predicts from and the ``<task>.npz`` a submission returns.
    """
    if split not in ("all", *TRAIN_SPLITS, PREDICT_SPLIT):
        raise ConfigError(f"--split: expected all, train, val or test, got {split!r}")
    out.mkdir(parents=True, exist_ok=True)
    tasks = [TASKS.get(t) for t in TASKS if t in DATASETS.meta(dataset.spec.name)["tasks"]
             and TASKS.get(t).supports(None, dataset.spec, dataset.split(PREDICT_SPLIT)) is None]
    fields = tuple(dict.fromkeys((*_TRAIN_FIELDS, *(f for t in tasks for f in _task_fields(t)))))
    manifest: dict[str, Any] = {"dataset": dataset.spec.name, "fingerprint": dataset.fingerprint(),
                                "identity": dataset_identity(dataset), "num_classes": dataset.spec.num_classes,
                                "class_names": list(dataset.spec.class_names), "files": {}, "tasks": {},
                                "expected_predictions": {}}

    def write(name: str, arrays: dict[str, np.ndarray], what: str) -> None:
        np.savez_compressed(out / name, **arrays)
        manifest["files"][name] = {"what": what, "arrays": {k: [list(np.shape(v)), str(np.asarray(v).dtype)]
                                                            for k, v in arrays.items()}}

    exported = {}
    for s in TRAIN_SPLITS:
        if split in ("all", s):
            try:
                data = dataset.split(s)
            except ConfigError:  # a dataset without this split
                continue
            write(f"{s}.npz", _split_arrays(data, fields), f"the {s} split: inputs, ids and the labels to train on")
            exported[s] = manifest["files"][f"{s}.npz"]["arrays"]
    if split in ("all", PREDICT_SPLIT):
        write("inputs.npz", _split_arrays(dataset.split(PREDICT_SPLIT), ()),
              "the test split's inputs and ids, in the order predictions follow (no labels)")
    for task in tasks:
        entry: dict[str, Any] = {"train_on": {f"{s}.npz": [k for k in ("audio", "visual", *_TRAIN_FIELDS,
                                                                       *_task_fields(task)) if k in arrays]
                                              for s, arrays in exported.items()}}
        if split in ("all", PREDICT_SPLIT):
            extra = getattr(task, "export_inputs", None)
            predict_from = "inputs.npz"
            if callable(extra):
                predict_from = f"{task.name}_inputs.npz"
                write(predict_from, extra(dataset), f"the test inputs of {task.name}")
            entry["predict_from"] = {predict_from: list(manifest["files"][predict_from]["arrays"])}
            entry["submit"] = {f"{task.name}.npz": task.metadata.pred_format}
            manifest["expected_predictions"][f"{task.name}.npz"] = {"keys": task.metadata.pred_format,
                                                                   "scored_against": task.metadata.ref_format}
        manifest["tasks"][task.name] = entry
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def cmd_export(args: argparse.Namespace) -> int:
    check_writable_folder(args.out, "export folder")  # before the dataset is built
    options: dict[str, Any] = {}
    for item in args.option:
        options.update(parse_kv(item, "--option"))
    ds = load_dataset(args.dataset, data_root=args.data_root, options={k: str(v) for k, v in options.items()},
                      quick=args.quick)
    manifest = export_dataset(ds, args.split, args.out)
    print(f"wrote {', '.join(manifest['files'])} and manifest.json to {args.out}"
          + (f"; expected prediction files: {', '.join(manifest['expected_predictions'])}"
             if manifest["expected_predictions"] else ""))
    return 0


# ------------------------------------------------------------------------------ submit
def guard_submission(out: Path, name: str, identity: Any, *, replace: bool) -> list[Path]:
    """Check that submission ``name`` may write into ``out``; the records ``--replace`` removes.

    A name holding a built-in's or a non-submitted model's results is never taken. A name
    holding an earlier submission of another identity (other code, other prediction files)
    is refused unless ``replace``: then that earlier submission's records are returned, to
    be removed when the new one is committed. The same identity resumes (its finished records
    are reused) and, with ``replace``, is replaced as well.
    """
    store = ResultStore(out)
    check_submission_name(name)
    old = store.records_of(name)
    for rec in old:
        if not rec.get("submission"):
            kind = "the built-in model" if not rec.model_info.model_dump().get("external") else "a model run with run"
            raise ConfigError(f"'{name}' already has results in {out} from {kind} ({rec.source}), which is not a "
                              "submission; --replace only replaces an earlier submission under its name: choose "
                              "another --name or --out")
    if replace:
        return [Path(rec.source) for rec in old]
    for rec in old:
        other = (rec.get("submission") or {}).get("source_hash")
        if other != identity:
            raise ConfigError(f"'{name}' already has results in {out} from another submission (source hash "
                              f"{other}); pass --replace to replace that earlier submission of yours, or choose "
                              "another --name")
    guard_model_name(store, name, kind="submission", identity=identity)
    return []


def _seed_staging(staging: Staging, out: Path, name: str, identity: Any) -> None:
    """Copy ``name``'s finished records of this same identity into the staging folder, so the run
    reuses them (a resumed submission recomputes only what is missing)."""
    for rec in ResultStore(out).records_of(name):
        if (rec.get("submission") or {}).get("source_hash") == identity and rec.source:
            src = Path(rec.source)
            dst = staging.root / src.relative_to(out)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def prediction_digest(files: list[Path]) -> str:
    """Identity of a prediction submission: a hash of its files' names and bytes."""
    h = hashlib.sha256()
    for p in files:
        for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
            if f.is_file():
                h.update(str(f.relative_to(p.parent)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def score_predictions(pred_dir: Path, name: str, dataset: Any, out: Path, split: str = "test", *,
                      replace: bool = False) -> list[ResultRecord]:
    """Score every ``<task>.npz`` (or task folder) of ``pred_dir`` and commit all records together.

    Every file is validated and scored before any record is written; the records then go into a
    staging folder and are moved into ``out`` at once (:mod:`benchmark.staging`), so a bad file,
    a failed write or a kill leaves ``out`` as it was.
    """
    files = sorted(p for p in pred_dir.iterdir() if (p.suffix == ".npz" and p.is_file() and p.stem in TASKS)
                   or (p.is_dir() and p.name in TASKS and callable(getattr(TASKS.get(p.name), "load_submission",
                                                                            None))))
    if not files:
        raise InputError(pred_dir, None, f"no <task>.npz prediction file (tasks: {', '.join(TASKS)})")
    tasks = [p.stem if p.suffix == ".npz" else p.name for p in files]
    dupes = sorted({t for t in tasks if tasks.count(t) > 1})
    if dupes:
        raise InputError(pred_dir, dupes[0], f"both {dupes[0]}.npz and a folder {dupes[0]}/: submit one of them")
    digest = prediction_digest(files)
    store = ResultStore(out)
    store.check_writable()
    recover(out)
    replaced = guard_submission(out, name, digest, replace=replace)
    identity = dataset_identity(dataset)
    records = []
    for f, tname in zip(files, tasks):
        task = TASKS.get(tname)
        t0 = time.perf_counter()
        load = getattr(task, "load_submission", None)
        if callable(load):  # the task computes what it scores itself (generation: features of images)
            pred, ref = load(f, dataset, split), task.submission_reference(dataset, split)
        else:
            pred, ref = load_npz(f), task.export_reference(dataset, split)
        metrics = task.score(pred, ref, pred_source=str(f), ref_source=f"{dataset.spec.name} {split} reference")
        submission = {"name": name, "source_hash": digest, "kind": "predictions", "files": [p.name for p in files],
                      "suite_version": __version__}
        config = {"model": {"name": name, "source_hash": digest}, "task": {"name": task.name, "version": task.version},
                  "dataset": {"name": dataset.spec.name, "fingerprint": dataset.fingerprint(), "split": split,
                              "identity": identity},
                  "seed": 0}
        rec = ResultRecord(model=name, task=task.name, dataset=dataset.spec.name, seed=0, metrics=metrics,
                           config=config, provenance=provenance("external", time.perf_counter() - t0),
                           key=config_key(config), protocol="submitted predictions", task_meta=task.metadata,
                           model_info={"name": name, "encoder": [], "objective": [], "learning": "unknown",
                                       "papers": [], "reference": False, "external": True},
                           submission=submission)
        records.append(rec)
    with Staging(out) as staging:  # written once every file scored: a bad file writes nothing
        staged = ResultStore(staging.root)
        for rec in records:
            staged.put(rec)
        commit(staging, remove=replaced)
    return records


def submit_model(args: argparse.Namespace, options: dict[str, str]) -> list[ResultRecord]:
    """``submit --model``: validate, run every supported task for every seed into a staging folder,
    and commit the records only when all of them succeeded."""
    _, info = load_model_spec(args.model, name=args.name)
    recover(args.out)
    replaced = guard_submission(args.out, args.name, info["source_hash"], replace=args.replace)
    problems, supported = validate_model(args.model, parse_kv(args.model_args, "--model-args"), [args.dataset],
                                         args.data_root, fit=True)
    if problems:
        raise ConfigError(f"model fails validation: {problems[0]} (run validate-model for all problems)")
    if not supported.get(args.dataset):
        raise ConfigError(f"model supports no task on dataset '{args.dataset}'")
    with Staging(args.out) as staging:
        _seed_staging(staging, args.out, args.name, info["source_hash"])
        cfg = RunConfig(models=[f"{args.model}"], tasks=supported.get(args.dataset, []), dataset=args.dataset,
                        data_root=args.data_root, dataset_options=options, seeds=parse_seeds(args.seeds),
                        out=staging.root, quick=args.quick, device=args.device,
                        model_args=parse_kv(args.model_args, "--model-args"), progress=not args.no_progress,
                        submission={"name": args.name, "source_hash": info["source_hash"], "kind": "python",
                                    "spec": args.model},
                        model_name=args.name, threads=args.threads, precision=args.precision,
                        cell_timeout=args.cell_timeout)
        try:
            records = run(cfg)
        except BaseException:
            staging.keep_logs()
            raise
        commit(staging, remove=replaced)
    return records


def cmd_submit(args: argparse.Namespace) -> int:

    if (args.model is None) == (args.pred is None):
        raise ConfigError("submit needs exactly one of --model SPEC or --pred DIR")
    options: dict[str, Any] = {}
    for item in args.option:
        options.update(parse_kv(item, "--option"))
    options = {k: str(v) for k, v in options.items()}
    # before any compute: a valid name that is no built-in's, a writable --out
    check_submission_name(args.name)
    ResultStore(args.out).check_writable()
    if args.pred is not None:
        if not args.pred.is_dir():
            raise InputError(args.pred, None, "prediction folder not found")
        ds = load_dataset(args.dataset, data_root=args.data_root, options=options, quick=args.quick)
        records = score_predictions(args.pred, args.name, ds, args.out, replace=args.replace)
    else:
        records = submit_model(args, options)
    print(console_table(records, load_table1_long()))
    print(f"\nleaderboard folder: {args.out}")
    return 0


# ------------------------------------------------------------------------------ parsers
def add_validate_parser(sub: Any) -> None:
    p = sub.add_parser("validate-model", help="check a model against the interface on a tiny batch")
    p.add_argument("spec", help="path/to/file.py:ClassName or package.module:ClassName")
    p.add_argument("--dataset", help="comma-separated datasets (default: the model's `datasets` attribute or avsynth)")
    p.add_argument("--data-root", dest="data_root")
    p.add_argument("--model-args", dest="model_args")
    p.add_argument("--no-fit", action="store_true", help="skip the short fit() check")
    p.set_defaults(func=cmd_validate)


def add_submit_parser(sub: Any) -> None:
    p = sub.add_parser("submit", help="run every task a model supports, or score a folder of predictions")
    p.add_argument("--model", help="model spec (file.py:Class or package.module:Class)")
    p.add_argument("--pred", type=Path, help="folder of <task>.npz predictions (see `export`)")
    p.add_argument("--name", required=True,
                   help="name of the results (1-64 characters: letters, digits and . _ @ -, starting with a "
                        "letter or digit); never a built-in model's name or another submission's in the same --out")
    p.add_argument("--dataset", default="avsynth")
    p.add_argument("--data-root", dest="data_root")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--seeds", default="0")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--model-args", dest="model_args")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--replace", action="store_true",
                   help="replace your earlier submission under --name (its records are removed when the new one "
                        "is complete); never replaces a built-in's or a non-submitted model's results")
    add_runtime_options(p)
    p.set_defaults(func=cmd_submit)


def add_export_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="write a dataset split's inputs for models that run outside Python")
    p.add_argument("--dataset", default="avsynth")
    p.add_argument("--data-root", dest="data_root")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--split", default="all", choices=["all", "train", "val", "test"],
                   help="all (default): train.npz and val.npz with the labels the heads train on, the test inputs "
                        "(inputs.npz, no labels) and each task's test inputs; or one split only")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--quick", action="store_true")
    p.set_defaults(func=cmd_export)
