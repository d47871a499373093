"""The baseline zoo: learned models spanning the survey's taxonomy (encoders x objectives x learning).

Each registered model combines one encoder of :mod:`baselines.encoders` (survey §3.1) with
one or more objectives of :mod:`baselines.objectives` (survey §3.2), follows one or more
Table 1 papers, and is either *supervised* (its loss reads the clip labels) or
*semi-supervised* in the survey's sense (it learns from audio-visual pairing alone and never
reads a label). Importing this module registers every model in
:data:`baselines.registry.MODELS`.

Model classes (all :class:`~baselines.base.EmbeddingModel` subclasses):

:class:`PairwiseModel`
    one pairwise metric-learning objective on the clip embeddings (InfoNCE, hinge, MMS with a
    margin schedule, triplet, N-pair, lifted).
:class:`ContrastivePairsModel`
    the contrastive loss on as many matched as mismatched (shifted) clip pairs.
:class:`MILNCEModel`
    MIL-NCE: a clip of one modality against the bag of the other modality's segments.
:class:`DCCAModel`
    deep CCA; the clip embeddings are the encoders' outputs projected on the canonical
    directions fitted on the train split after every epoch (Andrew et al.'s DCCA pipeline),
    so that cosine retrieval compares canonical variates.
:class:`ClassifierModel`
    cross-entropy through a classifier shared by both modalities, plus optional center loss
    and the L2 modality-invariance term (Zhen et al., 2019).
:class:`CoAttentionModel`, :class:`AutoencoderModel`, :class:`VAEModel`, :class:`GANModel`
    the encoders with auxiliary outputs (cross-attended features, reconstructions,
    posteriors, a modality discriminator) and the objectives that use them.

Every hyper-parameter (objective options, loss weights, segment sampling, training
settings) is returned by ``config()`` and so lands in the result records.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from avcl_bench.benchmark.datasets.base import AVSplit, audio_batch, visual_batch
from avcl_bench.benchmark.errors import ConfigError
from avcl_bench.benchmark.interface import DataSpec

from .base import Batch, EmbeddingModel, TrainConfig
from .encoders.gan import build_discriminator
from .objectives import (
    OBJECTIVES,
    CenterLoss,
    MarginSchedule,
    modality_confusion_loss,
    modality_discriminator_loss,
)
from .registry import register_model

SUPERVISED = "supervised"
SEMI_SUPERVISED = "semi-supervised"


# ============================================================================ base class
class ZooModel(EmbeddingModel):
    """An :class:`EmbeddingModel` whose loss is a weighted sum of registered objectives.

    Subclasses implement :meth:`loss_terms` (term name -> scalar loss of the batch; a term
    is one objective call, or several combined); ``weights`` scale the terms (missing names
    weigh 1) and :attr:`last_terms` keeps the latest unweighted values for diagnostics. ``objective_args`` holds the keyword
    options of each objective, passed on every call by :meth:`objective`.

    ``learning`` is ``"supervised"`` or ``"semi-supervised"``; only supervised models see
    labels: :meth:`labels` returns ``None`` for the others, so their objectives run on
    pairing alone. ``train_segments`` (optional) trains on a random subset of that many
    segments per clip, the same segments for both modalities (sparse segment sampling as in
    temporal segment networks); it cuts the cost of the visual front end and inference always
    uses every segment.
    """

    def __init__(self, spec: DataSpec, *, encoder: str, learning: str, dim: int = 64, hidden: int = 64,
                 train: TrainConfig | None = None, encoder_args: dict[str, Any] | None = None,
                 objective_args: dict[str, dict[str, Any]] | None = None, weights: dict[str, float] | None = None,
                 train_segments: int | None = None):
        if learning not in (SUPERVISED, SEMI_SUPERVISED):
            raise ConfigError(f"zoo: learning must be '{SUPERVISED}' or '{SEMI_SUPERVISED}', got {learning!r}")
        for field, value in (("dim", dim), ("hidden", hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"zoo: {field} must be a positive integer, got {value!r}")
        if train_segments is not None and (isinstance(train_segments, bool) or not isinstance(train_segments, int)
                                           or train_segments < 1):
            raise ConfigError(f"zoo: train_segments must be a positive integer or None, got {train_segments!r}")
        objective_args = {k: dict(v) for k, v in (objective_args or {}).items()}
        for name in objective_args:
            if name not in OBJECTIVES:
                raise ConfigError(f"zoo: unknown objective '{name}' in objective_args; known: {', '.join(OBJECTIVES)}")
        super().__init__(spec, encoder=encoder, dim=dim, hidden=hidden, train=train, encoder_args=encoder_args,
                         objective_args=objective_args)
        self.learning = learning
        self.weights = {k: float(v) for k, v in (weights or {}).items()}
        self.train_segments = train_segments
        self.last_terms: dict[str, float] = {}

    # ------------------------------------------------------------------ configuration
    def config(self) -> dict[str, Any]:
        return {**super().config(), "model_class": type(self).__name__, "learning": self.learning,
                "weights": dict(self.weights), "train_segments": self.train_segments}

    @property
    def supervised(self) -> bool:
        return self.learning == SUPERVISED

    def labels(self, batch: Batch) -> Tensor | None:
        """The batch labels for supervised models; ``None`` (never read) for the others."""
        return batch.labels if self.supervised else None

    def objective(self, name: str, *args: Any, **kwargs: Any) -> Tensor:
        """Call objective ``name`` with its configured options (``kwargs`` override them)."""
        return OBJECTIVES[name].fn(*args, **{**self.objective_args.get(name, {}), **kwargs})

    # ------------------------------------------------------------------ training
    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, batch: Batch) -> Tensor:
        if self.training and self.train_segments is not None:
            batch = sample_segments(batch, self.train_segments)
        terms = self.loss_terms(batch)
        self.last_terms = {k: float(v.detach()) for k, v in terms.items()}
        return sum(self.weights.get(k, 1.0) * v for k, v in terms.items())


def sample_segments(batch: Batch, k: int) -> Batch:
    """A batch restricted to ``k`` random segments per clip (sorted, shared by both modalities).

    Segment labels follow the sampled segments; the generator is torch's global one, so
    the draw is reproducible under :func:`~baselines.base.seed_everything`.
    """
    b, t = batch.audio.shape[:2]
    if k >= t:
        return batch
    idx = torch.rand(b, t, device=batch.audio.device).argsort(dim=1)[:, :k].sort(dim=1).values
    audio = torch.take_along_dim(batch.audio, idx[:, :, None], dim=1)
    visual = torch.take_along_dim(batch.visual, idx.reshape(b, k, *([1] * (batch.visual.dim() - 2))), dim=1)
    seg = None if batch.segment_labels is None else torch.take_along_dim(batch.segment_labels, idx, dim=1)
    return replace(batch, audio=audio, visual=visual, segment_labels=seg)


def _require_method(model: ZooModel, method: str, cls: str) -> None:
    """The towers must provide ``method`` (e.g. reconstructions for an auto-encoder model)."""
    for tower in (model.audio_encoder, model.visual_encoder):
        if not callable(getattr(tower, method, None)):
            raise ConfigError(f"zoo: {cls} needs an encoder whose towers have {method}(); '{model.encoder_id}' has not")


def _require_supervised(model: ZooModel, cls: str) -> None:
    """Models whose objectives need class labels cannot be registered as semi-supervised."""
    if not model.supervised:
        raise ConfigError(f"zoo: {cls} reads class labels, so its learning must be '{SUPERVISED}'")


# ============================================================================ pairwise objectives
class PairwiseModel(ZooModel):
    """One pairwise objective ``fn(a, v, labels)`` on the clip embeddings.

    ``margin_schedule`` (``{"start", "end", "mode"}``, MMS only) increases the margin of the
    objective over the epochs with :class:`~baselines.objectives.MarginSchedule`, as
    Ilharco et al. (2019) and Rouditchenko et al. (2020) do.
    """

    def __init__(self, spec: DataSpec, *, objective: str, margin_schedule: dict[str, Any] | None = None,
                 normalize: bool = False, **kw: Any):
        info = OBJECTIVES.get(objective)
        if info is None or info.kind != "pairwise":
            raise ConfigError(f"zoo: '{objective}' is not a pairwise objective")
        super().__init__(spec, **kw)
        self.objective_id = objective
        self.normalize = bool(normalize)
        self.margin_schedule = None if margin_schedule is None else dict(margin_schedule)
        self._schedule: MarginSchedule | None = None
        if self.margin_schedule is not None:
            MarginSchedule(**{"total_steps": 1, **self.margin_schedule})  # validate now, not mid-fit
            self.objective_args.setdefault(objective, {})["margin"] = float(self.margin_schedule["start"])

    def config(self) -> dict[str, Any]:
        return {**super().config(), "objective": self.objective_id, "margin_schedule": self.margin_schedule,
                "normalize": self.normalize}

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        if self.margin_schedule is not None:
            schedule = MarginSchedule(**{"total_steps": max(epochs - 1, 1), **self.margin_schedule})
            self.objective_args[self.objective_id]["margin"] = schedule(epoch)

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        a, v = _maybe_normalize(*self.encode_batch(batch), self.normalize)
        return {self.objective_id: self.objective(self.objective_id, a, v, self.labels(batch))}


def _maybe_normalize(a: Tensor, v: Tensor, normalize: bool) -> tuple[Tensor, Tensor]:
    """L2-normalised rows when ``normalize`` (distance-based objectives then act on cosine geometry)."""
    if not normalize:
        return a, v
    return nn.functional.normalize(a, dim=-1), nn.functional.normalize(v, dim=-1)


# ============================================================================ deep CCA
class DCCAModel(ZooModel):
    """Deep CCA (``dcca`` objective) with the linear CCA projection as the last layer.

    DCCA maximises the total canonical correlation of the two towers' outputs; the
    canonical directions themselves are a by-product of the whitening inside the loss. After
    every epoch the model embeds the train split, fits the regularised linear CCA of the two
    outputs (ridge ``r1``/``r2`` as the loss) and keeps the top ``cca_dim`` directions as
    buffers, each scaled by its canonical correlation; clip, segment and spatial embeddings are
    the centred outputs projected on them.
    Before the first fit the projection is the identity.
    """

    def __init__(self, spec: DataSpec, *, cca_dim: int | None = None, **kw: Any):
        super().__init__(spec, **kw)
        self.cca_dim = self.dim if cca_dim is None else int(cca_dim)
        if not 1 <= self.cca_dim <= self.dim:
            raise ConfigError(f"zoo: cca_dim must be in [1, {self.dim}], got {cca_dim!r}")
        eye = torch.eye(self.dim, self.cca_dim)
        self.register_buffer("mean_a", torch.zeros(self.dim))
        self.register_buffer("mean_v", torch.zeros(self.dim))
        self.register_buffer("proj_a", eye.clone())
        self.register_buffer("proj_v", eye.clone())

    def config(self) -> dict[str, Any]:
        return {**super().config(), "cca_dim": self.cca_dim}

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        a, v = self.encode_batch(batch)
        return {"dcca": self.objective("dcca", a, v)}

    @torch.no_grad()
    def on_epoch_end(self, epoch: int, train: AVSplit, device: torch.device) -> None:
        self.eval()
        a, v = [], []
        for idx in train.batches(256):
            a.append(self.audio_encoder(audio_batch(train, idx, device)).double().cpu())
            v.append(self.visual_encoder(visual_batch(train, idx, device)).double().cpu())
        args = self.objective_args.get("dcca", {})
        a, v = torch.cat(a), torch.cat(v)
        mean_a, mean_v, proj_a, proj_v = linear_cca(a, v, self.cca_dim,
                                                    r1=float(args.get("r1", 1e-3)), r2=float(args.get("r2", 1e-3)))
        # weight each canonical direction by its correlation on the train split, so that weak
        # (noisy) directions count less in cosine retrieval; label-free, like the rest of DCCA
        rho = (((a - mean_a) @ proj_a) * ((v - mean_v) @ proj_v)).mean(0).clamp_min(0)
        proj_a, proj_v = proj_a * rho, proj_v * rho
        for name, value in (("mean_a", mean_a), ("mean_v", mean_v), ("proj_a", proj_a), ("proj_v", proj_v)):
            getattr(self, name).copy_(value.to(getattr(self, name)))

    def _project(self, x: Tensor, which: str, channel_dim: int = -1) -> Tensor:
        mean, proj = (self.mean_a, self.proj_a) if which == "a" else (self.mean_v, self.proj_v)
        x = x.movedim(channel_dim, -1)
        return ((x - mean) @ proj).movedim(-1, channel_dim)

    def embed_audio(self, audio: Tensor) -> Tensor:
        return self._project(super().embed_audio(audio), "a")

    def embed_visual(self, visual: Tensor) -> Tensor:
        return self._project(super().embed_visual(visual), "v")

    def embed_audio_segments(self, audio: Tensor) -> Tensor:
        return self._project(super().embed_audio_segments(audio), "a")

    def embed_visual_segments(self, visual: Tensor) -> Tensor:
        return self._project(super().embed_visual_segments(visual), "v")

    def embed_visual_spatial(self, visual: Tensor) -> Tensor:
        return self._project(super().embed_visual_spatial(visual), "v", channel_dim=1)


def linear_cca(a: Tensor, v: Tensor, k: int, *, r1: float = 1e-3,
               r2: float = 1e-3) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Regularised linear CCA of ``(N, Da)`` and ``(N, Dv)``: means and the top-``k`` projections.

    With covariances ``C_aa + r1 I``, ``C_vv + r2 I`` and the SVD
    ``C_aa^{-1/2} C_av C_vv^{-1/2} = U S V^T``, the projections are ``C_aa^{-1/2} U_k`` and
    ``C_vv^{-1/2} V_k``: projected variates have unit variance and pairwise correlations
    ``S_k``, the largest ones first.
    """
    a, v = a.double(), v.double()
    mean_a, mean_v = a.mean(0), v.mean(0)
    ha, hv = a - mean_a, v - mean_v
    n = max(a.shape[0] - 1, 1)

    def inv_sqrt(h: Tensor, r: float) -> Tensor:
        cov = h.T @ h / n + r * torch.eye(h.shape[1], dtype=h.dtype)
        w, q = torch.linalg.eigh(cov)
        return q @ torch.diag(w.clamp_min(1e-12).rsqrt()) @ q.T

    wa, wv = inv_sqrt(ha, r1), inv_sqrt(hv, r2)
    u, _, vt = torch.linalg.svd(wa @ (ha.T @ hv / n) @ wv)
    return mean_a, mean_v, wa @ u[:, :k], wv @ vt.T[:, :k]


