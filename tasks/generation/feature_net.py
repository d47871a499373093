"""The dataset's image feature network: the suite's stand-in for Inception in FD / KID / MRR.

Inception-v3 features are only meaningful for natural photographs at 299x299 and its
weights are a separate download. The generation task therefore measures generated frames
with a small CNN classifier trained ONCE per dataset on the train frames (predicting the
clip class) and takes its 128-d global-average-pooled penultimate features, as FID takes
Inception's pool3. Training is deterministic with a fixed seed (:data:`FEATURE_NET_SEED`,
independent of the run seed) on the CPU, so every model and every machine is measured
with the same network. The trained weights are cached under ``$AVCL_CACHE`` (default
``~/.cache/avcl-bench``) keyed by the dataset fingerprint and :data:`FEATURE_NET_VERSION`,
written atomically and read back with ``torch.load(weights_only=True)``; an unreadable or
mismatching cache file is retrained, never trusted.

Frames are brought to the protocol resolution (at most :data:`MAX_SIDE` pixels a side,
area interpolation) before the network; generated images are compared at that size.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avcl_bench.benchmark.errors import InputError
from avcl_bench.benchmark.paths import cache_dir
from avcl_bench.benchmark.store import atomic_write_bytes
from avcl_bench.benchmark.training import minibatches, train_early_stopping

#: Bump whenever the architecture or the training recipe changes (invalidates caches).
FEATURE_NET_VERSION = "1"
#: Seed of the feature network's initialisation and batch order.
FEATURE_NET_SEED = 1234
#: Frames larger than this (either side) are downsampled to fit (aspect kept).
MAX_SIDE = 64
FEATURE_DIM = 128
EPOCHS = 12
BATCH_SIZE = 64
LR = 2e-3

_LOADED: dict[str, FeatureNet] = {}


def protocol_size(height: int, width: int) -> tuple[int, int]:
    """Working resolution of frames of ``height x width``: the largest side capped at :data:`MAX_SIDE`."""
    scale = min(1.0, MAX_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def to_protocol_images(images: Any, size: tuple[int, int], *, source: str = "images",
                       field: str = "images") -> torch.Tensor:
    """``(N, 3, H, W)`` uint8 (0..255) or float (0..1) images -> float32 tensor at ``size``, validated."""
    x = images.detach().cpu() if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
    if x.ndim != 4 or x.shape[1] != 3:
        raise InputError(source, field, f"expected images of shape (N, 3, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise InputError(source, field, "no images")
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    elif x.is_floating_point():
        x = x.float()
        if not bool(torch.isfinite(x).all()):
            raise InputError(source, field, "contains NaN or inf")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise InputError(source, field, f"float images must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]")
    else:
        raise InputError(source, field, f"expected uint8 or float images, got dtype {x.dtype}")
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="area")
    return x


class FeatureNet(nn.Module):
    """Small CNN classifier; :meth:`features` is the 128-d pooled penultimate layer.

    Three conv-BN-ReLU stages (32, 64, 128 channels, the first two max-pooled), global
    average pooling, then a linear classifier over ``num_classes``. Inputs are RGB in
    ``[0, 1]`` (standardised inside with fixed per-channel statistics of 0.5 / 0.25).
    """

    def __init__(self, num_classes: int, size: tuple[int, int]):
        super().__init__()
        self.num_classes = int(num_classes)
        self.size = (int(size[0]), int(size[1]))

        def stage(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.body = nn.Sequential(stage(3, 32), nn.MaxPool2d(2), stage(32, 64), nn.MaxPool2d(2),
                                  stage(64, FEATURE_DIM))
        self.classifier = nn.Linear(FEATURE_DIM, self.num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, h, w)`` images in [0, 1] at :attr:`size` -> ``(N, 128)`` features."""
        return self.body((images - 0.5) / 0.25).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


def cache_path(dataset: Any) -> Path:
    """Cache file of ``dataset``'s feature network."""
    key = hashlib.sha256(f"{dataset.fingerprint()}|{FEATURE_NET_VERSION}".encode()).hexdigest()[:20]
    return cache_dir() / f"featnet-{dataset.spec.name}-{key}.pt"


def target_frames(split: Any) -> Any:
    """The target images of generation of a split: ``gen_frames`` where the dataset gives them
    (e.g. avsynth's re-centred frames), else its key ``frames``."""
    return split.gen_frames if getattr(split, "gen_frames", None) is not None else split.frames


def _dataset_size(dataset: Any) -> tuple[int, int]:
    frames = target_frames(dataset.split("train"))
    if frames is None:
        raise InputError(dataset.spec.name, "frames", "the dataset has no target frames to train the feature network on")
    h, w = np.shape(frames)[-2:]
    return protocol_size(int(h), int(w))


