"""Visual sound-source localization task adapter (frozen audio-visual similarity, LVS + SLAVC protocols).

The protocol text is :data:`PROTOCOL` (written into every record via ``metadata``). Besides the
LVS metrics of the true audio-image pairs, every test image is also paired with one *negative*
audio (silence, white noise or an off-screen clip of another class, :func:`plan_negatives`) and
scored with SLAVC's ``AP`` / ``max_F1`` / ``precision`` (:func:`~tasks.localization.metrics.slavc_metrics`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from avcl_bench.benchmark.arrays import check_array, check_finite_metrics, require
from avcl_bench.benchmark.datasets.base import AVSplit, to_float_tensor
from avcl_bench.benchmark.datasets.frontend import FRONTEND_KEY
from avcl_bench.benchmark.embedding import embed_batches, embed_split
from avcl_bench.benchmark.errors import ConfigError, InputError, ModelError

from ..base import EvalContext, MetricSpec, Task, TaskMetadata, TaskResult
from .metrics import (
    CIOU_THRESHOLD,
    SLAVC_METRICS,
    TIE_RULES,
    check_memory,
    ciou_per_sample,
    confidence_per_sample,
    slavc_metrics,
    summarize_ciou,
)
from .metrics import METRICS as _BASE_METRICS

__all__ = ["AudioFrontend", "LocalizationTask", "METRICS", "NEGATIVE_KINDS", "NegativePlan", "heatmaps_of",
           "plan_negatives"]

METRICS: dict[str, MetricSpec] = {**_BASE_METRICS, **SLAVC_METRICS}
EMPTY_MASK_MODES = ("raise", "zero")
_BATCH = 64
#: the seed of the negatives: fixed, so that every model and seed faces the same test items
NEGATIVE_SEED = 20221128


@runtime_checkable
class AudioFrontend(Protocol):
    """How a dataset turns waveforms into the audio input of its clips (``split.meta["audio_frontend"]``).

    A dataset that provides one (e.g. a :class:`~benchmark.datasets.frontend.StandardisedFrontend`)
    lets the task build silence and noise negatives as the model would receive them.
    ``samples`` is the waveform length of a clip, ``level`` the RMS of the dataset's clips.
    """

    samples: int
    level: float

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        """``(B, samples)`` float waveforms -> ``(B, T, Fa)`` audio features, as the split's ``audio``."""
        ...


@dataclass(frozen=True)
class NegativePlan:
    """Which negative audio each test image is paired with.

    ``kind[n]`` is ``NEGATIVE_KINDS.index`` of image ``n``'s negative, ``partner[n]`` the test
    clip whose audio an off-screen negative plays (``-1`` for the other kinds).
    """

    kind: np.ndarray
    partner: np.ndarray
    available: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        return {name: int(np.sum(self.kind == k)) for k, name in enumerate(NEGATIVE_KINDS) if name in self.available}


def _frontend(split: AVSplit) -> AudioFrontend | None:
    f = split.meta.get(FRONTEND_KEY)
    return f if isinstance(f, AudioFrontend) else None


def _has_frontend(split: AVSplit) -> bool:
    return _frontend(split) is not None


def _has_other_classes(split: AVSplit) -> bool:
    labels = np.asarray(split.labels)
    return bool(len(labels)) and bool((labels >= 0).all()) and len(np.unique(labels)) > 1


def _silence(split: AVSplit, plan: NegativePlan, rows: np.ndarray) -> np.ndarray:
    """The features of an all-zero waveform, one per row."""
    frontend = _frontend(split)
    one = np.asarray(frontend(np.zeros((1, int(frontend.samples)), dtype=np.float32)))
    return np.repeat(one, len(rows), axis=0)


def _noise(split: AVSplit, plan: NegativePlan, rows: np.ndarray) -> np.ndarray:
    """White Gaussian noise at the dataset's RMS level; row ``n``'s noise depends on ``n`` only."""
    frontend = _frontend(split)
    waves = np.stack([np.random.default_rng([NEGATIVE_SEED, 1, int(n)]).standard_normal(int(frontend.samples))
                      for n in rows]) * float(frontend.level)
    return np.asarray(frontend(waves.astype(np.float32)))


