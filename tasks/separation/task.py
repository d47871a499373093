"""Visually guided sound separation (mix-and-separate): SDR, SIR, SAR and NSDR.

The protocol text is :data:`PROTOCOL` (written into every record via ``metadata``).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch import nn

from avcl_bench.benchmark.arrays import check_array, check_finite_metrics, require
from avcl_bench.benchmark.datasets.base import AVSplit, visual_batch
from avcl_bench.benchmark.embedding import embed_split
from avcl_bench.benchmark.errors import ConfigError, InputError
from avcl_bench.benchmark.training import minibatches, train_early_stopping

from ..base import EvalContext, MetricSpec, Task, TaskMetadata, TaskResult
from .metrics import FILTER_LENGTH, bss_eval_batch, separation_metrics
from .metrics import METRICS as _METRICS

METRICS: dict[str, MetricSpec] = {
    **_METRICS,
    "skipped": MetricSpec("skipped", False, "mixtures left out by Sound of Pixels' rule (a source or estimate with "
                          "sum|x| <= 1e-5); 0 with the option score_silent=true", unit="count", lower=0.0),
}

#: Sound of Pixels' evaluation scores a mixture only when every source and every estimate
#: has ``sum(|x|) > SILENCE_THRESHOLD`` (``calc_metrics`` of its ``main.py``)
SILENCE_THRESHOLD = 1e-5
#: the task option that scores near-silent mixtures instead of skipping them
SCORE_SILENT_OPTION = "score_silent"

#: Seed of the fixed test/validation pairing (independent of the run seed, so that every
#: model and every reference row is scored on the same mixtures).
PAIR_SEED = 20180411
#: At most this many test mixtures are scored (BSS eval costs ~50 ms per mixture on a core).
MAX_TEST_MIXTURES = 200
#: At most this many validation mixtures drive the head's model selection.
MAX_VAL_MIXTURES = 100
#: STFT window and hop in seconds (n_fft is the nearest power of two of the window).
WINDOW_SECONDS = 0.064
HOP_FRACTION = 4
_CACHE_SIZE = 8


# ----------------------------------------------------------------------------- the silence rule
def skipped_mixtures(estimates: np.ndarray, sources: np.ndarray, threshold: float = SILENCE_THRESHOLD) -> np.ndarray:
    """``(N,)`` bool: mixtures Sound of Pixels leaves out of its means.

    ``estimates`` and ``sources`` are ``(N, S, L)``; mixture ``n`` is skipped when any of its
    sources or estimates has ``sum(|x|) <= threshold`` (the sums in float64).
    """
    quiet_src = np.abs(np.asarray(sources, dtype=np.float64)).sum(axis=-1) <= threshold
    quiet_est = np.abs(np.asarray(estimates, dtype=np.float64)).sum(axis=-1) <= threshold
    return quiet_src.any(axis=-1) | quiet_est.any(axis=-1)


def score_silent_option(options: dict[str, Any]) -> bool:
    """The ``score_silent`` task option: ``true`` scores every mixture, ``false`` (default) skips as SoP."""
    value = options.get(SCORE_SILENT_OPTION, False)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ConfigError(f"separation: option {SCORE_SILENT_OPTION} must be true or false, got {value!r}")


def _kept(estimates: np.ndarray, sources: np.ndarray, score_silent: bool, source: str,
          ref_source: str | None = None) -> np.ndarray:
    """Indices of the mixtures to score; every mixture when ``score_silent``.

    When the rule leaves nothing, the error blames the sources (``ref_source``) if their quiet
    signals alone skip every mixture, else the estimates (``source``).
    """
    if score_silent:
        return np.arange(len(sources))
    keep = np.flatnonzero(~skipped_mixtures(estimates, sources))
    if keep.size == 0:
        by_sources = skipped_mixtures(np.ones_like(sources[:, :, :1]), sources).all()
        blame, field, what = ((source if ref_source is None else ref_source, "sources", "source") if by_sources
                              else (source, "estimates", "source or estimate"))
        raise InputError(blame, field,
                         f"all {len(sources)} mixtures have a {what} with sum|x| <= {SILENCE_THRESHOLD:g} and are "
                         f"skipped (Sound of Pixels' rule): nothing to score; the task option "
                         f"{SCORE_SILENT_OPTION}=true scores them")
    return keep


# ----------------------------------------------------------------------------- mixtures
def mixture_pairs(labels: np.ndarray, *, seed: int = PAIR_SEED, max_pairs: int | None = None) -> np.ndarray:
    """Fixed ``(M, 2)`` pairs of clip indices of different classes, each clip used at most once.

    Clips are shuffled, stably sorted by class and clip ``k`` is paired with clip
    ``k + n // 2``: a class that holds at most half of the clips occupies a contiguous run
    shorter than the offset, so both members of a pair always differ in class. When one
    class holds more than half of the clips, the same-class pairs are dropped. Pair order
    and which clip is source 0 are shuffled by ``seed``.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    n = len(labels)
    half = n // 2
    perm = rng.permutation(n)
    order = perm[np.argsort(labels[perm], kind="stable")]
    pairs = np.stack([order[:half], order[half : 2 * half]], axis=1)
    pairs = pairs[labels[pairs[:, 0]] != labels[pairs[:, 1]]]
    pairs = pairs[rng.permutation(len(pairs))]
    swap = rng.random(len(pairs)) < 0.5
    pairs[swap] = pairs[swap, ::-1]
    if max_pairs is not None:
        pairs = pairs[:max_pairs]
    return pairs.astype(np.int64)


