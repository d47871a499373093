"""Sound-to-image generation: FD, KID and paired-retrieval MRR of generated frames.

The protocol text is :data:`PROTOCOL` (written into every record via ``metadata``).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avcl_bench.benchmark.arrays import check_finite_metrics, load_npz, require
from avcl_bench.benchmark.datasets.base import AVSplit, audio_batch
from avcl_bench.benchmark.embedding import embed_split
from avcl_bench.benchmark.errors import ConfigError, InputError
from avcl_bench.benchmark.training import EpochLog, autocast_dtype, minibatches, train_early_stopping

from ..base import EvalContext, MetricSpec, Task, TaskMetadata, TaskResult
from . import inception as fid_inception
from .feature_net import (
    FEATURE_NET_VERSION,
    frame_features,
    load_or_train,
    net_features,
    protocol_size,
    target_frames,
    to_protocol_images,
)
from .metrics import METRICS as _METRICS
from .metrics import check_features, check_memory, frechet_distance, generation_metrics, kid_subset_rule

METRICS: dict[str, MetricSpec] = {
    **_METRICS,
    "FID": MetricSpec("FID", False, "Fréchet distance of FID Inception-v3 pool3 features (only with --inception-weights)",
                      unit="score", lower=0.0),
}

__all__ = ["GenerationTask", "FrameDecoder", "METRICS", "frame_features", "protocol_size"]


def channels_first(images: Any, source: object, field: str) -> np.ndarray:
    """``(N, 3, H, W)`` from ``(N, 3, H, W)`` or ``(N, H, W, 3)`` uint8 / float images (not yet range-checked).

    An array whose axis 1 has 3 entries is taken as channels-first, else one whose last axis has 3
    as channels-last; anything else is refused. Integer images must be uint8 (0-255)."""
    arr = np.asarray(images)
    if arr.ndim != 4 or 3 not in (arr.shape[1], arr.shape[-1]) or arr.shape[0] == 0:
        raise InputError(source, field, f"expected images of shape (N, 3, H, W) or (N, H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8 and arr.dtype.kind != "f":
        raise InputError(source, field, f"expected uint8 (0-255) or float (0-1) images, got dtype {arr.dtype}")
    return arr if arr.shape[1] == 3 else np.ascontiguousarray(arr.transpose(0, 3, 1, 2))


def read_png_folder(folder: Path, n: int, ids: list[str] | None) -> np.ndarray:
    """``(n, 3, H, W)`` uint8 from ``n`` RGB PNGs named by test clip id (``<id>.png``) or, for a name that
    is no id, by test index (``7.png``, ``00007.png``); every clip exactly once, nothing else in the
    folder, all of one size."""
    from PIL import Image  # third-party, only for PNG submissions

    if n == 0:
        raise InputError(folder, None, "the split has no clips to draw")
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    other = [p.name for p in files if p.suffix.lower() != ".png" or not p.is_file()]
    if other:
        raise InputError(folder, other[0], "not a PNG file (the folder holds one <index>.png or <id>.png per clip)")
    by_id = {str(i): k for k, i in enumerate(ids or [])}
    slots: dict[int, Path] = {}
    for p in files:
        k = int(p.stem) if p.stem.isdigit() and p.stem not in by_id else by_id.get(p.stem)
        if k is None or not 0 <= k < n:
            raise InputError(folder, p.name, f"names no test clip (use its index 0..{n - 1} or its id)")
        if k in slots:
            raise InputError(folder, p.name, f"clip {k} is also given by {slots[k].name}")
        slots[k] = p
    missing = [k for k in range(n) if k not in slots]
    if missing:
        raise InputError(folder, None, f"{len(missing)} of {n} test clips have no image (first: index {missing[0]})")
    out = None
    for k in range(n):
        try:
            with Image.open(slots[k]) as im:
                if im.format != "PNG" or im.mode != "RGB":
                    raise InputError(folder, slots[k].name, f"expected an 8-bit RGB PNG, got {im.format} {im.mode}")
                arr = np.asarray(im, dtype=np.uint8)
        except OSError as e:
            raise InputError(folder, slots[k].name, f"unreadable image ({e})") from None
        if out is None:
            out = np.empty((n, *arr.shape), dtype=np.uint8)
        if arr.shape != out.shape[1:]:
            raise InputError(folder, slots[k].name, f"image size {arr.shape[1]}x{arr.shape[0]} differs from the "
                             f"first image's {out.shape[2]}x{out.shape[1]}")
        out[k] = arr
    return np.ascontiguousarray(np.asarray(out).transpose(0, 3, 1, 2))


class FrameDecoder(nn.Module):
    """``(B, D)`` embedding -> ``(B, 3, h, w)`` image in (0, 1).

    A linear layer to a 128-channel map of about 4x4, then stride-2 transposed
    convolutions (BN, ReLU) halving the channels down to 32 until the map reaches the
    target size, a 3x3 convolution to RGB and a sigmoid; a final bilinear resize fixes
    sizes that are not 4 times a power of two.
    """

    def __init__(self, dim: int, size: tuple[int, int], channels: int = 128):
        super().__init__()
        self.size = (int(size[0]), int(size[1]))
        n_up = max(0, int(math.floor(math.log2(max(1, min(self.size)) / 4))))
        self.start = (math.ceil(self.size[0] / 2**n_up), math.ceil(self.size[1] / 2**n_up))
        self.channels = channels
        self.inp = nn.Linear(dim, channels * self.start[0] * self.start[1])
        layers: list[nn.Module] = []
        c = channels
        for _ in range(n_up):
            c_out = max(32, c // 2)
            layers += [nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            c = c_out
        layers.append(nn.Conv2d(c, 3, 3, padding=1))
        self.up = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # channels-last maps take oneDNN's NHWC kernels (about 8% faster training on one CPU core)
        x = F.relu(self.inp(z)).reshape(len(z), self.channels, *self.start).contiguous(memory_format=torch.channels_last)
        x = self.up(x)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return torch.sigmoid(x).contiguous()


class _Discriminator(nn.Module):
    """Small unconditional image critic for the optional adversarial term."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 32, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(32, 64, 4, 2, 1),
                                 nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(2 * x - 1)[:, 0]


