"""Hand-written result records for the reporting tests (numbers chosen to be checked by hand)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
        "config": {"model": model, "task": task, "dataset": dataset, "seed": seed, "epochs": 2},
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
