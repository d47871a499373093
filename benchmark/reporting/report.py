"""Report files (Markdown, LaTeX, CSV, self-contained HTML) from stored result records.

Every format shows the same content, grouped by task family and dataset (see
:func:`~benchmark.reporting.tables.build_blocks`): our models with mean ± std over seeds,
their tied rank, and beside them the surveyed Table 1 rows of the same family and metric,
each flagged ``direct`` (same dataset) or ``reference`` (different dataset, not directly
comparable). Output is deterministic: the same records give byte-identical files (no
timestamps other than those stored in the records; plots carry no date metadata).

The reading guide (:func:`~benchmark.reporting.tables.page_legend`) is written once per
file. LaTeX tables are shrunk to the text width when wider (``\\resizebox``, graphicx) and
carry the CI column the guide describes. HTML plots draw only the surveyed rows measured on
our dataset (``direct``), labelled on the plot; the others are listed in the table below it.
Infinite dB values (``inf``) are never plotted.
"""
from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from ..errors import ConfigError, InputError
from ..schema import ResultRecord
from ..surveyed import load_table1_long
from .compute import COMPUTE_COLUMNS, COMPUTE_HEADERS, compute_rows, compute_table
from .configs import ConfigLegend, resolve_configs
from .records import as_records
from .tables import (
    COMPARABILITY_DIRECT,
    NOT_COMPARABLE_NOTE,
    Block,
    block_legend,
    blocks_and_legend,
    format_value,
    other_metric_rows,
    our_table_rows,
    page_legend,
    rank_sort_key,
    surveyed_table_rows,
)

__all__ = ["FORMATS", "CSV_COLUMNS", "latex_escape", "plot_figure", "plot_series", "render_report", "write_report"]

FORMATS: tuple[str, ...] = ("md", "latex", "csv", "html")

CSV_COLUMNS: tuple[str, ...] = (
    "source",
    "task",
    "dataset",
    "model",
    "metric",
    "mean",
    "std",
    "n",
    "ci_low",
    "ci_high",
    "ci_method",
    "rank",
    "higher_is_better",
    "reference",
    "learning",
    "encoder",
    "objective",
    "paper",
    "surveyed_dataset",
    "surveyed_dataset_id",
    "metric_as_printed",
    "value_as_printed",
    "unit",
    "value_normalized",
    "comparability",
    # added after the first release
    "rank_best",
    "rank_worst",
    "deterministic",
    "clipped",
    "undefined",
    # compute rows (source "compute"): what each trained model cost, see benchmark/reporting/compute.py
    "parameters",
    "train_seconds",
    "peak_memory_mb",
    "memory_measure",
    "embed_items_per_s",
    "device",
)

TITLE = "avcl-bench results"
COMPUTE_TITLE = "Compute"
COMPUTE_NOTE = ("Per trained model: parameters, training wall time and peak memory of fit (mean over seeds), "
                "test items embedded per second (median over seeds), on the device named. Measured on the machine "
                "that ran each cell; not part of any key, so they vary between machines and runs.")

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "±": r"$\pm$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "–": "--",
    "—": "---",
}


