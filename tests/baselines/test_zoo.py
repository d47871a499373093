"""The baseline zoo: registrations, taxonomy coverage, label use, smoke fits, determinism, DCCA projection."""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
import torch

import avcl_bench.baselines.random_projection  # noqa: F401  (registers ``random``)
import avcl_bench.baselines.zoo as zoo
from avcl_bench.baselines.base import Batch, make_batch, seed_everything
from avcl_bench.baselines.encoders import ENCODERS
from avcl_bench.baselines.objectives import OBJECTIVES, canonical_correlations
from avcl_bench.baselines.registry import LEARNING, MODELS, build_model, model_info
from avcl_bench.benchmark.datasets.avsynth import AVSynthConfig, build
from avcl_bench.benchmark.embedding import embed_split
from avcl_bench.benchmark.errors import ConfigError, InputError
from avcl_bench.benchmark.interface import FitContext, missing_methods
from tests.conftest import REPO

#: the models this module registers (other modules may register more in the same session)
ZOO = sorted(n for n in MODELS.names() if MODELS.get(n).__module__ == zoo.__name__)


@lru_cache(maxsize=1)
def tiny():
    """A small avsynth instance: 4 classes, 4 segments, 16x16 frames (built in memory, no cache)."""
    cfg = AVSynthConfig(num_classes=4, segments=4, image_size=16, n_train=32, n_val=12, n_test=12, seed=3)
    return build(cfg, use_cache=False)


def _fit(name: str, seed: int = 0, **args):
    ds = tiny()
    seed_everything(seed)
    model = build_model(name, ds.spec, dim=16, hidden=16, quick_epochs=2, batch_size=16, **args)
    model.fit(ds.split("train"), ds.split("val"), FitContext(seed=seed, quick=True, progress=False))
    return model


# ----------------------------------------------------------------------------- registry
def test_zoo_size_and_metadata() -> None:
    assert len(ZOO) >= 12
    papers = set(pd.read_csv(REPO / "results" / "surveyed" / "table1.csv")["paper"])
    for name in ZOO:
        meta = model_info(name)
        assert meta["learning"] in LEARNING and meta["learning"] != "unsupervised", name
        assert meta["encoder"] and set(meta["encoder"]) <= set(ENCODERS.names()), name
        assert meta["objective"] and set(meta["objective"]) <= set(OBJECTIVES), name
        assert meta["papers"] and set(meta["papers"]) <= papers, (name, set(meta["papers"]) - papers)
        assert meta["description"].strip(), name


def test_every_encoder_and_objective_is_used() -> None:
    encoders = {e for n in ZOO for e in MODELS.meta(n)["encoder"]}
    objectives = {o for n in ZOO for o in MODELS.meta(n)["objective"]}
    assert encoders == set(ENCODERS.names())
    assert objectives == set(OBJECTIVES)


def test_supervision_matches_the_registry() -> None:
    """Supervised models read labels; semi-supervised ones never do (invalid labels go unnoticed)."""
    ds = tiny()
    train = ds.split("train")
    for name in ZOO:
        seed_everything(0)
        model = build_model(name, ds.spec, dim=16, hidden=16)
        model.train()
        batch = make_batch(train, np.arange(16), "cpu")
        bad = Batch(audio=batch.audio, visual=batch.visual, labels=torch.full((16,), -1),
                    segment_labels=batch.segment_labels)
        assert torch.isfinite(model.loss(batch)), name
        if MODELS.meta(name)["learning"] == "supervised":
            with pytest.raises((InputError, IndexError, RuntimeError)):
                model.loss(bad)
        else:
            assert torch.isfinite(model.loss(bad)), name


def test_factory_options() -> None:
    ds = tiny()
    model = build_model("infonce", ds.spec, dim=8, hidden=16, epochs=3, quick_epochs=2, lr=1e-3, batch_size=8,
                        train_segments=0)
    cfg = model.config()
    assert cfg["dim"] == 8 and cfg["hidden"] == 16 and cfg["train_segments"] is None
    assert cfg["train"]["epochs"] == 3 and cfg["train"]["quick_epochs"] == 2 and cfg["train"]["lr"] == 1e-3
    assert cfg["learning"] == "semi-supervised" and cfg["objective_args"]["infonce"]["temperature"] == 0.1
    with pytest.raises(ConfigError, match="epochs"):
        build_model("infonce", ds.spec, epochs=0)
    with pytest.raises(ConfigError, match="train_segments"):
        build_model("infonce", ds.spec, train_segments=-2)
    with pytest.raises(TypeError):
        build_model("infonce", ds.spec, temperature=0.5)  # not a factory option
    # each model gets its own copy of the registered options
    a, b = build_model("mms", ds.spec), build_model("mms", ds.spec)
    a.on_epoch_start(9, 10)
    assert b.objective_args["mms"]["margin"] == 0.05


