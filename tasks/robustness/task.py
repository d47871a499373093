"""Robustness task adapter: retrieval mAP and fused classification ACC under corrupted and missing inputs.

The suite corrupts the *test* inputs the model embeds (audio features, video frames), re-embeds
them with the model and scores the retrieval and classification protocols at each level of each
corruption in :data:`CORRUPTIONS`; the clean train / val embeddings (read from the cell's
embedding cache, as the retrieval and classification tasks left them) train the probe. Each
curve (clean point included) is summarised by :func:`~tasks.robustness.metrics.normalized_auc`.
The protocol text is :data:`PROTOCOL`; metric keys are built by :func:`level_key` /
:func:`auc_key` from the corruption table, so the table is the one definition of the keys.

Corrupted embeddings are computed with :func:`~benchmark.embedding.embed_batches` and an
``inputs`` override, which never touches the embedding cache: the cache is keyed by split
(name), and a corrupted test split must never be stored or read under the clean split's key.
The task is run-only: ``score`` and ``export_reference`` are one-line errors, since the
corruption happens between the suite's data and the model, which a folder of stored outputs
cannot reproduce.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from avcl_bench.benchmark.datasets.base import AVSplit, audio_batch, visual_batch
from avcl_bench.benchmark.embedding import embed_batches, embed_split
from avcl_bench.benchmark.errors import ConfigError

from ..base import EvalContext, MetricSpec, Task, TaskMetadata, TaskResult
from ..classification.metrics import classification_metrics
from ..classification.task import _EMBED_BATCH, _l2_normalize, labelled_splits, linear_probe, mlp_probe, probe_option
from ..retrieval.metrics import average_precision
from .metrics import normalized_auc

__all__ = ["CORRUPTIONS", "METRICS", "PROTOCOL", "Corruption", "Level", "RobustnessTask", "auc_key", "corrupt_batch",
           "corrupted_map", "level_key"]

#: the two protocols measured under corruption: retrieval (both directions) and the fused linear probe
BASE_METRICS: dict[str, str] = {
    "mAP": "retrieval mAP (mean of a2v and v2a, class-level relevance, as the retrieval task)",
    "ACC": "top-1 accuracy of the fused probe (trained on clean train embeddings, as the classification task)",
}


# ----------------------------------------------------------------------------- corruptions
class ItemDraws:
    """Random numbers of one corruption, per test item, whatever the batching.

    Item ``i`` draws from ``numpy.random.default_rng((seed, crc32(corruption), i, stream))``, so
    the same item gets the same noise in every batch and at every level (levels differ only in
    amplitude / size: common random numbers make a curve smooth and, item by item, nested).
    ``rank`` orders the items by one seeded permutation (which clips lose a modality first).
    """

    def __init__(self, seed: int, corruption: str, n_items: int):
        # numpy seeds are non-negative: a negative run seed maps to its 64-bit two's complement (injective)
        self.key = (int(seed) % 2**64, zlib.crc32(corruption.encode()))
        perm = np.random.default_rng(self.key).permutation(n_items)
        self.rank = np.empty(n_items, dtype=np.int64)
        self.rank[perm] = np.arange(n_items)
        self.n_items = n_items

    def normal(self, item: int, shape: tuple[int, ...]) -> np.ndarray:
        return np.random.default_rng((*self.key, int(item), 0)).standard_normal(shape)

    def uniform(self, item: int, k: int) -> np.ndarray:
        return np.random.default_rng((*self.key, int(item), 1)).random(k)


#: ``(clean float32 batch, item indices, level parameter, draws, the split's raw dtype) -> corrupted batch``
CorruptFn = Callable[[np.ndarray, np.ndarray, float, ItemDraws, np.dtype], np.ndarray]


def _audio_snr(x: np.ndarray, idx: np.ndarray, snr_db: float, draws: ItemDraws, raw: np.dtype) -> np.ndarray:
    """Additive white Gaussian noise at ``snr_db`` relative to each clip's feature power ``mean(x**2)``."""
    out = np.empty_like(x)
    for b, i in enumerate(idx):
        power = float(np.mean(np.square(x[b], dtype=np.float64)))
        sigma = math.sqrt(power * 10.0 ** (-snr_db / 10.0))
        out[b] = x[b] + sigma * draws.normal(i, x[b].shape)
    return out