# ============================================================================ balanced contrastive pairs
class ContrastivePairsModel(ZooModel):
    """Contrastive loss on matched and mismatched clip pairs in equal numbers.

    The all-pairs form of the ``contrastive`` objective averages ``B`` matched pairs with
    ``B^2 - B`` mismatched ones, so once most negatives clear the margin the matched pairs'
    pull is diluted. As in audio-visual correspondence training [Hu et al., 2020], every clip
    here contributes one matched pair ``(a_i, v_i)`` and one mismatched pair
    ``(a_i, v_{(i+s) mod B})`` with a random cyclic shift ``1 <= s < B`` per batch
    (``pair_targets`` mode of the objective).
    """

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        a, v = self.encode_batch(batch)
        b = a.shape[0]
        shift = int(torch.randint(1, b, (1,)))
        targets = torch.cat([torch.ones(b, dtype=torch.bool), torch.zeros(b, dtype=torch.bool)]).to(a.device)
        loss = self.objective("contrastive", torch.cat([a, a]), torch.cat([v, v.roll(shift, dims=0)]),
                              pair_targets=targets)
        return {"contrastive": loss}


# ============================================================================ MIL-NCE
class MILNCEModel(ZooModel):
    """MIL-NCE: each clip against the bag of the other modality's segment embeddings.

    The positives of audio clip ``i`` are the T visual segment embeddings of clip ``i``
    (some of which show background only: the multiple-instance assumption is that at least
    one of them matches) and symmetrically for visual clips against audio segments; every
    segment of the other clips is a negative.
    """

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        a_seg = self.audio_encoder.segments(batch.audio)
        v_seg = self.visual_encoder.segments(batch.visual)
        a, v = self.audio_encoder.pool(a_seg), self.visual_encoder.pool(v_seg)
        b, t = a_seg.shape[:2]
        bags = torch.eye(b, dtype=torch.bool, device=a.device).repeat_interleave(t, dim=1)  # (B, B*T)
        a2v = self.objective("milnce", a, v_seg.flatten(0, 1), positives=bags)
        v2a = self.objective("milnce", v, a_seg.flatten(0, 1), positives=bags)
        return {"milnce": 0.5 * (a2v + v2a)}


