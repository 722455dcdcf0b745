"""Workarounds for bugs of the installed pymilvus, each gated on the releases it affects. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from packaging.version import Version


@dataclass(frozen=True)
class PymilvusWorkaround:
    """A call the async shell makes with the sync client (in a worker thread), because the
    async client of the installed pymilvus gets it wrong.

    Attributes:
        method: The client method.
        why: What the async client does wrong (seen on `checked`).
        checked: The newest pymilvus release on which the bug was seen.
        fixed_in: The first pymilvus release without the bug; None while none is known (then
            every release this package supports, pymilvus >= 2.6, counts as affected).
    """

    method: str
    why: str
    checked: str
    fixed_in: str | None = None


PYMILVUS_WORKAROUNDS = (
    PymilvusWorkaround("delete", "async delete ignores the server's status: an invalid filter "
                       "'succeeds'", checked="3.0.2"),
    PymilvusWorkaround("create_collection", "async create_collection waits for the index with "
                       "an RPC Milvus Lite does not implement", checked="3.0.2"),
    PymilvusWorkaround("create_index", "async create_index waits for the index with an RPC "
                       "Milvus Lite does not implement", checked="3.0.2"),
)
"""Set `fixed_in` once a pymilvus release fixes a call; drop the entry once this package
requires that release."""


def via_sync_client(pymilvus_version: str,
                    workarounds: Sequence[PymilvusWorkaround] = PYMILVUS_WORKAROUNDS,
                    ) -> frozenset[str]:
    """The methods the async shell calls with the sync client under `pymilvus_version`."""
    return frozenset(w.method for w in workarounds if affected(pymilvus_version, w))


class WholeText(str):
    """A string that iterates as one item: itself.

    pymilvus (3.0.2 seen; `ROW_TEXT_SCAN`) packs a VARCHAR value of a row with the function it
    uses for a column of strings, so it loops over the value's characters, checking each one
    is a string no longer than the field: Python work in proportion to the text (about
    30 µs per 1,000 characters, 4x the rest of the row's packing at 4,000). Given a
    `WholeText`, that loop runs once, on the whole string, and checks what it means to (its
    length). Protobuf copies the characters; the object is not kept.
    """

    __slots__ = ()

    def __iter__(self) -> Any:
        return iter((self,))


ROW_TEXT_SCAN = PymilvusWorkaround(
    "insert/upsert rows", "a row's VARCHAR value is checked one character at a time",
    checked="3.0.2")
"""Set `fixed_in` once a pymilvus release packs a row's string as one value."""
WHOLE_TEXT_MIN = 16
"""Shorter strings are sent as they are: their loop is shorter than making the object."""


def affected(pymilvus_version: str, workaround: PymilvusWorkaround) -> bool:
    """Whether `pymilvus_version` has the bug `workaround` works around."""
    return workaround.fixed_in is None or Version(pymilvus_version) < Version(workaround.fixed_in)


def send_whole_texts(rows: Sequence[dict[str, Any]], fields: Sequence[str],
                     encoding: str) -> None:
    """Make each string of `fields` in `rows` (the rows of one RPC, ours) a `WholeText`
    (unless short).

    `encoding`: pymilvus's `Config.EncodeProtocol`; with another than UTF-8, pymilvus encodes
    each item of the loop itself, so the strings are left as they are.
    """
    if encoding.lower() != "utf-8":
        return
    for row in rows:
        for field in fields:
            text = row.get(field)
            if type(text) is str and len(text) >= WHOLE_TEXT_MIN:
                row[field] = WholeText(text)
