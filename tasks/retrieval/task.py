"""Cross-modal retrieval task adapter.

The protocol text is :data:`PROTOCOL` (written into every record via ``metadata``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from avcl_bench.benchmark.arrays import check_array, check_finite_metrics, check_labels, require
from avcl_bench.benchmark.embedding import embed_split
from avcl_bench.benchmark.errors import InputError

from ..base import EvalContext, Task, TaskMetadata, TaskResult
from .metrics import METRICS, average_precision, retrieval_metrics


def embed_test(model: Any, dataset: Any, ctx: EvalContext, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Clip embeddings of a split, validated (shape, finite) so a broken model fails clearly."""
    return embed_split(model, dataset.split(split), ("audio", "visual"), device=ctx.device)


def per_query_ap(a: np.ndarray, v: np.ndarray, labels: np.ndarray) -> dict[str, list[float]]:
    """AP of every query (a2v then v2a) for bootstrap intervals; their means are the mAP keys."""
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)
    sim = an @ vn.T
    rel = labels[:, None] == labels[None, :]
    a2v, v2a = average_precision(sim, rel), average_precision(sim.T, rel.T)
    a2v, v2a = a2v[~np.isnan(a2v)], v2a[~np.isnan(v2a)]
    return {"mAP_a2v": a2v.tolist(), "mAP_v2a": v2a.tolist(), "mAP": np.concatenate([a2v, v2a]).tolist()}


#: why a dataset without instance pairs has no R@K / MedR (the record's ``config.paired_note``)
NOT_INSTANCE_PAIRS = ("R@K and MedR not reported: this dataset pairs audio and visual items arbitrarily within a "
                      "class, so 'the own pair' of a query is not a true instance")

#: the evaluation protocol (``list tasks``, every record's ``task_meta.protocol``)
PROTOCOL = (
    "Protocol (frozen embeddings, no head): embed the test split with the model's ``embed_audio`` / "
    "``embed_visual``, rank the other modality's items by cosine similarity in both directions, "
    "class-level relevance (same clip label), as the survey's VEGAS/AVE rows. Paired galleries (item i of "
    "audio pairs with item i of visual) add R@K and MedR, only on datasets whose pairs are true instances (one "
    "recording; not on avdigits, which pairs a spoken digit with an arbitrary image of its class). mAP is the micro average (mean over queries); "
    "mAP_macro the macro average (mean over query classes of the mean AP of the class's queries)."
)


class RetrievalTask(Task):
    name = "retrieval"
    version = "3"  # 2: mAP_macro, mAP_macro_a2v, mAP_macro_v2a added; 3: R@K only on instance pairs
    metadata = TaskMetadata(
        name="retrieval",
        main_score="mAP",
        headline=("mAP", "mAP_a2v", "mAP_v2a", "R@10_a2v"),
        metrics=METRICS,
        protocol=PROTOCOL,
        pred_format="audio (N, D) float, visual (M, D) float",
        ref_format="audio_labels (N,) int, visual_labels (M,) int, paired () bool (optional: false when item i of "
                   "audio and of visual are not one instance; then no R@K / MedR)",
        needs=(),
    )

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> TaskResult:
        a, v = embed_test(model, dataset, ctx)
        labels = np.asarray(dataset.split("test").labels)
        paired = bool(dataset.spec.instance_pairs)
        metrics = retrieval_metrics(a, v, labels, labels, paired=paired, device=ctx.device)
        config: dict[str, Any] = {"split": "test", "paired": paired, "similarity": "cosine"}
        if not paired:
            config["paired_note"] = NOT_INSTANCE_PAIRS
        return TaskResult(metrics=metrics, protocol="frozen embeddings, cosine similarity, class-level relevance",
                          config=config, item_metrics=per_query_ap(a, v, labels))

    def score(self, pred: dict[str, np.ndarray], ref: dict[str, np.ndarray], *, pred_source: str = "pred",
              ref_source: str = "ref") -> dict[str, float]:
        require(pred, pred_source, ("audio", "visual"))
        require(ref, ref_source, ("audio_labels", "visual_labels"))
        a = check_array(pred["audio"], pred_source, "audio", ndim=2, kind="float")
        v = check_array(pred["visual"], pred_source, "visual", ndim=2, kind="float")
        la = check_labels(ref["audio_labels"], ref_source, "audio_labels", ndim=1)
        lv = check_labels(ref["visual_labels"], ref_source, "visual_labels", ndim=1)
        if len(a) != len(la):
            raise InputError(pred_source, "audio", f"has {len(a)} rows but {ref_source} audio_labels has {len(la)}")
        if len(v) != len(lv):
            raise InputError(pred_source, "visual", f"has {len(v)} rows but {ref_source} visual_labels has {len(lv)}")
        if a.shape[1] != v.shape[1]:
            raise InputError(pred_source, "visual", f"embedding dimension {v.shape[1]} does not match audio's {a.shape[1]}")
        paired = None
        if "paired" in ref:
            flag = np.asarray(ref["paired"])
            if flag.shape != () or flag.dtype != np.bool_:
                raise InputError(ref_source, "paired", f"must be a 0-d bool (got dtype {flag.dtype}, shape {flag.shape})")
            paired = bool(flag) and len(a) == len(v)
        return check_finite_metrics(retrieval_metrics(a, v, la, lv, paired=paired, source=pred_source,
                                                      ref_source=ref_source), self.name)

    def export_reference(self, dataset: Any, split: str = "test") -> dict[str, np.ndarray]:
        labels = np.asarray(dataset.split(split).labels, dtype=np.int64)
        return {"audio_labels": labels, "visual_labels": labels,
                "paired": np.asarray(bool(dataset.spec.instance_pairs))}
