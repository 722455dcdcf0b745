"""Collection layout: what the store's collection looks like, built or read back. Pure, no I/O.

`CollectionLayout` is the single description of a collection that the rest of the package
works from: field names, primary-key type, text limits, vector dimension, metric and where
metadata lives. It is either planned from the constructor's options (before the collection
exists) or read back from `describe_collection` / `describe_index` (an existing collection,
including one created by langchain-milvus).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from pymilvus import DataType, Function, FunctionType, MilvusClient
from pymilvus.milvus_client.index import IndexParams

from langchain_milvus_ext._filters import FieldRef, json_path_ref, validate_key
from langchain_milvus_ext._packing import WireFormat, wire_format
from langchain_milvus_ext._vectors import VectorField

DEFAULT_TEXT_MAX_LENGTH = 65_535
DEFAULT_PK_MAX_LENGTH = 512
DEFAULT_METRIC = "L2"  # langchain-milvus's default: raw scores are distances, lower = closer
JSON_MAX_BYTES = 65_536
SUPPORTED_METRICS = ("COSINE", "IP", "L2")
_VECTOR_TYPES = {
    DataType.FLOAT_VECTOR,
    DataType.FLOAT16_VECTOR,
    DataType.BFLOAT16_VECTOR,
    DataType.BINARY_VECTOR,
    DataType.SPARSE_FLOAT_VECTOR,
}


_EXPRESSION_WORDS = frozenset({
    "and", "or", "not", "in", "like", "exists", "true", "false", "is", "null", "between",
    "json_contains", "json_contains_all", "json_contains_any", "array_contains",
    "array_contains_all", "array_contains_any", "array_length", "text_match", "phrase_match",
    "random_sample", "elementfilter", "exp", "pow", "sqrt",
})
"""Words of Milvus's expression grammar: a dynamic key with such a name is addressed as
`$meta["key"]`, never by its bare name."""


_RESOLVED_KEYS_KEPT = 1024
"""Most filter keys a layout remembers resolving (callers may send any number of keys)."""


@dataclass(frozen=True)
class CollectionLayout:
    """How documents map onto one Milvus collection.

    Attributes:
        pk_field: Primary-key field name.
        text_field: Field holding `Document.page_content`.
        vector_field: Dense float-vector field.
        metadata_field: JSON field holding the whole metadata dict, or None.
        dynamic: Whether metadata keys live in Milvus's dynamic field instead.
        auto_id: Whether the server generates primary keys.
        pk_is_int: True for an INT64 primary key, False for VARCHAR.
        pk_max_length: VARCHAR primary-key limit (bytes).
        text_max_length: Text field limit (bytes, checked before writing).
        dim: Vector dimension, or None while the collection does not exist yet.
        metric: COSINE, IP or L2.
        index_type: The vector index type (AUTOINDEX, HNSW, ...), when known.
        scalar_fields: Scalar metadata columns: the partition key, `metadata_schema` fields, the
            columns of an `enable_dynamic_field=False` collection.
        sparse_field: Sparse field filled server-side by a BM25 function on the text field
            (full-text and hybrid search), or None.
        exists: Whether the layout was read from an existing collection.
        column_args: `add_field` arguments of planned columns beyond their type
            (`max_length`, `element_type`, `nullable`, ...), from `metadata_schema`.
        infer_columns: Whether the first write decides the metadata columns (one per key of
            the first document, as langchain-milvus does with `enable_dynamic_field=False`).
        field_names: Every field of the collection, in schema order (the parent's `fields`).
        vectors: The vector fields of a multi-field store (several embedding models, sparse
            models, BM25 functions); empty for the usual single dense field.
        wire: How writes to the existing collection are packed (`_packing`); None when
            pymilvus packs them (the collection does not exist yet, or has other fields).
        upserts_merge: The server's Upsert merges the new row into the old one, and its
            Insert replaces a row with the same key (Milvus Lite 3.2.2:
            `milvus_lite/engine/collection.py`, `upsert`). Upserts of complete rows are then
            sent as inserts, so a metadata key the new document lacks does not survive.
    """

    pk_field: str = "pk"
    text_field: str = "text"
    vector_field: str = "vector"
    metadata_field: str | None = "metadata"
    dynamic: bool = False
    auto_id: bool = False
    pk_is_int: bool = False
    pk_max_length: int = DEFAULT_PK_MAX_LENGTH
    text_max_length: int = DEFAULT_TEXT_MAX_LENGTH
    dim: int | None = None
    metric: str = DEFAULT_METRIC
    index_type: str = "AUTOINDEX"
    scalar_fields: Mapping[str, DataType] = field(default_factory=dict)
    sparse_field: str | None = None
    exists: bool = False
    column_args: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    infer_columns: bool = False
    field_names: tuple[str, ...] = ()
    vectors: tuple[VectorField, ...] = ()
    wire: WireFormat | None = None
    upserts_merge: bool = False

    @cached_property  # asked for every row written; the layout is frozen
    def reserved_keys(self) -> frozenset[str]:
        """Field names a metadata key may not overwrite in dynamic or column mode."""
        names = {self.pk_field, self.text_field, self.vector_field, "$meta"}
        names.update(vf.name for vf in self.vectors)
        if self.metadata_field:
            names.add(self.metadata_field)
        return frozenset(names)

    @cached_property  # asked for every search hit and query row read
    def non_metadata_keys(self) -> frozenset[str]:
        """Keys of a result entity that are not metadata: the primary key, text, vector and
        metadata fields, and the dynamic field's own name."""
        return frozenset(name for name in (self.pk_field, self.text_field, self.vector_field,
                                           self.metadata_field, "$meta") if name)

    def metadata_output_fields(self) -> list[str]:
        """Output fields that carry metadata in query and search results."""
        fields = list(self.scalar_fields)
        if self.metadata_field:
            fields.append(self.metadata_field)
        if self.dynamic:
            fields.append("$meta")
        return fields

    def output_fields(self, *, with_vector: bool = False) -> list[str]:
        """Fields to request for building documents (primary key comes back anyway)."""
        fields = [self.text_field, *self.metadata_output_fields()]
        if with_vector:
            fields.append(self.vector_field)
        return fields

    @cached_property  # asked for every search
    def document_fields(self) -> tuple[str, ...]:
        """`output_fields()` as a tuple: what a search asks for to build its documents."""
        return tuple(self.output_fields())

    @cached_property
    def _resolved_keys(self) -> dict[str, FieldRef]:
        return {}

    def resolve_key(self, key: str) -> FieldRef:
        """The `FieldRef` of filter key `key` (this layout's `KeyResolver`, which
        `_filters.compile_filter` takes), remembered per layout: a dict filter or a delete by
        metadata resolves the same few keys on every call. Keys that raise are not remembered,
        and at most `_RESOLVED_KEYS_KEPT` are."""
        resolved = self._resolved_keys
        ref = resolved.get(key) if type(key) is str else None
        if ref is None:
            ref = self._resolve(key)
            if type(key) is str and len(resolved) < _RESOLVED_KEYS_KEPT:
                resolved[key] = ref
        return ref

    def _resolve(self, key: str) -> FieldRef:
        """What filter `key` names in this layout; raises `ValueError` for an unknown or
        invalid key."""
        parts = validate_key(key)
        head = parts[0]
        if head in self.scalar_fields:
            if len(parts) == 1:
                return FieldRef(head, is_json_path=False)
            if self.scalar_fields[head] == DataType.JSON:
                return FieldRef(json_path_ref(head, parts[1:]), is_json_path=True)
            raise ValueError(f"filter key {key!r}: field {head!r} is not a JSON field")
        if self.metadata_field:
            return FieldRef(json_path_ref(self.metadata_field, parts), is_json_path=True)
        if self.dynamic:
            if head in self.reserved_keys:
                raise ValueError(f"filter key {key!r} names a reserved field")
            if len(parts) == 1 and head.lower() not in _EXPRESSION_WORDS:
                # A top-level dynamic key by name, as raw expressions write it: it also
                # takes `in [...]`, which `$meta["key"]` does not on Milvus Lite.
                return FieldRef(head, is_json_path=True, takes_in=True)
            return FieldRef(json_path_ref("$meta", parts), is_json_path=True)
        if self.infer_columns and not self.exists and len(parts) == 1:
            return FieldRef(head, is_json_path=False)  # no collection yet: matches nothing
        raise ValueError(
            f"filter key {key!r} is not a metadata field of this collection "
            f"(fields: {sorted(self.scalar_fields)})"
        )


def layout_for(
    *,
    primary_field: str,
    text_field: str,
    vector_field: str,
    metadata_field: str | None,
    enable_dynamic_field: bool | None,
    auto_id: bool,
    index_params: Mapping[str, Any] | None,
    partition_key_field: str | None,
    sparse_field: str | None = None,
    metadata_schema: Mapping[str, Any] | None = None,
    vectors: tuple[VectorField, ...] = (),
) -> CollectionLayout:
    """The layout the store's options give a collection that does not exist yet.

    Where metadata lives (langchain-milvus's layouts, chosen by the same arguments):
    - `metadata_field="name"`: one JSON field holds the whole metadata dict;
    - `enable_dynamic_field=False`: one scalar column per key of the first document written;
      a later key without a column is a ValueError (langchain-milvus drops it silently);
    - otherwise (`True`, or not given): Milvus's dynamic field, so raw expressions name keys
      directly (`year > 2020`) and documents with different keys share the collection.
    `metadata_schema` adds typed columns for chosen keys in every layout.
    """
    if vectors:  # several fields: the first names the layout's vector field and metric
        vector_field = vectors[0].name
        index_params = dict(vectors[0].index)
    for name, value in (
        ("primary_field", primary_field),
        ("text_field", text_field),
        ("vector_field", vector_field),
    ):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if metadata_field is not None and (not isinstance(metadata_field, str) or not metadata_field):
        raise ValueError(f"metadata_field must be a non-empty string, got {metadata_field!r}")
    metric = str((index_params or {}).get("metric_type", DEFAULT_METRIC)).upper()
    if metric not in SUPPORTED_METRICS and not vectors:
        raise ValueError(f"index_params metric_type {metric!r} is not one of {SUPPORTED_METRICS}")
    if enable_dynamic_field:
        metadata_field = None  # as langchain-milvus: the dynamic field wins
    dynamic = enable_dynamic_field is not False and metadata_field is None
    taken = {primary_field, text_field, vector_field, *(vf.name for vf in vectors)}
    if sparse_field:
        taken.add(sparse_field)
    scalars, args = schema_columns(metadata_schema, taken)
    if partition_key_field:
        scalars.setdefault(partition_key_field, DataType.VARCHAR)
    return CollectionLayout(
        pk_field=primary_field,
        text_field=text_field,
        vector_field=vector_field,
        metadata_field=metadata_field,
        dynamic=dynamic,
        auto_id=auto_id,
        pk_is_int=auto_id,
        metric=metric,
        index_type=str((index_params or {}).get("index_type", "AUTOINDEX")).upper(),
        scalar_fields=scalars,
        sparse_field=sparse_field,
        column_args=args,
        infer_columns=not dynamic and metadata_field is None,
        vectors=vectors,
    )


def schema_columns(
    metadata_schema: Mapping[str, Any] | None, reserved: set[str]
) -> tuple[dict[str, DataType], dict[str, dict[str, Any]]]:
    """Column types and `add_field` arguments from langchain-milvus's `metadata_schema`.

    Each entry is `{"key": {"dtype": DataType.X, **add_field_kwargs}}`; nested `"kwargs"` are
    merged in, as langchain-milvus does.
    """
    types: dict[str, DataType] = {}
    args: dict[str, dict[str, Any]] = {}
    if metadata_schema is None:
        return types, args
    if not isinstance(metadata_schema, Mapping):
        raise ValueError(f"metadata_schema must be a dict, got {type(metadata_schema).__name__}")
    for key, spec in metadata_schema.items():
        validate_key(key)
        if "." in key or key in reserved or key == "$meta":
            raise ValueError(f"metadata_schema key {key!r} is not a usable column name")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("dtype"), DataType):
            raise ValueError(
                f"metadata_schema[{key!r}] must be a dict with a pymilvus DataType 'dtype', "
                f"got {spec!r}"
            )
        rest = {k: v for k, v in spec.items() if k not in ("dtype", "kwargs")}
        rest.update(spec.get("kwargs") or {})
        if spec["dtype"] in _VECTOR_TYPES:
            raise ValueError(f"metadata_schema[{key!r}]: vector types are not metadata")
        types[key] = spec["dtype"]
        args[key] = rest
    return types, args