def random_partners(labels: np.ndarray, rng: np.random.Generator, tries: int = 32) -> np.ndarray:
    """``(N, 2)`` training pairs: every clip once as the target, with a random other-class partner.

    Partners are drawn uniformly and redrawn while they share the target's class; targets
    still without a partner after ``tries`` draws (a class holding nearly all clips) are dropped.
    """
    labels = np.asarray(labels)
    n = len(labels)
    targets = rng.permutation(n)
    partners = rng.integers(0, n, size=n)
    for _ in range(tries):
        same = labels[partners] == labels[targets]
        if not same.any():
            break
        partners[same] = rng.integers(0, n, size=int(same.sum()))
    keep = labels[partners] != labels[targets]
    return np.stack([targets[keep], partners[keep]], axis=1).astype(np.int64)


def stft_params(sample_rate: int) -> tuple[int, int]:
    """``(n_fft, hop)``: a power-of-two window near 64 ms and a quarter of it as hop."""
    n_fft = 2 ** max(4, round(math.log2(WINDOW_SECONDS * sample_rate)))
    return n_fft, n_fft // HOP_FRACTION


class _Spectral:
    """STFT / inverse STFT with fixed parameters (Hann window, centred frames)."""

    def __init__(self, sample_rate: int, device: torch.device | str = "cpu"):
        self.n_fft, self.hop = stft_params(sample_rate)
        self.window = torch.hann_window(self.n_fft, device=device)

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def stft(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., L)`` real signals -> ``(..., F, T)`` complex spectra."""
        flat = x.reshape(-1, x.shape[-1])
        spec = torch.stft(flat, self.n_fft, hop_length=self.hop, window=self.window.to(x.dtype), center=True,
                          return_complex=True)
        return spec.reshape(*x.shape[:-1], *spec.shape[-2:])

    def stft_chunked(self, x: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """:meth:`stft` of ``(N, ..., L)`` signals, ``chunk`` items at a time (bounded temporaries)."""
        return torch.cat([self.stft(x[lo : lo + chunk]) for lo in range(0, len(x), chunk)]) if len(x) else self.stft(x)

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """``(..., F, T)`` complex spectra -> ``(..., length)`` signals (mixture phase kept)."""
        flat = spec.reshape(-1, *spec.shape[-2:])
        window = self.window.to(flat.real.dtype)
        x = torch.istft(flat, self.n_fft, hop_length=self.hop, window=window, center=True, length=length)
        return x.reshape(*spec.shape[:-2], length)


def _scored_pairs(split: AVSplit, max_pairs: int) -> np.ndarray:
    """:func:`mixture_pairs` of a split's audible clips (BSS eval is undefined for a silent source)."""
    audible = np.flatnonzero(np.any(np.asarray(split.sources) != 0, axis=-1))
    return audible[mixture_pairs(np.asarray(split.labels)[audible], max_pairs=max_pairs)]


