"""The generic registry: lookups, metadata filters and the closest-name hint of an unknown name."""
from __future__ import annotations

import pytest

from avcl_bench.benchmark.errors import UnknownNameError
from avcl_bench.benchmark.registry import Registry


def _registry() -> Registry[int]:
    reg: Registry[int] = Registry("model")
    reg.register("infonce", 1, learning="self-supervised", objective=["infonce"])
    reg.register("triplet", 2, learning="supervised", objective=["triplet"])
    return reg


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown model 'infonse'; did you mean 'infonce'\? \(known: infonce, triplet\)"):
        _registry().get("infonse")


def test_unknown_name_without_a_close_match_lists_the_known() -> None:
    with pytest.raises(UnknownNameError) as err:
        _registry().get("zzz")
    assert "did you mean" not in str(err.value) and "known: infonce, triplet" in str(err.value)


def test_filters_and_double_registration() -> None:
    reg = _registry()
    assert reg.names(learning="supervised") == ["triplet"] and reg.names(objective="infonce") == ["infonce"]
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("infonce", 3)
