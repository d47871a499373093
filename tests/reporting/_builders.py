"""Hand-written result records for the reporting tests (numbers chosen to be checked by hand)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from avcl_bench.benchmark.surveyed import resolve_dataset_id

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SURVEYED_CSV = FIXTURES / "table1_long.csv"

# model -> (encoder, objective, learning, reference)
MODELS = {
    "infonce": (["mlp"], ["infonce"], "semi-supervised", False),
    "triplet": (["mlp"], ["triplet"], "semi-supervised", False),
    "cca": (["linear"], ["dcca"], "unsupervised", False),
    "random": (["none"], ["none"], "none", True),
    "single_seed": (["linear"], ["infonce"], "semi-supervised", False),
}

# (task, dataset) -> model -> metric -> per-seed values
SEED_VALUES: dict[tuple[str, str], dict[str, dict[str, list[float]]]] = {
    ("retrieval", "avsynth"): {
        "infonce": {"mAP": [0.60, 0.62, 0.64], "MedR_a2v": [3.0, 2.0, 1.0]},
        "triplet": {"mAP": [0.50, 0.51, 0.52], "MedR_a2v": [4.0, 4.0, 4.0]},
        "cca": {"mAP": [0.47, 0.50, 0.50], "MedR_a2v": [5.0, 6.0, 7.0]},
        "random": {"mAP": [0.10, 0.10, 0.10], "MedR_a2v": [50.0, 50.0, 50.0]},
        "single_seed": {"mAP": [0.30]},
    },
    ("classification", "esc50"): {
        "infonce": {"ACC": [0.80, 0.82, 0.84], "macro_F1": [0.70, 0.72, 0.74]},
        "triplet": {"ACC": [0.70, 0.71, 0.72], "macro_F1": [0.65, 0.66, 0.67]},
    },
}
SINGLE_ITEMS = [0.1, 0.2, 0.3, 0.4, 0.5]  # mean 0.3 == single's mAP
HIGHER = {"mAP": True, "MedR_a2v": False, "ACC": True, "macro_F1": True}
UNITS = {"mAP": "fraction", "MedR_a2v": "rank", "ACC": "fraction", "macro_F1": "fraction"}
#: task -> (main score, headline) of the hand-written task metadata
TASK_HEADLINE = {"retrieval": ("mAP", ["mAP"]), "classification": ("ACC", ["ACC", "macro_F1"])}
TASK_METRICS = {"retrieval": ["mAP", "MedR_a2v"], "classification": ["ACC", "macro_F1"]}


def task_meta(task: str) -> dict[str, Any]:
    """The ``task_meta`` object of a record (what ``TaskMetadata.model_dump`` writes)."""
    main, headline = TASK_HEADLINE[task]
    return {
        "name": task, "main_score": main, "headline": headline,
        "metrics": {m: {"name": m, "higher_is_better": HIGHER[m], "unit": UNITS[m], "description": ""}
                    for m in TASK_METRICS[task]},
        "protocol": "frozen-embedding cosine", "pred_format": "", "ref_format": "", "needs": [],
        "reference_names": [],
    }


def verified_dataset(dataset: str) -> dict[str, Any]:
    """``config.dataset`` of data verified as the surveyed dataset of its name (the verdict of
    ``benchmark.datasets.manifests``), so the surveyed rows of that dataset are direct comparisons."""
    return {"name": dataset, "identity": {"dataset_id": resolve_dataset_id(dataset), "verified": True,
                                          "reason": "test fixture"}}


def make_record(model: str, task: str, dataset: str, seed: int, metrics: dict[str, float]) -> dict[str, Any]:
    """One result record with every key of the record contract."""
    encoder, objective, learning, reference = MODELS[model]
    rec: dict[str, Any] = {
        "model": model,
        "task": task,
        "dataset": dataset,
        "seed": seed,
        "metrics": metrics,
        "schema_version": 2,
        "config": {"model": model, "task": task, "seed": seed, "epochs": 2,
                   "dataset": verified_dataset(dataset)},
        "provenance": {
            "suite_version": "0.1.0", "git_commit": "abc123", "python": "3.11.7", "torch": "2.13.0",
            "numpy": "2.4.6", "device": "cpu", "created_at": "2026-11-26T10:00:00Z", "duration_s": 1.2,
        },
        "key": f"{abs(hash((model, task, dataset, seed))) % 10**12:012x}"[:12],
        "protocol": "frozen-embedding cosine",
        "task_meta": task_meta(task),
        "model_info": {"encoder": encoder, "objective": objective, "learning": learning,
                       "papers": ["Chen et al., 2021"], "reference": reference},
    }
    if model == "single_seed":
        rec["item_metrics"] = {"mAP": list(SINGLE_ITEMS)}
    return rec


def all_records() -> list[dict[str, Any]]:
    out = []
    for (task, dataset), models in SEED_VALUES.items():
        for model, metrics in models.items():
            n = len(next(iter(metrics.values())))
            for seed in range(n):
                out.append(make_record(model, task, dataset, seed, {m: v[seed] for m, v in metrics.items()}))
    return out


def write_results(root: Path) -> Path:
    """Write every record as its own JSON file (nested folders) plus a non-record manifest."""
    root.mkdir(parents=True, exist_ok=True)
    for rec in all_records():
        folder = root / rec["task"] / rec["dataset"] / rec["model"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"seed{rec['seed']}.json").write_text(json.dumps(rec, indent=1), encoding="utf-8")
    (root / "manifest.json").write_text(json.dumps({"created_by": "tests", "runs": 17}), encoding="utf-8")
    return root


# ----------------------------------------------------------------------------- separation

#: SAR of the unprocessed mixture as the metric code returns it: +inf up to rounding (~241 dB)
MIXTURE_SAR = 241.31
SEP_UNITS = {"SDR": "dB", "SAR": "dB", "cIoU": "fraction"}


def sep_task_meta() -> dict[str, Any]:
    return {
        "name": "separation", "main_score": "SDR", "headline": ["SDR", "SAR", "cIoU"],
        "metrics": {m: {"name": m, "higher_is_better": True, "unit": u, "description": ""} for m, u in SEP_UNITS.items()},
        "protocol": "mix-and-separate", "pred_format": "", "ref_format": "", "needs": [], "reference_names": [],
    }


def sep_record(model: str, seed: int, metrics: dict[str, float], *, reference: bool = False,
               items: dict[str, list[float]] | None = None, dataset: str = "music") -> dict[str, Any]:
    """A separation record (dB metrics, plus a fraction metric to exercise interval clipping)."""
    return {
        "model": model, "task": "separation", "dataset": dataset, "seed": seed, "metrics": metrics,
        "schema_version": 2, "config": {"model": model, "seed": seed, "dataset": verified_dataset(dataset)},
        "provenance": {"suite_version": "0.1.0", "created_at": "2026-11-26T10:00:00Z"},
        "key": f"{model}-{seed}", "protocol": "mix-and-separate", "task_meta": sep_task_meta(),
        "model_info": {"encoder": ["unet"], "objective": ["l1"], "learning": "supervised", "reference": reference},
        "item_metrics": items or {},
    }


SEP_ITEMS = [29.0, 30.5, 31.0, 32.2, 33.76]  # mean 31.292: the deterministic oracle's per-item SDR


def separation_records() -> list[dict[str, Any]]:
    """oracle_irm (deterministic, per-item SDR), mixture (SAR ~241 dB), two learned models."""
    out = []
    for seed in range(3):
        out.append(sep_record("oracle_irm", seed, {"SDR": 31.292, "SAR": 35.0, "cIoU": 0.9}, reference=True,
                              items={"SDR": list(SEP_ITEMS)}))
        out.append(sep_record("mixture", seed, {"SDR": 0.1, "SAR": MIXTURE_SAR, "cIoU": 0.2}, reference=True))
    for seed, (sdr, sar, ciou) in enumerate([(5.0, 9.0, 0.05), (5.6, 9.4, 0.70)]):
        out.append(sep_record("unet", seed, {"SDR": sdr, "SAR": sar, "cIoU": ciou}))
    for seed, (sdr, sar, ciou) in enumerate([(7.0, 11.0, 0.50), (7.2, 11.3, 0.52)]):
        out.append(sep_record("unet_big", seed, {"SDR": sdr, "SAR": sar, "cIoU": ciou}))
    for seed in range(2):  # a deterministic learned model (no per-item values)
        out.append(sep_record("det_model", seed, {"SDR": 6.0, "SAR": 10.0, "cIoU": 0.4}))
    return out
