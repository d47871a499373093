"""The model interface of avcl-bench.

A model maps audio and visual inputs into a common D-dimensional space: the survey's
``f(xa; Wa)`` and ``g(xv; Wv)``. Like HEAR's three functions and MTEB's encoder protocol
the interface is small; everything else is optional and declared in ``capabilities``.

Inputs are batches of float32 tensors with the layout of :class:`DataSpec`:

* audio  ``(B, T, Fa)``: T segments of an audio front end (log-mel frames, VGGish, ...)
* visual ``(B, T, C, H, W)``: T frames (RGB images or feature maps, e.g. VGG-19 7x7x512)

Capabilities (strings) a model may declare, with the extra method each one requires:

``"segments"``
    ``embed_audio_segments(audio) -> (B, T, D)`` and ``embed_visual_segments(visual) -> (B, T, D)``
``"spatial"``
    ``embed_visual_spatial(visual) -> (B, D, h, w)``: a spatial map in the common space
    (localization heatmaps are its cosine similarity with the audio embedding).
``"separation"``
    ``separate(mixture, visual, sample_rate) -> (B, L)``: the model's own end-to-end
    separator (otherwise the suite trains a conditioned mask head on frozen embeddings).
``"generation"``
    ``generate(audio) -> (B, 3, H, W)`` in [0, 1]: the model's own sound-to-image generator.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .datasets.base import AVSplit

CAPABILITIES = ("segments", "spatial", "separation", "generation")


@dataclass(frozen=True)
class DataSpec:
    """What a dataset's items look like; models are built from it."""

    name: str
    audio_shape: tuple[int, ...]  # (T, Fa)
    visual_shape: tuple[int, ...]  # (T, C, H, W)
    num_classes: int
    class_names: tuple[str, ...] = ()
    sample_rate: int | None = None  # of waveforms, when the dataset has them
    visual_is_image: bool = True  # RGB frames in [0, 1] (False: precomputed feature maps)
    #: item i's audio and visual come from one recording (``False``: paired arbitrarily within a
    #: class, e.g. AV-MNIST style data; instance retrieval R@K / MedR then mean nothing and are not reported)
    instance_pairs: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def segments(self) -> int:
        return int(self.audio_shape[0])


@dataclass
class FitContext:
    """What the suite hands a model's ``fit``: seed, device and training knobs."""

    seed: int = 0
    device: str = "cpu"
    quick: bool = False
    progress: bool = True
    #: ``--precision`` of model training: ``"fp32"`` or ``"bf16"`` (autocast, meant for GPUs)
    precision: str = "fp32"


@runtime_checkable
class AVModel(Protocol):
    """The protocol every model follows (registered baselines and user submissions)."""

    #: dimension D of the common space
    dim: int
    #: subset of :data:`CAPABILITIES`
    capabilities: frozenset[str]
    #: does ``fit`` learn anything? (``False``: a fixed model, e.g. random projections)
    trainable: bool

    def fit(self, train: AVSplit, val: AVSplit | None, ctx: FitContext) -> None:
        """Train on the dataset's train split (early-stop on ``val``); a no-op when not trainable."""

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """``(B, T, Fa) -> (B, D)``: the survey's f(xa; Wa)."""

    def embed_visual(self, visual: torch.Tensor) -> torch.Tensor:
        """``(B, T, C, H, W) -> (B, D)``: the survey's g(xv; Wv)."""

    def config(self) -> dict[str, Any]:
        """Every hyper-parameter that affects the model's numbers (lands in results)."""


def missing_methods(model: object) -> list[str]:
    """Names of methods the model's declared capabilities require but it lacks."""
    need = ["fit", "embed_audio", "embed_visual", "config"]
    caps = set(getattr(model, "capabilities", ()))
    if "segments" in caps:
        need += ["embed_audio_segments", "embed_visual_segments"]
    if "spatial" in caps:
        need.append("embed_visual_spatial")
    if "separation" in caps:
        need.append("separate")
    if "generation" in caps:
        need.append("generate")
    return [m for m in need if not callable(getattr(model, m, None))]