def infer_column_type(value: Any) -> DataType:
    """The column type langchain-milvus infers for a first document's value."""
    if isinstance(value, bool):
        return DataType.BOOL
    if isinstance(value, int):
        return DataType.INT64
    if isinstance(value, float):
        return DataType.DOUBLE
    if isinstance(value, str):
        return DataType.VARCHAR
    return DataType.JSON  # lists, dicts and None: JSON holds any of them


def with_inferred_columns(
    layout: CollectionLayout, metadata: Mapping[str, Any]
) -> CollectionLayout:
    """The layout once the first document's metadata has decided its columns (infer mode)."""
    if not layout.infer_columns or layout.exists:
        return layout
    scalars = dict(layout.scalar_fields)
    for key, value in metadata.items():
        if key not in scalars and key not in layout.reserved_keys:
            validate_key(key)
            if "." in key:
                raise ValueError(f"metadata key {key!r} cannot name a column")
            scalars[key] = infer_column_type(value)
    return replace(layout, scalar_fields=scalars, infer_columns=False)


def field_names(layout: CollectionLayout) -> list[str]:
    """The collection's fields (langchain-milvus's `fields`): read back, else as planned."""
    if layout.exists and layout.field_names:
        return list(layout.field_names)
    names = [layout.pk_field, layout.text_field, layout.vector_field]
    if layout.sparse_field:
        names.append(layout.sparse_field)
    if layout.metadata_field:
        names.append(layout.metadata_field)
    return names + [name for name in layout.scalar_fields if name not in names]