def _pair_sources(split: AVSplit, pairs: np.ndarray) -> np.ndarray:
    """``(M, 2, L)`` float64 clean sources of the pairs."""
    flat = pairs.reshape(-1)
    uniq, inverse = np.unique(flat, return_inverse=True)
    block = np.asarray(split.sources[uniq], dtype=np.float64)  # sorted unique rows: fine for lazy HDF5 too
    return block[inverse].reshape(len(pairs), 2, -1)


# ----------------------------------------------------------------------------- the mask head
class MaskHead(nn.Module):
    """Ratio-mask predictor: 1-D convolutions over STFT frames with FiLM visual conditioning.

    Input ``(B, F, T)`` standardised log-magnitudes (frequency bins as channels) and a
    ``(B, D)`` visual embedding; output ``(B, F, T)`` masks in (0, 1). The embedding scales
    and shifts the hidden channels of both hidden layers (``h * (1 + gamma) + beta``), the
    conditioning Sound of Pixels applies as a channel-wise product.
    """

    def __init__(self, bins: int, dim: int, hidden: int = 64, kernel: int = 3):
        super().__init__()
        pad = kernel // 2
        self.inp = nn.Conv1d(bins, hidden, kernel, padding=pad)
        self.mid = nn.Conv1d(hidden, hidden, kernel, padding=pad)
        self.out = nn.Conv1d(hidden, bins, 1)
        self.film = nn.Linear(dim, 4 * hidden)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def logits(self, logmag: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """The masks before the sigmoid (training takes its BCE from them, stable and fast)."""
        g1, b1, g2, b2 = self.film(visual)[..., None].chunk(4, dim=1)
        h = torch.relu(self.inp(logmag) * (1 + g1) + b1)
        h = torch.relu(self.mid(h) * (1 + g2) + b2)
        return self.out(h)

    def forward(self, logmag: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(logmag, visual))


def _log_magnitude(spec: torch.Tensor) -> torch.Tensor:
    return torch.log(spec.abs() + 1e-3)


def _ideal_ratio_masks(specs: torch.Tensor) -> torch.Tensor:
    """``|S_i| / sum_j |S_j|`` for ``(..., S, F, T)`` source spectra (1/S where all are zero)."""
    return _ratio_masks(specs.abs())


def _ratio_masks(mag: torch.Tensor) -> torch.Tensor:
    """:func:`_ideal_ratio_masks` from the sources' magnitudes ``(..., S, F, T)``."""
    total = mag.sum(dim=-3, keepdim=True)
    share = mag / total.clamp_min(1e-12)
    return torch.where(total > 0, share, torch.full_like(share, 1.0 / mag.shape[-3]))


# ----------------------------------------------------------------------------- task
#: the evaluation protocol (``list tasks``, every record's ``task_meta.protocol``)
PROTOCOL = (
    "Protocol (frozen visual embeddings + suite-trained mask head), as Sound of Pixels (Zhao et al., "
    "2018): two test clips of different classes are mixed (mixture = clean source 1 + clean source 2); "
    "the head sees the mixture's log-magnitude STFT (Hann window of 64 ms, hop 16 ms, n_fft 256 / hop 64 "
    "at 4 kHz) and the model's frozen ``embed_visual`` of the clip whose sound is wanted (FiLM "
    "conditioning), predicts a ratio mask in [0, 1] per time-frequency bin, and the source is rebuilt "
    "with the mixture phase (inverse STFT). The head (1-D convolutions over time, frequency bins as "
    "channels) is trained on train mixtures re-paired every epoch with a log-magnitude-weighted BCE to "
    "the ideal ratio mask, keeping the epoch of lowest validation loss. Scored with BSS-eval v3 "
    "(mir_eval-equivalent, known source order) on fixed test mixtures: each test clip appears once (clips "
    "sorted by class and paired half-way apart, at most 200 mixtures); as the official evaluation, a mixture "
    "with a source or an estimate of sum|x| <= 1e-5 is skipped and counted (``skipped``; the task option "
    "``score_silent=true`` scores them). A model with the ``separation`` "
    "capability is scored with its own ``separate`` instead. References: the ideal ratio mask (oracle) "
    "and the unprocessed mixture."
)


class SeparationTask(Task):
    """Mix-and-separate sound separation guided by the visual embedding of the wanted clip.

    ``score`` formats: PRED ``estimates`` ``(N, S, L)`` (estimate ``[n, j]`` is meant for
    source ``j`` of mixture ``n``), REF ``sources`` ``(N, S, L)`` and optionally
    ``mixtures`` ``(N, L)`` (needed for NSDR), ``S >= 2``. :meth:`export_reference` writes
    the REF arrays of the fixed test mixtures; :meth:`export_inputs` the mixtures and the
    frames of each source's clip an external model needs to produce ``estimates``.
    """

    name = "separation"
    version = "2"  # 2: Sound of Pixels' silence rule (near-silent mixtures skipped, counted in `skipped`)
    metadata = TaskMetadata(
        name="separation",
        main_score="SDR",
        headline=("SDR", "SIR", "SAR", "NSDR"),
        metrics=METRICS,
        protocol=PROTOCOL,
        pred_format="estimates (N, S, L) float, estimate [n, j] of source j of mixture n",
        ref_format="sources (N, S, L) float, mixtures (N, L) float (optional, for NSDR)",
        needs=("sources",),
        reference_names=("oracle_irm", "mixture"),
    )

    #: head training settings (epochs are capped in quick mode)
    epochs: int = 20
    quick_epochs: int = 8
    patience: int = 5
    batch_size: int = 32
    lr: float = 3e-3
    hidden: int = 64
    kernel: int = 3

    def __init__(self) -> None:
        self._mix_cache: OrderedDict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()

    # ------------------------------------------------------------------ data
    def supports(self, model: Any, spec: Any, split: Any) -> str | None:
        why = super().supports(model, spec, split)
        if why is not None:
            return why
        if not spec.sample_rate:
            return f"dataset '{spec.name}' declares no sample rate for its sources"
        length = int(np.shape(split.sources)[-1])
        if length <= FILTER_LENGTH:
            return f"dataset '{spec.name}' sources of {length} samples are too short for BSS eval (> {FILTER_LENGTH})"
        if len(_scored_pairs(split, MAX_TEST_MIXTURES)) == 0:
            return f"dataset '{spec.name}' has no audible test clips of two different classes to mix"
        if model is not None and "separation" not in getattr(model, "capabilities", ()):
            if not callable(getattr(model, "embed_visual", None)):
                return "model has no embed_visual"
        return None

    def test_pairs(self, dataset: Any, split: str = "test") -> np.ndarray:
        """The fixed ``(M, 2)`` clip-index pairs of a split's scored mixtures (silent sources left out)."""
        return _scored_pairs(dataset.split(split), MAX_TEST_MIXTURES if split == "test" else MAX_VAL_MIXTURES)

    def export_reference(self, dataset: Any, split: str = "test") -> dict[str, np.ndarray]:
        """``sources`` ``(N, 2, L)`` and ``mixtures`` ``(N, L)`` (float32) of the fixed mixtures."""
        data = dataset.split(split)
        src = _pair_sources(data, self.test_pairs(dataset, split))
        return {"sources": src.astype(np.float32), "mixtures": src.sum(axis=1).astype(np.float32)}

    def export_inputs(self, dataset: Any, split: str = "test") -> dict[str, np.ndarray]:
        """What an external model needs: ``mixtures`` ``(N, L)``, ``visual`` ``(N, 2, T, C, H, W)``
        (the frames of the clip of source 0 and source 1 of each mixture, as stored),
        ``clip_index`` ``(N, 2)`` (their rows in the split) and ``sample_rate`` (a scalar)."""
        data = dataset.split(split)
        pairs = self.test_pairs(dataset, split)
        src = _pair_sources(data, pairs)
        flat = pairs.reshape(-1)
        uniq, inverse = np.unique(flat, return_inverse=True)
        frames = np.asarray(data.visual[uniq])[inverse]
        return {"mixtures": src.sum(axis=1).astype(np.float32),
                "visual": frames.reshape(len(pairs), 2, *frames.shape[1:]),
                "clip_index": pairs, "sample_rate": np.asarray(int(dataset.spec.sample_rate))}

    # ------------------------------------------------------------------ scoring
    def _mixture_bss(self, dataset: Any, split: str, sources: np.ndarray,
                     device: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """SDR, SIR, SAR ``(M, S)`` of the unprocessed mixture as every estimate, cached in-process.

        Every model's NSDR and the ``mixture`` reference row need them; the test mixtures are
        fixed per dataset, so they are computed once per (dataset, split).
        """
        key = (dataset.fingerprint(), split, self.version, sources.shape)
        if key not in self._mix_cache:
            mix = np.broadcast_to(sources.sum(axis=1, keepdims=True), sources.shape)
            self._mix_cache[key] = bss_eval_batch(mix, sources, device=device, source="mixture")
            while len(self._mix_cache) > _CACHE_SIZE:
                self._mix_cache.popitem(last=False)
        return self._mix_cache[key]

    @staticmethod
    def _summarise(sdr: np.ndarray, sir: np.ndarray, sar: np.ndarray, mix_sdr: np.ndarray,
                   skipped: int = 0) -> tuple[dict[str, float], dict[str, list[float]]]:
        """Means over (mixture, source), as ``separation_metrics``, and the ``skipped`` count;
        per-mixture items when finite."""
        per = {"SDR": sdr, "SIR": sir, "SAR": sar, "NSDR": sdr - mix_sdr}
        metrics = {k: float(np.mean(v)) for k, v in per.items()}
        metrics["skipped"] = float(skipped)
        items = {k: v.mean(axis=1).tolist() for k, v in per.items() if np.all(np.isfinite(v))}
        return metrics, items

    def _score_estimates(self, dataset: Any, split: str, estimates: np.ndarray, sources: np.ndarray,
                         device: str, source: str,
                         score_silent: bool = False) -> tuple[dict[str, float], dict[str, list[float]]]:
        """Metrics of the mixtures the silence rule keeps (all of them with ``score_silent``)."""
        keep = _kept(estimates, sources, score_silent, source)
        sdr, sir, sar = bss_eval_batch(estimates[keep], sources[keep], device=device, source=source)
        mix_sdr = self._mixture_bss(dataset, split, sources, device)[0][keep]
        return self._summarise(sdr, sir, sar, mix_sdr, len(sources) - len(keep))

    def score(self, pred: dict[str, np.ndarray], ref: dict[str, np.ndarray], *, pred_source: str = "pred",
              ref_source: str = "ref", score_silent: bool | str = False) -> dict[str, float]:
        """Metrics of stored estimates; mixtures with a near-silent source or estimate are
        skipped and counted in ``skipped`` as Sound of Pixels does, unless ``score_silent``."""
        score_silent = score_silent_option({SCORE_SILENT_OPTION: score_silent})  # `score --task-option` text too
        require(pred, pred_source, ("estimates",))
        require(ref, ref_source, ("sources",))
        est = check_array(pred["estimates"], pred_source, "estimates", ndim=3, kind="float")
        src = check_array(ref["sources"], ref_source, "sources", ndim=3, kind="float")
        if est.shape[0] != src.shape[0]:
            raise InputError(pred_source, "estimates", f"has {est.shape[0]} mixtures but {ref_source} sources has {src.shape[0]}")
        if est.shape[1:] != src.shape[1:]:
            raise InputError(pred_source, "estimates",
                             f"shape {est.shape} does not match {ref_source} sources {src.shape} (N, S, L)")
        if src.shape[1] < 2:
            raise InputError(ref_source, "sources", f"needs at least 2 sources per mixture, got S={src.shape[1]}")
        if score_silent:
            silent = ~np.any(src != 0, axis=-1)
            if silent.any():
                n, j = (int(i) for i in np.argwhere(silent)[0])
                raise InputError(ref_source, "sources", f"mixture {n}, source {j} is silent (all zeros): BSS eval is undefined")
        mix = None
        if "mixtures" in ref:
            mix = check_array(ref["mixtures"], ref_source, "mixtures", ndim=2, kind="float")
            if mix.shape != (src.shape[0], src.shape[2]):
                raise InputError(ref_source, "mixtures",
                                 f"expected shape {(src.shape[0], src.shape[2])} (N, L) to match sources, got {mix.shape}")
        keep = _kept(est, src, score_silent, pred_source, ref_source)
        metrics = separation_metrics(est[keep], src[keep], None if mix is None else mix[keep], source=pred_source,
                                     ref_source=ref_source)
        metrics["skipped"] = float(len(src) - len(keep))
        return check_finite_metrics(metrics, self.name)

    def references(self, dataset: Any, ctx: EvalContext) -> dict[str, dict[str, float]]:
        """``oracle_irm`` (ideal ratio masks on the mixture STFT) and ``mixture`` (no separation)."""
        sources = _pair_sources(dataset.split("test"), self.test_pairs(dataset))
        sp = _Spectral(int(dataset.spec.sample_rate))
        with torch.no_grad():
            specs = sp.stft(torch.from_numpy(sources))  # (M, 2, F, T) complex128
            mix_spec = specs.sum(dim=1, keepdim=True)
            oracle = sp.istft(_ideal_ratio_masks(specs) * mix_spec, length=sources.shape[-1]).numpy()
        score_silent = score_silent_option(ctx.options)
        out = {"oracle_irm": self._score_estimates(dataset, "test", oracle, sources, ctx.device, "oracle_irm",
                                                   score_silent)[0]}
        mix = np.broadcast_to(sources.sum(axis=1, keepdims=True), sources.shape)
        keep = _kept(mix, sources, score_silent, "mixture")
        sdr, sir, sar = (v[keep] for v in self._mixture_bss(dataset, "test", sources, ctx.device))
        out["mixture"] = self._summarise(sdr, sir, sar, sdr, len(sources) - len(keep))[0]
        return out

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> TaskResult:
        score_silent = score_silent_option(ctx.options)  # a bad value fails before any training
        test = dataset.split("test")
        pairs = self.test_pairs(dataset)
        sources = _pair_sources(test, pairs)
        mixtures = sources.sum(axis=1)
        sr = int(dataset.spec.sample_rate)
        n_fft, hop = stft_params(sr)
        config: dict[str, Any] = {"split": "test", "mixtures": int(len(pairs)), "pair_seed": PAIR_SEED,
                                  "sample_rate": sr, "bss_eval": "v3, known source order, 512-tap filters"}
        if "separation" in getattr(model, "capabilities", ()):
            estimates = self._own_separator(model, test, pairs, mixtures, sr, ctx)
            protocol = "model's own separator"
        else:
            estimates, head_cfg = self._mask_head(model, dataset, pairs, mixtures, ctx)
            protocol = "frozen visual embedding, suite-trained FiLM ratio-mask head on the mixture STFT"
            config.update({"stft": {"n_fft": n_fft, "hop": hop, "window": "hann"}, "head": head_cfg})
        metrics, items = self._score_estimates(dataset, "test", estimates, sources, ctx.device, "model output",
                                               score_silent)
        config["silence_rule"] = ("every mixture scored (score_silent=true)" if score_silent else
                                  f"Sound of Pixels: skip a mixture with a source or estimate of sum|x| <= {SILENCE_THRESHOLD:g}")
        config["skipped"] = int(metrics["skipped"])
        return TaskResult(metrics=metrics, protocol=protocol, config=config, item_metrics=items)

    def _own_separator(self, model: Any, split: AVSplit, pairs: np.ndarray, mixtures: np.ndarray, sr: int,
                       ctx: EvalContext) -> np.ndarray:
        """``(M, 2, L)`` estimates from ``model.separate(mixture, visual of source j's clip, sr)``."""
        m, length = mixtures.shape
        out = np.empty((m, 2, length))
        for lo in range(0, m, self.batch_size):
            sl = slice(lo, min(m, lo + self.batch_size))
            mix = torch.from_numpy(mixtures[sl]).float().to(ctx.device)
            for j in range(2):
                vis = visual_batch(split, pairs[sl, j], ctx.device)
                with torch.no_grad():
                    est = model.separate(mix, vis, sr)
                est = check_array(torch.as_tensor(est).detach().cpu().double().numpy(), "model output", "separate",
                                  ndim=2, kind="float")
                if est.shape != tuple(mix.shape):
                    raise InputError("model output", "separate", f"expected shape {tuple(mix.shape)} (B, L), got {est.shape}")
                out[sl, j] = est
        return out

    def _mask_head(self, model: Any, dataset: Any, test_pairs: np.ndarray, test_mix: np.ndarray,
                   ctx: EvalContext) -> tuple[np.ndarray, dict[str, Any]]:
        """Train the FiLM mask head on frozen visual embeddings; return test estimates and its config."""
        device = torch.device(ctx.device)
        train, val, test = dataset.split("train"), dataset.split("val"), dataset.split("test")
        emb = {name: embed_split(model, s, "visual", device=ctx.device)
               for name, s in (("train", train), ("val", val), ("test", test))}
        mu, sd = emb["train"].mean(axis=0), emb["train"].std(axis=0)
        sd = np.where(sd > 1e-8, sd, 1.0)
        emb = {k: torch.from_numpy((v - mu) / sd).float().to(device) for k, v in emb.items()}
        sp = _Spectral(int(dataset.spec.sample_rate), device)
        train_src = torch.from_numpy(np.asarray(train.sources, dtype=np.float32)).to(device)
        train_labels = np.asarray(train.labels)
        val_pairs = _scored_pairs(val, MAX_VAL_MIXTURES)
        val_src = torch.from_numpy(_pair_sources(val, val_pairs)).float().to(device)
        # The STFT is linear: each clean source's spectrum is computed once, and a training
        # mixture's spectrum is the sum of its sources' (what loss_of did at every step before).
        train_spec = sp.stft_chunked(train_src)
        val_spec = sp.stft_chunked(val_src)
        # so are their magnitudes, which the ideal ratio masks need (the mixture's is per step)
        train_mag, val_mag = train_spec.abs(), val_spec.abs()

        rng = np.random.default_rng([int(ctx.seed), PAIR_SEED])
        # input standardisation from a fixed draw of training mixtures
        with torch.no_grad():
            probe = random_partners(train_labels, np.random.default_rng(PAIR_SEED))[:256]
            logmag = _log_magnitude(sp.stft(train_src[probe[:, 0]] + train_src[probe[:, 1]]))
            in_mu, in_sd = float(logmag.mean()), float(logmag.std().clamp_min(1e-6))

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(ctx.seed))
            head = MaskHead(sp.bins, emb["train"].shape[1], hidden=self.hidden, kernel=self.kernel).to(device)
        opt = torch.optim.Adam(head.parameters(), lr=self.lr)

        def loss_of(specs: torch.Tensor, mags: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
            """Weighted BCE of the target (source 0) mask; weights log(1 + |mixture|) as SoP.

            ``specs``, ``mags``: ``(B, 2, F, T)`` spectra of the two sources of each mixture and
            their magnitudes. The BCE is taken from the head's logits (the same loss as the BCE
            of its sigmoid masks, without float32's saturation and about 5x faster on a CPU)."""
            mix_mag = specs.sum(dim=1).abs()
            target = _ratio_masks(mags)[:, 0]
            logit = head.logits((torch.log(mix_mag + 1e-3) - in_mu) / in_sd, vis)
            weight = torch.log1p(mix_mag).clamp(1e-3, 10.0)
            bce = nn.functional.binary_cross_entropy_with_logits(logit, target, reduction="none")
            return (weight * bce).sum() / weight.sum()

        def val_loss() -> float:
            head.eval()
            total = 0.0
            with torch.no_grad():
                for lo in range(0, len(val_pairs), self.batch_size):
                    sl = slice(lo, lo + self.batch_size)
                    for j in range(2):  # each source of a mixture is a target once
                        pair, mags = (val_spec[sl], val_mag[sl]) if j == 0 else (val_spec[sl].flip(1), val_mag[sl].flip(1))
                        total += float(loss_of(pair, mags, emb["val"][val_pairs[sl, j]])) * len(val_pairs[sl])
            return total / (2 * len(val_pairs))

        def train_loss(batch: np.ndarray) -> torch.Tensor:
            idx = torch.from_numpy(batch).to(device)
            return loss_of(train_spec[idx], train_mag[idx], emb["train"][idx[:, 0]])

        epochs = self.quick_epochs if ctx.quick else self.epochs
        # always float32, whatever --precision: under bf16 autocast this head lost 0.5-1.0 dB SDR on
        # every model over 3 seeds (1.0 dB, 8.9 seed stds, on the untrained random projection),
        # see benchmark/perf/README.md
        result = train_early_stopping(
            head, opt, lambda _: minibatches(random_partners(train_labels, rng), self.batch_size), train_loss,
            epochs=epochs, validate=lambda log: val_loss() if len(val_pairs) else log.last_loss,
            higher_is_better=False, min_delta=1e-6, patience=self.patience, min_batch=2,
            show_progress=ctx.progress, desc="train separation head", score_name="val_loss")

        estimates = np.empty((len(test_pairs), 2, test_mix.shape[1]))
        with torch.no_grad():
            for lo in range(0, len(test_pairs), self.batch_size):
                sl = slice(lo, lo + self.batch_size)
                mix = torch.from_numpy(test_mix[sl]).float().to(device)
                spec = sp.stft(mix)
                x = (_log_magnitude(spec) - in_mu) / in_sd
                for j in range(2):
                    mask = head(x, emb["test"][test_pairs[sl, j]])
                    estimates[sl, j] = sp.istft(mask * spec, length=test_mix.shape[1]).double().cpu().numpy()
        cfg = {"arch": f"conv1d({sp.bins}->{self.hidden}->{self.hidden}->{sp.bins}), kernel {self.kernel}, FiLM",
               "loss": "log(1+|X|)-weighted BCE to the ideal ratio mask", "optimizer": "Adam", "lr": self.lr,
               "batch_size": self.batch_size, "max_epochs": epochs, "patience": self.patience,
               "epochs_run": result.epochs_run,
               "best_val_loss": None if result.best_score is None else round(result.best_score, 6),
               "val_loss": [round(score, 5) for score in result.scores], "embedding": "embed_visual, standardised with train statistics"}
        return estimates, cfg

