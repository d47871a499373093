"""Several configs of one model in a results folder: one row per config, with a legend.

A model's *config* is what its record's ``config`` says about how the model was built and
evaluated, apart from the seed and the task: the model arguments and code hash, the dataset
(name, fingerprint, options, quick or full) and the task options. Two runs of ``random``
with different ``--model-args`` into one folder give two configs; reporting shows each as
its own row, labelled ``random@<short id>`` (just ``random`` when the model has one config),
and a legend lists, per id, the settings that differ between that model's configs. Configs
are told apart per dataset: a model scored on two datasets is one model in two tables.
``latest=True`` keeps only the newest config of each model (by ``provenance.created_at``).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..schema import ResultRecord

__all__ = ["ConfigLegend", "config_id", "config_settings", "flatten", "resolve_configs"]

#: length of the short config id shown after ``model@``
SHORT_ID = 8
#: record config keys that are not part of a model's config (per seed / per task / derived)
_NOT_CONFIG = ("seed", "task", "model_config", "task_config", "device")


def config_settings(record: ResultRecord) -> dict[str, Any]:
    """The record's config minus seed and task parts (the task options are kept)."""
    cfg = record.config
    out: dict[str, Any] = {k: v for k, v in cfg.items() if k not in _NOT_CONFIG}
    model = out.get("model")
    if isinstance(model, Mapping):
        out["model"] = {k: v for k, v in model.items() if k != "name"}
    task = cfg.get("task")
    if isinstance(task, Mapping) and task.get("options"):
        out["task_options"] = task["options"]
    return out


def config_id(record: ResultRecord) -> str:
    """Short hex id of :func:`config_settings` (equal for every task and seed of one run)."""
    blob = json.dumps(config_settings(record), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:SHORT_ID]


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as ``{"dataset.options.n_test": "20", ...}`` (values as compact JSON)."""
    out: dict[str, str] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = json.dumps(value, sort_keys=True, default=str)
    return out


@dataclass
class ConfigLegend:
    """What the ``model@id`` labels of a report mean: label -> the settings that differ."""

    entries: dict[str, dict[str, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def lines(self) -> list[str]:
        """One line per label: ``random@1a2b3c4d: dataset.quick=true, model.args.dim=32``."""
        return [f"{label}: " + (", ".join(f"{k}={v}" for k, v in diff.items()) or "(no difference)")
                for label, diff in self.entries.items()]

    def text(self) -> str:
        """One paragraph (empty when every model has a single config)."""
        if not self.entries:
            return ""
        return ("Configs (a model run with several settings has one row per config, model@id; the settings "
                "that differ): " + "; ".join(self.lines()) + ".")


def _created_at(records: Iterable[ResultRecord]) -> str:
    return max(str(r.provenance.get("created_at", "")) for r in records)


def resolve_configs(records: Iterable[ResultRecord], *, latest: bool = False) -> tuple[list[ResultRecord], ConfigLegend]:
    """Label each record's model by its config; returns the relabelled records and the legend.

    A model with one config on a dataset keeps its name; with several each record becomes
    ``model@<config id>``. ``latest`` keeps only the config with the newest
    ``provenance.created_at`` of each model (then every model has one config).
    """
    by_model: dict[tuple[str, str], dict[str, list[ResultRecord]]] = {}
    for rec in records:
        by_model.setdefault((rec.model, rec.dataset), {}).setdefault(config_id(rec), []).append(rec)
    out: list[ResultRecord] = []
    legend = ConfigLegend()
    for (model, _), configs in by_model.items():
        if latest and len(configs) > 1:
            newest = max(configs, key=lambda cid: (_created_at(configs[cid]), cid))
            configs = {newest: configs[newest]}
        if len(configs) == 1:
            out += next(iter(configs.values()))
            continue
        flat = {cid: flatten(config_settings(recs[0])) for cid, recs in configs.items()}
        keys = sorted(set().union(*flat.values()))
        differ = [k for k in keys if len({f.get(k, "(unset)") for f in flat.values()}) > 1]
        for cid in sorted(configs, key=lambda c: (_created_at(configs[c]), c)):
            label = f"{model}@{cid}"
            legend.entries[label] = {k: flat[cid].get(k, "(unset)") for k in differ}
            out += [r.model_copy(update={"model": label}) for r in configs[cid]]
    return out, legend