# ============================================================================ classification
class ClassifierModel(ZooModel):
    """Cross-entropy through one linear classifier shared by both modalities (supervised).

    Sharing the classifier projects both modalities onto the same class directions, which
    is what makes the uni-modal embeddings comparable across modalities [Zhen et al., 2019].
    Optional terms (enabled by a positive weight): ``center`` (center loss with class
    centers shared by both modalities, :class:`~baselines.objectives.CenterLoss`) and
    ``l2`` (the modality-invariance term ``||f(x_a) - g(x_v)||^2`` on paired clips).
    """

    def __init__(self, spec: DataSpec, **kw: Any):
        super().__init__(spec, **kw)
        _require_supervised(self, "ClassifierModel")
        self.classifier = nn.Linear(self.dim, spec.num_classes)
        self.centers = CenterLoss(spec.num_classes, self.dim, **self.objective_args.get("center", {}))

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        a, v = self.encode_batch(batch)
        both, labels = torch.cat([a, v]), batch.labels.repeat(2)
        terms = {"ce": self.objective("ce", self.classifier(both), labels)}
        if self.weights.get("center", 0.0) > 0:
            terms["center"] = self.centers(both, labels)
        if self.weights.get("l2", 0.0) > 0:
            terms["l2"] = self.objective("l2", a, v)
        return terms


