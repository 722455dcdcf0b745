"""The pymilvus workarounds are gated on the releases they are known to affect."""

from __future__ import annotations

import pymilvus

from langchain_milvus_ext import _drivers
from langchain_milvus_ext._pymilvus_compat import (
    PYMILVUS_WORKAROUNDS,
    PymilvusWorkaround,
    via_sync_client,
)


def test_workarounds_are_on_for_the_releases_known_affected() -> None:
    everything = {"delete", "create_collection", "create_index"}
    assert via_sync_client("3.0.2") == everything
    assert via_sync_client("2.6.0") == everything
    assert all(w.fixed_in is None for w in PYMILVUS_WORKAROUNDS)  # none fixed yet


def test_a_workaround_goes_from_the_release_that_fixes_it() -> None:
    table = [PymilvusWorkaround("delete", "ignores the status", checked="3.0.2",
                                fixed_in="3.1.0"),
             PymilvusWorkaround("create_index", "waits with a missing RPC", checked="3.0.2")]
    assert via_sync_client("3.0.2", table) == {"delete", "create_index"}
    assert via_sync_client("3.1.0rc1", table) == {"delete", "create_index"}  # before 3.1.0
    assert via_sync_client("3.1.0", table) == {"create_index"}
    assert via_sync_client("4.0.0", table) == {"create_index"}


def test_the_installed_pymilvus_decides_the_set() -> None:
    assert via_sync_client(pymilvus.__version__) == _drivers._VIA_SYNC_CLIENT
