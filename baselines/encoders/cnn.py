"""``cnn`` encoder: convolutional front ends per segment, an MLP head, mean pooling over segments.

The survey's projectors f(x_a; W_a), g(x_v; W_v) are most often CNNs on each modality
(VGGish-style audio nets on log-mel patches, image CNNs on frames). This module holds the
two convolutional front ends that the attention, transformer, auto-encoder and GAN
encoders reuse, and the plain ``cnn`` encoder built from them.

Audio (:class:`AudioCNN`)
    When the segment's feature vector is a log-mel patch (the data spec says so, see
    :func:`audio_layout`) it is reshaped to ``(frames, mels)`` and passed through a 2-D CNN
    that pools along the mel axis; otherwise (VGGish embeddings, arbitrary vectors) a 1-D
    CNN runs along the vector. A linear shortcut of the (layer-normalised) input is added to
    the pooled convolutional features so that global spectral shape survives the pooling.
Visual (:class:`VisualCNN`)
    RGB frames: six convolutions (two stride-2 stages and a residual block; deeper but
    cheaper than the ``mlp`` front end because it strides first) to a ``(hidden, H/4, W/4)``
    map. Precomputed feature maps (e.g. VGG-19 ``(512, 7, 7)``): 1x1 / 3x3 / 1x1
    convolutions; feature vectors (``H = W = 1``): 1x1 convolutions only.

All modules work on any number of segments ``T`` (including ``T = 1``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from avcl_bench.benchmark.errors import ConfigError
from avcl_bench.benchmark.interface import DataSpec

from .base import ModalityEncoder, SpatialMapEncoder, audio_in_dim


def audio_layout(spec: DataSpec) -> tuple[int, int] | None:
    """``(frames, mels)`` of one segment's audio vector, or ``None`` when it is not a spectrogram.

    Looks for ``spec.extra["audio_layout"]`` (an explicit ``(frames, mels)`` pair), then for
    ``n_mels`` in ``spec.extra`` or in ``spec.extra["config"]`` (the generator config that
    ``avsynth`` stores); the segment vector is taken as ``frames`` rows of ``n_mels``
    values, row-major, as :func:`benchmark.features.log_mel` output reshaped per segment.
    """
    fa = audio_in_dim(spec)
    layout = spec.extra.get("audio_layout")
    if layout is not None:
        try:
            frames, mels = (int(v) for v in layout)
        except (TypeError, ValueError):
            raise ConfigError(
                f"dataset '{spec.name}': extra.audio_layout must be (frames, mels), got {layout!r}"
            ) from None
        if frames < 1 or mels < 1 or frames * mels != fa:
            raise ConfigError(
                f"dataset '{spec.name}': extra.audio_layout {frames}x{mels} does not match the audio width {fa}"
            )
        return frames, mels
    config = spec.extra.get("config")
    n_mels = spec.extra.get("n_mels", config.get("n_mels") if isinstance(config, dict) else None)
    if isinstance(n_mels, int) and not isinstance(n_mels, bool) and 0 < n_mels <= fa and fa % n_mels == 0:
        return fa // n_mels, n_mels
    return None


def _check_hidden(hidden: int) -> int:
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 4:
        raise ConfigError(f"encoder: hidden must be an integer >= 4, got {hidden!r}")
    return hidden


class AudioCNN(nn.Module):
    """Per-segment convolutional audio features: ``(B, T, Fa) -> (B, T, hidden)``."""

    def __init__(self, spec: DataSpec, hidden: int, channels: tuple[int, int] = (16, 32)):
        super().__init__()
        hidden = _check_hidden(hidden)
        fa = audio_in_dim(spec)
        self.layout = audio_layout(spec)
        c1, c2 = channels
        if self.layout is not None:  # 2-D over (frames, mels): pool along mels only, frames are few
            self.conv: nn.Module = nn.Sequential(
                nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d((1, 2), ceil_mode=True),
                nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d((1, 2), ceil_mode=True),
                nn.Conv2d(c2, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )
        else:  # 1-D along the feature vector
            self.conv = nn.Sequential(
                nn.Conv1d(1, c1, 5, padding=2), nn.BatchNorm1d(c1), nn.ReLU(), nn.MaxPool1d(2, ceil_mode=True),
                nn.Conv1d(c1, c2, 5, padding=2), nn.BatchNorm1d(c2), nn.ReLU(), nn.MaxPool1d(2, ceil_mode=True),
                nn.Conv1d(c2, hidden, 3, padding=1), nn.BatchNorm1d(hidden), nn.ReLU(),
                nn.AdaptiveAvgPool1d(1), nn.Flatten(),
            )
        self.shortcut = nn.Sequential(nn.LayerNorm(fa), nn.Linear(fa, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, fa = x.shape
        flat = x.reshape(b * t, fa)
        grid = flat.reshape(b * t, 1, *self.layout) if self.layout is not None else flat.unsqueeze(1)
        return (self.conv(grid) + self.shortcut(flat)).reshape(b, t, -1)


class _ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class VisualCNN(nn.Module):
    """Per-frame convolutional maps: ``(B, T, C, H, W) -> (B, T, hidden, h, w)``."""

    def __init__(self, spec: DataSpec, hidden: int, channels: tuple[int, int, int] = (16, 24, 48)):
        super().__init__()
        hidden = _check_hidden(hidden)
        c, h, w = (int(s) for s in spec.visual_shape[-3:])
        if spec.visual_is_image:
            c1, c2, c3 = channels
            self.net = nn.Sequential(
                nn.Conv2d(c, c1, 3, stride=2, padding=1), nn.BatchNorm2d(c1), nn.ReLU(),
                nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
                nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.BatchNorm2d(c3), nn.ReLU(),
                _ResBlock(c3),
                nn.Conv2d(c3, hidden, 1),
            )
        elif h > 1 or w > 1:  # precomputed feature maps
            self.net = nn.Sequential(
                nn.Conv2d(c, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(),
                nn.Conv2d(hidden, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU(),
                nn.Conv2d(hidden, hidden, 1),
            )
        else:  # precomputed feature vectors stored as (D, 1, 1)
            self.net = nn.Sequential(nn.Conv2d(c, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(),
                                     nn.Conv2d(hidden, hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        return self.net(x.flatten(0, 1)).unflatten(0, (b, t))


def mlp_head(hidden: int, dim: int, dropout: float) -> nn.Sequential:
    """Per-vector projection to the common space: LayerNorm, Linear, GELU, Dropout, Linear."""
    return nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, dim))


def apply_to_positions(head: Callable[[torch.Tensor], torch.Tensor], maps: torch.Tensor) -> torch.Tensor:
    """Apply a per-vector function to every position of ``(..., C, h, w)`` maps -> ``(..., D, h, w)``."""
    return head(maps.movedim(-3, -1)).movedim(-1, -3)


class CNNAudioEncoder(ModalityEncoder):
    """:class:`AudioCNN` + MLP head per segment; clip = mean of segments."""

    def __init__(self, spec: DataSpec, dim: int, hidden: int = 64, dropout: float = 0.1):
        super().__init__()
        self.dim = dim
        self.front = AudioCNN(spec, hidden)
        self.head = mlp_head(hidden, dim, dropout)

    def segments(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.front(x))


class CNNVisualEncoder(SpatialMapEncoder):
    """:class:`VisualCNN` + MLP head at every position; segment = mean of the map, clip = mean of segments."""

    def __init__(self, spec: DataSpec, dim: int, hidden: int = 64, dropout: float = 0.1):
        super().__init__()
        self.dim = dim
        self.front = VisualCNN(spec, hidden)
        self.head = mlp_head(hidden, dim, dropout)

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        return apply_to_positions(self.head, self.front(x))  # (B, T, D, h, w)


def build_audio(spec: DataSpec, dim: int, **hp: Any) -> ModalityEncoder:
    return CNNAudioEncoder(spec, dim, **hp)


def build_visual(spec: DataSpec, dim: int, **hp: Any) -> ModalityEncoder:
    return CNNVisualEncoder(spec, dim, **hp)
