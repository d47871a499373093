"""Report formats: content, parseability, determinism, and the HTML rendered in headless chromium."""
from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from avcl_bench.benchmark.errors import ConfigError, InputError
from avcl_bench.benchmark.reporting.report import CSV_COLUMNS, FORMATS, latex_escape, render_report, write_report

from ._builders import SURVEYED_CSV

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
    assert r"the 95\% interval overlaps" in text
    assert r"mAP $\uparrow$ [0-1]" in text
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
