"""Visual sound-source localization task adapter (frozen audio-visual similarity, LVS protocol).

The protocol text is :data:`PROTOCOL` (written into every record via ``metadata``).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from avcl_bench.benchmark.arrays import check_array, check_finite_metrics, require
from avcl_bench.benchmark.datasets.base import AVSplit, to_float_tensor
from avcl_bench.benchmark.embedding import embed_batches
from avcl_bench.benchmark.errors import ConfigError, InputError, ModelError

from ..base import EvalContext, MetricSpec, Task, TaskMetadata, TaskResult
from .metrics import CIOU_THRESHOLD, check_memory, ciou_per_sample, localization_metrics, summarize_ciou
from .metrics import METRICS as _BASE_METRICS

__all__ = ["LocalizationTask", "METRICS", "heatmaps_of"]

METRICS: dict[str, MetricSpec] = dict(_BASE_METRICS)
EMPTY_MASK_MODES = ("raise", "zero")
_BATCH = 64


def _uses_frames(split: AVSplit, spec: Any) -> bool:
    """Target frames are used when present and shaped like one frame of the model's input."""
    return split.has("frames") and tuple(split.frames.shape[1:]) == tuple(spec.visual_shape[1:])


def _frame_clip(split: AVSplit, idx: np.ndarray, device: str) -> torch.Tensor:
    """The target frames of a batch as one-frame clips ``(B, 1, 3, H, W)``."""
    rows = slice(int(idx[0]), int(idx[-1]) + 1)  # unshuffled batches are consecutive
    return to_float_tensor(split.frames[rows], device)[:, None]


