from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from avcl_bench.benchmark.datasets.flickr import load_flickr, read_flickr_list, read_flickr_xml
from avcl_bench.benchmark.datasets.vggss import load_vggss, read_vggss_json
from avcl_bench.benchmark.errors import InputError
from avcl_bench.tasks.localization.metrics import box_mask, consensus_map

from .conftest import tone, write_jpeg, write_wav

XML_LVS = """<annotation><file>{id}</file>
<object><bbox><idx>0</idx><x1>{a}</x1><y1>10</y1><x2>128</x2><y2>200</y2></bbox></object>
<object><bbox><idx>1</idx><x1>64</x1><y1>32</y1><x2>256</x2><y2>256</y2></bbox>
<bbox><idx>2</idx><x1>0</x1><y1>0</y1><x2>40</x2><y2>40</y2></bbox></object>
</annotation>"""
XML_VOC = """<annotation><object><name>dog</name><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>100</xmax>
<ymax>120</ymax></bndbox></object></annotation>"""


def _media(root: Path, ids: list[str]) -> None:
    for k, i in enumerate(ids):
        write_jpeg(root / "frames" / f"{i}.jpg", (20 * k % 255, 100, 200), size=(48 + k, 36))
        write_wav(root / "audio" / f"{i}.wav", tone(300 + 50 * k, 1.0 + 0.5 * (k % 3), 22050, seed=k), 22050,
                  channels=1 + k % 2)


@pytest.fixture
def vggss_root(tmp_path: Path) -> Path:
    entries = [{"file": f"clip{k}_000010", "class": ["dog barking", "playing cello"][k % 2],
                "bbox": [[0.1, 0.2, 0.5, 0.9]] + ([[0.6, 0.0, 1.0, 0.4]] if k % 3 == 0 else [])} for k in range(6)]
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "vggss.json").write_text(json.dumps(entries))
    _media(tmp_path, [e["file"] for e in entries] + [f"train{k}_000000" for k in range(8)])
    return tmp_path


def test_vggss_end_to_end(vggss_root: Path) -> None:
    ds = load_vggss(data_root=vggss_root, options={"image_size": "32"}, quick=False, seed=0)
    test = ds.split("test")
    assert len(test) == 6 and test.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert ds.spec.visual_shape == (1, 3, 32, 32) and ds.spec.audio_shape == (1, 320)
    assert np.asarray(test.visual).dtype == np.uint8 and test.visual.shape == (6, 1, 3, 32, 32)
    masks = test.masks[np.array([0, 1])]
    assert masks.shape == (2, 224, 224)
    want = box_mask(np.array([[0.1, 0.2, 0.5, 0.9], [0.6, 0.0, 1.0, 0.4]]), (224, 224))
    assert np.array_equal(masks[0], want)
    train, val = ds.split("train"), ds.split("val")
    assert len(train) + len(val) == 8 and set(train.labels) == {-1} and train.masks is None
    assert not set(train.ids) & set(test.ids)
    again = load_vggss(data_root=vggss_root, options={"image_size": "32"}, quick=False, seed=1)
    assert again.fingerprint() == ds.fingerprint()
    ann = load_vggss(data_root=vggss_root, options={"train": "annotated", "mask_size": "64"}, quick=False, seed=0)
    sizes = [len(ann.split(s)) for s in ("train", "val", "test")]
    assert sum(sizes) == 6 and min(sizes) >= 1 and ann.split("train").masks.shape[1:] == (64, 64)


def test_vggss_missing_media_and_bad_json(vggss_root: Path) -> None:
    (vggss_root / "audio" / "clip3_000010.wav").unlink()
    with pytest.raises(InputError, match=r"clip3_000010.wav: not found \(1 of 6 annotated clips"):
        load_vggss(data_root=vggss_root, options={}, quick=False, seed=0)
    ds = load_vggss(data_root=vggss_root, options={"missing": "skip"}, quick=False, seed=0)
    assert len(ds.split("test")) == 5 and ds.spec.extra["missing_clips"] == 1
    p = vggss_root / "metadata" / "vggss.json"
    p.write_text(json.dumps([{"file": "a", "class": "x", "bbox": [[0.5, 0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 1e9]]}]))
    assert read_vggss_json(p)[0].boxes == (((0.1, 0.2, 0.3, 1.0),),)  # clipped; the reversed box covers nothing
    p.write_text(json.dumps([{"file": "a", "class": "x", "bbox": [[0.5, 0.1, 0.2]]}]))
    with pytest.raises(InputError, match=r"vggss.json: \[0\].bbox\[0\]: expected 4 finite numbers"):
        read_vggss_json(p)
    p.write_text(json.dumps([{"file": "a", "bbox": []}]))
    with pytest.raises(InputError, match=r"\[0\].class: missing key"):
        read_vggss_json(p)


