"""Command line of avcl-bench (``python run_benchmark.py ...``).

Sub-commands: ``run`` (default), ``score``, ``list``, ``leaderboard``, ``report``,
``validate-model``, ``submit``, ``export``. Errors caused by the user's input are printed as
one line on stderr with exit status 2; nothing is printed on stdout then. An exception raised
in a submitted model's own code prints a one-line summary followed by the traceback frames of
the user's files. ``--debug`` (or ``AVCL_DEBUG=1``) prints the full traceback of any error.
"""
from __future__ import annotations

import argparse
import difflib
import inspect
import json
import os
import shutil
import sys
import textwrap
import traceback
from pathlib import Path
from typing import Any

from avcl_bench._version import __version__
from avcl_bench.baselines import MODELS, model_info
from avcl_bench.tasks.registry import TASK_ORDER, TASKS, get_task

from .arrays import check_finite_metrics, load_npz
from .cliargs import add_runtime_options, parse_csv, parse_kv, parse_seeds
from .datasets import DATASETS
from .errors import AVCLError, ConfigError, UserCodeError
from .executors import ExecutorOptions
from .paths import default_out
from .reporting.commands import add_leaderboard_parser, add_report_parser
from .reporting.tables import console_table
from .runner import RunConfig, run
from .submit_commands import add_export_parser, add_submit_parser, add_validate_parser
from .surveyed import load_table1_long