def train_feature_net(dataset: Any, *, progress: bool = False) -> tuple[FeatureNet, dict[str, Any]]:
    """Train the feature network on the train frames (CPU, seed :data:`FEATURE_NET_SEED`).

    Returns the network in eval mode and a report with its validation accuracy.
    """
    train = dataset.split("train")
    size = _dataset_size(dataset)
    num_classes = int(dataset.spec.num_classes)
    x = to_protocol_images(np.asarray(target_frames(train)), size, source=dataset.spec.name, field="train frames")
    y = torch.as_tensor(np.asarray(train.labels), dtype=torch.long)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(FEATURE_NET_SEED)
        net = FeatureNet(num_classes, size)
    opt = torch.optim.Adam(net.parameters(), lr=LR, weight_decay=1e-4)
    rng = np.random.default_rng(FEATURE_NET_SEED)

    def flipped_ce(idx: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of a batch with random horizontal flips (drawn from ``rng`` after the batch order)."""
        xb = x[idx]
        flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
        xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
        return F.cross_entropy(net(xb), y[idx])

    # fixed epochs, no validation; batches of fewer than two items are skipped (batch norm)
    train_early_stopping(net, opt, lambda _: minibatches(torch.from_numpy(rng.permutation(len(y))), BATCH_SIZE),
                         flipped_ce, epochs=EPOCHS, min_batch=2, show_progress=progress,
                         desc="train generation feature net")
    report: dict[str, Any] = {"version": FEATURE_NET_VERSION, "epochs": EPOCHS, "seed": FEATURE_NET_SEED}
    val = dataset.split("val")
    if target_frames(val) is not None and len(val):
        with torch.no_grad():
            xv = to_protocol_images(np.asarray(target_frames(val)), size, source=dataset.spec.name, field="val frames")
            pred = torch.cat([net(xv[i : i + 256]).argmax(1) for i in range(0, len(xv), 256)])
        report["val_accuracy"] = float((pred.numpy() == np.asarray(val.labels)).mean())
    return net, report


def _save(path: Path, net: FeatureNet, report: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save({"version": FEATURE_NET_VERSION, "num_classes": net.num_classes, "size": list(net.size),
                "report": report, "state_dict": net.state_dict()}, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load(path: Path, num_classes: int, size: tuple[int, int]) -> FeatureNet | None:
    """The cached network, or ``None`` when the file is absent, unreadable or of another setup."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if (blob.get("version") != FEATURE_NET_VERSION or int(blob["num_classes"]) != num_classes
                or tuple(blob["size"]) != tuple(size)):
            return None
        net = FeatureNet(num_classes, size)
        net.load_state_dict(blob["state_dict"], strict=True)
    except Exception:  # a corrupt or foreign cache file is retrained, never trusted
        return None
    net.report = dict(blob.get("report", {}))  # type: ignore[attr-defined]
    return net.eval()


def load_or_train(dataset: Any, *, use_cache: bool = True, progress: bool = False) -> FeatureNet:
    """The dataset's feature network: from memory, from the disk cache, or trained (then cached)."""
    path = cache_path(dataset)
    key = str(path)
    if use_cache and key in _LOADED:
        return _LOADED[key]
    size = _dataset_size(dataset)
    net = _load(path, int(dataset.spec.num_classes), size) if use_cache else None
    if net is None:
        net, report = train_feature_net(dataset, progress=progress)
        net.report = report  # type: ignore[attr-defined]
        if use_cache:
            try:
                _save(path, net, report)
            except OSError:
                pass  # a read-only cache is not an error: the net is retrained next time
    if use_cache:
        _LOADED[key] = net
    return net


@torch.no_grad()
def net_features(net: FeatureNet, images: Any, *, source: str = "images", field: str = "images",
                 batch_size: int = 256) -> np.ndarray:
    """``(N, 128)`` float64 features of ``(N, 3, H, W)`` images (uint8, or float in [0, 1])."""
    x = to_protocol_images(images, net.size, source=source, field=field)
    net.eval()
    return torch.cat([net.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]).double().numpy()


def frame_features(dataset: Any, images: Any, *, source: str = "images") -> np.ndarray:
    """Features of ``images`` under ``dataset``'s feature network: what ``score`` compares.

    ``submit --pred`` applies it to a submission's generated images (submitters hand in images,
    never features; the network is trained on first use and cached): ``images`` of shape
    ``(N, 3, H, W)``, uint8 or float in [0, 1]; any resolution (brought to the protocol size).
    """
    return net_features(load_or_train(dataset), images, source=source)
