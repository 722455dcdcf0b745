"""Workarounds for bugs of the installed pymilvus, each gated on the releases it affects. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
    version = Version(pymilvus_version)
    return frozenset(w.method for w in workarounds
                     if w.fixed_in is None or version < Version(w.fixed_in))
