"""``flickr``: the Flickr-SoundNet sound-localization test set (Senocak et al., CVPR 2018).

250 (249 in the public list) Flickr-SoundNet image/sound pairs, each annotated with boxes by
three annotators on the 256x256 frame. Layout of ``--data-root DIR`` (as used by LVS and
later work)::

    DIR/flickr_test.csv        image_id,class_index   (the LVS test list, no header)
    DIR/Annotations/<id>.xml   the annotators' boxes
    DIR/frames/<id>.jpg        the frame
    DIR/audio/<id>.wav         the sound

``flickr_test.csv`` may also sit in ``DIR/metadata/``, ``DIR/flickr/`` or
``DIR/annotations/flickr/`` (media and ``Annotations/`` then live beside it or in DIR).

XML: each ``<bbox>`` element holds the box as children ``xmin, ymin, xmax, ymax`` in pixels of
the 256x256 frame. When they are named so they are read by name; otherwise, as in the LVS
evaluation script, the first child (an id) is skipped and the next four are taken in that
order. PASCAL-VOC style ``<object><bndbox>`` elements are read by name too. Boxes are
grouped by their parent element (one group per annotator where the file has one).

Ground truth: the soft consensus map of LVS (:func:`tasks.localization.metrics.consensus_map`:
boxes pooled, ``min(1, count / 2)``) at ``mask_size`` (default 224, coordinates scaled by
``mask_size / 256`` and floored). Labels are the ``class_index`` column, renumbered densely in
increasing order (``class_names`` keeps the original numbers). Training, audio and image
features and the options are those of :mod:`benchmark.datasets.vggss`.
"""
from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from avcl_bench.tasks.localization.metrics import consensus_map

from ..errors import InputError
from ._io import locate, need_file, resolve_root
from .base import InMemoryDataset
from .registry import register_dataset
from .vggss import LOCALIZATION_OPTIONS, LocalizationItem, build_localization, parse_config

ANNOTATION_SIZE = 256
LAYOUT = ("DIR/flickr_test.csv + DIR/Annotations/<id>.xml + DIR/frames/<id>.jpg + DIR/audio/<id>.wav "
          "(Flickr-SoundNet test set, LVS layout)")
_COORDS = ("xmin", "ymin", "xmax", "ymax")


