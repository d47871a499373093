"""Exact cross-modal retrieval metrics: mAP in both directions, R@K and MedR of pairs.

Protocol
--------
Every audio clip queries the visual gallery (``a2v``) and every visual clip queries the
audio gallery (``v2a``). The score of a (query, gallery item) pair is the cosine
similarity of their embeddings, computed in float64. Relevance is class-level: a gallery
item is relevant to a query iff it has the query's class label.

Average precision of one query, with ``s_r`` the score of a relevant item ``r``::

    AP = mean over relevant r of  #{relevant j : s_j >= s_r} / #{all j : s_j >= s_r}

Items tied with ``s_r`` are counted as ranked before it (pessimistic ties), so AP is a
function of the scores alone and never depends on the order in which a sort happens to
leave tied items. Without ties this is the usual non-interpolated AP (it then equals
``sklearn.metrics.average_precision_score``). ``mAP_<dir>`` is the mean AP over the queries
that have at least one relevant gallery item; queries whose class is absent from the
gallery are left out (an input where no query has any relevant item raises
:class:`~benchmark.errors.InputError`). ``mAP`` is the mean of ``mAP_a2v`` and ``mAP_v2a``.

Two averagings of the per-query APs are reported, as published VEGAS/AVE retrieval code uses
both: ``mAP_<dir>`` is the *micro* average (mean over queries, so large classes weigh more)
and ``mAP_macro_<dir>`` the *macro* average: for every query class ``c`` that has at least
one scored query, the mean AP of the class-``c`` queries, then the unweighted mean over
those classes. A class without queries, or whose queries all lack a relevant gallery item,
is left out of the macro mean. ``mAP_macro`` is the mean of ``mAP_macro_a2v`` and
``mAP_macro_v2a``. With equally many queries per class both averagings coincide.

When the two sides are *paired* (item ``i`` of audio and item ``i`` of visual come from the
same clip), the rank of a query's own pair is, with the same pessimistic ties,
``#{gallery j : s_j >= s_own}`` (1-based). ``R@K`` is the share of queries whose pair has
rank ``<= K`` and ``MedR`` the median rank.

Caveat when comparing with torchmetrics: ``RetrievalMAP`` (torchmetrics 1.9) treats every
item whose score is ``<= 0`` as irrelevant, so it silently changes AP on cosine scores,
which are often negative; it also breaks ties by sort order and scores queries without
relevant items as 0 instead of leaving them out.

Algorithm
---------
Per block of query rows (the block size follows from a memory budget, so a 50,000 x
50,000 problem never holds the full score matrix):

1. ``S = Q @ G.T`` with unit-norm rows, the gallery permuted so that each class occupies
   one contiguous run of columns (class-level relevance then needs no (N, M) mask);
2. the scores of the query's relevant items are gathered (padded to the largest class
   with ``+inf``) and sorted; each row of ``S`` is sorted (values only);
3. ``#{all j : s_j >= s_r}`` is ``M - searchsorted(sorted row, s_r, side="left")`` and
   ``#{relevant j : s_j >= s_r}`` is ``n_rel - (first index of s_r's tie group)``, the
   group starts being a running maximum of tie-group boundary indices. No Python loop
   runs per query.

Cost: the matrix product and the row sort (what any exact metric must do), plus one
binary search per (query, relevant item), i.e. ``O(N * n_rel * log M)``. With 10 or more
balanced classes the searches cost less than the sort; with very few, large classes they
dominate (2 classes at N = M = 5,000: about 5x the product + sort; see
``benchmark/perf/retrieval_perf.py``). On the CPU the rows are sorted with NumPy's
in-place SIMD sort (about 10x faster than ``torch.sort`` there); on a GPU everything
stays in torch. faiss is not used: its exact index returns the top ``k`` neighbours, while AP needs
the position of every relevant item in the full ranking, and its brute-force inner
products are a float32 matrix product that torch already does in float64.
"""
from __future__ import annotations

