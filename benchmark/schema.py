"""The one typed schema of avcl-bench: task metadata and result records (pydantic v2).

Every writer (the runner, ``submit --pred``) builds a :class:`ResultRecord` and every reader
(:class:`~benchmark.store.ResultStore`, the reporting loader) goes through
:func:`read_record`, so a record the current writer produces is always readable and a
record of another shape is refused with one line naming the file and the field
(``"path: field: problem"``, an :class:`~benchmark.errors.InputError`).

:class:`TaskMetadata` is the one description of a task family: its metrics (direction,
unit, description), the main score, the headline metrics shown in tables, the protocol
text and the ``score`` npz formats. Each task adapter declares one (``Task.metadata``); the
runner copies it into every record (``task_meta``) so that reporting reads it from the
records and never imports the tasks. Modelled on MTEB's ``TaskMetadata`` / ``TaskResult``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .errors import InputError

__all__ = [
    "SCHEMA_VERSION",
    "TASK_FAMILIES",
    "UNITS",
    "ComputeStats",
    "MetricMeta",
    "ModelInfo",
    "ResultRecord",
    "TaskMetadata",
    "is_record_like",
    "item_statistic",
    "iter_record_files",
    "read_record",
    "read_records",
    "record_from_json",
]

#: the suite's task families, in the order runs execute and reports show them (the one copy)
TASK_FAMILIES: tuple[str, ...] = (
    "retrieval", "classification", "separation", "localization", "event_localization", "generation", "robustness",
)

#: version of the record layout; bump when a field changes meaning or shape
SCHEMA_VERSION = 2

#: units a metric can be reported in (``score``: a unitless score such as a distance)
UNITS: tuple[str, ...] = ("fraction", "dB", "rank", "count", "score")


def _number(value: object) -> object:
    """Refuse strings and booleans where a number is wanted (pydantic would coerce them)."""
    if isinstance(value, (str, bool)) or value is None:
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, (np.integer, np.floating)):
        return float(value)
    return value


#: a finite float (NaN and infinities are refused at construction)
FiniteFloat = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class MetricMeta(_Model):
    """One metric: its name, direction, unit and meaning (optional value bounds)."""

    name: NonEmptyStr
    higher_is_better: Annotated[bool, Field(strict=True)]
    unit: Literal["fraction", "dB", "rank", "count", "score"]
    description: str = ""
    lower: float | None = None
    upper: float | None = None

    def __init__(self, name: str | None = None, higher_is_better: bool | None = None, description: str = "",
                 **data: Any) -> None:
        """``MetricMeta("mAP", True, "mean AP", unit="fraction")`` (positional name, direction, description)."""
        if name is not None:
            data["name"] = name
        if higher_is_better is not None:
            data["higher_is_better"] = higher_is_better
        data.setdefault("description", description)
        super().__init__(**data)


class TaskMetadata(_Model):
    """Everything the suite says about a task family, declared once by its adapter."""

    name: NonEmptyStr
    #: the metric a task is ranked by (first column of its tables)
    main_score: NonEmptyStr
    #: metrics shown by default in tables, main score first
    headline: tuple[str, ...]
    metrics: dict[str, MetricMeta]
    #: the evaluation protocol in prose
    protocol: str
    #: the ``score`` command's PRED / REF npz formats
    pred_format: str = ""
    ref_format: str = ""
    #: split fields the task reads (e.g. ``masks``)
    needs: tuple[str, ...] = ()
    #: split fields the task reads where the dataset has them (e.g. generation's ``gen_frames``)
    reads: tuple[str, ...] = ()
    #: names of the reference rows the task produces (oracle, lower bound)
    reference_names: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> TaskMetadata:
        for key, meta in self.metrics.items():
            if key != meta.name:
                raise ValueError(f"metrics.{key}: name is {meta.name!r}")
        if self.main_score not in self.metrics:
            raise ValueError(f"main_score {self.main_score!r} is not one of the metrics")
        if not self.headline or self.headline[0] != self.main_score:
            raise ValueError("headline must start with the main score")
        unknown = [m for m in self.headline if m not in self.metrics]
        if unknown:
            raise ValueError(f"headline metric {unknown[0]!r} is not one of the metrics")
        return self

    def higher_is_better(self) -> dict[str, bool]:
        """Metric name -> direction."""
        return {k: m.higher_is_better for k, m in self.metrics.items()}


def _name_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


NameList = Annotated[tuple[NonEmptyStr, ...], BeforeValidator(_name_list)]


class ModelInfo(BaseModel):
    """Descriptors of the model a record scores (other keys, e.g. ``papers``, are kept)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    encoder: NameList
    objective: NameList
    learning: str
    reference: Annotated[bool, Field(strict=True)]


