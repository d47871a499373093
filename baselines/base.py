"""Shared machinery of the baselines: seeding, the embedding model and its training loop.

:class:`EmbeddingModel` implements :class:`benchmark.interface.AVModel` with an audio and a
visual :class:`~baselines.encoders.base.ModalityEncoder`; subclasses (or a ``loss`` callable)
say how a batch is turned into the training objective. Training is deterministic given the
seed, early-stops on the validation split's retrieval mAP and shows a progress bar.
"""
from __future__ import annotations

import random
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from avcl_bench.benchmark.datasets.base import AVSplit, audio_batch, visual_batch
from avcl_bench.benchmark.embedding import embed_split
from avcl_bench.benchmark.interface import DataSpec, FitContext
from avcl_bench.benchmark.training import EpochLog, autocast_dtype, train_early_stopping
from avcl_bench.tasks.retrieval.metrics import retrieval_metrics

from .encoders import get_encoder


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    deterministic_kernels()


def deterministic_kernels() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` without importing TorchInductor.

    The public function also sets ``torch._inductor.config.deterministic``, and importing
    ``torch._inductor`` for that took 2-8 s per process (a third of a warm rerun); the suite
    never compiles, so only the kernel flag matters. Once ``torch._inductor`` is imported (a
    user's model compiles) the public function is used, so its config stays in step.
    """
    if "torch._inductor" in sys.modules or not hasattr(torch._C, "_set_deterministic_algorithms"):
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif not (torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()):
        torch._C._set_deterministic_algorithms(True, warn_only=True)


@dataclass
class TrainConfig:
    """Optimisation settings (CPU-friendly defaults; ``quick`` caps the epochs)."""

    epochs: int = 40
    quick_epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 6
    eval_every: int = 1


@dataclass
class Batch:
    """One training batch: inputs, labels and their embeddings (filled by the model)."""

    audio: torch.Tensor
    visual: torch.Tensor
    labels: torch.Tensor
    segment_labels: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


LossFn = Callable[["EmbeddingModel", Batch], torch.Tensor]


class EmbeddingModel(nn.Module):
    """A two-tower model f(xa; Wa), g(xv; Wv) trained with a pluggable objective."""

    trainable = True

    def __init__(self, spec: DataSpec, *, encoder: str = "mlp", dim: int = 64, hidden: int = 128,
                 train: TrainConfig | None = None, loss: LossFn | None = None,
                 encoder_args: dict[str, Any] | None = None, objective_args: dict[str, Any] | None = None):
        super().__init__()
        self.spec = spec
        self.dim = dim
        self.encoder_id = encoder
        self.hidden = hidden
        self.train_cfg = train or TrainConfig()
        self.encoder_args = dict(encoder_args or {})
        self.objective_args = dict(objective_args or {})
        enc = get_encoder(encoder)
        self.audio_encoder = enc.build_audio(spec, dim, hidden=hidden, **self.encoder_args)
        self.visual_encoder = enc.build_visual(spec, dim, hidden=hidden, **self.encoder_args)
        self._loss = loss
        self.capabilities = frozenset({"segments"} | ({"spatial"} if hasattr(self.visual_encoder, "spatial") else set()))
        self.fit_report: dict[str, Any] = {}

    # ------------------------------------------------------------------ interface
    def config(self) -> dict[str, Any]:
        return {"encoder": self.encoder_id, "dim": self.dim, "hidden": self.hidden, "train": asdict(self.train_cfg),
                "encoder_args": self.encoder_args, "objective_args": self.objective_args}

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        self.eval()
        return self.audio_encoder(audio.to(self._device()))

    @torch.no_grad()
    def embed_visual(self, visual: torch.Tensor) -> torch.Tensor:
        self.eval()
        return self.visual_encoder(visual.to(self._device()))

    @torch.no_grad()
    def embed_audio_segments(self, audio: torch.Tensor) -> torch.Tensor:
        self.eval()
        return self.audio_encoder.segments(audio.to(self._device()))

    @torch.no_grad()
    def embed_visual_segments(self, visual: torch.Tensor) -> torch.Tensor:
        self.eval()
        return self.visual_encoder.segments(visual.to(self._device()))

    @torch.no_grad()
    def embed_visual_spatial(self, visual: torch.Tensor) -> torch.Tensor:
        self.eval()
        return self.visual_encoder.spatial(visual.to(self._device()))

    # ------------------------------------------------------------------ training
    def loss(self, batch: Batch) -> torch.Tensor:
        """The training objective of one batch (override, or pass ``loss=`` to the constructor)."""
        if self._loss is None:
            raise NotImplementedError(f"{type(self).__name__} has no objective")
        return self._loss(self, batch)

    def encode_batch(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.audio_encoder(batch.audio), self.visual_encoder(batch.visual)

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Hook run before each training epoch (``epoch`` of ``epochs``): schedules such as MMS margins."""

    def on_epoch_end(self, epoch: int, train: AVSplit, device: torch.device) -> None:
        """Hook run after each training epoch, before validation: e.g. refit a post-hoc projection
        (DCCA's linear CCA) that the clip embeddings depend on."""

    def fit(self, train: AVSplit, val: AVSplit | None, ctx: FitContext) -> None:
        """Train with :func:`~benchmark.training.train_early_stopping`: AdamW, gradients clipped
        to norm 5, the train batches reshuffled per epoch (seeded), early stopping on the val
        split's retrieval mAP every ``eval_every`` epochs, keeping the best epoch's weights."""
        cfg = self.train_cfg
        device = torch.device(ctx.device)
        self.to(device)
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        epochs = cfg.quick_epochs if ctx.quick else cfg.epochs

        def val_map(log: EpochLog) -> float | None:
            if val is None or (log.epoch + 1) % cfg.eval_every != 0:
                return None
            a, v = embed_split(self, val, device=str(device))
            return retrieval_metrics(a, v, val.labels, val.labels)["mAP"]

        result = train_early_stopping(
            self, opt, lambda epoch: train.batches(cfg.batch_size, shuffle=True, seed=ctx.seed * 100003 + epoch),
            lambda idx: self.loss(make_batch(train, idx, device)), epochs=epochs, validate=val_map,
            min_delta=1e-6, patience=cfg.patience, min_batch=2, clip_grad_norm=5.0,
            on_epoch_start=lambda epoch: self.on_epoch_start(epoch, epochs),
            on_epoch_end=lambda epoch: self.on_epoch_end(epoch, train, device),
            show_progress=ctx.progress, desc=f"train {type(self).__name__}", score_name="val_mAP",
            autocast=autocast_dtype(getattr(ctx, "precision", "fp32")))
        history = [{"epoch": e.epoch, "train_loss": e.train_loss, **({} if e.score is None else {"val_mAP": e.score})}
                   for e in result.history]
        self.fit_report = {"epochs_run": result.epochs_run, "best_val_mAP": result.best_score, "history": history}


def make_batch(split: AVSplit, idx: np.ndarray, device: torch.device | str) -> Batch:
    seg = None if split.segment_labels is None else torch.as_tensor(np.asarray(split.segment_labels)[idx]).to(device)
    return Batch(audio=audio_batch(split, idx, device), visual=visual_batch(split, idx, device),
                 labels=torch.as_tensor(np.asarray(split.labels)[idx]).to(device), segment_labels=seg)