# ============================================================================ co-attention
class CoAttentionModel(ZooModel):
    """``co_attention`` towers trained with cross-entropy on uni- and cross-modal features.

    Per batch the towers' segment features attend to the other modality's features
    (cross-context, :meth:`~baselines.encoders.co_attention._CoAttentionEncoder.attend`)
    and to their own (self-context, the path ``embed_audio`` / ``embed_visual`` use); the
    four pooled results go through one shared classifier and the ``ce`` term is their mean
    [Duan et al., 2021]. :meth:`embed_av_segments` gives the cross-attended segment
    embeddings of paired inputs (for event localization with both modalities present).
    """

    def __init__(self, spec: DataSpec, **kw: Any):
        super().__init__(spec, **kw)
        _require_supervised(self, "CoAttentionModel")
        _require_method(self, "attend", "CoAttentionModel")
        self.classifier = nn.Linear(self.dim, spec.num_classes)

    def _attended(self, audio: Tensor, visual: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        fa, fv = self.audio_encoder.features(audio), self.visual_encoder.features(visual)
        enc_a, enc_v = self.audio_encoder, self.visual_encoder
        return enc_a.attend(fa, fa), enc_v.attend(fv, fv), enc_a.attend(fa, fv), enc_v.attend(fv, fa)

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        parts = [seg.mean(dim=1) for seg in self._attended(batch.audio, batch.visual)]
        logits = self.classifier(torch.cat(parts))
        return {"ce": self.objective("ce", logits, batch.labels.repeat(len(parts)))}

    @torch.no_grad()
    def embed_av_segments(self, audio: Tensor, visual: Tensor) -> tuple[Tensor, Tensor]:
        """Cross-attended segment embeddings ``(B, T, D)`` of audio (over visual) and visual (over audio)."""
        self.eval()
        device = self._device()
        _, _, a, v = self._attended(audio.to(device), visual.to(device))
        return a, v


# ============================================================================ auto-encoders
class AutoencoderModel(ZooModel):
    """``autoencoder`` towers: reconstruction (``l2``) plus cross-modal terms on the latents.

    Terms: ``recon`` (mean of the audio and visual ``l2`` reconstruction errors, each
    normalised by the target's variance so that both modalities weigh alike), ``align``
    (``l2`` between paired clip latents: the similarity constraint between separate latent
    spaces of Cao et al., 2016 / the L2 of Zeng et al., 2021) and ``dcca`` (correlation of
    the paired clip latents, Zeng et al., 2021's "Corr."; it also keeps the aligned latents
    from collapsing).
    """

    def __init__(self, spec: DataSpec, **kw: Any):
        super().__init__(spec, **kw)
        _require_method(self, "reconstruct", "AutoencoderModel")

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        xa_hat, xa = self.audio_encoder.reconstruct(batch.audio)
        xv_hat, xv = self.visual_encoder.reconstruct(batch.visual)
        recon = 0.5 * (self.objective("l2", xa, xa_hat) / xa.var().clamp_min(1e-6).detach()
                       + self.objective("l2", xv, xv_hat) / xv.var().clamp_min(1e-6).detach())
        a, v = self.encode_batch(batch)
        terms = {"recon": recon, "align": self.objective("l2", a, v)}
        if self.weights.get("dcca", 1.0) > 0:
            terms["dcca"] = self.objective("dcca", a, v)
        return terms


class VAEModel(ZooModel):
    """``vae`` towers: negative ELBO per segment plus supervised center and L2 alignment terms.

    Terms: ``elbo`` (mean of the audio and visual ``elbo`` over all segments, each
    reconstruction normalised by the target's variance), ``center`` (center loss of the
    clip posteriors' means with class centers shared by both modalities) and ``align``
    (``l2`` between paired clip means) [Zhang et al., 2021; Zhu et al., 2021b].
    """

    def __init__(self, spec: DataSpec, **kw: Any):
        super().__init__(spec, **kw)
        _require_supervised(self, "VAEModel")
        _require_method(self, "posterior", "VAEModel")
        self.centers = CenterLoss(spec.num_classes, self.dim, **self.objective_args.get("center", {}))

    def _elbo(self, encoder: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        x_hat, target, mu, logvar = encoder.reconstruct(x)
        scale = target.var().clamp_min(1e-6).detach().sqrt()
        loss = self.objective("elbo", (target / scale).flatten(0, 1), (x_hat / scale).flatten(0, 1),
                              mu.flatten(0, 1), logvar.flatten(0, 1))
        return loss, mu.mean(dim=1)

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        elbo_a, a = self._elbo(self.audio_encoder, batch.audio)
        elbo_v, v = self._elbo(self.visual_encoder, batch.visual)
        both = torch.cat([a, v])
        return {"elbo": 0.5 * (elbo_a + elbo_v), "center": self.centers(both, batch.labels.repeat(2)),
                "align": self.objective("l2", a, v)}


# ============================================================================ adversarial
class GANModel(ZooModel):
    """``gan`` towers + modality discriminator: a metric objective plus the modality game.

    Per batch: the metric term (``metric_objective``, pairwise, on the clip embeddings), the
    discriminator's loss on detached embeddings (L2-normalised when ``normalize``, the geometry
    retrieval uses) (``adv_d``: it learns to tell audio from
    visual) and the towers' confusion loss through the discriminator with frozen parameters
    (``adv_g``: the towers learn to fool it) [Zheng et al., 2021a]. The three are summed and
    stepped together (simultaneous gradient play; each player's gradient reaches only its
    own parameters).
    """

    def __init__(self, spec: DataSpec, *, metric_objective: str = "lifted", normalize: bool = False, **kw: Any):
        info = OBJECTIVES.get(metric_objective)
        if info is None or info.kind != "pairwise":
            raise ConfigError(f"zoo: '{metric_objective}' is not a pairwise objective")
        super().__init__(spec, **kw)
        self.metric_objective = metric_objective
        self.normalize = bool(normalize)
        self.discriminator = build_discriminator(self.dim, self.hidden)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "metric_objective": self.metric_objective, "normalize": self.normalize}

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        a, v = self.encode_batch(batch)
        na, nv = _maybe_normalize(a, v, self.normalize)
        metric = self.objective(self.metric_objective, na, nv, self.labels(batch))
        d_loss = modality_discriminator_loss(self.discriminator(na.detach()), self.discriminator(nv.detach()))
        self.discriminator.requires_grad_(False)
        try:
            g_loss = modality_confusion_loss(self.discriminator(na), self.discriminator(nv))
        finally:
            self.discriminator.requires_grad_(True)
        return {self.metric_objective: metric, "adv_d": d_loss, "adv_g": g_loss}


# ============================================================================ registration helpers
ModelClass = Callable[..., ZooModel]


def _register(name: str, cls: ModelClass, *, encoder: str, objectives: list[str], learning: str, papers: list[str],
              description: str, train: TrainConfig | None = None, hidden: int = 64,
              train_segments: int | None = None, **model_kw: Any) -> None:
    """Register ``name``: a factory ``(spec, dim=64, hidden=.., epochs=.., ...) -> cls(...)``.

    Factory options (``--model-args``): ``dim``, ``hidden``, ``epochs``, ``quick_epochs``,
    ``lr``, ``batch_size``, ``train_segments`` (``0`` = every segment).
    """
    base_train = train or TrainConfig()
    encoders = [encoder]

    def factory(spec: DataSpec, dim: int = 64, hidden: int = hidden, epochs: int | None = None,
                quick_epochs: int | None = None, lr: float | None = None, batch_size: int | None = None,
                train_segments: int | None = train_segments) -> ZooModel:
        overrides = {k: v for k, v in (("epochs", epochs), ("quick_epochs", quick_epochs), ("lr", lr),
                                       ("batch_size", batch_size)) if v is not None}
        for key, value in overrides.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"model '{name}': {key} must be a positive number, got {value!r}")
        cfg = replace(base_train, **overrides)
        segs = None if train_segments in (None, 0) else train_segments
        return cls(spec, encoder=encoder, learning=learning, dim=dim, hidden=hidden, train=cfg, train_segments=segs,
                   **_copy_kw(model_kw))

    factory.__name__ = f"build_{name}"
    factory.__doc__ = f"Build the '{name}' baseline: {description}"
    register_model(name, encoder=encoders, objective=list(objectives), learning=learning, papers=list(papers),
                   description=description)(factory)


