"""Compute stats: parameter count, peak memory of fit, embedding throughput, in records and reports."""
from __future__ import annotations

import mmap
import time

import numpy as np
import pytest
import torch
from torch import nn

from avcl_bench.benchmark.compute import count_parameters, embedding_throughput, peak_memory
from avcl_bench.benchmark.datasets import load_dataset
from avcl_bench.benchmark.reporting.compute import compute_table
from avcl_bench.benchmark.reporting.leaderboard import format_leaderboard, leaderboard, leaderboard_json
from avcl_bench.benchmark.reporting.report import render_report
from avcl_bench.benchmark.runner import device_kind, run
from tests.tiny_runs import TINY, tiny_config

pytestmark = pytest.mark.usefixtures("fresh_cache")


def test_count_parameters_counts_shared_tensors_once():
    lin = nn.Linear(4, 3)
    shared = nn.Sequential(lin, nn.ReLU(), lin)
    assert count_parameters(lin) == 4 * 3 + 3
    assert count_parameters(shared) == 4 * 3 + 3
    assert count_parameters(object()) is None


def test_peak_memory_sees_a_transient_allocation_that_is_freed_before_the_end():
    # a fresh anonymous mapping, touched page by page: memory the allocator already held from
    # earlier tests (a heap top that glibc did not trim) would not grow the resident set
    size = 64 * 2**20
    with peak_memory("cpu") as small:
        pass
    with peak_memory("cpu") as big:
        block = mmap.mmap(-1, size)
        np.frombuffer(block, dtype=np.uint8)[:] = 1
        time.sleep(0.1)  # let the sampler see it
        block.close()
    assert big.measure in ("rss_growth", "process_max_rss")
    if big.measure == "rss_growth":
        assert big.mb >= 48 and small.mb < 16


class _Slow:
    """A model whose embedding takes a known time per batch."""

    def __init__(self, delay: float):
        self.delay = delay

    def embed_audio(self, audio):
        time.sleep(self.delay)
        return torch.zeros(len(audio), 2)

    def embed_visual(self, visual):
        return torch.zeros(len(visual), 2)


def test_embedding_throughput_reflects_the_model_speed():
    test = load_dataset("avsynth", options=TINY, quick=True).split("test")
    fast = embedding_throughput(_Slow(0.0), test, "cpu")
    slow = embedding_throughput(_Slow(0.2), test, "cpu")  # one batch of 20 items: about 100 items/s at most
    assert slow < 100 < fast


def test_records_carry_compute_and_a_reloaded_checkpoint_keeps_the_training_cost(tmp_path):
    first = [r for r in run(tiny_config(tmp_path / "a", models=["infonce"])) if r.model == "infonce"]
    stats = {r.task: r.compute for r in first}
    assert stats["retrieval"] == stats["classification"]  # one cell, one measurement
    c = stats["retrieval"]
    assert c.parameters > 1000 and c.train_seconds > 0 and c.embed_items_per_s > 0 and c.device == device_kind("cpu")
    assert c.peak_memory_mb is not None and c.memory_measure
    again = [r for r in run(tiny_config(tmp_path / "b", models=["infonce"])) if r.model == "infonce"]
    assert again[0].compute.train_seconds == pytest.approx(c.train_seconds)  # from the checkpoint, not retrained
    assert again[0].compute.peak_memory_mb == pytest.approx(c.peak_memory_mb)
    assert again[0].compute.embed_items_per_s == c.embed_items_per_s  # measured once per cell, not again


def test_untrained_models_cost_no_training_and_reference_rows_have_no_compute(tmp_path):
    recs = run(tiny_config(tmp_path / "o", models=["random"], tasks=["retrieval", "separation"],
                    dataset_options={**TINY, "n_test": "24"}))
    by_model = {r.model: r for r in recs}
    assert by_model["random"].compute.train_seconds == 0.0
    assert by_model["oracle_irm"].compute is None


def test_leaderboard_and_reports_show_the_compute_table(tmp_path):
    recs = run(tiny_config(tmp_path / "o", models=["infonce"], tasks=["retrieval"]))
    table = compute_table(recs)
    assert list(table["model"]) == ["infonce"] and table["parameters"].iloc[0] == recs[0].compute.parameters
    board = leaderboard(recs)
    text = format_leaderboard(board)
    assert "== compute" in text and f"{recs[0].compute.parameters:,d}" in text
    assert '"parameters": ' + str(recs[0].compute.parameters) in leaderboard_json(board)
    for fmt, marker in (("md", "## Compute"), ("html", "<h2>Compute</h2>"), ("latex", r"\subsection*{Compute}"),
                        ("csv", "\ncompute,")):
        assert marker in render_report(recs, None, fmt), fmt