def latex_escape(text: object) -> str:
    """Escape LaTeX special characters (``\\ & % $ # _ { } ~ ^ < >``) in ``text``."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _provenance_line(records: Sequence[ResultRecord]) -> str:
    versions = sorted({str(r["provenance"].get("suite_version", "unknown")) for r in records})
    return f"{len(records)} result record(s); suite version(s): {', '.join(versions)}."


# ----------------------------------------------------------------------------- markdown


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _render_md(blocks: list[Block], records: Sequence[ResultRecord], with_surveyed: bool,
               other_metrics: bool = True, *, legend: ConfigLegend | None = None, one_legend: bool = False,
               base_level: int = 1, title: bool = True, compute: pd.DataFrame | None = None) -> str:
    """Markdown: title at ``base_level``, a family at ``base_level + 1``, a table at ``+ 2``.

    The reading guide is written once, at the top; ``one_legend`` also leaves out the short
    per-table line saying which metric the rank is by.
    """
    h = ["#" * (base_level + k) for k in range(4)]
    out = ([f"{h[0]} {TITLE}", ""] if title else []) + [_provenance_line(records), ""]
    out += [page_legend(), ""]
    if legend:
        out += [_md_escape(legend.text()), ""]
    family = None
    for block in blocks:
        if block.family != family:
            family = block.family
            out += [f"{h[1]} {family}", ""]
        out += [f"{h[2]} {family} on {block.dataset}", ""]
        if not one_legend:
            out += [block_legend(block), ""]
        header, body = our_table_rows(block, with_ci=True)
        for row, model in zip(body, block.models):
            for j, metric in enumerate(block.metrics):
                if model in block.best(metric):
                    row[6 + j] = f"**{row[6 + j]}**"
        out.append(tabulate([[_md_escape(c) for c in r] for r in body], headers=[_md_escape(h) for h in header],
                            tablefmt="github", disable_numparse=True))
        out.append("")
        if block.other_metrics and other_metrics:
            oh, ob = other_metric_rows(block)
            out += [f"{h[3]} Other metrics ({block.family} on {block.dataset})", "",
                    tabulate([[_md_escape(c) for c in r] for r in ob], headers=oh, tablefmt="github",
                             disable_numparse=True), ""]
        if with_surveyed:
            out += _md_surveyed(block, h[3])
    if compute is not None and not compute.empty:
        out += [f"{h[1]} {COMPUTE_TITLE}", "", COMPUTE_NOTE, "",
                tabulate([[_md_escape(c) for c in r] for r in compute_rows(compute)], headers=list(COMPUTE_HEADERS),
                         tablefmt="github", disable_numparse=True), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def _md_surveyed(block: Block, heading: str = "####") -> list[str]:
    title = f"{heading} Surveyed Table 1 rows ({block.family}; {', '.join(block.metrics)})"
    if block.surveyed.empty:
        return [title, "", "No surveyed rows for these metrics.", ""]
    header, body = surveyed_table_rows(block)
    table = tabulate([[_md_escape(c) for c in r] for r in body], headers=header, tablefmt="github",
                     disable_numparse=True)
    return [title, "", table, "", f"> {NOT_COMPARABLE_NOTE}", ""]


# ----------------------------------------------------------------------------- latex


def _latex_header(metric: str, higher: bool, unit: str) -> str:
    arrow = r"$\uparrow$" if higher else r"$\downarrow$"
    return f"{latex_escape(metric)} {arrow}" + (f" [{latex_escape(unit)}]" if unit else "")


#: shrink a box to the text width when (and only when) it is wider (graphicx)
_FIT_OPEN = r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%"


def _latex_tabular(header: list[str], body: list[list[str]], align: str) -> list[str]:
    """A booktabs tabular inside :data:`_FIT_OPEN` (never wider than the text)."""
    lines = [_FIT_OPEN, rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    lines += [" & ".join(row) + r" \\" for row in body]
    lines += [r"\bottomrule", r"\end{tabular}", "}"]
    return lines


def _render_latex(blocks: list[Block], records: Sequence[ResultRecord], with_surveyed: bool,
                  legend: ConfigLegend | None = None, compute: pd.DataFrame | None = None) -> str:
    out = [
        r"\documentclass[10pt]{article}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage[margin=1.5cm,landscape]{geometry}",
        r"\usepackage{booktabs}",
        r"\usepackage{graphicx}",
        r"\begin{document}",
        rf"\section*{{{latex_escape(TITLE)}}}",
        latex_escape(_provenance_line(records)),
        "",
        latex_escape(page_legend()) + " Best non-reference value per column in bold.",
        "",
    ]
    if legend:
        out += [latex_escape(legend.text()), ""]
    family = None
    for block in blocks:
        if block.family != family:
            family = block.family
            out += [rf"\subsection*{{{latex_escape(family)}}}", ""]
        out += [rf"\subsubsection*{{{latex_escape(family)} on {latex_escape(block.dataset)}}}",
                latex_escape(block_legend(block)), ""]
        header_plain, plain = our_table_rows(block, with_ci=True)
        header = [latex_escape(h) for h in header_plain[:6]]
        header += [_latex_header(m, block.directions[m], block.unit(m)) for m in block.metrics]
        header.append(latex_escape(header_plain[-1]))
        body = []
        for row, model in zip(plain, block.models):
            cells = [latex_escape(c) for c in row[:6]]
            for m in block.metrics:
                c = block.cell(model, m)
                if c is None:
                    cells.append("--")
                    continue
                mean, sep, rest = format_value(c).partition(" ")
                mean = latex_escape(mean)
                if model in block.best(m):
                    mean = rf"\textbf{{{mean}}}"
                cells.append(mean + (sep + latex_escape(rest) if sep else ""))
            cells.append(latex_escape(row[-1]))
            body.append(cells)
        out += [r"\begin{center}", r"\small"]
        out += _latex_tabular(header, body, "llllll" + "r" * len(block.metrics) + "l")
        out += [r"\end{center}", ""]
        if with_surveyed:
            title = latex_escape(f"Surveyed Table 1 rows ({block.family}; {', '.join(block.metrics)})")
            out += [rf"\paragraph{{{title}}}"]
            if block.surveyed.empty:
                out += ["No surveyed rows for these metrics.", ""]
            else:
                sh, sb = surveyed_table_rows(block)
                out += [r"\begin{center}", r"\small"]
                out += _latex_tabular([latex_escape(h) for h in sh], [[latex_escape(c) for c in r] for r in sb],
                                      "lllrlrl")
                out += [r"\end{center}", latex_escape(NOT_COMPARABLE_NOTE), ""]
    if compute is not None and not compute.empty:
        out += [rf"\subsection*{{{COMPUTE_TITLE}}}", latex_escape(COMPUTE_NOTE), "", r"\begin{center}", r"\small"]
        out += _latex_tabular([latex_escape(h) for h in COMPUTE_HEADERS],
                              [[latex_escape(c) for c in r] for r in compute_rows(compute)], "llrrrlrlr")
        out += [r"\end{center}", ""]
    out += [r"\end{document}"]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- csv


def _render_csv(blocks: list[Block], with_surveyed: bool, compute: pd.DataFrame | None = None) -> str:
    rows: list[dict[str, Any]] = []
    for block in blocks:
        for _, r in block.all_rows.iterrows():
            rows.append({
                "source": "ours", "task": r["task"], "dataset": r["dataset"], "model": r["model"],
                "metric": r["metric"], "mean": r["mean"], "std": r["std"], "n": int(r["n"]),
                "ci_low": r["ci_low"], "ci_high": r["ci_high"], "ci_method": r["ci_method"], "rank": r["rank"],
                "higher_is_better": bool(r["higher_is_better"]), "reference": bool(r["reference"]),
                "learning": r["learning"], "encoder": r["encoder"], "objective": r["objective"],
                "rank_best": r["rank_best"], "rank_worst": r["rank_worst"],
                "deterministic": bool(r["deterministic"]), "clipped": bool(r["clipped"]),
                "undefined": bool(r["undefined"]),
            })
        if with_surveyed:
            for _, s in block.surveyed.iterrows():
                rows.append({
                    "source": "surveyed", "task": block.family, "dataset": block.dataset, "metric": s["our_metrics"],
                    "paper": s["paper"], "surveyed_dataset": s["dataset"], "surveyed_dataset_id": s["dataset_id"],
                    "metric_as_printed": s["metric"], "value_as_printed": s["value_text"], "unit": s["unit"],
                    "value_normalized": s["value_normalized"], "comparability": s["comparability"],
                })
    if compute is not None:
        for _, c in compute.iterrows():
            rows.append({"source": "compute", **{k: c[k] for k in COMPUTE_COLUMNS}})
    frame = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
    return frame.to_csv(index=False, lineterminator="\n", float_format="%.10g")


# ----------------------------------------------------------------------------- html

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { border-bottom: 2px solid #444; }
h2 { margin-top: 2em; border-bottom: 1px solid #aaa; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border-top: 1px solid #ccc; border-bottom: 1px solid #ccc; padding: 0.25em 0.7em; text-align: left; }
thead th { border-top: 2px solid #222; border-bottom: 1.5px solid #222; background: #f4f4f4; }
table.sortable thead th { cursor: pointer; user-select: none; }
table.sortable thead th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable thead th[aria-sort="descending"]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; }
tr.ref td { color: #666; font-style: italic; }
tr.direct td { background: #eef7ee; }
p.note { background: #fff6e0; border-left: 4px solid #e0a000; padding: 0.4em 0.8em; }
p.legend { color: #444; font-size: 0.9em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; }
"""