@torch.no_grad()
def heatmaps_of(model: Any, split: AVSplit, spec: Any, *, device: str = "cpu",
                batch_size: int = _BATCH) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(rows, heatmaps (B, h, w))`` of consecutive batches of a split.

    ``heatmap[b, y, x] = cos(embed_audio(audio)[b], embed_visual_spatial(visual)[b, :, y, x])``;
    the visual input is the target frame as a one-frame clip when :func:`_uses_frames`.
    """
    inputs = {"visual_spatial": _frame_clip} if _uses_frames(split, spec) else None
    for idx, out in embed_batches(model, split, ("audio", "visual_spatial"), batch_size=batch_size, device=device,
                                  inputs=inputs):
        rows = slice(int(idx[0]), int(idx[-1]) + 1)  # unshuffled batches are consecutive
        a, s = out["audio"], out["visual_spatial"]
        if s.shape[1] != a.shape[1]:
            raise ModelError(f"model output: embed_visual_spatial: expected shape ({len(idx)}, {a.shape[1]}, h, w), "
                             f"got {tuple(s.shape)}")
        heat = torch.einsum("bd,bdhw->bhw", F.normalize(a, dim=1), F.normalize(s, dim=1))
        yield rows, heat.numpy()


def _check_masks(masks: object, source: str, field: str, empty_mask: str) -> np.ndarray:
    """``(N, H, W)`` finite masks in ``[0, 1]``; empty ones refused when ``empty_mask == "raise"``."""
    m = check_array(masks, source, field, ndim=3, kind="float")
    if m.shape[1] < 1 or m.shape[2] < 1:
        raise InputError(source, field, f"masks must be at least 1x1, got shape {m.shape}")
    outside = (m < 0) | (m > 1)
    if outside.any():
        idx = tuple(int(i) for i in np.argwhere(outside)[0])
        raise InputError(source, field, f"values must lie in [0, 1], got {m[idx]} at index {idx}")
    if empty_mask == "raise":
        empty = m.reshape(len(m), -1).sum(axis=1) == 0
        if empty.any():
            raise InputError(source, field, f"sample {int(np.flatnonzero(empty)[0])} has an empty mask "
                             "(cIoU undefined; score with empty_mask='zero' to count it as 0)")
    return m


def _check_mode(empty_mask: object) -> str:
    if empty_mask not in EMPTY_MASK_MODES:
        raise ConfigError(f"localization: option empty_mask must be one of {', '.join(EMPTY_MASK_MODES)}, "
                          f"got {empty_mask!r}")
    return str(empty_mask)


#: the evaluation protocol (``list tasks``, every record's ``task_meta.protocol``)
PROTOCOL = (
    "Protocol (frozen embeddings, no head is trained, as LVS / Chen et al. 2021 evaluate): for every test "
    "clip the heatmap is the cosine similarity between the clip's audio embedding (``embed_audio`` on the "
    "whole clip's audio) and each spatial position of the model's visual map (``embed_visual_spatial``, "
    "capability ``spatial``). The map is computed on the clip's single target frame (the ``frames`` "
    "field, given as a one-frame clip ``(B, 1, 3, H, W)``) when the dataset has frames of the model's "
    "input size, else on the clip's visual input. Heatmaps are scored against the ground-truth masks by "
    "the LVS metrics (bilinear resize to the mask size, keep the top half of the pixels, consensus IoU): "
    "``cIoU`` (share of clips with cIoU >= 0.5), ``AUC`` and ``mean_cIoU``. Clips with an empty mask are "
    "refused unless the task option ``empty_mask=zero`` scores them 0 as the LVS script does."
)


class LocalizationTask(Task):
    name = "localization"
    version = "1"
    metadata = TaskMetadata(
        name="localization",
        main_score="cIoU",
        headline=("cIoU", "AUC", "mean_cIoU"),
        metrics=METRICS,
        protocol=PROTOCOL,
        pred_format="heatmaps (N, h, w) float, higher = sounding (resized bilinearly to the masks' size)",
        ref_format="masks (N, H, W) float in [0, 1]",
        needs=("masks",),
    )
    export_inputs = ("test split audio (N, T, Fa) and the target frame of each clip (frames (N, 3, H, W), else "
                     "visual (N, T, C, H, W)); the model returns one heatmap per clip, aligned with the masks")

    def supports(self, model: Any, spec: Any, split: Any) -> str | None:
        why = super().supports(model, spec, split)
        if why is None and model is not None and "spatial" not in set(getattr(model, "capabilities", ())):
            why = "model lacks the 'spatial' capability (embed_visual_spatial)"
        return why

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> TaskResult:
        spec = dataset.spec
        empty_mask = _check_mode(ctx.options.get("empty_mask", "raise"))
        test = dataset.split("test")
        source = f"dataset '{spec.name}' test split"
        masks = test.masks
        if len(masks) != len(test):
            raise InputError(source, "masks", f"has {len(masks)} masks for {len(test)} clips")
        parts = []
        for rows, heat in heatmaps_of(model, test, spec, device=ctx.device):
            gt = _check_masks(masks[rows], source, "masks", empty_mask)
            parts.append(ciou_per_sample(heat, gt, empty_mask=empty_mask, source=source))
        ciou = np.concatenate(parts)
        metrics = summarize_ciou(ciou, source=source)
        items = {"mean_cIoU": ciou.tolist(), "cIoU": (ciou >= CIOU_THRESHOLD).astype(float).tolist()}
        frames = _uses_frames(test, spec)
        return TaskResult(
            metrics=metrics,
            protocol="frozen embeddings; heatmap = cosine(audio clip embedding, visual spatial map); LVS cIoU",
            config={"split": "test", "visual_input": "target frame" if frames else "clip visual",
                    "similarity": "cosine", "resize": "bilinear to mask size", "empty_mask": empty_mask},
            item_metrics=items,
        )

    def score(self, pred: dict[str, np.ndarray], ref: dict[str, np.ndarray], *, pred_source: str = "pred",
              ref_source: str = "ref", empty_mask: str = "raise") -> dict[str, float]:
        """LVS metrics of stored heatmaps; ``empty_mask`` as :func:`~tasks.localization.metrics.ciou_per_sample`."""
        empty_mask = _check_mode(empty_mask)
        require(pred, pred_source, ("heatmaps",))
        require(ref, ref_source, ("masks",))
        check_memory(pred["heatmaps"], ref["masks"], pred_source, ref_source)
        heat = check_array(pred["heatmaps"], pred_source, "heatmaps", ndim=3, kind="float")
        if heat.shape[1] < 1 or heat.shape[2] < 1:
            raise InputError(pred_source, "heatmaps", f"maps must be at least 1x1, got shape {heat.shape}")
        masks = _check_masks(ref["masks"], ref_source, "masks", empty_mask)
        if len(heat) != len(masks):
            raise InputError(pred_source, "heatmaps", f"has {len(heat)} maps but {ref_source} masks has {len(masks)}")
        return check_finite_metrics(localization_metrics(heat, masks, empty_mask=empty_mask, source=pred_source,
                                                         ref_source=ref_source), self.name)

    def export_reference(self, dataset: Any, split: str = "test") -> dict[str, np.ndarray]:
        data = dataset.split(split)
        if not data.has("masks"):
            raise InputError(f"dataset '{dataset.spec.name}' {split} split", "masks", "the dataset has no masks")
        return {"masks": np.asarray(data.masks, dtype=np.float64)}