#: models of ``python run_benchmark.py`` without --models: the chance reference and learned baselines
DEFAULT_MODELS = ("random", "infonce", "dcca", "triplet")
COMMANDS = ("run", "score", "list", "leaderboard", "report", "validate-model", "submit", "export")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", help="comma-separated model names or specs (file.py:Class); 'all' for every registered model")
    p.add_argument("--tasks", help="comma-separated task families (default: every task the dataset supports)")
    p.add_argument("--dataset", default="avsynth")
    p.add_argument("--data-root", dest="data_root")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="dataset option (repeatable)")
    p.add_argument("--seeds", default="0")
    p.add_argument("--out", type=Path, help="results folder (default: ./results/runs under the current directory)")
    p.add_argument("--quick", action="store_true", help="small data and short training (smoke runs)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--model-args", dest="model_args", help="key=value,... passed to every model's constructor")
    p.add_argument("--inception-weights", dest="inception_weights", type=Path,
                   help="pytorch-fid Inception weights (pt_inception-2015-12-05-6726825d.pth) for real-image FID")
    p.add_argument("--task-option", dest="task_option", action="append", default=[], metavar="KEY=VALUE",
                   help="task protocol option (repeatable): probe=linear|mlp, event_head=linear|gru, "
                        "empty_mask=raise|zero, ties=strict|official, gen_adv=WEIGHT, gen_train=visual|audio")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    add_runtime_options(p)
    p.add_argument("--no-cache", dest="cache", action="store_false",
                   help="neither read nor write the cells' trained weights and split embeddings in the cache "
                        "(AVCL_CACHE); every cell retrains and re-embeds (same numbers)")
    g = p.add_argument_group("executors", "where cells run (none of this is part of a result's key); "
                             "see docs/usage.md, 'Running on a cluster'")
    g.add_argument("--executor", default="local", choices=["local", "ray", "slurm"],
                   help="local: in this process (default); ray: one Ray task per (model, seed) cell; "
                        "slurm: a submitit job array, one cell per array task")
    g.add_argument("--cpus-per-cell", dest="cpus_per_cell", type=int, default=None, metavar="N",
                   help="CPUs a cell declares (ray, slurm; default: --threads)")
    g.add_argument("--gpus-per-cell", dest="gpus_per_cell", type=float, default=0.0, metavar="N",
                   help="GPUs a cell declares (ray: may be fractional; slurm: whole GPUs)")
    g.add_argument("--ray-address", dest="ray_address", default=None, metavar="ADDR",
                   help="an existing Ray cluster (e.g. 'auto'); default: a local Ray instance")
    g.add_argument("--slurm-partition", dest="slurm_partition", default=None)
    g.add_argument("--slurm-time", dest="slurm_time", type=int, default=60, metavar="MINUTES",
                   help="time limit of each array task (default 60)")
    p.add_argument("--json", action="store_true", help="print the records as JSON instead of the table")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_benchmark.py", description=__doc__.split("\n")[0])
    parser.add_argument("--debug", action="store_true", help="full tracebacks for every error, before or after "
                        "the sub-command (or set AVCL_DEBUG=1)")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("run", help="train and score models on a dataset (the default command)")
    _add_run_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("score", help="score stored outputs (npz) without a model",
                       description="Score a task's stored outputs: PRED (the model's outputs) against REF (the "
                                   "ground truth, e.g. from `export`), both .npz files with the arrays below.",
                       epilog=_score_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", help=f"task family: {', '.join(n for n in TASKS)}")
    p.add_argument("--pred", required=True, type=Path, help="npz of the model's outputs (PRED arrays below)")
    p.add_argument("--ref", required=True, type=Path, help="npz of the references (REF arrays below)")
    p.add_argument("--task-option", dest="task_option", action="append", default=[], metavar="KEY=VALUE",
                   help="task protocol option (repeatable), as in run, among those the task's score accepts "
                        "(localization: empty_mask=raise|zero, ties=strict|official)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("list", help="list models, tasks, datasets or the surveyed Table 1 rows")
    p.add_argument("what", choices=["models", "tasks", "datasets", "surveyed"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)


    for adder in (add_leaderboard_parser, add_report_parser, add_validate_parser, add_submit_parser,
                  add_export_parser):
        adder(sub)
    return parser


# ---------------------------------------------------------------------------------- commands
def _score_epilog(width: int = 100) -> str:
    """What PRED and REF hold for every task (``score --help``), from each task's metadata."""
    lines = ["arrays per task (list tasks shows the protocols):"]
    for name in TASKS:
        meta = TASKS.get(name).metadata
        lines.append(f"  {name}:")
        for label, text in (("PRED", meta.pred_format), ("REF", meta.ref_format)):
            lines += textwrap.wrap(f"{label}: {text or '(run-only: not scored from files)'}", width,
                                   initial_indent="    ", subsequent_indent="      ", break_on_hyphens=False)
    return "\n".join(lines)


def run_config_from_args(args: argparse.Namespace) -> Any:


    if args.models is not None and not parse_csv(args.models):
        raise ConfigError(f"--models: no model name in '{args.models}'")
    if args.tasks is not None and not parse_csv(args.tasks):
        raise ConfigError(f"--tasks: no task name in '{args.tasks}'")
    models = parse_csv(args.models) or [m for m in DEFAULT_MODELS if m in MODELS]
    if models == ["all"]:
        models = list(MODELS)
    DATASETS.get(args.dataset)
    ds_tasks = DATASETS.meta(args.dataset)["tasks"]
    tasks = parse_csv(args.tasks) or [t for t in TASK_ORDER if t in TASKS and t in ds_tasks]
    for t in tasks:
        TASKS.get(t)
        if t not in ds_tasks:
            raise ConfigError(f"task '{t}' is not available on dataset '{args.dataset}' (it has: {', '.join(ds_tasks)})")
    options = {}
    for item in args.option:
        options.update(parse_kv(item, "--option"))
    options_task: dict[str, Any] = {}
    for item in args.task_option:
        options_task.update(parse_kv(item, "--task-option"))
    if args.inception_weights is not None:
        options_task["inception_weights"] = str(args.inception_weights)
    return RunConfig(models=models, tasks=tasks, dataset=args.dataset, data_root=args.data_root,
                     dataset_options={k: str(v) for k, v in options.items()}, seeds=parse_seeds(args.seeds),
                     out=args.out or default_out(), quick=args.quick, device=args.device,
                     model_args=parse_kv(args.model_args, "--model-args"), progress=args.progress,
                     task_options=options_task, threads=args.threads, precision=args.precision,
                     cell_timeout=args.cell_timeout,
                     cache=getattr(args, "cache", True), executor=_executor_options(args))


def _executor_options(args: argparse.Namespace) -> ExecutorOptions:
    opts = ExecutorOptions(name=getattr(args, "executor", "local"), cpus_per_cell=getattr(args, "cpus_per_cell", None),
                           gpus_per_cell=getattr(args, "gpus_per_cell", 0.0),
                           ray_address=getattr(args, "ray_address", None),
                           slurm_partition=getattr(args, "slurm_partition", None),
                           slurm_time=getattr(args, "slurm_time", 60))
    if opts.cpus_per_cell is not None and opts.cpus_per_cell < 1:
        raise ConfigError(f"--cpus-per-cell: expected a positive integer, got {opts.cpus_per_cell}")
    if opts.gpus_per_cell < 0:
        raise ConfigError(f"--gpus-per-cell: expected a non-negative number, got {opts.gpus_per_cell:g}")
    if opts.name == "slurm":
        opts.slurm_folder = (args.out or default_out()) / "slurm"
    return opts


def cmd_run(args: argparse.Namespace) -> int:

    cfg = run_config_from_args(args)
    records = run(cfg)
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=2, sort_keys=True))
    else:
        print(console_table(records, load_table1_long()))
        print(f"\nresults: {cfg.out}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from tabulate import tabulate



    task = get_task(args.task)
    options = _score_options(task, args.task_option)
    pred, ref = load_npz(args.pred), load_npz(args.ref)
    metrics = task.score(pred, ref, pred_source=str(args.pred), ref_source=str(args.ref), **options)
    metrics = check_finite_metrics(metrics, task.name)  # never NaN/Infinity on stdout
    if args.json:
        print(json.dumps({"task": task.name, "metrics": metrics}, sort_keys=True, allow_nan=False))
    else:
        hib = task.higher_is_better()
        rows = [(k, f"{v:.6g}", "higher" if hib.get(k, True) else "lower") for k, v in metrics.items()]
        print(tabulate(rows, headers=["metric", "value", "better"]))
    return 0


def _score_options(task: Any, items: list[str]) -> dict[str, Any]:
    """``--task-option`` values of ``score``: only the keyword options the task's ``score`` declares."""
    options: dict[str, Any] = {}
    for item in items:
        options.update(parse_kv(item, "--task-option"))
    params = inspect.signature(task.score).parameters
    accepted = sorted(k for k, v in params.items() if v.kind is v.KEYWORD_ONLY and k not in ("pred_source", "ref_source"))
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"score {task.name}: --task-option {unknown[0]} is not an option of this task's scoring "
                          f"(it accepts: {', '.join(accepted) or 'none'})")
    return options


def cmd_list(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]]
    if args.what == "models":
        rows = [model_info(n) for n in MODELS]
    elif args.what == "tasks":
        rows = []
        for n in TASKS:
            t = TASKS.get(n)
            meta = t.metadata
            rows.append({"name": n, "version": t.version, "main_score": meta.main_score,
                         "headline": list(meta.headline), "metrics": list(meta.metrics),
                         "units": {k: m.unit for k, m in meta.metrics.items()},
                         "higher_is_better": meta.higher_is_better(), "needs": list(meta.needs),
                         "pred_format": meta.pred_format, "ref_format": meta.ref_format,
                         "reference_names": list(meta.reference_names), "protocol": meta.protocol})
    elif args.what == "datasets":
        rows = [{"name": n, **DATASETS.meta(n)} for n in DATASETS]
    else:
        rows = load_table1_long().to_dict(orient="records")
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        print(LISTINGS[args.what](rows, min(LIST_WIDTH, shutil.get_terminal_size((LIST_WIDTH, 24)).columns)))
    return 0