@dataclass(frozen=True)
class CreateOptions:
    """How the store creates its collection when it does not exist yet.

    The store's constructor arguments of the same meaning (langchain-milvus's names are
    `collection_description` and `collection_properties`).
    """

    index_params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    partition_key_field: str | None = None
    num_partitions: int | None = None
    consistency_level: str = "Session"
    description: str = ""
    properties: Mapping[str, Any] | None = None  # e.g. {"collection.ttl.seconds": 3600}


def create_collection_args(
    layout: CollectionLayout, dim: int | Mapping[str, int], options: CreateOptions
) -> dict[str, Any]:
    """Build the keyword arguments of `create_collection` for `layout` with dimension `dim`.

    `options.properties` are not among them: they are set after creation.
    """
    partition_key_field = options.partition_key_field
    schema = MilvusClient.create_schema(
        auto_id=layout.auto_id,
        enable_dynamic_field=layout.dynamic,
        description=options.description,
        partition_key_field=partition_key_field,
    )
    if layout.pk_is_int:
        schema.add_field(layout.pk_field, DataType.INT64, is_primary=True, auto_id=layout.auto_id)
    else:
        schema.add_field(
            layout.pk_field, DataType.VARCHAR, is_primary=True, max_length=layout.pk_max_length
        )
    text_kwargs: dict[str, Any] = {"enable_analyzer": True} if layout.sparse_field else {}
    for vf in layout.vectors:
        text_kwargs.update(vf.text_kwargs)
    schema.add_field(layout.text_field, DataType.VARCHAR, max_length=layout.text_max_length,
                     **text_kwargs)
    if layout.vectors:
        dims = dim if isinstance(dim, Mapping) else {layout.vector_field: dim}
        for vf in layout.vectors:
            if vf.kind == "dense":
                schema.add_field(vf.name, DataType.FLOAT_VECTOR, dim=dims[vf.name])
            else:
                schema.add_field(vf.name, DataType.SPARSE_FLOAT_VECTOR)
            if vf.function is not None:
                schema.add_function(vf.function)
    else:
        schema.add_field(layout.vector_field, DataType.FLOAT_VECTOR,
                         dim=dim if isinstance(dim, int) else dim[layout.vector_field])
    if layout.sparse_field:
        schema.add_field(layout.sparse_field, DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(
            name=f"{layout.sparse_field}_bm25", function_type=FunctionType.BM25,
            input_field_names=[layout.text_field], output_field_names=[layout.sparse_field],
        ))
    if layout.metadata_field:
        schema.add_field(layout.metadata_field, DataType.JSON)
    for name, dtype in layout.scalar_fields.items():
        extra = dict(layout.column_args.get(name, {}))
        if name == partition_key_field:
            extra.setdefault("max_length", layout.pk_max_length)  # as in earlier versions
            extra["is_partition_key"] = True
        if dtype == DataType.VARCHAR:
            extra.setdefault("max_length", DEFAULT_TEXT_MAX_LENGTH)
        schema.add_field(name, dtype, **extra)
    args: dict[str, Any] = {
        "schema": schema,
        "index_params": vector_index_params(layout, options.index_params),
        "consistency_level": options.consistency_level,
    }
    if partition_key_field and options.num_partitions:
        args["num_partitions"] = options.num_partitions
    return args


