"""Objective functions of the AVCL survey (§3.2 and Table 1) as small torch functions.

Every objective is registered in :data:`OBJECTIVES` as
``name -> ObjectiveInfo(fn, needs_labels, kind, equation, papers)``. The calling
convention depends on ``kind``:

``"pairwise"``
    ``fn(a, v, labels=None, *, ..., reduction=...)`` with ``a`` the ``(B, D)`` audio
    embeddings ``f(x_a; W_a)`` and ``v`` the ``(B, D)`` visual embeddings
    ``g(x_v; W_v)``, row ``i`` of both from the same clip; ``labels`` ``(B,)`` optional.
``"classification"``
    ``ce``: ``fn(logits, labels)``; ``center``: ``fn(embeddings, labels, centers)``.
``"correlation"``
    ``fn(a, v)`` (``a`` and ``v`` may have different widths).
``"reconstruction"``
    ``l2``: ``fn(x, x_hat)``; ``elbo``: ``fn(x, x_hat, mu, logvar)``.
``"adversarial"``
    ``fn(real_logits, fake_logits, player=...)``.

All return a scalar tensor, take ``reduction="mean"|"sum"`` (the default follows the
survey's equation: a sum where the equation sums, else a mean) and raise
:class:`~benchmark.errors.InputError` / :class:`~benchmark.errors.ConfigError` with a
one-line message naming the objective and the argument on bad input.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from avcl_bench.benchmark.errors import UnknownNameError

from .adversarial import (
    adversarial_loss,
    gan_discriminator_loss,
    gan_generator_loss,
    modality_confusion_loss,
    modality_discriminator_loss,
)
from .ce import cross_entropy_loss
from .center import CenterLoss, center_loss
from .contrastive import contrastive_loss
from .dcca import canonical_correlations, dcca_loss
from .elbo import elbo_loss, gaussian_kl
from .hinge import hinge_loss
from .infonce import infonce_loss
from .l2 import reconstruction_loss
from .lifted import lifted_structured_loss
from .milnce import milnce_loss
from .mms import MarginSchedule, mms_loss
from .npair import npair_loss
from .triplet import triplet_loss

__all__ = [
    "KINDS",
    "OBJECTIVES",
    "CenterLoss",
    "MarginSchedule",
    "ObjectiveInfo",
    "adversarial_loss",
    "canonical_correlations",
    "center_loss",
    "contrastive_loss",
    "cross_entropy_loss",
    "dcca_loss",
    "elbo_loss",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "gaussian_kl",
    "get_objective",
    "hinge_loss",
    "infonce_loss",
    "lifted_structured_loss",
    "milnce_loss",
    "mms_loss",
    "modality_confusion_loss",
    "modality_discriminator_loss",
    "npair_loss",
    "reconstruction_loss",
    "triplet_loss",
]

Kind = Literal["pairwise", "classification", "reconstruction", "adversarial", "correlation"]
KINDS: tuple[str, ...] = ("pairwise", "classification", "reconstruction", "adversarial", "correlation")


@dataclass(frozen=True)
class ObjectiveInfo:
    """One objective: the function and where the survey describes / Table 1 uses it.

    ``papers`` are Table 1 citations exactly as printed in ``results/surveyed/table1.csv``;
    ``equation`` is the survey's equation number or section.
    """

    fn: Callable[..., object]
    needs_labels: bool
    kind: Kind
    equation: str
    papers: tuple[str, ...]
    summary: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown objective kind {self.kind!r}")


OBJECTIVES: dict[str, ObjectiveInfo] = {
    "ce": ObjectiveInfo(
        cross_entropy_loss, True, "classification", "§3.2 i (Cross-Entropy)",
        (
            "Gan et al., 2020a", "Rajan et al., 2021", "Seo et al., 2020", "Zhang et al., 2019",
            "Cheng et al., 2020", "Afouras et al., 2021", "He et al., 2019", "Zhen et al., 2019",
            "Lin and Wang, 2020", "Ramaswamy and Das, 2020", "Duan et al., 2021", "Lin and Wang, 2021",
            "Zhu and Rahtu, 2020", "Gao and Grauman, 2019", "Zhao et al., 2019", "Zhu and Rahtu, 2021",
        ),
        "softmax cross-entropy of class logits",
    ),
    "center": ObjectiveInfo(
        center_loss, True, "classification", "§3.2 i discussion (center loss)",
        # Table 1 prints "Center" for Zhang 2021 / Zhen 2019; the text also cites He 2019
        # ("CE/L1/QL" in Table 1) for the L1 center loss.
        ("Zhang et al., 2021", "Zhen et al., 2019", "He et al., 2019"),
        "L1 (or half squared L2) distance of each embedding to its class center",
    ),
    "hinge": ObjectiveInfo(
        hinge_loss, False, "pairwise", "eq. (1)", ("Merkx et al., 2019",),
        "bidirectional max-margin ranking over in-batch mismatched pairs",
    ),
    "mms": ObjectiveInfo(
        mms_loss, False, "pairwise", "eq. (2)", ("Rouditchenko et al., 2020", "Ilharco et al., 2019"),
        "masked margin softmax, bidirectional, with a scheduled margin",
    ),
    "triplet": ObjectiveInfo(
        triplet_loss, False, "pairwise", "eq. (3)",
        ("Pretet et al., 2021", "Zeng et al., 2020", "Ilharco et al., 2019", "Ramaswamy and Das, 2020"),
        "cross-modal triplet loss on squared euclidean distances with in-batch mining",
    ),
    "npair": ObjectiveInfo(
        npair_loss, False, "pairwise", "§3.2 iii discussion (N-Pair Loss)", ("Horiguchi et al., 2018",),
        "multi-class N-pair loss on dot products",
    ),
    "lifted": ObjectiveInfo(
        lifted_structured_loss, False, "pairwise", "§3.2 iii discussion (Lifted Structured Loss)",
        ("Zheng et al., 2021a",),
        "smooth lifted structured loss on cross-modal euclidean distances",
    ),
    "contrastive": ObjectiveInfo(
        contrastive_loss, False, "pairwise", "eq. (4)", ("Hu et al., 2020",),
        "contrastive loss on the cosine distance 1 - cos",
    ),
    "infonce": ObjectiveInfo(
        infonce_loss, False, "pairwise", "eq. (5)",
        (
            "Ma et al., 2020a", "Min et al., 2021", "Akbari et al., 2021", "Patrick et al., 2020",
            "Alayrac et al., 2020", "Afouras et al., 2021", "Chen et al., 2021", "Morgado et al., 2020",
        ),
        "InfoNCE with temperature and in-batch negatives",
    ),
    "milnce": ObjectiveInfo(
        milnce_loss, False, "pairwise", "§3.2 v (MIL-NCE, extension of eq. (5))",
        # Table 1 prints MIL-NCE for Alayrac 2020 only; the text cites Akbari 2021 as well.
        ("Alayrac et al., 2020", "Akbari et al., 2021"),
        "multiple-instance NCE: several positives per anchor",
    ),
    "dcca": ObjectiveInfo(
        dcca_loss, False, "correlation", "§3.1 discussion / Table 1 (DCCA)", ("Rajan et al., 2021",),
        "negative total canonical correlation (deep CCA)",
    ),
    "l2": ObjectiveInfo(
        reconstruction_loss, False, "reconstruction", "§3.1 Auto-Encoders; §3.2 i discussion (L2)",
        (
            "Fanzeres and Nadeu, 2021", "Rajan et al., 2021", "Recasens et al., 2021", "Wu et al., 2019",
            "Cao et al., 2016", "Zhang et al., 2021", "Zhen et al., 2019", "Zeng et al., 2021",
            "Gao and Grauman, 2019",
        ),
        "mean squared (or absolute) reconstruction / embedding error",
    ),
    "elbo": ObjectiveInfo(
        elbo_loss, False, "reconstruction", "§3.1 Auto-Encoders vi (VAE) / Table 1 (ELBO)",
        ("Zhu et al., 2021b", "Zhang et al., 2021"),
        "negative ELBO: reconstruction + beta * KL(N(mu, sigma^2) || N(0, I))",
    ),
    "adversarial": ObjectiveInfo(
        adversarial_loss, False, "adversarial", "§3.1 Generative Adversarial Networks / Table 1 (Adv.L)",
        (
            "Fanzeres and Nadeu, 2021", "Mira et al., 2021", "Athanasiadis et al., 2020",
            "Seo et al., 2020", "Zheng et al., 2021a",
        ),
        "BCE GAN losses (discriminator / non-saturating generator), incl. modality adversary",
    ),
}


def get_objective(name: str) -> ObjectiveInfo:
    """The :class:`ObjectiveInfo` registered as ``name`` (``UnknownNameError`` otherwise)."""
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise UnknownNameError(f"unknown objective '{name}'; known: {', '.join(sorted(OBJECTIVES))}") from None
