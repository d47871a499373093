"""OBJECTIVES registry metadata and the input checks shared by every objective."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from avcl_bench.baselines.objectives import KINDS, OBJECTIVES, ObjectiveInfo, get_objective
from avcl_bench.benchmark.errors import ConfigError, InputError, UnknownNameError

REPO = Path(__file__).resolve().parents[2]
EXPECTED = {
    "ce", "center", "hinge", "mms", "triplet", "npair", "lifted", "contrastive", "infonce", "milnce",
    "dcca", "l2", "elbo", "adversarial",
}
PAIRWISE = sorted(n for n, info in OBJECTIVES.items() if info.kind == "pairwise")
# Objectives whose every term compares a pair with an in-batch negative.
NEEDS_NEGATIVES = sorted(set(PAIRWISE) - {"contrastive"})


def _pair(b: int = 5, d: int = 3, seed: int = 0, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(b, d, generator=g, dtype=dtype, requires_grad=True)
    v = torch.randn(b, d, generator=g, dtype=dtype, requires_grad=True)
    return a, v


def test_registry_names_and_fields() -> None:
    assert set(OBJECTIVES) == EXPECTED
    for name, info in OBJECTIVES.items():
        assert isinstance(info, ObjectiveInfo)
        assert callable(info.fn)
        assert info.kind in KINDS
        assert isinstance(info.needs_labels, bool)
        assert info.equation and info.papers, name
        assert get_objective(name) is info
    assert {n for n, i in OBJECTIVES.items() if i.needs_labels} == {"ce", "center"}
    for name, eq in {"hinge": "(1)", "mms": "(2)", "triplet": "(3)", "contrastive": "(4)", "infonce": "(5)"}.items():
        assert OBJECTIVES[name].equation == f"eq. {eq}"


def test_registry_papers_are_table1_citations() -> None:
    with open(REPO / "results" / "surveyed" / "table1.csv", newline="", encoding="utf-8") as f:
        table = {row["paper"]: row["objective"] for row in csv.DictReader(f)}
    for name, info in OBJECTIVES.items():
        for paper in info.papers:
            assert paper in table, f"{name}: {paper!r} is not a Table 1 row"
    # Spot checks against the printed objective column.
    assert table["Merkx et al., 2019"] == "Hinge"
    assert "MMS" in table["Rouditchenko et al., 2020"]
    assert table["Horiguchi et al., 2018"] == "NPL"
    assert table["Zheng et al., 2021a"].startswith("LSL")
    assert table["Hu et al., 2020"] == "CL"


def test_unknown_objective() -> None:
    with pytest.raises(UnknownNameError, match="unknown objective 'nope'"):
        get_objective("nope")


def test_bad_kind_rejected() -> None:
    with pytest.raises(ValueError):
        ObjectiveInfo(lambda: None, False, "bogus", "eq. (0)", ("x",))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", PAIRWISE)
@pytest.mark.parametrize("with_labels", [False, True])
def test_pairwise_scalar_and_finite_gradients(name: str, with_labels: bool) -> None:
    a, v = _pair()
    labels = torch.tensor([0, 1, 0, 2, 1]) if with_labels else None
    for reduction in ("mean", "sum"):
        loss = OBJECTIVES[name].fn(a, v, labels, reduction=reduction)
        assert loss.dim() == 0 and torch.isfinite(loss)
        ga, gv = torch.autograd.grad(loss, (a, v))
        assert torch.isfinite(ga).all() and torch.isfinite(gv).all()
        assert ga.abs().sum() + gv.abs().sum() > 0


@pytest.mark.parametrize("name", PAIRWISE)
def test_pairwise_float32(name: str) -> None:
    a, v = _pair(dtype=torch.float32)
    loss = OBJECTIVES[name].fn(a, v)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


@pytest.mark.parametrize("name", PAIRWISE)
@pytest.mark.parametrize("case", ["zeros", "identical_rows", "duplicated_pairs"])
def test_pairwise_degenerate_inputs_give_finite_gradients(name: str, case: str) -> None:
    """Constant / tied embeddings: zero vectors, all rows equal, a equal to v."""
    if case == "zeros":
        a = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
        v = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    elif case == "identical_rows":
        a = torch.ones(4, 3, dtype=torch.float64, requires_grad=True)
        v = torch.full((4, 3), 2.0, dtype=torch.float64, requires_grad=True)
    else:
        base = torch.randn(4, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        a = base.clone().requires_grad_(True)
        v = base.clone().requires_grad_(True)
    loss = OBJECTIVES[name].fn(a, v)
    assert torch.isfinite(loss)
    ga, gv = torch.autograd.grad(loss, (a, v))
    assert torch.isfinite(ga).all() and torch.isfinite(gv).all()


@pytest.mark.parametrize("name", PAIRWISE)
def test_pairwise_rejects_bad_tensors(name: str) -> None:
    fn = OBJECTIVES[name].fn
    a, v = _pair()
    bad = a.detach().clone()
    bad[1, 2] = float("nan")
    with pytest.raises(InputError, match=rf"^{name}: a: contains NaN or inf \(first at index \(1, 2\)\)"):
        fn(bad, v)
    inf_v = v.detach().clone()
    inf_v[0, 0] = float("inf")
    with pytest.raises(InputError, match=rf"^{name}: v: contains NaN or inf"):
        fn(a, inf_v)
    with pytest.raises(InputError, match=rf"^{name}: a: expected a 2-D tensor"):
        fn(a[0], v)
    with pytest.raises(InputError, match=rf"^{name}: a/v: batch size mismatch"):
        fn(a[:4], v)
    with pytest.raises(InputError, match=rf"^{name}: a/v: embedding size mismatch|^{name}: a/v: embedding sizes"):
        fn(a[:, :2], v)
    with pytest.raises(InputError, match=rf"^{name}: a: expected a floating-point tensor"):
        fn(torch.ones(5, 3, dtype=torch.long), v)
    with pytest.raises(InputError, match=rf"^{name}: a: expected a torch.Tensor"):
        fn(a.detach().numpy(), v)
    with pytest.raises(InputError, match=rf"^{name}: labels: expected 5 labels"):
        fn(a, v, torch.tensor([0, 1]))
    with pytest.raises(InputError, match=rf"^{name}: labels: expected an integer tensor"):
        fn(a, v, torch.zeros(5))
    with pytest.raises(InputError, match=rf"^{name}: labels: negative label -1 at index 3"):
        fn(a, v, torch.tensor([0, 1, 0, -1, 1]))
    with pytest.raises(ConfigError, match=rf"^{name}: reduction: expected one of"):
        fn(a, v, reduction="none")


@pytest.mark.parametrize("name", NEEDS_NEGATIVES)
def test_pairwise_needs_negatives(name: str) -> None:
    fn = OBJECTIVES[name].fn
    a, v = _pair(b=1)
    with pytest.raises(InputError, match=rf"^{name}: a: "):
        fn(a, v)
    a, v = _pair(b=3)
    with pytest.raises(InputError, match=rf"^{name}: labels: every item has the same class"):
        fn(a, v, torch.tensor([2, 2, 2]))


@pytest.mark.parametrize("name", PAIRWISE)
def test_pairwise_empty_batch(name: str) -> None:
    with pytest.raises(InputError, match=rf"^{name}: a: needs at least 1 item"):
        OBJECTIVES[name].fn(torch.zeros(0, 3), torch.zeros(0, 3))
