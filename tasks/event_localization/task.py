"""Audio-visual event localization task adapter (supervised AVE protocol, frozen segment features).

The protocol text is :data:`PROTOCOL` (written into every record via ``metadata``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from avcl_bench.benchmark.arrays import check_array, check_finite_metrics, check_labels, require
from avcl_bench.benchmark.datasets.base import AVSplit
from avcl_bench.benchmark.embedding import embed_split
from avcl_bench.benchmark.errors import ConfigError, InputError, ModelError

from ..base import EvalContext, MetricSpec, Task, TaskMetadata, TaskResult
from ..heads import head_batch_size, train_head
from .metrics import CML_EPSILON, CML_METRICS, cross_modal_localization, event_localization_metrics
from .metrics import METRICS as _BASE_METRICS

__all__ = ["EventLocalizationTask", "HeadConfig", "METRICS", "cml_on_embeddings", "segment_embeddings",
           "segment_features", "train_segment_head"]

METRICS: dict[str, MetricSpec] = {**_BASE_METRICS, **CML_METRICS}
HEADS = ("linear", "gru")
_EMBED_BATCH = 128


@dataclass(frozen=True)
class HeadConfig:
    """Training settings of the segment head (CPU-friendly; ``quick`` halves the epochs).

    ``batch_size`` clips per step, shrunk on small train splits so that an epoch has at
    least ``min_steps`` optimisation steps (patience counts epochs, so a tiny split would
    otherwise stop after a handful of steps).
    """

    head: str = "linear"
    gru_hidden: int = 64
    lr: float = 5e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    min_steps: int = 8
    epochs: int = 60
    quick_epochs: int = 30
    patience: int = 8


# ----------------------------------------------------------------------------- features
def segment_embeddings(model: Any, split: AVSplit, *, device: str = "cpu",
                       batch_size: int = _EMBED_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """The model's audio and visual segment embeddings, ``(N, T, Da)`` and ``(N, T, Dv)`` float32."""
    t_want = int(np.shape(split.segment_labels)[1])
    a, v = embed_split(model, split, ("audio_segments", "visual_segments"), batch_size=batch_size, device=device,
                       dtype=torch.float32)
    for name, t in (("embed_audio_segments", a), ("embed_visual_segments", v)):
        if t.shape[1] != t_want:
            raise ModelError(f"model output: {name}: expected shape ({len(t)}, {t_want}, D), got {t.shape}")
    return a, v


def segment_features(model: Any, split: AVSplit, *, device: str = "cpu", batch_size: int = _EMBED_BATCH) -> np.ndarray:
    """``[a_t, v_t]`` per segment: ``(N, T, Da + Dv)`` float32 from the model's segment embeddings."""
    return np.concatenate(segment_embeddings(model, split, device=device, batch_size=batch_size), axis=2)


def cml_on_embeddings(audio: np.ndarray, visual: np.ndarray, labels: np.ndarray, background: int,
                      source: str) -> tuple[dict[str, float], dict[str, list[float]], dict[str, Any]]:
    """AVE cross-modal localization on the test segment embeddings: metrics, per-video items, config.

    Event segments are those whose label is not ``background``. No metric when the two
    modalities' embeddings differ in dimension (no common space to measure distances in) or
    no video has both event and background segments; the config says why.
    """
    mask = labels != background
    counts = mask.sum(axis=1)
    cfg: dict[str, Any] = {"official": "AVE-ECCV18 cmm_test.py", "distance": f"euclidean, squared distance floored at {CML_EPSILON:g}",
                           "event_segments": f"label != {background}", "ties": "earliest window start"}
    if audio.shape[2] != visual.shape[2]:
        cfg["not_computed"] = f"audio ({audio.shape[2]}) and visual ({visual.shape[2]}) segment embeddings differ in dimension"
        return {}, {}, cfg
    if not np.any((counts > 0) & (counts < mask.shape[1])):
        cfg["not_computed"] = "no test video has both event and background segments"
        return {}, {}, cfg
    res = cross_modal_localization(audio, visual, mask, source=source)
    cfg.update({"videos": int(res.evaluated.sum()), "skipped_all_event": res.skipped_all_event,
                "skipped_no_event": res.skipped_no_event})
    ev = res.evaluated
    items = {"CML_A2V": res.correct_a2v[ev].astype(float).tolist(), "CML_V2A": res.correct_v2a[ev].astype(float).tolist()}
    return res.metrics(), items, cfg


