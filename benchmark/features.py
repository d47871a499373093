"""Audio front ends shared by datasets: log-mel spectrograms (torch.stft, GPU-capable)."""
from __future__ import annotations

import numpy as np
import torch


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Triangular HTK mel filters, shape ``(n_mels, n_fft // 2 + 1)``."""
    fmax = sample_rate / 2 if fmax is None else fmax
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lo, ce, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (ce - lo)
    down = (hi - freqs[None]) / (hi - ce)
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


def log_mel(waves: np.ndarray | torch.Tensor, sample_rate: int, *, n_fft: int, hop: int, n_mels: int,
            fmin: float = 0.0, fmax: float | None = None, eps: float = 1e-6) -> torch.Tensor:
    """Log-mel power spectrogram of ``(N, L)`` waveforms -> ``(N, frames, n_mels)``.

    Frames are not centred: frame ``i`` covers samples ``[i*hop, i*hop + n_fft)`` of the
    signal right-padded with zeros, so ``frames = ceil(L / hop)`` and segment boundaries
    that are multiples of ``hop`` map to whole frames.
    """
    x = torch.as_tensor(waves, dtype=torch.float32)
    frames = -(-x.shape[-1] // hop)
    pad = frames * hop + n_fft - hop - x.shape[-1]
    x = torch.nn.functional.pad(x, (0, pad))
    window = torch.hann_window(n_fft, device=x.device)
    spec = torch.stft(x, n_fft, hop_length=hop, window=window, center=False, return_complex=True)
    power = spec.abs().pow(2)  # (N, F, frames)
    fb = torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)).to(x.device)
    mel = torch.einsum("mf,nft->ntm", fb, power)
    return torch.log(mel + eps)[:, :frames]