#: widest line of ``list`` output (narrower when the terminal is)
LIST_WIDTH = 100


def _text(v: Any) -> str:
    return ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else ("" if v is None else str(v))


def _wrapped_table(rows: list[dict[str, Any]], columns: dict[str, float], width: int, note: str,
                   headers: dict[str, str] | None = None) -> str:
    """A table of ``columns`` (key -> share of the free width) whose wrapped cells fit ``width``."""
    from tabulate import tabulate

    keys = list(columns)
    free = max(len(keys) * 8, width - 2 * (len(keys) - 1))
    widths = [max(6, int(free * columns[k])) for k in keys]
    body = [[_text(r.get(k)) for k in keys] for r in rows]
    table = tabulate(body, headers=[(headers or {}).get(k, k) for k in keys], maxcolwidths=widths,
                     maxheadercolwidths=widths, disable_numparse=True)
    return f"{table}\n\n{textwrap.fill(note, width)}"


def _list_models(rows: list[dict[str, Any]], width: int) -> str:
    return _wrapped_table(rows, {"name": 0.16, "encoder": 0.14, "objective": 0.17, "learning": 0.15,
                                 "description": 0.38}, width,
                          "--json adds each model's papers (the surveyed rows it stands for) and reference flag.")


def _list_datasets(rows: list[dict[str, Any]], width: int) -> str:
    return _wrapped_table(rows, {"name": 0.14, "tasks": 0.30, "description": 0.56}, width,
                          "--json adds layout, licence, citation, homepage and options; docs/datasets.md has the "
                          "details.")


