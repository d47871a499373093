"""Shared machinery of the baselines: seeding, the embedding model and its training loop.

:class:`EmbeddingModel` implements :class:`benchmark.interface.AVModel` with an audio and a
visual :class:`~baselines.encoders.base.ModalityEncoder`; subclasses (or a ``loss`` callable)
say how a batch is turned into the training objective. Training is deterministic given the
seed, early-stops on the validation split's retrieval mAP and shows a progress bar.
"""
from __future__ import annotations

import copy
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from avcl_bench.benchmark.datasets.base import AVSplit, audio_batch, visual_batch
from avcl_bench.benchmark.interface import DataSpec, FitContext

from .encoders import get_encoder


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


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
        from avcl_bench.tasks.retrieval.metrics import retrieval_metrics  # late import: tasks depend on benchmark only

        cfg = self.train_cfg
        device = torch.device(ctx.device)
        self.to(device)
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        epochs = cfg.quick_epochs if ctx.quick else cfg.epochs
        best, best_state, bad, history = -np.inf, None, 0, []
        bar = _progress(range(epochs), ctx, desc=f"train {type(self).__name__}")
        for epoch in bar:
            self.on_epoch_start(epoch, epochs)
            self.train()
            total, count = 0.0, 0
            for idx in train.batches(cfg.batch_size, shuffle=True, seed=ctx.seed * 100003 + epoch):
                if len(idx) < 2:
                    continue
                batch = make_batch(train, idx, device)
                loss = self.loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, 5.0)
                opt.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
            self.on_epoch_end(epoch, train, device)
            entry = {"epoch": epoch, "train_loss": total / max(count, 1)}
            if val is not None and (epoch + 1) % cfg.eval_every == 0:
                a, v = embed_split(self, val, device=str(device))
                score = retrieval_metrics(a, v, val.labels, val.labels)["mAP"]
                entry["val_mAP"] = score
                if score > best + 1e-6:
                    best, best_state, bad = score, copy.deepcopy(self.state_dict()), 0
                else:
                    bad += 1
            history.append(entry)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix({k: round(v, 4) for k, v in entry.items() if k != "epoch"})
            if val is not None and bad >= cfg.patience:
                break
        if best_state is not None:
            self.load_state_dict(best_state)
        self.fit_report = {"epochs_run": len(history), "best_val_mAP": None if best_state is None else float(best),
                           "history": history}
        self.eval()


def make_batch(split: AVSplit, idx: np.ndarray, device: torch.device | str) -> Batch:
    seg = None if split.segment_labels is None else torch.as_tensor(np.asarray(split.segment_labels)[idx]).to(device)
    return Batch(audio=audio_batch(split, idx, device), visual=visual_batch(split, idx, device),
                 labels=torch.as_tensor(np.asarray(split.labels)[idx]).to(device), segment_labels=seg)


@torch.no_grad()
def embed_split(model: Any, split: AVSplit, *, batch_size: int = 128, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Audio and visual clip embeddings of a whole split, as float64 numpy arrays."""
    a, v = [], []
    for idx in split.batches(batch_size):
        a.append(model.embed_audio(audio_batch(split, idx, device)).detach().cpu().double().numpy())
        v.append(model.embed_visual(visual_batch(split, idx, device)).detach().cpu().double().numpy())
    return np.concatenate(a), np.concatenate(v)


def _progress(it: Any, ctx: FitContext, desc: str) -> Any:
    if not ctx.progress:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, leave=False, dynamic_ncols=True)