def _check_segment_labels(split: AVSplit, name: str, num_classes: int, source: str) -> np.ndarray:
    labels = check_array(split.segment_labels, source, f"{name} segment_labels", ndim=2, kind="int")
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i, t = (int(v) for v in np.argwhere(bad)[0])
        raise InputError(source, f"{name} segment_labels",
                         f"label {int(labels[i, t])} at clip {i}, segment {t} is out of range [0, {num_classes})")
    return labels


# ----------------------------------------------------------------------------- heads
class _LinearHead(nn.Module):
    """The same linear classifier on every segment: ``(B, T, d) -> (B, T, C)``."""

    def __init__(self, d_in: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(d_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class _GRUHead(nn.Module):
    """A bidirectional GRU over the segments, then a linear classifier per segment."""

    def __init__(self, d_in: int, num_classes: int, hidden: int):
        super().__init__()
        self.gru = nn.GRU(d_in, hidden, num_layers=1, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.gru(x)[0])


def train_segment_head(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, num_classes: int,
    cfg: HeadConfig = HeadConfig(), *, seed: int = 0, device: str = "cpu", quick: bool = False,
    progress: bool = False,
) -> tuple[nn.Module, list[np.ndarray], dict[str, Any]]:
    """Train a segment head on standardised features; early stopping on val segment accuracy.

    Args:
        x_train, x_val: ``(N, T, d)`` segment features; ``y_train``, ``y_val``: ``(N, T)`` labels.
        num_classes: ``C`` (event classes plus background).
        cfg: head type and optimisation settings.
        seed: seeds the initialisation and the clip order (the global RNG state is kept).

    Returns:
        The head with the weights of the best val epoch (earliest on ties) in eval mode, the
        train standardisation ``[mu, sd]`` to apply to test features as ``(x - mu) / sd``,
        and ``{"epochs_run", "best_epoch", "val_ACC", "batch_size"}``.
    """
    if cfg.head not in HEADS:
        raise ConfigError(f"event_localization: option event_head must be one of {', '.join(HEADS)}, got {cfg.head!r}")
    flat = x_train.reshape(-1, x_train.shape[-1]).astype(np.float64)
    mu, sd = flat.mean(axis=0), flat.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    xtr = torch.as_tensor(((x_train - mu) / sd).astype(np.float32), device=device)
    xva = torch.as_tensor(((x_val - mu) / sd).astype(np.float32), device=device)
    ytr = torch.as_tensor(y_train, dtype=torch.long, device=device)
    yva = torch.as_tensor(y_val, dtype=torch.long, device=device)
    epochs = cfg.quick_epochs if quick else cfg.epochs
    batch_size = head_batch_size(cfg.batch_size, len(xtr), cfg.min_steps)
    d_in = xtr.shape[2]

    def make_net() -> nn.Module:
        return _LinearHead(d_in, num_classes) if cfg.head == "linear" else _GRUHead(d_in, num_classes, cfg.gru_hidden)

    net, info = train_head(make_net, xtr, ytr, xva, yva, num_classes=num_classes, epochs=epochs,
                           batch_size=batch_size, patience=cfg.patience, lr=cfg.lr, weight_decay=cfg.weight_decay,
                           seed=seed, device=device, progress=progress, desc="train event head")
    return net, [mu, sd], info


# ----------------------------------------------------------------------------- task
#: the evaluation protocol (``list tasks``, every record's ``task_meta.protocol``)
PROTOCOL = (
    "Protocol (frozen features, a small head trained by the suite; AVE protocol of Tian et al. 2018, as "
    "Lin and Wang and Duan et al. report it): every clip is cut into T segments, each labelled with one "
    "of the event classes or background (C = num_classes + 1). The model gives per-segment audio and "
    "visual features (``embed_audio_segments`` / ``embed_visual_segments``, capability ``segments``), "
    "never fine-tuned; they are concatenated per segment, ``[a_t, v_t]``, and standardised with train "
    "statistics. The suite trains a head on the train split with cross-entropy over all segments: by "
    "default a linear layer applied to every segment, or with the task option ``event_head=gru`` a "
    "one-layer bidirectional GRU over the segments followed by a linear layer (the temporal model of Tian "
    "et al.). Training is seeded, uses AdamW on mini-batches of clips and keeps the epoch with the best "
    "val segment accuracy (early stopping). ``ACC`` is the accuracy over all test segments; ``video_ACC`` "
    "(a suite addition) the share of test clips whose every segment is right. Cross-modal localization "
    "(AVE's cmm_test.py, no head): in each test clip the event segments of one modality's frozen segment "
    "embeddings query the other modality; the window of consecutive segments with the smallest summed "
    "Euclidean distance is predicted and the clip counts when it starts at the first event segment "
    "(``CML_A2V``: audio queries, ``CML_V2A``: visual queries); clips whose segments are all events (or none) "
    "are skipped, as the official script does."
)


class EventLocalizationTask(Task):
    name = "event_localization"
    version = "2"  # 2: CML_A2V / CML_V2A added
    metadata = TaskMetadata(
        name="event_localization",
        main_score="ACC",
        headline=("ACC", "video_ACC", "CML_A2V", "CML_V2A"),
        metrics=METRICS,
        protocol=PROTOCOL,
        pred_format=("segment_scores (N, T, C) float (argmax = prediction) or segment_labels (N, T) int; "
                     "scores win if both; optional audio_segments and visual_segments (N, T, D) float for CML"),
        ref_format="segment_labels (N, T) int, background = num_classes; background () int (needed for CML)",
        needs=("segment_labels",),
    )
    export_inputs = ("test split audio (N, T, Fa) and visual (N, T, C, H, W), T segments per clip; the model "
                     "predicts one of num_classes + 1 labels (background = num_classes) per segment")

    def supports(self, model: Any, spec: Any, split: Any) -> str | None:
        why = super().supports(model, spec, split)
        if why is None and model is not None and "segments" not in set(getattr(model, "capabilities", ())):
            why = "model lacks the 'segments' capability (embed_audio_segments / embed_visual_segments)"
        return why

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> TaskResult:
        spec = dataset.spec
        head = str(ctx.options.get("event_head", "linear"))
        cfg = HeadConfig(head=head)
        if head not in HEADS:
            raise ConfigError(f"event_localization: option event_head must be one of {', '.join(HEADS)}, got {head!r}")
        num_classes = int(spec.num_classes) + 1
        source = f"dataset '{spec.name}'"
        splits = {name: dataset.split(name) for name in ("train", "val", "test")}
        labels = {name: _check_segment_labels(s, name, num_classes, source) for name, s in splits.items()}
        emb = {name: segment_embeddings(model, s, device=ctx.device) for name, s in splits.items()}
        feats = {name: np.concatenate(e, axis=2) for name, e in emb.items()}
        net, (mu, sd), info = train_segment_head(feats["train"], labels["train"], feats["val"], labels["val"],
                                                 num_classes, cfg, seed=ctx.seed, device=ctx.device, quick=ctx.quick,
                                                 progress=ctx.progress)
        with torch.no_grad():
            x = torch.as_tensor(((feats["test"] - mu) / sd).astype(np.float32), device=ctx.device)
            scores = net(x).double().cpu().numpy()
        y = labels["test"]
        metrics = event_localization_metrics(y, segment_scores=scores, num_classes=num_classes, source="head")
        right = np.argmax(scores, axis=2) == y
        items = {"ACC": right.mean(axis=1).tolist(), "video_ACC": right.all(axis=1).astype(float).tolist()}
        cml, cml_items, cml_cfg = cml_on_embeddings(*emb["test"], y, int(spec.num_classes), "model output")
        metrics.update(cml)
        items.update(cml_items)
        head_desc = "linear layer per segment" if head == "linear" else "1-layer BiGRU over segments + linear"
        return TaskResult(
            metrics=metrics,
            protocol=f"frozen segment features [a_t, v_t]; {head_desc} trained on train, early stop on val ACC",
            config={"head": asdict(cfg), "num_classes": num_classes, "features": "concat(audio, visual) per segment",
                    "standardize": "train mean/std", "fit": info, "train_split": "train", "selection_split": "val",
                    "split": "test", "cml": cml_cfg},
            item_metrics=items,
        )

    def score(self, pred: dict[str, np.ndarray], ref: dict[str, np.ndarray], *, pred_source: str = "pred",
              ref_source: str = "ref") -> dict[str, float]:
        require(ref, ref_source, ("segment_labels",))
        with_cml = "audio_segments" in pred or "visual_segments" in pred
        if "segment_scores" not in pred and "segment_labels" not in pred and not with_cml:
            have = ", ".join(sorted(pred)) or "none"
            raise InputError(pred_source, "segment_scores",
                             f"missing array: give segment_scores or segment_labels (arrays present: {have})")
        truth = check_labels(ref["segment_labels"], ref_source, "segment_labels", ndim=2)
        if truth.shape[1] < 1:
            raise InputError(ref_source, "segment_labels", f"needs at least 1 segment per clip, got shape {truth.shape}")
        if (truth < 0).any():
            i, t = (int(v) for v in np.argwhere(truth < 0)[0])
            raise InputError(ref_source, "segment_labels", f"negative label {int(truth[i, t])} at clip {i}, segment {t}")
        out = self._score_cml(pred, ref, truth, pred_source, ref_source) if with_cml else {}
        if "segment_scores" not in pred and "segment_labels" not in pred:
            return check_finite_metrics(out, self.name)
        key = "segment_scores" if "segment_scores" in pred else "segment_labels"
        if key == "segment_scores":
            p = check_array(pred[key], pred_source, key, ndim=3, kind="float")
        else:
            p = check_labels(pred[key], pred_source, key, ndim=2)
        if p.shape[:2] != truth.shape:
            raise InputError(pred_source, key, f"has shape {p.shape} but {ref_source} segment_labels has "
                             f"{truth.shape} (expected the same clips x segments)")
        if key == "segment_scores":
            if (truth >= p.shape[2]).any():
                i, t = (int(v) for v in np.argwhere(truth >= p.shape[2])[0])
                raise InputError(ref_source, "segment_labels", f"label {int(truth[i, t])} at clip {i}, segment {t} "
                                 f"has no class in {pred_source} segment_scores ({p.shape[2]} classes)")
            return check_finite_metrics({**event_localization_metrics(truth, segment_scores=p, source=pred_source,
                                                                      ref_source=ref_source), **out}, self.name)
        return check_finite_metrics({**event_localization_metrics(truth, segment_labels=p, source=pred_source,
                                                                  ref_source=ref_source), **out}, self.name)

    @staticmethod
    def _score_cml(pred: dict[str, np.ndarray], ref: dict[str, np.ndarray], truth: np.ndarray, pred_source: str,
                   ref_source: str) -> dict[str, float]:
        """``CML_A2V`` / ``CML_V2A`` of stored segment embeddings (both arrays and REF ``background`` needed)."""
        require(pred, pred_source, ("audio_segments", "visual_segments"))
        require(ref, ref_source, ("background",))
        bg = check_labels(ref["background"], ref_source, "background", ndim=0)
        a = check_array(pred["audio_segments"], pred_source, "audio_segments", ndim=3, kind="float")
        v = check_array(pred["visual_segments"], pred_source, "visual_segments", ndim=3, kind="float")
        for name, arr in (("audio_segments", a), ("visual_segments", v)):
            if arr.shape[:2] != truth.shape:
                raise InputError(pred_source, name, f"has shape {arr.shape} but {ref_source} segment_labels has "
                                 f"{truth.shape} (expected the same clips x segments)")
        res = cross_modal_localization(a, v, truth != int(bg), source=pred_source, ref_source=ref_source)
        return res.metrics()

    def export_reference(self, dataset: Any, split: str = "test") -> dict[str, np.ndarray]:
        data = dataset.split(split)
        if not data.has("segment_labels"):
            raise InputError(f"dataset '{dataset.spec.name}' {split} split", "segment_labels",
                             "the dataset has no segment labels")
        return {"segment_labels": np.asarray(data.segment_labels, dtype=np.int64),
                "background": np.asarray(int(dataset.spec.num_classes), dtype=np.int64)}