def test_vggss_real_annotations(shared_data: Path) -> None:
    items = read_vggss_json(shared_data / "annotations" / "vggss" / "vggss.json")
    assert len(items) == 5158 and len({it.file for it in items}) == 5158
    assert len({it.label for it in items}) > 200
    with open(shared_data / "annotations" / "vggss" / "vggss_test.csv") as f:
        assert {r[0] for r in csv.reader(f)} == {it.file for it in items}
    empty = sum(box_mask(np.asarray(it.boxes[0]).reshape(-1, 4), (224, 224)).sum() == 0 for it in items)
    assert empty < 20  # a few clips have only corrupt or zero-area boxes


@pytest.fixture
def flickr_root(tmp_path: Path) -> Path:
    ids = ["1001", "1002", "1003"]
    (tmp_path / "flickr_test.csv").write_text("1001,202\n1002,0\n1003,202\n")
    (tmp_path / "Annotations").mkdir()
    for k, i in enumerate(ids):
        (tmp_path / "Annotations" / f"{i}.xml").write_text(XML_LVS.format(id=i, a=16 * k))
    _media(tmp_path, ids + ["2001", "2002", "2003"])
    return tmp_path


def test_flickr_end_to_end_consensus(flickr_root: Path) -> None:
    groups = read_flickr_xml(flickr_root / "Annotations" / "1002.xml")
    assert groups == (((16.0, 10.0, 128.0, 200.0),), ((64.0, 32.0, 256.0, 256.0), (0.0, 0.0, 40.0, 40.0)))
    ds = load_flickr(data_root=flickr_root, options={}, quick=False, seed=0)
    test = ds.split("test")
    assert test.labels.tolist() == [1, 0, 1] and ds.spec.class_names == ("0", "202")
    m = test.masks[1]
    ref = consensus_map([[[16, 10, 128, 200]], [[64, 32, 256, 256], [0, 0, 40, 40]]], (224, 224), 224 / 256)
    assert np.array_equal(m, ref) and set(np.unique(m)) <= {0.0, 0.5, 1.0} and m.max() == 1.0
    # the LVS script's own arithmetic for one pixel row: int(224 * v / 256)
    assert m[int(224 * 32 / 256), int(224 * 64 / 256)] == 1.0 and m[int(224 * 32 / 256) - 1, 100] == 0.5
    voc = flickr_root / "Annotations" / "voc.xml"
    voc.write_text(XML_VOC)
    assert read_flickr_xml(voc) == (((10.0, 20.0, 100.0, 120.0),),)


def test_flickr_errors(flickr_root: Path) -> None:
    bad = flickr_root / "Annotations" / "1001.xml"
    bad.write_text("<annotation><object><bbox><idx>0</idx><x1>5</x1></bbox></object></annotation>")
    with pytest.raises(InputError, match="1001.xml: <bbox>: expected children xmin"):
        load_flickr(data_root=flickr_root, options={}, quick=False, seed=0)
    bad.write_text("<annotation><object>")
    with pytest.raises(InputError, match="1001.xml: not valid XML"):
        read_flickr_xml(bad)
    bad.unlink()
    with pytest.raises(InputError, match="1001.xml: file not found"):
        load_flickr(data_root=flickr_root, options={}, quick=False, seed=0)
    (flickr_root / "flickr_test.csv").write_text("1001,cat\n")
    with pytest.raises(InputError, match="flickr_test.csv: line 1: class_index must be an integer"):
        read_flickr_list(flickr_root / "flickr_test.csv")


def test_flickr_real_list(shared_data: Path) -> None:
    rows = read_flickr_list(shared_data / "annotations" / "flickr" / "flickr_test.csv")
    assert len(rows) == 249 and len({r[0] for r in rows}) == 249