import numpy as np
import torch

from avcl_bench.benchmark.arrays import check_array, check_bool_mask, check_labels, check_same_len
from avcl_bench.benchmark.errors import ConfigError, InputError
from avcl_bench.tasks.base import MetricSpec

#: Cut-offs of the reported ``R@K`` (paired data only).
RECALL_KS: tuple[int, ...] = (1, 5, 10)

#: Retrieval directions: audio queries a visual gallery, and the reverse.
DIRECTIONS: tuple[str, ...] = ("a2v", "v2a")

#: Memory the temporaries of one block of query rows may take: bounds the peak memory of
#: large problems, and blocks of this size stay cache-friendly (faster than bigger ones).
BLOCK_BYTES = 16 * 2**20

METRICS: dict[str, MetricSpec] = {
    "mAP": MetricSpec("mAP", True, "mean of mAP_a2v and mAP_v2a", unit="fraction", lower=0.0, upper=1.0),
    **{
        f"mAP_{d}": MetricSpec(f"mAP_{d}", True, f"mean average precision of {d} queries, class-level relevance, pessimistic ties",
                              unit="fraction", lower=0.0, upper=1.0)
        for d in DIRECTIONS
    },
    "mAP_macro": MetricSpec("mAP_macro", True, "mean of mAP_macro_a2v and mAP_macro_v2a", unit="fraction",
                            lower=0.0, upper=1.0),
    **{
        f"mAP_macro_{d}": MetricSpec(f"mAP_macro_{d}", True,
                                     f"mean over query classes of the mean AP of that class's {d} queries",
                                     unit="fraction", lower=0.0, upper=1.0)
        for d in DIRECTIONS
    },
    **{
        f"R@{k}_{d}": MetricSpec(f"R@{k}_{d}", True, f"share of {d} queries whose own pair ranks in the top {k} (paired data)",
                                unit="fraction", lower=0.0, upper=1.0)
        for d in DIRECTIONS
        for k in RECALL_KS
    },
    **{
        f"MedR_{d}": MetricSpec(f"MedR_{d}", False, f"median 1-based rank of the own pair of {d} queries (paired data)",
                                unit="rank", lower=1.0)
        for d in DIRECTIONS
    },
}