def _offscreen(split: AVSplit, plan: NegativePlan, rows: np.ndarray) -> np.ndarray:
    """The audio features of each row's partner, a test clip of another class."""
    return np.stack([np.asarray(split.audio[int(j)]) for j in plan.partner[rows]])


@dataclass(frozen=True)
class NegativeKind:
    """One kind of negative audio: when a split allows it and how a batch of its features is built."""

    available: Callable[[AVSplit], bool]
    build: Callable[[AVSplit, NegativePlan, np.ndarray], np.ndarray]


#: negative kind -> how it is made; the order gives the codes of ``NegativePlan.kind``
NEGATIVE_KINDS: dict[str, NegativeKind] = {
    "silence": NegativeKind(_has_frontend, _silence),
    "noise": NegativeKind(_has_frontend, _noise),
    "offscreen": NegativeKind(_has_other_classes, _offscreen),
}


def plan_negatives(split: AVSplit) -> NegativePlan:
    """One negative per test image, the kinds balanced over the available ones (seeded, :data:`NEGATIVE_SEED`).

    ``silence`` and ``noise`` need the split's :class:`AudioFrontend`; ``offscreen`` needs at
    least two classes among the test labels (all known, ``>= 0``): image ``n`` then hears the
    audio of a uniformly drawn test clip whose label differs from its own.
    """
    labels = np.asarray(split.labels)
    n = len(labels)
    names = list(NEGATIVE_KINDS)
    available = tuple(k for k in names if NEGATIVE_KINDS[k].available(split))
    rng = np.random.default_rng([NEGATIVE_SEED, n])
    kind = np.full(n, -1, dtype=np.int64)
    partner = np.full(n, -1, dtype=np.int64)
    if available:
        codes = np.array([names.index(k) for k in available])
        kind = codes[rng.permutation(np.arange(n) % len(codes))]
        for i in np.flatnonzero(kind == names.index("offscreen")):
            others = np.flatnonzero(labels != labels[i])
            partner[i] = others[rng.integers(len(others))]
    return NegativePlan(kind=kind, partner=partner, available=available)


def _negative_input(plan: NegativePlan, source: str) -> Any:
    """The :data:`~benchmark.embedding.InputFn` feeding each row's negative audio to ``embed_audio``."""

    def feed(split: AVSplit, idx: np.ndarray, device: str) -> torch.Tensor:
        shape = tuple(np.asarray(split.audio[int(idx[0]) : int(idx[0]) + 1]).shape[1:])
        out = np.zeros((len(idx), *shape), dtype=np.float32)
        for code, (name, negative) in enumerate(NEGATIVE_KINDS.items()):
            sel = np.flatnonzero(plan.kind[idx] == code)
            if len(sel):
                feats = np.asarray(negative.build(split, plan, idx[sel]))
                if feats.shape != (len(sel), *shape) or not np.isfinite(feats).all():
                    raise InputError(source, FRONTEND_KEY, f"{name} features must be finite, of shape "
                                     f"{(len(sel), *shape)} like the split's audio, got {feats.shape}")
                out[sel] = feats
        return to_float_tensor(out, device)

    return feed


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
    for rows, heat, _ in _heatmap_batches(model, split, spec, device=device, batch_size=batch_size):
        yield rows, heat