def _occlusion_box(h: int, w: int, area: float, u: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of a box of the frame's aspect ratio covering ``area`` of it, placed at ``u``."""
    bh = min(h, int(round(math.sqrt(area) * h)))
    bw = min(w, int(round(math.sqrt(area) * w)))
    top = min(h - bh, int(u[0] * (h - bh + 1)))
    left = min(w - bw, int(u[1] * (w - bw + 1)))
    return top, left, bh, bw


def _visual_occlusion(x: np.ndarray, idx: np.ndarray, area: float, draws: ItemDraws, raw: np.dtype) -> np.ndarray:
    """A black box covering ``area`` of every frame of a clip, at one random place per clip (all frames)."""
    out = x.copy()
    h, w = x.shape[-2:]
    for b, i in enumerate(idx):
        top, left, bh, bw = _occlusion_box(h, w, area, draws.uniform(i, 2))
        out[b, ..., top : top + bh, left : left + bw] = 0.0
    return out


def _visual_noise(x: np.ndarray, idx: np.ndarray, sigma: float, draws: ItemDraws, raw: np.dtype) -> np.ndarray:
    """Gaussian pixel noise of std ``sigma`` in [0, 1] intensity units (uint8 frames: clipped back to [0, 1])."""
    out = np.empty_like(x)
    for b, i in enumerate(idx):
        out[b] = x[b] + sigma * draws.normal(i, x[b].shape)
    if raw == np.uint8:
        np.clip(out, 0.0, 1.0, out=out)
    return out


def _missing(x: np.ndarray, idx: np.ndarray, fraction: float, draws: ItemDraws, raw: np.dtype) -> np.ndarray:
    """The first ``round(fraction * N)`` clips of the seeded order get an all-zero input (the modality is absent)."""
    out = x.copy()
    out[draws.rank[idx] < int(round(fraction * draws.n_items))] = 0.0
    return out


@dataclass(frozen=True)
class Level:
    """One corruption level: its key label, the corruption's parameter and its severity (0 = clean)."""

    label: str
    param: float
    severity: float


@dataclass(frozen=True)
class Corruption:
    """A corruption of one modality's test input, its levels (mildest first) and the metrics measured under it."""

    name: str
    modality: str  # "audio" or "visual": the embedding kind whose input is corrupted
    apply: CorruptFn
    levels: tuple[Level, ...]
    metrics: tuple[str, ...]
    description: str
    severity: str  # what the severity axis is, for the protocol text


def _snr_level(db: float) -> Level:
    return Level(f"{db:g}dB", db, 10.0 ** (-db / 20.0))


def _pct_level(frac: float) -> Level:
    return Level(f"{frac * 100:g}%", frac, frac)


#: the corruptions, in report order; names and level labels are the metric keys' contract
CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in (
    Corruption("audio_snr", "audio", _audio_snr, tuple(_snr_level(d) for d in (20.0, 10.0, 5.0, 0.0)), ("mAP", "ACC"),
               "additive white Gaussian noise on the audio features at an SNR relative to each clip's feature "
               "power mean(x^2)", "noise RMS / feature RMS = 10^(-SNR/20)"),
    Corruption("visual_occlusion", "visual", _visual_occlusion, tuple(_pct_level(f) for f in (0.25, 0.5, 0.75)),
               ("mAP", "ACC"), "a black box of the frame's aspect ratio covering the given share of the frame area, "
               "one random place per clip, the same in all its frames", "occluded share of the frame"),
    Corruption("visual_noise", "visual", _visual_noise, tuple(Level(f"{s:g}", s, s) for s in (0.1, 0.2, 0.4)),
               ("mAP", "ACC"), "additive Gaussian pixel noise of the given std in [0, 1] intensity units, uint8 "
               "frames clipped back to [0, 1]", "the noise std"),
    Corruption("missing_audio", "audio", _missing, tuple(_pct_level(f) for f in (0.5, 1.0)), ("ACC",),
               "the audio input of the given share of test clips replaced by zeros (fused probe)",
               "share of clips without audio"),
    Corruption("missing_visual", "visual", _missing, tuple(_pct_level(f) for f in (0.5, 1.0)), ("ACC",),
               "the visual input of the given share of test clips replaced by zeros (fused probe)",
               "share of clips without frames"),
)}


def level_key(metric: str, corruption: str, level: str) -> str:
    """``<metric>@<corruption>=<level>``, e.g. ``mAP@audio_snr=10dB``."""
    return f"{metric}@{corruption}={level}"


def clean_key(metric: str) -> str:
    """``<metric>@clean``: the curves' common first point."""
    return f"{metric}@clean"


def auc_key(corruption: str, metric: str | None = None) -> str:
    """``AUC_<corruption>`` (mean over the corruption's metrics) or ``AUC_<metric>@<corruption>`` (one curve)."""
    return f"AUC_{corruption}" if metric is None else f"AUC_{metric}@{corruption}"


