"""Turning LangChain inputs into Milvus rows, with every check made before anything is written.

Pure, no I/O. A row is the dict pymilvus's `insert` / `upsert` take.
"""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any, cast

import numpy as np
from langchain_core.documents import Document
from pymilvus import DataType

from langchain_milvus_ext._packing import INT_RANGES
from langchain_milvus_ext._schema import JSON_MAX_BYTES, CollectionLayout, with_inferred_columns

Row = dict[str, Any]
PrimaryKey = str | int


_BARE = (str, bytes, bytearray, memoryview)


def id_list(ids: Any, argument: str = "ids") -> list[Any]:
    """`ids` as a list, refusing a bare string or bytes (a sequence of characters, not of ids).

    Raises:
        ValueError: `ids` is a str / bytes (e.g. `delete("doc-1")` would otherwise mean the
            ids "d", "o", "c", "-", "1") or is not iterable.
    """
    if isinstance(ids, _BARE):
        shown = reprlib.repr(ids)
        raise ValueError(
            f"{argument} must be a list of ids, not a single {type(ids).__name__} {shown}; "
            f"for one id pass {argument}=[{shown}]"
        )
    try:
        return list(ids)
    except TypeError:
        raise ValueError(
            f"{argument} must be a list of ids, got {type(ids).__name__} {reprlib.repr(ids)}"
        ) from None


def normalize_ids(
    ids: Sequence[Any], layout: CollectionLayout, *, argument: str = "ids"
) -> list[PrimaryKey]:
    """Check user-given ids and convert them to the collection's primary-key type.

    Raises:
        ValueError: an id is empty, of the wrong type, too long, or repeated.
    """
    out: list[PrimaryKey] = []
    plain_str, longest = not layout.pk_is_int, layout.pk_max_length
    for position, raw in enumerate(ids):
        if plain_str and type(raw) is str and raw.isascii() and 0 < len(raw) <= longest:
            out.append(raw)  # the common case: _one_id would accept it as it is
        else:
            out.append(_one_id(raw, layout, f"{argument}[{position}]"))
    if len(out) > 1 and len(set(out)) != len(out):
        dupes = sorted(str(key) for key, count in Counter(out).items() if count > 1)
        raise ValueError(f"{argument} contains duplicates: {dupes[:10]}")
    return out


def _one_id(raw: Any, layout: CollectionLayout, where: str) -> PrimaryKey:
    if hasattr(raw, "item") and not isinstance(raw, (str, int)):  # numpy scalars
        raw = raw.item()
    if layout.pk_is_int:
        if isinstance(raw, bool):
            raise ValueError(f"{where}: expected an integer id, got bool {raw!r}")
        if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
            raw = int(raw)
        if isinstance(raw, int):
            if not -(2**63) <= raw < 2**63:
                raise ValueError(f"{where}: {raw} is outside the INT64 primary key's range")
            return raw
        raise ValueError(f"{where}: the collection has an INT64 primary key, got {raw!r}")
    if not isinstance(raw, str):
        raise ValueError(f"{where}: expected a string id, got {type(raw).__name__} {raw!r}")
    if not raw:
        raise ValueError(f"{where}: ids must be non-empty strings")
    size = len(utf8(raw, where))  # lone surrogates: no Milvus string can hold them
    if size > layout.pk_max_length:
        raise ValueError(
            f"{where}: id is {size} bytes, over the primary key's "
            f"max_length of {layout.pk_max_length}"
        )
    return raw


def new_ids(count: int, layout: CollectionLayout) -> list[PrimaryKey]:
    """Generate fresh ids in the collection's key type (uuid4 strings, or random 63-bit ints)."""
    if layout.pk_is_int:
        return [_uuid4_int() >> 65 for _ in range(count)]
    return [f"{_uuid4_int():032x}" for _ in range(count)]  # uuid.uuid4().hex


_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


def _uuid4_int() -> int:
    """`uuid.uuid4().int` without building a UUID object (half the time)."""
    return int.from_bytes(os.urandom(16), "big") & _UUID4_CLEAR | _UUID4_SET


