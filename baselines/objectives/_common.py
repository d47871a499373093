"""Shared input checks and building blocks of the objective functions.

Every objective validates its tensors on entry so that a wrong shape, a non-float dtype,
NaN/inf or a bad option becomes one line naming the objective and the argument
(``InputError("infonce", "a", "contains NaN or inf ...")``) instead of a traceback from
inside a matrix product. Options outside their allowed values raise
:class:`~benchmark.errors.ConfigError`.

Cross-modal pair conventions used by all pairwise objectives: ``a`` is the batch of audio
embeddings ``f(x_a; W_a)`` and ``v`` the batch of visual embeddings ``g(x_v; W_v)``, row
``i`` of both coming from the same clip. Without labels the only positive of ``a_i`` is
``v_i``; with labels every ``v_j`` of the same class is "not a negative" (and, for the
objectives with several positives, a positive).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from avcl_bench.benchmark.errors import ConfigError, InputError

Reduction = Literal["mean", "sum"]
Direction = Literal["both", "a2v", "v2a"]
Similarity = Literal["cosine", "dot"]

REDUCTIONS: tuple[str, ...] = ("mean", "sum")
DIRECTIONS: tuple[str, ...] = ("both", "a2v", "v2a")
SIMILARITIES: tuple[str, ...] = ("cosine", "dot")


def check_choice(name: str, field: str, value: object, choices: Sequence[str]) -> str:
    """``value`` must be one of ``choices`` (an option, so a :class:`ConfigError`)."""
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{name}: {field}: expected one of {allowed}, got {value!r}")
    return value


#: stands for an option the objective does not have (``None`` is a value to refuse)
_ABSENT = object()


def check_options(name: str, *, reduction: object, direction: object, similarity: object = _ABSENT) -> None:
    """The options of the pairwise objectives: ``reduction``, ``similarity`` (when the
    objective has one) and ``direction``, each one of its allowed values, checked in that order."""
    check_choice(name, "reduction", reduction, REDUCTIONS)
    if similarity is not _ABSENT:
        check_choice(name, "similarity", similarity, SIMILARITIES)
    check_choice(name, "direction", direction, DIRECTIONS)


def check_number(
    name: str,
    field: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """A finite real option inside ``[low, high]`` (``(low, high]`` when ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name}: {field}: expected a number, got {value!r}")
    x = float(value)
    if x != x or x in (float("inf"), float("-inf")):
        raise ConfigError(f"{name}: {field}: must be finite, got {value!r}")
    if low is not None and (x < low or (low_open and x == low)):
        bound = f"> {low}" if low_open else f">= {low}"
        raise ConfigError(f"{name}: {field}: must be {bound}, got {value!r}")
    if high is not None and x > high:
        raise ConfigError(f"{name}: {field}: must be <= {high}, got {value!r}")
    return x


