"""Generation task adapter: feature network cache, decoder protocol, score/export round trips."""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pytest
import torch

from avcl_bench.baselines.random_projection import RandomProjection
from avcl_bench.benchmark.datasets.avsynth import AVSynthConfig, build
from avcl_bench.benchmark.errors import ConfigError, InputError
from avcl_bench.tasks.base import EvalContext
from avcl_bench.tasks.generation import feature_net as fn
from avcl_bench.tasks.generation.metrics import generation_metrics
from avcl_bench.tasks.generation.task import METRICS, FrameDecoder, GenerationTask, frame_features

KEYS = {"FD", "KID", "KID_std", "MRR"}


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """A private feature-net cache for this module (never the user's ~/.cache)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AVCL_CACHE", str(tmp_path_factory.mktemp("avcl-cache")))
    fn._LOADED.clear()
    yield
    fn._LOADED.clear()
    mp.undo()


@lru_cache(maxsize=None)
def tiny():
    # difficulty 0: the object is centred, so 60 train frames suffice for the feature net to learn
    # the looks (with generator v3 a frame names a pair of classes: its ceiling is 0.5)
    return build(AVSynthConfig.quick(n_train=60, n_val=20, n_test=40, difficulty=0.0), use_cache=False)


@lru_cache(maxsize=None)
def random_result(seed: int = 0):
    d = tiny()
    return GenerationTask().evaluate(RandomProjection(d.spec, seed=0), d, EvalContext(seed=seed, quick=True))


class ClipOracle:
    """embed_audio / embed_visual = the clip's own generation target frame (found by exact lookup of its
    audio / visual), flattened: both modalities land on the same point of one shared space."""

    capabilities = frozenset()
    trainable = False

    def __init__(self, dataset):
        self.audio_table, self.visual_table = {}, {}
        for name in ("train", "val", "test"):
            s = dataset.split(name)
            for a, v, f in zip(np.asarray(s.audio), np.asarray(s.visual), np.asarray(fn.target_frames(s))):
                self.audio_table[a.tobytes()] = self.visual_table[v.tobytes()] = f.reshape(-1).astype(np.float32) / 255
        self.dim = 3 * 32 * 32

    def embed_audio(self, audio):
        return torch.from_numpy(np.stack([self.audio_table[a.tobytes()] for a in audio.cpu().numpy()]))

    def embed_visual(self, visual):
        clips = np.round(visual.cpu().numpy() * 255).astype(np.uint8)  # the suite feeds uint8 clips / 255
        return torch.from_numpy(np.stack([self.visual_table[v.tobytes()] for v in clips]))


class MisalignedOracle(ClipOracle):
    """The same informative embeddings, but the audio of a clip lands on another clip's frame: only the
    shared-space protocol can tell it from :class:`ClipOracle` (an audio-trained decoder cannot)."""

    def embed_audio(self, audio):
        return super().embed_audio(audio).flip(-1)


class OwnGenerator(ClipOracle):
    """A model with the generation capability that returns the real target frame at 2x size."""

    capabilities = frozenset({"generation"})

    def generate(self, audio):
        img = self.embed_audio(audio).reshape(-1, 3, 32, 32)
        return img.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


# ----------------------------------------------------------------------------- feature network
def test_feature_net_cached_on_disk_and_not_retrained(monkeypatch):
    d = tiny()
    fn._LOADED.clear()
    path = fn.cache_path(d)
    if path.exists():
        path.unlink()
    calls = []
    real_train = fn.train_feature_net

    def counting(*a, **kw):
        calls.append(1)
        return real_train(*a, **kw)

    monkeypatch.setattr(fn, "train_feature_net", counting)
    f1 = frame_features(d, np.asarray(d.split("test").frames))
    assert len(calls) == 1 and path.is_file()
    mtime = path.stat().st_mtime_ns
    fn._LOADED.clear()  # force the disk path
    f2 = frame_features(d, np.asarray(d.split("test").frames))
    assert len(calls) == 1 and path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(f1, f2)
    assert f1.shape == (40, fn.FEATURE_DIM) and np.all(np.isfinite(f1))
    # the file is a weights-only torch file
    blob = torch.load(path, weights_only=True)
    assert blob["version"] == fn.FEATURE_NET_VERSION and "state_dict" in blob


def test_feature_net_training_is_deterministic_and_learns():
    d = tiny()
    n1, r1 = fn.train_feature_net(d)
    n2, _ = fn.train_feature_net(d)
    x = np.asarray(d.split("test").frames)
    np.testing.assert_array_equal(fn.net_features(n1, x), fn.net_features(n2, x))
    assert r1["val_accuracy"] > 2.0 / d.spec.num_classes  # well above chance (0.1)


def test_corrupt_cache_is_retrained(monkeypatch):
    d = tiny()
    frame_features(d, np.asarray(d.split("test").frames[:2]))
    path = fn.cache_path(d)
    path.write_bytes(b"not a torch file")
    fn._LOADED.clear()
    calls = []
    real_train = fn.train_feature_net
    monkeypatch.setattr(fn, "train_feature_net", lambda *a, **kw: (calls.append(1), real_train(*a, **kw))[1])
    frame_features(d, np.asarray(d.split("test").frames[:2]))
    assert calls == [1]
    fn._LOADED.clear()
    assert fn._load(path, d.spec.num_classes, (32, 32)) is not None  # rewritten, loadable


def test_frame_features_accepts_uint8_float_and_other_sizes():
    d = tiny()
    x = np.asarray(d.split("test").frames[:5])
    a = frame_features(d, x)
    b = frame_features(d, x.astype(np.float32) / 255.0)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    big = np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)  # 64x64: area-downsampled back exactly
    np.testing.assert_allclose(frame_features(d, big), a, rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError, match="gen.npz: images: float images must lie in"):
        frame_features(d, x.astype(np.float32), source="gen.npz")
    with pytest.raises(InputError, match="expected images of shape"):
        frame_features(d, x[:, :1])
    nan = x.astype(np.float32) / 255.0
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        frame_features(d, nan)


def test_protocol_size():
    assert fn.protocol_size(32, 32) == (32, 32)
    assert fn.protocol_size(224, 224) == (64, 64)
    assert fn.protocol_size(128, 256) == (32, 64)


@pytest.mark.parametrize("size", [(32, 32), (28, 28), (64, 48), (8, 8)])
def test_decoder_output_shape_and_range(size):
    dec = FrameDecoder(16, size)
    out = dec(torch.randn(3, 16))
    assert out.shape == (3, 3, *size) and float(out.detach().min()) >= 0 and float(out.detach().max()) <= 1
    assert out.is_contiguous()  # its channels-last maps do not leak out (frames are viewed and saved)


def test_decoder_channels_last_maps_give_the_plain_layout_numbers():
    """The channels-last layout inside the decoder is a speed choice: the same numbers as NCHW."""
    torch.manual_seed(0)
    dec = FrameDecoder(16, (32, 32)).eval()
    z = torch.randn(5, 16)
    x = torch.relu(dec.inp(z)).reshape(5, dec.channels, *dec.start)
    with torch.no_grad():
        torch.testing.assert_close(dec(z), torch.sigmoid(dec.up(x)), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- evaluate
def test_random_model_keys_and_ranges():
    res = random_result()
    assert set(res.metrics) == KEYS
    assert all(np.isfinite(v) for v in res.metrics.values())
    assert res.metrics["FD"] > 0 and res.metrics["KID_std"] > 0
    assert 1 / 40 <= res.metrics["MRR"] <= 1
    assert res.protocol == ("suite-trained frame decoder on the frozen visual embedding, drawing from the audio "
                            "embedding (L1)")
    assert res.config["decoder"]["trained_on"] == "embed_visual"
    assert res.config["resolution"] == [32, 32] and res.config["kid"]["subset_size"] == 20


def test_deterministic_given_seed():
    d = tiny()
    again = GenerationTask().evaluate(RandomProjection(d.spec, seed=0), d, EvalContext(seed=0, quick=True))
    assert again.metrics == random_result().metrics
    assert random_result(1).metrics != random_result().metrics


def test_informative_embedding_beats_random():
    d = tiny()
    res = GenerationTask().evaluate(ClipOracle(d), d, EvalContext(seed=0, quick=True))
    rnd = random_result().metrics
    assert res.metrics["MRR"] > rnd["MRR"] + 0.05
    assert res.metrics["FD"] < rnd["FD"]


def test_shared_space_protocol_needs_aligned_modalities():
    """Through the shared space (the default) an audio embedding that does not land on its clip's visual
    embedding draws the wrong frames; a decoder trained on the audio embedding itself (gen_train=audio)
    is the probe that cannot tell the two models apart."""
    d = tiny()
    t = GenerationTask()
    aligned = t.evaluate(ClipOracle(d), d, EvalContext(seed=0, quick=True)).metrics
    misaligned = t.evaluate(MisalignedOracle(d), d, EvalContext(seed=0, quick=True)).metrics
    # measured with avsynth v5: MRR aligned 0.343, misaligned 0.146 (shared space), misaligned 0.292 (gen_train=audio)
    assert aligned["MRR"] > misaligned["MRR"] + 0.1 and aligned["FD"] < misaligned["FD"]
    probe = {"gen_train": "audio"}
    a = t.evaluate(ClipOracle(d), d, EvalContext(seed=0, quick=True, options=probe))
    m = t.evaluate(MisalignedOracle(d), d, EvalContext(seed=0, quick=True, options=probe))
    assert a.config["decoder"]["trained_on"] == "embed_audio" and "frozen audio embedding" in a.protocol
    assert abs(a.metrics["MRR"] - m.metrics["MRR"]) < 0.1 and m.metrics["MRR"] > misaligned["MRR"] + 0.1
    with pytest.raises(ConfigError, match="gen_train must be one of visual, audio"):
        t.evaluate(ClipOracle(d), d, EvalContext(seed=0, quick=True, options={"gen_train": "text"}))


def test_own_generator_is_used():
    d = tiny()
    res = GenerationTask().evaluate(OwnGenerator(d), d, EvalContext(seed=0, quick=True))
    assert res.protocol == "model's own generator" and "decoder" not in res.config
    assert res.metrics["MRR"] == pytest.approx(1.0)
    assert abs(res.metrics["FD"]) < 1e-2


def test_own_generator_bad_output():
    class Bad(OwnGenerator):
        def generate(self, audio):
            return super().generate(audio) * 2.0

    with pytest.raises(InputError, match="model output: generate: float images must lie in"):
        GenerationTask().evaluate(Bad(tiny()), tiny(), EvalContext(seed=0, quick=True))


def test_adversarial_option():
    d = tiny()
    t = GenerationTask()
    t.quick_epochs = 2
    res = t.evaluate(RandomProjection(d.spec, seed=0), d, EvalContext(seed=0, quick=True, options={"gen_adv": "0.05"}))
    assert "adversarial" in res.protocol and "GAN" in res.config["decoder"]["loss"]
    assert set(res.metrics) == KEYS
    for bad in ("-1", "abc", "nan"):
        with pytest.raises(ConfigError, match="gen_adv"):
            t.evaluate(RandomProjection(d.spec, seed=0), d, EvalContext(seed=0, quick=True, options={"gen_adv": bad}))


def test_missing_inception_weights_is_input_error(tmp_path):
    d = tiny()
    missing = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(InputError, match="not found.*pytorch-fid"):
        GenerationTask().evaluate(RandomProjection(d.spec, seed=0), d,
                                  EvalContext(seed=0, quick=True, options={"inception_weights": str(missing)}))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    with pytest.raises(InputError, match="junk.pth"):
        GenerationTask().evaluate(RandomProjection(d.spec, seed=0), d,
                                  EvalContext(seed=0, quick=True, options={"inception_weights": str(junk)}))


def test_fid_with_inception_weights(tmp_path, monkeypatch):
    """With the option, FID = Fréchet distance of Inception features of generated vs real frames.

    The Inception network itself is tested in its own module; here it is replaced by a
    cheap stand-in (channel means on a 2x2 grid) so the wiring is checked in a second.
    """
    from avcl_bench.tasks.generation import inception
    from avcl_bench.tasks.generation.metrics import frechet_distance

    weights = tmp_path / "weights.pth"
    seen = []

    def fake_load(path):
        seen.append(str(path))
        return "inception"

    def fake_features(model, images, batch_size=50, device=None, *, source="images"):
        assert model == "inception" and images.dtype == torch.float32 and images.shape[1:] == (3, 32, 32)
        assert float(images.min()) >= 0 and float(images.max()) <= 1
        seen.append(images)
        return torch.nn.functional.adaptive_avg_pool2d(images, 2).flatten(1).numpy()

    monkeypatch.setattr(inception, "load_fid_inception", fake_load)
    monkeypatch.setattr(inception, "inception_features", fake_features)
    d = tiny()
    t = GenerationTask()
    t.quick_epochs = 1
    res = t.evaluate(RandomProjection(d.spec, seed=0), d, EvalContext(seed=0, quick=True, options={"inception_weights": str(weights)}))
    assert set(res.metrics) == KEYS | {"FID"} and np.isfinite(res.metrics["FID"])
    assert seen[0] == str(weights) and res.config["fid"]["weights"] == str(weights)
    real = torch.from_numpy(np.asarray(fn.target_frames(d.split("test")))).float() / 255.0
    torch.testing.assert_close(seen[2], real)
    want = frechet_distance(fake_features("inception", seen[1]), fake_features("inception", real))
    assert res.metrics["FID"] == pytest.approx(want, rel=1e-12)
    assert "FID" in METRICS and not METRICS["FID"].higher_is_better


# ----------------------------------------------------------------------------- score / export
def test_export_reference_real_frames_give_fd_zero_and_mrr_one():
    d = tiny()
    t = GenerationTask()
    ref = t.export_reference(d)
    assert ref["features"].shape == (40, fn.FEATURE_DIM)
    got = t.score({"features": frame_features(d, np.asarray(fn.target_frames(d.split("test"))))}, ref)
    assert set(got) == KEYS
    assert got["FD"] == pytest.approx(0.0, abs=1e-3) and got["MRR"] == 1.0
    assert got["KID"] <= 1e-9  # unbiased MMD^2 of a set with itself is not positive
    assert t.export_inputs(d)["audio"].shape == (40, 10, np.asarray(d.split("test").audio).shape[2])


def test_score_matches_generation_metrics_and_unpaired_sets():
    rng = np.random.default_rng(0)
    gen, real = rng.standard_normal((30, 8)), rng.standard_normal((30, 8)) + 0.5
    t = GenerationTask()
    assert t.score({"features": gen}, {"features": real}) == generation_metrics(
        gen, real, kid_subsets=t.kid_subsets, kid_subset_size=15, seed=0)
    unpaired = t.score({"features": gen[:20]}, {"features": real})
    assert set(unpaired) == {"FD", "KID", "KID_std"}


def test_score_errors_name_file_and_field():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 4))
    t = GenerationTask()
    with pytest.raises(InputError, match="p.npz: features: missing"):
        t.score({}, {"features": x}, pred_source="p.npz")
    with pytest.raises(InputError, match="r.npz: features: missing"):
        t.score({"features": x}, {"feats": x}, ref_source="r.npz")
    with pytest.raises(InputError, match="p.npz: features: feature dimension 3 does not match"):
        t.score({"features": x[:, :3]}, {"features": x}, pred_source="p.npz")
    bad = x.copy()
    bad[3, 1] = np.inf
    with pytest.raises(InputError, match="r.npz: features: contains NaN or inf"):
        t.score({"features": x}, {"features": bad}, ref_source="r.npz")
    with pytest.raises(InputError, match="p.npz: features: needs at least 2"):
        t.score({"features": x[:1]}, {"features": x}, pred_source="p.npz")
    with pytest.raises(InputError, match="p.npz: features: expected 2-D"):
        t.score({"features": x[0]}, {"features": x}, pred_source="p.npz")
    with pytest.raises(InputError, match="p.npz: features: object arrays"):
        t.score({"features": np.array([object()] * 3)}, {"features": x}, pred_source="p.npz")


def test_supports():
    d = tiny()
    t = GenerationTask()
    assert t.supports(None, d.spec, d.split("test")) is None
    no_frames = d.split("test").subset(slice(None))
    no_frames.frames = None
    assert "has no frames" in t.supports(None, d.spec, no_frames)


def test_huge_values_are_blamed_on_their_own_file_without_warnings(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 4))
    t = GenerationTask()
    huge = x * 1e200
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match=r"^r.npz: features: value .* is too large"):
            t.score({"features": x}, {"features": huge}, pred_source="p.npz", ref_source="r.npz")
        with pytest.raises(InputError, match=r"^p.npz: features: value .* is too large"):
            t.score({"features": huge}, {"features": x}, pred_source="p.npz", ref_source="r.npz")
        zero = x.copy()
        zero[2] = 0.0
        with pytest.raises(InputError, match=r"^r.npz: real_features: row 2 is all zeros"):
            t.score({"features": x}, {"features": zero}, pred_source="p.npz", ref_source="r.npz")
        big = t.score({"features": x * 1e19}, {"features": x * 1e19 + 1e18})  # large but representable
    assert all(np.isfinite(v) for v in big.values())


def test_feature_dimension_memory_is_checked_before_allocating(monkeypatch):
    t = GenerationTask()
    x = np.eye(3, 40_000)
    with pytest.raises(InputError, match=r"^p.npz: features: the Fréchet distance.*AVCL_MAX_METRIC_BYTES"):
        t.score({"features": x + 1}, {"features": x}, pred_source="p.npz", ref_source="r.npz")
    monkeypatch.setenv("AVCL_MAX_METRIC_BYTES", "1000")
    with pytest.raises(InputError, match=r"^p.npz: features: .* over the 9.31e-07 GiB limit"):
        t.score({"features": x[:, :8] + 1}, {"features": x[:, :8]}, pred_source="p.npz", ref_source="r.npz")
