"""Encoders: output shapes on image / feature-map / vector specs, T = 1, gradients, behaviour of each family."""
from __future__ import annotations

import pytest
import torch

from avcl_bench.baselines.encoders import ENCODERS, get_encoder
from avcl_bench.baselines.encoders.cnn import AudioCNN, audio_layout
from avcl_bench.baselines.encoders.self_attention import AttentionPool
from avcl_bench.baselines.encoders.transformer import sinusoidal_positions
from avcl_bench.benchmark.errors import ConfigError
from avcl_bench.benchmark.interface import DataSpec

MINE = ("cnn", "self_attention", "co_attention", "transformer", "autoencoder", "vae", "gan")
DIM, HIDDEN = 16, 32

SPECS = {
    # avsynth-like: 4 frames x 8 mels per segment, 16x16 RGB frames
    "image": DataSpec("img", (5, 32), (5, 3, 16, 16), 4, extra={"config": {"n_mels": 8}}),
    # VGG-19-like feature maps, audio without a spectrogram layout (1-D audio CNN)
    "maps": DataSpec("maps", (5, 24), (5, 40, 7, 7), 4, visual_is_image=False),
    # pooled feature vectors stored as (D, 1, 1)
    "vectors": DataSpec("vec", (5, 20), (5, 12, 1, 1), 4, visual_is_image=False),
}


