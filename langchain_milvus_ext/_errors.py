"""Exceptions of the package."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class WriteError(RuntimeError):
    """A write failed for some rows; nothing is reported as written that was not.

    Attributes:
        not_written_ids: Ids of the rows that were not (or not confirmed to be) written.
            Empty for auto_id collections, whose ids the server assigns; see
            `not_written_positions` there.
        written_ids: Ids confirmed written by the same call before the failure.
        not_written_positions: Positions (in the call's input) of the rows not written.
    """

    def __init__(
        self,
        message: str,
        *,
        not_written_ids: Sequence[Any] = (),
        written_ids: Sequence[Any] = (),
        not_written_positions: Sequence[int] = (),
    ) -> None:
        self.not_written_ids = list(not_written_ids)
        self.written_ids = list(written_ids)
        self.not_written_positions = list(not_written_positions)
        shown = ", ".join(repr(i) for i in self.not_written_ids[:20])
        more = len(self.not_written_ids) - 20
        detail = f"; ids not written: [{shown}{f', … {more} more' if more > 0 else ''}]"
        if not self.not_written_ids:
            detail = f"; {len(self.not_written_positions)} rows not written"
        super().__init__(message + detail)