def no_ids_given(ids: Sequence[Any] | None, count: int) -> bool:
    """Whether a write of `count` rows names no id: `ids` is None, or `count` Nones (documents
    without `Document.id`); every id it writes is then generated (or, with auto_id, the
    server's)."""
    # `None in ids` (identity first, in C) spares the scans in Python when no id is missing.
    return ids is None or (None in ids and len(ids) == count and all(i is None for i in ids))


def resolve_ids(
    count: int, ids: Sequence[Any] | None, layout: CollectionLayout, *, replace: bool = False
) -> list[PrimaryKey] | None:
    """The ids a write of `count` rows uses: checked user ids, generated ids, or None (auto_id).

    With `replace` (an upsert), an auto_id collection takes the keys of existing rows, which
    are then replaced in place, as langchain-milvus's `upsert(ids=store.get_pks(...))` does.
    """
    if no_ids_given(ids, count):
        ids = None
    if ids is not None:
        if len(ids) != count:
            raise ValueError(f"got {count} texts but {len(ids)} ids")
        if layout.auto_id and not replace:
            raise ValueError(
                "this collection uses auto_id=True: the server assigns primary keys, so ids "
                "cannot be given (use a collection with auto_id=False to choose ids)"
            )
        missing = [n for n, i in enumerate(ids) if i is None] if None in ids else []
        if missing and layout.auto_id:
            raise ValueError(f"ids[{missing[0]}] is None: an upsert needs every row's key")
        if missing:  # documents without Document.id among documents with one
            fresh = iter(new_ids(len(missing), layout))
            ids = [next(fresh) if i is None else i for i in ids]
        return normalize_ids(ids, layout)
    if layout.auto_id:
        return None
    return new_ids(count, layout)


def split_documents(
    documents: Sequence[Document], ids: Sequence[Any] | None
) -> tuple[list[str], list[dict[str, Any]], list[Any] | None]:
    """Texts, metadatas and ids of documents; `ids` wins over `Document.id` when both exist.

    Documents without an id among documents with one get a generated id (None here).
    """
    if ids is not None:
        ids = id_list(ids)
    texts = [d.page_content for d in documents]
    metadatas = [d.metadata for d in documents]  # not copied: build_rows copies, never changes
    if ids is None and any(d.id is not None for d in documents):
        ids = [d.id for d in documents]
    return texts, metadatas, ids


def build_rows(
    texts: Iterable[str],
    metadatas: Sequence[dict[str, Any]] | None,
    ids: Sequence[PrimaryKey] | None,
    layout: CollectionLayout,
) -> list[Row]:
    """Rows without vectors, after checking every text and metadata dict.

    Raises:
        ValueError: lengths differ, a text is not a string or over the text field's limit,
            metadata is not a JSON-serialisable dict, or uses a reserved key where it would
            overwrite the primary key, the text or the vector.
    """
    texts = list(texts)
    if layout.infer_columns and texts:  # the first document decides the columns
        first = metadatas[0] if metadatas else None
        layout = with_inferred_columns(layout, first if isinstance(first, dict) else {})
    if metadatas is not None and len(metadatas) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(metadatas)} metadatas")
    if ids is not None and len(ids) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(ids)} ids")
    rows: list[Row] = []
    reserved = layout.reserved_keys  # read once per call, not once per row
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts[{position}] is {type(text).__name__}, expected str")
        size = len(text) if text.isascii() else len(utf8(text, f"texts[{position}]"))
        if size > layout.text_max_length:
            raise ValueError(
                f"texts[{position}] is {size} bytes, over the text field's max_length of "
                f"{layout.text_max_length}; split the document (nothing was truncated or written)"
            )
        metadata = metadatas[position] if metadatas is not None else {}
        row: Row = {layout.text_field: text}
        if ids is not None:
            row[layout.pk_field] = ids[position]
        _add_metadata_columns(row, metadata, layout, position, reserved)
        rows.append(row)
    return rows


_SCALARS = frozenset({str, int, float, bool, type(None)})
_STRICT_JSON = json.JSONEncoder(allow_nan=False)  # json.dumps(**options) builds one per call


