"""An example external model for ``validate-model`` / ``submit --model``.

``python run_benchmark.py validate-model examples/mean_pool_model.py:MeanPoolPCA``

It mean-pools each modality over segments (and pixels), then projects both into a shared
D-dimensional space with PCA fitted on the train split followed by a least-squares map from
the visual PCA space onto the audio PCA space of paired clips: a linear, label-free model.
"""
from __future__ import annotations

import numpy as np
import torch

from avcl_bench import AVSplit, DataSpec, FitContext, to_float_tensor


class MeanPoolPCA:
    """Mean pooling + PCA + a least-squares visual->audio map (no labels used)."""

    encoder = ["mlp"]
    objective = ["l2"]
    learning = "semi-supervised"
    papers: list[str] = []
    datasets = ["avsynth"]

    trainable = True
    capabilities = frozenset()

    def __init__(self, spec: DataSpec, dim: int = 32):
        self.dim = dim
        self.pa = self.pv = self.map = None

    def config(self) -> dict:
        return {"dim": self.dim}

    @staticmethod
    def _pool_audio(audio: torch.Tensor) -> np.ndarray:
        return audio.float().mean(1).cpu().numpy().astype(np.float64)

    @staticmethod
    def _pool_visual(visual: torch.Tensor) -> np.ndarray:
        v = visual.float()
        return torch.cat([v.mean(dim=(1, 3, 4)), v.flatten(3).std(-1).mean(1)], dim=1).cpu().numpy().astype(np.float64)

    @staticmethod
    def _pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        mu = x.mean(0)
        _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
        return mu, vt[:k].T

    def fit(self, train: AVSplit, val: AVSplit | None, ctx: FitContext) -> None:
        xa = self._pool_audio(to_float_tensor(train.audio))
        xv = self._pool_visual(to_float_tensor(train.visual))
        k = min(self.dim, xa.shape[1], xv.shape[1], len(xa) - 1)
        self.pa, self.pv = self._pca(xa, k), self._pca(xv, k)
        za, zv = (xa - self.pa[0]) @ self.pa[1], (xv - self.pv[0]) @ self.pv[1]
        self.map = np.linalg.lstsq(zv, za, rcond=None)[0]
        self.k = k

    def _pad(self, z: np.ndarray) -> torch.Tensor:
        out = np.zeros((len(z), self.dim))
        out[:, : z.shape[1]] = z
        return torch.from_numpy(out).float()

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        return self._pad((self._pool_audio(audio) - self.pa[0]) @ self.pa[1])

    def embed_visual(self, visual: torch.Tensor) -> torch.Tensor:
        return self._pad((self._pool_visual(visual) - self.pv[0]) @ self.pv[1] @ self.map)