# ----------------------------------------------------------------------------- validation
def _resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` means the CPU; a CUDA device must be available."""
    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"invalid device {device!r} ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return dev


def _resolve_block_size(block_size: int | None, n_rows: int, bytes_per_row: int) -> int:
    """Rows per block: given, or as many as :data:`BLOCK_BYTES` allows (at least one)."""
    if block_size is None:
        return int(min(n_rows, max(1, BLOCK_BYTES // max(1, bytes_per_row))))
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ConfigError(f"block_size must be a positive integer, got {block_size!r}")
    return int(min(n_rows, block_size))


def _unit_rows(x: np.ndarray, source: str, field: str) -> np.ndarray:
    """Rows scaled to unit L2 norm; a zero row raises (its cosine similarity is undefined).

    Each row is first divided by its largest absolute entry so that squaring can neither
    overflow nor underflow, whatever the scale of the embeddings.
    """
    peak = np.max(np.abs(x), axis=1) if x.shape[1] else np.zeros(len(x))
    zero = np.flatnonzero(peak == 0)
    if zero.size:
        raise InputError(source, field, f"row {int(zero[0])} has zero norm (cosine similarity undefined)")
    y = x / peak[:, None]
    return y / np.sqrt(np.einsum("ij,ij->i", y, y))[:, None]


def _check_embeddings(audio: object, visual: object, source: str) -> tuple[np.ndarray, np.ndarray]:
    a = check_array(audio, source, "audio", ndim=2, kind="float")
    v = check_array(visual, source, "visual", ndim=2, kind="float")
    if a.shape[1] != v.shape[1]:
        raise InputError(source, "audio/visual", f"embedding dimension mismatch (audio D={a.shape[1]}, visual D={v.shape[1]})")
    return a, v


def _check_labels(labels: object, rows: np.ndarray, source: str, field: str, rows_field: str) -> np.ndarray:
    lab = check_labels(labels, source, field, ndim=1)
    check_same_len(source, **{rows_field: rows, field: lab})
    return lab


# ----------------------------------------------------------------------------- core kernels
def _sort_rows_(x: torch.Tensor) -> torch.Tensor:
    """Sort every row ascending, in place on the CPU (NumPy SIMD sort), values only."""
    if x.device.type == "cpu" and x.is_contiguous():
        x.numpy().sort(axis=1)
        return x
    return torch.sort(x, dim=1).values


def _ap_rows(sorted_scores: torch.Tensor, relevant_scores: torch.Tensor, n_rel: torch.Tensor) -> torch.Tensor:
    """AP of each row from its sorted scores and its relevant items' scores.

    ``sorted_scores`` (b, M) ascending; ``relevant_scores`` (b, k) with the ``n_rel[i]``
    relevant scores of row ``i`` first and ``+inf`` padding after them (any order);
    returns (b,) float64, NaN where ``n_rel == 0``.
    """
    b, m = sorted_scores.shape
    k = relevant_scores.shape[1]
    dev = sorted_scores.device
    if k == 0:
        return torch.full((b,), float("nan"), dtype=torch.float64, device=dev)
    rel = _sort_rows_(relevant_scores)  # padding (+inf) ends up after the real scores
    n_ge_all = m - torch.searchsorted(sorted_scores, rel, side="left")  # items with score >= s_r
    pos = torch.arange(k, device=dev)
    # first index of each relevant score's tie group: running max of the group-start indices
    tied = rel[:, 1:] == rel[:, :-1]
    tied &= pos[1:] < n_rel[:, None]  # ties among the padding do not matter
    if bool(tied.any()):
        starts = pos.repeat(b, 1)
        starts[:, 1:].masked_fill_(tied, 0)
        group_start = torch.cummax(starts, dim=1).values
    else:
        group_start = pos
    # relevant items with score >= s_r; 0 (clamped) at the padding, where n_ge_all is 0 too
    n_ge_rel = (n_rel[:, None] - group_start).clamp_min_(0).to(torch.float64)
    precision = n_ge_rel / n_ge_all.clamp_min_(1)
    # a running sum adds the terms strictly left to right, so the result does not depend on
    # how much padding the block carries (a tree reduction's rounding would)
    ap = torch.cumsum(precision, dim=1)[:, -1] / n_rel
    return torch.where(n_rel > 0, ap, float("nan"))


def _gather_padded(scores: torch.Tensor, cols: torch.Tensor, n_rel: torch.Tensor) -> torch.Tensor:
    """``scores[i, cols[i, t]]`` for ``t < n_rel[i]``, ``+inf`` after (fresh tensor)."""
    pad = torch.arange(cols.shape[1], device=scores.device) >= n_rel[:, None]
    out = torch.gather(scores, 1, cols.masked_fill(pad, 0))
    return out.masked_fill_(pad, float("inf"))


def _direction(
    queries: np.ndarray,
    query_labels: np.ndarray,
    gallery: np.ndarray,
    gallery_labels: np.ndarray,
    *,
    paired: bool,
    block_size: int | None,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray | None]:
    """AP of every query (NaN when its class is absent from the gallery) and, when
    ``paired``, the pessimistic 1-based rank of query ``i``'s pair, gallery item ``i``.

    ``queries`` and ``gallery`` have unit-norm rows.
    """
    n, m = len(queries), len(gallery)
    order = np.argsort(gallery_labels, kind="stable")  # classes become contiguous column runs
    classes, first, counts = np.unique(gallery_labels[order], return_index=True, return_counts=True)
    cls = np.minimum(np.searchsorted(classes, query_labels), len(classes) - 1)
    present = classes[cls] == query_labels
    start = torch.from_numpy(np.where(present, first[cls], 0)).to(device)
    n_rel = torch.from_numpy(np.where(present, counts[cls], 0)).to(device)

    gallery_t = torch.from_numpy(np.ascontiguousarray(gallery[order])).to(device)
    if paired:
        pair_col = np.empty(m, dtype=np.int64)
        pair_col[order] = np.arange(m)
        pair_col_t = torch.from_numpy(pair_col).to(device)

    k_max = int(counts.max())
    # temporaries per query row: the score row, and ~7 (b, k) arrays of 8 bytes
    rows = _resolve_block_size(block_size, n, 8 * m + 64 * k_max)
    buf = torch.empty((rows, m), dtype=torch.float64, device=device)
    ap = torch.empty(n, dtype=torch.float64, device=device)
    ranks = torch.empty(n, dtype=torch.int64, device=device) if paired else None
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        q = torch.from_numpy(queries[lo:hi]).to(device)
        s = torch.mm(q, gallery_t.T, out=buf[: hi - lo])
        nr = n_rel[lo:hi]
        k = int(nr.max())
        cols = start[lo:hi, None] + torch.arange(k, device=device)
        relevant = _gather_padded(s, cols, nr)
        if paired:
            own = s.gather(1, pair_col_t[lo:hi, None])
        s = _sort_rows_(s)
        ap[lo:hi] = _ap_rows(s, relevant, nr)
        if paired:
            ranks[lo:hi] = m - torch.searchsorted(s, own, side="left")[:, 0]
    return ap.cpu().numpy(), (ranks.cpu().numpy() if paired else None)


# ----------------------------------------------------------------------------- public API
def average_precision(scores: np.ndarray, relevant: np.ndarray, *, source: str = "input") -> np.ndarray:
    """AP of every row of a score matrix, pessimistic ties (see the module docstring).

    ``scores`` (N, M) real, ``relevant`` (N, M) bool (or 0/1). Returns (N,) float64, NaN
    for rows without any relevant item.
    """
    s = check_array(scores, source, "scores", ndim=2, kind="float")
    rel = check_bool_mask(relevant, source, "relevant", ndim=2)
    if rel.shape != s.shape:
        raise InputError(source, "scores/relevant", f"shape mismatch (scores {s.shape}, relevant {rel.shape})")
    n, m = s.shape
    out = np.empty(n, dtype=np.float64)
    rows = _resolve_block_size(None, n, 72 * m)  # score copy + (b, k <= M) temporaries
    for lo in range(0, n, rows):
        blk = torch.from_numpy(np.array(s[lo : lo + rows], order="C"))  # private copy: sorted in place
        r = rel[lo : lo + rows]
        n_rel = torch.from_numpy(r.sum(axis=1))
        cols = torch.from_numpy(np.argsort(~r, axis=1, kind="stable")[:, : int(n_rel.max())])
        relevant_scores = _gather_padded(blk, cols, n_rel)
        out[lo : lo + rows] = _ap_rows(_sort_rows_(blk), relevant_scores, n_rel).numpy()
    return out


def macro_mean(ap: np.ndarray, labels: np.ndarray) -> float:
    """Mean over classes of the mean of ``ap`` within each class (NaN entries left out).

    ``ap`` (N,) per-query APs (NaN for queries without a relevant item), ``labels`` (N,)
    their classes. A class whose entries are all NaN is left out; NaN when none is left.
    """
    ok = ~np.isnan(ap)
    if not ok.any():
        return float("nan")
    _, inverse = np.unique(labels[ok], return_inverse=True)
    sums = np.bincount(inverse, weights=ap[ok])
    counts = np.bincount(inverse)
    return float(np.mean(sums / counts))


def pair_ranks(scores: np.ndarray, *, source: str = "input") -> np.ndarray:
    """1-based rank of ``scores[i, i]`` in row ``i`` with pessimistic ties.

    ``scores`` (N, N): row ``i`` scores the gallery for query ``i``, whose own pair is
    gallery item ``i``. The rank counts every item scored ``>=`` the pair, itself
    included. Returns (N,) int64.
    """
    s = check_array(scores, source, "scores", ndim=2, kind="float")
    if s.shape[0] != s.shape[1]:
        raise InputError(source, "scores", f"pair ranks need a square (N, N) matrix, got shape {s.shape}")
    own = np.diagonal(s)[:, None]
    return np.count_nonzero(s >= own, axis=1).astype(np.int64)


def retrieval_metrics(
    audio: np.ndarray,
    visual: np.ndarray,
    audio_labels: np.ndarray,
    visual_labels: np.ndarray,
    *,
    paired: bool | None = None,
    block_size: int | None = None,
    device: str | None = None,
    source: str = "input",
    ref_source: str | None = None,
) -> dict[str, float]:
    """Exact cross-modal retrieval metrics on cosine similarity, class-level relevance.

    ``audio`` (N, D) and ``visual`` (M, D) embeddings, ``audio_labels`` (N,) and
    ``visual_labels`` (M,) integer class labels. ``paired=None`` means paired iff
    ``N == M`` (item ``i`` of audio pairs with item ``i`` of visual); paired data add
    ``R@{1,5,10}_{a2v,v2a}`` and ``MedR_{a2v,v2a}``. ``block_size`` caps the query rows
    scored at once (default: from :data:`BLOCK_BYTES`); it never changes the result.
    ``device`` is a torch device for the matrix products and sorts.

    ``source`` names the embeddings' file in error messages, ``ref_source`` the labels' (default
    ``source``).

    Returns plain floats keyed by ``mAP_a2v``, ``mAP_v2a``, ``mAP`` (micro averages),
    ``mAP_macro_a2v``, ``mAP_macro_v2a``, ``mAP_macro`` (macro averages) and the paired keys.
    """
    ref_source = source if ref_source is None else ref_source
    a, v = _check_embeddings(audio, visual, source)
    la = _check_labels(audio_labels, a, ref_source, "audio_labels", "audio")
    lv = _check_labels(visual_labels, v, ref_source, "visual_labels", "visual")
    if paired is None:
        paired = len(a) == len(v)
    elif not isinstance(paired, (bool, np.bool_)):
        raise ConfigError(f"paired must be True, False or None, got {paired!r}")
    elif paired:
        check_same_len(source, audio=a, visual=v)
    dev = _resolve_device(device)
    a_unit, v_unit = _unit_rows(a, source, "audio"), _unit_rows(v, source, "visual")

    out: dict[str, float] = {}
    macro: dict[str, float] = {}
    recall: dict[str, float] = {}
    for direction, q, lq, g, lg in (("a2v", a_unit, la, v_unit, lv), ("v2a", v_unit, lv, a_unit, la)):
        ap, ranks = _direction(q, lq, g, lg, paired=bool(paired), block_size=block_size, device=dev)
        if np.all(np.isnan(ap)):
            raise InputError(
                ref_source, "audio_labels/visual_labels", "no audio and visual item share a class label, so mAP is undefined"
            )
        out[f"mAP_{direction}"] = float(np.nanmean(ap))
        macro[f"mAP_macro_{direction}"] = macro_mean(ap, lq)
        if ranks is not None:
            for k in RECALL_KS:
                recall[f"R@{k}_{direction}"] = float(np.mean(ranks <= k))
            recall[f"MedR_{direction}"] = float(np.median(ranks))
    out["mAP"] = (out["mAP_a2v"] + out["mAP_v2a"]) / 2
    macro["mAP_macro"] = (macro["mAP_macro_a2v"] + macro["mAP_macro_v2a"]) / 2
    return {**out, **macro, **recall}