def _add_metadata_columns(
    columns: Row, metadata: Any, layout: CollectionLayout, position: int,
    reserved: frozenset[str],
) -> None:
    """Check one metadata dict and add its columns to the row `columns` (copies of the values
    that could change: the caller's dict is never stored or changed)."""
    where = _Where(position)  # formatted only for an error message
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise ValueError(f"{where} must be a dict, got {type(metadata).__name__}")
    if not layout.metadata_field and _plain_json(metadata):
        encoded = None  # valid as it is: no JSON round trip (dynamic or column mode)
    else:
        bad = [k for k in metadata if not isinstance(k, str)]
        if bad:
            raise ValueError(f"{where} has non-string keys {bad[:5]!r}")
        try:
            encoded = _STRICT_JSON.encode(metadata)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where} is not JSON-serialisable: {error}") from error
        if _SUSPECT.search(encoded):  # rare: find the value pymilvus would reject, and say where
            _check_json_value(metadata, str(where))
    if layout.metadata_field:
        assert encoded is not None
        if len(encoded.encode("utf-8")) > JSON_MAX_BYTES:
            raise ValueError(f"{where} encodes to over {JSON_MAX_BYTES} bytes of JSON")
        # A private copy: shallow suffices for flat metadata, nested values are rebuilt.
        flat = all(type(v) in _SCALARS for v in metadata.values())
        columns[layout.metadata_field] = dict(metadata) if flat else json.loads(encoded)
        for name, dtype in layout.scalar_fields.items():  # e.g. a partition key, also a column
            columns[name] = _column_value(metadata, name, dtype, layout, where)
        return
    if not reserved.isdisjoint(metadata):
        raise ValueError(
            f"{where} uses reserved key(s) {sorted(reserved.intersection(metadata))}: they "
            "name the collection's primary key, text or vector field"
        )
    if not layout.dynamic and not layout.scalar_fields.keys() >= metadata.keys():
        unknown = sorted(metadata.keys() - layout.scalar_fields.keys())
        raise ValueError(
            f"{where} has keys {unknown} that are not fields of this collection "
            f"(it has {sorted(layout.scalar_fields)} and no dynamic or JSON metadata field; "
            "langchain-milvus would drop them silently)"
        )
    columns.update(metadata if encoded is None else json.loads(encoded))  # a private copy
    for name, dtype in layout.scalar_fields.items():
        columns[name] = _column_value(metadata, name, dtype, layout, where)


def _plain_json(metadata: dict[Any, Any]) -> bool:
    """Whether `metadata` is flat and JSON that pymilvus takes as it is: ASCII string keys,
    values None, bool, finite float, int64, or ASCII str. (False: check it the long way.)"""
    for key, value in metadata.items():
        if type(key) is not str or not key.isascii():
            return False
        kind = type(value)
        if kind is str:
            if not value.isascii():
                return False
        elif kind is float:
            if not math.isfinite(value):
                return False
        elif kind is int:
            if value not in _INT64:
                return False
        elif kind is not bool and value is not None:
            return False
    return True


def _column_value(
    metadata: dict[str, Any], name: str, dtype: DataType, layout: CollectionLayout,
    where: object,
) -> Any:
    """The value of scalar column `name`: present (unless nullable), of the column's type and
    within its limits, checked before anything is sent."""
    value = metadata.get(name)
    if value is None:
        if layout.column_args.get(name, {}).get("nullable"):
            return None
        raise ValueError(f"{where} lacks the key {name!r}, a column of this collection")
    _field_value(value, dtype, name, where)
    if dtype == DataType.VARCHAR:
        limit = int(layout.column_args.get(name, {}).get("max_length", 65_535))
        size = len(value) if value.isascii() else len(utf8(value, f"{where}[{name!r}]"))
        if size > limit:
            raise ValueError(f"{where}[{name!r}] is over the column's max_length of {limit} bytes")
    elif dtype in (DataType.FLOAT, DataType.DOUBLE) and not math.isfinite(value):
        raise ValueError(f"{where}[{name!r}]: {value!r} is not a finite number")
    return value


class _Where:
    """`metadatas[position]`, as an error message names a row: formatted only when one is
    raised (a write of many rows checks each, and almost never fails)."""

    __slots__ = ("position",)

    def __init__(self, position: int) -> None:
        self.position = position

    def __str__(self) -> str:
        return f"metadatas[{self.position}]"