def _list_surveyed(rows: list[dict[str, Any]], width: int) -> str:
    return _wrapped_table(rows, {"table_row": 0.07, "paper": 0.26, "task": 0.17, "metric": 0.14,
                                 "value_text": 0.1, "dataset": 0.26}, width,
                          "--json adds every parsed field (unit, normalised value, notes, direction).",
                          headers={"table_row": "row", "value_text": "value"})


def _list_tasks(rows: list[dict[str, Any]], width: int) -> str:
    """Every task with its protocol in full, wrapped to ``width``."""
    out: list[str] = []
    for r in rows:
        def para(label: str, text: str) -> list[str]:
            return textwrap.wrap(f"{label}: {text}", width, initial_indent="  ", subsequent_indent="    ",
                                 break_on_hyphens=False)

        out.append(f"{r['name']} (version {r['version']}; main score {r['main_score']})")
        metrics = [f"{m} ({'higher' if r['higher_is_better'][m] else 'lower'} is better, {r['units'][m]})"
                   for m in r["metrics"]]
        out += para("headline", ", ".join(r["headline"]))
        out += para("metrics", "; ".join(metrics))
        out += para("protocol", " ".join(r["protocol"].split()))
        if r["needs"]:
            out += para("needs", ", ".join(r["needs"]))
        out += para("score PRED", r["pred_format"] or "(not scored from files)")
        out += para("score REF", r["ref_format"] or "(not scored from files)")
        if r["reference_names"]:
            out += para("reference rows", ", ".join(r["reference_names"]))
        out.append("")
    return "\n".join(out).rstrip("\n")


#: ``list WHAT`` -> its text rendering (``--json`` prints every field instead)
LISTINGS = {"models": _list_models, "tasks": _list_tasks, "datasets": _list_datasets, "surveyed": _list_surveyed}


# ---------------------------------------------------------------------------------- entry
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is global: accepted before or after the sub-command (and AVCL_DEBUG=1 does the same)
    cut = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:cut] or os.environ.get("AVCL_DEBUG", "") not in ("", "0")
    argv = [a for i, a in enumerate(argv) if not (a == "--debug" and i < cut)]
    if argv and argv[0] == "--version":
        print(f"avcl-bench {__version__}")
        return 0
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        close = difflib.get_close_matches(argv[0], COMMANDS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        print(f"error: unknown command '{argv[0]}'{hint} (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["run", *argv]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except UserCodeError as e:  # a model's own code raised: the summary, then the user's frames
        if e.internal:  # one of the suite's built-in models: a bug of the suite, named by model and phase
            print(f"internal error: {e}" + ("" if debug else " (run with --debug or AVCL_DEBUG=1 for the traceback)"),
                  file=sys.stderr)
            if debug:
                print(_full_traceback(e), file=sys.stderr)
            return e.exit_code
        print(f"error: {e}", file=sys.stderr)
        print(_full_traceback(e) if debug else e.render().partition("\n")[2], file=sys.stderr)
        return e.exit_code
    except AVCLError as e:
        print(f"error: {e}", file=sys.stderr)
        if debug:
            print(_full_traceback(e), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished results are kept; re-run the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`... | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 0
    except Exception as e:  # a bug, not a user error: one line unless --debug / AVCL_DEBUG is set
        if debug:
            raise
        print(f"internal error: {e.__class__.__name__}: {e} (run with --debug or AVCL_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


def _full_traceback(e: BaseException) -> str:
    return "".join(traceback.format_exception(e)).rstrip()