MAIN_SCORE = "mean_AUC"


def _metric_table() -> dict[str, MetricSpec]:
    def spec(name: str, description: str) -> MetricSpec:
        return MetricSpec(name, True, description, unit="fraction", lower=0.0, upper=1.0)

    out = {MAIN_SCORE: spec(MAIN_SCORE, f"mean of {', '.join(auc_key(c) for c in CORRUPTIONS)}")}
    for c in CORRUPTIONS.values():
        out[auc_key(c.name)] = spec(auc_key(c.name), f"mean over {', '.join(c.metrics)} of the normalized area under "
                                    f"the metric-vs-severity curve of {c.name} (clean point included)")
    for c in CORRUPTIONS.values():
        for m in c.metrics:
            out[auc_key(c.name, m)] = spec(auc_key(c.name, m), f"normalized area under the {m} curve of {c.name} "
                                           f"over severity ({c.severity}), clean point included")
    for m, desc in BASE_METRICS.items():
        out[clean_key(m)] = spec(clean_key(m), f"{desc}, clean test inputs")
    for c in CORRUPTIONS.values():
        for m in c.metrics:
            for lv in c.levels:
                out[level_key(m, c.name, lv.label)] = spec(level_key(m, c.name, lv.label),
                                                           f"{BASE_METRICS[m]}; test {c.modality} input: {c.description}"
                                                           f", level {lv.label}")
    return out


METRICS: dict[str, MetricSpec] = _metric_table()


def corrupt_batch(corruption: Corruption, level: Level, split: AVSplit, idx: np.ndarray, draws: ItemDraws,
                  device: str = "cpu") -> torch.Tensor:
    """The model input of ``split``'s items ``idx`` under ``corruption`` at ``level`` (float32 on ``device``).

    The clean batch is what the model sees without corruption (``audio_batch`` / ``visual_batch``:
    uint8 frames scaled to [0, 1]); the corruption is applied to it in numpy, item by item.
    """
    clean_fn, raw = (audio_batch, split.audio) if corruption.modality == "audio" else (visual_batch, split.visual)
    clean = clean_fn(split, idx, "cpu").numpy()
    out = corruption.apply(clean, np.asarray(idx), level.param, draws, np.dtype(getattr(raw, "dtype", np.float32)))
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).to(device)


def _embed_corrupted(model: Any, split: AVSplit, corruption: Corruption, level: Level, draws: ItemDraws,
                     device: str) -> np.ndarray:
    """Embeddings of the corrupted test split (``embed_batches``: validated, never cached)."""
    kind = corruption.modality

    def feed(s: AVSplit, idx: np.ndarray, dev: str) -> torch.Tensor:
        return corrupt_batch(corruption, level, s, idx, draws, dev)

    parts = [out[kind].numpy() for _, out in embed_batches(model, split, kind, batch_size=_EMBED_BATCH, device=device,
                                                            inputs={kind: feed})]
    return np.concatenate(parts)


def _fused(audio: np.ndarray, visual: np.ndarray) -> np.ndarray:
    """The classification task's fused view: concatenated L2-normalised audio and visual embeddings."""
    return np.concatenate([_l2_normalize(audio), _l2_normalize(visual)], axis=1)