_JS = """
(function () {
  "use strict";
  function sortKey(cell) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent.trim(); }
    var num = parseFloat(raw);
    if (raw !== "" && !isNaN(num) && isFinite(raw)) { return { num: true, value: num }; }
    return { num: false, value: raw.toLowerCase() };
  }
  function compare(a, b) {
    if (a.num && b.num) { return a.value - b.value; }
    if (a.num !== b.num) { return a.num ? -1 : 1; }
    return a.value < b.value ? -1 : (a.value > b.value ? 1 : 0);
  }
  function sortTable(table, column, th) {
    var body = table.tBodies[0];
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var rows = Array.prototype.slice.call(body.rows).map(function (row, index) {
      return { row: row, index: index, key: sortKey(row.cells[column]) };
    });
    rows.sort(function (x, y) {
      var c = compare(x.key, y.key);
      if (c === 0) { return x.index - y.index; }
      return ascending ? c : -c;
    });
    rows.forEach(function (item) { body.appendChild(item.row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) { cell.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.title = "click to sort";
      th.addEventListener("click", function () { sortTable(table, column, th); });
    });
  });
  document.body.setAttribute("data-sortable", "ready:" + tables.length);
})();
"""


def plot_series(block: Block, metric: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What one panel of a block's chart draws: ``(bars, lines)``.

    ``bars``: our models with a finite mean (``model``, ``mean``, ``low`` / ``high`` error
    lengths, ``reference``); a model whose value is infinite (``inf``) is left out, so it
    cannot stretch the axis. ``lines``: the surveyed rows measured on our dataset
    (``direct``) for this metric (``label``, ``value``); rows on other datasets are not drawn
    (they are listed in the surveyed table under the chart).
    """
    bars: list[dict[str, Any]] = []
    for model in block.models:
        c = block.cell(model, metric)
        if c is None or not math.isfinite(float(c["mean"])):
            continue
        mean = float(c["mean"])
        lo, hi = float(c["ci_low"]), float(c["ci_high"])
        bars.append({"model": model, "mean": mean, "low": 0.0 if math.isnan(lo) else max(0.0, mean - lo),
                     "high": 0.0 if math.isnan(hi) else max(0.0, hi - mean), "reference": bool(c["reference"])})
    lines: list[dict[str, Any]] = []
    for _, srow in block.surveyed.iterrows():
        v = srow["value_normalized"]
        if pd.isna(v) or srow["comparability"] != COMPARABILITY_DIRECT:
            continue
        if metric not in str(srow["our_metrics"]).split(", "):
            continue
        lines.append({"label": f"{srow['paper']} ({srow['metric']})", "value": float(v)})
    return bars, lines


def plot_figure(block: Block) -> Any:
    """The matplotlib ``Figure`` of a block: one bar panel per metric with CI error bars.

    Bars are labelled by model on the x axis (no colour legend); surveyed ``direct`` rows
    are dashed horizontal lines labelled where they are drawn. Built with the
    object-oriented Agg API (no pyplot state).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(block.metrics)
    fig = Figure(figsize=(max(3.6 * n, 5.0), 3.8), dpi=90)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, metric in zip(axes, block.metrics):
        bars, lines = plot_series(block, metric)
        xs = list(range(len(bars)))
        drawn = ax.bar(xs, [b["mean"] for b in bars], color=["#cccccc" if b["reference"] else "#1f77b4" for b in bars],
                       edgecolor="#333333", linewidth=0.6)
        for bar, b in zip(drawn, bars):
            if b["reference"]:
                bar.set_hatch("//")
        ax.errorbar(xs, [b["mean"] for b in bars], yerr=[[b["low"] for b in bars], [b["high"] for b in bars]],
                    fmt="none", ecolor="#000000", capsize=3, linewidth=1)
        ax.set_xticks(xs)
        ax.set_xticklabels([b["model"] for b in bars], rotation=40, ha="right", fontsize=7)
        for line in lines:
            ax.axhline(line["value"], color="#b22222", linestyle="--", linewidth=1)
            ax.annotate(line["label"], xy=(1.0, line["value"]), xycoords=("axes fraction", "data"),
                        xytext=(-2, 2), textcoords="offset points", ha="right", va="bottom", fontsize=6,
                        color="#b22222", annotation_clip=False)
        left_out = [m for m in block.models if (c := block.cell(m, metric)) is not None
                    and not math.isfinite(float(c["mean"]))]
        if left_out:
            ax.text(0.01, 0.99, "not plotted (inf): " + ", ".join(left_out), transform=ax.transAxes,
                    ha="left", va="top", fontsize=6, color="#555555")
        unit = block.unit(metric)
        direction = "higher is better" if block.directions[metric] else "lower is better"
        ax.set_title(f"{metric} ({direction})", fontsize=9)
        ax.set_ylabel(f"{metric} [{unit}]" if unit else metric, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(f"{block.family} on {block.dataset}: mean with 95% CI (hatched: reference rows; "
                 "dashed: surveyed, same dataset)", fontsize=9)
    fig.tight_layout()
    return fig


def _plot_block(block: Block) -> str:
    """:func:`plot_figure` as a base64 PNG, saved without metadata (the bytes depend only on the data)."""
    fig = plot_figure(block)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _num(value: float) -> str:
    return "" if not math.isfinite(value) else repr(float(value))


def _html_our_table(block: Block) -> list[str]:
    header, body = our_table_rows(block)
    out = ['<table class="sortable ours">', "<thead><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in header]
    out += ["</tr></thead>", "<tbody>"]
    for row, model in zip(body, block.models):
        info = block.model_info(model)
        cls = ' class="ref"' if bool(info["reference"]) else ""
        primary = block.cell(model, block.primary_metric)
        rank_sort = "1e9"
        if primary is not None and math.isfinite(best_rank := rank_sort_key(primary)[0]):
            rank_sort = repr(best_rank + rank_sort_key(primary)[1] / 1000.0)
        cells = [f'<td class="num" data-sort="{rank_sort}">{html.escape(row[0])}</td>']
        cells += [f"<td>{html.escape(c)}</td>" for c in row[1:5]]
        cells.append(f'<td class="num">{html.escape(row[5])}</td>')
        for j, m in enumerate(block.metrics):
            c = block.cell(model, m)
            if c is None:
                cells.append('<td class="num" data-sort="">-</td>')
                continue
            best = " best" if model in block.best(m) else ""
            lo, hi = float(c["ci_low"]), float(c["ci_high"])
            ci = "no interval" if math.isnan(lo) else f"95% CI [{lo:.4f}, {hi:.4f}] ({c['ci_method']})"
            if bool(c["clipped"]):
                ci += ", clipped to the metric's range"
            cells.append(f'<td class="num{best}" data-sort="{_num(float(c["mean"]))}" title="{html.escape(ci)}">'
                         f"{html.escape(row[6 + j])}</td>")
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out += ["</tbody>", "</table>"]
    return out


def _html_plain_table(header: list[str], body: list[list[str]], css_class: str) -> list[str]:
    out = [f'<table class="{css_class}">', "<thead><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in header]
    out += ["</tr></thead>", "<tbody>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body]
    out += ["</tbody>", "</table>"]
    return out


def _html_surveyed(block: Block) -> list[str]:
    title = f"Surveyed Table 1 rows ({block.family}; {', '.join(block.metrics)})"
    out = [f"<h4>{html.escape(title)}</h4>"]
    if block.surveyed.empty:
        return out + ["<p>No surveyed rows for these metrics.</p>"]
    header, body = surveyed_table_rows(block)
    out += ['<table class="sortable surveyed">', "<thead><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in header]
    out += ["</tr></thead>", "<tbody>"]
    for (_, s), row in zip(block.surveyed.iterrows(), body):
        cls = ' class="direct"' if s["comparability"] == COMPARABILITY_DIRECT else ""
        v = s["value_normalized"]
        cells = [f"<td>{html.escape(c)}</td>" for c in row[:5]]
        cells.append(f'<td class="num" data-sort="{"" if pd.isna(v) else _num(float(v))}">{html.escape(row[5])}</td>')
        cells.append(f"<td>{html.escape(row[6])}</td>")
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out += ["</tbody>", "</table>", f'<p class="note">{html.escape(NOT_COMPARABLE_NOTE)}</p>']
    return out


def _render_html(blocks: list[Block], records: Sequence[ResultRecord], with_surveyed: bool,
                 legend: ConfigLegend | None = None, compute: pd.DataFrame | None = None) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(TITLE)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(TITLE)}</h1>",
        f"<p>{html.escape(_provenance_line(records))} Click a table header to sort; hover a value for its "
        "95% confidence interval.</p>",
    ]
    out.append(f'<p class="legend">{html.escape(page_legend())} Bold: best non-reference value.</p>')
    if legend:
        out.append(f'<p class="legend">{html.escape(legend.text())}</p>')
    family = None
    for i, block in enumerate(blocks):
        if block.family != family:
            family = block.family
            out.append(f"<h2>{html.escape(family)}</h2>")
        out.append(f'<section id="block-{i}">')
        out.append(f"<h3>{html.escape(block.family)} on {html.escape(block.dataset)}</h3>")
        out.append(f'<p class="legend">{html.escape(block_legend(block))}</p>')
        png = _plot_block(block)
        alt = f"bar chart of {block.family} on {block.dataset}"
        others = int((block.surveyed["comparability"] != COMPARABILITY_DIRECT).sum()) if not block.surveyed.empty else 0
        caption = (f"<figcaption>{others} surveyed row(s) on other datasets are not drawn (not comparable); "
                   "they are listed in the surveyed table below.</figcaption>") if others and with_surveyed else ""
        out.append(f'<figure><img src="data:image/png;base64,{png}" alt="{html.escape(alt)}">{caption}</figure>')
        out += _html_our_table(block)
        if block.other_metrics:
            oh, ob = other_metric_rows(block)
            out.append(f"<h4>{html.escape(f'Other metrics ({block.family} on {block.dataset})')}</h4>")
            out += _html_plain_table(oh, ob, "sortable others")
        if with_surveyed:
            out += _html_surveyed(block)
        out.append("</section>")
    if compute is not None and not compute.empty:
        out += [f"<h2>{COMPUTE_TITLE}</h2>", f'<p class="legend">{html.escape(COMPUTE_NOTE)}</p>']
        out += _html_plain_table(list(COMPUTE_HEADERS), compute_rows(compute), "sortable compute")
    out += [f"<script>{_JS}</script>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- entry points


def render_report(
    records: Iterable[ResultRecord | Mapping[str, Any]],
    surveyed: pd.DataFrame | str | Path | None,
    fmt: str,
    *,
    tasks: Sequence[str] | None = None,
    other_metrics: bool = True,
    latest: bool = False,
    one_legend: bool = False,
    sort_by_rank: bool = True,
    base_level: int = 1,
    title: bool = True,
    compute_section: bool = True,
) -> str:
    """The report text in format ``fmt`` (``md``, ``latex``, ``csv`` or ``html``).

    ``other_metrics=False`` keeps only each family's headline metrics in the Markdown output
    (compact README sections); the other formats always carry every metric. A model with
    records under several configs gets one row per config (``model@id``) and a legend;
    ``latest`` keeps only each model's newest config. Markdown only: ``one_legend`` writes
    the reading guide once per page. Rows are ordered by rank (``sort_by_rank=False``: by
    encoder, objective and name). ``base_level``
    is the level of the title (``title=False`` leaves it out). Every format ends with the compute
    table of the trained models (Markdown: unless ``compute_section=False``, for README sections).

    ``surveyed`` is the long-form Table 1 (a DataFrame from
    :func:`~benchmark.surveyed.load_table1_long`, a path to it, or ``None`` to
    leave the surveyed rows out).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r} (choose from {', '.join(FORMATS)})")
    recs = as_records(records)
    if isinstance(surveyed, (str, Path)):
        surveyed = load_table1_long(surveyed)
    blocks, legend = blocks_and_legend(recs, surveyed, tasks=tasks, latest=latest, sort_by_rank=sort_by_rank)
    with_surveyed = surveyed is not None
    compute = compute_table(resolve_configs(recs, latest=latest)[0])
    if fmt == "md":
        return _render_md(blocks, recs, with_surveyed, other_metrics, legend=legend, one_legend=one_legend,
                          base_level=base_level, title=title, compute=compute if compute_section else None)
    if fmt == "latex":
        return _render_latex(blocks, recs, with_surveyed, legend, compute)
    if fmt == "csv":
        return _render_csv(blocks, with_surveyed, compute)
    return _render_html(blocks, recs, with_surveyed, legend, compute)


def write_report(
    records: Iterable[ResultRecord | Mapping[str, Any]],
    surveyed: pd.DataFrame | str | Path | None,
    fmt: str,
    out_path: str | Path,
    *,
    tasks: Sequence[str] | None = None,
    latest: bool = False,
) -> Path:
    """Write :func:`render_report` to ``out_path`` (parent folders are created); returns the path."""
    text = render_report(records, surveyed, fmt, tasks=tasks, latest=latest)
    out = Path(out_path)
    if out.exists() and out.is_dir():
        raise InputError(out, None, "is a folder; give a file path for the report")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8", newline="\n")
    except OSError as e:
        raise InputError(out, None, f"cannot write report ({e.__class__.__name__}: {e})") from None
    return out
