"""Known dataset manifests: when a run's data is verifiably a surveyed dataset and split.

A surveyed Table 1 number is a ``direct`` comparison only when our data is the dataset and the
split the paper used. The dataset's *name* proves nothing (``--dataset features --option
name=vegas`` can name any file ``vegas``), so :func:`dataset_identity` checks the loaded data
against the official split lists registered here and every result record carries its verdict
(``config.dataset.identity``): ``{"dataset_id", "verified", "reason", "manifest"}``. Reports mark a
surveyed row ``direct`` only when every record of the table is ``verified`` for the row's
``dataset_id`` (:func:`benchmark.surveyed.comparability`), and print the reason otherwise.

A :class:`Manifest` holds, per official split, the number of items and the SHA-256 of the sorted,
newline-joined item ids (and, where the release labels every item, of the sorted ``id<TAB>class
name`` lines): a fingerprint of the list, not a copy of it. They were derived from the official
annotation files by :func:`derive_manifests` (``tests/datasets/test_manifests.py`` re-derives them
from ``../shared/data`` and compares). A split is verified when its ids are exactly the official
list (no item missing, none added: a ``--quick`` or size-limited subset is not the surveyed split).
Splits a release has no official list for (the unlabelled training pools of VGG-SS and
Flickr-SoundNet) are not checked, and the verdict says so.

Datasets whose official split lists cannot be checked offline are registered with the reason
(``unavailable``); nothing is ever ``direct`` for them. What the check cannot prove: that the
*features* of the file were computed from those videos; the ids, split membership and (AVE) the
labels are checked, the feature values are not.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..registry import Registry
from ..surveyed import resolve_dataset_id
from .ave import read_annotations, read_order

__all__ = ["MANIFESTS", "Manifest", "SplitManifest", "dataset_identity", "derive_manifests", "list_digest"]

#: version of the verdict's rules; part of every verdict (and so of every result key)
MANIFEST_VERSION = 1


def list_digest(lines: Iterable[str]) -> tuple[int, str]:
    """(count, SHA-256 hex) of the sorted, newline-joined ``lines``: the fingerprint of an id list."""
    items = sorted(lines)
    return len(items), hashlib.sha256("\n".join(items).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SplitManifest:
    """One official split: its item count and id-list digest (and labelled-list digest, if any)."""

    n: int
    ids_sha256: str
    labels_sha256: str | None = None


@dataclass(frozen=True)
class Manifest:
    """The official splits of one surveyed dataset (Table 1 ``dataset_id``), or why there are none."""

    dataset_id: str
    title: str
    source: str
    splits: dict[str, SplitManifest] = field(default_factory=dict)
    #: why the official split lists cannot be checked here (empty when ``splits`` is given)
    unavailable: str = ""
    #: how the ids are formed, for files that bring their own ids (``features``)
    id_format: str = ""


MANIFESTS: Registry[Manifest] = Registry("dataset manifest")


def _register(m: Manifest) -> None:
    MANIFESTS.register(m.dataset_id, m)


# Digests derived from ../shared/data by derive_manifests() (see the module docstring).
_register(Manifest(
    "ave", "AVE", "github.com/YapengTian/AVE-ECCV18 @ 607f159: Annotations.txt and {train,val,test}_order.h5",
    splits={
        "train": SplitManifest(3339, "8c45683c4ef6799977c3f1db3e988e615dcc5a5188163e48800bb48c1f0eaeca",
                               "2576b6776d5b23331293226ac6a43af35fb8a25dae89f2ba025bc20dbefc5d5b"),
        "val": SplitManifest(402, "9b6e298551d3b70f712a4f41daf0b7c66b1637a064673bd68d05de8bc011ae2a",
                             "1935a4005edecf281182595564fd6f559cdd4cc4bd86661d7985c3329953feda"),
        "test": SplitManifest(402, "c53b1d0e877886df3e1a4196750c5b6ea027f1e5a66a35394a9364dbc151898f",
                              "9b75fb00a5ff2fa978b8dafac616f3010dccc4da116180b8acaaca969802a807"),
    },
    id_format="VideoID#row (row: 0-based line of the video in Annotations.txt, header excluded; VideoIDs repeat)",
))
_register(Manifest(
    "vgg-ss", "VGG-SS", "github.com/hche11/Localizing-Visual-Sounds-the-Hard-Way @ 8fe8cbb: vggss.json",
    splits={"test": SplitManifest(5158, "8acc0c93362233f7a16f82240d8d77361740ffc93859809d021ff71a29f63bb3")},
    id_format="the 'file' field of vggss.json (YouTubeID_startseconds, e.g. zpWuikVorYg_000032)",
))
_register(Manifest(
    "flickr-soundnet", "Flickr-SoundNet", "github.com/hche11/Localizing-Visual-Sounds-the-Hard-Way @ 8fe8cbb: "
    "flickr_test.csv", splits={"test": SplitManifest(249, "09c34846bd90eb7b2275807253f36459f2518c06112e1ce6040b5bbe4644564d")},
    id_format="the image id of flickr_test.csv (first column)",
))
_register(Manifest(
    "vegas", "VEGAS", "Zhou et al., CVPR 2018",
    unavailable="no official VEGAS split list is available offline to check the data against",
))
_register(Manifest(
    "music", "MUSIC", "github.com/roudimit/MUSIC_dataset @ 6f47a09",
    unavailable="MUSIC publishes video lists but no official train/test split; papers use their own splits",
))
_register(Manifest(
    "esc-50", "ESC-50", "github.com/karolpiczak/ESC-50",
    unavailable="the official ESC-50 clip list and folds (meta/esc50.csv) are not available offline",
))


# ----------------------------------------------------------------------------- verdict
def _verdict(dataset_id: str, verified: bool, reason: str, manifest: str = "") -> dict[str, Any]:
    title = MANIFESTS.get(dataset_id).title if dataset_id in MANIFESTS else dataset_id
    return {"dataset_id": dataset_id, "title": title, "verified": verified, "reason": reason, "manifest": manifest,
            "version": MANIFEST_VERSION}


def _labelled(split: Any, class_names: tuple[str, ...]) -> list[str] | None:
    labels = np.asarray(split.labels)
    if labels.ndim != 1 or (labels < 0).any() or (len(labels) and labels.max() >= len(class_names)):
        return None
    return [f"{i}\t{class_names[int(k)]}" for i, k in zip(split.ids, labels)]


def dataset_identity(dataset: Any) -> dict[str, Any]:
    """Whether ``dataset`` is verifiably the surveyed dataset it is named after, and why (or why not).

    ``dataset_id`` is the Table 1 id of the dataset's reported name (``spec.name``); ``verified``
    is True only when a registered manifest lists its official splits and every one of them is
    exactly the dataset's split of that name (ids, and labels where the manifest has them).
    """
    name = dataset.spec.name
    dataset_id = resolve_dataset_id(name)
    if dataset_id not in MANIFESTS:
        return _verdict(dataset_id, False, f"no official split list of '{dataset_id}' is registered with the suite")
    m = MANIFESTS.get(dataset_id)
    if not m.splits:
        return _verdict(dataset_id, False, m.unavailable, m.dataset_id)
    tag = f"{m.dataset_id}@{MANIFEST_VERSION}"
    for split_name, want in m.splits.items():
        try:
            split = dataset.split(split_name)
        except Exception:  # noqa: BLE001 - a dataset without this split (its loader says which it has)
            return _verdict(dataset_id, False, f"has no {split_name} split, the official {m.title} list has {want.n} "
                            "items", tag)
        if split.ids is None:
            return _verdict(dataset_id, False, f"the {split_name} split has no item ids to check against the "
                            f"official {m.title} list", tag)
        n, digest = list_digest(str(i) for i in split.ids)
        if n != want.n:
            return _verdict(dataset_id, False, f"the {split_name} split has {n} items, the official {m.title} "
                            f"{split_name} list {want.n} (a subset, e.g. --quick, is not the surveyed split)", tag)
        if digest != want.ids_sha256:
            return _verdict(dataset_id, False, f"the {split_name} split's ids are not the official {m.title} "
                            f"{split_name} list (ids: {m.id_format})", tag)
        if want.labels_sha256 is not None:
            lines = _labelled(split, tuple(dataset.spec.class_names))
            if lines is None or list_digest(lines)[1] != want.labels_sha256:
                return _verdict(dataset_id, False, f"the {split_name} split's labels are not the official "
                                f"{m.title} categories of its items (class names: the release's category names)", tag)
    unchecked = sorted({"train", "val", "test"} - set(m.splits))
    note = f"; {', '.join(unchecked)} not checked (no official list)" if unchecked else ""
    checked = ", ".join(f"{s} ({v.n})" for s, v in m.splits.items())
    return _verdict(dataset_id, True, f"ids{' and labels' if any(v.labels_sha256 for v in m.splits.values()) else ''}"
                    f" of {checked} match the official {m.title} lists{note}", tag)


# ----------------------------------------------------------------------------- derivation
def _ave(folder: Path) -> dict[str, SplitManifest]:
    events = read_annotations(folder / "Annotations.txt")
    out = {}
    for s in ("train", "val", "test"):
        order = read_order(folder / f"{s}_order.h5", len(events))
        ids = [f"{events[i].video_id}#{i}" for i in order]
        out[s] = SplitManifest(len(ids), list_digest(ids)[1],
                               list_digest(f"{v}\t{events[i].category}" for v, i in zip(ids, order))[1])
    return out


def _vggss(folder: Path) -> dict[str, SplitManifest]:
    entries = json.loads((folder / "vggss.json").read_text(encoding="utf-8"))
    n, digest = list_digest(str(e["file"]) for e in entries)
    return {"test": SplitManifest(n, digest)}


def _flickr(folder: Path) -> dict[str, SplitManifest]:
    rows = [ln.split(",")[0].strip() for ln in (folder / "flickr_test.csv").read_text(encoding="utf-8").splitlines()]
    n, digest = list_digest(r for r in rows if r)
    return {"test": SplitManifest(n, digest)}


def derive_manifests(annotations: Path) -> dict[str, dict[str, SplitManifest]]:
    """The split digests of AVE, VGG-SS and Flickr-SoundNet from the official annotation files in
    ``annotations/{ave,vggss,flickr}`` (the layout of ``../shared/data/annotations``)."""
    return {"ave": _ave(annotations / "ave"), "vgg-ss": _vggss(annotations / "vggss"),
            "flickr-soundnet": _flickr(annotations / "flickr")}