def item_statistic(items: list[float] | tuple[float, ...], value: float) -> str | None:
    """Which statistic (``"mean"`` or ``"median"``) of ``items`` reproduces ``value`` (else ``None``)."""
    arr = np.asarray(items, dtype=np.float64)
    for name, fn in (("mean", np.mean), ("median", np.median)):
        if math.isclose(float(fn(arr)), value, rel_tol=1e-6, abs_tol=1e-9):
            return name
    return None


class ComputeStats(_Model):
    """What a trained model cost, measured on the device it ran on (MultiBench's complexity, MTEB's size).

    Measurements, not inputs: they are not part of any key and vary between machines and runs.
    ``None`` means not measurable (e.g. the parameter count of a model that is not a torch
    module, or the training time of a checkpoint written before these fields existed).
    """

    #: parameters of the model's ``torch.nn.Module`` (all of them, trainable or not)
    parameters: Annotated[int, Field(ge=0)] | None = None
    #: wall time of ``fit`` (0 for a model that is not trained); from the checkpoint when it was loaded
    train_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    #: peak memory of ``fit`` in MiB: ``torch.cuda.max_memory_allocated`` on CUDA, the growth of the
    #: process's resident set on the CPU (sampled every 10 ms), see ``memory_measure``
    peak_memory_mb: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    memory_measure: str | None = None
    #: test items (audio and visual clip each) embedded per second, measured once per cell
    embed_items_per_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    device: str = ""