def test_margin_schedule_follows_the_epochs() -> None:
    model = build_model("mms", tiny().spec, dim=8, hidden=16)
    margins = []
    for epoch in range(5):
        model.on_epoch_start(epoch, 5)
        margins.append(model.objective_args["mms"]["margin"])
    assert margins == pytest.approx([0.05, 0.1125, 0.175, 0.2375, 0.3])


def test_sample_segments_keeps_pairs_aligned() -> None:
    b, t = 3, 6
    seg_ids = torch.arange(t, dtype=torch.float32)
    audio = seg_ids.view(1, t, 1).expand(b, t, 2).clone()
    visual = seg_ids.view(1, t, 1, 1, 1).expand(b, t, 3, 2, 2).clone()
    batch = Batch(audio=audio, visual=visual, labels=torch.zeros(b, dtype=torch.long),
                  segment_labels=torch.arange(t).expand(b, t).clone())
    torch.manual_seed(0)
    out = zoo.sample_segments(batch, 4)
    assert out.audio.shape == (b, 4, 2) and out.visual.shape == (b, 4, 3, 2, 2)
    a_ids, v_ids = out.audio[..., 0], out.visual[:, :, 0, 0, 0]
    assert torch.equal(a_ids, v_ids) and torch.equal(out.segment_labels.float(), a_ids)
    assert (a_ids.diff(dim=1) > 0).all()  # sorted, no repeats
    assert zoo.sample_segments(batch, t) is batch


# ----------------------------------------------------------------------------- smoke fits
@pytest.mark.parametrize("name", ZOO)
def test_smoke_fit(name: str) -> None:
    ds = tiny()
    model = _fit(name)
    assert not missing_methods(model), name
    assert model.fit_report["epochs_run"] == 2
    test = ds.split("test")
    a, v = embed_split(model, test)
    assert a.shape == v.shape == (len(test), model.dim if name != "dcca" else model.cca_dim)
    assert np.isfinite(a).all() and np.isfinite(v).all()
    visual = torch.from_numpy(np.asarray(test.visual[:2])).float() / 255
    audio = torch.from_numpy(np.asarray(test.audio[:2]))
    for x, t in ((audio, 4), (audio[:, :1], 1)):  # all segments and a single one
        assert model.embed_audio_segments(x).shape[:2] == (2, t)
    assert model.embed_visual_segments(visual[:, :1]).shape[:2] == (2, 1)
    assert model.embed_visual_spatial(visual).shape[0] == 2
    json.dumps(model.config())  # lands in result records


@pytest.mark.parametrize("name", ["infonce", "vae_elbo", "gan_adv", "dcca"])
def test_training_is_deterministic(name: str) -> None:
    test = tiny().split("test")
    a1, v1 = embed_split(_fit(name, seed=5), test)
    a2, v2 = embed_split(_fit(name, seed=5), test)
    assert np.array_equal(a1, a2) and np.array_equal(v1, v2)
    a3, _ = embed_split(_fit(name, seed=6), test)
    assert not np.array_equal(a1, a3)


# ----------------------------------------------------------------------------- model-specific behaviour
def test_linear_cca_against_the_objective() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(400, 3, generator=g, dtype=torch.float64)
    a = torch.cat([z, torch.randn(400, 3, generator=g, dtype=torch.float64)], 1) @ torch.randn(6, 6, generator=g,
                                                                                               dtype=torch.float64)
    v = torch.cat([z + 0.5 * torch.randn(400, 3, generator=g, dtype=torch.float64),
                   torch.randn(400, 2, generator=g, dtype=torch.float64)], 1)
    mean_a, mean_v, pa, pv = zoo.linear_cca(a, v, 3, r1=0.0, r2=0.0)
    xa, xv = (a - mean_a) @ pa, (v - mean_v) @ pv
    n = a.shape[0] - 1
    assert torch.allclose(xa.T @ xa / n, torch.eye(3, dtype=torch.float64), atol=1e-8)  # whitened
    assert torch.allclose(xv.T @ xv / n, torch.eye(3, dtype=torch.float64), atol=1e-8)
    cross = xa.T @ xv / n
    rho = canonical_correlations(a, v, r1=0.0, r2=0.0)[:3]
    assert torch.allclose(torch.diagonal(cross), rho, atol=1e-8)  # variates correlate by the canonical rhos
    assert torch.allclose(cross - torch.diag(torch.diagonal(cross)), torch.zeros(3, 3, dtype=torch.float64),
                          atol=1e-8)


