"""The FID Inception-v3 network in plain torch, for pool3 features of real images.

FID on images is only comparable across papers when computed with the TensorFlow
Inception graph of 2015-12-05 that the original FID code used. pytorch-fid ports its
weights to PyTorch as ``pt_inception-2015-12-05-6726825d.pth`` (a plain state_dict of
torchvision's ``Inception3`` with a few blocks patched to follow the TensorFlow graph).
torchvision cannot be imported beside this suite's torch, so the network is defined
here with the same module and parameter names; the weights file then loads with
``strict=True``.

Differences from torchvision's Inception-v3, as in the TensorFlow graph:

* average pooling in the Mixed 5b-5d, 6b-6e and 7b blocks ignores zero padding
  (``count_include_pad=False``);
* the pooling branch of the last block (Mixed_7c) uses max pooling instead of average;
* the classifier has 1008 outputs (it is unused: FID takes the 2048-d pool3 output).

Inputs are RGB images in ``[0, 1]``, resized to 299x299 (bilinear) and scaled to
``[-1, 1]`` exactly as pytorch-fid's ``InceptionV3`` does before the network.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avcl_bench.benchmark.errors import ConfigError, InputError

#: File name of pytorch-fid's FID Inception weights (its GitHub release asset).
WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_HINT = (
    f"download the FID Inception weights {WEIGHTS_NAME} from the pytorch-fid releases "
    "(https://github.com/mseitzer/pytorch-fid/releases, asset of release 'fid_weights')"
)
#: Input resolution of Inception-v3 and the pool3 feature size.
INPUT_SIZE = 299
FEATURE_DIM = 2048
_NUM_CLASSES = 1008


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3, as TensorFlow), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_same(x: Tensor) -> Tensor:
    """3x3 stride-1 average pooling that, like TensorFlow, does not count the padding."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    """35x35 block (Mixed_5b/5c/5d): 1x1, 5x5, double 3x3 and pooled branches."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_same(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Grid reduction 35x35 -> 17x17 (Mixed_6a)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class FIDInceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (Mixed_6b..6e)."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_avg_pool_same(x))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    """Grid reduction 17x17 -> 8x8 (Mixed_7a)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class FIDInceptionE(nn.Module):
    """8x8 block with split 3x3 convolutions (Mixed_7b with average, Mixed_7c with max pooling)."""

    def __init__(self, in_channels: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.pool == "avg":
            pooled = _avg_pool_same(x)
        else:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 of the FID TensorFlow graph; ``forward`` returns pool3 features.

    Module names follow torchvision's ``Inception3`` (without the auxiliary head) so that
    pytorch-fid's weights file loads with ``strict=True``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, pool="avg")
        self.Mixed_7c = FIDInceptionE(2048, pool="max")
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(FEATURE_DIM, _NUM_CLASSES)  # kept for the weights file; unused

    def forward(self, images: Tensor) -> Tensor:
        """``(N, 3, H, W)`` images in ``[0, 1]`` -> ``(N, 2048)`` pool3 features."""
        x = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        for layer in (self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3, self.maxpool1,
                      self.Conv2d_3b_1x1, self.Conv2d_4a_3x3, self.maxpool2,
                      self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a,
                      self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e,
                      self.Mixed_7a, self.Mixed_7b, self.Mixed_7c, self.avgpool):
            x = layer(x)
        return torch.flatten(x, 1)


def load_fid_inception(path: str | Path) -> FIDInceptionV3:
    """Build :class:`FIDInceptionV3` and load pytorch-fid's weights file into it (strict).

    The file is read with ``weights_only=True`` (no arbitrary pickles). A missing file, a
    file that is not a state_dict, or a state_dict with missing / unexpected / misshaped
    entries raises a one-line :class:`~benchmark.errors.InputError`.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, None, f"Inception weights file not found; {WEIGHTS_HINT}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, or a pickle that weights_only refuses
        raise InputError(p, None, f"not a loadable weights-only torch file ({e.__class__.__name__}); {WEIGHTS_HINT}") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise InputError(p, None, "expected a state_dict (a mapping of parameter names to tensors)")

    model = FIDInceptionV3()
    expected = model.state_dict()
    state = dict(state)
    for key, value in expected.items():
        # BatchNorm's batch counter is absent from some older checkpoints and unused in eval
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = value.clone()
    missing = [k for k in expected if k not in state]
    if missing:
        raise InputError(p, missing[0], f"missing from the state_dict ({len(missing)} missing key(s)); is this {WEIGHTS_NAME}?")
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise InputError(p, unexpected[0], f"unexpected key in the state_dict ({len(unexpected)} unexpected); is this {WEIGHTS_NAME}?")
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise InputError(p, key, f"shape {tuple(state[key].shape)} does not match the network's {tuple(value.shape)}")
    model.load_state_dict(state, strict=True)
    return model.eval()


def inception_features(
    model: nn.Module, images: Tensor | np.ndarray, batch_size: int = 50, device: str | torch.device | None = None,
    *, source: str = "images",
) -> np.ndarray:
    """Pool3 features ``(N, 2048)`` (float32) of ``(N, 3, H, W)`` RGB images in ``[0, 1]``.

    Images are resized to 299x299 and scaled to ``[-1, 1]`` inside the network, as
    pytorch-fid does. The model runs in eval mode without gradients on ``device``
    (default: CPU), ``batch_size`` images at a time.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    x = images if isinstance(images, Tensor) else torch.from_numpy(np.asarray(images))
    if not x.is_floating_point():
        hint = " (divide uint8 images by 255 first)" if x.dtype == torch.uint8 else ""
        raise InputError(source, None, f"expected float images in [0, 1], got dtype {x.dtype}{hint}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise InputError(source, None, f"expected shape (N, 3, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise InputError(source, None, f"empty image batch of shape {tuple(x.shape)}")
    x = x.float()
    if not bool(torch.isfinite(x).all()):
        raise InputError(source, None, "contains NaN or inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(source, None, f"pixel values must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]")

    dev = torch.device(device or "cpu")
    model = model.to(dev).eval()
    out = np.empty((x.shape[0], FEATURE_DIM), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            feats = model(x[start:start + batch_size].to(dev))
            out[start:start + feats.shape[0]] = feats.reshape(feats.shape[0], -1).cpu().numpy()
    return out
