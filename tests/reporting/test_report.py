"""Report formats: content, parseability, determinism, and the HTML rendered in headless chromium."""
from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from avcl_bench.benchmark.errors import ConfigError, InputError
from avcl_bench.benchmark.reporting.leaderboard import format_leaderboard, leaderboard, leaderboard_json
from avcl_bench.benchmark.reporting.report import (
    CSV_COLUMNS,
    FORMATS,
    latex_escape,
    plot_figure,
    plot_series,
    render_report,
    write_report,
)
from avcl_bench.benchmark.reporting.tables import blocks_from_records, console_table

from ._builders import MIXTURE_SAR, SURVEYED_CSV, separation_records

PDFLATEX = shutil.which("pdflatex")

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def reports(records: list[dict], surveyed: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("reports")
    return {fmt: write_report(records, surveyed, fmt, out / f"report.{fmt}") for fmt in FORMATS}


def test_markdown(reports: dict[str, Path]) -> None:
    text = reports["md"].read_text(encoding="utf-8")
    assert text.startswith("# avcl-bench results\n")
    assert text.index("## retrieval") < text.index("## classification")
    assert "| rank (mAP)" in text and "| mAP ↑ [0-1]" in text
    assert "**0.620 ± 0.020**" in text  # best non-reference mAP
    assert "**0.820 ± 0.020**" in text and "**0.720 ± 0.020**" in text  # ACC and macro_F1 of infonce
    assert "#### Other metrics (retrieval on avsynth)" in text and "MedR_a2v [rank]" in text
    assert "#### Surveyed Table 1 rows (retrieval; mAP)" in text
    assert "| Patrick et al., 2020 " in text and "| direct " in text
    assert "O'Neil & Wu, 2019" in text
    assert "not directly comparable" in text


def test_latex(reports: dict[str, Path]) -> None:
    text = reports["latex"].read_text(encoding="utf-8")
    assert r"\usepackage{booktabs}" in text
    assert text.count(r"\begin{tabular}") == text.count(r"\toprule") == text.count(r"\bottomrule")
    assert text.count(r"\midrule") == text.count(r"\toprule") >= 4
    assert r"\textbf{0.620} $\pm$ 0.020" in text  # infonce mAP is best
    assert r"\textbf{0.490}" not in text and r"\textbf{0.100}" not in text  # not best / reference
    assert r"single\_seed" in text and "single_seed" not in text
    assert r"O'Neil \& Wu, 2019" in text and r"Wiki\_\{IT\}" in text
    assert r"a range such as 2-4 when 95\% intervals overlap" in text
    assert text.count("Our models: mean") == 1  # the reading guide once per document
    assert r"mAP $\uparrow$ [0-1]" in text
    # every table is shrunk to the text width when wider, and carries the CI column of the legend
    assert r"\usepackage{graphicx}" in text
    assert text.count(r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%") == text.count(
        r"\begin{tabular}")
    assert re.findall(r"\\resizebox\{[^\n]*\}\{!\}\{%\n\\begin\{tabular\}.*?\\end\{tabular\}\n\}", text, flags=re.S)
    assert text.count(r"95\% CI mAP") == 1 and r"95\% CI ACC" in text
    half = 4.302652729749464 * 0.02 / 3 ** 0.5
    assert f"[{0.62 - half:.3f}, {0.62 + half:.3f}] (t)" in text
    # every tabular row has as many cells as the column spec says
    for spec, body in re.findall(r"\\begin\{tabular\}\{(\w+)\}(.*?)\\end\{tabular\}", text, flags=re.S):
        for line in body.splitlines():
            if line.endswith(r"\\"):
                assert len(re.split(r"(?<!\\)&", line)) == len(spec), line


def test_latex_escape_all_specials() -> None:
    assert latex_escape(r"a\b&c%d$e#f_g{h}i~j^k") == (
        r"a\textbackslash{}b\&c\%d\$e\#f\_g\{h\}i\textasciitilde{}j\textasciicircum{}k"
    )


def test_csv(reports: dict[str, Path]) -> None:
    frame = pd.read_csv(reports["csv"], keep_default_na=False, na_values=[""],
                        dtype={"value_as_printed": str, "rank": str})
    assert tuple(frame.columns) == CSV_COLUMNS
    ours = frame[frame.source == "ours"]
    # every (model, task, dataset, metric) once, including non-headline metrics
    assert len(ours) == len(ours.drop_duplicates(["model", "task", "dataset", "metric"])) == 4 * 2 + 1 + 2 * 2
    r = ours[(ours.model == "infonce") & (ours.metric == "mAP")].iloc[0]
    assert (r["mean"], r["std"], r["n"], r["rank"]) == (pytest.approx(0.62), pytest.approx(0.02), 3, "1")
    assert r["ci_low"] == pytest.approx(0.5703172458) and r["ci_high"] == pytest.approx(0.6696827542)
    assert ours[ours.metric == "MedR_a2v"]["higher_is_better"].eq(False).all()
    surv = frame[frame.source == "surveyed"]
    assert not surv.empty and surv["model"].isna().all()
    esc = surv[(surv.paper == "Patrick et al., 2020") & (surv.surveyed_dataset_id == "esc-50")].iloc[0]
    assert esc["comparability"] == "direct" and esc["value_normalized"] == pytest.approx(0.885)
    assert esc["value_as_printed"] == "88.5" and esc["unit"] == "percent"


def test_html_is_self_contained(reports: dict[str, Path]) -> None:
    text = reports["html"].read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("<table") == 5  # retrieval: ours, other metrics, surveyed; classification: ours, surveyed
    assert 'class="sortable' in text and "addEventListener(\"click\"" in text
    pngs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(pngs) == 2  # one chart per (family, dataset) block
    assert all(base64.b64decode(p).startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    assert re.search(r"https?://", text) is None
    assert "<link" not in text and "src=\"http" not in text
    assert '<td class="num best"' in text


def test_reports_are_deterministic(records: list[dict], surveyed: pd.DataFrame, reports: dict[str, Path],
                                   tmp_path: Path) -> None:
    for fmt, first in reports.items():
        again = write_report(list(reversed(records)), surveyed, fmt, tmp_path / f"again.{fmt}")
        assert again.read_bytes() == first.read_bytes(), fmt


def test_report_without_surveyed(records: list[dict]) -> None:
    text = render_report(records, None, "md")
    assert "Surveyed" not in text
    assert "## retrieval" in text


def test_report_accepts_surveyed_path(records: list[dict], surveyed: pd.DataFrame) -> None:
    assert render_report(records, SURVEYED_CSV, "csv") == render_report(records, surveyed, "csv")


def test_report_errors(records: list[dict], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown report format 'pdf'"):
        render_report(records, None, "pdf")
    with pytest.raises(InputError, match="no result records"):
        render_report([], None, "md")
    with pytest.raises(InputError, match="is a folder"):
        write_report(records, None, "md", tmp_path)


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_html_renders_in_headless_chromium(reports: dict[str, Path], tmp_path: Path) -> None:
    html_path = reports["html"]
    n_tables = html_path.read_text(encoding="utf-8").count("<table")
    # 1) the page's own script runs without console errors and marks the tables as sortable
    done = _chromium(["--dump-dom", html_path.as_uri()], tmp_path / "p1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f'data-sortable="ready:{n_tables}"' in done.stdout
    console = [ln for ln in done.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]
    assert console == []
    # 2) clicking headers sorts: a test copy clicks the mAP header (numeric) and the model header (text)
    probe = tmp_path / "probe.html"
    probe.write_text(html_path.read_text(encoding="utf-8").replace("</body>", """<script>
var t = document.querySelector("table.ours");
function names() { return Array.prototype.map.call(t.tBodies[0].rows, function (r) { return r.cells[1].textContent; }).join(","); }
var th = t.tHead.rows[0].cells;
th[6].click(); var up = names(); th[6].click(); var down = names(); th[1].click(); var byName = names();
document.body.setAttribute("data-probe", up + "|" + down + "|" + byName);
</script></body>"""), encoding="utf-8")
    done = _chromium(["--dump-dom", probe.as_uri()], tmp_path / "p2")
    probe_value = re.search(r'data-probe="([^"]*)"', done.stdout)
    assert probe_value is not None, done.stderr[-2000:]
    up, down, by_name = probe_value.group(1).split("|")
    assert up == "random [ref],single_seed,cca,triplet,infonce"
    assert down == "infonce,triplet,cca,single_seed,random [ref]"
    assert by_name == "cca,infonce,random [ref],single_seed,triplet"
    # 3) a screenshot is produced (inspected by eye during development: tables and charts show)
    shot = tmp_path / "shot.png"
    done = _chromium([f"--screenshot={shot}", "--window-size=1280,2000", html_path.as_uri()], tmp_path / "p3")
    assert shot.exists() and shot.stat().st_size > 20_000, done.stderr[-2000:]


# ----------------------------------------------------------------------------- numbers that read right


@pytest.fixture(scope="module")
def sep_surveyed(surveyed: pd.DataFrame) -> pd.DataFrame:
    """The fixture Table 1 plus a separation row measured on another dataset (not comparable)."""
    other = surveyed[surveyed["task"] == "separation"].copy()
    other["paper"], other["dataset"], other["dataset_id"] = "Other et al., 2022", "CREMA-D", "crema-d"
    other["value"], other["value_normalized"], other["value_text"] = 40.0, 40.0, "40.0"
    return pd.concat([surveyed, other], ignore_index=True)


def test_plot_draws_only_direct_surveyed_rows_and_no_colour_legend(sep_surveyed: pd.DataFrame) -> None:
    (block,) = blocks_from_records(separation_records(), sep_surveyed)
    assert set(block.surveyed["comparability"]) == {"direct", "reference (different dataset - not directly comparable)"}
    bars, lines = plot_series(block, "SDR")
    assert lines == [{"label": "Smith & Jones_{x}, 2020 (SDR)", "value": 8.25}]  # not the CREMA-D row
    assert [b["model"] for b in bars] == block.models
    fig = plot_figure(block)
    assert fig.legends == [] and all(ax.get_legend() is None for ax in fig.axes)
    sdr_ax = fig.axes[0]
    assert [round(line.get_ydata()[0], 2) for line in sdr_ax.lines if len(set(line.get_ydata())) == 1] == [8.25]
    assert sdr_ax.get_ylim()[1] < 40.0  # the other dataset's value does not stretch the axis
    assert [t.get_text() for t in sdr_ax.get_xticklabels()] == block.models  # direct labels, no colour legend


def test_infinite_sar_is_inf_and_kept_off_the_axes(sep_surveyed: pd.DataFrame) -> None:
    (block,) = blocks_from_records(separation_records(), sep_surveyed)
    bars, _ = plot_series(block, "SAR")
    assert "mixture" not in [b["model"] for b in bars]
    sar_ax = plot_figure(block).axes[1]
    assert sar_ax.get_ylim()[1] < 60.0  # 241 dB would stretch it to 250
    assert any("not plotted (inf): mixture" in t.get_text() for t in sar_ax.texts)
    mix = block.cell("mixture", "SAR")
    assert mix["undefined"] and math.isinf(mix["mean"]) and mix["rank"] == "ref"
    assert block.best("SAR") == {"unet_big"}
    text = console_table(separation_records())
    (row,) = [ln for ln in text.splitlines() if ln.startswith("ref") and "mixture" in ln]
    assert " inf " in row and "241" not in text
    for fmt in ("md", "latex", "html"):
        assert f"{MIXTURE_SAR}" not in render_report(separation_records(), None, fmt) and "241.3" not in \
            render_report(separation_records(), None, fmt), fmt
    md = render_report(separation_records(), None, "md")
    (md_row,) = [ln for ln in md.splitlines() if "mixture [ref]" in ln]
    assert "| inf " in md_row


def test_infinite_value_of_a_ranked_model_is_not_ranked() -> None:
    recs = [r for r in separation_records() if r["model"] != "mixture"]
    recs[-1]["metrics"]["SAR"] = recs[-2]["metrics"]["SAR"] = 260.0  # det_model: SAR +inf up to rounding
    board = leaderboard(recs)
    sar = board[board.metric == "SAR"]
    det = sar[sar.model == "det_model"].iloc[0]
    assert det["rank"] == "n/d" and det["undefined"] and sar["model"].tolist()[-2:] == ["det_model", "oracle_irm"]
    assert sar[sar.model == "unet_big"]["rank"].iloc[0] == "1-2"  # ranked among the two defined models
    (row,) = [r for r in json.loads(leaderboard_json(board)) if r["model"] == "det_model" and r["metric"] == "SAR"]
    assert row["mean"] is None and row["undefined"] is True and row["rank_best"] is None


def test_deterministic_rows_are_marked_and_use_item_bootstrap() -> None:
    recs = separation_records()
    text = console_table(recs)
    (oracle,) = [ln for ln in text.splitlines() if "oracle_irm" in ln]
    assert "31.292 (det.)" in oracle and "(boot)" in oracle and "[31.292, 31.292]" not in text
    (det,) = [ln for ln in text.splitlines() if ln.split()[1:2] == ["det_model"]]
    assert "6.000 (det.)" in det and "± 0.000" not in text
    rows = json.loads(leaderboard_json(leaderboard(recs)))
    (o,) = [r for r in rows if r["model"] == "oracle_irm" and r["metric"] == "SDR"]
    assert o["deterministic"] is True and o["ci_method"] == "bootstrap over test items" and o["ci_low"] < o["ci_high"]
    (u,) = [r for r in rows if r["model"] == "unet" and r["metric"] == "SDR"]
    assert u["deterministic"] is False and {"rank", "rank_best", "rank_worst"} <= set(u)
    for fmt in ("md", "latex", "html"):
        assert "31.292 (det.)" in render_report(recs, None, fmt), fmt


def test_fraction_intervals_are_clipped_with_a_note() -> None:
    recs = separation_records()
    board = leaderboard(recs)
    (unet,) = board[(board.model == "unet") & (board.metric == "cIoU")].to_dict(orient="records")
    assert (unet["ci_low"], unet["ci_high"]) == (0.0, 1.0) and unet["clipped"]  # t-interval: [-0.46, 1.21]
    assert "[0.000, 1.000] (clipped)" in format_leaderboard(board)
    csv = pd.read_csv(io.StringIO(render_report(recs, None, "csv")))
    assert csv.loc[(csv.model == "unet") & (csv.metric == "cIoU"), "clipped"].tolist() == [True]
    assert "clipped to the metric&#x27;s range" in render_report(recs, None, "html")  # cell tooltip
    assert "clipped to the metric's range" in console_table(recs)


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex is not on PATH (TeX is not installed here)")
def test_latex_compiles_and_fits_the_text_width(records: list[dict], surveyed: pd.DataFrame, tmp_path: Path) -> None:
    for name, recs, surv in (("fixture", records, surveyed), ("separation", separation_records(), None)):
        tex = tmp_path / f"{name}.tex"
        tex.write_text(render_report(recs, surv, "latex"), encoding="utf-8")
        done = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", tex.name], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, check=False)
        log = (tmp_path / f"{name}.log").read_text(encoding="utf-8", errors="replace")
        assert done.returncode == 0, log[-3000:]
        assert (tmp_path / f"{name}.pdf").stat().st_size > 1000
        assert "Overfull \\hbox" not in log, [ln for ln in log.splitlines() if "Overfull" in ln]