def _inputs(spec: DataSpec, b: int, t: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(b, t, spec.audio_shape[-1], generator=g)
    visual = torch.rand(b, t, *spec.visual_shape[1:], generator=g)
    return audio, visual


def _towers(name: str, spec: DataSpec) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    mod = get_encoder(name)
    return mod.build_audio(spec, DIM, hidden=HIDDEN), mod.build_visual(spec, DIM, hidden=HIDDEN)


def test_registry_lists_every_encoder() -> None:
    for name in ("mlp", *MINE):
        mod = get_encoder(name)
        assert callable(mod.build_audio) and callable(mod.build_visual), name
    assert set(MINE) <= set(ENCODERS.names())


@pytest.mark.parametrize("spec_name", list(SPECS))
@pytest.mark.parametrize("name", MINE)
@pytest.mark.parametrize("t", [5, 1])
def test_output_shapes(name: str, spec_name: str, t: int) -> None:
    spec = SPECS[spec_name]
    ea, ev = _towers(name, spec)
    ea.eval(), ev.eval()
    audio, visual = _inputs(spec, 3, t)
    h, w = spec.visual_shape[-2:]
    with torch.no_grad():
        assert ea(audio).shape == (3, DIM)
        assert ev(visual).shape == (3, DIM)
        assert ea.segments(audio).shape == (3, t, DIM)
        assert ev.segments(visual).shape == (3, t, DIM)
        sp = ev.spatial(visual)
    expect_hw = (h // 4, w // 4) if spec.visual_is_image else (h, w)
    assert sp.shape == (3, DIM, *expect_hw)
    for out in (ea(audio), ev(visual), sp):
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MINE)
def test_clip_embedding_pools_segments(name: str) -> None:
    spec = SPECS["image"]
    ea, ev = _towers(name, spec)
    ea.eval(), ev.eval()
    audio, visual = _inputs(spec, 2, 5)
    with torch.no_grad():
        assert torch.allclose(ea(audio), ea.pool(ea.segments(audio)), atol=1e-6)
        assert torch.allclose(ev(visual), ev.pool(ev.segments(visual)), atol=1e-6)


@pytest.mark.parametrize("spec_name", ["image", "maps"])
@pytest.mark.parametrize("name", MINE)
def test_every_parameter_gets_a_gradient(name: str, spec_name: str) -> None:
    spec = SPECS[spec_name]
    ea, ev = _towers(name, spec)
    ea.train(), ev.train()
    audio, visual = _inputs(spec, 2, 3)
    loss = ea(audio).square().sum() + ev(visual).square().sum() + ev.spatial(visual).square().sum()
    if hasattr(ea, "reconstruct"):  # auto-encoders: decoders (and VAE log-variances) are trained through this
        for enc, x in ((ea, audio), (ev, visual)):
            loss = loss + sum(o.square().sum() for o in enc.reconstruct(x))
    if hasattr(ea, "cross_segments"):
        loss = loss + ea.cross_segments(audio, ev.features(visual)).square().sum()
    loss.backward()
    for tower in (ea, ev):
        for pname, p in tower.named_parameters():
            assert p.grad is not None, f"{name}/{spec_name}: {pname} gets no gradient"
            assert torch.isfinite(p.grad).all(), pname
    assert any(float(p.grad.abs().sum()) > 0 for p in ea.front.parameters())


def test_audio_layout_hints() -> None:
    assert audio_layout(SPECS["image"]) == (4, 8)
    assert audio_layout(DataSpec("x", (5, 32), (5, 3, 8, 8), 2, extra={"n_mels": 16})) == (2, 16)
    assert audio_layout(DataSpec("x", (5, 32), (5, 3, 8, 8), 2, extra={"audio_layout": [8, 4]})) == (8, 4)
    assert audio_layout(SPECS["maps"]) is None
    assert audio_layout(DataSpec("x", (5, 30), (5, 3, 8, 8), 2, extra={"n_mels": 8})) is None  # 30 % 8 != 0
    with pytest.raises(ConfigError, match="audio_layout"):
        audio_layout(DataSpec("x", (5, 32), (5, 3, 8, 8), 2, extra={"audio_layout": (5, 5)}))
    with pytest.raises(ConfigError, match="audio_layout"):
        audio_layout(DataSpec("x", (5, 32), (5, 3, 8, 8), 2, extra={"audio_layout": "4x8"}))


def test_audio_cnn_2d_sees_the_mel_layout() -> None:
    """The 2-D path convolves (frames, mels): moving energy across frames changes the output."""
    spec = SPECS["image"]
    torch.manual_seed(0)
    net = AudioCNN(spec, HIDDEN).eval()
    x = torch.zeros(1, 1, 32)
    x[0, 0, :8] = 1.0  # first frame
    y = torch.zeros(1, 1, 32)
    y[0, 0, 24:] = 1.0  # last frame, same mel values
    with torch.no_grad():
        assert not torch.allclose(net(x), net(y))


def test_bad_hyper_parameters_raise() -> None:
    spec = SPECS["image"]
    with pytest.raises(ConfigError, match="heads"):
        get_encoder("transformer").build_audio(spec, DIM, hidden=30, heads=4)
    with pytest.raises(ConfigError, match="heads"):
        get_encoder("co_attention").build_visual(spec, 18, hidden=HIDDEN, heads=4)
    with pytest.raises(ConfigError, match="hidden"):
        get_encoder("cnn").build_audio(spec, DIM, hidden=0)
    with pytest.raises(ConfigError, match="recon_size"):
        get_encoder("autoencoder").build_visual(spec, DIM, hidden=HIDDEN, recon_size=0)


def test_attention_pool_is_a_convex_combination() -> None:
    torch.manual_seed(0)
    pool = AttentionPool(6)
    x = torch.randn(3, 5, 6)
    w = pool.weights(x)
    assert w.shape == (3, 5) and torch.allclose(w.sum(-1), torch.ones(3)) and (w >= 0).all()
    assert torch.allclose(pool(x), (w.unsqueeze(-1) * x).sum(1), atol=1e-6)
    same = x[:, :1].expand(3, 5, 6)
    assert torch.allclose(pool(same), x[:, 0], atol=1e-6)  # identical items pool to themselves


def test_sinusoidal_positions() -> None:
    pe = sinusoidal_positions(7, 6)
    assert pe.shape == (7, 6)
    assert torch.allclose(pe[0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))
    assert torch.allclose(pe[3, 0], torch.sin(torch.tensor(3.0)))
    assert sinusoidal_positions(3, 5).shape == (3, 5)  # odd width


def test_transformer_uses_segment_order() -> None:
    spec = SPECS["image"]
    ea, _ = _towers("transformer", spec)
    ea.eval()
    audio, _ = _inputs(spec, 1, 5)
    with torch.no_grad():
        seg = ea.segments(audio)
        seg_rev = ea.segments(audio.flip(1)).flip(1)
    assert not torch.allclose(seg, seg_rev, atol=1e-5)  # positions matter


def test_co_attention_cross_context() -> None:
    spec = SPECS["image"]
    ea, ev = _towers("co_attention", spec)
    ea.eval(), ev.eval()
    audio, visual = _inputs(spec, 2, 5)
    _, other = _inputs(spec, 2, 5, seed=1)
    with torch.no_grad():
        f_audio = ea.features(audio)
        cross1 = ea.cross_segments(audio, ev.features(visual))
        cross2 = ea.cross_segments(audio, ev.features(other))
        assert cross1.shape == (2, 5, DIM)
        assert not torch.allclose(cross1, cross2)  # the visual context matters
        assert torch.allclose(ea.segments(audio), ea.attend(f_audio, f_audio))  # audio alone: self-context
        # a different number of context segments (e.g. a single visual frame) is accepted
        assert ea.cross_segments(audio, ev.features(visual[:, :1])).shape == (2, 5, DIM)


@pytest.mark.parametrize("spec_name", ["image", "maps"])
def test_autoencoder_targets(spec_name: str) -> None:
    spec = SPECS[spec_name]
    ea, ev = _towers("autoencoder", spec)
    audio, visual = _inputs(spec, 2, 3)
    xa_hat, xa = ea.reconstruct(audio)
    assert xa_hat.shape == xa.shape == audio.shape and torch.equal(xa, audio)
    xv_hat, xv = ev.reconstruct(visual)
    c = spec.visual_shape[1]
    if spec.visual_is_image:  # 16x16 frames average-pooled to recon_size 8 x 8
        want = c * 8 * 8
        assert torch.allclose(xv[0, 0, 0], visual[0, 0, 0, :2, :2].mean())  # top-left 2x2 block of channel 0
    else:  # feature maps: the spatially averaged channels
        want = c
        assert torch.allclose(xv, visual.mean(dim=(-2, -1)))
    assert xv_hat.shape == xv.shape == (2, 3, want)


def test_vae_posterior_and_sampling() -> None:
    spec = SPECS["image"]
    ea, ev = _towers("vae", spec)
    audio, visual = _inputs(spec, 2, 3)
    for enc, x in ((ea, audio), (ev, visual)):
        enc.eval()
        with torch.no_grad():
            mu, logvar = enc.posterior(x)
            assert mu.shape == logvar.shape == (2, 3, DIM)
            assert torch.allclose(enc.segments(x), mu, atol=1e-6)  # the embedding is the mean
            r1, r2 = enc.reconstruct(x)[0], enc.reconstruct(x)[0]
            assert torch.equal(r1, r2)  # eval: decoder reads mu
        enc.train()
        torch.manual_seed(1)
        s1 = enc.reconstruct(x)[0]
        torch.manual_seed(2)
        s2 = enc.reconstruct(x)[0]
        assert not torch.allclose(s1, s2)  # train: reparameterised samples


def test_gan_discriminator() -> None:
    from avcl_bench.baselines.encoders.gan import build_discriminator

    torch.manual_seed(0)
    d = build_discriminator(DIM, HIDDEN)
    out = d(torch.randn(5, DIM))
    assert out.shape == (5,)


def test_image_front_end_runs_channels_last_with_the_same_numbers_and_contiguous_weights() -> None:
    """The visual front end feeds oneDNN channels-last frames (a speed choice only): its output
    matches the plain NCHW computation, and weights and gradients stay in the default layout,
    so state dicts save as they did (safetensors needs contiguous tensors)."""
    from avcl_bench.baselines.encoders.base import VisualFrontEnd

    torch.manual_seed(0)
    front = VisualFrontEnd((5, 3, 16, 16), HIDDEN, True)
    x = torch.rand(4, 5, 3, 16, 16)
    out = front(x)
    plain = front.net(x.flatten(0, 1).contiguous()).unflatten(0, (4, 5))
    assert out.shape == (4, 5, HIDDEN, 4, 4)
    torch.testing.assert_close(out, plain, rtol=1e-4, atol=1e-5)
    out.square().sum().backward()
    for name, p in front.named_parameters():
        assert p.is_contiguous() and p.grad is not None and p.grad.is_contiguous(), name
    assert all(t.is_contiguous() for t in front.state_dict().values())