def vector_index_params(
    layout: CollectionLayout,
    index_params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    skip: Collection[str] = (),
) -> IndexParams:
    """The index of each vector field of `layout`, except the fields in `skip`."""
    index = MilvusClient.prepare_index_params()
    user = dict(index_params or {}) if isinstance(index_params, Mapping) else {}
    wanted: list[tuple[str, str, str, dict[str, Any]]] = [
        (vf.name, vf.index["index_type"], vf.index["metric_type"], dict(vf.index["params"]))
        for vf in layout.vectors
    ] or [(layout.vector_field, str(user.get("index_type", "AUTOINDEX")).upper(),
           layout.metric, dict(user.get("params", {})))]
    if layout.sparse_field:
        wanted.append((layout.sparse_field, "SPARSE_INVERTED_INDEX", "BM25", {}))
    for name, index_type, metric, params in wanted:
        if name not in skip:
            index.add_index(name, index_type=index_type, metric_type=metric, params=params)
    return index


def layout_from_description(
    planned: CollectionLayout,
    description: Mapping[str, Any],
    index: Mapping[str, Any] | None,
    server_version: str = "",
) -> CollectionLayout:
    """Read the layout of an existing collection from `describe_collection` / `describe_index`.

    The constructor's field names are kept where the collection has them; the primary key,
    vector and text fields are otherwise found by type. Any other scalar field becomes a
    metadata column (how langchain-milvus lays out metadata). `server_version`: what
    `get_server_version()` returned ("milvus_lite-3.2.2" from Milvus Lite 3).
    """
    fields = list(description.get("fields", []))
    by_name = {f["name"]: f for f in fields}
    pk = next((f for f in fields if f.get("is_primary")), None)
    if pk is None:
        raise ValueError("collection has no primary key field")
    vectors = [f for f in fields if f["type"] in _VECTOR_TYPES]
    missing = [vf.name for vf in planned.vectors if vf.name not in by_name]
    if missing:
        raise ValueError(
            f"collection has no vector fields {missing} (the store's vector_field); its fields "
            f"are {sorted(by_name)}"
        )
    vector = by_name.get(planned.vector_field) or next(
        (f for f in vectors if f["type"] == DataType.FLOAT_VECTOR), None
    )
    if vector is None or (vector["type"] != DataType.FLOAT_VECTOR and not planned.vectors):
        raise ValueError(
            f"collection has no float vector field named {planned.vector_field!r}; "
            f"its fields are {sorted(by_name)}"
        )
    text = by_name.get(planned.text_field)
    if text is None or text["type"] != DataType.VARCHAR:
        raise ValueError(f"collection has no VARCHAR text field named {planned.text_field!r}")
    meta_name = planned.metadata_field
    if meta_name and (meta_name not in by_name or by_name[meta_name]["type"] != DataType.JSON):
        meta_name = None
    sparse = next((
        name for fn in description.get("functions", [])
        if fn.get("type") == FunctionType.BM25
        for name in fn.get("output_field_names", [])
    ), None)
    if (meta_name is None and planned.metadata_field is None and not planned.infer_columns
            and not description.get("enable_dynamic_field", False)
            and by_name.get("metadata", {}).get("type") == DataType.JSON):
        meta_name = "metadata"  # written by this package before 0.2 (one JSON field)
    core = {pk["name"], vector["name"], text["name"], meta_name}
    scalars = {
        f["name"]: f["type"]
        for f in fields
        if f["name"] not in core and f["type"] not in _VECTOR_TYPES
        and not f.get("is_function_output")
    }
    metric = str((index or {}).get("metric_type") or planned.metric).upper()
    params = vector.get("params", {})
    return replace(
        planned,
        pk_field=pk["name"],
        text_field=text["name"],
        vector_field=vector["name"],
        metadata_field=meta_name,
        dynamic=bool(description.get("enable_dynamic_field", False)),
        auto_id=bool(description.get("auto_id", pk.get("auto_id", False))),
        pk_is_int=pk["type"] == DataType.INT64,
        pk_max_length=int(pk.get("params", {}).get("max_length", DEFAULT_PK_MAX_LENGTH)),
        text_max_length=int(text.get("params", {}).get("max_length", DEFAULT_TEXT_MAX_LENGTH)),
        dim=int(params["dim"]) if "dim" in params else None,
        metric=metric,
        index_type=str((index or {}).get("index_type") or planned.index_type).upper(),
        scalar_fields=scalars,
        sparse_field=sparse,
        exists=True,
        infer_columns=False,
        column_args={},
        field_names=tuple(f["name"] for f in fields),
        wire=wire_format(description),
        upserts_merge=server_version.lower().startswith("milvus_lite"),
    )


def search_params_for(
    layout: CollectionLayout, limit: int, user: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Search params for one search: the user's if given, else the metric and a safe `ef`.

    HNSW rejects `limit > ef`, so a default `ef` grows with the limit.
    """
    if user:
        params = dict(user)
        params.setdefault("metric_type", layout.metric)
        return params
    inner: dict[str, Any] = {}
    if layout.index_type.startswith("HNSW"):
        inner["ef"] = max(64, limit)
    return {"metric_type": layout.metric, "params": inner}


_FREEZER = json.JSONEncoder(sort_keys=True, default=str)


def freeze(value: Any) -> str:
    """A stable, hashable rendering of a JSON-like value (for coalescing keys)."""
    return _FREEZER.encode(value)
