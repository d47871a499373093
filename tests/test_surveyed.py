"""Table 1 as data: the CSVs against the survey text, and the ``benchmark.surveyed`` API."""
from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from avcl_bench.benchmark import surveyed
from avcl_bench.benchmark.errors import ConfigError, InputError
from avcl_bench.benchmark.surveyed import (
    DATASET_ALIASES,
    LONG_COLUMNS,
    TASKS,
    UNITS,
    WIDE_COLUMNS,
    comparability,
    load_table1,
    load_table1_long,
)

REPO = Path(__file__).resolve().parents[1]
SURVEY = REPO.parent / "shared" / "seed" / "avcl-survey.txt"
CAPTION = "Table 1: Overview of representative works for audio-visual correlation learning"

REQUIRED_LONG = (
    "paper,objective,learning,application,task,metric,metric_key,dataset,dataset_id,value,"
    "value_text,truncated,unit,value_normalized,notes"
).split(",")
OUR_METRIC_KEYS = {"mAP", "R@10", "ACC", "SDR", "AUC", "FD", "MRR"}


@pytest.fixture(autouse=True)
def _default_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests read the repo's CSVs unless they set the variable themselves."""
    monkeypatch.delenv(surveyed.ENV_VAR, raising=False)


@pytest.fixture(scope="module")
def wide() -> pd.DataFrame:
    return load_table1()


@pytest.fixture(scope="module")
def long() -> pd.DataFrame:
    return load_table1_long()


@pytest.fixture(scope="module")
def source_lines() -> list[str]:
    """The 40 body lines of Table 1 in the survey text (skips when the seed is absent)."""
    if not SURVEY.exists():
        pytest.skip(f"survey text {SURVEY} is absent")
    lines = SURVEY.read_text(encoding="utf-8").splitlines()
    start = lines.index(CAPTION)
    header = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("Paper "))
    body = []
    for line in lines[header + 1:]:
        if not line.strip():
            break
        body.append(line)
    return body


def one(long: pd.DataFrame, paper: str, dataset: str) -> pd.Series:
    sel = long[(long["paper"] == paper) & (long["dataset"] == dataset)]
    assert len(sel) == 1, (paper, dataset, len(sel))
    return sel.iloc[0]


# --- files and columns -------------------------------------------------------------------