def _adv_weight(options: dict) -> float:
    value = options.get("gen_adv", 0.0)
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"task option gen_adv must be a number >= 0, got {value!r}") from None
    if not math.isfinite(w) or w < 0:
        raise ConfigError(f"task option gen_adv must be a number >= 0, got {value!r}")
    return w


#: which embedding the frame decoder learns from (task option ``gen_train``); test frames are always
#: drawn from the audio embedding
GEN_TRAIN = ("visual", "audio")


def _train_modality(options: dict) -> str:
    value = str(options.get("gen_train", "visual"))
    if value not in GEN_TRAIN:
        raise ConfigError(f"task option gen_train must be one of {', '.join(GEN_TRAIN)}, got {value!r}")
    return value


#: the evaluation protocol (``list tasks``, every record's ``task_meta.protocol``)
PROTOCOL = (
    "Protocol (frozen embeddings + suite-trained decoder, generation through the shared space): a decoder "
    "(linear layer, then transposed convolutions) learns to draw each train clip's target frame from the "
    "model's frozen ``embed_visual``, and at test draws each clip's frame from its ``embed_audio`` (each "
    "modality standardised with its own train statistics), as sound-to-image work that decodes audio "
    "mapped into an image embedding space (e.g. Wav2CLIP- and AudioCLIP-guided generation; the survey's "
    "Zhu et al., 2021b score generated frames by retrieval). A decoder trained on the audio embedding "
    "itself (task option ``gen_train=audio``, as Fanzeres and Nadeu (2021)) is a probe that even an "
    "untrained projection passes, since any projection keeps what the sound tells; through the shared "
    "space only a model whose audio embedding lands where its visual embedding of the same look lies "
    "draws that look. The decoder is trained with an L1 loss (plus, when the task option ``gen_adv`` is a "
    "positive weight, a non-saturating GAN term from a small discriminator; off by default for speed), "
    "keeping the epoch of lowest validation L1 on its training embedding. Generated and real test frames "
    "are compared in the feature space of a small CNN the suite trains once per dataset to classify the "
    "train frames (the \"Inception\" of this suite, cached on disk): Fréchet distance (FD), KID "
    "(unbiased cubic-kernel MMD^2) and the MRR of retrieving each clip's own real frame from its "
    "generated one (Zhu et al., 2021b). Frames are compared at the protocol resolution (at most 64 "
    "pixels a side). With the option ``inception_weights`` (pytorch-fid's file) real-image FID with the "
    "FID Inception network is added. A model with the ``generation`` capability is scored with its own "
    "``generate``."
)