def utf8(text: str, where: str) -> bytes:
    """`text` encoded as UTF-8, or a ValueError naming `where` (lone surrogates can't be)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = text[error.start]
        raise ValueError(
            f"{where}: contains a lone surrogate {bad!r} at position {error.start}, which is "
            "not valid UTF-8 (Milvus stores UTF-8 text only)"
        ) from None


_INT64 = range(INT_RANGES[DataType.INT64][0], INT_RANGES[DataType.INT64][1] + 1)  # `in`: C
# Lone surrogates show as \udXXX escapes in ASCII JSON (so do pairs: false alarms are fine),
# integers outside int64 as runs of 19+ digits; only then is metadata walked value by value.
_SUSPECT = re.compile(r"\\ud[89a-f]|\d{19}")


def _check_json_value(value: Any, where: str) -> None:
    """Raise ValueError at the first string or integer that pymilvus's JSON encoder refuses."""
    if isinstance(value, str):
        utf8(value, where)
    elif isinstance(value, int) and not isinstance(value, bool):
        if value not in _INT64:
            raise ValueError(f"{where}: {value} is outside the int64 range Milvus JSON holds")
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                utf8(key, f"{where}: key {key!r}")
            _check_json_value(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_json_value(item, f"{where}[{index}]")


_FIELD_TYPES: dict[int, tuple[type, ...]] = {
    DataType.VARCHAR: (str,), DataType.BOOL: (bool,), DataType.FLOAT: (int, float),
    DataType.DOUBLE: (int, float), DataType.ARRAY: (list,),
    **{dtype: (int,) for dtype in INT_RANGES},
}


def _field_value(value: Any, dtype: DataType, name: str, where: object) -> Any:
    """`value` if the scalar field `name` of type `dtype` can hold it, else a ValueError.

    None passes (the field may be nullable; the server decides).
    """
    types = _FIELD_TYPES.get(dtype)
    if value is None or types is None:
        return value
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ValueError(f"{where}[{name!r}]: the collection's {dtype.name} field {name!r} "
                         f"cannot hold {type(value).__name__} {shown}")
    bounds = INT_RANGES.get(dtype)
    if bounds is not None and not bounds[0] <= cast(int, value) <= bounds[1]:
        raise ValueError(
            f"{where}[{name!r}]: {value} is outside the {dtype.name} range of field {name!r}")
    return value


def attach_vectors(
    rows: Sequence[Row], vectors: Sequence[Sequence[float]], layout: CollectionLayout, *,
    checked: bool = False,
) -> list[Row]:
    """Rows with their vectors, after checking count, dimension and finiteness.

    `checked`: the vectors come from :func:`float_vectors` already (given vectors, checked
    when the call was made), so only their dimension is checked again, against `layout`.
    Otherwise they are a model's output, which only this write holds: lists of floats are
    attached as they are (see `float_vectors`).
    """
    if len(vectors) != len(rows):
        raise ValueError(f"embedding returned {len(vectors)} vectors for {len(rows)} texts")
    if checked:
        for position, vector in enumerate(vectors):
            _check_dimension(position, len(vector), layout.dim)
    else:
        vectors = float_vectors(vectors, layout, keep_lists=True)
    name = layout.vector_field
    return [{**row, name: vector} for row, vector in zip(rows, vectors, strict=True)]


def float_vectors(
    vectors: Sequence[Sequence[float]], layout: CollectionLayout, *, keep_lists: bool = False
) -> list[list[float]]:
    """`vectors` as new lists of Python floats, after checking dimension and finiteness.

    `keep_lists`: vectors that are lists of floats already (Python or numpy float64, a float
    subclass pymilvus packs as it is), as a model returns them, are kept, not copied.
    """
    head = vectors[0] if len(vectors) else None
    plain = type(head) is list and len(head) > 0 and type(head[0]) is float
    if head is not None and (keep_lists or not plain):
        checked = _checked_at_once(vectors, layout.dim, keep_lists=keep_lists)
        if checked is not None:
            return checked
    out: list[list[float]] = []
    for position, vector in enumerate(vectors):
        values = list(map(float, vector))
        _check_dimension(position, len(values), layout.dim)
        if not all_finite(values):
            raise ValueError(f"embeddings[{position}] contains NaN or infinity")
        out.append(values)
    return out


_FLOATS = (float, np.float64)


def _checked_at_once(vectors: Sequence[Sequence[float]], dim: int | None, *,
                     keep_lists: bool) -> list[list[float]] | None:
    """All vectors checked in one numpy pass (e.g. numpy floats: one conversion): the float
    lists themselves if `keep_lists` and they are lists of floats, new lists otherwise; None if
    any would fail a check (then the per-vector path names the culprit)."""
    flat = _finite_flat(vectors, dim)
    if flat is None:
        return None
    if keep_lists and all(type(v) is list and type(v[0]) in _FLOATS for v in vectors):
        return _own_lists(cast("list[list[float]]", vectors))
    matrix: list[list[float]] = flat.reshape(len(vectors), -1).tolist()
    return matrix


def _own_lists(vectors: list[list[float]]) -> list[list[float]]:
    """The lists, one per row: a list that comes twice (equal texts share one) is copied."""
    out: list[list[float]] = []
    seen: set[int] = set()
    for vector in vectors:
        out.append(list(vector) if id(vector) in seen else vector)
        seen.add(id(vector))
    return out


def _finite_flat(vectors: Sequence[Sequence[float]], dim: int | None) -> Any:
    """All values as one float64 array, or None if any vector would fail a check (then the
    per-vector path names the culprit)."""
    width = len(vectors[0])
    if not width or (dim is not None and width != dim) or any(len(v) != width for v in vectors):
        return None
    try:
        flat = np.fromiter(chain.from_iterable(vectors), np.float64, width * len(vectors))
    except (TypeError, ValueError, OverflowError):
        return None
    return flat if np.isfinite(flat).all() else None


def _check_dimension(position: int, size: int, dim: int | None) -> None:
    if dim is not None and size != dim:
        raise ValueError(
            f"embeddings[{position}] has dimension {size}, the collection's vector field has {dim}"
        )


def all_finite(values: list[float]) -> bool:
    """No NaN or infinity among `values` (a C-level sum first, each value only if it overflows)."""
    # A finite sum means no NaN or infinity (the C-level sum is the fast path); an
    # overflowing sum of huge finite values falls back to checking each value.
    return math.isfinite(sum(values)) or all(math.isfinite(x) for x in values)


def check_query_vector(vector: Sequence[float], layout: CollectionLayout) -> list[float]:
    """A query vector as floats, checked against the collection's dimension."""
    values = list(map(float, vector))
    if layout.dim is not None and len(values) != layout.dim:
        raise ValueError(
            f"query embedding has dimension {len(values)}, the collection's vector "
            f"field has {layout.dim}"
        )
    if not all_finite(values):
        raise ValueError("query embedding contains NaN or infinity")
    return values


def check_query_vectors(vectors: Sequence[Sequence[float]], layout: CollectionLayout,
                        ) -> list[list[float]]:
    """Several query vectors, checked as `check_query_vector` checks one.

    A model's output (lists of Python or numpy float64 floats, which pymilvus packs as they
    are) is checked in one numpy pass and kept, not copied value by value; anything else
    goes through `check_query_vector`, whose errors name the problem.
    """
    checked = (_checked_at_once(vectors, layout.dim, keep_lists=True) if len(vectors) > 1
               else None)
    if checked is None:
        return [check_query_vector(vector, layout) for vector in vectors]
    return checked


def estimate_row_bytes(row: Row) -> int:
    """A cheap size estimate of one row for batch byte limits."""
    size = 64
    for value in row.values():
        if type(value) is str and value.isascii():  # the usual case: no encoding needed
            size += len(value)
        elif isinstance(value, str):
            size += len(value.encode("utf-8"))
        elif isinstance(value, list) and all(isinstance(x, float) for x in value[:4]):
            size += 8 * len(value)  # a vector
        elif isinstance(value, (dict, list)):  # checked JSON values: repr is about as long
            size += len(repr(value).encode("utf-8"))
        else:
            size += 16
    return size