def read_flickr_list(path: Path) -> list[tuple[str, int]]:
    """Rows ``(image_id, class_index)`` of ``flickr_test.csv``."""
    need_file(path)
    rows, seen = [], set()
    with path.open(newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2:
                raise InputError(path, f"line {lineno}", f"expected 2 columns image_id,class_index, got {len(row)}")
            image_id, cls = row[0].strip(), row[1].strip()
            if not image_id or "/" in image_id:
                raise InputError(path, f"line {lineno}", f"bad image id {image_id!r}")
            try:
                k = int(cls)
            except ValueError:
                raise InputError(path, f"line {lineno}", f"class_index must be an integer, got {cls!r}") from None
            if k < 0:
                raise InputError(path, f"line {lineno}", f"class_index must be >= 0, got {k}")
            if image_id in seen:
                raise InputError(path, f"line {lineno}", f"duplicate image id {image_id!r}")
            seen.add(image_id)
            rows.append((image_id, k))
    if not rows:
        raise InputError(path, None, "no rows")
    return rows


def _number(path: Path, el: ET.Element) -> float:
    try:
        v = float((el.text or "").strip())
    except ValueError:
        raise InputError(path, f"<{el.tag}>", f"expected a number, got {el.text!r}") from None
    if not np.isfinite(v):
        raise InputError(path, f"<{el.tag}>", f"expected a finite number, got {el.text!r}")
    return v


def _box(path: Path, el: ET.Element) -> tuple[float, float, float, float]:
    children = list(el)
    named = {c.tag.lower(): c for c in children}
    if all(k in named for k in _COORDS):
        vals = [_number(path, named[k]) for k in _COORDS]
    elif el.tag == "bbox" and len(children) >= 5:
        vals = [_number(path, c) for c in children[1:5]]  # LVS: skip the first child (an id)
    else:
        raise InputError(path, f"<{el.tag}>", "expected children xmin, ymin, xmax, ymax (or an id then 4 numbers)")
    x1, y1, x2, y2 = vals
    if x2 < x1 or y2 < y1:
        raise InputError(path, f"<{el.tag}>", f"xmax < xmin or ymax < ymin in {vals}")
    if min(vals) < 0 or max(vals) > ANNOTATION_SIZE * 1.5:
        raise InputError(path, f"<{el.tag}>", f"coordinates must be pixels of the {ANNOTATION_SIZE}x"
                                              f"{ANNOTATION_SIZE} frame, got {vals}")
    return (x1, y1, x2, y2)


def read_flickr_xml(path: Path) -> tuple[tuple[tuple[float, float, float, float], ...], ...]:
    """Boxes of one annotation file, grouped by parent element (annotator)."""
    need_file(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise InputError(path, None, f"not valid XML ({e})") from None
    groups: dict[int, list[tuple[float, float, float, float]]] = {}
    order: list[int] = []
    for parent in root.iter():
        for el in parent:
            if el.tag in ("bbox", "bndbox"):
                if id(parent) not in groups:
                    groups[id(parent)] = []
                    order.append(id(parent))
                groups[id(parent)].append(_box(path, el))
    if not order:
        raise InputError(path, None, "no <bbox> or <bndbox> element")
    return tuple(tuple(groups[k]) for k in order)


def render_consensus(boxes: Any, size: tuple[int, int]) -> np.ndarray:
    """LVS Flickr ground truth at ``size`` from boxes on the 256x256 annotation scale."""

    scale = (size[1] / ANNOTATION_SIZE, size[0] / ANNOTATION_SIZE)
    return consensus_map([np.asarray(g, dtype=np.float64).reshape(-1, 4) for g in boxes], size, scale,
                         source="flickr annotations")


@register_dataset(
    "flickr",
    tasks=("localization",),
    layout=LAYOUT,
    licence="research use only (Senocak et al. annotations); Flickr-SoundNet media: Flickr / Yahoo YFCC100M terms",
    citation=("A. Senocak, T.-H. Oh, J. Kim, M.-H. Yang, I. S. Kweon, Learning to Localize Sound Source in Visual "
              "Scenes, CVPR 2018; Y. Aytar, C. Vondrick, A. Torralba, SoundNet, NeurIPS 2016"),
    needs_data_root=True,
    description="Flickr-SoundNet localization test set: soft consensus of 3 annotators' boxes, LVS cIoU/AUC protocol",
    homepage="https://github.com/ardasnck/learning_to_localize_sound_source (test list: github.com/hche11/"
             "Localizing-Visual-Sounds-the-Hard-Way)",
    options=LOCALIZATION_OPTIONS,
)
def load_flickr(*, data_root: Path | None, options: dict[str, Any], quick: bool, seed: int) -> InMemoryDataset:
    root = resolve_root(data_root, "flickr", LAYOUT)
    ann = locate(root, "flickr_test.csv", ("metadata", "flickr", "annotations/flickr"))
    folder = root if (root / "frames").is_dir() else ann
    xml_dir = next((d / "Annotations" for d in (folder, ann, root) if (d / "Annotations").is_dir()),
                   folder / "Annotations")
    cfg = parse_config(options, "flickr", quick)
    rows = read_flickr_list(ann / "flickr_test.csv")
    originals = sorted({k for _, k in rows})
    classes = tuple(str(k) for k in originals)
    items = [LocalizationItem(i, str(k), read_flickr_xml(xml_dir / f"{i}.xml")) for i, k in rows]
    return build_localization("flickr", folder, items, classes, render_consensus, cfg,
                              {"train": 300, "val": 40, "test": 249}, {"annotation_size": ANNOTATION_SIZE},
                              [ann / "flickr_test.csv", *(xml_dir / f"{i}.xml" for i, _ in rows)])