def test_wide_shape_and_columns(wide: pd.DataFrame) -> None:
    assert len(wide) == 40
    assert tuple(wide.columns) == WIDE_COLUMNS
    header = (REPO / "results" / "surveyed" / "table1.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "paper,objective,learning,application,metric,performance,datasets"


def test_wide_csv_is_quoted_so_every_record_has_seven_fields() -> None:
    with open(REPO / "results" / "surveyed" / "table1.csv", newline="", encoding="utf-8") as f:
        records = list(csv.reader(f))
    assert len(records) == 41
    assert all(len(r) == 7 for r in records)
    assert records[1][0] == "Fanzeres and Nadeu, 2021"


def test_long_columns_start_with_the_required_order(long: pd.DataFrame) -> None:
    assert list(long.columns[: len(REQUIRED_LONG)]) == REQUIRED_LONG
    assert tuple(long.columns) == LONG_COLUMNS
    assert long["value"].dtype == "float64"
    assert long["value_normalized"].dtype == "float64"
    assert long["truncated"].dtype == bool


# --- against the survey text -----------------------------------------------------------

def test_source_block_has_forty_rows(source_lines: list[str]) -> None:
    assert len(source_lines) == 40
    assert all(line.startswith("[") for line in source_lines)


def test_every_wide_row_reassembles_its_source_line(wide: pd.DataFrame, source_lines: list[str]) -> None:
    for (_, row), line in zip(wide.iterrows(), source_lines):
        paper = re.match(r"\[([^\]]+)\] ", line).group(1)
        assert row["paper"] == paper
        tokens = line.split(" ")
        # performance and datasets are printed verbatim (datasets may contain spaces)
        assert row["performance"] in tokens, line
        assert line.endswith(" " + row["performance"] + " " + row["datasets"]), line
        assert f"[{row['paper']}] " + " ".join(row[c] for c in WIDE_COLUMNS[1:]) == line


def test_paper_names_have_no_brackets(wide: pd.DataFrame) -> None:
    assert not wide["paper"].str.contains(r"[\[\]]").any()
    assert wide["paper"].is_unique


# --- spot checks -----------------------------------------------------------------------

def test_spot_checks_wide(wide: pd.DataFrame) -> None:
    by = wide.set_index("paper")
    assert by.loc["Zeng et al., 2020", ["metric", "performance", "datasets"]].tolist() == ["mAP", "74.2", "VEGAS"]
    assert by.loc["Zhao et al., 2019", ["metric", "performance", "datasets"]].tolist() == ["SDR", "8.31", "MUSIC"]
    assert by.loc["Recasens et al., 2021", "performance"] == "93.2/69.9/93."
    assert by.loc["Afouras et al., 2021", "performance"] == "39.4/28."
    assert by.loc["Fanzeres and Nadeu, 2021", "objective"] == "MSE + Adv.L."
    assert by.loc["Ramaswamy and Das, 2020", "learning"] == "Semi-/(Un)Supervised"
    assert by.loc["Zeng et al., 2021", "objective"] == "Corr. + L2 + Frob. Norm"
    assert by.loc["Ilharco et al., 2019", "datasets"] == "Flickr Audio Caption Corpus"
    assert wide["paper"].iloc[0] == "Fanzeres and Nadeu, 2021"
    assert wide["paper"].iloc[-1] == "Hu et al., 2020"


def test_spot_checks_long(long: pd.DataFrame) -> None:
    r = one(long, "Zeng et al., 2020", "VEGAS")
    assert (r["task"], r["metric_key"], r["dataset_id"], r["value"], r["unit"]) == ("retrieval", "mAP", "vegas", 74.2, "percent")
    assert r["value_normalized"] == pytest.approx(0.742)

    r = one(long, "Zhao et al., 2019", "MUSIC")
    assert (r["task"], r["metric_key"], r["value"], r["unit"], r["value_normalized"]) == ("separation", "SDR", 8.31, "dB", 8.31)

    chen = long[long["paper"] == "Chen et al., 2021"]
    assert chen["value"].tolist() == [0.573, 0.590]
    assert chen["dataset_id"].tolist() == ["flickr-soundnet", "vgg-ss"]
    assert set(chen["unit"]) == {"fraction"} and set(chen["task"]) == {"localization"}
    assert chen["value_text"].tolist() == ["0.573", "0.590"]

    ath = long[long["paper"] == "Athanasiadis et al., 2020"]
    r = one(long, "Athanasiadis et al., 2020", "CREMA-D")
    assert (r["metric"], r["metric_key"], r["value"], r["unit"], r["task"]) == ("FID", "FD", 49.8, "other", "generation")
    assert ath["value_normalized"].tolist() == ath["value"].tolist()
    assert not ath["higher_is_better"].any()

    r = one(long, "Lin and Wang, 2020", "AVE")
    assert (r["task"], r["metric_key"], r["value"]) == ("event_localization", "ACC", 76.8)


def test_hu_et_al_splits_metrics_and_tasks(long: pd.DataFrame) -> None:
    auc = one(long, "Hu et al., 2020", "Flickr-SoundNet")
    sdr = one(long, "Hu et al., 2020", "MUSIC")
    assert (auc["metric"], auc["task"], auc["unit"], auc["value"]) == ("AUC", "localization", "percent", 49.2)
    assert auc["value_normalized"] == pytest.approx(0.492)
    assert (sdr["metric"], sdr["task"], sdr["unit"], sdr["value"]) == ("SDR", "separation", "dB", 6.59)


def test_rajan_variants(long: pd.DataFrame) -> None:
    rajan = long[long["paper"] == "Rajan et al., 2021"]
    assert rajan["variant"].tolist() == ["A", "V"]
    assert rajan["value"].tolist() == [56.5, 55.2]
    assert rajan["value_text"].tolist() == ["56.5(A)", "55.2(V)"]
    assert set(rajan["dataset"]) == {"SEW"}


def test_task_assignment_rules(long: pd.DataFrame) -> None:
    assert set(long["task"]) <= set(TASKS)
    for paper in ("Lin and Wang, 2020", "Ramaswamy and Das, 2020", "Duan et al., 2021"):
        assert set(long.loc[long["paper"] == paper, "task"]) == {"event_localization"}
        assert set(long.loc[long["paper"] == paper, "dataset_id"]) == {"ave"}
    morgado = long[long["paper"] == "Morgado et al., 2020"]
    assert set(morgado["task"]) == {"classification"} and morgado["notes"].str.len().gt(0).all()
    assert set(long.loc[long["metric"].isin(["SDR", "STFT"]), "task"]) == {"separation"}
    assert set(long.loc[long["metric"] == "AUC", "task"]) == {"localization"}
    assert set(long.loc[long["application"].str.contains("Retrieval"), "task"]) == {"retrieval"}
    assert set(long.loc[long["paper"] == "Mira et al., 2021", "task"]) == {"other"}
    for paper in ("Recasens et al., 2021", "Seo et al., 2020", "Patrick et al., 2020", "Cheng et al., 2020"):
        assert set(long.loc[long["paper"] == paper, "task"]) == {"classification"}


def test_metric_keys(long: pd.DataFrame) -> None:
    keys = set(long["metric_key"]) - {""}
    assert keys <= OUR_METRIC_KEYS
    assert keys == OUR_METRIC_KEYS  # every key the survey can be compared on is used
    for metric in ("WER", "NDB", "I", "STFT", "mAP@50"):
        assert set(long.loc[long["metric"] == metric, "metric_key"]) == {""}, metric
    assert set(long.loc[long["metric"] == "Recall@10", "metric_key"]) == {"R@10"}
    assert set(long.loc[long["metric"] == "SDR", "metric_key"]) == {"SDR"}
    afouras = long[long["paper"] == "Afouras et al., 2021"]
    assert afouras["notes"].str.contains("mAP@50 on VGG Sound").any()


# --- long table consistent with wide ---------------------------------------------------

def test_long_matches_wide_row_by_row(wide: pd.DataFrame, long: pd.DataFrame) -> None:
    assert set(long["paper"]) == set(wide["paper"])
    assert len(long) == sum(len(p.split("/")) for p in wide["performance"])
    for i, row in wide.iterrows():
        part = long[long["paper"] == row["paper"]]
        values = row["performance"].split("/")
        assert len(part) == len(values), row["paper"]
        assert set(part["table_row"]) == {i + 1}
        assert part["value_text"].tolist() == values
        for col in ("objective", "learning", "application"):
            assert set(part[col]) == {row[col]}
        for long_col, wide_col in (("dataset", "datasets"), ("metric", "metric")):
            printed = row[wide_col].split("/")
            if len(printed) == 1:
                assert set(part[long_col]) == {printed[0]}, row["paper"]
            else:
                assert part[long_col].tolist() == printed, row["paper"]


def test_values_parse_from_text(long: pd.DataFrame) -> None:
    for _, r in long.iterrows():
        m = re.fullmatch(r"(\d+(?:\.\d*)?)(?:\((A|V)\))?", r["value_text"])
        assert m, r["value_text"]
        assert r["value"] == float(m.group(1))
        assert r["variant"] == (m.group(2) or "")


def test_truncated_flags(long: pd.DataFrame) -> None:
    assert (long["truncated"] == long["value_text"].str.endswith(".")).all()
    flagged = {(r["paper"], r["dataset"]) for _, r in long[long["truncated"]].iterrows()}
    assert flagged == {
        ("Recasens et al., 2021", "ESC-50"),
        ("Afouras et al., 2021", "AudioSet"),
        ("Zheng et al., 2021a", "VGGFace + VoxCeleb"),
        ("Zhang et al., 2021", "AVE"),
    }
    assert one(long, "Recasens et al., 2021", "ESC-50")["value"] == 93.0


def test_units_and_normalisation(long: pd.DataFrame) -> None:
    assert set(long["unit"]) <= set(UNITS)
    pct = long["unit"] == "percent"
    assert (long.loc[pct, "value_normalized"] - long.loc[pct, "value"] / 100).abs().max() < 1e-12
    assert (long.loc[~pct, "value_normalized"] == long.loc[~pct, "value"]).all()
    assert set(long.loc[long["metric"].isin(["ACC", "mAP", "Recall@10"]), "unit"]) == {"percent"}
    assert set(long.loc[long["metric"] == "SDR", "unit"]) == {"dB"}
    assert set(long.loc[long["metric"] == "NDB", "unit"]) == {"count"}
    frac = long["unit"] == "fraction"
    assert long.loc[frac, "value"].between(0, 1).all()
    assert long.loc[pct, "value_normalized"].between(0, 1).all()


def test_dataset_ids_are_canonical(long: pd.DataFrame) -> None:
    ids = long["dataset_id"]
    assert (ids == ids.str.lower()).all() and not ids.str.contains(" ").any()
    # one printed name -> one id; the two spellings of UCF101 share an id
    assert long.groupby("dataset")["dataset_id"].nunique().max() == 1
    assert set(long.loc[long["dataset"].isin(["UCF101", "UCF-101"]), "dataset_id"]) == {"ucf101"}
    assert one(long, "Afouras et al., 2021", "VGG Sound")["dataset_id"] == "vggsound"
    assert one(long, "Zheng et al., 2021a", "VGGFace + VoxCeleb")["dataset"] == "VGGFace + VoxCeleb"
    assert set(DATASET_ALIASES.values()) <= set(ids)
    assert set(DATASET_ALIASES) == {"ave", "vegas", "music", "flickr", "vggss", "esc50"}


# --- filters and comparability ----------------------------------------------------------

def _rows(long: pd.DataFrame, **eq: str) -> pd.DataFrame:
    keep = pd.Series(True, index=long.index)
    for col, value in eq.items():
        keep &= long[col] == value
    return long[keep].reset_index(drop=True)


def test_comparability(long: pd.DataFrame) -> None:
    rows = _rows(long, metric_key="mAP")
    # direct needs the records' verdict that the data is the dataset (tests/test_comparability.py)
    label = comparability(rows, "ave", {"dataset_id": "ave", "verified": True})
    assert label.index.equals(rows.index) and label.name == "comparability"
    assert (label == "direct").tolist() == (rows["dataset_id"] == "ave").tolist()
    assert set(label) == {"direct", "reference"}
    assert (comparability(rows, "no-such-dataset", {"dataset_id": "no-such-dataset", "verified": True})
            == "reference").all()
    chen = _rows(long, task="localization")
    assert comparability(chen, "vggss", {"dataset_id": "vgg-ss", "verified": True})[
        chen["dataset_id"] == "vgg-ss"].eq("direct").all()
    with pytest.raises(InputError, match="dataset_id"):
        comparability(rows.drop(columns="dataset_id"), "ave")
    with pytest.raises(ConfigError):
        comparability(rows, "")


# --- paths and broken files -------------------------------------------------------------

@pytest.fixture
def copy_dir(tmp_path: Path) -> Path:
    src = REPO / "results" / "surveyed"
    for name in ("table1.csv", "table1_long.csv"):
        shutil.copy(src / name, tmp_path / name)
    return tmp_path


def test_env_var_and_folder_path(copy_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    long_csv = copy_dir / "table1_long.csv"
    df = pd.read_csv(long_csv, dtype=str, keep_default_na=False)
    df = df[df["dataset_id"] == "music"]
    df.to_csv(long_csv, index=False)
    monkeypatch.setenv(surveyed.ENV_VAR, str(copy_dir))
    assert set(load_table1_long()["dataset_id"]) == {"music"}
    assert (load_table1_long()["task"] == "separation").sum() == 5
    monkeypatch.delenv(surveyed.ENV_VAR)
    assert len(load_table1_long(copy_dir)) == len(df)
    assert len(load_table1(copy_dir / "table1.csv")) == 40


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"table1_long\.csv: file not found"):
        load_table1_long(tmp_path)
    with pytest.raises(InputError, match=r"table1\.csv: file not found"):
        load_table1(tmp_path)


def _corrupt(copy_dir: Path, name: str, edit) -> Path:
    path = copy_dir / name
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df = edit(df)
    df.to_csv(path, index=False)
    return path


def test_missing_column_names_file_and_column(copy_dir: Path) -> None:
    _corrupt(copy_dir, "table1_long.csv", lambda d: d.drop(columns="unit"))
    with pytest.raises(InputError, match=r"table1_long\.csv: unit: missing column"):
        load_table1_long(copy_dir)
    _corrupt(copy_dir, "table1.csv", lambda d: d.drop(columns="datasets"))
    with pytest.raises(InputError, match=r"table1\.csv: datasets: missing column"):
        load_table1(copy_dir)


@pytest.mark.parametrize(
    ("column", "bad", "message"),
    [
        ("value", "abc", r"value: row 3: not a number"),
        ("value", "nan", r"value: row 3: not a finite number"),
        ("truncated", "yes", r"truncated: row 3: expected 'true' or 'false'"),
        ("unit", "percentage", r"unit: row 3: 'percentage' is not one of"),
        ("task", "detection", r"task: row 3: 'detection' is not one of"),
        ("value_normalized", "0.5", r"value_normalized: row 3: .* does not match value"),
        ("table_row", "x", r"table_row: row 3: expected a positive integer"),
        ("dataset_id", "", r"dataset_id: row 3: empty cell"),
        ("higher_is_better", "maybe", r"higher_is_better: row 3: expected 'true', 'false' or empty"),
    ],
)
def test_corrupt_long_cell(copy_dir: Path, column: str, bad: str, message: str) -> None:
    def edit(d: pd.DataFrame) -> pd.DataFrame:
        d.loc[2, column] = bad
        return d

    _corrupt(copy_dir, "table1_long.csv", edit)
    with pytest.raises(InputError, match=r"table1_long\.csv: " + message):
        load_table1_long(copy_dir)


def test_corrupt_wide_files(copy_dir: Path) -> None:
    def blank(d: pd.DataFrame) -> pd.DataFrame:
        d.loc[4, "performance"] = " "
        return d

    _corrupt(copy_dir, "table1.csv", blank)
    with pytest.raises(InputError, match=r"table1\.csv: performance: row 5: empty cell"):
        load_table1(copy_dir)
    shutil.copy(REPO / "results" / "surveyed" / "table1.csv", copy_dir / "table1.csv")
    _corrupt(copy_dir, "table1.csv", lambda d: pd.concat([d, d.iloc[[0]]]))
    with pytest.raises(InputError, match=r"paper: row 41: .* appears twice"):
        load_table1(copy_dir)
    (copy_dir / "table1.csv").write_text("", encoding="utf-8")
    with pytest.raises(InputError, match=r"table1\.csv: empty file"):
        load_table1(copy_dir)
    (copy_dir / "table1.csv").write_bytes(b"paper,objective\n\xff\xfe,\x00bad\n")
    with pytest.raises(InputError, match=r"table1\.csv: not a readable CSV file \(UnicodeDecodeError"):
        load_table1(copy_dir)
