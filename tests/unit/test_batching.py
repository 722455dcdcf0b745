"""Unit tests for the store's `Batching` options and its shorthand arguments (no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_milvus_ext import Batching, CoalescerLimits, MilvusVectorStore
from langchain_milvus_ext._arguments import batching_from_args
from langchain_milvus_ext._batching import WRITE_PIECE_ROWS

DEFAULTS: dict[str, Any] = {"batch_size": 1000, "coalesce": True, "coalesce_limits": None,
                            "batch_query_embeddings": True}


def test_default_limits_follow_the_batch_size() -> None:
    assert Batching(batch_size=64).coalescer_limits == CoalescerLimits(max_batch_items=64)
    limits = CoalescerLimits(max_batch_items=8, max_in_flight=2)
    assert Batching(limits=limits).coalescer_limits is limits


def test_coalesced_writes_go_in_pieces_unless_limits_are_given() -> None:
    default = Batching()
    assert default.write_limits == CoalescerLimits(max_batch_items=WRITE_PIECE_ROWS)
    assert default.coalescer_limits == CoalescerLimits(max_batch_items=1000)  # search, delete
    assert Batching(batch_size=64).write_limits == CoalescerLimits(max_batch_items=64)
    limits = CoalescerLimits(max_batch_items=1000, max_in_flight=2)
    assert Batching(limits=limits).write_limits is limits  # the caller's bounds, as given


@pytest.mark.parametrize("size", [0, -1, 2.5, True, "10"])
def test_a_batch_size_that_is_not_a_positive_int_is_refused(size: Any) -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        Batching(batch_size=size)


def test_the_shorthand_arguments_make_the_same_batching() -> None:
    limits = CoalescerLimits(max_in_flight=3)
    made = batching_from_args(None, batch_size=10, coalesce=False, coalesce_limits=limits,
                              batch_query_embeddings=False)
    assert made == Batching(batch_size=10, coalesce=False, limits=limits,
                            batch_query_embeddings=False)


def test_batching_is_taken_as_given() -> None:
    batching = Batching(batch_size=7)
    assert batching_from_args(batching, **DEFAULTS) is batching


@pytest.mark.parametrize(("name", "value"), [
    ("batch_size", 10), ("coalesce", False), ("coalesce_limits", CoalescerLimits()),
    ("batch_query_embeddings", False),
])
def test_a_shorthand_beside_batching_is_refused(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"pass {name} inside batching="):
        batching_from_args(Batching(), **{**DEFAULTS, name: value})


def test_the_store_runs_with_its_batching(tmp_path: Path) -> None:
    store = MilvusVectorStore(DeterministicFakeEmbedding(size=4),
                              connection_args={"uri": str(tmp_path / "b.db")},
                              batching=Batching(batch_size=7, coalesce=False))
    for driver in (store._sync, store._async):
        assert driver.options.batching == Batching(batch_size=7, coalesce=False)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        MilvusVectorStore(DeterministicFakeEmbedding(size=4),
                          connection_args={"uri": str(tmp_path / "b.db")}, batch_size=0)