@torch.no_grad()
def _heatmap_batches(model: Any, split: AVSplit, spec: Any, *, device: str, batch_size: int = _BATCH,
                     other_audio: np.ndarray | None = None
                     ) -> Iterator[tuple[slice, np.ndarray, np.ndarray | None]]:
    """:func:`heatmaps_of`, plus the heatmaps of ``other_audio`` ``(N, D)`` audio embeddings on the same images.

    The visual map of each image is computed once and scored against both audio embeddings.
    """
    inputs = {"visual_spatial": _frame_clip} if _uses_frames(split, spec) else None
    # the clip audio embeddings are the retrieval task's: read from the cell's embedding cache
    audio = embed_split(model, split, "audio", device=device)
    for idx, out in embed_batches(model, split, ("visual_spatial",), batch_size=batch_size, device=device,
                                  inputs=inputs):
        rows = slice(int(idx[0]), int(idx[-1]) + 1)  # unshuffled batches are consecutive
        a, s = torch.as_tensor(audio[rows]), out["visual_spatial"]
        if s.shape[1] != a.shape[1]:
            raise ModelError(f"model output: embed_visual_spatial: expected shape ({len(idx)}, {a.shape[1]}, h, w), "
                             f"got {tuple(s.shape)}")
        s = F.normalize(s, dim=1)
        heat = torch.einsum("bd,bdhw->bhw", F.normalize(a, dim=1), s)
        other = None
        if other_audio is not None:
            b = F.normalize(torch.as_tensor(other_audio[rows], dtype=s.dtype), dim=1)
            other = torch.einsum("bd,bdhw->bhw", b, s).numpy()
        yield rows, heat.numpy(), other


def _negative_embeddings(model: Any, split: AVSplit, plan: NegativePlan, *, device: str, source: str) -> np.ndarray:
    """``embed_audio`` of every image's negative audio, ``(N, D)`` float64."""
    parts = [out["audio"].numpy() for _, out in
             embed_batches(model, split, ("audio",), batch_size=_BATCH, device=device,
                           inputs={"audio": _negative_input(plan, source)})]
    return np.concatenate(parts)


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


def _check_option(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"localization: option {name} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def _check_mode(empty_mask: object) -> str:
    return _check_option("empty_mask", empty_mask, EMPTY_MASK_MODES)


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
    "refused unless the task option ``empty_mask=zero`` scores them 0 as the LVS script does; ``ties=official`` "
    "keeps every pixel tied at the maximum as the LVS script does (default ``strict``: strictly above the median "
    "element). Negative audio (SLAVC, Mo & Morgado 2022): every test image is also paired with one negative "
    "audio, the kinds balanced and drawn with a fixed seed: silence (the features of an all-zero waveform) and "
    "white noise at the dataset's RMS level when the dataset provides its audio front end, and the audio of a "
    "test clip of another class (off-screen). Each heatmap's confidence is the mean of its top quarter of pixels "
    "at the mask size; ``AP`` and ``max_F1`` rank all items by confidence (a positive is a true detection only "
    "with cIoU >= 0.5, a confident negative is a false positive) and ``precision`` is the share of all items "
    "that are localized positives."
)


