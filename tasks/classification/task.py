"""Clip classification task adapter (linear probe and k-NN on frozen embeddings).

The protocol text is :data:`PROTOCOL` (written into every record via ``metadata``).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from avcl_bench.benchmark.arrays import check_array, check_finite_metrics, check_labels, require
from avcl_bench.benchmark.datasets.base import AVSplit
from avcl_bench.benchmark.datasets.esc50 import esc50_folds
from avcl_bench.benchmark.embedding import embed_split
from avcl_bench.benchmark.errors import ConfigError, InputError

from ..base import EvalContext, MetricSpec, Task, TaskMetadata, TaskResult
from ..heads import head_batch_size, train_head
from .metrics import METRICS as _BASE_METRICS
from .metrics import classification_metrics

__all__ = ["ClassificationTask", "METRICS", "knn_scores", "linear_probe", "mlp_probe"]

#: inverse L2 regularisation strengths of the logistic-regression probe, strongest first
C_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
KNN_K = 10
PROBES = ("linear", "mlp")
_EMBED_BATCH = 128

METRICS: dict[str, MetricSpec] = {
    **{k: m.model_copy(update={"description": f"{m.description}; probe on the fused view"})
       for k, m in _BASE_METRICS.items()},
    "ACC_audio": MetricSpec("ACC_audio", True, "top-1 accuracy of the probe on the audio embeddings",
                        unit="fraction", lower=0.0, upper=1.0),
    "ACC_visual": MetricSpec("ACC_visual", True, "top-1 accuracy of the probe on the visual embeddings",
                        unit="fraction", lower=0.0, upper=1.0),
    "kNN_ACC": MetricSpec("kNN_ACC", True, f"cosine {KNN_K}-NN accuracy on the fused view (train embeddings vote)",
                        unit="fraction", lower=0.0, upper=1.0),
    "kNN_ACC_audio": MetricSpec("kNN_ACC_audio", True, f"cosine {KNN_K}-NN accuracy on the audio embeddings",
                        unit="fraction", lower=0.0, upper=1.0),
    "kNN_ACC_visual": MetricSpec("kNN_ACC_visual", True, f"cosine {KNN_K}-NN accuracy on the visual embeddings",
                        unit="fraction", lower=0.0, upper=1.0),
    **{f"ACC_fold{k}": MetricSpec(f"ACC_fold{k}", True, f"test accuracy of fold {k} (cross-validated datasets, "
                                  "fold=all; ACC is the mean over folds)", unit="fraction", lower=0.0, upper=1.0)
       for k in esc50_folds()},
}


# ----------------------------------------------------------------------------- embeddings
def _l2_normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _views(model: Any, splits: dict[str, AVSplit], audio_only: bool, device: str) -> dict[str, dict[str, np.ndarray]]:
    """``view -> split -> embeddings`` for the audio, visual and fused views."""
    audio = {name: embed_split(model, s, "audio", batch_size=_EMBED_BATCH, device=device) for name, s in splits.items()}
    if audio_only:
        return {"audio": audio}
    visual = {name: embed_split(model, s, "visual", batch_size=_EMBED_BATCH, device=device)
              for name, s in splits.items()}
    fused = {name: np.concatenate([_l2_normalize(audio[name]), _l2_normalize(visual[name])], axis=1)
             for name in splits}
    return {"fused": fused, "audio": audio, "visual": visual}


# ----------------------------------------------------------------------------- probes
def _standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Standardise with the train mean / std (constant features are only centred)."""
    mu = train.mean(axis=0)
    sd = train.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return [(x - mu) / sd for x in (train, *others)]


def _full_scores(partial: np.ndarray, classes: np.ndarray, num_classes: int) -> np.ndarray:
    """Scores over all ``num_classes``; classes absent from train score below every other."""
    out = np.full((len(partial), num_classes), float(partial.min()) - 1.0 if partial.size else 0.0)
    out[:, classes] = partial
    return out