def _copy_kw(kw: dict[str, Any]) -> dict[str, Any]:
    """Deep-enough copy of the registration's model options (nested dicts are per model)."""
    return {k: ({kk: dict(vv) if isinstance(vv, dict) else vv for kk, vv in v.items()} if isinstance(v, dict) else v)
            for k, v in kw.items()}


#: training settings shared by the zoo (quick mode: 10 epochs, small enough for 2 CPU cores)
_TRAIN = TrainConfig(epochs=40, quick_epochs=10, batch_size=64, lr=2e-3, weight_decay=1e-4, patience=6)
#: the objective comparison family shares the mlp towers; they train on 4 sampled segments
#: per clip because the mlp image front end dominates the cost
_MLP = {"encoder": "mlp", "train": _TRAIN, "train_segments": 4}
#: towers without a temporal model train on 5 sampled segments per clip (half the cost);
#: attention / transformer towers see every segment, their point is the temporal context
_CNN_SEGMENTS = 5

# ---------------------------------------------------------------- one objective, mlp towers
_register(
    "infonce", PairwiseModel, objective="infonce", **_MLP, objectives=["infonce"], learning=SEMI_SUPERVISED,
    papers=["Chen et al., 2021", "Ma et al., 2020a", "Patrick et al., 2020"],
    description="mlp towers + InfoNCE with in-batch negatives, learned from pairing alone",
    objective_args={"infonce": {"temperature": 0.1}},
)
_register(
    "dcca", DCCAModel, **{**_MLP, "train": replace(_TRAIN, batch_size=128)}, objectives=["dcca"],
    learning=SEMI_SUPERVISED, papers=["Rajan et al., 2021", "Zeng et al., 2021"],
    description="mlp towers + deep CCA (top-16 canonical correlations), CCA projection as last layer",
    objective_args={"dcca": {"r1": 1e-2, "r2": 1e-2, "top_k": 16}}, cca_dim=16,
)
_register(
    "triplet", PairwiseModel, objective="triplet", **_MLP, objectives=["triplet"], learning=SUPERVISED,
    papers=["Zeng et al., 2020", "Pretet et al., 2021"],
    description="mlp towers + cross-modal triplet loss with semi-hard in-batch mining, class-level positives",
    objective_args={"triplet": {"margin": 0.2, "mining": "semi-hard", "reduction": "mean"}}, normalize=True,
)
_register(
    "hinge", PairwiseModel, objective="hinge", **_MLP, objectives=["hinge"], learning=SUPERVISED,
    papers=["Merkx et al., 2019"],
    description="mlp towers + bidirectional max-margin hinge ranking, same-class pairs not negatives",
    objective_args={"hinge": {"margin": 0.2, "reduction": "mean"}},
)
_register(
    "mms", PairwiseModel, objective="mms", **_MLP, objectives=["mms"], learning=SEMI_SUPERVISED,
    papers=["Rouditchenko et al., 2020", "Ilharco et al., 2019"],
    description="mlp towers + masked margin softmax with a margin increased over the epochs",
    objective_args={"mms": {"similarity": "dot"}}, margin_schedule={"start": 0.05, "end": 0.3, "mode": "linear"},
)
_register(
    "npair", PairwiseModel, objective="npair", **_MLP, objectives=["npair"], learning=SEMI_SUPERVISED,
    papers=["Horiguchi et al., 2018"],
    description="mlp towers + multi-class N-pair loss on dot products, learned from pairing alone",
    objective_args={"npair": {"l2_reg": 2e-3}},
)
_register(
    "lifted", PairwiseModel, objective="lifted", **_MLP, objectives=["lifted"], learning=SUPERVISED,
    papers=["Zheng et al., 2021a"],
    description="mlp towers + smooth lifted structured loss on cross-modal distances, class-level positives",
    objective_args={"lifted": {"margin": 1.0}}, normalize=True,
)
_register(
    "milnce", MILNCEModel, **_MLP, objectives=["milnce"], learning=SEMI_SUPERVISED,
    papers=["Alayrac et al., 2020", "Akbari et al., 2021"],
    description="mlp towers + MIL-NCE: each clip against the bag of the other modality's segments",
    objective_args={"milnce": {"temperature": 0.1}},
)