class LocalizationTask(Task):
    name = "localization"
    version = "3"  # 2: negatives (SLAVC metrics); 3: clip audio embeddings from the cell cache (batch 128)
    metadata = TaskMetadata(
        name="localization",
        main_score="cIoU",
        headline=("cIoU", "AUC", "mean_cIoU", "AP", "max_F1", "precision"),
        metrics=METRICS,
        protocol=PROTOCOL,
        pred_format="heatmaps (N, h, w) float, higher = sounding (resized bilinearly to the masks' size); "
                    "optional neg_heatmaps (M, h', w') float: heatmaps of images paired with negative audio "
                    "(no sounding object), which add AP, max_F1 and precision (SLAVC)",
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
        ties = _check_option("ties", ctx.options.get("ties", "strict"), TIE_RULES)
        test = dataset.split("test")
        source = f"dataset '{spec.name}' test split"
        masks = test.masks
        if len(masks) != len(test):
            raise InputError(source, "masks", f"has {len(masks)} masks for {len(test)} clips")
        plan = plan_negatives(test)
        negative = (_negative_embeddings(model, test, plan, device=ctx.device, source=source)
                    if plan.available else None)
        parts, conf, neg_conf = [], [], []
        for rows, heat, neg_heat in _heatmap_batches(model, test, spec, device=ctx.device, other_audio=negative):
            gt = _check_masks(masks[rows], source, "masks", empty_mask)
            parts.append(ciou_per_sample(heat, gt, empty_mask=empty_mask, ties=ties, source=source))
            if neg_heat is not None:
                conf.append(confidence_per_sample(heat, gt.shape[1:], source=source))
                neg_conf.append(confidence_per_sample(neg_heat, gt.shape[1:], source=source, field="neg_heatmaps"))
        ciou = np.concatenate(parts)
        metrics = summarize_ciou(ciou, source=source)
        hits = (ciou >= CIOU_THRESHOLD).astype(float)
        items = {"mean_cIoU": ciou.tolist(), "cIoU": hits.tolist()}
        if negative is not None:
            metrics.update(slavc_metrics(ciou, np.concatenate(conf), np.concatenate(neg_conf), source=source))
            items["precision"] = hits.tolist() + [0.0] * len(ciou)  # negatives are never localized positives
        frames = _uses_frames(test, spec)
        return TaskResult(
            metrics=check_finite_metrics(metrics, self.name),
            protocol="frozen embeddings; heatmap = cosine(audio clip embedding, visual spatial map); LVS cIoU; "
                     "SLAVC AP/max_F1/precision with one negative audio per image",
            config={"split": "test", "visual_input": "target frame" if frames else "clip visual",
                    "similarity": "cosine", "resize": "bilinear to mask size", "empty_mask": empty_mask,
                    "ties": ties, "negatives": plan.counts(), "negative_seed": NEGATIVE_SEED,
                    "confidence": "mean of the top ceil(P/4) pixels at the mask size"},
            item_metrics=items,
        )

    def score(self, pred: dict[str, np.ndarray], ref: dict[str, np.ndarray], *, pred_source: str = "pred",
              ref_source: str = "ref", empty_mask: str = "raise", ties: str = "strict") -> dict[str, float]:
        """LVS metrics of stored heatmaps, plus SLAVC's when ``pred`` has ``neg_heatmaps``.

        ``empty_mask`` and ``ties`` as :func:`~tasks.localization.metrics.ciou_per_sample` (the
        task options of ``run``). ``neg_heatmaps`` ``(M, h', w')`` are the heatmaps of images
        paired with negative audio; their confidences are taken at the masks' size.
        """
        empty_mask = _check_mode(empty_mask)
        ties = _check_option("ties", ties, TIE_RULES)
        require(pred, pred_source, ("heatmaps",))
        require(ref, ref_source, ("masks",))
        check_memory(pred["heatmaps"], ref["masks"], pred_source, ref_source)
        heat = check_array(pred["heatmaps"], pred_source, "heatmaps", ndim=3, kind="float")
        if heat.shape[1] < 1 or heat.shape[2] < 1:
            raise InputError(pred_source, "heatmaps", f"maps must be at least 1x1, got shape {heat.shape}")
        masks = _check_masks(ref["masks"], ref_source, "masks", empty_mask)
        if len(heat) != len(masks):
            raise InputError(pred_source, "heatmaps", f"has {len(heat)} maps but {ref_source} masks has {len(masks)}")
        ciou = ciou_per_sample(heat, masks, empty_mask=empty_mask, ties=ties, source=pred_source,
                               ref_source=ref_source)
        metrics = summarize_ciou(ciou, source=pred_source)
        if "neg_heatmaps" in pred:
            size = masks.shape[1:]
            neg = confidence_per_sample(pred["neg_heatmaps"], size, source=pred_source, field="neg_heatmaps")
            metrics.update(slavc_metrics(ciou, confidence_per_sample(heat, size, source=pred_source), neg,
                                         source=pred_source))
        return check_finite_metrics(metrics, self.name)

    def export_reference(self, dataset: Any, split: str = "test") -> dict[str, np.ndarray]:
        data = dataset.split(split)
        if not data.has("masks"):
            raise InputError(f"dataset '{dataset.spec.name}' {split} split", "masks", "the dataset has no masks")
        return {"masks": np.asarray(data.masks, dtype=np.float64)}