def check_tensor(
    name: str,
    field: str,
    x: object,
    *,
    ndim: int | tuple[int, ...] | None = None,
    min_len: int = 1,
) -> Tensor:
    """A finite floating-point tensor with ``ndim`` dimensions and ``>= min_len`` rows."""
    if not isinstance(x, Tensor):
        raise InputError(name, field, f"expected a torch.Tensor, got {type(x).__name__}")
    if not (x.is_floating_point()):
        raise InputError(name, field, f"expected a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None:
        dims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.dim() not in dims:
            want = " or ".join(f"{d}-D" for d in dims)
            raise InputError(name, field, f"expected a {want} tensor, got shape {tuple(x.shape)}")
    if x.dim() >= 1 and x.shape[0] < min_len:
        raise InputError(name, field, f"needs at least {min_len} item(s), got {x.shape[0]}")
    if x.numel() > 0:
        bad = ~torch.isfinite(x.detach())
        if bool(bad.any()):
            idx = tuple(int(i) for i in torch.nonzero(bad)[0])
            raise InputError(name, field, f"contains NaN or inf (first at index {idx})")
    return x


def check_pair(name: str, a: object, v: object, *, min_len: int = 1, same_dim: bool = True) -> tuple[Tensor, Tensor]:
    """Audio/visual embedding batches ``(B, D)`` with the same ``B`` (and ``D``)."""
    a = check_tensor(name, "a", a, ndim=2, min_len=min_len)
    v = check_tensor(name, "v", v, ndim=2, min_len=min_len)
    if a.shape[0] != v.shape[0]:
        raise InputError(name, "a/v", f"batch size mismatch (a has {a.shape[0]} rows, v has {v.shape[0]})")
    if same_dim and a.shape[1] != v.shape[1]:
        raise InputError(
            name, "a/v", f"embedding size mismatch (a has {a.shape[1]} columns, v has {v.shape[1]})"
        )
    if a.shape[1] == 0:
        raise InputError(name, "a", "embeddings have 0 dimensions")
    if a.dtype != v.dtype or a.device != v.device:
        raise InputError(name, "a/v", f"dtype/device mismatch ({a.dtype} on {a.device} vs {v.dtype} on {v.device})")
    return a, v


def check_labels(name: str, labels: object, n: int, *, field: str = "labels", num_classes: int | None = None) -> Tensor:
    """1-D integer class labels of length ``n`` (non-negative, ``< num_classes`` if given)."""
    if not isinstance(labels, Tensor):
        raise InputError(name, field, f"expected a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise InputError(name, field, f"expected an integer tensor, got dtype {labels.dtype}")
    if labels.dim() != 1:
        raise InputError(name, field, f"expected a 1-D tensor, got shape {tuple(labels.shape)}")
    if labels.shape[0] != n:
        raise InputError(name, field, f"expected {n} labels (one per item), got {labels.shape[0]}")
    if n and bool((labels < 0).any()):
        i = int(torch.nonzero(labels < 0)[0, 0])
        raise InputError(name, field, f"negative label {int(labels[i])} at index {i}")
    if num_classes is not None and n and bool((labels >= num_classes).any()):
        i = int(torch.nonzero(labels >= num_classes)[0, 0])
        raise InputError(name, field, f"label {int(labels[i])} at index {i} is out of range [0, {num_classes})")
    return labels.long()


def reduce(terms: Tensor, reduction: str) -> Tensor:
    """Mean or sum of a 1-D tensor of per-term losses."""
    return terms.mean() if reduction == "mean" else terms.sum()


def similarity_matrix(a: Tensor, v: Tensor, kind: str) -> Tensor:
    """``S[i, j] = sim(a_i, v_j)``: cosine (zero vectors get similarity 0) or dot product."""
    if kind == "cosine":
        a = F.normalize(a, dim=1, eps=1e-12)
        v = F.normalize(v, dim=1, eps=1e-12)
    return a @ v.T


def squared_distances(a: Tensor, v: Tensor) -> Tensor:
    """``D2[i, j] = ||a_i - v_j||_2^2`` via the Gram expansion, clamped at 0."""
    d2 = (a * a).sum(1, keepdim=True) + (v * v).sum(1).unsqueeze(0) - 2.0 * (a @ v.T)
    return d2.clamp_min(0.0)


def euclidean_distances(a: Tensor, v: Tensor) -> Tensor:
    """``D[i, j] = ||a_i - v_j||_2`` with a zero (not NaN) gradient where the distance is 0."""
    d2 = squared_distances(a, v)
    tiny = torch.finfo(d2.dtype).tiny
    d = d2.clamp_min(tiny).sqrt()
    return torch.where(d2 > tiny, d, torch.zeros_like(d))


def positive_mask(labels: Tensor | None, n: int, device: torch.device) -> Tensor:
    """``P[i, j]`` True when ``a_i`` and ``v_j`` match: ``i == j``, or the same class with labels."""
    if labels is None:
        return torch.eye(n, dtype=torch.bool, device=device)
    labels = labels.to(device)
    return labels.unsqueeze(1) == labels.unsqueeze(0)


def require_negatives(name: str, a: Tensor, negatives: Tensor, labels: Tensor | None) -> None:
    """In-batch objectives need at least one negative pair in the batch."""
    if a.shape[0] < 2:
        raise InputError(name, "a", "in-batch negatives need a batch of at least 2 items, got 1")
    if not bool(negatives.any()):
        field = "labels" if labels is not None else "a"
        raise InputError(name, field, "every item has the same class, so the batch has no negative pairs")


def directions(direction: str) -> tuple[bool, ...]:
    """``(transpose,)`` flags of the requested directions: a2v uses rows, v2a columns."""
    return {"a2v": (False,), "v2a": (True,), "both": (False, True)}[direction]


def check_batch(name: str, a: object, v: object, labels: object | None) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """Validate an in-batch pairwise objective's inputs; return ``a``, ``v``, ``labels`` and the match mask.

    ``a`` and ``v`` are paired ``(B, D)`` batches (:func:`check_pair`), ``labels`` optional
    ``(B,)`` classes (:func:`check_labels`). The returned ``(B, B)`` mask is
    :func:`positive_mask` (``True`` where ``a_i`` and ``v_j`` are not a negative pair); the
    batch must hold at least one negative pair (:func:`require_negatives`).
    """
    a, v = check_pair(name, a, v)
    if labels is not None:
        labels = check_labels(name, labels, a.shape[0])
    same = positive_mask(labels, a.shape[0], a.device)
    require_negatives(name, a, ~same, labels)
    return a, v, labels, same


def non_negative_offdiagonal(same: Tensor) -> Tensor:
    """``same`` without its diagonal: the pairs that must leave a softmax denominator.

    A same-class ``v_j`` is neither the positive nor a negative of ``a_i``; filling these
    logits with ``-inf`` removes them (``exp(-inf) = 0``) while keeping the matched pair.
    """
    eye = torch.eye(same.shape[0], dtype=torch.bool, device=same.device)
    return same & ~eye


def directional_cross_entropy(
    logits: Tensor, direction: str, reduction: str, *, positives: Tensor | None = None
) -> Tensor:
    """The softmax cross-entropy ending of the InfoNCE family, summed over the used directions.

    ``logits`` is the ``(Na, Nv)`` score matrix ``S[i, j]`` of audio ``i`` and visual
    ``j``: ``a2v`` normalises each row (an audio anchor over the visual candidates),
    ``v2a`` each column, and ``both`` adds the two (a2v first). Without ``positives`` the
    target of row / column ``i`` is its diagonal entry (``F.cross_entropy``, square
    ``logits``); with a bool ``positives`` matrix every anchor's term is the
    multiple-instance form ``-log(Σ_{pos} e^S / Σ_{all} e^S)``. Each direction's terms are
    reduced by ``reduction`` (``"mean"`` or ``"sum"`` over anchors).
    """
    total = torch.zeros((), dtype=logits.dtype, device=logits.device)
    if positives is None:
        target = torch.arange(logits.shape[0], device=logits.device)
        for transpose in directions(direction):
            total = total + F.cross_entropy(logits.T if transpose else logits, target, reduction=reduction)
        return total
    for transpose in directions(direction):
        dim = 0 if transpose else 1
        log_num = torch.logsumexp(logits.masked_fill(~positives, float("-inf")), dim=dim)
        log_den = torch.logsumexp(logits, dim=dim)
        total = total + reduce(log_den - log_num, reduction)
    return total