class ResultRecord(_Model):
    """One JSON record per (model, task, dataset, seed, config): what was scored and how."""

    schema_version: Literal[2] = SCHEMA_VERSION
    model: NonEmptyStr
    task: NonEmptyStr
    dataset: NonEmptyStr
    seed: Annotated[int, Field(strict=True)]
    metrics: Annotated[dict[str, FiniteFloat], Field(min_length=1)]
    config: dict[str, Any]
    provenance: dict[str, Any]
    #: hash of the config (the store's file name carries its first 16 characters)
    key: NonEmptyStr
    protocol: str
    task_meta: TaskMetadata
    model_info: ModelInfo
    item_metrics: dict[str, Annotated[list[FiniteFloat], Field(min_length=1)]] = Field(default_factory=dict)
    submission: dict[str, Any] | None = None
    #: the trained model's cost (parameters, training time, peak memory, embedding throughput)
    compute: ComputeStats | None = None

    _source: str = PrivateAttr(default="")

    @model_validator(mode="after")
    def _consistent(self) -> ResultRecord:
        if self.task_meta.name != self.task:
            raise ValueError(f"task_meta.name {self.task_meta.name!r} is not the record's task {self.task!r}")
        for name in self.metrics:
            if name not in self.task_meta.metrics:
                raise ValueError(f"metrics.{name}: not a metric of task {self.task!r} (task_meta.metrics)")
        for name, values in self.item_metrics.items():
            if name not in self.metrics:
                raise ValueError(f"item_metrics.{name}: has no matching entry in metrics")
            if item_statistic(values, self.metrics[name]) is None:
                raise ValueError(f"item_metrics.{name}: neither the mean nor the median of the items equals "
                                 f"metrics.{name}={self.metrics[name]!r}")
        return self

    @property
    def higher_is_better(self) -> dict[str, bool]:
        """Direction of each of the record's metrics (from ``task_meta``)."""
        return {m: self.task_meta.metrics[m].higher_is_better for m in self.metrics}

    @property
    def source(self) -> str:
        """The file the record was read from (empty for an in-memory record)."""
        return self._source

    def with_source(self, source: str | Path) -> ResultRecord:
        self._source = str(source)
        return self

    def __getitem__(self, key: str) -> Any:
        """Read access by JSON field name (``rec["metrics"]``), as for the parsed JSON object."""
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """``rec[key]`` or ``default`` when the field is unknown or ``None``."""
        value = getattr(self, key, None) if key in type(self).model_fields else None
        return default if value is None else value

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to the store (``submission`` left out when absent)."""
        d = self.model_dump(mode="json")
        if d["submission"] is None:
            del d["submission"]
        return d


# ----------------------------------------------------------------------------- reading


def _first_error(err: ValidationError) -> tuple[str | None, str]:
    """``(field, problem)`` of the first problem pydantic found."""
    e = err.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in e["loc"]) or None
    msg = str(e["msg"])
    if e["type"] == "missing":
        msg = "missing key"
    elif e["type"] == "extra_forbidden":
        msg = "unknown key"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
        # a model-level check names its own field: "metrics.x: problem"
        head, sep, rest = msg.partition(": ")
        if sep and " " not in head:
            loc = ".".join(p for p in (loc, head) if p)
            msg = rest
    elif e["type"] == "literal_error" and e["loc"] == ("schema_version",):
        msg = f"unsupported schema version {e.get('input')!r} (this suite reads version {SCHEMA_VERSION})"
    return loc, msg


def record_from_json(obj: object, source: str | Path = "record") -> ResultRecord:
    """Validate a parsed JSON object as a record; :class:`InputError` names ``source`` and the field."""
    if isinstance(obj, ResultRecord):
        return obj
    if not isinstance(obj, dict):
        raise InputError(source, None, f"expected a JSON object, got {type(obj).__name__}")
    if "schema_version" not in obj:
        raise InputError(source, "schema_version", f"missing key (not a version-{SCHEMA_VERSION} result record; "
                         "re-run to rewrite it)")
    try:
        rec = ResultRecord.model_validate(obj)
    except ValidationError as e:
        field, problem = _first_error(e)
        raise InputError(source, field, problem) from None
    return rec.with_source(source)


def _read_json(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, None, f"cannot read ({e.__class__.__name__}: {e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(path, None, f"broken JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def read_record(path: str | Path) -> ResultRecord:
    """Read and validate one record file (:class:`InputError` ``"path: field: problem"`` when bad)."""
    p = Path(path)
    return record_from_json(_read_json(p), p)


# A JSON object is taken for a record when it has "metrics", or both "model" and "task";
# any other JSON file (a manifest, a config dump) under a results folder is ignored.
def is_record_like(obj: object) -> bool:
    """Whether a parsed JSON value claims to be a result record."""
    return isinstance(obj, dict) and ("metrics" in obj or ("model" in obj and "task" in obj))


def iter_record_files(root: str | Path) -> Iterator[tuple[Path, object]]:
    """``(path, parsed JSON)`` of every record-like JSON file under ``root``, in path order."""
    for p in sorted(Path(root).rglob("*.json")):
        if p.is_file():
            obj = _read_json(p)
            if is_record_like(obj):
                yield p, obj


def read_records(root: str | Path) -> list[ResultRecord]:
    """Every record under ``root`` (recursively), validated; other JSON files are skipped.

    The folder must exist; a record-like file that fails validation raises
    :class:`InputError` naming the file and the field. Sorted by path.
    """
    base = Path(root)
    if not base.exists():
        raise InputError(base, None, "results folder not found")
    if not base.is_dir():
        raise InputError(base, None, "not a folder")
    return [record_from_json(obj, p) for p, obj in iter_record_files(base)]