def test_dcca_projection_is_refit_and_restored() -> None:
    model = _fit("dcca")
    assert not torch.equal(model.proj_a, torch.eye(model.dim, model.cca_dim))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert "proj_a" in state and "mean_v" in state  # buffers travel with early-stopping checkpoints
    x = torch.from_numpy(np.asarray(tiny().split("test").audio[:3]))
    raw = torch.nn.Module.__call__(model.audio_encoder.eval(), x).detach()
    assert torch.allclose(model.embed_audio(x), (raw - model.mean_a) @ model.proj_a, atol=1e-5)


def test_coattention_exposes_cross_attended_segments() -> None:
    model = _fit("coattn_ce")
    test = tiny().split("test")
    audio = torch.from_numpy(np.asarray(test.audio[:2]))
    visual = torch.from_numpy(np.asarray(test.visual[:2])).float() / 255
    a, v = model.embed_av_segments(audio, visual)
    assert a.shape == v.shape == (2, 4, model.dim)
    a_other, _ = model.embed_av_segments(audio, visual.flip(0))
    assert not torch.allclose(a, a_other)  # the audio segments depend on the paired visual input


def test_gan_players_update_only_their_parameters() -> None:
    ds = tiny()
    seed_everything(0)
    model = build_model("gan_adv", ds.spec, dim=16, hidden=16)
    model.train()
    batch = make_batch(ds.split("train"), np.arange(16), "cpu")
    terms = model.loss_terms(batch)
    assert set(terms) == {"lifted", "adv_d", "adv_g"}
    model.zero_grad()
    terms["adv_d"].backward()
    assert all(p.grad is None for p in model.audio_encoder.parameters())
    assert all(p.grad is not None for p in model.discriminator.parameters())
    model.zero_grad(set_to_none=True)
    model.loss_terms(batch)["adv_g"].backward()
    assert all(p.grad is None for p in model.discriminator.parameters())
    assert any(p.grad is not None for p in model.audio_encoder.parameters())


def test_contrastive_pairs_are_balanced() -> None:
    """cnn_contrastive: mean over B matched pairs (d^2) and B shifted mismatched pairs (max(0, 1 - d)^2)."""
    ds = tiny()
    seed_everything(0)
    model = build_model("cnn_contrastive", ds.spec, dim=16, hidden=16).eval()
    batch = make_batch(ds.split("train"), np.arange(8), "cpu")
    torch.manual_seed(3)
    got = model.loss_terms(batch)["contrastive"]
    torch.manual_seed(3)
    shift = int(torch.randint(1, 8, (1,)))
    a, v = model.encode_batch(batch)
    d_pos = 1 - torch.nn.functional.cosine_similarity(a, v)
    d_neg = 1 - torch.nn.functional.cosine_similarity(a, v.roll(shift, dims=0))
    want = (d_pos.pow(2).sum() + (1 - d_neg).clamp_min(0).pow(2).sum()) / 16
    assert torch.allclose(got, want, atol=1e-6)


def test_invalid_model_options_raise() -> None:
    spec = tiny().spec
    common = {"encoder": "cnn", "dim": 8, "hidden": 16}
    with pytest.raises(ConfigError, match="learning"):
        zoo.PairwiseModel(spec, objective="infonce", learning="unsupervised", **common)
    with pytest.raises(ConfigError, match="pairwise"):
        zoo.PairwiseModel(spec, objective="dcca", learning="semi-supervised", **common)
    with pytest.raises(ConfigError, match="unknown objective"):
        zoo.PairwiseModel(spec, objective="infonce", learning="semi-supervised", objective_args={"nce": {}}, **common)
    with pytest.raises(ConfigError, match="supervised"):
        zoo.ClassifierModel(spec, learning="semi-supervised", **common)
    with pytest.raises(ConfigError, match="reconstruct"):
        zoo.AutoencoderModel(spec, learning="semi-supervised", **common)
    with pytest.raises(ConfigError, match="cca_dim"):
        zoo.DCCAModel(spec, learning="semi-supervised", cca_dim=9, **common)
    with pytest.raises(ConfigError, match="margin"):
        zoo.PairwiseModel(spec, objective="mms", learning="semi-supervised",
                          margin_schedule={"start": 0.3, "end": 0.1}, **common)
    with pytest.raises(ConfigError, match="dim"):
        zoo.PairwiseModel(spec, objective="infonce", learning="semi-supervised", encoder="cnn", dim=0, hidden=16)