# ---------------------------------------------------------------- encoder families
_register(
    "cnn_contrastive", ContrastivePairsModel, encoder="cnn", train=replace(_TRAIN, quick_epochs=15),
    train_segments=_CNN_SEGMENTS, objectives=["contrastive"], learning=SEMI_SUPERVISED, papers=["Hu et al., 2020"],
    description="cnn towers + contrastive loss on cosine distances of as many matched as mismatched clip pairs",
    objective_args={"contrastive": {"margin": 1.0}},
)
_register(
    "ce_center", ClassifierModel, encoder="cnn", train=_TRAIN,
    train_segments=_CNN_SEGMENTS, objectives=["ce", "center", "l2"],
    learning=SUPERVISED, papers=["Zhen et al., 2019", "He et al., 2019"],
    description="cnn towers + shared-classifier CE, center loss and L2 modality invariance",
    objective_args={"center": {"p": 2}}, weights={"ce": 1.0, "center": 0.05, "l2": 0.1},
)
_register(
    "selfattn_mms", PairwiseModel, objective="mms", encoder="self_attention", train=_TRAIN, objectives=["mms"],
    learning=SEMI_SUPERVISED, papers=["Rouditchenko et al., 2020", "Cheng et al., 2020"],
    description="self-attention towers with attention pooling + masked margin softmax with a margin schedule",
    objective_args={"mms": {"similarity": "dot"}}, margin_schedule={"start": 0.05, "end": 0.3, "mode": "linear"},
)
_register(
    "transformer_infonce", PairwiseModel, objective="infonce", encoder="transformer", train=_TRAIN,
    objectives=["infonce"], learning=SEMI_SUPERVISED, papers=["Morgado et al., 2020", "Akbari et al., 2021"],
    description="transformer encoders over segments (sinusoidal positions) + InfoNCE, learned from pairing",
    objective_args={"infonce": {"temperature": 0.1}},
)
_register(
    "coattn_ce", CoAttentionModel, encoder="co_attention", train=_TRAIN, objectives=["ce"], learning=SUPERVISED,
    papers=["Duan et al., 2021", "Cheng et al., 2020"],
    description="co-attention towers (cross-modal residual attention) + shared-classifier CE on uni- and "
                "cross-modal features",
)
_register(
    "ae_l2", AutoencoderModel, encoder="autoencoder", train=_TRAIN,
    train_segments=_CNN_SEGMENTS, objectives=["l2", "dcca"],
    learning=SEMI_SUPERVISED, papers=["Zeng et al., 2021", "Recasens et al., 2021", "Cao et al., 2016"],
    description="auto-encoder towers: L2 reconstruction + L2 latent alignment + DCCA correlation of paired clips",
    objective_args={"dcca": {"r1": 1e-2, "r2": 1e-2, "top_k": 16}}, weights={"recon": 1.0, "align": 5.0, "dcca": 0.1},
)
_register(
    "vae_elbo", VAEModel, encoder="vae", train=_TRAIN,
    train_segments=_CNN_SEGMENTS, objectives=["elbo", "center", "l2"], learning=SUPERVISED,
    papers=["Zhang et al., 2021", "Zhu et al., 2021b"],
    description="VAE towers: per-segment ELBO + shared class centers + L2 alignment of paired posterior means",
    objective_args={"elbo": {"beta": 0.1}, "center": {"p": 2}},
    weights={"elbo": 0.01, "center": 0.1, "align": 1.0},
)
_register(
    "gan_adv", GANModel, encoder="gan", train=_TRAIN,
    train_segments=_CNN_SEGMENTS, objectives=["lifted", "adversarial"], learning=SUPERVISED,
    papers=["Zheng et al., 2021a", "Seo et al., 2020"],
    description="cnn generator towers + modality discriminator (adversarial) + lifted structured loss",
    metric_objective="lifted", objective_args={"lifted": {"margin": 1.0}},
    weights={"lifted": 1.0, "adv_d": 1.0, "adv_g": 0.1}, normalize=True,
)
