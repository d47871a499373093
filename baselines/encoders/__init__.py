"""Encoder registry: id -> module with ``build_audio(spec, dim, **hp)`` and ``build_visual(spec, dim, **hp)``."""
from __future__ import annotations

from importlib import import_module
from types import ModuleType

from avcl_bench.benchmark.registry import Registry

ENCODERS: Registry[str] = Registry("encoder")
for _id, _doc in {
    "mlp": "per-segment MLPs (CNN front end on images), mean pooling over segments",
    "cnn": "convolutional front ends (2-D on log-mel patches, image CNN), MLP head, mean pooling",
    "self_attention": "cnn front ends + single-head self-attention and attention pooling within each modality",
    "co_attention": "cnn front ends + cross-modal attention with a residual between audio and visual segments",
    "transformer": "cnn front ends + transformer encoder layers with sinusoidal positions over segments",
    "autoencoder": "cnn encoders + MLP decoders reconstructing each segment's input; latent = embedding",
    "vae": "variational auto-encoder: Gaussian posterior per segment, reparameterised decoder; embedding = mean",
    "gan": "cnn generator towers + a modality discriminator on the common space (adversarial alignment)",
}.items():
    ENCODERS.register(_id, f"{__name__}.{_id}", description=_doc)


def get_encoder(name: str) -> ModuleType:
    """The module implementing encoder ``name``."""
    return import_module(ENCODERS.get(name))
