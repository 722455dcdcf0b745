"""The pymilvus workarounds are gated on the releases they are known to affect."""

from __future__ import annotations

import pymilvus

from langchain_milvus_ext import _drivers
from langchain_milvus_ext._pymilvus_compat import (
    PYMILVUS_WORKAROUNDS,
    ROW_TEXT_SCAN,
    WHOLE_TEXT_MIN,
    PymilvusWorkaround,
    WholeText,
    affected,
    send_whole_texts,
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


def test_a_whole_text_is_the_same_string_iterated_as_one_item() -> None:
    text = WholeText("été " * 40)
    assert text == "été " * 40 and isinstance(text, str) and len(text) == 160
    assert list(text) == [text]
    assert hash(text) == hash("été " * 40) and f"{text}" == "été " * 40


def test_the_strings_of_the_named_fields_are_sent_whole() -> None:
    long, short = "x" * WHOLE_TEXT_MIN, "y" * (WHOLE_TEXT_MIN - 1)
    rows = [{"text": long, "pk": "p" * 32, "source": "s" * 100}, {"text": short, "pk": 7},
            {"text": None}]
    send_whole_texts(rows, ("text", "pk"), "UTF-8")
    assert type(rows[0]["text"]) is WholeText and rows[0]["text"] == long
    assert type(rows[0]["pk"]) is WholeText and rows[0]["pk"] == "p" * 32
    assert type(rows[0]["source"]) is str  # other fields: as they were
    assert type(rows[1]["text"]) is str and rows[1]["pk"] == 7 and rows[2] == {"text": None}


def test_other_encodings_get_the_texts_as_they_are() -> None:
    rows = [{"text": "x" * 500}]
    send_whole_texts(rows, ("text",), "latin-1")  # pymilvus encodes each item of its loop then
    assert type(rows[0]["text"]) is str


def test_the_text_workaround_is_gated_on_the_release() -> None:
    assert affected("3.0.2", ROW_TEXT_SCAN)
    fixed = PymilvusWorkaround("rows", "scans", checked="3.0.2", fixed_in="3.1.0")
    assert affected("3.0.2", fixed) and not affected("3.1.0", fixed)