def _unit_or_zero(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; an all-zero row stays zero (cosine 0 with everything, as
    ``sklearn.metrics.pairwise.cosine_similarity``). Rows are first divided by their largest
    magnitude, so squaring neither over- nor underflows."""
    peak = np.max(np.abs(x), axis=1, keepdims=True)
    y = np.divide(x, peak, out=np.zeros_like(x, dtype=np.float64), where=peak > 0)
    norm = np.sqrt(np.einsum("ij,ij->i", y, y))[:, None]
    return np.divide(y, norm, out=np.zeros_like(y), where=norm > 0)


def corrupted_map(audio: np.ndarray, visual: np.ndarray, labels: np.ndarray, *,
                  source: str = "robustness") -> tuple[float, np.ndarray]:
    """Retrieval ``mAP`` (mean of a2v and v2a) and the AP of every query (a2v, then v2a).

    ``audio`` / ``visual`` (N, D) are paired (row ``i`` of both is test clip ``i``, class
    ``labels[i]``). The retrieval task's metric (cosine similarity, class-level relevance, the
    retrieval metric module's pessimistic-tie :func:`~tasks.retrieval.metrics.average_precision`),
    except that an embedding of zero norm is scored, not refused: a corrupted input may
    legitimately embed to zero (a linear model's embedding of an all-black frame), and such an
    item then has cosine similarity 0 with every other, i.e. carries no information. On inputs
    without zero rows this equals the retrieval task's ``mAP``.
    """
    a, v = _unit_or_zero(audio), _unit_or_zero(visual)
    sim = a @ v.T
    rel = labels[:, None] == labels[None, :]
    a2v = average_precision(sim, rel, source=source)
    v2a = average_precision(sim.T, rel.T, source=source)
    # both sides carry the same labels, so every query has a relevant item (its own pair): no NaN AP
    return float((a2v.mean() + v2a.mean()) / 2.0), np.concatenate([a2v, v2a])


def _auc_weights(severities: list[float]) -> np.ndarray:
    """``w`` with ``normalized_auc(severities, v) == w @ v`` (the AUC is linear in the values)."""
    n = len(severities)
    return np.array([normalized_auc(severities, np.eye(n)[j]) for j in range(n)])


#: the evaluation protocol (``list tasks``, every record's ``task_meta.protocol``)
PROTOCOL = (
    "Protocol (frozen embeddings, corrupted test inputs): the model embeds the clean train, val and test "
    "splits (the retrieval and classification tasks' embeddings, read from the cell's cache). A multinomial "
    "logistic-regression probe (the classification task's: standardised fused view, C chosen on val; "
    "probe=mlp: its MLP probe) is trained once on the clean train split. Then the test inputs of one modality "
    "are corrupted, re-embedded by the model (never cached) and scored, the other modality staying clean: "
    "retrieval mAP (cosine, class-level relevance, both directions; an embedding of zero norm, e.g. of an "
    "all-black frame, has cosine 0 with everything) and the fused probe's top-1 ACC. "
    + " ".join(f"{c.name} ({', '.join(c.metrics)}; levels {', '.join(lv.label for lv in c.levels)}): "
               f"{c.description}; severity = {c.severity}." for c in CORRUPTIONS.values())
    + " Corruption noise, box places and the clips that lose a modality are drawn per test item from the run "
    "seed (the same draws at every level). Keys: <metric>@<corruption>=<level>, <metric>@clean, "
    "AUC_<metric>@<corruption> the area under the curve of the metric over the severity axis rescaled to [0, 1], "
    "clean point included (trapezoidal rule: the curve's mean over the severity range, the clean value for a "
    "model that does not degrade), AUC_<corruption> the mean of its metrics' AUCs, and the main score mean_AUC "
    "the mean of the AUC_<corruption>. Run-only: there is no score format (the corruption happens between the "
    "suite's data and the model). Needs both modalities and image frames."
)

RUN_ONLY = ("robustness is run-only: the suite corrupts the test inputs and re-embeds them with the model, so "
            "stored outputs cannot be scored; run it with `run --tasks robustness` or `submit --model`")


class RobustnessTask(Task):
    name = "robustness"
    version = "2"  # 2: zero-norm embeddings of corrupted inputs are scored (cosine 0), not refused
    metadata = TaskMetadata(
        name="robustness",
        main_score=MAIN_SCORE,
        headline=(MAIN_SCORE, *(auc_key(c) for c in CORRUPTIONS)),
        metrics=METRICS,
        protocol=PROTOCOL,
        pred_format="none (run-only: the suite corrupts the test inputs and re-embeds them with the model)",
        ref_format="none (run-only)",
        needs=(),
    )

    def supports(self, model: Any, spec: Any, split: Any) -> str | None:
        if model is None:
            return "robustness is run-only (it re-embeds corrupted inputs with the model)"
        if spec.extra.get("audio_only", False):
            return f"dataset '{spec.name}' is audio-only (robustness corrupts and probes both modalities)"
        if not spec.visual_is_image:
            return f"dataset '{spec.name}' has no image frames (visual occlusion and pixel noise need them)"
        return super().supports(model, spec, split)

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> TaskResult:
        spec = dataset.spec
        probe = probe_option(ctx, self.name)
        num_classes = int(spec.num_classes)
        splits, labels = labelled_splits(dataset)
        test, y = splits["test"], labels["test"]

        # clean embeddings: the cache's (same kinds, batch size and dtype as classification / retrieval)
        clean = {name: {kind: embed_split(model, s, kind, batch_size=_EMBED_BATCH, device=ctx.device)
                        for kind in ("audio", "visual")} for name, s in splits.items()}

        # the clean test split, then every (corruption, level): that modality re-embedded, the other one clean
        variants: list[tuple[str, str, tuple[str, ...], dict[str, np.ndarray]]] = [
            ("", "", tuple(BASE_METRICS), clean["test"])]
        coverage: dict[str, list[float]] = {}
        for c in CORRUPTIONS.values():
            draws = ItemDraws(ctx.seed, c.name, len(test))
            for lv in c.levels:
                emb = {**clean["test"], c.modality: _embed_corrupted(model, test, c, lv, draws, ctx.device)}
                variants.append((c.name, lv.label, c.metrics, emb))
            if c.apply is _visual_occlusion:
                h, w = np.shape(test.visual)[-2:]
                boxes = [_occlusion_box(h, w, lv.param, np.zeros(2)) for lv in c.levels]
                coverage[c.name] = [bh * bw / (h * w) for _, _, bh, bw in boxes]

        # the probe, fit once on clean train / val, scores the stacked test variants
        fused = {name: _fused(e["audio"], e["visual"]) for name, e in clean.items()}
        stacked = np.concatenate([_fused(e["audio"], e["visual"]) for *_, e in variants])
        args = (fused["train"], labels["train"], fused["val"], labels["val"], stacked, num_classes)
        if probe == "linear":
            scores, probe_info = linear_probe(*args)
        else:
            scores, probe_info = mlp_probe(*args, seed=ctx.seed, device=ctx.device, epochs=50 if ctx.quick else 100)
        n = len(test)

        metrics: dict[str, float] = {}
        per_item: dict[str, np.ndarray] = {}  # metric key -> its per-item values (mean = the metric)
        for j, (cname, label, names, emb) in enumerate(variants):
            block = scores[j * n : (j + 1) * n]
            for m in names:
                key = level_key(m, cname, label) if cname else clean_key(m)
                if m == "mAP":
                    metrics[key], per_item[key] = corrupted_map(emb["audio"], emb["visual"], y,
                                                                source=f"robustness {key}")
                else:
                    metrics[key] = classification_metrics(y, scores=block, num_classes=num_classes,
                                                          source=f"robustness {key}")["ACC"]
                    per_item[key] = (np.argmax(block, axis=1) == y).astype(np.float64)

        for c in CORRUPTIONS.values():
            sev = [0.0, *(lv.severity for lv in c.levels)]
            w = _auc_weights(sev)
            for m in c.metrics:
                curve = [metrics[clean_key(m)], *(metrics[level_key(m, c.name, lv.label)] for lv in c.levels)]
                metrics[auc_key(c.name, m)] = normalized_auc(sev, curve, source=f"robustness {c.name}")
                rows = np.stack([per_item[clean_key(m)], *(per_item[level_key(m, c.name, lv.label)]
                                                           for lv in c.levels)], axis=1)
                per_item[auc_key(c.name, m)] = rows @ w
            metrics[auc_key(c.name)] = float(np.mean([metrics[auc_key(c.name, m)] for m in c.metrics]))
        metrics[MAIN_SCORE] = float(np.mean([metrics[auc_key(c)] for c in CORRUPTIONS]))

        ordered = {k: metrics[k] for k in METRICS if k in metrics}
        items = {k: per_item[k].tolist() for k in ordered if k in per_item}
        probe_desc = ("multinomial logistic regression (L2, C on val)" if probe == "linear"
                      else "1-hidden-layer MLP (AdamW, early stop on val)")
        config = {
            "probe": probe, "probe_fit": probe_info, "train_split": "train", "selection_split": "val", "split": "test",
            "fused": "concat of L2-normalised audio and visual", "retrieval": "cosine, class-level relevance",
            "corruptions": {c.name: {"modality": c.modality, "levels": [lv.label for lv in c.levels],
                                     "params": [lv.param for lv in c.levels],
                                     "severities": [lv.severity for lv in c.levels], "metrics": list(c.metrics),
                                     "severity_axis": c.severity} for c in CORRUPTIONS.values()},
            "occlusion_coverage": coverage, "noise_seed": f"per item: (seed={ctx.seed}, crc32(corruption), item)",
            "corrupted_embeddings_cached": False, "auc": "trapezoidal over severity rescaled to [0, 1], clean included",
        }
        protocol = (f"frozen embeddings; {probe_desc} on the clean fused train view; test inputs corrupted "
                    f"({', '.join(CORRUPTIONS)}) and re-embedded; mAP and ACC per level, normalized AUC per curve")
        return TaskResult(metrics=ordered, protocol=protocol, config=config, item_metrics=items)

    def score(self, pred: dict[str, np.ndarray], ref: dict[str, np.ndarray], *, pred_source: str = "pred",
              ref_source: str = "ref") -> dict[str, float]:
        raise ConfigError(RUN_ONLY)

    def export_reference(self, dataset: Any, split: str = "test") -> dict[str, np.ndarray]:
        raise ConfigError(RUN_ONLY)