def linear_probe(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, x_test: np.ndarray,
    num_classes: int, *, c_grid: tuple[float, ...] = C_GRID,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Multinomial logistic regression on standardised features, ``C`` chosen on val.

    Returns the test scores ``(N_test, num_classes)`` (logits; classes missing from the
    train split score lowest) and ``{"C": chosen C, "val_ACC": its val accuracy}``. The
    probe is refit for every ``C`` on the train split only; on equal val accuracy the
    smaller ``C`` (stronger penalty) wins. lbfgs is deterministic, so no seed is needed.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    xtr, xva, xte = _standardize(x_train, x_val, x_test)
    best: tuple[float, float, Any] | None = None
    # One BLAS thread: these matrices are small, and multi-threaded BLAS on a loaded
    # machine was measured ~100x slower here (threads spin-waiting on busy cores).
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in sorted(c_grid):
            clf = LogisticRegression(C=c, max_iter=1000, tol=1e-4).fit(xtr, y_train)
            acc = float(np.mean(_predict(clf, xva, num_classes) == y_val))
            if best is None or acc > best[0]:
                best = (acc, c, clf)
        assert best is not None
        acc, c, clf = best
        return _decision(clf, xte, num_classes), {"C": c, "val_ACC": acc}


def _decision(clf: Any, x: np.ndarray, num_classes: int) -> np.ndarray:
    d = clf.decision_function(x)
    if d.ndim == 1:  # two classes: sklearn returns the logit of classes_[1]
        d = np.stack([np.zeros_like(d), d], axis=1)
    return _full_scores(d, clf.classes_, num_classes)


def _predict(clf: Any, x: np.ndarray, num_classes: int) -> np.ndarray:
    return np.argmax(_decision(clf, x, num_classes), axis=1)


class _MLP(nn.Module):
    def __init__(self, d_in: int, hidden: int, num_classes: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mlp_probe(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, x_test: np.ndarray,
    num_classes: int, *, seed: int = 0, device: str = "cpu", hidden: int = 256, dropout: float = 0.1,
    lr: float = 3e-3, weight_decay: float = 1e-4, epochs: int = 100, patience: int = 20, batch_size: int = 128,
    min_steps: int = 8, progress: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One-hidden-layer MLP probe on standardised features with early stopping on val.

    Deterministic given ``seed`` (initialisation and shuffling use their own generators;
    the global RNG state is left as it was). The weights of the epoch with the best val
    accuracy (earliest on ties) score the test split. On small train splits the batch
    shrinks so that an epoch has at least ``min_steps`` steps (patience counts epochs).
    Returns test logits and ``{"epochs_run", "best_epoch", "val_ACC", "batch_size"}``.
    """
    xtr, xva, xte = (torch.as_tensor(a, dtype=torch.float32, device=device)
                     for a in _standardize(x_train, x_val, x_test))
    ytr = torch.as_tensor(y_train, dtype=torch.long, device=device)
    yva = torch.as_tensor(y_val, dtype=torch.long, device=device)
    batch_size = head_batch_size(batch_size, len(xtr), min_steps)
    net, info = train_head(lambda: _MLP(xtr.shape[1], hidden, num_classes, dropout), xtr, ytr, xva, yva,
                           num_classes=num_classes, epochs=epochs, batch_size=batch_size, patience=patience, lr=lr,
                           weight_decay=weight_decay, seed=seed, device=device, progress=progress,
                           desc="train classification probe")
    with torch.no_grad():
        scores = net(xte).double().cpu().numpy()
    return scores, info


def knn_scores(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, num_classes: int, k: int = KNN_K,
    *, chunk: int = 1024,
) -> np.ndarray:
    """Cosine k-NN vote scores ``(N_test, num_classes)`` whose argmax is the k-NN prediction.

    Neighbours are the ``k`` train items of highest cosine similarity (equal similarities:
    lower train index first). A class's score is its vote count minus
    ``rank of its nearest voter / (k + 1)``, so the majority wins and a tied vote goes to
    the class whose member is nearest; classes without a vote score lowest.
    """
    from threadpoolctl import threadpool_limits

    k = min(int(k), len(x_train))
    tr = _l2_normalize(np.asarray(x_train, dtype=np.float64))
    te = _l2_normalize(np.asarray(x_test, dtype=np.float64))
    out = np.empty((len(te), num_classes))
    for s in range(0, len(te), chunk):
        with threadpool_limits(limits=1):  # small products: see linear_probe
            sims = te[s : s + chunk] @ tr.T
        nbr = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        lab = np.asarray(y_train)[nbr]  # (n, k), nearest first
        rows = np.arange(len(lab))
        counts = np.zeros((len(lab), num_classes))
        np.add.at(counts, (rows[:, None], lab), 1.0)
        first = np.full((len(lab), num_classes), float(k))
        for r in range(k - 1, -1, -1):  # nearest rank written last
            first[rows, lab[:, r]] = r
        out[s : s + chunk] = counts - first / (k + 1)
    return out


# ----------------------------------------------------------------------------- task
def _check_split_labels(split: AVSplit, name: str, num_classes: int, source: str) -> np.ndarray:
    labels = check_array(split.labels, source, f"{name} labels", ndim=1, kind="int")
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(source, f"{name} labels", f"label {int(labels[i])} at index {i} is out of range [0, {num_classes})")
    return labels


def probe_option(ctx: EvalContext, task: str) -> str:
    """The ``probe`` task option (``linear`` or ``mlp``), validated; ``task`` names the task in the error."""
    probe = str(ctx.options.get("probe", "linear"))
    if probe not in PROBES:
        raise ConfigError(f"{task}: option probe must be one of {', '.join(PROBES)}, got {probe!r}")
    return probe


def labelled_splits(dataset: Any) -> tuple[dict[str, AVSplit], dict[str, np.ndarray]]:
    """The train / val / test splits a probe uses and their validated labels (at least 2 train classes)."""
    spec = dataset.spec
    splits = {name: dataset.split(name) for name in ("train", "val", "test")}
    source = f"dataset '{spec.name}'"
    labels = {name: _check_split_labels(s, name, int(spec.num_classes), source) for name, s in splits.items()}
    if len(np.unique(labels["train"])) < 2:
        raise InputError(source, "train labels", "the probe needs at least 2 classes in the train split")
    return splits, labels


#: the evaluation protocol (``list tasks``, every record's ``task_meta.protocol``)
PROTOCOL = (
    "Protocol (frozen embeddings, as the survey's downstream evaluations on UCF101 / HMDB51 / ESC-50 and "
    "HEAR's scene tasks): the model embeds the train, val and test clips with ``embed_audio`` / "
    "``embed_visual`` (never fine-tuned). Three views are probed: audio, visual and fused (the "
    "concatenation of the L2-normalised audio and visual embeddings). Per view, a multinomial "
    "logistic-regression probe (L2 penalty, lbfgs) is trained on the train embeddings standardised with "
    "train statistics; its inverse regularisation ``C`` is chosen on the val split's accuracy from a "
    "small log grid (ties: the stronger penalty). With the task option ``probe=mlp`` a one-hidden-layer "
    "MLP probe trained with AdamW and early stopping on the val split replaces it. Independently, a "
    "cosine 10-NN classifier votes with the train embeddings (ties: the class of the nearer neighbour). "
    "The fused probe gives the headline ``ACC`` / ``top5_ACC`` / ``macro_F1``; the other views carry "
    "suffixes (``ACC_audio``, ``kNN_ACC_visual``, ...). Audio-only datasets "
    "(``spec.extra[\"audio_only\"]``) probe the audio view alone and report it under the unsuffixed keys. "
    "Cross-validated datasets loaded with every fold (ESC-50 ``fold=all``) run this protocol once per fold "
    "(probes trained on that fold's train split) and report the unweighted mean over folds of every metric, "
    "with each fold's test accuracy as ``ACC_fold<k>``; a model trained on the dataset is trained once per fold, "
    "on that fold's train split, since one fitted model would be tested on clips it was trained on."
)


class ClassificationTask(Task):
    name = "classification"
    version = "1"
    metadata = TaskMetadata(
        name="classification",
        main_score="ACC",
        headline=("ACC", "top5_ACC", "macro_F1"),
        metrics=METRICS,
        protocol=PROTOCOL,
        pred_format="scores (N, C) float (argmax = prediction; enables top5_ACC) or labels (N,) int; scores win if both",
        ref_format="labels (N,) int",
        needs=(),
    )
    export_inputs = ("test split audio (N, T, Fa) and visual (N, T, C, H, W) in item order; the model predicts "
                     "one class per test clip (train and val splits with labels are there to train on)")

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> TaskResult:
        probe = probe_option(ctx, self.name)
        folds = [int(k) for k in dataset.spec.extra.get("cv_folds", ())]
        if not folds:
            return self._evaluate_split(model, dataset, ctx, probe)
        per_fold = {k: self._evaluate_split(self._fold_model(model, dataset, k, k == folds[0], ctx), dataset.fold(k),
                                            ctx, probe) for k in folds}
        first = per_fold[folds[0]]
        keys = [k for k in first.metrics if all(k in r.metrics for r in per_fold.values())]
        fold_values = {key: [per_fold[k].metrics[key] for k in folds] for key in keys}
        metrics = {key: float(np.mean(v)) for key, v in fold_values.items()}
        metrics.update({f"ACC_fold{k}": per_fold[k].metrics["ACC"] for k in folds})
        config = {**{key: v for key, v in first.config.items() if key != "probe_fit"},
                  "cv": {"folds": folds, "mean": "unweighted mean over folds of each fold's test metric",
                         "test_sizes": {str(k): len(dataset.fold(k).split("test")) for k in folds}},
                  "probe_fit": {str(k): per_fold[k].config["probe_fit"] for k in folds}}
        return TaskResult(metrics={k: metrics[k] for k in METRICS if k in metrics},
                          protocol=f"{first.protocol}; {len(folds)}-fold cross-validation, mean over folds",
                          config=config, item_metrics=fold_values)

    @staticmethod
    def _fold_model(model: Any, dataset: Any, k: int, first: bool, ctx: EvalContext) -> Any:
        """The model to evaluate fold ``k`` with: a model not trained on the data serves every fold;
        a trained one was fitted on the first fold's train split (the dataset's own splits) and is
        fitted anew on every other fold's (``ctx.fit_model_on``, which the runner provides), since a
        fold's test clips lie in the other folds' train splits."""
        if first or not getattr(model, "trainable", True):
            return model
        if ctx.fit_model_on is None:
            raise ConfigError("classification: a trainable model on all folds at once (fold=all) must be fitted "
                              "once per fold, which only a run does (EvalContext.fit_model_on); evaluate "
                              "fold=1..5 one at a time instead")
        return ctx.fit_model_on(dataset.fold(k))

    def _evaluate_split(self, model: Any, dataset: Any, ctx: EvalContext, probe: str) -> TaskResult:
        """The protocol on one dataset's train / val / test splits (one fold of a cross-validation)."""
        spec = dataset.spec
        audio_only = bool(spec.extra.get("audio_only", False))
        num_classes = int(spec.num_classes)
        splits, labels = labelled_splits(dataset)

        views = _views(model, splits, audio_only, ctx.device)
        suffix = {"fused": "", "audio": "_audio", "visual": "_visual"}
        if audio_only:
            suffix["audio"] = ""
        metrics: dict[str, float] = {}
        items: dict[str, list[float]] = {}
        probe_info: dict[str, Any] = {}
        for view, emb in views.items():
            args = (emb["train"], labels["train"], emb["val"], labels["val"], emb["test"], num_classes)
            if probe == "linear":
                scores, info = linear_probe(*args)
            else:
                scores, info = mlp_probe(*args, seed=ctx.seed, device=ctx.device, progress=ctx.progress,
                                         epochs=50 if ctx.quick else 100)
            probe_info[view] = info
            m = classification_metrics(labels["test"], scores=scores, num_classes=num_classes, source="probe")
            sfx = suffix[view]
            if sfx == "":
                metrics.update(m)
            else:
                metrics[f"ACC{sfx}"] = m["ACC"]
            items[f"ACC{sfx}"] = (np.argmax(scores, axis=1) == labels["test"]).astype(float).tolist()
            knn = knn_scores(emb["train"], labels["train"], emb["test"], num_classes)
            metrics[f"kNN_ACC{sfx}"] = classification_metrics(labels["test"], scores=knn, source="kNN")["ACC"]
            items[f"kNN_ACC{sfx}"] = (np.argmax(knn, axis=1) == labels["test"]).astype(float).tolist()

        ordered = {k: metrics[k] for k in METRICS if k in metrics}
        probe_desc = ("multinomial logistic regression (L2, C on val)" if probe == "linear"
                      else "1-hidden-layer MLP (AdamW, early stop on val)")
        protocol = (f"frozen embeddings; {probe_desc} on standardised {'audio' if audio_only else 'audio/visual/fused'}"
                    f" embeddings; cosine {KNN_K}-NN on train embeddings")
        config = {"probe": probe, "views": list(views), "fused": "concat of L2-normalised audio and visual",
                  "standardize": "train mean/std", "knn_k": KNN_K, "knn_similarity": "cosine",
                  "probe_fit": probe_info, "train_split": "train", "selection_split": "val", "split": "test"}
        if probe == "linear":
            config["C_grid"] = list(C_GRID)
        return TaskResult(metrics=ordered, protocol=protocol, config=config, item_metrics=items)

    def score(self, pred: dict[str, np.ndarray], ref: dict[str, np.ndarray], *, pred_source: str = "pred",
              ref_source: str = "ref") -> dict[str, float]:
        require(ref, ref_source, ("labels",))
        if "scores" not in pred and "labels" not in pred:
            have = ", ".join(sorted(pred)) or "none"
            raise InputError(pred_source, "scores", f"missing array: give scores or labels (arrays present: {have})")
        truth = check_labels(ref["labels"], ref_source, "labels", ndim=1)
        if (truth < 0).any():
            i = int(np.flatnonzero(truth < 0)[0])
            raise InputError(ref_source, "labels", f"negative label {int(truth[i])} at index {i}")
        if "scores" in pred:
            scores = check_array(pred["scores"], pred_source, "scores", ndim=2, kind="float")
            if len(scores) != len(truth):
                raise InputError(pred_source, "scores", f"has {len(scores)} rows but {ref_source} labels has {len(truth)}")
            if (truth >= scores.shape[1]).any():
                i = int(np.flatnonzero(truth >= scores.shape[1])[0])
                raise InputError(ref_source, "labels", f"label {int(truth[i])} at index {i} has no column in "
                                 f"{pred_source} scores ({scores.shape[1]} classes)")
            return check_finite_metrics(classification_metrics(truth, scores=scores, source=pred_source,
                                                               ref_source=ref_source), self.name)
        labels = check_labels(pred["labels"], pred_source, "labels", ndim=1)
        if len(labels) != len(truth):
            raise InputError(pred_source, "labels", f"has {len(labels)} items but {ref_source} labels has {len(truth)}")
        return check_finite_metrics(classification_metrics(truth, labels_pred=labels, source=pred_source,
                                                           ref_source=ref_source), self.name)

    def export_reference(self, dataset: Any, split: str = "test") -> dict[str, np.ndarray]:
        return {"labels": np.asarray(dataset.split(split).labels, dtype=np.int64)}