class GenerationTask(Task):
    """Sound-to-image generation scored in the feature space of the dataset's feature network.

    Submissions (``submit --pred DIR``) are **images**, never features: ``DIR/generation.npz``
    with ``images`` of shape ``(N, 3, H, W)`` or ``(N, H, W, 3)``, uint8 (0-255) or float in
    [0, 1], one generated frame per test clip in test order; or a folder ``DIR/generation/`` of
    RGB PNGs named by test index (``0.png`` or ``00000.png`` ...) or by test clip id
    (``<id>.png``). :meth:`load_submission` computes their features with the suite's own
    feature network, so no submitter needs the suite's Python and nobody can submit the real
    frames' features. ``score`` (the command, for stored outputs) compares features:
    PRED ``features`` ``(N, D)``, REF ``features`` ``(M, D)``; FD and KID always, MRR when
    ``N == M`` (item ``i`` generated for real item ``i``). :meth:`export_inputs` gives the test
    audio to generate from.
    """

    name = "generation"
    # 2: KID subsets of 1000 whenever both sets have >= 1000 items; 3: FD and KID clipped at 0;
    # 4: the decoder learns from the visual embedding and draws from the audio one (gen_train)
    version = "4"
    metadata = TaskMetadata(
        name="generation",
        main_score="FD",
        headline=("FD", "KID", "MRR"),
        metrics=METRICS,
        protocol=PROTOCOL,
        pred_format=("images (N, 3, H, W) or (N, H, W, 3) uint8 0-255 or float in [0, 1], one generated frame per "
                     "test clip in test order (or a folder generation/ of RGB PNGs named <index>.png or <id>.png); "
                     "the suite computes their features (the score command takes features (N, D) float)"),
        ref_format="features (M, D) float: the suite's features of the real test frames (MRR needs N == M, paired)",
        needs=("frames",),
        reads=("gen_frames",),
    )

    #: decoder training settings (epochs are capped in quick mode)
    epochs: int = 30
    quick_epochs: int = 12
    patience: int = 6
    batch_size: int = 32
    lr: float = 2e-3
    #: KID subsets; the seed is fixed so that ``score`` reproduces ``evaluate``
    kid_subsets: int = 100

    @staticmethod
    def kid_subset_size(n_gen: int, n_real: int) -> int:
        """1000 when both sets have 1000 items (torch-fidelity), else half the smaller (:func:`kid_subset_rule`)."""
        return kid_subset_rule(n_gen, n_real)[0]

    def supports(self, model: Any, spec: Any, split: Any) -> str | None:
        why = super().supports(model, spec, split)
        if why is not None:
            return why
        if len(split) < 2:
            return f"dataset '{spec.name}' has fewer than 2 test frames"
        return None

    # ------------------------------------------------------------------ formats
    def export_reference(self, dataset: Any, split: str = "test") -> dict[str, np.ndarray]:
        """``features`` ``(M, 128)`` of the real frames of ``split`` under the dataset's feature network."""
        return {"features": frame_features(dataset, np.asarray(target_frames(dataset.split(split))), source=dataset.spec.name)}

    def export_inputs(self, dataset: Any, split: str = "test") -> dict[str, np.ndarray]:
        """What an external model needs: ``audio`` ``(N, T, Fa)`` of the clips to draw a frame for."""
        return {"audio": np.asarray(dataset.split(split).audio, dtype=np.float32)}

    def submission_reference(self, dataset: Any, split: str = "test") -> dict[str, np.ndarray]:
        """REF of a submission: the suite's features of the real frames (:meth:`export_reference`)."""
        return self.export_reference(dataset, split)

    def load_submission(self, path: Path, dataset: Any, split: str = "test") -> dict[str, np.ndarray]:
        """``{"features"}`` of a submission's generated images, computed by the suite.

        ``path`` is ``generation.npz`` (``images``) or a folder ``generation/`` of PNGs (see the
        class docstring). The images must be one per clip of ``split``, in order.
        """
        data = dataset.split(split)
        n = len(data)
        if path.is_dir():
            images = read_png_folder(path, n, data.ids)
        else:
            arrays = load_npz(path)
            if "images" not in arrays:
                extra = (" (features are not accepted: submit the generated images and the suite computes their "
                         "features)") if "features" in arrays else ""
                raise InputError(path, "images", f"missing array (arrays present: {', '.join(sorted(arrays)) or 'none'})"
                                 + extra)
            images = channels_first(arrays["images"], path, "images")
        if len(images) != n:
            raise InputError(path, "images", f"expected {n} images (one per {split} clip, in order), got {len(images)}")
        return {"features": frame_features(dataset, images, source=str(path))}

    def score(self, pred: dict[str, np.ndarray], ref: dict[str, np.ndarray], *, pred_source: str = "pred",
              ref_source: str = "ref") -> dict[str, float]:
        require(pred, pred_source, ("features",))
        require(ref, ref_source, ("features",))
        gen = check_features(pred["features"], pred_source, "features", min_len=2)
        real = check_features(ref["features"], ref_source, "features", min_len=2)
        if gen.shape[1] != real.shape[1]:
            raise InputError(pred_source, "features",
                             f"feature dimension {gen.shape[1]} does not match {ref_source} features' {real.shape[1]}")
        if gen.shape[1] == 0:
            raise InputError(pred_source, "features", "features have dimension 0")
        subset = self.kid_subset_size(len(gen), len(real))
        check_memory(len(gen), len(real), gen.shape[1], subset, pred_source, "features")
        return check_finite_metrics(
            generation_metrics(gen, real, kid_subsets=self.kid_subsets, kid_subset_size=subset, seed=0,
                               source=pred_source, real_source=ref_source), self.name)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> TaskResult:
        inception = None
        weights = ctx.options.get("inception_weights")
        if weights is not None:  # load first: a bad file fails before any training

            inception = fid_inception.load_fid_inception(weights)
        adv = _adv_weight(ctx.options)
        train_on = _train_modality(ctx.options)
        test = dataset.split("test")
        net = load_or_train(dataset, progress=ctx.progress)
        size = net.size
        config: dict[str, Any] = {
            "split": "test", "resolution": list(size),
            "feature_net": {"version": FEATURE_NET_VERSION, **getattr(net, "report", {})},
            "kid": {"subsets": self.kid_subsets, "subset_size": kid_subset_rule(len(test), len(test))[0],
                    "subset_rule": kid_subset_rule(len(test), len(test))[1], "seed": 0},
        }
        if "generation" in getattr(model, "capabilities", ()):
            generated = self._own_generator(model, test, size, ctx)
            protocol = "model's own generator"
        else:
            generated, dec_cfg = self._decoder(model, dataset, size, adv, train_on, ctx)
            protocol = (f"suite-trained frame decoder on the frozen {train_on} embedding, drawing from the audio "
                        "embedding" + (" (L1 + adversarial)" if adv else " (L1)"))
            config["decoder"] = dec_cfg
        gen_feats = net_features(net, generated, source="generated images")
        real_feats = net_features(net, np.asarray(target_frames(test)), source=dataset.spec.name, field="test frames")
        metrics = generation_metrics(gen_feats, real_feats, paired=True, kid_subsets=self.kid_subsets,
                                     kid_subset_size=config["kid"]["subset_size"], seed=0, source="model output")
        if inception is not None:

            real = to_protocol_images(np.asarray(target_frames(test)), size, source=dataset.spec.name, field="test frames")
            metrics["FID"] = frechet_distance(fid_inception.inception_features(inception, generated, device=ctx.device),
                                              fid_inception.inception_features(inception, real, device=ctx.device),
                                              source="inception features")
            config["fid"] = {"weights": str(weights), "real": "test frames at the protocol resolution"}
        return TaskResult(metrics=metrics, protocol=protocol, config=config)

    def _own_generator(self, model: Any, split: AVSplit, size: tuple[int, int], ctx: EvalContext) -> torch.Tensor:
        """Frames from ``model.generate(audio)``, validated and brought to the protocol resolution."""
        out = []
        for idx in split.batches(self.batch_size):
            with torch.no_grad():
                img = model.generate(audio_batch(split, idx, ctx.device))
            img = to_protocol_images(torch.as_tensor(img), size, source="model output", field="generate")
            if len(img) != len(idx):
                raise InputError("model output", "generate", f"returned {len(img)} images for {len(idx)} clips")
            out.append(img)
        return torch.cat(out)

    def _decoder(self, model: Any, dataset: Any, size: tuple[int, int], adv: float, train_on: str,
                 ctx: EvalContext) -> tuple[torch.Tensor, dict[str, Any]]:
        """Train the frame decoder on the frozen ``train_on`` embeddings of the train clips; return the
        frames it draws from the test clips' audio embeddings, and its config."""
        device = torch.device(ctx.device)
        splits = {k: dataset.split(k) for k in ("train", "val", "test")}

        def standardised(modality: str, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
            emb = {k: embed_split(model, splits[k], modality, device=ctx.device) for k in ("train", *names)}
            mu, sd = emb["train"].mean(axis=0), emb["train"].std(axis=0)
            sd = np.where(sd > 1e-8, sd, 1.0)
            return {k: torch.from_numpy((v - mu) / sd).float().to(device) for k, v in emb.items()}

        # the audio of the val clips is embedded only when the decoder learns from the audio
        audio = standardised("audio", ("val", "test") if train_on == "audio" else ("test",))
        z = audio if train_on == "audio" else standardised("visual", ("val",))
        if z["train"].shape[1] != audio["test"].shape[1]:
            raise InputError("model output", f"embed_{train_on}", f"dimension {z['train'].shape[1]} differs from "
                             f"embed_audio's {audio['test'].shape[1]} (one common space is needed)")
        z = {**z, "test": audio["test"]}
        target = {k: to_protocol_images(np.asarray(target_frames(splits[k])), size, source=dataset.spec.name,
                                        field=f"{k} frames").to(device) for k in ("train", "val")}

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(ctx.seed))
            dec = FrameDecoder(z["train"].shape[1], size).to(device)
            disc = _Discriminator().to(device) if adv > 0 else None
        opt = torch.optim.Adam(dec.parameters(), lr=self.lr)
        opt_d = torch.optim.Adam(disc.parameters(), lr=self.lr, betas=(0.5, 0.999)) if disc is not None else None
        rng = np.random.default_rng([int(ctx.seed), 7])

        def generate(zs: torch.Tensor) -> torch.Tensor:
            dec.eval()
            with torch.no_grad():
                return torch.cat([dec(zs[i : i + 256]) for i in range(0, len(zs), 256)])

        def train_loss(idx: torch.Tensor) -> torch.Tensor:
            """L1 to the target frames (plus the generator's GAN term, after one critic step)."""
            fake = dec(z["train"][idx])
            loss = F.l1_loss(fake, target["train"][idx])
            if disc is not None:
                real_logit, fake_logit = disc(target["train"][idx]), disc(fake.detach())
                d_loss = (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
                          + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                g_logit = disc(fake)
                loss = loss + adv * F.binary_cross_entropy_with_logits(g_logit, torch.ones_like(g_logit))
            return loss

        def val_l1(log: EpochLog) -> float | None:
            return float(F.l1_loss(generate(z["val"]), target["val"])) if len(z["val"]) else log.last_loss

        epochs = self.quick_epochs if ctx.quick else self.epochs
        n = len(z["train"])
        # batches of fewer than two items are skipped: batch norm needs two
        result = train_early_stopping(
            dec, opt, lambda _: minibatches(torch.from_numpy(rng.permutation(n)).to(device), self.batch_size),
            train_loss, epochs=epochs, validate=val_l1, higher_is_better=False, min_delta=1e-6,
            patience=self.patience, min_batch=2, show_progress=ctx.progress, desc="train generation decoder",
            score_name="val_l1", autocast=autocast_dtype(ctx.precision))
        cfg = {"arch": f"linear -> {dec.channels}x{dec.start[0]}x{dec.start[1]} -> transposed convs -> 3x{size[0]}x{size[1]}",
               "loss": "L1" + (f" + {adv} * non-saturating GAN" if adv else ""), "optimizer": "Adam", "lr": self.lr,
               "batch_size": self.batch_size, "max_epochs": epochs, "patience": self.patience,
               "epochs_run": result.epochs_run,
               "best_val_l1": None if result.best_score is None else round(result.best_score, 6),
               "val_l1": [round(score, 5) for score in result.scores],
               "trained_on": f"embed_{train_on}", "drawn_from": "embed_audio", "precision": ctx.precision,
               "embedding": "each modality standardised with its own train statistics"}
        return generate(z["test"]).cpu(), cfg

